//! `--shard K/N` and `vouch merge`: shards partition the keys, and the
//! merge of the shard reports is the unsharded report.

use std::path::{Path, PathBuf};

use crate::support::inventory::{InvObject, Spec, write_dir};
use crate::*;

/// A tree of 60 files, a directory backup with every kind of discrepancy.
fn setup(env: &Env) -> PathBuf {
    setup_listed(env).0
}

/// [`setup`], and the backup's objects as an inventory lists them.
fn setup_listed(env: &Env) -> (PathBuf, Vec<InvObject>) {
    let mut objects = Vec::new();
    let backup = env.dir.path().join("backup");
    for i in 0..60u32 {
        let rel = format!("d{}/f{i:02}.txt", i % 4);
        let content = format!("content of file {i}").repeat(1 + i as usize % 3);
        env.write(&rel, content.as_bytes());
        match i % 10 {
            0 => {} // missing from the backup
            1 => {
                Env::write_in(&backup, &rel, b"short");
                objects.push(InvObject::of(&rel, b"short", 1_600_000_000));
            }
            _ => {
                Env::write_in(&backup, &rel, content.as_bytes());
                objects.push(InvObject::of(&rel, content.as_bytes(), 1_600_000_000));
            }
        }
    }
    Env::write_in(&backup, "extra-1", b"x");
    Env::write_in(&backup, "d2/extra-2", b"y");
    objects.push(InvObject::of("extra-1", b"x", 1_600_000_000));
    objects.push(InvObject::of("d2/extra-2", b"y", 1_600_000_000));
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    (backup, objects)
}

fn audit(env: &Env, index: &Path, backup: &Path, extra: &[&str]) -> (i32, Value, String) {
    let out = env
        .vouch_at(index)
        .env_remove("VOUCH_SHARD")
        .arg("audit")
        .arg(&env.root)
        .arg("--remote")
        .arg(backup)
        .args(["--format", "json", "--mode", "deep"])
        .args(extra)
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap(), doc, stderr_of(&out))
}

/// The counters a merge must reproduce exactly.
const SUMMED: [&str; 12] = [
    "missing",
    "extra",
    "size_mismatch",
    "unverified",
    "verified",
    "verified_bytes",
    "objects_read",
    "bytes_read",
    "local_files",
    "local_bytes",
    "remote_objects",
    "remote_bytes",
];

#[test]
fn shards_partition_the_keys_and_their_merge_is_the_unsharded_report() {
    let env = Env::new();
    let backup = setup(&env);
    let (code, whole, err) = audit(&env, &env.dir.path().join("all.sqlite3"), &backup, &[]);
    assert_eq!(code, 1, "{err}");
    let n = 4;
    let reports = env.dir.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    let mut union = Vec::new();
    for k in 0..n {
        let index = env.dir.path().join(format!("shard-{k}.sqlite3"));
        let out = reports.join(format!("shard-{k}.json"));
        let shard = format!("{k}/{n}");
        let (code, _, err) = audit(
            &env,
            &index,
            &backup,
            &["--shard", &shard, "--output", out.to_str().unwrap()],
        );
        assert!(code <= 1, "{err}");
        let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(doc["summary"]["shard"]["index"], k);
        assert_eq!(doc["summary"]["shard"]["hash"], "blake3-64le/v1");
        let mine = findings(&doc);
        assert!(!mine.is_empty(), "shard {k} of 60 files found nothing");
        union.extend(mine);
        // Each shard's index holds its own files only.
        let (_, scan) = {
            let out = env
                .vouch_at(&index)
                .args(["scan", env.root.to_str().unwrap(), "--format", "json"])
                .args(["--shard", &shard])
                .output()
                .unwrap();
            (
                out.status.code(),
                serde_json::from_slice::<Value>(&out.stdout).unwrap(),
            )
        };
        let files = counter(&scan, "files");
        assert!((5..=25).contains(&files), "shard {k} holds {files} of 60");
    }
    // Disjoint and covering: the shards' findings are the whole's, once
    // (but for the whole-backup ones, which only the merge decides).
    union.sort();
    let per_file: Vec<_> = findings(&whole)
        .into_iter()
        .filter(|(_, path)| !path.is_empty())
        .collect();
    assert_eq!(union, per_file);
    assert!(findings(&whole).contains(&("low_coverage".into(), "".into())));

    // The merge: same findings, same counters, same exit status.
    let out = env
        .vouch()
        .args(["merge", reports.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let merged: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(findings(&merged), findings(&whole));
    for c in SUMMED {
        assert_eq!(counter(&merged, c), counter(&whole, c), "{c}");
    }
    assert_eq!(
        merged["summary"]["coverage_files"],
        whole["summary"]["coverage_files"]
    );
    // Bytes by kind are summed like the counts.
    let by_kind = &whole["summary"]["bytes_by_kind"];
    assert!(by_kind["missing"].as_u64().unwrap() > 0, "{by_kind}");
    assert!(by_kind["size_mismatch"].as_u64().unwrap() > 0, "{by_kind}");
    assert_eq!(&merged["summary"]["bytes_by_kind"], by_kind);
    assert_eq!(merged["summary"]["command"], "merge");
    assert_eq!(merged["summary"]["shards"]["count"], n);

    // A missing shard fails the merge and names it; so does a duplicate.
    std::fs::rename(reports.join("shard-2.json"), env.dir.path().join("s2.json")).unwrap();
    let out = env
        .vouch()
        .args(["merge", reports.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("shard 2/4 missing"),
        "{}",
        stderr_of(&out)
    );
    let out = env
        .vouch()
        .arg("merge")
        .arg(&reports)
        .arg(reports.join("shard-1.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("shard 1/4 appears twice"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn shard_arguments_and_indexes_are_checked() {
    let env = Env::new();
    let backup = setup(&env);
    let index = env.dir.path().join("s.sqlite3");
    let (code, _, err) = audit(&env, &index, &backup, &["--shard", "4/4"]);
    assert_eq!(code, 2);
    assert!(err.contains("not below N = 4"), "{err}");
    // auto/N from the scheduler's variable (GNU parallel's is 1-based).
    let out = env
        .vouch_at(&index)
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("AWS_BATCH_JOB_ARRAY_INDEX")
        .env("PARALLEL_SEQ", "2")
        .env("VOUCH_SHARD", "auto/4")
        .args(["scan", env.root.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["shard"]["index"], 1);
    // That index holds shard 1/4: another shard, or the whole tree, is refused.
    for other in [&["--shard", "0/4"][..], &[]] {
        let (code, _, err) = audit(&env, &index, &backup, other);
        assert_eq!(code, 2, "{other:?}");
        assert!(err.contains("holds shard 1/4"), "{err}");
    }
    let (code, _, err) = audit(&env, &index, &backup, &["--shard", "1/4"]);
    assert!(code <= 1, "{err}");
}

#[test]
fn inventory_shards_merge_into_the_unsharded_inventory_audit() {
    let env = Env::new();
    let (backup, objects) = setup_listed(&env);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let dest = env.dir.path().join("dest");
    let spec = Spec::new("bkt", now + 3 * 3600, objects);
    write_dir(&dest, &spec);
    let inv = dest.join(spec.config_key());
    let inv = inv.to_str().unwrap();
    let (code, whole, err) = audit(
        &env,
        &env.dir.path().join("all.sqlite3"),
        &backup,
        &["--inventory", inv, "--md5"],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(whole["summary"]["listing"]["rows"], 56);
    let reports = env.dir.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    for k in 0..3 {
        let out = reports.join(format!("shard-{k}.json"));
        let (code, _, err) = audit(
            &env,
            &env.dir.path().join(format!("s{k}.sqlite3")),
            &backup,
            &[
                "--inventory",
                inv,
                "--md5",
                "--shard",
                &format!("{k}/3"),
                "--output",
                out.to_str().unwrap(),
            ],
        );
        assert!(code <= 1, "{err}");
    }
    let out = env
        .vouch()
        .args(["merge", reports.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let merged: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(findings(&merged), findings(&whole));
    for c in SUMMED {
        assert_eq!(counter(&merged, c), counter(&whole, c), "{c}");
    }
    assert_eq!(merged["summary"]["listing"]["rows"], 56);
    assert_eq!(
        merged["summary"]["listing"]["md5"],
        whole["summary"]["listing"]["md5"]
    );
}

/// The keys of a moto bucket.
fn keys_of(moto: &crate::support::moto::MotoServer, bucket: &str) -> Vec<String> {
    crate::support::inventory::objects_of(moto, bucket)
        .into_iter()
        .map(|o| String::from_utf8(o.key).unwrap())
        .collect()
}

#[test]
fn shard_reports_go_to_an_object_store_and_merge_reads_them_there() {
    let env = Env::new();
    let backup = setup(&env);
    let moto = crate::support::moto::MotoServer::start();
    moto.create_bucket("reports");
    moto.create_bucket("bkt");
    moto.put_objects("bkt", &[("p/d0/f00.txt", b"x")]);
    let (code, whole, err) = audit(&env, &env.dir.path().join("all.sqlite3"), &backup, &[]);
    assert_eq!(code, 1, "{err}");
    let n = 3;
    for k in 0..n {
        let out = env
            .vouch_at(&env.dir.path().join(format!("s{k}.sqlite3")))
            .envs(moto.env())
            .env_remove("VOUCH_SHARD")
            .arg("audit")
            .arg(&env.root)
            .arg("--remote")
            .arg(&backup)
            .args(["--format", "json", "--mode", "deep"])
            .args(["--shard", &format!("{k}/{n}")])
            .args(["--output", &format!("s3://reports/run-1/shard-{k}.json")])
            .output()
            .unwrap();
        assert!(out.status.code().unwrap() <= 1, "{}", stderr_of(&out));
        assert!(out.stdout.is_empty(), "the report went to the bucket");
    }
    // A report of a failed shard is written too (the merge must see it).
    let out = env
        .vouch_at(&env.dir.path().join("s0.sqlite3"))
        .envs(moto.env())
        .args([
            "audit",
            env.root.to_str().unwrap(),
            "--remote",
            "/nonexistent/backup",
        ])
        .args(["--format", "json", "--shard", "0/3"])
        .args(["--output", "s3://reports/failed/shard-0.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        keys_of(&moto, "reports"),
        [
            "failed/shard-0.json",
            "run-1/shard-0.json",
            "run-1/shard-1.json",
            "run-1/shard-2.json"
        ]
    );

    // The merge reads every report under the prefix, and writes its own
    // report to the bucket as well.
    let merge = |args: &[&str]| {
        env.vouch()
            .envs(moto.env())
            .arg("merge")
            .args(args)
            .output()
            .unwrap()
    };
    let out = merge(&["s3://reports/run-1/", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let merged: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(findings(&merged), findings(&whole));
    for c in SUMMED {
        assert_eq!(counter(&merged, c), counter(&whole, c), "{c}");
    }
    let reports = merged["summary"]["shards"]["reports"].to_string();
    assert!(
        reports.contains("s3://reports/run-1/shard-2.json"),
        "{reports}"
    );
    let out = merge(&[
        "s3://reports/run-1/",
        "--format",
        "json",
        "--output",
        "s3://reports/merged/run-1.json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let stored = moto.boto3(
        "print(s3.get_object(Bucket='reports', Key='merged/run-1.json')['Body'].read().decode())",
        &[],
        b"",
    );
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(findings(&stored), findings(&whole));
    // One named report object works as well as a prefix.
    let out = merge(&[
        "s3://reports/run-1/shard-0.json",
        "s3://reports/run-1/shard-1.json",
        "s3://reports/run-1/shard-2.json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));

    // A missing shard, and a failed one, are exit 2 naming them.
    moto.delete_object("reports", "run-1/shard-1.json");
    let out = merge(&["s3://reports/run-1/"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("shard 1/3 missing"),
        "{}",
        stderr_of(&out)
    );
    let out = merge(&["s3://reports/failed/"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("s3://reports/failed/shard-0.json: this shard failed"),
        "{}",
        stderr_of(&out)
    );
    let out = merge(&["s3://reports/nothing-here/"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("no shard reports"),
        "{}",
        stderr_of(&out)
    );

    // Never into the audited backup: refused before anything is written.
    let before = keys_of(&moto, "bkt");
    for target in ["s3://bkt/p/report.json", "s3://bkt/p/deeper/r.json"] {
        let out = env
            .vouch_at(&env.dir.path().join("x.sqlite3"))
            .envs(moto.env())
            .args([
                "audit",
                env.root.to_str().unwrap(),
                "--remote",
                "s3://bkt/p",
            ])
            .args(["--format", "json", "--output", target])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{target}");
        assert!(
            stderr_of(&out).contains("is inside the audited backup s3://bkt/p"),
            "{}",
            stderr_of(&out)
        );
    }
    assert_eq!(keys_of(&moto, "bkt"), before);
    assert!(
        !env.dir.path().join("x.sqlite3").exists(),
        "refused before the index"
    );
    let inside = backup.join("reports/r.json");
    let out = env
        .vouch_at(&env.dir.path().join("x.sqlite3"))
        .args([
            "audit",
            env.root.to_str().unwrap(),
            "--remote",
            backup.to_str().unwrap(),
        ])
        .args(["--format", "json", "--output", inside.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("inside the audited backup"),
        "{}",
        stderr_of(&out)
    );
    assert!(!backup.join("reports").exists());
    // Another prefix of the same bucket is fine.
    let out = env
        .vouch_at(&env.dir.path().join("y.sqlite3"))
        .envs(moto.env())
        .args([
            "audit",
            env.root.to_str().unwrap(),
            "--remote",
            "s3://bkt/p",
        ])
        .args([
            "--format",
            "json",
            "--output",
            "s3://bkt/vouch-reports/r.json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(keys_of(&moto, "bkt").contains(&"vouch-reports/r.json".to_string()));
}

#[test]
fn config_file_audits_run_as_shards_from_vouch_shard() {
    let env = Env::new();
    let backup = setup(&env);
    let (code, whole, err) = audit(&env, &env.dir.path().join("all.sqlite3"), &backup, &[]);
    assert_eq!(code, 1, "{err}");
    let d = env.dir.path();
    let cfg = d.join("vouch.toml");
    std::fs::write(
        &cfg,
        format!(
            "index = \"{d}/idx-{{shard}}.sqlite3\"\n[audit.nightly]\nroot = {root:?}\nremote = {backup:?}\nmode = \"deep\"\noutput = \"{d}/reports/shard-{{shard}}.json\"\n",
            d = d.display(),
            root = env.root.display().to_string(),
            backup = backup.display().to_string(),
        ),
    )
    .unwrap();
    std::fs::create_dir(d.join("reports")).unwrap();
    let run = |vars: &[(&str, &str)], args: &[&str]| {
        let mut cmd = assert_cmd::Command::cargo_bin("vouch").unwrap();
        cmd.env_remove("VOUCH_INDEX")
            .env_remove("VOUCH_SHARD")
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("AWS_BATCH_JOB_ARRAY_INDEX")
            .env_remove("NOMAD_ALLOC_INDEX")
            .env_remove("PARALLEL_SEQ")
            .envs(vars.iter().copied())
            .args(["--format", "json", "run", "nightly", "--config"])
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap()
    };
    // VOUCH_SHARD, --shard, and auto/N from the scheduler's variable.
    for (vars, args) in [
        (&[("VOUCH_SHARD", "0/3")][..], &[][..]),
        (&[][..], &["--shard", "1/3"][..]),
        (
            &[("VOUCH_SHARD", "auto/3"), ("NOMAD_ALLOC_INDEX", "2")][..],
            &[][..],
        ),
    ] {
        let out = run(vars, args);
        assert!(out.status.code().unwrap() <= 1, "{}", stderr_of(&out));
    }
    for k in 0..3 {
        assert!(
            d.join(format!("idx-{k}.sqlite3")).exists(),
            "index of shard {k}"
        );
        let doc: Value = serde_json::from_slice(
            &std::fs::read(d.join(format!("reports/shard-{k}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(doc["summary"]["shard"]["index"], k);
    }
    let out = env
        .vouch()
        .args([
            "merge",
            d.join("reports").to_str().unwrap(),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let merged: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(findings(&merged), findings(&whole));
    for c in SUMMED {
        assert_eq!(counter(&merged, c), counter(&whole, c), "{c}");
    }
    // `{shard}` with no shard is refused, and so is a bad one.
    let out = run(&[], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("names {shard} but the audit has no shard"),
        "{}",
        stderr_of(&out)
    );
    let out = run(&[("VOUCH_SHARD", "3/3")], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("not below N = 3"),
        "{}",
        stderr_of(&out)
    );
}

/// A shard's audit hands its keys from the merger to the recorder through
/// a bounded queue, so memory does not grow with the keys. When the
/// recorder stops early (here: its JSONL reader went away after a few
/// lines, with thousands of keys still queued behind a full queue), the
/// merger must stop too, not wait forever on the full queue.
#[test]
fn an_audit_whose_reader_goes_away_stops_with_its_queue_full() {
    let env = Env::new();
    // 4000 missing files: 8000 events, more than the queue holds (4096).
    for i in 0..4000u32 {
        env.write(format!("d{}/f{i}", i % 10), b"x");
    }
    let backup = env.dir.path().join("empty-backup");
    std::fs::create_dir_all(&backup).unwrap();
    let index = env.dir.path().join("shard-0.sqlite3");
    let scanned = env
        .vouch_at(&index)
        .env_remove("VOUCH_SHARD")
        .args(["scan", "--shard", "0/1", "--format", "json"])
        .arg(&env.root)
        .output()
        .unwrap();
    assert_eq!(scanned.status.code(), Some(0), "{}", stderr_of(&scanned));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("vouch"))
        .env_remove("VOUCH_INDEX")
        .env_remove("VOUCH_SHARD")
        .arg("--index")
        .arg(&index)
        .args(["audit", "--no-scan", "--shard", "0/1", "--format", "jsonl"])
        .arg(&env.root)
        .arg("--remote")
        .arg(&backup)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then go away.
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    assert!(first.contains("\"kind\""), "{first}");
    drop(out);
    // A hang here is the bug; the deadline only keeps it from hanging CI.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the audit did not stop after its reader went away");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // A closed pipe ends vouch quietly (as `| head` does).
    assert_eq!(status.code(), Some(0));
}
