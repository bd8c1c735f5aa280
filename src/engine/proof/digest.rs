//! Local checksums of a file, in the forms object stores keep: full-object
//! CRC64NVME, CRC32, CRC32C, MD5, SHA-1, SHA-256 and SHA-512, and the per-part forms
//! of a multipart upload (composite `base64(crc(part crcs))-N`, multipart
//! ETag `md5(md5(p1)‖…‖md5(pN))-N`).
//!
//! Everything a proof needs is computed in one read pass over the file
//! ([`compute`]), together with its BLAKE3, so a digest is always tied to
//! the exact content the manifest vouches for: a file that changed since
//! it was scanned shows up as a different BLAKE3, never as a wrong proof.
//!
//! Part boundaries come from the store (the size of part 1, or of every
//! part). Wrong part boundaries can only make a composite checksum or a
//! multipart ETag fail to match, never match: each part's digest covers a
//! different byte range, so the combined value is a different function of
//! the content. A match under an assumed layout is therefore still a
//! proof; a mismatch under an assumed layout proves nothing (see
//! [`super::ladder`]).

use std::collections::BTreeMap;
use std::io::Read;

use base64::Engine as _;

/// A checksum algorithm an object store may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algo {
    Crc64Nvme,
    Crc32,
    Crc32c,
    Sha1,
    Sha256,
    Md5,
    Sha512,
}

impl Algo {
    pub const ALL: [Algo; 7] = [
        Algo::Crc64Nvme,
        Algo::Crc32,
        Algo::Crc32c,
        Algo::Sha1,
        Algo::Sha256,
        Algo::Md5,
        Algo::Sha512,
    ];

    /// The name used in method names, S3 headers (`x-amz-checksum-NAME`)
    /// and the index.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Crc64Nvme => "crc64nvme",
            Algo::Crc32 => "crc32",
            Algo::Crc32c => "crc32c",
            Algo::Sha1 => "sha1",
            Algo::Sha256 => "sha256",
            Algo::Md5 => "md5",
            Algo::Sha512 => "sha512",
        }
    }

    pub fn from_name(name: &str) -> Option<Algo> {
        Algo::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// Length of the digest in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Algo::Crc64Nvme => 8,
            Algo::Crc32 | Algo::Crc32c => 4,
            Algo::Sha1 => 20,
            Algo::Sha256 => 32,
            Algo::Md5 => 16,
            Algo::Sha512 => 64,
        }
    }

    /// How strong a proof a match is: a cryptographic hash over a CRC.
    pub fn strength(self) -> u8 {
        match self {
            Algo::Sha512 => 6,
            Algo::Sha256 => 5,
            Algo::Sha1 => 4,
            Algo::Md5 => 3,
            Algo::Crc64Nvme => 2,
            Algo::Crc32c | Algo::Crc32 => 1,
        }
    }

    /// The digest of `data` in one call (used for composites).
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let mut h = Hasher::new(self);
        h.update(data);
        h.finish()
    }
}

/// One running digest of any [`Algo`].
pub enum Hasher {
    Crc(crc_fast::Digest, usize),
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(algo: Algo) -> Hasher {
        use crc_fast::CrcAlgorithm as C;
        match algo {
            Algo::Crc64Nvme => Hasher::Crc(crc_fast::Digest::new(C::Crc64Nvme), 8),
            Algo::Crc32 => Hasher::Crc(crc_fast::Digest::new(C::Crc32IsoHdlc), 4),
            Algo::Crc32c => Hasher::Crc(crc_fast::Digest::new(C::Crc32Iscsi), 4),
            Algo::Md5 => Hasher::Md5(<md5::Md5 as md5::Digest>::new()),
            Algo::Sha1 => Hasher::Sha1(<sha1::Sha1 as sha1::Digest>::new()),
            Algo::Sha256 => Hasher::Sha256(<sha2::Sha256 as sha2::Digest>::new()),
            Algo::Sha512 => Hasher::Sha512(<sha2::Sha512 as sha2::Digest>::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc(d, _) => d.update(data),
            Hasher::Md5(h) => md5::Digest::update(h, data),
            Hasher::Sha1(h) => sha1::Digest::update(h, data),
            Hasher::Sha256(h) => sha2::Digest::update(h, data),
            Hasher::Sha512(h) => sha2::Digest::update(h, data),
        }
    }

    /// The digest, big-endian for the CRCs (as S3 and GCS encode them).
    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Crc(d, width) => {
                let v = d.finalize().to_be_bytes();
                v[8 - width..].to_vec()
            }
            Hasher::Md5(h) => md5::Digest::finalize(h).to_vec(),
            Hasher::Sha1(h) => sha1::Digest::finalize(h).to_vec(),
            Hasher::Sha256(h) => sha2::Digest::finalize(h).to_vec(),
            Hasher::Sha512(h) => sha2::Digest::finalize(h).to_vec(),
        }
    }
}

/// Sizes of the parts of a multipart object, in order. Their sum is the
/// object's size.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Layout(pub Vec<u64>);

impl Layout {
    /// `count` parts of `part` bytes each, the last one shorter: the layout
    /// every common uploader (aws cli, boto3, rclone, object_store) uses.
    /// `None` when no such layout has `count` parts and `size` bytes.
    pub fn equal(size: u64, part: u64, count: u64) -> Option<Layout> {
        if part == 0 || count == 0 {
            return None;
        }
        let full = count - 1;
        let last = size.checked_sub(full.checked_mul(part)?)?;
        if last == 0 || last > part {
            // (a zero-byte object is one empty part)
            if !(size == 0 && count == 1) {
                return None;
            }
        }
        let mut parts = vec![part; full as usize];
        parts.push(last);
        Some(Layout(parts))
    }

    /// The equal-part layouts of `count` parts and `size` bytes that
    /// common uploaders produce (a part size of a whole number of MiB —
    /// the AWS CLI and boto3 8 MiB, rclone 5 MiB, s3cmd 15 MiB, minio-go
    /// multiples of 16 MiB — or a power of two), the usual ones first, at
    /// most `max`. Only guesses: a multipart ETag that matches under one is
    /// a proof (wrong boundaries cannot match), one that does not match
    /// proves nothing.
    pub fn candidates(size: u64, count: u64, max: usize) -> Vec<Layout> {
        const MIB: u64 = 1 << 20;
        let mut sizes: Vec<u64> = [8, 5, 16, 10, 15, 64, 100, 32, 25, 50, 128, 256, 512]
            .iter()
            .map(|m| m * MIB)
            .collect();
        sizes.extend((10..=32).map(|i| 1u64 << i));
        if count > 1 {
            // Or any whole number of MiB in range, the smallest first.
            let lo = size.div_ceil(count).div_ceil(MIB).max(1);
            let hi = (size - 1) / (count - 1) / MIB;
            sizes.extend((lo..=hi).take(max).map(|m| m * MIB));
        }
        let mut out: Vec<Layout> = Vec::new();
        for part in sizes {
            if out.len() >= max {
                break;
            }
            if let Some(l) = Layout::equal(size, part, count)
                && !out.contains(&l)
            {
                out.push(l);
            }
        }
        out
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// A short form for the index and reports: `8388608x12+4000` for
    /// equal parts, else the sizes joined by `,`.
    pub fn describe(&self) -> String {
        match self.0.split_last() {
            Some((last, rest)) if !rest.is_empty() && rest.iter().all(|p| *p == rest[0]) => {
                format!("{}x{}+{last}", rest[0], rest.len())
            }
            _ => self
                .0
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// Parses [`Layout::describe`]'s form.
    pub fn parse(s: &str) -> Option<Layout> {
        if let Some((head, last)) = s.split_once('+') {
            let (part, n) = head.split_once('x')?;
            let (part, n, last): (u64, usize, u64) =
                (part.parse().ok()?, n.parse().ok()?, last.parse().ok()?);
            let mut v = vec![part; n];
            v.push(last);
            return Some(Layout(v));
        }
        s.split(',')
            .map(|p| p.parse().ok())
            .collect::<Option<Vec<u64>>>()
            .map(Layout)
    }
}

/// What to compute in one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Want {
    /// Whole-file digests.
    pub full: Vec<Algo>,
    /// Per-part digests over one layout each (a composite checksum or a
    /// multipart ETag).
    pub parts: Vec<(Layout, Algo)>,
}

impl Want {
    pub fn is_empty(&self) -> bool {
        self.full.is_empty() && self.parts.is_empty()
    }

    /// Adds `other`'s digests to this one, without repeats.
    pub fn merge(&mut self, other: &Want) {
        for a in &other.full {
            if !self.full.contains(a) {
                self.full.push(*a);
            }
        }
        for p in &other.parts {
            if !self.parts.contains(p) {
                self.parts.push(p.clone());
            }
        }
    }
}

/// What one pass computed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digests {
    pub blake3: [u8; 32],
    pub size: u64,
    pub full: BTreeMap<Algo, Vec<u8>>,
    /// Per layout and algorithm, each part's digest in order.
    pub parts: BTreeMap<(Layout, Algo), Vec<Vec<u8>>>,
}

impl Digests {
    /// The digest of the concatenated part digests: S3's composite
    /// checksum (without the `-N`), or with [`Algo::Md5`] the hash part of
    /// a multipart ETag.
    pub fn composite(&self, layout: &Layout, algo: Algo) -> Option<Vec<u8>> {
        let parts = self.parts.get(&(layout.clone(), algo))?;
        Some(composite_of(algo, parts))
    }

    /// The multipart ETag (`md5(md5(p1)‖…‖md5(pN))-N`, no quotes) of a
    /// layout.
    pub fn multipart_etag(&self, layout: &Layout) -> Option<String> {
        let md5 = self.composite(layout, Algo::Md5)?;
        Some(format!("{}-{}", hex::encode(md5), layout.count()))
    }
}

/// The composite of part digests: `algo(d1 ‖ d2 ‖ … ‖ dN)`.
pub fn composite_of(algo: Algo, parts: &[Vec<u8>]) -> Vec<u8> {
    let mut h = Hasher::new(algo);
    for p in parts {
        h.update(p);
    }
    h.finish()
}

/// Base64 (standard, padded), as S3 and GCS print checksums.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

/// Why a pass could not produce what was asked.
#[derive(Debug)]
pub enum DigestError {
    Io(std::io::Error),
    /// The content is not the size a layout covers (the file changed,
    /// or the layout is not this object's).
    SizeChanged {
        expected: u64,
        read: u64,
    },
}

impl std::fmt::Display for DigestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DigestError::Io(e) => write!(f, "{e}"),
            DigestError::SizeChanged { expected, read } => {
                write!(f, "read {read} bytes where {expected} were expected")
            }
        }
    }
}

struct PartState {
    key: (Layout, Algo),
    /// Index of the part being hashed and bytes left in it.
    index: usize,
    left: u64,
    hasher: Hasher,
    done: Vec<Vec<u8>>,
}

/// Reads `reader` to the end once, computing its BLAKE3, size and every
/// digest in `want`. A layout whose total is not the number of bytes read
/// fails the whole pass: its parts would not be the object's.
pub fn compute(mut reader: impl Read, want: &Want) -> Result<Digests, DigestError> {
    let mut blake3 = blake3::Hasher::new();
    let mut full: Vec<(Algo, Hasher)> = want.full.iter().map(|a| (*a, Hasher::new(*a))).collect();
    let mut parts: Vec<PartState> = want
        .parts
        .iter()
        .map(|(layout, algo)| PartState {
            key: (layout.clone(), *algo),
            index: 0,
            left: layout.0.first().copied().unwrap_or(0),
            hasher: Hasher::new(*algo),
            done: Vec::with_capacity(layout.count()),
        })
        .collect();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DigestError::Io(e)),
        };
        let chunk = &buf[..n];
        size += n as u64;
        blake3.update(chunk);
        for (_, h) in &mut full {
            h.update(chunk);
        }
        for p in &mut parts {
            let layout = &p.key.0;
            let mut rest = chunk;
            while !rest.is_empty() {
                if p.index >= layout.count() {
                    // More bytes than the layout covers.
                    return Err(DigestError::SizeChanged {
                        expected: layout.total(),
                        read: size,
                    });
                }
                let take = (p.left.min(rest.len() as u64)) as usize;
                p.hasher.update(&rest[..take]);
                rest = &rest[take..];
                p.left -= take as u64;
                if p.left == 0 {
                    let h = std::mem::replace(&mut p.hasher, Hasher::new(p.key.1));
                    p.done.push(h.finish());
                    p.index += 1;
                    p.left = layout.0.get(p.index).copied().unwrap_or(0);
                    // Zero-length parts (only an empty object has one).
                    while p.left == 0 && p.index < layout.count() {
                        let h = std::mem::replace(&mut p.hasher, Hasher::new(p.key.1));
                        p.done.push(h.finish());
                        p.index += 1;
                        p.left = layout.0.get(p.index).copied().unwrap_or(0);
                    }
                }
            }
        }
    }
    let mut out = Digests {
        blake3: *blake3.finalize().as_bytes(),
        size,
        ..Default::default()
    };
    for (a, h) in full {
        out.full.insert(a, h.finish());
    }
    for mut p in parts {
        // An empty object: its one (empty) part was never closed above.
        if size == 0 && p.key.0.0 == [0] && p.done.is_empty() {
            let h = std::mem::replace(&mut p.hasher, Hasher::new(p.key.1));
            p.done.push(h.finish());
            p.index = 1;
        }
        if p.index != p.key.0.count() || p.key.0.total() != size {
            return Err(DigestError::SizeChanged {
                expected: p.key.0.total(),
                read: size,
            });
        }
        out.parts.insert(p.key, p.done);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect()
    }

    #[test]
    fn known_vectors() {
        // "123456789" check values of each CRC, and the RFC digests of "abc".
        let check = b"123456789";
        assert_eq!(Algo::Crc32.digest(check), 0xCBF4_3926u32.to_be_bytes());
        assert_eq!(Algo::Crc32c.digest(check), 0xE306_9283u32.to_be_bytes());
        assert_eq!(
            Algo::Crc64Nvme.digest(check),
            0xAE8B_1486_0A79_9888u64.to_be_bytes()
        );
        assert_eq!(
            hex::encode(Algo::Md5.digest(b"abc")),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            hex::encode(Algo::Sha1.digest(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex::encode(Algo::Sha256.digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex::encode(Algo::Sha512.digest(b"abc")),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn one_pass_gives_full_and_part_digests() {
        let d = data(20_000);
        let layout = Layout::equal(20_000, 8_000, 3).unwrap();
        assert_eq!(layout.0, vec![8_000, 8_000, 4_000]);
        let want = Want {
            full: vec![Algo::Crc64Nvme, Algo::Sha256, Algo::Crc32],
            parts: vec![(layout.clone(), Algo::Md5), (layout.clone(), Algo::Crc32)],
        };
        // A reader that returns odd-sized chunks, to cross part boundaries
        // in the middle of a read.
        struct Odd<'a>(&'a [u8]);
        impl Read for Odd<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(777).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let got = compute(Odd(&d), &want).unwrap();
        assert_eq!(got.size, 20_000);
        assert_eq!(got.blake3, *blake3::hash(&d).as_bytes());
        assert_eq!(got.full[&Algo::Crc64Nvme], Algo::Crc64Nvme.digest(&d));
        assert_eq!(got.full[&Algo::Sha256], Algo::Sha256.digest(&d));
        let md5s = &got.parts[&(layout.clone(), Algo::Md5)];
        assert_eq!(md5s.len(), 3);
        assert_eq!(md5s[2], Algo::Md5.digest(&d[16_000..]));
        // The multipart ETag moto (and S3) give this upload, computed
        // independently: md5 of the concatenated part MD5s.
        let mut cat = Vec::new();
        for chunk in d.chunks(8_000) {
            cat.extend(Algo::Md5.digest(chunk));
        }
        assert_eq!(
            got.multipart_etag(&layout).unwrap(),
            format!("{}-3", hex::encode(Algo::Md5.digest(&cat)))
        );
        let crc_cat: Vec<u8> = d
            .chunks(8_000)
            .flat_map(|c| Algo::Crc32.digest(c))
            .collect();
        assert_eq!(
            got.composite(&layout, Algo::Crc32).unwrap(),
            Algo::Crc32.digest(&crc_cat)
        );
    }

    #[test]
    fn wrong_boundaries_do_not_match() {
        // The same content under another layout gives another composite:
        // a wrong guess can only fail to match.
        let d = data(20_000);
        let a = Layout::equal(20_000, 8_000, 3).unwrap();
        let b = Layout(vec![8_000, 7_000, 5_000]);
        let want = Want {
            full: vec![],
            parts: vec![(a.clone(), Algo::Md5), (b.clone(), Algo::Md5)],
        };
        let got = compute(&d[..], &want).unwrap();
        assert_ne!(got.multipart_etag(&a), got.multipart_etag(&b));
    }

    #[test]
    fn a_layout_of_another_size_fails_the_pass() {
        let d = data(1_000);
        for layout in [Layout(vec![600, 300]), Layout(vec![600, 600])] {
            let want = Want {
                full: vec![],
                parts: vec![(layout, Algo::Md5)],
            };
            assert!(matches!(
                compute(&d[..], &want),
                Err(DigestError::SizeChanged { .. })
            ));
        }
    }

    #[test]
    fn empty_object_is_one_empty_part() {
        let layout = Layout::equal(0, 5 << 20, 1).unwrap();
        let want = Want {
            full: vec![Algo::Crc32],
            parts: vec![(layout.clone(), Algo::Md5)],
        };
        let got = compute(&b""[..], &want).unwrap();
        assert_eq!(got.parts[&(layout, Algo::Md5)].len(), 1);
        assert_eq!(got.full[&Algo::Crc32], vec![0, 0, 0, 0]);
    }

    #[test]
    fn equal_layouts_must_fit() {
        assert_eq!(Layout::equal(10, 4, 3).unwrap().0, vec![4, 4, 2]);
        assert_eq!(Layout::equal(12, 4, 3).unwrap().0, vec![4, 4, 4]);
        assert!(Layout::equal(13, 4, 3).is_none()); // last part too big
        assert!(Layout::equal(8, 4, 3).is_none()); // last part empty
        assert!(Layout::equal(10, 0, 3).is_none());
        let l = Layout::equal(20_000, 8_000, 3).unwrap();
        assert_eq!(l.describe(), "8000x2+4000");
        assert_eq!(Layout::parse(&l.describe()), Some(l));
        let odd = Layout(vec![5, 7, 3]);
        assert_eq!(odd.describe(), "5,7,3");
        assert_eq!(Layout::parse("5,7,3"), Some(odd));
    }
}
