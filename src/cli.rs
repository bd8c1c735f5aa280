//! The command line: clap definitions and dispatch to the stages.
//!
//! Every command returns an [`Outcome`] or an error; `main` maps them to
//! the exit status (0 clean, 1 discrepancies, 2 trouble), the way diff(1)
//! and ripgrep do. An error is printed as one line naming what failed.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::Outcome;
use crate::audit::{self, AuditOptions, Mode};
use crate::hash::Want;
use crate::index::{self, Index, LockWait};
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
#[derive(Debug, Args)]
pub struct Common {
    /// The SQLite index [default: $XDG_DATA_HOME/vouch/index.sqlite3]
    #[arg(long, global = true, env = "VOUCH_INDEX", value_name = "PATH")]
    pub index: Option<PathBuf>,
    /// Output format
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Update the manifest of ROOT (incremental)
    Scan(ScanArgs),
    /// Scan ROOT, then diff its manifest against a remote (S3, GCS, Azure, a directory)
    Audit(AuditArgs),
}

#[derive(Debug, Args)]
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
}

#[derive(Debug, Args)]
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

/// Runs the command line and returns the process exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Outcome::Clean) => ExitCode::from(0),
        Ok(Outcome::Discrepancies) => ExitCode::from(1),
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("vouch: {msg}");
            ExitCode::from(2)
        }
    }
}

pub fn run(cli: Cli) -> Result<Outcome> {
    let common = &cli.common;
    if let Some(n) = common.threads {
        if n == 0 {
            anyhow::bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| anyhow::anyhow!("cannot start {n} threads: {e}"))?;
    }
    match &cli.command {
        Command::Scan(args) => cmd_scan(common, args),
        Command::Audit(args) => cmd_audit(common, args),
    }
}

fn index_path(common: &Common) -> PathBuf {
    common.index.clone().unwrap_or_else(index::default_path)
}

fn open_index(common: &Common) -> Result<Index> {
    let wait = if common.wait {
        LockWait::Yes
    } else {
        LockWait::No
    };
    Index::open(&index_path(common), wait)
}

fn report(common: &Common) -> Result<Report> {
    Report::new(common.format, common.quiet, common.output.as_deref())
}

fn show_progress(common: &Common) -> bool {
    !common.quiet && std::io::stderr().is_terminal()
}

fn cmd_scan(common: &Common, args: &ScanArgs) -> Result<Outcome> {
    let root = scan::resolve_root(&args.root)?;
    if let Some(label) = &args.label {
        validate_label(label)?;
    }
    let mut index = open_index(common)?;
    let mut sink = report(common)?;
    let opts = ScanOptions {
        rehash: args.rehash,
        want: Want {
            md5: args.md5,
            sha256: args.sha256,
        },
        label: args.label.clone(),
        progress: show_progress(common),
        command: None,
    };
    let summary = scan::scan(&mut index, &root, &opts, &mut sink)?;
    sink.finish(&summary.to_json(&root))?;
    Ok(if summary.discrepancies() > 0 {
        Outcome::Discrepancies
    } else {
        Outcome::Clean
    })
}

fn cmd_audit(common: &Common, args: &AuditArgs) -> Result<Outcome> {
    let root = scan::resolve_root(&args.root)?;
    if args.jobs == 0 {
        anyhow::bail!("--jobs must be at least 1");
    }
    let remote = remote::open(
        &args.remote,
        &RemoteOptions {
            endpoint: args.endpoint.clone(),
            retries: args.retries,
            timeout: std::time::Duration::from_secs(args.timeout.max(1)),
        },
    )?;
    let mut index = open_index(common)?;
    let mut sink = report(common)?;
    let scanned = if args.no_scan {
        None
    } else {
        let opts = ScanOptions {
            want: Want {
                md5: args.md5,
                sha256: false,
            },
            progress: show_progress(common),
            command: Some("audit".into()),
            ..Default::default()
        };
        Some(scan::scan(&mut index, &root, &opts, &mut sink)?)
    };
    let root_id = match index.find_root(&root)? {
        Some(id) if index.last_scan(id)?.is_some() => id,
        _ => anyhow::bail!(
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
    };
    let summary = audit::audit(&mut index, &root, root_id, &remote, &opts, &mut sink)?;
    let mut json = summary.to_json(&root, &remote.id, args.mode);
    let mut bad = summary.discrepancies(args.strict) > 0;
    if let Some(s) = &scanned {
        bad |= s.discrepancies() > 0;
        json.insert("scan".into(), serde_json::Value::Object(s.to_json(&root)));
    }
    sink.finish(&json)?;
    Ok(if bad {
        Outcome::Discrepancies
    } else {
        Outcome::Clean
    })
}

/// A label must not look like a run number, so `@N` stays unambiguous.
pub fn validate_label(label: &str) -> Result<()> {
    if label.is_empty() || label.chars().all(|c| c.is_ascii_digit()) || label.contains('/') {
        anyhow::bail!("label {label:?} must be non-empty, not all digits, and contain no '/'");
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
            "{{spinner}} {what}: {{human_pos}} entries ({{per_sec}}) {{msg}} [{{elapsed}}]"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}
