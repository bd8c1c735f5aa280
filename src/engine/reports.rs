//! Reports on object stores: `--output s3://…` and `vouch merge s3://…`.
//!
//! N shards on N machines share no file system, only a bucket: each shard
//! writes its report there and the merge job reads every report under one
//! prefix. This module is the one place vouch writes to a remote, and it
//! writes one object only, the report, after the run has finished it:
//!
//! - **Atomic.** The report is written to a local temporary file first
//!   (as a local `--output` is), then uploaded with one PUT (or, past
//!   8 MiB, one multipart upload): either way the object appears whole or
//!   not at all, so a merge never reads half a report.
//! - **Never into the audited backup.** A report inside the audited
//!   prefix would be an `extra` object in the next audit, and an auditor
//!   writes nothing into what it audits: [`refuse_inside`] is checked
//!   before the run starts (exit 2).
//! - **Reading.** `merge URL` lists the `*.json` and `*.jsonl` objects
//!   directly under the prefix (not below it, as for a local folder) and
//!   downloads each to a temporary file, which the merge then streams
//!   twice.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::engine::remote::{self, RemoteOptions};

/// Where a report goes: a local file, or an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Local(PathBuf),
    /// `scheme://bucket/key`.
    Remote(String),
}

/// The schemes of object stores vouch reads (and writes reports to).
fn is_store_scheme(scheme: &str) -> bool {
    matches!(
        scheme,
        "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss"
    )
}

impl Target {
    /// `--output`: an object-store URL, a `file://` URL or a path.
    pub fn parse(text: &std::ffi::OsStr) -> Result<Target> {
        let Some(s) = text.to_str() else {
            return Ok(Target::Local(PathBuf::from(text)));
        };
        match url::Url::parse(s) {
            Ok(u) if u.scheme() == "file" => u
                .to_file_path()
                .map(Target::Local)
                .map_err(|_| anyhow!("--output {s}: not a local file URL")),
            Ok(u) if is_store_scheme(u.scheme()) => {
                if u.host_str().unwrap_or_default().is_empty() {
                    bail!("--output {s}: no bucket or container in the URL");
                }
                let key = u.path().trim_matches('/');
                if key.is_empty() || u.path().ends_with('/') {
                    bail!("--output {s}: name the report object, e.g. {s}/shard-0.json");
                }
                Ok(Target::Remote(s.to_string()))
            }
            Ok(u) if u.scheme().len() > 1 => bail!(
                "--output {s}: unknown scheme {:?} (use s3://, gs://, az://, file:// or a path)",
                u.scheme()
            ),
            _ => Ok(Target::Local(PathBuf::from(s))),
        }
    }
}

/// One object-store URL split into the canonical scheme, bucket and key.
fn split(url: &str) -> Option<(String, String, String)> {
    let u = url::Url::parse(url).ok()?;
    if !is_store_scheme(u.scheme()) {
        return None;
    }
    let scheme = match u.scheme() {
        "s3a" => "s3",
        "azure" | "abfs" | "abfss" => "az",
        s => s,
    };
    Some((
        scheme.to_string(),
        u.host_str()?.to_string(),
        u.path().trim_matches('/').to_string(),
    ))
}

/// A local path as absolute and with its existing part resolved
/// (symlinks), so two spellings of one directory compare equal.
fn resolved(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = std::fs::canonicalize(existing) {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return abs,
        }
    }
}

/// Refuses a report target inside the audited backup (`remote`: the
/// audit's `--remote`, a URL or a directory).
pub fn refuse_inside(target: &Target, remote: &str) -> Result<()> {
    let inside = match target {
        Target::Remote(url) => match (split(url), split(remote)) {
            (Some((s1, b1, key)), Some((s2, b2, prefix))) => {
                s1 == s2
                    && b1 == b2
                    && (prefix.is_empty()
                        || key == prefix
                        || key.starts_with(&format!("{prefix}/")))
            }
            _ => false,
        },
        Target::Local(path) => {
            let dir = match url::Url::parse(remote) {
                Ok(u) if u.scheme() == "file" => u.to_file_path().ok(),
                Ok(u) if u.scheme().len() > 1 => None,
                _ => Some(PathBuf::from(remote)),
            };
            dir.is_some_and(|d| resolved(path).starts_with(resolved(&d)))
        }
    };
    if inside {
        let shown = match target {
            Target::Remote(u) => u.clone(),
            Target::Local(p) => p.display().to_string(),
        };
        bail!(
            "--output {shown} is inside the audited backup {remote}: the report would be audited as an object of the backup; write it elsewhere"
        );
    }
    Ok(())
}

/// A bucket opened for one report, checked (listed) when opened so that
/// a missing bucket or refused credentials fail before the run starts.
pub struct Upload {
    store: Arc<dyn ObjectStore>,
    key: StorePath,
    url: String,
}

/// The store of `scheme://bucket` and the key of `url` in it.
fn open_bucket(url: &str, opts: &RemoteOptions) -> Result<(Arc<dyn ObjectStore>, String)> {
    let u = url::Url::parse(url).map_err(|e| anyhow!("{url}: {e}"))?;
    let bucket = format!("{}://{}", u.scheme(), u.host_str().unwrap_or_default());
    let r = remote::open(&bucket, opts)?;
    Ok((r.store, u.path().trim_matches('/').to_string()))
}

/// Runs `f` on a runtime of its own, on a thread of its own (the caller
/// may be inside a runtime already).
fn block_on<T: Send>(f: impl std::future::Future<Output = Result<T>> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(f)
        })
        .join()
        .unwrap_or_else(|_| Err(anyhow!("an object-store request panicked")))
    })
}

/// Objects up to this size go up in one PUT; larger ones in parts.
const SINGLE_PUT: u64 = 8 << 20;

impl Upload {
    pub fn open(url: &str, opts: &RemoteOptions) -> Result<Upload> {
        let (store, key) =
            open_bucket(url, opts).with_context(|| format!("cannot write the report to {url}"))?;
        let key = StorePath::parse(&key).map_err(|e| anyhow!("--output {url}: {e}"))?;
        Ok(Upload {
            store,
            key,
            url: url.to_string(),
        })
    }

    /// The object's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Uploads the finished local file as the object, whole or not at all.
    pub fn put_file(&self, local: &Path) -> Result<()> {
        let fail =
            |e: &dyn std::fmt::Display| anyhow!("cannot write the report to {}: {e}", self.url);
        let mut file = std::fs::File::open(local).map_err(|e| fail(&e))?;
        let size = file.metadata().map_err(|e| fail(&e))?.len();
        block_on(async {
            if size <= SINGLE_PUT {
                let mut data = Vec::with_capacity(size as usize);
                file.read_to_end(&mut data).map_err(|e| fail(&e))?;
                self.store
                    .put(&self.key, PutPayload::from(data))
                    .await
                    .map_err(|e| fail(&e))?;
                return Ok(());
            }
            let upload = self
                .store
                .put_multipart(&self.key)
                .await
                .map_err(|e| fail(&e))?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, SINGLE_PUT as usize);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = match file.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = w.abort().await;
                        return Err(fail(&e));
                    }
                };
                if n == 0 {
                    break;
                }
                if let Err(e) = w.wait_for_capacity(4).await {
                    return Err(fail(&e));
                }
                w.write(&buf[..n]);
            }
            w.finish().await.map_err(|e| fail(&e))?;
            Ok(())
        })
    }
}

/// True for a report's file name (`*.json`, `*.jsonl`).
pub fn is_report_name(name: &str) -> bool {
    name.ends_with(".json") || name.ends_with(".jsonl")
}

/// Downloads the reports a merge names by URL into `dir`: one object
/// (`…/shard-3.json`), or every `*.json`/`*.jsonl` object directly under
/// a prefix, in key order. Returns each one's URL and local copy.
pub fn download(url: &str, opts: &RemoteOptions, dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let (store, key) =
        open_bucket(url, opts).with_context(|| format!("cannot read shard reports at {url}"))?;
    let base = {
        let u = url::Url::parse(url)?;
        format!("{}://{}", u.scheme(), u.host_str().unwrap_or_default())
    };
    block_on(async {
        let mut keys: Vec<StorePath> = Vec::new();
        if !url.ends_with('/') && is_report_name(&key) {
            keys.push(StorePath::parse(&key).map_err(|e| anyhow!("{url}: {e}"))?);
        } else {
            let prefix = StorePath::parse(&key).map_err(|e| anyhow!("{url}: {e}"))?;
            let listed = store
                .list_with_delimiter((!key.is_empty()).then_some(&prefix))
                .await
                .map_err(|e| anyhow!("cannot list shard reports at {url}: {e}"))?;
            keys = listed
                .objects
                .into_iter()
                .map(|o| o.location)
                .filter(|p| p.filename().is_some_and(is_report_name))
                .collect();
            keys.sort();
            if keys.is_empty() {
                bail!("{url}: no shard reports (*.json, *.jsonl) directly under it");
            }
        }
        let mut out = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let name = format!("{base}/{k}");
            let local = dir.join(format!("{i:06}-{}", k.filename().unwrap_or("report")));
            let mut file = std::fs::File::create(&local)
                .with_context(|| format!("cannot write {}", local.display()))?;
            let got = store
                .get(k)
                .await
                .map_err(|e| anyhow!("cannot read shard report {name}: {e}"))?;
            let mut stream = got.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| anyhow!("cannot read shard report {name}: {e}"))?;
                file.write_all(&chunk)
                    .with_context(|| format!("cannot write {}", local.display()))?;
            }
            file.flush()?;
            out.push((name, local));
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn targets_parse_and_the_audited_backup_is_refused() {
        let t = |s: &str| Target::parse(OsStr::new(s)).unwrap();
        assert_eq!(t("r.json"), Target::Local("r.json".into()));
        assert_eq!(t("file:///x/r.json"), Target::Local("/x/r.json".into()));
        assert_eq!(
            t("s3://b/run/0.json"),
            Target::Remote("s3://b/run/0.json".into())
        );
        for bad in ["s3://b/", "s3://b", "s3:///k.json", "ftp://h/r.json"] {
            assert!(Target::parse(OsStr::new(bad)).is_err(), "{bad}");
        }
        let inside = |out: &str, remote: &str| refuse_inside(&t(out), remote).is_err();
        assert!(inside("s3://b/data/r.json", "s3://b/data"));
        assert!(inside("s3a://b/data/x/r.json", "s3://b/data/"));
        assert!(inside("s3://b/r.json", "s3://b"));
        assert!(!inside("s3://b/data2/r.json", "s3://b/data"));
        assert!(!inside("s3://other/data/r.json", "s3://b/data"));
        assert!(!inside("gs://b/data/r.json", "s3://b/data"));
        let dir = tempfile::tempdir().unwrap();
        let backup = dir.path().join("backup");
        std::fs::create_dir(&backup).unwrap();
        let b = backup.to_str().unwrap();
        assert!(inside(&format!("{b}/new/r.json"), b));
        assert!(inside(
            &format!("{b}/r.json"),
            &format!("file://{}", backup.display())
        ));
        assert!(!inside(&format!("{}/r.json", dir.path().display()), b));
        assert!(!inside("s3://b/r.json", b));
    }
}
