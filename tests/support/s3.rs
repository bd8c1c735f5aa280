//! An in-process S3 server for tests: `s3s-fs` serving a folder over HTTP on
//! 127.0.0.1, with SigV4 auth (fixed keys). A bucket is a subfolder of
//! `root`; an object is a plain file under it (key = relative path with `/`).
//!
//! Listing: s3s-fs re-walks the whole bucket (one tokio-fs hop per file) for
//! every 1000-key page, so listing N objects costs O(N²) (5,000 objects ≈
//! 2.5 s, 100k would take many minutes). By default ListObjects(V2) is
//! therefore answered by `FastList` below: the same results (keys, sizes,
//! mtimes, no ETag, the last key as continuation token, non-UTF-8 names
//! skipped) from one ordered, pruned, synchronous walk per page. GET bodies
//! are re-streamed in 1 MiB chunks (s3s-fs uses 4 KiB: ~100 MiB/s).
//! Everything else is s3s-fs. `ServerOptions::fast_list = false` gives plain
//! s3s-fs listing.
//!
//! Also compiled into `examples/s3_server.rs` (via `#[path]`), so keep it
//! free of references to other test modules.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::thread::JoinHandle;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

pub const ACCESS_KEY: &str = "vouchtest";
pub const SECRET_KEY: &str = "vouchtestsecret";
pub const REGION: &str = "us-east-1";

#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Port 0 = pick a free one. A port used by a stopped server may be
    /// reused to "restart" it.
    pub addr: SocketAddr,
    pub access_key: String,
    pub secret_key: String,
    /// Tokio worker threads; 0 = one per CPU.
    pub workers: usize,
    /// Answer ListObjects(V2) with `FastList` instead of s3s-fs's O(N²) walk.
    pub fast_list: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            access_key: ACCESS_KEY.to_owned(),
            secret_key: SECRET_KEY.to_owned(),
            workers: 2,
            fast_list: true,
        }
    }
}

pub struct S3Server {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// The served folder (canonicalized); bucket `b` is `root/b`.
    pub root: PathBuf,
    pub addr: SocketAddr,
    pub access_key: String,
    pub secret_key: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl S3Server {
    /// Serve `root` (must exist) on 127.0.0.1:<free port> with
    /// `ACCESS_KEY`/`SECRET_KEY`. Panics on failure.
    pub fn start(root: &Path) -> S3Server {
        Self::start_with(root, &ServerOptions::default())
            .unwrap_or_else(|e| panic!("cannot start s3s-fs server on {}: {e}", root.display()))
    }

    /// Returns once the socket is listening.
    pub fn start_with(root: &Path, opts: &ServerOptions) -> std::io::Result<S3Server> {
        let root = root.canonicalize()?;
        let fs =
            s3s_fs::FileSystem::new(&root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let service = {
            let mut b = if opts.fast_list {
                S3ServiceBuilder::new(FastList {
                    fs,
                    root: root.clone(),
                })
            } else {
                S3ServiceBuilder::new(fs)
            };
            b.set_auth(SimpleAuth::from_single(
                opts.access_key.clone(),
                opts.secret_key.clone(),
            ));
            b.build()
        };

        // Bind synchronously so the port is known (and errors surface) here.
        let std_listener = std::net::TcpListener::bind(opts.addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;

        let mut rt = tokio::runtime::Builder::new_multi_thread();
        rt.enable_all().thread_name("s3s-fs");
        if opts.workers > 0 {
            rt.worker_threads(opts.workers);
        }
        let rt = rt.build()?;
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();

        let thread = std::thread::Builder::new()
            .name(format!("s3s-fs {addr}"))
            .spawn(move || {
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(std_listener).expect("tokio listener");
                    let http = ConnBuilder::new(TokioExecutor::new());
                    loop {
                        let socket = tokio::select! {
                            res = listener.accept() => match res {
                                Ok((socket, _)) => socket,
                                Err(_) => continue,
                            },
                            _ = &mut rx => break,
                        };
                        // Without this, each response on a kept-alive connection
                        // waits for the client's delayed ACK (~40 ms).
                        let _ = socket.set_nodelay(true);
                        let conn = http
                            .serve_connection(TokioIo::new(socket), service.clone())
                            .into_owned();
                        tokio::spawn(async move {
                            let _ = conn.await;
                        });
                    }
                    // `listener` is dropped here: new connections are refused.
                });
                // Shutting the runtime down cancels every connection task, which
                // closes kept-alive sockets too.
                rt.shutdown_timeout(std::time::Duration::from_secs(2));
            })?;

        Ok(S3Server {
            endpoint: format!("http://{addr}"),
            root,
            addr,
            access_key: opts.access_key.clone(),
            secret_key: opts.secret_key.clone(),
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// Stop listening and close all connections; returns when done.
    /// Afterwards connections to `addr` are refused. Idempotent.
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Block the calling thread until the server ends (for the example).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Create (if needed) and return the folder backing `bucket`.
    pub fn create_bucket(&self, bucket: &str) -> PathBuf {
        let dir = self.root.join(bucket);
        std::fs::create_dir_all(&dir).expect("create bucket dir");
        dir
    }

    /// The environment an `object_store`/AWS client needs to reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        aws_env(&self.endpoint, &self.access_key, &self.secret_key)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// AWS_* variables for a local HTTP endpoint.
pub fn aws_env(endpoint: &str, access_key: &str, secret_key: &str) -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", access_key),
        ("AWS_SECRET_ACCESS_KEY", secret_key),
        ("AWS_REGION", REGION),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ALLOW_HTTP", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

// ---------------------------------------------------------------------------
// FastList: s3s-fs with a faster ListObjects(V2).

struct FastList {
    fs: s3s_fs::FileSystem,
    root: PathBuf,
}

impl std::fmt::Debug for FastList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastList")
            .field("root", &self.root)
            .finish()
    }
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = S3Result<S3Response<T>>> + Send + 'a>>;

// `S3` is an `#[async_trait]`; these are its desugared signatures (the crate
// `async-trait` is not a dependency of ours).
macro_rules! delegate {
    ($($m:ident($in:ident) -> $out:ident;)*) => {$(
        fn $m<'life0, 'async_trait>(&'life0 self, req: S3Request<$in>) -> BoxFut<'async_trait, $out>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            S3::$m(&self.fs, req)
        }
    )*};
}

impl S3 for FastList {
    delegate! {
        create_bucket(CreateBucketInput) -> CreateBucketOutput;
        copy_object(CopyObjectInput) -> CopyObjectOutput;
        delete_bucket(DeleteBucketInput) -> DeleteBucketOutput;
        delete_object(DeleteObjectInput) -> DeleteObjectOutput;
        delete_objects(DeleteObjectsInput) -> DeleteObjectsOutput;
        get_bucket_location(GetBucketLocationInput) -> GetBucketLocationOutput;
        head_bucket(HeadBucketInput) -> HeadBucketOutput;
        head_object(HeadObjectInput) -> HeadObjectOutput;
        list_buckets(ListBucketsInput) -> ListBucketsOutput;
        put_object(PutObjectInput) -> PutObjectOutput;
        create_multipart_upload(CreateMultipartUploadInput) -> CreateMultipartUploadOutput;
        upload_part(UploadPartInput) -> UploadPartOutput;
        upload_part_copy(UploadPartCopyInput) -> UploadPartCopyOutput;
        list_parts(ListPartsInput) -> ListPartsOutput;
        complete_multipart_upload(CompleteMultipartUploadInput) -> CompleteMultipartUploadOutput;
        abort_multipart_upload(AbortMultipartUploadInput) -> AbortMultipartUploadOutput;
    }

    /// s3s-fs streams GET bodies in 4 KiB chunks (~100 MiB/s); serve the
    /// same bytes in 1 MiB chunks instead. Headers (ETag etc.) are s3s-fs's.
    fn get_object<'life0, 'async_trait>(
        &'life0 self,
        req: S3Request<GetObjectInput>,
    ) -> BoxFut<'async_trait, GetObjectOutput>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let range = req.input.range;
            let path = self.root.join(&req.input.bucket).join(&req.input.key);
            let mut resp = S3::get_object(&self.fs, req).await?;
            // s3s-fs resolved and opened this very path, so it is inside root.
            let body = async {
                let file = std::fs::File::open(&path)?;
                let len = file.metadata()?.len();
                let span = match range {
                    Some(r) => r.check(len).map_err(|_| std::io::Error::other("range"))?,
                    None => 0..len,
                };
                std::io::Result::Ok((file, span))
            };
            if let Ok((file, span)) = body.await {
                resp.output.body = Some(StreamingBlob::wrap(chunked(file, span)));
            }
            Ok(resp)
        })
    }

    fn list_objects<'life0, 'async_trait>(
        &'life0 self,
        req: S3Request<ListObjectsInput>,
    ) -> BoxFut<'async_trait, ListObjectsOutput>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let v2 = S3::list_objects_v2(self, req.map_input(Into::into)).await?;
            Ok(v2.map_output(|v2| ListObjectsOutput {
                contents: v2.contents,
                common_prefixes: v2.common_prefixes,
                delimiter: v2.delimiter,
                encoding_type: v2.encoding_type,
                name: v2.name,
                prefix: v2.prefix,
                max_keys: v2.max_keys,
                is_truncated: v2.is_truncated,
                next_marker: v2.next_continuation_token,
                ..Default::default()
            }))
        })
    }

    fn list_objects_v2<'life0, 'async_trait>(
        &'life0 self,
        req: S3Request<ListObjectsV2Input>,
    ) -> BoxFut<'async_trait, ListObjectsV2Output>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let input = req.input;
            if input.bucket.is_empty()
                || input.bucket.contains(['/', '\\'])
                || input.bucket.starts_with('.')
            {
                return Err(s3_error!(InvalidBucketName));
            }
            let bucket_root = self.root.join(&input.bucket);
            let max_keys = input.max_keys.unwrap_or(1000);
            let marker = match (
                input.continuation_token.as_deref(),
                input.start_after.as_deref(),
            ) {
                (Some(ct), Some(sa)) => Some(if ct >= sa { ct } else { sa }),
                (ct, sa) => ct.or(sa),
            }
            .map(str::to_owned);
            let mut page = Page {
                prefix: input
                    .prefix
                    .as_deref()
                    .unwrap_or("")
                    .trim_start_matches('/')
                    .to_owned(),
                delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
                marker,
                max: usize::try_from(max_keys).unwrap_or(0),
                objects: Vec::new(),
                prefixes: Vec::new(),
                count: 0,
                last: None,
                last_cp: None,
                truncated: false,
            };
            let page = tokio::task::spawn_blocking(move || -> std::io::Result<Option<Page>> {
                if !bucket_root.is_dir() {
                    return Ok(None);
                }
                if page.max > 0 {
                    walk(&bucket_root, "", &mut page)?;
                }
                Ok(Some(page))
            })
            .await
            .map_err(|e| s3_error!(InternalError, "{e}"))?
            .map_err(|e| s3_error!(InternalError, "{e}"))?
            .ok_or_else(|| s3_error!(NoSuchBucket))?;

            let output = ListObjectsV2Output {
                key_count: Some(i32::try_from(page.count).unwrap_or(i32::MAX)),
                max_keys: Some(max_keys),
                is_truncated: Some(page.truncated),
                contents: (!page.objects.is_empty()).then_some(page.objects),
                common_prefixes: (!page.prefixes.is_empty()).then_some(page.prefixes),
                continuation_token: input.continuation_token,
                next_continuation_token: if page.truncated { page.last } else { None },
                delimiter: input.delimiter,
                encoding_type: input.encoding_type,
                name: Some(input.bucket),
                prefix: input.prefix,
                start_after: input.start_after,
                ..Default::default()
            };
            Ok(S3Response::new(output))
        })
    }
}

/// Read `span` of `file` as a stream of ~1 MiB chunks (blocking reads on
/// tokio's blocking pool).
fn chunked<B: From<Vec<u8>> + Send + Sync + 'static>(
    file: std::fs::File,
    span: std::ops::Range<u64>,
) -> impl futures::Stream<Item = std::io::Result<B>> + Send + Sync + 'static {
    const CHUNK: u64 = 1 << 20;
    futures::stream::try_unfold(
        (file, span.start, span.end),
        |(file, pos, end)| async move {
            if pos >= end {
                return Ok(None);
            }
            let n = (end - pos).min(CHUNK) as usize;
            let (file, buf) = tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; n];
                let mut got = 0;
                while got < n {
                    match file.read_at(&mut buf[got..], pos + got as u64) {
                        Ok(0) => return (file, Err(std::io::ErrorKind::UnexpectedEof.into())),
                        Ok(k) => got += k,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return (file, Err(e)),
                    }
                }
                (file, Ok(buf))
            })
            .await
            .map_err(std::io::Error::other)?;
            let buf = buf?;
            Ok(Some((B::from(buf), (file, pos + n as u64, end))))
        },
    )
}

struct Page {
    prefix: String,
    delimiter: Option<String>,
    /// Only entries (keys or common prefixes) strictly greater than this.
    marker: Option<String>,
    max: usize,
    objects: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
    count: usize,
    /// The last entry returned (the next continuation token, as in s3s-fs).
    last: Option<String>,
    /// The last common prefix seen (returned or before the marker).
    last_cp: Option<String>,
    truncated: bool,
}

enum Flow {
    Go,
    Stop,
}

impl Page {
    /// The common prefix `key` rolls up to, if any.
    fn common_prefix(&self, key: &str) -> Option<String> {
        let d = self.delimiter.as_deref()?;
        let rest = key.strip_prefix(self.prefix.as_str())?;
        let i = rest.find(d)?;
        Some(format!("{}{}", self.prefix, &rest[..i + d.len()]))
    }

    fn after_marker(&self, entry: &str) -> bool {
        self.marker.as_deref().is_none_or(|m| entry > m)
    }

    /// Returns Stop once a (max+1)-th entry shows the page is truncated.
    fn push_cp(&mut self, cp: String) -> Flow {
        if self.last_cp.as_deref() == Some(cp.as_str()) {
            return Flow::Go;
        }
        self.last_cp = Some(cp.clone());
        if !self.after_marker(&cp) {
            return Flow::Go;
        }
        if self.count == self.max {
            self.truncated = true;
            return Flow::Stop;
        }
        self.count += 1;
        self.last = Some(cp.clone());
        self.prefixes.push(CommonPrefix { prefix: Some(cp) });
        Flow::Go
    }

    fn push_object(&mut self, key: String, meta: &std::fs::Metadata) -> std::io::Result<Flow> {
        if !self.after_marker(&key) {
            return Ok(Flow::Go);
        }
        if self.count == self.max {
            self.truncated = true;
            return Ok(Flow::Stop);
        }
        self.count += 1;
        self.last = Some(key.clone());
        self.objects.push(Object {
            key: Some(key),
            last_modified: Some(Timestamp::from(meta.modified()?)),
            size: Some(i64::try_from(meta.len()).unwrap_or(i64::MAX)),
            ..Default::default()
        });
        Ok(Flow::Go)
    }
}

/// Does `dir` hold at least one file (at any depth, UTF-8 names only)?
fn has_file(dir: &Path) -> std::io::Result<bool> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_name().to_str().is_none() {
            continue;
        }
        if e.file_type()?.is_dir() {
            if has_file(&e.path())? {
                return Ok(true);
            }
        } else {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Visit `dir` (whose keys start with `rel`, "" or ending in '/') in key
/// order: entries sorted by name, with '/' appended to directory names, give
/// exactly the byte order of the full keys.
fn walk(dir: &Path, rel: &str, page: &mut Page) -> std::io::Result<Flow> {
    let mut entries = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let is_dir = e.file_type()?.is_dir();
        let sort_key = if is_dir { format!("{name}/") } else { name };
        entries.push((sort_key, is_dir, e));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (sort_key, is_dir, e) in entries {
        let path = format!("{rel}{sort_key}");
        if is_dir {
            // `path` ends in '/'; every key below starts with it.
            if !(path.starts_with(page.prefix.as_str()) || page.prefix.starts_with(path.as_str())) {
                continue;
            }
            if let Some(m) = page.marker.as_deref()
                && path.as_str() < m
                && !m.starts_with(path.as_str())
            {
                continue; // every key below sorts before the marker
            }
            if path.starts_with(page.prefix.as_str())
                && let Some(cp) = page.common_prefix(&path)
            {
                // The whole subtree rolls up into `cp`.
                if page.last_cp.as_deref() != Some(cp.as_str())
                    && has_file(&e.path())?
                    && let Flow::Stop = page.push_cp(cp)
                {
                    return Ok(Flow::Stop);
                }
                continue;
            }
            if let Flow::Stop = walk(&e.path(), &path, page)? {
                return Ok(Flow::Stop);
            }
        } else {
            if !path.starts_with(page.prefix.as_str()) {
                continue;
            }
            let flow = match page.common_prefix(&path) {
                Some(cp) => page.push_cp(cp),
                None => page.push_object(path, &e.metadata()?)?,
            };
            if let Flow::Stop = flow {
                return Ok(Flow::Stop);
            }
        }
    }
    Ok(Flow::Go)
}
