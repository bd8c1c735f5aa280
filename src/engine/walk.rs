//! Walking ROOT: one sorted, never-following pass over the tree.
//!
//! The walk is single-threaded and only stats; hashing happens elsewhere,
//! in parallel, and only for what changed. Children are sorted by name so
//! entries come out in the same order as the index's keys (see
//! [`crate::paths`]), which lets the scan merge-join the two without
//! holding either in memory. Symlinks are recorded with their target and
//! never followed, so a symlink loop is just two small entries. FIFOs,
//! sockets and devices are skipped and counted: reading one would block or
//! be meaningless.

use std::path::{Path, PathBuf};

use crate::engine::exclude::{Excludes, IGNORE_FILE};
use crate::model::paths;
use crate::model::{EntryKind, Stat};

/// One thing the walk found.
#[derive(Debug)]
pub enum Item {
    /// A directory, symlink or regular file, with its key under ROOT.
    Entry {
        key: Vec<u8>,
        path: PathBuf,
        kind: EntryKind,
        stat: Stat,
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
/// open directory (`statx(dirfd, name)`, no path lookup from `/`), then the
/// directory is closed, so deep trees never hold many descriptors open.
pub fn walk(root: &Path) -> Walk {
    walk_excluding(root, Excludes::default())
}

/// Like [`walk`], leaving out what `excludes` (and every `.vouchignore`
/// met on the way, which the walk adds to it) excludes: an excluded entry
/// is not yielded, an excluded directory not entered.
pub fn walk_excluding(root: &Path, excludes: Excludes) -> Walk {
    let mut walk = Walk {
        stack: Vec::new(),
        pending: std::collections::VecDeque::new(),
        excludes,
        excluded: 0,
        error: None,
    };
    match std::fs::symlink_metadata(root) {
        Ok(meta) => {
            walk.pending
                .push_back(entry_item(Vec::new(), root.to_path_buf(), meta));
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

/// The iterator [`walk`] returns.
pub struct Walk {
    /// Open directories, innermost last, with their remaining entries
    /// (sorted, reversed so `pop` yields them in order).
    stack: Vec<Level>,
    /// Items ready to be yielded before anything else.
    pending: std::collections::VecDeque<Item>,
    excludes: Excludes,
    excluded: u64,
    /// A `.vouchignore` that could not be read or parsed: the walk stops.
    error: Option<anyhow::Error>,
}

struct Level {
    key: Vec<u8>,
    path: PathBuf,
    entries: Vec<(std::ffi::OsString, std::io::Result<std::fs::Metadata>)>,
}

impl Walk {
    /// Lists a directory and queues its entries, or an `Unreadable` item.
    fn descend(&mut self, key: Vec<u8>, path: PathBuf) {
        let listing = std::fs::read_dir(&path).and_then(|rd| {
            rd.map(|e| e.map(|e| (e.file_name(), e.metadata())))
                .collect::<std::io::Result<Vec<_>>>()
        });
        match listing {
            Ok(mut entries) => {
                if entries.iter().any(|(name, _)| name == IGNORE_FILE)
                    && let Err(e) = self.excludes.load_dir(&key, &path)
                {
                    self.error = Some(e);
                    self.stack.clear();
                    return;
                }
                entries.sort_unstable_by(|a, b| b.0.cmp(&a.0));
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
            let mut key = level.key.clone();
            if !key.is_empty() {
                key.push(paths::SEP);
            }
            key.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str()));
            if !self.excludes.is_empty() {
                let is_dir = meta.as_ref().is_ok_and(|m| m.is_dir());
                if self.excludes.excludes(&key, is_dir) {
                    self.excluded += 1;
                    continue;
                }
            }
            let path = level.path.join(&name);
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
            let item = entry_item(key.clone(), path.clone(), meta);
            if let Item::Entry {
                kind: EntryKind::Dir,
                ..
            } = item
            {
                self.descend(key, path);
            }
            return Some(item);
        }
    }
}

fn entry_item(key: Vec<u8>, path: PathBuf, meta: std::fs::Metadata) -> Item {
    let ft = meta.file_type();
    let (kind, target) = if ft.is_dir() {
        (EntryKind::Dir, None)
    } else if ft.is_file() {
        (EntryKind::File, None)
    } else if ft.is_symlink() {
        use std::os::unix::ffi::OsStrExt;
        match std::fs::read_link(&path) {
            Ok(t) => (EntryKind::Symlink, Some(t.as_os_str().as_bytes().to_vec())),
            Err(e) => {
                return Item::Unreadable {
                    key,
                    is_dir: false,
                    error: e.to_string(),
                };
            }
        }
    } else {
        // FIFOs, sockets, block and character devices.
        return Item::Special { key };
    };
    let mut stat = Stat::of(&meta);
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
        path,
        kind,
        stat,
        target,
    }
}
