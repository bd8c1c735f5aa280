//! `vouch audit ROOT --remote URL`: scan ROOT, then diff its manifest
//! against the remote. `vouch run` runs the same function per named audit.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::{Alerts, Context, monitored, with_report_via};
use crate::engine::audit::{self, AuditOptions, Mode};
use crate::engine::checks::Level;
use crate::engine::exclude::{self, ExcludeRules, Excludes};
use crate::engine::hash::Want;
use crate::engine::inventory::Inventory;
use crate::engine::remote::{self, RemoteOptions};
use crate::engine::reports;
use crate::engine::scan::{self, ScanOptions};
use crate::engine::shard::Shard;
use crate::model::{Kind, Outcome, verdict};
use crate::out::Sink;

/// Resolved settings of one audit, from the command line or a config
/// section alike (see `cli::settings`).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSettings {
    pub root: PathBuf,
    pub remote: String,
    pub endpoint: Option<String>,
    /// The AWS profile (`--profile`).
    pub profile: Option<String>,
    pub mode: Mode,
    pub scrub_budget: u64,
    pub jobs: usize,
    pub no_scan: bool,
    pub strict: bool,
    pub one_way: bool,
    pub dry_run: bool,
    pub excludes: ExcludeRules,
    pub md5: bool,
    /// Prove content from the store's checksums (HEAD requests).
    pub head: bool,
    pub retries: usize,
    pub timeout: Duration,
    pub min_coverage: f64,
    /// The fraction that must be proven identical for `proven`.
    pub min_proven: f64,
    pub shrink_threshold: f64,
    /// Seconds.
    pub max_age: Option<u64>,
    /// An S3 Inventory report as the listing.
    pub inventory: Option<String>,
    /// Seconds.
    pub inventory_grace: i64,
    pub shard: Option<Shard>,
    pub checks: Level,
    pub checks_budget: u64,
    pub alerts: Alerts,
}

/// Runs one audit; `name` is the config section's, for `vouch run`.
pub fn run(ctx: &Context, s: &AuditSettings, name: Option<&str>) -> Result<Outcome> {
    monitored(ctx, &s.alerts, name, |job| audit(ctx, s, job))
}

fn audit(ctx: &Context, s: &AuditSettings, job: &mut super::Job) -> Result<Outcome> {
    job.command = "audit".into();
    job.root = Some(s.root.display().to_string());
    job.remote = Some(s.remote.clone());
    let remote_opts = RemoteOptions {
        endpoint: s.endpoint.clone(),
        profile: s.profile.clone(),
        retries: s.retries,
        timeout: s.timeout.max(Duration::from_secs(1)),
    };
    // Not one byte into the audited backup, not even a failed report.
    if let Some(target) = &ctx.output {
        reports::refuse_inside(target, &s.remote)?;
    }
    // Everything else that can fail is inside the report, so a run that
    // cannot even start still completes its JSON document (`status` failed).
    with_report_via(ctx, &remote_opts, |sink| {
        let root = scan::resolve_root(&s.root)?;
        job.root = Some(root.display().to_string());
        if s.jobs == 0 {
            bail!("--jobs must be at least 1");
        }
        let excludes = Excludes::new(&s.excludes)?;
        job.remote = remote::identity(&s.remote, &remote_opts).ok();
        let remote = remote::open(&s.remote, &remote_opts)?;
        // The inventory is proven intact (manifest checksum) before anything
        // is scanned or written; its data files are checked as they are read.
        let inventory = s
            .inventory
            .as_deref()
            .map(|url| Inventory::open(url, &remote_opts))
            .transpose()?;
        let mut index = ctx.open_index()?;
        let progress = ctx.progress();
        let scanned = if s.no_scan {
            None
        } else {
            let opts = ScanOptions {
                want: Want {
                    md5: s.md5,
                    sha256: false,
                },
                shrink_threshold: Some(s.shrink_threshold),
                checks: s.checks,
                checks_budget: Some(s.checks_budget),
                command: Some("audit".into()),
                excludes: excludes.clone(),
                shard: s.shard,
                ..Default::default()
            };
            Some(scan::scan(
                &mut index,
                &root,
                &opts,
                sink,
                progress.as_ref(),
            )?)
        };
        let root_id = match index.find_root(&root)? {
            Some(id) if index.last_scan(id)?.is_some() => id,
            _ => bail!(
                "no manifest of {} in the index; run `vouch scan {}` first (or drop --no-scan)",
                root.display(),
                root.display()
            ),
        };
        // The manifest must be of the same shard as the audit.
        scan::check_shard(&index, root_id, &root, s.shard)?;
        // The rules the scan found (its `.vouchignore` files), else those
        // of the directories the manifest holds.
        let excludes = match &scanned {
            Some(sc) => sc.excludes.clone(),
            None => exclude::with_manifest_files(&index, root_id, &root, excludes)?,
        };
        let accepted = index.acceptances(Some(root_id))?;
        let opts = AuditOptions {
            accepted,
            one_way: s.one_way,
            dry_run: s.dry_run,
            excludes,
            mode: s.mode,
            scrub_budget: s.scrub_budget,
            jobs: s.jobs,
            strict: s.strict,
            min_coverage: s.min_coverage,
            min_proven: s.min_proven,
            max_age: s.max_age.map(|a| a as i64),
            report_rot: s.no_scan,
            shard: s.shard,
            inventory_grace: s.inventory_grace,
            head: s.head,
        };
        let summary = audit::audit(
            &mut index,
            &root,
            root_id,
            &remote,
            inventory.as_ref(),
            &opts,
            sink,
            progress.as_ref(),
        )?;
        let mut json = summary.to_json(&root, &remote.id, s.mode);
        let mut bad = summary.discrepancies(s.strict) > 0;
        if let Some(sc) = &scanned {
            bad |= sc.discrepancies() > 0;
            // The scan's discrepancies count in the audit's totals too.
            for (kind, n) in [
                (Kind::Unreadable, sc.unreadable),
                (Kind::Corrupt, sc.corrupt),
                (Kind::Shrunk, sc.shrunk),
                (Kind::Damaged, sc.damaged),
                (Kind::Accepted, sc.accepted),
            ] {
                if n > 0 {
                    let total = json.get(kind.name()).and_then(Value::as_u64).unwrap_or(0) + n;
                    json.insert(kind.name().into(), json!(total));
                }
            }
            json.insert("scan".into(), Value::Object(sc.to_json(&root)));
        }
        verdict::annotate(&mut json);
        if scanned.as_ref().is_some_and(|sc| sc.discrepancies() > 0) {
            // The index keeps the same totals and verdict, for `report`
            // and `history`.
            index.set_run_outcome(
                summary.run_id,
                if bad { "findings" } else { "ok" },
                Some(i64::from(bad)),
                &Value::Object(json.clone()).to_string(),
            )?;
        }
        job.summary = json.clone();
        if bad {
            sink.mark_failing();
        }
        sink.finish(&json)?;
        Ok(Outcome::of_summary(&json, bad))
    })
}
