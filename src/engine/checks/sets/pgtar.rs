//! A tar-format pg_basebackup (`pg_basebackup -Ft`, `-z`): `base.tar` holds
//! the data directory, `OID.tar` each tablespace (its members listed in the
//! manifest under `pg_tblspc/OID/`), `pg_wal.tar` the WAL streamed with
//! `-X stream` (with `-X fetch` it is under `pg_wal/` in `base.tar`); each
//! may be compressed (`.tar.gz` or `.tgz`, `.tar.zst`, `.tar.lz4`). As
//! PostgreSQL 18's pg_verifybackup (`precheck_tar_backup_file`,
//! astreamer_verify.c), every regular-file member is looked up in the
//! manifest by its canonical path: one the manifest does not list, one of
//! another size, one whose checksum differs (`full`), and a listed file no
//! archive holds are damage, reported on the archive that should hold it
//! (or on `backup_manifest` when that archive is missing).
//!
//! What each level reads: an uncompressed archive is walked header by
//! header in `fast` (seeking over member data) and read whole in `full`;
//! a compressed one can only be listed by decompressing it, so only `full`
//! looks inside it (within the byte budget). `.lz4` is not decompressed
//! here: its members are not judged. Files next to the archives that are
//! none of them are not reported (pg_verifybackup complains about them;
//! they are not part of what a restore unpacks).

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom};
use std::rc::Rc;

use super::super::archive::{checksum_ok, octal};
use super::super::{Budget, Level, Verdict, n};
use super::manifest::{Listed, Sum, compare, ignored};
use super::wal::{self, WalRange};
use super::{Dir, ReadSeek, SetReport, some_names};

/// What an archive holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    /// `base.tar`: the data directory.
    Base,
    /// `OID.tar`: a tablespace.
    Tablespace(u32),
    /// `pg_wal.tar`: WAL segments.
    Wal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
    Lz4,
}

/// `base`, `pg_wal` or an OID, then a tar suffix
/// (`parse_tar_compress_algorithm`).
fn archive(name: &str) -> Option<(Kind, Compression)> {
    let (stem, compression) = [
        (".tar", Compression::None),
        (".tar.gz", Compression::Gzip),
        (".tgz", Compression::Gzip),
        (".tar.zst", Compression::Zstd),
        (".tar.lz4", Compression::Lz4),
    ]
    .iter()
    .find_map(|(suffix, c)| name.strip_suffix(suffix).map(|s| (s, *c)))?;
    let kind = match stem {
        "base" => Kind::Base,
        "pg_wal" => Kind::Wal,
        oid if !oid.is_empty() && oid.bytes().all(|b| b.is_ascii_digit()) => {
            match oid.parse::<u32>() {
                Ok(v) if v > 0 => Kind::Tablespace(v),
                _ => return None,
            }
        }
        _ => return None,
    };
    Some((kind, compression))
}

/// Whether the files next to the manifest are a tar-format backup.
pub(super) fn is_tar_backup(names: &[String]) -> bool {
    names.iter().any(|n| archive(n).is_some())
}

/// The archive a listed path belongs in.
fn home(path: &str) -> Kind {
    path.strip_prefix("pg_tblspc/")
        .and_then(|r| r.split_once('/'))
        .and_then(|(oid, rest)| (!rest.is_empty()).then_some(oid))
        .and_then(|oid| oid.parse::<u32>().ok())
        .map_or(Kind::Base, Kind::Tablespace)
}

/// Where each archive kind is described in details.
fn describe_missing(kind: Kind) -> String {
    match kind {
        Kind::Base => "base.tar (the data directory)".into(),
        Kind::Tablespace(oid) => format!("{oid}.tar (tablespace {oid})"),
        Kind::Wal => "pg_wal.tar".into(),
    }
}

/// What one archive's walk found wrong.
#[derive(Default)]
struct Findings {
    lacks: Vec<String>,
    sizes: Vec<String>,
    sums: Vec<String>,
    extra: Vec<String>,
    other: Vec<String>,
}

impl Findings {
    fn sentences(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = self.other.iter().map(|o| format!("{name} {o}")).collect();
        let plural = |v: &[String]| if v.len() == 1 { "" } else { "s" };
        if self.lacks.len() == 1 {
            out.push(format!(
                "{name} lacks {} listed in backup_manifest",
                self.lacks[0]
            ));
        } else if !self.lacks.is_empty() {
            out.push(format!(
                "{name} lacks {} files listed in backup_manifest: {}",
                self.lacks.len(),
                some_names(&self.lacks)
            ));
        }
        if !self.sizes.is_empty() {
            out.push(format!(
                "{name} holds {} file{} whose size differs from backup_manifest \
                 (cut off or changed after the backup): {}",
                self.sizes.len(),
                plural(&self.sizes),
                some_names(&self.sizes)
            ));
        }
        if !self.sums.is_empty() {
            out.push(format!(
                "{name} holds {} file{} whose checksum differs from backup_manifest \
                 (changed after the backup): {}",
                self.sums.len(),
                plural(&self.sums),
                some_names(&self.sums)
            ));
        }
        if self.extra.len() == 1 {
            out.push(format!(
                "{name} holds {}, which backup_manifest does not list: \
                 it was added after the backup",
                self.extra[0]
            ));
        } else if !self.extra.is_empty() {
            out.push(format!(
                "{name} holds {} files backup_manifest does not list \
                 (added after the backup): {}",
                self.extra.len(),
                some_names(&self.extra)
            ));
        }
        out
    }
}

/// Verifies a tar-format backup; pushes one verdict per archive looked
/// into and returns the problems reported on the manifest.
pub(super) fn check(
    listed: &[Listed],
    ranges: &[WalRange],
    names: &[String],
    dir: &dyn Dir,
    budget: &Budget,
    report: &mut SetReport,
) -> io::Result<Vec<String>> {
    let level = report.level;
    let mut archives: Vec<(Kind, Compression, &String)> = names
        .iter()
        .filter_map(|name| archive(name).map(|(k, c)| (k, c, name)))
        .collect();
    archives.sort_by(|a, b| (a.0, a.2).cmp(&(b.0, b.2)));
    let mut by_home: HashMap<Kind, Vec<&Listed>> = HashMap::new();
    for l in listed {
        by_home.entry(home(&l.path)).or_default().push(l);
    }
    let mut problems = Vec::new();
    // Homes with no archive at all.
    let mut homes: Vec<_> = by_home.keys().copied().collect();
    homes.sort();
    for kind in homes {
        if !archives.iter().any(|a| a.0 == kind) {
            let files = &by_home[&kind];
            problems.push(format!(
                "the backup lacks {}, which holds {} file{} backup_manifest lists",
                describe_missing(kind),
                files.len(),
                if files.len() == 1 { "" } else { "s" }
            ));
        }
    }
    let mut seen = wal::Seen::default();
    // Where the WAL is: pg_wal.tar, else base.tar (-X fetch).
    let wal_home = archives
        .iter()
        .find(|a| a.0 == Kind::Wal)
        .or_else(|| archives.iter().find(|a| a.0 == Kind::Base))
        .map(|a| a.2.clone());
    let mut wal_known = wal_home.is_some();
    // A pg_wal.tar exists only when pg_basebackup streamed WAL (-X stream).
    let wal_expected = archives.iter().any(|a| a.0 == Kind::Wal);
    let mut findings: Vec<(String, Findings)> = Vec::new();
    let mut done_kinds: HashSet<Kind> = HashSet::new();
    for &(kind, compression, name) in &archives {
        if !done_kinds.insert(kind) {
            // Two archives for one kind (base.tar and base.tar.gz): which
            // one a restore uses is not known here.
            if Some(name) == wal_home.as_ref() {
                wal_known = false;
            }
            by_home.remove(&kind);
            continue;
        }
        let holds_wal = Some(name) == wal_home.as_ref();
        if dir.verified(name) {
            // Verified in full against this manifest, unchanged since.
            by_home.remove(&kind);
            if holds_wal {
                wal_known = false;
            }
            continue;
        }
        let size = dir.size(name).unwrap_or(0);
        let full = level == Level::Full && budget.take(size);
        if level == Level::Full && !full {
            report.level = Level::Fast;
        }
        if compression == Compression::Lz4 || (compression != Compression::None && !full) {
            // Cannot be listed without decompressing it.
            by_home.remove(&kind);
            if holds_wal {
                wal_known = false;
            }
            continue;
        }
        let Ok(file) = dir.open(name) else {
            by_home.remove(&kind);
            if holds_wal {
                wal_known = false;
            }
            continue;
        };
        let count = Rc::new(Cell::new(0u64));
        let file = Counted {
            inner: file,
            n: count.clone(),
        };
        let mut input = match compression {
            Compression::None => Input::Seek(Box::new(file)),
            Compression::Gzip => Input::Stream(Box::new(flate2::read::MultiGzDecoder::new(
                io::BufReader::with_capacity(256 * 1024, file),
            ))),
            _ => Input::Stream(Box::new(zstd::stream::read::Decoder::new(file)?)),
        };
        let expected = by_home.remove(&kind).unwrap_or_default();
        let mine: HashMap<&str, &Listed> = expected.iter().map(|l| (l.path.as_str(), *l)).collect();
        let mut matched: HashSet<&str> = HashSet::new();
        let mut f = Findings::default();
        let mut judged = true;
        let mut last: Option<String> = None;
        loop {
            let m = match next_member(&mut input)? {
                Next::Member(m) => m,
                Next::End => break,
                Next::Cut => {
                    f.other.push(format!(
                        "ends before its end-of-archive marker{}: it was cut off",
                        last.as_ref()
                            .map(|l| format!(" (after {l})"))
                            .unwrap_or_default()
                    ));
                    break;
                }
                Next::Strange => {
                    // A corrupt header: the archive's own check says so;
                    // what follows cannot be listed.
                    judged = false;
                    if holds_wal {
                        wal_known = false;
                    }
                    break;
                }
            };
            last = Some(m.name.clone());
            if m.kind != Entry::File {
                input.skip(m.size)?;
                continue;
            }
            let path = match kind {
                Kind::Tablespace(oid) => canonical(&format!("pg_tblspc/{oid}/{}", m.name)),
                _ => canonical(&m.name),
            };
            if holds_wal {
                let rel = if kind == Kind::Wal {
                    Some(path.as_str())
                } else {
                    path.strip_prefix("pg_wal/")
                };
                if let Some(rel) = rel {
                    seen.add(rel, m.size);
                }
            }
            if kind == Kind::Wal || ignored(&path) {
                input.skip(m.size)?;
                continue;
            }
            let Some(&l) = mine.get(path.as_str()) else {
                f.extra.push(path);
                input.skip(m.size)?;
                continue;
            };
            matched.insert(l.path.as_str());
            if l.size != m.size {
                f.sizes.push(format!(
                    "{path} ({} bytes, listed {})",
                    n(m.size),
                    n(l.size)
                ));
                input.skip(m.size)?;
                continue;
            }
            if !full || !l.has_checksum() {
                input.skip(m.size)?;
                continue;
            }
            let sum = {
                let mut data = input.reader().take(m.size);
                let (sum, _) = compare(l, &mut data)?;
                // An unknown algorithm reads nothing: pass over the data.
                io::copy(&mut data, &mut io::sink())?;
                sum
            };
            match sum {
                None => {
                    f.other.push(format!("ends inside {path}: it was cut off"));
                    break;
                }
                Some(Sum::Differs(got)) => f.sums.push(format!(
                    "{path} ({} {got}, listed {})",
                    l.algorithm,
                    l.checksum
                        .as_deref()
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                )),
                Some(Sum::Match) | Some(Sum::Unknown) => {}
            }
            input.pad(m.size)?;
        }
        drop(input);
        report.bytes_read += count.get();
        if judged {
            f.lacks = expected
                .iter()
                .filter(|l| !matched.contains(l.path.as_str()))
                .map(|l| l.path.clone())
                .collect();
            f.lacks.sort();
        } else {
            f = Findings::default();
        }
        findings.push((name.clone(), f));
    }
    // The WAL the manifest's ranges need.
    let mut wal_problems = Vec::new();
    if wal_known && let Some(wal) = wal::problems(ranges, &seen, wal_expected) {
        wal_problems = wal;
    }
    for (name, f) in &mut findings {
        if Some(&*name) == wal_home.as_ref() {
            f.other.append(&mut wal_problems);
        }
    }
    for (name, f) in findings {
        let sentences = f.sentences(&name);
        let verdict = if sentences.is_empty() {
            Verdict::Sound
        } else {
            Verdict::Damaged(sentences.join("; "))
        };
        report.members.push((name, verdict));
    }
    Ok(problems)
}

/// pg_verifybackup's `canonicalize_path` of `./NAME`: no `.` or empty
/// components, `..` resolved.
fn canonical(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

const BLOCK: u64 = 512;

/// A file that counts the bytes read from it.
struct Counted<R> {
    inner: R,
    n: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.set(self.n.get() + k as u64);
        Ok(k)
    }
}

impl<R: Seek> Seek for Counted<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// An archive being walked: seekable (uncompressed: member data that is
/// not digested is seeked over) or a decompressed stream.
enum Input<'a> {
    Seek(Box<dyn ReadSeek + 'a>),
    Stream(Box<dyn Read + 'a>),
}

impl Input<'_> {
    fn reader(&mut self) -> &mut dyn Read {
        match self {
            Input::Seek(r) => r,
            Input::Stream(r) => r,
        }
    }

    /// Skips `size` bytes of member data and its padding. False when the
    /// archive ended first (a seek past the end is seen at the next
    /// header instead).
    fn skip(&mut self, size: u64) -> io::Result<bool> {
        let total = size.div_ceil(BLOCK) * BLOCK;
        match self {
            Input::Seek(r) => {
                let Ok(delta) = i64::try_from(total) else {
                    return Ok(false);
                };
                r.seek(SeekFrom::Current(delta))?;
                Ok(true)
            }
            Input::Stream(r) => {
                let got = io::copy(&mut r.take(total), &mut io::sink())?;
                Ok(got == total)
            }
        }
    }

    /// Skips the padding after `size` bytes of member data.
    fn pad(&mut self, size: u64) -> io::Result<()> {
        let pad = size.div_ceil(BLOCK) * BLOCK - size;
        io::copy(&mut self.reader().take(pad), &mut io::sink())?;
        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Entry {
    File,
    Other,
}

struct Member {
    name: String,
    size: u64,
    kind: Entry,
}

enum Next {
    Member(Member),
    End,
    Cut,
    Strange,
}

/// Reads as much of `buf` as the input holds.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The next member's header (GNU long names and pax `path`/`size` records
/// applied); its data is next in the input.
fn next_member(input: &mut Input<'_>) -> io::Result<Next> {
    let mut long_name: Option<String> = None;
    let mut pax_path: Option<String> = None;
    let mut pax_size: Option<u64> = None;
    loop {
        let mut h = [0u8; BLOCK as usize];
        let got = read_full(input.reader(), &mut h)?;
        if got < h.len() {
            return Ok(Next::Cut);
        }
        if h.iter().all(|&b| b == 0) {
            return Ok(Next::End);
        }
        if !checksum_ok(&h) {
            return Ok(Next::Strange);
        }
        let Some(header_size) = octal(&h[124..136]) else {
            return Ok(Next::Strange);
        };
        let typeflag = h[156];
        match typeflag {
            b'L' | b'x' => {
                if header_size > 1 << 20 {
                    return Ok(Next::Strange);
                }
                let mut data = vec![0u8; header_size as usize];
                if read_full(input.reader(), &mut data)? < data.len() {
                    return Ok(Next::Cut);
                }
                input.pad(header_size)?;
                if typeflag == b'L' {
                    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                    long_name = Some(String::from_utf8_lossy(&data[..end]).into_owned());
                } else {
                    let (p, s) = pax(&data);
                    pax_path = p.or(pax_path);
                    pax_size = s.or(pax_size);
                }
                continue;
            }
            b'g' | b'K' => {
                if !input.skip(header_size)? {
                    return Ok(Next::Cut);
                }
                continue;
            }
            b'S' | b'M' => return Ok(Next::Strange),
            _ => {}
        }
        let field = |r: std::ops::Range<usize>| {
            let f = &h[r];
            let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
            String::from_utf8_lossy(&f[..end]).into_owned()
        };
        let name = pax_path.or(long_name).unwrap_or_else(|| {
            let name = field(0..100);
            let prefix = if &h[257..263] == b"ustar\0" {
                field(345..500)
            } else {
                String::new()
            };
            if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            }
        });
        let file = matches!(typeflag, b'0' | 0 | b'7');
        let size = if file {
            pax_size.unwrap_or(header_size)
        } else {
            header_size
        };
        return Ok(Next::Member(Member {
            name,
            size,
            kind: if file { Entry::File } else { Entry::Other },
        }));
    }
}

/// A pax header's `path` and `size` records.
fn pax(data: &[u8]) -> (Option<String>, Option<u64>) {
    let mut path = None;
    let mut size = None;
    let mut rest = data;
    while !rest.is_empty() {
        let Some(sp) = rest.iter().position(|&b| b == b' ') else {
            break;
        };
        let Some(len) = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        if len <= sp || len > rest.len() {
            break;
        }
        let record = &rest[sp + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(v) = record.strip_prefix(b"path=") {
            path = Some(String::from_utf8_lossy(v).into_owned());
        } else if let Some(v) = record.strip_prefix(b"size=") {
            size = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok());
        }
        rest = &rest[len..];
    }
    (path, size)
}
