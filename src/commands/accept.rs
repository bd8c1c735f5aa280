//! `vouch accept ROOT PATH… --kind K --reason TEXT [--until DATE]`: accept
//! a known discrepancy, with a reason. The finding is taken as the last
//! run of ROOT that reported it describes it; an audit reports it as
//! `accepted` (not a discrepancy) while it stays the same kind with the
//! same content on both sides, and as itself again the moment either side
//! changes or `--until` passes. `--list` shows them, `--remove` forgets.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use serde_json::json;

use super::Context;
use crate::engine::scan;
use crate::model::{Acceptance, Kind, Outcome, format_time, now_unix, paths};
use crate::out::Format;

/// Resolved settings of `vouch accept`.
#[derive(Debug, Clone, PartialEq)]
pub enum AcceptSettings {
    Add {
        root: PathBuf,
        paths: Vec<String>,
        kind: Kind,
        reason: String,
        until: Option<i64>,
    },
    Remove {
        root: PathBuf,
        paths: Vec<String>,
        kind: Option<Kind>,
    },
    List {
        root: Option<PathBuf>,
    },
}

pub fn run(ctx: &Context, s: &AcceptSettings) -> Result<Outcome> {
    match s {
        AcceptSettings::Add {
            root,
            paths,
            kind,
            reason,
            until,
        } => {
            let root = scan::resolve_root(root)?;
            let mut index = ctx.open_index()?;
            let root_id = known_root(index.find_root(&root)?, &root)?;
            let mut accepted = Vec::new();
            for text in paths {
                let path = key_of(&root, text)?;
                let Some(f) = index.latest_finding(root_id, &path, *kind)? else {
                    bail!(
                        "no {kind} finding for {text} in any run of {}; accept a finding as a report shows it",
                        root.display()
                    );
                };
                accepted.push(Acceptance {
                    root: Vec::new(),
                    path,
                    kind: *kind,
                    reason: reason.clone(),
                    until: *until,
                    local: f.local,
                    remote: f.remote,
                    accepted_at: now_unix(),
                });
            }
            for a in &accepted {
                index.accept(root_id, a)?;
            }
            if !ctx.quiet {
                let mut out = std::io::stdout().lock();
                for a in &accepted {
                    writeln!(out, "accepted {} {}", a.kind, paths::display(&a.path))?;
                }
            }
            Ok(Outcome::Clean)
        }
        AcceptSettings::Remove { root, paths, kind } => {
            let root = scan::resolve_root(root)?;
            let mut index = ctx.open_index()?;
            let root_id = known_root(index.find_root(&root)?, &root)?;
            for text in paths {
                let path = key_of(&root, text)?;
                if index.unaccept(root_id, &path, *kind)? == 0 {
                    bail!("{text} has no accepted finding under {}", root.display());
                }
            }
            Ok(Outcome::Clean)
        }
        AcceptSettings::List { root } => {
            let index = ctx.read_index()?;
            let root_id = match root {
                Some(r) => {
                    let root = scan::resolve_root(r)?;
                    Some(known_root(index.find_root(&root)?, &root)?)
                }
                None => None,
            };
            let list = index.acceptances(root_id)?;
            let now = now_unix();
            let mut out = std::io::stdout().lock();
            if ctx.format == Format::Table {
                for a in &list {
                    let until = match a.until {
                        Some(t) if t <= now => format!(" (expired {})", format_time(t)),
                        Some(t) => format!(" (until {})", format_time(t)),
                        None => String::new(),
                    };
                    writeln!(
                        out,
                        "{}  {}  {}{until}: {}",
                        paths::escape_bytes(&a.root),
                        a.kind,
                        paths::display(&a.path),
                        a.reason
                    )?;
                }
            } else {
                let items: Vec<_> = list
                    .iter()
                    .map(|a| {
                        json!({
                            "root": paths::escape_bytes(&a.root),
                            "path": paths::display(&a.path),
                            "kind": a.kind.name(),
                            "reason": a.reason,
                            "until": a.until.map(format_time),
                            "accepted_at": format_time(a.accepted_at),
                            "expired": a.until.is_some_and(|t| t <= now),
                            "local": a.local,
                            "remote": a.remote,
                        })
                    })
                    .collect();
                writeln!(out, "{}", json!({ "accepted": items }))?;
            }
            Ok(Outcome::Clean)
        }
    }
}

fn known_root(id: Option<i64>, root: &Path) -> Result<i64> {
    id.ok_or_else(|| {
        anyhow!(
            "{} has no runs in the index; audit it first, then accept what it reports",
            root.display()
        )
    })
}

/// The stored key of PATH as a report prints it (relative to ROOT,
/// `/`-separated, escaped); a path given with ROOT in front works too.
fn key_of(root: &Path, text: &str) -> Result<Vec<u8>> {
    let raw = paths::unescape(text)
        .ok_or_else(|| anyhow!("{text:?} is not a path as reports print it"))?;
    let root_bytes = std::os::unix::ffi::OsStrExt::as_bytes(root.as_os_str());
    let rel = raw
        .strip_prefix(root_bytes)
        .and_then(|r| r.strip_prefix(b"/"))
        .unwrap_or(&raw);
    let rel = rel.strip_suffix(b"/").unwrap_or(rel);
    Ok(paths::key_from_slash(rel))
}
