//! Checks of a set of files that only make sense together: a pg_dump
//! directory archive (`toc.dat` and the data files it names) and a
//! pg_basebackup (plain directory or tar archives) verified against its
//! `backup_manifest`.
//!
//! A per-file check sees one open file; these need the files around an
//! *anchor* (`toc.dat`, `backup_manifest`). The scan calls them after its
//! per-file pass, for anchors whose directory changed in the run, through
//! [`Dir`]: what the tree holds next to the anchor (sizes from the index,
//! bytes from the file system). Still pure: no index, no terminal.
//!
//! Where a finding goes: a file the anchor names that the tree lacks is
//! reported on the anchor (there is no other path to put it on); a file
//! that is present but disagrees (cut off, wrong size or checksum) is
//! reported on that file, so that fixing it clears it.

use std::io::{self, Read, Seek};

use super::{Format, Level, Verdict};

pub mod manifest;
pub mod pgdir;
mod pgtar;
mod wal;

/// A file opened by a [`Dir`]: read, and seek over what need not be read
/// (a tar member's data when only its header matters).
pub trait ReadSeek: Read + Seek {}

impl<T: Read + Seek> ReadSeek for T {}

/// The files next to an anchor, by path relative to the anchor's directory
/// (`/`-separated).
pub trait Dir {
    /// The size of member `name` as indexed, `None` when the tree lacks it.
    fn size(&self, name: &str) -> Option<u64>;
    /// Every file the tree holds under the anchor's directory (its
    /// subdirectories included), by relative path.
    fn names(&self) -> Vec<String>;
    /// Opens member `name` for reading (the version the index holds: an
    /// implementation refuses a file that changed since it was indexed).
    fn open(&self, name: &str) -> io::Result<Box<dyn ReadSeek + '_>>;
    /// Whether member `name`'s current version was already verified in
    /// full against this anchor (so it need not be read again).
    fn verified(&self, name: &str) -> bool;
}

/// The outcome of a set check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetReport {
    /// `pg_dump-directory` or `pg_basebackup`.
    pub format: Format,
    /// The level applied.
    pub level: Level,
    /// The verdict on the anchor itself (what the tree lacks, the anchor's
    /// own integrity).
    pub anchor: Verdict,
    /// Verdicts on members that were looked at, by relative path: damaged
    /// ones, and sound ones (so that a full verification is not repeated).
    pub members: Vec<(String, Verdict)>,
    /// Bytes read (the anchor included).
    pub bytes_read: u64,
}

/// Names for a list of paths in a detail: the first few, then a count.
pub(super) fn some_names(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

/// Reads `r` to the end in blocks, feeding `f`; returns the bytes read.
pub(super) fn feed(r: &mut dyn Read, mut f: impl FnMut(&[u8])) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(k) => {
                f(&buf[..k]);
                total += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
