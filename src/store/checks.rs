//! Structural check results, one per entry row (a file's version).
//!
//! A check is made when a new or changed file is hashed and is kept with
//! the row it was made on, so an unchanged file is never read again for it;
//! every scan reports the `damaged` rows of the current manifest.

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::{Batch, Index, PAGE, Paged};
use crate::model::{Entry, now_unix};

/// What the index keeps of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRow {
    /// `fast` or `full`.
    pub level: String,
    /// The format's stable name (`gzip`, `pg_dump`, ...).
    pub format: String,
    /// `sound`, `damaged` or `undecided`.
    pub verdict: String,
    pub detail: Option<String>,
    /// For dumps: whether this version holds table data.
    pub table_data: Option<bool>,
    /// This version or an earlier one of the path held table data.
    pub data_ever: bool,
}

impl Batch<'_> {
    /// Stores (or replaces) the check of the entry row of `path` in
    /// `root_id` that is valid since run `since_run`.
    pub fn record_check(
        &mut self,
        root_id: i64,
        path: &[u8],
        since_run: i64,
        c: &CheckRow,
    ) -> Result<()> {
        self.conn()?
            .prepare_cached(
                "INSERT OR REPLACE INTO checks(root_id, path, since_run, level, format, verdict, detail, table_data, data_ever, checked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                root_id,
                path,
                since_run,
                c.level,
                c.format,
                c.verdict,
                c.detail,
                c.table_data,
                c.data_ever,
                now_unix()
            ])?;
        self.tick()
    }

    /// Whether the check of entry row (`root_id`, `path`, `since_run`)
    /// was stored by a set check (`pg_dump-directory`, `pg_basebackup`).
    pub fn has_set_check(&mut self, root_id: i64, path: &[u8], since_run: i64) -> Result<bool> {
        Ok(self
            .conn()?
            .prepare_cached(
                "SELECT 1 FROM checks WHERE root_id = ?1 AND path = ?2 AND since_run = ?3
                   AND format IN ('pg_dump-directory', 'pg_basebackup')",
            )?
            .query_row(params![root_id, path, since_run], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Whether entry row `row` (or a version before it) held table data;
    /// `false` when it was never checked.
    pub fn data_ever(&mut self, root_id: i64, row: &Entry) -> Result<bool> {
        Ok(self
            .conn()?
            .prepare_cached(
                "SELECT data_ever FROM checks WHERE root_id = ?1 AND path = ?2 AND since_run = ?3",
            )?
            .query_row(params![root_id, row.path, row.since_run], |r| {
                r.get::<_, bool>(0)
            })
            .optional()?
            .unwrap_or(false))
    }
}

impl Index {
    /// The current files of `root_id` whose check found damage, by path:
    /// each with its format and detail, read a page (`PAGE` rows) at a
    /// time, so a tree of millions of damaged files is never held whole.
    pub fn damaged_current(
        &self,
        root_id: i64,
    ) -> impl Iterator<Item = Result<(Entry, String, String)>> + '_ {
        Paged::new(
            |row: &(Entry, String, String)| row.0.path.as_slice(),
            move |after: Option<&[u8]>| {
                let sql = "SELECT e.path, e.kind, e.size, e.mtime_ns, e.ctime_ns, e.inode, e.blake3, e.md5, e.sha256, e.target, e.since_run, e.trusted_blake3, e.crc64nvme, c.format, c.detail
                     FROM entries e JOIN checks c
                       ON c.root_id = e.root_id AND c.path = e.path AND c.since_run = e.since_run
                     WHERE e.root_id = ?1 AND e.until_run IS NULL AND c.verdict = 'damaged' AND e.path >= ?2
                     ORDER BY e.path LIMIT ?3";
                let mut stmt = self.conn.prepare_cached(sql)?;
                let rows = stmt.query_map(
                    params![root_id, after.unwrap_or_default(), PAGE as i64],
                    |row| {
                        let entry = super::entries::entry_from_row(row)?;
                        let format: String = row.get(13)?;
                        let detail: Option<String> = row.get(14)?;
                        Ok((entry, format, detail.unwrap_or_default()))
                    },
                )?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            },
        )
    }
}

/// A current file under a directory, with its check (for set checks).
#[derive(Debug, Clone)]
pub struct Member {
    /// The entry row's key: the file's key and the run that opened it.
    pub path: Vec<u8>,
    pub since_run: i64,
    pub size: u64,
    pub mtime_ns: i64,
    pub check: Option<CheckRow>,
}

fn check_from(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Option<CheckRow>> {
    let level: Option<String> = row.get(at)?;
    Ok(match level {
        None => None,
        Some(level) => Some(CheckRow {
            level,
            format: row.get(at + 1)?,
            verdict: row.get(at + 2)?,
            detail: row.get(at + 3)?,
            table_data: row.get(at + 4)?,
            data_ever: row.get::<_, Option<bool>>(at + 5)?.unwrap_or(false),
        }),
    })
}

impl Index {
    /// The directories of the entries run `run_id` opened or closed (where
    /// it changed something), each named once per run of siblings: the
    /// rows are streamed, not collected (a first scan changed them all, and
    /// a key per row cost a tenth of a second at 200,000 files).
    pub fn dirs_changed_in(&self, root_id: i64, run_id: i64) -> Result<Vec<Vec<u8>>> {
        let mut stmt = self.conn.prepare(
            "SELECT path FROM entries WHERE root_id = ?1 AND (since_run = ?2 OR until_run = ?2)",
        )?;
        let mut rows = stmt.query(params![root_id, run_id])?;
        let mut dirs: Vec<Vec<u8>> = Vec::new();
        while let Some(row) = rows.next()? {
            let dir = crate::model::paths::parent(row.get_ref(0)?.as_blob()?);
            if dirs.last().is_none_or(|d| d.as_slice() != dir) {
                dirs.push(dir.to_vec());
            }
        }
        Ok(dirs)
    }

    /// The current regular file at `key`, if any, with its check.
    pub fn current_file(&self, root_id: i64, key: &[u8]) -> Result<Option<Member>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT e.since_run, e.size, e.mtime_ns, c.level, c.format, c.verdict, c.detail, c.table_data, c.data_ever
                 FROM entries e LEFT JOIN checks c ON c.root_id = e.root_id AND c.path = e.path AND c.since_run = e.since_run
                 WHERE e.root_id = ?1 AND e.path = ?2 AND e.until_run IS NULL AND e.kind = {}",
                super::FILE
            ))?
            .query_row(params![root_id, key], |r| {
                Ok(Member {
                    path: key.to_vec(),
                    since_run: r.get(0)?,
                    size: r.get::<_, i64>(1)? as u64,
                    mtime_ns: r.get(2)?,
                    check: check_from(r, 3)?,
                })
            })
            .optional()?)
    }

    /// Every current regular file strictly inside directory `dir` (a key;
    /// `""` is ROOT), by key, with its check.
    pub fn files_inside(&self, root_id: i64, dir: &[u8]) -> Result<Vec<(Vec<u8>, Member)>> {
        let (lo, hi) = if dir.is_empty() {
            (Vec::new(), vec![0xffu8; 1])
        } else {
            let mut lo = dir.to_vec();
            lo.push(0);
            let mut hi = dir.to_vec();
            hi.push(1);
            (lo, hi)
        };
        let mut stmt = self.conn.prepare(&format!(
            "SELECT e.path, e.since_run, e.size, e.mtime_ns, c.level, c.format, c.verdict, c.detail, c.table_data, c.data_ever
             FROM entries e LEFT JOIN checks c ON c.root_id = e.root_id AND c.path = e.path AND c.since_run = e.since_run
             WHERE e.root_id = ?1 AND e.until_run IS NULL AND e.kind = {} AND e.path > ?2 AND e.path < ?3",
            super::FILE
        ))?;
        let rows = stmt.query_map(params![root_id, lo, hi], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                Member {
                    path: r.get(0)?,
                    since_run: r.get(1)?,
                    size: r.get::<_, i64>(2)? as u64,
                    mtime_ns: r.get(3)?,
                    check: check_from(r, 4)?,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Current files whose check row has `format` and `level`, by key.
    pub fn checked_with(&self, root_id: i64, format: &str, level: &str) -> Result<Vec<Vec<u8>>> {
        let mut stmt = self.conn.prepare(
            "SELECT e.path FROM entries e JOIN checks c ON c.root_id = e.root_id AND c.path = e.path AND c.since_run = e.since_run
             WHERE e.root_id = ?1 AND e.until_run IS NULL AND c.format = ?2 AND c.level = ?3",
        )?;
        let rows = stmt.query_map(params![root_id, format, level], |r| r.get::<_, Vec<u8>>(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::model::{EntryKind, NewEntry, Stat};
    use crate::store::LockWait;

    /// 30,000 damaged files among sound and unchecked ones, past several
    /// pages: each damaged one once, in key order, with its detail, while
    /// at most a page of them is held.
    #[test]
    fn damaged_current_streams_every_damaged_file_once_in_key_order_in_bounded_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = Index::open(&dir.path().join("i.sqlite3"), LockWait::No).unwrap();
        let root = index.root_id(Path::new("/srv/data")).unwrap();
        let run = index.begin_run(Some(root), "scan", None, None).unwrap();
        let mut batch = index.batch().unwrap();
        let mut expected = Vec::new();
        for i in 0..40_000u32 {
            let mut path = format!("d{}/{}{i:06}.gz", i % 7, "x".repeat(80)).into_bytes();
            if i % 1000 == 0 {
                path.push(0xff);
            }
            let new = NewEntry {
                path: path.clone(),
                kind: EntryKind::File,
                stat: Stat {
                    size: 3,
                    mtime_ns: 1,
                    ctime_ns: 1,
                    inode: u64::from(i),
                },
                blake3: Some([7; 32]),
                md5: None,
                sha256: None,
                target: None,
                trusted_blake3: None,
                crc64nvme: None,
            };
            batch.insert_entry(root, run, &new).unwrap();
            let verdict = match i % 4 {
                0 => continue,
                1 => "sound",
                _ => "damaged",
            };
            let detail = format!("cut off at {i}");
            let check = CheckRow {
                level: "fast".into(),
                format: "gzip".into(),
                verdict: verdict.into(),
                detail: Some(detail.clone()),
                table_data: None,
                data_ever: false,
            };
            batch.record_check(root, &path, run, &check).unwrap();
            if verdict == "damaged" {
                expected.push((path, detail));
            }
        }
        batch.commit().unwrap();
        expected.sort();
        let (read, held) = crate::heap::peak(|| {
            let mut read = expected.iter();
            let mut n = 0;
            for row in index.damaged_current(root) {
                let (entry, format, detail) = row.unwrap();
                let (path, want) = read.next().unwrap();
                assert_eq!(
                    (&entry.path, format.as_str(), &detail),
                    (path, "gzip", want)
                );
                n += 1;
            }
            n
        });
        assert_eq!(read, expected.len());
        assert_eq!(read, 20_000);
        // A page is 4,096 rows of ~640 bytes (2.6 MB); all 20,000 are
        // ~13 MB.
        assert!(held < 4 << 20, "{held} bytes held");
    }
}
