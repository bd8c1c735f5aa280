//! Structural checks: is a file broken on both sides?
//!
//! Comparing hashes proves that a backup equals production; it cannot see a
//! file that was already broken when it was copied (a dump cut off by a full
//! disk, a truncated gzip, a JPEG missing its tail). This module looks inside
//! one open file and says whether its structure is whole.
//!
//! The format is decided by the content (magic bytes, a dump's header line),
//! never by the file name. Every check answers one of three ways:
//!
//! - [`Verdict::Sound`]: the structure this level looks at is whole;
//! - [`Verdict::Damaged`]: it is provably broken, with a detail a person can
//!   act on ("gzip stream ends at byte 73,400,320 before its trailer");
//! - [`Verdict::Undecided`]: this check cannot tell. A false `damaged` costs
//!   as much trust as a false OK, so whatever cannot be decided is reported
//!   as nothing at all.
//!
//! A file whose format is not recognised gives `Ok(None)`.
//!
//! Levels: [`Level::Fast`] reads headers, trailers and structure (seeking over
//! payloads where the format allows it); [`Level::Full`] also decompresses
//! streams and checks every CRC, within a per-run byte [`Budget`] — a file
//! that does not fit in what is left of the budget gets the fast check.
//!
//! Pure: no index, no terminal, no environment. Reads only through the
//! `Read + Seek` it is given.

mod archive;
mod compressed;
mod data;
mod image;
mod pgcustom;
pub mod sets;
mod sqldump;
mod tiff;

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};

/// How deep to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Level {
    /// No structural checks.
    None,
    /// Headers, trailers and structure: cheap (the default).
    #[default]
    Fast,
    /// Also decompress and verify every checksum: reads every byte.
    Full,
}

impl Level {
    /// The stable name used on the command line and in the index.
    pub fn name(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Fast => "fast",
            Level::Full => "full",
        }
    }

    /// Parse a stable name (`none`, `fast`, `full`).
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "none" => Some(Level::None),
            "fast" => Some(Level::Fast),
            "full" => Some(Level::Full),
            _ => None,
        }
    }
}

/// The bytes a run may still spend on `full` checks (shared by threads).
#[derive(Debug)]
pub struct Budget {
    left: AtomicU64,
}

impl Budget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> Budget {
        Budget {
            left: AtomicU64::new(bytes),
        }
    }

    /// No limit.
    pub fn unlimited() -> Budget {
        Budget::new(u64::MAX)
    }

    /// Reserve `n` bytes; false (and nothing reserved) when fewer are left.
    pub fn take(&self, n: u64) -> bool {
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(n)
            })
            .is_ok()
    }

    /// What is left.
    pub fn left(&self) -> u64 {
        self.left.load(Ordering::Relaxed)
    }
}

/// A format this module knows how to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `pg_dump` plain-text output.
    PgDump,
    /// `pg_dumpall` output.
    PgDumpAll,
    /// `mysqldump` output.
    MysqlDump,
    /// `mariadb-dump` output.
    MariadbDump,
    /// `pg_dump -Fc` (custom format) archive.
    PgCustom,
    /// `toc.dat` of a `pg_dump -Fd` (directory format) archive; the
    /// directory is checked as a set ([`sets::pgdir`]).
    PgDirectory,
    /// A pg_basebackup directory verified against its `backup_manifest`
    /// ([`sets::manifest`]).
    PgBasebackup,
    /// gzip stream (one or more members).
    Gzip,
    /// Zstandard stream (one or more frames).
    Zstd,
    /// xz stream.
    Xz,
    /// bzip2 stream.
    Bzip2,
    /// tar archive (ustar / GNU / pax).
    Tar,
    /// zip archive (and zip-based formats: jar, docx, ...).
    Zip,
    /// JPEG image.
    Jpeg,
    /// PNG image.
    Png,
    /// TIFF image (and TIFF-based raw formats: DNG, NEF, CR2...).
    Tiff,
    /// WebP image (RIFF container).
    Webp,
    /// ISO base media file (MP4, MOV, HEIC, AVIF): top-level boxes.
    IsoBmff,
    /// SQLite 3 database file.
    Sqlite,
    /// Apache Parquet file.
    Parquet,
}

impl Format {
    /// The stable name used in findings and in the index.
    pub fn name(self) -> &'static str {
        match self {
            Format::PgDump => "pg_dump",
            Format::PgDumpAll => "pg_dumpall",
            Format::MysqlDump => "mysqldump",
            Format::MariadbDump => "mariadb-dump",
            Format::PgCustom => "pg_dump-custom",
            Format::PgDirectory => "pg_dump-directory",
            Format::PgBasebackup => "pg_basebackup",
            Format::Gzip => "gzip",
            Format::Zstd => "zstd",
            Format::Xz => "xz",
            Format::Bzip2 => "bzip2",
            Format::Tar => "tar",
            Format::Zip => "zip",
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Tiff => "tiff",
            Format::Webp => "webp",
            Format::IsoBmff => "iso-bmff",
            Format::Sqlite => "sqlite",
            Format::Parquet => "parquet",
        }
    }

    /// Parse a stable name.
    pub fn parse(s: &str) -> Option<Format> {
        ALL_FORMATS.iter().copied().find(|f| f.name() == s)
    }

    /// Whether this format is an SQL dump (for the empty-dump rule).
    pub fn is_dump(self) -> bool {
        matches!(
            self,
            Format::PgDump
                | Format::PgDumpAll
                | Format::MysqlDump
                | Format::MariadbDump
                | Format::PgCustom
                | Format::PgDirectory
        )
    }
}

const ALL_FORMATS: [Format; 20] = [
    Format::PgDump,
    Format::PgDumpAll,
    Format::MysqlDump,
    Format::MariadbDump,
    Format::PgCustom,
    Format::PgDirectory,
    Format::PgBasebackup,
    Format::Tiff,
    Format::Gzip,
    Format::Zstd,
    Format::Xz,
    Format::Bzip2,
    Format::Tar,
    Format::Zip,
    Format::Jpeg,
    Format::Png,
    Format::Webp,
    Format::IsoBmff,
    Format::Sqlite,
    Format::Parquet,
];

/// What a check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The structure looked at is whole.
    Sound,
    /// Provably broken; the detail says what is wrong in plain words.
    Damaged(String),
    /// Cannot decide (why, for verbose listings); never reported as damage.
    Undecided(String),
}

/// The outcome of checking one file of a known format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The format found by content.
    pub format: Format,
    /// The conclusion.
    pub verdict: Verdict,
    /// The level actually applied (`Full` may fall back to `Fast` when the
    /// budget is spent).
    pub level: Level,
    /// Bytes read by the check (including the format sniff).
    pub bytes_read: u64,
    /// For dumps: whether table data (`COPY … FROM stdin`, `INSERT INTO`, a
    /// custom archive's TABLE DATA) was seen. `None` when not known.
    pub table_data: Option<bool>,
    /// For compressed streams checked in full: the format found inside.
    pub inner: Option<Format>,
}

impl Report {
    fn new(format: Format, verdict: Verdict, level: Level) -> Report {
        Report {
            format,
            verdict,
            level,
            bytes_read: 0,
            table_data: None,
            inner: None,
        }
    }

    /// The damage detail, if damaged.
    pub fn damage(&self) -> Option<&str> {
        match &self.verdict {
            Verdict::Damaged(d) => Some(d),
            _ => None,
        }
    }
}

/// The empty-backup rule: a complete dump with no table data whose previous
/// version had data. Returns the detail of the `damaged` finding.
pub fn empty_dump_detail(report: &Report, previous_had_data: bool) -> Option<String> {
    let format = report.inner.unwrap_or(report.format);
    if !previous_had_data || !format.is_dump() || report.verdict != Verdict::Sound {
        return None;
    }
    if report.table_data != Some(false) {
        return None;
    }
    let what = match format {
        Format::PgCustom | Format::PgDirectory => "no TABLE DATA entry",
        Format::MysqlDump | Format::MariadbDump => "no INSERT statement",
        _ => "no COPY or INSERT statement",
    };
    Some(format!(
        "the dump holds no table data ({what}) while its previous version did: \
         it may be a dump of an empty database"
    ))
}

/// How many bytes the sniff reads from the start of a file.
const HEAD: usize = 8192;

/// Check one file. `size` is its length as of the open (the check never reads
/// past it). `Ok(None)`: unknown format or `Level::None`.
pub fn check<R: Read + Seek>(
    file: &mut R,
    size: u64,
    level: Level,
    budget: &Budget,
) -> io::Result<Option<Report>> {
    if level == Level::None {
        return Ok(None);
    }
    let mut src = Source::new(file, size);
    let head = src.read_at(0, HEAD.min(size as usize))?;
    let Some(format) = sniff(&head, size) else {
        return Ok(None);
    };
    // Full checks that read every byte need the budget for the whole file.
    let level = if level == Level::Full && needs_full_read(format) && !budget.take(size) {
        Level::Fast
    } else {
        level
    };
    let mut report = match format {
        Format::PgDump | Format::PgDumpAll | Format::MysqlDump | Format::MariadbDump => {
            sqldump::check(&mut src, format, &head, level)?
        }
        Format::PgCustom | Format::PgDirectory => pgcustom::check(&mut src, level)?,
        // Only ever the format of a set check.
        Format::PgBasebackup => return Ok(None),
        Format::Tiff => tiff::check(&mut src)?,
        Format::Gzip => compressed::gzip(&mut src, level)?,
        Format::Zstd => compressed::zstd(&mut src, level)?,
        Format::Xz => compressed::xz(&mut src, level)?,
        Format::Bzip2 => compressed::bzip2(&mut src, level)?,
        Format::Tar => archive::tar(&mut src)?,
        Format::Zip => archive::zip(&mut src, level)?,
        Format::Jpeg => image::jpeg(&mut src, level)?,
        Format::Png => image::png(&mut src, level)?,
        Format::Webp => image::webp(&mut src)?,
        Format::IsoBmff => image::isobmff(&mut src)?,
        Format::Sqlite => data::sqlite(&mut src, &head)?,
        Format::Parquet => data::parquet(&mut src)?,
    };
    report.bytes_read = src.bytes_read;
    Ok(Some(report))
}

/// Formats whose `full` check reads every byte.
fn needs_full_read(format: Format) -> bool {
    matches!(
        format,
        Format::Gzip
            | Format::Zstd
            | Format::Xz
            | Format::Bzip2
            | Format::Png
            | Format::Zip
            | Format::PgCustom
            | Format::PgDump
            | Format::PgDumpAll
            | Format::MysqlDump
            | Format::MariadbDump
    )
}

/// Decide the format from the first bytes. Extensions are never consulted.
fn sniff(head: &[u8], size: u64) -> Option<Format> {
    if let Some(f) = sqldump::sniff(head) {
        return Some(f);
    }
    if head.starts_with(b"PGDMP") {
        return Some(Format::PgCustom);
    }
    if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        return Some(Format::Gzip);
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Some(Format::Zstd);
    }
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        return Some(Format::Xz);
    }
    if head.len() >= 10
        && head.starts_with(b"BZh")
        && (b'1'..=b'9').contains(&head[3])
        && head[4..10] == [0x31, 0x41, 0x59, 0x26, 0x53, 0x59]
    {
        return Some(Format::Bzip2);
    }
    if head.starts_with(b"PK\x03\x04") || (head.starts_with(b"PK\x05\x06") && size == 22) {
        return Some(Format::Zip);
    }
    if head.starts_with(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]) {
        return Some(Format::Png);
    }
    if head.starts_with(&[0xff, 0xd8, 0xff]) {
        return Some(Format::Jpeg);
    }
    if tiff::sniff(head) {
        return Some(Format::Tiff);
    }
    if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        return Some(Format::Webp);
    }
    if head.len() >= 16 && &head[4..8] == b"ftyp" {
        return Some(Format::IsoBmff);
    }
    if head.starts_with(b"SQLite format 3\0") && head.len() >= 100 {
        return Some(Format::Sqlite);
    }
    if head.starts_with(b"PAR1") && size >= 12 {
        return Some(Format::Parquet);
    }
    if archive::is_tar_header(head) {
        return Some(Format::Tar);
    }
    None
}

/// A positioned reader over the file that counts what it reads and never
/// reads past `size`.
pub(crate) struct Source<'a, R: Read + Seek> {
    file: &'a mut R,
    size: u64,
    pos: u64,
    bytes_read: u64,
}

impl<'a, R: Read + Seek> Source<'a, R> {
    fn new(file: &'a mut R, size: u64) -> Self {
        Source {
            file,
            size,
            pos: u64::MAX,
            bytes_read: 0,
        }
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Read up to `len` bytes at `offset` (fewer only at the end of the file).
    pub(crate) fn read_at(&mut self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let len = len.min(self.size.saturating_sub(offset) as usize);
        // Not zero-filled first: every file is sniffed, so this is hot.
        let mut buf = Vec::with_capacity(len);
        if len == 0 {
            return Ok(buf);
        }
        if self.pos != offset {
            self.file.seek(SeekFrom::Start(offset))?;
        }
        (&mut *self.file).take(len as u64).read_to_end(&mut buf)?;
        let got = buf.len();
        self.pos = offset + got as u64;
        self.bytes_read += got as u64;
        Ok(buf)
    }

    /// The last `len` bytes of the file (fewer if the file is shorter).
    pub(crate) fn tail(&mut self, len: usize) -> io::Result<(u64, Vec<u8>)> {
        let start = self.size.saturating_sub(len as u64);
        let buf = self.read_at(start, len)?;
        Ok((start, buf))
    }

    /// A sequential reader from `offset` to the end of the file, counting
    /// into this source.
    pub(crate) fn stream_from(&mut self, offset: u64) -> io::Result<Stream<'_, 'a, R>> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.pos = offset;
        Ok(Stream { src: self })
    }
}

/// Sequential reads from a [`Source`] (bounded by its size).
pub(crate) struct Stream<'s, 'a, R: Read + Seek> {
    src: &'s mut Source<'a, R>,
}

impl<R: Read + Seek> Read for Stream<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.src.size.saturating_sub(self.src.pos);
        let want = (buf.len() as u64).min(left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.src.file.read(&mut buf[..want])?;
        self.src.pos += n as u64;
        self.src.bytes_read += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Stream<'_, '_, R> {
    /// Where the next read starts.
    pub(crate) fn position(&self) -> u64 {
        self.src.pos
    }
}

/// A byte count with thousands separators: 73400320 -> "73,400,320".
pub(crate) fn n(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Printable form of a short name read from a file (tar entry, chunk type).
pub(crate) fn printable(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(120)
        .collect();
    s
}

#[cfg(test)]
mod tests;
