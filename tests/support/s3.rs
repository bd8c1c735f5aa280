//! An in-process S3 server for tests: `s3s-fs` serving a folder over HTTP on
//! 127.0.0.1, with SigV4 auth (fixed keys). A bucket is a subfolder of
//! `root`; an object is a plain file under it (key = relative path with `/`).
//!
//! Also compiled into `examples/s3_server.rs` (via `#[path]`), so keep it
//! free of test-only helpers from other modules.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

pub const ACCESS_KEY: &str = "vouchtest";
pub const SECRET_KEY: &str = "vouchtestsecret";
pub const REGION: &str = "us-east-1";

pub struct S3Server {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// The served folder; bucket `b` is `root/b`.
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
        Self::start_with(
            root,
            "127.0.0.1:0".parse().unwrap(),
            ACCESS_KEY,
            SECRET_KEY,
            2,
        )
        .unwrap_or_else(|e| panic!("cannot start s3s-fs server on {}: {e}", root.display()))
    }

    /// Serve `root` on `addr` (port 0 = pick one; a previously used port may be
    /// reused to "restart" a server). `workers` = tokio worker threads
    /// (0 = number of CPUs). Returns once the socket is listening.
    pub fn start_with(
        root: &Path,
        addr: SocketAddr,
        access_key: &str,
        secret_key: &str,
        workers: usize,
    ) -> std::io::Result<S3Server> {
        let root = root.canonicalize()?;
        let fs =
            s3s_fs::FileSystem::new(&root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let service = {
            let mut b = S3ServiceBuilder::new(fs);
            b.set_auth(SimpleAuth::from_single(access_key, secret_key));
            b.build()
        };

        // Bind synchronously so the port is known (and errors surface) here.
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;

        let mut rt = tokio::runtime::Builder::new_multi_thread();
        rt.enable_all().thread_name("s3s-fs");
        if workers > 0 {
            rt.worker_threads(workers);
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
                    // `listener` dropped here: new connections are refused.
                });
                // Dropping the runtime cancels every connection task, closing
                // kept-alive sockets too.
                rt.shutdown_timeout(std::time::Duration::from_secs(2));
            })?;

        Ok(S3Server {
            endpoint: format!("http://{addr}"),
            root,
            addr,
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// Stop listening and close all connections; returns when done.
    /// Idempotent.
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Block the calling thread until the server thread ends (for the example).
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
