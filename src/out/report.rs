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
//! one `Printer` per format, in the manner of ripgrep's printers.
//!
//! Every summary carries the run's verdict (see [`crate::model::verdict`]):
//! `status` and a `discrepancies` total; the table format opens with the
//! verdict line.
//!
//! `--quiet` drops changes (added/modified/deleted/unverified); in the
//! table format it prints nothing at all on a run that needs no attention
//! (proven, or a clean scan), so cron mails only when something is wrong
//! or unproven. The other formats always print their whole document.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::Path;

use anyhow::Result;
use serde_json::{Map, Value, json};

use crate::model::{Finding, Kind, format_time, paths, verdict};
use crate::out::Sink;
use crate::out::atomic::Output;
use crate::out::sorted::SortedFindings;

/// The report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Jsonl,
    Csv,
    /// One self-contained page (see [`crate::out::html`]).
    Html,
}

/// A finding as JSON: the stable shape of every format.
pub fn finding_json(f: &Finding) -> Value {
    let mut obj = Map::new();
    obj.insert("kind".into(), json!(f.kind.name()));
    obj.insert("path".into(), json!(paths::display(&f.path)));
    obj.insert("discrepancy".into(), json!(f.kind.is_discrepancy()));
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

/// How many discrepancies of one kind the table format lists on stdout
/// before it folds the rest into a count (a terminal or a cron mail; the
/// other formats and `--output FILE` list every finding).
pub const TABLE_SHOWN_PER_KIND: usize = 20;

/// One output format.
trait Printer {
    /// Writes one finding (the report has already applied `--quiet`).
    fn finding(&mut self, out: &mut dyn Write, f: &Finding) -> Result<()>;
    /// Whether a finding of `kind` is written with its details.
    fn details(&self, _kind: Kind) -> bool {
        true
    }
    /// Writes the summary and completes the document.
    fn summary(&mut self, out: &mut dyn Write, summary: &Map<String, Value>) -> Result<()>;
    /// Completes the document of a run that failed (exit 2); `failed` is
    /// its verdict (`status` failed, the `discrepancies` found so far).
    fn error(
        &mut self,
        out: &mut dyn Write,
        error: &str,
        failed: &Map<String, Value>,
    ) -> Result<()>;
    /// A heading for people above the report (`run --all`: the audit's
    /// name); only the table format prints one.
    fn heading(&mut self, _: String) {}
}

/// `{"findings":[...],"summary":{...}}`, findings in the stable order of
/// [`crate::out::sorted`], held until the summary (`jsonl` streams
/// instead) in a bounded amount of memory: up to [`crate::out::sorted::HELD_BYTES`], the
/// rest in sorted temporary files merged at the end.
#[derive(Default)]
struct JsonPrinter {
    findings: SortedFindings,
}

impl JsonPrinter {
    #[cfg(test)]
    fn spilling_at(spill_at: usize) -> JsonPrinter {
        JsonPrinter {
            findings: SortedFindings::spilling_at(spill_at),
        }
    }

    fn write_findings(&mut self, out: &mut dyn Write) -> Result<()> {
        write!(out, "{{\"findings\":[")?;
        let mut first = true;
        for text in self.findings.sorted()? {
            write!(out, "{}{}", if first { "\n" } else { ",\n" }, text?)?;
            first = false;
        }
        if !first {
            writeln!(out)?;
        }
        write!(out, "]")?;
        Ok(())
    }
}

impl Printer for JsonPrinter {
    fn finding(&mut self, _: &mut dyn Write, f: &Finding) -> Result<()> {
        self.findings.hold(f)
    }

    fn summary(&mut self, out: &mut dyn Write, summary: &Map<String, Value>) -> Result<()> {
        self.write_findings(out)?;
        writeln!(out, ",\"summary\":{}}}", Value::Object(summary.clone()))?;
        Ok(())
    }

    fn error(
        &mut self,
        out: &mut dyn Write,
        error: &str,
        failed: &Map<String, Value>,
    ) -> Result<()> {
        self.write_findings(out)?;
        writeln!(
            out,
            ",\"summary\":{},\"error\":{}}}",
            Value::Object(failed.clone()),
            json!(error)
        )?;
        Ok(())
    }
}

/// The HTML page: the JSON document's findings (in the same stable
/// order, held the same bounded way), rendered at the end.
#[derive(Default)]
struct HtmlPrinter {
    findings: SortedFindings,
}

impl HtmlPrinter {
    #[cfg(test)]
    fn spilling_at(spill_at: usize) -> HtmlPrinter {
        HtmlPrinter {
            findings: SortedFindings::spilling_at(spill_at),
        }
    }

    fn page(
        &mut self,
        out: &mut dyn Write,
        summary: &Map<String, Value>,
        error: Option<&str>,
    ) -> Result<()> {
        let (line, status) = match error {
            Some(e) => (
                format!("FAILED: {e}"),
                verdict::Status::Failed.name().to_string(),
            ),
            None => {
                let v = verdict::judge(summary);
                (v.line, v.status.name().to_string())
            }
        };
        let mut findings = self.findings.sorted()?;
        crate::out::html::write_page(out, &line, &status, &mut findings, summary, error)
    }
}

impl Printer for HtmlPrinter {
    fn finding(&mut self, _: &mut dyn Write, f: &Finding) -> Result<()> {
        self.findings.hold(f)
    }

    fn summary(&mut self, out: &mut dyn Write, summary: &Map<String, Value>) -> Result<()> {
        self.page(out, summary, None)
    }

    fn error(
        &mut self,
        out: &mut dyn Write,
        error: &str,
        failed: &Map<String, Value>,
    ) -> Result<()> {
        self.page(out, failed, Some(error))
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

    fn error(
        &mut self,
        out: &mut dyn Write,
        error: &str,
        failed: &Map<String, Value>,
    ) -> Result<()> {
        let mut line = Map::new();
        line.insert("kind".into(), json!("error"));
        line.insert("detail".into(), json!(error));
        line.extend(failed.clone());
        writeln!(out, "{}", Value::Object(line))?;
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

    fn error(&mut self, out: &mut dyn Write, error: &str, _: &Map<String, Value>) -> Result<()> {
        self.note(out, "error", error.to_string())
    }
}

/// Lines for people, written at the end so the verdict comes first:
/// discrepancies grouped by kind and sorted by path (at most
/// [`TABLE_SHOWN_PER_KIND`] of each on stdout, all of them in `--output`),
/// then one line per kind of change and for `unverified`, with counts.
/// The kinds with a finding about the whole backup (the headline, path
/// `""`) come first; ties on kind and path stay in the order found.
#[derive(Default)]
struct TablePrinter {
    /// `None`: list every discrepancy.
    cap: Option<usize>,
    /// Printed first (`vouch run --all`: which audit this is).
    heading: Option<String>,
    /// With a cap: the first discrepancies of each kind by path (at most
    /// twice the cap between two trims).
    listed: BTreeMap<Kind, Vec<Finding>>,
    /// Without a cap (`--output FILE`): the line of every discrepancy,
    /// held in a bounded amount of memory (see [`crate::out::sorted`]).
    all: SortedFindings,
    /// The kinds with a finding about the whole backup.
    whole: BTreeSet<Kind>,
    counts: BTreeMap<Kind, u64>,
}

impl TablePrinter {
    fn keep(&mut self, f: &Finding) -> Result<()> {
        *self.counts.entry(f.kind).or_default() += 1;
        if !f.kind.is_discrepancy() {
            return Ok(());
        }
        if f.path.is_empty() {
            self.whole.insert(f.kind);
        }
        let Some(cap) = self.cap else {
            return self.all.hold_line(f, table_line(f));
        };
        let list = self.listed.entry(f.kind).or_default();
        list.push(f.clone());
        if list.len() >= 2 * cap.max(1) {
            list.sort_by(|a, b| a.path.cmp(&b.path));
            list.truncate(cap);
        }
        Ok(())
    }

    fn write_findings(&mut self, out: &mut dyn Write, run: Option<&Value>) -> Result<()> {
        match self.cap {
            Some(cap) => self.write_capped(out, cap, run)?,
            None => {
                for first in [true, false] {
                    let whole = &self.whole;
                    for line in self.all.sorted_of(|k| whole.contains(&k) == first)? {
                        writeln!(out, "{}", line?)?;
                    }
                }
            }
        }
        for (kind, n) in &self.counts {
            if kind.is_discrepancy() {
                continue;
            }
            let what = match kind {
                Kind::Unverified => "present at the same size, content not compared",
                _ => "changes since the previous scan",
            };
            writeln!(
                out,
                "{:<14} {n} ({what}; --format json lists them)",
                kind.name()
            )?;
        }
        Ok(())
    }

    /// The first `cap` discrepancies of each kind, and how many more.
    fn write_capped(&mut self, out: &mut dyn Write, cap: usize, run: Option<&Value>) -> Result<()> {
        for list in self.listed.values_mut() {
            list.sort_by(|a, b| a.path.cmp(&b.path));
        }
        let mut kinds: Vec<Kind> = self.listed.keys().copied().collect();
        kinds.sort_by_key(|k| (!self.whole.contains(k), *k));
        for kind in kinds {
            let list = &self.listed[&kind];
            let shown = cap.min(list.len());
            for f in &list[..shown] {
                writeln!(out, "{}", table_line(f))?;
            }
            let total = self.counts.get(&kind).copied().unwrap_or(0);
            let rest = total.saturating_sub(shown as u64);
            if rest > 0 {
                let how = match run {
                    Some(run) => format!("vouch report --run {run} --format json"),
                    None => "--format json or --output FILE".to_string(),
                };
                writeln!(out, "… and {rest} more {kind} ({how} lists all)")?;
            }
        }
        Ok(())
    }
}

fn table_line(f: &Finding) -> String {
    let mut line = format!(
        "{:<14} {}",
        f.kind.name(),
        paths::terminal_safe(&paths::display(&f.path))
    );
    if let Some(d) = &f.detail {
        line.push_str("  (");
        line.push_str(&paths::terminal_safe(d));
        line.push(')');
    }
    if let Some(t) = f.first_seen {
        line.push_str(&format!("  since {}", format_time(t)));
    }
    line
}

impl Printer for TablePrinter {
    fn finding(&mut self, _: &mut dyn Write, f: &Finding) -> Result<()> {
        self.keep(f)
    }

    fn heading(&mut self, heading: String) {
        self.heading = Some(heading);
    }

    /// Changes and `unverified` are only counted.
    fn details(&self, kind: Kind) -> bool {
        kind.is_discrepancy()
    }

    fn summary(&mut self, out: &mut dyn Write, summary: &Map<String, Value>) -> Result<()> {
        if let Some(h) = &self.heading {
            writeln!(out, "=== {} ===", paths::terminal_safe(h))?;
        }
        writeln!(
            out,
            "{}",
            paths::terminal_safe(&verdict::judge(summary).line)
        )?;
        if let Some(hint) = summary.get("hint").and_then(Value::as_str) {
            writeln!(out, "hint: {}", paths::terminal_safe(hint))?;
        }
        self.write_findings(out, summary.get("run"))?;
        write_table_summary(out, summary)?;
        Ok(())
    }

    /// The one-line error on stderr speaks for itself; what was found
    /// before the failure is still listed.
    fn error(&mut self, out: &mut dyn Write, _: &str, _: &Map<String, Value>) -> Result<()> {
        if !self.counts.is_empty() {
            if let Some(h) = &self.heading {
                writeln!(out, "=== {h} ===")?;
            }
            writeln!(out, "FAILED before the end; found so far:")?;
            self.write_findings(out, None)?;
        }
        Ok(())
    }
}

/// The standard sink: one of the formats, to stdout or a file.
pub struct Report {
    printer: Box<dyn Printer>,
    /// The table format under `--quiet` says nothing on a run that needs
    /// no attention (proven or clean); the other formats always complete
    /// their document, so a script never parses empty input.
    silent_when_fine: bool,
    quiet: bool,
    /// `None` once published.
    out: Option<Output>,
    discrepancies: u64,
    /// `--kind K`: list only findings of this kind (the verdict, the
    /// summary and the exit status stay the whole run's).
    only: Option<Kind>,
}

impl Report {
    pub fn new(format: Format, quiet: bool, output: Option<&Path>) -> Result<Report> {
        let printer: Box<dyn Printer> = match format {
            Format::Table => Box::new(TablePrinter {
                cap: output.is_none().then_some(TABLE_SHOWN_PER_KIND),
                ..Default::default()
            }),
            Format::Json => Box::<JsonPrinter>::default(),
            Format::Jsonl => Box::new(JsonlPrinter),
            Format::Csv => Box::<CsvPrinter>::default(),
            Format::Html => Box::<HtmlPrinter>::default(),
        };
        Ok(Report {
            printer,
            silent_when_fine: quiet && format == Format::Table,
            quiet,
            out: Some(Output::open(output)?),
            discrepancies: 0,
            only: None,
        })
    }

    /// Prints `heading` above a table report (`vouch run --all`).
    pub fn heading(mut self, heading: Option<String>) -> Report {
        if let Some(h) = heading {
            self.printer.heading(h);
        }
        self
    }

    /// Lists only findings of `kind` (`--kind`); `None` lists all.
    pub fn only(mut self, kind: Option<Kind>) -> Report {
        self.only = kind;
        self
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
        let mut failed = Map::new();
        failed.insert("status".into(), json!(verdict::Status::Failed.name()));
        failed.insert("discrepancies".into(), json!(self.discrepancies));
        let out = self.out.as_mut().map(|o| o as &mut dyn Write);
        if let Some(out) = out {
            self.printer.error(out, error, &failed)?;
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
        if self.only.is_some_and(|k| k != f.kind) {
            return Ok(());
        }
        let out = open_output(&mut self.out)?;
        self.printer.finding(out, f)
    }

    fn details(&self, kind: Kind) -> bool {
        (kind.is_discrepancy() || !self.quiet) && self.printer.details(kind)
    }

    /// Adds the verdict (`status`, `discrepancies`) to the summary and
    /// completes the document.
    fn finish(&mut self, summary: &Map<String, Value>) -> Result<()> {
        let mut summary = summary.clone();
        let verdict = verdict::annotate(&mut summary);
        let fine = self.discrepancies == 0 && !verdict.status.needs_attention();
        if !(self.silent_when_fine && fine) {
            let out = open_output(&mut self.out)?;
            self.printer.summary(out, &summary)?;
        }
        self.publish()
    }
}

/// One counter for people: bytes in binary units, durations in seconds,
/// fractions as percentages, counts as they are.
fn human_counter(key: &str, n: &serde_json::Number) -> String {
    let name = key.strip_suffix("_ms").unwrap_or(key);
    match (n.as_u64(), n.as_f64()) {
        (Some(b), _) if key.contains("bytes") => format!("{key} {}", verdict::human_bytes(b)),
        (Some(ms), _) if key.ends_with("_ms") => {
            format!("{name} {}", human_duration(ms))
        }
        (None, Some(f)) if key.starts_with("coverage") || key.starts_with("min_") => {
            format!("{key} {}", percent(f))
        }
        (Some(1), _) if key.starts_with("coverage") || key.starts_with("min_") => {
            format!("{key} 100%")
        }
        _ => format!("{key} {n}"),
    }
}

/// `850 ms`, `12.3 s`, `4m 05s`, `2h 03m`.
pub fn human_duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// A fraction as a percentage, never rounded up to 100% (`99.9%`).
fn percent(f: f64) -> String {
    let p = (f * 1000.0).floor() / 10.0;
    if p.fract() == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// The summary for people: what ran, then the counters that are not zero,
/// discrepancies first.
fn write_table_summary(out: &mut dyn Write, summary: &Map<String, Value>) -> io::Result<()> {
    let text = |k: &str| summary.get(k).and_then(Value::as_str);
    let command = text("command").unwrap_or("run");
    let mut head = format!("vouch {command}");
    // What was compared with what: both trees of a diff, the tree and the
    // manifest of a verify, the tree and the backup of an audit.
    let side = |k: &str| {
        let d = summary.get(k)?;
        let field = |f: &str| d.get(f).and_then(Value::as_str);
        field("path")
            .map(str::to_string)
            .or_else(|| field("label").map(|l| format!("@{l}")))
            .or_else(|| d.get("run").map(|r| format!("@{r}")))
    };
    let (a, b) = match command {
        "diff" => (side("a"), side("b")),
        "verify" => (text("root").map(str::to_string), side("manifest")),
        _ => (
            text("root").map(str::to_string),
            text("remote").map(str::to_string),
        ),
    };
    if let Some(a) = a {
        head.push_str(&format!(" {a}"));
    }
    if let Some(b) = b {
        head.push_str(&format!(" against {b}"));
    }
    if let Some(mode) = text("mode") {
        head.push_str(&format!(" ({mode})"));
    }
    if let Some(run) = summary.get("run") {
        head.push_str(&format!(", run {run}"));
    }
    writeln!(out, "{}", paths::terminal_safe(&head))?;
    let mut rest = Vec::new();
    for (k, v) in summary {
        if matches!(
            k.as_str(),
            "command"
                | "root"
                | "remote"
                | "mode"
                | "run"
                | "status"
                | "discrepancies"
                | "hint"
                // Raw bytes for `vouch merge`; the findings above say it.
                | "bytes_by_kind"
        ) || Kind::from_name(k).is_some_and(Kind::is_discrepancy)
        {
            continue;
        }
        match v {
            Value::Number(n) if n.as_f64() != Some(0.0) => rest.push(human_counter(k, n)),
            Value::String(t) => rest.push(format!("{k} {t}")),
            Value::Bool(b) => rest.push(format!("{k} {b}")),
            _ => {}
        }
    }
    if !rest.is_empty() {
        writeln!(out, "  {}", paths::terminal_safe(&rest.join(", ")))?;
    }
    for (k, v) in summary {
        if let Value::Object(inner) = v
            && !inner.is_empty()
            && k != "bytes_by_kind"
        {
            let parts: Vec<String> = inner
                .iter()
                .filter(|(_, v)| !v.is_object() && v.as_f64() != Some(0.0))
                .map(|(ik, iv)| match iv {
                    Value::String(t) => format!("{ik} {t}"),
                    Value::Number(n) => human_counter(ik, n),
                    other => format!("{ik} {other}"),
                })
                .collect();
            if !parts.is_empty() {
                writeln!(out, "  {k}: {}", paths::terminal_safe(&parts.join(", ")))?;
            }
        }
    }
    if let Some(e) = text("error") {
        writeln!(out, "  error: {}", paths::terminal_safe(e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Findings in a scrambled order, with a whole-backup one, odd bytes
    /// and ties on kind and path.
    fn findings() -> Vec<Finding> {
        let mut v = Vec::new();
        for i in 0..300u32 {
            let kind = Kind::ALL[(i as usize * 7) % Kind::ALL.len()];
            let path = format!("d{}\0f\t{}\n", i % 13, (i * 37) % 101).into_bytes();
            v.push(Finding::new(kind, path).detail(format!("n{}", i % 3)));
        }
        v.push(Finding::new(Kind::LowCoverage, Vec::new()).detail("whole"));
        v.push(Finding::new(Kind::Missing, vec![0xff, b'x']));
        v.push(Finding::new(Kind::Extra, b"</script><b>".to_vec()));
        v
    }

    fn document(mut p: JsonPrinter, check: impl Fn(&JsonPrinter)) -> String {
        let mut out = Vec::new();
        for f in findings() {
            p.finding(&mut out, &f).unwrap();
            check(&p);
        }
        p.summary(&mut out, &Map::new()).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_json_report_holds_a_bounded_number_of_findings_and_sorts_the_same() {
        let whole = document(JsonPrinter::default(), |_| {});
        // Spilling past ~1 KiB: never more than a few findings in memory,
        // yet the same document, byte for byte.
        let spilled = document(JsonPrinter::spilling_at(1024), |p| {
            let n = p.findings.in_memory();
            assert!(n <= 8, "{n} findings held");
        });
        assert!(whole.len() > 10_000);
        assert_eq!(spilled, whole);
        let doc: Value = serde_json::from_str(&whole).unwrap();
        let list = doc["findings"].as_array().unwrap();
        assert_eq!(list.len(), findings().len());
        assert_eq!(list[0]["kind"], "low_coverage");
    }

    /// The discrepancy lines the table wrote to a file when it kept every
    /// finding until the end: grouped by kind, the kinds with a finding
    /// about the whole backup first, each stably sorted by path.
    fn table_as_it_was(findings: &[Finding]) -> String {
        let mut listed: BTreeMap<Kind, Vec<&Finding>> = BTreeMap::new();
        for f in findings.iter().filter(|f| f.kind.is_discrepancy()) {
            listed.entry(f.kind).or_default().push(f);
        }
        for list in listed.values_mut() {
            list.sort_by(|a, b| a.path.cmp(&b.path));
        }
        let mut kinds: Vec<Kind> = listed.keys().copied().collect();
        kinds.sort_by_key(|k| (!listed[k][0].path.is_empty(), *k));
        let mut text = String::new();
        for k in kinds {
            for f in &listed[&k] {
                text.push_str(&table_line(f));
                text.push('\n');
            }
        }
        text
    }

    #[test]
    fn a_table_written_to_a_file_holds_a_bounded_number_of_findings_and_lists_the_same_lines() {
        let mut all = findings();
        // A kind with a finding about the whole backup among its per-file
        // ones (listed first, with them), and ties on kind and path whose
        // text sorts the other way round from the order found.
        all.push(Finding::new(Kind::Stale, b"a/old".to_vec()).detail("z"));
        all.push(Finding::new(Kind::Stale, Vec::new()).detail("stopped"));
        all.push(Finding::new(Kind::Missing, b"tie".to_vec()).detail("z first"));
        all.push(Finding::new(Kind::Missing, b"tie".to_vec()).detail("a second"));
        all.push(Finding::new(Kind::Missing, b"tie".to_vec()).detail("m third"));
        let write = |mut p: TablePrinter, check: &dyn Fn(&TablePrinter)| {
            let mut out = Vec::new();
            for f in &all {
                p.finding(&mut out, f).unwrap();
                check(&p);
            }
            assert!(out.is_empty());
            p.write_findings(&mut out, None).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            TablePrinter::default().all.bound(),
            crate::out::sorted::HELD_BYTES
        );
        let whole = write(TablePrinter::default(), &|_| {});
        // Spilling past ~1 KiB: never more than a few lines in memory.
        let spilled = write(
            TablePrinter {
                all: SortedFindings::spilling_at(1024),
                ..Default::default()
            },
            &|p| {
                let n = p.all.in_memory();
                assert!(n <= 12, "{n} lines held");
                assert!(p.listed.is_empty());
            },
        );
        let mut expected = table_as_it_was(&all);
        let mut counts: BTreeMap<Kind, u64> = BTreeMap::new();
        for f in all.iter().filter(|f| !f.kind.is_discrepancy()) {
            *counts.entry(f.kind).or_default() += 1;
        }
        for (k, n) in counts {
            let what = match k {
                Kind::Unverified => "present at the same size, content not compared",
                _ => "changes since the previous scan",
            };
            expected.push_str(&format!(
                "{:<14} {n} ({what}; --format json lists them)\n",
                k.name()
            ));
        }
        assert_eq!(whole, expected);
        assert_eq!(spilled, expected);
        let lines: Vec<&str> = expected.lines().collect();
        let stopped = format!("{:<14}   (stopped)", "stale");
        let p = lines.iter().position(|l| *l == stopped).unwrap();
        assert!(p > 1 && lines[..p].iter().all(|l| l.starts_with("low_coverage ")));
        assert_eq!(lines[p + 1], format!("{:<14} a/old  (z)", "stale"));
        assert!(lines[p + 2].starts_with("stale "));
        assert!(lines[p + 20].starts_with("missing "), "{expected}");
        let ties =
            ["z first", "a second", "m third"].map(|d| format!("{:<14} tie  ({d})", "missing"));
        assert!(expected.contains(&(ties.join("\n") + "\n")), "{expected}");
    }

    fn page(mut p: HtmlPrinter, check: impl Fn(&HtmlPrinter)) -> String {
        let mut out = Vec::new();
        for f in findings() {
            p.finding(&mut out, &f).unwrap();
            check(&p);
        }
        let mut summary = Map::new();
        summary.insert("command".into(), json!("audit"));
        p.summary(&mut out, &summary).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn an_html_report_holds_a_bounded_number_of_findings_and_sorts_the_same() {
        // Both documents hold findings up to the same bound, not forever.
        assert_eq!(
            HtmlPrinter::default().findings.bound(),
            crate::out::sorted::HELD_BYTES
        );
        assert_eq!(
            JsonPrinter::default().findings.bound(),
            crate::out::sorted::HELD_BYTES
        );
        let whole = page(HtmlPrinter::default(), |_| {});
        let spilled = page(HtmlPrinter::spilling_at(1024), |p| {
            let n = p.findings.in_memory();
            assert!(n <= 8, "{n} findings held");
        });
        assert_eq!(spilled, whole);
        // The page's data is the JSON document's findings, in its order,
        // with no `<` left to close the script element.
        let data = whole
            .split_once(r#"<script type="application/json" id="vouch-data">"#)
            .unwrap()
            .1
            .split_once("</script>")
            .unwrap()
            .0;
        assert!(!data.contains('<'));
        assert!(data.contains(r"\u003c/script>\u003cb>"), "{data}");
        let data: Value = serde_json::from_str(data).unwrap();
        let json: Value = serde_json::from_str(&document(JsonPrinter::default(), |_| {})).unwrap();
        assert_eq!(data["findings"], json["findings"]);
        assert_eq!(data["summary"]["command"], "audit");
    }
}
