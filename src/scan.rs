//! `vouch scan`: bring the manifest of ROOT up to date, incrementally.
//!
//! Three stages run at once and hand work on through bounded channels:
//!
//! 1. the *walker* (one thread) walks ROOT in key order and merge-joins it
//!    with the current manifest read from the index (its own read-only
//!    connection), so neither side is held in memory. Unchanged files
//!    (same size, mtime, ctime, inode) go no further; changed and new
//!    files become hash jobs; manifest rows with no file are deletions;
//! 2. the *hashers* (the rayon pool, `--threads`) hash jobs in parallel;
//! 3. the *writer* (the calling thread) owns the index connection, applies
//!    every result in batched transactions, and reports findings.
//!
//! A final pass folds the manifest into Merkle hashes (skipped when the
//! run changed nothing). A file whose mtime is too close to the scan start
//! to be trusted ("racily clean", as git calls it) is stored so that the
//! next scan hashes it again.
//!
//! Changes are reported against the last scan whose report was delivered
//! (see `delivered_scan`): what an interrupted scan committed is trusted,
//! not hashed again, and reported by the next run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rayon::iter::{ParallelBridge, ParallelIterator};
use rusqlite::{Connection, OpenFlags};
use serde_json::{Map, Value, json};

use crate::finding::{Finding, Kind};
use crate::hash::{self, Digests, HashError, Want};
use crate::index::{self, Batch, Entry, EntryKind, Index, NewEntry, SELECT_ENTRY, Stat};
use crate::merkle::{DirHash, Folder};
use crate::paths;
use crate::report::Sink;
use crate::walk::{self, Item};

#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Hash every file, trusting no metadata; report silent changes.
    pub rehash: bool,
    pub want: Want,
    /// Pins this run's manifest under a name (`@NAME`).
    pub label: Option<String>,
    pub progress: bool,
    /// The command recorded for the run (`scan`, or `audit` when an audit
    /// scans first).
    pub command: Option<String>,
    /// Report `shrunk` when a file of at least [`SHRUNK_MIN_SIZE`] bytes
    /// loses more than this fraction of its size (0.5 = half).
    pub shrink_threshold: Option<f64>,
}

/// Files smaller than this are not checked for shrinking: editing a small
/// file routinely halves it; an emptied dump is large before it empties.
pub const SHRUNK_MIN_SIZE: u64 = 1024;

/// What a scan did, with the counters the summary prints.
#[derive(Debug, Clone, Default)]
pub struct ScanSummary {
    pub run_id: i64,
    pub root_id: i64,
    pub added: u64,
    pub modified: u64,
    pub deleted: u64,
    pub unchanged: u64,
    pub unreadable: u64,
    pub corrupt: u64,
    pub shrunk: u64,
    pub special: u64,
    pub files: u64,
    pub dirs: u64,
    pub bytes_hashed: u64,
    pub merkle_root: [u8; 32],
    pub elapsed_ms: u64,
}

impl ScanSummary {
    pub fn discrepancies(&self) -> u64 {
        self.unreadable + self.corrupt + self.shrunk
    }

    pub fn to_json(&self, root: &Path) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("command".into(), json!("scan"));
        m.insert("root".into(), json!(root.display().to_string()));
        m.insert("run".into(), json!(self.run_id));
        m.insert("added".into(), json!(self.added));
        m.insert("modified".into(), json!(self.modified));
        m.insert("deleted".into(), json!(self.deleted));
        m.insert("unchanged".into(), json!(self.unchanged));
        m.insert("unreadable".into(), json!(self.unreadable));
        m.insert("corrupt".into(), json!(self.corrupt));
        m.insert("shrunk".into(), json!(self.shrunk));
        m.insert("special_skipped".into(), json!(self.special));
        m.insert("files".into(), json!(self.files));
        m.insert("dirs".into(), json!(self.dirs));
        m.insert("bytes_hashed".into(), json!(self.bytes_hashed));
        m.insert("merkle_root".into(), json!(hex::encode(self.merkle_root)));
        m.insert("elapsed_ms".into(), json!(self.elapsed_ms));
        m
    }
}

/// Work the walker hands to the hashers.
struct Job {
    key: Vec<u8>,
    path: PathBuf,
    old: Option<Entry>,
}

/// What reaches the writer.
enum Event {
    /// Entries found unchanged (batched: one message per many entries).
    Unchanged {
        files: u64,
        dirs: u64,
    },
    Store {
        new: NewEntry,
        old: Option<Entry>,
    },
    Hashed {
        key: Vec<u8>,
        old: Option<Entry>,
        result: Result<(Stat, Digests), HashError>,
    },
    Deleted(Entry),
    Unreadable {
        key: Vec<u8>,
        error: String,
    },
    Special,
    /// The walker failed as a whole (index read error, order violation).
    Failed(anyhow::Error),
}

/// Checks ROOT and returns its canonical absolute path.
pub fn resolve_root(root: &Path) -> Result<PathBuf> {
    let meta = std::fs::metadata(root)
        .with_context(|| format!("root {} does not exist or cannot be read", root.display()))?;
    if !meta.is_dir() {
        bail!("root {} is not a directory", root.display());
    }
    let canonical = std::fs::canonicalize(root)
        .with_context(|| format!("cannot resolve root {}", root.display()))?;
    std::fs::read_dir(&canonical)
        .with_context(|| format!("cannot list root {}", root.display()))?;
    Ok(canonical)
}

/// Nanoseconds of slack under which an mtime is too recent to trust.
const RACY_WINDOW_NS: i64 = 2_000_000_000;
/// The ctime stored for a racily clean file: matches no real ctime, so the
/// next scan hashes the file again.
const RACY_CTIME: i64 = -1;

/// Scans `root` (already resolved) into `index`, reporting to `sink`.
pub fn scan(
    index: &mut Index,
    root: &Path,
    opts: &ScanOptions,
    sink: &mut dyn Sink,
) -> Result<ScanSummary> {
    let started = Instant::now();
    let start_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let root_id = index.root_id(root)?;
    let previous_scan = last_scan_run(index, root_id)?;
    // Changes are reported against the last scan whose report was
    // delivered, even when scans after it were interrupted.
    let baseline = delivered_scan(index, root_id)?;
    let command = opts.command.as_deref().unwrap_or("scan");
    let run_id = index.begin_run(Some(root_id), command, None, opts.label.as_deref())?;
    let prev_findings_run = previous_scan.as_ref().map(|r| r.0);

    let progress = crate::cli::progress_bar(opts.progress, "scanning");
    let mut summary = ScanSummary {
        run_id,
        root_id,
        ..Default::default()
    };
    let mut structural_changes = 0u64;

    let (job_tx, job_rx) = sync_channel::<Job>(1024);
    let (event_tx, event_rx) = sync_channel::<Event>(4096);
    let index_path = index.path.clone();
    let want = opts.want;
    let rehash = opts.rehash;

    let ctx = WriteCtx {
        root_id,
        run_id,
        start_ns,
        rehash,
        prev_findings_run,
        shrink_threshold: opts.shrink_threshold,
    };
    std::thread::scope(|scope| -> Result<()> {
        let walker_events = event_tx.clone();
        scope.spawn(move || {
            if let Err(e) = walk_and_merge(
                &index_path,
                root_id,
                root,
                rehash,
                want,
                job_tx,
                walker_events.clone(),
            ) {
                let _ = walker_events.send(Event::Failed(e));
            }
        });
        let hasher_events = event_tx;
        scope.spawn(move || hash_jobs(job_rx, hasher_events, want));

        let mut batch = index.batch()?;
        let result = write_events(
            &mut batch,
            &event_rx,
            ctx,
            &mut summary,
            &mut structural_changes,
            sink,
            &progress,
        );
        // Drain so the other stages can finish even after an error.
        for _ in event_rx.iter() {}
        result?;
        batch.commit()
    })?;
    carry_over_interrupted(index, ctx, baseline, &mut summary, sink)?;
    progress.finish_and_clear();

    summary.merkle_root = match previous_scan {
        Some((_, Some(root_hash))) if structural_changes == 0 => root_hash,
        _ => fold_merkle(index, root_id, run_id)?,
    };
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    let status = if summary.discrepancies() > 0 {
        "findings"
    } else {
        "ok"
    };
    index.finish_run(
        run_id,
        status,
        Some(if summary.discrepancies() > 0 { 1 } else { 0 }),
        Some(&summary.merkle_root),
        &Value::Object(summary.to_json(root)).to_string(),
    )?;
    Ok(summary)
}

/// The last run that scanned this root (any run without a remote: a scan,
/// whatever command it served), and its Merkle root if it finished. A later
/// interrupted scan counts (with no root), so its partial writes are never
/// mistaken for an unchanged tree.
fn last_scan_run(index: &Index, root_id: i64) -> Result<Option<(i64, Option<[u8; 32]>)>> {
    use rusqlite::OptionalExtension;
    Ok(index
        .conn
        .query_row(
            "SELECT id, merkle_root FROM runs WHERE root_id = ?1 AND remote IS NULL ORDER BY id DESC LIMIT 1",
            [root_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// The last scan of this root whose report reached its reader: a finished
/// `vouch scan`, or the scan an audit runs first (recorded as an `audit`
/// run without a remote) when the audit itself (the next run) finished
/// without failing; otherwise its report never came out.
fn delivered_scan(index: &Index, root_id: i64) -> Result<Option<i64>> {
    use rusqlite::OptionalExtension;
    Ok(index
        .conn
        .query_row(
            "SELECT s.id FROM runs s WHERE s.root_id = ?1 AND s.merkle_root IS NOT NULL
               AND (s.command = 'scan' OR EXISTS (SELECT 1 FROM runs a WHERE a.id = s.id + 1
                   AND a.root_id = s.root_id AND a.remote IS NOT NULL
                   AND a.finished_at IS NOT NULL AND a.status != 'failed'))
             ORDER BY s.id DESC LIMIT 1",
            [root_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// Reports the changes that scans since `baseline` (the last delivered
/// scan, see [`delivered_scan`]) committed but never reported (a killed
/// scan; a killed or failed audit after its scan): their output died with
/// them, and this run trusts their rows (it does not hash those files
/// again), so without this their `added`, `modified` and `deleted` would be
/// lost. Every scan between `baseline` and `run_id` is such a scan, so
/// "written by an undelivered run" is `since_run` or `until_run` in that
/// open interval. Paths this run changed again were already reported by it
/// (against the undelivered run's row).
fn carry_over_interrupted(
    index: &mut Index,
    ctx: WriteCtx,
    baseline: Option<i64>,
    summary: &mut ScanSummary,
    sink: &mut dyn Sink,
) -> Result<()> {
    use rusqlite::OptionalExtension;
    let WriteCtx {
        root_id,
        run_id,
        prev_findings_run,
        shrink_threshold,
        ..
    } = ctx;
    let b = baseline.unwrap_or(0);
    let interrupted: i64 = index.conn.query_row(
        "SELECT count(*) FROM runs WHERE root_id = ?1 AND id > ?2 AND id < ?3 AND remote IS NULL",
        rusqlite::params![root_id, b, run_id],
        |r| r.get(0),
    )?;
    if interrupted == 0 {
        return Ok(());
    }
    let mut findings = Vec::new();
    {
        let conn = &index.conn;
        let mut current = conn.prepare(&format!(
            "{SELECT_ENTRY} WHERE root_id = ?1 AND until_run IS NULL AND since_run > ?2 AND since_run < ?3 ORDER BY path"
        ))?;
        let mut before = conn.prepare(&format!(
            "{SELECT_ENTRY} WHERE root_id = ?1 AND path = ?2 AND since_run <= ?3 AND until_run > ?3 AND until_run < ?4"
        ))?;
        let rows = current
            .query_map(rusqlite::params![root_id, b, run_id], index::entry_from_row)?
            .collect::<rusqlite::Result<Vec<Entry>>>()?;
        for new in rows {
            let old = before
                .query_row(
                    rusqlite::params![root_id, new.path, b, run_id],
                    index::entry_from_row,
                )
                .optional()?;
            let local = describe(&new.stat, new.blake3.as_ref());
            let is_dir = new.kind == EntryKind::Dir;
            let f = match &old {
                None if is_dir => None,
                None => {
                    summary.added += 1;
                    Some(Finding::new(Kind::Added, new.path.clone()).local(local))
                }
                Some(o) if o.kind == EntryKind::Dir && is_dir => None,
                Some(_) if is_dir => {
                    summary.deleted += 1;
                    Some(
                        Finding::new(Kind::Deleted, new.path.clone())
                            .detail("replaced by a directory"),
                    )
                }
                Some(o) if o.kind == EntryKind::Dir => {
                    summary.added += 1;
                    Some(Finding::new(Kind::Added, new.path.clone()).local(local))
                }
                Some(o)
                    if o.kind == new.kind
                        && o.stat.size == new.stat.size
                        && o.blake3 == new.blake3
                        && o.target == new.target =>
                {
                    None
                }
                Some(o) => {
                    summary.modified += 1;
                    let shrunk = (new.kind == EntryKind::File)
                        .then(|| shrunk_finding(shrink_threshold, o, &new.path, &new.stat))
                        .flatten();
                    if let Some(shrunk) = shrunk {
                        summary.shrunk += 1;
                        findings.push(shrunk.local(local.clone()));
                    }
                    let mut f = Finding::new(Kind::Modified, new.path.clone()).local(local);
                    if o.kind != new.kind {
                        f = f.detail(format!("{} became a {}", o.kind.name(), new.kind.name()));
                    }
                    Some(f)
                }
            };
            if let Some(f) = f {
                // This run counted the file as unchanged.
                summary.unchanged = summary.unchanged.saturating_sub(1);
                findings.push(f);
            }
        }
        let mut gone = conn.prepare(&format!(
            "{SELECT_ENTRY} e WHERE root_id = ?1 AND kind != 2 AND since_run <= ?2 AND until_run > ?2 AND until_run < ?3
             AND NOT EXISTS (SELECT 1 FROM entries c WHERE c.root_id = e.root_id AND c.path = e.path
                             AND (c.until_run IS NULL OR c.until_run = ?3))
             ORDER BY path"
        ))?;
        let rows = gone
            .query_map(rusqlite::params![root_id, b, run_id], index::entry_from_row)?
            .collect::<rusqlite::Result<Vec<Entry>>>()?;
        for old in rows {
            summary.deleted += 1;
            findings.push(
                Finding::new(Kind::Deleted, old.path.clone())
                    .local(describe(&old.stat, old.blake3.as_ref())),
            );
        }
    }
    let mut batch = index.batch()?;
    for f in &mut findings {
        batch.record_finding(run_id, prev_findings_run, f)?;
        sink.finding(f)?;
    }
    batch.commit()
}

/// `shrunk` when a regular file of at least [`SHRUNK_MIN_SIZE`] bytes lost
/// more than `threshold` of its size.
fn shrunk_finding(threshold: Option<f64>, old: &Entry, path: &[u8], new: &Stat) -> Option<Finding> {
    let t = threshold?;
    let shrank = old.kind == EntryKind::File
        && old.stat.size >= SHRUNK_MIN_SIZE
        && (new.size as f64) < (old.stat.size as f64) * (1.0 - t);
    shrank.then(|| {
        let pct = 100.0 * (1.0 - new.size as f64 / old.stat.size as f64);
        Finding::new(Kind::Shrunk, path.to_vec()).detail(format!(
            "shrank from {} to {} bytes (-{pct:.1}%) since the previous scan",
            old.stat.size, new.size
        ))
    })
}

/// The walker: merge-joins the sorted walk with the sorted manifest.
fn walk_and_merge(
    index_path: &Path,
    root_id: i64,
    root: &Path,
    rehash: bool,
    want: Want,
    jobs: SyncSender<Job>,
    events: SyncSender<Event>,
) -> Result<()> {
    let conn = Connection::open_with_flags(
        index_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let mut stmt = conn.prepare(&format!(
        "{SELECT_ENTRY} WHERE root_id = ?1 AND until_run IS NULL ORDER BY path"
    ))?;
    let mut rows = stmt.query([root_id])?;
    let mut next_old = || -> Result<Option<Entry>> {
        Ok(match rows.next()? {
            Some(row) => Some(index::entry_from_row(row)?),
            None => None,
        })
    };
    let mut head = next_old()?;
    // Directories whose listing failed: their manifest rows are kept.
    let mut protected: Vec<Vec<u8>> = Vec::new();
    let mut last_key: Option<Vec<u8>> = None;
    let send = |e: Event| {
        events
            .send(e)
            .map_err(|_| anyhow::anyhow!("scan writer stopped"))
    };
    // Unchanged entries are only counted: batch them, so a no-change rescan
    // costs a stat per file and not a thread hand-off per file.
    let (mut same_files, mut same_dirs) = (0u64, 0u64);
    let mut unchanged = |kind: EntryKind| -> Result<()> {
        if kind == EntryKind::Dir {
            same_dirs += 1;
        } else {
            same_files += 1;
        }
        if same_files + same_dirs >= 4096 {
            events
                .send(Event::Unchanged {
                    files: std::mem::take(&mut same_files),
                    dirs: std::mem::take(&mut same_dirs),
                })
                .map_err(|_| anyhow::anyhow!("scan writer stopped"))?;
        }
        Ok(())
    };

    for item in walk::walk(root) {
        let key = match &item {
            Item::Entry { key, .. } | Item::Special { key } | Item::Unreadable { key, .. } => {
                key.clone()
            }
        };
        let repeat =
            matches!(&item, Item::Unreadable { .. }) && last_key.as_deref() == Some(key.as_slice());
        if !repeat {
            if let Some(last) = &last_key
                && key <= *last
            {
                bail!(
                    "walk out of order at {} (after {})",
                    paths::display(&key),
                    paths::display(last)
                );
            }
            // Manifest rows before this key have no file any more.
            while let Some(old) = head.take_if(|o| o.path < key) {
                if !protected.iter().any(|p| paths::is_inside(&old.path, p)) {
                    send(Event::Deleted(old))?;
                }
                head = next_old()?;
            }
            last_key = Some(key.clone());
        }
        let old = if repeat {
            None
        } else {
            let matched = head.take_if(|o| o.path == key);
            if matched.is_some() {
                head = next_old()?;
            }
            matched
        };
        match item {
            Item::Unreadable { key, is_dir, error } => {
                if is_dir {
                    protected.push(key.clone());
                }
                send(Event::Unreadable { key, error })?;
            }
            Item::Special { .. } => {
                if let Some(old) = old {
                    send(Event::Deleted(old))?;
                }
                send(Event::Special)?;
            }
            Item::Entry {
                key,
                path,
                kind,
                stat,
                target,
            } => match kind {
                EntryKind::Dir => match old {
                    Some(o) if o.kind == EntryKind::Dir => unchanged(kind)?,
                    old => send(Event::Store {
                        new: NewEntry {
                            path: key,
                            kind,
                            stat,
                            blake3: None,
                            md5: None,
                            sha256: None,
                            target: None,
                        },
                        old,
                    })?,
                },
                EntryKind::Symlink => match old {
                    Some(o) if o.kind == EntryKind::Symlink && o.target == target => {
                        unchanged(kind)?
                    }
                    old => {
                        let hash = target.as_deref().map(hash::symlink_hash);
                        send(Event::Store {
                            new: NewEntry {
                                path: key,
                                kind,
                                stat,
                                blake3: hash,
                                md5: None,
                                sha256: None,
                                target,
                            },
                            old,
                        })?
                    }
                },
                EntryKind::File => {
                    let trusted = old.as_ref().is_some_and(|o| {
                        o.kind == EntryKind::File
                            && o.stat == stat
                            && o.blake3.is_some()
                            && (!want.md5 || o.md5.is_some())
                            && (!want.sha256 || o.sha256.is_some())
                    });
                    if trusted && !rehash {
                        unchanged(kind)?;
                    } else {
                        jobs.send(Job { key, path, old })
                            .map_err(|_| anyhow::anyhow!("hashers stopped"))?;
                    }
                }
            },
        }
    }
    while let Some(old) = head.take() {
        if !protected.iter().any(|p| paths::is_inside(&old.path, p)) {
            send(Event::Deleted(old))?;
        }
        head = next_old()?;
    }
    send(Event::Unchanged {
        files: same_files,
        dirs: same_dirs,
    })?;
    Ok(())
}

/// The hashers: the rayon pool drains the job channel in parallel.
fn hash_jobs(jobs: Receiver<Job>, events: SyncSender<Event>, want: Want) {
    jobs.into_iter()
        .par_bridge()
        .for_each_with(events, |events, job| {
            let result = hash::hash_file(&job.path, want);
            let _ = events.send(Event::Hashed {
                key: job.key,
                old: job.old,
                result,
            });
        });
}

#[derive(Clone, Copy)]
struct WriteCtx {
    root_id: i64,
    run_id: i64,
    start_ns: i64,
    rehash: bool,
    prev_findings_run: Option<i64>,
    shrink_threshold: Option<f64>,
}

/// The writer: applies events to the index and reports findings.
#[allow(clippy::too_many_arguments)]
fn write_events(
    batch: &mut Batch<'_>,
    events: &Receiver<Event>,
    ctx: WriteCtx,
    summary: &mut ScanSummary,
    structural: &mut u64,
    sink: &mut dyn Sink,
    progress: &indicatif::ProgressBar,
) -> Result<()> {
    let mut report = |batch: &mut Batch<'_>, mut f: Finding| -> Result<()> {
        batch.record_finding(ctx.run_id, ctx.prev_findings_run, &mut f)?;
        sink.finding(&f)
    };
    let count_file = |summary: &mut ScanSummary, kind: EntryKind| match kind {
        EntryKind::Dir => summary.dirs += 1,
        _ => summary.files += 1,
    };
    for event in events.iter() {
        progress.inc(1);
        match event {
            Event::Failed(e) => return Err(e),
            Event::Special => summary.special += 1,
            Event::Unchanged { files, dirs } => {
                progress.inc(files + dirs);
                summary.files += files;
                summary.unchanged += files;
                summary.dirs += dirs;
            }
            Event::Unreadable { key, error } => {
                summary.unreadable += 1;
                report(batch, Finding::new(Kind::Unreadable, key).detail(error))?;
            }
            Event::Deleted(old) => {
                *structural += 1;
                batch.close_entry(old.id, ctx.run_id)?;
                if old.kind != EntryKind::Dir {
                    summary.deleted += 1;
                    report(
                        batch,
                        Finding::new(Kind::Deleted, old.path.clone())
                            .local(describe(&old.stat, old.blake3.as_ref())),
                    )?;
                }
            }
            Event::Store { new, old } => {
                count_file(summary, new.kind);
                *structural += 1;
                apply_change(batch, ctx, summary, new, old, &mut report)?;
            }
            Event::Hashed { key, old, result } => match result {
                // Deleted since the walk saw it: a deletion (of a known
                // file) like any other, not an I/O error.
                Err(HashError::Vanished) => {
                    if let Some(old) = old {
                        *structural += 1;
                        batch.close_entry(old.id, ctx.run_id)?;
                        summary.deleted += 1;
                        report(
                            batch,
                            Finding::new(Kind::Deleted, key)
                                .local(describe(&old.stat, old.blake3.as_ref()))
                                .detail("vanished during the scan"),
                        )?;
                    }
                }
                Err(e) => {
                    summary.files += 1;
                    summary.unreadable += 1;
                    report(
                        batch,
                        Finding::new(Kind::Unreadable, key).detail(e.to_string()),
                    )?;
                }
                Ok((mut stat, digests)) => {
                    summary.files += 1;
                    summary.bytes_hashed += stat.size;
                    let secs = progress.elapsed().as_secs_f64().max(0.001);
                    progress.set_message(format!(
                        "{} hashed ({}/s)",
                        indicatif::HumanBytes(summary.bytes_hashed),
                        indicatif::HumanBytes((summary.bytes_hashed as f64 / secs) as u64)
                    ));
                    if stat.mtime_ns >= ctx.start_ns - RACY_WINDOW_NS {
                        stat.ctime_ns = RACY_CTIME;
                    }
                    let same_content = old.as_ref().is_some_and(|o| {
                        o.kind == EntryKind::File
                            && o.stat.size == stat.size
                            && o.blake3 == Some(digests.blake3)
                    });
                    if let Some(o) = old.as_ref().filter(|_| same_content) {
                        summary.unchanged += 1;
                        let new = NewEntry {
                            path: key,
                            kind: EntryKind::File,
                            stat,
                            blake3: Some(digests.blake3),
                            md5: digests.md5.or(o.md5),
                            sha256: digests.sha256.or(o.sha256),
                            target: None,
                        };
                        if new.stat != o.stat || new.md5 != o.md5 || new.sha256 != o.sha256 {
                            batch.update_entry(o.id, &new)?;
                        }
                        continue;
                    }
                    let silent = old.as_ref().is_some_and(|o| {
                        ctx.rehash
                            && o.kind == EntryKind::File
                            && o.stat.size == stat.size
                            && o.stat.mtime_ns == stat.mtime_ns
                            && o.stat.inode == stat.inode
                            && o.stat.ctime_ns != RACY_CTIME
                            && o.stat.ctime_ns == stat.ctime_ns
                    });
                    if silent {
                        let o = old.as_ref().expect("checked");
                        summary.corrupt += 1;
                        report(
                            batch,
                            Finding::new(Kind::Corrupt, key)
                                .local(json!({
                                    "size": stat.size,
                                    "blake3": hex::encode(digests.blake3),
                                    "indexed_blake3": o.blake3.map(hex::encode),
                                }))
                                .detail("content changed but size, mtime, ctime and inode did not (bit rot?); the index keeps the earlier hash"),
                        )?;
                        continue;
                    }
                    *structural += 1;
                    let new = NewEntry {
                        path: key,
                        kind: EntryKind::File,
                        stat,
                        blake3: Some(digests.blake3),
                        md5: digests.md5,
                        sha256: digests.sha256,
                        target: None,
                    };
                    apply_change(batch, ctx, summary, new, old, &mut report)?;
                }
            },
        }
    }
    Ok(())
}

/// Stores an added or modified entry and reports it as a change.
fn apply_change(
    batch: &mut Batch<'_>,
    ctx: WriteCtx,
    summary: &mut ScanSummary,
    new: NewEntry,
    old: Option<Entry>,
    report: &mut impl FnMut(&mut Batch<'_>, Finding) -> Result<()>,
) -> Result<()> {
    let is_dir = new.kind == EntryKind::Dir;
    let local = describe(&new.stat, new.blake3.as_ref());
    let finding = match &old {
        None => {
            batch.insert_entry(ctx.root_id, ctx.run_id, &new)?;
            (!is_dir).then(|| {
                summary.added += 1;
                Finding::new(Kind::Added, new.path.clone()).local(local)
            })
        }
        Some(o) => {
            let was_dir = o.kind == EntryKind::Dir;
            batch.replace_entry(ctx.root_id, ctx.run_id, o, &new)?;
            match (was_dir, is_dir) {
                (true, true) => None,
                (false, true) => {
                    summary.deleted += 1;
                    Some(
                        Finding::new(Kind::Deleted, new.path.clone())
                            .detail("replaced by a directory"),
                    )
                }
                (true, false) => {
                    summary.added += 1;
                    Some(Finding::new(Kind::Added, new.path.clone()).local(local))
                }
                (false, false) => {
                    summary.modified += 1;
                    let mut f = Finding::new(Kind::Modified, new.path.clone()).local(local.clone());
                    if o.kind != new.kind {
                        f = f.detail(format!("{} became a {}", o.kind.name(), new.kind.name()));
                    }
                    let shrunk = (new.kind == EntryKind::File)
                        .then(|| shrunk_finding(ctx.shrink_threshold, o, &new.path, &new.stat))
                        .flatten();
                    if let Some(shrunk) = shrunk {
                        summary.shrunk += 1;
                        report(batch, shrunk.local(local))?;
                    }
                    Some(f)
                }
            }
        }
    };
    match finding {
        Some(f) => report(batch, f),
        None => Ok(()),
    }
}

/// The `local` object of a finding: size and hash.
pub fn describe(stat: &Stat, blake3: Option<&[u8; 32]>) -> Value {
    let mut m = Map::new();
    m.insert("size".into(), json!(stat.size));
    if let Some(h) = blake3 {
        m.insert("blake3".into(), json!(hex::encode(h)));
    }
    if stat.mtime_ns != 0 {
        m.insert(
            "mtime".into(),
            json!(crate::report::format_time(
                stat.mtime_ns.div_euclid(1_000_000_000)
            )),
        );
    }
    Value::Object(m)
}

/// Folds the current manifest into Merkle hashes, stores every directory
/// hash that changed, and returns the root hash.
fn fold_merkle(index: &mut Index, root_id: i64, run_id: i64) -> Result<[u8; 32]> {
    let mut dir_rows: HashMap<Vec<u8>, Entry> = HashMap::new();
    let mut computed: Vec<DirHash> = Vec::new();
    let root = {
        let mut stmt = index.conn.prepare(&format!(
            "{SELECT_ENTRY} WHERE root_id = ?1 AND until_run IS NULL ORDER BY path"
        ))?;
        let mut rows = stmt.query([root_id])?;
        let mut folder = Folder::new(|d: DirHash| computed.push(d));
        while let Some(row) = rows.next()? {
            let e = index::entry_from_row(row)?;
            folder.push(&e.path, e.kind, e.stat.size, e.blake3.as_ref());
            if e.kind == EntryKind::Dir {
                dir_rows.insert(e.path.clone(), e);
            }
        }
        folder.finish()
    };
    let mut batch = index.batch()?;
    for d in computed {
        let Some(row) = dir_rows.get(&d.path) else {
            continue;
        };
        if row.blake3 == Some(d.hash) && row.stat.size == d.size {
            continue;
        }
        let new = NewEntry {
            path: d.path.clone(),
            kind: EntryKind::Dir,
            stat: Stat {
                size: d.size,
                ..row.stat
            },
            blake3: Some(d.hash),
            md5: None,
            sha256: None,
            target: None,
        };
        batch.replace_entry(root_id, run_id, row, &new)?;
    }
    batch.commit()?;
    Ok(root.hash)
}
