//! The backup side: one adapter over `object_store` for every backend.
//!
//! `s3://bucket/prefix` (AWS or any S3-compatible server), `gs://…`,
//! `az://…`, `file:///abs/path` and a plain path all go through the same
//! `ObjectStore` trait, so the audit has one code path. Credentials and
//! endpoints come from the standard environment (`AWS_*`, `GOOGLE_*`,
//! `AZURE_*`) plus `--endpoint`. vouch only lists and reads: no method here
//! writes to a remote.
//!
//! A local file `a/b.jpg` under ROOT corresponds to the object
//! `prefix/a/b.jpg`. Listed keys are converted to the index's key form
//! (see [`crate::paths`]) relative to the prefix.

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientConfigKey, GetOptions, ObjectStore, RetryConfig};

use crate::paths;

/// How patient to be with a remote.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Overrides the endpoint (S3-compatible servers, emulators).
    pub endpoint: Option<String>,
    /// Retries of a failed request, with exponential backoff.
    pub retries: usize,
    /// Longest wait for any single read from the network.
    pub timeout: Duration,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            endpoint: None,
            retries: 4,
            timeout: Duration::from_secs(60),
        }
    }
}

pub struct Remote {
    pub store: Arc<dyn ObjectStore>,
    /// The prefix inside the store that mirrors ROOT.
    pub prefix: Path,
    /// The canonical name of this remote, as the index records it.
    pub id: String,
}

/// One listed object.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// Index key relative to the prefix.
    pub key: Vec<u8>,
    pub size: u64,
    pub etag: Option<String>,
    pub version: Option<String>,
    /// Unix seconds.
    pub last_modified: i64,
}

impl Listed {
    /// What identifies this exact content version: the ETag, else the
    /// version id, else size and modification time. A cached verification
    /// is valid only while the fingerprint is unchanged.
    pub fn fingerprint(&self) -> String {
        match (&self.etag, &self.version) {
            (Some(e), _) => format!("etag:{e}"),
            (None, Some(v)) => format!("version:{v}"),
            (None, None) => format!("mtime:{}:{}", self.size, self.last_modified),
        }
    }
}

/// Why an object could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Gone since it was listed.
    NotFound,
    /// Replaced since it was listed (the ETag no longer matches).
    Changed,
    Other(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotFound => f.write_str("deleted after it was listed"),
            ReadError::Changed => f.write_str("replaced while the audit ran"),
            ReadError::Other(e) => f.write_str(e),
        }
    }
}

/// The single-part MD5 an S3 ETag carries, if it has that form (32 hex
/// digits, no `-N` multipart suffix). Only a hint: with SSE-KMS or SSE-C
/// the ETag is not an MD5 even when it looks like one.
pub fn etag_md5(etag: &str) -> Option<[u8; 16]> {
    let t = etag.trim_matches('"');
    if t.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    hex::decode_to_slice(t, &mut out).ok()?;
    Some(out)
}

/// Timeouts, as config keys: set one by one so they do not replace the
/// client options the builders read from the environment (such as
/// `AWS_ALLOW_HTTP`). A whole request may take as long as it needs (a
/// 50 GiB object does); what must not stall is each network read.
fn client_config(opts: &RemoteOptions) -> Vec<(ClientConfigKey, String)> {
    let secs = |d: Duration| format!("{}s", d.as_secs().max(1));
    vec![
        (
            ClientConfigKey::ConnectTimeout,
            secs(Duration::from_secs(10).min(opts.timeout)),
        ),
        (ClientConfigKey::ReadTimeout, secs(opts.timeout)),
        (ClientConfigKey::Timeout, "7days".to_string()),
    ]
}

fn retry_config(opts: &RemoteOptions) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            base: 2.0,
        },
        max_retries: opts.retries,
        retry_timeout: Duration::from_secs(120),
    }
}

/// Opens the remote named by `url`: a URL or a plain directory path.
pub fn open(url: &str, opts: &RemoteOptions) -> Result<Remote> {
    let parsed = url::Url::parse(url);
    let (store, prefix, id): (Arc<dyn ObjectStore>, Path, String) = match parsed {
        Ok(u) if u.scheme() == "file" => {
            let path = u
                .to_file_path()
                .map_err(|_| anyhow!("remote {url}: not a local file URL"))?;
            open_dir(&path, url)?
        }
        Ok(u) if u.scheme().len() > 1 => {
            let bucket = u.host_str().unwrap_or_default();
            if bucket.is_empty() {
                bail!("remote {url}: no bucket or container in the URL");
            }
            let prefix = Path::parse(u.path().trim_matches('/'))
                .map_err(|e| anyhow!("remote {url}: bad prefix: {e}"))?;
            let store: Arc<dyn ObjectStore> = match u.scheme() {
                "s3" | "s3a" => {
                    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
                    let mut b = AmazonS3Builder::from_env()
                        .with_url(url)
                        .with_retry(retry_config(opts));
                    for (k, v) in client_config(opts) {
                        b = b.with_config(AmazonS3ConfigKey::Client(k), v);
                    }
                    if let Some(ep) = &opts.endpoint {
                        b = b.with_endpoint(ep);
                        if ep.starts_with("http://") {
                            b = b.with_allow_http(true);
                        }
                    }
                    Arc::new(b.build().map_err(|e| anyhow!("remote {url}: {e}"))?)
                }
                "gs" => {
                    use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
                    let mut b = GoogleCloudStorageBuilder::from_env()
                        .with_url(url)
                        .with_retry(retry_config(opts));
                    for (k, v) in client_config(opts) {
                        b = b.with_config(GoogleConfigKey::Client(k), v);
                    }
                    Arc::new(b.build().map_err(|e| anyhow!("remote {url}: {e}"))?)
                }
                "az" | "azure" | "abfs" | "abfss" => {
                    use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
                    let mut b = MicrosoftAzureBuilder::from_env()
                        .with_url(url)
                        .with_retry(retry_config(opts));
                    for (k, v) in client_config(opts) {
                        b = b.with_config(AzureConfigKey::Client(k), v);
                    }
                    if let Some(ep) = &opts.endpoint {
                        b = b.with_endpoint(ep.clone());
                        if ep.starts_with("http://") {
                            b = b.with_allow_http(true);
                        }
                    }
                    Arc::new(b.build().map_err(|e| anyhow!("remote {url}: {e}"))?)
                }
                other => bail!(
                    "remote {url}: unknown scheme {other:?} (use s3://, gs://, az://, file:// or a directory path)"
                ),
            };
            (store, prefix, identity(url, opts)?)
        }
        // A plain path (also `C:`-like one-letter "schemes" never occur on Unix).
        _ => open_dir(FsPath::new(url), url)?,
    };
    Ok(Remote { store, prefix, id })
}

fn open_dir(path: &FsPath, url: &str) -> Result<(Arc<dyn ObjectStore>, Path, String)> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("remote {url} does not exist or cannot be read"))?;
    if !meta.is_dir() {
        bail!("remote {url} is not a directory");
    }
    let abs =
        std::fs::canonicalize(path).with_context(|| format!("cannot resolve remote {url}"))?;
    let store = object_store::local::LocalFileSystem::new_with_prefix(&abs)
        .map_err(|e| anyhow!("remote {url}: {e}"))?;
    Ok((
        Arc::new(store),
        Path::default(),
        identity(url, &RemoteOptions::default())?,
    ))
}

/// The name under which the index records a remote, derived from the URL
/// alone (no network, no filesystem), so that a run which could not even
/// reach its remote is still recorded under the same name: a directory is
/// `file://` and its absolute path; an object store is scheme, bucket and
/// prefix, plus the endpoint when one is set.
pub fn identity(url: &str, opts: &RemoteOptions) -> Result<String> {
    let dir = |p: &FsPath| -> Result<String> {
        let abs = std::path::absolute(p).with_context(|| format!("cannot resolve remote {url}"))?;
        Ok(format!("file://{}", abs.display()))
    };
    match url::Url::parse(url) {
        Ok(u) if u.scheme() == "file" => {
            let path = u
                .to_file_path()
                .map_err(|_| anyhow!("remote {url}: not a local file URL"))?;
            dir(&path)
        }
        Ok(u) if u.scheme().len() > 1 => {
            let bucket = u.host_str().unwrap_or_default();
            let prefix = u.path().trim_matches('/');
            let mut id = format!("{}://{}/{}", u.scheme(), bucket, prefix);
            if let Some(ep) = &opts.endpoint {
                id.push_str(&format!(" @{ep}"));
            } else if let Ok(ep) = std::env::var("AWS_ENDPOINT_URL")
                && u.scheme().starts_with("s3")
            {
                id.push_str(&format!(" @{ep}"));
            }
            Ok(id)
        }
        _ => dir(FsPath::new(url)),
    }
}

impl Remote {
    /// Lists every object under the prefix (in no particular order).
    pub fn list(&self) -> BoxStream<'static, Result<Listed>> {
        let prefix = self.prefix.clone();
        let strip = if prefix.as_ref().is_empty() {
            String::new()
        } else {
            format!("{}/", prefix.as_ref())
        };
        let id = self.id.clone();
        self.store
            .list((!prefix.as_ref().is_empty()).then_some(&prefix))
            .map(move |item| {
                let meta = item.map_err(|e| anyhow!("listing {id} failed: {e}"))?;
                let full = meta.location.as_ref();
                let rel = full.strip_prefix(strip.as_str()).unwrap_or(full);
                Ok(Listed {
                    key: paths::key_from_slash(rel.as_bytes()),
                    size: meta.size,
                    etag: meta.e_tag,
                    version: meta.version,
                    last_modified: meta.last_modified.timestamp(),
                })
            })
            .boxed()
    }

    /// The object path of an index key.
    pub fn location(&self, key: &[u8]) -> Result<Path, ReadError> {
        let rel = std::str::from_utf8(&paths::slash_bytes(key))
            .map_err(|_| ReadError::Other("name is not UTF-8".into()))?
            .to_string();
        let full = if self.prefix.as_ref().is_empty() {
            rel
        } else {
            format!("{}/{rel}", self.prefix.as_ref())
        };
        Path::parse(&full).map_err(|e| ReadError::Other(e.to_string()))
    }

    /// Streams one object through BLAKE3. `etag`, when known, pins the
    /// read to the listed version. Returns the hash and the bytes read.
    pub async fn read_hash(
        &self,
        key: &[u8],
        etag: Option<&str>,
    ) -> Result<([u8; 32], u64), ReadError> {
        let location = self.location(key)?;
        let options = GetOptions {
            if_match: etag.map(str::to_string),
            ..Default::default()
        };
        let result = self
            .store
            .get_opts(&location, options)
            .await
            .map_err(read_error)?;
        let mut stream = result.into_stream();
        let mut hasher = blake3::Hasher::new();
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(read_error)?;
            hasher.update(&chunk);
            total += chunk.len() as u64;
        }
        Ok((*hasher.finalize().as_bytes(), total))
    }
}

fn read_error(e: object_store::Error) -> ReadError {
    match e {
        object_store::Error::NotFound { .. } => ReadError::NotFound,
        object_store::Error::Precondition { .. } => ReadError::Changed,
        other => ReadError::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_32_hex_etags_carry_an_md5() {
        assert!(etag_md5("\"5d41402abc4b2a76b9719d911017c592\"").is_some());
        assert!(etag_md5("5d41402abc4b2a76b9719d911017c592").is_some());
        assert!(etag_md5("\"5d41402abc4b2a76b9719d911017c592-3\"").is_none());
        assert!(etag_md5("\"zz41402abc4b2a76b9719d911017c592\"").is_none());
    }

    #[test]
    fn unknown_schemes_and_missing_directories_are_refused() {
        let e = open("ftp://host/x", &RemoteOptions::default())
            .err()
            .unwrap();
        assert!(e.to_string().contains("unknown scheme"), "{e}");
        let e = open("/no/such/dir/anywhere", &RemoteOptions::default())
            .err()
            .unwrap();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
