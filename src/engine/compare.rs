//! `vouch diff A B`: compare two trees, snapshots or manifests, and prove
//! them identical with as little reading as possible.
//!
//! Each operand becomes a [`Source`] (see [`crate::engine::snapshot`]): a directory
//! is first scanned incrementally into the index (through [`crate::engine::scan::scan`],
//! so only changed files are hashed) and read back as the snapshot of that
//! scan; `@NAME`/`@N` is a pinned snapshot; a file is an exported manifest.
//!
//! The comparison, cheapest first:
//!
//! 1. **Roots.** Two sources whose Merkle roots vouch computed (scans, or a
//!    json manifest whose root vouch re-derived) and which have no unsettled
//!    paths (unreadable/corrupt at scan time) and no unhashed files are
//!    identical exactly when their roots are equal. Nothing else is read.
//! 2. **Merkle descent.** Otherwise the two sorted streams are merge-joined
//!    by key. When both sides hold the same directory with the same hash,
//!    and no unsettled path lies inside it, both streams *seek* past its
//!    subtree (`[K\0, K\x01)`): a one-byte change in a 20,000-file tree
//!    reads the directories on the changed path and their direct children,
//!    not the tree.
//! 3. **File by file.** A checksum list (b3sum/sha256sum) has no sizes and
//!    no directories, so it is compared entry by entry with the hash it
//!    has; the other side's directories and symlinks are ignored (counted),
//!    since such a list cannot name them.
//!
//! Content is equal only when every hash both sides know is equal and they
//! share at least one; a pair with no shared hash is `unverified`, and in a
//! diff that is *not* identical (exit 1): vouch never says two files match
//! without a hash of each.
//!
//! Findings: `missing` (in A, not in B), `extra` (in B, not in A),
//! `size_mismatch`, `corrupt` (same size or unknown size, other content;
//! also a file on one side and a symlink on the other, or symlinks with
//! different targets), `moved` (a missing and an extra file with the same
//! non-empty content: one finding at B's path, detail `from A's path`),
//! `unreadable` (a path the scan behind a snapshot could not read), and
//! `unverified`. Missing and extra files are held back until the end so
//! they can be paired into moves; that buffer grows with the number of
//! missing/extra files only. A missing or extra directory is reported only
//! when it is empty; otherwise its contents are. `local` describes A and
//! `remote` B.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use anyhow::Result;
use serde_json::{Map, Value, json};

use crate::engine::snapshot::{Cursor, Source, past_subtree};
use crate::model::{EntryKind, Finding, Kind, Node, paths};
use crate::out::{Progress, Sink};
use crate::store::Index;

/// How the two sides are named in details (`A`/`B`, or for verify
/// `the manifest`/`the tree`).
#[derive(Debug, Clone, Copy)]
pub struct Names {
    pub a: &'static str,
    pub b: &'static str,
}

pub const AB: Names = Names { a: "A", b: "B" };

#[derive(Debug, Clone)]
pub struct CompareOptions {
    pub names: Names,
    /// A key to leave out on both sides: a manifest file that lives in the
    /// tree it describes is not `extra` in the tree, and the line it may
    /// hold for itself (`find . -type f | xargs b3sum > B3SUMS` hashes the
    /// list while it is being written) is not `corrupt` or `missing`.
    pub ignore: Option<Vec<u8>>,
}

/// What a comparison found, with the counters its summary prints.
#[derive(Debug, Clone, Default)]
pub struct DiffSummary {
    pub counts: BTreeMap<Kind, u64>,
    pub decided_by: &'static str,
    pub files_compared: u64,
    pub files_matched: u64,
    pub bytes_matched: u64,
    pub dirs_compared: u64,
    pub subtrees_skipped: u64,
    pub files_skipped: u64,
    pub dirs_skipped: u64,
    pub bytes_skipped: u64,
    pub symlinks_ignored: u64,
    pub dirs_ignored: u64,
    pub files_only: bool,
    pub merkle_unused: Option<&'static str>,
    pub elapsed_ms: u64,
}

/// The kinds every diff/verify summary prints, zero or not.
const SUMMARY_KINDS: [Kind; 7] = [
    Kind::Missing,
    Kind::Extra,
    Kind::SizeMismatch,
    Kind::Corrupt,
    Kind::Moved,
    Kind::Unreadable,
    Kind::Unverified,
];

impl DiffSummary {
    pub fn count(&self, kind: Kind) -> u64 {
        self.counts.get(&kind).copied().unwrap_or(0)
    }

    /// Identical means: no finding of any kind (`unverified` included).
    pub fn identical(&self) -> bool {
        self.counts.values().all(|n| *n == 0)
    }

    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("identical".into(), json!(self.identical()));
        m.insert("decided_by".into(), json!(self.decided_by));
        for kind in SUMMARY_KINDS {
            m.insert(kind.name().into(), json!(self.count(kind)));
        }
        m.insert("files_compared".into(), json!(self.files_compared));
        m.insert("files_matched".into(), json!(self.files_matched));
        m.insert("bytes_matched".into(), json!(self.bytes_matched));
        m.insert("dirs_compared".into(), json!(self.dirs_compared));
        m.insert("subtrees_skipped".into(), json!(self.subtrees_skipped));
        m.insert("dirs_skipped".into(), json!(self.dirs_skipped));
        m.insert("files_skipped".into(), json!(self.files_skipped));
        m.insert("bytes_skipped".into(), json!(self.bytes_skipped));
        if self.files_only {
            m.insert("symlinks_ignored".into(), json!(self.symlinks_ignored));
            m.insert("dirs_ignored".into(), json!(self.dirs_ignored));
        }
        if let Some(why) = self.merkle_unused {
            m.insert("merkle_unused".into(), json!(why));
        }
        m.insert("elapsed_ms".into(), json!(self.elapsed_ms));
        m
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Side {
    A,
    B,
}

/// Compares `a` with `b`, reporting findings to `sink` as they are settled.
pub fn compare(
    a: &Source,
    b: &Source,
    index: Option<&Index>,
    opts: &CompareOptions,
    sink: &mut dyn Sink,
    progress: &dyn Progress,
) -> Result<DiffSummary> {
    let started = Instant::now();
    let mut summary = DiffSummary {
        files_only: a.files_only || b.files_only,
        ..Default::default()
    };

    // 1. Roots.
    if let (Some(ra), Some(rb)) = (a.merkle_root, b.merkle_root)
        && ra == rb
        && a.root_is_proof()
        && b.root_is_proof()
        && opts.ignore.is_none()
    {
        summary.decided_by = "merkle_root";
        summary.subtrees_skipped = 1;
        summary.files_skipped = a.total_files;
        summary.dirs_skipped = a.total_dirs;
        summary.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok(summary);
    }

    // 2./3. Merge-join, descending only where hashes differ.
    let prune = a.has_dir_hashes && b.has_dir_hashes && !a.unhashed && !b.unhashed;
    summary.merkle_unused = if prune {
        None
    } else if summary.files_only {
        Some("a checksum list has no directory hashes")
    } else if a.unhashed || b.unhashed {
        Some("a side has files with no BLAKE3, so directory hashes prove nothing")
    } else {
        Some("a side has no directory hashes")
    };
    summary.decided_by = if prune { "merkle_tree" } else { "entries" };
    progress.begin("comparing");
    let mut engine = Engine {
        a,
        b,
        opts,
        sink,
        summary,
        prune,
        missing: Vec::new(),
        extra: Vec::new(),
        reported: HashSet::new(),
        files_seen_a: 0,
        dirs_seen_a: 0,
    };
    let mut ca = a.cursor(index)?;
    let mut cb = b.cursor(index)?;
    loop {
        progress.advance(1);
        if let Some(skip) = &opts.ignore {
            if ca.peek()?.is_some_and(|n| &n.key == skip) {
                ca.next_node()?;
            }
            if cb.peek()?.is_some_and(|n| &n.key == skip) {
                cb.next_node()?;
            }
        }
        let ka = ca.peek()?.map(|n| n.key.clone());
        let kb = cb.peek()?.map(|n| n.key.clone());
        let min = match (&ka, &kb) {
            (None, None) => break,
            (Some(k), None) | (None, Some(k)) => k.clone(),
            (Some(x), Some(y)) => x.min(y).clone(),
        };
        if let Some((side, u)) = engine.unsettled_covering(&min) {
            engine.report_unsettled(side, &u)?;
            let past = past_subtree(&u);
            ca.seek(&past)?;
            cb.seek(&past)?;
            continue;
        }
        match (&ka, &kb) {
            (Some(x), Some(y)) if x == y => {
                let na = ca.next_node()?.expect("peeked");
                let nb = cb.next_node()?.expect("peeked");
                let a_inside = next_is_inside(&mut ca, &na.key)?;
                let b_inside = next_is_inside(&mut cb, &nb.key)?;
                if engine.both(na, nb, a_inside, b_inside)? {
                    let past = past_subtree(&min);
                    ca.seek(&past)?;
                    cb.seek(&past)?;
                }
            }
            (Some(x), _) if *x == min => {
                let n = ca.next_node()?.expect("peeked");
                let inside = next_is_inside(&mut ca, &n.key)?;
                engine.only(Side::A, n, inside, None)?;
            }
            _ => {
                let n = cb.next_node()?.expect("peeked");
                let inside = next_is_inside(&mut cb, &n.key)?;
                engine.only(Side::B, n, inside, None)?;
            }
        }
    }
    progress.end();
    engine.finish()?;
    let mut summary = engine.summary;
    summary.files_skipped = a.total_files.saturating_sub(engine.files_seen_a);
    summary.dirs_skipped = a.total_dirs.saturating_sub(engine.dirs_seen_a);
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

fn next_is_inside(c: &mut Cursor<'_>, dir: &[u8]) -> Result<bool> {
    Ok(c.peek()?.is_some_and(|n| paths::is_inside(&n.key, dir)))
}

struct Engine<'s> {
    a: &'s Source,
    b: &'s Source,
    opts: &'s CompareOptions,
    sink: &'s mut dyn Sink,
    summary: DiffSummary,
    prune: bool,
    /// Held back for pairing into moves: (node, detail).
    missing: Vec<(Node, Option<String>)>,
    extra: Vec<(Node, Option<String>)>,
    reported: HashSet<(Side, Vec<u8>)>,
    files_seen_a: u64,
    dirs_seen_a: u64,
}

impl Engine<'_> {
    fn name(&self, side: Side) -> &'static str {
        match side {
            Side::A => self.opts.names.a,
            Side::B => self.opts.names.b,
        }
    }

    fn emit(&mut self, f: Finding) -> Result<()> {
        *self.summary.counts.entry(f.kind).or_default() += 1;
        self.sink.finding(&f)
    }

    fn seen(&mut self, side: Side, n: &Node) {
        if side == Side::A {
            if n.kind == EntryKind::Dir {
                self.dirs_seen_a += 1;
            } else {
                self.files_seen_a += 1;
            }
        }
    }

    fn unsettled_covering(&self, key: &[u8]) -> Option<(Side, Vec<u8>)> {
        if let Some((k, _)) = self.a.unsettled_covering(key) {
            return Some((Side::A, k.clone()));
        }
        if let Some((k, _)) = self.b.unsettled_covering(key) {
            return Some((Side::B, k.clone()));
        }
        None
    }

    fn report_unsettled(&mut self, side: Side, key: &[u8]) -> Result<()> {
        if !self.reported.insert((side, key.to_vec())) {
            return Ok(());
        }
        let src = if side == Side::A { self.a } else { self.b };
        let u = src.unsettled.get(key).expect("an unsettled key").clone();
        let f = Finding::new(u.kind, key.to_vec()).detail(format!(
            "{}: {} (not read when the snapshot was taken, so not compared)",
            self.name(side),
            u.detail
        ));
        self.emit(f)
    }

    /// A node only one side has.
    fn only(&mut self, side: Side, n: Node, inside: bool, detail: Option<String>) -> Result<()> {
        self.seen(side, &n);
        let files_only = self.summary.files_only;
        match n.kind {
            EntryKind::Dir if files_only => {
                self.summary.dirs_ignored += 1;
                Ok(())
            }
            EntryKind::Symlink if files_only && detail.is_none() => {
                self.summary.symlinks_ignored += 1;
                Ok(())
            }
            EntryKind::Dir => {
                if inside {
                    return Ok(()); // its contents speak for it
                }
                let detail = detail.unwrap_or_else(|| "an empty directory".into());
                let f = match side {
                    Side::A => Finding::new(Kind::Missing, n.key.clone()).local(n.describe()),
                    Side::B => Finding::new(Kind::Extra, n.key.clone()).remote(n.describe()),
                };
                self.emit(f.detail(detail))
            }
            _ => {
                match side {
                    Side::A => self.missing.push((n, detail)),
                    Side::B => self.extra.push((n, detail)),
                }
                Ok(())
            }
        }
    }

    /// A key both sides have. Returns true when the subtree below it is
    /// proven equal and both streams should skip it.
    fn both(&mut self, a: Node, b: Node, a_inside: bool, b_inside: bool) -> Result<bool> {
        let (na, nb) = (self.opts.names.a, self.opts.names.b);
        match (a.kind, b.kind) {
            (EntryKind::Dir, EntryKind::Dir) => {
                self.seen(Side::A, &a);
                if self.prune
                    && a.blake3.is_some()
                    && a.blake3 == b.blake3
                    && !self.a.unsettled_inside(&a.key)
                    && !self.b.unsettled_inside(&a.key)
                {
                    self.summary.subtrees_skipped += 1;
                    self.summary.bytes_skipped += a.size.unwrap_or(0);
                    return Ok(true);
                }
                self.summary.dirs_compared += 1;
                Ok(false)
            }
            (EntryKind::Dir, _) => {
                let why_b = format!("{na} has a directory here");
                let why_a = format!("{nb} has a {} here", kind_word(&b));
                self.only(Side::B, b, false, Some(why_b))?;
                self.only(Side::A, a, a_inside, Some(why_a))?;
                Ok(false)
            }
            (_, EntryKind::Dir) => {
                let why_a = format!("{nb} has a directory here");
                let why_b = format!("{na} has a {} here", kind_word(&a));
                self.only(Side::A, a, false, Some(why_a))?;
                self.only(Side::B, b, b_inside, Some(why_b))?;
                Ok(false)
            }
            (ka, kb) if ka != kb => {
                self.seen(Side::A, &a);
                let detail = format!("{na} has a {}, {nb} a {}", kind_word(&a), kind_word(&b));
                let f = Finding::new(Kind::Corrupt, a.key.clone())
                    .local(a.describe())
                    .remote(b.describe())
                    .detail(detail);
                self.emit(f)?;
                Ok(false)
            }
            (EntryKind::Symlink, _) => {
                self.seen(Side::A, &a);
                let same = match (&a.target, &b.target) {
                    (Some(x), Some(y)) => Some(x == y),
                    _ => content_eq(&a, &b),
                };
                match same {
                    Some(true) => {}
                    Some(false) => {
                        let detail = format!(
                            "symlink target differs: {na} -> {}, {nb} -> {}",
                            target_shown(&a),
                            target_shown(&b)
                        );
                        let f = Finding::new(Kind::Corrupt, a.key.clone())
                            .local(a.describe())
                            .remote(b.describe())
                            .detail(detail);
                        self.emit(f)?;
                    }
                    None => self.unverified(&a, &b)?,
                }
                Ok(false)
            }
            _ => {
                self.seen(Side::A, &a);
                self.files(&a, &b)?;
                Ok(false)
            }
        }
    }

    fn files(&mut self, a: &Node, b: &Node) -> Result<()> {
        let (na, nb) = (self.opts.names.a, self.opts.names.b);
        self.summary.files_compared += 1;
        if let (Some(sa), Some(sb)) = (a.size, b.size)
            && sa != sb
        {
            let detail = if sb < sa {
                format!("{nb} is shorter (truncated?): {sb} bytes, {na} {sa}")
            } else {
                format!("{nb} is longer: {sb} bytes, {na} {sa}")
            };
            let f = Finding::new(Kind::SizeMismatch, a.key.clone())
                .local(a.describe())
                .remote(b.describe())
                .detail(detail);
            return self.emit(f);
        }
        match content_eq(a, b) {
            Some(true) => {
                self.summary.files_matched += 1;
                self.summary.bytes_matched += a.size.or(b.size).unwrap_or(0);
                Ok(())
            }
            Some(false) => {
                let detail = if a.size.is_some() && b.size.is_some() {
                    "same size, different content".to_string()
                } else {
                    let no_size = if a.size.is_none() { na } else { nb };
                    format!("different content ({no_size} records no size)")
                };
                let f = Finding::new(Kind::Corrupt, a.key.clone())
                    .local(a.describe())
                    .remote(b.describe())
                    .detail(detail);
                self.emit(f)
            }
            None => self.unverified(a, b),
        }
    }

    fn unverified(&mut self, a: &Node, b: &Node) -> Result<()> {
        let (na, nb) = (self.opts.names.a, self.opts.names.b);
        let f = Finding::new(Kind::Unverified, a.key.clone())
            .local(a.describe())
            .remote(b.describe())
            .detail(format!(
                "no hash known on both sides ({na} has {}, {nb} has {}): not compared",
                hash_names(a),
                hash_names(b)
            ));
        self.emit(f)
    }

    /// Pairs moves, then reports what is left, and unsettled paths that
    /// never came up in the join.
    fn finish(&mut self) -> Result<()> {
        let extra = std::mem::take(&mut self.extra);
        let missing = std::mem::take(&mut self.missing);
        let mut by_hash: HashMap<(u8, [u8; 32]), VecDeque<usize>> = HashMap::new();
        for (i, (n, _)) in extra.iter().enumerate() {
            if !movable(n) {
                continue;
            }
            if let Some(h) = n.blake3 {
                by_hash.entry((0, h)).or_default().push_back(i);
            }
            if let Some(h) = n.sha256 {
                by_hash.entry((1, h)).or_default().push_back(i);
            }
        }
        let mut used = vec![false; extra.len()];
        let mut left = Vec::new();
        for (m, detail) in missing {
            let mut partner = None;
            if movable(&m) {
                for probe in [m.blake3.map(|h| (0, h)), m.sha256.map(|h| (1, h))]
                    .into_iter()
                    .flatten()
                {
                    let Some(q) = by_hash.get_mut(&probe) else {
                        continue;
                    };
                    while let Some(i) = q.pop_front() {
                        let e = &extra[i].0;
                        let sizes_agree = m.size.zip(e.size).is_none_or(|(x, y)| x == y);
                        if !used[i] && sizes_agree && content_eq(&m, e) == Some(true) {
                            partner = Some(i);
                            break;
                        }
                    }
                    if partner.is_some() {
                        break;
                    }
                }
            }
            match partner {
                Some(i) => {
                    used[i] = true;
                    let e = &extra[i].0;
                    let f = Finding::new(Kind::Moved, e.key.clone())
                        .local(m.describe())
                        .remote(e.describe())
                        .detail(format!("from {}", paths::display(&m.key)));
                    self.emit(f)?;
                }
                None => left.push((m, detail)),
            }
        }
        let nb = self.opts.names.b;
        let na = self.opts.names.a;
        for (m, detail) in left {
            let f = Finding::new(Kind::Missing, m.key.clone())
                .local(m.describe())
                .detail(detail.unwrap_or_else(|| format!("not in {nb}")));
            self.emit(f)?;
        }
        for (i, (e, detail)) in extra.into_iter().enumerate() {
            if used[i] {
                continue;
            }
            let f = Finding::new(Kind::Extra, e.key.clone())
                .remote(e.describe())
                .detail(detail.unwrap_or_else(|| format!("not in {na}")));
            self.emit(f)?;
        }
        for (side, src) in [(Side::A, self.a), (Side::B, self.b)] {
            let keys: Vec<Vec<u8>> = src.unsettled.keys().cloned().collect();
            for k in keys {
                if !self.reported.contains(&(side, k.clone())) {
                    self.report_unsettled(side, &k)?;
                }
            }
        }
        Ok(())
    }
}

fn kind_word(n: &Node) -> &'static str {
    match n.kind {
        EntryKind::File => "regular file",
        EntryKind::Symlink => "symlink",
        EntryKind::Dir => "directory",
    }
}

fn target_shown(n: &Node) -> String {
    n.target
        .as_deref()
        .map(paths::escape_bytes)
        .unwrap_or_else(|| "?".into())
}

fn hash_names(n: &Node) -> String {
    let mut v = Vec::new();
    if n.blake3.is_some() {
        v.push("blake3");
    }
    if n.sha256.is_some() {
        v.push("sha256");
    }
    if v.is_empty() {
        "no hash".into()
    } else {
        v.join("+")
    }
}

/// Only non-empty regular files pair into moves: every empty file has the
/// same hash, and "moved" would be noise.
fn movable(n: &Node) -> bool {
    n.kind == EntryKind::File
        && n.size != Some(0)
        && n.blake3 != Some(*blake3::hash(b"").as_bytes())
        && n.sha256 != Some(EMPTY_SHA256)
}

/// SHA-256 of no bytes (a checksum list's empty file has no size).
const EMPTY_SHA256: [u8; 32] = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Equal when every hash both nodes have is equal, and they have one.
pub fn content_eq(a: &Node, b: &Node) -> Option<bool> {
    let mut shared = false;
    if let (Some(x), Some(y)) = (a.blake3, b.blake3) {
        if x != y {
            return Some(false);
        }
        shared = true;
    }
    if let (Some(x), Some(y)) = (a.sha256, b.sha256) {
        if x != y {
            return Some(false);
        }
        shared = true;
    }
    shared.then_some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::snapshot::Data;
    use crate::out::Silent;

    fn file(path: &str, size: u64, fill: u8) -> Node {
        Node {
            key: paths::key_from_slash(path.as_bytes()),
            kind: EntryKind::File,
            size: Some(size),
            blake3: Some([fill; 32]),
            sha256: None,
            md5: None,
            target: None,
            stat: None,
        }
    }

    fn source(nodes: Vec<Node>) -> Source {
        let total_files = nodes.len() as u64;
        Source {
            describe: Map::new(),
            data: Data::Memory(nodes),
            merkle_root: None,
            has_dir_hashes: false,
            files_only: false,
            unhashed: false,
            unsettled: Default::default(),
            total_files,
            total_dirs: 0,
        }
    }

    struct Collect(Vec<(String, String, Option<String>)>);
    impl Sink for Collect {
        fn finding(&mut self, f: &Finding) -> Result<()> {
            self.0.push((
                f.kind.name().into(),
                paths::display(&f.path),
                f.detail.clone(),
            ));
            Ok(())
        }
        fn finish(&mut self, _: &Map<String, Value>) -> Result<()> {
            Ok(())
        }
    }

    fn run(a: Vec<Node>, b: Vec<Node>) -> (Vec<(String, String, Option<String>)>, DiffSummary) {
        let mut sink = Collect(Vec::new());
        let opts = CompareOptions {
            names: AB,
            ignore: None,
        };
        let s = compare(&source(a), &source(b), None, &opts, &mut sink, &Silent).unwrap();
        sink.0.sort();
        (sink.0, s)
    }

    #[test]
    fn a_move_is_one_finding_and_empty_files_never_pair() {
        let (f, s) = run(
            vec![file("a/x", 5, 1), file("e1", 0, 9)],
            vec![file("b/x", 5, 1), file("e2", 0, 9)],
        );
        assert_eq!(
            f,
            vec![
                ("extra".into(), "e2".into(), Some("not in A".into())),
                ("missing".into(), "e1".into(), Some("not in B".into())),
                ("moved".into(), "b/x".into(), Some("from a/x".into())),
            ]
        );
        assert!(!s.identical());
    }

    #[test]
    fn no_shared_hash_is_unverified_never_a_match() {
        let mut b = file("f", 5, 1);
        b.blake3 = None;
        b.sha256 = Some([1; 32]);
        let (f, s) = run(vec![file("f", 5, 1)], vec![b]);
        assert_eq!(f[0].0, "unverified");
        assert!(!s.identical());
    }
}
