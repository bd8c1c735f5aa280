//! The scan's walker: one thread that walks ROOT in key order and
//! merge-joins it with the current manifest, so neither side is held in
//! memory. Unchanged entries are only counted; changed and new files
//! become hash jobs; manifest rows with no file any more are deletions.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use anyhow::{Result, bail};

use super::{Event, Job};
use crate::engine::exclude::Excludes;
use crate::engine::hash::{self, Want};
use crate::engine::shard::Shard;
use crate::engine::walk::{self, Item};
use crate::model::{EntryKind, NewEntry, paths};
use crate::out::{Progress, Total};
use crate::store::{Index, ManifestPage, PageEntry};

/// What the walk is to do, built once by the scan and lent to the
/// walker: where the manifest is and which root it is of, the tree, which
/// rows to hash again and with which digests, what to pass over, and
/// whom to tell the totals.
pub(super) struct WalkPlan<'a> {
    /// The index, read on a connection of the walker's own (see
    /// [`read_manifest`]).
    pub(super) index_path: &'a Path,
    pub(super) root_id: i64,
    pub(super) root: &'a Path,
    /// `--rehash`: hash every file, unchanged or not.
    pub(super) rehash: bool,
    /// The digests a file's row must hold to count as unchanged.
    pub(super) want: Want,
    /// Keys never scanned: the index's own files under ROOT (see
    /// `index_files_inside`).
    pub(super) skip: &'a [Vec<u8>],
    /// `--shard K/N`: only this shard's files (every directory).
    pub(super) shard: Option<Shard>,
    pub(super) progress: &'a dyn Progress,
}

/// The walker: merge-joins the sorted walk with the sorted manifest, as
/// `plan` says, sending hash jobs to `jobs` and everything else to
/// `events`. Returns the excludes in force (`excludes` with every
/// `.vouchignore` found) and how many entries they left out. A manifest
/// row they exclude is passed over: not compared, and not closed as
/// deleted either. When the walk ends it tells `plan.progress` how many
/// files the scan counts and how many bytes it hashes in all.
///
/// Also returns the (files, bytes) of the regular files in the manifest it
/// read: the current manifest before this run, summed on the way.
pub(super) fn walk_and_merge(
    plan: &WalkPlan<'_>,
    excludes: Excludes,
    jobs: SyncSender<(u64, Vec<Job>)>,
    events: SyncSender<Event>,
) -> Result<Walked> {
    // The manifest is read on a thread of its own, a page ahead of the
    // merge (see `read_manifest`); each page the merge is done with goes
    // back to be read into again.
    let (page_tx, page_rx) = sync_channel::<Result<Option<ManifestPage>>>(2);
    let (spare_tx, spare_rx) = sync_channel::<ManifestPage>(1);
    let (index_path, root_id) = (plan.index_path, plan.root_id);
    std::thread::scope(|scope| {
        scope.spawn(move || read_manifest(index_path, root_id, page_tx, spare_rx));
        let mut cursor = Cursor {
            pages: page_rx,
            spare: spare_tx,
            page: ManifestPage::default(),
            at: 0,
            manifest: (0, 0),
            ended: false,
        };
        merge(&mut cursor, plan, excludes, jobs, events).map(|(excludes, excluded)| Walked {
            excludes,
            excluded,
            manifest: cursor.manifest,
        })
    })
}

/// Reads the current manifest of `root_id`, a page at a time, into
/// `pages`; `Ok(None)` ends it. Its own read-only connection, a read
/// transaction per page fetch: the writer only writes rows the walk has
/// passed, and the walk is behind this reader, so what it reads is the
/// manifest as the scan began (see `Index::current_entries`). Ends early
/// when the merge stops listening.
///
/// Each page is read into one the merge gave back on `spares`, when there
/// is one: whatever the manifest's size, the pages are those in `pages`,
/// the merge's, this reader's and at most one on its way back, each
/// allocated once, not one allocation per page read.
fn read_manifest(
    index_path: &Path,
    root_id: i64,
    pages: SyncSender<Result<Option<ManifestPage>>>,
    spares: Receiver<ManifestPage>,
) {
    let reader = match Index::open_read_only(index_path) {
        Ok(r) => r,
        Err(e) => {
            let _ = pages.send(Err(e));
            return;
        }
    };
    for page in reader.manifest_pages(root_id, || spares.try_recv().unwrap_or_default()) {
        let failed = page.is_err();
        if pages.send(page.map(Some)).is_err() || failed {
            return;
        }
    }
    let _ = pages.send(Ok(None));
}

/// The merge's place in the manifest: the row under it is the head.
struct Cursor {
    pages: Receiver<Result<Option<ManifestPage>>>,
    /// Pages done with, back to the reader (see [`read_manifest`]).
    spare: SyncSender<ManifestPage>,
    page: ManifestPage,
    at: usize,
    /// (files, bytes) of the regular files passed.
    manifest: (u64, u64),
    ended: bool,
}

impl Cursor {
    /// The row under the cursor, `None` past the last one.
    fn head(&mut self) -> Result<Option<PageEntry<'_>>> {
        while self.at >= self.page.len() && !self.ended {
            match self.pages.recv() {
                Ok(Ok(Some(page))) => {
                    let done = std::mem::replace(&mut self.page, page);
                    // Never waits: a page the reader has no room for is
                    // dropped.
                    let _ = self.spare.try_send(done);
                    self.at = 0;
                }
                Ok(Ok(None)) => self.ended = true,
                Ok(Err(e)) => return Err(e),
                Err(_) => bail!("the scan's manifest reader stopped"),
            }
        }
        Ok(self.page.get(self.at))
    }

    /// Moves past the head, counting it.
    fn advance(&mut self) {
        if let Some(e) = self.page.get(self.at)
            && e.kind() == EntryKind::File
        {
            self.manifest.0 += 1;
            self.manifest.1 += e.stat().size;
        }
        self.at += 1;
    }
}

/// The merge-join itself (see [`walk_and_merge`]); returns the excludes in
/// force and how many entries they left out.
fn merge(
    rows: &mut Cursor,
    plan: &WalkPlan<'_>,
    excludes: Excludes,
    jobs: SyncSender<(u64, Vec<Job>)>,
    events: SyncSender<Event>,
) -> Result<(Excludes, u64)> {
    let &WalkPlan {
        root,
        rehash,
        want,
        skip,
        shard,
        progress,
        ..
    } = plan;
    let mut jobs = JobBatch {
        jobs,
        events: events.clone(),
        buf: Vec::new(),
        bytes: 0,
        seq: 0,
        fresh: false,
    };
    // What the scan will count (files and symlinks) and hash, in all.
    let (mut files, mut to_hash) = (0u64, 0u64);
    // No manifest yet (a first scan): every entry reaches the writer, which
    // folds the Merkle tree as it writes, given the entries in key order.
    if rows.head()?.is_none() {
        jobs.fresh = true;
        jobs.send(Event::Fresh)?;
    }
    // Directories whose listing failed: their manifest rows are kept.
    let mut protected: Vec<Vec<u8>> = Vec::new();
    let mut last_key: Option<Vec<u8>> = None;
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

    // As many read-ahead helpers as threads (the walk itself is one
    // more): listing and stat-ing are most of a rescan, and this thread,
    // left with the merge, keeps up with them. `--threads 1` lists on
    // this thread alone.
    let threads = rayon::current_num_threads();
    let walkers = if threads > 1 { threads + 1 } else { 1 };
    let mut walk = walk::walk_parallel(root, walkers, excludes);
    // A row the excludes leave out is kept as it is (see crate::engine::exclude).
    // The same rule after the walk, with the excludes it ended with.
    let gone = |excludes: &Excludes, path: &[u8], kind: EntryKind, protected: &[Vec<u8>]| {
        !protected.iter().any(|p| paths::is_inside(path, p))
            && !excludes.excludes_path(path, kind == EntryKind::Dir)
    };
    while let Some(item) = walk.next() {
        let (key, dir) = match &item {
            Item::Entry { key, kind, .. } => (key.as_slice(), *kind == EntryKind::Dir),
            Item::Special { key } => (key.as_slice(), false),
            Item::Unreadable { key, is_dir, .. } => (key.as_slice(), *is_dir),
        };
        // Another shard's file: not this index's business (directories
        // are every shard's, so each index can fold its Merkle tree).
        if let Some(shard) = shard
            && !dir
            && !shard.owns_stored(key)
        {
            continue;
        }
        if skip.iter().any(|s| s.as_slice() == key) {
            continue; // the index itself (see `index_files_inside`)
        }
        let repeat = matches!(&item, Item::Unreadable { .. }) && last_key.as_deref() == Some(key);
        let old = if repeat {
            None
        } else {
            if let Some(last) = &last_key
                && key <= last.as_slice()
            {
                bail!(
                    "walk out of order at {} (after {})",
                    paths::display(key),
                    paths::display(last)
                );
            }
            // Manifest rows before this key have no file any more.
            while let Some(old) = rows.head()?.filter(|o| o.path() < key) {
                if gone(walk.excludes(), old.path(), old.kind(), &protected) {
                    jobs.send(Event::Deleted(old.to_entry()))?;
                }
                rows.advance();
            }
            // The last key, in one buffer reused for the whole walk.
            let last = last_key.get_or_insert_with(Vec::new);
            last.clear();
            last.extend_from_slice(key);
            let matched = rows.head()?.is_some_and(|o| o.path() == key);
            if matched {
                rows.advance();
            }
            // Still in the page: only `head` moves to the next one.
            matched.then(|| rows.page.get(rows.at - 1)).flatten()
        };
        if matches!(&item, Item::Entry { kind, .. } if *kind != EntryKind::Dir) {
            files += 1;
        }
        match item {
            Item::Unreadable { key, is_dir, error } => {
                if is_dir {
                    protected.push(key.clone());
                }
                jobs.send(Event::Unreadable { key, error })?;
            }
            Item::Special { .. } => jobs.send(Event::Special {
                replaced: old.map(|o| o.to_entry()),
            })?,
            Item::Entry {
                key,
                kind,
                stat,
                target,
                ..
            } => match kind {
                EntryKind::Dir => match old {
                    Some(o) if o.kind() == EntryKind::Dir => unchanged(kind)?,
                    old => jobs.send(Event::Store {
                        new: NewEntry {
                            path: key,
                            kind,
                            stat,
                            blake3: None,
                            md5: None,
                            sha256: None,
                            target: None,
                            trusted_blake3: None,
                            crc64nvme: None,
                        },
                        old: old.map(|o| o.to_entry()),
                    })?,
                },
                EntryKind::Symlink => match old {
                    Some(o)
                        if o.kind() == EntryKind::Symlink && o.target() == target.as_deref() =>
                    {
                        unchanged(kind)?
                    }
                    old => {
                        let hash = target.as_deref().map(hash::symlink_hash);
                        jobs.send(Event::Store {
                            new: NewEntry {
                                path: key,
                                kind,
                                stat,
                                blake3: hash,
                                md5: None,
                                sha256: None,
                                target,
                                trusted_blake3: None,
                                crc64nvme: None,
                            },
                            old: old.map(|o| o.to_entry()),
                        })?
                    }
                },
                EntryKind::File => {
                    // A rotted file is hashed on every scan: it stays
                    // `corrupt` until rewritten, or heals if its content
                    // comes back.
                    let trusted = old.is_some_and(|o| {
                        o.kind() == EntryKind::File
                            && !o.is_rotted()
                            && o.stat() == stat
                            && o.has_blake3()
                            && (!want.md5 || o.has_md5())
                            && (!want.sha256 || o.has_sha256())
                    });
                    if trusted && !rehash {
                        unchanged(kind)?;
                    } else {
                        to_hash += stat.size;
                        let path = paths::fs_path(root, &key);
                        let old = old.map(|o| o.to_entry());
                        jobs.push(Job { key, path, old }, stat.size)?;
                    }
                }
            },
        }
    }
    jobs.flush()?;
    progress.total(Total {
        files: Some(files),
        bytes: Some(to_hash),
        exact: true,
    });
    let excluded = walk.excluded();
    // A `.vouchignore` that stopped the walk fails the scan before any
    // row after it could be taken for deleted.
    let walk_excludes = walk.finish()?;
    while let Some(old) = rows.head()? {
        if gone(&walk_excludes, old.path(), old.kind(), &protected) {
            jobs.send(Event::Deleted(old.to_entry()))?;
        }
        rows.advance();
    }
    jobs.send(Event::Unchanged {
        files: same_files,
        dirs: same_dirs,
    })?;
    Ok((walk_excludes, excluded))
}

/// What the walk found besides its events.
pub(super) struct Walked {
    /// The excludes in force, with every `.vouchignore` found.
    pub(super) excludes: Excludes,
    /// Entries they left out.
    pub(super) excluded: u64,
    /// (files, bytes) of the regular files in the manifest as the walker
    /// read it (before this run wrote anything).
    pub(super) manifest: (u64, u64),
}

/// Jobs go to the hashers in batches of up to [`JobBatch::FILES`] files or
/// [`JobBatch::BYTES`] bytes: one hand-off per batch, not per file (the
/// channel's locks and wake-ups cost more than hashing a small file).
/// 16 MiB is ~6 ms of hashing on one core: at 1 MiB a tree of 256 KiB
/// files woke the writer every four files (13,000 context switches for
/// 20,000 files, 2,000 now), and the last batch still leaves the other
/// hashers idle for only a few ms. A large file is one job whatever its
/// size; its windows are hashed in parallel (`engine::hash`).
/// Each batch is numbered, and its number ([`Event::Slot`]) goes to the
/// writer in the walk's order, so the writer applies the hashers' results
/// in that order whichever hasher finishes first. Every other event goes
/// through here too: in a first scan ([`JobBatch::fresh`]) the open batch is
/// sent first, so the writer sees every entry in key order.
struct JobBatch {
    jobs: SyncSender<(u64, Vec<Job>)>,
    events: SyncSender<Event>,
    buf: Vec<Job>,
    bytes: u64,
    /// The next batch's number.
    seq: u64,
    fresh: bool,
}

impl JobBatch {
    const FILES: usize = 64;
    const BYTES: u64 = 16 << 20;

    fn push(&mut self, job: Job, size: u64) -> Result<()> {
        self.buf.push(job);
        self.bytes += size;
        if self.buf.len() >= Self::FILES || self.bytes >= Self::BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.bytes = 0;
        let batch = std::mem::replace(&mut self.buf, Vec::with_capacity(Self::FILES));
        let seq = self.seq;
        self.seq += 1;
        self.jobs
            .send((seq, batch))
            .map_err(|_| anyhow::anyhow!("hashers stopped"))?;
        self.send_now(Event::Slot(seq))
    }

    /// Sends an event to the writer, after the open batch in a first scan
    /// (see the type's note).
    fn send(&mut self, e: Event) -> Result<()> {
        if self.fresh {
            self.flush()?;
        }
        self.send_now(e)
    }

    fn send_now(&self, e: Event) -> Result<()> {
        self.events
            .send(e)
            .map_err(|_| anyhow::anyhow!("scan writer stopped"))
    }
}
