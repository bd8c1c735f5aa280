//! Compressed streams: gzip, zstd, xz, bzip2.
//!
//! - gzip (RFC 1952): `fast` checks the header and that the trailer's ISIZE
//!   is possible for the compressed length (deflate expands at most 1032:1);
//!   an impossible one is confirmed by decompressing before it is reported
//!   (the file is then at most a few MiB). `full` decompresses every member
//!   with flate2, which checks each member's CRC32 and length.
//! - zstd (RFC 8878): `fast` walks frame headers and block headers, seeking
//!   over block contents, to the end of the file; `full` decompresses with
//!   libzstd (the `zstd` crate), which checks the optional content checksum.
//! - xz: `fast` checks the stream header and footer (magic, flags, CRC32)
//!   and that the footer's backward size points at an index; `full`
//!   decompresses every stream with lzma-rust2 (pure Rust), which checks
//!   the block checks (CRC32/CRC64/SHA-256) and the index.
//! - bzip2: `fast` looks for the end-of-stream marker (48 bits, not byte
//!   aligned) followed by the stream CRC and at most 7 padding bits at the
//!   end of the file; `full` decompresses every stream with the `bzip2`
//!   crate (libbz2-rs-sys, a pure-Rust port of libbzip2), which checks each
//!   block's and each stream's CRC.
//!
//! In `full`, a decompressed stream that is itself an SQL dump gets the
//! dump's trailer check (`pg_dump | gzip` is the most common backup).

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read, Seek};
use std::rc::Rc;

use super::sqldump::SqlScan;
use super::{Format, HEAD, Level, Report, Source, Verdict, n};

/// Deflate's largest expansion (a 258-byte match per ~2 bits).
const DEFLATE_MAX_RATIO: u64 = 1032;

/// Watches a decompressed stream for an SQL dump inside.
struct Inner {
    head: Vec<u8>,
    scan: Option<SqlScan>,
    format: Option<Format>,
    decided: bool,
}

impl Inner {
    fn new() -> Inner {
        Inner {
            head: Vec::new(),
            scan: None,
            format: None,
            decided: false,
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        if !self.decided {
            self.head.extend_from_slice(chunk);
            if self.head.len() < HEAD {
                return;
            }
            self.decide();
            return;
        }
        if let Some(scan) = &mut self.scan {
            scan.feed(chunk);
        }
    }

    fn decide(&mut self) {
        self.decided = true;
        let head = std::mem::take(&mut self.head);
        if let Some(f) = super::sqldump::sniff(&head[..head.len().min(HEAD)]) {
            let mut scan = SqlScan::new(f, true);
            scan.feed(&head);
            self.scan = Some(scan);
            self.format = Some(f);
        }
    }

    /// Apply what was seen inside to a report whose container is sound.
    fn finish(mut self, report: &mut Report, container: &str) {
        if !self.decided {
            self.decide();
        }
        let Some(scan) = self.scan else { return };
        report.inner = self.format;
        report.table_data = Some(scan.has_data());
        if let Verdict::Damaged(d) = scan.verdict(Some(container)) {
            report.verdict = Verdict::Damaged(d);
        }
    }
}

/// Parse a gzip member header at the start of `b`: its length, or why not.
enum Header {
    Len(usize),
    Truncated,
    Strange(String),
}

fn gzip_header(b: &[u8]) -> Header {
    if b.len() < 10 {
        return Header::Truncated;
    }
    let flg = b[3];
    if flg & 0xe0 != 0 {
        return Header::Strange(format!("reserved gzip flags {flg:#x}"));
    }
    let mut at = 10usize;
    if flg & 0x04 != 0 {
        if b.len() < at + 2 {
            return Header::Truncated;
        }
        at += 2 + u16::from_le_bytes([b[at], b[at + 1]]) as usize;
    }
    for bit in [0x08, 0x10] {
        if flg & bit != 0 {
            match b.get(at..).and_then(|r| memchr::memchr(0, r)) {
                Some(z) => at += z + 1,
                None if b.len() >= HEAD => {
                    return Header::Strange("gzip name or comment longer than the sniff".into());
                }
                None => return Header::Truncated,
            }
        }
    }
    if flg & 0x02 != 0 {
        at += 2;
    }
    if at > b.len() {
        return Header::Truncated;
    }
    Header::Len(at)
}

pub(super) fn gzip<R: Read + Seek>(src: &mut Source<'_, R>, level: Level) -> io::Result<Report> {
    let size = src.size();
    let head = src.read_at(0, HEAD)?;
    let header = match gzip_header(&head) {
        Header::Len(l) => l as u64,
        Header::Truncated => {
            return Ok(Report::new(
                Format::Gzip,
                Verdict::Damaged(format!(
                    "gzip file ends at byte {} inside its header: the file was cut off",
                    n(size)
                )),
                level,
            ));
        }
        Header::Strange(why) => {
            return Ok(Report::new(Format::Gzip, Verdict::Undecided(why), level));
        }
    };
    // The smallest member: header, an empty deflate block (2 bytes), trailer.
    if size < header + 2 + 8 {
        return Ok(Report::new(
            Format::Gzip,
            Verdict::Damaged(format!(
                "gzip stream ends at byte {} before its trailer: the file was cut off",
                n(size)
            )),
            level,
        ));
    }
    if level == Level::Full {
        return gzip_full(src, level);
    }
    let (_, tail) = src.tail(8)?;
    let isize = u32::from_le_bytes([tail[4], tail[5], tail[6], tail[7]]) as u64;
    let compressed = size - header - 8;
    let most = compressed.saturating_mul(DEFLATE_MAX_RATIO) + DEFLATE_MAX_RATIO;
    if most < 1 << 32 && isize > most {
        // Impossible for a whole stream; confirm by decompressing (the file
        // is under 4.2 MB here) so that trailing junk is not called damage.
        let mut report = gzip_full(src, Level::Fast)?;
        report.level = Level::Fast;
        return Ok(report);
    }
    Ok(Report::new(
        Format::Gzip,
        Verdict::Undecided(
            "a gzip stream's end is only proven by decompressing it (--checks full)".into(),
        ),
        level,
    ))
}

fn gzip_full<R: Read + Seek>(src: &mut Source<'_, R>, level: Level) -> io::Result<Report> {
    let size = src.size();
    let mut inner = Inner::new();
    let mut out = vec![0u8; 256 * 1024];
    let stream = src.stream_from(0)?;
    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    let mut member = 0u64;
    let mut member_start = 0u64;
    let verdict = loop {
        let mut dec = flate2::bufread::GzDecoder::new(reader);
        let res: io::Result<()> = (|| {
            loop {
                let got = dec.read(&mut out)?;
                if got == 0 {
                    return Ok(());
                }
                if member == 0 || inner.scan.is_some() {
                    inner.feed(&out[..got]);
                }
            }
        })();
        let consumed_to;
        {
            let r = dec.get_ref();
            consumed_to = r.get_ref().position() - r.buffer().len() as u64;
        }
        if let Err(e) = res {
            break gzip_error(&e, size, member, member_start, consumed_to);
        }
        reader = dec.into_inner();
        member += 1;
        let next = reader.fill_buf()?;
        if next.is_empty() {
            break Verdict::Sound;
        }
        if next.len() >= 2 && next[0] == 0x1f && next[1] == 0x8b {
            member_start = consumed_to;
            continue;
        }
        // Trailing bytes that are not a member: gzip ignores them (with a
        // warning); the stream itself is whole.
        break Verdict::Sound;
    };
    let mut report = Report::new(Format::Gzip, verdict, level);
    if report.verdict == Verdict::Sound {
        inner.finish(&mut report, "the gzip stream");
    }
    Ok(report)
}

fn gzip_error(e: &io::Error, size: u64, member: u64, member_start: u64, at: u64) -> Verdict {
    let which = if member > 0 {
        format!(" (member {} at byte {})", member + 1, n(member_start))
    } else {
        String::new()
    };
    let msg = e.to_string();
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Verdict::Damaged(format!(
            "gzip stream{which} ends at byte {} before its trailer: the file was cut off",
            n(size)
        ))
    } else if msg.contains("checksum") {
        Verdict::Damaged(format!(
            "gzip data{which} fails its CRC32/length check: the content is corrupt"
        ))
    } else if msg.contains("header") {
        Verdict::Damaged(format!("gzip member header{which} is invalid"))
    } else if e.kind() == io::ErrorKind::InvalidInput || e.kind() == io::ErrorKind::InvalidData {
        Verdict::Damaged(format!(
            "gzip data{which} is corrupt near byte {}: it cannot be decompressed ({msg})",
            n(at)
        ))
    } else {
        Verdict::Undecided(format!("gzip decompression stopped: {msg}"))
    }
}

pub(super) fn zstd<R: Read + Seek>(src: &mut Source<'_, R>, level: Level) -> io::Result<Report> {
    let size = src.size();
    let walked = zstd_walk(src, size)?;
    if walked != Verdict::Sound || level != Level::Full {
        return Ok(Report::new(Format::Zstd, walked, level));
    }
    let mut inner = Inner::new();
    let stream = src.stream_from(0)?;
    let verdict = match zstd::stream::read::Decoder::new(stream) {
        Ok(mut dec) => {
            let mut out = vec![0u8; 256 * 1024];
            loop {
                match dec.read(&mut out) {
                    Ok(0) => break Verdict::Sound,
                    Ok(got) => inner.feed(&out[..got]),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        break Verdict::Damaged(format!(
                            "zstd stream ends at byte {} inside a frame: the file was cut off",
                            n(size)
                        ));
                    }
                    Err(e)
                        if e.kind() == io::ErrorKind::Other
                            || e.kind() == io::ErrorKind::InvalidData =>
                    {
                        break Verdict::Damaged(format!("zstd data is corrupt: {e}"));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Err(e) => return Err(e),
    };
    let mut report = Report::new(Format::Zstd, verdict, level);
    if report.verdict == Verdict::Sound {
        inner.finish(&mut report, "the zstd stream");
    }
    Ok(report)
}

/// Walk zstd frames and blocks by their headers.
fn zstd_walk<R: Read + Seek>(src: &mut Source<'_, R>, size: u64) -> io::Result<Verdict> {
    let cut = |what: &str| {
        Verdict::Damaged(format!(
            "zstd stream ends at byte {} inside {what}: the file was cut off",
            n(size)
        ))
    };
    let mut pos = 0u64;
    let mut frames = 0u64;
    while pos < size {
        let magic = src.read_at(pos, 4)?;
        if magic.len() < 4 {
            return Ok(if frames == 0 {
                cut("its frame header")
            } else {
                Verdict::Undecided("bytes after the last zstd frame".into())
            });
        }
        let m = u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]);
        if (0x184D2A50..=0x184D2A5F).contains(&m) {
            let len = src.read_at(pos + 4, 4)?;
            if len.len() < 4 {
                return Ok(cut("a skippable frame header"));
            }
            let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as u64;
            pos += 8 + len;
            if pos > size {
                return Ok(cut("a skippable frame"));
            }
            frames += 1;
            continue;
        }
        if m != 0xFD2FB528 {
            return Ok(Verdict::Undecided(format!(
                "bytes at {} after frame {frames} are not a zstd frame",
                n(pos)
            )));
        }
        let fhd = src.read_at(pos + 4, 1)?;
        let Some(&fhd) = fhd.first() else {
            return Ok(cut("a frame header"));
        };
        if fhd & 0x08 != 0 {
            return Ok(Verdict::Damaged(format!(
                "zstd frame {} at byte {} has its reserved header bit set: the data is corrupt",
                frames + 1,
                n(pos)
            )));
        }
        let single = fhd & 0x20 != 0;
        let did = [0u64, 1, 2, 4][(fhd & 3) as usize];
        let fcs = match fhd >> 6 {
            0 => u64::from(single),
            1 => 2,
            2 => 4,
            _ => 8,
        };
        let checksum = fhd & 0x04 != 0;
        pos += 5 + u64::from(!single) + did + fcs;
        if pos > size {
            return Ok(cut("a frame header"));
        }
        loop {
            let bh = src.read_at(pos, 3)?;
            if bh.len() < 3 {
                return Ok(cut(&format!(
                    "frame {}: a block header is missing",
                    frames + 1
                )));
            }
            let v = u32::from_le_bytes([bh[0], bh[1], bh[2], 0]);
            let last = v & 1 != 0;
            let kind = (v >> 1) & 3;
            let bsize = (v >> 3) as u64;
            let body = match kind {
                0 | 2 => bsize,
                1 => 1,
                _ => {
                    return Ok(Verdict::Damaged(format!(
                        "zstd block at byte {} has the reserved block type: the data is corrupt",
                        n(pos)
                    )));
                }
            };
            pos += 3 + body;
            if pos > size {
                return Ok(cut(&format!("frame {}, in a block", frames + 1)));
            }
            if last {
                break;
            }
        }
        if checksum {
            pos += 4;
            if pos > size {
                return Ok(cut(&format!("frame {}'s checksum", frames + 1)));
            }
        }
        frames += 1;
    }
    Ok(Verdict::Sound)
}

pub(super) fn xz<R: Read + Seek>(src: &mut Source<'_, R>, level: Level) -> io::Result<Report> {
    let walked = xz_structure(src)?;
    if walked.verdict != Verdict::Sound || level != Level::Full {
        return Ok(walked);
    }
    decompress_all(src, Format::Xz, "the xz stream", |r| {
        Box::new(lzma_rust2::XzReader::new(r, true))
    })
}

/// Decompresses the whole file with `decoder`, which must check the
/// format's own checksums; a dump inside gets the dump checks.
fn decompress_all<'s, 'a, R: Read + Seek>(
    src: &'s mut Source<'a, R>,
    format: Format,
    container: &str,
    decoder: impl FnOnce(BufReader<Watched<'s, 'a, R>>) -> Box<dyn Read + 's>,
) -> io::Result<Report> {
    let size = src.size();
    let failed = Rc::new(Cell::new(None));
    let mut inner = Inner::new();
    let verdict = {
        let stream = src.stream_from(0)?;
        let mut dec = decoder(BufReader::with_capacity(
            256 * 1024,
            Watched {
                stream,
                failed: failed.clone(),
            },
        ));
        let mut out = vec![0u8; 256 * 1024];
        loop {
            match dec.read(&mut out) {
                Ok(0) => break Verdict::Sound,
                Ok(got) => inner.feed(&out[..got]),
                Err(e) => {
                    if let Some(real) = failed.take() {
                        // The file could not be read: not damage.
                        return Err(real);
                    }
                    break if e.kind() == io::ErrorKind::UnexpectedEof {
                        Verdict::Damaged(format!(
                            "{} stream ends at byte {} before its end: the file was cut off",
                            format.name(),
                            n(size)
                        ))
                    } else {
                        Verdict::Damaged(format!("{} data is corrupt: {e}", format.name()))
                    };
                }
            }
        }
    };
    let mut report = Report::new(format, verdict, Level::Full);
    if report.verdict == Verdict::Sound {
        inner.finish(&mut report, container);
    }
    Ok(report)
}

/// A file stream that remembers a real read error, so a decoder's error
/// can be told apart from the disk's.
struct Watched<'s, 'a, R: Read + Seek> {
    stream: super::Stream<'s, 'a, R>,
    failed: Rc<Cell<Option<io::Error>>>,
}

impl<R: Read + Seek> Read for Watched<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.stream.read(buf) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.failed.set(Some(e));
                Err(copy)
            }
            other => other,
        }
    }
}

fn xz_structure<R: Read + Seek>(src: &mut Source<'_, R>) -> io::Result<Report> {
    let size = src.size();
    let done = |v| Ok(Report::new(Format::Xz, v, Level::Fast));
    let head = src.read_at(0, 12)?;
    if head.len() < 12 {
        return done(Verdict::Damaged(format!(
            "xz file ends at byte {} inside its header: the file was cut off",
            n(size)
        )));
    }
    if crc32fast::hash(&head[6..8]).to_le_bytes() != head[8..12] {
        return done(Verdict::Damaged(
            "xz stream header fails its CRC32: the file is corrupt".into(),
        ));
    }
    // Stream padding: zero bytes in multiples of four at the end (the last
    // 4 KiB, or 64 KiB when those are all padding).
    let (mut start, mut tail) = src.tail(4096)?;
    if tail.len() == 4096 && tail[4084..].iter().all(|&b| b == 0) {
        (start, tail) = src.tail(64 * 1024)?;
    }
    let mut end = tail.len();
    while end >= 4 && tail[end - 4..end] == [0, 0, 0, 0] {
        end -= 4;
    }
    if end < 12 || start + (end as u64) < 24 {
        return done(Verdict::Undecided(
            "too short for an xz stream footer".into(),
        ));
    }
    let footer = &tail[end - 12..end];
    if &footer[10..12] != b"YZ" {
        return done(Verdict::Damaged(format!(
            "xz stream ends at byte {} without its footer: the file was cut off",
            n(size)
        )));
    }
    if crc32fast::hash(&footer[4..10]).to_le_bytes() != footer[0..4] {
        return done(Verdict::Damaged(
            "xz stream footer fails its CRC32: the file is corrupt".into(),
        ));
    }
    let backward =
        (u32::from_le_bytes([footer[4], footer[5], footer[6], footer[7]]) as u64 + 1) * 4;
    let footer_at = start + end as u64 - 12;
    let Some(index_at) = footer_at.checked_sub(backward) else {
        return done(Verdict::Damaged(
            "xz footer points before the start of the file".into(),
        ));
    };
    if index_at < 12 {
        return done(Verdict::Damaged(
            "xz footer points before the start of the file".into(),
        ));
    }
    let ind = src.read_at(index_at, 1)?;
    if ind.first() != Some(&0) {
        return done(Verdict::Damaged(format!(
            "xz index expected at byte {} is not there: the file is corrupt",
            n(index_at)
        )));
    }
    done(Verdict::Sound)
}

pub(super) fn bzip2<R: Read + Seek>(src: &mut Source<'_, R>, level: Level) -> io::Result<Report> {
    let marked = bzip2_marker(src)?;
    if marked.verdict != Verdict::Sound || level != Level::Full {
        return Ok(marked);
    }
    decompress_all(src, Format::Bzip2, "the bzip2 stream", |r| {
        Box::new(bzip2::read::MultiBzDecoder::new(r))
    })
}

fn bzip2_marker<R: Read + Seek>(src: &mut Source<'_, R>) -> io::Result<Report> {
    let size = src.size();
    // End-of-stream: the 48-bit magic 0x177245385090 and a 32-bit CRC, not
    // byte aligned, then 0-7 padding bits. It is looked for at every bit
    // offset of the last 64 bytes, so a few bytes of trailing junk (which
    // bzip2 ignores) are not called damage; a cut-off stream has no marker.
    let (_, tail) = src.tail(64)?;
    // A 48-bit window slides over the bits; the marker must leave room for
    // the 32-bit CRC after it.
    let total = tail.len() * 8;
    let last_start = total.saturating_sub(48 + 32 - 1);
    let mut window: u64 = 0;
    let mut found = false;
    for i in 0..(last_start + 47).min(total) {
        let bit = (tail[i / 8] >> (7 - i % 8)) & 1;
        window = ((window << 1) | bit as u64) & 0xffff_ffff_ffff;
        if i >= 47 && i - 47 < last_start && window == 0x1772_4538_5090 {
            found = true;
            break;
        }
    }
    let verdict = if found {
        Verdict::Sound
    } else {
        Verdict::Damaged(format!(
            "bzip2 stream ends at byte {} without its end-of-stream marker: the file was cut off",
            n(size)
        ))
    };
    Ok(Report::new(Format::Bzip2, verdict, Level::Fast))
}
