//! The scan's writer, in two halves on two threads. The front decides:
//! it takes every event of the walker and the hashers in the walk's order,
//! settles each against its manifest row, folds the Merkle tree of a first
//! scan and counts the summary; it hands what to write and report, in
//! order, to the back. The back is the one thread that owns the index
//! connection and the sink: it applies those writes in batched
//! transactions and reports each finding. SQLite's inserts are most of
//! the back's time and cannot be shared out, so everything else is kept
//! off its thread (see the README's Design section). After the scan, the
//! writer reports what interrupted scans before it committed but never
//! reported.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};

use anyhow::Result;
use serde_json::json;

use super::{Event, RACY_CTIME, RACY_WINDOW_NS, ScanSummary, describe, sets, shrunk_finding};
use crate::engine::checks::{self, Report, Verdict};
use crate::engine::hash::{Digests, HashError};
use crate::engine::merkle::{DirHash, Folder};
use crate::model::{Entry, EntryKind, Finding, Kind, NewEntry, Stat, paths};
use crate::out::{Progress, Sink};
use crate::store::{Batch, CheckRow, Index};

#[derive(Clone, Copy)]
pub(super) struct WriteCtx {
    pub(super) root_id: i64,
    pub(super) run_id: i64,
    pub(super) start_ns: i64,
    pub(super) prev_findings_run: Option<i64>,
    pub(super) shrink_threshold: Option<f64>,
    /// The sink shows changes without their details (the table counts
    /// them): `added`/`modified`/`deleted` go out bare, without the JSON
    /// (hex hash, time) nobody reads.
    pub(super) bare_changes: bool,
}

/// A change (added, modified, deleted) with its details, unless the sink
/// shows changes bare.
fn change(
    ctx: WriteCtx,
    kind: Kind,
    path: Vec<u8>,
    stat: &Stat,
    hash: Option<&[u8; 32]>,
) -> Finding {
    let f = Finding::new(kind, path);
    if ctx.bare_changes {
        f
    } else {
        f.local(describe(stat, hash))
    }
}

/// The events in the walk's order: each [`Event::Slot`] replaced by the
/// results of its batch, which may come from the hashers out of order
/// (they wait here until the slot is reached).
struct InOrder<'a> {
    events: &'a Receiver<Event>,
    results: &'a Receiver<(u64, Vec<Event>)>,
    /// Results of batches whose slot is not reached yet.
    early: HashMap<u64, Vec<Event>>,
    current: std::vec::IntoIter<Event>,
}

/// Receives from `rx`, handing the writes decided so far to the back
/// first if it has to wait (so the back never idles while the front does).
fn recv_or_hand_over<T>(rx: &Receiver<T>, out: &mut Queue) -> Result<Option<T>> {
    match rx.try_recv() {
        Ok(v) => Ok(Some(v)),
        Err(TryRecvError::Disconnected) => Ok(None),
        Err(TryRecvError::Empty) => {
            out.hand_over()?;
            Ok(rx.recv().ok())
        }
    }
}

impl InOrder<'_> {
    fn next(&mut self, out: &mut Queue) -> Option<Event> {
        loop {
            if let Some(e) = self.current.next() {
                return Some(e);
            }
            let seq = match recv_or_hand_over(self.events, out) {
                Ok(Some(Event::Slot(seq))) => seq,
                Ok(e) => return e,
                Err(e) => return Some(Event::Failed(e)),
            };
            let hashed = loop {
                if let Some(v) = self.early.remove(&seq) {
                    break v;
                }
                match recv_or_hand_over(self.results, out) {
                    Ok(Some((s, v))) => {
                        self.early.insert(s, v);
                    }
                    Ok(None) => {
                        return Some(Event::Failed(anyhow::anyhow!(
                            "the scan's hashers stopped before batch {seq}"
                        )));
                    }
                    Err(e) => return Some(Event::Failed(e)),
                }
            };
            self.current = hashed.into_iter();
        }
    }
}

/// One write (or report) the front decided, applied in order by the back.
/// The rarer ones are boxed, so the common one (a new row) moves light.
enum Op {
    /// A new row; an added file is reported as such after it.
    Insert { new: NewEntry, added: bool },
    /// `Batch::replace_entry`: row `.0` gives way to `.1`.
    Replace(Box<(Entry, NewEntry)>),
    /// `Batch::update_entry`: row `.0` rewritten in place as `.1`.
    Update(Box<(Entry, NewEntry)>),
    /// Row ends (deleted or replaced by something not stored).
    Close(Box<Entry>),
    /// A finding: accepted or not, stored if a discrepancy, sent to the sink.
    Report(Finding),
    /// Stores a file's check.
    Check(Box<CheckOp>),
    /// Stores an unchanged file's check, unless a set check stored one.
    CheckUnlessSet(Box<(Entry, Report)>),
}

/// A check to store: on the row of `key` valid since `since`.
struct CheckOp {
    key: Vec<u8>,
    since: i64,
    /// The file's earlier version, if any: whether it (or a version before
    /// it) held table data is read from its check when this op is applied.
    /// That check is keyed by the earlier row's own `since_run`, which no
    /// op between the decision and this one writes, so reading it here is
    /// reading it before the row was replaced.
    earlier: Option<Box<Entry>>,
    check: Report,
}

/// Ops per hand-over from the front to the back.
const CHUNK: usize = 256;

/// The front's side of the hand-over: ops gather in a chunk, sent when
/// full or when the front is about to wait.
struct Queue {
    tx: SyncSender<Vec<Op>>,
    chunk: Vec<Op>,
}

/// The back has stopped (its error is the one reported).
const BACK_STOPPED: &str = "the scan's writer stopped";

impl Queue {
    fn push(&mut self, op: Op) -> Result<()> {
        self.chunk.push(op);
        if self.chunk.len() >= CHUNK {
            self.hand_over()?;
        }
        Ok(())
    }

    fn report(&mut self, f: Finding) -> Result<()> {
        self.push(Op::Report(f))
    }

    fn hand_over(&mut self) -> Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        self.tx
            .send(chunk)
            .map_err(|_| anyhow::anyhow!(BACK_STOPPED))
    }
}

/// What the inline fold does with a completed directory.
type OnDir<'a> = Box<dyn FnMut(DirHash) + 'a>;

/// The Merkle fold of a first scan, made as the writer goes: it sees every
/// entry, in key order (see `walker::JobBatch`), so the pass over the whole
/// manifest after the walk (`fold_merkle`, one thread while the others
/// idle: a fifth of a first scan of 200,000 small files) is not needed. A
/// directory's row is written once its hash is known, after its children;
/// a crash before that leaves its children's rows, and the next scan adds
/// the directory and folds the tree as any scan that changed something.
pub(super) struct InlineFold<F: FnMut(DirHash)> {
    folder: Folder<F>,
    /// The directories whose rows wait for their hashes, outermost first.
    held: Vec<NewEntry>,
    /// The set checks' anchors among the files written (see [`Folded`]).
    anchors: Vec<Vec<u8>>,
}

impl<F: FnMut(DirHash)> InlineFold<F> {
    /// Folds one entry written by the first scan.
    fn push(&mut self, path: &[u8], kind: EntryKind, size: u64, hash: Option<&[u8; 32]>) {
        self.folder.push(path, kind, size, hash);
        if kind == EntryKind::File && sets::is_anchor(path) {
            self.anchors.push(path.to_vec());
        }
    }
}

/// What a first scan's writer folded as it wrote: the root's Merkle hash,
/// and the anchors of set checks it wrote (every directory changed, so
/// these are all the set checks' anchors: `sets::check_sets` need not read
/// the whole manifest back to find them).
pub(super) struct Folded {
    pub(super) root: [u8; 32],
    pub(super) anchors: Vec<Vec<u8>>,
}

/// The writer: applies events to the index and reports findings, the
/// front on a thread of its own and the back on this one (see the module
/// docs). Returns what it folded when it folded the tree as it wrote (a
/// first scan, see [`InlineFold`]). Whatever happens, every event is
/// taken, so the walker and the hashers can finish.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_events(
    batch: &mut Batch<'_>,
    events: Receiver<Event>,
    results: Receiver<(u64, Vec<Event>)>,
    ctx: WriteCtx,
    summary: &mut ScanSummary,
    structural: &mut u64,
    acceptor: &super::Acceptor,
    sink: &mut dyn Sink,
    progress: &dyn Progress,
) -> Result<Option<Folded>> {
    // A few chunks in flight: the front runs ahead of SQLite by at most
    // ~1,000 rows.
    let (tx, rx) = sync_channel::<Vec<Op>>(4);
    let (front, back) = std::thread::scope(|scope| {
        let front = scope.spawn(move || {
            let mut out = Queue {
                tx,
                chunk: Vec::with_capacity(CHUNK),
            };
            let folded = decide(
                &events, &results, &mut out, ctx, summary, structural, progress,
            )
            .and_then(|folded| out.hand_over().map(|()| folded));
            drop(out);
            // Drain so the other stages can finish even after an error
            // (the hashers' results stop them no more: they are let go
            // once the channel is gone).
            drop(results);
            for _ in events.iter() {}
            folded
        });
        let mut back = Back {
            batch,
            ctx,
            acceptor,
            sink,
        };
        let applied = rx
            .iter()
            .try_for_each(|chunk| chunk.into_iter().try_for_each(|op| back.apply(op)));
        // The front stops at its next hand-over.
        drop(rx);
        let front = front
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the scan's writer panicked")));
        (front, applied)
    });
    // The back's error is the cause when both failed (the front's is then
    // that the back stopped).
    back?;
    front
}

/// The back half of the writer: applies the front's ops on the thread
/// that owns the index connection and the sink.
struct Back<'b, 'c> {
    batch: &'b mut Batch<'c>,
    ctx: WriteCtx,
    acceptor: &'b super::Acceptor,
    sink: &'b mut dyn Sink,
}

impl Back<'_, '_> {
    fn report(&mut self, mut f: Finding) -> Result<()> {
        self.acceptor.apply(&mut f);
        self.batch
            .record_finding(self.ctx.run_id, self.ctx.prev_findings_run, &mut f)?;
        self.sink.finding(&f)
    }

    fn apply(&mut self, op: Op) -> Result<()> {
        let WriteCtx {
            root_id, run_id, ..
        } = self.ctx;
        match op {
            Op::Insert { new, added } => {
                self.batch.insert_entry(root_id, run_id, &new)?;
                if added {
                    let hash = new.blake3;
                    let f = change(self.ctx, Kind::Added, new.path, &new.stat, hash.as_ref());
                    self.report(f)?;
                }
            }
            Op::Replace(b) => {
                self.batch.replace_entry(root_id, run_id, &b.0, &b.1)?;
            }
            Op::Update(b) => self.batch.update_entry(root_id, &b.0, &b.1)?,
            Op::Close(old) => self.batch.close_entry(root_id, &old, run_id)?,
            Op::Report(f) => self.report(f)?,
            Op::Check(c) => {
                let had_data = match &c.earlier {
                    Some(o) => self.batch.data_ever(root_id, o)?,
                    None => false,
                };
                record_check(self.batch, self.ctx, &c.key, c.since, had_data, &c.check)?;
            }
            Op::CheckUnlessSet(b) => {
                let (o, check) = &*b;
                // Same content, same verdict, except what a set check (a
                // pg_dump directory, a backup manifest) stored: that
                // stands.
                if !self.batch.has_set_check(root_id, &o.path, o.since_run)? {
                    let had_data = self.batch.data_ever(root_id, o)?;
                    record_check(self.batch, self.ctx, &o.path, o.since_run, had_data, check)?;
                }
            }
        }
        Ok(())
    }
}

/// The front half of the writer: settles the events in the walk's order
/// and queues the writes and findings.
fn decide(
    events: &Receiver<Event>,
    results: &Receiver<(u64, Vec<Event>)>,
    out: &mut Queue,
    ctx: WriteCtx,
    summary: &mut ScanSummary,
    structural: &mut u64,
    progress: &dyn Progress,
) -> Result<Option<Folded>> {
    // Progress counts files, as the summary does, not directories.
    let count_file = |summary: &mut ScanSummary, kind: EntryKind| match kind {
        EntryKind::Dir => summary.dirs += 1,
        _ => {
            summary.files += 1;
            progress.advance(1);
        }
    };
    let mut in_order = InOrder {
        events,
        results,
        early: HashMap::new(),
        current: Vec::new().into_iter(),
    };
    // Directories completed by the fold, written after each event.
    let done = RefCell::new(Vec::new());
    let mut fold: Option<InlineFold<OnDir<'_>>> = None;
    while let Some(event) = in_order.next(out) {
        if let Some(f) = fold.as_mut() {
            match &event {
                // What a first scan sends: entries, in key order.
                Event::Store { new, old: None } => {
                    f.push(&new.path, new.kind, new.stat.size, new.blake3.as_ref());
                }
                Event::Hashed {
                    key,
                    old: None,
                    result,
                    ..
                } => {
                    if let Ok((stat, digests)) = result {
                        f.push(key, EntryKind::File, stat.size, Some(&digests.blake3));
                    }
                }
                Event::Unreadable { .. }
                | Event::Special { replaced: None }
                | Event::Unchanged { files: 0, dirs: 0 }
                | Event::Failed(_) => {}
                // Anything else means the manifest was not empty after
                // all: the fold after the walk does it, as for any scan.
                _ => {
                    let f = fold.take().expect("checked above");
                    write_held(out, ctx, summary, f.held)?;
                }
            }
            let finished = std::mem::take(&mut *done.borrow_mut());
            if let Some(f) = fold.as_mut() {
                settle_dirs(out, ctx, summary, &mut f.held, finished)?;
            }
        }
        match event {
            Event::Slot(_) => anyhow::bail!("internal: a batch's slot out of place"),
            Event::Fresh => {
                fold = Some(InlineFold {
                    folder: Folder::new(Box::new(|d: DirHash| done.borrow_mut().push(d))),
                    held: Vec::new(),
                    anchors: Vec::new(),
                });
            }
            Event::Store { new, old: None } if new.kind == EntryKind::Dir && fold.is_some() => {
                // Written once the fold gives its hash (above).
                count_file(summary, new.kind);
                *structural += 1;
                fold.as_mut().expect("checked").held.push(new);
            }
            Event::Failed(e) => return Err(e),
            Event::Special { replaced } => {
                summary.special += 1;
                if let Some(old) = replaced {
                    *structural += 1;
                    let findings = (old.kind != EntryKind::Dir).then(|| {
                        summary.deleted += 1;
                        let shrunk = replaced_finding(ctx, &old, "a FIFO, socket or device");
                        if shrunk.is_some() {
                            summary.shrunk += 1;
                        }
                        let f = change(
                            ctx,
                            Kind::Deleted,
                            old.path.clone(),
                            &old.stat,
                            old.blake3.as_ref(),
                        );
                        (
                            shrunk,
                            f.detail("replaced by a FIFO, socket or device (not read)"),
                        )
                    });
                    out.push(Op::Close(Box::new(old)))?;
                    if let Some((shrunk, deleted)) = findings {
                        if let Some(f) = shrunk {
                            out.report(f)?;
                        }
                        out.report(deleted)?;
                    }
                }
            }
            Event::Unchanged { files, dirs } => {
                progress.advance(files);
                summary.files += files;
                summary.unchanged += files;
                summary.dirs += dirs;
            }
            Event::Unreadable { key, error } => {
                summary.unreadable += 1;
                out.report(Finding::new(Kind::Unreadable, key).detail(error))?;
            }
            Event::Deleted(old) => {
                *structural += 1;
                let f = (old.kind != EntryKind::Dir).then(|| {
                    summary.deleted += 1;
                    change(
                        ctx,
                        Kind::Deleted,
                        old.path.clone(),
                        &old.stat,
                        old.blake3.as_ref(),
                    )
                });
                out.push(Op::Close(Box::new(old)))?;
                if let Some(f) = f {
                    out.report(f)?;
                }
            }
            Event::Store { new, old } => {
                count_file(summary, new.kind);
                *structural += 1;
                apply_change(out, ctx, summary, new, old)?;
            }
            Event::Hashed {
                key,
                old,
                result,
                check,
            } => settle_hashed(
                out, ctx, summary, structural, progress, key, old, result, check,
            )?,
        }
    }
    let Some(InlineFold {
        folder,
        mut held,
        anchors,
    }) = fold
    else {
        return Ok(None);
    };
    let root = folder.finish();
    let finished = std::mem::take(&mut *done.borrow_mut());
    settle_dirs(out, ctx, summary, &mut held, finished)?;
    // Every directory completes before the root; none is left.
    write_held(out, ctx, summary, held)?;
    Ok(Some(Folded {
        root: root.hash,
        anchors,
    }))
}

/// Writes the held rows of the directories the fold completed, with their
/// hashes and sizes (as `fold_merkle` stores them). A completed directory
/// with no held row (ROOT, or one opened implicitly) has none to write.
fn settle_dirs(
    out: &mut Queue,
    ctx: WriteCtx,
    summary: &mut ScanSummary,
    held: &mut Vec<NewEntry>,
    finished: Vec<DirHash>,
) -> Result<()> {
    for d in finished {
        if let Some(mut new) = held.pop_if(|h| h.path == d.path) {
            new.blake3 = Some(d.hash);
            new.stat.size = d.size;
            apply_change(out, ctx, summary, new, None)?;
        }
    }
    Ok(())
}

/// Writes held directory rows as they are, without a hash (the fold after
/// the walk computes it).
fn write_held(
    out: &mut Queue,
    ctx: WriteCtx,
    summary: &mut ScanSummary,
    held: Vec<NewEntry>,
) -> Result<()> {
    for new in held {
        apply_change(out, ctx, summary, new, None)?;
    }
    Ok(())
}

/// Applies the result of hashing one file: unchanged content (metadata
/// refreshed), a change, bit rot (content changed under the same size and
/// mtime: `corrupt`), a file that
/// vanished, or one that could not be read.
#[allow(clippy::too_many_arguments)]
fn settle_hashed(
    out: &mut Queue,
    ctx: WriteCtx,
    summary: &mut ScanSummary,
    structural: &mut u64,
    progress: &dyn Progress,
    key: Vec<u8>,
    old: Option<Entry>,
    result: Result<(Stat, Digests), HashError>,
    check: Option<Report>,
) -> Result<()> {
    match result {
        // Deleted since the walk saw it: a deletion (of a known
        // file) like any other, not an I/O error.
        Err(HashError::Vanished) => {
            if let Some(old) = old {
                *structural += 1;
                summary.deleted += 1;
                let f = change(ctx, Kind::Deleted, key, &old.stat, old.blake3.as_ref());
                out.push(Op::Close(Box::new(old)))?;
                out.report(f.detail("vanished during the scan"))?;
            }
        }
        Err(e) => {
            summary.files += 1;
            progress.advance(1);
            summary.unreadable += 1;
            out.report(Finding::new(Kind::Unreadable, key).detail(e.to_string()))?;
        }
        Ok((mut stat, digests)) => {
            summary.files += 1;
            progress.advance(1);
            summary.bytes_hashed += stat.size;
            if stat.mtime_ns >= ctx.start_ns - RACY_WINDOW_NS {
                stat.ctime_ns = RACY_CTIME;
            }
            let mut new = NewEntry {
                path: key,
                kind: EntryKind::File,
                stat,
                blake3: Some(digests.blake3),
                md5: digests.md5,
                sha256: digests.sha256,
                target: None,
                trusted_blake3: None,
                // S3's default checksum, of the bytes hashed: proven later
                // with one HEAD and no second read.
                crc64nvme: Some(digests.crc64nvme),
            };
            let verdict = match old.as_ref().filter(|o| o.kind == EntryKind::File) {
                Some(o) => content_verdict(o, &new.stat, &digests.blake3),
                None => ContentVerdict::Changed,
            };
            match (verdict, old) {
                (ContentVerdict::Rotted { trusted }, Some(o)) => {
                    summary.corrupt += 1;
                    let f = Finding::new(Kind::Corrupt, new.path.clone())
                        .local(json!({
                            "size": stat.size,
                            "blake3": hex::encode(digests.blake3),
                            "indexed_blake3": hex::encode(trusted),
                        }))
                        .detail(ROTTED);
                    new.trusted_blake3 = Some(trusted);
                    // The check's key, and its earlier version: the row as
                    // it was.
                    let checked = check.map(|check| (check, new.path.clone(), o.clone()));
                    let since = if o.blake3 == new.blake3 {
                        keep_digests(&mut new, &o);
                        let since = o.since_run;
                        if new.stat != o.stat
                            || new.md5 != o.md5
                            || new.sha256 != o.sha256
                            || new.crc64nvme != o.crc64nvme
                        {
                            out.push(Op::Update(Box::new((o, new))))?;
                        }
                        since
                    } else {
                        // The content on disk moved on: a new row, so
                        // earlier snapshots keep theirs.
                        *structural += 1;
                        out.push(Op::Replace(Box::new((o, new))))?;
                        ctx.run_id
                    };
                    if let Some((check, key, earlier)) = checked {
                        summary.checked += 1;
                        summary.check_bytes += check.bytes_read;
                        out.push(Op::Check(Box::new(CheckOp {
                            key,
                            since,
                            earlier: Some(Box::new(earlier)),
                            check,
                        })))?;
                    }
                    out.report(f)?;
                }
                (ContentVerdict::Same, Some(o)) => {
                    summary.unchanged += 1;
                    keep_digests(&mut new, &o);
                    let rewrite = new.stat != o.stat
                        || new.md5 != o.md5
                        || new.sha256 != o.sha256
                        || new.crc64nvme != o.crc64nvme
                        || o.trusted_blake3.is_some();
                    match check {
                        Some(check) => {
                            summary.checked += 1;
                            summary.check_bytes += check.bytes_read;
                            if rewrite {
                                out.push(Op::Update(Box::new((o.clone(), new))))?;
                            }
                            out.push(Op::CheckUnlessSet(Box::new((o, check))))?;
                        }
                        None if rewrite => out.push(Op::Update(Box::new((o, new))))?,
                        None => {}
                    }
                }
                (_, old) => {
                    *structural += 1;
                    let checked = check.map(|check| {
                        let earlier = old.as_ref().filter(|o| o.kind == EntryKind::File);
                        (check, new.path.clone(), earlier.cloned().map(Box::new))
                    });
                    apply_change(out, ctx, summary, new, old)?;
                    if let Some((check, key, earlier)) = checked {
                        summary.checked += 1;
                        summary.check_bytes += check.bytes_read;
                        out.push(Op::Check(Box::new(CheckOp {
                            key,
                            since: ctx.run_id,
                            earlier,
                            check,
                        })))?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// `shrunk` for a tracked regular file replaced by something whose bytes
/// no audit reads (a symlink, to `/dev/null` or out of the tree; a FIFO):
/// its content is gone from the tree, though no file went missing.
fn replaced_finding(ctx: WriteCtx, old: &Entry, by: &str) -> Option<Finding> {
    (ctx.shrink_threshold.is_some() && old.kind == EntryKind::File).then(|| {
        Finding::new(Kind::Shrunk, old.path.clone())
            .local(describe(&old.stat, old.blake3.as_ref()))
            .detail(format!(
                "a regular file of {} bytes was replaced by {by}",
                old.stat.size
            ))
    })
}

/// The detail of a `corrupt` finding for a rotted local file.
const ROTTED: &str = "content changed while size and mtime did not (bit rot?); the index keeps the trusted hash, and the file stays corrupt until it is rewritten (its size or mtime changes)";

/// How a hashed file compares with its manifest row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ContentVerdict {
    /// The content is the row's: unchanged (a rotted file whose size or
    /// mtime moved, keeping the same bytes, is accepted as it is).
    Same,
    /// The content changed while size and mtime did not: `corrupt`, and
    /// `trusted` is the hash to keep trusting.
    Rotted { trusted: [u8; 32] },
    /// A change: a rewrite, or a rotted file whose content came back.
    Changed,
}

/// Decides a hashed regular file against its manifest row `o` (a file).
/// A write changes the mtime; content that changed under the same size
/// and mtime is rot, whatever the ctime or inode say (a chmod, a `touch
/// -r`, `cp -p` or `rsync --times` all put the mtime back). The one
/// exception is a row stored as racily clean: its mtime was too fresh to
/// tell two writes apart.
pub(super) fn content_verdict(o: &Entry, stat: &Stat, hash: &[u8; 32]) -> ContentVerdict {
    let same_meta = o.stat.size == stat.size
        && o.stat.mtime_ns == stat.mtime_ns
        && o.stat.ctime_ns != RACY_CTIME;
    match o.trusted_blake3.or(o.blake3) {
        Some(trusted) if same_meta && trusted != *hash => ContentVerdict::Rotted { trusted },
        _ if o.blake3.as_ref() == Some(hash) && o.stat.size == stat.size => ContentVerdict::Same,
        _ => ContentVerdict::Changed,
    }
}

/// Keeps the row's MD5, SHA-256 and CRC64NVME where this hash did not
/// compute them (the content is the same).
fn keep_digests(new: &mut NewEntry, o: &Entry) {
    new.md5 = new.md5.or(o.md5);
    new.sha256 = new.sha256.or(o.sha256);
    new.crc64nvme = new.crc64nvme.or(o.crc64nvme);
}

/// Stores an added or modified entry and reports it as a change. The
/// current row is then `ctx.run_id`'s. An added file's finding takes the
/// entry's path once it is stored (no copy per file).
fn apply_change(
    out: &mut Queue,
    ctx: WriteCtx,
    summary: &mut ScanSummary,
    new: NewEntry,
    old: Option<Entry>,
) -> Result<()> {
    let is_dir = new.kind == EntryKind::Dir;
    let Some(o) = old else {
        if !is_dir {
            summary.added += 1;
        }
        return out.push(Op::Insert {
            new,
            added: !is_dir,
        });
    };
    let hash = new.blake3;
    let was_dir = o.kind == EntryKind::Dir;
    // Reported after the row is replaced, in this order.
    let mut findings = Vec::new();
    let change_of = match (was_dir, is_dir) {
        (true, true) => None,
        (false, true) => {
            summary.deleted += 1;
            findings.push(
                Finding::new(Kind::Deleted, new.path.clone()).detail("replaced by a directory"),
            );
            None
        }
        (true, false) => {
            summary.added += 1;
            Some((Kind::Added, None))
        }
        (false, false) => {
            summary.modified += 1;
            let detail = (o.kind != new.kind)
                .then(|| format!("{} became a {}", o.kind.name(), new.kind.name()));
            let shrunk = match new.kind {
                EntryKind::File => shrunk_finding(ctx.shrink_threshold, &o, &new.path, &new.stat)
                    .map(|f| f.local(describe(&new.stat, hash.as_ref()))),
                _ => {
                    let target = new.target.as_deref().map(paths::display);
                    let by = format!("a symlink to {}", target.unwrap_or_default());
                    replaced_finding(ctx, &o, &by)
                }
            };
            if let Some(shrunk) = shrunk {
                summary.shrunk += 1;
                findings.push(shrunk);
            }
            Some((Kind::Modified, detail))
        }
    };
    if let Some((kind, detail)) = change_of {
        let mut f = change(ctx, kind, new.path.clone(), &new.stat, hash.as_ref());
        if let Some(d) = detail {
            f = f.detail(d);
        }
        findings.push(f);
    }
    out.push(Op::Replace(Box::new((o, new))))?;
    for f in findings {
        out.report(f)?;
    }
    Ok(())
}

/// Stores the check of the row of `path` valid since `since`, applying the
/// empty-dump rule: a complete dump without table data whose earlier
/// version held data (`had_data`) is `damaged`.
fn record_check(
    batch: &mut Batch<'_>,
    ctx: WriteCtx,
    path: &[u8],
    since: i64,
    had_data: bool,
    check: &Report,
) -> Result<()> {
    let (verdict, detail) = match (&check.verdict, checks::empty_dump_detail(check, had_data)) {
        (_, Some(empty)) => ("damaged", Some(empty)),
        (Verdict::Sound, None) => ("sound", None),
        (Verdict::Damaged(d), None) => ("damaged", Some(d.clone())),
        (Verdict::Undecided(why), None) => ("undecided", Some(why.clone())),
    };
    let row = CheckRow {
        level: check.level.name().to_string(),
        format: check.format.name().to_string(),
        verdict: verdict.to_string(),
        detail,
        table_data: check.table_data,
        data_ever: had_data || check.table_data == Some(true),
    };
    batch.record_check(ctx.root_id, path, since, &row)
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
pub(super) fn carry_over_interrupted(
    index: &mut Index,
    ctx: WriteCtx,
    baseline: Option<i64>,
    summary: &mut ScanSummary,
    acceptor: &super::Acceptor,
    sink: &mut dyn Sink,
) -> Result<()> {
    let WriteCtx {
        root_id,
        run_id,
        prev_findings_run,
        shrink_threshold,
        ..
    } = ctx;
    let b = baseline.unwrap_or(0);
    let interrupted = index.scans_between(root_id, b, run_id)?;
    if interrupted == 0 {
        return Ok(());
    }
    let mut findings = Vec::new();
    {
        for new in index.opened_between(root_id, b, run_id)? {
            if new.trusted_blake3.is_some() {
                // Rotted: this run hashed it again and reported it.
                continue;
            }
            let old = index.closed_between(root_id, &new.path, b, run_id)?;
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
        for old in index.gone_between(root_id, b, run_id)? {
            summary.deleted += 1;
            findings.push(
                Finding::new(Kind::Deleted, old.path.clone())
                    .local(describe(&old.stat, old.blake3.as_ref())),
            );
        }
    }
    let mut batch = index.batch()?;
    for f in &mut findings {
        acceptor.apply(f);
        batch.record_finding(run_id, prev_findings_run, f)?;
        sink.finding(f)?;
    }
    batch.commit()
}
