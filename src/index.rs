//! The index: one SQLite file that holds manifests, runs and findings.
//!
//! Why SQLite: one file, crash-safe commits, and sorted range reads, which
//! the merge-joins of scan and audit are built on. The connection runs in
//! WAL mode, so `report` and `history` can read while a scan writes.
//!
//! Entries are *temporal*: a row is valid from `since_run` until
//! `until_run` (NULL while current). A content change closes the old row
//! and inserts a new one, so the manifest of any finished run can be read
//! back (`@RUN` / `@LABEL` snapshots) without copying it. Directory rows
//! carry their Merkle hash in `blake3`, versioned the same way.
//!
//! Migrations are append-only and keyed on `PRAGMA user_version`, in the
//! manner of cargo's `util/sqlite.rs`. Opening refuses, before writing
//! anything, a file that is not a vouch index or whose schema is newer than
//! this binary.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

/// `PRAGMA application_id` of a vouch index: "vouc".
const APPLICATION_ID: i32 = 0x766f_7563;

/// Schema migrations; entry N brings `user_version` from N to N+1.
/// Append only: never edit a migration that has shipped.
const MIGRATIONS: &[&str] = &[
    // v1
    r#"
    CREATE TABLE roots (
        id INTEGER PRIMARY KEY,
        path BLOB NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        root_id INTEGER REFERENCES roots(id),
        command TEXT NOT NULL,
        remote TEXT,
        label TEXT UNIQUE,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        status TEXT NOT NULL,
        exit_code INTEGER,
        merkle_root BLOB,
        summary TEXT
    );
    CREATE INDEX runs_by_root ON runs(root_id, id);
    CREATE TABLE entries (
        id INTEGER PRIMARY KEY,
        root_id INTEGER NOT NULL REFERENCES roots(id),
        path BLOB NOT NULL,
        kind INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        blake3 BLOB,
        md5 BLOB,
        sha256 BLOB,
        target BLOB,
        since_run INTEGER NOT NULL,
        until_run INTEGER
    );
    CREATE UNIQUE INDEX entries_current ON entries(root_id, path) WHERE until_run IS NULL;
    CREATE INDEX entries_history ON entries(root_id, path, since_run);
    CREATE TABLE findings (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        kind TEXT NOT NULL,
        path BLOB NOT NULL,
        local TEXT,
        remote TEXT,
        detail TEXT,
        first_seen INTEGER
    );
    CREATE INDEX findings_by_run ON findings(run_id, path, kind);
    CREATE TABLE remote_objects (
        remote TEXT NOT NULL,
        key BLOB NOT NULL,
        size INTEGER NOT NULL,
        etag TEXT,
        version TEXT,
        last_modified INTEGER,
        seen_run INTEGER,
        verified_blake3 BLOB,
        verified_etag TEXT,
        verified_size INTEGER,
        verified_at INTEGER,
        PRIMARY KEY (remote, key)
    ) WITHOUT ROWID;
    "#,
    // v2: `vouch report` lists a scan's deletions by the run that closed them.
    r#"
    CREATE INDEX entries_closed ON entries(root_id, until_run) WHERE until_run IS NOT NULL;
    "#,
];

/// The kind of a manifest entry, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    File = 0,
    Symlink = 1,
    Dir = 2,
}

impl EntryKind {
    pub fn from_i64(v: i64) -> Result<EntryKind> {
        Ok(match v {
            0 => EntryKind::File,
            1 => EntryKind::Symlink,
            2 => EntryKind::Dir,
            other => bail!("index holds an entry of unknown kind {other}"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Symlink => "symlink",
            EntryKind::Dir => "dir",
        }
    }
}

/// The metadata a scan compares to decide whether a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
}

/// One manifest row.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: i64,
    pub path: Vec<u8>,
    pub kind: EntryKind,
    pub stat: Stat,
    pub blake3: Option<[u8; 32]>,
    pub md5: Option<[u8; 16]>,
    pub sha256: Option<[u8; 32]>,
    pub target: Option<Vec<u8>>,
    pub since_run: i64,
}

/// What a scan learned about one path, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub path: Vec<u8>,
    pub kind: EntryKind,
    pub stat: Stat,
    pub blake3: Option<[u8; 32]>,
    pub md5: Option<[u8; 16]>,
    pub sha256: Option<[u8; 32]>,
    pub target: Option<Vec<u8>>,
}

/// A past or running run, as `history` lists it.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: i64,
    pub root: Option<Vec<u8>>,
    pub command: String,
    pub remote: Option<String>,
    pub label: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub status: String,
    pub exit_code: Option<i64>,
    pub merkle_root: Option<[u8; 32]>,
    pub summary: Option<String>,
}

/// How to wait for the index lock held by another vouch process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Fail at once with a clear message.
    No,
    /// Block until the other run finishes.
    Yes,
}

pub struct Index {
    pub conn: Connection,
    pub path: PathBuf,
    /// Held for the life of a writing `Index`; released on drop.
    _lock: Option<File>,
}

pub const SELECT_ENTRY: &str = "SELECT id, path, kind, size, mtime_ns, ctime_ns, inode, blake3, md5, sha256, target, since_run FROM entries";

/// Reads an entry from a row selected with [`SELECT_ENTRY`]'s columns.
pub fn entry_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let kind: i64 = row.get(2)?;
    Ok(Entry {
        id: row.get(0)?,
        path: row.get(1)?,
        kind: EntryKind::from_i64(kind).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Integer, e.into())
        })?,
        stat: Stat {
            size: row.get::<_, i64>(3)? as u64,
            mtime_ns: row.get(4)?,
            ctime_ns: row.get(5)?,
            inode: row.get::<_, i64>(6)? as u64,
        },
        blake3: row.get(7)?,
        md5: row.get(8)?,
        sha256: row.get(9)?,
        target: row.get(10)?,
        since_run: row.get(11)?,
    })
}

/// The default index location: `$XDG_DATA_HOME/vouch/index.sqlite3`.
pub fn default_path() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("vouch").join("index.sqlite3")
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Index {
    /// Opens (creating if absent) the index at `path` for writing, holding
    /// the index lock so that two runs never interleave their writes.
    pub fn open(path: &Path, wait: LockWait) -> Result<Index> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create index directory {}", dir.display()))?;
        }
        let lock = acquire_lock(path, wait)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open index {}", path.display()))?;
        let mut index = Index {
            conn,
            path: path.to_path_buf(),
            _lock: Some(lock),
        };
        index.check_and_migrate()?;
        index.mark_abandoned_runs()?;
        Ok(index)
    }

    /// Opens an existing index for reading only (`report`, `history`,
    /// `diff` of snapshots): takes no lock, writes nothing, and works while
    /// another process writes (WAL).
    pub fn open_read_only(path: &Path) -> Result<Index> {
        if !path.exists() {
            bail!(
                "index {} does not exist (run `vouch scan` first)",
                path.display()
            );
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open index {}", path.display()))?;
        let index = Index {
            conn,
            path: path.to_path_buf(),
            _lock: None,
        };
        let version = index.validate()?;
        if version < MIGRATIONS.len() as i64 {
            bail!(
                "index {} has schema v{version}; open it with a writing command (scan) to upgrade it to v{}",
                path.display(),
                MIGRATIONS.len()
            );
        }
        index.conn.busy_timeout(Duration::from_secs(30))?;
        Ok(index)
    }

    /// Checks that the file is a vouch index this binary understands and
    /// returns its schema version. Writes nothing.
    fn validate(&self) -> Result<i64> {
        let shown = self.path.display();
        let header = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => {
                anyhow!("{shown} is not a vouch index (not an SQLite database)")
            }
            Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
                anyhow!("index {shown} is corrupt: {e}")
            }
            _ => anyhow!("cannot read index {shown}: {e}"),
        };
        let app_id: i32 = self
            .conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(header)?;
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(header)?;
        let tables: i64 = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(header)?;
        let fresh = app_id == 0 && version == 0 && tables == 0;
        if !fresh && app_id != APPLICATION_ID {
            bail!("{shown} is an SQLite database but not a vouch index");
        }
        if version > MIGRATIONS.len() as i64 {
            bail!(
                "index {shown} has schema v{version}, newer than this vouch understands (v{}); use a newer vouch",
                MIGRATIONS.len()
            );
        }
        Ok(version)
    }

    fn check_and_migrate(&mut self) -> Result<()> {
        let version = self.validate()?;
        self.conn.busy_timeout(Duration::from_secs(30))?;
        if version > 0 {
            self.quick_check()?;
        }
        self.conn
            .pragma_update(None, "journal_mode", "WAL")
            .with_context(|| format!("cannot set WAL mode on {}", self.path.display()))?;
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        if version as usize == MIGRATIONS.len() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)
                .with_context(|| format!("index migration to v{} failed", i + 1))?;
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
        tx.commit()?;
        Ok(())
    }

    /// Refuses, before anything is written, an index with damaged pages: a
    /// run on it would commit its own writes (and checkpoint them into the
    /// file) before it stumbled on the damage part-way. A structural check
    /// reads every page once: about 0.2 s per million entries.
    fn quick_check(&self) -> Result<()> {
        let shown = self.path.display();
        let verdict: String = self
            .conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(|e| anyhow!("index {shown} is corrupt: {e}"))?;
        if verdict != "ok" {
            bail!(
                "index {shown} is corrupt ({}); move it aside (vouch then starts a new one) or restore it from a backup",
                verdict.replace('\n', " ")
            );
        }
        Ok(())
    }

    /// A run still marked `running` while we hold the lock was killed. Its
    /// label is released: an interrupted scan pins no snapshot.
    fn mark_abandoned_runs(&mut self) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET status = 'interrupted', exit_code = NULL, label = NULL WHERE status = 'running'",
            [],
        )?;
        Ok(())
    }

    /// The id of ROOT in this index, created on first use.
    pub fn root_id(&mut self, root: &Path) -> Result<i64> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = root.as_os_str().as_bytes();
        if let Some(id) = self.find_root(root)? {
            return Ok(id);
        }
        self.conn.execute(
            "INSERT INTO roots(path, created_at) VALUES (?1, ?2)",
            params![bytes, now_unix()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn find_root(&self, root: &Path) -> Result<Option<i64>> {
        use std::os::unix::ffi::OsStrExt;
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM roots WHERE path = ?1",
                [root.as_os_str().as_bytes()],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn begin_run(
        &mut self,
        root_id: Option<i64>,
        command: &str,
        remote: Option<&str>,
        label: Option<&str>,
    ) -> Result<i64> {
        if let Some(label) = label {
            let taken: Option<i64> = self
                .conn
                .query_row("SELECT id FROM runs WHERE label = ?1", [label], |r| {
                    r.get(0)
                })
                .optional()?;
            if let Some(run) = taken {
                bail!("label {label:?} already names run {run}");
            }
        }
        self.conn.execute(
            "INSERT INTO runs(root_id, command, remote, label, started_at, status) VALUES (?1, ?2, ?3, ?4, ?5, 'running')",
            params![root_id, command, remote, label, now_unix()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_run(
        &mut self,
        run_id: i64,
        status: &str,
        exit_code: Option<i64>,
        merkle_root: Option<&[u8; 32]>,
        summary: &str,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET finished_at = ?2, status = ?3, exit_code = ?4, merkle_root = ?5, summary = ?6 WHERE id = ?1",
            params![run_id, now_unix(), status, exit_code, merkle_root.map(|h| h.as_slice()), summary],
        )?;
        Ok(())
    }

    /// The last finished scan of a root, if any.
    pub fn last_scan(&self, root_id: i64) -> Result<Option<Run>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{SELECT_RUN} WHERE r.root_id = ?1 AND r.merkle_root IS NOT NULL ORDER BY r.id DESC LIMIT 1"
        ))?;
        Ok(stmt.query_row([root_id], run_from_row).optional()?)
    }

    pub fn runs(&self) -> Result<Vec<Run>> {
        let mut stmt = self.conn.prepare(&format!("{SELECT_RUN} ORDER BY r.id"))?;
        let rows = stmt.query_map([], run_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn run(&self, id: i64) -> Result<Option<Run>> {
        let mut stmt = self
            .conn
            .prepare(&format!("{SELECT_RUN} WHERE r.id = ?1"))?;
        Ok(stmt.query_row([id], run_from_row).optional()?)
    }

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

const SELECT_RUN: &str = "SELECT r.id, roots.path, r.command, r.remote, r.label, r.started_at, r.finished_at, r.status, r.exit_code, r.merkle_root, r.summary FROM runs r LEFT JOIN roots ON roots.id = r.root_id";

fn run_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        id: row.get(0)?,
        root: row.get(1)?,
        command: row.get(2)?,
        remote: row.get(3)?,
        label: row.get(4)?,
        started_at: row.get(5)?,
        finished_at: row.get(6)?,
        status: row.get(7)?,
        exit_code: row.get(8)?,
        merkle_root: row.get(9)?,
        summary: row.get(10)?,
    })
}

fn acquire_lock(index: &Path, wait: LockWait) -> Result<File> {
    let mut lock_path = index.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open lock file {}", lock_path.display()))?;
    match wait {
        LockWait::Yes => file
            .lock()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?,
        LockWait::No => match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "index {} is in use by another vouch run (pass --wait to wait for it)",
                index.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()));
            }
        },
    }
    Ok(file)
}

/// Writes grouped into transactions of bounded size and age, so a large
/// scan commits steadily (an interrupted run keeps what it finished) without
/// paying one fsync per row.
pub struct Batch<'c> {
    conn: &'c Connection,
    ops: usize,
    started: Instant,
}

const BATCH_OPS: usize = 4096;
const BATCH_AGE: Duration = Duration::from_millis(500);

impl<'c> Batch<'c> {
    pub fn conn(&self) -> &'c Connection {
        self.conn
    }

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

    pub fn insert_entry(&mut self, root_id: i64, run_id: i64, e: &NewEntry) -> Result<i64> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO entries(root_id, path, kind, size, mtime_ns, ctime_ns, inode, blake3, md5, sha256, target, since_run)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
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
            run_id
        ])?;
        let id = self.conn.last_insert_rowid();
        self.tick()?;
        Ok(id)
    }

    /// Rewrites a row in place: for metadata-only changes, and for rows the
    /// current run itself inserted.
    pub fn update_entry(&mut self, id: i64, e: &NewEntry) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "UPDATE entries SET kind = ?2, size = ?3, mtime_ns = ?4, ctime_ns = ?5, inode = ?6,
                 blake3 = ?7, md5 = ?8, sha256 = ?9, target = ?10 WHERE id = ?1",
        )?;
        stmt.execute(params![
            id,
            e.kind as i64,
            e.stat.size as i64,
            e.stat.mtime_ns,
            e.stat.ctime_ns,
            e.stat.inode as i64,
            e.blake3.as_ref().map(|h| h.as_slice()),
            e.md5.as_ref().map(|h| h.as_slice()),
            e.sha256.as_ref().map(|h| h.as_slice()),
            e.target
        ])?;
        self.tick()
    }

    /// Ends a row's validity at `run_id` (the path was deleted or replaced).
    pub fn close_entry(&mut self, id: i64, run_id: i64) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("UPDATE entries SET until_run = ?2 WHERE id = ?1")?;
        stmt.execute(params![id, run_id])?;
        self.tick()
    }

    /// Replaces `old` by `new` as of `run_id`, keeping history: a row from
    /// an earlier run is closed and a new one inserted; a row this run
    /// inserted is simply rewritten.
    pub fn replace_entry(
        &mut self,
        root_id: i64,
        run_id: i64,
        old: &Entry,
        new: &NewEntry,
    ) -> Result<()> {
        if old.since_run == run_id {
            self.update_entry(old.id, new)
        } else {
            // Close without counting a write: a batch commit between the
            // close and the insert would leave, after a crash, no current
            // row for the path (and the next run would call it new).
            self.conn
                .prepare_cached("UPDATE entries SET until_run = ?2 WHERE id = ?1")?
                .execute(params![old.id, run_id])?;
            self.insert_entry(root_id, run_id, new).map(|_| ())
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
        f: &mut crate::finding::Finding,
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

    pub fn insert_finding(&mut self, run_id: i64, f: &crate::finding::Finding) -> Result<()> {
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

/// One cached remote object: the last listing plus what vouch verified.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteRow {
    pub key: Vec<u8>,
    pub size: u64,
    pub etag: Option<String>,
    pub version: Option<String>,
    pub last_modified: i64,
    /// BLAKE3 of the bytes read, at `verified_fingerprint`.
    pub verified_blake3: Option<[u8; 32]>,
    pub verified_fingerprint: Option<String>,
    pub verified_size: Option<u64>,
    pub verified_at: Option<i64>,
}

impl RemoteRow {
    pub fn listed(&self) -> crate::remote::Listed {
        crate::remote::Listed {
            key: self.key.clone(),
            size: self.size,
            etag: self.etag.clone(),
            version: self.version.clone(),
            last_modified: self.last_modified,
        }
    }

    /// The remote's content hash, if it was read at its current version.
    pub fn known_blake3(&self) -> Option<[u8; 32]> {
        let current = self.listed().fingerprint();
        (self.verified_fingerprint.as_deref() == Some(current.as_str())
            && self.verified_size == Some(self.size))
        .then_some(self.verified_blake3)
        .flatten()
    }
}

pub const SELECT_REMOTE: &str = "SELECT key, size, etag, version, last_modified, verified_blake3, verified_etag, verified_size, verified_at FROM remote_objects";

pub fn remote_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RemoteRow> {
    Ok(RemoteRow {
        key: row.get(0)?,
        size: row.get::<_, i64>(1)? as u64,
        etag: row.get(2)?,
        version: row.get(3)?,
        last_modified: row.get::<_, Option<i64>>(4)?.unwrap_or(0),
        verified_blake3: row.get(5)?,
        verified_fingerprint: row.get(6)?,
        verified_size: row.get::<_, Option<i64>>(7)?.map(|s| s as u64),
        verified_at: row.get(8)?,
    })
}

impl Index {
    /// Forgets cached objects the latest complete listing did not return.
    pub fn prune_remote(&self, remote: &str, run_id: i64) -> Result<usize> {
        Ok(self.conn.execute(
            "DELETE FROM remote_objects WHERE remote = ?1 AND seen_run IS NOT ?2",
            params![remote, run_id],
        )?)
    }
}

impl Batch<'_> {
    /// Records one listed object; a changed size or fingerprint leaves the
    /// old verification in place but it no longer counts (see
    /// [`RemoteRow::known_blake3`]).
    pub fn upsert_listed(
        &mut self,
        remote: &str,
        obj: &crate::remote::Listed,
        run_id: i64,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO remote_objects(remote, key, size, etag, version, last_modified, seen_run)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(remote, key) DO UPDATE SET size = excluded.size, etag = excluded.etag,
                 version = excluded.version, last_modified = excluded.last_modified,
                 seen_run = excluded.seen_run",
        )?;
        stmt.execute(params![
            remote,
            obj.key,
            obj.size as i64,
            obj.etag,
            obj.version,
            obj.last_modified,
            run_id
        ])?;
        self.tick()
    }

    /// Records the hash of an object's bytes, read in full at `fingerprint`.
    pub fn record_read(
        &mut self,
        remote: &str,
        key: &[u8],
        blake3: &[u8; 32],
        fingerprint: &str,
        size: u64,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "UPDATE remote_objects SET verified_blake3 = ?3, verified_etag = ?4, verified_size = ?5, verified_at = ?6
             WHERE remote = ?1 AND key = ?2",
        )?;
        stmt.execute(params![
            remote,
            key,
            blake3.as_slice(),
            fingerprint,
            size as i64,
            now_unix()
        ])?;
        self.tick()
    }
}
