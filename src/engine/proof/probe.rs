//! The request side of the ladder: what a store keeps about one object,
//! asked without reading it.
//!
//! - S3: `HEAD` with `x-amz-checksum-mode: ENABLED` (stored checksums and
//!   their type, SSE headers), and `HEAD ?partNumber=k` (a part's size,
//!   `x-amz-mp-parts-count`).
//! - GCS: the XML API `HEAD` (`x-goog-hash: crc32c=…,md5=…`).
//! - Azure: `HEAD` (Get Blob Properties: `Content-MD5`).
//!
//! Requests are signed by `object_store` itself (S3:
//! [`Signer::signed_url_opts`] binds the checksum-mode and `If-Match`
//! headers and the `partNumber`/`versionId` query; Azure: a read SAS; GCS:
//! the store's bearer token), and sent over `reqwest`, which the tree
//! already builds. No second SDK. Each request is pinned to the listed
//! version (`If-Match` on the listed ETag, `versionId` when listed), so a
//! proof is never about an object replaced since the listing.
//!
//! Parsing headers into [`Facts`] is pure and unit-tested here.

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use object_store::signer::{HeaderName, HeaderValue, Method, SignedUrlOptions, Signer};
use reqwest::header::HeaderMap;

use super::digest::Algo;
use super::ladder::{ChecksumType, Facts, Parts, Stored};

/// Why a probe did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// Gone since it was listed.
    NotFound,
    /// Replaced since it was listed (ETag or size changed).
    Changed,
    /// The store refused (permissions, an unsupported request).
    Refused(String),
    /// The network or the store failed, after retries.
    Failed(String),
    /// The store denied the request (HTTP 401/403): the credentials or
    /// the policy, not the object; the audit ends with it.
    Denied(String),
    /// No answer (a timeout, or no connection) from this host, after
    /// retries; the audit ends with it.
    Unreachable { host: String, timeout: bool },
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::NotFound => f.write_str("deleted after it was listed"),
            ProbeError::Changed => f.write_str("replaced after it was listed"),
            ProbeError::Refused(e) => write!(f, "the store refused the request: {e}"),
            ProbeError::Failed(e) => write!(f, "request failed: {e}"),
            ProbeError::Denied(e) => write!(f, "access denied ({e})"),
            ProbeError::Unreachable {
                host,
                timeout: true,
            } => {
                write!(f, "no answer from {host} within --timeout")
            }
            ProbeError::Unreachable { host, .. } => write!(f, "cannot connect to {host}"),
        }
    }
}

/// The object a probe is about, as listed.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub location: &'a Path,
    pub size: u64,
    /// As listed, with or without quotes.
    pub etag: Option<&'a str>,
    pub version: Option<&'a str>,
    /// As listed (Unix seconds), when known. A listing without ETags
    /// (s3s-fs, some gateways) leaves nothing to pin a request to but
    /// this: an answer whose `Last-Modified` differs is another version.
    pub last_modified: Option<i64>,
}

/// One backend's way of asking.
#[derive(Debug, Clone)]
pub enum Backend {
    S3(Arc<object_store::aws::AmazonS3>),
    Gcs {
        store: Arc<object_store::gcp::GoogleCloudStorage>,
        /// `https://storage.googleapis.com` or an emulator's URL.
        base_url: String,
        bucket: String,
        /// Send no credentials (an emulator, a public bucket).
        anonymous: bool,
    },
    Azure(Arc<object_store::azure::MicrosoftAzure>),
}

/// Asks a store about objects; counts the requests it made.
#[derive(Debug, Clone)]
pub struct Prober {
    backend: Backend,
    http: reqwest::Client,
    retries: usize,
    requests: Arc<std::sync::atomic::AtomicU64>,
    /// Set once the store answered GetObjectAttributes without a part
    /// list (or refused it): part sizes are then asked part by part.
    no_attributes: Arc<std::sync::atomic::AtomicBool>,
}

const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);

impl Prober {
    /// `timeout` bounds each request (connect and read), like a read's.
    pub fn new(backend: Backend, retries: usize, timeout: Duration) -> anyhow::Result<Prober> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Prober {
            backend,
            http,
            retries,
            requests: Arc::default(),
            no_attributes: Arc::default(),
        })
    }

    /// Whether a listed ETag equal to the content's MD5 is a proof: S3's
    /// ETags are the MD5 (or the multipart ETag) of what it accepted, or
    /// a random value that cannot equal one. GCS and Azure ETags are
    /// opaque: never used.
    pub fn listed_etag_counts(&self) -> bool {
        matches!(self.backend, Backend::S3(_))
    }

    /// Requests sent so far (retries included).
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The store's facts about an object: its stored checksums, ETag
    /// semantics and whether it is multipart.
    pub async fn head(&self, t: &Target<'_>) -> Result<Facts, ProbeError> {
        let headers = match &self.backend {
            Backend::S3(_) => self.s3_head(t, None).await?,
            Backend::Gcs { .. } => self.gcs_head(t).await?,
            Backend::Azure(_) => self.azure_head(t).await?,
        };
        let size = content_length(&headers);
        if size.is_some_and(|s| s != t.size) {
            return Err(ProbeError::Changed);
        }
        pinned(t, &headers)?;
        Ok(match &self.backend {
            Backend::S3(_) => s3_facts(t.size, t.etag, &headers),
            Backend::Gcs { .. } => gcs_facts(t.size, t.etag, &headers),
            Backend::Azure(_) => azure_facts(t.size, t.etag, &headers),
        })
    }

    /// The size of part `k` (1-based) and the part count, where the store
    /// keeps parts (S3). A store without parts answers `Refused`.
    pub async fn part(&self, t: &Target<'_>, k: u64) -> Result<(u64, Option<u64>), ProbeError> {
        if !matches!(self.backend, Backend::S3(_)) {
            return Err(ProbeError::Refused("this store keeps no parts".into()));
        }
        // A store that refuses part requests only lacks that proof.
        let h = self.s3_head(t, Some(k)).await.map_err(|e| match e {
            ProbeError::Denied(e) => ProbeError::Refused(e),
            other => other,
        })?;
        pinned(t, &h)?;
        let size = content_length(&h)
            .ok_or_else(|| ProbeError::Failed("a part HEAD without Content-Length".into()))?;
        let count = header(&h, "x-amz-mp-parts-count").and_then(|v| v.parse().ok());
        Ok((size, count))
    }

    /// Every part's size: one GetObjectAttributes (`ObjectParts`) where
    /// the store answers it with the part list, else `count` HEADs
    /// (`?partNumber=k`, 8 at a time).
    pub async fn all_parts(&self, t: &Target<'_>, count: u64) -> Result<Vec<u64>, ProbeError> {
        if count <= 1000
            && !self
                .no_attributes
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            match self.object_parts(t).await {
                Ok(Some(sizes)) if sizes.len() as u64 == count => {
                    if sizes.iter().sum::<u64>() != t.size {
                        return Err(ProbeError::Changed);
                    }
                    return Ok(sizes);
                }
                Err(ProbeError::NotFound) => return Err(ProbeError::NotFound),
                Err(ProbeError::Changed) => return Err(ProbeError::Changed),
                // Refused (permissions: s3:GetObjectAttributes), no part
                // list (objects uploaded without checksums, some
                // emulators): ask each part, and stop asking this store.
                _ => self
                    .no_attributes
                    .store(true, std::sync::atomic::Ordering::Relaxed),
            }
        }
        self.part_heads(t, count).await
    }

    /// GetObjectAttributes with `ObjectParts`, pinned like a HEAD: the
    /// part sizes in order, or `None` when the answer holds no complete
    /// list.
    async fn object_parts(&self, t: &Target<'_>) -> Result<Option<Vec<u64>>, ProbeError> {
        let Backend::S3(store) = &self.backend else {
            return Err(ProbeError::Refused("this store keeps no parts".into()));
        };
        let mut opts = SignedUrlOptions::default()
            .with_query([("attributes", String::new())])
            .with_signed_header(
                HeaderName::from_static("x-amz-object-attributes"),
                HeaderValue::from_static("ObjectParts"),
            )
            .with_signed_header(
                HeaderName::from_static("x-amz-max-parts"),
                HeaderValue::from_static("1000"),
            );
        if let Some(v) = t.version {
            opts = opts.with_query([("versionId", v.to_string())]);
        }
        if let Some(e) = t.etag {
            opts = if_match(opts, e)?;
        }
        let url = store
            .signed_url_opts(Method::GET, t.location, SIGNED_FOR, &opts)
            .await
            .map_err(|e| ProbeError::Failed(e.to_string()))?;
        let headers = opts.signed_headers.clone();
        let (h, body) = self
            .send_for_body(move |http| http.get(url.clone()).headers(headers.clone()))
            .await?;
        pinned(t, &h)?;
        Ok(parse_object_parts(&body))
    }

    /// Every part's size by `count` HEADs (`?partNumber=k`), 8 at a time.
    async fn part_heads(&self, t: &Target<'_>, count: u64) -> Result<Vec<u64>, ProbeError> {
        use futures::StreamExt;
        let sizes: Vec<Result<(u64, Option<u64>), ProbeError>> = futures::stream::iter(1..=count)
            .map(|k| self.part(t, k))
            .buffered(8)
            .collect()
            .await;
        let mut out = Vec::with_capacity(count as usize);
        for s in sizes {
            let (size, n) = s?;
            if n.is_some_and(|n| n != count) {
                return Err(ProbeError::Changed);
            }
            out.push(size);
        }
        if out.iter().sum::<u64>() != t.size {
            return Err(ProbeError::Changed);
        }
        // Part requests are not pinned (a part's ETag is not the
        // object's on every store): the object, pinned again, must be the
        // one listed, or these sizes may be another version's and could
        // turn into a false mismatch.
        pinned(t, &self.s3_head(t, None).await?)?;
        Ok(out)
    }

    async fn s3_head(&self, t: &Target<'_>, part: Option<u64>) -> Result<HeaderMap, ProbeError> {
        let Backend::S3(store) = &self.backend else {
            unreachable!("s3_head on another backend")
        };
        let mut opts = SignedUrlOptions::default();
        if part.is_none() {
            opts = opts.with_signed_header(
                HeaderName::from_static("x-amz-checksum-mode"),
                HeaderValue::from_static("ENABLED"),
            );
        }
        if let Some(k) = part {
            opts = opts.with_query([("partNumber", k.to_string())]);
        }
        if let Some(v) = t.version {
            opts = opts.with_query([("versionId", v.to_string())]);
        }
        if let Some(e) = t.etag.filter(|_| part.is_none()) {
            opts = if_match(opts, e)?;
        }
        let url = store
            .signed_url_opts(Method::HEAD, t.location, SIGNED_FOR, &opts)
            .await
            .map_err(|e| ProbeError::Failed(e.to_string()))?;
        let headers = opts.signed_headers.clone();
        self.send(move |http| http.head(url.clone()).headers(headers.clone()))
            .await
    }

    async fn gcs_head(&self, t: &Target<'_>) -> Result<HeaderMap, ProbeError> {
        let Backend::Gcs {
            store,
            base_url,
            bucket,
            anonymous,
        } = &self.backend
        else {
            unreachable!("gcs_head on another backend")
        };
        let mut url = url::Url::parse(&format!(
            "{}/{}/{}",
            base_url.trim_end_matches('/'),
            bucket,
            t.location
        ))
        .map_err(|e| ProbeError::Failed(e.to_string()))?;
        if let Some(g) = t.version {
            url.query_pairs_mut().append_pair("generation", g);
        }
        let bearer = if *anonymous {
            None
        } else {
            Some(
                store
                    .credentials()
                    .get_credential()
                    .await
                    .map_err(|e| ProbeError::Failed(e.to_string()))?
                    .bearer
                    .clone(),
            )
        };
        let etag = t.etag.map(str::to_string);
        self.send(move |http| {
            let mut r = http.head(url.clone());
            if let Some(b) = &bearer {
                r = r.bearer_auth(b);
            }
            if let Some(e) = &etag {
                r = r.header("if-match", e.as_str());
            }
            r
        })
        .await
    }

    async fn azure_head(&self, t: &Target<'_>) -> Result<HeaderMap, ProbeError> {
        let Backend::Azure(store) = &self.backend else {
            unreachable!("azure_head on another backend")
        };
        // A SAS grants by permission, not by HTTP method: a read SAS
        // (signed for GET) authorises Get Blob Properties (HEAD).
        let mut url = store
            .signed_url(Method::GET, t.location, SIGNED_FOR)
            .await
            .map_err(|e| ProbeError::Failed(e.to_string()))?;
        if let Some(v) = t.version {
            url.query_pairs_mut().append_pair("versionid", v);
        }
        let etag = t.etag.map(str::to_string);
        self.send(move |http| {
            let mut r = http.head(url.clone()).header("x-ms-version", "2023-11-03");
            if let Some(e) = &etag {
                r = r.header("if-match", e.as_str());
            }
            r
        })
        .await
    }

    /// Like [`Prober::send`], with the (small) body of the answer.
    async fn send_for_body(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<(HeaderMap, String), ProbeError> {
        let body = std::sync::Mutex::new(String::new());
        let headers = self.send_inner(&build, Some(&body)).await?;
        Ok((headers, body.into_inner().unwrap_or_default()))
    }

    /// Sends a request built by `build`, retrying server errors and
    /// network failures with exponential backoff like a read.
    async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<HeaderMap, ProbeError> {
        self.send_inner(&build, None).await
    }

    async fn send_inner(
        &self,
        build: &impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        body: Option<&std::sync::Mutex<String>>,
    ) -> Result<HeaderMap, ProbeError> {
        let mut wait = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            let mut unreachable = None;
            self.requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let result = build(&self.http).send().await;
            let retry = match result {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match status {
                        200..=299 => {
                            let headers = resp.headers().clone();
                            if let Some(out) = body {
                                match resp.text().await {
                                    Ok(text) => {
                                        *out.lock().unwrap_or_else(|e| e.into_inner()) = text
                                    }
                                    Err(e) => return Err(ProbeError::Failed(e.to_string())),
                                }
                            }
                            return Ok(headers);
                        }
                        404 => return Err(ProbeError::NotFound),
                        412 => return Err(ProbeError::Changed),
                        401 | 403 => return Err(ProbeError::Denied(format!("HTTP {status}"))),
                        // A HEAD has no body: name the status.
                        400..=499 if status != 408 && status != 429 => {
                            return Err(ProbeError::Refused(format!("HTTP {status}")));
                        }
                        _ => format!("HTTP {status}"),
                    }
                }
                Err(e) => {
                    if e.is_timeout() || e.is_connect() {
                        let host = e.url().map_or_else(String::new, |u| {
                            format!("{}://{}", u.scheme(), u.authority())
                        });
                        unreachable = Some(ProbeError::Unreachable {
                            host,
                            timeout: e.is_timeout(),
                        });
                    }
                    e.to_string()
                }
            };
            attempt += 1;
            if attempt > self.retries {
                return Err(unreachable.unwrap_or(ProbeError::Failed(retry)));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    }
}

/// The part sizes of a GetObjectAttributes answer (`<ObjectParts>` with
/// every `<Part><PartNumber>k</PartNumber><Size>n</Size></Part>`), when
/// it lists all of them in order (not truncated, numbered 1..N, N the
/// `TotalPartsCount`); `None` otherwise.
pub fn parse_object_parts(xml: &str) -> Option<Vec<u64>> {
    fn text<'a>(s: &'a str, tag: &str) -> Option<&'a str> {
        let open = format!("<{tag}>");
        let start = s.find(&open)? + open.len();
        let end = s[start..].find(&format!("</{tag}>"))? + start;
        Some(s[start..end].trim())
    }
    let parts = text(xml, "ObjectParts")?;
    if text(parts, "IsTruncated") == Some("true") {
        return None;
    }
    let total: usize = text(parts, "TotalPartsCount")?.parse().ok()?;
    let mut sizes = Vec::new();
    for (i, chunk) in parts.split("<Part>").skip(1).enumerate() {
        let part = &chunk[..chunk.find("</Part>")?];
        let number: usize = text(part, "PartNumber")?.parse().ok()?;
        if number != i + 1 {
            return None;
        }
        sizes.push(text(part, "Size")?.parse().ok()?);
    }
    (total > 0 && sizes.len() == total).then_some(sizes)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Checks an answer is about the version listed when the request could
/// not be pinned to it (`If-Match` needs a listed ETag): a
/// `Last-Modified` other than the listed one is another version
/// (`Changed`), so a proof (and the facts kept with it) cannot outlive a
/// rewrite that kept the size.
fn pinned(t: &Target<'_>, h: &HeaderMap) -> Result<(), ProbeError> {
    if t.etag.is_none()
        && let (Some(listed), Some(got)) = (t.last_modified, last_modified(h))
        && listed != got
    {
        return Err(ProbeError::Changed);
    }
    Ok(())
}

/// `Last-Modified` as Unix seconds.
fn last_modified(h: &HeaderMap) -> Option<i64> {
    let t = httpdate::parse_http_date(header(h, "last-modified")?).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs() as i64)
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    header(h, "content-length").and_then(|v| v.parse().ok())
}

fn unquote(etag: Option<&str>) -> Option<String> {
    etag.map(|e| e.trim().trim_matches('"').to_string())
}

/// S3's checksums (added in 2026 beside MD5 and SHA-512, which are
/// computed) that vouch does not compute: their headers are
/// `x-amz-checksum-xxhash64`, `-xxhash3` (64-bit) and `-xxhash128`. Their
/// byte order is not pinned down by a test against S3, so a value is
/// never compared: it is named in the `unverified` detail.
const UNCOMPUTED: [&str; 3] = ["xxhash64", "xxhash3", "xxhash128"];

/// The facts an S3 `HEAD` (with checksum mode) gives.
pub fn s3_facts(size: u64, listed_etag: Option<&str>, h: &HeaderMap) -> Facts {
    let kind = match header(h, "x-amz-checksum-type") {
        Some(t) if t.eq_ignore_ascii_case("FULL_OBJECT") => ChecksumType::FullObject,
        Some(t) if t.eq_ignore_ascii_case("COMPOSITE") => ChecksumType::Composite,
        _ => ChecksumType::Unknown,
    };
    let stored = Algo::ALL
        .into_iter()
        .filter_map(|a| {
            let v = header(h, &format!("x-amz-checksum-{}", a.name()))?;
            // CRC64NVME exists only as a full-object checksum.
            let k = if a == Algo::Crc64Nvme {
                ChecksumType::FullObject
            } else {
                kind
            };
            Stored::parse(a, v, k)
        })
        .collect();
    let sse = header(h, "x-amz-server-side-encryption").unwrap_or("");
    let kms = sse.to_ascii_lowercase().starts_with("aws:kms");
    let ssec = h.contains_key("x-amz-server-side-encryption-customer-algorithm");
    let etag = unquote(header(h, "etag").or(listed_etag));
    let count = etag
        .as_deref()
        .and_then(|e| e.rsplit_once('-'))
        .and_then(|(_, n)| n.parse::<u64>().ok());
    let unknown = UNCOMPUTED
        .iter()
        .filter(|a| h.contains_key(format!("x-amz-checksum-{a}").as_str()))
        .map(|a| a.to_string())
        .collect();
    Facts {
        size,
        etag,
        stored,
        unknown,
        etag_is_md5: Some(!kms && !ssec),
        parts: match count {
            Some(n) => Parts::Unknown { count: Some(n) },
            None => Parts::Single,
        },
    }
}

/// The facts a GCS XML `HEAD` gives: `x-goog-hash` holds the CRC32C of
/// every object and the MD5 of non-composite ones, both over the whole
/// content. GCS ETags are not MD5s to rely on.
pub fn gcs_facts(size: u64, listed_etag: Option<&str>, h: &HeaderMap) -> Facts {
    let mut stored = Vec::new();
    for v in h.get_all("x-goog-hash") {
        for item in v.to_str().unwrap_or("").split(',') {
            if let Some((name, value)) = item.trim().split_once('=') {
                // base64 values end in '=': split at the first only.
                let algo = match name.trim() {
                    "crc32c" => Algo::Crc32c,
                    "md5" => Algo::Md5,
                    _ => continue,
                };
                if let Some(s) = Stored::parse(algo, value, ChecksumType::FullObject) {
                    stored.push(s);
                }
            }
        }
    }
    Facts {
        size,
        etag: unquote(header(h, "etag").or(listed_etag)),
        stored,
        unknown: Vec::new(),
        etag_is_md5: Some(false),
        parts: Parts::Single,
    }
}

/// The facts an Azure `HEAD` gives: `Content-MD5`, when the uploader set
/// it (Azure computes it itself only for single-shot uploads). Azure ETags
/// are opaque.
pub fn azure_facts(size: u64, listed_etag: Option<&str>, h: &HeaderMap) -> Facts {
    let stored = header(h, "content-md5")
        .and_then(|v| Stored::parse(Algo::Md5, v, ChecksumType::FullObject))
        .into_iter()
        .collect();
    Facts {
        size,
        etag: unquote(header(h, "etag").or(listed_etag)),
        stored,
        unknown: Vec::new(),
        etag_is_md5: Some(false),
        parts: Parts::Single,
    }
}

/// Pins a signed request to the listed ETag (`If-Match`, quoted).
fn if_match(opts: SignedUrlOptions, etag: &str) -> Result<SignedUrlOptions, ProbeError> {
    let quoted = if etag.starts_with('"') {
        etag.to_string()
    } else {
        format!("\"{etag}\"")
    };
    let value =
        HeaderValue::from_str(&quoted).map_err(|e| ProbeError::Failed(format!("bad ETag: {e}")))?;
    Ok(opts.with_signed_header(HeaderName::from_static("if-match"), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn s3_heads_as_moto_and_aws_send_them() {
        // moto: full-object CRC64NVME multipart.
        let f = s3_facts(
            20_000,
            None,
            &headers(&[
                ("etag", "\"f541f6a3f4378afa141cbca85105783e-3\""),
                ("x-amz-checksum-type", "FULL_OBJECT"),
                ("x-amz-checksum-crc64nvme", "f0YiOm8nVsQ="),
            ]),
        );
        assert_eq!(f.parts, Parts::Unknown { count: Some(3) });
        assert_eq!(f.stored.len(), 1);
        assert_eq!(f.stored[0].kind, ChecksumType::FullObject);
        assert_eq!(f.etag_is_md5, Some(true));
        // AWS: composite CRC32 with its -N, under SSE-KMS.
        let f = s3_facts(
            20_000,
            None,
            &headers(&[
                ("etag", "\"0123456789abcdef0123456789abcdef-3\""),
                ("x-amz-checksum-type", "COMPOSITE"),
                ("x-amz-checksum-crc32", "8kciCA==-3"),
                ("x-amz-server-side-encryption", "aws:kms"),
            ]),
        );
        assert_eq!(f.stored[0].kind, ChecksumType::Composite);
        assert_eq!(f.stored[0].parts, Some(3));
        assert_eq!(f.etag_is_md5, Some(false));
        // SSE-C: the ETag is not an MD5 either.
        let f = s3_facts(
            5,
            Some("\"0123456789abcdef0123456789abcdef\""),
            &headers(&[("x-amz-server-side-encryption-customer-algorithm", "AES256")]),
        );
        assert_eq!(f.etag_is_md5, Some(false));
        assert_eq!(f.etag.as_deref(), Some("0123456789abcdef0123456789abcdef"));
        assert_eq!(f.parts, Parts::Single);
    }

    #[test]
    fn s3s_2026_checksums_md5_sha512_and_xxhash() {
        // MD5 and SHA-512 are compared; XXHASH values are named only.
        let f = s3_facts(
            11,
            None,
            &headers(&[
                ("etag", "\"0123456789abcdef0123456789abcdef\""),
                ("x-amz-checksum-type", "FULL_OBJECT"),
                ("x-amz-checksum-md5", "XrY7u+Ae7tCTyyK7j1rNww=="),
                (
                    "x-amz-checksum-sha512",
                    &super::super::digest::b64(&Algo::Sha512.digest(b"hello world")),
                ),
                ("x-amz-checksum-xxhash64", "AAAAAAAAAAA="),
                ("x-amz-checksum-xxhash128", "AAAAAAAAAAAAAAAAAAAAAA=="),
            ]),
        );
        let algos: Vec<Algo> = f.stored.iter().map(|s| s.algo).collect();
        assert_eq!(algos, vec![Algo::Md5, Algo::Sha512]);
        assert_eq!(f.stored[0].value, Algo::Md5.digest(b"hello world"));
        assert_eq!(f.unknown, vec!["xxhash64", "xxhash128"]);
    }

    #[test]
    fn a_head_without_a_listed_etag_is_pinned_to_the_listed_time() {
        let location = Path::from("k");
        let t = Target {
            location: &location,
            size: 5,
            etag: None,
            version: None,
            last_modified: Some(1_764_559_207), // Mon, 01 Dec 2025 03:20:07 GMT
        };
        let same = headers(&[("last-modified", "Mon, 01 Dec 2025 03:20:07 GMT")]);
        assert_eq!(pinned(&t, &same), Ok(()));
        let later = headers(&[("last-modified", "Mon, 01 Dec 2025 03:20:08 GMT")]);
        assert_eq!(pinned(&t, &later), Err(ProbeError::Changed));
        // With a listed ETag the request itself is pinned (If-Match).
        let t = Target {
            etag: Some("\"abc\""),
            ..t
        };
        assert_eq!(pinned(&t, &later), Ok(()));
    }

    #[test]
    fn object_parts_are_read_only_when_complete() {
        // As S3 documents GetObjectAttributes with ObjectParts.
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<GetObjectAttributesResponse xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <ObjectParts>
    <TotalPartsCount>3</TotalPartsCount><PartNumberMarker>0</PartNumberMarker>
    <NextPartNumberMarker>3</NextPartNumberMarker><MaxParts>1000</MaxParts>
    <IsTruncated>false</IsTruncated>
    <Part><ChecksumCRC32>AAAAAA==</ChecksumCRC32><PartNumber>1</PartNumber><Size>8388608</Size></Part>
    <Part><PartNumber>2</PartNumber><Size>5242880</Size></Part>
    <Part><PartNumber>3</PartNumber><Size>12</Size></Part>
  </ObjectParts>
</GetObjectAttributesResponse>"#;
        assert_eq!(
            parse_object_parts(xml),
            Some(vec![8_388_608, 5_242_880, 12])
        );
        // Truncated, a part missing, no part list at all: not a layout.
        assert_eq!(
            parse_object_parts(&xml.replace("<IsTruncated>false", "<IsTruncated>true")),
            None
        );
        assert_eq!(
            parse_object_parts(
                &xml.replace("<PartNumber>2</PartNumber>", "<PartNumber>4</PartNumber>")
            ),
            None
        );
        let bare = "<GetObjectAttributesResponse><ObjectParts><TotalPartsCount>3</TotalPartsCount></ObjectParts></GetObjectAttributesResponse>";
        assert_eq!(parse_object_parts(bare), None);
        assert_eq!(parse_object_parts("<Error/>"), None);
    }

    #[test]
    fn gcs_and_azure_heads() {
        let f = gcs_facts(
            11,
            None,
            &headers(&[(
                "x-goog-hash",
                "crc32c=yZRlqg==,md5=XrY7u+Ae7tCTyyK7j1rNww==",
            )]),
        );
        assert_eq!(f.stored.len(), 2);
        assert_eq!(f.stored[0].algo, Algo::Crc32c);
        assert_eq!(f.stored[1].value, Algo::Md5.digest(b"hello world"));
        assert_eq!(f.etag_is_md5, Some(false));
        // Real GCS sends one x-goog-hash header per algorithm.
        let f = gcs_facts(
            11,
            None,
            &headers(&[
                ("x-goog-hash", "crc32c=yZRlqg=="),
                ("x-goog-hash", "md5=XrY7u+Ae7tCTyyK7j1rNww=="),
            ]),
        );
        assert_eq!(f.stored.len(), 2);
        assert_eq!(f.stored[0].value, Algo::Crc32c.digest(b"hello world"));
        let f = azure_facts(
            11,
            Some("\"0x8DBF\""),
            &headers(&[("content-md5", "XrY7u+Ae7tCTyyK7j1rNww==")]),
        );
        assert_eq!(f.stored.len(), 1);
        let f = azure_facts(11, Some("\"0x8DBF\""), &headers(&[]));
        assert!(f.stored.is_empty());
    }
}
