//! The scan's walker: one thread that walks ROOT in key order and
//! merge-joins it with the current manifest, so neither side is held in
//! memory. Unchanged entries are only counted; changed and new files
//! become hash jobs; manifest rows with no file any more are deletions.

use std::path::Path;
use std::sync::mpsc::SyncSender;

use anyhow::{Result, bail};

use super::{Event, Job};
use crate::engine::exclude::Excludes;
use crate::engine::hash::{self, Want};
use crate::engine::shard::Shard;
use crate::engine::walk::{self, Item};
use crate::model::{Entry, EntryKind, NewEntry, paths};
use crate::out::{Progress, Total};
use crate::store::{Index, Rows};

/// The walker: merge-joins the sorted walk with the sorted manifest.
/// Returns the excludes in force (with every `.vouchignore` found) and how
/// many entries they left out. A manifest row they exclude is passed over:
/// not compared, and not closed as deleted either. When the walk ends it
/// tells `progress` how many files the scan counts and how many bytes it
/// hashes in all.
///
/// Also returns the (files, bytes) of the regular files in the manifest it
/// read: the current manifest before this run, summed on the way.
#[allow(clippy::too_many_arguments)]
pub(super) fn walk_and_merge(
    index_path: &Path,
    root_id: i64,
    root: &Path,
    rehash: bool,
    want: Want,
    excludes: Excludes,
    skip: &[Vec<u8>],
    shard: Option<Shard>,
    jobs: SyncSender<(u64, Vec<Job>)>,
    events: SyncSender<Event>,
    progress: &dyn Progress,
) -> Result<Walked> {
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
    // Its own read-only connection, a read transaction per page fetch: the
    // writer only writes rows the walk has passed, so what it reads is the
    // manifest as the scan began (see `Index::current_entries`).
    let reader = Index::open_read_only(index_path)?;
    let mut rows = reader.current_entries(root_id, Rows::All);
    let mut manifest = (0u64, 0u64);
    let mut next_old = || -> Result<Option<Entry>> {
        let old = rows.next().transpose()?;
        if let Some(e) = &old
            && e.kind == EntryKind::File
        {
            manifest.0 += 1;
            manifest.1 += e.stat.size;
        }
        Ok(old)
    };
    let mut head = next_old()?;
    // No manifest yet (a first scan): every entry reaches the writer, which
    // folds the Merkle tree as it writes, given the entries in key order.
    if head.is_none() {
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
    let gone = |w: &walk::Walk, old: &Entry, protected: &[Vec<u8>]| {
        !protected.iter().any(|p| paths::is_inside(&old.path, p))
            && !w
                .excludes()
                .excludes_path(&old.path, old.kind == EntryKind::Dir)
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
            while let Some(old) = head.take_if(|o| o.path.as_slice() < key) {
                if gone(&walk, &old, &protected) {
                    jobs.send(Event::Deleted(old))?;
                }
                head = next_old()?;
            }
            // The last key, in one buffer reused for the whole walk.
            let last = last_key.get_or_insert_with(Vec::new);
            last.clear();
            last.extend_from_slice(key);
            let matched = head.take_if(|o| o.path.as_slice() == key);
            if matched.is_some() {
                head = next_old()?;
            }
            matched
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
            Item::Special { .. } => jobs.send(Event::Special { replaced: old })?,
            Item::Entry {
                key,
                kind,
                stat,
                target,
                ..
            } => match kind {
                EntryKind::Dir => match old {
                    Some(o) if o.kind == EntryKind::Dir => unchanged(kind)?,
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
                        old,
                    })?,
                },
                EntryKind::Symlink => match old {
                    Some(o) if o.kind == EntryKind::Symlink && o.target == target => {
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
                            old,
                        })?
                    }
                },
                EntryKind::File => {
                    // A rotted file is hashed on every scan: it stays
                    // `corrupt` until rewritten, or heals if its content
                    // comes back.
                    let trusted = old.as_ref().is_some_and(|o| {
                        o.kind == EntryKind::File
                            && o.trusted_blake3.is_none()
                            && o.stat == stat
                            && o.blake3.is_some()
                            && (!want.md5 || o.md5.is_some())
                            && (!want.sha256 || o.sha256.is_some())
                    });
                    if trusted && !rehash {
                        unchanged(kind)?;
                    } else {
                        to_hash += stat.size;
                        let path = paths::fs_path(root, &key);
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
    while let Some(old) = head.take() {
        if !protected.iter().any(|p| paths::is_inside(&old.path, p))
            && !walk_excludes.excludes_path(&old.path, old.kind == EntryKind::Dir)
        {
            jobs.send(Event::Deleted(old))?;
        }
        head = next_old()?;
    }
    jobs.send(Event::Unchanged {
        files: same_files,
        dirs: same_dirs,
    })?;
    Ok(Walked {
        excludes: walk_excludes,
        excluded,
        manifest,
    })
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
    const BYTES: u64 = 1 << 20;

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
