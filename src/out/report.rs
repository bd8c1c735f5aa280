//! Reports: findings and summaries in the chosen format, as they happen.
//!
//! Every command writes through a [`Sink`], so every format is available
//! everywhere and streams: `jsonl` emits a line per finding the moment it
//! is found, `json` streams the `findings` array and closes the document
//! with the `summary`. JSON is the contract for scripts; its shape is
//! pinned by tests and documented in the README.
//!
//! [`Report`] owns what every format shares — `--quiet`, counting
//! discrepancies, the destination (stdout, or `--output FILE` written
//! atomically, see [`crate::out::atomic`]) — and hands the formatting to
//! one [`Printer`] per format, in the manner of ripgrep's printers.
//!
//! `--quiet` drops changes (added/modified/deleted/unverified) and prints
//! nothing at all on a run without discrepancies, so cron mails only when
//! something is wrong.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use anyhow::Result;
use serde_json::{Map, Value, json};

use crate::model::{Finding, Kind, format_time, paths};
use crate::out::Sink;
use crate::out::atomic::Output;

/// The report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Jsonl,
    Csv,
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

/// How many changes of one kind the table format lists before it folds the
/// rest into a count (the JSON formats always list every finding).
const TABLE_CHANGES_SHOWN: usize = 20;

/// One output format.
trait Printer {
    /// Writes one finding (the report has already applied `--quiet`).
    fn finding(&mut self, out: &mut dyn Write, f: &Finding) -> Result<()>;
    /// Writes the summary and completes the document.
    fn summary(&mut self, out: &mut dyn Write, summary: &Map<String, Value>) -> Result<()>;
    /// Completes the document of a run that failed (exit 2).
    fn error(&mut self, out: &mut dyn Write, error: &str) -> Result<()>;
}

/// `{"findings":[...],"summary":{...}}`, streamed.
#[derive(Default)]
struct JsonPrinter {
    started: bool,
}

impl JsonPrinter {
    fn close_findings(&self) -> &'static str {
        if self.started {
            "\n]"
        } else {
            "{\"findings\":[]"
        }
    }
}

impl Printer for JsonPrinter {
    fn finding(&mut self, out: &mut dyn Write, f: &Finding) -> Result<()> {
        let sep = if self.started {
            ",\n"
        } else {
            "{\"findings\":[\n"
        };
        self.started = true;
        write!(out, "{sep}{}", finding_json(f))?;
        Ok(())
    }

    fn summary(&mut self, out: &mut dyn Write, summary: &Map<String, Value>) -> Result<()> {
        let head = self.close_findings();
        writeln!(
            out,
            "{head},\"summary\":{}}}",
            Value::Object(summary.clone())
        )?;
        Ok(())
    }

    fn error(&mut self, out: &mut dyn Write, error: &str) -> Result<()> {
        let head = self.close_findings();
        writeln!(out, "{head},\"error\":{}}}", json!(error))?;
        Ok(())
    }
}

/// One JSON object per line, flushed as found; a last `summary` line.
struct JsonlPrinter;

impl Printer for JsonlPrinter {
    fn finding(&mut self, out: &mut dyn Write, f: &Finding) -> Result<()> {
        writeln!(out, "{}", finding_json(f))?;
        out.flush()?;
        Ok(())
    }

    fn summary(&mut self, out: &mut dyn Write, summary: &Map<String, Value>) -> Result<()> {
        let mut line = Map::new();
        line.insert("kind".into(), json!("summary"));
        line.extend(summary.clone());
        writeln!(out, "{}", Value::Object(line))?;
        Ok(())
    }

    fn error(&mut self, out: &mut dyn Write, error: &str) -> Result<()> {
        writeln!(out, "{}", json!({"kind": "error", "detail": error}))?;
        Ok(())
    }
}

/// `kind,path,detail,first_seen,local,remote` rows; a last `summary` row.
#[derive(Default)]
struct CsvPrinter {
    header_written: bool,
}

impl CsvPrinter {
    fn row(&mut self, out: &mut dyn Write, row: [String; 6]) -> Result<()> {
        let mut w = csv::Writer::from_writer(Vec::new());
        if !self.header_written {
            w.write_record(["kind", "path", "detail", "first_seen", "local", "remote"])?;
            self.header_written = true;
        }
        w.write_record(&row)?;
        let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("csv: {e}"))?;
        out.write_all(&bytes)?;
        Ok(())
    }

    /// A row with only a kind and a detail.
    fn note(&mut self, out: &mut dyn Write, kind: &str, detail: String) -> Result<()> {
        self.row(
            out,
            [
                kind.into(),
                String::new(),
                detail,
                String::new(),
                String::new(),
                String::new(),
            ],
        )
    }
}

fn opt_json(v: &Option<Value>) -> String {
    v.as_ref().map(|v| v.to_string()).unwrap_or_default()
}

impl Printer for CsvPrinter {
    fn finding(&mut self, out: &mut dyn Write, f: &Finding) -> Result<()> {
        self.row(
            out,
            [
                f.kind.name().to_string(),
                paths::display(&f.path),
                f.detail.clone().unwrap_or_default(),
                f.first_seen.map(format_time).unwrap_or_default(),
                opt_json(&f.local),
                opt_json(&f.remote),
            ],
        )
    }

    fn summary(&mut self, out: &mut dyn Write, summary: &Map<String, Value>) -> Result<()> {
        self.note(out, "summary", Value::Object(summary.clone()).to_string())
    }

    fn error(&mut self, out: &mut dyn Write, error: &str) -> Result<()> {
        self.note(out, "error", error.to_string())
    }
}

/// Lines for people: every discrepancy, changes folded after a few.
#[derive(Default)]
struct TablePrinter {
    shown: BTreeMap<Kind, usize>,
    folded: BTreeMap<Kind, usize>,
}

impl Printer for TablePrinter {
    fn finding(&mut self, out: &mut dyn Write, f: &Finding) -> Result<()> {
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
        writeln!(out, "{line}")?;
        Ok(())
    }

    fn summary(&mut self, out: &mut dyn Write, summary: &Map<String, Value>) -> Result<()> {
        for (kind, n) in &self.folded {
            writeln!(out, "… and {n} more {kind} (see --format json)")?;
        }
        write_table_summary(out, summary)?;
        Ok(())
    }

    /// The one-line error on stderr speaks for itself.
    fn error(&mut self, _: &mut dyn Write, _: &str) -> Result<()> {
        Ok(())
    }
}

/// The standard sink: one of the formats, to stdout or a file.
pub struct Report {
    printer: Box<dyn Printer>,
    quiet: bool,
    /// `None` once published.
    out: Option<Output>,
    discrepancies: u64,
}

impl Report {
    pub fn new(format: Format, quiet: bool, output: Option<&Path>) -> Result<Report> {
        let printer: Box<dyn Printer> = match format {
            Format::Table => Box::<TablePrinter>::default(),
            Format::Json => Box::<JsonPrinter>::default(),
            Format::Jsonl => Box::new(JsonlPrinter),
            Format::Csv => Box::<CsvPrinter>::default(),
        };
        Ok(Report {
            printer,
            quiet,
            out: Some(Output::open(output)?),
            discrepancies: 0,
        })
    }

    /// Flushes, and with `--output` moves the finished file into place.
    fn publish(&mut self) -> Result<()> {
        match self.out.take() {
            Some(out) => out.commit(),
            None => Ok(()),
        }
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
        let out = self.out.as_mut().map(|o| o as &mut dyn Write);
        if let Some(out) = out {
            self.printer.error(out, error)?;
        }
        self.publish()
    }
}

fn open_output(out: &mut Option<Output>) -> Result<&mut dyn Write> {
    match out {
        Some(o) => Ok(o),
        None => anyhow::bail!("internal: the report was already completed"),
    }
}

impl Sink for Report {
    fn finding(&mut self, f: &Finding) -> Result<()> {
        if f.kind.is_discrepancy() {
            self.discrepancies += 1;
        } else if self.quiet {
            return Ok(());
        }
        let out = open_output(&mut self.out)?;
        self.printer.finding(out, f)
    }

    fn finish(&mut self, summary: &Map<String, Value>) -> Result<()> {
        let silent = self.quiet && self.discrepancies == 0;
        if !silent {
            let out = open_output(&mut self.out)?;
            self.printer.summary(out, summary)?;
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
