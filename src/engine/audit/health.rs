//! Coverage and freshness of the whole backup: the headline a report
//! leads with (`remote_empty`, `low_coverage`, `stale`), decided before any
//! per-file line instead of burying an empty backup in N `missing` lines.
//!
//! The checks are one pure function of whole-backup counters
//! ([`backup_findings`]), so an audit (which counts from its index) and
//! `vouch merge` (which adds up the counters of N shard reports, since no
//! single shard can tell whether the whole backup is empty or covered)
//! decide the same way with the same words.

use anyhow::Result;
use serde_json::json;

use super::{AuditOptions, fraction};
use crate::model::{Finding, Kind, format_time, now_unix};
use crate::store::{Coverage, Index};

/// Whole-backup findings, decided before any per-file line.
pub(super) struct Health {
    pub(super) held_files: u64,
    pub(super) held_bytes: u64,
    pub(super) newest: Option<i64>,
    pub(super) findings: Vec<Finding>,
}

/// Coverage and freshness of the whole backup, from the index.
pub(super) fn backup_health(
    index: &Index,
    root_id: i64,
    remote: &str,
    run_id: i64,
    opts: &AuditOptions,
) -> Result<Health> {
    let totals = index.coverage(root_id, remote, run_id)?;
    let policy = Policy {
        min_coverage: opts.min_coverage,
        max_age: opts.max_age,
    };
    Ok(Health {
        held_files: totals.held_files,
        held_bytes: totals.held_bytes,
        newest: totals.newest,
        findings: backup_findings(&totals, &policy, now_unix()),
    })
}

/// The thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub min_coverage: f64,
    /// Seconds.
    pub max_age: Option<i64>,
}

fn age_text(secs: i64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(secs.max(0) as u64)).to_string()
}

/// The whole-backup findings, in the order a report leads with them.
pub fn backup_findings(t: &Coverage, policy: &Policy, now: i64) -> Vec<Finding> {
    let mut findings = Vec::new();
    let (local_files, local_bytes) = (t.local_files, t.local_bytes);
    let (held_files, held_bytes) = (t.held_files, t.held_bytes);
    let whole = json!({ "files": local_files, "bytes": local_bytes });
    if local_files > 0 && t.objects == 0 {
        findings.push(
            Finding::new(Kind::RemoteEmpty, Vec::new())
                .local(whole)
                .remote(json!({ "objects": 0 }))
                .detail(format!(
                    "the backup holds no objects; the manifest has {local_files} files ({local_bytes} bytes)"
                )),
        );
    } else if local_files > 0 {
        let files = fraction(held_files, local_files);
        let bytes = fraction(held_bytes, local_bytes);
        if files < policy.min_coverage || bytes < policy.min_coverage {
            findings.push(
                Finding::new(Kind::LowCoverage, Vec::new())
                    .local(whole)
                    .remote(json!({ "files": held_files, "bytes": held_bytes }))
                    .detail(format!(
                        "the backup holds {:.1}% of the manifest's files ({held_files} of {local_files}) and {:.1}% of its bytes, below --min-coverage {}",
                        files * 100.0,
                        bytes * 100.0,
                        policy.min_coverage
                    )),
            );
        }
    }
    if let (Some(max), Some(t)) = (policy.max_age, t.newest) {
        let age = now - t;
        if age > max {
            findings.push(
                Finding::new(Kind::Stale, Vec::new())
                    .remote(json!({ "newest_object": format_time(t) }))
                    .detail(format!(
                        "the newest object is {} old, over --max-age {}: has the backup job stopped?",
                        age_text(age),
                        age_text(max),
                    )),
            );
        }
    }
    findings
}

/// `stale` for an inventory report older than `--max-age`: the listing
/// itself is out of date, whatever the backup did since.
pub fn inventory_finding(
    manifest: &str,
    created: i64,
    policy: &Policy,
    now: i64,
) -> Option<Finding> {
    let max = policy.max_age?;
    let age = now - created;
    (age > max).then(|| {
        Finding::new(Kind::Stale, Vec::new())
            .remote(json!({
                "inventory": manifest,
                "created": format_time(created),
            }))
            .detail(format!(
                "the inventory report is {} old, over --max-age {}: is the inventory still delivered?",
                age_text(age),
                age_text(max),
            ))
    })
}

/// True for a finding about the whole backup (path `""`), which a shard
/// cannot decide alone.
pub fn is_backup_wide(f: &Finding) -> bool {
    f.path.is_empty() && matches!(f.kind, Kind::RemoteEmpty | Kind::LowCoverage | Kind::Stale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    const P: Policy = Policy {
        min_coverage: 0.99,
        max_age: Some(3600),
    };

    fn kinds(f: &[Finding]) -> Vec<Kind> {
        f.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn empty_low_and_stale() {
        let t = Coverage {
            local_files: 10,
            local_bytes: 100,
            ..Default::default()
        };
        assert_eq!(kinds(&backup_findings(&t, &P, 0)), [Kind::RemoteEmpty]);
        let t = Coverage {
            held_files: 9,
            held_bytes: 99,
            objects: 9,
            newest: Some(0),
            ..t
        };
        assert_eq!(
            kinds(&backup_findings(&t, &P, 3601)),
            [Kind::LowCoverage, Kind::Stale]
        );
        let t = Coverage {
            held_files: 10,
            held_bytes: 100,
            ..t
        };
        assert!(backup_findings(&t, &P, 3600).is_empty());
        assert!(inventory_finding("m", 0, &P, 3600).is_none());
        let f = inventory_finding("m", 0, &P, 7200).unwrap();
        assert!(is_backup_wide(&f));
        assert!(f.detail.unwrap().contains("inventory report is 2h old"));
    }
}
