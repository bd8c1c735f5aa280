//! `vouch scan`: the incremental manifest.

use std::os::unix::fs::PermissionsExt;

use crate::*;

#[test]
fn first_scan_lists_every_file_as_added_with_exact_counters() {
    let env = Env::new();
    env.write("a.txt", b"alpha");
    env.write("dir/b.bin", &[7u8; 10_000]);
    env.write("dir/sub/c", b"");
    let (code, doc) = env.scan();
    assert_eq!(code, 0);
    assert_eq!(
        findings(&doc),
        pairs(&[
            ("added", "a.txt"),
            ("added", "dir/b.bin"),
            ("added", "dir/sub/c")
        ])
    );
    assert_eq!(counter(&doc, "added"), 3);
    assert_eq!(counter(&doc, "modified"), 0);
    assert_eq!(counter(&doc, "deleted"), 0);
    assert_eq!(counter(&doc, "unchanged"), 0);
    assert_eq!(counter(&doc, "unreadable"), 0);
    assert_eq!(counter(&doc, "bytes_hashed"), 10_005);
    let root = doc["summary"]["merkle_root"].as_str().unwrap();
    assert_eq!(root.len(), 64);
    assert!(root.chars().all(|c| c.is_ascii_hexdigit()));
    // The recorded hash is BLAKE3 of the content, as b3sum would print it.
    let a = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "a.txt")
        .unwrap();
    assert_eq!(
        a["local"]["blake3"].as_str().unwrap(),
        blake3::hash(b"alpha").to_hex().as_str()
    );
}

#[test]
fn rescan_reports_one_added_one_modified_one_deleted_and_hashes_only_those() {
    let env = Env::new();
    env.write("keep1", b"same");
    env.write("keep2", b"same too");
    let victim = env.write("modify-me", b"0123456789");
    env.write("delete-me", b"bye");
    assert_eq!(env.scan().0, 0);

    // Same size, new content, a new mtime: a rewrite. (With the mtime
    // put back it would be bit rot: see tests/it/false_ok.rs.)
    std::fs::write(&victim, b"9876543210").unwrap();
    set_mtime(&victim, 1_600_000_100);
    std::fs::remove_file(env.root.join("delete-me")).unwrap();
    env.write("new-file", b"hello");

    let (code, doc) = env.scan();
    assert_eq!(code, 0, "changes are not discrepancies");
    assert_eq!(
        findings(&doc),
        pairs(&[
            ("added", "new-file"),
            ("deleted", "delete-me"),
            ("modified", "modify-me")
        ])
    );
    assert_eq!(counter(&doc, "added"), 1);
    assert_eq!(counter(&doc, "modified"), 1);
    assert_eq!(counter(&doc, "deleted"), 1);
    assert_eq!(counter(&doc, "unchanged"), 2);
    assert_eq!(
        counter(&doc, "bytes_hashed"),
        15,
        "only the new and the modified file"
    );

    // A third scan with nothing changed hashes nothing and keeps the root.
    let (code, again) = env.scan();
    assert_eq!(code, 0);
    assert_eq!(findings(&again), vec![]);
    assert_eq!(counter(&again, "unchanged"), 4);
    assert_eq!(counter(&again, "bytes_hashed"), 0);
    assert_eq!(
        again["summary"]["merkle_root"],
        doc["summary"]["merkle_root"]
    );
}

#[test]
fn rehash_catches_content_that_changed_while_metadata_did_not() {
    let env = Env::new();
    env.write("photo.jpg", b"original bytes");
    env.write("other", b"fine");
    assert_eq!(env.scan().0, 0);
    // Bit rot: the bytes on disk no longer match what was recorded, and
    // no metadata changed. Simulate it by making the index remember other
    // content for the unchanged file (same size).
    let conn = rusqlite::Connection::open(&env.index).unwrap();
    let n = conn
        .execute(
            "UPDATE entries SET blake3 = ?1 WHERE path = ?2 AND until_run IS NULL",
            rusqlite::params![
                blake3::hash(b"ORIGINAL BYTES").as_bytes().as_slice(),
                b"photo.jpg".as_slice()
            ],
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(conn);

    // A normal scan trusts the metadata and sees nothing.
    let (code, doc) = env.scan();
    assert_eq!((code, findings(&doc)), (0, vec![]));

    let root = env.root.to_str().unwrap().to_string();
    let (code, doc) = env.json(&["scan", &root, "--rehash"]);
    assert_eq!(code, 1, "bit rot is a discrepancy");
    assert_eq!(findings(&doc), pairs(&[("corrupt", "photo.jpg")]));
    assert_eq!(counter(&doc, "corrupt"), 1);
    assert_eq!(counter(&doc, "bytes_hashed"), 18);
    // The index keeps the trusted hash: the finding repeats on the next rehash.
    let (code, doc) = env.json(&["scan", &root, "--rehash"]);
    assert_eq!(
        (code, findings(&doc)),
        (1, pairs(&[("corrupt", "photo.jpg")]))
    );
}

#[test]
fn odd_names_round_trip_exactly() {
    let env = Env::new();
    env.write(b"caf\xe9.txt", b"latin-1 name");
    env.write("new\nline", b"x");
    env.write("back\\slash", b"y");
    env.write("sp ace/tab\there", b"z");
    let (code, doc) = env.scan();
    assert_eq!(code, 0);
    assert_eq!(
        findings(&doc),
        pairs(&[
            ("added", "back\\\\slash"),
            ("added", "caf\\xe9.txt"),
            ("added", "new\\nline"),
            ("added", "sp ace/tab\there"),
        ])
    );
    // Stored as bytes: a rescan matches every one of them, nothing re-added.
    let (code, doc) = env.scan();
    assert_eq!((code, findings(&doc)), (0, vec![]));
    assert_eq!(counter(&doc, "unchanged"), 4);
}

#[test]
fn symlinks_are_recorded_never_followed_even_in_a_loop() {
    let env = Env::new();
    env.write("real", b"data");
    std::os::unix::fs::symlink("loop-b", env.root.join("loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", env.root.join("loop-b")).unwrap();
    std::os::unix::fs::symlink(".", env.root.join("self")).unwrap();
    std::os::unix::fs::symlink("real", env.root.join("to-real")).unwrap();
    let (code, doc) = env.scan();
    assert_eq!(code, 0);
    assert_eq!(
        findings(&doc),
        pairs(&[
            ("added", "loop-a"),
            ("added", "loop-b"),
            ("added", "real"),
            ("added", "self"),
            ("added", "to-real"),
        ])
    );
    assert_eq!(
        counter(&doc, "bytes_hashed"),
        4,
        "only the regular file is read"
    );
    // Retargeting a link is a modification.
    std::fs::remove_file(env.root.join("to-real")).unwrap();
    std::os::unix::fs::symlink("elsewhere", env.root.join("to-real")).unwrap();
    let (_, doc) = env.scan();
    assert_eq!(findings(&doc), pairs(&[("modified", "to-real")]));
}

#[test]
fn fifos_are_skipped_and_counted() {
    let env = Env::new();
    env.write("file", b"x");
    let fifo = env.root.join("pipe");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let (code, doc) = env.scan();
    assert_eq!(code, 0);
    assert_eq!(findings(&doc), pairs(&[("added", "file")]));
    assert_eq!(counter(&doc, "special_skipped"), 1);
}

#[test]
fn an_unreadable_file_is_a_finding_and_the_scan_goes_on() {
    let env = Env::new();
    env.write("ok-before", b"fine");
    let secret = env.write("secret", b"no access");
    env.write("ok-after", b"fine too");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = if is_root() {
        for p in [
            env.root.clone(),
            env.root.join("ok-before"),
            env.root.join("ok-after"),
        ] {
            let mode = if p.is_dir() { 0o777 } else { 0o644 };
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        vouch_as_nobody(
            &env,
            &["--format", "json", "scan", env.root.to_str().unwrap()],
        )
    } else {
        env.vouch()
            .args(["--format", "json", "scan"])
            .arg(&env.root)
            .output()
            .unwrap()
    };
    assert_eq!(
        out.status.code(),
        Some(2),
        "incomplete (issue 17): {}",
        stderr_of(&out)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        findings(&doc),
        pairs(&[
            ("added", "ok-after"),
            ("added", "ok-before"),
            ("unreadable", "secret")
        ])
    );
    let detail = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "unreadable")
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("Permission denied"), "{detail}");
}

#[test]
fn an_unreadable_directory_keeps_its_manifest_rather_than_deleting_it() {
    let env = Env::new();
    env.write("locked/inside", b"precious");
    env.write("open", b"x");
    assert_eq!(env.scan().0, 0);
    let locked = env.root.join("locked");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = if is_root() {
        std::fs::set_permissions(&env.root, std::fs::Permissions::from_mode(0o777)).unwrap();
        for entry in std::fs::read_dir(env.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
            }
        }
        vouch_as_nobody(
            &env,
            &["--format", "json", "scan", env.root.to_str().unwrap()],
        )
    } else {
        env.vouch()
            .args(["--format", "json", "scan"])
            .arg(&env.root)
            .output()
            .unwrap()
    };
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "incomplete (issue 17): {}",
        stderr_of(&out)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        findings(&doc),
        pairs(&[("unreadable", "locked")]),
        "no false 'deleted'"
    );
    // Readable again: nothing was lost, nothing is re-added.
    let (code, doc) = env.scan();
    assert_eq!((code, findings(&doc)), (0, vec![]));
}

#[test]
fn a_missing_root_is_trouble_and_writes_nothing() {
    let env = Env::new();
    let out = env
        .vouch()
        .args(["scan"])
        .arg(env.dir.path().join("no-such-root"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no-such-root") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!env.index.exists(), "no index may be created");

    let file = env.write("plain-file", b"x");
    let out = env.vouch().arg("scan").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("is not a directory"));
}

#[test]
fn identical_trees_have_equal_roots_and_one_byte_changes_it() {
    let env = Env::new();
    let other = env.dir.path().join("other");
    for base in [&env.root, &other] {
        Env::write_in(base, "x/y/z.bin", &[1u8; 5000]);
        Env::write_in(base, "x/w", b"w");
        Env::write_in(base, "top", b"t");
    }
    let root_of = |dir: &std::path::Path| {
        let (code, doc) = env.json(&["scan", dir.to_str().unwrap()]);
        assert_eq!(code, 0);
        doc["summary"]["merkle_root"].as_str().unwrap().to_string()
    };
    let a = root_of(&env.root);
    let b = root_of(&other);
    assert_eq!(a, b, "same content, names and shape: same root");
    let mut bytes = vec![1u8; 5000];
    bytes[4321] = 2;
    let z = Env::write_in(&other, "x/y/z.bin", &bytes);
    set_mtime(&z, 1_600_000_100); // a rewrite, not bit rot
    let c = root_of(&other);
    assert_ne!(a, c);
    // Renaming changes it too, and so does an empty directory.
    std::fs::create_dir(env.root.join("empty")).unwrap();
    assert_ne!(root_of(&env.root), a);
}

/// A current row as (path, kind, size, blake3).
type Row = (Vec<u8>, i64, i64, Option<Vec<u8>>);

/// The current rows of `index`: what the Merkle fold stores for
/// directories, and what it folds for the rest.
fn manifest_rows(index: &std::path::Path) -> Vec<Row> {
    let conn = rusqlite::Connection::open(index).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT path, kind, size, blake3 FROM entries WHERE until_run IS NULL ORDER BY path",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_first_scan_folds_the_tree_as_it_writes_to_the_same_root_and_directory_rows() {
    // A first scan folds the Merkle tree in the writer, from the entries
    // as they come (see scan/writer.rs, InlineFold); any other scan folds
    // the manifest after the walk. Both must store the same directory
    // hashes and sizes and give the same root.
    let env = Env::new();
    let files: &[(&str, &[u8])] = &[
        ("a/b/c", b"c"),
        ("a/d", b"dd"),
        ("a.b", b"dot"),
        ("a-b/x", &[7u8; 70_000]),
        ("a/b/e/f/g", b"deep"),
        ("a/b/e/h", b""),
        ("z", &[1u8; 5000]),
    ];
    for (path, content) in files {
        env.write(path, content);
    }
    std::fs::create_dir_all(env.root.join("a/empty/emptier")).unwrap();
    std::os::unix::fs::symlink("../a.b", env.root.join("a/link")).unwrap();
    let first = env.dir.path().join("first.sqlite3");
    let other = env.dir.path().join("other.sqlite3");
    let root = env.root.to_str().unwrap();
    let scan = |index: &std::path::Path| {
        let out = env
            .vouch_at(index)
            .args(["scan", root, "--format", "json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["summary"]["merkle_root"].as_str().unwrap().to_string()
    };
    let folded_inline = scan(&first);
    // The other index: a first scan with one more directory, removed
    // before its second scan, which folds the manifest after the walk.
    env.write("m/gone", b"soon gone");
    scan(&other);
    std::fs::remove_dir_all(env.root.join("m")).unwrap();
    let folded_after = scan(&other);
    assert_eq!(folded_inline, folded_after);
    let rows = manifest_rows(&first);
    assert_eq!(rows, manifest_rows(&other));
    // Every directory row has its hash and the bytes below it.
    let dir_kind = rows.iter().find(|r| r.0 == b"a").unwrap().1;
    let dirs: Vec<_> = rows.iter().filter(|r| r.1 == dir_kind).collect();
    assert_eq!(
        dirs.len(),
        8,
        "ROOT a a/b a/b/e a/b/e/f a/empty a/empty/emptier a-b"
    );
    assert!(
        dirs.iter()
            .all(|d| d.3.as_ref().is_some_and(|h| h.len() == 32))
    );
    let a = dirs.iter().find(|d| d.0 == b"a").unwrap();
    assert_eq!(
        a.2,
        1 + 2 + 4,
        "a/b/c, a/d, a/b/e/f/g (the symlink's bytes are not counted)"
    );
}

#[test]
fn an_index_written_by_an_earlier_run_is_reopened_and_trusted() {
    let env = Env::new();
    for i in 0..50 {
        env.write(
            format!("d{}/f{i}", i % 5),
            format!("content {i}").as_bytes(),
        );
    }
    let (_, first) = env.scan();
    assert_eq!(counter(&first, "added"), 50);
    // A new process, the same index file.
    let (code, second) = env.scan();
    assert_eq!(code, 0);
    assert_eq!(counter(&second, "unchanged"), 50);
    assert_eq!(counter(&second, "bytes_hashed"), 0);
    assert_eq!(
        second["summary"]["merkle_root"],
        first["summary"]["merkle_root"]
    );
    let conn = rusqlite::Connection::open(&env.index).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        version, 10,
        "v3: checks, v4: storage class, v5: proofs, v6: accepted findings, v7: trusted hash, v8: proof method, v9: lean entries, v10: CRC64NVME in the entry"
    );
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn a_file_that_is_not_an_index_is_refused_and_left_untouched() {
    let env = Env::new();
    env.write("f", b"x");
    std::fs::write(&env.index, b"this is my thesis, not a database").unwrap();
    let out = env.vouch().arg("scan").arg(&env.root).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not a vouch index"), "{err}");
    assert_eq!(
        std::fs::read(&env.index).unwrap(),
        b"this is my thesis, not a database"
    );

    // Another application's SQLite database is refused too.
    std::fs::remove_file(&env.index).unwrap();
    let conn = rusqlite::Connection::open(&env.index).unwrap();
    conn.execute_batch("CREATE TABLE recipes(name TEXT)")
        .unwrap();
    drop(conn);
    let before = std::fs::read(&env.index).unwrap();
    let out = env.vouch().arg("scan").arg(&env.root).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("not a vouch index"));
    assert_eq!(std::fs::read(&env.index).unwrap(), before);
}

#[test]
fn an_index_from_a_newer_vouch_is_refused_and_left_untouched() {
    let env = Env::new();
    env.write("f", b"x");
    assert_eq!(env.scan().0, 0);
    let conn = rusqlite::Connection::open(&env.index).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let before = std::fs::read(&env.index).unwrap();
    let out = env.vouch().arg("scan").arg(&env.root).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(err.contains("v99") && err.contains("newer"), "{err}");
    assert_eq!(std::fs::read(&env.index).unwrap(), before);
}

#[test]
fn the_index_defaults_to_xdg_data_home_and_honours_vouch_index() {
    let env = Env::new();
    env.write("f", b"x");
    let xdg = env.dir.path().join("xdg");
    let mut cmd = assert_cmd::Command::cargo_bin("vouch").unwrap();
    cmd.env_remove("VOUCH_INDEX")
        .env("XDG_DATA_HOME", &xdg)
        .args(["scan", "-q"])
        .arg(&env.root)
        .assert()
        .code(0)
        .stdout("");
    assert!(xdg.join("vouch/index.sqlite3").is_file());
    let custom = env.dir.path().join("custom.db");
    let mut cmd = assert_cmd::Command::cargo_bin("vouch").unwrap();
    cmd.env("VOUCH_INDEX", &custom)
        .args(["scan", "-q"])
        .arg(&env.root)
        .assert()
        .code(0);
    assert!(custom.is_file());
}

#[test]
fn a_label_held_by_a_killed_scan_is_free_again() {
    let env = Env::new();
    env.write("f", b"x");
    let root = env.root.to_str().unwrap().to_string();
    assert_eq!(env.json(&["scan", &root]).0, 0);
    // A labelled scan that was killed: its run row stays `running`.
    let conn = rusqlite::Connection::open(&env.index).unwrap();
    conn.execute(
        "INSERT INTO runs(root_id, command, label, started_at, status) VALUES (1, 'scan', 'before-move', 0, 'running')",
        [],
    )
    .unwrap();
    drop(conn);
    let (code, doc) = env.json(&["scan", &root, "--label", "before-move"]);
    assert_eq!(code, 0, "{doc}");
    let (_, hist) = env.json(&["history"]);
    let runs = hist["runs"].as_array().unwrap();
    assert_eq!(runs[1]["status"], "interrupted");
    assert!(runs[1].get("label").is_none());
    assert_eq!(runs[2]["label"], "before-move");
    // A finished run keeps its label for good.
    let out = env
        .vouch()
        .args(["scan", &root, "--label", "before-move"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("already names run 3"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn a_reused_merkle_root_is_never_stale_after_an_audit_scanned_changes() {
    let env = Env::new();
    env.write("f", b"one");
    let backup = env.dir.path().join("backup");
    std::fs::create_dir(&backup).unwrap();
    let root = env.root.to_str().unwrap().to_string();
    let (_, first) = env.json(&["scan", &root]);
    env.write("f", b"two");
    let (_, audited) = env.json(&["audit", &root, "--remote", backup.to_str().unwrap()]);
    let changed_root = audited["summary"]["scan"]["merkle_root"].clone();
    assert_ne!(changed_root, first["summary"]["merkle_root"]);
    // Nothing changed since the audit's scan: the root is that one.
    let (_, again) = env.json(&["scan", &root]);
    assert_eq!(again["summary"]["merkle_root"], changed_root);
}
