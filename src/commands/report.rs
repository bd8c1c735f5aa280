//! `vouch report` and `vouch history`: past runs, read back from the index.
//!
//! Nothing here touches a tree or a remote, and the index is opened
//! read-only (WAL lets this run while another vouch writes). Discrepancies
//! are stored per run with their `first_seen`; the changes of a scan run
//! (added, modified, deleted) are not stored twice but derived from the
//! temporal `entries` table: a row the run opened with no row it closed is
//! an addition, and so on.

use std::io::Write;

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

use super::{Context, with_report};
use crate::model::{Finding, Kind, Outcome, format_time};
use crate::out::atomic::Output;
use crate::out::{Sink, history};
use crate::store::Index;

/// `vouch report [--run N] [--kind K]`.
pub fn run(ctx: &Context, run_id: Option<i64>, kind: Option<Kind>) -> Result<Outcome> {
    let index = ctx.read_index()?;
    with_report(ctx, |sink| report(&index, run_id, kind, sink))
}

/// `vouch history`: every run in the index.
pub fn history(ctx: &Context) -> Result<Outcome> {
    let index = ctx.read_index()?;
    let runs = index.runs()?;
    let mut out = Output::open(ctx.local_output()?)?;
    history::history(&runs, ctx.format, &mut out)?;
    out.flush()?;
    out.commit()?;
    Ok(Outcome::Clean)
}

/// Re-prints the findings of run `run_id` (default: the latest finished
/// run), optionally only those of one kind. Exit 1 when the run's
/// findings include a discrepancy (listed or not: `--kind` narrows the
/// list, not the verdict); exit 2 when the run failed or never finished.
pub fn report(
    index: &Index,
    run_id: Option<i64>,
    kind: Option<Kind>,
    sink: &mut dyn Sink,
) -> Result<Outcome> {
    let run = match run_id {
        Some(id) => match index.run(id)? {
            Some(run) => run,
            None => bail!("run {id} is not in index {}", index.path().display()),
        },
        None => match index
            .runs()?
            .into_iter()
            .rev()
            .find(|r| r.finished_at.is_some())
        {
            Some(run) => run,
            None => bail!("index {} holds no finished run", index.path().display()),
        },
    };
    let mut discrepancy = false;
    let mut emit = |f: Finding, sink: &mut dyn Sink| -> Result<()> {
        discrepancy |= f.kind.is_discrepancy();
        if kind.is_none_or(|k| k == f.kind) {
            sink.finding(&f)?;
        }
        Ok(())
    };
    // A run without a remote scanned (a `scan`, or the first half of an
    // `audit`): its changes are in the manifest's history.
    if run.remote.is_none() && kind.is_none_or(|k| !k.is_discrepancy()) {
        for f in index.scan_changes(run.id) {
            emit(f?, sink)?;
        }
    }
    // An audit's own scan found its corrupt, unreadable and shrunk files:
    // they count in the audit's totals, so they are listed with it.
    let scan_run = run
        .summary
        .as_deref()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|s| s.get("scan")?.get("run")?.as_i64())
        .filter(|_| run.remote.is_some());
    // Streamed from the index a page at a time, never held whole.
    for id in scan_run.into_iter().chain([run.id]) {
        for f in index.findings_of_run(id) {
            emit(f?, sink)?;
        }
    }
    let mut summary = match run.summary.as_deref().map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(m))) => m,
        _ => Map::new(),
    };
    summary.insert("run".into(), json!(run.id));
    if !summary.contains_key("command") {
        summary.insert("command".into(), json!(run.command));
    }
    if run.finished_at.is_none() && !summary.contains_key("error") {
        let why = if run.status == "interrupted" {
            "the run was interrupted (killed before it finished)"
        } else {
            "the run never finished (still running, or killed)"
        };
        summary.insert("error".into(), json!(why));
    }
    // `status` is the verdict (added by the report); the index's word for
    // the run is `run_status`.
    summary.insert("run_status".into(), json!(run.status));
    summary.insert("started_at".into(), json!(format_time(run.started_at)));
    let failed = summary
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string);
    sink.finish(&summary)?;
    // A run that failed or never finished proves nothing: the report is
    // complete (it says why), and the exit status is 2 like the run's.
    if let Some(error) = failed {
        bail!("run {} did not complete: {error}", run.id);
    }
    Ok(if discrepancy {
        Outcome::Discrepancies
    } else {
        Outcome::Clean
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Entry, EntryKind, NewEntry, Stat};
    use crate::store::LockWait;

    /// Checks each finding against the one expected next, holding none.
    struct Expect<'a> {
        expected: &'a [Finding],
        next: usize,
        summary: Option<Value>,
    }

    impl Sink for Expect<'_> {
        fn finding(&mut self, f: &Finding) -> Result<()> {
            assert_eq!(
                Some(f),
                self.expected.get(self.next),
                "finding {}",
                self.next
            );
            self.next += 1;
            Ok(())
        }

        fn finish(&mut self, summary: &Map<String, Value>) -> Result<()> {
            self.summary = Some(Value::Object(summary.clone()));
            Ok(())
        }
    }

    fn finding(kind: Kind, i: usize) -> Finding {
        let mut path = format!("d{:02}/{}{i:06}", i % 50, "x".repeat(80)).into_bytes();
        if i.is_multiple_of(997) {
            path.push(0xff);
        }
        let mut f = Finding::new(kind, path).detail(format!("n{i}"));
        if i.is_multiple_of(100) {
            f = f.local(json!({ "size": i }));
        }
        f.first_seen = Some(1_700_000_000 + i as i64);
        f
    }

    /// An audit and its scan with 30,000 findings each (and another run's
    /// findings between them): every one is listed, in the order found,
    /// while the report holds at most a page of them.
    #[test]
    fn a_report_streams_the_findings_of_an_audit_and_its_scan_in_bounded_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.sqlite3");
        let mut index = Index::open(&path, LockWait::No).unwrap();
        let scan = index.begin_run(None, "scan", None, None).unwrap();
        let other = index.begin_run(None, "scan", None, None).unwrap();
        let audit = index.begin_run(None, "audit", Some("/b"), None).unwrap();
        let n = 30_000;
        let mut expected = Vec::with_capacity(2 * n);
        let mut batch = index.batch().unwrap();
        for (run, kind) in [(scan, Kind::Corrupt), (audit, Kind::Missing)] {
            for i in 0..n {
                let f = finding(kind, i);
                batch.insert_finding(run, &f).unwrap();
                if i % 1000 == 0 {
                    batch
                        .insert_finding(other, &finding(Kind::Extra, i))
                        .unwrap();
                }
                expected.push(f);
            }
        }
        batch.commit().unwrap();
        index.finish_run(scan, "ok", Some(1), None, "{}").unwrap();
        let summary = json!({ "command": "audit", "scan": { "run": scan } });
        index
            .finish_run(audit, "ok", Some(1), None, &summary.to_string())
            .unwrap();
        drop(index);
        let index = Index::open_read_only(&path).unwrap();
        let mut sink = Expect {
            expected: &expected,
            next: 0,
            summary: None,
        };
        let (outcome, held) = crate::heap::peak(|| report(&index, Some(audit), None, &mut sink));
        assert_eq!(outcome.unwrap(), Outcome::Discrepancies);
        assert_eq!(sink.next, 2 * n);
        assert_eq!(sink.summary.unwrap()["run"], json!(audit));
        // A page is 4,096 findings of ~250 bytes; all 60,000 are ~15 MB.
        assert!(held < 3 << 20, "{held} bytes held");
    }

    fn entry(path: Vec<u8>, size: u64, since_run: i64) -> (NewEntry, Entry) {
        let stat = Stat {
            size,
            mtime_ns: 1,
            ctime_ns: 1,
            inode: 1,
        };
        let blake3 = Some(*blake3::hash(&path).as_bytes());
        let new = NewEntry {
            path: path.clone(),
            kind: EntryKind::File,
            stat,
            blake3,
            md5: None,
            sha256: None,
            target: None,
            trusted_blake3: None,
            crc64nvme: None,
        };
        let old = Entry {
            path,
            kind: EntryKind::File,
            stat,
            blake3,
            md5: None,
            sha256: None,
            target: None,
            since_run,
            trusted_blake3: None,
            crc64nvme: None,
        };
        (new, old)
    }

    /// A scan that added 30,000 files, modified 10,000 and deleted
    /// 10,000: every change is listed (the added and modified by path,
    /// then the deleted by path) while the report holds at most a page.
    #[test]
    fn a_report_streams_the_changes_of_a_scan_in_bounded_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.sqlite3");
        let mut index = Index::open(&path, LockWait::No).unwrap();
        let root = index.root_id(std::path::Path::new("/srv/data")).unwrap();
        let first = index.begin_run(Some(root), "scan", None, None).unwrap();
        let key = |i: usize| format!("d{:02}/{}{i:06}", i % 50, "x".repeat(80)).into_bytes();
        let n = 30_000;
        let mut batch = index.batch().unwrap();
        let mut olds = Vec::new();
        for i in 0..n {
            let (new, old) = entry(key(i), 3, first);
            batch.insert_entry(root, first, &new).unwrap();
            olds.push(old);
        }
        batch.commit().unwrap();
        index.finish_run(first, "ok", Some(0), None, "{}").unwrap();
        let scan = index.begin_run(Some(root), "scan", None, None).unwrap();
        let (mut opened, mut closed) = (Vec::new(), Vec::new());
        let mut batch = index.batch().unwrap();
        for (i, old) in olds.iter().enumerate() {
            let local = |size: u64, p: &[u8]| json!({ "size": size, "blake3": blake3::hash(p).to_hex().as_str() });
            match i % 3 {
                0 => {
                    batch.close_entry(root, old, scan).unwrap();
                    closed.push(
                        Finding::new(Kind::Deleted, old.path.clone()).local(json!({ "size": 3 })),
                    );
                }
                1 => {
                    let (new, _) = entry(old.path.clone(), 5, scan);
                    batch.replace_entry(root, scan, old, &new).unwrap();
                    opened.push(
                        Finding::new(Kind::Modified, old.path.clone()).local(local(5, &old.path)),
                    );
                }
                _ => {}
            }
            let added = key(n + i);
            let (new, _) = entry(added.clone(), 7, scan);
            batch.insert_entry(root, scan, &new).unwrap();
            opened.push(Finding::new(Kind::Added, added.clone()).local(local(7, &added)));
        }
        batch.commit().unwrap();
        index.finish_run(scan, "ok", Some(0), None, "{}").unwrap();
        drop(index);
        opened.sort_by(|a, b| a.path.cmp(&b.path));
        closed.sort_by(|a, b| a.path.cmp(&b.path));
        let expected: Vec<Finding> = opened.into_iter().chain(closed).collect();
        assert_eq!(expected.len(), 50_000);
        let index = Index::open_read_only(&path).unwrap();
        let mut sink = Expect {
            expected: &expected,
            next: 0,
            summary: None,
        };
        let (outcome, held) = crate::heap::peak(|| report(&index, Some(scan), None, &mut sink));
        assert_eq!(outcome.unwrap(), Outcome::Clean);
        assert_eq!(sink.next, expected.len());
        // A page is 4,096 changes of ~1 KB; all 50,000 are ~50 MB.
        assert!(held < 8 << 20, "{held} bytes held");
    }
}
