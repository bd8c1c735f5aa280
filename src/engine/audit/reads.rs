//! The audit's readers: objects whose bytes must be read are streamed
//! through BLAKE3, `--jobs` at a time, on the tokio runtime; each result is
//! settled into one finding (or a verification) by the recorder.

use std::sync::mpsc;

use anyhow::Result;
use futures::StreamExt;
use serde_json::json;

use super::{AuditSummary, Event, ReadTask, describe_remote};
use crate::engine::remote::Remote;
use crate::engine::scan::describe;
use crate::model::{Finding, Kind, Proof, ReadError};
use crate::store::Batch;

/// Applies the result of reading one object; returns its finding, if any.
pub(super) fn settle_read(
    batch: &mut Batch<'_>,
    remote_id: &str,
    task: &ReadTask,
    result: Result<([u8; 32], u64), ReadError>,
    listing_started: i64,
    summary: &mut AuditSummary,
) -> Result<Option<Finding>> {
    let key = task.local.path.clone();
    let remote_json = describe_remote(&task.remote);
    let local_json = describe(&task.local.stat, task.local.blake3.as_ref());
    Ok(match result {
        Ok((hash, n)) => {
            summary.objects_read += 1;
            summary.bytes_read += n;
            if n != task.remote.size {
                Some(
                    Finding::new(Kind::Unreadable, key)
                        .local(local_json)
                        .remote(remote_json)
                        .detail(format!(
                            "read {n} bytes of an object listed at {} bytes",
                            task.remote.size
                        )),
                )
            } else {
                let listed = task.remote.listed();
                let mut fingerprint = listed.fingerprint();
                if listed.etag.is_none()
                    && listed.version.is_none()
                    && listed.last_modified >= listing_started
                {
                    // Without an ETag, a rewrite within the same second as
                    // this read would keep size and mtime: record the hash
                    // (for reports) but never let it count as a cached
                    // verification.
                    fingerprint.push_str(":racy");
                }
                batch.record_read(
                    remote_id,
                    &task.remote.key,
                    &hash,
                    &fingerprint,
                    n,
                    Proof::Read,
                )?;
                if Some(hash) == task.local.blake3 {
                    summary.verified += 1;
                    summary.verified_bytes += n;
                    None
                } else {
                    let mut remote_json = remote_json;
                    remote_json["blake3"] = json!(hex::encode(hash));
                    Some(
                        Finding::new(Kind::Corrupt, key)
                            .local(local_json)
                            .remote(remote_json)
                            .detail("same size, different content (read and hashed this run)"),
                    )
                }
            }
        }
        Err(ReadError::NotFound) => Some(
            Finding::new(Kind::Missing, key)
                .local(local_json)
                .detail("the object was deleted after it was listed"),
        ),
        Err(ReadError::Changed) => Some(
            Finding::new(Kind::Unverified, key)
                .local(local_json)
                .remote(remote_json)
                .detail("the object was replaced while the audit ran"),
        ),
        Err(ReadError::Fatal(e)) => anyhow::bail!("{e}"),
        Err(ReadError::Refused(e)) | Err(ReadError::Other(e)) => Some(
            Finding::new(Kind::Unreadable, key)
                .local(local_json)
                .remote(remote_json)
                .detail(e),
        ),
    })
}

/// Reads queued objects, `jobs` at a time.
pub(super) async fn read_objects(
    remote: &Remote,
    tasks: tokio::sync::mpsc::Receiver<ReadTask>,
    jobs: usize,
    events: mpsc::SyncSender<Event>,
) {
    super::queue(tasks)
        .for_each_concurrent(jobs, |task| {
            let events = events.clone();
            async move {
                let result = remote
                    .read_hash(&task.remote.key, task.remote.etag.as_deref())
                    .await;
                let _ = events.send(Event::Read {
                    task: Box::new(task),
                    result,
                });
            }
        })
        .await;
}
