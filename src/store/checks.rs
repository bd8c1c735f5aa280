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
        self.conn
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

    /// Whether entry row `row` (or a version before it) held table data;
    /// `false` when it was never checked.
    pub fn data_ever(&mut self, root_id: i64, row: &Entry) -> Result<bool> {
        Ok(self
            .conn
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
        let sql = "SELECT e.path, e.kind, e.size, e.mtime_ns, e.ctime_ns, e.inode, e.blake3, e.md5, e.sha256, e.target, e.since_run, e.trusted_blake3, c.format, c.detail
             FROM entries e JOIN checks c
               ON c.root_id = e.root_id AND c.path = e.path AND c.since_run = e.since_run
             WHERE e.root_id = ?1 AND e.until_run IS NULL AND c.verdict = 'damaged'
             ORDER BY e.path";
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map(params![root_id], |row| {
            let entry = super::entries::entry_from_row(row)?;
            let format: String = row.get(12)?;
            let detail: Option<String> = row.get(13)?;
            Ok((entry, format, detail.unwrap_or_default()))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}
