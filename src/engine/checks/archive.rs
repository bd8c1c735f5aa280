//! Archives: tar and zip.
//!
//! - tar (POSIX ustar, GNU, pax): every header's checksum, each entry's
//!   size against the file, and the end-of-archive marker (two zero
//!   blocks). An archive cut exactly at an entry boundary reads without
//!   complaint in many readers (Rust's `tar` crate among them): the marker is
//!   required here.
//! - zip (APPNOTE): the end-of-central-directory record (zip64 too), the
//!   central directory within the file and consistent with it, and every
//!   entry's local header where the directory says; `full` also inflates
//!   stored and deflated entries and compares their CRC32 and size.

use std::io::{self, Read, Seek};

use super::{Format, Level, Report, Source, Verdict, n, printable};

const BLOCK: u64 = 512;

pub(super) fn octal(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // GNU base-256: big-endian, the top bit of the first byte is a flag.
        if field[0] == 0xff {
            return None; // negative
        }
        let mut v: u64 = (field[0] & 0x7f) as u64;
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(b as u64)?;
        }
        return Some(v);
    }
    let s: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    if s.is_empty() {
        return Some(0);
    }
    let mut v: u64 = 0;
    for b in s {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add((b - b'0') as u64)?;
    }
    Some(v)
}

pub(super) fn checksum_ok(h: &[u8]) -> bool {
    let Some(stored) = octal(&h[148..156]) else {
        return false;
    };
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in h[..512].iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += b as u64;
        signed += b as i8 as i64;
    }
    stored == unsigned || stored as i64 == signed
}

/// A ustar/GNU header with a valid checksum.
pub(super) fn is_tar_header(head: &[u8]) -> bool {
    head.len() >= 512 && &head[257..262] == b"ustar" && checksum_ok(head)
}

fn entry_name(h: &[u8]) -> String {
    let field = |r: std::ops::Range<usize>| {
        let f = &h[r];
        let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
        f[..end].to_vec()
    };
    let name = field(0..100);
    let prefix = if &h[257..263] == b"ustar\0" {
        field(345..500)
    } else {
        Vec::new()
    };
    if prefix.is_empty() {
        printable(&name)
    } else {
        format!("{}/{}", printable(&prefix), printable(&name))
    }
}

/// The `size` record of a pax extended header, if any.
fn pax_size(data: &[u8]) -> Option<u64> {
    let mut rest = data;
    while !rest.is_empty() {
        let sp = rest.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
        if len <= sp || len > rest.len() {
            return None;
        }
        let record = &rest[sp + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(v) = record.strip_prefix(b"size=") {
            return std::str::from_utf8(v).ok()?.parse().ok();
        }
        rest = &rest[len..];
    }
    None
}

pub(super) fn tar<R: Read + Seek>(src: &mut Source<'_, R>) -> io::Result<Report> {
    let size = src.size();
    let done = |v| Ok(Report::new(Format::Tar, v, Level::Fast));
    let mut pos = 0u64;
    let mut last_name: Option<String> = None;
    let mut next_size: Option<u64> = None;
    loop {
        let h = src.read_at(pos, BLOCK as usize)?;
        if h.len() < BLOCK as usize {
            let after = match &last_name {
                Some(name) => format!(" after entry '{name}'"),
                None => String::new(),
            };
            return done(Verdict::Damaged(if h.is_empty() {
                format!(
                    "tar archive ends at byte {}{after} without its end-of-archive marker \
                     (two zero blocks): the archive was cut off",
                    n(size)
                )
            } else {
                format!(
                    "tar archive ends at byte {} inside a header: the archive was cut off",
                    n(size)
                )
            }));
        }
        if h.iter().all(|&b| b == 0) {
            let h2 = src.read_at(pos + BLOCK, BLOCK as usize)?;
            if h2.len() == BLOCK as usize {
                // Two zero blocks, or one followed by more data (tar stops
                // at the first zero block unless told to ignore it): whole.
                return done(Verdict::Sound);
            }
            return done(Verdict::Undecided(
                "tar archive ends after a lone zero block (all entries are whole)".into(),
            ));
        }
        if !checksum_ok(&h) {
            return done(Verdict::Damaged(format!(
                "tar header at byte {} fails its checksum{}: the archive is corrupt",
                n(pos),
                match &last_name {
                    Some(name) => format!(" (after entry '{name}')"),
                    None => String::new(),
                }
            )));
        }
        let kind = h[156];
        let Some(header_size) = octal(&h[124..136]) else {
            return done(Verdict::Undecided(format!(
                "unreadable size field at byte {pos}"
            )));
        };
        let name = entry_name(&h);
        let data = match kind {
            b'1' | b'2' | b'3' | b'4' | b'5' | b'6' => {
                if header_size != 0 {
                    return done(Verdict::Undecided(format!(
                        "entry '{name}' of type {} declares a size",
                        kind as char
                    )));
                }
                0
            }
            b'S' | b'M' => {
                return done(Verdict::Undecided(format!(
                    "entry '{name}' is a GNU sparse or multi-volume entry"
                )));
            }
            b'x' | b'g' | b'L' | b'K' => header_size,
            _ => next_size.take().unwrap_or(header_size),
        };
        let data_start = pos + BLOCK;
        if data_start + data > size {
            return done(Verdict::Damaged(format!(
                "tar entry '{name}' ({} bytes) is cut off: the archive ends at byte {}",
                n(data),
                n(size)
            )));
        }
        if kind == b'x' {
            if data > 1 << 20 {
                return done(Verdict::Undecided("a very large pax header".into()));
            }
            let body = src.read_at(data_start, data as usize)?;
            next_size = pax_size(&body);
        }
        if !matches!(kind, b'x' | b'g' | b'L' | b'K') {
            last_name = Some(name);
        }
        pos = data_start + data.div_ceil(BLOCK) * BLOCK;
    }
}

fn le16(b: &[u8], at: usize) -> u64 {
    u16::from_le_bytes([b[at], b[at + 1]]) as u64
}
fn le32(b: &[u8], at: usize) -> u64 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as u64
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

struct ZipEntry {
    name: String,
    method: u64,
    flags: u64,
    crc: u32,
    csize: u64,
    usize: u64,
    local: u64,
}

pub(super) fn zip<R: Read + Seek>(src: &mut Source<'_, R>, level: Level) -> io::Result<Report> {
    let size = src.size();
    let done = |v| Ok(Report::new(Format::Zip, v, level));
    let (tail_at, tail) = src.tail(22 + 65535)?;
    // The last signature whose comment length reaches exactly the end.
    let mut eocd = None;
    let mut i = tail.len().saturating_sub(22) as isize;
    while i >= 0 {
        let at = i as usize;
        if tail[at..].starts_with(b"PK\x05\x06")
            && le16(&tail, at + 20) as usize == tail.len() - at - 22
        {
            eocd = Some(at);
            break;
        }
        i -= 1;
    }
    if eocd.is_none() {
        // Junk after the record (unzip tolerates it): the last signature
        // whose comment fits in what follows.
        let mut i = tail.len().saturating_sub(22) as isize;
        while i >= 0 {
            let at = i as usize;
            if tail[at..].starts_with(b"PK\x05\x06")
                && le16(&tail, at + 20) as usize <= tail.len() - at - 22
            {
                eocd = Some(at);
                break;
            }
            i -= 1;
        }
    }
    let Some(e) = eocd else {
        return done(Verdict::Damaged(format!(
            "zip archive has no end-of-central-directory record: it ends at byte {} (cut off?)",
            n(size)
        )));
    };
    let eocd_pos = tail_at + e as u64;
    if le16(&tail, e + 4) != 0 || le16(&tail, e + 6) != 0 {
        return done(Verdict::Undecided("a multi-disk zip archive".into()));
    }
    let mut entries = le16(&tail, e + 10);
    let mut cd_size = le32(&tail, e + 12);
    let mut cd_offset = le32(&tail, e + 16);
    let mut cd_limit = eocd_pos;
    let mut zip64 = false;
    if entries == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff {
        let loc = eocd_pos
            .checked_sub(20)
            .map(|p| src.read_at(p, 20))
            .transpose()?;
        let Some(loc) = loc.filter(|l| l.starts_with(b"PK\x06\x07")) else {
            return done(Verdict::Undecided(
                "zip32 limits reached without a zip64 locator".into(),
            ));
        };
        let rec_at = le64(&loc, 8);
        let rec = src.read_at(rec_at, 56)?;
        if rec.len() < 56 || !rec.starts_with(b"PK\x06\x06") {
            return done(Verdict::Damaged(format!(
                "zip64 end-of-central-directory record is not at byte {}: the archive is corrupt",
                n(rec_at)
            )));
        }
        entries = le64(&rec, 32);
        cd_size = le64(&rec, 40);
        cd_offset = le64(&rec, 48);
        cd_limit = rec_at;
        zip64 = true;
    }
    let cd_end = cd_offset.saturating_add(cd_size);
    if cd_end > cd_limit {
        return done(Verdict::Damaged(format!(
            "zip central directory (bytes {}..{}) runs past its end record at byte {}: the archive is corrupt",
            n(cd_offset),
            n(cd_end),
            n(cd_limit)
        )));
    }
    if cd_size > 256 << 20 {
        return done(Verdict::Undecided(
            "a central directory over 256 MiB".into(),
        ));
    }
    let cd = src.read_at(cd_offset, cd_size as usize)?;
    let mut list = Vec::new();
    let mut at = 0usize;
    while at < cd.len() {
        if cd.len() < at + 46 || !cd[at..].starts_with(b"PK\x01\x02") {
            if cd[at..].starts_with(b"PK\x05\x05") {
                break; // digital signature record
            }
            return done(Verdict::Damaged(format!(
                "zip central directory entry {} at byte {} is corrupt",
                list.len() + 1,
                n(cd_offset + at as u64)
            )));
        }
        let name_len = le16(&cd, at + 28) as usize;
        let extra_len = le16(&cd, at + 30) as usize;
        let comment_len = le16(&cd, at + 32) as usize;
        let end = at + 46 + name_len + extra_len + comment_len;
        if end > cd.len() {
            return done(Verdict::Damaged(format!(
                "zip central directory entry {} runs past the directory's end",
                list.len() + 1
            )));
        }
        let mut entry = ZipEntry {
            name: printable(&cd[at + 46..at + 46 + name_len]),
            method: le16(&cd, at + 10),
            flags: le16(&cd, at + 8),
            crc: le32(&cd, at + 16) as u32,
            csize: le32(&cd, at + 20),
            usize: le32(&cd, at + 24),
            local: le32(&cd, at + 42),
        };
        // Zip64 extended information: the fields that overflowed, in order.
        let mut extra = &cd[at + 46 + name_len..at + 46 + name_len + extra_len];
        while extra.len() >= 4 {
            let id = le16(extra, 0);
            let len = le16(extra, 2) as usize;
            if extra.len() < 4 + len {
                break;
            }
            if id == 1 {
                let mut f = &extra[4..4 + len];
                for field in [&mut entry.usize, &mut entry.csize, &mut entry.local] {
                    if *field == 0xffff_ffff && f.len() >= 8 {
                        *field = le64(f, 0);
                        f = &f[8..];
                    }
                }
            }
            extra = &extra[4 + len..];
        }
        list.push(entry);
        at = end;
    }
    let count_ok = if zip64 {
        list.len() as u64 == entries
    } else {
        list.len() as u64 % 65536 == entries
    };
    if !count_ok {
        return done(Verdict::Damaged(format!(
            "zip central directory lists {} entries but its end record says {entries}",
            list.len()
        )));
    }
    for entry in &list {
        let lh = src.read_at(entry.local, 30)?;
        if lh.len() < 30 || !lh.starts_with(b"PK\x03\x04") {
            return done(Verdict::Damaged(format!(
                "zip entry '{}' has no local header at byte {}: the archive is corrupt",
                entry.name,
                n(entry.local)
            )));
        }
        let data_at = entry.local + 30 + le16(&lh, 26) + le16(&lh, 28);
        if data_at + entry.csize > cd_offset {
            return done(Verdict::Damaged(format!(
                "zip entry '{}' ({} bytes compressed at byte {}) overlaps the central directory at byte {}",
                entry.name,
                n(entry.csize),
                n(data_at),
                n(cd_offset)
            )));
        }
        if level == Level::Full
            && entry.flags & 1 == 0
            && matches!(entry.method, 0 | 8)
            && let Some(v) = zip_entry_crc(src, entry, data_at)?
        {
            return done(v);
        }
    }
    done(Verdict::Sound)
}

/// Decompress one entry and compare its CRC32 and size; `Some` on damage.
fn zip_entry_crc<R: Read + Seek>(
    src: &mut Source<'_, R>,
    entry: &ZipEntry,
    data_at: u64,
) -> io::Result<Option<Verdict>> {
    let stream = src.stream_from(data_at)?;
    let limited = stream.take(entry.csize);
    let mut hasher = crc32fast::Hasher::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 128 * 1024];
    let mut reader: Box<dyn Read> = if entry.method == 8 {
        Box::new(flate2::read::DeflateDecoder::new(limited))
    } else {
        Box::new(limited)
    };
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(got) => {
                hasher.update(&buf[..got]);
                total += got as u64;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData
                ) =>
            {
                return Ok(Some(Verdict::Damaged(format!(
                    "zip entry '{}' cannot be decompressed: its data is corrupt",
                    entry.name
                ))));
            }
            Err(e) => return Err(e),
        }
    }
    if hasher.finalize() != entry.crc || total != entry.usize {
        return Ok(Some(Verdict::Damaged(format!(
            "zip entry '{}' fails its CRC32/size check: its data is corrupt",
            entry.name
        ))));
    }
    Ok(None)
}
