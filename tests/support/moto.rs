//! moto's S3 in server mode (`moto_server`) as a child process, for tests
//! where ETag fidelity matters (real MD5 ETags in listings, `-N` multipart
//! ETags). Objects are created through boto3 (`python3 -c`).
//!
//! moto accepts any credentials; we still use the same fixed keys as the
//! s3s-fs server. The child runs with `S3_UPLOAD_PART_MIN_SIZE=256`, so a
//! multipart upload can use tiny parts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::s3::{ACCESS_KEY, SECRET_KEY, aws_env};

/// Minimum size of a non-final multipart part on this server.
pub const MIN_PART_SIZE: usize = 256;

pub struct MotoServer {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub addr: SocketAddr,
    child: Child,
    _log_dir: tempfile::TempDir,
    log: PathBuf,
}

const PIP_HINT: &str = "moto_server is needed for this test: run `pip install 'moto[server]'` \
                        (and make sure `moto_server` and `python3` with boto3 are on PATH)";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// True once `addr` answers an HTTP request with an HTTP status line.
fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /moto-api/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).is_ok() && &buf == b"HTTP/"
}

impl MotoServer {
    /// Launch `moto_server -H 127.0.0.1 -p PORT` and wait until it answers.
    pub fn start() -> MotoServer {
        let log_dir = tempfile::tempdir().unwrap();
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let log = log_dir.path().join(format!("moto-{port}.log"));
            let logf = std::fs::File::create(&log).unwrap();
            let child = Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("S3_UPLOAD_PART_MIN_SIZE", MIN_PART_SIZE.to_string())
                .env("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", (16 << 20).to_string())
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::null())
                .stdout(logf.try_clone().unwrap())
                .stderr(logf)
                .spawn();
            let mut child = match child {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{PIP_HINT} ({e})"),
                Err(e) => panic!("cannot spawn moto_server: {e}. {PIP_HINT}"),
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if answers_http(addr) {
                    return MotoServer {
                        endpoint: format!("http://{addr}"),
                        addr,
                        child,
                        _log_dir: log_dir,
                        log,
                    };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    last_err = format!(
                        "moto_server exited with {status}: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = format!(
                        "moto_server did not answer on {addr} within 30 s: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("{last_err}\n{PIP_HINT}");
    }

    /// The environment an `object_store`/AWS client needs to reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        aws_env(&self.endpoint, ACCESS_KEY, SECRET_KEY)
    }

    /// Run a Python snippet with `boto3` imported, `s3` a client for this
    /// server, `data` the bytes given on stdin and `args` = `sys.argv[1:]`.
    /// Returns stdout (trimmed). Panics with stderr if it fails.
    pub fn boto3(&self, snippet: &str, args: &[&str], stdin: &[u8]) -> String {
        let script = format!(
            "import sys, boto3\n\
             from botocore.config import Config\n\
             s3 = boto3.client('s3', endpoint_url={ep:?}, region_name='us-east-1',\n\
                 aws_access_key_id={ak:?}, aws_secret_access_key={sk:?},\n\
                 config=Config(s3={{'addressing_style': 'path'}}, retries={{'max_attempts': 1}}))\n\
             data = sys.stdin.buffer.read()\n\
             args = sys.argv[1:]\n\
             {snippet}\n",
            ep = self.endpoint,
            ak = ACCESS_KEY,
            sk = SECRET_KEY,
        );
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(&script)
            .args(args)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
            .env("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
        let mut si = child.stdin.take().unwrap();
        let input = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = si.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        let _ = writer.join();
        if !out.status.success() {
            panic!(
                "boto3 snippet failed ({}):\n{}\n--- script ---\n{snippet}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn create_bucket(&self, bucket: &str) {
        self.boto3("s3.create_bucket(Bucket=args[0])", &[bucket], b"");
    }

    /// Single PUT; returns the ETag as the server sent it (with quotes).
    pub fn put_object(&self, bucket: &str, key: &str, data: &[u8]) -> String {
        self.boto3(
            "print(s3.put_object(Bucket=args[0], Key=args[1], Body=data)['ETag'])",
            &[bucket, key],
            data,
        )
    }

    /// Many PUTs in one Python process (faster than `put_object` in a loop).
    pub fn put_objects(&self, bucket: &str, objects: &[(&str, &[u8])]) {
        // stdin: JSON [[key, hex], ...]
        let items: Vec<(String, String)> = objects
            .iter()
            .map(|(k, d)| ((*k).to_owned(), hex::encode(d)))
            .collect();
        let json = serde_json::to_vec(&items).unwrap();
        self.boto3(
            "import json\n\
             for k, h in json.loads(data):\n    s3.put_object(Bucket=args[0], Key=k, Body=bytes.fromhex(h))",
            &[bucket],
            &json,
        );
    }

    /// Multipart upload of `data` in parts of `part_size` bytes (the last may
    /// be shorter; `part_size >= MIN_PART_SIZE`). Returns the ETag with quotes,
    /// e.g. `"<md5 of part md5s>-3"`.
    pub fn put_multipart(&self, bucket: &str, key: &str, data: &[u8], part_size: usize) -> String {
        assert!(
            part_size >= MIN_PART_SIZE,
            "part_size must be >= {MIN_PART_SIZE}"
        );
        self.boto3(
            "b, k, n = args[0], args[1], int(args[2])\n\
             up = s3.create_multipart_upload(Bucket=b, Key=k)['UploadId']\n\
             parts = []\n\
             for i in range(0, max(len(data), 1), n):\n    \
                 r = s3.upload_part(Bucket=b, Key=k, UploadId=up, PartNumber=len(parts)+1, Body=data[i:i+n])\n    \
                 parts.append({'PartNumber': len(parts)+1, 'ETag': r['ETag']})\n\
             r = s3.complete_multipart_upload(Bucket=b, Key=k, UploadId=up, MultipartUpload={'Parts': parts})\n\
             print(r['ETag'])",
            &[bucket, key, &part_size.to_string()],
            data,
        )
    }

    pub fn delete_object(&self, bucket: &str, key: &str) {
        self.boto3(
            "s3.delete_object(Bucket=args[0], Key=args[1])",
            &[bucket, key],
            b"",
        );
    }

    /// moto_server's combined stdout/stderr so far (for debugging).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
