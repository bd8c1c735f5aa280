//! `vouch export ROOT --format b3sum|sha256sum|bagit|json`: a manifest that
//! travels with a copy of the tree and can be checked without vouch's index
//! (`b3sum --check`, `sha256sum --check`, a BagIt validator) or with
//! `vouch verify` / `vouch diff` on any host.
//!
//! ROOT is scanned first (incrementally; `sha256sum` and `bagit` make the
//! scan compute SHA-256 where the index lacks it), then the manifest of
//! that very scan is written, so an export never lists a hash older than
//! the file. A scan that could not read some path refuses the export:
//! a manifest must not vouch for bytes nobody read. Paths are relative to
//! ROOT.
//!
//! - `b3sum` / `sha256sum`: exactly what those tools print, so their
//!   `--check` run in ROOT accepts it (odd names escaped their way). They
//!   list regular files only; symlinks and empty directories are counted
//!   and named in a warning. A name that is not valid UTF-8 cannot be
//!   written in a form `b3sum --check` reads, so vouch refuses the export
//!   (exit 2) and names it; the json format holds any name.
//! - `json`: vouch's own manifest (see [`crate::engine::manifest`]), every entry
//!   with its hashes, symlink targets, directory Merkle hashes and root.
//! - `bagit`: a complete BagIt 1.0 bag in `--output DIR`: the payload under
//!   `data/` as hard links to the source files where the filesystem allows
//!   (else copies, or always with `--copy`), `bagit.txt`, `bag-info.txt`
//!   (Payload-Oxum, Bagging-Date), `manifest-sha256.txt` and
//!   `tagmanifest-sha256.txt`. The bag is built in `DIR.vouch-partial` and
//!   renamed into place when complete. A hard-linked file's metadata must
//!   still be what the scan saw (else it is hashed again); a copied file is
//!   hashed while it is copied. Either way a payload file whose bytes are
//!   not the scanned ones fails the export. The source tree's contents are
//!   never changed (a hard link does update the source inode's link count
//!   and ctime, so the next scan re-reads those files once).
//!
//! `--output FILE` is written atomically (a temporary file renamed into
//! place); without it a checksum list or json goes to stdout.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use sha2::Digest as _;

use crate::engine::manifest::{self, JSON_VERSION, ManifestFormat};
use crate::engine::scan::ScanSummary;
use crate::engine::snapshot::Source;
use crate::model::EntryKind;
use crate::model::Node;
use crate::model::paths;
use crate::out::Progress;
use crate::out::atomic::Output;
use crate::store::Index;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    B3sum,
    Sha256sum,
    Bagit,
    Json,
}

impl ExportFormat {
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::B3sum => "b3sum",
            ExportFormat::Sha256sum => "sha256sum",
            ExportFormat::Bagit => "bagit",
            ExportFormat::Json => "json",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub format: ExportFormat,
    pub output: Option<PathBuf>,
    /// BagIt: copy the payload instead of hard-linking it.
    pub copy: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ExportSummary {
    pub run_id: i64,
    pub merkle_root: [u8; 32],
    pub files: u64,
    pub bytes: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub empty_dirs: u64,
    pub linked: u64,
    pub copied: u64,
}

/// Checks where the export goes before anything is scanned: a bag needs
/// `--output DIR`, outside ROOT and empty; returns the bag directory and
/// its temporary sibling.
pub fn check_output(root: &Path, opts: &ExportOptions) -> Result<Option<(PathBuf, PathBuf)>> {
    Ok(match (opts.format, &opts.output) {
        (ExportFormat::Bagit, None) => {
            bail!("--format bagit needs --output DIR (the bag to create)")
        }
        (ExportFormat::Bagit, Some(out)) => Some(check_bag_dir(root, out)?),
        _ => None,
    })
}

/// Exports the scanned snapshot `source` of `root` (already resolved).
pub fn export(
    index: &Index,
    root: &Path,
    source: &Source,
    scan: &ScanSummary,
    opts: &ExportOptions,
    progress: &dyn Progress,
) -> Result<ExportSummary> {
    let fmt = opts.format;
    let bag_dir = check_output(root, opts)?;
    refuse_unsettled(root, source)?;
    let mut summary = ExportSummary {
        run_id: scan.run_id,
        merkle_root: scan.merkle_root,
        ..Default::default()
    };
    if fmt != ExportFormat::Json {
        refuse_unrepresentable(source, index, fmt)?;
    }
    // A checksum list written inside the tree it describes lists
    // everything but itself: on the next export it holds the previous
    // list, whose hash would be stale the moment the new one replaces it.
    // (A json manifest keeps its entry: its directory hashes include it;
    // `verify` passes over a manifest lying in its tree.)
    let own = opts.output.as_deref().and_then(|o| own_key(root, o));
    let own = own.as_deref();
    progress.begin("exporting");
    match fmt {
        ExportFormat::B3sum | ExportFormat::Sha256sum => {
            let mut out = Output::open(opts.output.as_deref())?;
            each_node(source, index, own, &mut summary, |n, _| {
                progress.advance(1);
                if n.kind != EntryKind::File {
                    return Ok(());
                }
                let hash = if fmt == ExportFormat::B3sum {
                    n.blake3
                } else {
                    n.sha256
                };
                let hash = hash.ok_or_else(|| {
                    anyhow!(
                        "internal: {} has no {} after the scan",
                        paths::display(&n.key),
                        fmt.name()
                    )
                })?;
                let format = if fmt == ExportFormat::B3sum {
                    ManifestFormat::B3sum
                } else {
                    ManifestFormat::Sha256sum
                };
                manifest::write_checksum_line(&mut out, format, &hash, &n.key)
            })?;
            out.commit()?;
        }
        ExportFormat::Json => {
            let mut out = Output::open(opts.output.as_deref())?;
            let head = manifest::ordered_object(&[
                ("vouch_manifest", json!(JSON_VERSION)),
                (
                    "generator",
                    json!(concat!("vouch ", env!("CARGO_PKG_VERSION"))),
                ),
                (
                    "created",
                    json!(crate::model::format_time(crate::model::now_unix())),
                ),
                ("root", json!(paths::escape_bytes(&root_bytes(root)))),
                ("run", json!(scan.run_id)),
                ("merkle_root", json!(hex::encode(scan.merkle_root))),
            ]);
            write!(out, "{},\"entries\":[", head.trim_end_matches('}'))?;
            let mut first = true;
            each_node(source, index, None, &mut summary, |n, _| {
                progress.advance(1);
                let sep = if first { "\n" } else { ",\n" };
                first = false;
                write!(out, "{sep}{}", manifest::json_entry(n))?;
                Ok(())
            })?;
            writeln!(
                out,
                "\n],\"files\":{},\"dirs\":{},\"symlinks\":{},\"bytes\":{}}}",
                summary.files, summary.dirs, summary.symlinks, summary.bytes
            )?;
            out.commit()?;
        }
        ExportFormat::Bagit => {
            let (dest, partial) = bag_dir.expect("checked");
            write_bag(
                root,
                source,
                index,
                &dest,
                &partial,
                opts.copy,
                &mut summary,
                progress,
            )?;
        }
    }
    progress.end();
    Ok(summary)
}

fn root_bytes(root: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    root.as_os_str().as_bytes().to_vec()
}

/// A scan that could not read everything cannot be exported.
fn refuse_unsettled(root: &Path, source: &Source) -> Result<()> {
    if let Some((k, u)) = source.unsettled.iter().next() {
        bail!(
            "cannot export {}: {} paths could not be settled by the scan (first: {}: {}); a manifest must not vouch for bytes nobody read",
            root.display(),
            source.unsettled.len(),
            paths::display(k),
            u.detail
        );
    }
    if source.unhashed {
        bail!(
            "cannot export {}: some files have no hash in the index",
            root.display()
        );
    }
    Ok(())
}

/// Why a checksum list or a BagIt manifest cannot hold this name.
fn unrepresentable(key: &[u8], fmt: ExportFormat) -> Option<&'static str> {
    let as_list = if fmt == ExportFormat::B3sum {
        ManifestFormat::B3sum
    } else {
        ManifestFormat::Sha256sum
    };
    if let Some(why) = manifest::checksum_name_problem(key, as_list) {
        return Some(why);
    }
    if fmt == ExportFormat::Bagit {
        let lower = String::from_utf8_lossy(key).to_ascii_lowercase();
        if ["%0a", "%0d", "%25"].iter().any(|s| lower.contains(s)) {
            return Some("holding %0A, %0D or %25, which BagIt readers decode differently");
        }
    }
    None
}

/// Checksum lists and BagIt manifests hold UTF-8 names only; refuse the
/// export up front rather than write a manifest that skips a file.
fn refuse_unrepresentable(source: &Source, index: &Index, fmt: ExportFormat) -> Result<()> {
    let mut bad: Vec<(Vec<u8>, &str)> = Vec::new();
    let mut n = 0u64;
    let mut cursor = source.cursor(Some(index))?;
    while let Some(node) = cursor.next_node()? {
        if node.kind != EntryKind::File {
            continue;
        }
        if let Some(why) = unrepresentable(&node.key, fmt) {
            n += 1;
            if bad.len() < 3 {
                bad.push((node.key, why));
            }
        }
    }
    if n > 0 {
        let shown: Vec<String> = bad
            .iter()
            .map(|(k, why)| format!("{}: {why}", paths::display(k)))
            .collect();
        bail!(
            "cannot export as {}: a {} manifest cannot hold {n} of the file names ({}); use --format json, which holds any name",
            fmt.name(),
            fmt.name(),
            shown.join("; ")
        );
    }
    Ok(())
}

/// The key of `output` when it lies inside `root` (through any spelling
/// of its directory), else `None`.
fn own_key(root: &Path, output: &Path) -> Option<Vec<u8>> {
    let name = output.file_name()?;
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file = std::fs::canonicalize(dir).ok()?.join(name);
    file.strip_prefix(root).ok()?;
    Some(paths::key_of(root, &file))
}

/// Walks the snapshot in key order, keeping the counters; `f` gets each
/// node and whether it is an empty directory. The file `skip` (the export
/// itself, inside ROOT) is passed over.
fn each_node(
    source: &Source,
    index: &Index,
    skip: Option<&[u8]>,
    summary: &mut ExportSummary,
    mut f: impl FnMut(&Node, bool) -> Result<()>,
) -> Result<()> {
    let mut cursor = source.cursor(Some(index))?;
    while let Some(node) = cursor.next_node()? {
        if node.kind == EntryKind::File && skip == Some(node.key.as_slice()) {
            continue;
        }
        let empty_dir = node.kind == EntryKind::Dir
            && !cursor
                .peek()?
                .is_some_and(|next| paths::is_inside(&next.key, &node.key));
        match node.kind {
            EntryKind::File => {
                summary.files += 1;
                summary.bytes += node.size.unwrap_or(0);
            }
            EntryKind::Symlink => summary.symlinks += 1,
            EntryKind::Dir => {
                summary.dirs += 1;
                if empty_dir {
                    summary.empty_dirs += 1;
                }
            }
        }
        f(&node, empty_dir)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- BagIt

/// The bag directory (absolute) and its temporary sibling. The bag must
/// not exist (or be an empty directory) and must lie outside ROOT.
fn check_bag_dir(root: &Path, out: &Path) -> Result<(PathBuf, PathBuf)> {
    let name = out
        .file_name()
        .with_context(|| format!("--output {} names no directory", out.display()))?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent = std::fs::canonicalize(&parent)
        .with_context(|| format!("the parent of {} does not exist", out.display()))?;
    let dest = parent.join(name);
    if dest.starts_with(root) {
        bail!(
            "the bag {} would lie inside ROOT {}; put it elsewhere",
            dest.display(),
            root.display()
        );
    }
    if let Ok(meta) = std::fs::symlink_metadata(&dest) {
        let empty = meta.is_dir()
            && std::fs::read_dir(&dest)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
        if !empty {
            bail!(
                "{} already exists; the bag needs a new or empty directory",
                dest.display()
            );
        }
    }
    let mut partial = name.to_owned();
    partial.push(".vouch-partial");
    Ok((dest, parent.join(partial)))
}

/// A payload path as a BagIt manifest line holds it: CR and LF are
/// percent-encoded (RFC 8493 §2.1.3). `%` itself is written as is: the
/// RFC would have `%25`, but bagit-python (1.9) does not decode it, and
/// names where the two readings differ (`%0A`, `%0D`, `%25`) are refused
/// before anything is written (see [`unrepresentable`]).
fn bag_path(key: &[u8]) -> String {
    let name = String::from_utf8_lossy(&paths::slash_bytes(key)).into_owned();
    let name = name.replace('\r', "%0D").replace('\n', "%0A");
    format!("data/{name}")
}

#[allow(clippy::too_many_arguments)]
fn write_bag(
    root: &Path,
    source: &Source,
    index: &Index,
    dest: &Path,
    partial: &Path,
    copy: bool,
    summary: &mut ExportSummary,
    progress: &dyn Progress,
) -> Result<()> {
    if partial.exists() {
        std::fs::remove_dir_all(partial).with_context(|| {
            format!(
                "cannot remove {} left by an earlier export",
                partial.display()
            )
        })?;
    }
    let data = partial.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let result = (|| -> Result<()> {
        let mut manifest = BufWriter::new(File::create(partial.join("manifest-sha256.txt"))?);
        let (mut linked, mut copied) = (0u64, 0u64);
        each_node(source, index, None, summary, |n, _| {
            progress.advance(1);
            let to = paths::fs_path(&data, &n.key);
            match n.kind {
                EntryKind::Dir => {
                    std::fs::create_dir_all(&to)
                        .with_context(|| format!("cannot create {}", to.display()))?;
                }
                EntryKind::Symlink => {}
                EntryKind::File => {
                    let from = paths::fs_path(root, &n.key);
                    if let Some(parent) = to.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    let sha = n.sha256.ok_or_else(|| {
                        anyhow!(
                            "internal: {} has no SHA-256 after the scan",
                            paths::display(&n.key)
                        )
                    })?;
                    if place_payload(&from, &to, n, &sha, copy)? {
                        linked += 1;
                    } else {
                        copied += 1;
                    }
                    writeln!(manifest, "{}  {}", hex::encode(sha), bag_path(&n.key))?;
                }
            }
            Ok(())
        })?;
        summary.linked = linked;
        summary.copied = copied;
        manifest
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        std::fs::write(
            partial.join("bagit.txt"),
            "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
        )?;
        let today = &crate::model::format_time(crate::model::now_unix())[..10];
        std::fs::write(
            partial.join("bag-info.txt"),
            format!(
                "Bag-Software-Agent: vouch {} <merkle root {}>\nBagging-Date: {today}\nPayload-Oxum: {}.{}\n",
                env!("CARGO_PKG_VERSION"),
                hex::encode(summary.merkle_root),
                summary.bytes,
                summary.files
            ),
        )?;
        let mut tags = String::new();
        for tag in ["bag-info.txt", "bagit.txt", "manifest-sha256.txt"] {
            let bytes = std::fs::read(partial.join(tag))?;
            tags.push_str(&format!(
                "{}  {tag}\n",
                hex::encode(sha2::Sha256::digest(&bytes))
            ));
        }
        std::fs::write(partial.join("tagmanifest-sha256.txt"), tags)?;
        if dest.exists() {
            std::fs::remove_dir(dest).with_context(|| {
                format!("cannot replace the empty directory {}", dest.display())
            })?;
        }
        std::fs::rename(partial, dest)
            .with_context(|| format!("cannot move the bag into {}", dest.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(partial);
    }
    result
}

/// Puts one payload file in place; returns true for a hard link, false for
/// a copy. Fails when the bytes placed are not the ones the scan hashed.
fn place_payload(from: &Path, to: &Path, n: &Node, sha: &[u8; 32], copy: bool) -> Result<bool> {
    let shown = || paths::display(&n.key);
    if !copy {
        let before = std::fs::symlink_metadata(from)
            .with_context(|| format!("cannot stat {}", from.display()))?;
        if std::fs::hard_link(from, to).is_ok() {
            let placed = crate::model::Stat::of(&std::fs::symlink_metadata(to)?);
            let before = crate::model::Stat::of(&before);
            // Unchanged since the scan (ctime included, as the scan trusts
            // it) and the link is to that same inode: the hash holds.
            if Some(before) == n.stat && placed.inode == before.inode && placed.size == before.size
            {
                return Ok(true);
            }
            let (got, size) = sha256_of(&mut File::open(to)?, None)?;
            if got != *sha || Some(size) != n.size {
                let _ = std::fs::remove_file(to);
                bail!("{} changed after the scan; run the export again", shown());
            }
            return Ok(true);
        }
    }
    let mut src = File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    let meta = src.metadata()?;
    let mut dst = File::options()
        .write(true)
        .create_new(true)
        .open(to)
        .with_context(|| format!("cannot create {}", to.display()))?;
    let (got, size) = sha256_of(&mut src, Some(&mut dst))?;
    if got != *sha || Some(size) != n.size {
        bail!("{} changed after the scan; run the export again", shown());
    }
    dst.set_permissions(meta.permissions())?;
    if let Ok(m) = meta.modified() {
        let _ = dst.set_modified(m);
    }
    Ok(false)
}

/// SHA-256 and length of everything `r` yields, copied to `w` if given.
fn sha256_of(r: &mut impl Read, mut w: Option<&mut File>) -> Result<([u8; 32], u64)> {
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        h.update(&buf[..n]);
        if let Some(w) = w.as_mut() {
            w.write_all(&buf[..n])?;
        }
        total += n as u64;
    }
    Ok((h.finalize().into(), total))
}
