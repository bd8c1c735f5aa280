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
//! than reported as `extra`.

use std::path::Path;

use anyhow::Result;
use serde_json::{Map, Value, json};

use crate::diff::{self, CompareOptions, DiffSummary, Names, RunContext};
use crate::index::Index;
use crate::manifest;
use crate::paths;
use crate::report::Sink;
use crate::scan;

pub const NAMES: Names = Names {
    a: "the manifest",
    b: "the tree",
};

/// Verifies `root` against `manifest_path`.
pub fn run_verify(
    ctx: &RunContext,
    root: &Path,
    manifest_path: &Path,
    sink: &mut dyn Sink,
) -> Result<(DiffSummary, Map<String, Value>)> {
    let root = scan::resolve_root(root)?;
    let expected = manifest::load(manifest_path, ctx.manifest_format)?;
    let ignore_b = std::fs::canonicalize(manifest_path)
        .ok()
        .filter(|m| m.starts_with(&root))
        .map(|m| paths::key_of(&root, &m));
    let mut index = Index::open(&ctx.index, ctx.wait)?;
    let (tree, scanned) = diff::scan_source(&mut index, &root, ctx, diff::needs_sha256(&expected))?;
    let opts = CompareOptions {
        names: NAMES,
        progress: ctx.progress,
        ignore_b,
    };
    let summary = diff::compare(&expected, &tree, Some(&index.conn), &opts, sink)?;
    let mut json = Map::new();
    json.insert("command".into(), json!("verify"));
    json.insert("root".into(), json!(root.display().to_string()));
    json.insert("manifest".into(), Value::Object(expected.describe.clone()));
    json.insert("tree".into(), Value::Object(tree.describe.clone()));
    json.extend(summary.to_json());
    json.insert("scan".into(), Value::Object(scanned.to_json(&root)));
    Ok((summary, json))
}
