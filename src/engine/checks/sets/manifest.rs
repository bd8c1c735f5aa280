//! pg_basebackup's `backup_manifest` (PostgreSQL 13+), verified the way
//! `pg_verifybackup` does (its parse_manifest.c and pg_verifybackup.c):
//!
//! - the manifest's own checksum: `Manifest-Checksum` is the SHA-256 of
//!   every byte up to and including the newline before its line, and the
//!   file ends with a newline;
//! - every file it lists (`Path`, or `Encoded-Path` in hex) is present with
//!   its `Size`;
//! - in `full`, each file's `Checksum` with its `Checksum-Algorithm`
//!   (`CRC32C`, the default, `SHA224`/`256`/`384`/`512`; `NONE`), reading
//!   every byte within the run's budget. CRC32C is written as the bytes of
//!   the in-memory integer (little-endian on the machines PostgreSQL
//!   usually runs on); both byte orders are accepted.
//!
//! Not done (as `pg_verifybackup -n`): the WAL ranges are not checked
//! against `pg_wal`, and files present but not listed are not reported.
//! A tar-format backup (`base.tar` next to the manifest) is not verified.

use std::io::{self, Read};

use serde::Deserialize;
use sha2::Digest;

use super::super::{Budget, Format, Level, Verdict, n};
use super::{Dir, SetReport, feed, some_names};

/// How a manifest starts (pg_basebackup writes exactly this).
pub const MAGIC: &[u8] = b"{ \"PostgreSQL-Backup-Manifest-Version\"";

/// Manifests larger than this are not read (1 GiB ~ 10 million files).
const MAX_MANIFEST: u64 = 1 << 30;

#[derive(Deserialize)]
struct Manifest {
    #[serde(rename = "Files")]
    files: Vec<ManifestFile>,
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
    let mut missing = Vec::new();
    for f in &parsed.files {
        let Some(path) = path_of(f) else {
            report.anchor = Verdict::Undecided("a manifest path that is not UTF-8".into());
            return Ok(Some(report));
        };
        let Some(have) = dir.size(&path) else {
            missing.push(path);
            continue;
        };
        if have != f.size {
            report.members.push((
                path,
                Verdict::Damaged(format!(
                    "size {} differs from the {} bytes its backup_manifest lists: \
                     the file was cut off or changed after the backup",
                    n(have),
                    n(f.size)
                )),
            ));
            continue;
        }
        let algorithm = f.algorithm.as_deref().unwrap_or("NONE");
        if level != Level::Full || algorithm == "NONE" {
            report.members.push((path, Verdict::Sound));
            continue;
        }
        if dir.verified(&path) {
            continue;
        }
        let Some(expected) = f.checksum.as_deref() else {
            continue;
        };
        if !budget.take(have) {
            continue;
        }
        let Ok(mut r) = dir.open(&path) else {
            continue;
        };
        let (got, read) = match digest(algorithm, &mut r)? {
            Some(v) => v,
            None => {
                report.members.push((
                    path,
                    Verdict::Undecided(format!("checksum algorithm {algorithm} is not known")),
                ));
                continue;
            }
        };
        report.bytes_read += read;
        if read != have {
            // Changed while read: say nothing.
            continue;
        }
        let expected = expected.to_ascii_lowercase();
        let matches = got.contains(&expected);
        report.members.push((
            path,
            if matches {
                Verdict::Sound
            } else {
                Verdict::Damaged(format!(
                    "{algorithm} checksum {} differs from the {expected} its backup_manifest \
                     lists: the file changed after the backup",
                    got[0]
                ))
            },
        ));
    }
    if !missing.is_empty() {
        report.anchor = Verdict::Damaged(format!(
            "backup_manifest lists {} file{} the backup lacks: {}",
            missing.len(),
            if missing.len() == 1 { "" } else { "s" },
            some_names(&missing)
        ));
    }
    Ok(Some(report))
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
fn digest(algorithm: &str, r: &mut dyn Read) -> io::Result<Option<(Vec<String>, u64)>> {
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
