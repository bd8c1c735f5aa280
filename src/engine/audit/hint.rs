//! "Did you mean …": the hint for a remote named one level off.
//!
//! A forgotten prefix (`--remote s3://backups` for a backup kept under
//! `s3://backups/prod`) makes every file both `missing` (at `d/f`) and
//! `extra` (at `prod/d/f`); one level too deep (`s3://backups/prod/photos`
//! for a tree holding `photos/` and more) makes the files under `photos/`
//! extra at `f` and missing at `photos/f`. Both are one mistake, not a
//! million findings, so when most of the missing (or extra) paths line up
//! under one first component the audit names the remote that was meant.
//! The findings stay as they are: a hint never hides a discrepancy.

use std::collections::{BTreeMap, HashSet};

use crate::model::paths::SEP;

/// The remote that was probably meant, and why, or `None`.
///
/// `missing` and `extra` are the keys of this run's findings (relative
/// to ROOT and to the remote's prefix, components separated by
/// [`SEP`]). A hint needs more than half of
/// the missing files to be found as extras under one prefix `P/`
/// (then `remote/P`), or more than half of the extras to be missing under
/// `P/` where the remote's last component is `P` (then its parent).
pub fn prefix_hint(remote: &str, missing: &[Vec<u8>], extra: &[Vec<u8>]) -> Option<String> {
    if missing.is_empty() || extra.is_empty() {
        return None;
    }
    let remote = remote.trim_end_matches('/');
    let missing_set: HashSet<&[u8]> = missing.iter().map(Vec::as_slice).collect();
    let extra_set: HashSet<&[u8]> = extra.iter().map(Vec::as_slice).collect();
    // Too shallow: extra `P/rest` where `rest` is missing.
    if let Some((prefix, n)) = best_prefix(extra, &missing_set)
        && 2 * n > missing.len() as u64
    {
        let meant = format!("{remote}/{prefix}");
        return Some(format!(
            "did you mean --remote {meant}? {n} of the {} missing files are on the backup under {prefix}/",
            missing.len()
        ));
    }
    // Too deep: missing `P/rest` where `rest` is extra, and the remote
    // ends in `/P`.
    if let Some((prefix, n)) = best_prefix(missing, &extra_set)
        && 2 * n > extra.len() as u64
        && let Some((parent, last)) = remote.rsplit_once('/')
        && last == prefix
        && !parent.ends_with(':')
        && !parent.ends_with('/')
    {
        return Some(format!(
            "did you mean --remote {parent}? {n} of the {} extra objects are files of ROOT under {prefix}/",
            extra.len()
        ));
    }
    None
}

/// The first component `P` of `paths` under which the most `P/rest`
/// have `rest` in `other`, with that count.
fn best_prefix(paths: &[Vec<u8>], other: &HashSet<&[u8]>) -> Option<(String, u64)> {
    let mut counts: BTreeMap<&[u8], u64> = BTreeMap::new();
    for p in paths {
        if let Some(slash) = p.iter().position(|&b| b == SEP)
            && other.contains(&p[slash + 1..])
        {
            *counts.entry(&p[..slash]).or_default() += 1;
        }
    }
    let (prefix, n) = counts
        .into_iter()
        .max_by_key(|&(p, n)| (n, std::cmp::Reverse(p)))?;
    let prefix = std::str::from_utf8(prefix).ok()?.to_string();
    Some((prefix, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter()
            .map(|s| s.replace('/', "\0").into_bytes())
            .collect()
    }

    #[test]
    fn a_forgotten_prefix_and_a_prefix_too_deep_are_named() {
        let missing = v(&["a", "d/b", "d/c"]);
        let extra = v(&["prod/a", "prod/d/b", "prod/d/c", "other"]);
        assert_eq!(
            prefix_hint("s3://backups/", &missing, &extra).unwrap(),
            "did you mean --remote s3://backups/prod? 3 of the 3 missing files are on the backup under prod/"
        );
        // Too deep: the tree holds photos/ and docs/, the remote is photos.
        let missing = v(&["photos/x", "photos/y", "docs/z"]);
        let extra = v(&["x", "y"]);
        assert_eq!(
            prefix_hint("s3://b/prod/photos", &missing, &extra).unwrap(),
            "did you mean --remote s3://b/prod? 2 of the 2 extra objects are files of ROOT under photos/"
        );
        // Not when the bucket itself would be cut, nor when few line up.
        assert_eq!(prefix_hint("s3://photos", &missing, &extra), None);
        let missing = v(&["a", "b", "c"]);
        let extra = v(&["prod/a", "x"]);
        assert_eq!(prefix_hint("s3://b", &missing, &extra), None);
        assert_eq!(prefix_hint("s3://b", &[], &extra), None);
    }
}
