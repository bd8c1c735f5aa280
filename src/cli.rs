//! The command line: clap definitions and dispatch to the stages.
//!
//! Every command returns an [`Outcome`] or an error; `main` maps them to
//! the exit status (0 clean, 1 discrepancies, 2 trouble), the way diff(1)
//! and ripgrep do. An error is printed as one line naming what failed.
//! Runs that monitors watch (`scan`, `audit`, `run`) also write metrics and
//! send notifications, for failures as much as for findings.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use crate::Outcome;
use crate::alert::{self, RunOutcome};
use crate::audit::{self, AuditOptions, Mode};
use crate::config;
use crate::diff::{self, RunContext};
use crate::export::{self, ExportFormat, ExportOptions};
use crate::finding::Kind;
use crate::hash::Want;
use crate::history;
use crate::index::{self, Index, LockWait};
use crate::manifest::ManifestFormat;
use crate::remote::{self, RemoteOptions};
use crate::report::{Format, Report, Sink};
use crate::scan::{self, ScanOptions};

#[derive(Debug, Parser)]
#[command(name = "vouch", version, about = "Integrity auditor for files and object stores", long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// The SQLite index [default: $XDG_DATA_HOME/vouch/index.sqlite3]
    #[arg(long, global = true, env = "VOUCH_INDEX", value_name = "PATH")]
    pub index: Option<PathBuf>,
    /// Output format: table (the default), json, jsonl or csv for reports;
    /// for `export`, the manifest written: b3sum, sha256sum, bagit or json
    #[arg(long = "format", global = true, value_enum, value_name = "FORMAT")]
    pub format_arg: Option<FormatArg>,
    /// The report format `--format` names (table unless given), checked
    /// and set by [`run`] before a reporting command starts.
    #[arg(skip = Format::Table)]
    pub format: Format,
    /// Write the report to FILE (atomically) instead of stdout
    #[arg(long, global = true, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print nothing on a clean run; only discrepancies otherwise
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Worker threads for hashing [default: number of cores]
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// Wait for another run holding the index lock instead of failing
    #[arg(long, global = true)]
    pub wait: bool,
}

/// Every value `--format` takes. It names the format of what a command
/// writes: a report for most commands, a manifest for `export` (so
/// `vouch export ROOT --format b3sum` reads as the design has it, and
/// `json` means vouch's json manifest there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    Table,
    Json,
    Jsonl,
    Csv,
    B3sum,
    Sha256sum,
    Bagit,
}

impl Common {
    /// The report format; the export-only values are refused.
    pub fn report_format(&self) -> Result<Format> {
        Ok(match self.format_arg {
            None | Some(FormatArg::Table) => Format::Table,
            Some(FormatArg::Json) => Format::Json,
            Some(FormatArg::Jsonl) => Format::Jsonl,
            Some(FormatArg::Csv) => Format::Csv,
            Some(f @ (FormatArg::B3sum | FormatArg::Sha256sum | FormatArg::Bagit)) => {
                anyhow::bail!(
                    "--format {} is a manifest format, for `vouch export`; reports are table, json, jsonl or csv",
                    f.to_possible_value()
                        .map(|v| v.get_name().to_string())
                        .unwrap_or_default()
                )
            }
        })
    }

    /// The manifest format of `export`.
    pub fn export_format(&self) -> Result<ExportFormat> {
        Ok(match self.format_arg {
            Some(FormatArg::B3sum) => ExportFormat::B3sum,
            Some(FormatArg::Sha256sum) => ExportFormat::Sha256sum,
            Some(FormatArg::Bagit) => ExportFormat::Bagit,
            Some(FormatArg::Json) => ExportFormat::Json,
            _ => anyhow::bail!("vouch export needs --format b3sum, sha256sum, bagit or json"),
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Update the manifest of ROOT (incremental)
    Scan(ScanArgs),
    /// Scan ROOT, then diff its manifest against a remote (S3, GCS, Azure, a directory)
    Audit(AuditArgs),
    /// Compare two trees, snapshots (@NAME, @RUN) or manifest files
    Diff(DiffArgs),
    /// Write a portable manifest of ROOT (--format b3sum|sha256sum|bagit|json)
    Export(ExportArgs),
    /// Check ROOT against an exported manifest (b3sum, sha256sum or json)
    Verify(VerifyArgs),
    /// Re-print the findings of a past run from the index
    Report(ReportArgs),
    /// List past runs with their counters
    History,
    /// Run named audits from the config file (for cron)
    Run(RunArgs),
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    Man,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// A directory (scanned first), a snapshot (@NAME or @RUN) or a manifest file
    pub a: std::ffi::OsString,
    /// Compared with A: a directory, a snapshot or a manifest file
    pub b: std::ffi::OsString,
    /// Hash every file of a directory operand again, trusting no metadata
    #[arg(long)]
    pub rehash: bool,
    /// The kind of a checksum-list operand, when its name does not tell
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub manifest_format: Option<ManifestFormat>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The tree to export (scanned first)
    pub root: PathBuf,
    /// BagIt: copy the payload instead of hard-linking it
    #[arg(long)]
    pub copy: bool,
    /// Hash every file again before exporting, trusting no metadata
    #[arg(long)]
    pub rehash: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The tree to check (read only; its manifest is recorded in the index)
    pub root: PathBuf,
    /// The manifest: b3sum, sha256sum or vouch json
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// Hash every file again, trusting no metadata
    #[arg(long)]
    pub rehash: bool,
    /// The kind of a checksum list, when its name does not tell
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub manifest_format: Option<ManifestFormat>,
}

/// Where a monitored run reports besides its output.
#[derive(Debug, Args, Clone, Default)]
pub struct AlertArgs {
    /// Write Prometheus metrics to FILE (atomically; for node_exporter's textfile collector)
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// POST {"text": ...} to URL when the run finds discrepancies or fails
    #[arg(long, value_name = "URL")]
    pub notify: Option<String>,
    /// Notify on every run, clean ones too
    #[arg(long, requires = "notify")]
    pub notify_always: bool,
}

#[derive(Debug, Args, Clone)]
pub struct ScanArgs {
    /// The tree to scan
    pub root: PathBuf,
    /// Hash every file again and report content that changed while its
    /// metadata did not (bit rot) as `corrupt`
    #[arg(long)]
    pub rehash: bool,
    /// Also record each file's MD5 (lets a quick audit verify S3 single-part ETags)
    #[arg(long)]
    pub md5: bool,
    /// Also record each file's SHA-256 (for sha256sum and BagIt exports)
    #[arg(long)]
    pub sha256: bool,
    /// Pin this run's manifest as a named snapshot (`@NAME`)
    #[arg(long, value_name = "NAME")]
    pub label: Option<String>,
    /// Report `shrunk` when a file (of 1 KiB or more) loses more than this fraction of its size
    #[arg(long, value_name = "FRACTION", default_value_t = 0.5, value_parser = parse_fraction)]
    pub shrink_threshold: f64,
    #[command(flatten)]
    pub alerts: AlertArgs,
}

#[derive(Debug, Args, Clone)]
pub struct AuditArgs {
    /// The tree whose manifest is audited
    pub root: PathBuf,
    /// The backup: s3://bucket/prefix, gs://bucket/prefix, az://container/prefix,
    /// file:///abs/path or a directory path
    #[arg(long, value_name = "URL")]
    pub remote: String,
    /// Endpoint of an S3-compatible server (else AWS_ENDPOINT_URL)
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// quick: listing only; deep: read every object not yet verified;
    /// scrub: quick plus re-reads up to --scrub-budget
    #[arg(long, value_enum, default_value_t = Mode::Quick)]
    pub mode: Mode,
    /// Bytes to re-read per scrub run (e.g. 50G)
    #[arg(long, value_name = "SIZE", default_value = "10G", value_parser = parse_size)]
    pub scrub_budget: u64,
    /// Objects downloaded at once
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub jobs: usize,
    /// Audit the manifest as it is, without scanning ROOT first
    #[arg(long)]
    pub no_scan: bool,
    /// Count `unverified` objects as discrepancies (exit 1)
    #[arg(long)]
    pub strict: bool,
    /// Record MD5s while scanning, so single-part S3 ETags verify without downloads
    #[arg(long)]
    pub md5: bool,
    /// Retries of a failed request (exponential backoff)
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub retries: usize,
    /// Seconds to wait for any network read before giving up on it
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
    /// Report `low_coverage` when the remote holds less than this fraction
    /// of the manifest's files or bytes (`remote_empty` when it holds nothing)
    #[arg(long, value_name = "FRACTION", default_value_t = 0.99, value_parser = parse_fraction)]
    pub min_coverage: f64,
    /// Report `shrunk` when a file (of 1 KiB or more) loses more than this fraction of its size
    #[arg(long, value_name = "FRACTION", default_value_t = 0.5, value_parser = parse_fraction)]
    pub shrink_threshold: f64,
    /// Report `stale` when the newest object, or a file's copy relative to
    /// the file, is older than this (e.g. 26h, 7d)
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub max_age: Option<u64>,
    #[command(flatten)]
    pub alerts: AlertArgs,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run to show [default: the latest finished run]
    #[arg(long, value_name = "N")]
    pub run: Option<i64>,
    /// Only findings of this kind
    #[arg(long, value_name = "KIND", value_parser = parse_kind)]
    pub kind: Option<Kind>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The named audit (an [audit.NAME] section of the config file)
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub name: Option<String>,
    /// Run every named audit, in name order
    #[arg(long)]
    pub all: bool,
    /// The config file [default: $XDG_CONFIG_HOME/vouch/vouch.toml]
    #[arg(long, value_name = "FILE", env = "VOUCH_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Parses a byte size: `1024`, `64K`, `500MiB`, `10G`, `2TB` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 500M, 10G)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{text:?} has an unknown unit (use K, M, G or T)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{text:?} is not a fraction between 0 and 1")),
    }
}

/// Parses an age like `26h` or `7d` into seconds.
fn parse_age(text: &str) -> Result<u64, String> {
    humantime::parse_duration(text)
        .map(|d| d.as_secs())
        .map_err(|e| format!("{text:?} is not an age (e.g. 26h, 7d): {e}"))
}

fn parse_kind(text: &str) -> Result<Kind, String> {
    Kind::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown kind {text:?} (one of {})", names.join(", "))
    })
}

/// Runs the command line and returns the process exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Outcome::Clean) => ExitCode::from(0),
        Ok(Outcome::Discrepancies) => ExitCode::from(1),
        Err(e) => {
            eprintln!("vouch: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

pub fn run(mut cli: Cli) -> Result<Outcome> {
    if !matches!(cli.command, Command::Export(_)) {
        cli.common.format = cli.common.report_format()?;
    }
    let common = &cli.common;
    if let Some(n) = common.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| anyhow!("cannot start {n} threads: {e}"))?;
    }
    match &cli.command {
        Command::Scan(args) => monitored(common, &args.alerts, None, |job| {
            cmd_scan(common, args, job)
        }),
        Command::Audit(args) => monitored(common, &args.alerts, None, |job| {
            cmd_audit(common, args, job)
        }),
        Command::Report(args) => cmd_report(common, args),
        Command::History => cmd_history(common),
        Command::Run(args) => cmd_run(common, args),
        Command::Completions { shell } => {
            let mut out = std::io::stdout();
            clap_complete::generate(*shell, &mut Cli::command(), "vouch", &mut out);
            Ok(Outcome::Clean)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(Outcome::Clean)
        }
        Command::Diff(args) => cmd_diff(common, args),
        Command::Export(args) => cmd_export(common, args),
        Command::Verify(args) => cmd_verify(common, args),
    }
}

fn lock_wait(common: &Common) -> LockWait {
    if common.wait {
        LockWait::Yes
    } else {
        LockWait::No
    }
}

fn run_context(
    common: &Common,
    rehash: bool,
    manifest_format: Option<ManifestFormat>,
) -> RunContext {
    RunContext {
        index: index_path(common),
        wait: lock_wait(common),
        progress: show_progress(common),
        rehash,
        manifest_format,
    }
}

fn cmd_diff(common: &Common, args: &DiffArgs) -> Result<Outcome> {
    with_report(common, |sink| {
        let ctx = run_context(common, args.rehash, args.manifest_format);
        let (summary, json) = diff::run_diff(&ctx, &args.a, &args.b, sink)?;
        finish_comparison(sink, summary.identical(), &json)
    })
}

fn cmd_verify(common: &Common, args: &VerifyArgs) -> Result<Outcome> {
    with_report(common, |sink| {
        let ctx = run_context(common, args.rehash, args.manifest_format);
        let (summary, json) = crate::verify::run_verify(&ctx, &args.root, &args.manifest, sink)?;
        finish_comparison(sink, summary.identical(), &json)
    })
}

/// Ends a diff or verify report: exit 0 only when proven identical.
fn finish_comparison(
    sink: &mut Report,
    identical: bool,
    json: &Map<String, Value>,
) -> Result<Outcome> {
    if !identical {
        sink.mark_failing();
    }
    sink.finish(json)?;
    Ok(if identical {
        Outcome::Clean
    } else {
        Outcome::Discrepancies
    })
}

fn cmd_export(common: &Common, args: &ExportArgs) -> Result<Outcome> {
    let format = common.export_format()?;
    let root = scan::resolve_root(&args.root)?;
    let ctx = run_context(common, args.rehash, None);
    let mut index = open_index(common)?;
    let opts = ExportOptions {
        format,
        output: common.output.clone(),
        copy: args.copy,
        quiet: common.quiet,
    };
    export::export(&mut index, &root, &ctx, &opts)?;
    Ok(Outcome::Clean)
}

fn index_path(common: &Common) -> PathBuf {
    common.index.clone().unwrap_or_else(index::default_path)
}

fn open_index(common: &Common) -> Result<Index> {
    Index::open(&index_path(common), lock_wait(common))
}

fn report(common: &Common) -> Result<Report> {
    Report::new(common.format, common.quiet, common.output.as_deref())
}

fn show_progress(common: &Common) -> bool {
    !common.quiet && std::io::stderr().is_terminal()
}

/// What a monitored command tells [`monitored`] about itself as it goes,
/// so that even a run failing half-way reports what it was.
#[derive(Default)]
pub struct Job {
    command: String,
    root: Option<String>,
    remote: Option<String>,
    summary: Map<String, Value>,
}

/// Runs a monitored command: writes metrics and notifies afterwards,
/// whether it found discrepancies, found none, or failed.
fn monitored(
    common: &Common,
    alerts: &AlertArgs,
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
        Err(_) => 2,
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
        finished_unix: index::now_unix(),
        last_success_unix: None,
    };
    outcome.last_success_unix = if exit_code == 0 {
        Some(outcome.finished_unix)
    } else {
        last_success(common, &outcome).ok().flatten()
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
fn last_success(common: &Common, o: &RunOutcome) -> Result<Option<i64>> {
    use rusqlite::OptionalExtension;
    let index = Index::open_read_only(&index_path(common))?;
    Ok(index
        .conn
        .query_row(
            "SELECT max(r.finished_at) FROM runs r JOIN roots ON roots.id = r.root_id
             WHERE r.command = ?1 AND CAST(roots.path AS TEXT) = ?2 AND r.remote IS ?3 AND r.exit_code = 0",
            rusqlite::params![o.command, o.root, o.remote],
            |r| r.get(0),
        )
        .optional()?
        .flatten())
}

/// Runs `body` with a report, completing the report as failed on error.
fn with_report(
    common: &Common,
    body: impl FnOnce(&mut Report) -> Result<Outcome>,
) -> Result<Outcome> {
    let mut sink = report(common)?;
    let result = body(&mut sink);
    if let Err(e) = &result {
        let _ = sink.fail(&one_line(e));
    }
    result
}

fn cmd_scan(common: &Common, args: &ScanArgs, job: &mut Job) -> Result<Outcome> {
    job.command = "scan".into();
    job.root = Some(args.root.display().to_string());
    let root = scan::resolve_root(&args.root)?;
    job.root = Some(root.display().to_string());
    if let Some(label) = &args.label {
        validate_label(label)?;
    }
    let mut index = open_index(common)?;
    with_report(common, |sink| {
        let opts = ScanOptions {
            rehash: args.rehash,
            want: Want {
                md5: args.md5,
                sha256: args.sha256,
            },
            label: args.label.clone(),
            progress: show_progress(common),
            command: None,
            shrink_threshold: Some(args.shrink_threshold),
        };
        let summary = scan::scan(&mut index, &root, &opts, sink)?;
        job.summary = summary.to_json(&root);
        sink.finish(&job.summary)?;
        Ok(if summary.discrepancies() > 0 {
            Outcome::Discrepancies
        } else {
            Outcome::Clean
        })
    })
}

fn cmd_audit(common: &Common, args: &AuditArgs, job: &mut Job) -> Result<Outcome> {
    job.command = "audit".into();
    job.root = Some(args.root.display().to_string());
    job.remote = Some(args.remote.clone());
    let root = scan::resolve_root(&args.root)?;
    job.root = Some(root.display().to_string());
    if args.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let remote_opts = RemoteOptions {
        endpoint: args.endpoint.clone(),
        retries: args.retries,
        timeout: Duration::from_secs(args.timeout.max(1)),
    };
    job.remote = remote::identity(&args.remote, &remote_opts).ok();
    let remote = remote::open(&args.remote, &remote_opts)?;
    let mut index = open_index(common)?;
    with_report(common, |sink| {
        let scanned = if args.no_scan {
            None
        } else {
            let opts = ScanOptions {
                want: Want {
                    md5: args.md5,
                    sha256: false,
                },
                progress: show_progress(common),
                shrink_threshold: Some(args.shrink_threshold),
                command: Some("audit".into()),
                ..Default::default()
            };
            Some(scan::scan(&mut index, &root, &opts, sink)?)
        };
        let root_id = match index.find_root(&root)? {
            Some(id) if index.last_scan(id)?.is_some() => id,
            _ => bail!(
                "no manifest of {} in the index; run `vouch scan {}` first (or drop --no-scan)",
                root.display(),
                root.display()
            ),
        };
        let opts = AuditOptions {
            mode: args.mode,
            scrub_budget: args.scrub_budget,
            jobs: args.jobs,
            strict: args.strict,
            progress: show_progress(common),
            min_coverage: args.min_coverage,
            max_age: args.max_age.map(|s| s as i64),
        };
        let summary = audit::audit(&mut index, &root, root_id, &remote, &opts, sink)?;
        let mut json = summary.to_json(&root, &remote.id, args.mode);
        let mut bad = summary.discrepancies(args.strict) > 0;
        if let Some(s) = &scanned {
            bad |= s.discrepancies() > 0;
            // The scan's discrepancies count in the audit's totals too.
            for (kind, n) in [
                (Kind::Unreadable, s.unreadable),
                (Kind::Corrupt, s.corrupt),
                (Kind::Shrunk, s.shrunk),
            ] {
                if n > 0 {
                    let total = json.get(kind.name()).and_then(Value::as_u64).unwrap_or(0) + n;
                    json.insert(kind.name().into(), json!(total));
                }
            }
            json.insert("scan".into(), Value::Object(s.to_json(&root)));
        }
        job.summary = json.clone();
        if bad {
            sink.mark_failing();
        }
        sink.finish(&json)?;
        Ok(if bad {
            Outcome::Discrepancies
        } else {
            Outcome::Clean
        })
    })
}

fn cmd_report(common: &Common, args: &ReportArgs) -> Result<Outcome> {
    let index = Index::open_read_only(&index_path(common))?;
    with_report(common, |sink| {
        history::report(&index, args.run, args.kind, sink)
    })
}

fn cmd_history(common: &Common) -> Result<Outcome> {
    let index = Index::open_read_only(&index_path(common))?;
    let mut text = Vec::new();
    history::history(&index, common.format, &mut text)?;
    match &common.output {
        Some(path) => alert::write_atomically(path, &String::from_utf8_lossy(&text))?,
        None => std::io::stdout().write_all(&text)?,
    }
    Ok(Outcome::Clean)
}

fn cmd_run(common: &Common, args: &RunArgs) -> Result<Outcome> {
    let path = args.config.clone().unwrap_or_else(config::default_path);
    let cfg = config::load(&path)?;
    let names: Vec<String> = match &args.name {
        Some(name) => {
            if !cfg.audit.contains_key(name) {
                let known: Vec<&str> = cfg.audit.keys().map(String::as_str).collect();
                bail!(
                    "config {} has no [audit.{name}] (known: {})",
                    path.display(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                );
            }
            vec![name.clone()]
        }
        None => cfg.audit.keys().cloned().collect(),
    };
    if names.is_empty() {
        bail!("config {} defines no [audit.NAME] section", path.display());
    }
    let mut worst = Outcome::Clean;
    let mut failed = Vec::new();
    for name in &names {
        let a = &cfg.audit[name];
        let mut job_common = common.clone();
        if job_common.index.is_none() {
            job_common.index = cfg.index.clone();
        }
        if a.output.is_some() {
            job_common.output = a.output.clone();
        }
        let audit_args = AuditArgs {
            root: a.root.clone(),
            remote: a.remote.clone(),
            endpoint: a.endpoint.clone(),
            mode: a.mode.unwrap_or(Mode::Quick),
            scrub_budget: match &a.scrub_budget {
                Some(b) => {
                    parse_size(b).map_err(|e| anyhow!("[audit.{name}] scrub_budget: {e}"))?
                }
                None => 10 << 30,
            },
            jobs: a.jobs.unwrap_or(16),
            no_scan: a.no_scan.unwrap_or(false),
            strict: a.strict.unwrap_or(false),
            md5: a.md5.unwrap_or(false),
            retries: a.retries.unwrap_or(4),
            timeout: a.timeout.unwrap_or(60),
            min_coverage: a.min_coverage.unwrap_or(0.99),
            shrink_threshold: a.shrink_threshold.unwrap_or(0.5),
            max_age: match &a.max_age {
                Some(age) => {
                    Some(parse_age(age).map_err(|e| anyhow!("[audit.{name}] max_age: {e}"))?)
                }
                None => None,
            },
            alerts: AlertArgs {
                metrics: a.metrics.clone(),
                notify: a.notify.clone(),
                notify_always: a.notify_always.unwrap_or(false),
            },
        };
        let result = monitored(&job_common, &audit_args.alerts, Some(name), |job| {
            cmd_audit(&job_common, &audit_args, job)
        });
        match result {
            Ok(Outcome::Discrepancies) => worst = Outcome::Discrepancies,
            Ok(Outcome::Clean) => {}
            Err(e) => {
                eprintln!("vouch: audit {name}: {}", one_line(&e));
                failed.push(name.clone());
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} named audits could not run: {}",
            failed.len(),
            names.len(),
            failed.join(", ")
        );
    }
    Ok(worst)
}

/// A label must not look like a run number, so `@N` stays unambiguous.
pub fn validate_label(label: &str) -> Result<()> {
    if label.is_empty() || label.chars().all(|c| c.is_ascii_digit()) || label.contains('/') {
        bail!("label {label:?} must be non-empty, not all digits, and contain no '/'");
    }
    Ok(())
}

/// A spinner with counts and rates on a terminal; hidden otherwise.
pub fn progress_bar(enabled: bool, what: &str) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {what}: {{human_pos}} files ({{per_sec}}) {{msg}} [{{elapsed}}]"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
