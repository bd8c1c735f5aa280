//! Content hashing: BLAKE3 and CRC64NVME always, MD5 and SHA-256 on
//! request. CRC64NVME is the checksum S3 keeps for every object uploaded
//! since 2025 (its default, multipart included): computed in the same
//! pass it costs a fraction of BLAKE3 (crc-fast, SIMD), and lets an audit
//! prove such an object with one `HEAD` and no second read of the file.
//!
//! Small files are read into a per-thread buffer (parallelism comes from
//! hashing many files at once). Files of [`MAP_MIN`] bytes or more are
//! memory-mapped instead, because copying the bytes out of the page cache
//! costs more CPU than hashing them: a file is cut into BLAKE3 subtrees
//! of at most [`WINDOW`] bytes, each mapped, hashed (BLAKE3 and the CRC
//! taking each `PIECE` in turn) and unmapped on its own, all of them in
//! parallel on the rayon pool, and the subtree chaining values are merged with
//! `blake3::hazmat`. Nothing waits on one thread, and at most one window
//! per busy thread is mapped at a time. (Maps of small files are made in a
//! per-thread arena and unmapped a few dozen at a time, see
//! [`crate::engine::mapped`]; [`release_maps`] gives them back.)
//!
//! A truncated file must not kill the run (live database folders truncate
//! files routinely): maps are made through [`crate::engine::mapped`], whose SIGBUS
//! handler replaces the pages past the new end by zeros and flags the map.
//! A flagged hash is thrown away and the file hashed again with `read()`,
//! which sees a short read or an I/O error for what it is. When a file
//! cannot be mapped (a file system without mmap) it is read.
//!
//! A hash is only ever returned for bytes that were fully read from one
//! unchanged file: the file's metadata is taken before and after hashing
//! from the open descriptor, and any difference (size, mtime, ctime,
//! inode, a byte count other than the size, a flagged map) retries, then
//! fails as "changed while being hashed". A stored hash is never a guess.
//!
//! The path may have been swapped since the walk: it is opened without
//! following a symlink and without blocking on a FIFO, and must still be a
//! regular file. At most one byte more than its size is read (a map covers
//! exactly the size), so a file that grows faster than it is read cannot
//! hold the scan.
//!
//! Every function here takes a [`Meter`] and adds to it once per buffer
//! read or mapped piece hashed (one relaxed atomic add), so progress moves
//! while a large file is hashed, not only when it completes.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use blake3::hazmat::{
    ChainingValue, HasherExt as _, Mode, left_subtree_len, merge_subtrees_non_root,
    merge_subtrees_root,
};
use md5::Digest as _;

use crate::engine::longpath;
use crate::engine::mapped::{self, Map};
use crate::model::Stat;
use crate::out::Meter;

/// Which digests to compute beside BLAKE3.
#[derive(Debug, Clone, Copy, Default)]
pub struct Want {
    pub md5: bool,
    pub sha256: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub blake3: [u8; 32],
    /// CRC64NVME, big-endian (as S3 prints it, base64).
    pub crc64nvme: [u8; 8],
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
/// Files at least this large are mapped rather than read: below it the
/// map and unmap calls cost more than the copy they save.
pub const MAP_MIN: u64 = 64 << 10;
/// The most of a file mapped at once, and the size of the BLAKE3 subtrees
/// hashed in parallel (a power of two, so every subtree starts on a page).
pub const WINDOW: u64 = 16 << 20;
/// Mapped pieces at least this large are hashed with `update_rayon`.
/// The bytes BLAKE3 and the CRC take in turn from a map: well inside a
/// core's L2 cache, and a whole number of BLAKE3 chunks.
const PIECE: usize = 128 << 10;
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
    // A path past PATH_MAX is opened relative to a directory on the way
    // (see crate::engine::longpath).
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    match longpath::open(path, flags | libc_o_noatime()) {
        Ok(f) => Ok(f),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => longpath::open(path, flags),
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

/// Gives back the address space (and the maps of files already hashed)
/// that each thread of the rayon pool keeps between files: call it when
/// no more files are coming (see [`crate::engine::mapped`]).
pub fn release_maps() {
    rayon::broadcast(|_| mapped::release());
}

/// Hashes the regular file at `path`; returns the metadata the hash belongs
/// to and the digests. The bytes read are added to `meter` as they are.
pub fn hash_file(path: &Path, want: Want, meter: &Meter) -> Result<(Stat, Digests), HashError> {
    hash_file_then(path, want, meter, |_, _| None::<()>).map(|(stat, digests, _)| (stat, digests))
}

/// Like [`hash_file`], then runs `after` on the same open file (with its
/// size) once the hash is proven: the structural checks look at exactly
/// the version that was hashed, while its pages are still in the cache.
/// `after`'s result is dropped (`None`) when the file changed meanwhile;
/// when it found nothing to say (`None`) the file is not looked at again.
pub fn hash_file_then<T>(
    path: &Path,
    want: Want,
    meter: &Meter,
    mut after: impl FnMut(&mut File, u64) -> Option<T>,
) -> Result<(Stat, Digests, Option<T>), HashError> {
    let mut map = Map::supported();
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
        let mapped = if map && before.size >= MAP_MIN {
            match hash_mapped(&file, before.size, want, WINDOW, meter) {
                // A map covers exactly the size; one byte read past it
                // must find the end, as a bounded read would (a file
                // system whose sizes lag its content is not trusted).
                Ok(Mapped::Hashed(d)) => Some((d, before.size + past_end(&file, before.size)?)),
                // The file shrank under the map (or a page could not be
                // read): hash it again, by reading, which tells the two
                // apart.
                Ok(Mapped::Faulted) => {
                    map = false;
                    continue;
                }
                Ok(Mapped::Unmappable) => {
                    map = false;
                    None
                }
                Err(e) => return Err(HashError::Io(e)),
            }
        } else {
            None
        };
        let (digests, read) = match mapped {
            Some(hashed) => hashed,
            None => {
                // Read at most one byte more than the size: enough to see
                // growth, and a file growing faster than it is read cannot
                // keep us here.
                let mut bounded = (&file).take(before.size.saturating_add(1));
                hash_reader(&mut bounded, before.size, want, meter).map_err(HashError::Io)?
            }
        };
        let now = Stat::of(&file.metadata().map_err(HashError::Io)?);
        if before == now && read == before.size {
            let mut file = file;
            let extra = after(&mut file, before.size).filter(|_| {
                file.metadata()
                    .map(|m| Stat::of(&m) == before)
                    .unwrap_or(false)
            });
            return Ok((before, digests, extra));
        }
    }
    Err(HashError::Changed)
}

/// How many bytes (0 or 1) `file` still has at `offset`.
fn past_end(file: &File, offset: u64) -> Result<u64, HashError> {
    use std::os::unix::fs::FileExt;
    loop {
        match file.read_at(&mut [0u8; 1], offset) {
            Ok(n) => return Ok(n as u64),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(HashError::Io(e)),
        }
    }
}

/// What hashing a file through maps came to.
enum Mapped {
    Hashed(Digests),
    /// A map was flagged: the bytes seen are not the file's.
    Faulted,
    /// The file cannot be mapped here: read it.
    Unmappable,
}

/// Why a subtree was not hashed.
enum Stop {
    Faulted,
    Unmappable,
    Io(io::Error),
    /// Another subtree stopped first; this one gave up.
    Skipped,
}

impl Stop {
    /// The more telling of two reasons (a real one over `Skipped`).
    fn or(self, other: Stop) -> Stop {
        match self {
            Stop::Skipped => other,
            s => s,
        }
    }
}

/// Hashes the first `size` bytes of `file` through maps of at most
/// `window` bytes (a power of two, at least a page).
fn hash_mapped(
    file: &File,
    size: u64,
    want: Want,
    window: u64,
    meter: &Meter,
) -> io::Result<Mapped> {
    if want.md5 || want.sha256 {
        return hash_mapped_in_order(file, size, want, window, meter);
    }
    let stop = AtomicBool::new(false);
    let root = if size <= window {
        let mut hasher = blake3::Hasher::new();
        leaf(file, 0, size, &mut hasher, &stop, meter).map(|crc| (hasher.finalize(), crc))
    } else {
        let left = left_subtree_len(size);
        let (a, b) = rayon::join(
            || subtree(file, 0, left, window, &stop, meter),
            || subtree(file, left, size - left, window, &stop, meter),
        );
        match (a, b) {
            (Ok((a, ca)), Ok((b, cb))) => Ok((
                merge_subtrees_root(&a, &b, Mode::Hash),
                crc_combine(ca, cb, size - left),
            )),
            (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
            (Err(a), Err(b)) => Err(a.or(b)),
        }
    };
    match root {
        Ok((hash, crc)) => Ok(Mapped::Hashed(Digests {
            blake3: *hash.as_bytes(),
            crc64nvme: crc.to_be_bytes(),
            md5: None,
            sha256: None,
        })),
        Err(Stop::Faulted | Stop::Skipped) => Ok(Mapped::Faulted),
        Err(Stop::Unmappable) => Ok(Mapped::Unmappable),
        Err(Stop::Io(e)) => Err(e),
    }
}

/// The CRC64NVME of two adjacent pieces from theirs (`len_b`: the second
/// piece's length): pieces hashed in parallel combine in file order.
///
/// zlib's `crc32_combine` method (Mark Adler, zlib 1.2.12) for this 64-bit
/// polynomial, which like zlib's CRC-32 is reflected with all-ones init
/// and final XOR: `a · x^(8·len_b) mod P ⊕ b`, the power taken from a
/// table of `x^(2^k)`. `crc_fast::checksum_combine` squares 64×64 GF(2)
/// matrices for every bit of the length: about 300 µs a call, 6 % of a
/// 3 GiB file's CPU samples at one call per 16 MiB window; this takes a
/// few µs. Checked against it in the tests.
fn crc_combine(a: u64, b: u64, len_b: u64) -> u64 {
    let mut power = X0;
    let (mut n, mut k) = (len_b, 3);
    while n != 0 {
        if n & 1 != 0 {
            power = mult_mod_p(X2N[k & 63], power);
        }
        n >>= 1;
        k += 1;
    }
    mult_mod_p(power, a) ^ b
}

/// CRC-64/NVME's polynomial, bit-reflected.
const POLY: u64 = 0x9A6C_9329_AC4B_C9B5;
/// `x^0` in the reflected representation (`x^1` is `X0 >> 1`).
const X0: u64 = 1 << 63;
/// `X2N[k]` = `x^(2^k) mod P`.
const X2N: [u64; 64] = {
    let mut table = [0u64; 64];
    let mut p = X0 >> 1;
    let mut k = 0;
    while k < 64 {
        table[k] = p;
        p = mult_mod_p(p, p);
        k += 1;
    }
    table
};

/// `a · b mod P` over GF(2), both reflected.
const fn mult_mod_p(a: u64, mut b: u64) -> u64 {
    let mut m = X0;
    let mut p = 0;
    while m != 0 {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                break;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    p
}

#[cfg(test)]
fn crc64nvme(data: &[u8]) -> u64 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, data)
}

/// The chaining value and CRC64NVME of the subtree of `len` bytes at
/// `offset`.
fn subtree(
    file: &File,
    offset: u64,
    len: u64,
    window: u64,
    stop: &AtomicBool,
    meter: &Meter,
) -> Result<(ChainingValue, u64), Stop> {
    if len <= window {
        let mut hasher = blake3::Hasher::new();
        hasher.set_input_offset(offset);
        let crc = leaf(file, offset, len, &mut hasher, stop, meter)?;
        return Ok((hasher.finalize_non_root(), crc));
    }
    let left = left_subtree_len(len);
    let (a, b) = rayon::join(
        || subtree(file, offset, left, window, stop, meter),
        || subtree(file, offset + left, len - left, window, stop, meter),
    );
    match (a, b) {
        (Ok((a, ca)), Ok((b, cb))) => Ok((
            merge_subtrees_non_root(&a, &b, Mode::Hash),
            crc_combine(ca, cb, len - left),
        )),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        (Err(a), Err(b)) => Err(a.or(b)),
    }
}

/// Maps `len` bytes at `offset` and feeds them to `hasher`; returns their
/// CRC64NVME.
fn leaf(
    file: &File,
    offset: u64,
    len: u64,
    hasher: &mut blake3::Hasher,
    stop: &AtomicBool,
    meter: &Meter,
) -> Result<u64, Stop> {
    if stop.load(Ordering::Relaxed) {
        return Err(Stop::Skipped);
    }
    let fail = |s: Stop| {
        stop.store(true, Ordering::Relaxed);
        s
    };
    let map = Map::new(file, offset, len as usize)
        .map_err(|e| fail(Stop::Io(e)))?
        .ok_or_else(|| fail(Stop::Unmappable))?;
    // BLAKE3 and the CRC take each piece in turn while it is in the
    // core's cache. Run side by side over the whole map, each read it from
    // memory: the CRC's blocks were 23 % of a 3 GiB file's CPU samples,
    // 4 % this way (perf, AVX-512 and VPCLMULQDQ). Parallelism comes from
    // the windows (and from the files hashed at once), not from here.
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
    for piece in map.bytes().chunks(PIECE) {
        hasher.update(piece);
        crc.update(piece);
    }
    let crc = crc.finalize();
    meter.add(len);
    if map.faulted() {
        return Err(fail(Stop::Faulted));
    }
    Ok(crc)
}

/// Maps window after window in file order, for the digests (MD5, SHA-256)
/// that cannot be computed in pieces; BLAKE3 runs beside them.
fn hash_mapped_in_order(
    file: &File,
    size: u64,
    want: Want,
    window: u64,
    meter: &Meter,
) -> io::Result<Mapped> {
    let mut hasher = blake3::Hasher::new();
    let mut md5 = want.md5.then(md5::Md5::new);
    let mut sha256 = want.sha256.then(sha2::Sha256::new);
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
    let mut offset = 0;
    while offset < size {
        let len = window.min(size - offset);
        let Some(map) = Map::new(file, offset, len as usize)? else {
            return Ok(Mapped::Unmappable);
        };
        let bytes = map.bytes();
        rayon::join(
            || hasher.update_rayon(bytes),
            || {
                crc.update(bytes);
                if let Some(m) = md5.as_mut() {
                    m.update(bytes);
                }
                if let Some(s) = sha256.as_mut() {
                    s.update(bytes);
                }
            },
        );
        meter.add(len);
        if map.faulted() {
            return Ok(Mapped::Faulted);
        }
        offset += len;
    }
    Ok(Mapped::Hashed(Digests {
        blake3: *hasher.finalize().as_bytes(),
        crc64nvme: crc.finalize().to_be_bytes(),
        md5: md5.map(|m| m.finalize().into()),
        sha256: sha256.map(|s| s.finalize().into()),
    }))
}

/// Hashes everything `reader` yields; returns the digests and the byte
/// count. `size_hint` picks the strategy (multi-threaded for large input);
/// each buffer read is added to `meter`.
pub fn hash_reader(
    reader: &mut impl Read,
    size_hint: u64,
    want: Want,
    meter: &Meter,
) -> io::Result<(Digests, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut md5 = want.md5.then(md5::Md5::new);
    let mut sha256 = want.sha256.then(sha2::Sha256::new);
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
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
                rayon::join(|| hasher.update_rayon(data), || crc.update(data));
            } else {
                hasher.update(data);
                crc.update(data);
            }
            if let Some(m) = md5.as_mut() {
                m.update(data);
            }
            if let Some(s) = sha256.as_mut() {
                s.update(data);
            }
            total += n as u64;
            meter.add(n as u64);
            if n < chunk {
                break;
            }
        }
        Ok(total)
    })?;
    let digests = Digests {
        blake3: *hasher.finalize().as_bytes(),
        crc64nvme: crc.finalize().to_be_bytes(),
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

    fn no_meter() -> Meter {
        Meter::default()
    }

    #[test]
    fn crc_combine_agrees_with_crc_fast_and_with_one_pass() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let lens = [
            0u64,
            1,
            2,
            7,
            8,
            1023,
            1024,
            4096,
            65_537,
            16 << 20,
            3 << 30,
            u64::MAX >> 4,
        ];
        let random: Vec<u64> = (0..200).map(|_| next() >> (next() % 64)).collect();
        for len in lens.into_iter().chain(random) {
            let (a, b) = (next(), next());
            let theirs = crc_fast::checksum_combine(crc_fast::CrcAlgorithm::Crc64Nvme, a, b, len);
            assert_eq!(crc_combine(a, b, len), theirs, "len {len}");
        }
        let data: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for cut in [0, 1, 500, 65_536, 99_999, 100_000] {
            let (x, y) = data.split_at(cut);
            assert_eq!(
                crc_combine(crc64nvme(x), crc64nvme(y), y.len() as u64),
                crc64nvme(&data),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn small_and_large_strategies_agree_with_one_shot_blake3() {
        let data: Vec<u8> = (0..(LARGE_FILE as usize + 12345))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let want = Want {
            md5: true,
            sha256: true,
        };
        let (large, n) = hash_reader(&mut &data[..], data.len() as u64, want, &no_meter()).unwrap();
        let (small, m) = hash_reader(&mut &data[..], 0, want, &no_meter()).unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(m, n);
        assert_eq!(large, small);
        assert_eq!(large.blake3, *blake3::hash(&data).as_bytes());
        assert_eq!(large.crc64nvme, crc64nvme(&data).to_be_bytes());
        // CRC64NVME's check value (the mapped path, whose pieces combine,
        // is compared with this one below).
        let (check, _) =
            hash_reader(&mut &b"123456789"[..], 9, Want::default(), &no_meter()).unwrap();
        assert_eq!(check.crc64nvme, 0xAE8B_1486_0A79_9888u64.to_be_bytes());
    }

    fn file_with(data: &[u8]) -> File {
        use std::io::Write;
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        f
    }

    #[test]
    fn mapped_subtrees_agree_with_one_shot_hashing_at_every_shape() {
        // Small windows, so that a few hundred KiB make deep trees with
        // ragged right edges.
        let data: Vec<u8> = (0..(700 << 10) + 777)
            .map(|i| (i * 7 % 253) as u8)
            .collect();
        for len in [
            4096,
            64 << 10,
            (64 << 10) + 1,
            (128 << 10) - 1,
            300 << 10,
            data.len(),
        ] {
            let f = file_with(&data[..len]);
            for window in [4096u64, 64 << 10, 1 << 20] {
                for want in [
                    Want::default(),
                    Want {
                        md5: true,
                        sha256: true,
                    },
                ] {
                    let Ok(Mapped::Hashed(d)) =
                        hash_mapped(&f, len as u64, want, window, &no_meter())
                    else {
                        panic!("not hashed: len {len} window {window}");
                    };
                    let (expected, _) =
                        hash_reader(&mut &data[..len], 0, want, &no_meter()).unwrap();
                    assert_eq!(d, expected, "len {len} window {window} {want:?}");
                }
            }
        }
    }

    #[test]
    fn a_file_truncated_under_its_maps_is_flagged_never_hashed() {
        let data = vec![1u8; 1 << 20];
        let f = file_with(&data);
        f.set_len(100_000).unwrap();
        // Maps made of the old size after the truncation: the pages past
        // the end fault while being hashed.
        for want in [
            Want::default(),
            Want {
                md5: true,
                sha256: false,
            },
        ] {
            assert!(matches!(
                hash_mapped(&f, data.len() as u64, want, 64 << 10, &no_meter()),
                Ok(Mapped::Faulted)
            ));
        }
    }

    #[test]
    fn hash_file_maps_large_files_and_reads_small_ones_with_the_same_result() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 10, MAP_MIN as usize - 1, MAP_MIN as usize, 3 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i % 241) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, &data).unwrap();
            // The meter counts every byte, read or mapped, as it goes.
            let meter = Meter::default();
            let (stat, d) = hash_file(
                &path,
                Want {
                    md5: true,
                    sha256: true,
                },
                &meter,
            )
            .unwrap();
            assert_eq!(stat.size, len as u64);
            assert_eq!(meter.get(), len as u64);
            let (expected, _) = hash_reader(
                &mut &data[..],
                0,
                Want {
                    md5: true,
                    sha256: true,
                },
                &meter,
            )
            .unwrap();
            assert_eq!(meter.get(), 2 * len as u64);
            assert_eq!(d, expected);
            assert_eq!(
                hash_file(&path, Want::default(), &meter).unwrap().1.blake3,
                *blake3::hash(&data).as_bytes()
            );
            assert_eq!(meter.get(), 3 * len as u64);
        }
    }
}
