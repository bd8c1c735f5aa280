//! The audit's merger: one thread that merge-joins the manifest with the
//! listing (both read from the index in key order) and gives every key
//! exactly one outcome — a finding, a verification, or a read to make.

use std::path::Path;
use std::sync::mpsc;

use anyhow::{Result, anyhow};
use serde_json::json;

use super::decide::{Decision, decide};
use super::prove::ProveTask;
use super::{Event, Mode, Policy, ReadTask, describe_remote};
use crate::engine::exclude::Excludes;
use crate::engine::join::{Pair, merge_join};
use crate::engine::scan::describe;
use crate::model::remote::is_archived;
use crate::model::{Entry, EntryKind, Finding, Kind, format_time, paths};
use crate::store::{Index, Rows, ScrubSelection};

/// The merger: one outcome per key.
#[allow(clippy::too_many_arguments)]
pub(super) fn merge(
    index_path: &Path,
    skip: &[Vec<u8>],
    root_id: i64,
    remote_id: &str,
    run_id: i64,
    policy: Policy,
    scrub: &ScrubSelection,
    excludes: &Excludes,
    reads: tokio::sync::mpsc::Sender<ReadTask>,
    proofs: tokio::sync::mpsc::Sender<ProveTask>,
    events: &mpsc::SyncSender<Event>,
) -> Result<()> {
    // Its own read-only connection, a read transaction per page fetch: the
    // recorder only writes rows the merger has passed, so what it reads is
    // the index as the merge began (see `Index::current_entries`).
    let reader = Index::open_read_only(index_path)?;
    let locals = reader.current_entries(root_id, Rows::NotDirs);
    let remotes = reader.listed_objects(remote_id, run_id);
    let send = |e: Event| events.send(e).map_err(|_| anyhow!("audit writer stopped"));
    // With an inventory as the listing: was this file changed after (or
    // just before) the report was taken? Then the report cannot judge it.
    let after_inventory = |local: &crate::model::Entry| {
        policy.listed_before.and_then(|cutoff| {
            let changed = local.stat.mtime_secs().max(local.stat.ctime_secs());
            (changed >= cutoff).then(|| {
                format!(
                    "the file changed at {}, after the inventory report was taken (minus --inventory-grace): not judged by it",
                    format_time(changed)
                )
            })
        })
    };
    // The bytes queued for reading: the progress total once all are.
    let queued = std::cell::Cell::new(0u64);
    merge_join(locals, remotes, |pair| {
        // What the excludes leave out is counted, never judged.
        let excluded = match &pair {
            Pair::LocalOnly(local) => excludes
                .excludes_path(&local.path, false)
                .then_some((true, false)),
            Pair::RemoteOnly(obj) => excludes
                .excludes_path(&obj.key, false)
                .then_some((false, true)),
            Pair::Both(local, _) => excludes
                .excludes_path(&local.path, false)
                .then_some((true, true)),
        };
        if let Some((local, remote)) = excluded {
            return send(Event::Excluded { local, remote });
        }
        let pair = match pair {
            Pair::LocalOnly(local) => Pair::LocalOnly(checked_as_trusted(local, policy, &send)?),
            Pair::Both(local, obj) => Pair::Both(checked_as_trusted(local, policy, &send)?, obj),
            other => other,
        };
        match pair {
            Pair::LocalOnly(local) => {
                if local.kind == EntryKind::Symlink {
                    return send(Event::SymlinkSkipped);
                }
                send(Event::Counted {
                    local: Some(local.stat.size),
                    remote: None,
                })?;
                if let Some(why) = after_inventory(&local) {
                    return send(Event::Finding(
                        Finding::new(Kind::Unverified, local.path.clone())
                            .local(describe(&local.stat, local.blake3.as_ref()))
                            .detail(format!("not in the inventory; {why}")),
                    ));
                }
                let mut f = Finding::new(Kind::Missing, local.path.clone())
                    .local(describe(&local.stat, local.blake3.as_ref()));
                // A directory remote holds any name; an object store only UTF-8.
                if std::str::from_utf8(&local.path).is_err() && !remote_id.starts_with("file://") {
                    f = f.detail("the name is not UTF-8, so no object key can hold it");
                }
                send(Event::Finding(f))
            }
            Pair::RemoteOnly(obj) => {
                if skip.contains(&obj.key) {
                    // A copy of the index (see `scan::index_files_inside`).
                    return Ok(());
                }
                if obj.size == 0 && reader.is_current_dir(root_id, &obj.key)? {
                    // A zero-byte `dir/` object (a folder made in the S3
                    // console), which object_store lists as `dir`: no file.
                    return send(Event::MarkerSkipped);
                }
                send(Event::Counted {
                    local: None,
                    remote: Some(obj.size),
                })?;
                let kind = if policy.one_way {
                    Kind::BackupOnly
                } else {
                    Kind::Extra
                };
                let mut f = Finding::new(kind, obj.key.clone()).remote(describe_remote(&obj));
                if let Some(why) = paths::why_no_file(&obj.key) {
                    f = f.detail(format!("the key maps to no file: {why}"));
                }
                send(Event::Finding(f))
            }
            Pair::Both(local, obj) => {
                if local.kind == EntryKind::Symlink {
                    // Backup tools differ (rclone and object stores copy the
                    // target, rsync -a the link): a symlink is not audited.
                    return send(Event::SymlinkSkipped);
                }
                send(Event::Counted {
                    local: Some(local.stat.size),
                    remote: Some(obj.size),
                })?;
                let late = after_inventory(&local);
                let not_judged = |why: String| {
                    send(Event::Finding(
                        Finding::new(Kind::Unverified, local.path.clone())
                            .local(describe(&local.stat, local.blake3.as_ref()))
                            .remote(describe_remote(&obj))
                            .detail(why),
                    ))
                };
                if local.stat.size != obj.size {
                    if let Some(why) = late {
                        return not_judged(why);
                    }
                    let detail = if obj.size < local.stat.size {
                        "the backup copy is shorter (truncated?)"
                    } else {
                        "the backup copy is longer"
                    };
                    return send(Event::Finding(
                        Finding::new(Kind::SizeMismatch, local.path.clone())
                            .local(describe(&local.stat, local.blake3.as_ref()))
                            .remote(describe_remote(&obj))
                            .detail(detail),
                    ));
                }
                let selected = scrub.selects(&obj);
                let lag = local.stat.mtime_secs().saturating_sub(obj.last_modified);
                // A dry run decides as deep would, and reads nothing.
                let (mode, selected) = if policy.dry_run {
                    let deep = decide(&local, &obj, Mode::Deep, false) == Decision::Read;
                    if deep || selected {
                        send(Event::WouldRead {
                            size: obj.size,
                            deep,
                            scrub: selected,
                        })?;
                    }
                    (Mode::Quick, false)
                } else {
                    (policy.mode, selected)
                };
                let decision = decide(&local, &obj, mode, selected);
                if let Some(why) = late
                    && !matches!(decision, Decision::Verified { .. })
                {
                    return not_judged(why);
                }
                if decision == Decision::Read && is_archived(obj.storage_class.as_deref()) {
                    // Reading it would fail, or start a paid restore.
                    send(Event::ArchivedNotRead)?;
                    return not_judged(format!(
                        "archived in {}: not read (restore it to verify its bytes)",
                        obj.storage_class.as_deref().unwrap_or("?")
                    ));
                }
                match decision {
                Decision::Unverified(_) if policy.max_age.is_some_and(|max| lag > max) => {
                    send(Event::Finding(
                        Finding::new(Kind::Stale, local.path.clone())
                            .local(describe(&local.stat, local.blake3.as_ref()))
                            .remote(describe_remote(&obj))
                            .detail(format!(
                                "the backup copy is {} older than the local file (over --max-age)",
                                humantime::format_duration(std::time::Duration::from_secs(
                                    lag as u64
                                ))
                            )),
                    ))
                }
                Decision::Verified { by_md5 } => send(Event::Verified {
                    size: obj.size,
                    verified_at: obj.known_by_read().then_some(obj.verified_at).flatten(),
                    by_md5: by_md5.then(|| {
                        (
                            obj.key.clone(),
                            local.blake3.expect("decide checked"),
                            obj.listed().fingerprint(),
                        )
                    }),
                }),
                Decision::Corrupt { remote_blake3 } => {
                    let mut remote_json = describe_remote(&obj);
                    remote_json["blake3"] = json!(hex::encode(remote_blake3));
                    let read_at = obj.verified_at.map(format_time);
                    send(Event::Finding(
                        Finding::new(Kind::Corrupt, local.path.clone())
                            .local(describe(&local.stat, local.blake3.as_ref()))
                            .remote(remote_json)
                            .detail(format!(
                                "same size, different content (object read {}, unchanged since)",
                                read_at.unwrap_or_else(|| "earlier".into())
                            )),
                    ))
                }
                // Not read at this version: the store's checksums may
                // prove it without a download.
                Decision::Unverified(_) if policy.head && local.blake3.is_some() => {
                    let recorded = reader
                        .proof_of(remote_id, &obj.key)?
                        .filter(|p| p.is_for(&obj));
                    if let Some(p) = &recorded
                        && p.verdict == "proven"
                        && p.blake3 == local.blake3
                        && let Some(method) = &p.method
                    {
                        return send(Event::Proved {
                            size: obj.size,
                            method: method.clone(),
                        });
                    }
                    let mut cached = reader.digests_of(&local.blake3.expect("checked"))?;
                    // The scan's CRC64NVME is in the row, not the cache.
                    if let Some(crc) = local.crc64nvme {
                        cached.push(("full:crc64nvme".to_string(), crc.to_vec()));
                    }
                    let facts = recorded.and_then(|p| p.facts);
                    proofs
                        .blocking_send(ProveTask::new(local, obj, facts.as_deref(), &cached))
                        .map_err(|_| anyhow!("provers stopped"))
                }
                Decision::Unverified(why) => send(Event::Finding(
                    Finding::new(Kind::Unverified, local.path.clone())
                        .local(describe(&local.stat, local.blake3.as_ref()))
                        .remote(describe_remote(&obj))
                        .detail(why),
                )),
                Decision::Read => {
                    queued.set(queued.get() + obj.size);
                    reads
                        .blocking_send(ReadTask { local, remote: obj })
                        .map_err(|_| anyhow!("object readers stopped"))
                }
            }
            }
        }
    })?;
    send(Event::AllQueued {
        read_bytes: queued.get(),
    })
}

/// What the backup is checked against. For a rotted file (its content
/// changed while size and mtime did not), the trusted content: the bytes
/// on disk are not the ones a backup should hold. Its MD5 and SHA-256 are
/// of the rotted bytes, so they are dropped. The rot itself is reported
/// here only when no scan ran first (whose report already says so).
fn checked_as_trusted(
    mut local: Entry,
    policy: Policy,
    send: &impl Fn(Event) -> Result<()>,
) -> Result<Entry> {
    let Some(trusted) = local.trusted_blake3 else {
        return Ok(local);
    };
    if policy.report_rot {
        send(Event::Finding(
            Finding::new(Kind::Corrupt, local.path.clone())
                .local(json!({
                    "size": local.stat.size,
                    "blake3": local.blake3.map(hex::encode),
                    "indexed_blake3": hex::encode(trusted),
                }))
                .detail("the local file's content changed while its size and mtime did not (found by an earlier scan); the backup is judged against the trusted hash"),
        ))?;
    }
    local.blake3 = Some(trusted);
    local.md5 = None;
    local.sha256 = None;
    Ok(local)
}
