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
//!
//! Memory does not grow with the number of findings: the paths are
//! streamed from the index in key order, several times, and what is held
//! is a sample of at most [`SAMPLE`] missing paths plus a few paths (the
//! prefix being counted, the best so far, the heads of a merge-join).
//! The sample only picks the candidate prefix; the count the hint states,
//! and the "more than half" it needs, are exact (a merge-join of the
//! sorted missing paths with the extras under the candidate).

use std::collections::HashSet;

use anyhow::Result;

use crate::model::Kind;
use crate::model::paths::SEP;

/// Missing paths (the first in key order) held to pick the candidate
/// prefix of a forgotten prefix, whatever the number of findings: about
/// 1 MiB for paths of 200 bytes, 16 MiB at worst (paths of 4 KiB).
pub const SAMPLE: usize = 4096;

/// The paths of this run's findings of one kind, in key order (bytewise,
/// each once), from a key on: `paths(kind, from)`.
pub type Paths<'a> = Box<dyn Iterator<Item = Result<Vec<u8>>> + 'a>;

/// What the hint found, and what it held to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// The remote that was probably meant, and why.
    pub text: Option<String>,
    /// Missing paths held in the sample (at most [`SAMPLE`]).
    pub sampled: usize,
}

/// The remote that was probably meant, and why, or `None`.
///
/// `paths` gives the keys of this run's findings (relative to ROOT and
/// to the remote's prefix, components separated by [`SEP`]). A hint
/// needs more than half of the missing files to be found as extras under
/// one prefix `P/` (then `remote/P`), or more than half of the extras to
/// be missing under `P/` where the remote's last component is `P` (then
/// its parent). The candidate `P` of the first is the one under which
/// the most of the first [`SAMPLE`] missing paths are extras (the first
/// in key order on a tie).
pub fn prefix_hint<'a>(remote: &str, paths: &dyn Fn(Kind, Vec<u8>) -> Paths<'a>) -> Result<Hint> {
    let remote = remote.trim_end_matches('/');
    let mut sample = HashSet::new();
    for p in paths(Kind::Missing, Vec::new()).take(SAMPLE) {
        sample.insert(p?);
    }
    let mut hint = Hint {
        text: None,
        sampled: sample.len(),
    };
    if sample.is_empty() {
        return Ok(hint);
    }
    // Too shallow: extra `P/rest` where `rest` is missing.
    let (best, extras) = best_prefix(paths(Kind::Extra, Vec::new()), &sample)?;
    drop(sample);
    if extras == 0 {
        return Ok(hint);
    }
    if let Some(prefix) = best.and_then(|p| String::from_utf8(p).ok()) {
        let (n, missing) = common(
            paths(Kind::Missing, Vec::new()),
            under(paths, Kind::Extra, prefix.as_bytes()),
        )?;
        if 2 * n > missing {
            let meant = format!("{remote}/{prefix}");
            hint.text = Some(format!(
                "did you mean --remote {meant}? {n} of the {missing} missing files are on the backup under {prefix}/"
            ));
            return Ok(hint);
        }
    }
    // Too deep: missing `P/rest` where `rest` is extra, and the remote
    // ends in `/P`.
    if let Some((parent, last)) = remote.rsplit_once('/')
        && !last.is_empty()
        && !parent.ends_with(':')
        && !parent.ends_with('/')
    {
        let (n, extras) = common(
            paths(Kind::Extra, Vec::new()),
            under(paths, Kind::Missing, last.as_bytes()),
        )?;
        if 2 * n > extras {
            hint.text = Some(format!(
                "did you mean --remote {parent}? {n} of the {extras} extra objects are files of ROOT under {last}/"
            ));
        }
    }
    Ok(hint)
}

/// Over `paths` in key order, where every `P/…` is contiguous: the first
/// component `P` under which the most `P/rest` have `rest` in `sample`
/// (the first on a tie; none without one), and how many paths there are.
/// Holds two prefixes, whatever the number of paths.
fn best_prefix(
    paths: impl Iterator<Item = Result<Vec<u8>>>,
    sample: &HashSet<Vec<u8>>,
) -> Result<(Option<Vec<u8>>, u64)> {
    let mut best: Option<(Vec<u8>, u64)> = None;
    let mut current: Option<(Vec<u8>, u64)> = None;
    let mut total = 0u64;
    let close = |run: Option<(Vec<u8>, u64)>, best: &mut Option<(Vec<u8>, u64)>| {
        if let Some((p, n)) = run
            && n > best.as_ref().map_or(0, |b| b.1)
        {
            *best = Some((p, n));
        }
    };
    for p in paths {
        let p = p?;
        total += 1;
        let Some(slash) = p.iter().position(|&b| b == SEP) else {
            continue;
        };
        let (prefix, rest) = (&p[..slash], &p[slash + 1..]);
        if current.as_ref().is_none_or(|(c, _)| c.as_slice() != prefix) {
            close(current.take(), &mut best);
            current = Some((prefix.to_vec(), 0));
        }
        if sample.contains(rest)
            && let Some((_, n)) = current.as_mut()
        {
            *n += 1;
        }
    }
    close(current, &mut best);
    Ok((best.map(|b| b.0), total))
}

/// The paths of `kind` under `prefix/`, without it, in key order.
fn under<'a>(paths: &dyn Fn(Kind, Vec<u8>) -> Paths<'a>, kind: Kind, prefix: &[u8]) -> Paths<'a> {
    let mut from = prefix.to_vec();
    from.push(SEP);
    let cut = from.len();
    Box::new(
        paths(kind, from.clone())
            .take_while(move |p| match p {
                Ok(p) => p.starts_with(&from),
                Err(_) => true,
            })
            .map(move |p| p.map(|mut p| p.split_off(cut))),
    )
}

/// How many paths two key-ordered streams have in common, and how many
/// `a` holds: a merge-join, one path of each held.
fn common(
    a: impl Iterator<Item = Result<Vec<u8>>>,
    b: impl Iterator<Item = Result<Vec<u8>>>,
) -> Result<(u64, u64)> {
    let mut b = b.peekable();
    let (mut both, mut total) = (0u64, 0u64);
    for x in a {
        let x = x?;
        total += 1;
        while let Some(y) = b.peek() {
            match y {
                Err(_) => return Err(b.next().expect("peeked").expect_err("an error")),
                Ok(y) if y.as_slice() < x.as_slice() => {
                    b.next();
                }
                Ok(y) => {
                    if *y == x {
                        both += 1;
                    }
                    break;
                }
            }
        }
    }
    Ok((both, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(list: &[&str]) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = list
            .iter()
            .map(|s| s.replace('/', "\0").into_bytes())
            .collect();
        v.sort();
        v
    }

    /// The findings of a run, as the index gives them: sorted, from a key
    /// on.
    fn hint_of(remote: &str, missing: &[Vec<u8>], extra: &[Vec<u8>]) -> Hint {
        fn from<'a>(list: &'a [Vec<u8>], from: &[u8]) -> Paths<'a> {
            let start = list.partition_point(|p| p.as_slice() < from);
            Box::new(list[start..].iter().cloned().map(Ok))
        }
        let paths = |kind: Kind, key: Vec<u8>| match kind {
            Kind::Missing => from(missing, &key),
            _ => from(extra, &key),
        };
        prefix_hint(remote, &paths).unwrap()
    }

    fn text(remote: &str, missing: &[Vec<u8>], extra: &[Vec<u8>]) -> Option<String> {
        hint_of(remote, missing, extra).text
    }

    #[test]
    fn a_forgotten_prefix_and_a_prefix_too_deep_are_named() {
        let missing = v(&["a", "d/b", "d/c"]);
        let extra = v(&["prod/a", "prod/d/b", "prod/d/c", "other"]);
        assert_eq!(
            text("s3://backups/", &missing, &extra).unwrap(),
            "did you mean --remote s3://backups/prod? 3 of the 3 missing files are on the backup under prod/"
        );
        // Too deep: the tree holds photos/ and docs/, the remote is photos.
        let missing = v(&["photos/x", "photos/y", "docs/z"]);
        let extra = v(&["x", "y"]);
        assert_eq!(
            text("s3://b/prod/photos", &missing, &extra).unwrap(),
            "did you mean --remote s3://b/prod? 2 of the 2 extra objects are files of ROOT under photos/"
        );
        // Not when the bucket itself would be cut, nor when few line up.
        assert_eq!(text("s3://photos", &missing, &extra), None);
        let missing = v(&["a", "b", "c"]);
        let extra = v(&["prod/a", "x"]);
        assert_eq!(text("s3://b", &missing, &extra), None);
        assert_eq!(text("s3://b", &[], &extra), None);
        // On a tie, the first prefix in key order.
        let missing = v(&["a", "b"]);
        let extra = v(&["y/a", "y/b", "x/a", "x/b"]);
        assert_eq!(
            text("s3://b", &missing, &extra).unwrap(),
            "did you mean --remote s3://b/x? 2 of the 2 missing files are on the backup under x/"
        );
    }

    /// 100,000 missing files, all on the backup under `prod/` among
    /// 100,000 more extras under other prefixes: the hint holds its
    /// sample, not the findings, and still counts exactly.
    #[test]
    fn the_hint_holds_a_bounded_sample_whatever_the_number_of_findings() {
        const N: usize = 100_000;
        let missing = (0..N)
            .map(|i| format!("d{}/f{i:06}", i % 97))
            .collect::<Vec<_>>();
        let missing = v(&missing.iter().map(String::as_str).collect::<Vec<_>>());
        let mut extra: Vec<Vec<u8>> = Vec::with_capacity(2 * N);
        for m in &missing {
            // One missing file is not on the backup at all.
            if m.ends_with(b"f099990") {
                continue;
            }
            let mut e = b"prod\0".to_vec();
            e.extend_from_slice(m);
            extra.push(e);
        }
        // Extras under prefixes before `prod` in key order, each holding
        // a few of the missing paths: a decoy with fewer.
        for (i, m) in missing.iter().enumerate().take(N / 2) {
            let mut e = format!("a{:05}\0", i / 5).into_bytes();
            e.extend_from_slice(m);
            extra.push(e);
        }
        let mut decoy = b"other\0".to_vec();
        decoy.extend_from_slice(&missing[0]);
        extra.push(decoy);
        extra.sort();
        let hint = hint_of("s3://backups", &missing, &extra);
        assert_eq!(hint.sampled, SAMPLE);
        assert_eq!(
            hint.text.unwrap(),
            format!(
                "did you mean --remote s3://backups/prod? {} of the {N} missing files are on the backup under prod/",
                N - 1
            )
        );
        // Too deep, at the same scale: the remote names `prod`, the tree
        // holds `prod/` (missing, since the remote is inside it) and more.
        let hint = hint_of("s3://backups/prod", &extra, &missing);
        assert_eq!(hint.sampled, SAMPLE);
        assert_eq!(
            hint.text.unwrap(),
            format!(
                "did you mean --remote s3://backups? {} of the {N} extra objects are files of ROOT under prod/",
                N - 1
            )
        );
    }
}
