//! Help that shows how: an example in every `--help`, and the man pages
//! (`vouch man`: one page, or `--dir DIR`: `vouch.1` and a `vouch-NAME.1`
//! per subcommand) with EXIT STATUS, ENVIRONMENT, FILES and EXAMPLES.
//!
//! The examples are written once, here: clap prints them under `--help`
//! and the man pages under EXAMPLES.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

pub const SCAN: &str = "Examples:
  vouch scan /srv/data                     update the manifest (incremental)
  vouch scan /srv/data --rehash            hash everything again; rot is `corrupt`
  vouch scan /srv/data --label before-move pin the manifest as @before-move";
pub const AUDIT: &str = "Examples:
  vouch audit /srv/data --remote s3://backups/data
  vouch audit /srv/data --remote /mnt/backup/data --mode deep
  vouch audit /srv/data --remote gs://b/data --dry-run --mode deep
  vouch audit /srv/data --remote s3://b/data --kind missing --format json";
pub const DIFF: &str = "Examples:
  vouch diff /srv/data /mnt/copy           two trees
  vouch diff @before-move /srv/data        a snapshot and a tree
  vouch diff /srv/data SHA256SUMS          a tree and a checksum list";
pub const EXPORT: &str = "Examples:
  vouch export /srv/data --format b3sum --output data.b3
  vouch export /srv/data --format bagit --output /mnt/bag";
pub const VERIFY: &str = "Examples:
  vouch verify /mnt/restore --manifest data.b3
  vouch verify /mnt/restore --manifest SHA256SUMS --kind missing";
pub const REPORT: &str = "Examples:
  vouch report                             the latest finished run
  vouch report --run 42 --format html --output run42.html
  vouch report --run 42 --kind missing --format json";
pub const HISTORY: &str = "Examples:
  vouch history
  vouch history --format json";
pub const ACCEPT: &str = "Examples:
  vouch accept /srv/data tmp/old.log --kind extra --reason \"kept on purpose\" --until 2027-01-31
  vouch accept --list
  vouch accept /srv/data tmp/old.log --remove";
pub const RUN: &str = "Examples:
  vouch run photos                         the [audit.photos] section
  vouch run --all -q                       every audit, for cron
  vouch run --all --config /etc/vouch/vouch.toml --dry-run";
pub const MERGE: &str = "Examples:
  vouch merge shard-*.json --format json --output whole.json
  vouch merge reports/";
pub const COMPLETIONS: &str = "Examples:
  vouch completions bash > /etc/bash_completion.d/vouch";
pub const MAN: &str = "Examples:
  vouch man | man -l -
  vouch man --dir /usr/local/share/man/man1";
pub const MAIN: &str = "Examples:
  vouch audit /srv/data --remote s3://backups/data --mode deep
  vouch run --all -q";

const EXIT_STATUS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
No discrepancy. Read the verdict (the first line, or \fBsummary.status\fR in JSON): \fBunproven\fR also exits 0 (use \fB\-\-strict\fR or \fB\-\-min\-proven\fR).
.TP
\fB1\fR
Discrepancies (damaged), or two trees not proven identical.
.TP
\fB2\fR
Trouble: bad input, an unreachable backup, a failed or interrupted run (also for \fBvouch report\fR of one); one line on stderr.
"#;

const ENVIRONMENT: &str = r#".SH ENVIRONMENT
.TP
\fBVOUCH_INDEX\fR
The index (as \fB\-\-index\fR).
.TP
\fBVOUCH_CONFIG\fR
The config file of \fBvouch run\fR (as \fB\-\-config\fR).
.TP
\fBVOUCH_SHARD\fR
\fIK/N\fR, as \fB\-\-shard\fR.
.TP
\fBVOUCH_PROGRESS_INTERVAL\fR
Seconds between the progress lines written to stderr when it is not a terminal (default 60; none for \fB\-q\fR): files, and bytes as they are read, with a percentage and an ETA where the total is known.
.TP
\fBXDG_DATA_HOME\fR, \fBXDG_CONFIG_HOME\fR, \fBHOME\fR
Where the default index and config file are (see FILES).
.TP
\fBAWS_ENDPOINT_URL\fR, \fBAWS_*\fR, \fBGOOGLE_APPLICATION_CREDENTIALS\fR, \fBAZURE_STORAGE_*\fR
Credentials and endpoints of the object stores.
"#;

const FILES: &str = r#".SH FILES
.TP
\fB$XDG_DATA_HOME/vouch/index.sqlite3\fR (else \fB~/.local/share/vouch/index.sqlite3\fR)
The index of a user with a HOME.
.TP
\fB/var/lib/vouch/index.sqlite3\fR
The index of a system job: no HOME (systemd without \fBUser=\fR), or root (unless root already has one under its HOME).
.TP
\fB$XDG_CONFIG_HOME/vouch/vouch.toml\fR (else \fB~/.config/vouch/vouch.toml\fR; \fB/etc/vouch/vouch.toml\fR for a system job)
The named audits of \fBvouch run\fR. Relative paths in it are relative to its directory.
"#;

/// The example text of a page (`vouch` or `vouch-NAME`).
fn examples_of(name: &str) -> &'static str {
    match name {
        "scan" => SCAN,
        "audit" => AUDIT,
        "diff" => DIFF,
        "export" => EXPORT,
        "verify" => VERIFY,
        "report" => REPORT,
        "history" => HISTORY,
        "accept" => ACCEPT,
        "run" => RUN,
        "merge" => MERGE,
        "completions" => COMPLETIONS,
        "man" => MAN,
        _ => MAIN,
    }
}

/// Escapes text for roff (backslashes, and a leading dot or quote).
fn roff_text(text: &str) -> String {
    text.lines()
        .map(|l| {
            let l = l.replace('\\', "\\e").replace('-', "\\-");
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One man page: clap's sections, then ours.
fn render(cmd: clap::Command, name: &str, out: &mut dyn Write) -> Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(out)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(out)?;
    }
    out.write_all(EXIT_STATUS.as_bytes())?;
    out.write_all(ENVIRONMENT.as_bytes())?;
    out.write_all(FILES.as_bytes())?;
    let examples = examples_of(name);
    let body = examples.strip_prefix("Examples:\n").unwrap_or(examples);
    writeln!(out, ".SH EXAMPLES\n.nf\n{}\n.fi", roff_text(body))?;
    let see: Vec<String> = if name == "vouch" {
        cmd.get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| format!("\\fBvouch\\-{}\\fR(1)", s.get_name()))
            .collect()
    } else {
        vec!["\\fBvouch\\fR(1)".to_string()]
    };
    writeln!(out, ".SH \"SEE ALSO\"\n{}", see.join(", "))?;
    // Subcommands carry no version of their own (clap_mangen would panic).
    if cmd.get_version().is_some() {
        man.render_version_section(out)?;
    }
    Ok(())
}

/// `vouch man`: the main page on stdout, or with `dir` every page
/// (`vouch.1`, `vouch-NAME.1`) written there; returns the files written.
pub fn man(mut cmd: clap::Command, dir: Option<&Path>) -> Result<Vec<std::path::PathBuf>> {
    cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let Some(dir) = dir else {
        render(cmd, "vouch", &mut std::io::stdout().lock())?;
        return Ok(Vec::new());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    let mut pages = vec![("vouch".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let page = format!("vouch-{}", sub.get_name());
        pages.push((page.clone(), sub.clone().display_name(page)));
    }
    for (page, c) in pages {
        let path = dir.join(format!("{page}.1"));
        let mut text = Vec::new();
        render(c, page.strip_prefix("vouch-").unwrap_or(&page), &mut text)?;
        crate::out::atomic::write_atomically(&path, &text)?;
        written.push(path);
    }
    Ok(written)
}
