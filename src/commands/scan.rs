//! `vouch scan ROOT`: update the manifest of ROOT, incrementally.

use std::path::PathBuf;

use anyhow::Result;

use super::{Alerts, Context, monitored, validate_label, with_report};
use crate::engine::checks::Level;
use crate::engine::exclude::{ExcludeRules, Excludes};
use crate::engine::hash::Want;
use crate::engine::scan::{self, ScanOptions};
use crate::engine::shard::Shard;
use crate::model::Outcome;
use crate::out::Sink;

/// Resolved settings of `vouch scan`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanSettings {
    pub root: PathBuf,
    pub rehash: bool,
    pub md5: bool,
    pub sha256: bool,
    pub label: Option<String>,
    pub shrink_threshold: f64,
    pub excludes: ExcludeRules,
    pub shard: Option<Shard>,
    pub checks: Level,
    pub checks_budget: u64,
    pub alerts: Alerts,
}

pub fn run(ctx: &Context, s: &ScanSettings) -> Result<Outcome> {
    monitored(ctx, &s.alerts, None, |job| {
        job.command = "scan".into();
        job.root = Some(s.root.display().to_string());
        let root = scan::resolve_root(&s.root)?;
        job.root = Some(root.display().to_string());
        if let Some(label) = &s.label {
            validate_label(label)?;
        }
        let excludes = Excludes::new(&s.excludes)?;
        let mut index = ctx.open_index_for_scan()?;
        let progress = ctx.progress();
        with_report(ctx, |sink| {
            let opts = ScanOptions {
                rehash: s.rehash,
                want: Want {
                    md5: s.md5,
                    sha256: s.sha256,
                },
                label: s.label.clone(),
                command: None,
                shrink_threshold: Some(s.shrink_threshold),
                excludes,
                shard: s.shard,
                checks: s.checks,
                checks_budget: Some(s.checks_budget),
            };
            let summary = scan::scan(&mut index, &root, &opts, sink, progress.as_ref())?;
            job.summary = summary.to_json(&root);
            sink.finish(&job.summary)?;
            Ok(Outcome::of_summary(
                &job.summary,
                summary.discrepancies() > 0,
            ))
        })
    })
}
