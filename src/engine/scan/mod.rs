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
//! The walk starts before the run's first write: a scan opens the index
//! with its structural check running aside (`Index::open_checking_aside`),
//! and that first write (the run's row) waits for the verdict, so a corrupt
//! index is still refused before anything is committed.
//!
//! A final pass folds the manifest into Merkle hashes (skipped when the
//! run changed nothing). A file whose mtime is too close to the scan start
//! to be trusted ("racily clean", as git calls it) is stored so that the
//! next scan hashes it again.
//!
//! Changes are reported against the last scan whose report was delivered
//! (see `delivered_scan`): what an interrupted scan committed is trusted,
//! not hashed again, and reported by the next run.

mod sets;
mod walker;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, sync_channel};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rayon::iter::{ParallelBridge, ParallelIterator};
use serde_json::{Map, Value, json};

use crate::engine::checks::{self, Budget, Level, Report};
use crate::engine::exclude::Excludes;
use crate::engine::hash::{self, Digests, HashError, Want};
use crate::engine::merkle::{DirHash, Folder};
use crate::engine::shard::Shard;
use crate::model::{Entry, EntryKind, Finding, Kind, NewEntry, Stat, format_time};
use crate::out::{Meter, Progress, Sink, Total};
use crate::store::Index;

#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Hash every file, trusting no metadata; report silent changes.
    pub rehash: bool,
    pub want: Want,
    /// Pins this run's manifest under a name (`@NAME`).
    pub label: Option<String>,
    /// The command recorded for the run (`scan`, or `audit` when an audit
    /// scans first).
    pub command: Option<String>,
    /// Report `shrunk` when a file of at least [`SHRUNK_MIN_SIZE`] bytes
    /// loses more than this fraction of its size (0.5 = half).
    pub shrink_threshold: Option<f64>,
    /// What to leave out (`--exclude` …); `.vouchignore` files found by
    /// the walk are added to it.
    pub excludes: Excludes,
    /// Only the files and symlinks of this shard (`--shard K/N`); every
    /// directory is still walked and recorded.
    pub shard: Option<Shard>,
    /// Structural checks of new and changed files (`damaged`).
    pub checks: Level,
    /// Bytes the `full` checks may read in this run (`None`: no limit).
    pub checks_budget: Option<u64>,
}

/// `vouch accept` for the scan's own findings (`corrupt`, `shrunk`,
/// `unreadable`, `damaged`): a finding an acceptance covers — same kind,
/// same content — is reported and stored as `accepted`, and counted there
/// instead of under its kind (the audit does the same for its findings).
#[derive(Default)]
pub(super) struct Acceptor {
    /// By path, then kind: looked up by a borrowed path for every finding.
    map: HashMap<Vec<u8>, Vec<crate::model::Acceptance>>,
    now: i64,
    /// How many of each kind were accepted.
    moved: std::cell::RefCell<HashMap<Kind, u64>>,
}

impl Acceptor {
    fn load(index: &Index, root_id: i64) -> Result<Acceptor> {
        let mut map: HashMap<Vec<u8>, Vec<crate::model::Acceptance>> = HashMap::new();
        for a in index.acceptances(Some(root_id))? {
            let same = map.entry(a.path.clone()).or_default();
            // One acceptance per (path, kind), the last listed, as before.
            same.retain(|b| b.kind != a.kind);
            same.push(a);
        }
        Ok(Acceptor {
            map,
            now: crate::model::now_unix(),
            moved: Default::default(),
        })
    }

    /// Marks `f` accepted when an acceptance covers it.
    pub(super) fn apply(&self, f: &mut Finding) {
        if self.map.is_empty() {
            return;
        }
        if let Some(a) = self
            .map
            .get(f.path.as_slice())
            .and_then(|same| same.iter().find(|a| a.kind == f.kind))
            && a.covers(f, self.now)
        {
            *self.moved.borrow_mut().entry(f.kind).or_default() += 1;
            a.mark(f);
        }
    }

    /// Moves the accepted findings' counts to `accepted`.
    fn settle(&self, summary: &mut ScanSummary) {
        for (kind, n) in self.moved.borrow_mut().drain() {
            let counter = match kind {
                Kind::Unreadable => &mut summary.unreadable,
                Kind::Corrupt => &mut summary.corrupt,
                Kind::Shrunk => &mut summary.shrunk,
                Kind::Damaged => &mut summary.damaged,
                _ => continue,
            };
            *counter = counter.saturating_sub(n);
            summary.accepted += n;
        }
    }
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
    pub damaged: u64,
    /// Findings of the kinds above accepted with `vouch accept`.
    pub accepted: u64,
    /// Files whose structure was checked in this run.
    pub checked: u64,
    /// Files not checked again because they did not change.
    pub checks_skipped: u64,
    /// Bytes read by the structural checks.
    pub check_bytes: u64,
    pub special: u64,
    pub files: u64,
    pub dirs: u64,
    pub bytes_hashed: u64,
    /// Entries the excludes left out (an excluded directory counts once).
    pub excluded: u64,
    pub merkle_root: [u8; 32],
    /// The shard scanned (`--shard K/N`), if any.
    pub shard: Option<Shard>,
    pub elapsed_ms: u64,
    /// The excludes in force, with every `.vouchignore` the walk found:
    /// the audit applies the same to the remote.
    pub excludes: Excludes,
}

impl ScanSummary {
    pub fn discrepancies(&self) -> u64 {
        self.unreadable + self.corrupt + self.shrunk + self.damaged
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
        m.insert("damaged".into(), json!(self.damaged));
        if self.accepted > 0 {
            m.insert("accepted".into(), json!(self.accepted));
        }
        m.insert("checked".into(), json!(self.checked));
        m.insert("checks_skipped".into(), json!(self.checks_skipped));
        m.insert("check_bytes".into(), json!(self.check_bytes));
        m.insert("special_skipped".into(), json!(self.special));
        m.insert("files".into(), json!(self.files));
        m.insert("dirs".into(), json!(self.dirs));
        m.insert("bytes_hashed".into(), json!(self.bytes_hashed));
        if !self.excludes.is_empty() {
            m.insert("excluded".into(), json!(self.excluded));
        }
        m.insert("merkle_root".into(), json!(hex::encode(self.merkle_root)));
        if let Some(s) = self.shard {
            m.insert("shard".into(), s.to_json());
        }
        m.insert("elapsed_ms".into(), json!(self.elapsed_ms));
        m
    }
}

/// Work the walker hands to the hashers.
pub(crate) struct Job {
    key: Vec<u8>,
    path: PathBuf,
    old: Option<Entry>,
}

/// What reaches the writer.
pub(crate) enum Event {
    /// The place of batch N of hash jobs in the walk's order: its results
    /// come from the hashers on their own channel, and the writer applies
    /// them here (see `walker::JobBatch`).
    Slot(u64),
    /// The manifest was empty (a first scan), sent before anything else:
    /// every entry reaches the writer, in key order, and it folds the
    /// Merkle tree as it writes (see `writer::InlineFold`).
    Fresh,
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
        /// The structural check of the hashed version, if one was made.
        check: Option<Report>,
    },
    Deleted(Entry),
    Unreadable {
        key: Vec<u8>,
        error: String,
    },
    /// A FIFO, socket or device: skipped, counted. `replaced` is the
    /// manifest row it took the place of.
    Special {
        replaced: Option<Entry>,
    },
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
pub(crate) const RACY_WINDOW_NS: i64 = 2_000_000_000;
/// The ctime stored for a racily clean file: matches no real ctime, so the
/// next scan hashes the file again.
pub(crate) const RACY_CTIME: i64 = -1;

/// Scans `root` (already resolved) into `index`, reporting to `sink`.
///
/// With an index whose structural check runs aside (see
/// `Index::open_checking_aside`), the walk starts at once and the run's
/// first write waits for the check; a scan that fails on a corrupt index
/// fails with the check's verdict, whatever it stumbled on first.
pub fn scan(
    index: &mut Index,
    root: &Path,
    opts: &ScanOptions,
    sink: &mut dyn Sink,
    progress: &dyn Progress,
) -> Result<ScanSummary> {
    scan_checked(index, root, opts, sink, progress).map_err(|e| index.checked().err().unwrap_or(e))
}

fn scan_checked(
    index: &mut Index,
    root: &Path,
    opts: &ScanOptions,
    sink: &mut dyn Sink,
    progress: &dyn Progress,
) -> Result<ScanSummary> {
    let started = Instant::now();
    let start_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    // A new root is a write, which waits for the index's check (see
    // `Index::open_checking_aside`); an indexed one is only read.
    let root_id = match index.find_root(root)? {
        Some(id) => id,
        None => {
            index.checked()?;
            index.root_id(root)?
        }
    };
    check_shard(index, root_id, root, opts.shard)?;
    let previous_scan = index.last_scan_run(root_id)?;
    // Changes are reported against the last scan whose report was
    // delivered, even when scans after it were interrupted.
    let baseline = index.delivered_scan(root_id)?;
    let command = opts.command.as_deref().unwrap_or("scan");
    let prev_findings_run = previous_scan.as_ref().map(|r| r.0);

    progress.begin("scanning");
    // The bytes move as they are hashed; the baseline's totals are what
    // this scan will count, roughly (its files; with --rehash its bytes),
    // until the walk ends and says exactly.
    let meter = progress.meter("hashed");
    let mut structural_changes = 0u64;

    // Batches of up to 64 files or 16 MiB (see walker::JobBatch), numbered; their
    // results go back on a channel of their own, which never blocks a
    // hasher (what it holds is bounded by the numbers the walker has sent
    // to the writer, at most the event channel's capacity).
    let (job_tx, job_rx) = sync_channel::<(u64, Vec<Job>)>(32);
    let (event_tx, event_rx) = sync_channel::<Event>(1024);
    let (result_tx, result_rx) = std::sync::mpsc::channel::<(u64, Vec<Event>)>();
    let index_path = index.path().to_path_buf();
    let skip = index_files_inside(&index_path, root);
    let want = opts.want;
    let rehash = opts.rehash;
    let excludes = opts.excludes.clone();
    let shard = opts.shard;

    let budget = opts
        .checks_budget
        .map_or_else(Budget::unlimited, Budget::new);
    let checks_level = opts.checks;
    let bare_changes = ![Kind::Added, Kind::Modified, Kind::Deleted]
        .into_iter()
        .any(|k| sink.details(k));
    type Begun = (i64, Acceptor, Option<(u64, u64)>, ScanSummary);
    // Whether the run wrote an entry, and what the writer folded.
    type Wrote = (bool, Option<writer::Folded>);
    let (walked, (run_id, acceptor, baseline_totals, mut summary), ctx, wrote) =
        std::thread::scope(
            |scope| -> Result<(Option<walker::Walked>, Begun, writer::WriteCtx, Wrote)> {
                // The walk starts first: the run's first write below waits for
                // the index's check, which runs meanwhile (see
                // `Index::open_checking_aside`); the walker reads the manifest
                // on its own connection and commits nothing.
                let walker_events = event_tx.clone();
                let plan = walker::WalkPlan {
                    index_path: &index_path,
                    root_id,
                    root,
                    rehash,
                    want,
                    skip: &skip,
                    shard,
                    progress,
                };
                let walker = scope.spawn(move || {
                    match walker::walk_and_merge(&plan, excludes, job_tx, walker_events.clone()) {
                        Ok(found) => Some(found),
                        Err(e) => {
                            let _ = walker_events.send(Event::Failed(e));
                            None
                        }
                    }
                });
                drop(event_tx);
                let budget = &budget;
                let meter = &meter;
                scope
                    .spawn(move || hash_jobs(job_rx, result_tx, want, checks_level, budget, meter));

                let mut begin = || -> Result<Begun> {
                    index.checked()?;
                    let run_id =
                        index.begin_run(Some(root_id), command, None, opts.label.as_deref())?;
                    let acceptor = Acceptor::load(index, root_id)?;
                    // The baseline's totals: summed by the walker on the way
                    // when the manifest it reads is the baseline's (no scan
                    // since), else counted here (a pass over the manifest).
                    let baseline_totals = match baseline {
                        Some(b) if opts.rehash || prev_findings_run != Some(b) => {
                            Some(index.file_totals_at_run(root_id, b)?)
                        }
                        _ => None,
                    };
                    let estimate = match (baseline_totals, baseline) {
                        (Some(totals), _) => Some(totals),
                        (None, Some(b)) => scanned_files(index, b)?.map(|f| (f, 0)),
                        (None, None) => None,
                    };
                    if let Some((files, bytes)) = estimate {
                        progress.total(Total {
                            files: Some(files),
                            bytes: opts.rehash.then_some(bytes),
                            exact: false,
                        });
                    }
                    let summary = ScanSummary {
                        run_id,
                        root_id,
                        shard: opts.shard,
                        ..Default::default()
                    };
                    Ok((run_id, acceptor, baseline_totals, summary))
                };
                let (run_id, acceptor, baseline_totals, mut summary) = match begin() {
                    Ok(begun) => begun,
                    Err(e) => {
                        // The walker and the hashers stop at their next send.
                        drop(event_rx);
                        drop(result_rx);
                        return Err(e);
                    }
                };
                let ctx = writer::WriteCtx {
                    root_id,
                    run_id,
                    start_ns,
                    prev_findings_run,
                    shrink_threshold: opts.shrink_threshold,
                    bare_changes,
                };
                let mut batch = index.batch()?;
                // It takes every event, whatever happens, so the other
                // stages can finish.
                let folded = writer::write_events(
                    &mut batch,
                    event_rx,
                    result_rx,
                    ctx,
                    &mut summary,
                    &mut structural_changes,
                    &acceptor,
                    sink,
                    progress,
                )?;
                let wrote = batch.entry_writes() > 0;
                batch.commit()?;
                let walked = walker.join().ok().flatten();
                Ok((
                    walked,
                    (run_id, acceptor, baseline_totals, summary),
                    ctx,
                    (wrote, folded),
                ))
            },
        )?;
    let (wrote, folded) = wrote;
    let (folded, changed) = match folded {
        Some(writer::Folded { root, anchors }) => (Some(root), sets::Changed::All { anchors }),
        None if wrote => (None, sets::Changed::Some),
        None => (None, sets::Changed::Nothing),
    };
    let Some(walker::Walked {
        excludes,
        excluded,
        manifest,
    }) = walked
    else {
        bail!("the scan's walker stopped");
    };
    summary.excluded = excluded;
    // The baseline's totals: the manifest the walker read was the
    // baseline's when no scan came after it.
    let baseline_totals = match baseline {
        Some(b) if baseline_totals.is_none() && prev_findings_run == Some(b) => Some(manifest),
        _ => baseline_totals,
    };
    writer::carry_over_interrupted(index, ctx, baseline, &mut summary, &acceptor, sink)?;
    if let (Some(t), Some(b)) = (opts.shrink_threshold, baseline) {
        // A tree still shrunk is compared with the tree before the loss,
        // not with the shrunk one, so the loss is reported every night
        // until the tree grows back or a person accepts it.
        let carried = match prev_findings_run {
            Some(prev) => shrunk_reference(index, root_id, prev)?,
            None => None,
        };
        let before = match (carried, baseline_totals) {
            (Some(totals), _) | (None, Some(totals)) => totals,
            (None, None) => index.file_totals_at_run(root_id, b)?,
        };
        // A run that wrote no entry, right after the baseline (no
        // interrupted scan between), leaves the baseline's manifest as it
        // was: its totals are already known.
        let after = match baseline_totals {
            Some(totals) if !wrote && prev_findings_run == Some(b) => totals,
            _ => index.file_totals_at_run(root_id, run_id)?,
        };
        if let Some(mut f) = tree_shrunk(t, before, after) {
            if carried.is_some() {
                f.detail = f.detail.map(|d| {
                    d.replace(
                        "since the previous scan",
                        "since the last scan before the loss (reported until the tree grows back or `vouch accept ROOT '' --kind shrunk` accepts it)",
                    )
                });
            }
            summary.shrunk += 1;
            let mut batch = index.batch()?;
            acceptor.apply(&mut f);
            batch.record_finding(run_id, prev_findings_run, &mut f)?;
            sink.finding(&f)?;
            batch.commit()?;
        }
    }
    if opts.checks != Level::None {
        summary.checks_skipped = summary.unchanged;
        sets::check_sets(
            index,
            root,
            root_id,
            run_id,
            changed,
            opts.checks,
            &budget,
            &mut summary,
        )?;
        report_damaged(index, ctx, &mut summary, &acceptor, sink)?;
    }
    progress.end();

    // The previous root stands only if nothing changed, the excludes
    // included (a path falling in or out changes the tree compared).
    let rules = excludes.to_json();
    let same_rules = |prev: i64| -> Result<bool> {
        let stored = index.run(prev)?.and_then(|r| r.summary);
        let prev_rules = stored
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| v.get("exclude_rules").cloned());
        Ok(prev_rules == rules)
    };
    // A first scan folded it as it wrote: the same rows, in the same order
    // (without excludes, which the fold below applies to every row).
    summary.merkle_root = match (folded, previous_scan) {
        (Some(root_hash), _) if excludes.is_empty() => root_hash,
        (_, Some((prev, Some(root_hash)))) if structural_changes == 0 && same_rules(prev)? => {
            root_hash
        }
        _ => fold_merkle(index, root_id, run_id, &excludes)?,
    };
    summary.excludes = excludes;
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    acceptor.settle(&mut summary);
    let status = if summary.discrepancies() > 0 {
        "findings"
    } else {
        "ok"
    };
    let mut stored = summary.to_json(root);
    // The rules go with the run: its snapshot is read back under them.
    if let Some(r) = rules {
        stored.insert("exclude_rules".into(), r);
    }
    index.finish_run(
        run_id,
        status,
        Some(if summary.discrepancies() > 0 { 1 } else { 0 }),
        Some(&summary.merkle_root),
        &Value::Object(stored).to_string(),
    )?;
    Ok(summary)
}

/// The files the scan `run` counted, from its stored summary (an audit's
/// nests its scan's): the progress estimate of the scan after it.
fn scanned_files(index: &Index, run: i64) -> Result<Option<u64>> {
    let summary: Value = index
        .run(run)?
        .and_then(|r| r.summary)
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    Ok(summary
        .get("files")
        .or_else(|| summary.get("scan").and_then(|s| s.get("files")))
        .and_then(Value::as_u64))
}

/// The shard whose files the index holds for `root_id`, from the summary
/// of its last scan (`None`: the whole tree, or never scanned).
pub fn indexed_shard(index: &Index, root_id: i64) -> Result<Option<Option<Shard>>> {
    let Some(run) = index.last_scan(root_id)? else {
        return Ok(None);
    };
    let summary: Value = run
        .summary
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    // An audit's summary nests its scan's.
    let shard = summary
        .get("shard")
        .or_else(|| summary.get("scan").and_then(|s| s.get("shard")));
    Ok(Some(shard.and_then(|s| {
        Some(Shard {
            index: s.get("index")?.as_u64()?,
            count: s.get("count")?.as_u64()?,
        })
    })))
}

fn shard_name(s: Option<Shard>) -> String {
    s.map_or("the whole tree".into(), |s| format!("shard {s}"))
}

/// Refuses to scan one shard into an index that holds another shard (or
/// the whole tree) of the same root: the files outside this shard would
/// be recorded as deleted. One index per shard.
pub fn check_shard(index: &Index, root_id: i64, root: &Path, shard: Option<Shard>) -> Result<()> {
    if let Some(held) = indexed_shard(index, root_id)?
        && held != shard
    {
        bail!(
            "the index {} holds {} of {}, not {}: use one index per shard (--index)",
            index.path().display(),
            shard_name(held),
            root.display(),
            shard_name(shard)
        );
    }
    Ok(())
}

/// `shrunk` when a regular file of at least [`SHRUNK_MIN_SIZE`] bytes lost
/// more than `threshold` of its size.
pub(crate) fn shrunk_finding(
    threshold: Option<f64>,
    old: &Entry,
    path: &[u8],
    new: &Stat,
) -> Option<Finding> {
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

/// The (files, bytes) of the tree before a loss that the scan `prev`
/// reported as the root's `shrunk` and nobody has accepted since: what the
/// next scan compares with. `None` when `prev` reported no such loss.
fn shrunk_reference(index: &Index, root_id: i64, prev: i64) -> Result<Option<(u64, u64)>> {
    let Some(f) = index.whole_finding(prev, Kind::Shrunk)? else {
        return Ok(None);
    };
    let accepted = index.acceptances(Some(root_id))?.iter().any(|a| {
        a.kind == Kind::Shrunk && a.path.is_empty() && a.accepted_at >= f.first_seen.unwrap_or(0)
    });
    if accepted {
        return Ok(None);
    }
    let before = f.local.as_ref().and_then(|l| l.get("before"));
    let num = |k: &str| before.and_then(|b| b.get(k)).and_then(Value::as_u64);
    Ok(num("files").zip(num("bytes")))
}

/// `shrunk` for ROOT itself (key `""`) when the tree lost more than
/// `threshold` of its regular files, or of their bytes, since the previous
/// scan: everything deleted, a data folder moved to a new disk, a mount
/// that is missing — the loss a backup then faithfully mirrors. `before`
/// and `after` are (files, bytes). Trees under [`SHRUNK_MIN_SIZE`] bytes
/// are judged on their file count only.
pub(crate) fn tree_shrunk(
    threshold: f64,
    before: (u64, u64),
    after: (u64, u64),
) -> Option<Finding> {
    let ((bf, bb), (af, ab)) = (before, after);
    let lost = |b: u64, a: u64| (a as f64) < (b as f64) * (1.0 - threshold);
    let pct = |b: u64, a: u64| 100.0 * (1.0 - a as f64 / b.max(1) as f64);
    let shrank = (bf > 0 && lost(bf, af)) || (bb >= SHRUNK_MIN_SIZE && lost(bb, ab));
    shrank.then(|| {
        Finding::new(Kind::Shrunk, Vec::new())
            .local(json!({
                "before": { "files": bf, "bytes": bb },
                "after": { "files": af, "bytes": ab },
            }))
            .detail(format!(
                "the tree lost {:.1}% of its files ({bf} to {af}) and {:.1}% of their bytes ({bb} to {ab}) since the previous scan (shrink threshold {threshold}): deleted, moved, or a disk not mounted?",
                pct(bf, af),
                pct(bb, ab)
            ))
    })
}

/// The keys of the index and its companion files (`-wal`, `-shm`,
/// `-journal`, `.lock`) when the index lives inside ROOT (the default one
/// lives under `$HOME`, which users audit): they are never part of the
/// tree, which would otherwise change under every run that reads it.
pub(crate) fn index_files_inside(index: &Path, root: &Path) -> Vec<Vec<u8>> {
    let (Some(dir), Some(name)) = (index.parent(), index.file_name()) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return Vec::new();
    };
    if !dir.starts_with(root) {
        return Vec::new();
    }
    ["", "-wal", "-shm", "-journal", ".lock"]
        .iter()
        .map(|suffix| {
            let mut file = name.to_os_string();
            file.push(suffix);
            crate::model::paths::key_of(root, &dir.join(file))
        })
        .collect()
}

/// The hashers: the rayon pool drains the job channel in parallel. Each
/// hashed file is checked right after, on the same open file.
fn hash_jobs(
    jobs: Receiver<(u64, Vec<Job>)>,
    results: Sender<(u64, Vec<Event>)>,
    want: Want,
    level: Level,
    budget: &Budget,
    meter: &Meter,
) {
    // Once the writer has stopped (a corrupt index refused, an error), the
    // jobs still queued are let go unhashed.
    let stopped = std::sync::atomic::AtomicBool::new(false);
    jobs.into_iter()
        .par_bridge()
        .for_each_with(results, |results, (seq, batch)| {
            if stopped.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            // One hand-off to the writer per batch, as from the walker.
            let hashed = batch
                .into_iter()
                .map(|job| hash_job(job, want, level, budget, meter))
                .collect();
            if results.send((seq, hashed)).is_err() {
                stopped.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
    hash::release_maps();
}

fn hash_job(job: Job, want: Want, level: Level, budget: &Budget, meter: &Meter) -> Event {
    let (result, check) = if level == Level::None {
        (hash::hash_file(&job.path, want, meter), None)
    } else {
        // A read error during the check is not damage: no check.
        match hash::hash_file_then(&job.path, want, meter, |file, size| {
            checks::check(file, size, level, budget).ok().flatten()
        }) {
            Ok((stat, digests, check)) => (Ok((stat, digests)), check),
            Err(e) => (Err(e), None),
        }
    };
    Event::Hashed {
        key: job.key,
        old: job.old,
        result,
        check,
    }
}

/// Reports every current file whose structural check found damage (new
/// ones and those found by earlier scans alike, with their `first_seen`).
fn report_damaged(
    index: &mut Index,
    ctx: writer::WriteCtx,
    summary: &mut ScanSummary,
    acceptor: &Acceptor,
    sink: &mut dyn Sink,
) -> Result<()> {
    // Streamed from the index a page at a time, never held whole.
    let mut damaged = index.damaged_current(ctx.root_id).peekable();
    if damaged.peek().is_none() {
        return Ok(());
    }
    let mut batch = index.batch()?;
    for row in damaged {
        let (entry, format, detail) = row?;
        let mut local = describe(&entry.stat, entry.blake3.as_ref());
        if let Value::Object(m) = &mut local {
            m.insert("format".into(), json!(format));
        }
        let mut f = Finding::new(Kind::Damaged, entry.path)
            .local(local)
            .detail(detail);
        acceptor.apply(&mut f);
        batch.record_finding(ctx.run_id, ctx.prev_findings_run, &mut f)?;
        sink.finding(&f)?;
        summary.damaged += 1;
    }
    batch.commit()
}

/// The `local` object of a finding: size and hash.
pub fn describe(stat: &Stat, blake3: Option<&[u8; 32]>) -> Value {
    let mut m = Map::new();
    m.insert("size".into(), json!(stat.size));
    if let Some(h) = blake3 {
        m.insert("blake3".into(), json!(hex::encode(h)));
    }
    if stat.mtime_ns != 0 {
        m.insert("mtime".into(), json!(format_time(stat.mtime_secs())));
    }
    Value::Object(m)
}

/// Folds the current manifest into Merkle hashes, stores every directory
/// hash that changed, and returns the root hash. The rows are streamed
/// (borrowed, not copied); only directory rows are kept, in key order,
/// and matched with their hashes, which the fold completes children
/// first, by a sort.
fn fold_merkle(
    index: &mut Index,
    root_id: i64,
    run_id: i64,
    excludes: &Excludes,
) -> Result<[u8; 32]> {
    let mut dir_rows: Vec<Entry> = Vec::new();
    let mut computed: Vec<DirHash> = Vec::new();
    let root = {
        let mut folder = Folder::new(|d: DirHash| computed.push(d));
        let filtered = !excludes.is_empty();
        index.fold_current(root_id, |r| {
            let is_dir = r.kind == EntryKind::Dir;
            if filtered && excludes.excludes_path(r.path, is_dir) {
                return Ok(());
            }
            folder.push(r.path, r.kind, r.stat.size, r.blake3.as_ref());
            if is_dir {
                dir_rows.push(Entry {
                    path: r.path.to_vec(),
                    kind: r.kind,
                    stat: r.stat,
                    blake3: r.blake3,
                    md5: None,
                    sha256: None,
                    target: None,
                    since_run: r.since_run,
                    trusted_blake3: None,
                    crc64nvme: None,
                });
            }
            Ok(())
        })?;
        folder.finish()
    };
    // Keys are unique: a sort by key pairs each hash with its row.
    computed.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    let mut batch = index.batch()?;
    let mut rows = dir_rows.iter().peekable();
    for d in computed {
        while rows.next_if(|r| r.path < d.path).is_some() {}
        let Some(row) = rows.next_if(|r| r.path == d.path) else {
            continue;
        };
        if row.blake3 == Some(d.hash) && row.stat.size == d.size {
            continue;
        }
        let new = NewEntry {
            path: d.path,
            kind: EntryKind::Dir,
            stat: Stat {
                size: d.size,
                ..row.stat
            },
            blake3: Some(d.hash),
            md5: None,
            sha256: None,
            target: None,
            trusted_blake3: None,
            crc64nvme: None,
        };
        batch.replace_entry(root_id, run_id, row, &new)?;
    }
    batch.commit()?;
    Ok(root.hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LockWait;

    /// The previous scan found 30,000 damaged files and the tree's
    /// `shrunk`: the next scan reads the loss's reference from that one
    /// finding, not from all of them.
    #[test]
    fn the_shrunk_reference_reads_one_finding_whatever_the_previous_scan_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = Index::open(&dir.path().join("i.sqlite3"), LockWait::No).unwrap();
        let root_id = index.root_id(Path::new("/srv/data")).unwrap();
        let prev = index.begin_run(Some(root_id), "scan", None, None).unwrap();
        let plain = index.begin_run(Some(root_id), "scan", None, None).unwrap();
        let mut batch = index.batch().unwrap();
        for i in 0..30_000 {
            let path = format!("d{:02}/{}{i:06}.gz", i % 50, "x".repeat(80));
            let f = Finding::new(Kind::Damaged, path)
                .local(json!({ "size": 3 }))
                .detail("gzip file ends at byte 3 inside its header");
            batch.insert_finding(prev, &f).unwrap();
            if i == 20_000 {
                let mut tree = tree_shrunk(0.5, (40_000, 1 << 30), (30_000, 1 << 20)).unwrap();
                tree.first_seen = Some(1_700_000_000);
                batch.insert_finding(prev, &tree).unwrap();
            }
        }
        // A file's `shrunk` is not the tree's.
        let file = Finding::new(Kind::Shrunk, b"big.db".to_vec()).local(json!({ "size": 1 }));
        batch.insert_finding(plain, &file).unwrap();
        batch.commit().unwrap();
        let (reference, held) = crate::heap::peak(|| shrunk_reference(&index, root_id, prev));
        assert_eq!(reference.unwrap(), Some((40_000, 1 << 30)));
        // Reading the 30,000 findings held ~15 MB.
        assert!(held < 256 << 10, "{held} bytes held");
        assert_eq!(shrunk_reference(&index, root_id, plain).unwrap(), None);
    }
}
