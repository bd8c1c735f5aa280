//! A fault-injecting HTTP/1.1 proxy for tests: listens on 127.0.0.1:<free
//! port>, forwards every request byte for byte to an upstream server (the
//! s3s-fs `S3Server`), and applies a programmable fault plan to matching
//! requests: an error status instead of the answer, a delay, a connection
//! reset or a stall part-way through the body, a body shorter than its
//! Content-Length, a rewritten body, or a hook run before forwarding.
//!
//! Requests are forwarded unchanged (Host included), so SigV4 signatures
//! made for the proxy's address verify upstream. Every request is logged
//! with its method and its S3 operation (`GET`, `HEAD`, `LIST`, `PUT`, ...)
//! so a test can assert that a run only read.
//!
//! The parser handles what S3 clients send: a request head, an optional
//! Content-Length body; responses framed by Content-Length, chunked
//! encoding, or connection close, and bodiless HEAD/1xx/204/304 answers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The S3 operation a request performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Get,
    Head,
    List,
    Put,
    Post,
    Delete,
    Other,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "GET",
            Op::Head => "HEAD",
            Op::List => "LIST",
            Op::Put => "PUT",
            Op::Post => "POST",
            Op::Delete => "DELETE",
            Op::Other => "OTHER",
        }
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    /// The request target as sent (path and query, percent-encoded).
    pub target: String,
    pub op: Op,
    /// The name of the fault applied, if any.
    pub fault: Option<&'static str>,
    /// Body bytes delivered to the client.
    pub body_sent: u64,
    /// True when the client received the whole response as framed.
    pub complete: bool,
}

/// Rewrites a response body.
pub type Rewriter = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// What to do to a matching request.
#[derive(Clone)]
pub enum Fault {
    /// Answer with this status and an S3 XML error body; never forwarded.
    Status(u16),
    /// Forward, then wait this long before answering.
    Delay(Duration),
    /// Send the head and this many body bytes, then reset (RST).
    ResetAfter(usize),
    /// Send the head and this many body bytes, then stall until the client
    /// gives up (or the proxy stops).
    StallAfter(usize),
    /// Keep Content-Length, send `missing` bytes fewer, then close (FIN).
    ShortBody { missing: usize },
    /// Drop Content-Length/chunking, send `missing` bytes fewer, then close:
    /// a close-delimited body that looks complete to the client.
    ShortBodyNoLength { missing: usize },
    /// Replace the (de-chunked) body.
    Rewrite(Rewriter),
    /// Run this before forwarding (e.g. delete the object upstream).
    Hook(Arc<dyn Fn() + Send + Sync>),
}

impl Fault {
    fn name(&self) -> &'static str {
        match self {
            Fault::Status(_) => "status",
            Fault::Delay(_) => "delay",
            Fault::ResetAfter(_) => "reset",
            Fault::StallAfter(_) => "stall",
            Fault::ShortBody { .. } => "short-body",
            Fault::ShortBodyNoLength { .. } => "short-body-no-length",
            Fault::Rewrite(_) => "rewrite",
            Fault::Hook(_) => "hook",
        }
    }
}

/// Which occurrences of a matching request a rule applies to (1-based).
#[derive(Debug, Clone, Copy)]
pub enum Times {
    All,
    /// The first N.
    First(usize),
    /// Only the Nth.
    Nth(usize),
}

/// A rule of the fault plan: operation + a substring of the target.
pub struct Rule {
    pub op: Option<Op>,
    pub target_contains: String,
    pub times: Times,
    pub fault: Fault,
    seen: usize,
}

impl Rule {
    pub fn new(op: Option<Op>, target_contains: &str, times: Times, fault: Fault) -> Rule {
        Rule {
            op,
            target_contains: target_contains.to_string(),
            times,
            fault,
            seen: 0,
        }
    }
}

struct State {
    upstream: SocketAddr,
    rules: Mutex<Vec<Rule>>,
    log: Mutex<Vec<Logged>>,
}

pub struct Proxy {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (an `http://host:port` endpoint).
    pub fn start(upstream: &str) -> Proxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("upstream must be http://IP:PORT");
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let state = Arc::new(State {
            upstream,
            rules: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("fault-proxy")
            .build()
            .unwrap();
        let (tx, rx) = tokio::sync::watch::channel(false);
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("proxy {addr}"))
            .spawn(move || {
                rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).unwrap();
                    let mut stop = rx.clone();
                    loop {
                        let socket = tokio::select! {
                            res = listener.accept() => match res {
                                Ok((s, _)) => s,
                                Err(_) => continue,
                            },
                            _ = stop.changed() => break,
                        };
                        let _ = socket.set_nodelay(true);
                        let st = st.clone();
                        let mut stop = rx.clone();
                        tokio::spawn(async move {
                            tokio::select! {
                                _ = serve(st, socket) => {}
                                _ = stop.changed() => {}
                            }
                        });
                    }
                });
                rt.shutdown_timeout(Duration::from_secs(2));
            })
            .unwrap();
        Proxy {
            endpoint: format!("http://{addr}"),
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// Adds a rule; rules are tried in order, the first that applies wins.
    pub fn on(&self, op: Option<Op>, target_contains: &str, times: Times, fault: Fault) {
        self.state
            .rules
            .lock()
            .unwrap()
            .push(Rule::new(op, target_contains, times, fault));
    }

    pub fn clear_rules(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.state.log.lock().unwrap().clear();
    }

    /// The distinct operations seen, by name.
    pub fn ops(&self) -> std::collections::BTreeSet<&'static str> {
        self.requests().iter().map(|l| l.op.name()).collect()
    }

    /// The requests of one operation whose target contains `needle`.
    pub fn count(&self, op: Op, needle: &str) -> usize {
        self.requests()
            .iter()
            .filter(|l| l.op == op && l.target.contains(needle))
            .count()
    }

    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The S3 operation of a request.
fn classify(method: &str, target: &str) -> Op {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let segments = path.trim_matches('/').split('/').filter(|s| !s.is_empty());
    let is_bucket = segments.count() <= 1;
    match method {
        "GET" if query.contains("list-type") || is_bucket => Op::List,
        "GET" => Op::Get,
        "HEAD" => Op::Head,
        "PUT" => Op::Put,
        "POST" => Op::Post,
        "DELETE" => Op::Delete,
        _ => Op::Other,
    }
}

struct Head {
    raw: Vec<u8>,
    first_line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The head re-serialised without `drop` headers and with `add` ones.
    fn rewrite(&self, drop: &[&str], add: &[(&str, String)]) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.first_line);
        for (k, v) in &self.headers {
            if !drop.iter().any(|d| k.eq_ignore_ascii_case(d)) {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        for (k, v) in add {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// Reads an HTTP head; `None` on a clean EOF before any byte.
async fn read_head<R: AsyncReadExt + Unpin>(r: &mut R) -> std::io::Result<Option<Head>> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if r.read(&mut byte).await? == 0 {
            if raw.is_empty() {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        raw.push(byte[0]);
        if raw.len() > 1 << 20 {
            return Err(std::io::Error::other("head too large"));
        }
    }
    let text = String::from_utf8_lossy(&raw[..raw.len() - 4]).into_owned();
    let mut lines = text.split("\r\n");
    let first_line = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Some(Head {
        raw,
        first_line,
        headers,
    }))
}

/// A response body: the bytes as framed on the wire, and de-chunked.
struct Body {
    raw: Vec<u8>,
    decoded: Vec<u8>,
    /// The body ended with the connection (close-delimited).
    until_close: bool,
}

async fn read_body<R: AsyncReadExt + Unpin>(
    r: &mut R,
    head: &Head,
    bodiless: bool,
) -> std::io::Result<Body> {
    if bodiless {
        return Ok(Body {
            raw: Vec::new(),
            decoded: Vec::new(),
            until_close: false,
        });
    }
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        let mut raw = Vec::new();
        let mut decoded = Vec::new();
        loop {
            let mut line = Vec::new();
            let mut b = [0u8; 1];
            while !line.ends_with(b"\r\n") {
                if r.read(&mut b).await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                line.push(b[0]);
            }
            raw.extend_from_slice(&line);
            let size_text = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            if size == 0 {
                // Trailers, then an empty line.
                loop {
                    let mut t = Vec::new();
                    while !t.ends_with(b"\r\n") {
                        if r.read(&mut b).await? == 0 {
                            return Err(std::io::ErrorKind::UnexpectedEof.into());
                        }
                        t.push(b[0]);
                    }
                    raw.extend_from_slice(&t);
                    if t == b"\r\n" {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk).await?;
            raw.extend_from_slice(&chunk);
            decoded.extend_from_slice(&chunk[..size]);
        }
        return Ok(Body {
            raw,
            decoded,
            until_close: false,
        });
    }
    if let Some(len) = head.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| std::io::Error::other("bad length"))?;
        let mut raw = vec![0u8; len];
        r.read_exact(&mut raw).await?;
        return Ok(Body {
            decoded: raw.clone(),
            raw,
            until_close: false,
        });
    }
    let mut raw = Vec::new();
    r.read_to_end(&mut raw).await?;
    Ok(Body {
        decoded: raw.clone(),
        raw,
        until_close: true,
    })
}

fn error_response(status: u16) -> Vec<u8> {
    let (reason, code) = match status {
        403 => ("Forbidden", "AccessDenied"),
        404 => ("Not Found", "NoSuchKey"),
        500 => ("Internal Server Error", "InternalError"),
        503 => ("Slow Down", "SlowDown"),
        _ => ("Error", "InternalError"),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected by the test proxy</Message><RequestId>proxy</RequestId></Error>"
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves one client connection: request by request, over one upstream
/// connection opened on demand.
async fn serve(state: Arc<State>, client: TcpStream) {
    let (client_r, mut client_w) = client.into_split();
    let mut client_r = BufReader::new(client_r);
    let mut upstream: Option<BufReader<TcpStream>> = None;
    loop {
        let Ok(Some(req)) = read_head(&mut client_r).await else {
            return;
        };
        let mut req_body = Vec::new();
        if let Some(len) = req
            .header("content-length")
            .and_then(|l| l.parse::<usize>().ok())
        {
            req_body.resize(len, 0);
            if client_r.read_exact(&mut req_body).await.is_err() {
                return;
            }
        }
        let mut parts = req.first_line.split(' ');
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        let op = classify(&method, &target);
        let fault = {
            let mut rules = state.rules.lock().unwrap();
            let mut chosen = None;
            for rule in rules.iter_mut() {
                if rule.op.is_some_and(|o| o != op) || !target.contains(&rule.target_contains) {
                    continue;
                }
                rule.seen += 1;
                let applies = match rule.times {
                    Times::All => true,
                    Times::First(n) => rule.seen <= n,
                    Times::Nth(n) => rule.seen == n,
                };
                if applies {
                    chosen = Some(rule.fault.clone());
                    break;
                }
            }
            chosen
        };
        let log_index = {
            let mut log = state.log.lock().unwrap();
            log.push(Logged {
                method: method.clone(),
                target: target.clone(),
                op,
                fault: fault.as_ref().map(Fault::name),
                body_sent: 0,
                complete: false,
            });
            log.len() - 1
        };
        let set_log = |sent: u64, complete: bool| {
            let mut log = state.log.lock().unwrap();
            log[log_index].body_sent = sent;
            log[log_index].complete = complete;
        };

        if let Some(Fault::Status(code)) = &fault {
            let resp = error_response(*code);
            if client_w.write_all(&resp).await.is_err() {
                return;
            }
            set_log(0, true);
            continue;
        }
        if let Some(Fault::Hook(hook)) = &fault {
            hook();
        }

        // Forward the request, reconnecting once if a kept-alive upstream
        // connection was closed meanwhile.
        let mut answer = None;
        for _attempt in 0..2 {
            if upstream.is_none() {
                match TcpStream::connect(state.upstream).await {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        upstream = Some(BufReader::new(s));
                    }
                    Err(_) => return,
                }
            }
            let up = upstream.as_mut().unwrap();
            let sent = async {
                up.get_mut().write_all(&req.raw).await?;
                up.get_mut().write_all(&req_body).await?;
                read_head(up).await
            }
            .await;
            match sent {
                Ok(Some(head)) => {
                    answer = Some(head);
                    break;
                }
                _ => upstream = None,
            }
        }
        let Some(resp) = answer else { return };
        let status: u16 = resp
            .first_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let bodiless =
            method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304;
        let up = upstream.as_mut().unwrap();
        let Ok(body) = read_body(up, &resp, bodiless).await else {
            return;
        };
        if body.until_close
            || resp
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            upstream = None;
        }

        match fault {
            None | Some(Fault::Hook(_)) | Some(Fault::Status(_)) => {
                if client_w.write_all(&resp.raw).await.is_err()
                    || client_w.write_all(&body.raw).await.is_err()
                {
                    return;
                }
                set_log(body.decoded.len() as u64, true);
                if body.until_close {
                    return;
                }
            }
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                if client_w.write_all(&resp.raw).await.is_err()
                    || client_w.write_all(&body.raw).await.is_err()
                {
                    return;
                }
                set_log(body.decoded.len() as u64, true);
                if body.until_close {
                    return;
                }
            }
            Some(Fault::ResetAfter(n)) => {
                let n = n.min(body.raw.len());
                let _ = client_w.write_all(&resp.raw).await;
                let _ = client_w.write_all(&body.raw[..n]).await;
                let _ = client_w.flush().await;
                // A body shorter than the cut went out whole before the reset.
                set_log(n as u64, n == body.raw.len());
                // Give the bytes a moment to leave, then reset.
                tokio::time::sleep(Duration::from_millis(20)).await;
                if let Ok(stream) = client_r.into_inner().reunite(client_w) {
                    let _ = stream.set_zero_linger();
                    drop(stream);
                }
                return;
            }
            Some(Fault::StallAfter(n)) => {
                let n = n.min(body.raw.len());
                let _ = client_w.write_all(&resp.raw).await;
                let _ = client_w.write_all(&body.raw[..n]).await;
                let _ = client_w.flush().await;
                set_log(n as u64, n == body.raw.len());
                // Stall until the client gives up: wait for its EOF.
                let mut sink = [0u8; 1024];
                loop {
                    match tokio::time::timeout(Duration::from_secs(600), client_r.read(&mut sink))
                        .await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                        Ok(Ok(_)) => {}
                    }
                }
            }
            Some(Fault::ShortBody { missing }) => {
                let keep = body.decoded.len().saturating_sub(missing);
                // A chunked body becomes a Content-Length one first.
                let head = resp.rewrite(
                    &["content-length", "transfer-encoding"],
                    &[("Content-Length", body.decoded.len().to_string())],
                );
                let _ = client_w.write_all(&head).await;
                let _ = client_w.write_all(&body.decoded[..keep]).await;
                let _ = client_w.shutdown().await;
                set_log(keep as u64, false);
                return;
            }
            Some(Fault::ShortBodyNoLength { missing }) => {
                let keep = body.decoded.len().saturating_sub(missing);
                let head = resp.rewrite(
                    &["content-length", "transfer-encoding", "connection"],
                    &[("Connection", "close".to_string())],
                );
                let _ = client_w.write_all(&head).await;
                let _ = client_w.write_all(&body.decoded[..keep]).await;
                let _ = client_w.shutdown().await;
                set_log(keep as u64, false);
                return;
            }
            Some(Fault::Rewrite(f)) => {
                let new_body = f(&body.decoded);
                let head = resp.rewrite(
                    &["content-length", "transfer-encoding"],
                    &[("Content-Length", new_body.len().to_string())],
                );
                if client_w.write_all(&head).await.is_err()
                    || client_w.write_all(&new_body).await.is_err()
                {
                    return;
                }
                set_log(new_body.len() as u64, true);
            }
        }
    }
}
