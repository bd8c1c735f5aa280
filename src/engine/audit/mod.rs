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
pub mod health;
pub mod hint;
mod merger;
mod prove;
mod reads;

pub use decide::{Decision, decide};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result};
use futures::StreamExt;
use serde_json::{Map, Value, json};

use crate::engine::exclude::Excludes;
use crate::engine::inventory::Inventory;
use crate::engine::remote::Remote;
use crate::engine::shard::Shard;
use crate::model::verdict;
use crate::model::{
    Acceptance, Entry, Finding, Kind, Proof, ReadError, RemoteRow, format_time, now_unix, paths,
};
use crate::out::{Meter, Progress, Sink, Total};
use crate::store::{Batch, Index, ScrubSelection};

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
    /// Objects only on the backup are `backup_only` (not a discrepancy)
    /// instead of `extra`: a backup that keeps more than the source does.
    pub one_way: bool,
    /// Read nothing; count what a deep and a scrub run would read.
    pub dry_run: bool,
    /// Paths left out on both sides.
    pub excludes: Excludes,
    /// Discrepancies accepted with `vouch accept` (of this root).
    pub accepted: Vec<Acceptance>,
    /// The fraction of the manifest that must be proven identical for the
    /// verdict `proven` (see [`crate::model::verdict`]).
    pub min_proven: f64,
    /// Report the files the index holds as rotted (`corrupt`, see
    /// `Entry::trusted_blake3`): set when no scan ran first, since a
    /// scan reports them itself.
    pub report_rot: bool,
    /// Only the keys of this shard (`--shard K/N`). A shard reports no
    /// whole-backup findings: `vouch merge` decides those on the whole.
    pub shard: Option<Shard>,
    /// With an inventory as the listing: a file changed less than this
    /// many seconds before the report was taken (or after) is not judged
    /// by it.
    pub inventory_grace: i64,
    /// Prove objects not read earlier from the store's checksums (HEAD
    /// requests, no download) in quick and scrub modes.
    pub head: bool,
}

/// The default `--inventory-grace`: an inventory lists what the bucket
/// held at some point while the report was being produced.
pub const DEFAULT_INVENTORY_GRACE: i64 = 3600;

/// What an audit found, with the counters its summary prints.
#[derive(Debug, Clone, Default)]
pub struct AuditSummary {
    pub run_id: i64,
    pub counts: BTreeMap<Kind, u64>,
    /// Bytes of the findings of each kind that name a size (the local
    /// file's, else the object's): what is at stake, summed by `merge`.
    pub bytes_by_kind: BTreeMap<Kind, u64>,
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
    /// Manifest files and listed objects the excludes left out.
    pub excluded_files: u64,
    pub excluded_objects: u64,
    /// Zero-byte "directory marker" objects (`dir/`, a folder made in the
    /// S3 console; the prefix itself), skipped.
    pub directory_markers_skipped: u64,
    /// Files (and bytes) of the manifest present on the remote at the
    /// same size.
    pub held_files: u64,
    pub held_bytes: u64,
    /// Newest last-modified time under the prefix.
    pub newest_object: Option<i64>,
    /// With `--dry-run`: what a deep and a scrub run would read.
    pub would_read: Option<WouldRead>,
    /// Objects (and bytes) whose bytes were last read in full (by deep or
    /// scrub, this run or earlier at the same ETag) at most N days ago.
    /// Only a read counts: a checksum or ETag proof (`proven_by`) says
    /// what the store accepted, not what it holds now, and never enters
    /// here.
    pub verified_within: BTreeMap<u32, (u64, u64)>,
    /// Archived objects (GLACIER, DEEP_ARCHIVE) a deep or scrub read
    /// skipped.
    pub archived_not_read: u64,
    /// What was listed: `{"source": "list"}` or the inventory snapshot.
    pub listing: Value,
    pub shard: Option<Shard>,
    pub min_coverage: f64,
    pub max_age: Option<i64>,
    /// Objects and bytes proven equal to the file in this run, by the
    /// method that proved each (`blake3-read`: its bytes were read, now or
    /// at the same ETag earlier; `crc64nvme`, `md5-etag`,
    /// `multipart-etag`, ...: a checksum the store keeps). Every
    /// `verified` object is in exactly one method: the sum is `verified`.
    pub proven_by: BTreeMap<String, (u64, u64)>,
    /// Requests made to prove content without reading it (HEADs).
    pub requests: u64,
    /// Local bytes read to compute checksums other than BLAKE3.
    pub local_bytes_hashed: u64,
    pub elapsed_ms: u64,
    /// `AuditOptions::min_proven`, so the summary carries its verdict.
    pub min_proven: f64,
    /// "did you mean --remote …" (see [`hint`]).
    pub hint: Option<String>,
}

const WITHIN_DAYS: [u32; 3] = [1, 7, 30];

/// What a dry run found a deep and a scrub run would read.
#[derive(Debug, Clone, Copy, Default)]
pub struct WouldRead {
    pub deep_objects: u64,
    pub deep_bytes: u64,
    pub scrub_objects: u64,
    pub scrub_bytes: u64,
}

/// Events between the merger (and the readers) and the recorder: the
/// merger reads the index much faster than the recorder writes to it, so
/// an unbounded queue would hold most of a shard's keys at once. Bounded,
/// the merger waits; memory does not grow with the number of objects.
pub(crate) const EVENTS_IN_FLIGHT: usize = 4096;

fn events_channel() -> (mpsc::SyncSender<Event>, mpsc::Receiver<Event>) {
    mpsc::sync_channel(EVENTS_IN_FLIGHT)
}

/// Keys per listing request (S3, GCS and Azure pages hold up to 1000).
const KEYS_PER_LIST_REQUEST: u64 = 1000;

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
        let by_kind: Map<String, Value> = self
            .bytes_by_kind
            .iter()
            .map(|(k, b)| (k.name().to_string(), json!(b)))
            .collect();
        m.insert("bytes_by_kind".into(), Value::Object(by_kind));
        if let Some(hint) = &self.hint {
            m.insert("hint".into(), json!(hint));
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
        if self.excluded_files + self.excluded_objects > 0 {
            m.insert("excluded_files".into(), json!(self.excluded_files));
            m.insert("excluded_objects".into(), json!(self.excluded_objects));
        }
        if self.archived_not_read > 0 {
            m.insert("archived_not_read".into(), json!(self.archived_not_read));
        }
        m.insert("held_files".into(), json!(self.held_files));
        m.insert("held_bytes".into(), json!(self.held_bytes));
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
        if let Some(w) = &self.would_read {
            // A listing costs a request per page; a read, one GET.
            let list = self.remote_objects.div_ceil(KEYS_PER_LIST_REQUEST).max(1);
            m.insert(
                "dry_run".into(),
                json!({
                    "deep_objects": w.deep_objects,
                    "deep_bytes": w.deep_bytes,
                    "deep_requests": list + w.deep_objects,
                    "scrub_objects": w.scrub_objects,
                    "scrub_bytes": w.scrub_bytes,
                    "scrub_requests": list + w.scrub_objects,
                }),
            );
        }
        if !self.listing.is_null() {
            m.insert("listing".into(), self.listing.clone());
        }
        if let Some(s) = self.shard {
            m.insert("shard".into(), s.to_json());
            // What `vouch merge` needs to decide the whole-backup checks.
            m.insert(
                "policy".into(),
                json!({ "min_coverage": self.min_coverage, "max_age_s": self.max_age }),
            );
        }
        let mut by = Map::new();
        for (method, (objects, bytes)) in &self.proven_by {
            by.insert(
                method.clone(),
                json!({ "objects": objects, "bytes": bytes }),
            );
        }
        m.insert("proven_by".into(), Value::Object(by));
        m.insert("requests".into(), json!(self.requests));
        m.insert("bytes_downloaded".into(), json!(self.bytes_read));
        m.insert("local_bytes_hashed".into(), json!(self.local_bytes_hashed));
        m.insert("elapsed_ms".into(), json!(self.elapsed_ms));
        m.insert("min_proven".into(), json!(self.min_proven));
        verdict::annotate(&mut m);
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
    one_way: bool,
    dry_run: bool,
    report_rot: bool,
    /// With an inventory: its creation time minus the grace. A file
    /// changed since cannot be judged by the inventory.
    listed_before: Option<i64>,
    /// Prove unread objects from the store's checksums.
    head: bool,
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
    /// Proven by a proof recorded earlier for this object version.
    Proved {
        size: u64,
        method: String,
    },
    /// The checksum ladder's result for one object.
    Proof {
        task: Box<prove::ProveTask>,
        result: Result<crate::engine::proof::Proof, crate::engine::proof::probe::ProbeError>,
    },
    Counted {
        local: Option<u64>,
        remote: Option<u64>,
    },
    SymlinkSkipped,
    /// A dry run: a deep run would read this object (`deep`), a scrub run
    /// too (`scrub`).
    WouldRead {
        size: u64,
        deep: bool,
        scrub: bool,
    },
    /// A key the excludes leave out, on one side or both.
    Excluded {
        local: bool,
        remote: bool,
    },
    MarkerSkipped,
    ArchivedNotRead,
    /// The merger is done: every read is queued, of `read_bytes` in all.
    AllQueued {
        read_bytes: u64,
    },
    Failed(anyhow::Error),
}

/// Audits the manifest of `root_id` against `remote`, listed by a LIST of
/// the prefix, or read from `inventory` when given.
#[allow(clippy::too_many_arguments)]
pub fn audit(
    index: &mut Index,
    root: &Path,
    root_id: i64,
    remote: &Remote,
    inventory: Option<&Inventory>,
    opts: &AuditOptions,
    sink: &mut dyn Sink,
    progress: &dyn Progress,
) -> Result<AuditSummary> {
    let prev_run = index.last_audit_run(root_id, &remote.id)?;
    // The index inside ROOT is no part of the tree, nor is its copy.
    let skip = crate::engine::scan::index_files_inside(index.path(), root);
    let run_id = index.begin_run(Some(root_id), "audit", Some(&remote.id), None)?;
    match audit_run(
        index, root, root_id, remote, inventory, opts, sink, progress, run_id, prev_run, &skip,
    ) {
        Ok(mut summary) => {
            summary.hint = prefix_hint_of_run(index, &summary, &remote.id)?;
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

/// The "did you mean" hint, looked for only when more than half of the
/// files are missing (the findings are then streamed back from the index,
/// never held whole: see [`hint`]).
fn prefix_hint_of_run(index: &Index, s: &AuditSummary, remote: &str) -> Result<Option<String>> {
    let missing = s.count(Kind::Missing);
    if s.count(Kind::Extra) == 0 || missing == 0 || 2 * missing <= s.local_files {
        return Ok(None);
    }
    let paths = |kind: Kind, from: Vec<u8>| {
        Box::new(index.finding_paths(s.run_id, kind, from)) as hint::Paths<'_>
    };
    Ok(hint::prefix_hint(remote, &paths)?.text)
}

#[allow(clippy::too_many_arguments)]
fn audit_run(
    index: &mut Index,
    root: &Path,
    root_id: i64,
    remote: &Remote,
    inventory: Option<&Inventory>,
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
    let mut markers = 0;
    let (listing_started, listing) = match inventory {
        Some(inv) => {
            let mut snapshot = inv.to_json();
            let read = inventory_into_index(index, remote, inv, run_id, opts.shard, progress)?;
            snapshot["source"] = json!("inventory");
            snapshot["age_s"] = json!(now_unix() - inv.created());
            snapshot["rows"] = json!(read.rows);
            (inv.created(), snapshot)
        }
        None => {
            let started = now_unix();
            markers = list_into_index(index, remote, run_id, opts.shard, &runtime, progress)?;
            (started, json!({ "source": "list" }))
        }
    };

    // Whole-backup findings (a shard leaves them to `vouch merge`), and
    // what a scrub re-reads.
    let mut health = health::backup_health(index, root_id, &remote.id, run_id, opts)?;
    if let Some(inv) = inventory
        && let Some(f) = health::inventory_finding(
            &inv.location,
            inv.created(),
            &health::Policy {
                min_coverage: opts.min_coverage,
                max_age: opts.max_age,
            },
            now_unix(),
        )
    {
        health.findings.push(f);
    }
    if opts.shard.is_some() {
        health.findings.clear();
    }
    // Held as where the chosen objects end, not their keys; an excluded
    // object may be chosen (and spend budget) but never reaches the
    // merger's question.
    let scrub = if opts.mode == Mode::Scrub || opts.dry_run {
        index.scrub_selection(root_id, &remote.id, run_id, opts.scrub_budget)?
    } else {
        ScrubSelection::Nothing
    };

    // Bytes move as objects are read; a deep run reads at most what the
    // backup holds of the manifest, a scrub at most its budget (the exact
    // total comes when the merger has queued every read).
    let reading = !opts.dry_run && matches!(opts.mode, Mode::Deep | Mode::Scrub);
    let meter = if reading {
        let meter = progress.meter("read");
        progress.total(Total {
            files: None,
            bytes: Some(match opts.mode {
                Mode::Scrub => health.held_bytes.min(opts.scrub_budget),
                _ => health.held_bytes,
            }),
            exact: false,
        });
        meter
    } else {
        Meter::default()
    };

    // 2-4. Merge (a thread), read (the runtime), record (this thread).
    let mut recorder = Recorder {
        summary: AuditSummary {
            run_id,
            held_files: health.held_files,
            held_bytes: health.held_bytes,
            newest_object: health.newest,
            would_read: opts.dry_run.then(WouldRead::default),
            min_proven: opts.min_proven,
            directory_markers_skipped: markers,
            listing,
            shard: opts.shard,
            min_coverage: opts.min_coverage,
            max_age: opts.max_age,
            ..Default::default()
        },
        run_id,
        prev_run,
        remote_id: &remote.id,
        listing_started,
        now: now_unix(),
        accepted: opts
            .accepted
            .iter()
            .map(|a| ((a.path.clone(), a.kind), a))
            .collect(),
        refusals: Default::default(),
        sink,
        progress,
        reading,
    };
    // A stopped backup is one `stale` (path ""), not one more per file:
    // with the whole backup stale, the files' copies are judged as usual
    // (`unverified` unless proven).
    let backup_stale = health
        .findings
        .iter()
        .any(|f| f.kind == Kind::Stale && f.path.is_empty());
    let policy = Policy {
        mode: opts.mode,
        max_age: opts.max_age.filter(|_| !backup_stale),
        one_way: opts.one_way,
        dry_run: opts.dry_run,
        report_rot: opts.report_rot,
        listed_before: inventory.map(|inv| inv.created() - opts.inventory_grace),
        head: opts.head && opts.mode != Mode::Deep && remote.prober.is_some(),
    };
    let (event_tx, event_rx) = events_channel();
    let (read_tx, read_rx) = tokio::sync::mpsc::channel::<ReadTask>(opts.jobs.max(1) * 4);
    let (prove_tx, prove_rx) = tokio::sync::mpsc::channel::<prove::ProveTask>(opts.jobs.max(1) * 4);
    let index_path = index.path().to_path_buf();
    let jobs = opts.jobs.max(1);
    std::thread::scope(|scope| -> Result<()> {
        // Owned here, so that however this closure ends (a failed write, a
        // failed read) the receiver is gone before the scope joins: the
        // merger and the readers, blocked on a full channel, then see
        // their sends fail and stop instead of waiting forever.
        let event_rx = event_rx;
        let merger_events = event_tx.clone();
        let scrub = &scrub;
        let excludes = &opts.excludes;
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
                excludes,
                read_tx,
                prove_tx,
                &merger_events,
            ) {
                let _ = merger_events.send(Event::Failed(e));
            }
        });
        let reader_events = event_tx.clone();
        let handle = runtime.handle().clone();
        scope.spawn(move || {
            handle.block_on(reads::read_objects(
                remote,
                read_rx,
                jobs,
                reader_events,
                meter,
            ));
        });
        let prover_events = event_tx;
        let handle = runtime.handle().clone();
        scope.spawn(move || {
            handle.block_on(prove::prove_objects(
                remote,
                root,
                prove_rx,
                jobs,
                prover_events,
            ));
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
    summary.requests = remote.prober.as_ref().map_or(0, |p| p.requests());
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

/// Lists the remote into the index (`remote_objects`), skipping zero-byte
/// directory markers (`dir/`; the prefix itself) and returning how many,
/// skipping other shards' keys, and forgets objects the listing no longer returns. A key ending in `/`
/// or naming the prefix itself that holds bytes is kept: it is `extra`.
fn list_into_index(
    index: &mut Index,
    remote: &Remote,
    run_id: i64,
    shard: Option<Shard>,
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
            if shard.is_some_and(|s| !s.owns_stored(&obj.key)) {
                continue;
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

/// Reads the inventory's rows under the remote's prefix (and in this
/// shard) into the index, as a listing would have listed them. The
/// inventory must be of the remote's bucket.
fn inventory_into_index(
    index: &mut Index,
    remote: &Remote,
    inv: &Inventory,
    run_id: i64,
    shard: Option<Shard>,
    progress: &dyn Progress,
) -> Result<crate::engine::inventory::ReadStats> {
    if let Some(bucket) = remote.bucket()
        && bucket != inv.manifest.source_bucket
    {
        anyhow::bail!(
            "the inventory {} lists bucket {}, not the remote's bucket {bucket}",
            inv.location,
            inv.manifest.source_bucket
        );
    }
    let prefix = remote.prefix.as_ref().as_bytes().to_vec();
    let mut batch = index.batch()?;
    let mut n = 0u64;
    let stats = inv.for_each_row(|row| {
        let Some(key) = paths::from_object_key(&prefix, &row.key) else {
            return Ok(());
        };
        if row.size == 0 && (key.last() == Some(&paths::SEP) || key.is_empty()) {
            return Ok(()); // a "directory marker" object
        }
        if shard.is_some_and(|s| !s.owns_stored(&key)) {
            return Ok(());
        }
        let obj = crate::model::Listed {
            key,
            size: row.size,
            etag: row.etag.clone(),
            version: row.version.clone(),
            last_modified: row.last_modified,
            storage_class: row.storage_class.clone(),
        };
        batch.upsert_listed(&remote.id, &obj, run_id)?;
        n += 1;
        if n.is_multiple_of(4096) {
            progress.status(&format!("{n} objects read from the inventory"));
        }
        Ok(())
    })?;
    batch.commit()?;
    index.prune_remote(&remote.id, run_id)?;
    Ok(stats)
}

/// Reads (or checksum requests) refused or unanswered before any got
/// through, after which the audit ends (exit 2) with the last one's line:
/// the remote as a whole refuses (credentials, policy) or is down. Fewer,
/// or any success, and each stays its object's finding.
pub(crate) const SYSTEMIC: u64 = 3;

/// Counts requests that got through and those refused; ends the audit when
/// [`SYSTEMIC`] were refused before any got through.
#[derive(Debug, Default)]
struct Refusals {
    through: u64,
    refused: u64,
}

impl Refusals {
    fn note(&mut self, refused: Option<&str>) -> Result<()> {
        match refused {
            None => self.through += 1,
            Some(line) => {
                self.refused += 1;
                if self.through == 0 && self.refused >= SYSTEMIC {
                    anyhow::bail!("{line}");
                }
            }
        }
        Ok(())
    }
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
    accepted: std::collections::HashMap<(Vec<u8>, Kind), &'a Acceptance>,
    /// Of the reads (GET) and of the checksum requests (HEAD), apart.
    refusals: [Refusals; 2],
    sink: &'a mut dyn Sink,
    progress: &'a dyn Progress,
    /// Objects are read in this run (deep, scrub): their total is shown.
    reading: bool,
}

impl Recorder<'_> {
    fn report(&mut self, batch: &mut Batch<'_>, mut f: Finding) -> Result<()> {
        if let Some(a) = self.accepted.get(&(f.path.clone(), f.kind))
            && a.covers(&f, self.now)
        {
            a.mark(&mut f);
        }
        *self.summary.counts.entry(f.kind).or_default() += 1;
        // The bytes at stake: the local file's size, else the object's.
        let size = [&f.local, &f.remote]
            .into_iter()
            .find_map(|side| side.as_ref()?.get("size")?.as_u64());
        if let Some(size) = size {
            *self.summary.bytes_by_kind.entry(f.kind).or_default() += size;
        }
        batch.record_finding(self.run_id, self.prev_run, &mut f)?;
        self.sink.finding(&f)
    }

    /// Counts an object proven by `method`.
    fn proven(&mut self, method: &str, size: u64) {
        let e = self
            .summary
            .proven_by
            .entry(method.to_string())
            .or_default();
        e.0 += 1;
        e.1 += size;
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
                Event::WouldRead { size, deep, scrub } => {
                    let w = self.summary.would_read.get_or_insert_default();
                    if deep {
                        w.deep_objects += 1;
                        w.deep_bytes += size;
                    }
                    if scrub {
                        w.scrub_objects += 1;
                        w.scrub_bytes += size;
                    }
                }
                Event::Excluded { local, remote } => {
                    self.summary.excluded_files += u64::from(local);
                    self.summary.excluded_objects += u64::from(remote);
                }
                Event::MarkerSkipped => self.summary.directory_markers_skipped += 1,
                Event::ArchivedNotRead => self.summary.archived_not_read += 1,
                Event::AllQueued { read_bytes } => {
                    if self.reading {
                        self.progress.total(Total {
                            files: None,
                            bytes: Some(read_bytes),
                            exact: true,
                        });
                    }
                }
                Event::Finding(f) => self.report(batch, f)?,
                Event::Verified {
                    size,
                    verified_at,
                    by_md5,
                } => {
                    self.summary.verified += 1;
                    self.summary.verified_bytes += size;
                    let method = if by_md5.is_some() {
                        "md5-etag"
                    } else {
                        "blake3-read"
                    };
                    self.proven(method, size);
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
                    let result_ok = result.is_ok();
                    match &result {
                        Err(ReadError::Refused(line)) => self.refusals[0].note(Some(line))?,
                        Ok(_) => self.refusals[0].note(None)?,
                        Err(_) => {}
                    }
                    let f = reads::settle_read(
                        batch,
                        self.remote_id,
                        &task,
                        result,
                        self.listing_started,
                        &mut self.summary,
                    )?;
                    if f.is_none() && result_ok {
                        self.read_within(self.now, task.remote.size);
                        self.proven("blake3-read", task.remote.size);
                    }
                    if let Some(f) = f {
                        self.report(batch, f)?;
                    }
                }
                Event::Proved { size, method } => {
                    self.summary.verified += 1;
                    self.summary.verified_bytes += size;
                    self.proven(&method, size);
                }
                Event::Proof { task, result } => {
                    let settled =
                        prove::settle_proof(batch, self.remote_id, &task, result, self.now)?;
                    self.refusals[1].note(settled.refused.as_deref())?;
                    self.summary.local_bytes_hashed += settled.bytes_hashed;
                    if let Some(method) = settled.proven {
                        self.summary.verified += 1;
                        self.summary.verified_bytes += task.remote.size;
                        self.proven(&method, task.remote.size);
                    }
                    if let Some(f) = settled.finding {
                        self.report(batch, f)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The tasks a channel delivers, as a stream (for `for_each_concurrent`).
fn queue<T: Send>(tasks: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::unfold(
        tasks,
        |mut rx| async move { rx.recv().await.map(|t| (t, rx)) },
    )
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
    if let Some(c) = &r.storage_class {
        m.insert("storage_class".into(), json!(c));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_from_the_merger_to_the_recorder_is_bounded() {
        let (tx, _rx) = events_channel();
        for _ in 0..EVENTS_IN_FLIGHT {
            tx.try_send(Event::MarkerSkipped).unwrap();
        }
        assert!(matches!(
            tx.try_send(Event::MarkerSkipped),
            Err(mpsc::TrySendError::Full(_))
        ));
    }
}
