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
type Manifest = BTreeMap<Vec<u8>, (i64, i64, Option<Vec<u8>>)>;

fn manifest(index: &Path) -> Manifest {
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
const VOLATILE: [&str; 6] = [
    "run",
    "elapsed_ms",
    "bytes_hashed",
    "objects_read",
    "bytes_read",
    "bytes_downloaded",
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
                "SELECT path, since_run, blake3, size FROM entries WHERE since_run > ?1 AND until_run IS NULL AND kind = 0",
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
    /// File rows it committed: path -> (the row's since_run, blake3, size).
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
/// current row, unchanged (same row, same hash): nothing lost, nothing
/// hashed again.
fn assert_committed_rows_kept(index: &Path, written: &Written) {
    let conn = ro_conn(index);
    let mut stmt = conn
        .prepare("SELECT path, since_run, blake3 FROM entries WHERE until_run IS NULL")
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
    // 12,000 files: the first scan commits in three batches (4,096 writes
    // each), the rescan in two.
    big_tree(&env.root, 12, 1000);
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
            for d in 0..12 {
                for f in (0..1000).step_by(2) {
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

// ---------------------------------------------------------------------------
// Concurrency: one writer at a time, readers alongside.

#[test]
fn concurrency_a_second_writer_exits_2_or_waits_and_a_reader_reads_meanwhile() {
    let env = Env::new();
    let root = env.root.to_str().unwrap().to_string();
    let served = env.dir.path().join("s3");
    std::fs::create_dir(&served).unwrap();
    let server = S3Server::start(&served);
    let bucket = server.create_bucket("bkt");
    for i in 0..60u64 {
        let content = noise(i, 4096);
        put_file(&env.root.join(format!("f{i:03}")), &content, 1_600_000_000);
        put_file(&bucket.join(format!("f{i:03}")), &content, 1_600_000_000);
    }
    // A slow deep audit (25 ms per read) holds the index for ~1.5 s,
    // committing its reads as it goes.
    let proxy = Proxy::start(&server.endpoint);
    proxy.on(
        Some(Op::Get),
        "/bkt/f",
        Times::All,
        Fault::Delay(Duration::from_millis(25)),
    );
    let envs = crate::support::s3::aws_env(&proxy.endpoint, &server.access_key, &server.secret_key);
    let mut writer = vouch_cmd(&env.index, &envs)
        .args([
            "--format", "json", "audit", &root, "--remote", "s3://bkt", "--mode", "deep",
        ])
        .args(["--jobs", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it reads.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reading = has_schema(&env.index)
            && ro_conn(&env.index)
                .query_row(
                    "SELECT count(*) FROM runs WHERE remote IS NOT NULL AND status = 'running'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap_or(0)
                > 0;
        if reading {
            break;
        }
        assert!(Instant::now() < deadline, "the audit never started reading");
        std::thread::sleep(Duration::from_millis(5));
    }

    // A second writer fails at once, with one clear line.
    let out = vouch_cmd(&env.index, &[])
        .args(["scan", &root])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("in use by another vouch run") && err.contains("--wait"),
        "{err}"
    );
    // With --wait, it waits its turn.
    let mut waiter = vouch_cmd(&env.index, &[])
        .args(["--wait", "--format", "json", "scan", &root])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Meanwhile a read-only reader sees the audit's reads land, never a
    // torn or locked database. (`vouch report`/`history` did not exist
    // when this was written: the reader is a read-only connection, as
    // theirs is.)
    let mut seen = Vec::new();
    while writer.try_wait().unwrap().is_none() {
        let conn = ro_conn(&env.index);
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM remote_objects WHERE verified_at IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let runs: i64 = conn
            .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .unwrap();
        assert!(runs >= 2);
        seen.push(n);
        assert!(
            waiter.try_wait().unwrap().is_none(),
            "the waiting writer ran while the first one held the index"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "reads never go backwards: {seen:?}"
    );
    assert!(
        seen.iter().any(|n| *n > 0 && *n < 60),
        "the reader saw the audit mid-way: {seen:?}"
    );
    let out = writer.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(counter(&doc, "verified"), 60);

    let status = wait_bounded(&mut waiter, Duration::from_secs(60), "vouch --wait scan");
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(0), "{}", stderr_of(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        counter(&doc, "unchanged"),
        60,
        "it ran after the audit's scan"
    );
    assert_eq!(counter(&doc, "bytes_hashed"), 0);
    assert_eq!(integrity_check(&env.index), "ok");
}

#[test]
fn concurrency_writers_started_together_on_a_new_index_take_turns() {
    let env = Env::new();
    let root = env.root.to_str().unwrap().to_string();
    for i in 0..200u64 {
        put_file(
            &env.root.join(format!("d{}/f{i}", i % 4)),
            &noise(i, 1000),
            1_600_000_000,
        );
    }
    // Four writers race to create, migrate and fill the same new index.
    let children: Vec<Child> = (0..4)
        .map(|_| {
            vouch_cmd(&env.index, &[])
                .args(["--wait", "-q", "scan", &root])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    }
    assert_eq!(integrity_check(&env.index), "ok");
    let conn = ro_conn(&env.index);
    let (runs, ok): (i64, i64) = conn
        .query_row("SELECT count(*), sum(status = 'ok') FROM runs", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((runs, ok), (4, 4));
    assert_eq!(manifest(&env.index).len(), 200);
}

// ---------------------------------------------------------------------------
// Hostile trees.

/// Makes `dir` and everything below readable by anyone (so that `nobody`
/// can scan it), except what the caller locks afterwards.
fn open_up(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// The regular files of a hostile tree, by key bytes (`/`-joined), with
/// their content.
type Files = BTreeMap<Vec<u8>, Vec<u8>>;

/// A tree with every kind of awkward entry. Returns the readable regular
/// files (what a scan as `nobody` must hash).
fn hostile_tree(root: &Path) -> Files {
    let mut files = Files::new();
    let mut add = |rel: &[u8], content: &[u8]| {
        let path = root.join(std::ffi::OsStr::from_bytes(rel));
        put_file(&path, content, 1_600_000_000);
        files.insert(rel.to_vec(), content.to_vec());
    };
    add(b"caf\xe9-latin1.bin", b"not UTF-8");
    add(b"\xff\xfe", b"only invalid bytes");
    add(b"new\nline", b"newline");
    add(b"back\\slash", b"backslash");
    add(b"tab\tand\rcr", b"control characters");
    add(b"pct%41#1", b"percent and hash");
    add(b" lead and trail ", b"spaces");
    add("quote\"<>|*?:日本語".as_bytes(), b"punctuation and unicode");
    add(&[b'L'; 255], b"longest name");
    add(b"empty", b"");
    add(b"dir with spaces/inner", b"inner");
    // 1,000 levels deep.
    let mut deep = Vec::new();
    for _ in 0..1000 {
        deep.extend_from_slice(b"d/");
    }
    deep.extend_from_slice(b"bottom");
    add(&deep, b"at the bottom");
    // Symlinks: loops, self, parent, dangling, absolute. Never followed.
    for (name, target) in [
        ("loop-a", "loop-b"),
        ("loop-b", "loop-a"),
        ("self", "."),
        ("up", ".."),
        ("dangling", "/no/such/target"),
        ("abs", "/etc"),
    ] {
        std::os::unix::fs::symlink(target, root.join(name)).unwrap();
    }
    // A FIFO and a socket: skipped, never opened.
    mkfifo(&root.join("fifo"));
    let sock = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
    drop(sock); // the socket file stays
    files
}

/// Everything in `files` hashed exactly, by key.
fn assert_manifest_hashes(index: &Path, files: &Files) {
    let m = manifest(index);
    for (rel, content) in files {
        let key = vouch::model::paths::key_from_slash(rel);
        let (kind, size, hash) = m.get(&key).unwrap_or_else(|| {
            panic!(
                "{} is not in the manifest",
                vouch::model::paths::escape_bytes(rel)
            )
        });
        assert_eq!(*kind, 0);
        assert_eq!(*size as usize, content.len());
        assert_eq!(
            hash.as_deref(),
            Some(blake3::hash(content).as_bytes().as_slice()),
            "{}",
            vouch::model::paths::escape_bytes(rel)
        );
    }
}

#[test]
fn hostile_tree_odd_names_deep_nesting_loops_specials_and_denied_entries() {
    let env = Env::new();
    let root = env.root.to_str().unwrap().to_string();
    let files = hostile_tree(&env.root);
    // Permission denied: a file and a directory (the test runs the scan as
    // `nobody` when it is root, so that permissions apply).
    let secret = env.root.join("secret");
    put_file(&secret, b"no access", 1_600_000_000);
    let locked = env.root.join("locked");
    put_file(&locked.join("inner"), b"hidden", 1_600_000_000);
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    open_up(env.dir.path());

    let scan_as_nobody = || {
        let mut c = vouch_cmd_as_nobody(&env.index, &[]);
        c.args(["scan", &root]);
        let started = Instant::now();
        let (code, doc, err) = run_json(c);
        (code, doc, err, started.elapsed())
    };
    let (code, doc, err, took) = scan_as_nobody();
    assert_eq!(
        code, 2,
        "unreadable entries make the scan incomplete: {err} {doc}"
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
    let denied: Vec<_> = findings(&doc)
        .into_iter()
        .filter(|(k, _)| k != "added")
        .collect();
    if is_root() {
        assert_eq!(
            denied,
            pairs(&[("unreadable", "locked"), ("unreadable", "secret")])
        );
    }
    let added = findings(&doc).iter().filter(|(k, _)| k == "added").count();
    assert_eq!(added, files.len() + 6, "every readable file and symlink");
    assert_eq!(
        counter(&doc, "special_skipped"),
        2,
        "the FIFO and the socket"
    );
    assert_eq!(
        counter(&doc, "bytes_hashed"),
        files.values().map(|c| c.len() as u64).sum::<u64>(),
        "no symlink was followed, no special file opened"
    );
    assert_manifest_hashes(&env.index, &files);
    // Odd names print escaped, and round-trip.
    let shown: BTreeSet<String> = findings(&doc).into_iter().map(|(_, p)| p).collect();
    for expected in [
        "caf\\xe9-latin1.bin",
        "\\xff\\xfe",
        "new\\nline",
        "back\\\\slash",
        "tab\tand\\rcr",
    ] {
        assert!(shown.contains(expected), "{expected} not in {shown:?}");
    }
    for p in &shown {
        assert!(vouch::model::paths::unescape(p).is_some(), "{p}");
    }

    // A rescan trusts everything it hashed, reads nothing, loses nothing.
    let (code, again, err, _) = scan_as_nobody();
    assert_eq!(code, 2, "{err}");
    assert_eq!(findings(&again), denied);
    assert_eq!(counter(&again, "unchanged"), files.len() as u64 + 6);
    assert_eq!(counter(&again, "bytes_hashed"), 0);
    assert_eq!(
        again["summary"]["merkle_root"],
        doc["summary"]["merkle_root"]
    );
    assert_eq!(integrity_check(&env.index), "ok");

    // A deep audit against a directory holding exact copies of the
    // readable files verifies every one of them, odd names included.
    let backup = env.dir.path().join("backup");
    for (rel, content) in &files {
        put_file(
            &backup.join(std::ffi::OsStr::from_bytes(rel)),
            content,
            1_600_000_000,
        );
    }
    // The backup is hostile too: symlink loops, a link out of it, a FIFO
    // and a socket. None is an object; none is followed or opened.
    std::os::unix::fs::symlink("loop-b", backup.join("loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", backup.join("loop-b")).unwrap();
    std::os::unix::fs::symlink(".", backup.join("self")).unwrap();
    std::os::unix::fs::symlink(&env.root, backup.join("out")).unwrap();
    mkfifo(&backup.join("fifo"));
    drop(std::os::unix::net::UnixListener::bind(backup.join("sock")).unwrap());
    let mut c = vouch_cmd(&env.index, &[]);
    c.args(["audit", &root, "--no-scan", "--mode", "deep", "--remote"])
        .arg(&backup);
    let (code, doc, err) = run_json(c);
    assert_eq!(code, 0, "{err}");
    assert_eq!(findings(&doc), vec![], "{err}");
    assert_eq!(counter(&doc, "verified"), files.len() as u64);
    assert_eq!(counter(&doc, "symlinks_skipped"), 6);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn hostile_tree_200k_files_in_one_directory() {
    let env = Env::new();
    let started = Instant::now();
    let big = env.root.join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..200_000 {
        std::fs::File::create(big.join(format!("{i:06}"))).unwrap();
    }
    let made = started.elapsed();
    let time_scan = || {
        let t = Instant::now();
        let doc = scan_json(&env.index, &env.root);
        (doc, t.elapsed())
    };
    let (first, first_took) = time_scan();
    let (second, second_took) = time_scan();
    eprintln!("200k files: created in {made:?}, first scan {first_took:?}, rescan {second_took:?}");
    assert_eq!(counter(&first, "added"), 200_000);
    assert_eq!(counter(&first, "files"), 200_000);
    // Empty files just written are racily clean: the rescan may hash them
    // again (0 bytes), but finds no change.
    assert_eq!(findings(&second), vec![]);
    assert_eq!(counter(&second, "unchanged"), 200_000);
    assert_eq!(
        second["summary"]["merkle_root"],
        first["summary"]["merkle_root"]
    );
    assert!(
        first_took < Duration::from_secs(90),
        "first scan took {first_took:?}"
    );
    assert!(
        second_took < Duration::from_secs(60),
        "rescan took {second_took:?}"
    );
}

/// BLAKE3 of 10 GiB of zeros (`truncate -s 10G z && b3sum z`).
const B3_10_GIB_ZEROS: &str = "28960eef7d587ab6d1627b7efe30c7a07ce2dce4871d339fdfb607cb0776e064";

#[test]
fn hostile_tree_sparse_10_gib_file_and_empty_files() {
    let env = Env::new();
    let sparse = env.root.join("sparse-10GiB");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(10 << 30)
        .unwrap();
    set_mtime(&sparse, 1_600_000_000);
    put_file(&env.root.join("empty"), b"", 1_600_000_000);
    put_file(&env.root.join("sub/empty-too"), b"", 1_600_000_000);
    let started = Instant::now();
    let doc = scan_json(&env.index, &env.root);
    let took = started.elapsed();
    eprintln!("10 GiB sparse file hashed in {took:?}");
    assert_eq!(counter(&doc, "bytes_hashed"), 10 << 30);
    let hash_of = |name: &str| {
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == name)
            .unwrap()["local"]["blake3"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(hash_of("sparse-10GiB"), B3_10_GIB_ZEROS);
    assert_eq!(hash_of("empty"), blake3::hash(b"").to_hex().as_str());
    assert_eq!(
        hash_of("sub/empty-too"),
        blake3::hash(b"").to_hex().as_str()
    );
    // Never read twice.
    let again = scan_json(&env.index, &env.root);
    assert_eq!(counter(&again, "bytes_hashed"), 0);
    assert_eq!(counter(&again, "unchanged"), 3);
}

/// Polls until `cond` or `limit`; true when `cond` held.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn hostile_tree_files_deleted_or_swapped_between_walk_and_hash() {
    // One hashing thread busy with a large file first; meanwhile the files
    // after it, already walked, are deleted, replaced by a FIFO (whose open
    // would block for ever) or by a symlink to /dev/zero (endless).
    let env = Env::new();
    let root = env.root.to_str().unwrap().to_string();
    let big = env.root.join("a-big");
    for name in ["b-vanishes", "c-becomes-fifo", "d-becomes-devzero-link"] {
        put_file(&env.root.join(name), name.as_bytes(), 1_600_000_000);
    }
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    set_mtime(&big, 1_600_000_000);
    scan_json(&env.index, &env.root);

    let mut exercised = false;
    for attempt in 0..3 {
        // Make the big file new content, so it is hashed (slowly) again.
        let size = (2u64 << 30) << attempt;
        std::fs::File::options()
            .write(true)
            .open(&big)
            .unwrap()
            .set_len(size)
            .unwrap();
        set_mtime(&big, 1_600_000_000 + attempt);
        for name in [
            "b-vanishes",
            "c-becomes-fifo",
            "d-becomes-devzero-link",
            "e-new-vanishes",
        ] {
            let p = env.root.join(name);
            let _ = std::fs::remove_file(&p);
            put_file(&p, name.as_bytes(), 1_600_000_000);
        }
        let index = env.dir.path().join(format!("race-{attempt}.sqlite3"));
        copy_index(&env.index, &index);
        let mut child = vouch_cmd(&index, &[])
            .args(["--threads", "1", "--format", "json", "scan", &root])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Once the scan has started hashing the big file, the others are
        // walked and queued behind it.
        assert!(eventually(Duration::from_secs(20), || {
            has_schema(&index)
                && ro_conn(&index)
                    .query_row(
                        "SELECT count(*) FROM runs WHERE status = 'running'",
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                    .unwrap_or(0)
                    > 0
        }));
        std::thread::sleep(Duration::from_millis(150));
        std::fs::remove_file(env.root.join("b-vanishes")).unwrap();
        std::fs::remove_file(env.root.join("e-new-vanishes")).unwrap();
        let fifo = env.root.join("c-becomes-fifo");
        std::fs::remove_file(&fifo).unwrap();
        mkfifo(&fifo);
        let link = env.root.join("d-becomes-devzero-link");
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();

        let status = wait_bounded(&mut child, Duration::from_secs(120), "a scan racing swaps");
        let out = child.wait_with_output().unwrap();
        let doc: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("exit {status:?}: {e}: {}", stderr_of(&out)));
        let found = findings(&doc);
        eprintln!("attempt {attempt}: {found:?}");
        let detail = |path: &str| -> String {
            doc["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["path"] == path)
                .map(|f| format!("{} {}", f["kind"], f["detail"]))
                .collect::<Vec<_>>()
                .join("; ")
        };
        // Whatever the timing: the big file is hashed exactly, nothing
        // that changed under the scan is stored with a hash.
        let m = manifest(&index);
        assert_eq!(m[&b"a-big".to_vec()].1 as u64, size);
        for name in ["c-becomes-fifo", "d-becomes-devzero-link", "e-new-vanishes"] {
            if let Some((kind, _, hash)) = m.get(name.as_bytes()) {
                assert!(
                    *kind != 0
                        || hash.as_deref()
                            == Some(blake3::hash(name.as_bytes()).as_bytes().as_slice()),
                    "{name} stored with a hash of something else"
                );
            }
        }
        assert_eq!(integrity_check(&index), "ok");
        // Did the swaps happen after the walk (the case under test)?
        if detail("c-becomes-fifo").contains("unreadable") {
            exercised = true;
            assert_eq!(status.code(), Some(2), "incomplete");
            assert!(
                detail("c-becomes-fifo").contains("regular file"),
                "{}",
                detail("c-becomes-fifo")
            );
            assert!(
                detail("d-becomes-devzero-link").contains("unreadable"),
                "{}",
                detail("d-becomes-devzero-link")
            );
            assert_eq!(
                detail("b-vanishes"),
                "\"deleted\" \"vanished during the scan\""
            );
            assert_eq!(
                detail("e-new-vanishes"),
                "",
                "a new file that vanished is no finding"
            );
            break;
        }
    }
    assert!(exercised, "the swaps never landed between walk and hash");
}

#[test]
fn hostile_tree_file_appended_while_hashed_is_never_stored_half_read() {
    // A background thread appends to a 24 MiB file (multi-threaded hashing
    // path) while scans hash it. The content is a fixed pattern, so every
    // consistent state is a prefix of it: a stored hash must be the hash of
    // exactly `size` bytes of the pattern, or there must be no new hash
    // and an `unreadable` finding.
    let env = Env::new();
    let root = env.root.to_str().unwrap().to_string();
    let pattern = Arc::new(noise(42, 48 << 20));
    let path = env.root.join("growing.log");
    std::fs::write(&path, &pattern[..24 << 20]).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let appender = {
        let (pattern, stop, path) = (pattern.clone(), stop.clone(), path.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::File::options().append(true).open(&path).unwrap();
            // Bursts of appends (64 KiB every 2 ms for 100 ms), then quiet
            // spells, so some scans race an append and some do not.
            let mut len = 24 << 20;
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && len < pattern.len() {
                i += 1;
                if i.is_multiple_of(50) {
                    std::thread::sleep(Duration::from_millis(150));
                }
                let n = (64 << 10).min(pattern.len() - len);
                f.write_all(&pattern[len..len + n]).unwrap();
                len += n;
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let mut outcomes = Vec::new();
    for _ in 0..8 {
        let mut c = vouch_cmd(&env.index, &[]);
        c.args(["scan", &root]);
        let (code, doc, err) = run_json(c);
        let unread = findings(&doc).iter().any(|(k, _)| k == "unreadable");
        assert!(
            code == 0 || code == 1 || (code == 2 && unread),
            "exit {code}: {err}"
        );
        let conn = ro_conn(&env.index);
        let (size, hash): (i64, Vec<u8>) = match conn.query_row(
            "SELECT size, blake3 FROM entries WHERE path = ?1 AND until_run IS NULL",
            [b"growing.log".as_slice()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        ) {
            Ok(v) => v,
            Err(_) => {
                assert_eq!(
                    findings(&doc),
                    pairs(&[("unreadable", "growing.log")]),
                    "no stored hash without an unreadable finding"
                );
                outcomes.push("unreadable".to_string());
                continue;
            }
        };
        assert_eq!(
            hash,
            blake3::hash(&pattern[..size as usize]).as_bytes().to_vec(),
            "the stored hash of growing.log is not that of its first {size} bytes"
        );
        let unreadable = findings(&doc).iter().any(|(k, _)| k == "unreadable");
        outcomes.push(format!(
            "size {size}{}",
            if unreadable {
                " (kept; unreadable now)"
            } else {
                ""
            }
        ));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    appender.join().unwrap();
    eprintln!("appended while hashed: {outcomes:?}");
    // Once it rests, it is hashed: exactly its bytes.
    let final_content = std::fs::read(&path).unwrap();
    scan_json(&env.index, &env.root);
    let (size, hash): (i64, Vec<u8>) = ro_conn(&env.index)
        .query_row(
            "SELECT size, blake3 FROM entries WHERE path = ?1 AND until_run IS NULL",
            [b"growing.log".as_slice()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(size as usize, final_content.len());
    assert_eq!(hash, blake3::hash(&final_content).as_bytes().to_vec());
}

// ---------------------------------------------------------------------------
// Hostile remotes: faults injected by a proxy in front of a real S3 server.

struct FaultFixture {
    env: Env,
    server: S3Server,
    proxy: Proxy,
    /// AWS_* pointing at the proxy.
    envs: Vec<(String, String)>,
    bucket: PathBuf,
    victim: Vec<u8>,
}

const VICTIM: &str = "victim.bin";
const GOOD: usize = 4;

fn fault_fixture() -> FaultFixture {
    let env = Env::new();
    let served = env.dir.path().join("s3");
    std::fs::create_dir(&served).unwrap();
    let server = S3Server::start(&served);
    let bucket = server.create_bucket("bkt").join("p");
    let victim = noise(7, 256 << 10);
    put_file(&env.root.join(VICTIM), &victim, 1_600_000_000);
    put_file(&bucket.join(VICTIM), &victim, 1_600_000_000);
    for i in 0..GOOD as u64 {
        let content = noise(100 + i, 4096);
        put_file(&env.root.join(format!("ok/f{i}")), &content, 1_600_000_000);
        put_file(&bucket.join(format!("ok/f{i}")), &content, 1_600_000_000);
    }
    let proxy = Proxy::start(&server.endpoint);
    let envs = crate::support::s3::aws_env(&proxy.endpoint, &server.access_key, &server.secret_key);
    FaultFixture {
        env,
        server,
        proxy,
        envs,
        bucket,
        victim,
    }
}

impl FaultFixture {
    /// A deep audit through the proxy on a fresh index (nothing cached).
    fn audit(&self, name: &str, args: &[&str]) -> (i32, Value, String, Duration) {
        let index = self.env.dir.path().join(format!("{name}.sqlite3"));
        let mut c = vouch_cmd(&index, &self.envs);
        c.arg("audit")
            .arg(&self.env.root)
            .args(["--remote", "s3://bkt/p", "--mode", "deep"])
            .args(args);
        let started = Instant::now();
        let (code, doc, err) = run_json(c);
        (code, doc, err, started.elapsed())
    }

    /// The victim's finding (kind, detail), or `None` when it verified.
    fn victim(&self, doc: &Value) -> Option<(String, String)> {
        let f = doc["findings"]
            .as_array()?
            .iter()
            .find(|f| f["path"] == VICTIM && f["kind"] != "added")?;
        Some((
            f["kind"].as_str().unwrap().to_string(),
            f["detail"].as_str().unwrap_or("").to_string(),
        ))
    }
}

#[test]
fn hostile_remote_faults_never_yield_a_false_ok() {
    let fx = fault_fixture();
    let size = fx.victim.len();
    let victim_target = format!("/bkt/p/{VICTIM}");
    type Check = fn(&Option<(String, String)>) -> bool;
    let verified: Check = |o| o.is_none();
    let unreadable: Check = |o| o.as_ref().is_some_and(|(k, _)| k == "unreadable");
    let short_read: Check = |o| {
        o.as_ref().is_some_and(|(k, d)| {
            k == "unreadable" && d.contains("read 261144 bytes of an object listed at 262144 bytes")
        })
    };
    let corrupt: Check = |o| o.as_ref().is_some_and(|(k, _)| k == "corrupt");
    // (name, fault, times, extra args, expected victim outcome, GETs of the
    // victim expected (None: any)).
    type Case<'a> = (&'a str, Fault, Times, Vec<&'a str>, Check, Option<usize>);
    let cases: Vec<Case> = vec![
        (
            "503 SlowDown twice then OK",
            Fault::Status(503),
            Times::First(2),
            vec!["--retries", "3"],
            verified,
            Some(3),
        ),
        (
            "500 always",
            Fault::Status(500),
            Times::All,
            vec!["--retries", "2"],
            unreadable,
            Some(3),
        ),
        (
            "503 SlowDown always",
            Fault::Status(503),
            Times::All,
            vec!["--retries", "1"],
            unreadable,
            Some(2),
        ),
        (
            "403 on the object",
            Fault::Status(403),
            Times::All,
            vec!["--retries", "3"],
            unreadable,
            Some(1),
        ),
        (
            "reset mid-body once",
            Fault::ResetAfter(100_000),
            Times::First(1),
            vec!["--retries", "2"],
            verified,
            None,
        ),
        // Each attempt resumes where the last one broke (a Range request
        // pinned to the ETag): 1,000 bytes per attempt never add up.
        (
            "reset mid-body always",
            Fault::ResetAfter(1000),
            Times::All,
            vec!["--retries", "2"],
            unreadable,
            Some(3),
        ),
        (
            "reset before the body always",
            Fault::ResetAfter(0),
            Times::All,
            vec!["--retries", "2"],
            unreadable,
            None,
        ),
        // 100,000 bytes per attempt: three attempts deliver all of it.
        (
            "reset mid-body, resumed in ranges",
            Fault::ResetAfter(100_000),
            Times::All,
            vec!["--retries", "3"],
            verified,
            Some(3),
        ),
        (
            "short body once",
            Fault::ShortBody { missing: 1000 },
            Times::First(1),
            vec!["--retries", "2"],
            verified,
            None,
        ),
        (
            "short body always",
            Fault::ShortBody { missing: 1000 },
            Times::All,
            vec!["--retries", "2"],
            unreadable,
            None,
        ),
        (
            "short close-delimited body (looks complete)",
            Fault::ShortBodyNoLength { missing: 1000 },
            Times::All,
            vec!["--retries", "2"],
            unreadable,
            None,
        ),
        (
            "body cut short with a matching Content-Length (looks complete)",
            Fault::Rewrite(Arc::new(|b: &[u8]| b[..b.len() - 1000].to_vec())),
            Times::All,
            vec![],
            short_read,
            Some(1),
        ),
        (
            "bytes altered in flight",
            Fault::Rewrite(Arc::new(|b: &[u8]| {
                let mut b = b.to_vec();
                b[1234] ^= 0x40;
                b
            })),
            Times::All,
            vec![],
            corrupt,
            Some(1),
        ),
        (
            "body stalls past --timeout",
            Fault::StallAfter(100_000),
            Times::All,
            vec!["--timeout", "1", "--retries", "1"],
            unreadable,
            None,
        ),
        (
            "answer later than --timeout",
            Fault::Delay(Duration::from_secs(3)),
            Times::All,
            vec!["--timeout", "1", "--retries", "1"],
            unreadable,
            Some(2),
        ),
        (
            "slow answer within --timeout",
            Fault::Delay(Duration::from_millis(300)),
            Times::All,
            vec!["--timeout", "5"],
            verified,
            Some(1),
        ),
    ];
    let mut table = Vec::new();
    for (i, (name, fault, times, args, expect, gets)) in cases.into_iter().enumerate() {
        fx.proxy.clear_rules();
        fx.proxy.clear_log();
        fx.proxy.on(Some(Op::Get), &victim_target, times, fault);
        let (code, doc, err, took) = fx.audit(&format!("case{i}"), &args);
        let outcome = fx.victim(&doc);
        let victim_gets: Vec<_> = fx
            .proxy
            .requests()
            .into_iter()
            .filter(|l| l.op == Op::Get && l.target.contains(&victim_target))
            .collect();
        table.push(format!(
            "{name}: {outcome:?}, {} GETs, {took:?}",
            victim_gets.len()
        ));
        assert!(
            expect(&outcome),
            "{name}: victim outcome {outcome:?} (exit {code}: {err})"
        );
        // An object that could not be read makes the run incomplete (exit 2).
        let want = match &outcome {
            None => 0,
            Some((kind, _)) if kind == "unreadable" => 2,
            Some(_) => 1,
        };
        assert_eq!(code, want, "{name}: {outcome:?} {err}");
        // The other objects are unaffected.
        assert_eq!(
            counter(&doc, "verified"),
            GOOD as u64 + u64::from(outcome.is_none()),
            "{name}"
        );
        if let Some(n) = gets {
            assert_eq!(
                victim_gets.len(),
                n,
                "{name}: GETs of the victim: {victim_gets:?}"
            );
        }
        if outcome.is_none() {
            // Verified: the bytes were delivered in full (the last GET
            // completed; a resumed read adds up to the whole object).
            let last = victim_gets.last().unwrap();
            assert!(
                last.complete,
                "{name}: verified from an incomplete read: {victim_gets:?}"
            );
            let delivered: u64 = victim_gets.iter().map(|l| l.body_sent).sum();
            assert!(
                delivered >= size as u64,
                "{name}: {delivered} of {size} bytes delivered"
            );
            assert_eq!(
                counter(&doc, "bytes_read"),
                (size + GOOD * 4096) as u64,
                "{name}"
            );
        }
        assert!(took < Duration::from_secs(30), "{name}: took {took:?}");
    }
    eprintln!("faults:\n  {}", table.join("\n  "));
}

#[test]
fn hostile_remote_listing_faults_and_objects_deleted_after_listing() {
    let fx = fault_fixture();

    // A listing answered 503 once is retried.
    fx.proxy
        .on(Some(Op::List), "/bkt", Times::First(1), Fault::Status(503));
    let (code, doc, err, _) = fx.audit("list-503-once", &["--retries", "2"]);
    assert_eq!(
        (code, counter(&doc, "verified")),
        (0, GOOD as u64 + 1),
        "{err}"
    );

    // A listing that always fails is trouble: exit 2, one line, and the
    // index is never created (the remote is checked first).
    fx.proxy.clear_rules();
    fx.proxy
        .on(Some(Op::List), "/bkt", Times::All, Fault::Status(500));
    let (code, doc, err, _) = fx.audit("list-500-always", &["--retries", "1"]);
    assert_eq!(code, 2, "{doc}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("s3://bkt/p"), "{err}");
    assert!(!fx.env.dir.path().join("list-500-always.sqlite3").exists());

    // A listing that repeats a key: one outcome for it, not two.
    fx.proxy.clear_rules();
    fx.proxy.on(
        Some(Op::List),
        "/bkt",
        Times::All,
        Fault::Rewrite(Arc::new(|body: &[u8]| {
            let text = String::from_utf8_lossy(body).into_owned();
            match (text.find("<Contents>"), text.find("</Contents>")) {
                (Some(a), Some(b)) => {
                    let one = &text[a..b + "</Contents>".len()];
                    text.replacen(one, &format!("{one}{one}"), 1).into_bytes()
                }
                _ => body.to_vec(),
            }
        })),
    );
    let (code, doc, err, _) = fx.audit("list-repeats", &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(counter(&doc, "verified"), GOOD as u64 + 1);
    assert_eq!(counter(&doc, "remote_objects"), GOOD as u64 + 1);
    assert_eq!(counter(&doc, "extra"), 0);
    assert!(
        fx.proxy
            .requests()
            .iter()
            .any(|l| l.fault == Some("rewrite"))
    );

    // An object deleted between the listing and its read is missing.
    fx.proxy.clear_rules();
    let doomed = fx.bucket.join(VICTIM);
    fx.proxy.on(
        Some(Op::Get),
        &format!("/bkt/p/{VICTIM}"),
        Times::All,
        Fault::Hook(Arc::new(move || {
            let _ = std::fs::remove_file(&doomed);
        })),
    );
    let (code, doc, err, _) = fx.audit("deleted-after-listing", &[]);
    assert_eq!(code, 1, "{err}");
    let (kind, detail) = fx.victim(&doc).expect("a finding for the deleted object");
    assert_eq!(kind, "missing");
    assert!(detail.contains("deleted after it was listed"), "{detail}");
    assert_eq!(counter(&doc, "verified"), GOOD as u64);
    drop(fx.server);
}

#[test]
fn hostile_remote_odd_keys_on_s3() {
    // What S3 (and object_store) can hold verifies; a name no object key
    // can hold is `missing` with a reason; a bucket key object_store
    // cannot parse is listed all the same.
    let env = Env::new();
    let root = env.root.to_str().unwrap().to_string();
    let served = env.dir.path().join("s3");
    std::fs::create_dir(&served).unwrap();
    let server = S3Server::start(&served);
    let bucket = server.create_bucket("bkt");
    let names: [&[u8]; 7] = [
        b"back\\slash",
        b"pct%41#1",
        b"sp ace/and+plus",
        "quote\"'<>|*?=&;日本語".as_bytes(),
        b"curly{}[]^`~",
        b"a.b/.hidden",
        &[b'L'; 200],
    ];
    for (i, name) in names.iter().enumerate() {
        let content = noise(i as u64, 1000 + i);
        put_file(
            &env.root.join(std::ffi::OsStr::from_bytes(name)),
            &content,
            1_600_000_000,
        );
        put_file(
            &bucket.join(std::ffi::OsStr::from_bytes(name)),
            &content,
            1_600_000_000,
        );
    }
    put_file(
        &env.root.join(std::ffi::OsStr::from_bytes(b"caf\xe9")),
        b"latin-1",
        1_600_000_000,
    );
    let mut c = vouch_cmd(&env.index, &server.env());
    c.args(["audit", &root, "--remote", "s3://bkt", "--mode", "deep"]);
    let (code, doc, err) = run_json(c);
    assert_eq!(code, 1, "{err}");
    assert_eq!(counter(&doc, "verified"), names.len() as u64);
    let missing: Vec<_> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "missing")
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0].0, "caf\\xe9");
    assert!(missing[0].1.contains("not UTF-8"), "{missing:?}");

    // A key with a newline (object_store refuses to parse it): listed as
    // it is (issue 17), `extra`, and the rest of the audit goes on.
    put_file(&bucket.join("new\nline"), b"x", 1_600_000_000);
    let mut c = vouch_cmd(&env.index, &server.env());
    c.args(["audit", &root, "--remote", "s3://bkt", "--mode", "deep"]);
    let (code, doc, err) = run_json(c);
    assert_eq!(code, 1, "{err}");
    assert_eq!(counter(&doc, "verified"), names.len() as u64);
    assert!(
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "extra" && f["path"] == "new\\nline"),
        "{doc}"
    );
}

// ---------------------------------------------------------------------------
// Bad input: exit 2, one clear line, the index byte for byte as it was.

#[test]
fn bad_input_is_one_clear_line_exit_2_and_leaves_the_index_untouched() {
    let env = Env::new();
    let root = env.root.to_str().unwrap().to_string();
    for i in 0..3000u64 {
        put_file(
            &env.root.join(format!("d{}/f{i:04}", i % 10)),
            &noise(i, 64),
            1_600_000_000,
        );
    }
    let backup = env.dir.path().join("backup");
    std::fs::create_dir(&backup).unwrap();
    scan_json(&env.index, &env.root);
    assert!(!PathBuf::from(format!("{}-wal", env.index.display())).exists());
    let valid = std::fs::read(&env.index).unwrap();
    let page = 4096;
    assert!(
        valid.len() > 40 * page,
        "a multi-page index: {}",
        valid.len()
    );

    let newer = {
        let copy = env.dir.path().join("newer.sqlite3");
        std::fs::write(&copy, &valid).unwrap();
        let conn = Connection::open(&copy).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        std::fs::read(&copy).unwrap()
    };
    let mid = (valid.len() / 2 / page) * page;
    let mut garbage = valid.clone();
    garbage[mid..mid + page].copy_from_slice(&noise(1, page));
    let mut zero_header = valid.clone();
    zero_header[..100].fill(0);
    let variants: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated to half",
            valid[..valid.len() / 2].to_vec(),
            "corrupt",
        ),
        (
            "short by one page",
            valid[..valid.len() - page].to_vec(),
            "corrupt",
        ),
        ("a page of garbage in the middle", garbage, "corrupt"),
        ("zeroed header", zero_header, "not a vouch index"),
        (
            "not a database",
            b"my thesis, not an index".to_vec(),
            "not a vouch index",
        ),
        ("from a newer vouch", newer, "newer than this vouch"),
    ];
    for (what, bytes, says) in &variants {
        for cmd in ["scan", "audit"] {
            let index = env.dir.path().join("bad.sqlite3");
            copy_index(Path::new("/nonexistent-index"), &index);
            std::fs::write(&index, bytes).unwrap();
            let mut c = vouch_cmd(&index, &[]);
            c.args([cmd, &root]);
            if cmd == "audit" {
                c.arg("--remote").arg(&backup);
            }
            let out = c.output().unwrap();
            let err = stderr_of(&out);
            assert_eq!(out.status.code(), Some(2), "{what}, {cmd}: {err}");
            assert_eq!(err.lines().count(), 1, "{what}, {cmd}: {err}");
            assert!(err.contains(says), "{what}, {cmd}: {err}");
            assert!(
                err.contains("bad.sqlite3"),
                "{what}, {cmd}: names the index: {err}"
            );
            assert!(
                std::fs::read(&index).unwrap() == *bytes,
                "{what}, {cmd}: the index file was modified"
            );
        }
    }

    // Remotes that cannot be used: refused before the index is touched.
    let served = env.dir.path().join("s3");
    std::fs::create_dir(&served).unwrap();
    let mut server = S3Server::start(&served);
    server.create_bucket("real");
    let envs = server.env();
    let remotes = [
        ("ftp://host/x", "unknown scheme"),
        ("/no/such/backup/dir", "does not exist"),
        ("s3://no-such-bucket/x", "s3://no-such-bucket/x"),
        ("gs://", "no bucket"),
    ];
    let check = |remote: &str, says: &str| {
        let mut c = vouch_cmd(&env.index, &envs);
        c.args(["audit", &root, "--retries", "1", "--remote", remote]);
        let out = c.output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{remote}: {err}");
        assert_eq!(err.lines().count(), 1, "{remote}: {err}");
        assert!(err.contains(says), "{remote}: {err}");
        assert!(
            std::fs::read(&env.index).unwrap() == valid,
            "{remote}: the index was modified"
        );
    };
    for (remote, says) in remotes {
        check(remote, says);
    }
    server.stop();
    check("s3://real/x", "s3://real/x");
}

// ---------------------------------------------------------------------------
// Read-only: vouch never writes to the tree or to the remote.

/// Every entry under `dir`: relative path -> (mode, mtime ns, content of a
/// file or target of a link).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, i128, Vec<u8>)> {
    use std::os::unix::ffi::OsStringExt;
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let meta = std::fs::symlink_metadata(&d).unwrap();
        let mtime = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
        let content = if meta.is_file() {
            std::fs::read(&d).unwrap()
        } else if meta.file_type().is_symlink() {
            std::fs::read_link(&d).unwrap().into_os_string().into_vec()
        } else {
            Vec::new()
        };
        out.insert(
            d.strip_prefix(dir).unwrap().to_path_buf(),
            (meta.mode(), mtime, content),
        );
        if meta.is_dir() {
            for e in std::fs::read_dir(&d).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

/// chmod -R a-w (files 0444, directories 0555).
fn make_read_only(dir: &Path) {
    let meta = std::fs::symlink_metadata(dir).unwrap();
    if meta.is_dir() {
        for e in std::fs::read_dir(dir).unwrap() {
            make_read_only(&e.unwrap().path());
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    } else if meta.is_file() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
}

#[test]
fn read_only_scan_and_audits_only_read_the_tree_and_the_bucket() {
    let env = Env::new();
    let root = env.root.to_str().unwrap().to_string();
    let served = env.dir.path().join("s3");
    std::fs::create_dir(&served).unwrap();
    let server = S3Server::start(&served);
    let bucket = server.create_bucket("bkt");
    for i in 0..30u64 {
        let rel = format!("d{}/sub{}/f{i}", i % 3, i % 2);
        let content = noise(i, 3000 + i as usize);
        put_file(&env.root.join(&rel), &content, 1_600_000_000);
        if i != 7 {
            let mut copy = content.clone();
            if i == 11 {
                copy[5] ^= 1;
            }
            put_file(&bucket.join(&rel), &copy, 1_600_000_000);
        }
    }
    std::os::unix::fs::symlink("d0", env.root.join("link")).unwrap();
    make_read_only(&env.root);
    open_up(env.dir.path());
    let tree_before = snapshot(&env.root);
    let bucket_before = snapshot(&served);

    let proxy = Proxy::start(&server.endpoint);
    let envs = crate::support::s3::aws_env(&proxy.endpoint, &server.access_key, &server.secret_key);
    let run = |args: &[&str]| {
        let mut c = vouch_cmd_as_nobody(&env.index, &envs);
        c.args(args);
        run_json(c)
    };
    let (code, doc, err) = run(&["scan", &root, "--md5"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(counter(&doc, "added"), 31);
    for mode in ["quick", "deep", "scrub"] {
        let (code, doc, err) = run(&["audit", &root, "--remote", "s3://bkt", "--mode", mode]);
        assert_eq!(code, 1, "{mode}: {err}");
        assert_eq!(counter(&doc, "missing"), 1, "{mode}");
        if mode != "quick" {
            assert_eq!(counter(&doc, "corrupt"), 1, "{mode}");
        }
    }
    let ops = proxy.ops();
    assert!(ops.contains("LIST") && ops.contains("GET"), "{ops:?}");
    assert!(
        ops.iter().all(|op| ["GET", "HEAD", "LIST"].contains(op)),
        "the S3 server saw more than reads: {ops:?} ({:?})",
        proxy
            .requests()
            .iter()
            .map(|l| format!("{} {}", l.method, l.target))
            .collect::<Vec<_>>()
    );
    assert!(
        snapshot(&env.root) == tree_before,
        "the tree changed (bytes, modes or mtimes)"
    );
    assert!(snapshot(&served) == bucket_before, "the bucket changed");
    // Leave the temp dir removable.
    let _ = Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(&env.root)
        .status();
}

// ---------------------------------------------------------------------------
// Model checks of the audit core and the Merkle folder.

mod model {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;
    use vouch::engine::audit::{Decision, Mode, decide};
    use vouch::engine::join::{Pair, merge_join};
    use vouch::engine::merkle::{DirHash, Folder};
    use vouch::model::{Entry, EntryKind, RemoteRow, Stat};

    // The model world: a piece of content is a small id; several share a
    // size, so equal sizes do not imply equal content.
    fn size_of(c: u8) -> u64 {
        (u64::from(c) / 2 + 1) * 10
    }
    fn b3(c: u8) -> [u8; 32] {
        *blake3::hash(&[c]).as_bytes()
    }
    /// The MD5 of content `c` (synthetic: only compared, never computed).
    fn md5(c: u8) -> [u8; 16] {
        [0xA0 | c; 16]
    }

    #[derive(Debug, Clone)]
    struct LocalSpec {
        content: u8,
        hashed: bool,
        md5_known: bool,
    }

    #[derive(Debug, Clone, Copy)]
    enum Etag {
        None,
        /// A single-part upload: the ETag is the content's MD5.
        Md5,
        /// Multipart: `md5-of-md5s-N`, never the content's MD5.
        Multipart,
        /// SSE-KMS: looks like an MD5 but is not one.
        Sse,
    }

    #[derive(Debug, Clone, Copy)]
    enum Cache {
        /// Never read.
        None,
        /// Read in full at the current fingerprint.
        Current,
        /// Read when the object was other content, at another fingerprint.
        Stale(u8),
        /// Read at the current fingerprint but marked untrustworthy (a read
        /// that raced a rewrite without an ETag).
        Racy,
        /// A recorded size that is not the listed one.
        OtherSize,
    }

    #[derive(Debug, Clone)]
    struct RemoteSpec {
        content: u8,
        etag: Etag,
        version: Option<u8>,
        last_modified: i64,
        cache: Cache,
    }

    fn local_spec() -> impl Strategy<Value = LocalSpec> {
        (0u8..6, prop::bool::weighted(0.9), any::<bool>()).prop_map(
            |(content, hashed, md5_known)| LocalSpec {
                content,
                hashed,
                md5_known,
            },
        )
    }

    fn remote_spec() -> impl Strategy<Value = RemoteSpec> {
        let etag = prop_oneof![
            Just(Etag::None),
            Just(Etag::Md5),
            Just(Etag::Multipart),
            Just(Etag::Sse)
        ];
        let cache = prop_oneof![
            Just(Cache::None),
            Just(Cache::Current),
            (0u8..6).prop_map(Cache::Stale),
            Just(Cache::Racy),
            Just(Cache::OtherSize),
        ];
        (0u8..6, etag, proptest::option::of(0u8..3), 0i64..3, cache).prop_map(
            |(content, etag, version, last_modified, cache)| RemoteSpec {
                content,
                etag,
                version,
                last_modified,
                cache,
            },
        )
    }

    /// Keys from a tiny alphabet with the separator, invalid UTF-8, a
    /// newline and '/': many are prefixes of one another.
    fn key() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop::sample::select(vec![b'a', b'b', 0u8, 0xff, b'\n', b'/', b'.']),
            0..4,
        )
    }

    fn entry(key: &[u8], l: &LocalSpec) -> Entry {
        Entry {
            path: key.to_vec(),
            kind: EntryKind::File,
            stat: Stat {
                size: size_of(l.content),
                mtime_ns: 1,
                ctime_ns: 1,
                inode: 1,
            },
            blake3: l.hashed.then(|| b3(l.content)),
            md5: (l.hashed && l.md5_known).then(|| md5(l.content)),
            sha256: None,
            target: None,
            since_run: 1,
            trusted_blake3: None,
            crc64nvme: None,
        }
    }

    fn remote_row(key: &[u8], r: &RemoteSpec) -> RemoteRow {
        let etag = match r.etag {
            Etag::None => None,
            Etag::Md5 => Some(format!("\"{}\"", hex::encode(md5(r.content)))),
            Etag::Multipart => Some(format!("\"{}-3\"", hex::encode(md5(r.content)))),
            Etag::Sse => Some(format!("\"{}\"", hex::encode([0xE0 | r.content; 16]))),
        };
        let mut row = RemoteRow {
            key: key.to_vec(),
            size: size_of(r.content),
            etag,
            version: r.version.map(|v| format!("v{v}")),
            last_modified: r.last_modified,
            storage_class: None,
            verified_blake3: None,
            verified_fingerprint: None,
            verified_size: None,
            verified_at: None,
            verified_method: Some(vouch::model::Proof::Read),
        };
        let current = row.listed().fingerprint();
        match r.cache {
            Cache::None => {}
            Cache::Current => {
                row.verified_blake3 = Some(b3(r.content));
                row.verified_fingerprint = Some(current);
                row.verified_size = Some(row.size);
                row.verified_at = Some(1);
            }
            Cache::Stale(then) => {
                row.verified_blake3 = Some(b3(then));
                row.verified_fingerprint = Some(format!("etag:\"stale-{then}\""));
                row.verified_size = Some(size_of(then));
                row.verified_at = Some(1);
            }
            Cache::Racy => {
                row.verified_blake3 = Some(b3(r.content));
                row.verified_fingerprint = Some(format!("{current}:racy"));
                row.verified_size = Some(row.size);
                row.verified_at = Some(1);
            }
            Cache::OtherSize => {
                row.verified_blake3 = Some(b3(r.content));
                row.verified_fingerprint = Some(current);
                row.verified_size = Some(row.size + 1);
                row.verified_at = Some(1);
            }
        }
        row
    }

    /// The outcome of one key, as the reference sees it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Outcome {
        Missing,
        Extra,
        SizeMismatch,
        Verified { by_md5: bool },
        Corrupt,
        Unverified,
        Read,
    }

    /// The reference: what is provable in the model world, written
    /// independently of `decide`.
    fn reference(l: &LocalSpec, r: &RemoteSpec, mode: Mode, scrub: bool) -> Outcome {
        if size_of(l.content) != size_of(r.content) {
            return Outcome::SizeMismatch;
        }
        if !l.hashed {
            return Outcome::Unverified;
        }
        if scrub {
            return Outcome::Read;
        }
        if matches!(r.cache, Cache::Current) {
            return if r.content == l.content {
                Outcome::Verified { by_md5: false }
            } else {
                Outcome::Corrupt
            };
        }
        // A deep run reads: an MD5 ETag is no proof for it.
        if matches!(r.etag, Etag::Md5)
            && l.md5_known
            && r.content == l.content
            && mode != Mode::Deep
        {
            return Outcome::Verified { by_md5: true };
        }
        if mode == Mode::Deep {
            Outcome::Read
        } else {
            Outcome::Unverified
        }
    }

    fn outcome_of(d: Decision) -> Outcome {
        match d {
            Decision::Verified { by_md5 } => Outcome::Verified { by_md5 },
            Decision::Corrupt { .. } => Outcome::Corrupt,
            Decision::Unverified(_) => Outcome::Unverified,
            Decision::Read => Outcome::Read,
        }
    }

    fn mode() -> impl Strategy<Value = Mode> {
        prop_oneof![Just(Mode::Quick), Just(Mode::Deep), Just(Mode::Scrub)]
    }

    /// A sorted listing with some keys repeated (a misbehaving listing).
    fn with_repeats<T: Clone>(items: Vec<T>, repeat: &[bool]) -> Vec<T> {
        let mut out = Vec::new();
        for (i, it) in items.into_iter().enumerate() {
            if repeat.get(i).copied().unwrap_or(false) {
                out.push(it.clone());
            }
            out.push(it);
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// merge_join + decide against the reference: exactly one outcome
        /// per key, in key order, and `verified` only when the content is
        /// proven equal.
        #[test]
        fn model_audit_core_matches_the_reference(
            locals in prop::collection::btree_map(key(), local_spec(), 0..12),
            remotes in prop::collection::btree_map(key(), remote_spec(), 0..12),
            local_repeats in prop::collection::vec(prop::bool::weighted(0.1), 12),
            remote_repeats in prop::collection::vec(prop::bool::weighted(0.2), 12),
            mode in mode(),
            scrub in prop::collection::vec(any::<bool>(), 12),
        ) {
            let scrubbed: BTreeSet<Vec<u8>> = remotes
                .keys()
                .zip(&scrub)
                .filter(|(_, s)| **s && mode == Mode::Scrub)
                .map(|(k, _)| k.clone())
                .collect();
            let local_rows: Vec<Entry> = locals.iter().map(|(k, l)| entry(k, l)).collect();
            let remote_rows: Vec<RemoteRow> = remotes.iter().map(|(k, r)| remote_row(k, r)).collect();
            let local_rows = with_repeats(local_rows, &local_repeats);
            let remote_rows = with_repeats(remote_rows, &remote_repeats);

            let mut got: Vec<(Vec<u8>, Outcome)> = Vec::new();
            merge_join(
                local_rows.into_iter().map(Ok),
                remote_rows.into_iter().map(Ok),
                |pair| {
                    got.push(match pair {
                        Pair::LocalOnly(l) => (l.path, Outcome::Missing),
                        Pair::RemoteOnly(r) => (r.key, Outcome::Extra),
                        Pair::Both(l, r) => {
                            let o = if l.stat.size != r.size {
                                Outcome::SizeMismatch
                            } else {
                                outcome_of(decide(&l, &r, mode, scrubbed.contains(&r.key)))
                            };
                            (l.path, o)
                        }
                    });
                    Ok(())
                },
            )
            .unwrap();

            let keys: BTreeSet<&Vec<u8>> = locals.keys().chain(remotes.keys()).collect();
            let want: Vec<(Vec<u8>, Outcome)> = keys
                .into_iter()
                .map(|k| {
                    let o = match (locals.get(k), remotes.get(k)) {
                        (Some(_), None) => Outcome::Missing,
                        (None, Some(_)) => Outcome::Extra,
                        (Some(l), Some(r)) => reference(l, r, mode, scrubbed.contains(k)),
                        (None, None) => unreachable!(),
                    };
                    (k.clone(), o)
                })
                .collect();
            prop_assert_eq!(&got, &want);
            // The rule that matters most, stated on its own.
            for (k, o) in &got {
                if let Outcome::Verified { .. } = o {
                    prop_assert_eq!(locals[k].content, remotes[k].content);
                }
                if *o == Outcome::Corrupt {
                    prop_assert_ne!(locals[k].content, remotes[k].content);
                }
            }
        }

        /// Input out of key order is an error, never a wrong pairing.
        #[test]
        fn model_merge_join_refuses_unsorted_input(
            keys in prop::collection::btree_set(key(), 2..8),
            swap in any::<prop::sample::Index>(),
            remote_side in any::<bool>(),
        ) {
            let mut keys: Vec<Vec<u8>> = keys.into_iter().collect();
            let i = swap.index(keys.len() - 1);
            keys.swap(i, i + 1);
            let l = LocalSpec { content: 0, hashed: true, md5_known: false };
            let r = RemoteSpec { content: 0, etag: Etag::None, version: None, last_modified: 0, cache: Cache::None };
            let sorted_other: Vec<Vec<u8>> = Vec::new();
            let result = if remote_side {
                merge_join(
                    sorted_other.iter().map(|k| Ok(entry(k, &l))),
                    keys.iter().map(|k| Ok(remote_row(k, &r))),
                    |_| Ok(()),
                )
            } else {
                merge_join(
                    keys.iter().map(|k| Ok(entry(k, &l))),
                    sorted_other.iter().map(|k| Ok(remote_row(k, &r))),
                    |_| Ok(()),
                )
            };
            prop_assert!(result.is_err());
        }
    }

    // --- Merkle ---------------------------------------------------------

    /// A tree: files (path -> (kind, size, hash byte)) and empty dirs.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Tree {
        files: BTreeMap<Vec<String>, (EntryKind, u64, u8)>,
        empty_dirs: BTreeSet<Vec<String>>,
    }

    fn component() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "a.b", "a-", "a b"]).prop_map(str::to_string)
    }

    fn tree() -> impl Strategy<Value = Tree> {
        let file = (
            prop::collection::vec(component(), 1..4),
            prop_oneof![Just(EntryKind::File), Just(EntryKind::Symlink)],
            0u64..3,
            0u8..3,
        );
        (
            prop::collection::vec(file, 0..8),
            prop::collection::vec(prop::collection::vec(component(), 1..3), 0..3),
        )
            .prop_map(|(files, dirs)| {
                let mut t = Tree {
                    files: BTreeMap::new(),
                    empty_dirs: BTreeSet::new(),
                };
                for (path, kind, size, hash) in files {
                    // A path cannot be both a file and a directory.
                    let clash = t
                        .files
                        .keys()
                        .any(|p| p.starts_with(&path) || path.starts_with(p));
                    if !clash {
                        t.files.insert(path, (kind, size, hash));
                    }
                }
                for d in dirs {
                    let clash = t
                        .files
                        .keys()
                        .any(|p| p.starts_with(&d) || d.starts_with(p));
                    if !clash {
                        t.empty_dirs.insert(d);
                    }
                }
                // An "empty" dir that holds another empty dir is not empty.
                let all = t.empty_dirs.clone();
                t.empty_dirs
                    .retain(|d| !all.iter().any(|o| o.len() > d.len() && o.starts_with(d)));
                t
            })
    }

    fn key_of(path: &[String]) -> Vec<u8> {
        vouch::model::paths::key_from_slash(path.join("/").as_bytes())
    }

    /// Every directory of the tree (implied by files, or empty).
    fn dirs_of(t: &Tree) -> BTreeSet<Vec<String>> {
        let mut dirs = BTreeSet::new();
        for p in t.files.keys().chain(&t.empty_dirs) {
            for n in 1..p.len() {
                dirs.insert(p[..n].to_vec());
            }
        }
        dirs.extend(t.empty_dirs.iter().cloned());
        dirs
    }

    /// The root hash, with directories given explicitly where `explicit`
    /// says so (empty ones always: nothing implies them).
    fn root_of(t: &Tree, explicit: &dyn Fn(&[String]) -> bool) -> DirHash {
        type Row = (Vec<u8>, EntryKind, u64, Option<[u8; 32]>);
        let mut entries: Vec<Row> = Vec::new();
        for (p, (kind, size, h)) in &t.files {
            entries.push((key_of(p), *kind, *size, Some([*h; 32])));
        }
        for d in dirs_of(t) {
            if t.empty_dirs.contains(&d) || explicit(&d) {
                entries.push((key_of(&d), EntryKind::Dir, 0, None));
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut folder = Folder::new(|_| {});
        for (k, kind, size, h) in &entries {
            folder.push(k, *kind, *size, h.as_ref());
        }
        folder.finish()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Equal roots if and only if equal trees; explicit and implicit
        /// directories give the same root.
        #[test]
        fn model_merkle_root_equal_iff_trees_equal(
            a in tree(),
            b in tree(),
            pick in prop::collection::vec(any::<bool>(), 16),
        ) {
            let implicit = |_: &[String]| false;
            let explicit = |_: &[String]| true;
            let some = |d: &[String]| {
                pick[d.len() * 3 % 16] ^ d.last().map_or(0, |c| c.len()).is_multiple_of(2)
            };
            let ra = root_of(&a, &implicit);
            prop_assert_eq!(&ra, &root_of(&a, &explicit));
            prop_assert_eq!(&ra, &root_of(&a, &some));
            let rb = root_of(&b, &some);
            prop_assert_eq!(ra.hash == rb.hash, a == b, "{:?} vs {:?}", a, b);
            let file_bytes: u64 = a
                .files
                .values()
                .filter(|(k, _, _)| *k == EntryKind::File)
                .map(|(_, s, _)| s)
                .sum();
            prop_assert_eq!(ra.size, file_bytes);
            prop_assert_eq!(ra.files, a.files.len() as u64);
        }

        /// Any single change anywhere changes the root.
        #[test]
        fn model_merkle_any_change_changes_the_root(
            t in tree(),
            which in any::<prop::sample::Index>(),
            change in 0u8..5,
        ) {
            let before = root_of(&t, &|_| false).hash;
            let mut u = t.clone();
            if t.files.is_empty() {
                u.files.insert(vec!["new".into()], (EntryKind::File, 0, 0));
            } else {
                let (p, (kind, size, h)) = t.files.iter().nth(which.index(t.files.len())).unwrap();
                let (p, kind, size, h) = (p.clone(), *kind, *size, *h);
                match change {
                    0 => { u.files.insert(p, (kind, size + 1, h)); }
                    1 => { u.files.insert(p, (kind, size, h + 1)); }
                    2 => {
                        let other = if kind == EntryKind::File { EntryKind::Symlink } else { EntryKind::File };
                        u.files.insert(p, (other, size, h));
                    }
                    3 => {
                        u.files.remove(&p);
                        let mut q = p.clone();
                        q.last_mut().unwrap().push('~');
                        u.files.insert(q, (kind, size, h));
                    }
                    _ => {
                        u.files.remove(&p);
                        if p.len() > 1 && !u.files.keys().any(|o| o.starts_with(&p[..p.len() - 1])) {
                            // Its directory stays, now empty.
                            u.empty_dirs.insert(p[..p.len() - 1].to_vec());
                        }
                    }
                }
            }
            prop_assert_ne!(before, root_of(&u, &|_| false).hash);
        }

        /// Escaping round-trips any byte string.
        #[test]
        fn model_path_escaping_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            let shown = vouch::model::paths::escape_bytes(&bytes);
            prop_assert!(!shown.contains('\n') && !shown.contains('\r'));
            prop_assert_eq!(vouch::model::paths::unescape(&shown), Some(bytes));
        }
    }
}

#[test]
fn hostile_tree_a_denied_file_keeps_its_first_seen_across_nightly_audits() {
    // A discrepancy that persists keeps the time it was first seen, also
    // when each night's run is an audit (a scan, then the audit proper).
    let env = Env::new();
    let root = env.root.to_str().unwrap().to_string();
    put_file(&env.root.join("fine"), b"fine", 1_600_000_000);
    let secret = env.root.join("secret");
    put_file(&secret, b"no access", 1_600_000_000);
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let backup = env.dir.path().join("backup");
    put_file(&backup.join("fine"), b"fine", 1_600_000_000);
    open_up(env.dir.path());
    let first_seen = || {
        let mut c = vouch_cmd_as_nobody(&env.index, &[]);
        c.args(["audit", &root, "--remote"]).arg(&backup);
        let (code, doc, err) = run_json(c);
        assert_eq!(code, 2, "incomplete: {err}");
        let f = doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == "unreadable")
            .unwrap_or_else(|| panic!("no unreadable finding: {doc}"))
            .clone();
        f["first_seen"].as_str().unwrap().to_string()
    };
    let night1 = first_seen();
    std::thread::sleep(Duration::from_millis(1100));
    let night2 = first_seen();
    assert_eq!(
        night1, night2,
        "first_seen restarted although the discrepancy persisted"
    );
}
