//! Writes, grouped into transactions of bounded size and age.
//!
//! One writer owns the index while a run writes (the scan's writer thread,
//! the audit's recorder). A large scan commits steadily, so an interrupted
//! run keeps what it finished, without paying one fsync per row.
//!
//! The scan writes one `entries` row per new file (its CRC64NVME in the
//! row), and that one thread sets the ceiling of a scan of small files, so
//! that insert, and the audit's `content_digests` rows, are made as cheap
//! as SQLite allows: rows are copied
//! into reused buffers (no allocation per row) and written [`ROWS`] at a
//! time by multi-row `INSERT`s whose statements are prepared once per
//! batch (not looked up per row). Every other write, and every read made
//! through the batch, writes the buffered rows first, as does each commit,
//! so the buffer changes nothing but the cost.

use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, Statement, params};

use super::Index;
use crate::model::{Entry, Finding, Listed, NewEntry, Proof, now_unix};

/// Rows are named by their key: (root, path, since_run).
const CLOSE_ENTRY: &str =
    "UPDATE entries SET until_run = ?4 WHERE root_id = ?1 AND path = ?2 AND since_run = ?3";

const ENTRY_COLUMNS: &str = "INSERT INTO entries(root_id, path, kind, size, mtime_ns, ctime_ns, inode, blake3, md5, sha256, target, since_run, trusted_blake3, crc64nvme) VALUES ";
/// Parameters per `entries` row.
const ENTRY_PARAMS: usize = 14;
const DIGEST_COLUMNS: &str = "INSERT OR IGNORE INTO content_digests(blake3, spec, value) VALUES ";
const DIGEST_PARAMS: usize = 3;

/// Rows per multi-row `INSERT`. Chosen, not yet tuned: the count that
/// measures best on a release build is still to be found with
/// `scripts/bench`.
const ROWS: usize = 32;

/// `INSERT … VALUES (?,…),(?,…)…` for `rows` rows of `params` parameters.
fn multi_row_sql(head: &str, params: usize, rows: usize) -> String {
    let one = format!("({})", vec!["?"; params].join(","));
    format!("{head}{}", vec![one; rows].join(","))
}

impl Index {
    /// Starts a batch of writes; see [`Batch`].
    pub fn batch(&self) -> Result<Batch<'_>> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(Batch {
            raw: &self.conn,
            ops: 0,
            started: Instant::now(),
            pending: Pending::default(),
            stmts: Statements::default(),
            entry_writes: 0,
        })
    }
}

/// An `entries` row waiting in the buffer; its path and target are ranges
/// of [`Pending::bytes`].
struct EntryRow {
    root_id: i64,
    run_id: i64,
    kind: i64,
    size: i64,
    mtime_ns: i64,
    ctime_ns: i64,
    inode: i64,
    blake3: Option<[u8; 32]>,
    md5: Option<[u8; 16]>,
    sha256: Option<[u8; 32]>,
    trusted_blake3: Option<[u8; 32]>,
    crc64nvme: Option<[u8; 8]>,
    path: Range<usize>,
    target: Option<Range<usize>>,
}

/// A `content_digests` row waiting in the buffer.
struct DigestRow {
    blake3: [u8; 32],
    spec: Range<usize>,
    value: Range<usize>,
}

/// Rows not yet handed to SQLite; the vectors are reused, so a steady
/// scan allocates nothing per row.
#[derive(Default)]
struct Pending {
    entries: Vec<EntryRow>,
    digests: Vec<DigestRow>,
    bytes: Vec<u8>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.digests.is_empty()
    }

    fn keep(&mut self, b: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(b);
        start..self.bytes.len()
    }
}

/// The buffered inserts' statements, prepared on first use and kept for
/// the batch's life (across its commits).
#[derive(Default)]
struct Statements<'c> {
    entry_one: Option<Statement<'c>>,
    entry_many: Option<Statement<'c>>,
    digest_one: Option<Statement<'c>>,
    digest_many: Option<Statement<'c>>,
}

fn prepared<'s, 'c>(
    slot: &'s mut Option<Statement<'c>>,
    conn: &'c Connection,
    sql: impl FnOnce() -> String,
) -> Result<&'s mut Statement<'c>> {
    if slot.is_none() {
        *slot = Some(conn.prepare(&sql())?);
    }
    Ok(slot.as_mut().expect("just prepared"))
}

fn bind_entry(stmt: &mut Statement<'_>, at: usize, r: &EntryRow, bytes: &[u8]) -> Result<()> {
    fn blob(h: &Option<[u8; 32]>) -> Option<&[u8]> {
        h.as_ref().map(|h| h.as_slice())
    }
    stmt.raw_bind_parameter(at + 1, r.root_id)?;
    stmt.raw_bind_parameter(at + 2, &bytes[r.path.clone()])?;
    stmt.raw_bind_parameter(at + 3, r.kind)?;
    stmt.raw_bind_parameter(at + 4, r.size)?;
    stmt.raw_bind_parameter(at + 5, r.mtime_ns)?;
    stmt.raw_bind_parameter(at + 6, r.ctime_ns)?;
    stmt.raw_bind_parameter(at + 7, r.inode)?;
    stmt.raw_bind_parameter(at + 8, blob(&r.blake3))?;
    stmt.raw_bind_parameter(at + 9, r.md5.as_ref().map(|h| h.as_slice()))?;
    stmt.raw_bind_parameter(at + 10, blob(&r.sha256))?;
    stmt.raw_bind_parameter(at + 11, r.target.clone().map(|t| &bytes[t]))?;
    stmt.raw_bind_parameter(at + 12, r.run_id)?;
    stmt.raw_bind_parameter(at + 13, blob(&r.trusted_blake3))?;
    stmt.raw_bind_parameter(at + 14, r.crc64nvme.as_ref().map(|h| h.as_slice()))?;
    Ok(())
}

fn bind_digest(stmt: &mut Statement<'_>, at: usize, r: &DigestRow, bytes: &[u8]) -> Result<()> {
    stmt.raw_bind_parameter(at + 1, r.blake3.as_slice())?;
    // The spec is ASCII (`full:crc64nvme`, `part:…`), kept as it came.
    let spec = std::str::from_utf8(&bytes[r.spec.clone()])?;
    stmt.raw_bind_parameter(at + 2, spec)?;
    stmt.raw_bind_parameter(at + 3, &bytes[r.value.clone()])?;
    Ok(())
}

/// Writes `rows` with `many` (ROWS at a time) and `one` (the rest), in
/// order.
fn write_rows<'c, T>(
    conn: &'c Connection,
    rows: &[T],
    bytes: &[u8],
    (many, one): (&mut Option<Statement<'c>>, &mut Option<Statement<'c>>),
    (head, params): (&str, usize),
    bind: fn(&mut Statement<'_>, usize, &T, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut chunks = rows.chunks_exact(ROWS);
    for chunk in &mut chunks {
        let stmt = prepared(many, conn, || multi_row_sql(head, params, ROWS))?;
        for (i, r) in chunk.iter().enumerate() {
            bind(stmt, i * params, r, bytes)?;
        }
        stmt.raw_execute()?;
    }
    for r in chunks.remainder() {
        let stmt = prepared(one, conn, || multi_row_sql(head, params, 1))?;
        bind(stmt, 0, r, bytes)?;
        stmt.raw_execute()?;
    }
    Ok(())
}

const BATCH_OPS: usize = 4096;
const BATCH_AGE: Duration = Duration::from_millis(500);

/// An open write transaction that commits every `BATCH_OPS` writes or
/// `BATCH_AGE`, whichever comes first.
pub struct Batch<'c> {
    raw: &'c Connection,
    ops: usize,
    started: Instant,
    pending: Pending,
    stmts: Statements<'c>,
    /// `entries` rows inserted, updated or closed through this batch.
    entry_writes: u64,
}

impl<'c> Batch<'c> {
    /// The connection, once the buffered rows are written: every write
    /// and read through the batch other than the buffered inserts goes
    /// through here, so it sees (and follows) every row inserted before it.
    pub(super) fn conn(&mut self) -> Result<&'c Connection> {
        self.flush()?;
        Ok(self.raw)
    }

    /// Writes the buffered rows.
    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let p = &self.pending;
        let s = &mut self.stmts;
        write_rows(
            self.raw,
            &p.entries,
            &p.bytes,
            (&mut s.entry_many, &mut s.entry_one),
            (ENTRY_COLUMNS, ENTRY_PARAMS),
            bind_entry,
        )?;
        write_rows(
            self.raw,
            &p.digests,
            &p.bytes,
            (&mut s.digest_many, &mut s.digest_one),
            (DIGEST_COLUMNS, DIGEST_PARAMS),
            bind_digest,
        )?;
        self.pending.entries.clear();
        self.pending.digests.clear();
        self.pending.bytes.clear();
        Ok(())
    }

    /// Counts one write; commits and begins anew when the batch is full.
    pub fn tick(&mut self) -> Result<()> {
        self.ops += 1;
        if self.pending.entries.len() >= ROWS {
            // Whole statements' worth: write them now, so the buffer stays
            // small and SQLite's pages stay warm.
            self.flush()?;
        }
        if self.ops >= BATCH_OPS || self.started.elapsed() >= BATCH_AGE {
            self.conn()?.execute_batch("COMMIT; BEGIN IMMEDIATE")?;
            self.ops = 0;
            self.started = Instant::now();
        }
        Ok(())
    }

    /// How many `entries` rows this batch inserted, updated or closed:
    /// none means the manifest is as it was before it.
    pub fn entry_writes(&self) -> u64 {
        self.entry_writes
    }

    pub fn commit(mut self) -> Result<()> {
        self.conn()?.execute_batch("COMMIT")?;
        Ok(())
    }

    /// Inserts the current row of `e.path` as of `run_id`; returns the
    /// row's `since_run` (`run_id`), which with the path names it. The row
    /// is buffered (see the module's note).
    pub fn insert_entry(&mut self, root_id: i64, run_id: i64, e: &NewEntry) -> Result<i64> {
        self.entry_writes += 1;
        let p = &mut self.pending;
        let path = p.keep(&e.path);
        let target = e.target.as_deref().map(|t| p.keep(t));
        p.entries.push(EntryRow {
            root_id,
            run_id,
            kind: e.kind as i64,
            size: e.stat.size as i64,
            mtime_ns: e.stat.mtime_ns,
            ctime_ns: e.stat.ctime_ns,
            inode: e.stat.inode as i64,
            blake3: e.blake3,
            md5: e.md5,
            sha256: e.sha256,
            trusted_blake3: e.trusted_blake3,
            crc64nvme: e.crc64nvme,
            path,
            target,
        });
        self.tick()?;
        Ok(run_id)
    }

    /// Caches one digest of the content whose BLAKE3 is `blake3` (kept
    /// if one is there). Buffered, like [`Batch::insert_entry`].
    pub fn record_digest(&mut self, blake3: &[u8; 32], spec: &str, value: &[u8]) -> Result<()> {
        let p = &mut self.pending;
        let spec = p.keep(spec.as_bytes());
        let value = p.keep(value);
        p.digests.push(DigestRow {
            blake3: *blake3,
            spec,
            value,
        });
        // Not a write of the manifest: it rides the transactions of the
        // entries it goes with, and does not count towards a commit.
        // Counting it committed twice as often, and its keys are random
        // (a BLAKE3), so every commit rewrote most of the table's pages
        // into the WAL: commits, not rows, were the writer's cost.
        if p.digests.len() >= ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Rewrites row `old` in place: for metadata-only changes, and for rows
    /// the current run itself inserted.
    pub fn update_entry(&mut self, root_id: i64, old: &Entry, e: &NewEntry) -> Result<()> {
        self.entry_writes += 1;
        let mut stmt = self.conn()?.prepare_cached(
            "UPDATE entries SET kind = ?4, size = ?5, mtime_ns = ?6, ctime_ns = ?7, inode = ?8,
                 blake3 = ?9, md5 = ?10, sha256 = ?11, target = ?12, trusted_blake3 = ?13,
                 crc64nvme = ?14
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
            e.trusted_blake3.as_ref().map(|h| h.as_slice()),
            e.crc64nvme.as_ref().map(|h| h.as_slice())
        ])?;
        self.tick()
    }

    /// Ends row `old`'s validity at `run_id` (the path was deleted or
    /// replaced).
    pub fn close_entry(&mut self, root_id: i64, old: &Entry, run_id: i64) -> Result<()> {
        self.entry_writes += 1;
        let mut stmt = self.conn()?.prepare_cached(CLOSE_ENTRY)?;
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
            self.conn()?.prepare_cached(CLOSE_ENTRY)?.execute(params![
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
                .conn()?
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
        let mut stmt = self.conn()?.prepare_cached(
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
    /// [`RemoteRow::known_blake3`](crate::model::RemoteRow::known_blake3)).
    pub fn upsert_listed(&mut self, remote: &str, obj: &Listed, run_id: i64) -> Result<()> {
        let mut stmt = self.conn()?.prepare_cached(
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
        let mut stmt = self.conn()?.prepare_cached(
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
