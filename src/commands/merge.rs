//! `vouch merge REPORT…|DIR`: the report of a sharded run, from the JSON
//! reports of its N shards (see [`crate::engine::merge`]). It writes the
//! merged report in any format, metrics and notifications like any run,
//! and exits with the worst status: 2 when a shard is missing, duplicated,
//! failed or of another run.

use std::path::PathBuf;

use anyhow::Result;

use super::{Alerts, Context, monitored, with_report};
use crate::engine::merge::{self, MergeOptions};
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
        let sources = merge::local_sources(&s.reports)?;
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
