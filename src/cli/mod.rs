//! The command line: clap types, the config file, and the one resolver
//! that turns both into the settings each command takes.
//!
//! Raw arguments ([`Cli`]) become resolved settings in
//! [`settings::resolve`], in the manner of ripgrep's `HiArgs`: a flag over
//! the environment over the config file over the default, each default
//! written once. `vouch audit` and each `[audit.NAME]` of `vouch run` go
//! through the same [`settings::resolve_audit`], so a flag added once works
//! in both.

pub mod config;
pub mod help;
pub mod settings;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use crate::model::Kind;

#[derive(Debug, Parser)]
#[command(name = "vouch", version, about = "Integrity auditor for files and object stores", long_about = None, after_help = help::MAIN)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub before: Before,
    #[command(subcommand)]
    pub command: Command,
}

/// The options that are truly global: every command that runs reads the
/// index and prints, so these go before or after any subcommand's name.
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// The SQLite index [default: $XDG_DATA_HOME/vouch/index.sqlite3]
    #[arg(long, global = true, env = "VOUCH_INDEX", value_name = "PATH")]
    pub index: Option<PathBuf>,
    /// Print nothing on a clean run; only discrepancies otherwise
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

/// The options each command lists only where they apply (`--threads`
/// under the commands that hash, …), still taken before the subcommand's
/// name as they were when they were global (`vouch --format json scan
/// ROOT`), but not shown there. After the name wins.
#[derive(Debug, Args, Clone, Default)]
pub struct Before {
    #[arg(long = "format", value_enum, value_name = "FORMAT", hide = true)]
    pub format: Option<FormatArg>,
    #[arg(long, value_name = "FILE|URL", hide = true)]
    pub output: Option<PathBuf>,
    #[arg(long, value_name = "N", hide = true)]
    pub threads: Option<usize>,
    #[arg(long, hide = true)]
    pub wait: bool,
}

/// `--threads`, for the commands that hash.
#[derive(Debug, Args, Clone, Default)]
pub struct Threads {
    /// Worker threads for hashing [default: number of cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// `--wait`, for the commands that write the index.
#[derive(Debug, Args, Clone, Default)]
pub struct Wait {
    /// Wait for another run holding the index lock instead of failing
    #[arg(long)]
    pub wait: bool,
}

/// `--format` and `--output` of the commands that write a report.
#[derive(Debug, Args, Clone, Default)]
pub struct ReportTo {
    /// The report's format [default: table]
    #[arg(long = "format", value_name = "FORMAT", value_parser = formats(REPORT_FORMATS))]
    pub format: Option<FormatArg>,
    /// Write the report to FILE (atomically) instead of stdout, or to an
    /// object: s3://bucket/key, gs://…, az://… (never inside the audited backup)
    #[arg(long, value_name = "FILE|URL")]
    pub output: Option<PathBuf>,
}

/// What `--format` offers where a report is written.
const REPORT_FORMATS: &[FormatArg] = &[
    FormatArg::Table,
    FormatArg::Json,
    FormatArg::Jsonl,
    FormatArg::Csv,
    FormatArg::Html,
];
/// `vouch history`: a list of runs, no report page.
const HISTORY_FORMATS: &[FormatArg] = &[
    FormatArg::Table,
    FormatArg::Json,
    FormatArg::Jsonl,
    FormatArg::Csv,
];
/// `vouch accept --list`: lines or one JSON document.
const ACCEPT_FORMATS: &[FormatArg] = &[FormatArg::Table, FormatArg::Json];
/// `vouch export`: the manifest written.
const EXPORT_FORMATS: &[FormatArg] = &[
    FormatArg::B3sum,
    FormatArg::Sha256sum,
    FormatArg::Bagit,
    FormatArg::Json,
];

/// A `--format` that offers (in `--help`, completions and its error) only
/// the values of `allowed`.
fn formats(
    allowed: &'static [FormatArg],
) -> impl clap::builder::TypedValueParser<Value = FormatArg> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(
        allowed.iter().filter_map(ValueEnum::to_possible_value),
    )
    .try_map(|name| <FormatArg as ValueEnum>::from_str(&name, false))
}

/// The per-command options of one command line: given after the
/// subcommand's name, else before it ([`Before`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandOptions {
    pub format: Option<FormatArg>,
    pub output: Option<PathBuf>,
    pub threads: Option<usize>,
    pub wait: bool,
}

impl Cli {
    /// [`CommandOptions`] of this command line.
    pub fn options(&self) -> CommandOptions {
        let (report, threads, wait): (_, Option<&Threads>, Option<&Wait>) = match &self.command {
            Command::Scan(a) => (
                (a.report.format, a.report.output.as_ref()),
                Some(&a.threads),
                Some(&a.wait),
            ),
            Command::Audit(a) => (
                (a.report.format, a.report.output.as_ref()),
                Some(&a.threads),
                Some(&a.wait),
            ),
            Command::Diff(a) => (
                (a.report.format, a.report.output.as_ref()),
                Some(&a.threads),
                Some(&a.wait),
            ),
            Command::Export(a) => (
                (a.format, a.output.as_ref()),
                Some(&a.threads),
                Some(&a.wait),
            ),
            Command::Verify(a) => (
                (a.report.format, a.report.output.as_ref()),
                Some(&a.threads),
                Some(&a.wait),
            ),
            Command::Report(a) => ((a.report.format, a.report.output.as_ref()), None, None),
            Command::History(a) => ((a.format, a.output.as_ref()), None, None),
            Command::Accept(a) => ((a.format, None), None, Some(&a.wait)),
            Command::Run(a) => (
                (a.report.format, a.report.output.as_ref()),
                Some(&a.threads),
                Some(&a.wait),
            ),
            Command::Merge(a) => ((a.report.format, a.report.output.as_ref()), None, None),
            Command::Completions { .. } | Command::Man { .. } | Command::DebugPanic => {
                ((None, None), None, None)
            }
        };
        let b = &self.before;
        CommandOptions {
            format: report.0.or(b.format),
            output: report.1.cloned().or_else(|| b.output.clone()),
            threads: threads.and_then(|t| t.threads).or(b.threads),
            wait: wait.is_some_and(|w| w.wait) || b.wait,
        }
    }
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
    /// A self-contained HTML page
    Html,
    B3sum,
    Sha256sum,
    Bagit,
}

// Parsed once per process: the size of the audit's flags is no cost worth
// boxing them (and the config file shares `AuditArgs`).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Update the manifest of ROOT (incremental)
    #[command(after_help = help::SCAN)]
    Scan(ScanArgs),
    /// Scan ROOT, then diff its manifest against a remote (S3, GCS, Azure, a directory)
    #[command(after_help = help::AUDIT)]
    Audit(AuditCommand),
    /// Compare two trees, snapshots (@NAME, @RUN) or manifest files
    #[command(after_help = help::DIFF)]
    Diff(DiffArgs),
    /// Write a portable manifest of ROOT (--format b3sum|sha256sum|bagit|json)
    #[command(after_help = help::EXPORT)]
    Export(ExportArgs),
    /// Check ROOT against an exported manifest (b3sum, sha256sum or json)
    #[command(after_help = help::VERIFY)]
    Verify(VerifyArgs),
    /// Re-print the findings of a past run from the index
    #[command(after_help = help::REPORT)]
    Report(ReportArgs),
    /// List past runs with their counters
    #[command(after_help = help::HISTORY)]
    History(HistoryArgs),
    /// Accept a known discrepancy, with a reason, until it changes (--list, --remove)
    #[command(after_help = help::ACCEPT)]
    Accept(AcceptArgs),
    /// Run named audits from the config file (for cron)
    #[command(after_help = help::RUN)]
    Run(RunArgs),
    /// Merge the JSON reports of the N shards of one run (--shard K/N)
    /// into the report of the whole: every shard 0..N-1 exactly once
    #[command(after_help = help::MERGE)]
    Merge(MergeArgs),
    /// Print a shell completion script
    #[command(after_help = help::COMPLETIONS)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write every page to a directory
    #[command(after_help = help::MAN)]
    Man {
        /// Write vouch.1 and a vouch-NAME.1 per subcommand here
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Panic on purpose, in a worker thread and then here: tests that a
    /// panic is one line on stderr and exit 2
    #[command(hide = true)]
    DebugPanic,
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
    pub manifest_format: Option<ManifestFormatArg>,
    /// List only findings of this kind (e.g. missing, corrupt); the verdict,
    /// the summary and the exit status stay the whole run's
    #[arg(long, value_name = "KIND", value_parser = parse_kind)]
    pub kind: Option<Kind>,
    #[command(flatten)]
    pub report: ReportTo,
    #[command(flatten)]
    pub threads: Threads,
    #[command(flatten)]
    pub wait: Wait,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The tree to export (scanned first)
    pub root: PathBuf,
    /// The manifest written (required)
    #[arg(long = "format", value_name = "FORMAT", value_parser = formats(EXPORT_FORMATS))]
    pub format: Option<FormatArg>,
    /// Write the manifest to FILE (a BagIt bag: to the folder DIR) instead
    /// of stdout, or to an object: s3://bucket/key, gs://…, az://…
    #[arg(long, value_name = "FILE|DIR|URL")]
    pub output: Option<PathBuf>,
    /// Only the files of shard K of N (see `vouch scan --shard`)
    #[arg(long, value_name = "K/N", env = "VOUCH_SHARD")]
    pub shard: Option<String>,
    /// BagIt: copy the payload instead of hard-linking it
    #[arg(long)]
    pub copy: bool,
    /// Hash every file again before exporting, trusting no metadata
    #[arg(long)]
    pub rehash: bool,
    #[command(flatten)]
    pub threads: Threads,
    #[command(flatten)]
    pub wait: Wait,
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
    pub manifest_format: Option<ManifestFormatArg>,
    /// List only findings of this kind (e.g. missing, corrupt); the verdict,
    /// the summary and the exit status stay the whole run's
    #[arg(long, value_name = "KIND", value_parser = parse_kind)]
    pub kind: Option<Kind>,
    #[command(flatten)]
    pub report: ReportTo,
    #[command(flatten)]
    pub threads: Threads,
    #[command(flatten)]
    pub wait: Wait,
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
    #[arg(long, value_name = "FRACTION", default_value = "0.5")]
    pub shrink_threshold: Fraction,
    /// Only the files of shard K of N (0-based; `auto/N` takes K from the
    /// scheduler's array index); one index per shard
    #[arg(long, value_name = "K/N", env = "VOUCH_SHARD")]
    pub shard: Option<String>,
    /// Structural checks of new and changed files (`damaged`): none; fast
    /// (headers, trailers, structure); full (also decompress and verify
    /// every checksum, up to --checks-budget bytes) [default: fast]
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub checks: Option<ChecksArg>,
    /// Bytes the `full` checks may read per run (e.g. 50G); a file that
    /// does not fit gets the fast check [default: 10G]
    #[arg(long, value_name = "SIZE")]
    pub checks_budget: Option<Size>,
    #[command(flatten)]
    pub excludes: ExcludeArgs,
    #[command(flatten)]
    pub alerts: AlertArgs,
    #[command(flatten)]
    pub report: ReportTo,
    #[command(flatten)]
    pub threads: Threads,
    #[command(flatten)]
    pub wait: Wait,
}

/// What a scan leaves out (`vouch audit` has the same three options, which
/// its config section takes as well). A `.vouchignore` in any directory of
/// ROOT applies always.
#[derive(Debug, Args, Clone, Default)]
pub struct ExcludeArgs {
    /// Leave out paths matching GLOB (gitignore syntax: `*.tmp`, `cache/`, `/top`); repeatable
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Compare only files matching GLOB (gitignore syntax); repeatable
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Read exclude globs from FILE, one a line (gitignore syntax); repeatable
    #[arg(long, value_name = "FILE")]
    pub exclude_from: Vec<PathBuf>,
}

/// `vouch audit`: the options of one audit, and those of the command line
/// alone (a config section has its own `output`).
#[derive(Debug, Args, Clone, Default)]
pub struct AuditCommand {
    #[command(flatten)]
    pub audit: AuditArgs,
    #[command(flatten)]
    pub report: ReportTo,
    #[command(flatten)]
    pub threads: Threads,
    #[command(flatten)]
    pub wait: Wait,
}

/// The options of one audit: `vouch audit`'s flags, and equally the keys of
/// an `[audit.NAME]` section of the config file (unknown keys are errors).
/// Options with a default are `None` here; [`settings::resolve_audit`]
/// gives each its default, once.
#[derive(Debug, Args, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditArgs {
    /// The tree whose manifest is audited
    #[arg(required = true, value_name = "ROOT")]
    pub root: Option<PathBuf>,
    /// A backup given where ROOT's second operand would be (`vouch audit
    /// ROOT BACKUP`): refused with a hint to use `--remote`.
    #[arg(hide = true, value_name = "BACKUP")]
    #[serde(skip)]
    pub misplaced_remote: Option<String>,
    /// The backup: s3://bucket/prefix, gs://bucket/prefix, az://container/prefix,
    /// file:///abs/path or a directory path
    #[arg(long, value_name = "URL", required_unless_present = "misplaced_remote")]
    pub remote: Option<String>,
    /// Endpoint of an S3-compatible server (else AWS_ENDPOINT_URL, else
    /// the profile's endpoint_url)
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// AWS profile of ~/.aws/credentials and ~/.aws/config for s3://
    /// remotes: its credentials (keys, role_arn, SSO, credential_process),
    /// region and endpoint_url [default: AWS_PROFILE, else `default`]
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// quick: listing only; deep: read every object not yet verified;
    /// scrub: quick plus re-reads up to --scrub-budget [default: quick]
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Bytes to re-read per scrub run (e.g. 50G) [default: 10G]
    #[arg(long, value_name = "SIZE")]
    pub scrub_budget: Option<Size>,
    /// Objects downloaded at once [default: 16]
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Audit the manifest as it is, without scanning ROOT first
    #[arg(long)]
    #[serde(default)]
    pub no_scan: bool,
    /// Count `unverified` objects as discrepancies (exit 1)
    #[arg(long)]
    #[serde(default)]
    pub strict: bool,
    /// List and compare without reading any object; say what a deep or a
    /// scrub run would read (objects, bytes, requests)
    #[arg(long)]
    #[serde(default)]
    pub dry_run: bool,
    /// Objects only on the backup are `backup_only`, not `extra`: for a
    /// backup that keeps more than the source (retention)
    #[arg(long)]
    #[serde(default)]
    pub one_way: bool,
    /// Leave out paths matching GLOB on both sides (gitignore syntax:
    /// `*.tmp`, `cache/`, `/top`); repeatable
    #[arg(long, value_name = "GLOB")]
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Compare only files matching GLOB (gitignore syntax); repeatable
    #[arg(long, value_name = "GLOB")]
    #[serde(default)]
    pub include: Vec<String>,
    /// Read exclude globs from FILE, one a line (gitignore syntax); repeatable
    #[arg(long, value_name = "FILE")]
    #[serde(default)]
    pub exclude_from: Vec<PathBuf>,
    /// Record MD5s while scanning, so single-part S3 ETags verify without downloads
    #[arg(long)]
    #[serde(default)]
    pub md5: bool,
    /// Listing only: do not ask the store for its stored checksums (no HEAD
    /// requests); objects not read earlier stay `unverified`
    #[arg(long)]
    #[serde(default)]
    pub no_head: bool,
    /// Retries of a failed request (exponential backoff) [default: 4]
    #[arg(long, value_name = "N")]
    pub retries: Option<usize>,
    /// Seconds to wait for any network read before giving up on it [default: 60]
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Report `low_coverage` when the remote holds less than this fraction
    /// of the manifest's files or bytes (`remote_empty` when it holds
    /// nothing) [default: 0.99]
    #[arg(long, value_name = "FRACTION")]
    pub min_coverage: Option<Fraction>,
    /// The verdict is `proven` only when at least this fraction of the
    /// manifest's files and bytes is proven identical (read in full, now or
    /// in an earlier run, or matched by MD5 ETag); below it a clean audit
    /// is `unproven`, which `-q` prints [default: 1.0]
    #[arg(long, value_name = "FRACTION")]
    pub min_proven: Option<Fraction>,
    /// Report `shrunk` when a file (of 1 KiB or more) loses more than this
    /// fraction of its size [default: 0.5]
    #[arg(long, value_name = "FRACTION")]
    pub shrink_threshold: Option<Fraction>,
    /// Report `stale` when the newest object, or a file's copy relative to
    /// the file, is older than this (e.g. 26h, 7d)
    #[arg(long, value_name = "AGE")]
    pub max_age: Option<Age>,
    /// Take the listing from this S3 Inventory report instead of listing
    /// the remote: a destination folder (s3://DEST/PREFIX/BUCKET/CONFIG/,
    /// its newest report is used) or one manifest.json, a URL or a path
    #[arg(long, value_name = "URL")]
    pub inventory: Option<String>,
    /// A file changed within this long before the inventory was taken, or
    /// after, is not judged by it (default 1h)
    #[arg(long, value_name = "AGE")]
    pub inventory_grace: Option<Age>,
    /// Only the keys of shard K of N (0-based; `auto/N` takes K from
    /// JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID, AWS_BATCH_JOB_ARRAY_INDEX,
    /// NOMAD_ALLOC_INDEX or PARALLEL_SEQ-1); one index per shard, merged
    /// by `vouch merge`
    #[arg(long, value_name = "K/N", env = "VOUCH_SHARD")]
    pub shard: Option<String>,
    /// Structural checks of new and changed files while scanning
    /// (`damaged`): none, fast or full [default: fast]
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub checks: Option<ChecksArg>,
    /// Bytes the `full` checks may read per run (e.g. 50G) [default: 10G]
    #[arg(long, value_name = "SIZE")]
    pub checks_budget: Option<Size>,
    /// Write Prometheus metrics to FILE (atomically; for node_exporter's textfile collector)
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// POST {"text": ...} to URL when the run finds discrepancies or fails
    #[arg(long, value_name = "URL")]
    pub notify: Option<String>,
    /// Notify on every run, clean ones too
    #[arg(long, requires = "notify")]
    #[serde(default)]
    pub notify_always: bool,
    /// (config file only) write this audit's report to a file
    #[arg(skip)]
    pub output: Option<PathBuf>,
    /// List only findings of this kind (e.g. missing, corrupt); the verdict,
    /// the summary and the exit status stay the whole run's
    #[arg(long, value_name = "KIND", value_parser = parse_kind)]
    #[serde(skip)]
    pub kind: Option<Kind>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Shard reports (json or jsonl), folders holding them, or object-store
    /// URLs: one report, or a prefix (`s3://b/run/`) whose reports are read
    #[arg(required = true, value_name = "REPORT|DIR|URL")]
    pub reports: Vec<PathBuf>,
    /// Override the shards' --min-coverage
    #[arg(long, value_name = "FRACTION")]
    pub min_coverage: Option<Fraction>,
    /// Override the shards' --max-age
    #[arg(long, value_name = "AGE")]
    pub max_age: Option<Age>,
    /// Count `unverified` as a discrepancy (exit 1)
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub alerts: AlertArgs,
    #[command(flatten)]
    pub report: ReportTo,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run to show [default: the latest finished run]
    #[arg(long, value_name = "N")]
    pub run: Option<i64>,
    /// List only findings of this kind (not `unverified`: a run stores only
    /// their count); the exit status stays the whole run's
    #[arg(long, value_name = "KIND", value_parser = parse_kind)]
    pub kind: Option<Kind>,
    #[command(flatten)]
    pub report: ReportTo,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The list's format [default: table]
    #[arg(long = "format", value_name = "FORMAT", value_parser = formats(HISTORY_FORMATS))]
    pub format: Option<FormatArg>,
    /// Write the list to FILE (atomically) instead of stdout
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AcceptArgs {
    /// The tree whose finding is accepted
    #[arg(required_unless_present = "list", value_name = "ROOT")]
    pub root: Option<PathBuf>,
    /// Paths as a report prints them (relative to ROOT)
    #[arg(required_unless_present = "list", value_name = "PATH")]
    pub paths: Vec<String>,
    /// The kind of the finding (e.g. extra, missing)
    #[arg(long, value_name = "KIND", value_parser = parse_kind, required_unless_present_any = ["list", "remove"])]
    pub kind: Option<Kind>,
    /// Why it is accepted (shown with every report of it)
    #[arg(long, value_name = "TEXT", required_unless_present_any = ["list", "remove"])]
    pub reason: Option<String>,
    /// Accepted until the end of DATE (YYYY-MM-DD, UTC) or until an RFC 3339 time
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
    /// List the accepted findings (of ROOT, or of every root)
    #[arg(long, conflicts_with_all = ["remove", "kind", "reason", "until"])]
    pub list: bool,
    /// Forget the acceptances of PATH… (of --kind, or of any kind)
    #[arg(long, conflicts_with_all = ["reason", "until"])]
    pub remove: bool,
    /// The format of --list [default: table]
    #[arg(long = "format", value_name = "FORMAT", value_parser = formats(ACCEPT_FORMATS))]
    pub format: Option<FormatArg>,
    #[command(flatten)]
    pub wait: Wait,
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
    /// Each audit as `vouch audit --dry-run`: read no object, say what would be read
    #[arg(long)]
    pub dry_run: bool,
    /// Run shard K of N of each audit (over a section's `shard`); `{shard}`
    /// in the section's `index` and `output` (and in --index, --output)
    /// becomes K, so the shards of one host never share a file
    #[arg(long, value_name = "K/N", env = "VOUCH_SHARD")]
    pub shard: Option<String>,
    #[command(flatten)]
    pub report: ReportTo,
    #[command(flatten)]
    pub threads: Threads,
    #[command(flatten)]
    pub wait: Wait,
}

/// `--checks` and `checks = "…"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksArg {
    /// No structural checks.
    None,
    /// Headers, trailers and structure (cheap).
    Fast,
    /// Also decompress and verify every checksum.
    Full,
}

/// `--mode` and `mode = "…"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeArg {
    /// Listing only: sizes, cached verifications and MD5 ETags decide.
    Quick,
    /// Read every object not yet verified at its current ETag.
    Deep,
    /// Quick, plus re-read the least recently verified objects up to
    /// `--scrub-budget` bytes.
    Scrub,
}

/// `--manifest-format`: the kind of a checksum list, when its name does
/// not tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ManifestFormatArg {
    /// `b3sum` output: BLAKE3 per regular file.
    B3sum,
    /// `sha256sum` output: SHA-256 per regular file.
    Sha256sum,
    /// vouch's json manifest (`vouch export --format json`).
    Json,
}

/// A byte size: `1024`, `64K`, `500MiB`, `10G`, `2TB` (powers of 1024), on
/// the command line and in the config file alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

/// A fraction between 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fraction(pub f64);

/// An age like `26h` or `7d`, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Age(pub u64);

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(text: &str) -> Result<Size, String> {
        parse_size(text).map(Size)
    }
}

impl std::str::FromStr for Fraction {
    type Err = String;
    fn from_str(text: &str) -> Result<Fraction, String> {
        match text.parse::<f64>() {
            Ok(f) if (0.0..=1.0).contains(&f) => Ok(Fraction(f)),
            _ => Err(format!("{text:?} is not a fraction between 0 and 1")),
        }
    }
}

impl std::str::FromStr for Age {
    type Err = String;
    fn from_str(text: &str) -> Result<Age, String> {
        humantime::parse_duration(text)
            .map(|d| Age(d.as_secs()))
            .map_err(|e| format!("{text:?} is not an age (e.g. 26h, 7d): {e}"))
    }
}

/// The config file holds sizes and ages as strings, fractions as numbers;
/// each is checked by the same parser as on the command line.
macro_rules! deserialize_via_from_str {
    ($t:ty) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Raw {
                    Text(String),
                    Int(u64),
                    Float(f64),
                }
                let text = match Raw::deserialize(d)? {
                    Raw::Text(t) => t,
                    Raw::Int(n) => n.to_string(),
                    Raw::Float(f) => f.to_string(),
                };
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
deserialize_via_from_str!(Size);
deserialize_via_from_str!(Fraction);
deserialize_via_from_str!(Age);

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

fn parse_kind(text: &str) -> Result<Kind, String> {
    Kind::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown kind {text:?} (one of {})", names.join(", "))
    })
}
