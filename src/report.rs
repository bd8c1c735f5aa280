//! Reports: findings and summaries in the chosen format, as they happen.
//!
//! Every command writes through a [`Sink`], so every format is available
//! everywhere and streams: `jsonl` emits a line per finding the moment it
//! is found, `json` streams the `findings` array and closes the document
//! with the `summary`. JSON is the contract for scripts; its shape is
//! pinned by tests and documented in the README.
//!
//! `--quiet` drops changes (added/modified/deleted/unverified) and prints
//! nothing at all on a run without discrepancies, so cron mails only when
//! something is wrong. `--output FILE` writes to a temporary file renamed
//! into place at the end, so a reader never sees half a report.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

use crate::finding::{Finding, Kind};
use crate::paths;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Jsonl,
    Csv,
}

/// Where findings go.
pub trait Sink {
    fn finding(&mut self, f: &Finding) -> Result<()>;
    /// Writes the summary and completes the report.
    fn finish(&mut self, summary: &Map<String, Value>) -> Result<()>;
}

/// A finding as JSON: the stable shape of every format.
pub fn finding_json(f: &Finding) -> Value {
    let mut obj = Map::new();
    obj.insert("kind".into(), json!(f.kind.name()));
    obj.insert("path".into(), json!(paths::display(&f.path)));
    if let Some(v) = &f.local {
        obj.insert("local".into(), v.clone());
    }
    if let Some(v) = &f.remote {
        obj.insert("remote".into(), v.clone());
    }
    if let Some(t) = f.first_seen {
        obj.insert("first_seen".into(), json!(format_time(t)));
    }
    if let Some(d) = &f.detail {
        obj.insert("detail".into(), json!(d));
    }
    Value::Object(obj)
}

/// Unix seconds as RFC 3339 UTC (`2026-03-01T02:22:00Z`).
pub fn format_time(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// How many changes of one kind the table format lists before it folds the
/// rest into a count (the JSON formats always list every finding).
const TABLE_CHANGES_SHOWN: usize = 20;

/// The standard sink: one of the formats, to stdout or a file.
pub struct Report {
    format: Format,
    quiet: bool,
    out: Box<dyn Write>,
    /// `--output FILE`: the temporary file and its final name.
    output: Option<(PathBuf, PathBuf)>,
    started: bool,
    discrepancies: u64,
    shown: BTreeMap<Kind, usize>,
    folded: BTreeMap<Kind, usize>,
    csv_header_written: bool,
}

impl Report {
    pub fn new(format: Format, quiet: bool, output: Option<&Path>) -> Result<Report> {
        let (out, output): (Box<dyn Write>, _) = match output {
            None => (Box::new(io::BufWriter::new(io::stdout())), None),
            Some(path) => {
                let mut tmp = path.as_os_str().to_owned();
                tmp.push(".partial");
                let tmp = PathBuf::from(tmp);
                let file = std::fs::File::create(&tmp)
                    .with_context(|| format!("cannot write {}", tmp.display()))?;
                (
                    Box::new(io::BufWriter::new(file)),
                    Some((tmp, path.to_path_buf())),
                )
            }
        };
        Ok(Report {
            format,
            quiet,
            out,
            output,
            started: false,
            discrepancies: 0,
            shown: BTreeMap::new(),
            folded: BTreeMap::new(),
            csv_header_written: false,
        })
    }

    fn csv_row(&mut self, row: [String; 6]) -> Result<()> {
        let mut w = csv::Writer::from_writer(Vec::new());
        if !self.csv_header_written {
            w.write_record(["kind", "path", "detail", "first_seen", "local", "remote"])?;
            self.csv_header_written = true;
        }
        w.write_record(&row)?;
        let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("csv: {e}"))?;
        self.out.write_all(&bytes)?;
        Ok(())
    }
}

fn opt_json(v: &Option<Value>) -> String {
    v.as_ref().map(|v| v.to_string()).unwrap_or_default()
}

impl Sink for Report {
    fn finding(&mut self, f: &Finding) -> Result<()> {
        if f.kind.is_discrepancy() {
            self.discrepancies += 1;
        } else if self.quiet {
            return Ok(());
        }
        match self.format {
            Format::Json => {
                let sep = if self.started {
                    ",\n"
                } else {
                    "{\"findings\":[\n"
                };
                self.started = true;
                write!(self.out, "{sep}{}", finding_json(f))?;
            }
            Format::Jsonl => {
                writeln!(self.out, "{}", finding_json(f))?;
                self.out.flush()?;
            }
            Format::Csv => {
                self.csv_row([
                    f.kind.name().to_string(),
                    paths::display(&f.path),
                    f.detail.clone().unwrap_or_default(),
                    f.first_seen.map(format_time).unwrap_or_default(),
                    opt_json(&f.local),
                    opt_json(&f.remote),
                ])?;
            }
            Format::Table => {
                if !f.kind.is_discrepancy() {
                    let shown = self.shown.entry(f.kind).or_default();
                    if *shown >= TABLE_CHANGES_SHOWN {
                        *self.folded.entry(f.kind).or_default() += 1;
                        return Ok(());
                    }
                    *shown += 1;
                }
                let mut line = format!("{:<14} {}", f.kind.name(), paths::display(&f.path));
                if let Some(d) = &f.detail {
                    line.push_str("  (");
                    line.push_str(d);
                    line.push(')');
                }
                if let Some(t) = f.first_seen {
                    line.push_str(&format!("  since {}", format_time(t)));
                }
                writeln!(self.out, "{line}")?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, summary: &Map<String, Value>) -> Result<()> {
        let silent = self.quiet && self.discrepancies == 0;
        if !silent {
            match self.format {
                Format::Json => {
                    let head = if self.started {
                        "\n]"
                    } else {
                        "{\"findings\":[]"
                    };
                    writeln!(
                        self.out,
                        "{head},\"summary\":{}}}",
                        Value::Object(summary.clone())
                    )?;
                }
                Format::Jsonl => {
                    let mut line = Map::new();
                    line.insert("kind".into(), json!("summary"));
                    line.extend(summary.clone());
                    writeln!(self.out, "{}", Value::Object(line))?;
                }
                Format::Csv => {
                    self.csv_row([
                        "summary".into(),
                        String::new(),
                        Value::Object(summary.clone()).to_string(),
                        String::new(),
                        String::new(),
                        String::new(),
                    ])?;
                }
                Format::Table => {
                    for (kind, n) in &self.folded {
                        writeln!(self.out, "… and {n} more {kind} (see --format json)")?;
                    }
                    write_table_summary(&mut self.out, summary)?;
                }
            }
        }
        self.publish()
    }
}

impl Report {
    /// Flushes, and with `--output` moves the finished file into place.
    fn publish(&mut self) -> Result<()> {
        self.out.flush()?;
        if let Some((tmp, path)) = self.output.take() {
            std::fs::rename(&tmp, &path)
                .with_context(|| format!("cannot move report into {}", path.display()))?;
        }
        Ok(())
    }

    /// Marks the run as failing (exit 1) even without a discrepancy kind —
    /// `unverified` under `--strict`, a diff that cannot prove two trees
    /// identical — so `--quiet` still prints its summary.
    pub fn mark_failing(&mut self) {
        self.discrepancies = self.discrepancies.max(1);
    }

    /// Completes the report of a run that failed (exit 2): the JSON
    /// formats stay parseable and say why; the table format leaves the
    /// one-line error on stderr to speak for itself.
    pub fn fail(&mut self, error: &str) -> Result<()> {
        match self.format {
            Format::Json => {
                let head = if self.started {
                    "\n]"
                } else {
                    "{\"findings\":[]"
                };
                writeln!(self.out, "{head},\"error\":{}}}", json!(error))?;
            }
            Format::Jsonl => writeln!(self.out, "{}", json!({"kind": "error", "detail": error}))?,
            Format::Csv => self.csv_row([
                "error".into(),
                String::new(),
                error.to_string(),
                String::new(),
                String::new(),
                String::new(),
            ])?,
            Format::Table => {}
        }
        self.publish()
    }
}

/// The summary for people: what ran, then the counters that are not zero,
/// discrepancies first.
fn write_table_summary(out: &mut dyn Write, summary: &Map<String, Value>) -> io::Result<()> {
    let text = |k: &str| summary.get(k).and_then(Value::as_str);
    let mut head = format!("vouch {}", text("command").unwrap_or("run"));
    if let Some(root) = text("root") {
        head.push_str(&format!(" {root}"));
    }
    if let Some(remote) = text("remote") {
        head.push_str(&format!(" against {remote}"));
    }
    if let Some(mode) = text("mode") {
        head.push_str(&format!(" ({mode})"));
    }
    if let Some(run) = summary.get("run") {
        head.push_str(&format!(", run {run}"));
    }
    writeln!(out, "{head}")?;
    let discrepancies: Vec<String> = Kind::ALL
        .iter()
        .filter(|k| k.is_discrepancy())
        .filter_map(|k| {
            let n = summary.get(k.name())?.as_u64()?;
            (n > 0).then(|| format!("{n} {}", k.name()))
        })
        .collect();
    if discrepancies.is_empty() {
        writeln!(out, "  no discrepancies")?;
    } else {
        writeln!(out, "  DISCREPANCIES: {}", discrepancies.join(", "))?;
    }
    let mut rest = Vec::new();
    for (k, v) in summary {
        if matches!(k.as_str(), "command" | "root" | "remote" | "mode" | "run")
            || Kind::from_name(k).is_some_and(Kind::is_discrepancy)
        {
            continue;
        }
        match v {
            Value::Number(n) if n.as_f64() != Some(0.0) => rest.push(format!("{k} {n}")),
            Value::String(t) => rest.push(format!("{k} {t}")),
            Value::Bool(b) => rest.push(format!("{k} {b}")),
            _ => {}
        }
    }
    if !rest.is_empty() {
        writeln!(out, "  {}", rest.join(", "))?;
    }
    for (k, v) in summary {
        if let Value::Object(inner) = v
            && !inner.is_empty()
        {
            let parts: Vec<String> = inner
                .iter()
                .filter(|(_, v)| !v.is_object() && v.as_f64() != Some(0.0))
                .map(|(ik, iv)| match iv {
                    Value::String(t) => format!("{ik} {t}"),
                    other => format!("{ik} {other}"),
                })
                .collect();
            if !parts.is_empty() {
                writeln!(out, "  {k}: {}", parts.join(", "))?;
            }
        }
    }
    if let Some(e) = text("error") {
        writeln!(out, "  error: {e}")?;
    }
    Ok(())
}

impl Drop for Report {
    fn drop(&mut self) {
        // A run that failed before finishing leaves no half-written file.
        if let Some((tmp, _)) = self.output.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}
