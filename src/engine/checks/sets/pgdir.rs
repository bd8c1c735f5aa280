//! pg_dump directory archives (`pg_dump -Fd`): `toc.dat` names one data
//! file per table (`NNNN.dat`, `.gz`/`.lz4`/`.zst` when compressed) and
//! `blobs.toc` for large objects (`blob_OID.dat`, one per line).
//!
//! - A data file the TOC names that the directory lacks: `damaged` on
//!   `toc.dat` (pg_restore fails on it).
//! - An uncompressed table data file that does not end with the
//!   `\.` line pg_dump writes after COPY data (pg_dump.c
//!   `dumpTableData_copy`: `"\\.\n\n\n"`): cut off, `damaged` on the data
//!   file. Compressed data files are checked as files of their own (gzip,
//!   zstd: a cut stream is `damaged` there).
//! - A `blobs.toc` whose last line is cut: `damaged` on `blobs.toc`.

use std::io::{self, Read, Seek};

use super::super::pgcustom::{self, Stop};
use super::super::{Format, Level, Source, Verdict, n};
use super::{Dir, SetReport, some_names};

/// Suffixes pg_dump adds to a data file's name when compressing.
const SUFFIXES: [&str; 4] = ["", ".gz", ".lz4", ".zst"];

/// What pg_dump writes after a table's COPY data.
const COPY_END: &[u8] = b"\\.\n\n\n";

/// Checks the directory archive whose `toc.dat` is `toc` (of `size`
/// bytes). `None`: not a directory archive's TOC, or a TOC this reader
/// cannot walk (the per-file check reports that).
pub fn check<R: Read + Seek>(
    toc: &mut R,
    size: u64,
    dir: &dyn Dir,
) -> io::Result<Option<SetReport>> {
    let mut src = Source::new(toc, size);
    let parsed = match pgcustom::read_toc(&mut src) {
        Ok(t) if t.is_directory() => t,
        Ok(_) | Err(Stop::Eof) | Err(Stop::Strange(_)) => return Ok(None),
        Err(Stop::Io(e)) => return Err(e),
    };
    let mut bytes_read = src.bytes_read;
    let mut missing = Vec::new();
    let mut members = Vec::new();
    for file in parsed.data_files() {
        let Some(name) = SUFFIXES
            .iter()
            .map(|s| format!("{}{s}", file.name))
            .find(|c| dir.size(c).is_some())
        else {
            missing.push(format!("{} ({})", file.name, file.what));
            continue;
        };
        let size = dir.size(&name).unwrap_or(0);
        if file.name == "blobs.toc" || file.name.starts_with("blobs_") {
            let (verdict, lacks, read) = blobs(dir, &name, size)?;
            bytes_read += read;
            missing.extend(lacks);
            members.push((name, verdict));
        } else if file.copy && name == file.name {
            let (verdict, read) = copy_end(dir, &name, size, &file.what)?;
            bytes_read += read;
            members.push((name, verdict));
        }
    }
    let anchor = if missing.is_empty() {
        Verdict::Sound
    } else {
        Verdict::Damaged(format!(
            "pg_dump directory archive lacks {} data file{} its toc.dat names: {}",
            missing.len(),
            if missing.len() == 1 { "" } else { "s" },
            some_names(&missing)
        ))
    };
    Ok(Some(SetReport {
        format: Format::PgDirectory,
        level: Level::Fast,
        anchor,
        members,
        bytes_read,
    }))
}

/// An uncompressed COPY data file must end with pg_dump's end-of-data line.
fn copy_end(dir: &dyn Dir, name: &str, size: u64, what: &str) -> io::Result<(Verdict, u64)> {
    let Ok(mut r) = dir.open(name) else {
        return Ok((Verdict::Undecided("could not open".into()), 0));
    };
    // Read only the tail: skip to the last bytes.
    let skip = size.saturating_sub(COPY_END.len() as u64);
    io::copy(&mut (&mut r).take(skip), &mut io::sink())?;
    let mut tail = Vec::new();
    r.read_to_end(&mut tail)?;
    let verdict = if tail == COPY_END {
        Verdict::Sound
    } else {
        Verdict::Damaged(format!(
            "pg_dump data file of {what} ends at byte {} without the \\. line that ends \
             COPY data: it was cut off",
            n(size)
        ))
    };
    Ok((verdict, tail.len() as u64))
}

/// `blobs.toc`: `OID blob_OID.dat` lines; each file must be present.
fn blobs(dir: &dyn Dir, name: &str, size: u64) -> io::Result<(Verdict, Vec<String>, u64)> {
    if size > 64 << 20 {
        return Ok((
            Verdict::Undecided("blobs.toc too large".into()),
            Vec::new(),
            0,
        ));
    }
    let Ok(mut r) = dir.open(name) else {
        return Ok((Verdict::Undecided("could not open".into()), Vec::new(), 0));
    };
    let mut text = Vec::new();
    r.read_to_end(&mut text)?;
    let read = text.len() as u64;
    if name != "blobs.toc" && !name.starts_with("blobs_") || name.ends_with(".gz") {
        // A compressed blobs.toc is not written by pg_dump; not judged.
        return Ok((
            Verdict::Undecided("unexpected name".into()),
            Vec::new(),
            read,
        ));
    }
    if !text.is_empty() && !text.ends_with(b"\n") {
        return Ok((
            Verdict::Damaged(format!(
                "pg_dump large-object list ends at byte {} in the middle of a line: it was cut off",
                n(size)
            )),
            Vec::new(),
            read,
        ));
    }
    let mut lacks = Vec::new();
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let line = String::from_utf8_lossy(line);
        let mut parts = line.splitn(2, ' ');
        let (Some(oid), Some(file)) = (parts.next(), parts.next()) else {
            return Ok((
                Verdict::Undecided("odd blobs.toc line".into()),
                Vec::new(),
                read,
            ));
        };
        if !SUFFIXES
            .iter()
            .any(|s| dir.size(&format!("{file}{s}")).is_some())
        {
            lacks.push(format!("{file} (large object {oid})"));
        }
    }
    Ok((Verdict::Sound, lacks, read))
}
