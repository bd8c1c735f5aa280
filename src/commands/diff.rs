//! `vouch diff A B`: compare two trees, snapshots or manifests (see
//! [`crate::engine::compare`] for how). This file turns the operands into
//! sources: a directory is scanned first (incrementally), `@NAME`/`@N` is
//! a snapshot in the index, a file is a manifest.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde_json::{Map, Value, json};

use super::{Context, comparison};
use crate::engine::compare::{AB, CompareOptions, DiffSummary, compare};
use crate::engine::hash::Want;
use crate::engine::manifest::{self, ManifestFormat};
use crate::engine::scan::{self, ScanOptions, ScanSummary};
use crate::engine::snapshot::{self, Data, Source};
use crate::model::{EntryKind, Outcome};
use crate::out::{Discard, Progress, Sink};
use crate::store::Index;

/// Resolved settings of `vouch diff`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffSettings {
    pub a: OsString,
    pub b: OsString,
    pub rehash: bool,
    pub manifest_format: Option<ManifestFormat>,
}

pub fn run(ctx: &Context, s: &DiffSettings) -> Result<Outcome> {
    comparison(ctx, |sink, progress| {
        let (summary, json) = run_diff(ctx, s, sink, progress)?;
        Ok((summary.identical(), json))
    })
}

/// One operand of `diff`.
#[derive(Debug, Clone)]
pub enum Operand {
    /// `@NAME` or `@N` (without the `@`).
    Snapshot(String),
    /// A directory, resolved.
    Dir(PathBuf),
    /// A manifest file.
    Manifest(PathBuf),
}

/// `@…` is a snapshot; an existing directory is a tree; a file a manifest.
/// (A directory whose name starts with `@` can be given as `./@name`.)
pub fn parse_operand(text: &OsStr) -> Result<Operand> {
    use std::os::unix::ffi::OsStrExt;
    if let Some(rest) = text.as_bytes().strip_prefix(b"@") {
        let Ok(spec) = std::str::from_utf8(rest) else {
            bail!("{}: a snapshot name must be UTF-8", text.to_string_lossy());
        };
        if spec.is_empty() {
            bail!("`@` needs a snapshot label or run number, e.g. @before or @12");
        }
        return Ok(Operand::Snapshot(spec.to_string()));
    }
    let path = Path::new(text);
    let meta = std::fs::metadata(path).with_context(|| {
        format!(
            "{} is neither a directory, a manifest file nor an @snapshot",
            path.display()
        )
    })?;
    if meta.is_dir() {
        Ok(Operand::Dir(scan::resolve_root(path)?))
    } else {
        Ok(Operand::Manifest(path.to_path_buf()))
    }
}

/// True when comparing with `m` needs SHA-256 of the other side.
pub fn needs_sha256(m: &Source) -> bool {
    match &m.data {
        Data::Memory(nodes) => nodes
            .iter()
            .any(|n| n.kind == EntryKind::File && n.blake3.is_none() && n.sha256.is_some()),
        Data::Run { .. } => false,
    }
}

/// Scans `root` (incrementally) and returns it as a source.
pub fn scan_source(
    index: &mut Index,
    root: &Path,
    rehash: bool,
    sha256: bool,
    shard: Option<crate::engine::shard::Shard>,
    progress: &dyn Progress,
) -> Result<(Source, ScanSummary)> {
    let opts = ScanOptions {
        rehash,
        want: Want { md5: false, sha256 },
        shard,
        // `command: None` records the run as a scan, so the next `vouch
        // scan` of this root knows the manifest moved on (see
        // scan::last_scan_run).
        ..Default::default()
    };
    let summary = scan::scan(index, root, &opts, &mut Discard, progress)?;
    let run = index
        .run(summary.run_id)?
        .context("the scan's run vanished from the index")?;
    let mut source = snapshot::run_source(index, &run, "directory")?;
    source
        .describe
        .insert("path".into(), json!(root.display().to_string()));
    Ok((source, summary))
}

/// Refuses a snapshot that lacks SHA-256 for some file when the other side
/// only has SHA-256: its files cannot be re-read to compute it.
fn require_sha256(index: &Index, source: &Source, shown: &str) -> Result<()> {
    let Data::Run {
        root_id, run_id, ..
    } = source.data
    else {
        return Ok(());
    };
    let n = index.files_without_sha256(root_id, run_id)?;
    if n > 0 {
        bail!(
            "{shown} has no SHA-256 for {n} files and the other side has only SHA-256; compare against the directory itself, or take the snapshot with `vouch scan ROOT --sha256`"
        );
    }
    Ok(())
}

/// `vouch diff A B`.
fn run_diff(
    ctx: &Context,
    s: &DiffSettings,
    sink: &mut dyn Sink,
    progress: &dyn Progress,
) -> Result<(DiffSummary, Map<String, Value>)> {
    let (a, b) = (s.a.as_os_str(), s.b.as_os_str());
    let ops = [parse_operand(a)?, parse_operand(b)?];
    let mut manifests: [Option<Source>; 2] = [None, None];
    for (i, op) in ops.iter().enumerate() {
        if let Operand::Manifest(p) = op {
            manifests[i] = Some(manifest::load(p, s.manifest_format)?);
        }
    }
    if let [Some(x), Some(y)] = &manifests
        && x.files_only
        && y.files_only
        && needs_sha256(x) != needs_sha256(y)
    {
        bail!("a b3sum list and a sha256sum list share no hash; nothing can be compared");
    }
    let sha256 = manifests.iter().flatten().any(needs_sha256);
    let has_dir = ops.iter().any(|o| matches!(o, Operand::Dir(_)));
    let has_snapshot = ops.iter().any(|o| matches!(o, Operand::Snapshot(_)));
    let mut index = if has_dir {
        Some(ctx.open_index()?)
    } else if has_snapshot {
        Some(ctx.read_index()?)
    } else {
        None
    };
    let mut sources = Vec::new();
    let mut scans: [Option<ScanSummary>; 2] = [None, None];
    for (i, op) in ops.iter().enumerate() {
        let source = match op {
            Operand::Manifest(_) => manifests[i].take().expect("loaded"),
            Operand::Dir(root) => {
                let index = index.as_mut().expect("opened");
                let (src, summary) = scan_source(index, root, s.rehash, sha256, None, progress)?;
                scans[i] = Some(summary);
                src
            }
            Operand::Snapshot(spec) => {
                let index = index.as_ref().expect("opened");
                let run = snapshot::resolve_run(index, spec)?;
                let src = snapshot::run_source(index, &run, "snapshot")?;
                if sha256 {
                    require_sha256(index, &src, &format!("@{spec}"))?;
                }
                src
            }
        };
        sources.push(source);
    }
    let opts = CompareOptions {
        names: AB,
        ignore: None,
    };
    let summary = compare(
        &sources[0],
        &sources[1],
        index.as_ref(),
        &opts,
        sink,
        progress,
    )?;
    let mut json = Map::new();
    json.insert("command".into(), json!("diff"));
    json.insert("a".into(), Value::Object(sources[0].describe.clone()));
    json.insert("b".into(), Value::Object(sources[1].describe.clone()));
    json.extend(summary.to_json());
    for (i, name) in ["scan_a", "scan_b"].into_iter().enumerate() {
        if let (Some(s), Operand::Dir(root)) = (&scans[i], &ops[i]) {
            json.insert(name.into(), Value::Object(s.to_json(root)));
        }
    }
    Ok((summary, json))
}
