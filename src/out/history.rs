//! `vouch history`: past runs as a table, json, jsonl or csv.

use anyhow::Result;
use serde_json::{Map, Value, json};

use crate::model::{Kind, Run, format_time, verdict};
use crate::out::Format;

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

/// The status column of the history table: the verdict of a finished run
/// (`damaged`, `proven`, `unproven`, `clean`; a clean audit that proved
/// too little is never shown as `ok`), else the index's word for the run
/// (`running`, `interrupted`, `failed`).
fn shown_status(run: &Run) -> String {
    if matches!(run.status.as_str(), "ok" | "findings")
        && let Some(Ok(Value::Object(s))) =
            run.summary.as_deref().map(serde_json::from_str::<Value>)
        && !s.is_empty()
    {
        return verdict::judge(&s).status.name().to_string();
    }
    run.status.clone()
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
pub fn history(runs: &[Run], format: Format, out: &mut dyn std::io::Write) -> Result<()> {
    match format {
        Format::Html => anyhow::bail!("history is table, json, jsonl or csv (html is for reports)"),
        Format::Json => {
            let list: Vec<Value> = runs.iter().map(run_json).collect();
            writeln!(out, "{}", json!({ "runs": list }))?;
        }
        Format::Jsonl => {
            for run in runs {
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
            for run in runs {
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
            for run in runs {
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
                    shown_status(run),
                    place,
                    brief(run)
                )?;
            }
        }
    }
    Ok(())
}
