//! Telling someone: Prometheus metrics files and webhook notifications.
//!
//! A nightly audit nobody watches must page someone when it finds damage
//! *or* cannot run at all, and a monitor must be able to tell the two
//! apart. Metrics are written in Prometheus text format for
//! node_exporter's textfile collector, atomically (see
//! [`crate::out::atomic`]), so the collector never reads half a file. Notifications post
//! `{"text": ...}`, the incoming-webhook shape Slack and Mattermost accept.
//! A failed notification is reported on stderr and never changes the
//! run's result.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, anyhow};
use serde_json::{Map, Value, json};

use crate::model::verdict::{self, Status};
use crate::model::{Kind, parse_time};

/// What a finished (or failed) run reports to monitors.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub command: String,
    pub name: Option<String>,
    pub root: Option<String>,
    pub remote: Option<String>,
    /// 0 clean, 1 discrepancies, 2 trouble.
    pub exit_code: u8,
    pub summary: Map<String, Value>,
    pub error: Option<String>,
    pub elapsed_secs: f64,
    pub finished_unix: i64,
    /// The last run of the same job that exited 0, including this one.
    pub last_success_unix: Option<i64>,
}

fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl RunOutcome {
    fn labels(&self) -> String {
        let mut parts = vec![format!("command=\"{}\"", label_value(&self.command))];
        if let Some(n) = &self.name {
            parts.push(format!("name=\"{}\"", label_value(n)));
        }
        if let Some(r) = &self.root {
            parts.push(format!("root=\"{}\"", label_value(r)));
        }
        if let Some(r) = &self.remote {
            parts.push(format!("remote=\"{}\"", label_value(r)));
        }
        parts.join(",")
    }

    fn counter(&self, key: &str) -> u64 {
        self.summary.get(key).and_then(Value::as_u64).unwrap_or(0)
    }

    /// True for a run that did not finish (exit 2): it found nothing, it
    /// proved nothing, and its metrics must not say "0 discrepancies". An
    /// incomplete run (exit 2 too) finished: its series are written, and
    /// its `unreadable` entries count among its discrepancies.
    fn failed(&self) -> bool {
        self.error.is_some()
            || (self.exit_code == 2 && verdict::judge(&self.summary).status != Status::Incomplete)
    }

    /// The Prometheus text exposition of this run. A failed run has no
    /// findings, discrepancies, verified or coverage series at all (a
    /// dashboard must not read it as clean); its exit code, duration and
    /// the time of the last success are there.
    pub fn metrics_text(&self) -> String {
        let l = self.labels();
        let failed = self.failed();
        let mut out = String::new();
        let mut metric = |name: &str, help: &str, kind: &str, lines: Vec<(String, String)>| {
            if failed
                && matches!(
                    name,
                    "vouch_findings"
                        | "vouch_discrepancies"
                        | "vouch_verified_files"
                        | "vouch_verified_bytes"
                        | "vouch_proven_ratio"
                        | "vouch_proven_within_ratio"
                        | "vouch_coverage_ratio"
                )
            {
                return;
            }
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, value) in lines {
                out.push_str(&format!("{name}{{{labels}}} {value}\n"));
            }
        };
        let kinds: Vec<(String, String)> = Kind::ALL
            .iter()
            .filter(|k| k.is_discrepancy() || **k == Kind::Unverified)
            .map(|k| {
                (
                    format!("{l},kind=\"{}\"", k.name()),
                    self.counter(k.name()).to_string(),
                )
            })
            .collect();
        metric(
            "vouch_findings",
            "Findings of the last run, by kind.",
            "gauge",
            kinds,
        );
        let discrepancies: u64 = Kind::ALL
            .iter()
            .filter(|k| k.is_discrepancy())
            .map(|k| self.counter(k.name()))
            .sum();
        metric(
            "vouch_discrepancies",
            "Discrepancies found by the last run.",
            "gauge",
            vec![(l.clone(), discrepancies.to_string())],
        );
        metric(
            "vouch_verified_files",
            "Files whose backup copy is proven identical (last run).",
            "gauge",
            vec![(l.clone(), self.counter("verified").to_string())],
        );
        metric(
            "vouch_verified_bytes",
            "Bytes whose backup copy is proven identical (last run).",
            "gauge",
            vec![(l.clone(), self.counter("verified_bytes").to_string())],
        );
        metric(
            "vouch_read_bytes",
            "Bytes read from the remote or hashed locally by the last run.",
            "gauge",
            vec![(
                l.clone(),
                (self.counter("bytes_read") + self.counter("bytes_hashed")).to_string(),
            )],
        );
        if self.summary.contains_key("local_files") {
            metric(
                "vouch_proven_ratio",
                "Fraction of the manifest (the smaller of files and bytes) proven identical in the backup (last run).",
                "gauge",
                vec![(
                    l.clone(),
                    verdict::proven_fraction(&self.summary).to_string(),
                )],
            );
        }
        if let Some(Value::Object(within)) = self.summary.get("verified_within")
            && !within.is_empty()
        {
            let lines = within
                .iter()
                .filter_map(|(days, v)| {
                    let f = v.get("fraction_of_local_bytes")?.as_f64()?;
                    let days = days.strip_suffix('d')?;
                    Some((format!("{l},days=\"{days}\""), f.to_string()))
                })
                .collect();
            metric(
                "vouch_proven_within_ratio",
                "Fraction of the manifest's bytes whose backup copy was last read in full and proven identical at most `days` days ago.",
                "gauge",
                lines,
            );
        }
        if let Some(newest) = self
            .summary
            .get("newest_object")
            .and_then(Value::as_str)
            .and_then(parse_time)
        {
            metric(
                "vouch_backup_newest_object_timestamp_seconds",
                "Last-modified time of the newest object in the backup (Unix time).",
                "gauge",
                vec![(l.clone(), newest.to_string())],
            );
            metric(
                "vouch_backup_newest_object_age_seconds",
                "Age of the newest object in the backup when the last run finished.",
                "gauge",
                vec![(l.clone(), (self.finished_unix - newest).max(0).to_string())],
            );
        }
        if let Some(c) = self.summary.get("coverage_bytes").and_then(Value::as_f64) {
            metric(
                "vouch_coverage_ratio",
                "Fraction of the manifest the remote holds (files and bytes).",
                "gauge",
                vec![
                    (format!("{l},of=\"bytes\""), c.to_string()),
                    (
                        format!("{l},of=\"files\""),
                        self.summary
                            .get("coverage_files")
                            .and_then(Value::as_f64)
                            .unwrap_or(0.0)
                            .to_string(),
                    ),
                ],
            );
        }
        metric(
            "vouch_run_duration_seconds",
            "Wall time of the last run.",
            "gauge",
            vec![(l.clone(), format!("{:.3}", self.elapsed_secs))],
        );
        metric(
            "vouch_last_run_exit_code",
            "Exit status of the last run: 0 clean, 1 discrepancies, 2 trouble.",
            "gauge",
            vec![(l.clone(), self.exit_code.to_string())],
        );
        metric(
            "vouch_last_run_timestamp_seconds",
            "When the last run finished (Unix time).",
            "gauge",
            vec![(l.clone(), self.finished_unix.to_string())],
        );
        metric(
            "vouch_last_success_timestamp_seconds",
            "When a run of this job last exited 0 (Unix time; 0 if never).",
            "gauge",
            vec![(l, self.last_success_unix.unwrap_or(0).to_string())],
        );
        out
    }

    /// The one-paragraph message a notification carries.
    pub fn notify_text(&self) -> String {
        let what = match (&self.name, &self.root) {
            (Some(n), _) => format!("vouch {} {n}", self.command),
            (None, Some(r)) => format!("vouch {} {r}", self.command),
            (None, None) => format!("vouch {}", self.command),
        };
        let target = self
            .remote
            .as_ref()
            .map(|r| format!(" against {r}"))
            .unwrap_or_default();
        if let Some(e) = &self.error {
            return format!("❌ {what}{target} FAILED to run: {e}");
        }
        let v = verdict::judge(&self.summary);
        let icon = match v.status {
            Status::Proven | Status::Clean if self.exit_code == 0 => "✅",
            Status::Failed => "❌",
            _ => "⚠️",
        };
        format!("{icon} {what}{target}: {}", v.line)
    }
}

pub fn write_metrics(path: &Path, outcome: &RunOutcome) -> Result<()> {
    crate::out::atomic::write_atomically(path, outcome.metrics_text().as_bytes())
}

/// Posts the notification; returns an error to report, never to fail on.
pub fn notify(url: &str, outcome: &RunOutcome) -> Result<()> {
    let body = json!({
        "text": outcome.notify_text(),
        "vouch": {
            "command": outcome.command,
            "name": outcome.name,
            "root": outcome.root,
            "remote": outcome.remote,
            "exit_code": outcome.exit_code,
            "error": outcome.error,
            "summary": outcome.summary,
        }
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()?;
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(anyhow!("the webhook answered {status}"));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(exit_code: u8, error: Option<&str>) -> RunOutcome {
        RunOutcome {
            command: "audit".into(),
            name: None,
            root: Some("/data".into()),
            remote: None,
            exit_code,
            summary: Map::new(),
            error: error.map(str::to_string),
            elapsed_secs: 1.0,
            finished_unix: 1_700_000_000,
            last_success_unix: Some(1_690_000_000),
        }
    }

    #[test]
    fn a_failed_run_has_no_discrepancy_series() {
        let text = outcome(2, Some("the backup directory is gone")).metrics_text();
        for absent in [
            "vouch_findings",
            "vouch_discrepancies",
            "vouch_verified_files",
            "vouch_verified_bytes",
            "vouch_proven_ratio",
        ] {
            assert!(!text.contains(absent), "{absent} in {text}");
        }
        assert!(text.contains("vouch_last_run_exit_code{command=\"audit\",root=\"/data\"} 2\n"));
        assert!(text.contains(
            "vouch_last_success_timestamp_seconds{command=\"audit\",root=\"/data\"} 1690000000\n"
        ));
        let clean = outcome(0, None).metrics_text();
        assert!(clean.contains("vouch_discrepancies{command=\"audit\",root=\"/data\"} 0\n"));
    }
}
