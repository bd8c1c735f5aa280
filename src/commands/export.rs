//! `vouch export ROOT --format FORMAT`: scan ROOT, then write the manifest
//! of that scan (see [`crate::engine::export`]). A one-line summary, and a
//! warning for what a checksum list cannot hold, go to stderr.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::Context;
use super::diff::scan_source;
use crate::engine::export::{self, ExportFormat, ExportOptions, ExportSummary};
use crate::engine::reports::Target;
use crate::engine::scan;
use crate::engine::shard::Shard;
use crate::model::Outcome;

/// Resolved settings of `vouch export`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSettings {
    pub root: PathBuf,
    pub format: ExportFormat,
    pub copy: bool,
    pub rehash: bool,
    pub shard: Option<Shard>,
}

pub fn run(ctx: &Context, s: &ExportSettings) -> Result<Outcome> {
    let root = scan::resolve_root(&s.root)?;
    let mut index = ctx.open_index()?;
    let progress = ctx.progress();
    let opts = ExportOptions {
        format: s.format,
        output: ctx.local_output()?.map(Path::to_path_buf),
        copy: s.copy,
    };
    // Refuse a bad bag directory before scanning anything.
    export::check_output(&root, &opts)?;
    let sha256 = matches!(s.format, ExportFormat::Sha256sum | ExportFormat::Bagit);
    let (source, scanned) = scan_source(
        &mut index,
        &root,
        s.rehash,
        sha256,
        s.shard,
        progress.as_ref(),
    )?;
    let summary = export::export(&index, &root, &source, &scanned, &opts, progress.as_ref())?;
    if !ctx.quiet {
        tell(ctx, &root, s.format, &summary);
    }
    Ok(Outcome::Clean)
}

/// The summary line (and the warning) on stderr.
fn tell(ctx: &Context, root: &std::path::Path, fmt: ExportFormat, summary: &ExportSummary) {
    let to = match &ctx.output {
        Some(Target::Local(p)) => p.display().to_string(),
        Some(Target::Remote(u)) => u.clone(),
        None => "stdout".to_string(),
    };
    let mut line = format!(
        "vouch: exported {} files ({} bytes) of {} as {} to {to}; merkle root {}",
        summary.files,
        summary.bytes,
        root.display(),
        fmt.name(),
        hex::encode(summary.merkle_root)
    );
    if fmt == ExportFormat::Bagit {
        line.push_str(&format!(
            "; {} hard-linked, {} copied",
            summary.linked, summary.copied
        ));
    }
    eprintln!("{line}");
    if fmt != ExportFormat::Json && (summary.symlinks > 0 || summary.empty_dirs > 0) {
        eprintln!(
            "vouch: warning: {} symlinks and {} empty directories are not in the {} manifest (it lists regular files; --format json keeps them)",
            summary.symlinks,
            summary.empty_dirs,
            fmt.name()
        );
    }
}
