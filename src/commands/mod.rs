//! The commands: one file per subcommand, each taking settings the CLI
//! layer has already resolved (flag > env > config file > default) and
//! returning an [`Outcome`].
//!
//! A command opens the index, picks the report sink and the progress
//! reporter, and calls the engines; it is the only layer that decides what
//! is shown on a terminal. Runs that monitors watch (`scan`, `audit`,
//! `run`) also write metrics and send notifications through
//! [`monitored`], for failures as much as for findings.

pub mod accept;
pub mod audit;
pub mod diff;
pub mod export;
pub mod merge;
pub mod report;
pub mod run;
pub mod scan;
pub mod verify;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::{Map, Value};

use crate::engine::remote::RemoteOptions;
use crate::engine::reports::{Target, Upload};
use crate::model::{Kind, Outcome, now_unix};
use crate::out::alert::{self, RunOutcome};
use crate::out::{Bar, Format, Lines, Progress, Report, Silent};
use crate::store::{Index, LockWait};

/// One command, resolved and ready to run.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    Scan(scan::ScanSettings),
    Audit(audit::AuditSettings),
    Diff(diff::DiffSettings),
    Export(export::ExportSettings),
    Verify(verify::VerifySettings),
    Report {
        run: Option<i64>,
        kind: Option<Kind>,
    },
    History,
    Accept(accept::AcceptSettings),
    Merge(merge::MergeSettings),
    Run(Vec<run::NamedAudit>),
    /// Completions and the man page, already printed.
    Done,
}

/// Runs a resolved command.
pub fn dispatch(ctx: &Context, inv: Invocation) -> Result<Outcome> {
    ctx.start_threads()?;
    let result = match inv {
        Invocation::Scan(s) => scan::run(ctx, &s),
        Invocation::Audit(s) => audit::run(ctx, &s, None),
        Invocation::Diff(s) => diff::run(ctx, &s),
        Invocation::Export(s) => export::run(ctx, &s),
        Invocation::Verify(s) => verify::run(ctx, &s),
        Invocation::Report { run, kind } => report::run(ctx, run, kind),
        Invocation::History => report::history(ctx),
        Invocation::Accept(s) => accept::run(ctx, &s),
        Invocation::Merge(s) => merge::run(ctx, &s),
        Invocation::Run(audits) => run::run(&audits),
        Invocation::Done => Ok(Outcome::Clean),
    };
    result.map_err(|e| where_full(ctx, e))
}

/// A full disk under the index, said where: the index, and what it kept
/// (its last finished run; a scan's or an audit's committed batches are
/// resumed by the next run), in one line. Any other error as it is.
fn where_full(ctx: &Context, e: anyhow::Error) -> anyhow::Error {
    if !crate::store::is_disk_full(&e) {
        return e;
    }
    let kept = match Index::open_read_only(&ctx.index).and_then(|i| i.last_finished_run()) {
        Ok(Some(run)) => {
            let what = match (&run.root, &run.remote) {
                (_, Some(remote)) => format!("{} against {remote}", run.command),
                (Some(root), None) => format!(
                    "{} of {}",
                    run.command,
                    crate::model::paths::escape_bytes(root)
                ),
                _ => run.command.clone(),
            };
            format!(
                "it keeps run {} ({what}, finished {}) as the last complete one",
                run.id,
                crate::model::format_time(run.finished_at.unwrap_or(run.started_at))
            )
        }
        Ok(None) => "it holds no complete run yet".to_string(),
        Err(_) => "what it kept cannot be read now".to_string(),
    };
    anyhow::anyhow!(
        "no space left for the index {} (the disk or quota is full): {kept}, and this run's work committed before the disk filled, which the next run resumes; free some space and run again",
        ctx.index.display()
    )
}

/// Settings every command shares, resolved by the CLI layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// The index file.
    pub index: PathBuf,
    /// Wait for the index lock instead of failing.
    pub wait: bool,
    /// The report format (export has its own manifest format).
    pub format: Format,
    /// `--output FILE|URL`.
    pub output: Option<Target>,
    pub quiet: bool,
    /// Hashing threads; `None` for one per core.
    pub threads: Option<usize>,
    /// `--kind K`: list only findings of this kind.
    pub kind: Option<Kind>,
    /// A heading above a table report (`vouch run --all`: the audit's name).
    pub heading: Option<String>,
}

/// Where a monitored run reports besides its output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Alerts {
    pub metrics: Option<PathBuf>,
    pub notify: Option<String>,
    pub notify_always: bool,
}

impl Context {
    fn lock_wait(&self) -> LockWait {
        if self.wait {
            LockWait::Yes
        } else {
            LockWait::No
        }
    }

    /// Opens the index for writing, holding its lock.
    pub fn open_index(&self) -> Result<Index> {
        Index::open(&self.index, self.lock_wait())
    }

    /// Opens the index for a scan: its structural check runs beside the
    /// walk, and nothing is committed before its verdict (see
    /// [`Index::open_checking_aside`]).
    pub fn open_index_for_scan(&self) -> Result<Index> {
        Index::open_checking_aside(&self.index, self.lock_wait())
    }

    /// Opens the index for reading only (no lock).
    pub fn read_index(&self) -> Result<Index> {
        Index::open_read_only(&self.index)
    }

    /// A spinner on a terminal; off a terminal (pipes, files, cron) one
    /// plain line on stderr every `VOUCH_PROGRESS_INTERVAL` seconds
    /// (default 60), the first only after one interval; nothing for `-q`.
    pub fn progress(&self) -> Box<dyn Progress> {
        if self.quiet {
            Box::new(Silent)
        } else if std::io::stderr().is_terminal() {
            Box::new(Bar::new())
        } else {
            Box::new(Lines::new(progress_interval()))
        }
    }

    /// `--output` for what only a local file can take (manifests,
    /// history): an object-store URL is refused.
    pub fn local_output(&self) -> Result<Option<&std::path::Path>> {
        match &self.output {
            None => Ok(None),
            Some(Target::Local(p)) => Ok(Some(p)),
            Some(Target::Remote(url)) => bail!(
                "--output {url}: this command writes a local file; only reports go to an object store"
            ),
        }
    }

    /// Starts the hashing pool with `--threads` workers, once.
    pub fn start_threads(&self) -> Result<()> {
        if let Some(n) = self.threads {
            if n == 0 {
                bail!("--threads must be at least 1");
            }
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global()
                .map_err(|e| anyhow!("cannot start {n} threads: {e}"))?;
        }
        Ok(())
    }
}

/// How often [`Lines`] writes: `VOUCH_PROGRESS_INTERVAL` seconds (a
/// positive number; anything else is ignored), 60 by default.
fn progress_interval() -> std::time::Duration {
    std::env::var("VOUCH_PROGRESS_INTERVAL")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(std::time::Duration::from_secs_f64)
        .unwrap_or(std::time::Duration::from_secs(60))
}

/// An error as one line (object stores put newlines and XML in theirs).
pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

/// Runs `body` with a report, completing the report as failed on error.
pub fn with_report(
    ctx: &Context,
    body: impl FnOnce(&mut Report) -> Result<Outcome>,
) -> Result<Outcome> {
    with_report_via(ctx, &RemoteOptions::default(), body)
}

/// [`with_report`], reaching an `--output` URL with `opts` (an audit's
/// `--endpoint` and patience). The bucket is opened before `body` runs,
/// so an unreachable one fails before anything happens; the report is
/// written to a local temporary file and uploaded once complete, failed
/// runs too (a merge must see that a shard failed, not miss it).
pub fn with_report_via(
    ctx: &Context,
    opts: &RemoteOptions,
    body: impl FnOnce(&mut Report) -> Result<Outcome>,
) -> Result<Outcome> {
    let (local, upload) = match &ctx.output {
        None => (None, None),
        Some(Target::Local(p)) => (Some(p.clone()), None),
        Some(Target::Remote(url)) => {
            // The same endpoint only for the same kind of store.
            let same_kind = |u: &str| url::Url::parse(u).ok().map(|u| u.scheme().to_string());
            let mut opts = opts.clone();
            if opts.endpoint.is_some() && same_kind(url) != Some("s3".into()) {
                opts.endpoint = None;
            }
            let up = Upload::open(url, &opts)?;
            let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
            let name = url.rsplit('/').next().unwrap_or("report");
            (Some(dir.path().join(name)), Some((up, dir)))
        }
    };
    let mut sink = Report::new(ctx.format, ctx.quiet, local.as_deref())?
        .only(ctx.kind)
        .heading(ctx.heading.clone());
    let mut result = body(&mut sink);
    if let Err(e) = &result {
        let _ = sink.fail(&one_line(e));
    }
    drop(sink);
    if let (Some((up, _dir)), Some(local)) = (&upload, &local)
        && local.exists()
        && let Err(e) = up.put_file(local)
    {
        match &result {
            Ok(_) => result = Err(e),
            Err(_) => eprintln!("vouch: {}", one_line(&e)),
        }
    }
    result
}

/// What a monitored command tells [`monitored`] about itself as it goes,
/// so that even a run failing half-way reports what it was.
#[derive(Default)]
pub struct Job {
    pub command: String,
    pub root: Option<String>,
    pub remote: Option<String>,
    pub summary: Map<String, Value>,
}

/// Runs a monitored command: writes metrics and notifies afterwards,
/// whether it found discrepancies, found none, or failed.
pub fn monitored(
    ctx: &Context,
    alerts: &Alerts,
    name: Option<&str>,
    body: impl FnOnce(&mut Job) -> Result<Outcome>,
) -> Result<Outcome> {
    let started = Instant::now();
    let mut job = Job::default();
    let result = body(&mut job);
    if alerts.metrics.is_none() && alerts.notify.is_none() {
        return result;
    }
    let exit_code = match &result {
        Ok(Outcome::Clean) => 0,
        Ok(Outcome::Discrepancies) => 1,
        Ok(Outcome::Incomplete) | Err(_) => 2,
    };
    let mut outcome = RunOutcome {
        command: job.command.clone(),
        name: name.map(str::to_string),
        root: job.root.clone(),
        remote: job.remote.clone(),
        exit_code,
        summary: job.summary,
        error: result.as_ref().err().map(one_line),
        elapsed_secs: started.elapsed().as_secs_f64(),
        finished_unix: now_unix(),
        last_success_unix: None,
    };
    outcome.last_success_unix = if exit_code == 0 {
        Some(outcome.finished_unix)
    } else {
        last_success(ctx, &outcome).ok().flatten()
    };
    if let Some(path) = &alerts.metrics
        && let Err(e) = alert::write_metrics(path, &outcome)
    {
        eprintln!("vouch: {}", one_line(&e));
    }
    if let Some(url) = &alerts.notify
        && (exit_code != 0 || alerts.notify_always)
        && let Err(e) = alert::notify(url, &outcome)
    {
        eprintln!("vouch: notification to {url} failed: {}", one_line(&e));
    }
    result
}

/// The last run of the same command, root and remote that exited 0.
fn last_success(ctx: &Context, o: &RunOutcome) -> Result<Option<i64>> {
    let index = ctx.read_index()?;
    index.last_success(&o.command, o.root.as_deref(), o.remote.as_deref())
}

/// A label must not look like a run number, so `@N` stays unambiguous.
pub fn validate_label(label: &str) -> Result<()> {
    if label.is_empty() || label.chars().all(|c| c.is_ascii_digit()) || label.contains('/') {
        bail!("label {label:?} must be non-empty, not all digits, and contain no '/'");
    }
    Ok(())
}

/// Runs a diff or verify `body` with a report and the progress reporter,
/// then ends the report: exit 0 only when proven identical.
pub fn comparison(
    ctx: &Context,
    body: impl FnOnce(&mut Report, &dyn Progress) -> Result<(bool, Map<String, Value>)>,
) -> Result<Outcome> {
    use crate::out::Sink;
    let progress = ctx.progress();
    with_report(ctx, |sink| {
        let (identical, json) = body(sink, progress.as_ref())?;
        if !identical {
            sink.mark_failing();
        }
        sink.finish(&json)?;
        Ok(if identical {
            Outcome::Clean
        } else {
            Outcome::Discrepancies
        })
    })
}
