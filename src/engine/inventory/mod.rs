//! S3 Inventory as the listing of a bucket.
//!
//! A full LIST of 100 million objects is ~100,000 sequential requests;
//! AWS already writes the same listing every day or week as an inventory
//! report: a `manifest.json` (with its MD5 in `manifest.checksum`) naming
//! gzip CSV data files in the destination bucket. This module finds the
//! report, proves it intact and streams its rows:
//!
//! - **Where.** A URL or path to one `manifest.json`, or to the inventory
//!   configuration's folder (`s3://dest/prefix/SRC-BUCKET/CONFIG-ID/`),
//!   where the newest complete dated report (`YYYY-MM-DDTHH-MMZ/`) is
//!   used. Any store vouch reads (`s3://`, `gs://`, `az://`) or a local
//!   directory (a copy of the destination bucket, e.g. `aws s3 sync`).
//! - **Trust.** The manifest must match `manifest.checksum`, and each data
//!   file its size and `MD5checksum`, before a single row is handed out:
//!   a remote data file is downloaded to a temporary file while it is
//!   hashed and parsed only after it matched, so a damaged or edited
//!   inventory fails the run (exit 2) instead of turning into a listing.
//! - **Formats.** CSV (see [`rows`]) and, with the default cargo feature
//!   `parquet`, Parquet (see `parquet`: the `parquet` crate without
//!   arrow, Snappy only). ORC is refused with a clear message (configure
//!   the inventory as CSV or Parquet); so is Parquet by a build without
//!   the feature.
//!
//! The caller owns the inventory's meaning for the audit: which keys are
//! under the audited prefix, and that an object newer than the report
//! cannot be judged `missing` from it.

pub mod manifest;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod rows;

use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use md5::{Digest, Md5};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Value, json};

pub use manifest::{Column, DataFile, FileFormat, Manifest};
pub use rows::{Row, RowReader};

/// Where the report's files are read from.
enum Source {
    /// A local copy of the destination bucket: data file keys are
    /// relative to this directory.
    Dir(PathBuf),
    /// The destination bucket itself.
    Store {
        store: Arc<dyn ObjectStore>,
        /// `s3://dest` (for messages).
        base: String,
        runtime: tokio::runtime::Runtime,
    },
}

/// An opened, verified inventory report.
pub struct Inventory {
    pub manifest: Manifest,
    /// The `manifest.json` that was read (a path or URL).
    pub location: String,
    source: Source,
}

/// What reading the rows found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub files: u64,
    /// Current objects handed to the caller.
    pub rows: u64,
    /// Old versions and delete markers.
    pub skipped: u64,
    /// Compressed bytes of the data files.
    pub bytes: u64,
}

/// True for a dated report folder name (`2026-03-01T00-00Z`).
fn is_dated(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 17
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b'-'
        && b[16] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10 | 13 | 16) || c.is_ascii_digit())
}

/// How many of the newest dated folders to try for a complete report
/// (the newest may still be being written).
const DATED_TRIES: usize = 3;

impl Inventory {
    /// Finds, reads and verifies the report named by `url` (see the module
    /// docs). Must not be called from inside an async runtime.
    pub fn open(url: &str, opts: &crate::engine::remote::RemoteOptions) -> Result<Inventory> {
        match url::Url::parse(url) {
            Ok(u) if u.scheme() == "file" => {
                let p = u
                    .to_file_path()
                    .map_err(|_| anyhow!("inventory {url}: not a local file URL"))?;
                Self::open_local(&p, url)
            }
            Ok(u) if u.scheme().len() > 1 => Self::open_store(&u, url, opts),
            _ => Self::open_local(Path::new(url), url),
        }
    }

    fn open_local(path: &Path, url: &str) -> Result<Inventory> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("inventory {url} does not exist or cannot be read"))?;
        let manifest_path = if meta.is_dir() {
            let mut dated: Vec<String> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list inventory {url}"))?
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| is_dated(n))
                .collect();
            dated.sort();
            dated
                .iter()
                .rev()
                .take(DATED_TRIES)
                .map(|d| path.join(d).join("manifest.json"))
                .find(|m| m.is_file() && m.with_file_name("manifest.checksum").is_file())
                .ok_or_else(|| {
                    anyhow!(
                        "inventory {url}: no dated report (YYYY-MM-DDTHH-MMZ/manifest.json with manifest.checksum) in this folder"
                    )
                })?
        } else {
            path.to_path_buf()
        };
        let location = manifest_path.display().to_string();
        let json = std::fs::read(&manifest_path)
            .with_context(|| format!("cannot read inventory manifest {location}"))?;
        let sum_path = manifest_path.with_file_name("manifest.checksum");
        let sum = std::fs::read(&sum_path).with_context(|| {
            format!(
                "cannot read {}: an inventory is trusted only with its manifest.checksum",
                sum_path.display()
            )
        })?;
        let manifest = Manifest::parse(&json, &sum, &location)?;
        refuse_unreadable_format(&manifest, &location)?;
        // The folder the data file keys are relative to: the nearest
        // parent of the manifest under which the first data file exists.
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        let root = match manifest.files.first() {
            None => dir.to_path_buf(),
            Some(first) => dir
                .ancestors()
                .find(|a| a.join(&first.key).is_file())
                .map(Path::to_path_buf)
                .ok_or_else(|| {
                    anyhow!(
                        "inventory {location}: data file {} is not under any parent folder of the manifest",
                        first.key
                    )
                })?,
        };
        Ok(Inventory {
            manifest,
            location,
            source: Source::Dir(root),
        })
    }

    fn open_store(
        u: &url::Url,
        url: &str,
        opts: &crate::engine::remote::RemoteOptions,
    ) -> Result<Inventory> {
        let bucket = u.host_str().unwrap_or_default();
        let base = format!("{}://{bucket}", u.scheme());
        let remote = crate::engine::remote::open(&base, opts)
            .with_context(|| format!("inventory {url} cannot be read"))?;
        let store = remote.store;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let path = u.path().trim_matches('/').to_string();
        let get = |key: &str| -> Result<Option<Vec<u8>>> {
            let loc = StorePath::parse(key).map_err(|e| anyhow!("{base}/{key}: {e}"))?;
            runtime.block_on(async {
                match store.get(&loc).await {
                    Ok(r) => Ok(Some(r.bytes().await?.to_vec())),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(anyhow!("{base}/{key}: {e}")),
                }
            })
        };
        let candidates: Vec<String> = if path.ends_with("manifest.json") {
            vec![path.clone()]
        } else {
            let prefix = StorePath::parse(&path).map_err(|e| anyhow!("inventory {url}: {e}"))?;
            let listing = runtime
                .block_on(store.list_with_delimiter(Some(&prefix)))
                .map_err(|e| anyhow!("inventory {url} cannot be listed: {e}"))?;
            let mut dated: Vec<String> = listing
                .common_prefixes
                .iter()
                .filter(|p| p.filename().is_some_and(is_dated))
                .map(|p| format!("{}/manifest.json", p.as_ref()))
                .collect();
            dated.sort();
            dated.into_iter().rev().take(DATED_TRIES).collect()
        };
        for key in &candidates {
            let Some(json) = get(key)? else { continue };
            let sum_key = format!(
                "{}manifest.checksum",
                key.strip_suffix("manifest.json").unwrap_or_default()
            );
            let location = format!("{base}/{key}");
            let sum = get(&sum_key)?.ok_or_else(|| {
                anyhow!(
                    "inventory {location}: no manifest.checksum next to it: an inventory is trusted only with its checksum"
                )
            })?;
            let manifest = Manifest::parse(&json, &sum, &location)?;
            refuse_unreadable_format(&manifest, &location)?;
            return Ok(Inventory {
                manifest,
                location,
                source: Source::Store {
                    store,
                    base,
                    runtime,
                },
            });
        }
        bail!(
            "inventory {url}: no manifest.json found{}",
            if path.ends_with("manifest.json") {
                ""
            } else {
                " in any dated report folder (YYYY-MM-DDTHH-MMZ/) under it"
            }
        )
    }

    /// Unix seconds when the report was begun.
    pub fn created(&self) -> i64 {
        self.manifest.created()
    }

    /// The snapshot's identity, as reports carry it and `merge` compares:
    /// the manifest read, its MD5 and its time.
    pub fn to_json(&self) -> Value {
        json!({
            "manifest": self.location,
            "md5": hex::encode(self.manifest.md5),
            "created": crate::model::format_time(self.created()),
            "source_bucket": self.manifest.source_bucket,
            "data_files": self.manifest.files.len(),
        })
    }

    /// Opens one data file after proving its size and MD5: the file
    /// itself, or a temporary copy of a remote one (rewound).
    fn open_verified(&self, file: &DataFile) -> Result<std::fs::File> {
        let mut md5 = Md5::new();
        let (reader, size) = match &self.source {
            Source::Dir(root) => {
                let path = root.join(&file.key);
                let mut f = std::fs::File::open(&path).with_context(|| {
                    format!("cannot read inventory data file {}", path.display())
                })?;
                let n = std::io::copy(&mut f, &mut DigestWriter(&mut md5)).with_context(|| {
                    format!("cannot read inventory data file {}", path.display())
                })?;
                f.rewind()?;
                (f, n)
            }
            Source::Store {
                store,
                base,
                runtime,
            } => {
                let name = format!("{base}/{}", file.key);
                let loc = StorePath::parse(&file.key).map_err(|e| anyhow!("{name}: {e}"))?;
                let mut tmp = tempfile::tempfile()
                    .context("cannot create a temporary file for an inventory data file")?;
                let n = runtime.block_on(async {
                    use futures::StreamExt;
                    let mut stream = store
                        .get(&loc)
                        .await
                        .map_err(|e| anyhow!("cannot read inventory data file {name}: {e}"))?
                        .into_stream();
                    let mut n = 0u64;
                    while let Some(chunk) = stream.next().await {
                        let chunk = chunk
                            .map_err(|e| anyhow!("cannot read inventory data file {name}: {e}"))?;
                        md5.update(&chunk);
                        tmp.write_all(&chunk)
                            .context("cannot write a temporary file")?;
                        n += chunk.len() as u64;
                    }
                    Ok::<_, anyhow::Error>(n)
                })?;
                tmp.rewind()?;
                (tmp, n)
            }
        };
        let got: [u8; 16] = md5.finalize().into();
        if size != file.size || got != file.md5 {
            bail!(
                "inventory data file {} does not match the manifest ({} bytes, MD5 {}; the manifest says {} bytes, MD5 {}): refusing a damaged or replaced inventory",
                file.key,
                size,
                hex::encode(got),
                file.size,
                hex::encode(file.md5)
            );
        }
        Ok(reader)
    }

    /// Streams every current object of the report to `f`, file by file,
    /// each file only after it was verified.
    pub fn for_each_row(&self, mut f: impl FnMut(&Row) -> Result<()>) -> Result<ReadStats> {
        let mut stats = ReadStats::default();
        #[cfg(feature = "parquet")]
        let mut row = Row::default();
        for file in &self.manifest.files {
            let reader = self.open_verified(file)?;
            match self.manifest.format {
                #[cfg(feature = "parquet")]
                FileFormat::Parquet => {
                    let (kept, skipped) =
                        parquet::for_each_row(reader, &file.key, &mut row, &mut f)?;
                    stats.rows += kept;
                    stats.skipped += skipped;
                }
                _ => {
                    let reader = std::io::BufReader::with_capacity(1 << 16, reader);
                    let mut rows = RowReader::new(reader, &self.manifest.columns, &file.key);
                    while let Some(row) = rows.next_row()? {
                        stats.rows += 1;
                        f(row)?;
                    }
                    stats.skipped += rows.skipped;
                }
            }
            stats.files += 1;
            stats.bytes += file.size;
        }
        Ok(stats)
    }
}

fn refuse_unreadable_format(m: &Manifest, location: &str) -> Result<()> {
    match m.format {
        FileFormat::Csv => Ok(()),
        FileFormat::Orc => bail!(
            "inventory {location} is in ORC format, which vouch does not read: configure the inventory with output format CSV or Parquet"
        ),
        #[cfg(feature = "parquet")]
        FileFormat::Parquet => Ok(()),
        #[cfg(not(feature = "parquet"))]
        FileFormat::Parquet => bail!(
            "inventory {location} is in Parquet format, which this build of vouch does not read (built without the `parquet` feature): configure the inventory with output format CSV"
        ),
    }
}

struct DigestWriter<'a>(&'a mut Md5);

impl Write for DigestWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_folder_names() {
        assert!(is_dated("2026-03-01T00-00Z"));
        assert!(!is_dated("data"));
        assert!(!is_dated("hive"));
        assert!(!is_dated("2026-03-01T00:00Z"));
        assert!(!is_dated("2026-03-01T00-00Z-"));
    }
}
