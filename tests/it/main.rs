//! Integration tests: the built `vouch` binary on real temp trees, a real
//! SQLite index and real S3 servers on 127.0.0.1. One binary, small helpers.

#[path = "../support/mod.rs"]
mod support;

mod audit;
mod credentials;
mod damage;
mod false_ok;
mod inventory;
mod large_files;
mod migrate;
mod proof;
mod reliability;
mod reports;
mod scan;
mod setups;
mod shards;
mod verdict;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use serde_json::Value;

/// A temp workspace: a tree under `root`, an index beside it.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub index: PathBuf,
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let index = dir.path().join("index.sqlite3");
        Env { dir, root, index }
    }

    /// Writes a file under `base` with an old, fixed mtime (so the scan
    /// trusts its metadata; see "racily clean" in src/scan.rs).
    pub fn write_in(base: &Path, rel: impl AsRef<[u8]>, content: &[u8]) -> PathBuf {
        let path = base.join(std::ffi::OsStr::from_bytes(rel.as_ref()));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        set_old_mtime(&path);
        path
    }

    pub fn write(&self, rel: impl AsRef<[u8]>, content: &[u8]) -> PathBuf {
        Env::write_in(&self.root, rel, content)
    }

    pub fn vouch(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("vouch").unwrap();
        cmd.env_remove("VOUCH_INDEX")
            .arg("--index")
            .arg(&self.index)
            .timeout(Duration::from_secs(300));
        cmd
    }

    /// `vouch` with another index than the workspace's.
    pub fn vouch_at(&self, index: &Path) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("vouch").unwrap();
        cmd.env_remove("VOUCH_INDEX")
            .arg("--index")
            .arg(index)
            .timeout(Duration::from_secs(300));
        cmd
    }

    /// Runs vouch with `--format json` and returns (exit code, document).
    pub fn json(&self, args: &[&str]) -> (i32, Value) {
        let out = self
            .vouch()
            .args(args)
            .args(["--format", "json"])
            .output()
            .unwrap();
        let code = out.status.code().unwrap_or(-1);
        let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "vouch {args:?} exit {code}: not JSON ({e}): stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, doc)
    }

    pub fn scan(&self) -> (i32, Value) {
        let root = self.root.to_str().unwrap().to_string();
        self.json(&["scan", &root])
    }
}

/// `vouch audit` with `--format json` against `url`, in `env`.
pub fn audit_json(env: &Env, url: &str, vars: &[(String, String)], args: &[&str]) -> (i32, Value) {
    let out = env
        .vouch()
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .arg("audit")
        .arg(&env.root)
        .args(["--remote", url, "--format", "json", "--retries", "1"])
        .args(args)
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "audit {args:?} exit {code}: {e}: stderr {}",
            stderr_of(&out)
        )
    });
    (code, doc)
}

pub fn set_old_mtime(path: &Path) {
    set_mtime(path, 1_600_000_000);
}

pub fn set_mtime(path: &Path, unix: u64) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(unix);
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
}

/// The (kind, path) pairs of a report, sorted.
pub fn findings(doc: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = doc["findings"]
        .as_array()
        .expect("findings array")
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list
        .iter()
        .map(|(k, p)| (k.to_string(), p.to_string()))
        .collect();
    v.sort();
    v
}

pub fn counter(doc: &Value, name: &str) -> u64 {
    doc["summary"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("summary has no counter {name}: {}", doc["summary"]))
}

/// `vouch export ROOT --format FORMAT --output OUT`.
pub fn export(env: &Env, root: &Path, format: &str, out: &Path) -> Output {
    env.vouch()
        .arg("export")
        .arg(root)
        .args(["--format", format, "--output"])
        .arg(out)
        .output()
        .unwrap()
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command as the unprivileged `nobody` user when we are root, so
/// permission checks apply (root reads everything).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Opens the workspace to `nobody` and runs vouch as that user (tests run
/// as root, and root reads everything).
pub fn vouch_as_nobody(env: &Env, args: &[&str]) -> std::process::Output {
    let mode = |p: &Path, m: u32| {
        std::fs::set_permissions(
            p,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(m),
        )
        .unwrap()
    };
    mode(env.dir.path(), 0o777);
    for entry in std::fs::read_dir(env.dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            mode(&p, 0o666);
        }
    }
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(assert_cmd::cargo::cargo_bin("vouch"))
        .arg("--index")
        .arg(&env.index)
        .args(args);
    cmd.output().unwrap()
}
