//! `vouch merge REPORT…|DIR|URL`: the report of a sharded run, from the JSON
//! reports of its N shards (see [`crate::engine::merge`]). It writes the
//! merged report in any format, metrics and notifications like any run,
//! and exits with the worst status: 2 when a shard is missing, duplicated,
//! failed or of another run.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use super::{Alerts, Context, monitored, with_report};
use crate::engine::merge::{self, MergeOptions};
use crate::engine::remote::RemoteOptions;
use crate::engine::reports::{self, Target};
use crate::model::{Outcome, now_unix};
use crate::out::Sink;

/// Resolved settings of `vouch merge`.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeSettings {
    pub reports: Vec<PathBuf>,
    pub min_coverage: Option<f64>,
    /// Seconds.
    pub max_age: Option<i64>,
    pub strict: bool,
    pub alerts: Alerts,
}

pub fn run(ctx: &Context, s: &MergeSettings) -> Result<Outcome> {
    monitored(ctx, &s.alerts, None, |job| {
        job.command = "merge".into();
        // Reports on object stores are downloaded first (into `copies_dir`,
        // kept until the merge is written); local ones are read in place.
        let copies_dir = tempfile::tempdir().context("cannot create a temporary folder")?;
        let mut sources = Vec::new();
        for arg in &s.reports {
            let text = arg.to_str().unwrap_or_default();
            if text.contains("://") && !text.starts_with("file://") {
                let copies = reports::download(text, &RemoteOptions::default(), copies_dir.path())?;
                for (name, local) in copies {
                    sources.push(merge::Source::file_named(name, local));
                }
            } else {
                let path = match Target::parse(arg.as_os_str())? {
                    Target::Local(p) => p,
                    Target::Remote(_) => arg.clone(),
                };
                sources.extend(merge::local_sources(&[path])?);
            }
        }
        with_report(ctx, |sink| {
            let opts = MergeOptions {
                min_coverage: s.min_coverage,
                max_age: s.max_age,
                strict: s.strict,
                now: now_unix(),
            };
            let merged = merge::merge(&sources, &opts, sink)?;
            job.remote = merged
                .summary
                .get("remote")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            job.root = merged
                .summary
                .get("root")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            job.summary = merged.summary.clone();
            let bad = merged.discrepancies > 0;
            if bad {
                sink.mark_failing();
            }
            sink.finish(&merged.summary)?;
            Ok(if bad {
                Outcome::Discrepancies
            } else {
                Outcome::Clean
            })
        })
    })
}
