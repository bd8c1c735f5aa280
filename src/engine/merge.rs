//! `vouch merge`: N shard reports into the report of the whole run.
//!
//! Each shard of a `--shard K/N` audit writes a JSON (or JSONL) report
//! whose summary says which shard it is (`shard`: index, count, hash) and
//! what it listed (`listing`). The merge proves the set complete before it
//! says anything: every shard 0..N-1 exactly once, all with the same N,
//! shard hash, remote, mode and listing (the same inventory snapshot, by
//! its MD5). A missing, duplicate, foreign or failed shard is an error
//! (exit 2) that names it — never an OK over part of the keys.
//!
//! Then it adds up the counters, recomputes what no shard can decide alone
//! (coverage, `remote_empty`, `low_coverage`, `stale`; see
//! [`crate::engine::audit::health`]) and passes every other finding through. Reports are
//! read twice, streaming (summaries first, to check the set; findings
//! second), so memory does not grow with the number of findings.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserializer as _;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value, json};

use crate::engine::audit::fraction;
use crate::engine::audit::health::{self, Policy};
use crate::engine::shard::Shard;
use crate::model::{Finding, Kind};
use crate::out::Sink;
use crate::store::Coverage;

/// One shard report: its name (for messages) and how to read it.
pub struct Source {
    pub name: String,
    open: Box<dyn Fn() -> Result<Box<dyn Read>>>,
}

impl Source {
    pub fn file(path: PathBuf) -> Source {
        Source {
            name: path.display().to_string(),
            open: Box::new(move || {
                let f = std::fs::File::open(&path)
                    .with_context(|| format!("cannot read shard report {}", path.display()))?;
                Ok(Box::new(f) as Box<dyn Read>)
            }),
        }
    }

    /// A local copy of a report named `name` (its URL).
    pub fn file_named(name: String, path: PathBuf) -> Source {
        let shown = name.clone();
        Source {
            name,
            open: Box::new(move || {
                let f = std::fs::File::open(&path)
                    .with_context(|| format!("cannot read shard report {shown}"))?;
                Ok(Box::new(f) as Box<dyn Read>)
            }),
        }
    }

    pub fn new(name: String, open: impl Fn() -> Result<Box<dyn Read>> + 'static) -> Source {
        Source {
            name,
            open: Box::new(open),
        }
    }
}

/// The shard reports named on the command line: files, and the `*.json`
/// and `*.jsonl` files of directories (not recursively), in name order.
pub fn local_sources(args: &[PathBuf]) -> Result<Vec<Source>> {
    let mut out = Vec::new();
    for a in args {
        let meta = std::fs::metadata(a).with_context(|| format!("cannot read {}", a.display()))?;
        if meta.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(a)
                .with_context(|| format!("cannot list {}", a.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("json" | "jsonl")
                        )
                })
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("{}: no shard reports (*.json, *.jsonl) in it", a.display());
            }
            out.extend(files.into_iter().map(Source::file));
        } else {
            out.push(Source::file(a.clone()));
        }
    }
    Ok(out)
}

/// Options of a merge; `None` takes the value the shards recorded.
#[derive(Debug, Clone, Default)]
pub struct MergeOptions {
    pub min_coverage: Option<f64>,
    pub max_age: Option<i64>,
    pub strict: bool,
    /// Unix seconds (for `stale`).
    pub now: i64,
}

/// The merged run.
#[derive(Debug, Clone)]
pub struct Merged {
    pub summary: Map<String, Value>,
    /// Discrepancies (with `strict`, `unverified` too): exit 1 when > 0.
    pub discrepancies: u64,
}

/// The head of one report: its summary, or the error it ended with.
struct Head {
    summary: Option<Map<String, Value>>,
    error: Option<String>,
}

/// Reads a report document (json or jsonl), calling `on_finding` for each
/// finding when given (else skipping them).
fn read_report(
    reader: Box<dyn Read>,
    name: &str,
    mut on_finding: Option<&mut dyn FnMut(Value) -> Result<()>>,
) -> Result<Head> {
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let first = loop {
        let buf = reader
            .fill_buf()
            .with_context(|| format!("cannot read {name}"))?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let c = buf[i];
                reader.consume(i);
                break Some(c);
            }
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    if first != Some(b'{') {
        bail!("{name}: not a vouch JSON or JSONL report (use --format json or jsonl for shards)");
    }
    // A json document starts `{"findings":`; a jsonl report is one object a line.
    let peek = reader.fill_buf()?.to_vec();
    let is_document = {
        let s = String::from_utf8_lossy(&peek);
        let t = s[1..].trim_start();
        t.starts_with("\"findings\"") || t.starts_with("\"error\"") || t.starts_with("\"summary\"")
    };
    if is_document {
        let mut de = serde_json::Deserializer::from_reader(reader);
        let head = de
            .deserialize_map(DocVisitor { on_finding })
            .map_err(|e| anyhow!("{name}: not a complete vouch JSON report: {e}"))?;
        de.end()
            .map_err(|e| anyhow!("{name}: trailing data after the report: {e}"))?;
        return Ok(head);
    }
    let mut head = Head {
        summary: None,
        error: None,
    };
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {name}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let mut v: Map<String, Value> = serde_json::from_str(&line)
            .map_err(|e| anyhow!("{name} line {}: not JSON: {e}", i + 1))?;
        match v.get("kind").and_then(Value::as_str) {
            Some("summary") => {
                v.remove("kind");
                head.summary = Some(v);
            }
            Some("error") => {
                head.error = Some(
                    v.get("detail")
                        .and_then(Value::as_str)
                        .unwrap_or("failed")
                        .to_string(),
                )
            }
            _ => {
                if let Some(f) = on_finding.as_deref_mut() {
                    f(Value::Object(v))?;
                }
            }
        }
    }
    Ok(head)
}

struct DocVisitor<'a> {
    on_finding: Option<&'a mut dyn FnMut(Value) -> Result<()>>,
}

impl<'de> Visitor<'de> for DocVisitor<'_> {
    type Value = Head;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a vouch report object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head, A::Error> {
        let mut head = Head {
            summary: None,
            error: None,
        };
        let mut on_finding = self.on_finding;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "findings" => match on_finding.as_deref_mut() {
                    Some(f) => map.next_value_seed(FindingsSeed(f))?,
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                },
                "summary" => head.summary = Some(map.next_value()?),
                "error" => head.error = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(head)
    }
}

struct FindingsSeed<'a>(&'a mut dyn FnMut(Value) -> Result<()>);

impl<'de> DeserializeSeed<'de> for FindingsSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for FindingsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of findings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        use serde::de::Error;
        while let Some(v) = seq.next_element::<Value>()? {
            (self.0)(v).map_err(|e| A::Error::custom(format!("{e:#}")))?;
        }
        Ok(())
    }
}

/// A finding as a report printed it, back to a [`Finding`].
pub fn finding_from_json(v: Value) -> Result<Finding> {
    let Value::Object(mut m) = v else {
        bail!("a finding is not an object");
    };
    let kind_name = m.get("kind").and_then(Value::as_str).unwrap_or_default();
    let kind =
        Kind::from_name(kind_name).ok_or_else(|| anyhow!("unknown finding kind {kind_name:?}"))?;
    let path = m
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("a {kind_name} finding without a path"))?;
    let bytes = crate::model::paths::unescape(path)
        .ok_or_else(|| anyhow!("malformed escape in path {path:?}"))?;
    let mut f = Finding::new(kind, crate::model::paths::key_from_slash(&bytes));
    f.local = m.remove("local");
    f.remote = m.remove("remote");
    f.detail = m.get("detail").and_then(Value::as_str).map(str::to_string);
    if let Some(t) = m.get("first_seen").and_then(Value::as_str) {
        let t = humantime::parse_rfc3339_weak(t).map_err(|e| anyhow!("first_seen {t:?}: {e}"))?;
        f.first_seen = Some(
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
        );
    }
    Ok(f)
}

/// What must agree between the shards of one run.
#[derive(Debug, Clone, PartialEq)]
struct Identity {
    count: u64,
    hash: String,
    command: Option<String>,
    remote: Option<String>,
    mode: Option<String>,
    listing: Value,
}

/// Counters that are not summed.
const NOT_SUMMED: [&str; 7] = [
    "run",
    "elapsed_ms",
    "merkle_root",
    "newest_object",
    "listing",
    "policy",
    "shard",
];

/// Adds `b`'s whole-number counters into `a`, recursively; the first
/// report's text and flags stand.
fn add_counters(a: &mut Map<String, Value>, b: &Map<String, Value>) {
    for (k, v) in b {
        if NOT_SUMMED.contains(&k.as_str()) {
            continue;
        }
        match (a.get_mut(k), v) {
            (Some(Value::Number(x)), Value::Number(y)) => {
                if let (Some(x0), Some(y0)) = (x.as_u64(), y.as_u64()) {
                    *x = (x0 + y0).into();
                }
            }
            (Some(Value::Object(x)), Value::Object(y)) => add_counters(x, y),
            (None, v) => {
                a.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
}

fn get_u64(m: &Map<String, Value>, key: &str, name: &str) -> Result<u64> {
    m.get(key).and_then(Value::as_u64).ok_or_else(|| {
        anyhow!("{name}: the summary has no {key} (written by an older vouch, or not an audit?)")
    })
}

fn parse_time(v: Option<&Value>) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(v?.as_str()?).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64)
}

/// Merges the shard reports into `sink`. Any problem with the set of
/// reports is an error naming the shard.
pub fn merge(sources: &[Source], opts: &MergeOptions, sink: &mut dyn Sink) -> Result<Merged> {
    if sources.is_empty() {
        bail!("vouch merge: no shard reports given");
    }
    // 1. The summaries: is this one complete run?
    let mut heads = Vec::new();
    let mut first: Option<(Identity, String)> = None;
    let mut by_index: BTreeMap<u64, String> = BTreeMap::new();
    for src in sources {
        let head = read_report((src.open)()?, &src.name, None)?;
        if let Some(e) = head.error {
            bail!(
                "{}: this shard failed ({e}); run it again before merging",
                src.name
            );
        }
        let summary = head.summary.ok_or_else(|| {
            anyhow!(
                "{}: the report has no summary (cut short?); run the shard again",
                src.name
            )
        })?;
        let shard = summary.get("shard").and_then(Value::as_object).ok_or_else(|| {
            anyhow!(
                "{}: not a shard report (its summary has no shard; run each shard with --shard K/N)",
                src.name
            )
        })?;
        let index = shard.get("index").and_then(Value::as_u64);
        let count = shard.get("count").and_then(Value::as_u64);
        let hash = shard.get("hash").and_then(Value::as_str);
        let (Some(index), Some(count), Some(hash)) = (index, count, hash) else {
            bail!("{}: malformed shard in the summary: {shard:?}", src.name);
        };
        let text = |k: &str| summary.get(k).and_then(Value::as_str).map(str::to_string);
        let id = Identity {
            count,
            hash: hash.to_string(),
            command: text("command"),
            remote: text("remote"),
            mode: text("mode"),
            // The snapshot's identity only: each shard read it at its own
            // time (`age_s` differs), but it must be the same report.
            listing: summary.get("listing").map_or(Value::Null, |l| {
                json!({
                    "source": l.get("source"),
                    "manifest": l.get("manifest"),
                    "md5": l.get("md5"),
                })
            }),
        };
        match &first {
            None => first = Some((id.clone(), src.name.clone())),
            Some((want, first_name)) => {
                let differs = |what: &str, a: String, b: String| {
                    anyhow!(
                        "{}: {what} {b} differs from {a} in {first_name}: these shards are not of one run",
                        src.name
                    )
                };
                if want.count != id.count {
                    return Err(differs(
                        "shard count N =",
                        want.count.to_string(),
                        id.count.to_string(),
                    ));
                }
                if want.hash != id.hash {
                    return Err(differs("shard hash", want.hash.clone(), id.hash));
                }
                for (what, a, b) in [
                    ("command", &want.command, &id.command),
                    ("remote", &want.remote, &id.remote),
                    ("mode", &want.mode, &id.mode),
                ] {
                    if a != b {
                        return Err(differs(what, format!("{a:?}"), format!("{b:?}")));
                    }
                }
                if want.listing != id.listing {
                    return Err(differs(
                        "listing",
                        want.listing.to_string(),
                        id.listing.to_string(),
                    ));
                }
            }
        }
        if let Some(other) = by_index.insert(index, src.name.clone()) {
            bail!(
                "shard {index}/{count} appears twice: {other} and {}",
                src.name
            );
        }
        if index >= count {
            bail!("{}: shard {index}/{count} is out of range", src.name);
        }
        heads.push(summary);
    }
    let (id, _) = first.expect("at least one report");
    if id.hash != crate::engine::shard::HASH_NAME {
        bail!(
            "the shards used hash {}, this vouch knows {}: merge with the vouch that ran them",
            id.hash,
            crate::engine::shard::HASH_NAME
        );
    }
    let missing: Vec<String> = (0..id.count)
        .filter(|k| !by_index.contains_key(k))
        .map(|k| Shard {
            index: k,
            count: id.count,
        })
        .map(|s| s.to_string())
        .collect();
    if !missing.is_empty() {
        bail!(
            "shard{} {} missing ({} of {} reports given): the merge would vouch for keys nobody audited",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            by_index.len(),
            id.count
        );
    }

    // 2. The counters, and what only the whole can decide.
    let mut summary = Map::new();
    for h in &heads {
        add_counters(&mut summary, h);
    }
    let policy_of = |h: &Map<String, Value>| {
        let p = h.get("policy");
        (
            p.and_then(|p| p.get("min_coverage"))
                .and_then(Value::as_f64),
            p.and_then(|p| p.get("max_age_s")).and_then(Value::as_i64),
        )
    };
    let (min_cov, max_age) = policy_of(&heads[0]);
    let policy = Policy {
        min_coverage: opts.min_coverage.or(min_cov).unwrap_or(0.99),
        max_age: opts.max_age.or(max_age),
    };
    let name0 = &sources[0].name;
    let totals = Coverage {
        local_files: get_u64(&summary, "local_files", name0)?,
        local_bytes: get_u64(&summary, "local_bytes", name0)?,
        held_files: get_u64(&summary, "held_files", name0)?,
        held_bytes: get_u64(&summary, "held_bytes", name0)?,
        objects: get_u64(&summary, "remote_objects", name0)?,
        newest: heads
            .iter()
            .filter_map(|h| parse_time(h.get("newest_object")))
            .max(),
    };
    let mut whole = health::backup_findings(&totals, &policy, opts.now);
    let listing = heads[0].get("listing").cloned().unwrap_or(Value::Null);
    if let Some(created) = parse_time(listing.get("created")) {
        let manifest = listing
            .get("manifest")
            .and_then(Value::as_str)
            .unwrap_or("?");
        whole.extend(health::inventory_finding(
            manifest, created, &policy, opts.now,
        ));
    }
    let mut counts: BTreeMap<Kind, i64> = BTreeMap::new();
    for f in &whole {
        *counts.entry(f.kind).or_default() += 1;
        sink.finding(f)?;
    }

    // 3. Every other finding, shard by shard.
    for src in sources {
        let mut pass = |v: Value| -> Result<()> {
            let f = finding_from_json(v).with_context(|| src.name.clone())?;
            if health::is_backup_wide(&f) {
                *counts.entry(f.kind).or_default() -= 1; // recomputed above
                return Ok(());
            }
            sink.finding(&f)
        };
        read_report((src.open)()?, &src.name, Some(&mut pass))?;
    }
    for (kind, delta) in counts {
        let n = summary
            .get(kind.name())
            .and_then(Value::as_u64)
            .unwrap_or(0) as i64
            + delta;
        summary.insert(kind.name().into(), json!(n.max(0)));
    }

    // 4. The summary of the whole.
    summary.insert("command".into(), json!("merge"));
    if let Some(c) = &id.command {
        summary.insert("merged_command".into(), json!(c));
    }
    summary.remove("run");
    summary.insert(
        "runs".into(),
        json!(heads.iter().map(|h| h.get("run")).collect::<Vec<_>>()),
    );
    summary.insert(
        "shards".into(),
        json!({ "count": id.count, "hash": id.hash, "reports": by_index.values().collect::<Vec<_>>() }),
    );
    if let Value::Object(mut l) = listing {
        if let Some(created) = parse_time(l.get("created")) {
            l.insert("age_s".into(), json!(opts.now - created));
        }
        summary.insert("listing".into(), Value::Object(l));
    }
    summary.insert(
        "coverage_files".into(),
        json!(fraction(totals.held_files, totals.local_files)),
    );
    summary.insert(
        "coverage_bytes".into(),
        json!(fraction(totals.held_bytes, totals.local_bytes)),
    );
    if let Some(t) = totals.newest {
        summary.insert("newest_object".into(), json!(crate::model::format_time(t)));
    }
    if let Some(Value::Object(within)) = summary.get_mut("verified_within") {
        for v in within.values_mut() {
            if let Some(b) = v.get("bytes").and_then(Value::as_u64) {
                v["fraction_of_local_bytes"] = json!(fraction(b, totals.local_bytes));
            }
        }
    }
    if let Some(Value::Object(scan)) = summary.get_mut("scan") {
        scan.remove("run");
        scan.remove("elapsed_ms");
    }
    summary.insert(
        "elapsed_ms".into(),
        json!(
            heads
                .iter()
                .filter_map(|h| h.get("elapsed_ms").and_then(Value::as_u64))
                .max()
                .unwrap_or(0)
        ),
    );
    let discrepancies = Kind::ALL
        .iter()
        .filter(|k| k.is_discrepancy() || (opts.strict && **k == Kind::Unverified))
        .filter_map(|k| summary.get(k.name()).and_then(Value::as_u64))
        .sum();
    Ok(Merged {
        summary,
        discrepancies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<Finding>);
    impl Sink for Collect {
        fn finding(&mut self, f: &Finding) -> Result<()> {
            self.0.push(f.clone());
            Ok(())
        }
        fn finish(&mut self, _: &Map<String, Value>) -> Result<()> {
            Ok(())
        }
    }

    fn report(k: u64, n: u64, findings: &[Value], extra: Value) -> String {
        let mut summary = json!({
            "command": "audit", "remote": "s3://b/p", "mode": "quick", "run": k + 1,
            "missing": findings.iter().filter(|f| f["kind"] == "missing").count(),
            "extra": 0, "verified": 5, "local_files": 6, "local_bytes": 60,
            "held_files": 5, "held_bytes": 50, "remote_objects": 5, "remote_bytes": 50,
            "coverage_files": 0.8333, "newest_object": format!("2026-03-0{}T00:00:00Z", k + 1),
            "elapsed_ms": 10 * (k + 1),
            "shard": {"index": k, "count": n, "hash": crate::engine::shard::HASH_NAME},
            "listing": {"source": "list"},
        });
        for (key, v) in extra.as_object().unwrap() {
            summary[key] = v.clone();
        }
        json!({"findings": findings, "summary": summary}).to_string()
    }

    fn sources(docs: Vec<String>) -> Vec<Source> {
        docs.into_iter()
            .enumerate()
            .map(|(i, d)| {
                Source::new(format!("shard{i}.json"), move || {
                    Ok(Box::new(std::io::Cursor::new(d.clone().into_bytes())) as Box<dyn Read>)
                })
            })
            .collect()
    }

    fn run(docs: Vec<String>) -> Result<(Merged, Vec<Finding>)> {
        let mut sink = Collect(Vec::new());
        let m = merge(
            &sources(docs),
            &MergeOptions {
                now: 1_772_400_000,
                ..Default::default()
            },
            &mut sink,
        )?;
        Ok((m, sink.0))
    }

    #[test]
    fn sums_counters_and_recomputes_coverage() {
        let missing = json!({"kind": "missing", "path": "a\\\\b/c", "local": {"size": 10}});
        let low = json!({"kind": "low_coverage", "path": "", "detail": "shard alone"});
        let docs = vec![
            report(0, 2, &[low.clone(), missing], json!({"low_coverage": 1})),
            report(
                1,
                2,
                &[],
                json!({"local_files": 4, "local_bytes": 40, "held_files": 4, "held_bytes": 40, "remote_objects": 4}),
            ),
        ];
        let (m, findings) = run(docs).unwrap();
        let s = &m.summary;
        assert_eq!(s["command"], "merge");
        assert_eq!(s["local_files"], 10);
        assert_eq!(s["held_files"], 9);
        assert_eq!(s["verified"], 10);
        assert_eq!(s["missing"], 1);
        assert_eq!(s["coverage_files"], 0.9);
        // Recomputed on the whole (0.9 < 0.99): one, not the shard's.
        assert_eq!(s["low_coverage"], 1);
        assert_eq!(s["newest_object"], "2026-03-02T00:00:00Z");
        assert_eq!(s["elapsed_ms"], 20);
        assert_eq!(s["shards"]["count"], 2);
        assert_eq!(findings.len(), 2);
        assert_eq!(findings[0].kind, Kind::LowCoverage);
        assert!(findings[0].detail.as_ref().unwrap().contains("9 of 10"));
        assert_eq!(findings[1].path, b"a\\b\0c");
        assert_eq!(m.discrepancies, 2);
    }

    #[test]
    fn a_missing_or_duplicate_shard_is_named() {
        let e = run(vec![
            report(0, 3, &[], json!({})),
            report(2, 3, &[], json!({})),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("shard 1/3 missing"), "{e}");
        let e = run(vec![
            report(0, 2, &[], json!({})),
            report(0, 2, &[], json!({})),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("shard 0/2 appears twice: shard0.json and shard1.json"),
            "{e}"
        );
        let e = run(vec![
            report(0, 2, &[], json!({})),
            report(1, 3, &[], json!({})),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("shard count N = 3 differs from 2"), "{e}");
        let inv = json!({"listing": {"source": "inventory", "md5": "aa", "age_s": 1}});
        let e = run(vec![report(0, 2, &[], json!({})), report(1, 2, &[], inv)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("shard1.json: listing"), "{e}");
        let failed = json!({"findings": [], "error": "remote unreachable"}).to_string();
        let e = run(vec![report(0, 2, &[], json!({})), failed])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("shard1.json: this shard failed (remote unreachable)"),
            "{e}"
        );
        let e = run(vec![
            r#"{"findings":[{"kind":"missing","path":"x"}"#.to_string(),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a complete vouch JSON report"), "{e}");
    }

    #[test]
    fn shards_of_one_inventory_merge_whatever_their_age() {
        let inv = |age: u64| {
            json!({"listing": {"source": "inventory", "manifest": "m", "md5": "aa",
                "created": "2026-03-01T00:00:00Z", "age_s": age, "rows": 100}})
        };
        let (m, findings) =
            run(vec![report(0, 2, &[], inv(10)), report(1, 2, &[], inv(99))]).unwrap();
        let l = &m.summary["listing"];
        assert_eq!(l["rows"], 100, "not summed");
        assert_eq!(l["age_s"], 1_772_400_000 - 1_772_323_200);
        assert!(findings.iter().all(|f| f.kind != Kind::Stale));
    }

    #[test]
    fn jsonl_reports_merge_too() {
        let jsonl = |k: u64| {
            let doc: Value = serde_json::from_str(&report(0, 1, &[], json!({}))).unwrap();
            let mut line = doc["summary"].as_object().unwrap().clone();
            line.insert("kind".into(), json!("summary"));
            line["shard"]["index"] = json!(k);
            format!(
                "{}\n{}\n",
                json!({"kind": "extra", "path": "x"}),
                Value::Object(line)
            )
        };
        let (m, findings) = run(vec![jsonl(0)]).unwrap();
        assert_eq!(findings.len(), 2, "{findings:?}"); // low_coverage + extra
        assert_eq!(m.summary["shards"]["count"], 1);
    }
}
