//! Reliability: vouch holds under crashes, concurrent runs, hostile trees,
//! hostile remotes and bad input, never writes where it only reads, and
//! its audit core agrees with a naive reference model. Nothing may be
//! lost and no fault may ever turn into a false "OK" (`verified`).
//!
//! Test names start with their area (`crash_`, `concurrency_`,
//! `hostile_tree_`, `hostile_remote_`, `bad_input_`, `read_only_`,
//! `model_`); the README's "Guarantees" table summarises them.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use crate::support::proxy::{Fault, Op, Proxy, Times};
use crate::support::s3::S3Server;
use crate::*;

// ---------------------------------------------------------------------------
// Helpers.

fn vouch_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("vouch")
}

/// A `vouch` command on `index`, with `envs` (AWS_* for S3) set.
fn vouch_cmd(index: &Path, envs: &[(String, String)]) -> Command {
    let mut cmd = Command::new(vouch_bin());
    cmd.env_remove("VOUCH_INDEX")
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .arg("--index")
        .arg(index);
    cmd
}

/// The same, run as the unprivileged `nobody` when we are root (so that
/// permissions apply), else as ourselves.
fn vouch_cmd_as_nobody(index: &Path, envs: &[(String, String)]) -> Command {
    if !is_root() {
        return vouch_cmd(index, envs);
    }
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(vouch_bin())
        .env_remove("VOUCH_INDEX")
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .arg("--index")
        .arg(index);
    cmd
}

/// Runs a command with `--format json`; returns (exit code, document,
/// stderr). A run that printed no JSON gets `Value::Null`.
fn run_json(mut cmd: Command) -> (i32, Value, String) {
    let out = cmd
        .args(["--format", "json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (code, doc, stderr_of(&out))
}

fn ro_conn(index: &Path) -> Connection {
    let conn = Connection::open_with_flags(index, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

/// A read-write connection: recovers a hot rollback journal left by a
/// killed run, as the next run would.
fn rw_conn(index: &Path) -> Connection {
    let conn = Connection::open_with_flags(index, OpenFlags::SQLITE_OPEN_READ_WRITE).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

fn integrity_check(index: &Path) -> String {
    rw_conn(index)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// The current manifest: path -> (kind, size, blake3), files and symlinks.
fn manifest(index: &Path) -> BTreeMap<Vec<u8>, (i64, i64, Option<Vec<u8>>)> {
    let conn = ro_conn(index);
    let mut stmt = conn
        .prepare(
            "SELECT path, kind, size, blake3 FROM entries WHERE until_run IS NULL AND kind != 2",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Copies an index (and its WAL, if any) to `to`, replacing what was there.
fn copy_index(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let t = PathBuf::from(format!("{}{suffix}", to.display()));
        let _ = std::fs::remove_file(&t);
    }
    if from.exists() {
        std::fs::copy(from, to).unwrap();
        let wal = PathBuf::from(format!("{}-wal", from.display()));
        if wal.exists() {
            std::fs::copy(&wal, format!("{}-wal", to.display())).unwrap();
        }
    }
}

/// Deterministic pseudo-random bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 0u64;
    while out.len() < len {
        let mut h = blake3::Hasher::new();
        h.update(&seed.to_le_bytes());
        h.update(&counter.to_le_bytes());
        out.extend_from_slice(h.finalize().as_bytes());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// Writes `content` at `path` (parents created) with the given old mtime.
fn put_file(path: &Path, content: &[u8], mtime: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    set_mtime(path, mtime);
}

/// Waits for `child` at most `limit`; kills it and panics on overrun.
fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?} (hung?)");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Summary counters that legitimately differ between an interrupted and
/// resumed run and an uninterrupted one.
const VOLATILE: [&str; 5] = [
    "run",
    "elapsed_ms",
    "bytes_hashed",
    "objects_read",
    "bytes_read",
];

fn stable_summary(summary: &Value) -> Value {
    let mut s = summary.clone();
    if let Some(m) = s.as_object_mut() {
        for k in VOLATILE {
            m.remove(k);
        }
        if let Some(scan) = m.get_mut("scan").and_then(Value::as_object_mut) {
            for k in VOLATILE {
                scan.remove(k);
            }
        }
    }
    s
}

/// Asserts two reports hold the same (kind, path) findings; on failure
/// shows only the difference.
fn assert_same_findings(got: &Value, want: &Value, what: &str) {
    let got: BTreeSet<_> = findings(got).into_iter().collect();
    let want: BTreeSet<_> = findings(want).into_iter().collect();
    if got != want {
        let extra: Vec<_> = got.difference(&want).take(10).collect();
        let lost: Vec<_> = want.difference(&got).take(10).collect();
        panic!(
            "{what}: findings differ from the reference ({} vs {}): unexpected {extra:?}, lost {lost:?}",
            got.len(),
            want.len()
        );
    }
}

// ---------------------------------------------------------------------------
// Crash safety: kill -9 at many points, then resume.

/// A tree big enough that a scan takes a while: `dirs` x `per_dir` files
/// of 2 KiB, all with an old mtime (so their metadata is trusted).
fn big_tree(root: &Path, dirs: usize, per_dir: usize) -> u64 {
    let mut total = 0;
    for d in 0..dirs {
        for f in 0..per_dir {
            let content = noise((d * 100_000 + f) as u64, 2048);
            total += content.len() as u64;
            put_file(
                &root.join(format!("d{d:02}/f{f:04}")),
                &content,
                1_600_000_000,
            );
        }
    }
    total
}

/// When to send SIGKILL.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// After a fixed delay (startup, opening and migrating the index).
    Delay(Duration),
    /// As soon as the run has committed at least this many rows (entries
    /// written or closed, remote objects read): mid-run, whatever the
    /// machine's speed.
    Committed(i64),
}

struct KillReport {
    at: KillAt,
    killed: bool,
    committed: i64,
}

/// Rows the runs after `after_run` have committed: entries written or
/// closed, and remote objects read.
fn committed_rows(conn: &Connection, after_run: i64) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT (SELECT count(*) FROM entries WHERE since_run > ?1 OR until_run > ?1)
              + (SELECT count(*) FROM remote_objects WHERE verified_at IS NOT NULL AND seen_run > ?1)",
        [after_run],
        |r| r.get(0),
    )
}

/// Runs `args` against a copy of `base` (or no index) and kills it with
/// SIGKILL at `at`. Returns whether it was killed before finishing, and the
/// file rows the killed run committed: path -> (row id, blake3, size).
fn kill_at(
    base: Option<&Path>,
    index: &Path,
    envs: &[(String, String)],
    args: &[&str],
    at: KillAt,
) -> Killed {
    copy_index(base.unwrap_or(Path::new("/nonexistent-index")), index);
    let before_max_run: i64 = if has_schema(index) {
        ro_conn(index)
            .query_row("SELECT coalesce(max(id), 0) FROM runs", [], |r| r.get(0))
            .unwrap()
    } else {
        0
    };
    let mut child = vouch_cmd(index, envs)
        .args(["-q"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    match at {
        KillAt::Delay(d) => std::thread::sleep(d),
        KillAt::Committed(n) => {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                let done = has_schema(index)
                    && Connection::open_with_flags(index, OpenFlags::SQLITE_OPEN_READ_ONLY)
                        .and_then(|c| committed_rows(&c, before_max_run))
                        .is_ok_and(|c| c >= n);
                if done {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
    let _ = child.kill(); // SIGKILL
    let status = child.wait().unwrap();
    let killed = status.signal() == Some(9) && !run_finished_after(index, before_max_run, args[0]);
    let mut written = BTreeMap::new();
    let mut objects_read = 0;
    if index.exists() {
        assert_eq!(integrity_check(index), "ok", "after kill at {at:?}");
    }
    if has_schema(index) {
        let conn = ro_conn(index);
        objects_read = conn
            .query_row(
                "SELECT count(*) FROM remote_objects WHERE verified_blake3 IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT path, id, blake3, size FROM entries WHERE since_run > ?1 AND until_run IS NULL AND kind = 0",
            )
            .unwrap();
        written = stmt
            .query_map([before_max_run], |r| {
                Ok((
                    r.get(0)?,
                    (r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64),
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
    }
    Killed {
        killed,
        written,
        objects_read,
    }
}

/// What a kill left behind.
struct Killed {
    /// Killed before it finished (else it won the race: nothing to resume).
    killed: bool,
    /// File rows it committed: path -> (row id, blake3, size).
    written: Written,
    /// Remote objects whose read it (or an earlier run) recorded.
    objects_read: i64,
}

/// True when `index` exists and holds vouch's tables (a run killed while
/// creating it may leave an empty database).
fn has_schema(index: &Path) -> bool {
    index.exists()
        && rw_conn(index)
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'entries'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            > 0
}

type Written = BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>, u64)>;

/// After the resumed run: every row the killed run committed is still the
/// current row, unchanged (same id, same hash): nothing lost, nothing
/// hashed again.
fn assert_committed_rows_kept(index: &Path, written: &Written) {
    let conn = ro_conn(index);
    let mut stmt = conn
        .prepare("SELECT path, id, blake3 FROM entries WHERE until_run IS NULL")
        .unwrap();
    let now: BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (path, (id, hash, _)) in written {
        assert_eq!(
            now.get(path),
            Some(&(*id, hash.clone())),
            "the committed row of {} was lost or replaced after the resume",
            String::from_utf8_lossy(path)
        );
    }
}

/// True when a run of `command` after `before` finished (the kill came
/// too late).
fn run_finished_after(index: &Path, before: i64, command: &str) -> bool {
    has_schema(index)
        && ro_conn(index)
            .query_row(
                "SELECT count(*) FROM runs WHERE id > ?1 AND command = ?2 AND finished_at IS NOT NULL
                   AND (command = 'scan' OR remote IS NOT NULL)",
                rusqlite::params![before, command],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            > 0
}

/// Kill points spread over a run that commits about `rows` rows: two early
/// delays (opening, migrating), then fractions of its writes.
fn kill_points(rows: i64) -> Vec<KillAt> {
    let mut v = vec![
        KillAt::Delay(Duration::from_millis(0)),
        KillAt::Delay(Duration::from_millis(25)),
    ];
    for pct in [1, 20, 45, 70, 95, 100] {
        v.push(KillAt::Committed((rows * pct / 100).max(1)));
    }
    v
}

fn print_kills(what: &str, kills: &[KillReport]) {
    eprintln!("{what}: kill -9 points (when, rows committed by the killed run):");
    for k in kills {
        eprintln!(
            "  {:?}: killed={} committed={}",
            k.at, k.killed, k.committed
        );
    }
}

/// Runs `vouch scan ROOT` on `index`, expecting success.
fn scan_json(index: &Path, root: &Path) -> Value {
    let mut c = vouch_cmd(index, &[]);
    c.arg("scan").arg(root);
    let (code, doc, err) = run_json(c);
    assert!(code == 0 || code == 1, "scan exit {code}: {err}");
    doc
}

#[test]
fn crash_kill_9_during_scan_resumes_without_losing_or_rehashing_anything() {
    let env = Env::new();
    let root = env.root.to_str().unwrap().to_string();
    big_tree(&env.root, 20, 1000);
    let base = env.dir.path().join("base.sqlite3");
    let work = env.dir.path().join("work.sqlite3");
    let reference_idx = env.dir.path().join("reference.sqlite3");

    // Two scenarios: a first scan (everything added), and a rescan after
    // modifications, deletions and additions.
    let mut kills = Vec::new();
    for scenario in ["first scan", "rescan"] {
        let base = if scenario == "first scan" {
            None
        } else {
            scan_json(&base, &env.root);
            for d in 0..20 {
                for f in (0..1000).step_by(3) {
                    let p = env.root.join(format!("d{d:02}/f{f:04}"));
                    let content = noise(9_000_000 + (d * 1000 + f) as u64, 2048);
                    put_file(&p, &content, 1_600_000_100);
                }
                for f in (3..1000).step_by(50) {
                    let _ = std::fs::remove_file(env.root.join(format!("d{d:02}/f{f:04}")));
                }
                put_file(
                    &env.root.join(format!("d{d:02}/new")),
                    b"new",
                    1_600_000_100,
                );
            }
            Some(base.as_path())
        };

        // The reference: the same scan, uninterrupted.
        copy_index(
            base.unwrap_or(Path::new("/nonexistent-index")),
            &reference_idx,
        );
        let reference = scan_json(&reference_idx, &env.root);
        let ref_manifest = manifest(&reference_idx);
        let ref_hashed = counter(&reference, "bytes_hashed");
        let before: i64 = base.map_or(0, |b| {
            ro_conn(b)
                .query_row("SELECT max(id) FROM runs", [], |r| r.get(0))
                .unwrap()
        });
        let rows = committed_rows(&ro_conn(&reference_idx), before).unwrap();

        for at in kill_points(rows) {
            let Killed {
                killed, written, ..
            } = kill_at(base, &work, &[], &["scan", &root], at);
            kills.push(KillReport {
                at,
                killed,
                committed: written.len() as i64,
            });
            let resumed = scan_json(&work, &env.root);
            let what = format!("{scenario}, kill at {at:?}");
            assert_eq!(integrity_check(&work), "ok", "{what}");
            assert_committed_rows_kept(&work, &written);
            if !killed {
                continue; // it finished first: nothing to resume
            }
            let committed_bytes: u64 = written.values().map(|w| w.2).sum();
            assert_eq!(
                counter(&resumed, "bytes_hashed"),
                ref_hashed - committed_bytes,
                "{what}: the resumed scan hashes exactly what was not committed"
            );
            assert_same_findings(&resumed, &reference, &what);
            assert_eq!(
                stable_summary(&resumed["summary"]),
                stable_summary(&reference["summary"]),
                "{what}"
            );
            assert_eq!(manifest(&work), ref_manifest, "{what}");
        }
    }
    print_kills("scan", &kills);
    let mid_way = kills.iter().filter(|k| k.killed && k.committed > 0).count();
    assert!(mid_way >= 8, "too few kills landed mid-scan ({mid_way})");
}

#[test]
fn crash_kill_9_during_deep_audit_resumes_reading_only_what_was_not_read() {
    let env = Env::new();
    let root = env.root.to_str().unwrap().to_string();
    let served = env.dir.path().join("s3");
    std::fs::create_dir(&served).unwrap();
    let server = S3Server::start(&served);
    let bucket = server.create_bucket("bkt").join("p");
    // A backup with every kind of damage among mostly good copies.
    for i in 0..200u64 {
        let rel = format!("d{}/o{i:04}", i % 8);
        let content = noise(i, 8192);
        put_file(&env.root.join(&rel), &content, 1_600_000_000);
        let mut copy = content.clone();
        match i % 40 {
            1 => copy[100] ^= 1,      // corrupt
            2 => continue,            // missing
            3 => copy.truncate(4000), // truncated
            _ => {}
        }
        put_file(&bucket.join(&rel), &copy, 1_600_000_000);
    }
    put_file(&bucket.join("extra-object"), b"extra", 1_600_000_000);
    // Slow each read down a little (through the proxy), so that reading
    // spans several batch commits (a batch commits every 500 ms).
    let proxy = Proxy::start(&server.endpoint);
    proxy.on(
        Some(Op::Get),
        "/bkt/p/",
        Times::All,
        Fault::Delay(Duration::from_millis(6)),
    );
    let envs = crate::support::s3::aws_env(&proxy.endpoint, &server.access_key, &server.secret_key);
    let args = [
        "audit",
        &root,
        "--remote",
        "s3://bkt/p",
        "--mode",
        "deep",
        "--jobs",
        "1",
        "--retries",
        "1",
    ];
    let work = env.dir.path().join("work.sqlite3");
    let reference_idx = env.dir.path().join("reference.sqlite3");

    let (code, reference, err) = run_json({
        let mut c = vouch_cmd(&reference_idx, &envs);
        c.args(args);
        c
    });
    assert_eq!(code, 1, "{err}");
    assert_eq!(counter(&reference, "corrupt"), 5);
    assert_eq!(counter(&reference, "missing"), 5);
    assert_eq!(counter(&reference, "size_mismatch"), 5);
    assert_eq!(counter(&reference, "extra"), 1);
    assert_eq!(counter(&reference, "verified"), 185);
    let ref_read = counter(&reference, "objects_read") as i64;
    let ref_hashed = reference["summary"]["scan"]["bytes_hashed"]
        .as_u64()
        .unwrap();
    // Kill while opening, while scanning or listing, then at several
    // points of the reading (the scan commits its 200 rows at once).
    let scan_rows = committed_rows(&ro_conn(&reference_idx), 0).unwrap() - ref_read;
    let points = [
        KillAt::Delay(Duration::from_millis(0)),
        KillAt::Delay(Duration::from_millis(30)),
        KillAt::Committed(scan_rows + 1),
        KillAt::Committed(scan_rows + ref_read / 3),
        KillAt::Committed(scan_rows + ref_read * 2 / 3),
    ];
    let mut kills = Vec::new();
    for at in points {
        let k = kill_at(None, &work, &envs, &args, at);
        kills.push(KillReport {
            at,
            killed: k.killed,
            committed: k.written.len() as i64 + k.objects_read,
        });
        let (code, resumed, err) = run_json({
            let mut c = vouch_cmd(&work, &envs);
            c.args(args);
            c
        });
        let what = format!("deep audit, kill at {at:?}");
        assert_eq!(code, 1, "{what}: {err}");
        assert_eq!(integrity_check(&work), "ok", "{what}");
        assert_committed_rows_kept(&work, &k.written);
        if !k.killed {
            continue;
        }
        assert_eq!(
            counter(&resumed, "objects_read") as i64,
            ref_read - k.objects_read,
            "{what}: exactly the objects not read before the kill are read"
        );
        let committed_bytes: u64 = k.written.values().map(|w| w.2).sum();
        assert_eq!(
            resumed["summary"]["scan"]["bytes_hashed"].as_u64().unwrap(),
            ref_hashed - committed_bytes,
            "{what}: the scan hashes exactly what was not committed"
        );
        assert_same_findings(&resumed, &reference, &what);
        assert_eq!(
            stable_summary(&resumed["summary"]),
            stable_summary(&reference["summary"]),
            "{what}"
        );
    }
    print_kills("deep audit", &kills);
    let mid_way = kills.iter().filter(|k| k.killed && k.committed > 0).count();
    assert!(mid_way >= 3, "too few kills landed mid-audit ({mid_way})");
    let mid_read = kills
        .iter()
        .filter(|k| k.killed && k.committed > 200 && k.committed < 200 + ref_read)
        .count();
    assert!(mid_read >= 2, "too few kills landed mid-read ({mid_read})");
}
