//! Content hashing: BLAKE3 always, MD5 and SHA-256 on request.
//!
//! Small files are read into a per-thread buffer (parallelism comes from
//! hashing many files at once); large files are read in big chunks, each
//! hashed with BLAKE3's multi-threaded `update_rayon`. Reads are used
//! rather than mmap so that a file truncated while it is hashed gives a
//! short read, which we detect, instead of a SIGBUS that would kill the
//! run (live database folders truncate files routinely).
//!
//! A hash is only ever returned for bytes that were fully read from one
//! unchanged file: the file's metadata is taken before and after hashing
//! from the open descriptor, and any difference (size, mtime, ctime,
//! inode, or a byte count other than the size) retries, then fails as
//! "changed while being hashed". A stored hash is never a guess.
//!
//! The path may have been swapped since the walk: it is opened without
//! following a symlink and without blocking on a FIFO, and must still be a
//! regular file. At most one byte more than its size is read, so a file
//! that grows faster than it is read cannot hold the scan.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use md5::Digest as _;

use crate::model::Stat;

/// Which digests to compute beside BLAKE3.
#[derive(Debug, Clone, Copy, Default)]
pub struct Want {
    pub md5: bool,
    pub sha256: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub blake3: [u8; 32],
    pub md5: Option<[u8; 16]>,
    pub sha256: Option<[u8; 32]>,
}

#[derive(Debug)]
pub enum HashError {
    /// The file disappeared between the walk and the read.
    Vanished,
    /// The file kept changing while it was read.
    Changed,
    /// The path is no longer a regular file (replaced by a symlink, a FIFO
    /// or a device since the walk): never opened through, never read.
    NotAFile,
    Io(io::Error),
}

impl std::fmt::Display for HashError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HashError::Vanished => f.write_str("vanished during the scan"),
            HashError::Changed => f.write_str("changed while being hashed"),
            HashError::NotAFile => {
                f.write_str("no longer a regular file (replaced during the scan)")
            }
            HashError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Files at least this large are hashed with multi-threaded BLAKE3.
const LARGE_FILE: u64 = 8 << 20;
const SMALL_CHUNK: usize = 256 << 10;
const LARGE_CHUNK: usize = 8 << 20;
const ATTEMPTS: usize = 3;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn open_for_hashing(path: &Path) -> io::Result<File> {
    // The walk saw a regular file, but the path may have been swapped
    // since: O_NOFOLLOW refuses a symlink (to /dev/zero, out of the tree),
    // O_NONBLOCK keeps the open of a FIFO from blocking for ever (the
    // caller then checks the type). O_NOATIME keeps the scan from touching
    // access times; it is refused for files we do not own, so fall back
    // without it.
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags | libc_o_noatime())
        .open(path)
    {
        Ok(f) => Ok(f),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path),
        Err(e) => Err(e),
    }
}

const fn libc_o_noatime() -> i32 {
    if cfg!(target_os = "linux") {
        libc::O_NOATIME
    } else {
        0
    }
}

/// Hashes the regular file at `path`; returns the metadata the hash belongs
/// to and the digests.
pub fn hash_file(path: &Path, want: Want) -> Result<(Stat, Digests), HashError> {
    hash_file_then(path, want, |_, _| ()).map(|(stat, digests, _)| (stat, digests))
}

/// Like [`hash_file`], then runs `after` on the same open file (with its
/// size) once the hash is proven: the structural checks look at exactly
/// the version that was hashed, while its pages are still in the cache.
/// `after`'s result is dropped (`None`) when the file changed meanwhile.
pub fn hash_file_then<T>(
    path: &Path,
    want: Want,
    mut after: impl FnMut(&mut File, u64) -> T,
) -> Result<(Stat, Digests, Option<T>), HashError> {
    for _ in 0..ATTEMPTS {
        let file = match open_for_hashing(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(HashError::Vanished),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(HashError::NotAFile),
            Err(e) => return Err(HashError::Io(e)),
        };
        let meta = file.metadata().map_err(HashError::Io)?;
        if !meta.is_file() {
            return Err(HashError::NotAFile);
        }
        let before = Stat::of(&meta);
        // Read at most one byte more than the size: enough to see growth,
        // and a file growing faster than it is read cannot keep us here.
        let mut bounded = (&file).take(before.size.saturating_add(1));
        let (digests, read) =
            hash_reader(&mut bounded, before.size, want).map_err(HashError::Io)?;
        let now = Stat::of(&file.metadata().map_err(HashError::Io)?);
        if before == now && read == before.size {
            let mut file = file;
            let extra = after(&mut file, before.size);
            let still = file
                .metadata()
                .map(|m| Stat::of(&m) == before)
                .unwrap_or(false);
            return Ok((before, digests, still.then_some(extra)));
        }
    }
    Err(HashError::Changed)
}

/// Hashes everything `reader` yields; returns the digests and the byte
/// count. `size_hint` picks the strategy (multi-threaded for large input).
pub fn hash_reader(
    reader: &mut impl Read,
    size_hint: u64,
    want: Want,
) -> io::Result<(Digests, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut md5 = want.md5.then(md5::Md5::new);
    let mut sha256 = want.sha256.then(sha2::Sha256::new);
    let large = size_hint >= LARGE_FILE;
    let chunk = if large { LARGE_CHUNK } else { SMALL_CHUNK };
    let total = BUFFER.with(|cell| -> io::Result<u64> {
        let mut buf = cell.borrow_mut();
        if buf.len() < chunk {
            buf.resize(chunk, 0);
        }
        let mut total = 0u64;
        loop {
            let n = read_full(reader, &mut buf[..chunk])?;
            if n == 0 {
                break;
            }
            let data = &buf[..n];
            if large {
                hasher.update_rayon(data);
            } else {
                hasher.update(data);
            }
            if let Some(m) = md5.as_mut() {
                m.update(data);
            }
            if let Some(s) = sha256.as_mut() {
                s.update(data);
            }
            total += n as u64;
            if n < chunk {
                break;
            }
        }
        Ok(total)
    })?;
    let digests = Digests {
        blake3: *hasher.finalize().as_bytes(),
        md5: md5.map(|m| m.finalize().into()),
        sha256: sha256.map(|s| s.finalize().into()),
    };
    Ok((digests, total))
}

/// Reads until `buf` is full or EOF; retries interrupted reads.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The hash a symlink contributes: BLAKE3 of its target bytes.
pub fn symlink_hash(target: &[u8]) -> [u8; 32] {
    *blake3::hash(target).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_strategies_agree_with_one_shot_blake3() {
        let data: Vec<u8> = (0..(LARGE_FILE as usize + 12345))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let want = Want {
            md5: true,
            sha256: true,
        };
        let (large, n) = hash_reader(&mut &data[..], data.len() as u64, want).unwrap();
        let (small, m) = hash_reader(&mut &data[..], 0, want).unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(m, n);
        assert_eq!(large, small);
        assert_eq!(large.blake3, *blake3::hash(&data).as_bytes());
    }
}
