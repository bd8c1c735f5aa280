//! Snapshots and manifests as sorted streams of nodes, for `diff`,
//! `verify` and `export`.
//!
//! Whatever a comparison reads — a finished scan run in the index (`@NAME`,
//! `@N`, or a directory just scanned) or an exported manifest file — is
//! turned into a [`Source`]: a description (is it Merkle-capable? which
//! hashes does it carry? which of its paths could not be read when it was
//! taken?) plus a [`Cursor`] that yields [`Node`]s in key order and can
//! *seek* past a whole subtree. Seeking is what makes a diff of two large,
//! nearly identical snapshots cheap: keys are NUL-joined components (see
//! [`crate::model::paths`]), so the subtree of key `K` is the key range
//! `[K\0, K\x01)` and skipping it is one range read in SQLite, or one
//! binary search in memory.
//!
//! A snapshot is read straight from the temporal `entries` table: the
//! manifest of finished run N is the rows with `since_run <= N AND
//! (until_run IS NULL OR until_run > N)`. It is paged by key with small
//! pages that grow while the reader moves forward and shrink after a seek,
//! so a diff that skips almost everything reads O(depth) rows per change.
//!
//! The trust rule: a snapshot whose scan reported a path `unreadable` (or
//! `corrupt`, from `--rehash`) still holds the *earlier* row for that path,
//! so its Merkle hashes describe bytes nobody read at that run. Such paths
//! are collected as *unsettled*; a comparison reports them and never lets
//! a root or a directory hash that covers them decide anything.

use std::collections::{BTreeMap, VecDeque};

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

use crate::engine::exclude::Excludes;
use crate::model::{EntryKind, Kind, Node, Run, format_time, paths};
use crate::store::Index;

/// A path a snapshot could not vouch for, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsettled {
    pub kind: Kind,
    pub detail: String,
}

/// Where a source's nodes live.
#[derive(Debug, Clone)]
pub enum Data {
    /// A finished scan run in the index, read under the excludes its scan
    /// applied (the rows of a path they left out are kept, not compared).
    Run {
        root_id: i64,
        run_id: i64,
        excludes: Box<Excludes>,
    },
    /// A manifest file, parsed and sorted by key.
    Memory(Vec<Node>),
}

/// One side of a comparison.
#[derive(Debug, Clone)]
pub struct Source {
    /// How the summary names this side (`{"kind": "snapshot", ...}`).
    pub describe: Map<String, Value>,
    pub data: Data,
    /// The Merkle root, when the source has directory hashes that were
    /// computed (scan) or checked (json manifest) by vouch.
    pub merkle_root: Option<[u8; 32]>,
    /// True when directory nodes carry Merkle hashes (subtree skipping).
    pub has_dir_hashes: bool,
    /// A checksum list (b3sum/sha256sum): regular files only, no sizes,
    /// no directories, no symlinks.
    pub files_only: bool,
    /// Some file has no content hash at all (never read).
    pub unhashed: bool,
    /// Paths the scan behind this snapshot could not settle.
    pub unsettled: BTreeMap<Vec<u8>, Unsettled>,
    /// Regular files and symlinks, and directories (ROOT excluded).
    pub total_files: u64,
    pub total_dirs: u64,
}

impl Source {
    /// True when a root hash alone may prove equality.
    pub fn root_is_proof(&self) -> bool {
        self.merkle_root.is_some() && !self.unhashed && self.unsettled.is_empty()
    }

    /// The unsettled path equal to `key` or containing it, if any.
    pub fn unsettled_covering(&self, key: &[u8]) -> Option<(&Vec<u8>, &Unsettled)> {
        if self.unsettled.is_empty() {
            return None;
        }
        let mut k = key;
        loop {
            if let Some(hit) = self.unsettled.get_key_value(k) {
                return Some(hit);
            }
            if k.is_empty() {
                return None;
            }
            k = paths::parent(k);
        }
    }

    /// True when some unsettled path lies strictly inside directory `dir`.
    pub fn unsettled_inside(&self, dir: &[u8]) -> bool {
        if dir.is_empty() {
            return self.unsettled.keys().any(|k| !k.is_empty());
        }
        let mut lo = dir.to_vec();
        lo.push(0x00);
        self.unsettled.range(lo..past_subtree(dir)).next().is_some()
    }

    /// A cursor over the nodes, ROOT itself excluded.
    pub fn cursor<'a>(&'a self, index: Option<&'a Index>) -> Result<Cursor<'a>> {
        Ok(match &self.data {
            Data::Run {
                root_id,
                run_id,
                excludes,
            } => {
                let Some(index) = index else {
                    bail!("internal: a snapshot cursor needs the index");
                };
                Cursor::Db(DbCursor {
                    index,
                    root_id: *root_id,
                    run_id: *run_id,
                    excludes,
                    buf: VecDeque::new(),
                    lower: Vec::new(),
                    inclusive: false,
                    done: false,
                    page: MIN_PAGE,
                })
            }
            Data::Memory(nodes) => Cursor::Mem { nodes, pos: 0 },
        })
    }
}

/// The first key after `key` and everything below it: `K\x01`.
pub fn past_subtree(key: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    k.push(0x01);
    k
}

const MIN_PAGE: usize = 16;
const MAX_PAGE: usize = 4096;

/// Nodes in key order, with seeking.
pub enum Cursor<'a> {
    Db(DbCursor<'a>),
    Mem { nodes: &'a [Node], pos: usize },
}

impl Cursor<'_> {
    pub fn peek(&mut self) -> Result<Option<&Node>> {
        match self {
            Cursor::Db(c) => c.peek(),
            Cursor::Mem { nodes, pos } => Ok(nodes.get(*pos)),
        }
    }

    pub fn next_node(&mut self) -> Result<Option<Node>> {
        match self {
            Cursor::Db(c) => {
                c.peek()?;
                Ok(c.buf.pop_front())
            }
            Cursor::Mem { nodes, pos } => {
                let n = nodes.get(*pos).cloned();
                if n.is_some() {
                    *pos += 1;
                }
                Ok(n)
            }
        }
    }

    /// Moves to the first key `>= to`.
    pub fn seek(&mut self, to: &[u8]) -> Result<()> {
        match self {
            Cursor::Db(c) => {
                while c.buf.front().is_some_and(|n| n.key.as_slice() < to) {
                    c.buf.pop_front();
                }
                if c.buf.is_empty() && !c.done {
                    c.lower = to.to_vec();
                    c.inclusive = true;
                    c.page = MIN_PAGE;
                }
                Ok(())
            }
            Cursor::Mem { nodes, pos } => {
                *pos += nodes[*pos..].partition_point(|n| n.key.as_slice() < to);
                Ok(())
            }
        }
    }
}

/// Reads a run's manifest from the index in key-ordered pages.
pub struct DbCursor<'a> {
    index: &'a Index,
    root_id: i64,
    run_id: i64,
    excludes: &'a Excludes,
    buf: VecDeque<Node>,
    /// Where the next page starts.
    lower: Vec<u8>,
    inclusive: bool,
    done: bool,
    page: usize,
}

impl DbCursor<'_> {
    fn peek(&mut self) -> Result<Option<&Node>> {
        // A page may hold only excluded rows: read on.
        while self.buf.is_empty() && !self.done {
            self.fill()?;
        }
        Ok(self.buf.front())
    }

    fn fill(&mut self) -> Result<()> {
        let nodes = self.index.snapshot_page(
            self.root_id,
            self.run_id,
            &self.lower,
            self.inclusive,
            self.page,
        )?;
        if nodes.len() < self.page {
            self.done = true;
        }
        if let Some(last) = nodes.last() {
            self.lower = last.key.clone();
            self.inclusive = false;
        }
        let excludes = self.excludes;
        self.buf.extend(
            nodes
                .into_iter()
                .filter(|n| !excludes.excludes_path(&n.key, n.kind == EntryKind::Dir)),
        );
        self.page = (self.page * 2).min(MAX_PAGE);
        Ok(())
    }
}

/// Resolves `@NAME` or `@N` (without the `@`) to a finished scan run.
pub fn resolve_run(index: &Index, spec: &str) -> Result<Run> {
    let shown = format!("@{spec}");
    let run = if !spec.is_empty() && spec.chars().all(|c| c.is_ascii_digit()) {
        let id: i64 = spec
            .parse()
            .map_err(|_| anyhow::anyhow!("{shown}: not a run number"))?;
        match index.run(id)? {
            Some(r) => r,
            None => bail!("{shown}: the index has no run {id}"),
        }
    } else {
        match index.run_labelled(spec)? {
            Some(id) => index
                .run(id)?
                .ok_or_else(|| anyhow::anyhow!("{shown}: run {id} vanished"))?,
            None => {
                let labels = index.labels()?;
                if labels.is_empty() {
                    bail!(
                        "no snapshot is labelled {spec:?} (no run has a label yet; pin one with `vouch scan ROOT --label NAME`)"
                    );
                }
                bail!(
                    "no snapshot is labelled {spec:?}; known labels: {}",
                    labels.join(", ")
                );
            }
        }
    };
    if run.merkle_root.is_none() || run.root.is_none() || run.finished_at.is_none() {
        bail!(
            "{shown} (run {}, {}, status {}) did not finish a scan, so it is not a snapshot",
            run.id,
            run.command,
            run.status
        );
    }
    Ok(run)
}

/// Builds the source for a finished scan run.
pub fn run_source(index: &Index, run: &Run, kind: &str) -> Result<Source> {
    let root_bytes = run.root.clone().unwrap_or_default();
    let root_id = index.root_id_of_bytes(&root_bytes)?;
    let mut unsettled = BTreeMap::new();
    for (path, kind, detail) in index.unsettled_of_run(run.id)? {
        let detail = match (kind, detail) {
            (Kind::Corrupt, Some(d)) => format!("content changed on disk: {d}"),
            (_, Some(d)) => d,
            (_, None) => "could not be read".into(),
        };
        unsettled.insert(path, Unsettled { kind, detail });
    }
    // A file with no content hash would make equal roots prove nothing
    // about it. Scans never store one today; refuse to trust one anyway.
    let unhashed = index.has_unhashed(root_id, run.id)?;
    let (total_files, total_dirs) = run_totals(index, run, root_id)?;
    let mut describe = Map::new();
    describe.insert("kind".into(), json!(kind));
    describe.insert("root".into(), json!(paths::escape_bytes(&root_bytes)));
    describe.insert("run".into(), json!(run.id));
    if let Some(l) = &run.label {
        describe.insert("label".into(), json!(l));
    }
    if let Some(h) = &run.merkle_root {
        describe.insert("merkle_root".into(), json!(hex::encode(h)));
    }
    if let Some(t) = run.finished_at {
        describe.insert("taken".into(), json!(format_time(t)));
    }
    Ok(Source {
        describe,
        data: Data::Run {
            root_id,
            run_id: run.id,
            excludes: Box::new(stored_excludes(run)?),
        },
        merkle_root: run.merkle_root,
        has_dir_hashes: true,
        files_only: false,
        unhashed,
        unsettled,
        total_files,
        total_dirs,
    })
}

/// The excludes the scan of `run` applied, from its stored summary.
fn stored_excludes(run: &Run) -> Result<Excludes> {
    let rules = run
        .summary
        .as_deref()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|v| v.get("exclude_rules").cloned());
    match rules {
        Some(r) => Excludes::from_json(&r),
        None => Ok(Excludes::default()),
    }
}

/// Files (with symlinks) and directories of a run's manifest, ROOT
/// excluded: from the run's scan summary when it has them (free), else
/// counted in the index.
fn run_totals(index: &Index, run: &Run, root_id: i64) -> Result<(u64, u64)> {
    let from_summary = run
        .summary
        .as_deref()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|v| {
            let files = v.get("files")?.as_u64()?;
            let dirs = v.get("dirs")?.as_u64()?;
            let unreadable = v.get("unreadable")?.as_u64()?;
            // Unreadable entries make the walk's counts and the stored rows
            // differ; count the rows then.
            (unreadable == 0).then_some((files, dirs.saturating_sub(1)))
        });
    if let Some(t) = from_summary {
        return Ok(t);
    }
    index.count_at_run(root_id, run.id)
}

/// The path a manifest source was read from, for messages.
pub fn manifest_describe(path: &std::path::Path, format: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("kind".into(), json!("manifest"));
    m.insert("path".into(), json!(path.display().to_string()));
    m.insert("format".into(), json!(format));
    m
}
