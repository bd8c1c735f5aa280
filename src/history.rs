//! `vouch report` and `vouch history`: past runs, read back from the index.
//!
//! Nothing here touches a tree or a remote, and the index is opened
//! read-only (WAL lets this run while another vouch writes). Discrepancies
//! are stored per run with their `first_seen`; the changes of a scan run
//! (added, modified, deleted) are not stored twice but derived from the
//! temporal `entries` table: a row the run opened with no row it closed is
//! an addition, and so on.

use anyhow::{Result, bail};
use rusqlite::params;
use serde_json::{Map, Value, json};

use crate::Outcome;
use crate::finding::{Finding, Kind};
use crate::index::{Index, Run};
use crate::report::{Format, Sink, format_time};

/// Re-prints the findings of run `run_id` (default: the latest finished
/// run), optionally only those of one kind. Exit 1 when the listed
/// findings include a discrepancy.
pub fn report(
    index: &Index,
    run_id: Option<i64>,
    kind: Option<Kind>,
    sink: &mut dyn Sink,
) -> Result<Outcome> {
    let run = match run_id {
        Some(id) => match index.run(id)? {
            Some(run) => run,
            None => bail!("run {id} is not in index {}", index.path.display()),
        },
        None => match index
            .runs()?
            .into_iter()
            .rev()
            .find(|r| r.finished_at.is_some())
        {
            Some(run) => run,
            None => bail!("index {} holds no finished run", index.path.display()),
        },
    };
    let mut discrepancy = false;
    let mut emit = |f: Finding, sink: &mut dyn Sink| -> Result<()> {
        if kind.is_none_or(|k| k == f.kind) {
            discrepancy |= f.kind.is_discrepancy();
            sink.finding(&f)?;
        }
        Ok(())
    };
    // A run without a remote scanned (a `scan`, or the first half of an
    // `audit`): its changes are in the manifest's history.
    if run.remote.is_none() && kind.is_none_or(|k| !k.is_discrepancy()) {
        for f in scan_changes(index, &run)? {
            emit(f, sink)?;
        }
    }
    let mut stmt = index.conn.prepare(
        "SELECT kind, path, local, remote, detail, first_seen FROM findings WHERE run_id = ?1 ORDER BY id",
    )?;
    let mut rows = stmt.query([run.id])?;
    while let Some(row) = rows.next()? {
        let kind_name: String = row.get(0)?;
        let Some(k) = Kind::from_name(&kind_name) else {
            continue;
        };
        let parse = |v: Option<String>| v.and_then(|t| serde_json::from_str::<Value>(&t).ok());
        let f = Finding {
            kind: k,
            path: row.get(1)?,
            local: parse(row.get(2)?),
            remote: parse(row.get(3)?),
            detail: row.get(4)?,
            first_seen: row.get(5)?,
        };
        emit(f, sink)?;
    }
    let mut summary = match run.summary.as_deref().map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(m))) => m,
        _ => Map::new(),
    };
    summary.insert("run".into(), json!(run.id));
    summary.insert("status".into(), json!(run.status));
    summary.insert("started_at".into(), json!(format_time(run.started_at)));
    sink.finish(&summary)?;
    Ok(if discrepancy {
        Outcome::Discrepancies
    } else {
        Outcome::Clean
    })
}

/// The added, modified and deleted files of a scan run, from `entries`.
fn scan_changes(index: &Index, run: &Run) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    let mut stmt = index.conn.prepare(
        "SELECT n.path, n.size, n.blake3,
                EXISTS(SELECT 1 FROM entries o WHERE o.root_id = n.root_id AND o.path = n.path
                       AND o.until_run = n.since_run AND o.kind != 2)
         FROM entries n JOIN runs r ON r.root_id = n.root_id
         WHERE r.id = ?1 AND n.since_run = ?1 AND n.kind != 2 ORDER BY n.path",
    )?;
    let mut rows = stmt.query([run.id])?;
    while let Some(row) = rows.next()? {
        let path: Vec<u8> = row.get(0)?;
        let size: i64 = row.get(1)?;
        let hash: Option<Vec<u8>> = row.get(2)?;
        let replaced: bool = row.get(3)?;
        let mut local = Map::new();
        local.insert("size".into(), json!(size));
        if let Some(h) = hash {
            local.insert("blake3".into(), json!(hex::encode(h)));
        }
        let kind = if replaced {
            Kind::Modified
        } else {
            Kind::Added
        };
        out.push(Finding::new(kind, path).local(Value::Object(local)));
    }
    let mut stmt = index.conn.prepare(
        "SELECT o.path, o.size FROM entries o JOIN runs r ON r.root_id = o.root_id
         WHERE r.id = ?1 AND o.until_run = ?1 AND o.kind != 2
           AND NOT EXISTS(SELECT 1 FROM entries n WHERE n.root_id = o.root_id AND n.path = o.path
                          AND n.since_run = ?1 AND n.kind != 2)
         ORDER BY o.path",
    )?;
    let mut rows = stmt.query(params![run.id])?;
    while let Some(row) = rows.next()? {
        let path: Vec<u8> = row.get(0)?;
        let size: i64 = row.get(1)?;
        out.push(Finding::new(Kind::Deleted, path).local(json!({ "size": size })));
    }
    Ok(out)
}

/// One run as `history` prints it.
pub fn run_json(run: &Run) -> Value {
    let mut m = Map::new();
    m.insert("run".into(), json!(run.id));
    m.insert("command".into(), json!(run.command));
    if let Some(root) = &run.root {
        m.insert("root".into(), json!(String::from_utf8_lossy(root)));
    }
    if let Some(remote) = &run.remote {
        m.insert("remote".into(), json!(remote));
    }
    if let Some(label) = &run.label {
        m.insert("label".into(), json!(label));
    }
    m.insert("started_at".into(), json!(format_time(run.started_at)));
    if let Some(t) = run.finished_at {
        m.insert("finished_at".into(), json!(format_time(t)));
    }
    m.insert("status".into(), json!(run.status));
    if let Some(code) = run.exit_code {
        m.insert("exit_code".into(), json!(code));
    }
    if let Some(root) = &run.merkle_root {
        m.insert("merkle_root".into(), json!(hex::encode(root)));
    }
    if let Some(Ok(Value::Object(summary))) = run.summary.as_deref().map(serde_json::from_str) {
        m.insert("summary".into(), Value::Object(summary));
    }
    Value::Object(m)
}

/// The counters worth a glance in the history table.
fn brief(run: &Run) -> String {
    let Some(Ok(Value::Object(s))) = run.summary.as_deref().map(serde_json::from_str::<Value>)
    else {
        return String::new();
    };
    if let Some(e) = s.get("error").and_then(Value::as_str) {
        return format!("error: {e}");
    }
    let mut parts = Vec::new();
    for kind in Kind::ALL {
        if let Some(n) = s.get(kind.name()).and_then(Value::as_u64)
            && n > 0
        {
            parts.push(format!("{n} {}", kind.name()));
        }
    }
    for key in ["verified", "bytes_read", "bytes_hashed"] {
        if let Some(n) = s.get(key).and_then(Value::as_u64)
            && n > 0
        {
            parts.push(format!("{key} {n}"));
        }
    }
    parts.join(", ")
}

/// Lists every run in the index.
pub fn history(index: &Index, format: Format, out: &mut dyn std::io::Write) -> Result<()> {
    let runs = index.runs()?;
    match format {
        Format::Json => {
            let list: Vec<Value> = runs.iter().map(run_json).collect();
            writeln!(out, "{}", json!({ "runs": list }))?;
        }
        Format::Jsonl => {
            for run in &runs {
                writeln!(out, "{}", run_json(run))?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "run",
                "command",
                "root",
                "remote",
                "label",
                "started_at",
                "status",
                "exit_code",
                "summary",
            ])?;
            for run in &runs {
                w.write_record([
                    run.id.to_string(),
                    run.command.clone(),
                    run.root
                        .as_deref()
                        .map(|r| String::from_utf8_lossy(r).into_owned())
                        .unwrap_or_default(),
                    run.remote.clone().unwrap_or_default(),
                    run.label.clone().unwrap_or_default(),
                    format_time(run.started_at),
                    run.status.clone(),
                    run.exit_code.map(|c| c.to_string()).unwrap_or_default(),
                    run.summary.clone().unwrap_or_default(),
                ])?;
            }
            w.flush()?;
        }
        Format::Table => {
            writeln!(
                out,
                "{:>5}  {:<20}  {:<6}  {:<11}  {:<30}  counters",
                "run", "started", "cmd", "status", "root / remote"
            )?;
            for run in &runs {
                let mut place = run
                    .root
                    .as_deref()
                    .map(|r| String::from_utf8_lossy(r).into_owned())
                    .unwrap_or_default();
                if let Some(remote) = &run.remote {
                    place.push_str(" → ");
                    place.push_str(remote);
                }
                if let Some(label) = &run.label {
                    place.push_str(&format!(" @{label}"));
                }
                writeln!(
                    out,
                    "{:>5}  {:<20}  {:<6}  {:<11}  {:<30}  {}",
                    run.id,
                    format_time(run.started_at),
                    run.command,
                    run.status,
                    place,
                    brief(run)
                )?;
            }
        }
    }
    Ok(())
}
