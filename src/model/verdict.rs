//! The verdict: the one line a person, a cron mail and a monitor act on.
//!
//! A run's summary is a dump of counters; what a reader needs first is
//! whether the backup is damaged, proven identical, or merely not known to
//! be damaged. "No discrepancies" after a quick audit that compared no
//! byte is the false OK this project exists to prevent, so the verdict is
//! computed in one place, from the summary alone (the same function speaks
//! for the table, the JSON `summary.status`, the webhook, `history` and
//! `report` of a past run), and a run that proved too little is
//! `unproven`, never a success.
//!
//! The rule: `failed` when the run could not finish; `incomplete` when it
//! finished but could not read some entries (`unreadable`: it exits 2, and
//! everything else it found is in the report); `damaged` when any other
//! discrepancy kind was counted; for an audit, `proven` when at least
//! `min_proven` (default 1.0, `--min-proven`) of the manifest's files *and*
//! bytes are proven identical (read and hashed in full at their current
//! version, now or in an earlier run, or matched by MD5 ETag), `unproven`
//! otherwise; for a diff or verify, `proven` when the two sides are
//! identical; for a scan (which compares no backup), `clean`.

use serde_json::{Map, Value, json};

use crate::model::Kind;

/// What a run amounts to, in the order a reader should worry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Failed,
    /// Finished, but some entries could not be read: what was checked is
    /// reported in full, and the run exits 2.
    Incomplete,
    Damaged,
    Unproven,
    Proven,
    /// A scan: no discrepancy, and no backup to prove anything against.
    Clean,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Failed => "failed",
            Status::Incomplete => "incomplete",
            Status::Damaged => "damaged",
            Status::Unproven => "unproven",
            Status::Proven => "proven",
            Status::Clean => "clean",
        }
    }

    pub fn from_name(name: &str) -> Option<Status> {
        [
            Status::Failed,
            Status::Incomplete,
            Status::Damaged,
            Status::Unproven,
            Status::Proven,
            Status::Clean,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    /// Whether a person should look (a cron mail under `-q` is sent).
    pub fn needs_attention(self) -> bool {
        matches!(
            self,
            Status::Failed | Status::Incomplete | Status::Damaged | Status::Unproven
        )
    }
}

/// The default `--min-proven`: an audit is `proven` only when everything
/// in the manifest is.
pub const DEFAULT_MIN_PROVEN: f64 = 1.0;

/// A run's verdict: its status, the discrepancy total and the line.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub status: Status,
    pub discrepancies: u64,
    pub line: String,
}

fn num(s: &Map<String, Value>, key: &str) -> u64 {
    s.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// The discrepancy kinds counted at the top of a summary, in `Kind` order.
pub fn discrepancy_counts(s: &Map<String, Value>) -> Vec<(Kind, u64)> {
    Kind::ALL
        .into_iter()
        .filter(|k| k.is_discrepancy())
        .map(|k| (k, num(s, k.name())))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Bytes in binary units with one decimal (`1.5 MiB`), exact below 1 KiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The fraction (0..=1) of a whole; an empty whole is fully covered.
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

/// The proven fraction of an audit: the smaller of files and bytes.
pub fn proven_fraction(s: &Map<String, Value>) -> f64 {
    ratio(num(s, "verified"), num(s, "local_files"))
        .min(ratio(num(s, "verified_bytes"), num(s, "local_bytes")))
}

/// Judges a summary (see the module doc for the rule).
pub fn judge(s: &Map<String, Value>) -> Verdict {
    let found = discrepancy_counts(s);
    let discrepancies: u64 = found.iter().map(|(_, n)| n).sum();
    let mut command = s.get("command").and_then(Value::as_str).unwrap_or("");
    if command == "merge" {
        // `vouch merge` of shard reports is judged as what it merged.
        command = s
            .get("merged_command")
            .and_then(Value::as_str)
            .unwrap_or("");
    }
    if let Some(e) = s.get("error").and_then(Value::as_str) {
        return Verdict {
            status: Status::Failed,
            discrepancies,
            line: format!(
                "FAILED: the {} did not finish: {e}",
                if command.is_empty() { "run" } else { command }
            ),
        };
    }
    let proven_part = |s: &Map<String, Value>| {
        format!(
            "{} of {} files ({} of {}) proven identical",
            num(s, "verified"),
            num(s, "local_files"),
            human_bytes(num(s, "verified_bytes")),
            human_bytes(num(s, "local_bytes")),
        )
    };
    let unreadable = num(s, Kind::Unreadable.name());
    if unreadable > 0 {
        let kinds: Vec<String> = found
            .iter()
            .map(|(k, n)| format!("{n} {}", k.name()))
            .collect();
        let mut line = format!(
            "INCOMPLETE: {} could not be read, so the run could not check everything; of the rest: {} ({})",
            plural(unreadable, "entry", "entries"),
            plural(discrepancies, "discrepancy", "discrepancies"),
            kinds.join(", ")
        );
        if command == "audit" {
            line.push_str(&format!("; {}", proven_part(s)));
        }
        return Verdict {
            status: Status::Incomplete,
            discrepancies,
            line,
        };
    }
    if discrepancies > 0 {
        let kinds: Vec<String> = found
            .iter()
            .map(|(k, n)| format!("{n} {}", k.name()))
            .collect();
        let mut line = format!(
            "DAMAGED: {} ({})",
            plural(discrepancies, "discrepancy", "discrepancies"),
            kinds.join(", ")
        );
        if command == "audit" {
            line.push_str(&format!("; {}", proven_part(s)));
        }
        return Verdict {
            status: Status::Damaged,
            discrepancies,
            line,
        };
    }
    let (status, line) = match command {
        "audit" => {
            let min = s
                .get("min_proven")
                .and_then(Value::as_f64)
                .unwrap_or(DEFAULT_MIN_PROVEN);
            if proven_fraction(s) >= min {
                let md5 = num(s, "verified_by_md5");
                let how = if md5 > 0 {
                    format!(
                        "{} by BLAKE3 of the backup's bytes, {md5} by MD5 ETag",
                        num(s, "verified").saturating_sub(md5)
                    )
                } else {
                    "by BLAKE3 of the backup's bytes".to_string()
                };
                (
                    Status::Proven,
                    format!("PROVEN: clean; {} ({how})", proven_part(s)),
                )
            } else {
                let left_files = num(s, "local_files").saturating_sub(num(s, "verified"));
                let left_bytes = num(s, "local_bytes").saturating_sub(num(s, "verified_bytes"));
                let root = s.get("root").and_then(Value::as_str).unwrap_or("ROOT");
                let remote = s.get("remote").and_then(Value::as_str).unwrap_or("URL");
                (
                    Status::Unproven,
                    format!(
                        "NOT PROVEN: no discrepancies found, but only {}; run `vouch audit {root} --remote {remote} --mode deep` to read the other {} ({}) from the backup",
                        proven_part(s),
                        plural(left_files, "file", "files"),
                        human_bytes(left_bytes),
                    ),
                )
            }
        }
        "diff" | "verify" => {
            if s.get("identical").and_then(Value::as_bool) == Some(true) {
                let how = s
                    .get("decided_by")
                    .and_then(Value::as_str)
                    .unwrap_or("hashes");
                (
                    Status::Proven,
                    format!(
                        "PROVEN: identical; {} proven identical (decided by {how})",
                        plural(
                            num(s, "files_matched") + num(s, "files_skipped"),
                            "file",
                            "files"
                        ),
                    ),
                )
            } else {
                (
                    Status::Unproven,
                    format!(
                        "NOT PROVEN: no discrepancies found, but {} could not be proven identical",
                        plural(num(s, "unverified"), "file", "files")
                    ),
                )
            }
        }
        "" => (
            Status::Unproven,
            "NOT PROVEN: the run compared nothing".to_string(),
        ),
        _ => (
            Status::Clean,
            format!(
                "CLEAN: no corrupt, unreadable or shrunk file ({} scanned; a scan compares no backup: `vouch audit` proves one)",
                plural(num(s, "files"), "file", "files")
            ),
        ),
    };
    Verdict {
        status,
        discrepancies,
        line,
    }
}

/// Adds `status` and `discrepancies` to a summary (recomputed each time,
/// so a command that adds counters calls it again).
pub fn annotate(s: &mut Map<String, Value>) -> Verdict {
    let v = judge(s);
    s.insert("status".into(), json!(v.status.name()));
    s.insert("discrepancies".into(), json!(v.discrepancies));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(extra: Value) -> Map<String, Value> {
        let mut m = json!({
            "command": "audit", "root": "/r", "remote": "/b", "mode": "quick",
            "missing": 0, "local_files": 65, "local_bytes": 65 * 1024,
            "verified": 0, "verified_bytes": 0, "verified_by_md5": 0,
        })
        .as_object()
        .unwrap()
        .clone();
        m.extend(extra.as_object().unwrap().clone());
        m
    }

    #[test]
    fn nothing_proven_is_not_a_success() {
        let v = judge(&audit(json!({})));
        assert_eq!(v.status, Status::Unproven);
        assert!(v.line.starts_with("NOT PROVEN"), "{}", v.line);
        assert!(v.line.contains("0 of 65 files"), "{}", v.line);
        assert!(v.line.contains("--mode deep"), "{}", v.line);
        assert!(v.line.contains("65 files (65.0 KiB)"), "{}", v.line);
    }

    #[test]
    fn proven_needs_files_and_bytes() {
        let all = json!({"verified": 65, "verified_bytes": 65 * 1024});
        assert_eq!(judge(&audit(all)).status, Status::Proven);
        let bytes_short = json!({"verified": 65, "verified_bytes": 1});
        assert_eq!(judge(&audit(bytes_short)).status, Status::Unproven);
        let half = json!({"verified": 33, "verified_bytes": 33 * 1024, "min_proven": 0.5});
        assert_eq!(judge(&audit(half)).status, Status::Proven);
    }

    #[test]
    fn damage_and_failure_come_first() {
        let v = judge(&audit(json!({"missing": 1, "extra": 2})));
        assert_eq!(v.status, Status::Damaged);
        assert_eq!(v.discrepancies, 3);
        assert!(
            v.line
                .starts_with("DAMAGED: 3 discrepancies (1 missing, 2 extra)")
        );
        let v = judge(&audit(json!({"error": "no route"})));
        assert_eq!(v.status, Status::Failed);
    }

    #[test]
    fn bytes_read_as_people_read_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(6 << 30), "6.0 GiB");
    }

    #[test]
    fn an_unreadable_entry_makes_the_run_incomplete_never_clean() {
        let v = judge(&audit(json!({"unreadable": 1, "missing": 2})));
        assert_eq!(v.status, Status::Incomplete);
        assert!(
            v.line.starts_with("INCOMPLETE: 1 entry could not be read"),
            "{}",
            v.line
        );
        assert!(v.line.contains("2 missing"), "{}", v.line);
        let scan = json!({"command": "scan", "files": 3, "unreadable": 2});
        let v = judge(scan.as_object().unwrap());
        assert_eq!(v.status, Status::Incomplete);
        assert!(v.status.needs_attention());
    }
}
