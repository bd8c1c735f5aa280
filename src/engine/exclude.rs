//! Excludes: which paths under ROOT vouch leaves out, decided once for the
//! tree walk and for the keys of a remote listing alike.
//!
//! Real trees hold things nobody backs up (`cache/`, `*.tmp`,
//! `lost+found`, a live database's `pg_wal/`). Rules come from four places,
//! all in gitignore syntax (matched by ripgrep's `ignore` crate, not by
//! hand): `--exclude GLOB`, the lines of `--exclude-from FILE`, and a
//! `.vouchignore` file in any directory of ROOT (its rules apply below
//! that directory, a deeper file overriding a shallower one, as git does).
//! Rules given on the command line take precedence over `.vouchignore`
//! files. `--include GLOB` narrows further: once any is given, a file is
//! compared only if it matches one (directories are still walked).
//!
//! An excluded path is neither hashed nor reported missing or extra. Its
//! rows in the index are *not* closed: the scan passes over them, so a
//! path that falls out of the excludes keeps its history (and its cached
//! verifications) and is compared again, unchanged, the day it falls back
//! in. Every reader of the current manifest that compares it (the scan's
//! deletions, the Merkle fold, the audit's join and coverage) asks the
//! same [`Excludes`].

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use serde_json::{Value, json};

use crate::model::{EntryKind, paths};
use crate::store::{Index, Rows};

/// The name of the per-directory ignore file.
pub const IGNORE_FILE: &str = ".vouchignore";

/// The rules given on the command line or in the config file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExcludeRules {
    pub exclude: Vec<String>,
    pub include: Vec<String>,
    pub exclude_from: Vec<PathBuf>,
}

impl ExcludeRules {
    pub fn is_empty(&self) -> bool {
        self.exclude.is_empty() && self.include.is_empty() && self.exclude_from.is_empty()
    }
}

/// The compiled rules, plus the `.vouchignore` files found so far.
#[derive(Debug, Clone, Default)]
pub struct Excludes {
    /// `--exclude` and `--exclude-from`, rooted at ROOT.
    flags: Option<Gitignore>,
    /// `--include`: when set, a file must match it.
    include: Option<Gitignore>,
    /// `.vouchignore` of each directory key that has one.
    dirs: BTreeMap<Vec<u8>, Gitignore>,
    /// The rules as text, stored with a scan run so that its snapshot is
    /// read back under the same rules (see [`Excludes::to_json`]).
    exclude_lines: Vec<String>,
    include_lines: Vec<String>,
    dir_texts: BTreeMap<Vec<u8>, String>,
}

/// The key as a relative path (`a/b/c`), for the matchers.
fn rel_path(key: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(&paths::slash_bytes(key)))
}

fn verdict(m: Match<&ignore::gitignore::Glob>) -> Option<bool> {
    match m {
        Match::None => None,
        Match::Ignore(_) => Some(true),
        Match::Whitelist(_) => Some(false),
    }
}

impl Excludes {
    /// Compiles the rules of the command line (a bad glob or an unreadable
    /// `--exclude-from` file is an error naming it).
    pub fn new(rules: &ExcludeRules) -> Result<Excludes> {
        let mut ex = Excludes::default();
        if !rules.exclude.is_empty() || !rules.exclude_from.is_empty() {
            let mut b = GitignoreBuilder::new("");
            for glob in &rules.exclude {
                b.add_line(None, glob)
                    .map_err(|e| anyhow!("--exclude {glob:?}: {e}"))?;
                ex.exclude_lines.push(glob.clone());
            }
            for file in &rules.exclude_from {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read --exclude-from {}", file.display()))?;
                add_lines(&mut b, &text, file)?;
                ex.exclude_lines.extend(text.lines().map(str::to_string));
            }
            ex.flags = Some(b.build().map_err(|e| anyhow!("excludes: {e}"))?);
        }
        if !rules.include.is_empty() {
            let mut b = GitignoreBuilder::new("");
            for glob in &rules.include {
                b.add_line(None, glob)
                    .map_err(|e| anyhow!("--include {glob:?}: {e}"))?;
                ex.include_lines.push(glob.clone());
            }
            ex.include = Some(b.build().map_err(|e| anyhow!("includes: {e}"))?);
        }
        Ok(ex)
    }

    /// True when no rule of any kind is known (the fast path).
    pub fn is_empty(&self) -> bool {
        self.flags.is_none() && self.include.is_none() && self.dirs.is_empty()
    }

    /// Reads `dir/.vouchignore` (the directory whose key is `key`), if it
    /// is a regular file, and applies its rules below `key`.
    pub fn load_dir(&mut self, key: &[u8], dir: &Path) -> Result<()> {
        let file = dir.join(IGNORE_FILE);
        let text = match crate::engine::longpath::symlink_metadata(&file) {
            Ok(m) if m.kind == crate::engine::longpath::Kind::File => {
                crate::engine::longpath::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            }
            _ => return Ok(()),
        };
        let mut b = GitignoreBuilder::new("");
        add_lines(&mut b, &text, &file)?;
        let g = b.build().map_err(|e| anyhow!("{}: {e}", file.display()))?;
        self.dirs.insert(key.to_vec(), g);
        self.dir_texts.insert(key.to_vec(), text);
        Ok(())
    }

    /// Whether the entry `key` itself is excluded, given that no directory
    /// above it is (the walk never descends into an excluded directory).
    pub fn excludes(&self, key: &[u8], is_dir: bool) -> bool {
        if self.is_empty() || key.is_empty() {
            return false;
        }
        let mut excluded = None;
        // `.vouchignore` files from ROOT down: a deeper one overrides.
        for (dir, g) in &self.dirs {
            let rel = if dir.is_empty() {
                key
            } else if key.len() > dir.len() && key.starts_with(dir) && key[dir.len()] == paths::SEP
            {
                &key[dir.len() + 1..]
            } else {
                continue;
            };
            if let Some(v) = verdict(g.matched(rel_path(rel), is_dir)) {
                excluded = Some(v);
            }
        }
        // The command line overrides every file.
        if let Some(g) = &self.flags
            && let Some(v) = verdict(g.matched(rel_path(key), is_dir))
        {
            excluded = Some(v);
        }
        if excluded == Some(true) {
            return true;
        }
        if !is_dir && let Some(inc) = &self.include {
            return !inc
                .matched_path_or_any_parents(rel_path(key), false)
                .is_ignore();
        }
        false
    }

    /// Whether `key` is excluded, itself or through any directory above
    /// it: for manifest rows and object keys, which arrive without a walk.
    pub fn excludes_path(&self, key: &[u8], is_dir: bool) -> bool {
        if self.is_empty() {
            return false;
        }
        for (i, b) in key.iter().enumerate() {
            if *b == paths::SEP && self.excludes(&key[..i], true) {
                return true;
            }
        }
        self.excludes(key, is_dir)
    }

    /// Every rule in force, as JSON to store with a scan run; `None` when
    /// there is none. A scan whose rules differ from the previous scan's
    /// folds the Merkle tree again.
    pub fn to_json(&self) -> Option<Value> {
        if self.is_empty() {
            return None;
        }
        let dirs: Vec<Value> = self
            .dir_texts
            .iter()
            .map(|(k, t)| json!({ "dir": hex::encode(k), "rules": t }))
            .collect();
        Some(json!({
            "exclude": self.exclude_lines,
            "include": self.include_lines,
            "vouchignore": dirs,
        }))
    }

    /// Rebuilds the rules [`Excludes::to_json`] stored.
    pub fn from_json(v: &Value) -> Result<Excludes> {
        let lines = |name: &str| -> Vec<String> {
            v.get(name)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|l| l.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let build = |lines: &[String]| -> Result<Gitignore> {
            let mut b = GitignoreBuilder::new("");
            for l in lines {
                b.add_line(None, l)
                    .map_err(|e| anyhow!("stored rule {l:?}: {e}"))?;
            }
            b.build().map_err(|e| anyhow!("stored rules: {e}"))
        };
        let mut ex = Excludes {
            exclude_lines: lines("exclude"),
            include_lines: lines("include"),
            ..Default::default()
        };
        if !ex.exclude_lines.is_empty() {
            ex.flags = Some(build(&ex.exclude_lines)?);
        }
        if !ex.include_lines.is_empty() {
            ex.include = Some(build(&ex.include_lines)?);
        }
        for d in v
            .get("vouchignore")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(key), Some(text)) = (
                d.get("dir")
                    .and_then(Value::as_str)
                    .and_then(|h| hex::decode(h).ok()),
                d.get("rules").and_then(Value::as_str),
            ) else {
                continue;
            };
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            ex.dirs.insert(key.clone(), build(&lines)?);
            ex.dir_texts.insert(key, text.to_string());
        }
        Ok(ex)
    }
}

/// `base` plus the `.vouchignore` of every directory of the current
/// manifest of `root` that the rules leave in: what a walk would find, for
/// an audit that does not scan first (`--no-scan`).
pub fn with_manifest_files(
    index: &Index,
    root_id: i64,
    root: &Path,
    mut base: Excludes,
) -> Result<Excludes> {
    for e in index.current_entries(root_id, Rows::All) {
        let e = e?;
        if e.kind == EntryKind::Dir && !base.excludes_path(&e.path, true) {
            base.load_dir(&e.path, &paths::fs_path(root, &e.path))?;
        }
    }
    Ok(base)
}

/// Adds the lines of an ignore file, each error naming file and line.
fn add_lines(b: &mut GitignoreBuilder, text: &str, file: &Path) -> Result<()> {
    for (n, line) in text.lines().enumerate() {
        b.add_line(Some(file.to_path_buf()), line)
            .map_err(|e| anyhow!("{} line {}: {e}", file.display(), n + 1))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Vec<u8> {
        paths::key_from_slash(s.as_bytes())
    }

    fn rules(exclude: &[&str], include: &[&str]) -> Excludes {
        Excludes::new(&ExcludeRules {
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude_from: Vec::new(),
        })
        .unwrap()
    }

    #[test]
    fn globs_match_as_gitignore_does() {
        let ex = rules(&["*.tmp", "cache/", "/top-only", "pg_wal"], &[]);
        assert!(ex.excludes(&key("a.tmp"), false));
        assert!(ex.excludes(&key("deep/er/a.tmp"), false));
        assert!(ex.excludes(&key("x/cache"), true));
        assert!(
            !ex.excludes(&key("x/cache"), false),
            "cache/ is for directories"
        );
        assert!(ex.excludes(&key("top-only"), false));
        assert!(!ex.excludes(&key("sub/top-only"), false));
        assert!(ex.excludes_path(&key("db/pg_wal/0001"), false));
        assert!(ex.excludes_path(&key("x/cache/blob"), false));
        assert!(!ex.excludes_path(&key("x/cached"), false));
        assert!(
            !ex.excludes(&key(""), true),
            "ROOT itself is never excluded"
        );
    }

    #[test]
    fn includes_narrow_files_only_and_excludes_win() {
        let ex = rules(&["old.sql"], &["*.sql"]);
        assert!(!ex.excludes(&key("dumps"), true));
        assert!(!ex.excludes(&key("dumps/a.sql"), false));
        assert!(ex.excludes(&key("dumps/a.log"), false));
        assert!(ex.excludes(&key("dumps/old.sql"), false));
    }

    #[test]
    fn a_deeper_vouchignore_overrides_and_the_command_line_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(IGNORE_FILE), "*.log\n# comment\n").unwrap();
        std::fs::create_dir(dir.path().join("keep")).unwrap();
        std::fs::write(dir.path().join("keep").join(IGNORE_FILE), "!*.log\n").unwrap();
        let mut ex = rules(&["keep/secret.log"], &[]);
        let before = ex.to_json();
        ex.load_dir(b"", dir.path()).unwrap();
        ex.load_dir(&key("keep"), &dir.path().join("keep")).unwrap();
        assert_ne!(ex.to_json(), before);
        // Stored and rebuilt, the rules decide alike.
        let ex = Excludes::from_json(&ex.to_json().unwrap()).unwrap();
        assert_eq!(
            ex.to_json(),
            Excludes::from_json(&ex.to_json().unwrap())
                .unwrap()
                .to_json()
        );
        assert!(ex.excludes(&key("a.log"), false));
        assert!(ex.excludes(&key("other/a.log"), false));
        assert!(!ex.excludes(&key("keep/a.log"), false));
        assert!(ex.excludes(&key("keep/secret.log"), false));
        assert!(!ex.excludes(&key("keep/a.txt"), false));
    }

    #[test]
    fn a_bad_glob_names_itself() {
        let e = Excludes::new(&ExcludeRules {
            exclude: vec!["{a".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("--exclude \"{a\""), "{e}");
    }
}
