//! The scan's set checks: after the per-file pass, the anchors of file
//! sets (a pg_dump directory archive's `toc.dat`, a pg_basebackup's
//! `backup_manifest`) whose directory changed in this run are checked with
//! the files around them ([`checks::sets`]), and the verdicts are stored as
//! check rows: on the anchor for what the tree lacks, on each member for
//! what is wrong with it. An unchanged directory is not checked again,
//! except that a `--checks full` run verifies the checksums of a backup
//! that earlier runs verified only in `fast`.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::ScanSummary;
use crate::engine::checks::sets::{self, Dir, ReadSeek, SetReport};
use crate::engine::checks::{Budget, Format, Level, Verdict};
use crate::model::{Stat, paths};
use crate::store::{CheckRow, Index, Member};

const TOC: &[u8] = b"toc.dat";
const MANIFEST: &[u8] = b"backup_manifest";

/// Whether the file at `key` anchors a set check (by its name).
pub(super) fn is_anchor(key: &[u8]) -> bool {
    let name = paths::name(key);
    name == TOC || name == MANIFEST
}

/// What run `run_id` changed, as far as the set checks care.
pub(super) enum Changed {
    /// No entry row: no directory changed, and the manifest is not
    /// searched for the rows it wrote (a pass over the whole table: 25 ms
    /// of a no-change rescan of 200,000 files, after the walk).
    Nothing,
    /// Some rows, in directories read back from the index.
    Some,
    /// Every row, by a first scan whose writer noted the anchors as it
    /// wrote them (see `writer::Folded`): every directory changed, so
    /// these are all the anchors, and the pass over the whole table
    /// (0.3 s after a first scan of 1,000,000 files) is not needed.
    All { anchors: Vec<Vec<u8>> },
}

/// Runs the set checks of run `run_id` (see the module docs), on the
/// anchors in the directories it `changed`.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_sets(
    index: &mut Index,
    root: &Path,
    root_id: i64,
    run_id: i64,
    changed: Changed,
    level: Level,
    budget: &Budget,
    summary: &mut ScanSummary,
) -> Result<()> {
    let mut anchors: Vec<Vec<u8>> = match changed {
        Changed::All { mut anchors } => {
            // The order below: by directory, `toc.dat` before
            // `backup_manifest`.
            anchors.sort_by(|a, b| {
                (paths::parent(a), paths::name(a) == MANIFEST)
                    .cmp(&(paths::parent(b), paths::name(b) == MANIFEST))
            });
            anchors
        }
        Changed::Nothing => Vec::new(),
        Changed::Some => changed_anchors(index, root_id, run_id)?,
    };
    if level == Level::Full {
        let seen: HashSet<Vec<u8>> = anchors.iter().cloned().collect();
        for key in index.checked_with(root_id, Format::PgBasebackup.name(), Level::Fast.name())? {
            if paths::name(&key) == MANIFEST && !seen.contains(&key) {
                anchors.push(key);
            }
        }
    }
    for key in anchors {
        check_one(index, root, root_id, run_id, &key, level, budget, summary)?;
    }
    Ok(())
}

/// The anchors in every directory (and its ancestors) in which run
/// `run_id` opened or closed a row, by directory.
fn changed_anchors(index: &Index, root_id: i64, run_id: i64) -> Result<Vec<Vec<u8>>> {
    let mut dirs: HashSet<Vec<u8>> = HashSet::new();
    for mut d in index.dirs_changed_in(root_id, run_id)? {
        loop {
            if !dirs.insert(d.clone()) || d.is_empty() {
                break;
            }
            d = paths::parent(&d).to_vec();
        }
    }
    let mut anchors: Vec<Vec<u8>> = Vec::new();
    let mut keys: Vec<&Vec<u8>> = dirs.iter().collect();
    keys.sort();
    for d in keys {
        for name in [TOC, MANIFEST] {
            let key = join(d, name);
            if index.current_file(root_id, &key)?.is_some() {
                anchors.push(key);
            }
        }
    }
    Ok(anchors)
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut k = dir.to_vec();
    if !k.is_empty() {
        k.push(paths::SEP);
    }
    k.extend_from_slice(name);
    k
}

/// The files around an anchor, from the index, read from the file system.
struct FsDir {
    base: PathBuf,
    members: HashMap<String, Member>,
    /// The anchor itself changed in this run: earlier verifications of the
    /// members against it do not count.
    anchor_new: bool,
}

impl Dir for FsDir {
    fn size(&self, name: &str) -> Option<u64> {
        self.members.get(name).map(|m| m.size)
    }

    fn names(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }

    fn open(&self, name: &str) -> io::Result<Box<dyn ReadSeek + '_>> {
        let m = self
            .members
            .get(name)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        Ok(Box::new(open_same(&self.base.join(name), m)?))
    }

    fn verified(&self, name: &str) -> bool {
        !self.anchor_new
            && self
                .members
                .get(name)
                .and_then(|m| m.check.as_ref())
                .is_some_and(|c| {
                    c.format == Format::PgBasebackup.name()
                        && c.level == "full"
                        && c.verdict == "sound"
                })
    }
}

/// Opens `path` only if it is still the version the index holds.
fn open_same(path: &Path, m: &Member) -> io::Result<File> {
    let f = File::open(path)?;
    let stat = Stat::of(&f.metadata()?);
    if stat.size != m.size || stat.mtime_ns != m.mtime_ns {
        return Err(io::Error::other("changed since it was indexed"));
    }
    Ok(f)
}

#[allow(clippy::too_many_arguments)]
fn check_one(
    index: &mut Index,
    root: &Path,
    root_id: i64,
    run_id: i64,
    key: &[u8],
    level: Level,
    budget: &Budget,
    summary: &mut ScanSummary,
) -> Result<()> {
    let Some(anchor) = index.current_file(root_id, key)? else {
        return Ok(());
    };
    let dir = paths::parent(key);
    let mut members = HashMap::new();
    for (k, m) in index.files_inside(root_id, dir)? {
        let rel = &k[if dir.is_empty() { 0 } else { dir.len() + 1 }..];
        let Ok(rel) = std::str::from_utf8(&paths::slash_bytes(rel)).map(str::to_string) else {
            continue;
        };
        members.insert(rel, m);
    }
    let is_toc = paths::name(key) == TOC;
    let anchor_new = anchor.since_run == run_id;
    let fs = FsDir {
        base: paths::fs_path(root, dir),
        members,
        anchor_new,
    };
    let Ok(mut file) = open_same(&paths::fs_path(root, key), &anchor) else {
        return Ok(());
    };
    let report = if is_toc {
        // Only a toc.dat the per-file pass recognised.
        let own = anchor.check.as_ref();
        if own.is_none_or(|c| c.format != Format::PgDirectory.name()) {
            return Ok(());
        }
        sets::pgdir::check(&mut file, anchor.size, &fs)
    } else {
        sets::manifest::check(&mut file, anchor.size, &fs, level, budget)
    };
    let Ok(Some(report)) = report else {
        return Ok(());
    };
    summary.checked += 1;
    summary.check_bytes += report.bytes_read;
    store(index, root_id, &anchor, &fs, &report, is_toc)
}

/// Stores a set check: the anchor's row, then the members'.
fn store(
    index: &mut Index,
    root_id: i64,
    anchor: &Member,
    fs: &FsDir,
    report: &SetReport,
    is_toc: bool,
) -> Result<()> {
    let mut batch = index.batch()?;
    let level = report.level.name().to_string();
    let format = report.format.name().to_string();
    let own = anchor.check.clone();
    let (verdict, detail) = match (&report.anchor, own.as_ref()) {
        // A toc.dat keeps what its own check said (cut off, the empty-dump
        // rule) unless that was sound.
        (_, Some(c))
            if is_toc
                && c.verdict == "damaged"
                && !c.detail.as_deref().is_some_and(is_set_detail) =>
        {
            (c.verdict.clone(), c.detail.clone())
        }
        (v, _) => split(v),
    };
    let row = CheckRow {
        level: own.as_ref().map_or(level.clone(), |c| {
            if is_toc {
                c.level.clone()
            } else {
                level.clone()
            }
        }),
        format: format.clone(),
        verdict,
        detail,
        table_data: own.as_ref().and_then(|c| c.table_data),
        data_ever: own.as_ref().is_some_and(|c| c.data_ever),
    };
    batch.record_check(root_id, &anchor.path, anchor.since_run, &row)?;
    for (name, v) in &report.members {
        let Some(m) = fs.members.get(name) else {
            continue;
        };
        if let Some(c) = &m.check
            && c.format != format
            && c.verdict == "damaged"
        {
            // The file's own check found damage: it stands.
            continue;
        }
        if matches!(v, Verdict::Undecided(_)) && m.check.is_some() {
            continue;
        }
        let (verdict, detail) = split(v);
        batch.record_check(
            root_id,
            &m.path,
            m.since_run,
            &CheckRow {
                level: level.clone(),
                format: format.clone(),
                verdict,
                detail,
                table_data: m.check.as_ref().and_then(|c| c.table_data),
                data_ever: m.check.as_ref().is_some_and(|c| c.data_ever),
            },
        )?;
    }
    batch.commit()
}

/// Whether a stored detail came from the set check of a `toc.dat`.
fn is_set_detail(d: &str) -> bool {
    d.starts_with("pg_dump directory archive lacks")
}

fn split(v: &Verdict) -> (String, Option<String>) {
    match v {
        Verdict::Sound => ("sound".into(), None),
        Verdict::Damaged(d) => ("damaged".into(), Some(d.clone())),
        Verdict::Undecided(w) => ("undecided".into(), Some(w.clone())),
    }
}
