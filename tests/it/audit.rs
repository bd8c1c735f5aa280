//! `vouch audit` against a backup directory and real S3 servers on
//! 127.0.0.1 (s3s-fs in process; moto where ETags matter).

use std::path::{Path, PathBuf};

use crate::support::moto::MotoServer;
use crate::support::proxy::{Fault, Op, Proxy, Times};
use crate::support::s3::S3Server;
use crate::*;

/// A backup whose objects are plain files in `folder`: a directory
/// remote, or the folder an s3s-fs bucket prefix is served from.
struct Backup {
    folder: PathBuf,
    url: String,
    env: Vec<(String, String)>,
    server: Option<S3Server>,
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Dir,
    S3,
}

const BACKENDS: [Backend; 2] = [Backend::Dir, Backend::S3];

impl Backup {
    fn new(env: &Env, backend: Backend) -> Backup {
        match backend {
            Backend::Dir => {
                let folder = env.dir.path().join("backup");
                std::fs::create_dir(&folder).unwrap();
                Backup {
                    url: folder.to_str().unwrap().to_string(),
                    folder,
                    env: Vec::new(),
                    server: None,
                }
            }
            Backend::S3 => {
                let served = env.dir.path().join("s3");
                std::fs::create_dir(&served).unwrap();
                let server = S3Server::start(&served);
                let folder = server.create_bucket("backups").join("nightly");
                std::fs::create_dir(&folder).unwrap();
                Backup {
                    folder,
                    url: "s3://backups/nightly".into(),
                    env: server.env(),
                    server: Some(server),
                }
            }
        }
    }

    fn put(&self, rel: &str, content: &[u8]) {
        Env::write_in(&self.folder, rel, content);
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.folder.join(rel)
    }

    /// Copies every file of `root` into the backup, as a backup job would.
    fn mirror(&self, root: &Path) {
        for entry in walkdir(root) {
            let rel = entry.strip_prefix(root).unwrap();
            let content = std::fs::read(&entry).unwrap();
            self.put(rel.to_str().unwrap(), &content);
        }
    }
}

fn walkdir(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn audit(env: &Env, backup: &Backup, args: &[&str]) -> (i32, Value) {
    crate::audit_json(env, &backup.url, &backup.env, args)
}

/// Only the audit's own findings (not the scan's added/modified lines).
fn audit_findings(doc: &Value) -> Vec<(String, String)> {
    findings(doc)
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "added" | "modified" | "deleted"))
        .collect()
}

fn sample_tree(env: &Env) {
    env.write("photos/2026/a.jpg", &[0xAB; 20_000]);
    env.write("photos/2026/b.jpg", b"bee bytes");
    env.write(
        "db/dump.sql",
        b"CREATE TABLE t(x); INSERT INTO t VALUES (1);",
    );
    env.write("readme", b"hello");
}

#[test]
fn a_clean_mirror_is_unverified_on_first_sight_then_verified_by_a_deep_audit() {
    for backend in BACKENDS {
        let env = Env::new();
        sample_tree(&env);
        let backup = Backup::new(&env, backend);
        backup.mirror(&env.root);

        // Listing only (--no-head): the checksum ladder is tested in
        // tests/it/proof.rs.
        let (code, doc) = audit(&env, &backup, &["--no-head"]);
        assert_eq!(code, 0, "{backend:?}: unverified alone is not a failure");
        assert_eq!(counter(&doc, "unverified"), 4, "{backend:?}");
        assert_eq!(
            counter(&doc, "verified"),
            0,
            "{backend:?}: never read, never OK"
        );
        assert_eq!(counter(&doc, "bytes_read"), 0);

        let (code, _) = audit(&env, &backup, &["--strict", "--no-head"]);
        assert_eq!(code, 1, "{backend:?}: --strict fails on unverified");

        let (code, doc) = audit(&env, &backup, &["--mode", "deep"]);
        assert_eq!(code, 0, "{backend:?}");
        assert_eq!(audit_findings(&doc), vec![], "{backend:?}");
        assert_eq!(counter(&doc, "verified"), 4);
        assert_eq!(counter(&doc, "objects_read"), 4);
        assert_eq!(counter(&doc, "bytes_read"), 20_000 + 9 + 44 + 5);

        // Read once, known from then on: quick verifies from the cache, and
        // a second deep run reads nothing new.
        let (code, doc) = audit(&env, &backup, &[]);
        assert_eq!((code, counter(&doc, "verified")), (0, 4), "{backend:?}");
        let (code, doc) = audit(&env, &backup, &["--mode", "deep"]);
        assert_eq!(code, 0);
        assert_eq!(counter(&doc, "verified"), 4);
        assert_eq!(
            counter(&doc, "objects_read"),
            0,
            "{backend:?}: nothing new to read"
        );
        assert_eq!(counter(&doc, "bytes_read"), 0);
    }
}

#[test]
fn every_kind_of_damage_is_found_with_its_own_kind() {
    for backend in BACKENDS {
        let env = Env::new();
        sample_tree(&env);
        let backup = Backup::new(&env, backend);
        backup.mirror(&env.root);
        // Deep once while healthy, so the corruption below is a change of
        // an object vouch had verified.
        assert_eq!(audit(&env, &backup, &["--mode", "deep"]).0, 0);

        std::fs::remove_file(backup.path("readme")).unwrap(); // missing
        backup.put("photos/2026/c.jpg", b"not in production"); // extra
        backup.put("db/dump.sql", b"CREATE TABLE"); // truncated
        let mut flipped = vec![0xAB; 20_000];
        flipped[12_345] ^= 0x01;
        // Same size, one bit: rewritten by a later backup job (a later
        // mtime, so the object's ETag or last-modified changes).
        std::fs::write(backup.path("photos/2026/a.jpg"), &flipped).unwrap();
        set_mtime(&backup.path("photos/2026/a.jpg"), 1_600_000_100);

        let (code, doc) = audit(&env, &backup, &[]);
        assert_eq!(code, 1, "{backend:?}");
        assert_eq!(
            audit_findings(&doc),
            pairs(&[
                ("extra", "photos/2026/c.jpg"),
                // 2 of 4 files held intact: the headline.
                ("low_coverage", ""),
                ("missing", "readme"),
                ("size_mismatch", "db/dump.sql"),
                // A listing cannot see a flipped bit: the object changed
                // since it was read, so it is unverified, never verified.
                // On S3 the HEAD's MD5 ETag proves the damage.
                (
                    match backend {
                        Backend::Dir => "unverified",
                        Backend::S3 => "corrupt",
                    },
                    "photos/2026/a.jpg",
                ),
            ]),
            "{backend:?}"
        );
        assert_eq!(
            counter(&doc, "verified"),
            1,
            "{backend:?}: only b.jpg is still proven"
        );

        let (code, doc) = audit(&env, &backup, &["--mode", "deep"]);
        assert_eq!(code, 1);
        assert_eq!(
            audit_findings(&doc),
            pairs(&[
                ("corrupt", "photos/2026/a.jpg"),
                ("extra", "photos/2026/c.jpg"),
                ("low_coverage", ""),
                ("missing", "readme"),
                ("size_mismatch", "db/dump.sql"),
            ]),
            "{backend:?}"
        );
        let corrupt = doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == "corrupt")
            .unwrap();
        assert_eq!(
            corrupt["remote"]["blake3"].as_str().unwrap(),
            blake3::hash(&flipped).to_hex().as_str()
        );
        assert_eq!(
            corrupt["local"]["blake3"].as_str().unwrap(),
            blake3::hash(&[0xAB; 20_000]).to_hex().as_str()
        );
        // The corruption stays known without reading again.
        let (code, doc) = audit(&env, &backup, &[]);
        assert_eq!(code, 1);
        assert!(audit_findings(&doc).contains(&("corrupt".into(), "photos/2026/a.jpg".into())));
        assert_eq!(counter(&doc, "bytes_read"), 0);
    }
}

#[test]
fn an_empty_backup_reports_every_file_missing() {
    for backend in BACKENDS {
        let env = Env::new();
        sample_tree(&env);
        let backup = Backup::new(&env, backend);
        let (code, doc) = audit(&env, &backup, &["--mode", "deep"]);
        assert_eq!(code, 1, "{backend:?}");
        let missing: Vec<_> = audit_findings(&doc)
            .into_iter()
            .filter(|(k, _)| k == "missing")
            .map(|(_, p)| p)
            .collect();
        assert_eq!(
            missing,
            [
                "db/dump.sql",
                "photos/2026/a.jpg",
                "photos/2026/b.jpg",
                "readme"
            ],
            "{backend:?}"
        );
        assert_eq!(counter(&doc, "remote_objects"), 0);
        // The headline comes first, not buried in the missing lines.
        let first = doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] != "added")
            .unwrap();
        assert_eq!(first["kind"], "remote_empty", "{backend:?}");
        assert_eq!(counter(&doc, "remote_empty"), 1);
    }
}

#[test]
fn a_remote_that_cannot_be_reached_is_trouble_with_one_clear_line() {
    let env = Env::new();
    sample_tree(&env);
    let mut backup = Backup::new(&env, Backend::S3);
    backup.mirror(&env.root);
    assert_eq!(audit(&env, &backup, &[]).0, 0);
    backup.server.as_mut().unwrap().stop();
    let out = env
        .vouch()
        .envs(backup.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .arg("audit")
        .arg(&env.root)
        .args(["--remote", &backup.url, "--retries", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("s3://backups/nightly"), "{err}");

    // A directory that does not exist, an unknown scheme, a bucket that
    // does not exist: the same.
    for remote in ["/no/such/backup", "ftp://host/x"] {
        let out = env
            .vouch()
            .arg("audit")
            .arg(&env.root)
            .args(["--remote", remote])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{remote}");
        let err = stderr_of(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(remote), "{err}");
    }
    let served = env.dir.path().join("s3-2");
    std::fs::create_dir(&served).unwrap();
    let server = S3Server::start(&served);
    let out = env
        .vouch()
        .envs(server.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .arg("audit")
        .arg(&env.root)
        .args(["--remote", "s3://no-such-bucket/x", "--retries", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("s3://no-such-bucket/x"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn single_part_md5_etags_verify_in_quick_mode_and_multipart_etags_stay_unverified() {
    let env = Env::new();
    let small = b"small object".to_vec();
    let big: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
    env.write("small", &small);
    env.write("big", &big);
    env.write("other", b"other content");
    let moto = MotoServer::start();
    moto.create_bucket("bkt");
    moto.put_object("bkt", "p/small", &small);
    moto.put_multipart("bkt", "p/big", &big, 512);
    // Same size, different bytes, uploaded whole: its ETag is an MD5 that
    // does not match the file's, which by itself proves nothing.
    moto.put_object("bkt", "p/other", b"OTHER CONTENT");
    let backup = Backup {
        folder: PathBuf::new(),
        url: "s3://bkt/p".into(),
        env: moto.env(),
        server: None,
    };

    // Listing only (--no-head), without --md5 the scan knows no MD5:
    // nothing can be verified quickly.
    let (code, doc) = audit(&env, &backup, &["--no-head"]);
    assert_eq!(code, 0);
    assert_eq!(counter(&doc, "verified"), 0);
    assert_eq!(counter(&doc, "unverified"), 3);

    let (code, doc) = audit(&env, &backup, &["--md5", "--no-head"]);
    assert_eq!(code, 0, "unverified is not a discrepancy");
    assert_eq!(counter(&doc, "verified"), 1);
    assert_eq!(counter(&doc, "verified_by_md5"), 1);
    assert_eq!(counter(&doc, "bytes_read"), 0, "quick reads nothing");
    assert_eq!(
        audit_findings(&doc),
        pairs(&[("unverified", "big"), ("unverified", "other")])
    );

    let (code, doc) = audit(&env, &backup, &["--mode", "deep"]);
    assert_eq!(code, 1);
    assert_eq!(audit_findings(&doc), pairs(&[("corrupt", "other")]));
    assert_eq!(
        counter(&doc, "objects_read"),
        3,
        "a deep run reads: small's MD5 ETag match is no read"
    );
    assert_eq!(counter(&doc, "verified"), 2);
}

#[test]
fn an_audit_killed_half_way_resumes_without_reading_again() {
    let env = Env::new();
    let moto = MotoServer::start();
    moto.create_bucket("bkt");
    let mut objects = Vec::new();
    for i in 0..150u32 {
        let content: Vec<u8> = (0..60_000u32).map(|j| ((i * 7 + j) % 253) as u8).collect();
        env.write(format!("d{}/obj{i:03}", i % 3), &content);
        objects.push((format!("p/d{}/obj{i:03}", i % 3), content));
    }
    let refs: Vec<(&str, &[u8])> = objects
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    moto.put_objects("bkt", &refs);
    // Reads slowed a little (through the fault proxy), so that reading
    // spans several batch commits (one per 500 ms) and the kill lands
    // mid-way however fast the machine.
    let proxy = Proxy::start(&moto.endpoint);
    proxy.on(
        Some(Op::Get),
        "/bkt/p/",
        Times::All,
        Fault::Delay(Duration::from_millis(8)),
    );
    let backup = Backup {
        folder: PathBuf::new(),
        url: "s3://bkt/p".into(),
        env: crate::support::s3::aws_env(
            &proxy.endpoint,
            crate::support::s3::ACCESS_KEY,
            crate::support::s3::SECRET_KEY,
        ),
        server: None,
    };
    assert_eq!(audit(&env, &backup, &[]).0, 0);

    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("vouch"))
        .envs(backup.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .arg("--index")
        .arg(&env.index)
        .args(["-q", "audit"])
        .arg(&env.root)
        .args([
            "--remote",
            &backup.url,
            "--mode",
            "deep",
            "--jobs",
            "1",
            "--no-scan",
        ])
        .spawn()
        .unwrap();
    let verified = || -> i64 {
        let conn = rusqlite::Connection::open_with_flags(
            &env.index,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        conn.query_row(
            "SELECT count(*) FROM remote_objects WHERE verified_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while verified() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    let kept = verified();
    assert!(
        status.code().is_none(),
        "the audit finished before it could be killed"
    );
    assert!(kept > 0 && kept < 150, "kept {kept}");

    let (code, doc) = audit(&env, &backup, &["--mode", "deep"]);
    assert_eq!(code, 0);
    assert_eq!(counter(&doc, "verified"), 150);
    assert_eq!(
        counter(&doc, "objects_read") as i64,
        150 - kept,
        "exactly the objects not verified before the kill are read"
    );
}

#[test]
fn without_an_etag_a_read_racing_a_rewrite_is_never_trusted_later() {
    // s3s-fs lists no ETag: a cached read is tied to size and
    // last-modified only. An object modified at or after the listing began
    // could be rewritten within the same second without changing either,
    // so its read must not count as a verification in later runs.
    let env = Env::new();
    env.write("f", b"good content");
    let backup = Backup::new(&env, Backend::S3);
    backup.put("f", b"good content");
    let future = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    set_mtime(&backup.path("f"), future);
    let (code, doc) = audit(&env, &backup, &["--mode", "deep"]);
    assert_eq!(
        (code, counter(&doc, "verified")),
        (0, 1),
        "read and matched now"
    );

    std::fs::write(backup.path("f"), b"BAD! content").unwrap();
    set_mtime(&backup.path("f"), future);
    // Listing only: the cached read must not count (with HEADs, the MD5
    // ETag would prove the damage instead).
    let (code, doc) = audit(&env, &backup, &["--no-head"]);
    assert_eq!(code, 0);
    assert_eq!(counter(&doc, "verified"), 0, "a false OK");
    assert_eq!(audit_findings(&doc), pairs(&[("unverified", "f")]));
    let (code, doc) = audit(&env, &backup, &["--mode", "deep"]);
    assert_eq!(
        (code, audit_findings(&doc)),
        (1, pairs(&[("corrupt", "f")]))
    );
}

#[test]
fn scrub_rereads_the_least_recently_verified_within_its_budget_and_finds_silent_rot() {
    let env = Env::new();
    let backup = Backup::new(&env, Backend::Dir);
    for name in ["a", "b", "c", "d"] {
        let content = vec![name.as_bytes()[0]; 1000];
        env.write(name, &content);
        backup.put(name, &content);
    }
    let read = |doc: &Value| counter(doc, "objects_read");
    // Never-read objects first, 2000 bytes a night.
    let (code, night1) = audit(
        &env,
        &backup,
        &["--mode", "scrub", "--scrub-budget", "2000"],
    );
    assert_eq!((code, read(&night1)), (0, 2));
    assert_eq!(counter(&night1, "verified"), 2);
    assert_eq!(counter(&night1, "unverified"), 2);
    std::thread::sleep(Duration::from_millis(1100)); // verified_at has 1 s resolution
    let (code, night2) = audit(
        &env,
        &backup,
        &["--mode", "scrub", "--scrub-budget", "2000"],
    );
    assert_eq!((code, read(&night2)), (0, 2));
    assert_eq!(
        counter(&night2, "verified"),
        4,
        "the whole backup, read within two nights"
    );
    assert_eq!(night2["summary"]["verified_within"]["1d"]["objects"], 4);

    // Damage on the backup disk written in place: same size, same mtime,
    // same inode. Only the ctime moved, and it is part of a directory
    // backup's version: quick no longer trusts the earlier read (true bit
    // rot, which moves no ctime, it would); the scrub that re-reads it
    // finds the damage.
    let rotten = backup.path("a");
    let mut bytes = std::fs::read(&rotten).unwrap();
    bytes[500] ^= 0x40;
    std::fs::write(&rotten, &bytes).unwrap();
    set_old_mtime(&rotten);
    let (code, quick) = audit(&env, &backup, &[]);
    assert_eq!((code, counter(&quick, "verified")), (0, 3));
    assert_eq!(audit_findings(&quick), pairs(&[("unverified", "a")]));
    std::thread::sleep(Duration::from_millis(1100));
    let (code, night3) = audit(
        &env,
        &backup,
        &["--mode", "scrub", "--scrub-budget", "2000"],
    );
    assert_eq!(read(&night3), 2, "the two read longest ago: a and b");
    assert_eq!(code, 1);
    assert_eq!(audit_findings(&night3), pairs(&[("corrupt", "a")]));
}

#[test]
fn symlinks_are_skipped_whether_the_backup_copied_the_link_or_its_target() {
    let env = Env::new();
    env.write("real", b"data");
    std::os::unix::fs::symlink("real", env.root.join("link")).unwrap();
    let backup = Backup::new(&env, Backend::Dir);
    backup.put("real", b"data");
    // rsync -a style: the link itself.
    std::os::unix::fs::symlink("real", backup.path("link")).unwrap();
    let (code, doc) = audit(&env, &backup, &["--mode", "deep"]);
    assert_eq!(code, 0, "{}", doc);
    assert_eq!(audit_findings(&doc), vec![]);
    assert_eq!(counter(&doc, "symlinks_skipped"), 1);
    assert_eq!(counter(&doc, "verified"), 1);
}
