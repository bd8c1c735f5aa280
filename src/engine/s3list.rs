//! Listing an object store key by key, exactly as the store holds them:
//! S3 and GCS (ListObjectsV2 XML, which GCS's XML API speaks too) and
//! Azure (List Blobs XML).
//!
//! `object_store` turns every listed key into its `Path`, which drops a
//! leading or trailing `/` and refuses `a//b`, `./x`, `../x` and control
//! characters: one such key fails the whole listing (an audit of millions
//! of objects ends with exit 2), and the ones it accepts it normalises, so
//! an object `prefix/f/` could stand in for the file `f`. Here the listing
//! is a plain request sent over `reqwest` and authorised by `object_store`
//! itself (the same client configuration, credentials and endpoint as
//! every other request; no second SDK): S3 `GET /?list-type=2` signed by
//! its [`Signer`]; GCS `GET /BUCKET?list-type=2` with the store's bearer
//! token (none for an emulator or a public bucket); Azure `GET
//! /CONTAINER?restype=container&comp=list` authorised by
//! [`AzureAuthorizer`] (shared key, SAS or bearer token). Its XML is read
//! with `quick-xml`. Each key arrives byte for byte; [`crate::model::paths`]
//! decides which keys name a file and why the others name none. Reading
//! objects still goes through `object_store`.
//!
//! No `encoding-type=url`: servers disagree on how it encodes a space and
//! a `+` (AWS: `+` and `%2B`; moto: `%20` and `+`), so a decoded key could
//! be another key. Without it every key is XML text, entities resolved.
//! (Azure percent-encodes, and says so with `Encoded="true"`, only a name
//! XML cannot hold.)
//!
//! Parsing a page is pure and unit-tested here.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::aws::AmazonS3;
use object_store::azure::{AzureAuthorizer, MicrosoftAzure};
use object_store::gcp::GoogleCloudStorage;
use object_store::path::Path;
use object_store::signer::{Method, SignedUrlOptions, Signer};
use quick_xml::events::Event;

use crate::model::{Listed, paths};

/// One object of a listing page, its key exactly as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawObject {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    /// Unix seconds.
    pub last_modified: i64,
    pub storage_class: Option<String>,
}

/// One page of ListObjectsV2.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub objects: Vec<RawObject>,
    /// Where the next page starts, when the listing is truncated.
    pub next: Option<String>,
}

/// Parses a ListObjectsV2 response body.
pub fn parse_page(xml: &[u8]) -> Result<Page> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut page = Page::default();
    let mut truncated = false;
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut text = String::new();
    let mut current: Option<RawObject> = None;
    let mut buf = Vec::new();
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| anyhow!("the listing is not valid XML: {e}"))?
        {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_vec();
                if name == b"Contents" && stack.len() == 1 {
                    current = Some(RawObject {
                        key: String::new(),
                        size: 0,
                        etag: None,
                        last_modified: 0,
                        storage_class: None,
                    });
                }
                stack.push(name);
                text.clear();
            }
            ev @ (Event::Text(_) | Event::GeneralRef(_) | Event::CData(_)) => {
                push_text(&mut text, &ev)?
            }
            Event::Empty(_) => {}
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                match (stack.len(), name.as_slice()) {
                    (1, b"IsTruncated") => truncated = text.trim() == "true",
                    (1, b"NextContinuationToken") => page.next = Some(text.clone()),
                    (1, b"Contents") => {
                        if let Some(o) = current.take() {
                            page.objects.push(o);
                        }
                    }
                    (2, field) => {
                        if let Some(o) = current.as_mut() {
                            match field {
                                b"Key" => o.key = text.clone(),
                                b"Size" => {
                                    o.size = text.trim().parse().map_err(|_| {
                                        anyhow!("the listing gives size {text:?} for {:?}", o.key)
                                    })?
                                }
                                b"ETag" => o.etag = Some(text.trim().to_string()),
                                b"LastModified" => {
                                    o.last_modified =
                                        unix_seconds(text.trim()).ok_or_else(|| {
                                            anyhow!("the listing gives the date {text:?}")
                                        })?
                                }
                                b"StorageClass" => o.storage_class = Some(text.trim().to_string()),
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if truncated && page.next.is_none() {
        bail!("the listing is truncated but gives no continuation token");
    }
    if !truncated {
        page.next = None;
    }
    Ok(page)
}

/// Parses an Azure List Blobs response body. A name Azure had to
/// percent-encode (`<Name Encoded="true">`, for characters XML cannot
/// hold) is decoded back to its bytes; directories of a hierarchical
/// namespace (`ResourceType` `directory`) are no objects.
pub fn parse_azure_page(xml: &[u8]) -> Result<Page> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut page = Page::default();
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut text = String::new();
    let mut current: Option<RawObject> = None;
    let mut encoded = false;
    let mut directory = false;
    let mut buf = Vec::new();
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| anyhow!("the listing is not valid XML: {e}"))?
        {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_vec();
                match (stack.len(), name.as_slice()) {
                    (2, b"Blob") => {
                        current = Some(RawObject {
                            key: String::new(),
                            size: 0,
                            etag: None,
                            last_modified: 0,
                            storage_class: None,
                        });
                        directory = false;
                    }
                    (3, b"Name") => {
                        encoded = e.attributes().flatten().any(|a| {
                            a.key.local_name().as_ref() == b"Encoded"
                                && a.value.as_ref().eq_ignore_ascii_case(b"true")
                        });
                    }
                    _ => {}
                }
                stack.push(name);
                text.clear();
            }
            ev @ (Event::Text(_) | Event::GeneralRef(_) | Event::CData(_)) => {
                push_text(&mut text, &ev)?
            }
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                match (stack.len(), name.as_slice()) {
                    (1, b"NextMarker") => {
                        page.next = Some(text.clone()).filter(|t| !t.is_empty());
                    }
                    (2, b"Blob") => {
                        if let Some(o) = current.take()
                            && !directory
                        {
                            page.objects.push(o);
                        }
                    }
                    (3, b"Name") => {
                        if let Some(o) = current.as_mut() {
                            o.key = if encoded {
                                let bytes = percent_decode(&text);
                                String::from_utf8(bytes).map_err(|_| {
                                    anyhow!("the listing holds a name that is not UTF-8")
                                })?
                            } else {
                                text.clone()
                            };
                        }
                    }
                    (4, field) => {
                        if let Some(o) = current.as_mut() {
                            match field {
                                b"Content-Length" => {
                                    o.size = text.trim().parse().map_err(|_| {
                                        anyhow!("the listing gives size {text:?} for {:?}", o.key)
                                    })?
                                }
                                b"Etag" => o.etag = Some(text.trim().to_string()),
                                b"Last-Modified" => {
                                    o.last_modified = httpdate::parse_http_date(text.trim())
                                        .ok()
                                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                                        .map(|d| d.as_secs() as i64)
                                        .ok_or_else(|| {
                                            anyhow!("the listing gives the date {text:?}")
                                        })?
                                }
                                b"AccessTier" => o.storage_class = Some(text.trim().to_string()),
                                b"ResourceType" => directory = text.trim() == "directory",
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(page)
}

/// `%XX` escapes decoded to their bytes; anything else kept.
fn percent_decode(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// `2024-05-01T12:00:00.000Z` (UTC, as S3 writes it) as Unix seconds;
/// dates before 1970 too.
fn unix_seconds(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = &text[19..];
    let rest = rest
        .strip_prefix('.')
        .map_or(rest, |r| r.trim_start_matches(|c: char| c.is_ascii_digit()));
    if !matches!(rest, "Z" | "z" | "" | "+00:00")
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// The listed key relative to `prefix` (raw, without its trailing `/`;
/// empty for a whole bucket), in the index's key form: see
/// [`paths::from_object_key`].
pub fn relative_key(prefix: &str, key: &str) -> Option<Vec<u8>> {
    paths::from_object_key(prefix.as_bytes(), key.as_bytes())
}

/// The store a [`S3Lister`] lists, and how it authorises a request.
#[derive(Clone)]
pub enum Via {
    S3(Arc<AmazonS3>),
    Gcs {
        store: Arc<GoogleCloudStorage>,
        /// `https://storage.googleapis.com` or an emulator's URL.
        base_url: String,
        bucket: String,
        /// Send no credentials (an emulator, a public bucket).
        anonymous: bool,
    },
    Azure {
        store: Arc<MicrosoftAzure>,
        /// `https://ACCOUNT.blob.core.windows.net/CONTAINER` (an emulator:
        /// `http://HOST:PORT/ACCOUNT/CONTAINER`).
        container_url: String,
        account: String,
    },
}

/// Lists a prefix of an object store through raw listing requests.
#[derive(Clone)]
pub struct S3Lister {
    via: Via,
    http: reqwest::Client,
    retries: usize,
    /// Raw, without a leading or trailing `/`.
    prefix: String,
    /// The S3 region requests are signed for.
    region: String,
}

const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);

impl S3Lister {
    pub fn new(via: Via, prefix: &str, retries: usize, timeout: Duration) -> Result<S3Lister> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .build()?;
        Ok(S3Lister {
            via,
            http,
            retries,
            prefix: prefix.to_string(),
            region: "us-east-1".into(),
        })
    }

    /// The region S3 requests of [`S3Lister::read_raw`] are signed for.
    pub fn with_region(mut self, region: String) -> S3Lister {
        self.region = region;
        self
    }

    /// The request for one page, from `token` (or the start), authorised
    /// afresh: a retry after a long backoff must not carry an expired
    /// signature or token.
    async fn request(&self, token: Option<&str>) -> Result<reqwest::RequestBuilder> {
        let prefix = (!self.prefix.is_empty()).then(|| format!("{}/", self.prefix));
        match &self.via {
            Via::S3(store) => {
                let mut query = vec![("list-type".to_string(), "2".to_string())];
                if let Some(p) = prefix {
                    query.push(("prefix".into(), p));
                }
                if let Some(t) = token {
                    query.push(("continuation-token".into(), t.to_string()));
                }
                let opts = SignedUrlOptions::default().with_query(query);
                let url = store
                    .signed_url_opts(Method::GET, &Path::default(), SIGNED_FOR, &opts)
                    .await
                    .map_err(|e| anyhow!("cannot sign the listing request: {e}"))?;
                Ok(self.http.get(url))
            }
            Via::Gcs {
                store,
                base_url,
                bucket,
                anonymous,
            } => {
                let mut url = url::Url::parse(&format!("{}/", base_url.trim_end_matches('/')))?;
                url.path_segments_mut()
                    .map_err(|_| anyhow!("bad base URL {base_url}"))?
                    .pop_if_empty()
                    .push(bucket);
                {
                    let mut q = url.query_pairs_mut();
                    q.append_pair("list-type", "2");
                    if let Some(p) = &prefix {
                        q.append_pair("prefix", p);
                    }
                    if let Some(t) = token {
                        q.append_pair("continuation-token", t);
                    }
                }
                let mut req = self.http.get(url);
                if !anonymous {
                    let cred = store
                        .credentials()
                        .get_credential()
                        .await
                        // As object_store's own error, which the caller explains.
                        .map_err(anyhow::Error::from)?;
                    req = req.bearer_auth(&cred.bearer);
                }
                Ok(req)
            }
            Via::Azure {
                store,
                container_url,
                account,
            } => {
                let mut url = url::Url::parse(container_url)?;
                {
                    let mut q = url.query_pairs_mut();
                    q.append_pair("restype", "container")
                        .append_pair("comp", "list");
                    if let Some(p) = &prefix {
                        q.append_pair("prefix", p);
                    }
                    if let Some(t) = token {
                        q.append_pair("marker", t);
                    }
                }
                let cred = store
                    .credentials()
                    .get_credential()
                    .await
                    // As object_store's own error, which the caller explains.
                    .map_err(anyhow::Error::from)?;
                let mut req = object_store::client::HttpRequest::new(
                    object_store::client::HttpRequestBody::empty(),
                );
                *req.uri_mut() = url
                    .as_str()
                    .parse()
                    .map_err(|e| anyhow!("bad listing URL: {e}"))?;
                AzureAuthorizer::new(&cred, account)
                    .try_authorize(&mut req)
                    .map_err(|e| anyhow!("cannot sign the listing request: {e}"))?;
                Ok(self
                    .http
                    .get(req.uri().to_string())
                    .headers(req.headers().clone()))
            }
        }
    }

    /// One page, from `token` (or the start).
    pub async fn page(&self, token: Option<&str>) -> Result<Page> {
        let mut wait = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            let request = self.request(token).await?;
            let failure = match request.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.bytes().await {
                        Ok(body) if (200..300).contains(&status) => {
                            return match self.via {
                                Via::Azure { .. } => parse_azure_page(&body),
                                _ => parse_page(&body),
                            };
                        }
                        Ok(body)
                            if (400..500).contains(&status) && status != 408 && status != 429 =>
                        {
                            let text = String::from_utf8_lossy(&body);
                            let code = xml_field(&text, "Code").unwrap_or("");
                            let message = xml_field(&text, "Message").unwrap_or("");
                            bail!("HTTP {status} {code}: {message}");
                        }
                        Ok(_) => format!("HTTP {status}"),
                        Err(e) => e.to_string(),
                    }
                }
                Err(e) if e.is_timeout() => format!("timeout: {e}"),
                Err(e) if e.is_connect() => format!("connect: {e}"),
                Err(e) => e.to_string(),
            };
            attempt += 1;
            if attempt > self.retries {
                bail!("{failure}");
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    }

    /// True for an S3 remote.
    pub fn is_s3(&self) -> bool {
        matches!(self.via, Via::S3(_))
    }

    /// The raw prefix (no leading or trailing `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Reads one S3 object by its exact key, one `object_store`'s `Path`
    /// refuses (a control character: `a\x01b`, a newline), through a GET
    /// signed by `object_store`'s [`AwsAuthorizer`](object_store::aws::AwsAuthorizer) for the key's own
    /// percent-encoded bytes, pinned to `etag` (`If-Match`) when known.
    /// Streams the body through BLAKE3: the hash and the bytes read.
    pub async fn read_raw(
        &self,
        key: &str,
        etag: Option<&str>,
    ) -> Result<([u8; 32], u64), crate::model::ReadError> {
        use crate::model::ReadError;
        let Via::S3(store) = &self.via else {
            return Err(ReadError::Other("not an S3 remote".into()));
        };
        let other = |e: String| ReadError::Other(e);
        // The bucket's URL as the store addresses it (path or virtual-host
        // style), from a URL it signs for the bucket itself.
        let mut url = store
            .signed_url(Method::GET, &Path::default(), SIGNED_FOR)
            .await
            .map_err(|e| other(format!("cannot sign the request: {e}")))?;
        url.set_query(None);
        let path = format!("{}/{}", url.path().trim_end_matches('/'), uri_encode(key));
        url.set_path(&path);
        let mut wait = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            let cred = store
                .credentials()
                .get_credential()
                .await
                .map_err(|e| other(format!("no credentials: {e}")))?;
            let mut req = object_store::client::HttpRequest::new(
                object_store::client::HttpRequestBody::empty(),
            );
            *req.uri_mut() = url
                .as_str()
                .parse()
                .map_err(|e| other(format!("bad URL: {e}")))?;
            if let Some(t) = etag {
                req.headers_mut().insert(
                    "if-match",
                    t.parse().map_err(|_| other(format!("bad ETag {t:?}")))?,
                );
            }
            object_store::aws::AwsAuthorizer::new(&cred, "s3", &self.region)
                .try_authorize(&mut req, None)
                .map_err(|e| other(format!("cannot sign the request: {e}")))?;
            let sent = self
                .http
                .get(url.clone())
                .headers(req.headers().clone())
                .send()
                .await;
            let retry = match sent {
                Ok(resp) => match resp.status().as_u16() {
                    200..=299 => {
                        let mut hasher = blake3::Hasher::new();
                        let mut total = 0u64;
                        let mut resp = resp;
                        let mut failed = None;
                        loop {
                            match resp.chunk().await {
                                Ok(Some(c)) => {
                                    hasher.update(&c);
                                    total += c.len() as u64;
                                }
                                Ok(None) => break,
                                Err(e) => {
                                    failed = Some(e.to_string());
                                    break;
                                }
                            }
                        }
                        match failed {
                            None => return Ok((*hasher.finalize().as_bytes(), total)),
                            Some(e) => e,
                        }
                    }
                    404 => return Err(ReadError::NotFound),
                    412 => return Err(ReadError::Changed),
                    s @ (401 | 403) => {
                        return Err(ReadError::Refused(format!("access denied (HTTP {s})")));
                    }
                    s @ 400..=499 if s != 408 && s != 429 => {
                        return Err(other(format!("HTTP {s}")));
                    }
                    s => format!("HTTP {s}"),
                },
                Err(e) => e.to_string(),
            };
            attempt += 1;
            if attempt > self.retries {
                return Err(other(retry));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    }

    /// Every object under the prefix, each key exactly as stored.
    pub fn list(&self, id: String) -> BoxStream<'static, Result<Listed>> {
        struct State {
            lister: S3Lister,
            id: String,
            token: Option<String>,
            done: bool,
        }
        let state = State {
            lister: self.clone(),
            id,
            token: None,
            done: false,
        };
        futures::stream::unfold(state, |mut s| async move {
            if s.done {
                return None;
            }
            let page = match s.lister.page(s.token.as_deref()).await {
                Ok(p) => p,
                Err(e) => {
                    s.done = true;
                    let err = anyhow!("listing {} failed: {e}", s.id);
                    return Some((futures::stream::iter(vec![Err(err)]), s));
                }
            };
            s.token = page.next;
            s.done = s.token.is_none();
            let prefix = s.lister.prefix.clone();
            let items: Vec<Result<Listed>> = page
                .objects
                .into_iter()
                .filter_map(|o| {
                    Some(Ok(Listed {
                        key: relative_key(&prefix, &o.key)?,
                        size: o.size,
                        etag: o.etag,
                        version: None,
                        last_modified: o.last_modified,
                        storage_class: o.storage_class,
                    }))
                })
                .collect();
            Some((futures::stream::iter(items), s))
        })
        .flatten()
        .boxed()
    }
}

/// A key as SigV4 wants it in the path: every byte but the unreserved
/// ones (`A-Z a-z 0-9 - . _ ~`) and `/` written `%XX`.
fn uri_encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of `<name>` in an error body.
fn xml_field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let len = text[start..].find(&format!("</{name}>"))?;
    Some(&text[start..start + len])
}

/// Adds a text event of a listing page to `text`, unescaped: plain text,
/// an entity reference (`&amp;`, `&#13;`…, resolved in place) or CDATA.
fn push_text(text: &mut String, event: &Event<'_>) -> anyhow::Result<()> {
    let bad_escape = |e| anyhow!("the listing holds a bad XML escape: {e}");
    match event {
        Event::Text(t) => {
            let raw = std::str::from_utf8(t.as_ref())
                .map_err(|_| anyhow!("the listing holds text that is not UTF-8"))?;
            text.push_str(&quick_xml::escape::unescape(raw).map_err(bad_escape)?);
        }
        Event::GeneralRef(r) => {
            let raw = format!("&{};", String::from_utf8_lossy(r.as_ref()));
            text.push_str(&quick_xml::escape::unescape(&raw).map_err(bad_escape)?);
        }
        Event::CData(t) => text.push_str(&String::from_utf8_lossy(t.as_ref())),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix>p/</Prefix><KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>p//a b&amp;c</Key><LastModified>2024-05-01T12:00:00.000Z</LastModified>
    <ETag>&quot;0123&quot;</ETag><Size>5</Size><StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>p/x/</Key><LastModified>2024-05-01T12:00:01Z</LastModified>
    <ETag>"d41d"</ETag><Size>0</Size></Contents>
  <Contents><Key>p/ctl&#27;[31m+été%41</Key><LastModified>1969-12-31T23:59:59Z</LastModified>
    <Size>1</Size></Contents>
  <NextContinuationToken>tok/+=</NextContinuationToken>
</ListBucketResult>"#;

    #[test]
    fn a_page_keeps_every_key_byte_for_byte() {
        let page = parse_page(PAGE.as_bytes()).unwrap();
        let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["p//a b&c", "p/x/", "p/ctl\x1b[31m+été%41"]);
        assert_eq!(page.objects[0].etag.as_deref(), Some("\"0123\""));
        assert_eq!(page.objects[0].size, 5);
        assert_eq!(page.objects[0].last_modified, 1_714_564_800);
        assert_eq!(page.objects[0].storage_class.as_deref(), Some("STANDARD"));
        assert_eq!(page.objects[1].last_modified, 1_714_564_801);
        assert_eq!(page.objects[2].last_modified, -1);
        assert_eq!(page.next.as_deref(), Some("tok/+="));
    }

    #[test]
    fn the_last_page_has_no_next_and_a_bad_page_is_an_error() {
        let last = PAGE.replace(
            "<IsTruncated>true</IsTruncated>",
            "<IsTruncated>false</IsTruncated>",
        );
        assert_eq!(parse_page(last.as_bytes()).unwrap().next, None);
        let no_token = PAGE.replace("<NextContinuationToken>tok/+=</NextContinuationToken>", "");
        assert!(parse_page(no_token.as_bytes()).is_err());
        let bad_size = PAGE.replace("<Size>5</Size>", "<Size>five</Size>");
        assert!(parse_page(bad_size.as_bytes()).is_err());
    }

    #[test]
    fn an_azure_page_keeps_every_name_byte_for_byte() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://127.0.0.1:10000/devstoreaccount1" ContainerName="c">
  <Prefix>p/</Prefix><MaxResults>5000</MaxResults>
  <Blobs>
    <Blob><Name>p//a b&amp;c</Name><Properties><Creation-Time>Tue, 01 Dec 2026 06:00:00 GMT</Creation-Time>
      <Last-Modified>Wed, 01 May 2024 12:00:00 GMT</Last-Modified><Etag>0x8DC6A</Etag>
      <Content-Length>5</Content-Length><BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier></Properties><Metadata /></Blob>
    <Blob><Name Encoded="true">p/ctl%01x%0A</Name><Properties><Last-Modified>Wed, 01 May 2024 12:00:01 GMT</Last-Modified>
      <Etag>"0x1"</Etag><Content-Length>1</Content-Length></Properties></Blob>
    <Blob><Name>p/dir</Name><Properties><Last-Modified>Wed, 01 May 2024 12:00:01 GMT</Last-Modified>
      <Content-Length>0</Content-Length><ResourceType>directory</ResourceType></Properties></Blob>
  </Blobs>
  <NextMarker>2!72!MDAwMDA</NextMarker>
</EnumerationResults>"#;
        let page = parse_azure_page(xml.as_bytes()).unwrap();
        let keys: Vec<&str> = page.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["p//a b&c", "p/ctl\x01x\n"]);
        assert_eq!(page.objects[0].etag.as_deref(), Some("0x8DC6A"));
        assert_eq!(page.objects[0].size, 5);
        assert_eq!(page.objects[0].last_modified, 1_714_564_800);
        assert_eq!(page.objects[0].storage_class.as_deref(), Some("Hot"));
        assert_eq!(page.next.as_deref(), Some("2!72!MDAwMDA"));
        let last = xml.replace("<NextMarker>2!72!MDAwMDA</NextMarker>", "<NextMarker />");
        assert_eq!(parse_azure_page(last.as_bytes()).unwrap().next, None);
    }

    #[test]
    fn keys_outside_the_prefix_are_dropped_and_the_rest_kept_exactly() {
        assert_eq!(relative_key("p", "p/a"), Some(b"a".to_vec()));
        assert_eq!(relative_key("p", "pa/b"), None);
        assert_eq!(relative_key("p", "p"), None);
        assert_eq!(relative_key("p", "p/"), Some(Vec::new()));
        assert_eq!(
            relative_key("p", "p//a"),
            Some(paths::key_from_object_key(b"/a"))
        );
        assert_eq!(
            relative_key("", "/a"),
            Some(paths::key_from_object_key(b"/a"))
        );
        assert_eq!(
            relative_key("my photos/été", "my photos/été/x"),
            Some(b"x".to_vec())
        );
    }
}
