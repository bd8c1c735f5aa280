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

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::index::{EntryKind, Stat};
use crate::paths;

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

/// The stat fields vouch compares, from any metadata.
pub fn stat_of(meta: &std::fs::Metadata) -> Stat {
    Stat {
        size: meta.len(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        inode: meta.ino(),
    }
}

/// Walks `root` in key order, yielding every entry including ROOT itself
/// (key `""`).
pub fn walk(root: &Path) -> impl Iterator<Item = Item> + '_ {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by(|a, b| a.file_name().cmp(b.file_name()))
        .into_iter()
        .map(move |res| match res {
            Ok(entry) => classify(root, entry),
            Err(err) => {
                let path = err.path().unwrap_or(root);
                let key = paths::key_of(root, path);
                let is_dir = err.io_error().is_some()
                    && std::fs::symlink_metadata(path)
                        .map(|m| m.is_dir())
                        .unwrap_or(false);
                let error = match err.io_error() {
                    Some(io) => io.to_string(),
                    None => err.to_string(),
                };
                Item::Unreadable { key, is_dir, error }
            }
        })
}

fn classify(root: &Path, entry: walkdir::DirEntry) -> Item {
    let key = paths::key_of(root, entry.path());
    let meta = match entry.metadata() {
        Ok(m) => m,
        Err(e) => {
            return Item::Unreadable {
                key,
                is_dir: false,
                error: e.to_string(),
            };
        }
    };
    let ft = meta.file_type();
    let (kind, target) = if ft.is_dir() {
        (EntryKind::Dir, None)
    } else if ft.is_file() {
        (EntryKind::File, None)
    } else if ft.is_symlink() {
        use std::os::unix::ffi::OsStrExt;
        match std::fs::read_link(entry.path()) {
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
    let mut stat = stat_of(&meta);
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
        path: entry.into_path(),
        kind,
        stat,
        target,
    }
}
