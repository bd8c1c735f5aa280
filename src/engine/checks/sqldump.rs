//! SQL text dumps: pg_dump / pg_dumpall plain output, mysqldump and
//! mariadb-dump.
//!
//! Facts relied on (from the tools' sources, and tested against the
//! installed pg_dump):
//! - pg_dump writes `-- PostgreSQL database dump` near the top and
//!   `-- PostgreSQL database dump complete` at the end; since the August 2025
//!   minor releases (17.6, 16.10, 15.14, ...) a `\restrict KEY` line precedes
//!   the body and `\unrestrict KEY` follows the trailer, so the trailer is
//!   looked for among the last lines, never as the last line. pg_dumpall
//!   uses `-- PostgreSQL database cluster dump` / `... complete`.
//! - mysqldump / mariadb-dump start with `-- MySQL dump` / `-- MariaDB dump`
//!   and end with `-- Dump completed` (plus ` on DATE`) when comments are on
//!   (the default). With `--skip-comments` there is neither header nor
//!   footer, so such a dump is not recognised and not checked.
//! - Table data is `COPY … FROM stdin;` (or `INSERT INTO` with `--inserts`)
//!   for PostgreSQL and `INSERT INTO` / `REPLACE INTO` for MySQL. An empty
//!   table still gets its COPY, so "no data statement" means "no tables".

use std::io::{self, Read, Seek};

use memchr::memmem;

use super::{Format, Level, Report, Source, Verdict, n};

/// Lines at the top of a file among which the header must appear.
const HEADER_LINES: usize = 12;
/// How much of the end of a dump is searched for its trailer.
const TAIL: usize = 64 * 1024;
/// In `fast` mode, how far the scan for a first data statement may go.
const FAST_DATA_SCAN: u64 = 256 * 1024 * 1024;

/// Recognise a dump by its header comment.
pub(super) fn sniff(head: &[u8]) -> Option<Format> {
    // Every file is sniffed: a cheap filter first. Each header line this
    // looks for starts with "-- ".
    let span = memchr::memchr_iter(b'\n', head)
        .nth(HEADER_LINES - 1)
        .unwrap_or(head.len());
    memchr::memmem::find(&head[..span], b"-- ")?;
    for line in head.split(|&b| b == b'\n').take(HEADER_LINES) {
        let line = trim_cr(line);
        match line {
            b"-- PostgreSQL database dump" => return Some(Format::PgDump),
            b"-- PostgreSQL database cluster dump" => return Some(Format::PgDumpAll),
            _ if line.starts_with(b"-- MySQL dump ") => return Some(Format::MysqlDump),
            _ if line.starts_with(b"-- MariaDB dump ") => return Some(Format::MariadbDump),
            _ => {}
        }
    }
    None
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn tool(format: Format) -> &'static str {
    match format {
        Format::PgDumpAll => "pg_dumpall",
        Format::MysqlDump => "mysqldump",
        Format::MariadbDump => "mariadb-dump",
        _ => "pg_dump",
    }
}

fn trailer(format: Format) -> &'static str {
    match format {
        Format::PgDumpAll => "-- PostgreSQL database cluster dump complete",
        Format::MysqlDump | Format::MariadbDump => "-- Dump completed",
        _ => "-- PostgreSQL database dump complete",
    }
}

/// Whether `tail` (the last bytes of the dump) holds the trailer among its
/// last lines, followed only by blank lines, comments and psql
/// meta-commands (`\unrestrict KEY`).
fn has_trailer(format: Format, tail: &[u8]) -> bool {
    let want = trailer(format).as_bytes();
    let mysql = matches!(format, Format::MysqlDump | Format::MariadbDump);
    // Walk lines from the end.
    for line in tail.rsplit(|&b| b == b'\n') {
        let line = trim_cr(line);
        let hit = if mysql {
            line == want || line.starts_with(b"-- Dump completed on ")
        } else {
            line == want
        };
        if hit {
            return true;
        }
        let trimmed = line.trim_ascii();
        let allowed =
            trimmed.is_empty() || trimmed.starts_with(b"--") || trimmed.starts_with(b"\\");
        if !allowed {
            return false;
        }
    }
    false
}

/// Streams a dump's bytes: looks for the first table-data statement and
/// keeps the last bytes for the trailer. Fed from a plain file or from a
/// decompressor.
pub(crate) struct SqlScan {
    format: Format,
    carry: Vec<u8>,
    has_data: bool,
    tail: Vec<u8>,
    total: u64,
    keep_tail: bool,
}

impl SqlScan {
    pub(crate) fn new(format: Format, keep_tail: bool) -> SqlScan {
        SqlScan {
            format,
            carry: Vec::new(),
            has_data: false,
            tail: Vec::new(),
            total: 0,
            keep_tail,
        }
    }

    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        if self.keep_tail {
            self.tail.extend_from_slice(chunk);
            if self.tail.len() > 2 * TAIL {
                let cut = self.tail.len() - TAIL;
                self.tail.drain(..cut);
            }
        }
        if self.has_data {
            return;
        }
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        if has_data_statement(self.format, &buf) {
            self.has_data = true;
            return;
        }
        let keep = buf.len().min(4096);
        self.carry = buf[buf.len() - keep..].to_vec();
    }

    /// Bytes fed so far.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    pub(crate) fn has_data(&self) -> bool {
        self.has_data
    }

    /// The verdict from the kept tail (requires `keep_tail`), for a stream
    /// of `total` bytes; `inside` names the container for the detail.
    pub(crate) fn verdict(&self, inside: Option<&str>) -> Verdict {
        trailer_verdict(self.format, &self.tail, self.total, inside)
    }
}

fn trailer_verdict(format: Format, tail: &[u8], total: u64, inside: Option<&str>) -> Verdict {
    if has_trailer(format, tail) {
        return Verdict::Sound;
    }
    let mid = if tail.last() == Some(&b'\n') {
        ""
    } else {
        " mid-line"
    };
    let at = match inside {
        Some(what) => format!(
            "{what} holds {} output that ends{mid} at byte {}",
            tool(format),
            n(total)
        ),
        None => format!("{} output ends{mid} at byte {}", tool(format), n(total)),
    };
    Verdict::Damaged(format!(
        "{at} without its '{}' trailer: the dump was cut off",
        trailer(format)
    ))
}

/// Whether `buf` holds a table-data statement at the start of a line.
fn has_data_statement(format: Format, buf: &[u8]) -> bool {
    let pg = matches!(format, Format::PgDump | Format::PgDumpAll);
    if pg {
        for at in memmem::find_iter(buf, b"\nCOPY ") {
            let line = &buf[at + 1..];
            let end = memchr::memchr(b'\n', line).unwrap_or(line.len());
            let line = trim_cr(&line[..end]);
            // A line cut by the buffer end is taken as a COPY: erring
            // towards "has data" can only miss an empty dump, never call a
            // healthy one damaged.
            if end == buf.len() - at - 1 || line.ends_with(b" FROM stdin;") {
                return true;
            }
        }
        memmem::find(buf, b"\nINSERT INTO ").is_some()
    } else {
        memmem::find(buf, b"\nINSERT INTO ").is_some()
            || memmem::find(buf, b"\nINSERT IGNORE INTO ").is_some()
            || memmem::find(buf, b"\nREPLACE INTO ").is_some()
    }
}

pub(super) fn check<R: Read + Seek>(
    src: &mut Source<'_, R>,
    format: Format,
    _head: &[u8],
    level: Level,
) -> io::Result<Report> {
    let size = src.size();
    let mut scan = SqlScan::new(format, false);
    let limit = if level == Level::Full {
        u64::MAX
    } else {
        FAST_DATA_SCAN
    };
    {
        let mut stream = src.stream_from(0)?;
        // Small reads: the first data statement is usually in the first
        // tens of KiB, after the schema.
        let mut buf = vec![0u8; 64 * 1024];
        while !scan.has_data() && scan.total() < limit {
            let got = stream.read(&mut buf)?;
            if got == 0 {
                break;
            }
            scan.feed(&buf[..got]);
        }
    }
    let (_, tail) = src.tail(TAIL)?;
    let verdict = trailer_verdict(format, &tail, size, None);
    let mut report = Report::new(format, verdict, level);
    report.table_data = if scan.has_data() {
        Some(true)
    } else if scan.total() >= size {
        Some(false)
    } else {
        None
    };
    Ok(report)
}
