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
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rusqlite::{Connection, OpenFlags};

use crate::model::EntryKind;

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
    // v3: structural checks (`damaged`), cached with the entry row (the
    // file's version) they were made on: an unchanged file is not checked
    // again. `data_ever`: this version or an earlier one of the path was a
    // dump holding table data (the empty-dump rule).
    r#"
    CREATE TABLE checks (
        entry_id INTEGER PRIMARY KEY REFERENCES entries(id),
        level TEXT NOT NULL,
        format TEXT NOT NULL,
        verdict TEXT NOT NULL,
        detail TEXT,
        table_data INTEGER,
        data_ever INTEGER NOT NULL DEFAULT 0,
        checked_at INTEGER NOT NULL
    );
    CREATE INDEX checks_damaged ON checks(verdict) WHERE verdict = 'damaged';
    "#,
    // v4: an inventory listing gives each object's storage class (archived
    // objects are never read).
    r#"
    ALTER TABLE remote_objects ADD COLUMN storage_class TEXT;
    "#,
    // v5: checksum proofs. What the store said about each object version
    // and what the ladder concluded; local digests (CRC64NVME, MD5, part
    // MD5s, ...) cached by the BLAKE3 of the content they are of.
    r#"
    CREATE TABLE remote_proofs (
        remote TEXT NOT NULL,
        key BLOB NOT NULL,
        etag TEXT,
        size INTEGER NOT NULL,
        last_modified INTEGER NOT NULL,
        version TEXT,
        facts TEXT,
        verdict TEXT NOT NULL,
        method TEXT,
        params TEXT,
        blake3 BLOB,
        detail TEXT,
        checked_at INTEGER NOT NULL,
        PRIMARY KEY (remote, key)
    ) WITHOUT ROWID;
    CREATE TABLE content_digests (
        blake3 BLOB NOT NULL,
        spec TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (blake3, spec)
    ) WITHOUT ROWID;
    "#,
    // v6: `vouch accept`: discrepancies accepted, with each side as it was.
    r#"
    CREATE TABLE accepted (
        root_id INTEGER NOT NULL REFERENCES roots(id),
        path BLOB NOT NULL,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL,
        until INTEGER,
        local TEXT,
        remote TEXT,
        accepted_at INTEGER NOT NULL,
        PRIMARY KEY (root_id, path, kind)
    );
    "#,
    // v7: a rotted file (content changed, size and mtime did not) keeps
    // the hash to trust beside the one observed (`blake3`), so it stays
    // `corrupt` on every later run until it is rewritten.
    r#"
    ALTER TABLE entries ADD COLUMN trusted_blake3 BLOB;
    "#,
    // v8: every proof carries its method ('read', 'etag_md5'); a proof
    // recorded before (NULL) counts as no read.
    r#"
    ALTER TABLE remote_objects ADD COLUMN verified_method TEXT;
    "#,
    // v9: the lean manifest (issue 11). `entries` is clustered on its key
    // (root, path, since_run) WITHOUT ROWID: the path is stored once, where
    // v1 stored it three times (the table and two indexes). A row is named
    // by that key, so `checks` is keyed by it too. The one-current-row rule
    // the partial unique index kept at every insert is checked where the
    // manifest is read in key order (`current_entries`): a trigger probing
    // the key cost 40 % of an insert. A row whose validity is empty (since
    // = until: seen by no snapshot) gives way to a visible row of the same
    // key.
    r#"
    CREATE TABLE entries_v9 (
        root_id INTEGER NOT NULL REFERENCES roots(id),
        path BLOB NOT NULL,
        since_run INTEGER NOT NULL,
        until_run INTEGER,
        kind INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        blake3 BLOB,
        md5 BLOB,
        sha256 BLOB,
        target BLOB,
        trusted_blake3 BLOB,
        PRIMARY KEY (root_id, path, since_run)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO entries_v9
        SELECT root_id, path, since_run, until_run, kind, size, mtime_ns, ctime_ns, inode,
               blake3, md5, sha256, target, trusted_blake3
        FROM entries ORDER BY until_run IS NOT NULL AND until_run <= since_run, id;
    CREATE TABLE checks_v9 (
        root_id INTEGER NOT NULL,
        path BLOB NOT NULL,
        since_run INTEGER NOT NULL,
        level TEXT NOT NULL,
        format TEXT NOT NULL,
        verdict TEXT NOT NULL,
        detail TEXT,
        table_data INTEGER,
        data_ever INTEGER NOT NULL DEFAULT 0,
        checked_at INTEGER NOT NULL,
        PRIMARY KEY (root_id, path, since_run)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO checks_v9
        SELECT e.root_id, e.path, e.since_run, c.level, c.format, c.verdict, c.detail,
               c.table_data, c.data_ever, c.checked_at
        FROM checks c JOIN entries e ON e.id = c.entry_id
        ORDER BY e.until_run IS NOT NULL AND e.until_run <= e.since_run, e.id;
    DROP INDEX checks_damaged;
    DROP TABLE checks;
    DROP INDEX entries_current;
    DROP INDEX entries_history;
    DROP INDEX entries_closed;
    DROP TABLE entries;
    ALTER TABLE entries_v9 RENAME TO entries;
    ALTER TABLE checks_v9 RENAME TO checks;
    CREATE INDEX entries_closed ON entries(root_id, until_run) WHERE until_run IS NOT NULL;
    CREATE INDEX checks_damaged ON checks(verdict) WHERE verdict = 'damaged';
    "#,
    // v10: the scan's CRC64NVME lives in the entry row. In
    // `content_digests` (keyed by BLAKE3, so every insert landed on a
    // random page) it made each of the scan's commits rewrite most of
    // that table into the WAL: the writer's largest cost on a tree of
    // small files. Rows already cached move into the entries of the same
    // content; the audit's other digests stay in the cache.
    r#"
    ALTER TABLE entries ADD COLUMN crc64nvme BLOB;
    UPDATE entries SET crc64nvme = (
        SELECT value FROM content_digests d
        WHERE d.blake3 = entries.blake3 AND d.spec = 'full:crc64nvme'
    ) WHERE blake3 IS NOT NULL AND kind = 0;
    DELETE FROM content_digests WHERE spec = 'full:crc64nvme';
    "#,
];

/// How to wait for the index lock held by another vouch process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Fail at once with a clear message.
    No,
    /// Block until the other run finishes.
    Yes,
}

/// The index: one SQLite connection, and the lock of a writing run.
///
/// The connection is private to the store: every query is a method here or
/// in a submodule, so SQL lives in one place.
pub struct Index {
    conn: Connection,
    path: PathBuf,
    /// Held for the life of a writing `Index`; released on drop.
    _lock: Option<File>,
    /// The structural check running beside the run, when it was opened
    /// with [`Index::open_checking_aside`]: every commit waits for it.
    verdict: Option<Arc<Verdict>>,
}

/// The verdict of `PRAGMA quick_check` run on its own read connection (see
/// [`Index::open_checking_aside`]): `Err` holds the one line that refuses
/// the index.
struct Verdict {
    state: Mutex<Option<std::result::Result<(), String>>>,
    done: Condvar,
}

impl Verdict {
    fn wait(&self) -> std::result::Result<(), String> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(v) = state.as_ref() {
                return v.clone();
            }
            state = self.done.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn set(&self, v: std::result::Result<(), String>) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
        self.done.notify_all();
    }
}

mod accepted;
mod batch;
mod checks;
mod entries;
mod findings;
mod paged;
mod proofs;
mod remote;
mod runs;

pub use batch::Batch;
pub use checks::{CheckRow, Member};
pub use entries::{FoldRow, ManifestPage, PageEntry, Rows};
use paged::{Page, Paged, Pager};
pub use remote::{Coverage, ScrubPlace, ScrubSelection};

/// Kinds as the `entries.kind` column stores them (see [`EntryKind`]):
/// SQL names them through these, never as bare numbers.
const FILE: i64 = EntryKind::File as i64;
const DIR: i64 = EntryKind::Dir as i64;

/// Rows per page of the paged readers (see [`Pager`]).
const PAGE: usize = 4096;

/// The temporal predicate: the rows of the manifest as of run `?N`.
/// Spelled once; every query that reads a past manifest uses it.
fn at_run(param: usize) -> String {
    format!("since_run <= ?{param} AND (until_run IS NULL OR until_run > ?{param})")
}

impl Index {
    /// Opens (creating if absent) the index at `path` for writing, holding
    /// the index lock so that two runs never interleave their writes.
    pub fn open(path: &Path, wait: LockWait) -> Result<Index> {
        Index::open_with(path, wait, false)
    }

    /// Like [`Index::open`], but the structural check of an index already
    /// at the current schema runs on its own read connection while the
    /// caller goes on (a scan walks the tree meanwhile: the check reads
    /// every page, 0.1 s per 200,000 entries). Nothing is committed before
    /// its verdict: every commit of this connection waits for it, and a
    /// corrupt index turns the commit into a rollback; [`Index::checked`]
    /// gives the verdict as the one line [`Index::open`] would have
    /// refused the index with.
    pub fn open_checking_aside(path: &Path, wait: LockWait) -> Result<Index> {
        Index::open_with(path, wait, true)
    }

    fn open_with(path: &Path, wait: LockWait, aside: bool) -> Result<Index> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create index directory {}", dir.display()))?;
        }
        // One index, one lock, whatever the spelling (a symlinked
        // directory, `..`, a relative path): the lock, the database and
        // its `-wal` are named after the canonical path.
        let canonical = canonical_index(path);
        let path = canonical.as_path();
        refuse_foreign_file(path)?;
        let lock_path = lock_path_of(path);
        let lock_existed = lock_path.exists();
        let lock = acquire_lock(path, wait)?;
        let opened = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open index {}", path.display()))
        .and_then(|conn| {
            let mut index = Index {
                conn,
                path: path.to_path_buf(),
                _lock: Some(lock),
                verdict: None,
            };
            let opened = index
                .check_and_migrate(aside)
                .and_then(|()| index.mark_abandoned_runs());
            match opened {
                Ok(()) => Ok(index),
                // A damaged page met before the check's verdict: the
                // verdict says it in its words.
                Err(e) => Err(index.checked().err().unwrap_or(e)),
            }
        });
        if opened.is_err() && !lock_existed {
            // Not ours: leave nothing beside it.
            let _ = std::fs::remove_file(&lock_path);
        }
        opened
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
            verdict: None,
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

    fn check_and_migrate(&mut self, aside: bool) -> Result<()> {
        let version = self.validate()?;
        self.conn.busy_timeout(Duration::from_secs(30))?;
        if version > 0 && aside && version as usize == MIGRATIONS.len() {
            self.check_aside();
        } else if version > 0 {
            quick_check(&self.conn, &self.path).map_err(|e| anyhow!(e))?;
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

    /// Starts the structural check on its own read connection and makes
    /// every commit of this one wait for its verdict (see
    /// [`Index::open_checking_aside`]).
    fn check_aside(&mut self) {
        let verdict = Arc::new(Verdict {
            state: Mutex::new(None),
            done: Condvar::new(),
        });
        let (v, path) = (verdict.clone(), self.path.clone());
        std::thread::spawn(move || {
            let result = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| format!("cannot open index {}: {e}", path.display()))
            .and_then(|conn| {
                conn.busy_timeout(Duration::from_secs(30))
                    .map_err(|e| e.to_string())?;
                quick_check(&conn, &path)
            });
            v.set(result);
        });
        let v = verdict.clone();
        // True turns the commit into a rollback.
        self.conn.commit_hook(Some(move || v.wait().is_err()));
        self.verdict = Some(verdict);
    }

    /// The verdict of the structural check: waits for it when it runs
    /// aside; `Err` is the one line that refuses a corrupt index. Always
    /// `Ok` for an index opened with [`Index::open`] (checked at open).
    pub fn checked(&self) -> Result<()> {
        match &self.verdict {
            Some(v) => v.wait().map_err(|e| anyhow!(e)),
            None => Ok(()),
        }
    }

    /// A run still marked `running` while we hold the lock was killed. Its
    /// label is released: an interrupted scan pins no snapshot.
    fn mark_abandoned_runs(&mut self) -> Result<()> {
        // Read first: most opens find none, and write (and so wait for a
        // check running aside) nothing.
        let any: bool = self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM runs WHERE status = 'running')",
            [],
            |r| r.get(0),
        )?;
        if !any {
            return Ok(());
        }
        self.checked()?;
        self.conn.execute(
            "UPDATE runs SET status = 'interrupted', exit_code = NULL, label = NULL WHERE status = 'running'",
            [],
        )?;
        Ok(())
    }

    /// The file this index lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Refuses, before anything is written, an index with damaged pages: a run
/// on it would commit its own writes (and checkpoint them into the file)
/// before it stumbled on the damage part-way. A structural check reads
/// every page once: about 0.5 s per million entries. `Err` is the one line
/// that refuses the index.
fn quick_check(conn: &Connection, path: &Path) -> std::result::Result<(), String> {
    let shown = path.display();
    let verdict: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(|e| format!("index {shown} is corrupt: {e}"))?;
    if verdict != "ok" {
        return Err(format!(
            "index {shown} is corrupt ({}); move it aside (vouch then starts a new one) or restore it from a backup",
            verdict.replace('\n', " ")
        ));
    }
    Ok(())
}

/// `path` with its symlinks and `..` resolved: the file itself when it
/// exists, else its directory joined with its name.
/// True when `e` is SQLite finding no room for the index (its file, its
/// WAL or journal): `SQLITE_FULL`, a full disk or quota.
pub fn is_disk_full(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
            == Some(rusqlite::ErrorCode::DiskFull)
    })
}

pub fn canonical_index(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match (std::fs::canonicalize(dir), path.file_name()) {
        (Ok(d), Some(name)) => d.join(name),
        _ => path.to_path_buf(),
    }
}

/// Refuses, before any lock file is made beside it, a file that is no
/// SQLite database at all (`--index` pointing at a photo).
fn refuse_foreign_file(path: &Path) -> Result<()> {
    use std::io::Read;
    let Ok(mut f) = File::open(path) else {
        return Ok(()); // absent (created) or unreadable (said when opened)
    };
    let mut head = [0u8; 16];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return Ok(()),
        }
    }
    if n > 0 && head[..n] != b"SQLite format 3\0"[..n] {
        bail!(
            "{} is not a vouch index (not an SQLite database); pass --index with another path",
            path.display()
        );
    }
    Ok(())
}

fn lock_path_of(index: &Path) -> PathBuf {
    let mut lock_path = index.as_os_str().to_owned();
    lock_path.push(".lock");
    PathBuf::from(lock_path)
}

fn acquire_lock(index: &Path, wait: LockWait) -> Result<File> {
    let lock_path = lock_path_of(index);
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

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

    /// A new index at `path` holding root 1 (`/r`) and, for each
    /// (id, command) of `runs`, a run of root 1 finished `ok`.
    pub(super) fn index_with_runs(path: &Path, runs: &[(i64, &str)]) -> Index {
        let index = Index::open(path, LockWait::No).unwrap();
        index
            .conn
            .execute("INSERT INTO roots VALUES (1, x'2f72', 0)", [])
            .unwrap();
        for (id, command) in runs {
            index
                .conn
                .execute(
                    "INSERT INTO runs(id, root_id, command, started_at, status) VALUES (?1, 1, ?2, 0, 'ok')",
                    params![id, command],
                )
                .unwrap();
        }
        index
    }

    /// A bare database at `path` with the schema of index version
    /// `version` (the first `version` migrations), to test what opening
    /// it converts.
    fn index_at_version(path: &Path, version: usize) -> Connection {
        let conn = Connection::open(path).unwrap();
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        conn.pragma_update(None, "user_version", version as i64)
            .unwrap();
        conn
    }

    type Row = (
        i64,
        Vec<u8>,
        i64,
        Option<i64>,
        i64,
        i64,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
    );

    const ROWS: &str = "SELECT root_id, path, since_run, until_run, kind, size, blake3, md5, target FROM entries ORDER BY root_id, path, since_run";

    fn rows(conn: &Connection) -> Vec<Row> {
        let mut stmt = conn.prepare(ROWS).unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    /// An index of schema v8 (ids, two path indexes) converts to the lean
    /// v9 layout keeping every row it held, history, digests and checks
    /// included; only a row no snapshot sees (since = until) gives way to
    /// the visible row of the same key.
    #[test]
    fn v8_index_converts_keeping_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite3");
        {
            let conn = index_at_version(&path, 8);
            conn.execute_batch(
                "INSERT INTO roots VALUES (1, x'2f72', 0), (2, x'2f73', 0);
                 INSERT INTO runs(id, root_id, command, started_at, status) VALUES
                     (1, 1, 'scan', 0, 'ok'), (2, 1, 'scan', 0, 'ok'), (3, 1, 'scan', 0, 'ok'),
                     (4, 2, 'scan', 0, 'ok');",
            )
            .unwrap();
            let mut ins = conn
                .prepare(
                    "INSERT INTO entries(id, root_id, path, kind, size, mtime_ns, ctime_ns, inode, blake3, md5, sha256, target, since_run, until_run, trusted_blake3)
                     VALUES (?1, ?2, ?3, ?4, ?5, 7, 8, 9, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .unwrap();
            let h = |b: u8| Some(vec![b; 32]);
            #[allow(clippy::type_complexity)]
            let data: &[(
                i64,
                i64,
                &[u8],
                i64,
                i64,
                Option<Vec<u8>>,
                Option<Vec<u8>>,
                Option<&[u8]>,
                i64,
                Option<i64>,
                Option<Vec<u8>>,
            )] = &[
                (1, 1, b"", 2, 0, h(1), None, None, 1, Some(2), None),
                (2, 1, b"", 2, 0, h(2), None, None, 2, None, None),
                (
                    3,
                    1,
                    b"a",
                    0,
                    10,
                    h(3),
                    Some(vec![3; 16]),
                    None,
                    1,
                    Some(3),
                    None,
                ),
                (4, 1, b"a", 0, 11, h(4), None, None, 3, None, h(3)),
                (5, 1, b"b\xff\n", 0, 12, h(5), None, None, 1, None, None),
                (6, 1, b"d", 2, 0, h(6), None, None, 1, None, None),
                (7, 1, b"d/l", 1, 3, h(7), None, Some(b"../a"), 2, None, None),
                (8, 1, b"gone", 0, 1, h(8), None, None, 1, Some(2), None),
                // Seen by no snapshot, and sharing its key with row 10.
                (9, 1, b"z", 0, 1, h(9), None, None, 3, Some(3), None),
                (10, 1, b"z", 0, 2, h(10), None, None, 3, None, None),
                (11, 2, b"a", 0, 5, h(11), None, None, 4, None, None),
            ];
            for d in data {
                ins.execute(params![
                    d.0,
                    d.1,
                    d.2,
                    d.3,
                    d.4,
                    d.5,
                    d.6,
                    None::<Vec<u8>>,
                    d.7,
                    d.8,
                    d.9,
                    d.10
                ])
                .unwrap();
            }
            conn.execute_batch(
                "INSERT INTO checks VALUES (3, 'fast', 'gzip', 'sound', NULL, NULL, 1, 5),
                                           (4, 'fast', 'gzip', 'damaged', 'bad crc', NULL, 1, 6);",
            )
            .unwrap();
        }
        let before = {
            let conn = Connection::open(&path).unwrap();
            let mut all = rows(&conn);
            all.retain(|r| r.1 != b"z" || r.3.is_none());
            all
        };
        assert_eq!(before.len(), 10);

        let index = Index::open(&path, LockWait::No).unwrap();
        let version: i64 = index
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        assert_eq!(rows(&index.conn), before);
        // Every column of a row came across (mtime, ctime, inode, SHA-256
        // slots, the trusted hash).
        let a: (i64, i64, i64, Option<Vec<u8>>, Option<Vec<u8>>) = index
            .conn
            .query_row(
                "SELECT mtime_ns, ctime_ns, inode, sha256, trusted_blake3 FROM entries WHERE path = x'61' AND since_run = 3",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(a, (7, 8, 9, None, Some(vec![3; 32])));
        // Checks follow their row.
        let damaged: Vec<_> = index.damaged_current(1).collect::<Result<_>>().unwrap();
        assert_eq!(damaged.len(), 1);
        assert_eq!(damaged[0].0.path, b"a");
        assert_eq!(damaged[0].0.since_run, 3);
        assert_eq!(damaged[0].2, "bad crc");
        let checks: i64 = index
            .conn
            .query_row("SELECT count(*) FROM checks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(checks, 2);
        // The current manifest reads as before.
        let current: Vec<(Vec<u8>, i64)> = index
            .current_entries(1, entries::Rows::All)
            .map(|e| e.map(|e| (e.path, e.since_run)))
            .collect::<Result<_>>()
            .unwrap();
        let want: Vec<(Vec<u8>, i64)> = vec![
            (b"".to_vec(), 2),
            (b"a".to_vec(), 3),
            (b"b\xff\n".to_vec(), 1),
            (b"d".to_vec(), 1),
            (b"d/l".to_vec(), 2),
            (b"z".to_vec(), 3),
        ];
        assert_eq!(current, want);
        // The path indexes are gone; the key is the table.
        let names: Vec<String> = index
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE tbl_name = 'entries' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(names, ["entries", "entries_closed"]);
        let ok: String = index
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }

    /// A v9 index's cached CRC64NVMEs move into the rows of the same
    /// content (a file's every version, a copy under another path), and
    /// out of the cache; the audit's other digests stay where they were.
    #[test]
    fn v9_index_moves_its_crc64nvme_digests_into_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite3");
        {
            let conn = index_at_version(&path, 9);
            conn.execute_batch(
                "INSERT INTO roots VALUES (1, x'2f72', 0);
                 INSERT INTO runs(id, root_id, command, started_at, status) VALUES (1, 1, 'scan', 0, 'ok');
                 INSERT INTO entries(root_id, path, since_run, until_run, kind, size, mtime_ns, ctime_ns, inode, blake3) VALUES
                     (1, x'', 1, NULL, 2, 0, 0, 0, 1, x'0000000000000000000000000000000000000000000000000000000000000000'),
                     (1, x'61', 1, NULL, 0, 3, 0, 0, 2, x'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'),
                     (1, x'62', 1, NULL, 0, 3, 0, 0, 3, x'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'),
                     (1, x'63', 1, NULL, 0, 3, 0, 0, 4, x'cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc'),
                     (1, x'64', 1, NULL, 1, 3, 0, 0, 5, x'dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd');
                 INSERT INTO content_digests VALUES
                     (x'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'full:crc64nvme', x'0102030405060708'),
                     (x'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'full:md5', x'11'),
                     (x'0000000000000000000000000000000000000000000000000000000000000000', 'full:crc64nvme', x'0909090909090909'),
                     (x'dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd', 'full:crc64nvme', x'0a0a0a0a0a0a0a0a'),
                     (x'eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee', 'full:crc64nvme', x'0b0b0b0b0b0b0b0b');",
            )
            .unwrap();
        }
        let index = Index::open(&path, LockWait::No).unwrap();
        let crcs: Vec<(Vec<u8>, Option<Vec<u8>>)> = index
            .conn
            .prepare("SELECT path, crc64nvme FROM entries ORDER BY path")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let crc = Some(vec![1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            crcs,
            vec![
                (b"".to_vec(), None),
                (b"a".to_vec(), crc.clone()),
                (b"b".to_vec(), crc),
                (b"c".to_vec(), None),
                (b"d".to_vec(), None),
            ]
        );
        let left: Vec<(Vec<u8>, String)> = index
            .conn
            .prepare("SELECT blake3, spec FROM content_digests ORDER BY blake3, spec")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(left, vec![(vec![0xaa; 32], "full:md5".to_string())]);
        // The row reads back with it.
        let a = index
            .current_entries(1, entries::Rows::All)
            .map(Result::unwrap)
            .find(|e| e.path == b"a")
            .unwrap();
        assert_eq!(a.crc64nvme, Some([1, 2, 3, 4, 5, 6, 7, 8]));
    }

    /// A reader beside a writer holds no snapshot from one page to the
    /// next, nor while it works through a page: what the writer committed
    /// while the reader was on its first page is checkpointed once the
    /// reader is on its second, the WAL starts over at the writer's next
    /// commits instead of growing with them, and every row is still read
    /// once, in key order.
    #[test]
    fn a_paged_reader_lets_the_writers_pages_be_checkpointed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.sqlite3");
        let index = index_with_runs(&path, &[(1, "scan")]);
        let rows = PAGE * 2 + 5;
        {
            let mut ins = index
                .conn
                .prepare(
                    "INSERT INTO entries(root_id, path, since_run, kind, size, mtime_ns, ctime_ns, inode)
                     VALUES (1, ?1, 1, 0, 1, 1, 1, 1)",
                )
                .unwrap();
            for i in 0..rows {
                ins.execute([format!("f{i:06}").into_bytes()]).unwrap();
            }
        }
        let checkpoint = || -> (i64, i64) {
            index
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(1)?, r.get(2)?))
                })
                .unwrap()
        };
        let reader = Index::open_read_only(&path).unwrap();
        let mut read = reader.current_entries(1, entries::Rows::All);
        let mut seen = vec![read.next().unwrap().unwrap().path];
        index
            .conn
            .execute_batch(
                "INSERT INTO runs(id, root_id, command, started_at, status) VALUES (2, 1, 'scan', 0, 'ok')",
            )
            .unwrap();
        for _ in 0..PAGE {
            seen.push(read.next().unwrap().unwrap().path);
        }
        let (log, done) = checkpoint();
        assert!(log > 0);
        assert_eq!(done, log, "frames left in the WAL behind the reader");
        // The reader is inside its second page while the writer commits
        // and checkpoints, again and again (as the audit's recorder does):
        // each commit starts the WAL over, so it holds one commit's frames,
        // never the sum of them.
        let mut logs = Vec::new();
        for i in 0..20 {
            index
                .conn
                .execute(
                    "UPDATE entries SET size = ?1 WHERE root_id = 1 AND path < ?2",
                    params![i + 2, b"f000400".to_vec()],
                )
                .unwrap();
            let (log, done) = checkpoint();
            assert_eq!(done, log, "frames left in the WAL behind the reader");
            logs.push(log);
        }
        assert!(
            logs.iter().all(|&l| l <= logs[0]),
            "the WAL grew with every commit: {logs:?} frames"
        );
        seen.extend(read.map(|e| e.unwrap().path));
        let want: Vec<Vec<u8>> = (0..rows).map(|i| format!("f{i:06}").into_bytes()).collect();
        assert_eq!(seen, want);
    }

    /// The rule the v8 unique index kept at insert (one current row per
    /// path and root) is checked where the manifest is read: two current
    /// rows are an error, inside a page and across a page boundary.
    /// Opened with its check aside, a corrupt index commits nothing: the
    /// first commit waits for the verdict and is rolled back, and
    /// `checked` refuses the index in the words `open` would have used.
    #[test]
    fn a_check_aside_holds_every_commit_until_its_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.sqlite3");
        {
            let index = index_with_runs(&path, &[(1, "scan")]);
            let tx = index.conn.unchecked_transaction().unwrap();
            let mut ins = tx
                .prepare(
                    "INSERT INTO entries(root_id, path, since_run, kind, size, mtime_ns, ctime_ns, inode, blake3) VALUES (1, ?1, 1, 0, 1, 1, 1, 1, ?2)",
                )
                .unwrap();
            for i in 0..3000 {
                ins.execute(params![format!("f{i:05}").into_bytes(), [7u8; 32].to_vec()])
                    .unwrap();
            }
            drop(ins);
            tx.commit().unwrap();
        }
        let insert_root = |index: &Index| {
            index.conn.execute(
                "INSERT INTO roots(path, created_at) VALUES (x'2f73', 0)",
                [],
            )
        };
        // Healthy: the write waits for the verdict, then commits.
        let index = Index::open_checking_aside(&path, LockWait::No).unwrap();
        insert_root(&index).unwrap();
        index.checked().unwrap();
        drop(index);

        let mut bytes = std::fs::read(&path).unwrap();
        let page = 4096;
        assert!(bytes.len() > 40 * page, "{}", bytes.len());
        let mid = (bytes.len() * 3 / 4 / page) * page;
        for (i, b) in bytes[mid..mid + page].iter_mut().enumerate() {
            *b = (i * 7 + 13) as u8;
        }
        std::fs::write(&path, &bytes).unwrap();
        let index = Index::open_checking_aside(&path, LockWait::No).unwrap();
        let refused = insert_root(&index).unwrap_err();
        assert_eq!(
            refused.sqlite_error_code(),
            Some(rusqlite::ErrorCode::ConstraintViolation),
            "{refused}"
        );
        let verdict = index.checked().unwrap_err().to_string();
        assert!(verdict.contains("i.sqlite3 is corrupt"), "{verdict}");
        drop(index);
        assert!(std::fs::read(&path).unwrap() == bytes, "nothing committed");
        // `open` refuses it at once, in the same words.
        let err = Index::open(&path, LockWait::No).err().unwrap().to_string();
        assert_eq!(err, verdict);
    }

    /// The scan's walker decides "unchanged" from a manifest page: every
    /// column must come back as the entry reader gives it (a stat field
    /// read from the wrong column would let a changed file go unhashed),
    /// over more than one page, rows closed by a later run left out, and
    /// as well into a page given back as into a fresh one.
    #[test]
    fn a_manifest_page_reads_every_column_as_current_entries_does() {
        let dir = tempfile::tempdir().unwrap();
        let index = index_with_runs(&dir.path().join("i.sqlite3"), &[(1, "scan"), (2, "scan")]);
        let mut ins = index
            .conn
            .prepare(
                "INSERT INTO entries(root_id, path, since_run, until_run, kind, size, mtime_ns, ctime_ns, inode,
                                     blake3, md5, sha256, target, trusted_blake3, crc64nvme)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )
            .unwrap();
        let n = 3 * PAGE as i64;
        for i in 0..n {
            let some =
                |k: i64, len: usize| (i % k == 0).then(|| vec![(i % 251) as u8 ^ k as u8; len]);
            let kind = if i % 7 == 0 {
                1
            } else if i % 11 == 0 {
                2
            } else {
                0
            };
            let (since, until) = if i % 13 == 0 {
                (1, Some(2))
            } else {
                (1 + i % 2, None)
            };
            ins.execute(params![
                format!("d{:03}/f{i:06}", i % 100).into_bytes(),
                since,
                until,
                kind,
                1000 + i,
                1_700_000_000_000_000_000 + 3 * i,
                1_700_000_000_000_000_001 + 5 * i,
                4_000_000 + 7 * i,
                some(1, 32),
                some(2, 16),
                some(3, 32),
                (kind == 1).then(|| format!("target-{i}").into_bytes()),
                some(5, 32),
                some(4, 8),
            ])
            .unwrap();
        }
        drop(ins);
        let entries: Vec<crate::model::Entry> = index
            .current_entries(1, entries::Rows::All)
            .collect::<Result<_>>()
            .unwrap();
        // Read into fresh pages, then into pages given back (each read
        // into again with the rows of the one before still in it).
        let given_back = std::cell::Cell::new(None);
        let fresh = index.manifest_pages(1, ManifestPage::default);
        let recycled = index.manifest_pages(1, || given_back.take().unwrap_or_default());
        let mut paged = Vec::new();
        for page in fresh.chain(recycled) {
            let page = page.unwrap();
            for i in 0..page.len() {
                let e = page.get(i).unwrap();
                let owned = e.to_entry();
                assert_eq!(
                    (
                        e.path(),
                        e.kind(),
                        e.stat(),
                        e.target(),
                        e.has_blake3(),
                        e.has_md5()
                    ),
                    (
                        owned.path.as_slice(),
                        owned.kind,
                        owned.stat,
                        owned.target.as_deref(),
                        owned.blake3.is_some(),
                        owned.md5.is_some()
                    )
                );
                assert_eq!(
                    (e.has_sha256(), e.is_rotted()),
                    (owned.sha256.is_some(), owned.trusted_blake3.is_some())
                );
                paged.push(owned);
            }
            given_back.set(Some(page));
        }
        assert!(entries.len() > 2 * PAGE + 1, "{}", entries.len());
        assert_eq!(paged, [entries.clone(), entries].concat());
    }

    #[test]
    fn two_current_rows_for_one_path_are_an_error() {
        for (before, pages) in [
            (0, false),
            (PAGE - 1, false),
            (0, true),
            (PAGE - 1, true),
            (PAGE, true),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let index = index_with_runs(&dir.path().join("i.sqlite3"), &[(1, "scan"), (2, "scan")]);
            let mut ins = index
                .conn
                .prepare(
                    "INSERT INTO entries(root_id, path, since_run, kind, size, mtime_ns, ctime_ns, inode) VALUES (1, ?1, ?2, 0, 1, 1, 1, 1)",
                )
                .unwrap();
            for i in 0..before {
                ins.execute(params![format!("a{i:05}").into_bytes(), 1])
                    .unwrap();
            }
            // Both readers of the current manifest: by entry and by page.
            let read = |index: &Index| -> Result<Vec<Vec<u8>>> {
                if pages {
                    let mut keys = Vec::new();
                    for page in index.manifest_pages(1, ManifestPage::default) {
                        let page = page?;
                        keys.extend((0..page.len()).map(|i| page.get(i).unwrap().path().to_vec()));
                    }
                    return Ok(keys);
                }
                index
                    .current_entries(1, entries::Rows::All)
                    .map(|e| e.map(|e| e.path))
                    .collect()
            };
            ins.execute(params![b"b".to_vec(), 1]).unwrap();
            assert_eq!(read(&index).unwrap().len(), before + 1);
            ins.execute(params![b"b".to_vec(), 2]).unwrap();
            drop(ins);
            let err = read(&index).unwrap_err().to_string();
            assert_eq!(
                err, "the index is corrupt: two current rows for b",
                "{before}"
            );
            // Closed, the older row is history again.
            index
                .conn
                .execute(
                    "UPDATE entries SET until_run = 2 WHERE since_run = 1 AND path = x'62'",
                    [],
                )
                .unwrap();
            assert_eq!(read(&index).unwrap().len(), before + 1);
        }
    }
}
