//! pg_basebackup's `backup_manifest` (PostgreSQL 13+), verified the way
//! `pg_verifybackup` does (PostgreSQL 18's pg_verifybackup.c and
//! astreamer_verify.c, parse_manifest.c):
//!
//! - the manifest's own checksum: `Manifest-Checksum` is the SHA-256 of
//!   every byte up to and including the newline before its line, and the
//!   file ends with a newline;
//! - the layout: `PG_VERSION` next to the manifest means a plain-format
//!   backup (a data directory); otherwise a tar-format one (`base.tar`,
//!   `OID.tar` per tablespace, `pg_wal.tar`, each perhaps `.gz`/`.tgz`,
//!   `.zst` or `.lz4`), verified by `super::pgtar`;
//! - every file it lists (`Path`, or `Encoded-Path` in hex) is present with
//!   its `Size`, and no file is present that it does not list. Like
//!   pg_verifybackup, `backup_manifest` itself, `pg_wal/`,
//!   `postgresql.auto.conf`, `recovery.signal` and `standby.signal` are left
//!   out of both (pg_basebackup `-R` rewrites and adds them);
//! - in `full`, each file's `Checksum` with its `Checksum-Algorithm`
//!   (`CRC32C`, the default, `SHA224`/`256`/`384`/`512`; `NONE`), reading
//!   every byte within the run's budget. CRC32C is written as the bytes of
//!   the in-memory integer (little-endian on the machines PostgreSQL
//!   usually runs on); both byte orders are accepted;
//! - the WAL its `WAL-Ranges` needs is present (`super::wal`).
//!
//! Where the tree cannot show a file, nothing is said: a plain backup's
//! tablespace is a symlink `pg_tblspc/OID` that the scan does not follow,
//! so files listed under a `pg_tblspc/OID/` the tree holds nothing under
//! are not reported.

use std::collections::HashSet;
use std::io::{self, Read};

use serde::Deserialize;
use sha2::Digest;

use super::super::{Budget, Format, Level, Verdict, n};
use super::wal::{self, WalRange};
use super::{Dir, SetReport, feed, pgtar, some_names};

/// How a manifest starts (pg_basebackup writes exactly this).
pub const MAGIC: &[u8] = b"{ \"PostgreSQL-Backup-Manifest-Version\"";

/// Manifests larger than this are not read (1 GiB ~ 10 million files).
const MAX_MANIFEST: u64 = 1 << 30;

/// What pg_verifybackup leaves out of the comparison (its default
/// ignore list): the path itself and everything under it.
const IGNORED: [&str; 5] = [
    "backup_manifest",
    "pg_wal",
    "postgresql.auto.conf",
    "recovery.signal",
    "standby.signal",
];

/// Whether pg_verifybackup ignores `path` (`should_ignore_relpath`).
pub(super) fn ignored(path: &str) -> bool {
    IGNORED.iter().any(|i| {
        path.strip_prefix(i)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(rename = "Files")]
    files: Vec<ManifestFile>,
    #[serde(rename = "WAL-Ranges", default)]
    wal_ranges: Vec<WalRange>,
}

#[derive(Deserialize)]
struct ManifestFile {
    #[serde(rename = "Path")]
    path: Option<String>,
    #[serde(rename = "Encoded-Path")]
    encoded_path: Option<String>,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "Checksum-Algorithm")]
    algorithm: Option<String>,
    #[serde(rename = "Checksum")]
    checksum: Option<String>,
}

/// A file the manifest lists (and pg_verifybackup does not ignore).
#[derive(Debug)]
pub(super) struct Listed {
    pub(super) path: String,
    pub(super) size: u64,
    /// `NONE` when there is no checksum.
    pub(super) algorithm: String,
    pub(super) checksum: Option<String>,
}

impl Listed {
    /// Whether `full` has a checksum to compare.
    pub(super) fn has_checksum(&self) -> bool {
        self.algorithm != "NONE" && self.checksum.is_some()
    }
}

/// A checksum comparison.
pub(super) enum Sum {
    /// Equal.
    Match,
    /// Different: the computed digest (hex).
    Differs(String),
    /// The algorithm is not known.
    Unknown,
}

/// Digests `r` (expected to hold `l.size` bytes) and compares it with
/// `l`'s checksum. Returns the comparison and the bytes read; `None` when
/// fewer or more bytes than listed were read.
pub(super) fn compare(l: &Listed, r: &mut dyn Read) -> io::Result<(Option<Sum>, u64)> {
    let Some(expected) = l.checksum.as_deref() else {
        return Ok((Some(Sum::Match), 0));
    };
    let Some((got, read)) = digest(&l.algorithm, r)? else {
        return Ok((Some(Sum::Unknown), 0));
    };
    if read != l.size {
        return Ok((None, read));
    }
    let expected = expected.to_ascii_lowercase();
    Ok((
        Some(if got.contains(&expected) {
            Sum::Match
        } else {
            Sum::Differs(got[0].clone())
        }),
        read,
    ))
}

/// Verifies the backup around `manifest` (of `size` bytes). `None`: not a
/// backup manifest.
pub fn check(
    manifest: &mut dyn Read,
    size: u64,
    dir: &dyn Dir,
    level: Level,
    budget: &Budget,
) -> io::Result<Option<SetReport>> {
    if size > MAX_MANIFEST {
        return Ok(None);
    }
    let mut text = Vec::with_capacity(size as usize);
    manifest.take(size).read_to_end(&mut text)?;
    if !text.starts_with(MAGIC) {
        return Ok(None);
    }
    let mut report = SetReport {
        format: Format::PgBasebackup,
        level,
        anchor: Verdict::Sound,
        members: Vec::new(),
        bytes_read: text.len() as u64,
    };
    if let Some(v) = own_checksum(&text) {
        report.anchor = v;
        return Ok(Some(report));
    }
    let parsed: Manifest = match serde_json::from_slice(&text) {
        Ok(m) => m,
        Err(e) => {
            report.anchor = Verdict::Undecided(format!("backup_manifest does not parse: {e}"));
            return Ok(Some(report));
        }
    };
    let mut listed = Vec::with_capacity(parsed.files.len());
    for f in &parsed.files {
        let Some(path) = path_of(f) else {
            report.anchor = Verdict::Undecided("a manifest path that is not UTF-8".into());
            return Ok(Some(report));
        };
        if ignored(&path) {
            continue;
        }
        listed.push(Listed {
            path,
            size: f.size,
            algorithm: f.algorithm.clone().unwrap_or_else(|| "NONE".into()),
            checksum: f.checksum.clone(),
        });
    }
    let names = dir.names();
    let problems = if dir.size("PG_VERSION").is_none() && pgtar::is_tar_backup(&names) {
        pgtar::check(
            &listed,
            &parsed.wal_ranges,
            &names,
            dir,
            budget,
            &mut report,
        )?
    } else {
        plain(
            &listed,
            &parsed.wal_ranges,
            &names,
            dir,
            budget,
            &mut report,
        )?
    };
    if !problems.is_empty() {
        report.anchor = Verdict::Damaged(problems.join("; "));
    }
    Ok(Some(report))
}

/// A plain-format backup: the data directory itself. Returns the problems
/// reported on the manifest (what the tree lacks).
fn plain(
    listed: &[Listed],
    ranges: &[WalRange],
    names: &[String],
    dir: &dyn Dir,
    budget: &Budget,
    report: &mut SetReport,
) -> io::Result<Vec<String>> {
    let level = report.level;
    // Tablespaces the tree shows files of (pg_tblspc/OID/...).
    let shown: HashSet<&str> = names.iter().filter_map(|p| tablespace_of(p)).collect();
    let mut missing = Vec::new();
    for l in listed {
        let path = &l.path;
        let Some(have) = dir.size(path) else {
            if tablespace_of(path).is_none_or(|t| shown.contains(t)) {
                missing.push(path.clone());
            }
            continue;
        };
        if have != l.size {
            report.members.push((
                path.clone(),
                Verdict::Damaged(format!(
                    "size {} differs from the {} bytes its backup_manifest lists: \
                     the file was cut off or changed after the backup",
                    n(have),
                    n(l.size)
                )),
            ));
            continue;
        }
        if level != Level::Full || !l.has_checksum() {
            report.members.push((path.clone(), Verdict::Sound));
            continue;
        }
        if dir.verified(path) {
            continue;
        }
        if !budget.take(have) {
            report.level = Level::Fast;
            continue;
        }
        let Ok(mut r) = dir.open(path) else {
            continue;
        };
        let (sum, read) = compare(l, &mut r)?;
        report.bytes_read += read;
        let verdict = match sum {
            // Changed while read: say nothing.
            None => continue,
            Some(Sum::Match) => Verdict::Sound,
            Some(Sum::Unknown) => {
                Verdict::Undecided(format!("checksum algorithm {} is not known", l.algorithm))
            }
            Some(Sum::Differs(got)) => Verdict::Damaged(format!(
                "{} checksum {got} differs from the {} its backup_manifest \
                 lists: the file changed after the backup",
                l.algorithm,
                l.checksum
                    .as_deref()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            )),
        };
        report.members.push((path.clone(), verdict));
    }
    // Files the manifest does not list (reported on each).
    let known: HashSet<&str> = listed.iter().map(|l| l.path.as_str()).collect();
    let mut extra: Vec<&String> = names
        .iter()
        .filter(|p| !ignored(p) && !known.contains(p.as_str()))
        .collect();
    extra.sort();
    for p in extra {
        report.members.push((
            p.clone(),
            Verdict::Damaged(
                "not listed in the backup's backup_manifest: the file was added to the \
                 backup after it was taken"
                    .into(),
            ),
        ));
    }
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!(
            "backup_manifest lists {} file{} the backup lacks: {}",
            missing.len(),
            if missing.len() == 1 { "" } else { "s" },
            some_names(&missing)
        ));
    }
    let mut seen = wal::Seen::default();
    for p in names {
        if let Some(rel) = p.strip_prefix("pg_wal/") {
            seen.add(rel, dir.size(p).unwrap_or(0));
        }
    }
    if let Some(wal) = wal::problems(ranges, &seen, false) {
        problems.extend(wal.into_iter().map(|w| format!("pg_wal/ {w}")));
    }
    Ok(problems)
}

/// `pg_tblspc/OID` of a path under it.
fn tablespace_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("pg_tblspc/")?;
    let oid = rest.split('/').next()?;
    (rest.len() > oid.len()).then(|| &path[..10 + oid.len()])
}

/// The manifest's own checksum: `Some(verdict)` when it is not sound.
fn own_checksum(text: &[u8]) -> Option<Verdict> {
    let cut = || {
        Some(Verdict::Damaged(format!(
            "backup_manifest ends at byte {} without its closing Manifest-Checksum line: \
             it was cut off",
            n(text.len() as u64)
        )))
    };
    if !text.ends_with(b"\n") {
        return cut();
    }
    let body = &text[..text.len() - 1];
    let Some(penultimate) = body.iter().rposition(|&b| b == b'\n') else {
        return cut();
    };
    let last = &body[penultimate + 1..];
    let Some(rest) = last.strip_prefix(b"\"Manifest-Checksum\": \"") else {
        return cut();
    };
    let Some(hex) = rest.strip_suffix(b"\"}") else {
        return cut();
    };
    let want = String::from_utf8_lossy(hex).to_ascii_lowercase();
    let got = hex::encode(sha2::Sha256::digest(&text[..penultimate + 1]));
    if got == want {
        None
    } else {
        Some(Verdict::Damaged(format!(
            "backup_manifest's own SHA-256 checksum {got} differs from the {want} it records: \
             the manifest was altered or damaged"
        )))
    }
}

fn path_of(f: &ManifestFile) -> Option<String> {
    match (&f.path, &f.encoded_path) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(e)) => String::from_utf8(hex::decode(e).ok()?).ok(),
        (None, None) => None,
    }
}

/// The hex digest(s) of `r` under `algorithm` (CRC32C: both byte orders,
/// the little-endian one first) and the bytes read. `None`: unknown.
pub(super) fn digest(algorithm: &str, r: &mut dyn Read) -> io::Result<Option<(Vec<String>, u64)>> {
    fn sha<D: Digest>(r: &mut dyn Read) -> io::Result<(Vec<String>, u64)> {
        let mut d = D::new();
        let read = feed(r, |b| d.update(b))?;
        Ok((vec![hex::encode(d.finalize())], read))
    }
    Ok(Some(match algorithm {
        "CRC32C" => {
            let mut d = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
            let read = feed(r, |b| d.update(b))?;
            let v = d.finalize() as u32;
            (
                vec![hex::encode(v.to_le_bytes()), hex::encode(v.to_be_bytes())],
                read,
            )
        }
        "SHA224" => sha::<sha2::Sha224>(r)?,
        "SHA256" => sha::<sha2::Sha256>(r)?,
        "SHA384" => sha::<sha2::Sha384>(r)?,
        "SHA512" => sha::<sha2::Sha512>(r)?,
        _ => return Ok(None),
    }))
}
