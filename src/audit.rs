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

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use futures::StreamExt;
use rusqlite::{Connection, OpenFlags, params};
use serde_json::{Map, Value, json};

use crate::finding::{Finding, Kind};
use crate::index::{self, Entry, Index, RemoteRow, SELECT_ENTRY, SELECT_REMOTE};
use crate::remote::{self, ReadError, Remote};
use crate::report::Sink;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
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
    pub progress: bool,
    /// Below this fraction of the manifest's files or bytes held by the
    /// remote, report `low_coverage` (or `remote_empty`).
    pub min_coverage: f64,
    /// Report `stale` for a backup older than this many seconds.
    pub max_age: Option<i64>,
}

/// How one (file, object) pair is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Content proven equal without reading (cached read, or MD5 ETag).
    Verified {
        by_md5: bool,
    },
    /// Content known to differ: the object was read at its current ETag.
    Corrupt {
        remote_blake3: [u8; 32],
    },
    Unverified(&'static str),
    /// Read the object's bytes now.
    Read,
}

/// Decides a pair whose sizes match. Pure, so the rule is easy to test.
pub fn decide(local: &Entry, remote: &RemoteRow, mode: Mode, scrub_selected: bool) -> Decision {
    let Some(local_hash) = local.blake3 else {
        return Decision::Unverified("the local file has never been hashed");
    };
    if scrub_selected {
        return Decision::Read;
    }
    if let Some(known) = remote.known_blake3() {
        return if known == local_hash {
            Decision::Verified { by_md5: false }
        } else {
            Decision::Corrupt {
                remote_blake3: known,
            }
        };
    }
    let md5_etag = remote.etag.as_deref().and_then(remote::etag_md5);
    if let (Some(etag_md5), Some(local_md5)) = (md5_etag, local.md5)
        && etag_md5 == local_md5
    {
        return Decision::Verified { by_md5: true };
    }
    match mode {
        Mode::Deep => Decision::Read,
        Mode::Quick | Mode::Scrub => {
            Decision::Unverified(if md5_etag.is_some() && local.md5.is_some() {
                "the ETag is not the file's MD5 (an encrypted or multipart upload?): not read, not proof of damage"
            } else {
                "content never read at this ETag"
            })
        }
    }
}

/// One side or both of a merge-join step.
#[derive(Debug)]
pub enum Pair {
    LocalOnly(Entry),
    RemoteOnly(RemoteRow),
    Both(Entry, RemoteRow),
}

/// Merge-joins two streams sorted by key into pairs: exactly one pair per
/// distinct key. A key repeated on either side (a misbehaving listing) is
/// paired once, with its first row; input out of key order is an error,
/// never a wrong pairing (which would read as `missing` plus `extra`).
pub fn merge_join(
    locals: impl Iterator<Item = Result<Entry>>,
    remotes: impl Iterator<Item = Result<RemoteRow>>,
    mut on: impl FnMut(Pair) -> Result<()>,
) -> Result<()> {
    let mut locals = sorted_unique(locals, |e: &Entry| &e.path, "manifest");
    let mut remotes = sorted_unique(remotes, |r: &RemoteRow| &r.key, "listing");
    let mut l = locals.next().transpose()?;
    let mut r = remotes.next().transpose()?;
    loop {
        let step = match (&l, &r) {
            (None, None) => return Ok(()),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(a), Some(b)) => a.path.cmp(&b.key),
        };
        match step {
            std::cmp::Ordering::Less => {
                on(Pair::LocalOnly(l.take().expect("present")))?;
                l = locals.next().transpose()?;
            }
            std::cmp::Ordering::Greater => {
                on(Pair::RemoteOnly(r.take().expect("present")))?;
                r = remotes.next().transpose()?;
            }
            std::cmp::Ordering::Equal => {
                on(Pair::Both(
                    l.take().expect("present"),
                    r.take().expect("present"),
                ))?;
                l = locals.next().transpose()?;
                r = remotes.next().transpose()?;
            }
        }
    }
}

/// Passes on items in strictly increasing key order: drops a repeat of
/// the previous key, and turns a step backwards into an error.
fn sorted_unique<T>(
    items: impl Iterator<Item = Result<T>>,
    key: fn(&T) -> &Vec<u8>,
    side: &'static str,
) -> impl Iterator<Item = Result<T>> {
    let mut last: Option<Vec<u8>> = None;
    items.filter_map(move |item| {
        let t = match item {
            Ok(t) => t,
            Err(e) => return Some(Err(e)),
        };
        let k = key(&t);
        match &last {
            Some(prev) if k == prev => None,
            Some(prev) if k < prev => Some(Err(anyhow!(
                "the {side} is out of key order at {} (after {})",
                crate::paths::display(k),
                crate::paths::display(prev)
            ))),
            _ => {
                last = Some(k.clone());
                Some(Ok(t))
            }
        }
    })
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
            "coverage_files".into(),
            json!(fraction(self.held_files, self.local_files)),
        );
        m.insert(
            "coverage_bytes".into(),
            json!(fraction(self.held_bytes, self.local_bytes)),
        );
        if let Some(t) = self.newest_object {
            m.insert("newest_object".into(), json!(crate::report::format_time(t)));
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
struct Policy {
    mode: Mode,
    max_age: Option<i64>,
}

/// Whole-backup findings, decided before any per-file line.
struct Health {
    held_files: u64,
    held_bytes: u64,
    newest: Option<i64>,
    findings: Vec<Finding>,
}

/// Coverage and freshness of the whole backup: the headline a report
/// leads with, instead of burying an empty backup in N `missing` lines.
fn backup_health(
    conn: &Connection,
    root_id: i64,
    remote: &str,
    run_id: i64,
    opts: &AuditOptions,
) -> Result<Health> {
    let (local_files, local_bytes, held_files, held_bytes): (i64, i64, i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(sum(e.size), 0), count(r.key),
                coalesce(sum(CASE WHEN r.key IS NOT NULL THEN e.size END), 0)
         FROM entries e LEFT JOIN remote_objects r
           ON r.remote = ?2 AND r.key = e.path AND r.seen_run = ?3 AND r.size = e.size
         WHERE e.root_id = ?1 AND e.until_run IS NULL AND e.kind = 0",
        params![root_id, remote, run_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let (objects, newest): (i64, Option<i64>) = conn.query_row(
        "SELECT count(*), max(last_modified) FROM remote_objects WHERE remote = ?1 AND seen_run = ?2",
        params![remote, run_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (local_files, local_bytes) = (local_files as u64, local_bytes as u64);
    let (held_files, held_bytes) = (held_files as u64, held_bytes as u64);
    let mut findings = Vec::new();
    let whole = json!({ "files": local_files, "bytes": local_bytes });
    if local_files > 0 && objects == 0 {
        findings.push(
            Finding::new(Kind::RemoteEmpty, Vec::new())
                .local(whole)
                .remote(json!({ "objects": 0 }))
                .detail(format!(
                    "the backup holds no objects; the manifest has {local_files} files ({local_bytes} bytes)"
                )),
        );
    } else if local_files > 0 {
        let files = fraction(held_files, local_files);
        let bytes = fraction(held_bytes, local_bytes);
        if files < opts.min_coverage || bytes < opts.min_coverage {
            findings.push(
                Finding::new(Kind::LowCoverage, Vec::new())
                    .local(whole)
                    .remote(json!({ "files": held_files, "bytes": held_bytes }))
                    .detail(format!(
                        "the backup holds {:.1}% of the manifest's files ({held_files} of {local_files}) and {:.1}% of its bytes, below --min-coverage {}",
                        files * 100.0,
                        bytes * 100.0,
                        opts.min_coverage
                    )),
            );
        }
    }
    if let (Some(max), Some(t)) = (opts.max_age, newest) {
        let age = index::now_unix() - t;
        if age > max {
            findings.push(
                Finding::new(Kind::Stale, Vec::new())
                    .remote(json!({ "newest_object": crate::report::format_time(t) }))
                    .detail(format!(
                        "the newest object is {} old, over --max-age {}: has the backup job stopped?",
                        humantime::format_duration(std::time::Duration::from_secs(age as u64)),
                        humantime::format_duration(std::time::Duration::from_secs(max as u64)),
                    )),
            );
        }
    }
    Ok(Health {
        held_files,
        held_bytes,
        newest,
        findings,
    })
}

/// An object whose bytes must be read.
#[derive(Debug)]
struct ReadTask {
    local: Entry,
    remote: RemoteRow,
}

enum Event {
    Finding(Finding),
    Verified {
        size: u64,
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
) -> Result<AuditSummary> {
    let prev_run = last_audit_run(index, root_id, &remote.id)?;
    let run_id = index.begin_run(Some(root_id), "audit", Some(&remote.id), None)?;
    match audit_run(index, root_id, remote, opts, sink, run_id, prev_run) {
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

fn audit_run(
    index: &mut Index,
    root_id: i64,
    remote: &Remote,
    opts: &AuditOptions,
    sink: &mut dyn Sink,
    run_id: i64,
    prev_run: Option<i64>,
) -> Result<AuditSummary> {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let progress = crate::cli::progress_bar(opts.progress, "auditing");

    // 1. List the remote into the index.
    let listing_started = index::now_unix();
    {
        let mut batch = index.batch()?;
        let listed = runtime.block_on(async {
            let mut stream = remote.list();
            let mut n = 0u64;
            while let Some(item) = stream.next().await {
                let obj = item?;
                if obj.key.last() == Some(&crate::paths::SEP) || obj.key.is_empty() {
                    continue; // a "directory marker" object
                }
                batch.upsert_listed(&remote.id, &obj, run_id)?;
                n += 1;
                progress.set_message(format!("{n} objects listed"));
            }
            Ok::<_, anyhow::Error>(n)
        });
        listed?;
        batch.commit()?;
        index.prune_remote(&remote.id, run_id)?;
    }

    let health = backup_health(&index.conn, root_id, &remote.id, run_id, opts)?;

    let scrub = if opts.mode == Mode::Scrub {
        scrub_selection(&index.conn, root_id, &remote.id, run_id, opts.scrub_budget)?
    } else {
        HashSet::new()
    };

    // 2-4. Merge, read, record.
    let mut summary = AuditSummary {
        run_id,
        held_files: health.held_files,
        held_bytes: health.held_bytes,
        newest_object: health.newest,
        ..Default::default()
    };
    let now = index::now_unix();
    let policy = Policy {
        mode: opts.mode,
        max_age: opts.max_age,
    };
    let (event_tx, event_rx) = mpsc::channel::<Event>();
    let (read_tx, read_rx) = tokio::sync::mpsc::channel::<ReadTask>(opts.jobs.max(1) * 4);
    let index_path = index.path.clone();
    let jobs = opts.jobs.max(1);
    std::thread::scope(|scope| -> Result<()> {
        let merger_events = event_tx.clone();
        let scrub = &scrub;
        let remote_id = remote.id.clone();
        scope.spawn(move || {
            if let Err(e) = merge(
                &index_path,
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
            handle.block_on(read_objects(remote, read_rx, jobs, reader_events));
        });
        let mut batch = index.batch()?;
        let mut report = |batch: &mut index::Batch<'_>,
                          summary: &mut AuditSummary,
                          mut f: Finding|
         -> Result<()> {
            *summary.counts.entry(f.kind).or_default() += 1;
            batch.record_finding(run_id, prev_run, &mut f)?;
            sink.finding(&f)
        };
        let within = |summary: &mut AuditSummary, at: i64, size: u64| {
            for days in WITHIN_DAYS {
                if now - at <= i64::from(days) * 86_400 {
                    let e = summary.verified_within.entry(days).or_default();
                    e.0 += 1;
                    e.1 += size;
                }
            }
        };
        for f in health.findings {
            report(&mut batch, &mut summary, f)?;
        }
        let mut failure = None;
        for event in event_rx.iter() {
            progress.inc(1);
            match event {
                Event::Failed(e) => {
                    failure = Some(e);
                    break;
                }
                Event::Counted { local, remote } => {
                    if let Some(size) = local {
                        summary.local_files += 1;
                        summary.local_bytes += size;
                    }
                    if let Some(size) = remote {
                        summary.remote_objects += 1;
                        summary.remote_bytes += size;
                    }
                }
                Event::SymlinkSkipped => summary.symlinks_skipped += 1,
                Event::Finding(f) => report(&mut batch, &mut summary, f)?,
                Event::Verified {
                    size,
                    verified_at,
                    by_md5,
                } => {
                    summary.verified += 1;
                    summary.verified_bytes += size;
                    if let Some((key, blake3, fingerprint)) = by_md5 {
                        summary.verified_by_md5 += 1;
                        batch.record_read(&remote.id, &key, &blake3, &fingerprint, size)?;
                    }
                    if let Some(at) = verified_at {
                        within(&mut summary, at, size);
                    }
                }
                Event::Read { task, result } => {
                    let f = settle_read(
                        &mut batch,
                        &remote.id,
                        &task,
                        result,
                        listing_started,
                        &mut summary,
                    )?;
                    if f.is_none() {
                        within(&mut summary, now, task.remote.size);
                    }
                    progress.set_message(format!(
                        "{} read",
                        indicatif::HumanBytes(summary.bytes_read)
                    ));
                    if let Some(f) = f {
                        report(&mut batch, &mut summary, f)?;
                    }
                }
            }
        }
        batch.commit()?;
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    })?;
    progress.finish_and_clear();
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

/// Applies the result of reading one object; returns its finding, if any.
fn settle_read(
    batch: &mut index::Batch<'_>,
    remote_id: &str,
    task: &ReadTask,
    result: Result<([u8; 32], u64), ReadError>,
    listing_started: i64,
    summary: &mut AuditSummary,
) -> Result<Option<Finding>> {
    let key = task.local.path.clone();
    let remote_json = describe_remote(&task.remote);
    let local_json = crate::scan::describe(&task.local.stat, task.local.blake3.as_ref());
    Ok(match result {
        Ok((hash, n)) => {
            summary.objects_read += 1;
            summary.bytes_read += n;
            if n != task.remote.size {
                Some(
                    Finding::new(Kind::Unreadable, key)
                        .local(local_json)
                        .remote(remote_json)
                        .detail(format!(
                            "read {n} bytes of an object listed at {} bytes",
                            task.remote.size
                        )),
                )
            } else {
                let listed = task.remote.listed();
                let mut fingerprint = listed.fingerprint();
                if listed.etag.is_none()
                    && listed.version.is_none()
                    && listed.last_modified >= listing_started
                {
                    // Without an ETag, a rewrite within the same second as
                    // this read would keep size and mtime: record the hash
                    // (for reports) but never let it count as a cached
                    // verification.
                    fingerprint.push_str(":racy");
                }
                batch.record_read(remote_id, &task.remote.key, &hash, &fingerprint, n)?;
                if Some(hash) == task.local.blake3 {
                    summary.verified += 1;
                    summary.verified_bytes += n;
                    None
                } else {
                    let mut remote_json = remote_json;
                    remote_json["blake3"] = json!(hex::encode(hash));
                    Some(
                        Finding::new(Kind::Corrupt, key)
                            .local(local_json)
                            .remote(remote_json)
                            .detail("same size, different content (read and hashed this run)"),
                    )
                }
            }
        }
        Err(ReadError::NotFound) => Some(
            Finding::new(Kind::Missing, key)
                .local(local_json)
                .detail("the object was deleted after it was listed"),
        ),
        Err(ReadError::Changed) => Some(
            Finding::new(Kind::Unverified, key)
                .local(local_json)
                .remote(remote_json)
                .detail("the object was replaced while the audit ran"),
        ),
        Err(ReadError::Other(e)) => Some(
            Finding::new(Kind::Unreadable, key)
                .local(local_json)
                .remote(remote_json)
                .detail(e),
        ),
    })
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
    m.insert(
        "last_modified".into(),
        json!(crate::report::format_time(r.last_modified)),
    );
    Value::Object(m)
}

/// The previous audit of the same root and remote (for `first_seen`).
fn last_audit_run(index: &Index, root_id: i64, remote: &str) -> Result<Option<i64>> {
    use rusqlite::OptionalExtension;
    Ok(index
        .conn
        .query_row(
            "SELECT id FROM runs WHERE root_id = ?1 AND remote = ?2 AND command = 'audit' AND status IN ('ok', 'findings') ORDER BY id DESC LIMIT 1",
            params![root_id, remote],
            |r| r.get(0),
        )
        .optional()?)
}

/// The least recently verified objects (never-read first) that have a
/// file of the same size in the manifest, whose sizes add up to at most
/// `budget` bytes.
fn scrub_selection(
    conn: &Connection,
    root_id: i64,
    remote: &str,
    run_id: i64,
    budget: u64,
) -> Result<HashSet<Vec<u8>>> {
    let mut stmt = conn.prepare(
        "SELECT r.key, r.size FROM remote_objects r
         JOIN entries e ON e.root_id = ?3 AND e.path = r.key AND e.until_run IS NULL
                       AND e.kind = 0 AND e.size = r.size
         WHERE r.remote = ?1 AND r.seen_run = ?2
         ORDER BY r.verified_at IS NOT NULL, r.verified_at, r.key",
    )?;
    let mut rows = stmt.query(params![remote, run_id, root_id])?;
    let mut chosen = HashSet::new();
    let mut used = 0u64;
    while let Some(row) = rows.next()? {
        let size = row.get::<_, i64>(1)? as u64;
        if used + size > budget {
            break;
        }
        used += size;
        chosen.insert(row.get(0)?);
    }
    Ok(chosen)
}

/// The merger: one outcome per key.
#[allow(clippy::too_many_arguments)]
fn merge(
    index_path: &Path,
    root_id: i64,
    remote_id: &str,
    run_id: i64,
    policy: Policy,
    scrub: &HashSet<Vec<u8>>,
    reads: tokio::sync::mpsc::Sender<ReadTask>,
    events: &mpsc::Sender<Event>,
) -> Result<()> {
    let conn = Connection::open_with_flags(
        index_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let mut local_stmt = conn.prepare(&format!(
        "{SELECT_ENTRY} WHERE root_id = ?1 AND until_run IS NULL AND kind != 2 ORDER BY path"
    ))?;
    let mut remote_stmt = conn.prepare(&format!(
        "{SELECT_REMOTE} WHERE remote = ?1 AND seen_run = ?2 ORDER BY key"
    ))?;
    let locals = local_stmt
        .query_map([root_id], index::entry_from_row)?
        .map(|r| r.map_err(anyhow::Error::from));
    let remotes = remote_stmt
        .query_map(params![remote_id, run_id], index::remote_from_row)?
        .map(|r| r.map_err(anyhow::Error::from));
    let send = |e: Event| events.send(e).map_err(|_| anyhow!("audit writer stopped"));
    merge_join(locals, remotes, |pair| match pair {
        Pair::LocalOnly(local) => {
            if local.kind == index::EntryKind::Symlink {
                return send(Event::SymlinkSkipped);
            }
            send(Event::Counted {
                local: Some(local.stat.size),
                remote: None,
            })?;
            let mut f = Finding::new(Kind::Missing, local.path.clone())
                .local(crate::scan::describe(&local.stat, local.blake3.as_ref()));
            // A directory remote holds any name; an object store only UTF-8.
            if std::str::from_utf8(&local.path).is_err() && !remote_id.starts_with("file://") {
                f = f.detail("the name is not UTF-8, so no object key can hold it");
            }
            send(Event::Finding(f))
        }
        Pair::RemoteOnly(obj) => {
            send(Event::Counted {
                local: None,
                remote: Some(obj.size),
            })?;
            send(Event::Finding(
                Finding::new(Kind::Extra, obj.key.clone()).remote(describe_remote(&obj)),
            ))
        }
        Pair::Both(local, obj) => {
            if local.kind == index::EntryKind::Symlink {
                // Backup tools differ (rclone and object stores copy the
                // target, rsync -a the link): a symlink is not audited.
                return send(Event::SymlinkSkipped);
            }
            send(Event::Counted {
                local: Some(local.stat.size),
                remote: Some(obj.size),
            })?;
            if local.stat.size != obj.size {
                let detail = if obj.size < local.stat.size {
                    "the backup copy is shorter (truncated?)"
                } else {
                    "the backup copy is longer"
                };
                return send(Event::Finding(
                    Finding::new(Kind::SizeMismatch, local.path.clone())
                        .local(crate::scan::describe(&local.stat, local.blake3.as_ref()))
                        .remote(describe_remote(&obj))
                        .detail(detail),
                ));
            }
            let selected = scrub.contains(&obj.key);
            let lag = local.stat.mtime_ns.div_euclid(1_000_000_000) - obj.last_modified;
            match decide(&local, &obj, policy.mode, selected) {
                Decision::Unverified(_) if policy.max_age.is_some_and(|max| lag > max) => {
                    send(Event::Finding(
                        Finding::new(Kind::Stale, local.path.clone())
                            .local(crate::scan::describe(&local.stat, local.blake3.as_ref()))
                            .remote(describe_remote(&obj))
                            .detail(format!(
                                "the backup copy is {} older than the local file (over --max-age)",
                                humantime::format_duration(std::time::Duration::from_secs(
                                    lag as u64
                                ))
                            )),
                    ))
                }
                Decision::Verified { by_md5 } => send(Event::Verified {
                    size: obj.size,
                    verified_at: if by_md5 {
                        Some(index::now_unix())
                    } else {
                        obj.verified_at
                    },
                    by_md5: by_md5.then(|| {
                        (
                            obj.key.clone(),
                            local.blake3.expect("decide checked"),
                            obj.listed().fingerprint(),
                        )
                    }),
                }),
                Decision::Corrupt { remote_blake3 } => {
                    let mut remote_json = describe_remote(&obj);
                    remote_json["blake3"] = json!(hex::encode(remote_blake3));
                    let read_at = obj.verified_at.map(crate::report::format_time);
                    send(Event::Finding(
                        Finding::new(Kind::Corrupt, local.path.clone())
                            .local(crate::scan::describe(&local.stat, local.blake3.as_ref()))
                            .remote(remote_json)
                            .detail(format!(
                                "same size, different content (object read {}, unchanged since)",
                                read_at.unwrap_or_else(|| "earlier".into())
                            )),
                    ))
                }
                Decision::Unverified(why) => send(Event::Finding(
                    Finding::new(Kind::Unverified, local.path.clone())
                        .local(crate::scan::describe(&local.stat, local.blake3.as_ref()))
                        .remote(describe_remote(&obj))
                        .detail(why),
                )),
                Decision::Read => reads
                    .blocking_send(ReadTask { local, remote: obj })
                    .map_err(|_| anyhow!("object readers stopped")),
            }
        }
    })
}

/// Reads queued objects, `jobs` at a time.
async fn read_objects(
    remote: &Remote,
    tasks: tokio::sync::mpsc::Receiver<ReadTask>,
    jobs: usize,
    events: mpsc::Sender<Event>,
) {
    let stream =
        futures::stream::unfold(
            tasks,
            |mut rx| async move { rx.recv().await.map(|t| (t, rx)) },
        );
    stream
        .for_each_concurrent(jobs, |task| {
            let events = events.clone();
            async move {
                let result = remote
                    .read_hash(&task.remote.key, task.remote.etag.as_deref())
                    .await;
                let _ = events.send(Event::Read {
                    task: Box::new(task),
                    result,
                });
            }
        })
        .await;
}
