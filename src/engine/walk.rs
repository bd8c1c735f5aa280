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
//! [`crate::paths`]), which lets the scan merge-join the two without
//! holding either in memory. Symlinks are recorded with their target and
//! never followed, so a symlink loop is just two small entries. FIFOs,
//! sockets and devices are skipped and counted: reading one would block or
//! be meaningless.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};

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
        ahead: (threads > 1).then(|| Ahead::start(threads - 1)),
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
/// Directories listed ahead at once, per helper thread.
const AHEAD_DIRS_PER_THREAD: usize = 4;

/// One directory being listed ahead.
struct Slot {
    listing: Mutex<Option<Listing>>,
    done: Condvar,
}

/// The read-ahead: helper threads list the subdirectories of directories
/// the walk has entered, nearest first, while the walk goes on.
struct Ahead {
    jobs: Option<mpsc::Sender<(PathBuf, Arc<Slot>)>>,
    /// Listed or being listed, not yet entered, by key.
    slots: HashMap<Vec<u8>, Arc<Slot>>,
    /// Subdirectories seen and not yet sent, about in walk order.
    candidates: VecDeque<(Vec<u8>, PathBuf)>,
    /// Entries held by finished listings not yet entered.
    held: Arc<AtomicUsize>,
    max_dirs: usize,
    /// The key of the directory the walk entered last: candidates at or
    /// before it have been passed.
    position: Vec<u8>,
}

impl Ahead {
    fn start(helpers: usize) -> Ahead {
        let (tx, rx) = mpsc::channel::<(PathBuf, Arc<Slot>)>();
        let rx = Arc::new(Mutex::new(rx));
        let held = Arc::new(AtomicUsize::new(0));
        for _ in 0..helpers {
            let (rx, held) = (rx.clone(), held.clone());
            // Detached: each ends when the walk drops the sender.
            std::thread::spawn(move || {
                loop {
                    let job = rx
                        .lock()
                        .map_err(|_| ())
                        .and_then(|r| r.recv().map_err(|_| ()));
                    let Ok((path, slot)) = job else { break };
                    let listing = list(&path);
                    if let Ok(l) = &listing {
                        held.fetch_add(l.len(), Ordering::Relaxed);
                    }
                    if let Ok(mut out) = slot.listing.lock() {
                        *out = Some(listing);
                    }
                    slot.done.notify_all();
                }
            });
        }
        Ahead {
            jobs: Some(tx),
            slots: HashMap::new(),
            candidates: VecDeque::new(),
            held,
            max_dirs: helpers * AHEAD_DIRS_PER_THREAD,
            position: Vec::new(),
        }
    }

    /// The listing of the directory at `key`, if it was listed ahead
    /// (waits for it when it is still being listed).
    fn take(&mut self, key: &[u8]) -> Option<Listing> {
        self.position = key.to_vec();
        let slot = self.slots.remove(key)?;
        let mut guard = slot.listing.lock().ok()?;
        while guard.is_none() {
            guard = slot.done.wait(guard).ok()?;
        }
        let listing = guard.take()?;
        if let Ok(l) = &listing {
            self.held.fetch_sub(l.len(), Ordering::Relaxed);
        }
        Some(listing)
    }

    /// Queues the subdirectories of a directory just entered, to be listed
    /// before those queued earlier (the walk enters them first), and sends
    /// what the bounds allow.
    fn entered(&mut self, key: &[u8], path: &Path, entries: &[(OsString, std::io::Result<Meta>)]) {
        // `entries` is reversed: pushing each to the front leaves them in
        // walk order.
        for (name, meta) in entries {
            if meta.as_ref().is_ok_and(|m| m.is_dir()) {
                let mut sub = key.to_vec();
                if !sub.is_empty() {
                    sub.push(paths::SEP);
                }
                sub.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str()));
                self.candidates.push_front((sub, path.join(name)));
            }
        }
        self.send();
    }

    fn send(&mut self) {
        while self.slots.len() < self.max_dirs && self.held.load(Ordering::Relaxed) < AHEAD_ENTRIES
        {
            let Some((key, path)) = self.candidates.pop_front() else {
                break;
            };
            if key <= self.position {
                continue;
            }
            let slot = Arc::new(Slot {
                listing: Mutex::new(None),
                done: Condvar::new(),
            });
            let Some(jobs) = &self.jobs else { break };
            if jobs.send((path, slot.clone())).is_err() {
                break;
            }
            self.slots.insert(key, slot);
        }
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        // Stops the helpers once the listings in flight are done.
        self.jobs.take();
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
        let listing = match self.ahead.as_mut().and_then(|a| a.take(&key)) {
            Some(listing) => listing,
            None => list(&path),
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
                    ahead.entered(&key, &path, &entries);
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

    fn summary(items: impl Iterator<Item = Item>) -> Vec<String> {
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
        let sequential = summary(walk(root));
        assert!(sequential.len() > 300, "{}", sequential.len());
        for threads in [2, 3, 8] {
            assert_eq!(
                summary(walk_parallel(root, threads, Excludes::default())),
                sequential,
                "{threads} threads"
            );
        }
    }
}
