//! Walking ROOT: one sorted, never-following pass over the tree.
//!
//! The walk yields entries from one thread, in key order; hashing happens
//! elsewhere, in parallel, and only for what changed. With
//! [`walk_parallel`], directories the walk will soon enter are listed and
//! stat-ed ahead by helper threads (the listing and the `statx` of every
//! entry are most of a no-change rescan), a bounded number of entries
//! ahead, so the one ordered consumer is left with the merge-join and
//! adding threads spreads the system calls. Children are sorted by name so
//! entries come out in the same order as the index's keys (see
//! [`crate::model::paths`]), which lets the scan merge-join the two without
//! holding either in memory. Symlinks are recorded with their target and
//! never followed, so a symlink loop is just two small entries. FIFOs,
//! sockets and devices are skipped and counted: reading one would block or
//! be meaningless.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use crate::engine::exclude::{Excludes, IGNORE_FILE};
use crate::engine::longpath::{self, Kind, Meta};
use crate::model::paths;
use crate::model::{EntryKind, Stat};

/// One thing the walk found.
#[derive(Debug)]
pub enum Item {
    /// A directory, symlink or regular file, with its key under ROOT.
    /// (Its filesystem path is `paths::fs_path(root, &key)`: built only
    /// where it is needed, for a file to hash, not for every entry.)
    Entry {
        key: Vec<u8>,
        kind: EntryKind,
        stat: Stat,
        /// The device id it lies on.
        dev: u64,
        /// The target of a symlink.
        target: Option<Vec<u8>>,
    },
    /// A FIFO, socket or device: skipped.
    Special { key: Vec<u8> },
    /// Something that could not be read (a directory whose listing failed,
    /// an entry that could not be stat-ed).
    Unreadable {
        key: Vec<u8>,
        /// True when the failure hides a directory's contents.
        is_dir: bool,
        error: String,
    },
}

/// Walks `root` in key order, yielding every entry including ROOT itself
/// (key `""`).
///
/// Each directory is listed once and its entries stat-ed relative to the
/// open directory (`fstatat(dirfd, name)`, no path lookup from `/`), then
/// the directory is closed, so deep trees never hold many descriptors
/// open. Directories, links and files deeper than `PATH_MAX` are reached
/// relative to a directory on the way (see [`crate::engine::longpath`]).
///
/// No rules apply: a `.vouchignore` met on the way is an entry like any
/// other. This is the walk of a directory *backup*, whose keys the audit
/// judges by the tree's rules; a copy's own `.vouchignore` must neither
/// hide its files nor, unreadable, end its listing.
pub fn walk(root: &Path) -> Walk {
    walk_parallel_with(root, 1, Excludes::default(), false)
}

/// Like [`walk`], with `threads - 1` helper threads listing directories
/// ahead (none when `threads` is 1), and leaving out what `excludes` (and
/// every `.vouchignore` met on the way, which the walk adds to it)
/// excludes: an excluded entry is not yielded, an excluded directory not
/// entered. The order of the items is the same as [`walk`]'s.
pub fn walk_parallel(root: &Path, threads: usize, excludes: Excludes) -> Walk {
    walk_parallel_with(root, threads, excludes, true)
}

fn walk_parallel_with(root: &Path, threads: usize, excludes: Excludes, ignore_files: bool) -> Walk {
    let mut walk = Walk {
        ignore_files,
        stack: Vec::new(),
        pending: VecDeque::new(),
        ahead: (threads > 1).then(|| Ahead::start(threads - 1, excludes.clone(), ignore_files)),
        excludes,
        excluded: 0,
        error: None,
    };
    match longpath::symlink_metadata(root) {
        Ok(meta) => {
            walk.pending
                .push_back(entry_item(Vec::new(), || root.to_path_buf(), meta));
            walk.descend(Vec::new(), root.to_path_buf());
        }
        Err(e) => walk.pending.push_back(Item::Unreadable {
            key: Vec::new(),
            is_dir: true,
            error: e.to_string(),
        }),
    }
    walk
}

/// A directory's entries, sorted and reversed (so `pop` yields them in
/// order), each with its metadata (not following symlinks).
type Listing = std::io::Result<Vec<(OsString, std::io::Result<Meta>)>>;

fn list(path: &Path) -> Listing {
    let mut entries = longpath::list(path)?;
    entries.sort_unstable_by(|a, b| b.0.cmp(&a.0));
    Ok(entries)
}

/// Entries listed ahead and not yet walked, at most (beyond the directories
/// in flight): bounds the memory the read-ahead holds (~200 bytes each).
const AHEAD_ENTRIES: usize = 32 << 10;

/// The read-ahead: helper threads list the directories the walk will
/// enter, nearest (in walk order) first, while the walk goes on. A helper
/// that lists a directory queues its subdirectories at once, so the
/// read-ahead runs down the tree by itself: it never waits for the walk
/// to enter a directory before listing the ones below it, and directories
/// listed but not entered yet hold no helper back (only the entries they
/// hold, at most [`AHEAD_ENTRIES`], do). A helper queues nothing below a
/// directory the rules in force exclude, nor below one holding a
/// `.vouchignore` (whose rules the walk has not read yet): the walk queues
/// those subdirectories itself when it enters it. What the helpers list is
/// only a cache: the walk lists a directory itself when no helper has.
struct Ahead {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<AheadState>,
    /// A helper waits here for work (or for room).
    work: Condvar,
    /// The walk waits here for a listing in flight.
    done: Condvar,
}

struct AheadState {
    /// Directories to list, by key: the smallest is the nearest.
    pending: BTreeMap<Vec<u8>, PathBuf>,
    /// Listed (`Some`) or being listed (`None`), not yet entered.
    slots: BTreeMap<Vec<u8>, Option<Listing>>,
    /// Entries held by finished listings not yet entered.
    held: usize,
    /// The rules as the walk knows them (see [`Ahead`]).
    excludes: Arc<Excludes>,
    /// Whether a `.vouchignore` stops the helpers (see [`Ahead`]).
    ignore_files: bool,
    stop: bool,
    /// Helpers waiting for work, and whether the walk waits for a
    /// listing: a notification is a system call (std's `Condvar` does not
    /// count its waiters), made only when someone waits.
    idle: usize,
    walk_waits: bool,
}

impl AheadState {
    /// Queues the subdirectories of the directory `key` at `path`, just
    /// listed, unless they are queued, listed or excluded already.
    fn queue_children(
        &mut self,
        key: &[u8],
        path: &Path,
        entries: &[(OsString, std::io::Result<Meta>)],
    ) {
        for (name, meta) in entries {
            if !meta.as_ref().is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let mut sub = Vec::with_capacity(key.len() + 1 + name.len());
            sub.extend_from_slice(key);
            if !sub.is_empty() {
                sub.push(paths::SEP);
            }
            sub.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str()));
            if self.slots.contains_key(&sub)
                || self.pending.contains_key(&sub)
                || self.excludes.excludes(&sub, true)
            {
                continue;
            }
            self.pending.insert(sub, path.join(name));
        }
    }

    /// Whether a helper waits while there is work and room for it.
    fn wants_helpers(&self) -> bool {
        self.idle > 0 && self.held < AHEAD_ENTRIES && !self.pending.is_empty()
    }

    /// Whether a helper that listed `entries` leaves their subdirectories
    /// to the walk (a `.vouchignore` among them, whose rules apply below).
    fn stops_at(&self, entries: &[(OsString, std::io::Result<Meta>)]) -> bool {
        self.ignore_files && entries.iter().any(|(name, _)| name == IGNORE_FILE)
    }
}

impl Ahead {
    fn start(helpers: usize, excludes: Excludes, ignore_files: bool) -> Ahead {
        let shared = Arc::new(Shared {
            state: Mutex::new(AheadState {
                pending: BTreeMap::new(),
                slots: BTreeMap::new(),
                held: 0,
                excludes: Arc::new(excludes),
                ignore_files,
                stop: false,
                idle: 0,
                walk_waits: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
        });
        for _ in 0..helpers {
            let shared = shared.clone();
            // Detached: each ends when the walk is dropped.
            std::thread::spawn(move || helper(&shared));
        }
        Ahead { shared }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AheadState> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The listing of the directory at `key`, if a helper listed it or is
    /// listing it (then waits for it); `None`: the walk lists it itself.
    /// Everything queued before `key` has been passed, and is dropped.
    fn take(&mut self, key: &[u8]) -> Option<Listing> {
        let mut st = self.lock();
        // Keys before this one will never be entered (excluded, or gone).
        let rest = st.slots.split_off(key);
        for listing in std::mem::replace(&mut st.slots, rest)
            .into_values()
            .flatten()
        {
            st.held -= listing.as_ref().map_or(0, Vec::len);
        }
        let rest = st.pending.split_off(key);
        st.pending = rest;
        st.pending.remove(key);
        if !st.slots.contains_key(key) {
            let wake = st.wants_helpers();
            self.unlock_waking(st, wake);
            return None;
        }
        loop {
            match st.slots.get(key) {
                Some(Some(_)) => {
                    let listing = st.slots.remove(key).flatten();
                    if let Some(Ok(l)) = &listing {
                        st.held -= l.len();
                    }
                    // Room again for helpers that waited for it.
                    let wake = st.wants_helpers();
                    self.unlock_waking(st, wake);
                    return listing;
                }
                Some(None) => {
                    st.walk_waits = true;
                    st = self.shared.done.wait(st).unwrap_or_else(|e| e.into_inner());
                    st.walk_waits = false;
                }
                None => return None,
            }
        }
    }

    /// The walk entered the directory `key`: queues its subdirectories
    /// when no helper did (the walk listed it, or a `.vouchignore` in it
    /// stopped the helpers; `excludes` then holds its rules).
    fn entered(
        &mut self,
        key: &[u8],
        path: &Path,
        entries: &[(OsString, std::io::Result<Meta>)],
        by_helper: bool,
        excludes: &Excludes,
    ) {
        let mut st = self.lock();
        let stopped = st.stops_at(entries);
        if by_helper && !stopped {
            return;
        }
        if stopped {
            st.excludes = Arc::new(excludes.clone());
        }
        st.queue_children(key, path, entries);
        let wake = st.idle > 0;
        self.unlock_waking(st, wake);
    }

    /// Unlocks the state, then wakes the waiting helpers when `wake`
    /// (after the unlock, so they do not wake into a held lock).
    fn unlock_waking(&self, st: std::sync::MutexGuard<'_, AheadState>, wake: bool) {
        drop(st);
        if wake {
            self.shared.work.notify_all();
        }
    }
}

/// A helper thread: lists the nearest queued directory while the entries
/// held leave room, and queues its subdirectories.
fn helper(shared: &Shared) {
    let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if st.stop {
            return;
        }
        if st.held >= AHEAD_ENTRIES || st.pending.is_empty() {
            st.idle += 1;
            st = shared.work.wait(st).unwrap_or_else(|e| e.into_inner());
            st.idle -= 1;
            continue;
        }
        let Some((key, path)) = st.pending.pop_first() else {
            continue;
        };
        st.slots.insert(key.clone(), None);
        drop(st);
        let listing = list(&path);
        st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(entries) = &listing
            && !st.stops_at(entries)
        {
            st.queue_children(&key, &path, entries);
        }
        // Gone when the walk passed it meanwhile.
        if st.slots.contains_key(&key) {
            if let Ok(l) = &listing {
                st.held += l.len();
            }
            st.slots.insert(key, Some(listing));
            if st.walk_waits {
                shared.done.notify_all();
            }
        }
        if st.wants_helpers() {
            shared.work.notify_one();
        }
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        // Stops the helpers once the listings in flight are done.
        self.lock().stop = true;
        self.shared.work.notify_all();
    }
}

/// The iterator [`walk`] returns.
pub struct Walk {
    /// Open directories, innermost last, with their remaining entries
    /// (sorted, reversed so `pop` yields them in order).
    stack: Vec<Level>,
    /// Items ready to be yielded before anything else.
    pending: VecDeque<Item>,
    /// Directories listed ahead by helper threads, if any.
    ahead: Option<Ahead>,
    excludes: Excludes,
    /// Whether `.vouchignore` files met on the way add to `excludes`.
    ignore_files: bool,
    excluded: u64,
    /// A `.vouchignore` that could not be read or parsed: the walk stops.
    error: Option<anyhow::Error>,
}

struct Level {
    key: Vec<u8>,
    path: PathBuf,
    entries: Vec<(OsString, std::io::Result<Meta>)>,
}

impl Walk {
    /// Lists a directory and queues its entries, or an `Unreadable` item.
    fn descend(&mut self, key: Vec<u8>, path: PathBuf) {
        let (listing, by_helper) = match self.ahead.as_mut().and_then(|a| a.take(&key)) {
            Some(listing) => (listing, true),
            None => (list(&path), false),
        };
        match listing {
            Ok(entries) => {
                if self.ignore_files
                    && entries.iter().any(|(name, _)| name == IGNORE_FILE)
                    && let Err(e) = self.excludes.load_dir(&key, &path)
                {
                    self.error = Some(e);
                    self.stack.clear();
                    return;
                }
                if let Some(ahead) = self.ahead.as_mut() {
                    ahead.entered(&key, &path, &entries, by_helper, &self.excludes);
                }
                self.stack.push(Level { key, path, entries });
            }
            Err(e) => self.pending.push_back(Item::Unreadable {
                key,
                is_dir: true,
                error: e.to_string(),
            }),
        }
    }
}

impl Walk {
    /// The rules in force, `.vouchignore` files met so far included.
    pub fn excludes(&self) -> &Excludes {
        &self.excludes
    }

    /// Entries left out so far (an excluded directory counts once).
    pub fn excluded(&self) -> u64 {
        self.excluded
    }

    /// Ends the walk: the rules it found, or the error that stopped it.
    pub fn finish(self) -> anyhow::Result<Excludes> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.excludes),
        }
    }
}

impl Iterator for Walk {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            let level = self.stack.last_mut()?;
            let Some((name, meta)) = level.entries.pop() else {
                self.stack.pop();
                continue;
            };
            let name_bytes = std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str());
            // Sized once: a clone of the parent's key grown by the name
            // reallocated for every entry.
            let mut key = Vec::with_capacity(level.key.len() + 1 + name_bytes.len());
            key.extend_from_slice(&level.key);
            if !key.is_empty() {
                key.push(paths::SEP);
            }
            key.extend_from_slice(name_bytes);
            if !self.excludes.is_empty() {
                let is_dir = meta.as_ref().is_ok_and(|m| m.is_dir());
                if self.excludes.excludes(&key, is_dir) {
                    self.excluded += 1;
                    continue;
                }
            }
            let meta = match meta {
                Ok(m) => m,
                Err(e) => {
                    return Some(Item::Unreadable {
                        key,
                        is_dir: false,
                        error: e.to_string(),
                    });
                }
            };
            // Only a directory entered and a symlink read need the full
            // path; a file's is built by whoever hashes it.
            if meta.is_dir() {
                let path = level.path.join(&name);
                let item = entry_item(key.clone(), || unreachable!(), meta);
                self.descend(key, path);
                return Some(item);
            }
            let dir = &level.path;
            return Some(entry_item(key, || dir.join(&name), meta));
        }
    }
}

/// The item of an entry; `path` is called only for a symlink, to read it.
fn entry_item(key: Vec<u8>, path: impl FnOnce() -> PathBuf, meta: Meta) -> Item {
    let (kind, target) = match meta.kind {
        Kind::Dir => (EntryKind::Dir, None),
        Kind::File => (EntryKind::File, None),
        Kind::Symlink => match longpath::read_link(&path()) {
            Ok(t) => (EntryKind::Symlink, Some(t)),
            Err(e) => {
                return Item::Unreadable {
                    key,
                    is_dir: false,
                    error: e.to_string(),
                };
            }
        },
        // FIFOs, sockets, block and character devices.
        Kind::Other => return Item::Special { key },
    };
    let mut stat = meta.stat;
    if kind == EntryKind::Dir {
        // A directory's own size and times change with its contents; only
        // its existence and its Merkle hash matter.
        stat = Stat {
            inode: stat.inode,
            ..Stat::default()
        };
    } else if kind == EntryKind::Symlink {
        stat.size = target.as_ref().map_or(0, |t| t.len() as u64);
    }
    Item::Entry {
        key,
        kind,
        stat,
        dev: meta.dev,
        target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(items: &mut dyn Iterator<Item = Item>) -> Vec<String> {
        items
            .map(|item| match item {
                Item::Entry {
                    key,
                    kind,
                    stat,
                    target,
                    ..
                } => format!(
                    "{} {kind:?} {} {} {:?}",
                    paths::display(&key),
                    stat.size,
                    stat.inode,
                    target
                ),
                Item::Special { key } => format!("{} special", paths::display(&key)),
                Item::Unreadable { key, is_dir, .. } => {
                    format!("{} unreadable {is_dir}", paths::display(&key))
                }
            })
            .collect()
    }

    /// The helpers list ahead down the tree by themselves; the rules of a
    /// `.vouchignore` they have not read yet (the walk reads it when it
    /// enters its directory) and the command line's must leave exactly
    /// what the walk on one thread leaves, deep below as near.
    #[test]
    fn listing_ahead_keeps_the_rules_of_every_vouchignore() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for a in 0..12 {
            for b in ["skip", "keep", "logs"] {
                for c in 0..3 {
                    let d = root.join(format!("d{a:02}/{b}/e{c}/f"));
                    std::fs::create_dir_all(&d).unwrap();
                    for (i, ext) in ["txt", "log", "bin"].iter().enumerate() {
                        std::fs::write(d.join(format!("x{i}.{ext}")), b"x").unwrap();
                        std::fs::write(d.join(format!("../y{i}.{ext}")), b"y").unwrap();
                    }
                }
            }
        }
        std::fs::write(root.join(IGNORE_FILE), "*.log\nskip/\n").unwrap();
        // Deeper rules override: skip/ comes back below d03, and below
        // d05/keep/e1 the .txt files and a directory go.
        std::fs::write(root.join("d03").join(IGNORE_FILE), "!skip/\n").unwrap();
        std::fs::write(root.join("d05/keep/e1").join(IGNORE_FILE), "*.txt\nf/\n").unwrap();
        std::fs::write(root.join("d09/logs/e2/f").join(IGNORE_FILE), "*\n").unwrap();
        let rules = || {
            Excludes::new(&crate::engine::exclude::ExcludeRules {
                exclude: vec!["d07/".into(), "e0/*.bin".into()],
                include: Vec::new(),
                exclude_from: Vec::new(),
            })
            .unwrap()
        };
        let run = |threads| {
            let mut w = walk_parallel(root, threads, rules());
            let items = summary(&mut w);
            (items, w.excluded())
        };
        let (sequential, excluded) = run(1);
        assert!(sequential.len() > 300, "{}", sequential.len());
        assert!(
            sequential
                .iter()
                .any(|s| s.starts_with("d03/skip/e1/f/x0.txt "))
        );
        assert!(!sequential.iter().any(|s| s.starts_with("d04/skip")));
        assert!(!sequential.iter().any(|s| s.starts_with("d05/keep/e1/f ")));
        assert!(sequential.iter().any(|s| s.starts_with("d05/keep/e2/f ")));
        assert!(!sequential.iter().any(|s| s.starts_with("d09/logs/e2/f/x")));
        for threads in [2, 3, 8] {
            assert_eq!(
                run(threads),
                (sequential.clone(), excluded),
                "{threads} threads"
            );
        }
    }

    #[test]
    fn listing_ahead_yields_exactly_the_sequential_walk() {
        // Wide and deep enough that the read-ahead bounds (directories in
        // flight, entries held) are reached many times over.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for a in 0..40 {
            for b in 0..(a % 7) {
                let d = root.join(format!("d{a:02}/e{b}"));
                std::fs::create_dir_all(&d).unwrap();
                for f in 0..(a * 3 % 11) {
                    std::fs::write(d.join(format!("f{f}")), vec![b'x'; f]).unwrap();
                }
            }
            std::fs::write(root.join(format!("d{a:02}.txt")), b"between").unwrap();
        }
        std::fs::create_dir_all(root.join("deep/a/b/c/d/e/f")).unwrap();
        std::os::unix::fs::symlink("d01", root.join("link-to-dir")).unwrap();
        std::os::unix::fs::symlink("nowhere", root.join("d03/dangling")).unwrap();
        let fifo = root.join("d05/pipe");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let sequential = summary(&mut walk(root));
        assert!(sequential.len() > 300, "{}", sequential.len());
        for threads in [2, 3, 8] {
            assert_eq!(
                summary(&mut walk_parallel(root, threads, Excludes::default())),
                sequential,
                "{threads} threads"
            );
        }
    }
}
