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
use crate::hash::Want;
use crate::index::{self, Index, LockWait};
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
