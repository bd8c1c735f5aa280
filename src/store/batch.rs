//! Writes, grouped into transactions of bounded size and age.
//!
//! One writer owns the index while a run writes (the scan's writer thread,
//! the audit's recorder). A large scan commits steadily, so an interrupted
//! run keeps what it finished, without paying one fsync per row.

use std::time::{Duration, Instant};

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};

use super::Index;
use crate::model::{Entry, Finding, Listed, NewEntry, Proof, now_unix};

/// Rows are named by their key: (root, path, since_run).
const CLOSE_ENTRY: &str =
    "UPDATE entries SET until_run = ?4 WHERE root_id = ?1 AND path = ?2 AND since_run = ?3";

impl Index {
    /// Starts a batch of writes; see [`Batch`].
    pub fn batch(&self) -> Result<Batch<'_>> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(Batch {
            conn: &self.conn,
            ops: 0,
            started: Instant::now(),
        })
    }
}

/// An open write transaction that commits every [`BATCH_OPS`] writes or
/// [`BATCH_AGE`], whichever comes first.
pub struct Batch<'c> {
    pub(super) conn: &'c Connection,
    ops: usize,
    started: Instant,
}

const BATCH_OPS: usize = 4096;
const BATCH_AGE: Duration = Duration::from_millis(500);

impl<'c> Batch<'c> {
    /// Counts one write; commits and begins anew when the batch is full.
    pub fn tick(&mut self) -> Result<()> {
        self.ops += 1;
        if self.ops >= BATCH_OPS || self.started.elapsed() >= BATCH_AGE {
            self.conn.execute_batch("COMMIT; BEGIN IMMEDIATE")?;
            self.ops = 0;
            self.started = Instant::now();
        }
        Ok(())
    }

    pub fn commit(self) -> Result<()> {
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    /// Inserts the current row of `e.path` as of `run_id`; returns the
    /// row's `since_run` (`run_id`), which with the path names it.
    pub fn insert_entry(&mut self, root_id: i64, run_id: i64, e: &NewEntry) -> Result<i64> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO entries(root_id, path, kind, size, mtime_ns, ctime_ns, inode, blake3, md5, sha256, target, since_run, trusted_blake3)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        stmt.execute(params![
            root_id,
            e.path,
            e.kind as i64,
            e.stat.size as i64,
            e.stat.mtime_ns,
            e.stat.ctime_ns,
            e.stat.inode as i64,
            e.blake3.as_ref().map(|h| h.as_slice()),
            e.md5.as_ref().map(|h| h.as_slice()),
            e.sha256.as_ref().map(|h| h.as_slice()),
            e.target,
            run_id,
            e.trusted_blake3.as_ref().map(|h| h.as_slice())
        ])?;
        self.tick()?;
        Ok(run_id)
    }

    /// Rewrites row `old` in place: for metadata-only changes, and for rows
    /// the current run itself inserted.
    pub fn update_entry(&mut self, root_id: i64, old: &Entry, e: &NewEntry) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "UPDATE entries SET kind = ?4, size = ?5, mtime_ns = ?6, ctime_ns = ?7, inode = ?8,
                 blake3 = ?9, md5 = ?10, sha256 = ?11, target = ?12, trusted_blake3 = ?13
             WHERE root_id = ?1 AND path = ?2 AND since_run = ?3",
        )?;
        stmt.execute(params![
            root_id,
            old.path,
            old.since_run,
            e.kind as i64,
            e.stat.size as i64,
            e.stat.mtime_ns,
            e.stat.ctime_ns,
            e.stat.inode as i64,
            e.blake3.as_ref().map(|h| h.as_slice()),
            e.md5.as_ref().map(|h| h.as_slice()),
            e.sha256.as_ref().map(|h| h.as_slice()),
            e.target,
            e.trusted_blake3.as_ref().map(|h| h.as_slice())
        ])?;
        self.tick()
    }

    /// Ends row `old`'s validity at `run_id` (the path was deleted or
    /// replaced).
    pub fn close_entry(&mut self, root_id: i64, old: &Entry, run_id: i64) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(CLOSE_ENTRY)?;
        stmt.execute(params![root_id, old.path, old.since_run, run_id])?;
        self.tick()
    }

    /// Replaces `old` by `new` as of `run_id`, keeping history: a row from
    /// an earlier run is closed and a new one inserted; a row this run
    /// inserted is simply rewritten. Returns the `since_run` of the row
    /// now current.
    pub fn replace_entry(
        &mut self,
        root_id: i64,
        run_id: i64,
        old: &Entry,
        new: &NewEntry,
    ) -> Result<i64> {
        if old.since_run == run_id {
            self.update_entry(root_id, old, new).map(|()| old.since_run)
        } else {
            // Close without counting a write: a batch commit between the
            // close and the insert would leave, after a crash, no current
            // row for the path (and the next run would call it new).
            self.conn.prepare_cached(CLOSE_ENTRY)?.execute(params![
                root_id,
                old.path,
                old.since_run,
                run_id
            ])?;
            self.insert_entry(root_id, run_id, new)
        }
    }

    /// Stores a discrepancy of run `run_id`. Its `first_seen` carries over
    /// from `prev_run` when that run reported the same kind at the same
    /// path; otherwise it is first seen now. Changes (added, modified,
    /// deleted) and `unverified` are not stored: they are derived from
    /// `entries` or counted in the summary.
    pub fn record_finding(
        &mut self,
        run_id: i64,
        prev_run: Option<i64>,
        f: &mut Finding,
    ) -> Result<()> {
        if !f.kind.is_discrepancy() {
            return Ok(());
        }
        let carried: Option<Option<i64>> = match prev_run {
            Some(run) => self
                .conn
                .prepare_cached(
                    "SELECT first_seen FROM findings WHERE run_id = ?1 AND path = ?2 AND kind = ?3 LIMIT 1",
                )?
                .query_row(params![run, f.path, f.kind.name()], |r| r.get(0))
                .optional()?,
            None => None,
        };
        f.first_seen = Some(carried.flatten().unwrap_or_else(now_unix));
        self.insert_finding(run_id, f)
    }

    pub fn insert_finding(&mut self, run_id: i64, f: &Finding) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO findings(run_id, kind, path, local, remote, detail, first_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        stmt.execute(params![
            run_id,
            f.kind.name(),
            f.path,
            f.local.as_ref().map(|v| v.to_string()),
            f.remote.as_ref().map(|v| v.to_string()),
            f.detail,
            f.first_seen
        ])?;
        self.tick()
    }
}

impl Batch<'_> {
    /// Records one listed object; a changed size or fingerprint leaves the
    /// old verification in place but it no longer counts (see
    /// [`RemoteRow::known_blake3`]).
    pub fn upsert_listed(&mut self, remote: &str, obj: &Listed, run_id: i64) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO remote_objects(remote, key, size, etag, version, last_modified, seen_run, storage_class)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(remote, key) DO UPDATE SET size = excluded.size, etag = excluded.etag,
                 version = excluded.version, last_modified = excluded.last_modified,
                 seen_run = excluded.seen_run, storage_class = excluded.storage_class",
        )?;
        stmt.execute(params![
            remote,
            obj.key,
            obj.size as i64,
            obj.etag,
            obj.version,
            obj.last_modified,
            run_id,
            obj.storage_class
        ])?;
        self.tick()
    }

    /// Records the hash of an object's bytes at `fingerprint`, and how it
    /// was proven (`method`).
    pub fn record_read(
        &mut self,
        remote: &str,
        key: &[u8],
        blake3: &[u8; 32],
        fingerprint: &str,
        size: u64,
        method: Proof,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "UPDATE remote_objects SET verified_blake3 = ?3, verified_etag = ?4, verified_size = ?5, verified_at = ?6,
                 verified_method = ?7
             WHERE remote = ?1 AND key = ?2",
        )?;
        stmt.execute(params![
            remote,
            key,
            blake3.as_slice(),
            fingerprint,
            size as i64,
            now_unix(),
            method.name()
        ])?;
        self.tick()
    }
}
