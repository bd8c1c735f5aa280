//! Coverage and freshness of the whole backup: the headline a report
//! leads with (`remote_empty`, `low_coverage`, `stale`), decided before any
//! per-file line instead of burying an empty backup in N `missing` lines.

use anyhow::Result;
use serde_json::json;

use super::{AuditOptions, fraction};
use crate::engine::exclude::Excludes;
use crate::engine::join::{Pair, merge_join};
use crate::model::{EntryKind, Finding, Kind, format_time, now_unix};
use crate::store::{Coverage, Index, Rows};

/// Whole-backup findings, decided before any per-file line.
pub(super) struct Health {
    pub(super) held_files: u64,
    pub(super) held_bytes: u64,
    pub(super) newest: Option<i64>,
    pub(super) findings: Vec<Finding>,
}

/// Coverage and freshness of the whole backup: the headline a report
/// leads with, instead of burying an empty backup in N `missing` lines.
pub(super) fn backup_health(
    index: &Index,
    root_id: i64,
    remote: &str,
    run_id: i64,
    opts: &AuditOptions,
) -> Result<Health> {
    let Coverage {
        local_files,
        local_bytes,
        held_files,
        held_bytes,
        objects,
        newest,
    } = if opts.excludes.is_empty() {
        index.coverage(root_id, remote, run_id)?
    } else {
        coverage_excluding(index, root_id, remote, run_id, &opts.excludes)?
    };
    let mut findings = Vec::new();
    let whole = json!({ "files": local_files, "bytes": local_bytes });
    if local_files > 0 && objects == 0 {
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
        if files < opts.min_coverage || bytes < opts.min_coverage {
            findings.push(
                Finding::new(Kind::LowCoverage, Vec::new())
                    .local(whole)
                    .remote(json!({ "files": held_files, "bytes": held_bytes }))
                    .detail(format!(
                        "the backup holds {:.1}% of the manifest's files ({held_files} of {local_files}) and {:.1}% of its bytes, below --min-coverage {}",
                        files * 100.0,
                        bytes * 100.0,
                        opts.min_coverage
                    )),
            );
        }
    }
    if let (Some(max), Some(t)) = (opts.max_age, newest) {
        let age = now_unix() - t;
        if age > max {
            findings.push(
                Finding::new(Kind::Stale, Vec::new())
                    .remote(json!({ "newest_object": format_time(t) }))
                    .detail(format!(
                        "the newest object is {} old, over --max-age {}: has the backup job stopped?",
                        humantime::format_duration(std::time::Duration::from_secs(age as u64)),
                        humantime::format_duration(std::time::Duration::from_secs(max as u64)),
                    )),
            );
        }
    }
    Ok(Health {
        held_files,
        held_bytes,
        newest,
        findings,
    })
}

/// [`Index::coverage`] of what the excludes leave in, on both sides: one
/// merge-join of the manifest and the listing (the SQL cannot see the
/// rules).
fn coverage_excluding(
    index: &Index,
    root_id: i64,
    remote: &str,
    run_id: i64,
    excludes: &Excludes,
) -> Result<Coverage> {
    let mut c = Coverage::default();
    let locals = index.current_entries(root_id, Rows::NotDirs);
    let remotes = index.listed_objects(remote, run_id);
    merge_join(locals, remotes, |pair| {
        let (local, obj) = match pair {
            Pair::LocalOnly(l) => (Some(l), None),
            Pair::RemoteOnly(r) => (None, Some(r)),
            Pair::Both(l, r) => (Some(l), Some(r)),
        };
        let key = local
            .as_ref()
            .map_or_else(|| &obj.as_ref().expect("a side").key, |l| &l.path);
        if excludes.excludes_path(key, false) {
            return Ok(());
        }
        if let Some(o) = &obj {
            c.objects += 1;
            c.newest = c.newest.max(Some(o.last_modified));
        }
        if let Some(l) = local.filter(|l| l.kind == EntryKind::File) {
            c.local_files += 1;
            c.local_bytes += l.stat.size;
            if obj.is_some_and(|o| o.size == l.stat.size) {
                c.held_files += 1;
                c.held_bytes += l.stat.size;
            }
        }
        Ok(())
    })?;
    Ok(c)
}
