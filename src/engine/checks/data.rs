//! Data files: SQLite databases and Parquet files.
//!
//! - SQLite (fileformat2.html): the header's page size times its "in-header
//!   database size" must fit in the file. The in-header size is only trusted
//!   when it is non-zero and the change counter at offset 24 equals the
//!   "version-valid-for" number at offset 92 (older writers did not keep it).
//! - Parquet: `PAR1` at both ends and a footer length that fits the file.
//!   An encrypted footer (`PARE`) is not checked.

use std::io::{self, Read, Seek};

use super::{Format, Level, Report, Source, Verdict, n};

fn be32(b: &[u8], at: usize) -> u64 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as u64
}

pub(super) fn sqlite<R: Read + Seek>(src: &mut Source<'_, R>, head: &[u8]) -> io::Result<Report> {
    let size = src.size();
    let done = |v| Ok(Report::new(Format::Sqlite, v, Level::Fast));
    let raw = u16::from_be_bytes([head[16], head[17]]) as u64;
    let page = if raw == 1 { 65536 } else { raw };
    if !(512..=65536).contains(&page) || !page.is_power_of_two() {
        return done(Verdict::Undecided(format!("unusual page size {raw}")));
    }
    let pages = be32(head, 28);
    if pages == 0 || be32(head, 24) != be32(head, 92) {
        return done(Verdict::Undecided(
            "the header's page count is not maintained".into(),
        ));
    }
    let want = page * pages;
    if size < want {
        return done(Verdict::Damaged(format!(
            "SQLite database is cut off: its header says {} pages of {} bytes ({} bytes) but the file has {} bytes",
            n(pages),
            n(page),
            n(want),
            n(size)
        )));
    }
    done(Verdict::Sound)
}

pub(super) fn parquet<R: Read + Seek>(src: &mut Source<'_, R>) -> io::Result<Report> {
    let size = src.size();
    let done = |v| Ok(Report::new(Format::Parquet, v, Level::Fast));
    let (_, tail) = src.tail(8)?;
    if &tail[4..8] == b"PARE" {
        return done(Verdict::Undecided("an encrypted Parquet footer".into()));
    }
    if &tail[4..8] != b"PAR1" {
        return done(Verdict::Damaged(format!(
            "Parquet file lacks its closing 'PAR1' magic: it ends at byte {} (cut off)",
            n(size)
        )));
    }
    let footer = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    if footer + 12 > size {
        return done(Verdict::Damaged(format!(
            "Parquet footer claims {} bytes, more than the file's {}: the file is corrupt",
            n(footer),
            n(size)
        )));
    }
    done(Verdict::Sound)
}
