//! pg_dump custom-format archives (`pg_dump -Fc`).
//!
//! Layout (pg_backup_archiver.c `WriteHead`/`WriteToc`, pg_backup_custom.c):
//! `PGDMP`, version (3 bytes), int size, offset size, format byte (1 =
//! custom), compression (a byte from archive version 1.15, an int before),
//! creation time (7 ints), database name, server and pg_dump versions
//! (strings); then the TOC: a count and per entry its dump id, whether it has
//! data, catalog ids, tag, description, section, definitions, namespace,
//! tablespace, table access method (1.14), relkind (1.16), owner, a
//! "with oids" flag, dependencies (strings ended by a NULL) and a data offset
//! (a flag byte: 1 not set, 2 set, 3 no data; then `offSize` bytes). Data
//! blocks follow the TOC: a type byte (1 data, 3 large objects), the dump
//! id, and length-prefixed chunks ended by a zero length (large objects:
//! per object an oid and such chunks, ended by oid 0). Nothing follows the
//! last block.
//!
//! An int is a sign byte then `intSize` bytes, least significant first; a
//! string is an int length (-1 for NULL) then the bytes.
//!
//! `pg_restore --list` reads only the TOC, so it does not notice a dump cut
//! off in its data: this walks the data blocks too.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Seek};

use super::{Format, Level, Report, Source, Verdict, n};

const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;
const POS_NOT_SET: u8 = 1;
const POS_SET: u8 = 2;
const NO_DATA: u8 = 3;

/// Archive versions this reader understands (1.12 = PostgreSQL 9.0 ...
/// 1.16 = PostgreSQL 17+).
const MIN_VERSION: u32 = (1 << 16) | (12 << 8);
const MAX_VERSION: u32 = (1 << 16) | (16 << 8) | 255;

/// Why parsing stopped.
pub(super) enum Stop {
    /// The file ended here (offset of the end).
    Eof,
    /// A value makes no sense for this format: cannot decide.
    Strange(String),
    /// A real read error.
    Io(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Stop::Eof
        } else {
            Stop::Io(e)
        }
    }
}

struct Reader<B: BufRead> {
    inner: B,
    pos: u64,
    int_size: usize,
    off_size: usize,
}

impl<B: BufRead> Reader<B> {
    fn byte(&mut self) -> Result<u8, Stop> {
        let mut b = [0u8; 1];
        self.inner.read_exact(&mut b)?;
        self.pos += 1;
        Ok(b[0])
    }

    fn int(&mut self) -> Result<i64, Stop> {
        let sign = self.byte()?;
        let mut v: i64 = 0;
        for i in 0..self.int_size {
            let b = self.byte()? as i64;
            if i < 8 {
                v |= b << (8 * i);
            }
        }
        Ok(if sign != 0 { -v } else { v })
    }

    fn skip(&mut self, mut len: u64) -> Result<(), Stop> {
        while len > 0 {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Err(Stop::Eof);
            }
            let k = (buf.len() as u64).min(len) as usize;
            self.inner.consume(k);
            self.pos += k as u64;
            len -= k as u64;
        }
        Ok(())
    }

    fn string(&mut self, keep: bool) -> Result<Option<Vec<u8>>, Stop> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        let len = len as u64;
        if keep && len <= 4096 {
            let mut buf = vec![0u8; len as usize];
            self.inner.read_exact(&mut buf)?;
            self.pos += len;
            Ok(Some(buf))
        } else {
            self.skip(len)?;
            Ok(Some(Vec::new()))
        }
    }

    fn offset(&mut self) -> Result<(u8, u64), Stop> {
        let flag = self.byte()?;
        let mut v: u64 = 0;
        for i in 0..self.off_size {
            let b = self.byte()? as u64;
            if i < 8 {
                v |= b << (8 * i);
            }
        }
        Ok((flag, v))
    }
}

struct Entry {
    tag: String,
    desc: String,
    namespace: String,
    /// Has a COPY statement (its data ends with a `\\.` line).
    copy: bool,
    state: u8,
    pos: u64,
    /// Directory format: the data file.
    filename: Option<String>,
}

pub(super) fn check<R: Read + Seek>(src: &mut Source<'_, R>, level: Level) -> io::Result<Report> {
    let size = src.size();
    let directory = src
        .read_at(10, 1)?
        .first()
        .is_some_and(|&f| f != FMT_CUSTOM);
    let format = if directory {
        Format::PgDirectory
    } else {
        Format::PgCustom
    };
    let mut report = Report::new(format, Verdict::Sound, level);
    let verdict = match walk(src, size, level, &mut report) {
        Ok(v) => v,
        Err(Stop::Io(e)) => return Err(e),
        Err(Stop::Strange(why)) => Verdict::Undecided(why),
        Err(Stop::Eof) if directory => Verdict::Damaged(format!(
            "pg_dump directory archive's toc.dat ends at byte {} inside its table of contents: \
             the dump was cut off",
            n(size)
        )),
        Err(Stop::Eof) => Verdict::Damaged(format!(
            "pg_dump custom archive ends at byte {} inside its header or table of contents: \
             the dump was cut off",
            n(size)
        )),
    };
    report.verdict = verdict;
    Ok(report)
}

/// Archive format bytes of the header: 1 = custom; a directory archive's
/// `toc.dat` (and a tar archive's) carries 3 (pg_dump 15 writes 3 for
/// `-Fd`); 5 is accepted as the same.
const FMT_CUSTOM: u8 = 1;

/// The parsed header and table of contents of an archive.
pub(super) struct Toc {
    /// Entries by dump id.
    entries: HashMap<i64, Entry>,
    /// Where the TOC ends (custom format: where data blocks start).
    data_start: u64,
    int_size: usize,
    /// The header's format byte.
    format: u8,
}

/// One data file a directory archive's `toc.dat` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DataFile {
    /// As written in the TOC (`3351.dat`, `blobs.toc`); on disk it may
    /// carry a compression suffix (`.gz`, `.lz4`, `.zst`).
    pub(super) name: String,
    /// `table data public.orders`, `large objects`.
    pub(super) what: String,
    /// The entry is a table's COPY data (ends with a `\.` line).
    pub(super) copy: bool,
}

impl Toc {
    /// The data files of a directory archive, in dump-id order.
    pub(super) fn data_files(&self) -> Vec<DataFile> {
        let mut ids: Vec<&i64> = self.entries.keys().collect();
        ids.sort();
        ids.into_iter()
            .filter_map(|id| {
                let e = &self.entries[id];
                let name = e.filename.clone()?;
                let what = if e.namespace.is_empty() {
                    format!("{} {}", e.desc.to_lowercase(), e.tag)
                } else {
                    format!("{} {}.{}", e.desc.to_lowercase(), e.namespace, e.tag)
                };
                Some(DataFile {
                    name,
                    what,
                    copy: e.copy,
                })
            })
            .collect()
    }

    /// Whether the archive holds table data.
    pub(super) fn has_table_data(&self) -> bool {
        self.entries
            .values()
            .any(|e| e.desc == "TABLE DATA" && (e.state != NO_DATA || e.filename.is_some()))
    }

    /// Whether this is a directory (or tar) archive's TOC.
    pub(super) fn is_directory(&self) -> bool {
        self.format != FMT_CUSTOM
    }
}

/// Parse the header and TOC from the start of `src`.
pub(super) fn read_toc<R: Read + Seek>(src: &mut Source<'_, R>) -> Result<Toc, Stop> {
    let size = src.size();
    let stream = src.stream_from(0)?;
    let mut r = Reader {
        inner: BufReader::with_capacity(64 * 1024, stream),
        pos: 0,
        int_size: 4,
        off_size: 8,
    };
    let mut magic = [0u8; 5];
    r.inner.read_exact(&mut magic)?;
    r.pos = 5;
    let (maj, min, rev) = (r.byte()?, r.byte()?, r.byte()?);
    let version = ((maj as u32) << 16) | ((min as u32) << 8) | rev as u32;
    if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
        return Err(Stop::Strange(format!(
            "archive version {maj}.{min}.{rev} is not one this check knows"
        )));
    }
    r.int_size = r.byte()? as usize;
    r.off_size = r.byte()? as usize;
    if !(1..=16).contains(&r.int_size) || !(1..=16).contains(&r.off_size) {
        return Err(Stop::Strange("implausible integer sizes".into()));
    }
    let format = r.byte()?;
    if !matches!(format, 1 | 3 | 5) {
        return Err(Stop::Strange(format!(
            "archive format {format} is not one this check knows"
        )));
    }
    let directory = format != FMT_CUSTOM;
    if version >= (1 << 16) | (15 << 8) {
        r.byte()?; // compression algorithm
    } else {
        r.int()?; // compression level
    }
    for _ in 0..7 {
        r.int()?; // creation time
    }
    r.string(false)?; // database name
    r.string(false)?; // server version
    r.string(false)?; // pg_dump version
    let count = r.int()?;
    if count < 0 || count as u64 > size {
        return Err(Stop::Strange("implausible TOC entry count".into()));
    }
    let mut list = HashMap::new();
    for _ in 0..count {
        let id = r.int()?;
        let _had_dumper = r.int()?;
        r.string(false)?; // table oid
        r.string(false)?; // oid
        let tag = r.string(true)?.unwrap_or_default();
        let desc = r.string(true)?.unwrap_or_default();
        r.int()?; // section
        r.string(false)?; // defn
        r.string(false)?; // drop statement
        let copy = r.string(true)?.is_some_and(|s| !s.is_empty());
        let namespace = r.string(true)?.unwrap_or_default();
        r.string(false)?; // tablespace
        if version >= (1 << 16) | (14 << 8) {
            r.string(false)?; // table access method
        }
        if version >= (1 << 16) | (16 << 8) {
            r.int()?; // relkind
        }
        r.string(false)?; // owner
        r.string(false)?; // with oids
        let mut deps = 0u64;
        while r.string(false)?.is_some() {
            deps += 1;
            if deps > size {
                return Err(Stop::Strange("implausible dependency list".into()));
            }
        }
        let (state, pos, filename) = if directory {
            // pg_backup_directory.c `_WriteExtraToc`: the data file's name,
            // empty when the entry has no data.
            let name = r.string(true)?.unwrap_or_default();
            let name = String::from_utf8_lossy(&name).into_owned();
            if name.is_empty() {
                (NO_DATA, 0, None)
            } else {
                if name.contains('/') || name.starts_with('.') {
                    return Err(Stop::Strange(format!("odd data file name {name:?}")));
                }
                (POS_NOT_SET, 0, Some(name))
            }
        } else {
            let (state, pos) = r.offset()?;
            if !matches!(state, POS_NOT_SET | POS_SET | NO_DATA) {
                return Err(Stop::Strange(format!(
                    "unexpected data offset flag {state}"
                )));
            }
            (state, pos, None)
        };
        list.insert(
            id,
            Entry {
                tag: String::from_utf8_lossy(&tag).into_owned(),
                desc: String::from_utf8_lossy(&desc).into_owned(),
                namespace: String::from_utf8_lossy(&namespace).into_owned(),
                copy,
                state,
                pos,
                filename,
            },
        );
    }
    Ok(Toc {
        entries: list,
        data_start: r.pos,
        int_size: r.int_size,
        format,
    })
}

fn walk<R: Read + Seek>(
    src: &mut Source<'_, R>,
    size: u64,
    level: Level,
    report: &mut Report,
) -> Result<Verdict, Stop> {
    let toc = read_toc(src)?;
    report.table_data = Some(toc.has_table_data());
    if toc.is_directory() {
        // A directory archive's toc.dat: its data lives in other files
        // (checked with the directory, see `pgdir`). Nothing follows the TOC.
        if toc.data_start != size {
            return Err(Stop::Strange("bytes after the table of contents".into()));
        }
        return Ok(Verdict::Sound);
    }
    let Toc {
        entries,
        data_start,
        int_size,
        ..
    } = toc;
    let with_data: Vec<(&i64, &Entry)> =
        entries.iter().filter(|(_, e)| e.state != NO_DATA).collect();
    if with_data.is_empty() {
        if data_start < size {
            return Err(Stop::Strange(
                "bytes after a table of contents without data".into(),
            ));
        }
        return Ok(Verdict::Sound);
    }
    let all_set = with_data.iter().all(|(_, e)| e.state == POS_SET);
    if all_set && with_data.iter().any(|(_, e)| e.pos < data_start) {
        return Err(Stop::Strange(
            "a data offset inside the table of contents".into(),
        ));
    }
    if level == Level::Full || !all_set {
        // Walk every block from the end of the TOC.
        let mut seen = 0usize;
        let mut pos = data_start;
        while pos < size {
            match walk_block(src, pos, size, &entries, int_size)? {
                Ok((end, _)) => pos = end,
                Err(v) => return Ok(v),
            }
            seen += 1;
        }
        if seen < with_data.len() {
            return Ok(Verdict::Damaged(format!(
                "pg_dump custom archive ends at byte {} after {seen} of its {} data blocks: \
                 the dump was cut off",
                n(size),
                with_data.len()
            )));
        }
        return Ok(Verdict::Sound);
    }
    // Offsets are known: walk the last block that starts inside the file;
    // it must end where the next one starts, or at the end of the file.
    let mut by_pos = with_data;
    by_pos.sort_by_key(|(_, e)| e.pos);
    let inside = by_pos.partition_point(|(_, e)| e.pos < size);
    let missing = by_pos.get(inside);
    if inside == 0 {
        let (_, e) = by_pos[0];
        return Ok(Verdict::Damaged(format!(
            "pg_dump custom archive is cut off at byte {}: the data of {} '{}' should start at byte {}",
            n(size),
            e.desc.to_lowercase(),
            e.tag,
            n(e.pos)
        )));
    }
    let (_, last) = by_pos[inside - 1];
    match walk_block(src, last.pos, size, &entries, int_size)? {
        Err(v) => Ok(v),
        Ok((end, _)) => match missing {
            None if end == size => Ok(Verdict::Sound),
            None => Err(Stop::Strange("bytes after the last data block".into())),
            Some((_, e)) => Ok(Verdict::Damaged(format!(
                "pg_dump custom archive is cut off at byte {}: the data of {} '{}' should start at byte {}",
                n(size),
                e.desc.to_lowercase(),
                e.tag,
                n(e.pos)
            ))),
        },
    }
}

/// Walk one data block at `pos`. `Ok(Ok((end, id)))`: the block ends at
/// `end`. `Ok(Err(verdict))`: the file ends inside it.
#[allow(clippy::type_complexity)]
fn walk_block<R: Read + Seek>(
    src: &mut Source<'_, R>,
    pos: u64,
    size: u64,
    entries: &HashMap<i64, Entry>,
    int_size: usize,
) -> Result<Result<(u64, i64), Verdict>, Stop> {
    let stream = src.stream_from(pos)?;
    let mut r = Reader {
        inner: BufReader::with_capacity(64 * 1024, stream),
        pos,
        int_size,
        off_size: 8,
    };
    let cut = |what: &str| {
        Verdict::Damaged(format!(
            "pg_dump custom archive ends at byte {} inside the data of {what}: the dump was cut off",
            n(size)
        ))
    };
    let kind = match r.byte() {
        Ok(k) => k,
        Err(Stop::Eof) => return Ok(Err(cut("a data block"))),
        Err(e) => return Err(e),
    };
    let id = match r.int() {
        Ok(v) => v,
        Err(Stop::Eof) => return Ok(Err(cut("a data block"))),
        Err(e) => return Err(e),
    };
    let Some(entry) = entries.get(&id) else {
        return Err(Stop::Strange(format!(
            "data block at byte {pos} names unknown entry {id}"
        )));
    };
    let what = format!("{} '{}'", entry.desc.to_lowercase(), entry.tag);
    let chunks = |r: &mut Reader<_>| -> Result<(), Stop> {
        loop {
            let len = r.int()?;
            if len == 0 {
                return Ok(());
            }
            if len < 0 {
                return Err(Stop::Strange("negative chunk length".into()));
            }
            r.skip(len as u64)?;
        }
    };
    let res = match kind {
        BLK_DATA => chunks(&mut r),
        BLK_BLOBS => (|| {
            loop {
                let oid = r.int()?;
                if oid == 0 {
                    return Ok(());
                }
                chunks(&mut r)?;
            }
        })(),
        other => {
            return Err(Stop::Strange(format!(
                "unknown data block type {other} at byte {pos}"
            )));
        }
    };
    match res {
        Ok(()) => Ok(Ok((r.pos, id))),
        Err(Stop::Eof) => Ok(Err(cut(&what))),
        Err(e) => Err(e),
    }
}
