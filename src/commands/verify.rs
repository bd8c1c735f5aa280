//! `vouch verify ROOT --manifest FILE`: check a tree, on any host, against
//! an exported manifest (b3sum, sha256sum or vouch json).
//!
//! It is `diff` with the manifest as A and the tree as B, so the findings
//! and their rules are the same: `missing` (in the manifest, not in the
//! tree), `extra`, `size_mismatch`, `corrupt`, `moved`, `unreadable`. The
//! tree is read, never written. To hash only what changed it goes through
//! the same incremental scan as every command, which records the tree's
//! manifest in the index (`--index`, default under `$XDG_DATA_HOME`); on a
//! host that never saw the tree that means every file is read once, and a
//! second verify reads only files whose size, mtime, ctime or inode moved.
//! `--rehash` reads every file again regardless. A SHA-256 manifest makes
//! the scan compute SHA-256 for every file that lacks one in the index.
//!
//! A manifest file that lives inside ROOT (a `B3SUMS` beside the data, as
//! `b3sum --check` users keep it) is left out of the comparison rather
//! than reported as `extra`, and the line such a list may hold for itself
//! (written while it was being hashed) is not `corrupt` either.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::{Map, Value, json};

use super::diff::{needs_sha256, scan_source};
use super::{Context, comparison};
use crate::engine::compare::{CompareOptions, DiffSummary, Names, compare};
use crate::engine::manifest::{self, ManifestFormat};
use crate::engine::scan;
use crate::model::{Outcome, paths};
use crate::out::{Progress, Sink};

/// Resolved settings of `vouch verify`.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifySettings {
    pub root: PathBuf,
    pub manifest: PathBuf,
    pub rehash: bool,
    pub manifest_format: Option<ManifestFormat>,
}

pub fn run(ctx: &Context, s: &VerifySettings) -> Result<Outcome> {
    comparison(ctx, |sink, progress| {
        let (summary, json) = run_verify(ctx, s, sink, progress)?;
        Ok((summary.identical(), json))
    })
}

const NAMES: Names = Names {
    a: "the manifest",
    b: "the tree",
};

/// Verifies `root` against `manifest_path`.
fn run_verify(
    ctx: &Context,
    s: &VerifySettings,
    sink: &mut dyn Sink,
    progress: &dyn Progress,
) -> Result<(DiffSummary, Map<String, Value>)> {
    let manifest_path: &Path = &s.manifest;
    let root = scan::resolve_root(&s.root)?;
    let expected = manifest::load(manifest_path, s.manifest_format)?;
    let ignore = std::fs::canonicalize(manifest_path)
        .ok()
        .filter(|m| m.starts_with(&root))
        .map(|m| paths::key_of(&root, &m));
    let mut index = ctx.open_index()?;
    let (tree, scanned) = scan_source(
        &mut index,
        &root,
        s.rehash,
        needs_sha256(&expected),
        None,
        progress,
    )?;
    let opts = CompareOptions {
        names: NAMES,
        ignore,
    };
    let summary = compare(&expected, &tree, Some(&index), &opts, sink, progress)?;
    let mut json = Map::new();
    json.insert("command".into(), json!("verify"));
    json.insert("root".into(), json!(root.display().to_string()));
    json.insert("manifest".into(), Value::Object(expected.describe.clone()));
    json.insert("tree".into(), Value::Object(tree.describe.clone()));
    json.extend(summary.to_json());
    json.insert("scan".into(), Value::Object(scanned.to_json(&root)));
    Ok((summary, json))
}
