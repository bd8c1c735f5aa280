//! `vouch audit`: diff the manifest of ROOT against a remote.
//!
//! 1. The remote is listed and the listing cached in the index
//!    (`remote_objects`), so it can be read back sorted by key.
//! 2. A merger thread merge-joins two sorted streams, the manifest and the
//!    listing, on its own read connection: memory does not grow with the
//!    number of objects. Each pair gets exactly one outcome ([`decide`]).
//! 3. Objects that need their bytes read are streamed through BLAKE3,
//!    `--jobs` at a time, on a tokio runtime.
//! 4. The calling thread owns the index connection: it records what was
//!    read (so an interrupted audit never reads it again) and reports.
//!
//! The rule that matters most: an object counts as verified only when its
//! bytes were hashed in full at its current ETag (this run or an earlier
//! one), or its single-part MD5 ETag equals the file's MD5. Anything else
//! that merely looks right is `unverified`, never a match.

mod decide;
mod health;
mod merger;
mod reads;

pub use decide::{Decision, decide};

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result};
use futures::StreamExt;
use serde_json::{Map, Value, json};

use crate::engine::remote::Remote;
use crate::model::{
    Entry, Finding, Kind, Proof, ReadError, RemoteRow, format_time, now_unix, paths,
};
use crate::out::{Progress, Sink};
use crate::store::{Batch, Index};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Listing only: sizes, cached verifications and MD5 ETags decide.
    Quick,
    /// Read every object not yet verified at its current ETag.
    Deep,
    /// Quick, plus re-read the least recently verified objects up to
    /// `--scrub-budget` bytes.
    Scrub,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Deep => "deep",
            Mode::Scrub => "scrub",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuditOptions {
    pub mode: Mode,
    pub scrub_budget: u64,
    pub jobs: usize,
    pub strict: bool,
    /// Below this fraction of the manifest's files or bytes held by the
    /// remote, report `low_coverage` (or `remote_empty`).
    pub min_coverage: f64,
    /// Report `stale` for a backup older than this many seconds.
    pub max_age: Option<i64>,
    /// Report the files the index holds as rotted (`corrupt`, see
    /// `Entry::trusted_blake3`): set when no scan ran first, since a
    /// scan reports them itself.
    pub report_rot: bool,
}

/// What an audit found, with the counters its summary prints.
#[derive(Debug, Clone, Default)]
pub struct AuditSummary {
    pub run_id: i64,
    pub counts: BTreeMap<Kind, u64>,
    pub local_files: u64,
    pub local_bytes: u64,
    pub remote_objects: u64,
    pub remote_bytes: u64,
    pub verified: u64,
    pub verified_bytes: u64,
    pub verified_by_md5: u64,
    pub bytes_read: u64,
    pub objects_read: u64,
    pub symlinks_skipped: u64,
    /// Zero-byte "directory marker" objects (`dir/`, a folder made in the
    /// S3 console; the prefix itself), skipped.
    pub directory_markers_skipped: u64,
    /// Files (and bytes) of the manifest present on the remote at the
    /// same size.
    pub held_files: u64,
    pub held_bytes: u64,
    /// Newest last-modified time under the prefix.
    pub newest_object: Option<i64>,
    /// Objects (and bytes) whose last full read is at most N days old.
    pub verified_within: BTreeMap<u32, (u64, u64)>,
    pub elapsed_ms: u64,
}

const WITHIN_DAYS: [u32; 3] = [1, 7, 30];

impl AuditSummary {
    pub fn count(&self, kind: Kind) -> u64 {
        self.counts.get(&kind).copied().unwrap_or(0)
    }

    pub fn discrepancies(&self, strict: bool) -> u64 {
        self.counts
            .iter()
            .filter(|(k, _)| k.is_discrepancy() || (strict && **k == Kind::Unverified))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn to_json(&self, root: &Path, remote: &str, mode: Mode) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("command".into(), json!("audit"));
        m.insert("root".into(), json!(root.display().to_string()));
        m.insert("remote".into(), json!(remote));
        m.insert("mode".into(), json!(mode.name()));
        m.insert("run".into(), json!(self.run_id));
        for kind in [
            Kind::Missing,
            Kind::Extra,
            Kind::SizeMismatch,
            Kind::Corrupt,
            Kind::Unreadable,
            Kind::Unverified,
        ] {
            m.insert(kind.name().into(), json!(self.count(kind)));
        }
        for kind in Kind::ALL {
            if self.count(kind) > 0 && !m.contains_key(kind.name()) {
                m.insert(kind.name().into(), json!(self.count(kind)));
            }
        }
        m.insert("verified".into(), json!(self.verified));
        m.insert("verified_bytes".into(), json!(self.verified_bytes));
        m.insert("verified_by_md5".into(), json!(self.verified_by_md5));
        m.insert("objects_read".into(), json!(self.objects_read));
        m.insert("bytes_read".into(), json!(self.bytes_read));
        m.insert("local_files".into(), json!(self.local_files));
        m.insert("local_bytes".into(), json!(self.local_bytes));
        m.insert("remote_objects".into(), json!(self.remote_objects));
        m.insert("remote_bytes".into(), json!(self.remote_bytes));
        m.insert("symlinks_skipped".into(), json!(self.symlinks_skipped));
        m.insert(
            "directory_markers_skipped".into(),
            json!(self.directory_markers_skipped),
        );
        m.insert(
            "coverage_files".into(),
            json!(fraction(self.held_files, self.local_files)),
        );
        m.insert(
            "coverage_bytes".into(),
            json!(fraction(self.held_bytes, self.local_bytes)),
        );
        if let Some(t) = self.newest_object {
            m.insert("newest_object".into(), json!(format_time(t)));
        }
        let mut within = Map::new();
        for (days, (objects, bytes)) in &self.verified_within {
            within.insert(
                format!("{days}d"),
                json!({
                    "objects": objects,
                    "bytes": bytes,
                    "fraction_of_local_bytes": fraction(*bytes, self.local_bytes),
                }),
            );
        }
        m.insert("verified_within".into(), Value::Object(within));
        m.insert("elapsed_ms".into(), json!(self.elapsed_ms));
        m
    }
}

pub fn fraction(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        1.0
    } else {
        ((part as f64 / whole as f64) * 10_000.0).round() / 10_000.0
    }
}

/// What the merger needs to decide each pair.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    mode: Mode,
    max_age: Option<i64>,
    report_rot: bool,
}

/// An object whose bytes must be read.
#[derive(Debug)]
pub(crate) struct ReadTask {
    local: Entry,
    remote: RemoteRow,
}

pub(crate) enum Event {
    Finding(Finding),
    Verified {
        size: u64,
        /// When its bytes were last read (`None`: never, e.g. an MD5 ETag
        /// proof): what "read within N days" counts.
        verified_at: Option<i64>,
        by_md5: Option<(Vec<u8>, [u8; 32], String)>,
    },
    Read {
        task: Box<ReadTask>,
        result: Result<([u8; 32], u64), ReadError>,
    },
    Counted {
        local: Option<u64>,
        remote: Option<u64>,
    },
    SymlinkSkipped,
    MarkerSkipped,
    Failed(anyhow::Error),
}

/// Audits the manifest of `root_id` against `remote`.
pub fn audit(
    index: &mut Index,
    root: &Path,
    root_id: i64,
    remote: &Remote,
    opts: &AuditOptions,
    sink: &mut dyn Sink,
    progress: &dyn Progress,
) -> Result<AuditSummary> {
    let prev_run = index.last_audit_run(root_id, &remote.id)?;
    // The index inside ROOT is no part of the tree, nor is its copy.
    let skip = crate::engine::scan::index_files_inside(index.path(), root);
    let run_id = index.begin_run(Some(root_id), "audit", Some(&remote.id), None)?;
    match audit_run(
        index, root_id, remote, opts, sink, progress, run_id, prev_run, &skip,
    ) {
        Ok(summary) => {
            let bad = summary.discrepancies(opts.strict) > 0;
            index.finish_run(
                run_id,
                if bad { "findings" } else { "ok" },
                Some(i64::from(bad)),
                None,
                &Value::Object(summary.to_json(root, &remote.id, opts.mode)).to_string(),
            )?;
            Ok(summary)
        }
        Err(e) => {
            let error = json!({ "error": format!("{e:#}") }).to_string();
            let _ = index.finish_run(run_id, "failed", Some(2), None, &error);
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn audit_run(
    index: &mut Index,
    root_id: i64,
    remote: &Remote,
    opts: &AuditOptions,
    sink: &mut dyn Sink,
    progress: &dyn Progress,
    run_id: i64,
    prev_run: Option<i64>,
    skip: &[Vec<u8>],
) -> Result<AuditSummary> {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    progress.begin("auditing");

    // 1. List the remote into the index.
    let listing_started = now_unix();
    let markers = list_into_index(index, remote, run_id, &runtime, progress)?;

    // Whole-backup findings, and what a scrub re-reads.
    let health = health::backup_health(index, root_id, &remote.id, run_id, opts)?;
    let scrub = if opts.mode == Mode::Scrub {
        index.scrub_selection(root_id, &remote.id, run_id, opts.scrub_budget)?
    } else {
        HashSet::new()
    };

    // 2-4. Merge (a thread), read (the runtime), record (this thread).
    let mut recorder = Recorder {
        summary: AuditSummary {
            run_id,
            held_files: health.held_files,
            held_bytes: health.held_bytes,
            newest_object: health.newest,
            directory_markers_skipped: markers,
            ..Default::default()
        },
        run_id,
        prev_run,
        remote_id: &remote.id,
        listing_started,
        now: now_unix(),
        sink,
        progress,
    };
    let policy = Policy {
        mode: opts.mode,
        max_age: opts.max_age,
        report_rot: opts.report_rot,
    };
    let (event_tx, event_rx) = mpsc::channel::<Event>();
    let (read_tx, read_rx) = tokio::sync::mpsc::channel::<ReadTask>(opts.jobs.max(1) * 4);
    let index_path = index.path().to_path_buf();
    let jobs = opts.jobs.max(1);
    std::thread::scope(|scope| -> Result<()> {
        let merger_events = event_tx.clone();
        let scrub = &scrub;
        let remote_id = remote.id.clone();
        scope.spawn(move || {
            if let Err(e) = merger::merge(
                &index_path,
                skip,
                root_id,
                &remote_id,
                run_id,
                policy,
                scrub,
                read_tx,
                &merger_events,
            ) {
                let _ = merger_events.send(Event::Failed(e));
            }
        });
        let reader_events = event_tx;
        let handle = runtime.handle().clone();
        scope.spawn(move || {
            handle.block_on(reads::read_objects(remote, read_rx, jobs, reader_events));
        });
        let mut batch = index.batch()?;
        for f in health.findings {
            recorder.report(&mut batch, f)?;
        }
        let result = recorder.record(&mut batch, &event_rx);
        batch.commit()?;
        result
    })?;
    progress.end();
    let mut summary = recorder.summary;
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

/// Lists the remote into the index (`remote_objects`), skipping zero-byte
/// directory markers (`dir/`; the prefix itself) and returning how many,
/// and forgets objects the listing no longer returns. A key ending in `/`
/// or naming the prefix itself that holds bytes is kept: it is `extra`.
fn list_into_index(
    index: &mut Index,
    remote: &Remote,
    run_id: i64,
    runtime: &tokio::runtime::Runtime,
    progress: &dyn Progress,
) -> Result<u64> {
    let mut batch = index.batch()?;
    let mut markers = 0u64;
    runtime.block_on(async {
        let mut stream = remote.list();
        let mut n = 0u64;
        while let Some(item) = stream.next().await {
            let obj = item?;
            if obj.size == 0 && (obj.key.last() == Some(&paths::SEP) || obj.key.is_empty()) {
                markers += 1;
                continue; // a "directory marker" object
            }
            batch.upsert_listed(&remote.id, &obj, run_id)?;
            n += 1;
            progress.status(&format!("{n} objects listed"));
        }
        Ok::<_, anyhow::Error>(())
    })?;
    batch.commit()?;
    index.prune_remote(&remote.id, run_id)?;
    Ok(markers)
}

/// The recorder: applies what the merger and the readers send, in the
/// index's write transaction, and reports each finding.
struct Recorder<'a> {
    summary: AuditSummary,
    run_id: i64,
    prev_run: Option<i64>,
    remote_id: &'a str,
    listing_started: i64,
    now: i64,
    sink: &'a mut dyn Sink,
    progress: &'a dyn Progress,
}

impl Recorder<'_> {
    fn report(&mut self, batch: &mut Batch<'_>, mut f: Finding) -> Result<()> {
        *self.summary.counts.entry(f.kind).or_default() += 1;
        batch.record_finding(self.run_id, self.prev_run, &mut f)?;
        self.sink.finding(&f)
    }

    /// Counts an object whose last full read was at `at`.
    fn read_within(&mut self, at: i64, size: u64) {
        for days in WITHIN_DAYS {
            if self.now - at <= i64::from(days) * 86_400 {
                let e = self.summary.verified_within.entry(days).or_default();
                e.0 += 1;
                e.1 += size;
            }
        }
    }

    /// Records events until the merger and the readers are done, or one
    /// of them fails.
    fn record(&mut self, batch: &mut Batch<'_>, events: &mpsc::Receiver<Event>) -> Result<()> {
        for event in events.iter() {
            self.progress.advance(1);
            match event {
                Event::Failed(e) => return Err(e),
                Event::Counted { local, remote } => {
                    if let Some(size) = local {
                        self.summary.local_files += 1;
                        self.summary.local_bytes += size;
                    }
                    if let Some(size) = remote {
                        self.summary.remote_objects += 1;
                        self.summary.remote_bytes += size;
                    }
                }
                Event::SymlinkSkipped => self.summary.symlinks_skipped += 1,
                Event::MarkerSkipped => self.summary.directory_markers_skipped += 1,
                Event::Finding(f) => self.report(batch, f)?,
                Event::Verified {
                    size,
                    verified_at,
                    by_md5,
                } => {
                    self.summary.verified += 1;
                    self.summary.verified_bytes += size;
                    if let Some((key, blake3, fingerprint)) = by_md5 {
                        self.summary.verified_by_md5 += 1;
                        batch.record_read(
                            self.remote_id,
                            &key,
                            &blake3,
                            &fingerprint,
                            size,
                            Proof::EtagMd5,
                        )?;
                    }
                    if let Some(at) = verified_at {
                        self.read_within(at, size);
                    }
                }
                Event::Read { task, result } => {
                    let f = reads::settle_read(
                        batch,
                        self.remote_id,
                        &task,
                        result,
                        self.listing_started,
                        &mut self.summary,
                    )?;
                    if f.is_none() {
                        self.read_within(self.now, task.remote.size);
                    }
                    self.progress.bytes("read", self.summary.bytes_read);
                    if let Some(f) = f {
                        self.report(batch, f)?;
                    }
                }
            }
        }
        Ok(())
    }
}

pub fn describe_remote(r: &RemoteRow) -> Value {
    let mut m = Map::new();
    m.insert("size".into(), json!(r.size));
    if let Some(e) = &r.etag {
        m.insert("etag".into(), json!(e));
    }
    if let Some(v) = &r.version {
        m.insert("version".into(), json!(v));
    }
    m.insert("last_modified".into(), json!(format_time(r.last_modified)));
    Value::Object(m)
}
