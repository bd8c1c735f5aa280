//! Listing an S3 bucket key by key, exactly as the store holds them.
//!
//! `object_store` turns every listed key into its `Path`, which drops a
//! leading or trailing `/` and refuses `a//b`, `./x`, `../x` and control
//! characters: one such key fails the whole listing (an audit of millions
//! of objects ends with exit 2), and the ones it accepts it normalises, so
//! an object `prefix/f/` could stand in for the file `f`. Here the listing
//! is a plain ListObjectsV2 (`GET /?list-type=2`), signed by
//! `object_store`'s own [`Signer`] (the same client, credentials and
//! endpoint as every other request; no second SDK), and its XML read with
//! `quick-xml`. Each key arrives byte for byte; [`crate::model::paths`]
//! decides which keys name a file and why the others name none. Reading
//! objects still goes through `object_store`.
//!
//! No `encoding-type=url`: servers disagree on how it encodes a space and
//! a `+` (AWS: `+` and `%2B`; moto: `%20` and `+`), so a decoded key could
//! be another key. Without it every key is XML text, entities resolved.
//!
//! Parsing a page is pure and unit-tested here.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::aws::AmazonS3;
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
            Event::Text(t) => {
                let raw = std::str::from_utf8(t.as_ref())
                    .map_err(|_| anyhow!("the listing holds text that is not UTF-8"))?;
                let value = quick_xml::escape::unescape(raw)
                    .map_err(|e| anyhow!("the listing holds a bad XML escape: {e}"))?;
                text.push_str(&value);
            }
            Event::GeneralRef(r) => {
                // `&amp;`, `&#13;`…: resolved in place.
                let raw = format!("&{};", String::from_utf8_lossy(r.as_ref()));
                let value = quick_xml::escape::unescape(&raw)
                    .map_err(|e| anyhow!("the listing holds a bad XML escape: {e}"))?;
                text.push_str(&value);
            }
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(t.as_ref())),
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

/// Lists an S3 prefix through signed ListObjectsV2 requests.
#[derive(Clone)]
pub struct S3Lister {
    store: Arc<AmazonS3>,
    http: reqwest::Client,
    retries: usize,
    /// Raw, without a leading or trailing `/`.
    prefix: String,
}

const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);

impl S3Lister {
    pub fn new(
        store: Arc<AmazonS3>,
        prefix: &str,
        retries: usize,
        timeout: Duration,
    ) -> Result<S3Lister> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .build()?;
        Ok(S3Lister {
            store,
            http,
            retries,
            prefix: prefix.to_string(),
        })
    }

    /// One page, from `token` (or the start).
    pub async fn page(&self, token: Option<&str>) -> Result<Page> {
        let mut query = vec![("list-type".to_string(), "2".to_string())];
        if !self.prefix.is_empty() {
            query.push(("prefix".into(), format!("{}/", self.prefix)));
        }
        if let Some(t) = token {
            query.push(("continuation-token".into(), t.to_string()));
        }
        let opts = SignedUrlOptions::default().with_query(query);
        let mut wait = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            // Signed afresh for each attempt: a retry after a long backoff
            // must not carry an expired signature.
            let url = self
                .store
                .signed_url_opts(Method::GET, &Path::default(), SIGNED_FOR, &opts)
                .await
                .map_err(|e| anyhow!("cannot sign the listing request: {e}"))?;
            let failure = match self.http.get(url).send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.bytes().await {
                        Ok(body) if (200..300).contains(&status) => return parse_page(&body),
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

/// The text of `<name>` in an error body.
fn xml_field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let len = text[start..].find(&format!("</{name}>"))?;
    Some(&text[start..start + len])
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
