//! Images and media containers: JPEG, PNG, WebP, ISO-BMFF (MP4/MOV/HEIC).
//!
//! - JPEG: the marker segments are walked from SOI, through the
//!   entropy-coded data of every scan (where 0xFF is always stuffed, so a
//!   marker is unambiguous), to EOI. Checking only that the last two bytes
//!   are FF D9 would miss files with trailing data (thumbnails, motion-photo
//!   video) and accept some truncations. Like libjpeg, stray bytes between
//!   segments are skipped rather than called damage.
//! - PNG: the chunk walk from IHDR to IEND (lengths within the file, chunk
//!   types well formed); `full` also checks every chunk's CRC32.
//! - WebP: the RIFF size field against the file size.
//! - ISO-BMFF: top-level box sizes against the file size (a cut-off `mdat`).

use std::io::{self, BufRead, BufReader, Read, Seek};

use super::{Format, Level, Report, Source, Verdict, n, printable};

pub(super) fn jpeg<R: Read + Seek>(src: &mut Source<'_, R>, level: Level) -> io::Result<Report> {
    let size = src.size();
    // Fast, for the common file that ends with EOI: walk only the segments
    // up to the first scan. A cut-off file cannot end with FF D9 unless it
    // was cut right after an EOI inside a header segment (an embedded
    // thumbnail), and the header walk catches that one; a file with
    // trailing data or without a final EOI gets the whole walk.
    let (_, tail) = src.tail(2)?;
    let header_only = level == Level::Fast && tail == [0xff, 0xd9];
    let stream = src.stream_from(2)?;
    let cap = if header_only { 16 * 1024 } else { 256 * 1024 };
    let mut r = BufReader::with_capacity(cap, stream);
    let mut pos = 2u64;
    let cut = |pos: u64| {
        Verdict::Damaged(format!(
            "JPEG has no end-of-image marker: its data stops at byte {} (the image was cut off)",
            n(pos.min(size))
        ))
    };
    // Reads one byte; None at the end of the file.
    fn byte<B: BufRead>(r: &mut B, pos: &mut u64) -> io::Result<Option<u8>> {
        let buf = r.fill_buf()?;
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        r.consume(1);
        *pos += 1;
        Ok(Some(b))
    }
    fn skip<B: BufRead>(r: &mut B, pos: &mut u64, mut len: u64) -> io::Result<bool> {
        while len > 0 {
            let buf = r.fill_buf()?;
            if buf.is_empty() {
                return Ok(false);
            }
            let k = (buf.len() as u64).min(len) as usize;
            r.consume(k);
            *pos += k as u64;
            len -= k as u64;
        }
        Ok(true)
    }
    // A marker found inside entropy-coded data, to handle next.
    let mut pending: Option<u8> = None;
    loop {
        let marker = match pending.take() {
            Some(m) => m,
            None => {
                // Find 0xFF (skipping stray bytes), then skip fill bytes.
                let Some(mut b) = byte(&mut r, &mut pos)? else {
                    return Ok(Report::new(Format::Jpeg, cut(pos), Level::Fast));
                };
                while b != 0xff {
                    match byte(&mut r, &mut pos)? {
                        Some(x) => b = x,
                        None => return Ok(Report::new(Format::Jpeg, cut(pos), Level::Fast)),
                    }
                }
                let mut m = 0xff;
                while m == 0xff {
                    match byte(&mut r, &mut pos)? {
                        Some(x) => m = x,
                        None => return Ok(Report::new(Format::Jpeg, cut(pos), Level::Fast)),
                    }
                }
                m
            }
        };
        match marker {
            0xd9 => return Ok(Report::new(Format::Jpeg, Verdict::Sound, Level::Fast)),
            0x00 | 0x01 | 0xd0..=0xd8 => continue,
            _ => {}
        }
        let at = pos - 2;
        let (Some(hi), Some(lo)) = (byte(&mut r, &mut pos)?, byte(&mut r, &mut pos)?) else {
            return Ok(Report::new(Format::Jpeg, cut(pos), Level::Fast));
        };
        let len = u16::from_be_bytes([hi, lo]) as u64;
        if len < 2 {
            return Ok(Report::new(
                Format::Jpeg,
                Verdict::Damaged(format!(
                    "JPEG marker segment FF{marker:02X} at byte {} has an impossible length {len}: the image is corrupt",
                    n(at)
                )),
                Level::Fast,
            ));
        }
        if !skip(&mut r, &mut pos, len - 2)? {
            return Ok(Report::new(Format::Jpeg, cut(pos), Level::Fast));
        }
        if marker != 0xda {
            continue;
        }
        if header_only && pos + 2 <= size {
            return Ok(Report::new(Format::Jpeg, Verdict::Sound, Level::Fast));
        }
        // Entropy-coded data: up to the next marker that is not a stuffed
        // zero or a restart marker.
        loop {
            let buf = r.fill_buf()?;
            if buf.is_empty() {
                return Ok(Report::new(Format::Jpeg, cut(pos), Level::Fast));
            }
            let Some(i) = memchr::memchr(0xff, buf) else {
                let k = buf.len();
                r.consume(k);
                pos += k as u64;
                continue;
            };
            r.consume(i + 1);
            pos += i as u64 + 1;
            let mut next = 0xff;
            while next == 0xff {
                match byte(&mut r, &mut pos)? {
                    Some(x) => next = x,
                    None => return Ok(Report::new(Format::Jpeg, cut(pos), Level::Fast)),
                }
            }
            if next == 0x00 || (0xd0..=0xd7).contains(&next) {
                continue;
            }
            pending = Some(next);
            break;
        }
    }
}

fn be32(b: &[u8], at: usize) -> u64 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as u64
}

pub(super) fn png<R: Read + Seek>(src: &mut Source<'_, R>, level: Level) -> io::Result<Report> {
    let size = src.size();
    let done = |v| Ok(Report::new(Format::Png, v, level));
    let mut pos = 8u64;
    let mut first = true;
    loop {
        let h = src.read_at(pos, 8)?;
        if h.len() < 8 {
            return done(Verdict::Damaged(format!(
                "PNG has no IEND chunk: the file ends at byte {} (the image was cut off)",
                n(size)
            )));
        }
        let len = be32(&h, 0);
        let kind = &h[4..8];
        if len > 0x7fff_ffff || !kind.iter().all(|b| b.is_ascii_alphabetic()) {
            return done(Verdict::Damaged(format!(
                "PNG chunk header at byte {} is corrupt: the image is corrupt",
                n(pos)
            )));
        }
        let name = printable(kind);
        if first && kind != b"IHDR" {
            return done(Verdict::Damaged(
                "PNG does not start with its IHDR chunk: the image is corrupt".into(),
            ));
        }
        first = false;
        let end = pos + 8 + len + 4;
        if end > size {
            return done(Verdict::Damaged(format!(
                "PNG ends at byte {} inside its '{name}' chunk ({} bytes at byte {}): the image was cut off",
                n(size),
                n(len),
                n(pos)
            )));
        }
        if level == Level::Full {
            let stored = src.read_at(pos + 8 + len, 4)?;
            let stored = be32(&stored, 0) as u32;
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(kind);
            let mut off = pos + 8;
            while off < pos + 8 + len {
                let k = ((pos + 8 + len - off) as usize).min(1 << 20);
                let chunk = src.read_at(off, k)?;
                if chunk.len() < k {
                    return done(Verdict::Undecided("file shrank while being checked".into()));
                }
                hasher.update(&chunk);
                off += k as u64;
            }
            if hasher.finalize() != stored {
                return done(Verdict::Damaged(format!(
                    "PNG chunk '{name}' at byte {} fails its CRC32: the image is corrupt",
                    n(pos)
                )));
            }
        }
        if kind == b"IEND" {
            return done(Verdict::Sound);
        }
        pos = end;
    }
}

pub(super) fn webp<R: Read + Seek>(src: &mut Source<'_, R>) -> io::Result<Report> {
    let size = src.size();
    let h = src.read_at(0, 12)?;
    let declared = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as u64 + 8;
    let verdict = if declared > size {
        Verdict::Damaged(format!(
            "WebP file declares {} bytes but ends at byte {}: the image was cut off",
            n(declared),
            n(size)
        ))
    } else {
        Verdict::Sound
    };
    Ok(Report::new(Format::Webp, verdict, Level::Fast))
}

pub(super) fn isobmff<R: Read + Seek>(src: &mut Source<'_, R>) -> io::Result<Report> {
    let size = src.size();
    let done = |v| Ok(Report::new(Format::IsoBmff, v, Level::Fast));
    let mut pos = 0u64;
    while pos < size {
        let h = src.read_at(pos, 16)?;
        if h.len() < 8 {
            return done(Verdict::Undecided(format!(
                "{} stray bytes after the last box",
                h.len()
            )));
        }
        let kind = &h[4..8];
        if !kind.iter().all(|&b| b.is_ascii_graphic() || b == b' ') {
            return done(Verdict::Undecided(format!("no box header at byte {pos}")));
        }
        let name = printable(kind);
        let mut len = be32(&h, 0);
        if len == 0 {
            return done(Verdict::Sound); // the last box runs to the end
        }
        if len == 1 {
            if h.len() < 16 {
                return done(Verdict::Damaged(format!(
                    "box '{name}' header at byte {} is cut off: the file ends at byte {}",
                    n(pos),
                    n(size)
                )));
            }
            len = u64::from_be_bytes(h[8..16].try_into().expect("8 bytes"));
        }
        if len < 8 {
            return done(Verdict::Undecided(format!(
                "box '{name}' at byte {pos} is too short"
            )));
        }
        if pos.saturating_add(len) > size {
            return done(Verdict::Damaged(format!(
                "box '{name}' at byte {} declares {} bytes but the file ends at byte {}: the file was cut off",
                n(pos),
                n(len),
                n(size)
            )));
        }
        pos += len;
    }
    done(Verdict::Sound)
}
