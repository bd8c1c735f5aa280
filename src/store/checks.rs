//! Structural check results, one per entry row (a file's version).
//!
//! A check is made when a new or changed file is hashed and is kept with
//! the row it was made on, so an unchanged file is never read again for it;
//! every scan reports the `damaged` rows of the current manifest.

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::{Batch, Index};
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
    /// each with its format and detail.
    pub fn damaged_current(&self, root_id: i64) -> Result<Vec<(Entry, String, String)>> {
        let sql = "SELECT e.path, e.kind, e.size, e.mtime_ns, e.ctime_ns, e.inode, e.blake3, e.md5, e.sha256, e.target, e.since_run, e.trusted_blake3, e.crc64nvme, c.format, c.detail
             FROM entries e JOIN checks c
               ON c.root_id = e.root_id AND c.path = e.path AND c.since_run = e.since_run
             WHERE e.root_id = ?1 AND e.until_run IS NULL AND c.verdict = 'damaged'
             ORDER BY e.path";
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map(params![root_id], |row| {
            let entry = super::entries::entry_from_row(row)?;
            let format: String = row.get(13)?;
            let detail: Option<String> = row.get(14)?;
            Ok((entry, format, detail.unwrap_or_default()))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
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
    /// The keys of entries run `run_id` opened or closed (what it changed).
    pub fn keys_changed_in(&self, root_id: i64, run_id: i64) -> Result<Vec<Vec<u8>>> {
        let mut stmt = self.conn.prepare(
            "SELECT path FROM entries WHERE root_id = ?1 AND (since_run = ?2 OR until_run = ?2)",
        )?;
        let rows = stmt.query_map(params![root_id, run_id], |r| r.get::<_, Vec<u8>>(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
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
