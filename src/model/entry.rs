//! Manifest entries and runs: the plain data the index stores and every
//! stage passes around.
//!
//! These types live here, below everything, so that the walk, the hasher
//! and the store can share them without importing each other.

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

/// The kind of a manifest entry, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    File = 0,
    Symlink = 1,
    Dir = 2,
}

impl EntryKind {
    pub fn from_i64(v: i64) -> Result<EntryKind> {
        Ok(match v {
            0 => EntryKind::File,
            1 => EntryKind::Symlink,
            2 => EntryKind::Dir,
            other => bail!("index holds an entry of unknown kind {other}"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Symlink => "symlink",
            EntryKind::Dir => "dir",
        }
    }
}

/// The metadata a scan compares to decide whether a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
}

impl Stat {
    /// The stat fields vouch compares, from any metadata.
    pub fn of(meta: &std::fs::Metadata) -> Stat {
        use std::os::unix::fs::MetadataExt;
        Stat {
            size: meta.len(),
            mtime_ns: super::time::unix_ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: super::time::unix_ns(meta.ctime(), meta.ctime_nsec()),
            inode: meta.ino(),
        }
    }

    /// The mtime's whole seconds since the epoch (any date; see
    /// [`crate::model::time::unix_ns`]).
    pub fn mtime_secs(&self) -> i64 {
        super::time::unix_secs(self.mtime_ns)
    }

    /// The ctime's whole seconds since the epoch.
    pub fn ctime_secs(&self) -> i64 {
        super::time::unix_secs(self.ctime_ns)
    }
}

/// One manifest row.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub path: Vec<u8>,
    pub kind: EntryKind,
    pub stat: Stat,
    pub blake3: Option<[u8; 32]>,
    pub md5: Option<[u8; 16]>,
    pub sha256: Option<[u8; 32]>,
    pub target: Option<Vec<u8>>,
    pub since_run: i64,
    /// Set only while the file is *rotted*: its content (`blake3`) changed
    /// while its size and mtime did not. This is the hash it had before,
    /// the one to trust; it stays until the file is rewritten (size or
    /// mtime change) or its content comes back.
    pub trusted_blake3: Option<[u8; 32]>,
    /// The CRC64NVME of the bytes whose BLAKE3 is `blake3` (S3's default
    /// checksum), computed in the scan's one read: a HEAD proves the
    /// object later without a second read. In the row, not in the
    /// `content_digests` cache keyed by BLAKE3: rows are written in path
    /// order, so the scan appends instead of rewriting random pages.
    pub crc64nvme: Option<[u8; 8]>,
}

/// What a scan learned about one path, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub path: Vec<u8>,
    pub kind: EntryKind,
    pub stat: Stat,
    pub blake3: Option<[u8; 32]>,
    pub md5: Option<[u8; 16]>,
    pub sha256: Option<[u8; 32]>,
    pub target: Option<Vec<u8>>,
    /// See [`Entry::trusted_blake3`].
    pub trusted_blake3: Option<[u8; 32]>,
    /// See [`Entry::crc64nvme`].
    pub crc64nvme: Option<[u8; 8]>,
}

/// A past or running run, as `history` lists it.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: i64,
    pub root: Option<Vec<u8>>,
    pub command: String,
    pub remote: Option<String>,
    pub label: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub status: String,
    pub exit_code: Option<i64>,
    pub merkle_root: Option<[u8; 32]>,
    pub summary: Option<String>,
}

/// One entry of a snapshot or manifest. For a directory, `blake3` is its
/// Merkle hash and `size` the total bytes of regular files below.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub key: Vec<u8>,
    pub kind: EntryKind,
    /// Unknown in checksum lists (b3sum/sha256sum lines carry no size).
    pub size: Option<u64>,
    pub blake3: Option<[u8; 32]>,
    pub sha256: Option<[u8; 32]>,
    pub md5: Option<[u8; 16]>,
    pub target: Option<Vec<u8>>,
    /// The metadata the scan saw (snapshots only): lets export trust a
    /// file it links or copies without reading it again.
    pub stat: Option<Stat>,
}

impl Node {
    /// The `local`/`remote` object of a finding.
    pub fn describe(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), json!(self.kind.name()));
        if let Some(s) = self.size {
            m.insert("size".into(), json!(s));
        }
        let hash_name = if self.kind == EntryKind::Dir {
            "merkle"
        } else {
            "blake3"
        };
        if let Some(h) = &self.blake3 {
            m.insert(hash_name.into(), json!(hex::encode(h)));
        }
        if let Some(h) = &self.sha256 {
            m.insert("sha256".into(), json!(hex::encode(h)));
        }
        if let Some(t) = &self.target {
            m.insert("target".into(), json!(crate::model::paths::escape_bytes(t)));
        }
        Value::Object(m)
    }
}
