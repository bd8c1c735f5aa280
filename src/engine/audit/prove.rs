//! The audit's provers: objects not read earlier are proven (or
//! disproven) from the checksums their store keeps, `--jobs` at a time on
//! the tokio runtime, without downloading them (see
//! [`crate::engine::proof`]). Each result is settled by the recorder into
//! the index (the proof, keyed to the object version, and the local
//! digests computed, keyed to the content's BLAKE3) and one finding at
//! most.

use std::path::Path;
use std::sync::mpsc;

use anyhow::Result;
use futures::StreamExt;
use serde_json::json;

use super::{Event, describe_remote};
use crate::engine::proof::ladder::{Facts, Verdict};
use crate::engine::proof::probe::{ProbeError, Target};
use crate::engine::proof::{self, Proof, digest::Digests, record};
use crate::engine::remote::Remote;
use crate::engine::scan::describe;
use crate::model::{Entry, Finding, Kind, ProofRow, RemoteRow, paths};
use crate::store::Batch;

/// An object to run through the ladder.
#[derive(Debug)]
pub(crate) struct ProveTask {
    pub local: Entry,
    pub remote: RemoteRow,
    /// What the store said about this object version in an earlier run.
    pub facts: Option<Facts>,
    /// Local digests of the file's content cached by an earlier run.
    pub digests: Digests,
}

impl ProveTask {
    pub fn new(
        local: Entry,
        remote: RemoteRow,
        facts: Option<&str>,
        cached: &[(String, Vec<u8>)],
    ) -> ProveTask {
        let blake3 = local.blake3.unwrap_or_default();
        let digests = record::digests_from_specs(blake3, local.stat.size, cached);
        ProveTask {
            facts: facts
                .and_then(record::facts_from_json)
                .filter(|f| f.size == remote.size),
            local,
            remote,
            digests,
        }
    }
}

/// Proves queued objects, `jobs` at a time.
pub(super) async fn prove_objects(
    remote: &Remote,
    root: &Path,
    tasks: tokio::sync::mpsc::Receiver<ProveTask>,
    jobs: usize,
    events: mpsc::SyncSender<Event>,
) {
    super::queue(tasks)
        .for_each_concurrent(jobs, |mut task| {
            let events = events.clone();
            async move {
                let result = match (&remote.prober, remote.location(&task.remote.key)) {
                    (Some(prober), Ok(location)) => {
                        let target = Target {
                            location: &location,
                            size: task.remote.size,
                            etag: task.remote.etag.as_deref(),
                            version: task.remote.version.as_deref(),
                            last_modified: Some(task.remote.last_modified),
                        };
                        let file = paths::fs_path(root, &task.local.path);
                        proof::prove(
                            prober,
                            &target,
                            task.facts.take(),
                            std::mem::take(&mut task.digests),
                            proof::read_file(file),
                        )
                        .await
                    }
                    (None, _) => Err(ProbeError::Refused("this remote keeps no checksums".into())),
                    (_, Err(e)) => Err(ProbeError::Refused(e.to_string())),
                };
                let _ = events.send(Event::Proof {
                    task: Box::new(task),
                    result,
                });
            }
        })
        .await;
}

/// What one proof settled into.
pub(super) struct Settled {
    /// The method, when the content was proven.
    pub proven: Option<String>,
    pub finding: Option<Finding>,
    pub bytes_hashed: u64,
    /// The store refused or did not answer (a denial, a timeout): the
    /// one-line reason, which ends the audit when no request succeeds
    /// (see [`super::SYSTEMIC`]).
    pub refused: Option<String>,
}

/// Records one proof (and the digests it computed) and turns it into a
/// finding, if any.
pub(super) fn settle_proof(
    batch: &mut Batch<'_>,
    remote_id: &str,
    task: &ProveTask,
    result: Result<Proof, ProbeError>,
    now: i64,
) -> Result<Settled> {
    let key = task.local.path.clone();
    let local_json = describe(&task.local.stat, task.local.blake3.as_ref());
    let remote_json = describe_remote(&task.remote);
    let proof = match result {
        Ok(p) => p,
        Err(ProbeError::NotFound) => {
            return Ok(Settled {
                proven: None,
                finding: Some(
                    Finding::new(Kind::Missing, key)
                        .local(local_json)
                        .detail("the object was deleted after it was listed"),
                ),
                bytes_hashed: 0,
                refused: None,
            });
        }
        // Likely the remote as a whole, not this object: unverified, and
        // the recorder ends the audit when nothing gets through.
        Err(e @ (ProbeError::Denied(_) | ProbeError::Unreachable { .. })) => {
            let what = crate::model::paths::display(&task.remote.key);
            let line = match e {
                ProbeError::Denied(status) => format!(
                    "remote {remote_id}: access denied asking for the checksums of {what} (HEAD, {status}): check the credentials and the bucket's policy (s3:GetObject), or pass --no-head"
                ),
                ProbeError::Unreachable {
                    host,
                    timeout: true,
                } => format!(
                    "remote {remote_id}: timed out asking for the checksums of {what} (HEAD): no answer from {host} within --timeout"
                ),
                ProbeError::Unreachable { host, .. } => format!(
                    "remote {remote_id}: cannot connect to {host} to ask for the checksums of {what} (HEAD)"
                ),
                _ => unreachable!(),
            };
            return Ok(Settled {
                proven: None,
                finding: Some(
                    Finding::new(Kind::Unverified, key)
                        .local(local_json)
                        .remote(remote_json)
                        .detail(line.clone()),
                ),
                bytes_hashed: 0,
                refused: Some(line),
            });
        }
        Err(e) => {
            let detail = match e {
                ProbeError::Changed => "the object was replaced while the audit ran".to_string(),
                other => format!("its checksums could not be asked for: {other}"),
            };
            return Ok(Settled {
                proven: None,
                finding: Some(
                    Finding::new(Kind::Unverified, key)
                        .local(local_json)
                        .remote(remote_json)
                        .detail(detail),
                ),
                bytes_hashed: 0,
                refused: None,
            });
        }
    };
    // The local digests are of the content whose BLAKE3 they carry (the
    // pass checked it against the manifest's).
    if task.local.blake3 == Some(proof.local.blake3) {
        for (spec, value) in record::digest_specs(&proof.local) {
            batch.record_digest(&proof.local.blake3, &spec, &value)?;
        }
    }
    let (verdict, method, params, detail) = match &proof.verdict {
        Verdict::Proven { method, layout, .. } => (
            "proven",
            Some(method.name()),
            layout.as_ref().map(|l| l.describe()),
            None,
        ),
        Verdict::Mismatch { method, layout, .. } => (
            "mismatch",
            Some(method.name()),
            layout.as_ref().map(|l| l.describe()),
            None,
        ),
        Verdict::Undecided(why) => ("undecided", None, None, Some(why.clone())),
    };
    batch.record_proof(
        remote_id,
        &ProofRow {
            key: task.remote.key.clone(),
            etag: task.remote.etag.clone(),
            size: task.remote.size,
            last_modified: task.remote.last_modified,
            version: task.remote.version.clone(),
            facts: proof.facts.as_ref().map(record::facts_to_json),
            verdict: verdict.into(),
            method: method.clone(),
            params: params.clone(),
            blake3: task.local.blake3,
            detail: detail.clone(),
            checked_at: now,
        },
    )?;
    let finding = match &proof.verdict {
        Verdict::Proven { .. } => None,
        Verdict::Mismatch {
            method,
            local,
            remote,
            layout,
        } => Some(mismatch_finding(
            key,
            local_json,
            remote_json,
            &method.name(),
            local,
            remote,
            layout.as_ref().map(|l| l.describe()),
        )),
        Verdict::Undecided(why) => Some(
            Finding::new(Kind::Unverified, key)
                .local(local_json)
                .remote(remote_json)
                .detail(why.clone()),
        ),
    };
    Ok(Settled {
        proven: match proof.verdict {
            Verdict::Proven { .. } => method,
            _ => None,
        },
        finding,
        bytes_hashed: proof.bytes_hashed,
        refused: None,
    })
}

/// A `corrupt` finding from a checksum that differs: both values and the
/// method in the detail and the JSON.
pub(super) fn mismatch_finding(
    key: Vec<u8>,
    mut local_json: serde_json::Value,
    mut remote_json: serde_json::Value,
    method: &str,
    local: &str,
    remote: &str,
    parts: Option<String>,
) -> Finding {
    local_json["checksum"] = json!(local);
    remote_json["checksum"] = json!(remote);
    remote_json["method"] = json!(method);
    if let Some(p) = &parts {
        remote_json["parts"] = json!(p);
    }
    Finding::new(Kind::Corrupt, key)
        .local(local_json)
        .remote(remote_json)
        .detail(format!(
            "same size, different content: the store's {method} is {remote}, the file's is {local}{} (not downloaded)",
            parts.map(|p| format!(" over parts {p}")).unwrap_or_default()
        ))
}
