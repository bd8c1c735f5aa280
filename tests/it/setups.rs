//! Real setups (issue 15): a backup that keeps more than the source
//! (`--one-way`), trees with things nobody backs up (excludes and
//! `.vouchignore`), and errors that say what to do.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::support::s3::S3Server;
use crate::*;

/// A directory backup beside the tree.
fn backup_dir(env: &Env) -> PathBuf {
    let b = env.dir.path().join("backup");
    std::fs::create_dir_all(&b).unwrap();
    b
}

fn audit_args(env: &Env, remote: &Path, args: &[&str]) -> (i32, Value) {
    let mut all = vec![
        "audit",
        env.root.to_str().unwrap(),
        "--remote",
        remote.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    env.json(&all)
}

/// The audit's own findings (not the scan's added/modified lines).
fn audit_findings(doc: &Value) -> Vec<(String, String)> {
    findings(doc)
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "added" | "modified"))
        .collect()
}

/// Production keeps the last two dumps, the backup five: with `--one-way`
/// the three older ones are `backup_only`, listed but not discrepancies;
/// without it they are `extra` (exit 1). The config file takes it too.
#[test]
fn a_backup_that_keeps_more_dumps_audits_cleanly_one_way() {
    let env = Env::new();
    let backup = backup_dir(&env);
    for day in 1..=5 {
        let name = format!("dump-{day}.sql");
        let body = format!("dump of day {day}");
        Env::write_in(&backup, &name, body.as_bytes());
        if day >= 4 {
            env.write(&name, body.as_bytes());
        }
    }
    let (code, doc) = audit_args(&env, &backup, &["--mode", "deep"]);
    assert_eq!(code, 1, "two-way: the old dumps are extra");
    assert_eq!(counter(&doc, "extra"), 3);

    let (code, doc) = audit_args(&env, &backup, &["--mode", "deep", "--one-way"]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(
        audit_findings(&doc),
        pairs(&[
            ("backup_only", "dump-1.sql"),
            ("backup_only", "dump-2.sql"),
            ("backup_only", "dump-3.sql"),
        ])
    );
    assert_eq!(counter(&doc, "backup_only"), 3);
    assert_eq!(counter(&doc, "extra"), 0);
    assert_eq!(counter(&doc, "verified"), 2);

    // -q, as cron runs it: nothing at all.
    let out = env
        .vouch()
        .args(["audit", env.root.to_str().unwrap(), "--remote"])
        .arg(&backup)
        .args(["--one-way", "-q"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");

    // The same in the config file.
    let config = env.dir.path().join("vouch.toml");
    std::fs::write(
        &config,
        format!(
            "[audit.rot]\nroot = {:?}\nremote = {:?}\none_way = true\n",
            env.root.to_str().unwrap(),
            backup.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = env
        .vouch()
        .args(["run", "rot", "-q", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
}

/// Caches, temp files, `lost+found` and a live `pg_wal/` are left out on
/// both sides, by flags, an `--exclude-from` file and a `.vouchignore`;
/// the summary counts them.
#[test]
fn excludes_apply_to_the_tree_and_the_backup_alike() {
    let env = Env::new();
    let backup = backup_dir(&env);
    for (rel, body) in [
        ("keep.txt", &b"keep"[..]),
        ("db/base/1", b"table"),
        ("sub/.vouchignore", b"*.log\n"),
        ("sub/y.txt", b"why"),
    ] {
        env.write(rel, body);
        Env::write_in(&backup, rel, body);
    }
    // Only on the tree: all excluded.
    env.write("a.tmp", b"scratch");
    env.write("cache/blob", b"cached");
    env.write("db/pg_wal/0001", b"wal");
    env.write("sub/x.log", b"log line");
    std::fs::create_dir(env.root.join("lost+found")).unwrap();
    // Only on the backup: all excluded.
    Env::write_in(&backup, "old.tmp", b"old scratch");
    Env::write_in(&backup, "cache/other", b"cached elsewhere");
    Env::write_in(&backup, "sub/z.log", b"another log");
    let from = env.dir.path().join("excludes.txt");
    std::fs::write(&from, "# the live WAL\npg_wal/\nlost+found/\n").unwrap();

    let (code, doc) = audit_args(&env, &backup, &["--mode", "deep"]);
    assert_eq!(code, 1, "without the excludes they differ");

    let (code, doc2) = audit_args(
        &env,
        &backup,
        &[
            "--mode",
            "deep",
            "--exclude",
            "*.tmp",
            "--exclude",
            "cache/",
            "--exclude-from",
            from.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{doc2}");
    assert_eq!(audit_findings(&doc2), vec![]);
    assert_eq!(
        counter(&doc2, "verified"),
        4,
        "keep, base/1, .vouchignore, y"
    );
    assert_eq!(counter(&doc2, "excluded_objects"), 3);
    // The first audit scanned a.tmp, cache/blob and pg_wal/0001 into the
    // manifest (sub/x.log never: the .vouchignore held from the start).
    assert_eq!(counter(&doc2, "excluded_files"), 3);
    assert_eq!(
        doc2["summary"]["scan"]["excluded"].as_u64(),
        Some(5),
        "a.tmp, cache, lost+found, db/pg_wal, sub/x.log: {}",
        doc2["summary"]["scan"]
    );
    assert!(
        findings(&doc2).iter().all(|(k, _)| k != "deleted"),
        "an excluded path is not deleted: {:?}",
        findings(&doc2)
    );
    let _ = doc;
}

/// The rules are the tree's: a directory backup's own `.vouchignore` (a
/// copy of an old one, or planted) hides nothing there. An extra file the
/// backup's rules would cover is still `extra`, and an unreadable
/// `.vouchignore` in the backup does not end its listing. (The walk used
/// for directory backups once honoured them: `junk.log` went unreported.)
#[test]
fn a_directory_backups_own_vouchignore_hides_nothing() {
    let env = Env::new();
    let backup = backup_dir(&env);
    env.write("keep.txt", b"keep");
    Env::write_in(&backup, "keep.txt", b"keep");
    Env::write_in(&backup, ".vouchignore", b"*.log\n");
    Env::write_in(&backup, "junk.log", b"not in production");
    Env::write_in(&backup, "sub/.vouchignore", b"[unclosed\n");
    let (code, doc) = audit_args(&env, &backup, &["--mode", "deep"]);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(
        audit_findings(&doc),
        vec![
            ("extra".to_string(), ".vouchignore".to_string()),
            ("extra".to_string(), "junk.log".to_string()),
            ("extra".to_string(), "sub/.vouchignore".to_string()),
        ],
        "{doc}"
    );
    assert_eq!(counter(&doc, "verified"), 1, "{doc}");
}

/// Changing the excludes keeps the index history of the paths that fall
/// out: they are not closed as deleted, and when the exclude goes they
/// are back, unchanged, not hashed again; the Merkle root follows the
/// rules.
#[test]
fn changing_the_excludes_keeps_the_history_of_what_falls_out() {
    let env = Env::new();
    env.write("keep.txt", b"keep");
    env.write("cache/a", &[7u8; 5000]);
    env.write("cache/b", b"bee");
    let root = env.root.to_str().unwrap().to_string();
    let (code, all) = env.json(&["scan", &root]);
    assert_eq!(code, 0);
    let (code, without) = env.json(&["scan", &root, "--exclude", "cache/"]);
    assert_eq!(code, 0);
    assert_eq!(findings(&without), vec![], "nothing deleted");
    assert_eq!(counter(&without, "excluded"), 1);
    assert_eq!(counter(&without, "deleted"), 0);
    assert_ne!(
        without["summary"]["merkle_root"], all["summary"]["merkle_root"],
        "the root covers what is compared"
    );
    // The rows were kept: the paths come back unchanged, not re-hashed.
    let (code, back) = env.json(&["scan", &root]);
    assert_eq!(code, 0);
    assert_eq!(findings(&back), vec![], "nothing added");
    assert_eq!(counter(&back, "bytes_hashed"), 0);
    assert_eq!(
        back["summary"]["merkle_root"],
        all["summary"]["merkle_root"]
    );
    // A .vouchignore written later works the same way.
    env.write(".vouchignore", b"cache/\n");
    let (code, ignored) = env.json(&["scan", &root]);
    assert_eq!(code, 0);
    assert_eq!(
        findings(&ignored),
        pairs(&[("added", ".vouchignore")]),
        "cache/ not deleted"
    );
    assert_eq!(counter(&ignored, "excluded"), 1);
    // The kept rows are not part of the run's snapshot: an export (which
    // scans first, under the .vouchignore) lists what is compared.
    let out = env
        .vouch()
        .args(["export", &root, "--format", "b3sum"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_once("  ").unwrap().1.to_string())
        .collect();
    assert_eq!(listed, [".vouchignore", "keep.txt"]);
}

/// `--include` compares only matching files (directories are still
/// walked); a bad glob or an unreadable `--exclude-from` is one line,
/// exit 2.
#[test]
fn includes_narrow_and_bad_rules_are_refused() {
    let env = Env::new();
    env.write("dumps/a.sql", b"a");
    env.write("dumps/a.log", b"log");
    env.write("notes.txt", b"n");
    let root = env.root.to_str().unwrap().to_string();
    let (code, doc) = env.json(&["scan", &root, "--include", "*.sql"]);
    assert_eq!(code, 0);
    assert_eq!(findings(&doc), pairs(&[("added", "dumps/a.sql")]));
    for (args, needle) in [
        (
            vec!["--exclude", "{a"],
            "--exclude \"{a\": error parsing glob",
        ),
        (
            vec!["--exclude-from", "/no/such/file"],
            "cannot read --exclude-from /no/such/file",
        ),
    ] {
        let out = env
            .vouch()
            .args(["scan", &root])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = stderr_of(&out);
        assert!(err.contains(needle), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    env.write("bad/.vouchignore", b"ok\n{unclosed\n");
    let out = env.vouch().args(["scan", &root]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(err.contains(".vouchignore line 2"), "{err}");
}

/// The S3 server of a test, its bucket `bkt`, and the environment to reach
/// it (credentials, region, endpoint, AWS_ALLOW_HTTP).
fn s3(env: &Env) -> (S3Server, Vec<(String, String)>) {
    let served = env.dir.path().join("s3");
    std::fs::create_dir(&served).unwrap();
    let server = S3Server::start(&served);
    server.create_bucket("bkt");
    let vars = server.env();
    (server, vars)
}

/// Runs `vouch audit ROOT --remote URL ARGS…` with exactly `vars` of the
/// AWS environment, and returns (exit code, stderr).
fn audit_err(env: &Env, url: &str, vars: &[(String, String)], args: &[&str]) -> (i32, String) {
    let mut cmd = env.vouch();
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ALLOW_HTTP",
        "AWS_PROFILE",
        "AWS_METADATA_ENDPOINT",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    ] {
        cmd.env_remove(k);
    }
    // No ~/.aws of the machine running the tests.
    let home = env.dir.path().join("empty-home");
    std::fs::create_dir_all(&home).unwrap();
    let out = cmd
        .env("HOME", &home)
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(["audit", env.root.to_str().unwrap(), "--remote", url])
        .args(["--retries", "0"])
        .args(args)
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), stderr_of(&out))
}

fn one_line_with(code_err: (i32, String), needles: &[&str]) {
    let (code, err) = code_err;
    eprint!("{err}");
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked") && !err.contains("<?xml"), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err}");
    }
}

#[test]
fn s3_errors_say_what_to_do() {
    let env = Env::new();
    env.write("a", b"a");
    let (server, vars) = s3(&env);
    let without = |name: &str| -> Vec<(String, String)> {
        vars.iter().filter(|(k, _)| k != name).cloned().collect()
    };
    // An http endpoint without AWS_ALLOW_HTTP names the variable.
    one_line_with(
        audit_err(&env, "s3://bkt/x", &without("AWS_ALLOW_HTTP"), &[]),
        &["AWS_ALLOW_HTTP=true", &server.endpoint],
    );
    // An endpoint without a scheme: no panic, says what to write.
    let bare = server.endpoint.trim_start_matches("http://").to_string();
    one_line_with(
        audit_err(&env, "s3://bkt/x", &vars, &["--endpoint", &bare]),
        &["--endpoint", &format!("http://{bare}")],
    );
    let mut env_bare = without("AWS_ENDPOINT_URL");
    env_bare.push(("AWS_ENDPOINT_URL".into(), bare.clone()));
    one_line_with(
        audit_err(&env, "s3://bkt/x", &env_bare, &[]),
        &["AWS_ENDPOINT_URL", &format!("http://{bare}")],
    );
    // An unknown bucket: its name, no XML.
    one_line_with(
        audit_err(&env, "s3://nosuchbucket/x", &vars, &[]),
        &["bucket \"nosuchbucket\" does not exist"],
    );
    // Wrong credentials: access denied, naming the operation.
    let mut bad_key = without("AWS_SECRET_ACCESS_KEY");
    bad_key.push(("AWS_SECRET_ACCESS_KEY".into(), "wrong".into()));
    one_line_with(
        audit_err(&env, "s3://bkt/x", &bad_key, &[]),
        &["access denied", "listing s3://bkt/x"],
    );
    // Nothing answers: a timeout naming the host.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_ep = format!("http://{}", silent.local_addr().unwrap());
    one_line_with(
        audit_err(
            &env,
            "s3://bkt/x",
            &vars,
            &["--endpoint", &silent_ep, "--timeout", "1"],
        ),
        &["timed out", &silent.local_addr().unwrap().to_string()],
    );
    // No credentials anywhere (the metadata service refuses at once).
    let mut none: Vec<(String, String)> = vars
        .iter()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS_KEY_ID") && !k.starts_with("AWS_SECRET"))
        .cloned()
        .collect();
    none.push(("AWS_METADATA_ENDPOINT".into(), "http://127.0.0.1:9".into()));
    none.push((
        "AWS_EC2_METADATA_SERVICE_ENDPOINT".into(),
        "http://127.0.0.1:9".into(),
    ));
    one_line_with(
        audit_err(&env, "s3://bkt/x", &none, &[]),
        &["no AWS credentials found", "AWS_ACCESS_KEY_ID"],
    );
    // The index was never touched by any of them.
    assert!(!env.index.exists(), "no index written for a remote refused");
}

/// A panic (ours or a dependency's, in any thread) is one line on stderr
/// and exit 2, without a backtrace.
#[test]
fn a_panic_is_one_line_and_exit_2() {
    let env = Env::new();
    let out = env
        .vouch()
        .env("RUST_BACKTRACE", "1")
        .arg("debug-panic")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("vouch: internal error (a bug, please report it): a deliberate panic in a thread at src/cli/settings.rs:"),
        "{err}"
    );
}

/// An extra README in the backup and a log that is never backed up are
/// accepted, with a reason: reported as `accepted` (exit 0) while they stay
/// the same, back as `extra` / `missing` the moment either side changes,
/// when `--until` passes, or once removed.
#[test]
fn an_accepted_finding_comes_back_when_it_changes() {
    let env = Env::new();
    let backup = backup_dir(&env);
    env.write("data.bin", b"data");
    env.write("app.log", b"log 1");
    Env::write_in(&backup, "data.bin", b"data");
    Env::write_in(&backup, "README", b"this bucket holds the nightly copy");
    let root = env.root.to_str().unwrap().to_string();
    let deep = ["--mode", "deep", "--min-coverage", "0"];
    let (code, doc) = audit_args(&env, &backup, &deep);
    assert_eq!(code, 1);
    assert_eq!(
        audit_findings(&doc),
        pairs(&[("extra", "README"), ("missing", "app.log")])
    );

    let accept = |args: &[&str]| {
        let out = env.vouch().arg("accept").args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr_of(&out),
        )
    };
    let (code, stdout, err) = accept(&[
        &root,
        "README",
        "--kind",
        "extra",
        "--reason",
        "the bucket's own notes",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(stdout, "accepted extra README\n");
    let (code, _, err) = accept(&[
        &root,
        "app.log",
        "--kind",
        "missing",
        "--reason",
        "logs are not backed up",
    ]);
    assert_eq!(code, 0, "{err}");
    // Nothing to accept: one line, exit 2.
    let (code, _, err) = accept(&[&root, "nope", "--kind", "extra", "--reason", "r"]);
    assert_eq!(code, 2);
    assert!(err.contains("no extra finding for nope"), "{err}");
    let (code, _, err) = accept(&[&root, "README", "--kind", "added", "--reason", "r"]);
    assert_eq!(code, 2);
    assert!(err.contains("--kind added is not a discrepancy"), "{err}");

    let (code, doc) = audit_args(&env, &backup, &deep);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(
        audit_findings(&doc),
        pairs(&[("accepted", "README"), ("accepted", "app.log")])
    );
    assert_eq!(counter(&doc, "accepted"), 2);
    let readme = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "README")
        .unwrap();
    assert!(
        readme["detail"]
            .as_str()
            .unwrap()
            .contains("extra accepted")
            && readme["detail"]
                .as_str()
                .unwrap()
                .ends_with(": the bucket's own notes"),
        "{readme}"
    );
    let (code, list) = env.json(&["accept", "--list"]);
    assert_eq!(code, 0);
    let kinds: Vec<&str> = list["accepted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["extra", "missing"], "by path: {list}");

    // Either side changes: back as a discrepancy.
    Env::write_in(&backup, "README", b"someone rewrote the notes");
    env.write("app.log", b"log 1, log 2");
    let (code, doc) = audit_args(&env, &backup, &deep);
    assert_eq!(code, 1);
    assert_eq!(
        audit_findings(&doc),
        pairs(&[("extra", "README"), ("missing", "app.log")])
    );

    // Accepted again for two seconds only, then back.
    let soon = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
    let soon = humantime::format_rfc3339_seconds(soon).to_string();
    let (code, _, err) = accept(&[
        &root, "README", "--kind", "extra", "--reason", "r", "--until", &soon,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = accept(&[
        &root,
        "README",
        "--kind",
        "extra",
        "--reason",
        "r",
        "--until",
        "2001-01-01",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("has already passed"), "{err}");
    let (_, doc) = audit_args(&env, &backup, &deep);
    assert!(audit_findings(&doc).contains(&("accepted".into(), "README".into())));
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (_, doc) = audit_args(&env, &backup, &deep);
    assert!(audit_findings(&doc).contains(&("extra".into(), "README".into())));

    // Accepted as it is now, then removed: back at once.
    let (code, _, err) = accept(&[&root, "app.log", "--kind", "missing", "--reason", "r"]);
    assert_eq!(code, 0, "{err}");
    let (_, doc) = audit_args(&env, &backup, &deep);
    assert!(audit_findings(&doc).contains(&("accepted".into(), "app.log".into())));
    let (code, _, err) = accept(&["--remove", &root, "app.log"]);
    assert_eq!(code, 0, "{err}");
    let (_, doc) = audit_args(&env, &backup, &deep);
    assert!(audit_findings(&doc).contains(&("missing".into(), "app.log".into())));
    let (code, _, err) = accept(&["--remove", &root, "app.log"]);
    assert_eq!(code, 2, "nothing left to remove: {err}");
}

/// `--dry-run` lists and compares, reads no object, and says what a deep
/// and a scrub run would read; a deep run then reads exactly that.
#[test]
fn a_dry_run_says_what_a_deep_run_would_read() {
    let env = Env::new();
    let backup = backup_dir(&env);
    for (rel, body) in [
        ("a", &[1u8; 3000][..]),
        ("b/c", &[2u8; 500][..]),
        ("d", b"dd"),
    ] {
        env.write(rel, body);
        Env::write_in(&backup, rel, body);
    }
    let (code, doc) = audit_args(&env, &backup, &["--dry-run", "--scrub-budget", "3000"]);
    assert_eq!(code, 0, "{doc}");
    let dry = &doc["summary"]["dry_run"];
    assert_eq!(dry["deep_objects"], 3, "{dry}");
    assert_eq!(dry["deep_bytes"], 3502);
    assert_eq!(dry["deep_requests"], 4, "one listing page and 3 GETs");
    // Scrub: never-read objects first, by key, while the budget lasts.
    assert_eq!(
        (&dry["scrub_objects"], &dry["scrub_bytes"]),
        (&json!(1), &json!(3000)),
        "{dry}"
    );
    assert_eq!(counter(&doc, "objects_read"), 0);
    assert_eq!(counter(&doc, "unverified"), 3);

    let (code, doc) = audit_args(&env, &backup, &["--mode", "deep"]);
    assert_eq!(code, 0);
    assert_eq!(counter(&doc, "objects_read"), 3);
    assert_eq!(counter(&doc, "bytes_read"), 3502);
    // Nothing left to read; `vouch run --dry-run` says the same.
    let config = env.dir.path().join("vouch.toml");
    std::fs::write(
        &config,
        format!(
            "[audit.x]\nroot = {:?}\nremote = {:?}\nmode = \"deep\"\n",
            env.root.to_str().unwrap(),
            backup.to_str().unwrap()
        ),
    )
    .unwrap();
    let (code, doc) = env.json(&[
        "run",
        "x",
        "--dry-run",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["summary"]["dry_run"]["deep_objects"], 0, "{doc}");
    assert_eq!(counter(&doc, "verified"), 3);
}
