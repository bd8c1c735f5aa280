//! Never a false OK (issue 17): each test here tries, as a user would, a
//! way a hostile review made vouch say OK (exit 0, `verified`, identical)
//! about data that is not whole, and pins down that it no longer does.
//! Every test fails on the code before its fix.

use std::path::Path;

use serde_json::Value;

use crate::{Env, export, findings, pairs, set_old_mtime, stderr_of};

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Rewrites a file in place with other bytes of the same size and puts
/// its mtime back, as bit rot (or `touch -r`, `cp -p`) leaves it: only the
/// ctime moves.
fn rot(path: &Path, bytes: &[u8]) {
    assert_eq!(std::fs::metadata(path).unwrap().len(), bytes.len() as u64);
    std::fs::write(path, bytes).unwrap();
    set_old_mtime(path);
}

fn finding<'a>(doc: &'a Value, kind: &str, path: &str) -> &'a Value {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == kind && f["path"] == path)
        .unwrap_or_else(|| panic!("no {kind} {path} in {doc}"))
}

#[test]
fn rotted_file_stays_corrupt_on_every_later_run_until_rewritten() {
    let env = Env::new();
    let photo = env.write("photo.jpg", b"original bytes");
    env.write("other", b"fine");
    let root = s(&env.root);
    // A backup copy, a pinned snapshot and an exported manifest, all taken
    // while the file was whole.
    let backup = env.dir.path().join("backup");
    Env::write_in(&backup, "photo.jpg", b"original bytes");
    Env::write_in(&backup, "other", b"fine");
    let (code, _) = env.json(&["scan", &root, "--label", "before"]);
    assert_eq!(code, 0);
    let manifest = env.dir.path().join("B3SUMS");
    let out = export(&env, &env.root, "b3sum", &manifest);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));

    rot(&photo, b"ORIGINAL BYTES");

    // The first plain scan to see it (the write moved the ctime): corrupt,
    // not `modified` with its new hash accepted.
    let (code, doc) = env.scan();
    assert_eq!(
        (code, findings(&doc)),
        (1, pairs(&[("corrupt", "photo.jpg")]))
    );
    let f = finding(&doc, "corrupt", "photo.jpg");
    assert_eq!(
        f["local"]["indexed_blake3"],
        blake3::hash(b"original bytes").to_hex().as_str()
    );
    assert_eq!(
        f["local"]["blake3"],
        blake3::hash(b"ORIGINAL BYTES").to_hex().as_str()
    );
    let first_seen = f["first_seen"].clone();

    // Every later scan says so again, with the same first_seen.
    for args in [vec!["scan", &root], vec!["scan", &root, "--rehash"]] {
        let (code, doc) = env.json(&args);
        assert_eq!(
            (code, findings(&doc)),
            (1, pairs(&[("corrupt", "photo.jpg")])),
            "{args:?}"
        );
        assert_eq!(
            finding(&doc, "corrupt", "photo.jpg")["first_seen"],
            first_seen
        );
    }

    // An audit against the whole backup: the local file is corrupt (its
    // scan says so), the backup copy is verified against the trusted hash.
    let (code, doc) = env.json(&["audit", &root, "--remote", &s(&backup), "--mode", "deep"]);
    assert_eq!(
        (code, findings(&doc)),
        (1, pairs(&[("corrupt", "photo.jpg")])),
        "{doc}"
    );
    assert_eq!(doc["summary"]["verified"], 2, "{doc}");
    // Without a scan first, the audit reports the rot from the index.
    let (code, doc) = env.json(&[
        "audit",
        &root,
        "--remote",
        &s(&backup),
        "--mode",
        "deep",
        "--no-scan",
    ]);
    assert_eq!(
        (code, findings(&doc)),
        (1, pairs(&[("corrupt", "photo.jpg")])),
        "{doc}"
    );
    assert_eq!(doc["summary"]["verified"], 2, "{doc}");

    // verify against the manifest exported before, diff against the
    // snapshot before and against the backup copy.
    for args in [
        vec!["verify", &root, "--manifest", &s(&manifest)],
        vec!["diff", "@before", &root],
        vec!["diff", &s(&backup), &root],
    ] {
        let (code, doc) = env.json(&args);
        assert_eq!(
            (code, findings(&doc)),
            (1, pairs(&[("corrupt", "photo.jpg")])),
            "{args:?}: {doc}"
        );
    }

    // An export would vouch for the rotted bytes: refused, nothing written.
    let again = env.dir.path().join("B3SUMS.after");
    let out = export(&env, &env.root, "b3sum", &again);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains("could not be settled") && err.contains("photo.jpg: content changed"),
        "{err}"
    );
    assert!(!again.exists());

    // A chmod moves only the ctime: still corrupt.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&photo, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, doc) = env.scan();
    assert_eq!(
        (code, findings(&doc)),
        (1, pairs(&[("corrupt", "photo.jpg")]))
    );

    // Rewritten (its mtime moves): the new content is accepted, once.
    crate::set_mtime(&photo, 1_600_000_100);
    let (code, doc) = env.scan();
    assert_eq!((code, findings(&doc)), (0, vec![]), "{doc}");
    let (code, doc) = env.scan();
    assert_eq!((code, findings(&doc)), (0, vec![]), "{doc}");
}

#[test]
fn rotted_file_whose_content_comes_back_heals() {
    let env = Env::new();
    let photo = env.write("photo.jpg", b"original bytes");
    assert_eq!(env.scan().0, 0);
    rot(&photo, b"ORIGINAL BYTES");
    assert_eq!(env.scan().0, 1);
    // Restored from a backup with its mtime (`cp -p`): whole again.
    rot(&photo, b"original bytes");
    let (code, doc) = env.scan();
    assert_eq!(
        (code, findings(&doc)),
        (0, pairs(&[("modified", "photo.jpg")])),
        "{doc}"
    );
    let (code, doc) = env.scan();
    assert_eq!((code, findings(&doc)), (0, vec![]));
}

#[test]
fn a_tree_that_loses_everything_is_shrunk_even_when_the_backup_mirrors_it() {
    let env = Env::new();
    let backup = env.dir.path().join("backup");
    let names = ["a.db", "b.db", "c/d.db", "c/e.db"];
    for (i, name) in names.iter().enumerate() {
        let bytes = vec![b'x'; 1000 * (i + 1)];
        env.write(name, &bytes);
        Env::write_in(&backup, name, &bytes);
    }
    let root = s(&env.root);
    let audit = || env.json(&["audit", &root, "--remote", &s(&backup), "--mode", "deep"]);
    let (code, doc) = audit();
    assert_eq!(code, 0, "{doc}");
    // The data folder is emptied and the backup job mirrors the deletion.
    for name in names {
        std::fs::remove_file(env.root.join(name)).unwrap();
        std::fs::remove_file(backup.join(name)).unwrap();
    }
    let (code, doc) = audit();
    assert_eq!(code, 1, "losing everything is not clean: {doc}");
    assert_eq!(
        findings(&doc),
        pairs(&[
            ("deleted", "a.db"),
            ("deleted", "b.db"),
            ("deleted", "c/d.db"),
            ("deleted", "c/e.db"),
            ("shrunk", ""),
        ])
    );
    let f = finding(&doc, "shrunk", "");
    assert_eq!(
        f["local"],
        serde_json::json!({
            "before": { "files": 4, "bytes": 10000 },
            "after": { "files": 0, "bytes": 0 },
        })
    );
    assert_eq!(doc["summary"]["shrunk"], 1, "{doc}");

    // Losing half the bytes but few files is a shrink too (one file here
    // holds most of them); losing less than the threshold is not.
    let env = Env::new();
    env.write("big", &vec![b'x'; 9000]);
    env.write("small1", b"1");
    env.write("small2", b"2");
    assert_eq!(env.scan().0, 0);
    std::fs::remove_file(env.root.join("small1")).unwrap();
    let (code, doc) = env.scan();
    assert_eq!((code, findings(&doc)), (0, pairs(&[("deleted", "small1")])));
    std::fs::remove_file(env.root.join("big")).unwrap();
    let (code, doc) = env.scan();
    assert_eq!(
        (code, findings(&doc)),
        (1, pairs(&[("deleted", "big"), ("shrunk", "")]))
    );
}

#[test]
fn a_file_replaced_by_a_symlink_or_a_fifo_is_shrunk_not_silent() {
    let env = Env::new();
    let backup = env.dir.path().join("backup");
    // Five files, so that losing two is not a shrink of the whole tree.
    for name in ["keep1", "keep2", "keep3", "linked", "piped"] {
        env.write(name, b"precious data");
        Env::write_in(&backup, name, b"precious data");
    }
    let root = s(&env.root);
    assert_eq!(env.scan().0, 0);
    std::fs::remove_file(env.root.join("linked")).unwrap();
    std::os::unix::fs::symlink("/dev/null", env.root.join("linked")).unwrap();
    std::fs::remove_file(env.root.join("piped")).unwrap();
    nix_mkfifo(&env.root.join("piped"));
    let (code, doc) = env.json(&["audit", &root, "--remote", &s(&backup), "--mode", "deep"]);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(
        findings(&doc),
        pairs(&[
            ("deleted", "piped"),
            ("extra", "piped"),
            ("modified", "linked"),
            ("shrunk", "linked"),
            ("shrunk", "piped"),
        ]),
        "{doc}"
    );
    assert!(
        finding(&doc, "shrunk", "linked")["detail"]
            .as_str()
            .unwrap()
            .contains("replaced by a symlink to /dev/null"),
        "{doc}"
    );
    assert_eq!(finding(&doc, "shrunk", "linked")["local"]["size"], 13);
}

fn nix_mkfifo(path: &Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Runs an audit of `env` against `url` with the given environment.
fn audit_with(env: &Env, url: &str, envs: &[(String, String)], args: &[&str]) -> (i32, Value) {
    let root = s(&env.root);
    let out = env
        .vouch()
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args([
            "audit",
            &root,
            "--remote",
            url,
            "--format",
            "json",
            "--retries",
            "1",
        ])
        .args(args)
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("exit {code}: not JSON ({e}): {}", stderr_of(&out)));
    (code, doc)
}

#[test]
fn an_md5_etag_match_is_no_read_for_a_deep_run_or_read_within() {
    let env = Env::new();
    let moto = crate::support::moto::MotoServer::start();
    moto.create_bucket("md5proof");
    for (name, content) in [("a", &b"alpha content"[..]), ("b", &b"beta content"[..])] {
        env.write(name, content);
        moto.put_object("md5proof", &format!("p/{name}"), content);
    }
    let url = "s3://md5proof/p";
    let within = |doc: &Value| doc["summary"]["verified_within"]["1d"]["objects"].as_u64();

    // Quick: both proven by their MD5 ETags, none of them read.
    let (code, doc) = audit_with(&env, url, &moto.env(), &["--md5"]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["summary"]["verified"], 2);
    assert_eq!(doc["summary"]["verified_by_md5"], 2);
    assert_eq!(doc["summary"]["objects_read"], 0);
    assert_eq!(
        within(&doc),
        None,
        "read within a day: nothing was read: {doc}"
    );

    // Deep reads every object, whatever its ETag says (and the cached MD5
    // proof is no read either).
    let (code, doc) = audit_with(&env, url, &moto.env(), &["--md5", "--mode", "deep"]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["summary"]["objects_read"], 2, "{doc}");
    assert_eq!(doc["summary"]["verified"], 2);
    assert_eq!(doc["summary"]["verified_by_md5"], 0);
    assert_eq!(within(&doc), Some(2));

    // Now the proofs are reads: a quick run keeps them, and counts them.
    let (code, doc) = audit_with(&env, url, &moto.env(), &["--md5"]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["summary"]["verified_by_md5"], 0);
    assert_eq!(doc["summary"]["objects_read"], 0);
    assert_eq!(within(&doc), Some(2));
}

#[test]
fn a_directory_backup_rewritten_with_its_mtime_put_back_is_read_again() {
    let env = Env::new();
    let backup = env.dir.path().join("backup");
    env.write("db.dump", b"the real dump contents");
    let copy = Env::write_in(&backup, "db.dump", b"the real dump contents");
    let url = s(&backup);
    let (code, doc) = audit_with(&env, &url, &[], &["--mode", "deep"]);
    assert_eq!(
        (code, doc["summary"]["objects_read"].as_u64()),
        (0, Some(1))
    );
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&copy).unwrap());

    // Rewritten in place (same inode, same size) and its mtime put back,
    // as `touch -r`, `rsync --times` or bit rot leave it.
    std::fs::write(&copy, b"THE REAL DUMP CONTENTS").unwrap();
    set_old_mtime(&copy);
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&copy).unwrap()),
        ino
    );
    let (code, doc) = audit_with(&env, &url, &[], &["--mode", "deep"]);
    assert_eq!(code, 1, "not verified from the earlier read: {doc}");
    assert_eq!(findings(&doc), pairs(&[("corrupt", "db.dump")]));
    assert_eq!(doc["summary"]["objects_read"], 1);
}

#[test]
fn an_earlier_read_holds_only_for_the_same_etag_size_and_last_modified() {
    let env = Env::new();
    let moto = crate::support::moto::MotoServer::start();
    moto.create_bucket("sameetag");
    env.write("f", b"some content");
    moto.put_object("sameetag", "p/f", b"some content");
    let url = "s3://sameetag/p";
    let (code, doc) = audit_with(&env, url, &moto.env(), &["--mode", "deep"]);
    assert_eq!(
        (code, doc["summary"]["objects_read"].as_u64()),
        (0, Some(1))
    );
    // `--no-head`: only what earlier runs proved counts (no fresh proof
    // from the store's checksums).
    let (code, doc) = audit_with(&env, url, &moto.env(), &["--no-head"]);
    assert_eq!((code, doc["summary"]["verified"].as_u64()), (0, Some(1)));

    // Replaced by an object with the same ETag (here: the same bytes; an
    // MD5 collision or a store whose ETag is no content hash would do the
    // same) but a later LastModified: what the read proved no longer holds.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    moto.put_object("sameetag", "p/f", b"some content");
    let (code, doc) = audit_with(&env, url, &moto.env(), &["--no-head"]);
    assert_eq!(code, 0);
    assert_eq!(doc["summary"]["verified"], 0, "{doc}");
    assert_eq!(findings(&doc), pairs(&[("unverified", "f")]));
    let (code, doc) = audit_with(&env, url, &moto.env(), &["--mode", "deep"]);
    assert_eq!(
        (code, doc["summary"]["objects_read"].as_u64()),
        (0, Some(1))
    );
}

#[test]
fn a_failed_run_writes_no_discrepancy_count_to_its_metrics() {
    let env = Env::new();
    let backup = env.dir.path().join("backup");
    env.write("f", b"data");
    Env::write_in(&backup, "f", b"data");
    let prom = env.dir.path().join("vouch.prom");
    let run = || {
        env.vouch()
            .args([
                "audit",
                &s(&env.root),
                "--remote",
                &s(&backup),
                "--metrics",
                &s(&prom),
            ])
            .output()
            .unwrap()
    };
    assert_eq!(run().status.code(), Some(0));
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.contains("vouch_discrepancies{"), "{text}");
    // The backup disk is gone: the run fails, and its metrics must not
    // read as "0 discrepancies".
    std::fs::rename(&backup, env.dir.path().join("unplugged")).unwrap();
    assert_eq!(run().status.code(), Some(2));
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(!text.contains("vouch_discrepancies"), "{text}");
    assert!(!text.contains("vouch_findings"), "{text}");
    let exit = text
        .lines()
        .find(|l| l.starts_with("vouch_last_run_exit_code{"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(exit.ends_with(" 2"), "{exit}");
    let success = text
        .lines()
        .find(|l| l.starts_with("vouch_last_success_timestamp_seconds{"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        !success.ends_with(" 0"),
        "the last success is kept: {success}"
    );
}

#[test]
fn zero_byte_folder_markers_are_skipped_and_counted_not_extra() {
    let env = Env::new();
    let moto = crate::support::moto::MotoServer::start();
    moto.create_bucket("markers");
    env.write("photos/a.jpg", b"a photo");
    std::fs::create_dir(env.root.join("empty")).unwrap();
    moto.put_object("markers", "p/photos/a.jpg", b"a photo");
    // Folders made in the S3 console: the prefix itself, a folder with a
    // file, an empty folder. object_store lists `x/` as `x`.
    for marker in ["p/", "p/photos/", "p/empty/"] {
        moto.put_object("markers", marker, b"");
    }
    let (code, doc) = audit_with(&env, "s3://markers/p", &moto.env(), &["--mode", "deep"]);
    assert_eq!(
        (code, findings(&doc)),
        (0, pairs(&[("added", "photos/a.jpg")])),
        "no `extra`: {doc}"
    );
    assert_eq!(doc["summary"]["directory_markers_skipped"], 3, "{doc}");
    assert_eq!(doc["summary"]["verified"], 1);
    assert_eq!(doc["summary"]["remote_objects"], 1);
}

#[test]
fn an_index_inside_root_is_never_part_of_the_tree() {
    let env = Env::new();
    env.write("data.txt", b"the data");
    // The index inside the audited tree, as the default one under $HOME
    // is when a user audits $HOME.
    let index = env.root.join(".local/vouch/index.sqlite3");
    let backup = env.dir.path().join("backup");
    let vouch = |args: &[&str]| {
        let out = assert_cmd::Command::cargo_bin("vouch")
            .unwrap()
            .env_remove("VOUCH_INDEX")
            .arg("--index")
            .arg(&index)
            .args(args)
            .args(["--format", "json"])
            .output()
            .unwrap();
        let doc: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", stderr_of(&out)));
        (out.status.code().unwrap_or(-1), doc)
    };
    let root = s(&env.root);
    let (code, doc) = vouch(&["scan", &root]);
    assert_eq!((code, findings(&doc)), (0, pairs(&[("added", "data.txt")])));
    for _ in 0..2 {
        let (code, doc) = vouch(&["scan", &root]);
        assert_eq!((code, findings(&doc)), (0, vec![]), "{doc}");
    }
    // A backup job that copied the tree, index and all: the copy of the
    // index is not `extra`.
    Env::write_in(&backup, "data.txt", b"the data");
    Env::write_in(&backup, ".local/vouch/index.sqlite3", b"an old copy");
    Env::write_in(&backup, ".local/vouch/index.sqlite3-wal", b"wal");
    let (code, doc) = vouch(&["audit", &root, "--remote", &s(&backup), "--mode", "deep"]);
    assert_eq!((code, findings(&doc)), (0, vec![]), "{doc}");
    assert_eq!(doc["summary"]["verified"], 1);
}

#[test]
fn the_remote_identity_names_the_endpoint_whatever_variable_chose_it() {
    let env = Env::new();
    let moto = crate::support::moto::MotoServer::start();
    moto.create_bucket("samename");
    env.write("f", b"content");
    moto.put_object("samename", "p/f", b"content");
    // Server B: another endpoint (here a proxy in front of the same data,
    // so its listing looks the same as A's).
    let b = crate::support::proxy::Proxy::start(&moto.endpoint);
    let audit = |endpoint: &str| {
        let vars: Vec<(String, String)> = moto
            .env()
            .into_iter()
            .filter(|(k, _)| k != "AWS_ENDPOINT_URL")
            .chain([("AWS_ENDPOINT_URL_S3".to_string(), endpoint.to_string())])
            .collect();
        let out = env
            .vouch()
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT")
            .envs(vars)
            .args(["audit", &s(&env.root), "--remote", "s3://samename/p"])
            .args(["--mode", "deep", "--format", "json", "--retries", "1"])
            .output()
            .unwrap();
        let doc: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", stderr_of(&out)));
        (out.status.code(), doc)
    };
    let (code, doc) = audit(&moto.endpoint);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(doc["summary"]["objects_read"], 1);
    assert_eq!(
        doc["summary"]["remote"],
        format!("s3://samename/p @{}", moto.endpoint)
    );
    // The same bucket name on server B: its own remote, read afresh, not
    // verified from what was read on A.
    let (code, doc) = audit(&b.endpoint);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(
        doc["summary"]["remote"],
        format!("s3://samename/p @{}", b.endpoint)
    );
    assert_eq!(doc["summary"]["objects_read"], 1, "{doc}");
}

/// Item 3: keys are mapped byte for byte, never normalised. Keys that
/// `object_store` refuses (`a//b`, `./x`, `../x`) or normalises (`//f`
/// stood in for `f`, `g/` with bytes for `g`) are `extra`, each with the
/// reason it maps to no file, and the audit goes on; a prefix with a
/// space and a non-ASCII letter audits its objects. Before: exit 2
/// (`Encountered object with invalid path`), and the prefix read as
/// `remote_empty`.
#[test]
fn odd_keys_are_extra_with_a_reason_and_an_odd_prefix_is_audited() {
    let env = Env::new();
    let moto = crate::support::moto::MotoServer::start();
    moto.create_bucket("odd");
    env.write("f", b"file f");
    env.write("100%.txt", b"percent");
    env.write("plus+sign", b"plus");
    env.write("g", b"gg");
    let p = "my photos/été";
    let objects: Vec<(String, &[u8])> = [
        ("f", &b"file f"[..]),
        ("100%.txt", b"percent"),
        ("plus+sign", b"plus"),
        // Not `f`, whatever object_store makes of them.
        ("/f", b"file f"),
        ("g/", b"gg"),
        ("a//b", b"ab"),
        ("./x", b"x"),
        ("../x", b"y"),
        // A folder made in the console: skipped, not extra.
        ("d/", b""),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{p}/{k}"), v))
    .collect();
    let refs: Vec<(&str, &[u8])> = objects.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    moto.put_objects("odd", &refs);
    let url = format!("s3://odd/{p}");
    let (code, doc) = audit_with(&env, &url, &moto.env(), &["--mode", "deep"]);
    let got: Vec<(String, String)> = findings(&doc)
        .into_iter()
        .filter(|(k, _)| k != "added" && k != "low_coverage")
        .collect();
    assert_eq!(
        (code, got),
        (
            1,
            pairs(&[
                ("extra", "/f"),
                ("extra", "g/"),
                ("extra", "a//b"),
                ("extra", "./x"),
                ("extra", "../x"),
                ("missing", "g"),
            ])
        ),
        "{doc}"
    );
    for (path, why) in [
        ("/f", "starts with `/`"),
        ("g/", "ends in `/` but holds bytes"),
        ("a//b", "holds `//`"),
        ("./x", "a `.` name"),
        ("../x", "a `..` name"),
    ] {
        let detail = finding(&doc, "extra", path)["detail"].as_str().unwrap();
        assert!(
            detail.contains("maps to no file") && detail.contains(why),
            "{path}: {detail}"
        );
    }
    assert_eq!(doc["summary"]["verified"], 3, "{doc}");
    assert_eq!(doc["summary"]["remote_objects"], 8, "{doc}");
    assert_eq!(doc["summary"]["directory_markers_skipped"], 1, "{doc}");
    // The prefix is part of the identity as written: a literal `%20` is
    // another prefix (as `aws s3` reads it), not this one.
    assert_eq!(
        doc["summary"]["remote"]
            .as_str()
            .unwrap_or_default()
            .split(" @")
            .next(),
        Some("s3://odd/my photos/été"),
        "{doc}"
    );
    let (code, doc) = audit_with(&env, "s3://odd/my%20photos", &moto.env(), &[]);
    assert_eq!(code, 1, "{doc}");
    assert!(
        findings(&doc).contains(&("remote_empty".to_string(), String::new())),
        "{doc}"
    );
}

/// One bad entry must not spoil the run, nor pass for a clean one: an
/// unreadable file and directory are `unreadable` findings with the OS
/// error, everything else is checked and reported in full, and the run
/// exits 2 with an `incomplete` verdict. Before: exit 1 and `damaged`, as
/// if the unread entries were merely different.
#[test]
fn an_unreadable_entry_is_a_finding_and_the_run_ends_incomplete() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.write("ok.txt", b"fine");
    env.write("gone.txt", b"not in the backup");
    env.write("secret", b"no access");
    env.write("locked/inner", b"hidden");
    let backup = env.dir.path().join("backup");
    Env::write_in(&backup, "ok.txt", b"fine");
    let mode =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    mode(&env.root, 0o777);
    mode(&backup, 0o777);
    mode(&backup.join("ok.txt"), 0o644);
    mode(&env.root.join("ok.txt"), 0o644);
    mode(&env.root.join("gone.txt"), 0o644);
    mode(&env.root.join("secret"), 0o000);
    mode(&env.root.join("locked"), 0o000);
    let root = s(&env.root);
    let run = |args: &[&str]| -> (i32, Value) {
        let out = if crate::is_root() {
            crate::vouch_as_nobody(&env, args)
        } else {
            env.vouch().args(args).output().unwrap()
        };
        let doc = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", stderr_of(&out)));
        (out.status.code().unwrap_or(-1), doc)
    };
    let (code, doc) = run(&["--format", "json", "scan", &root]);
    assert_eq!(code, 2, "{doc}");
    assert_eq!(doc["summary"]["status"], "incomplete", "{doc}");
    assert_eq!(
        findings(&doc),
        pairs(&[
            ("added", "gone.txt"),
            ("added", "ok.txt"),
            ("unreadable", "locked"),
            ("unreadable", "secret"),
        ])
    );
    let detail = finding(&doc, "unreadable", "secret")["detail"].to_string();
    assert!(
        detail.contains("ermission denied"),
        "the OS error: {detail}"
    );

    let (code, doc) = run(&[
        "--format",
        "json",
        "audit",
        &root,
        "--remote",
        &s(&backup),
        "--mode",
        "deep",
    ]);
    assert_eq!(code, 2, "{doc}");
    assert_eq!(doc["summary"]["status"], "incomplete", "{doc}");
    assert_eq!(doc["summary"]["verified"], 1, "{doc}");
    let got: Vec<_> = findings(&doc)
        .into_iter()
        .filter(|(k, _)| k != "low_coverage")
        .collect();
    assert_eq!(
        got,
        pairs(&[
            ("missing", "gone.txt"),
            ("unreadable", "locked"),
            ("unreadable", "secret"),
        ]),
        "{doc}"
    );
    // The table says so in its first line.
    let (_, table) = {
        let out = if crate::is_root() {
            crate::vouch_as_nobody(&env, &["audit", &root, "--remote", &s(&backup)])
        } else {
            env.vouch()
                .args(["audit", &root, "--remote", &s(&backup)])
                .output()
                .unwrap()
        };
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert!(
        table.starts_with("INCOMPLETE: 2 entries could not be read"),
        "{table}"
    );
    mode(&env.root.join("locked"), 0o755);
}

/// A file name with an escape sequence cannot drive the terminal of the
/// person reading the table (it is written `\x1b`, as `ls` does); JSON
/// keeps the name exact. Before: the raw ESC reached the terminal.
#[test]
fn control_characters_in_names_are_escaped_in_tables_and_exact_in_json() {
    let env = Env::new();
    let name = "clear\x1b[2J\x1b]0;pwned\x07.txt";
    env.write(name, b"x");
    let root = s(&env.root);
    let backup = env.dir.path().join("empty-backup");
    std::fs::create_dir(&backup).unwrap();
    let out = env
        .vouch()
        .args(["audit", &root, "--remote", &s(&backup)])
        .output()
        .unwrap();
    let table = out.stdout.clone();
    assert!(
        !table.iter().any(|b| *b == 0x1b || *b == 0x07),
        "raw control bytes in the table: {}",
        String::from_utf8_lossy(&table)
    );
    assert!(
        String::from_utf8_lossy(&table).contains("clear\\x1b[2J\\x1b]0;pwned\\x07.txt"),
        "{}",
        String::from_utf8_lossy(&table)
    );
    let other = Env::new();
    other.write(name, b"x");
    let (_, doc) = other.json(&["scan", &s(&other.root)]);
    assert_eq!(findings(&doc), pairs(&[("added", name)]), "exact in JSON");
}

/// The index lock is taken on the canonical path: a second run reaching
/// the same index through a symlink waits for (here: is
/// refused by) the lock the first holds, instead of writing beside it. And
/// `--index` pointing at a file that is no index is refused with nothing
/// left beside it. Before: the second spelling took a lock of its own
/// (`alias.sqlite3.lock`) and ran.
#[test]
fn the_index_lock_is_on_the_canonical_path_and_a_foreign_file_is_refused() {
    let env = Env::new();
    env.write("a.txt", b"a");
    let root = s(&env.root);
    let real = env.dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let vouch = |index: &Path, args: &[&str]| {
        assert_cmd::Command::cargo_bin("vouch")
            .unwrap()
            .env_remove("VOUCH_INDEX")
            .arg("--index")
            .arg(index)
            .args(args)
            .output()
            .unwrap()
    };
    let out = vouch(&real.join("index.sqlite3"), &["scan", &root]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    // The same index through a symlink to the file.
    let alias = env.dir.path().join("alias.sqlite3");
    std::os::unix::fs::symlink(real.join("index.sqlite3"), &alias).unwrap();
    // Another run holds the lock (taken as vouch takes it).
    let held = std::fs::OpenOptions::new()
        .write(true)
        .open(real.join("index.sqlite3.lock"))
        .unwrap();
    held.try_lock().unwrap();
    let out = vouch(&alias, &["scan", &root]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("in use by another vouch run"),
        "{}",
        stderr_of(&out)
    );
    assert!(!env.dir.path().join("alias.sqlite3.lock").exists());
    drop(held);

    let photo = env.dir.path().join("photo.jpg");
    std::fs::write(&photo, b"\xff\xd8\xff\xe0 not an index").unwrap();
    let out = vouch(&photo, &["scan", &root]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("is not a vouch index"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        !env.dir.path().join("photo.jpg.lock").exists(),
        "no lock file left beside it"
    );
    assert_eq!(
        std::fs::read(&photo).unwrap(),
        b"\xff\xd8\xff\xe0 not an index"
    );
}

/// The root's `shrunk` is reported every night until the tree grows back
/// or a person accepts the loss: the next scan compares with the tree
/// before the loss, not with the shrunk tree. Before: reported once, and
/// the next night was clean.
#[test]
fn a_shrunk_tree_stays_shrunk_until_it_grows_back_or_is_accepted() {
    let env = Env::new();
    let names = ["a.db", "b.db", "c.db", "d.db"];
    let fill = || {
        for name in names {
            env.write(name, &[b'x'; 1000]);
        }
    };
    let empty = || {
        for name in names {
            std::fs::remove_file(env.root.join(name)).unwrap();
        }
    };
    fill();
    assert_eq!(env.scan().0, 0);
    empty();
    let (code, doc) = env.scan();
    assert_eq!(code, 1, "{doc}");
    let first_seen = finding(&doc, "shrunk", "")["first_seen"].clone();
    for night in 0..2 {
        let (code, doc) = env.scan();
        assert_eq!(
            (code, findings(&doc)),
            (1, pairs(&[("shrunk", "")])),
            "night {night}: {doc}"
        );
        let f = finding(&doc, "shrunk", "");
        assert_eq!(f["first_seen"], first_seen);
        assert_eq!(f["local"]["before"]["files"], 4, "{f}");
        assert!(f["detail"].as_str().unwrap().contains("grows back"), "{f}");
    }
    // The tree grows back: no more `shrunk`.
    fill();
    let (code, doc) = env.scan();
    assert_eq!(code, 0, "{doc}");
    assert!(!findings(&doc).iter().any(|(k, _)| k == "shrunk"), "{doc}");
    // Lost again, then accepted: reported until the acceptance only.
    empty();
    assert_eq!(env.scan().0, 1);
    let root = s(&env.root);
    let out = env
        .vouch()
        .args([
            "accept",
            &root,
            "",
            "--kind",
            "shrunk",
            "--reason",
            "moved to the new disk",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let (code, doc) = env.scan();
    assert_eq!((code, findings(&doc)), (0, vec![]), "{doc}");
}

/// Runs `script` with `sh -c` in `dir` and returns its stdout (a real
/// `b3sum` or `sha256sum` writing a list, as users make them).
fn sh_in(dir: &Path, script: &str) -> Vec<u8> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}: {}", stderr_of(&out));
    out.stdout
}

fn sorted_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    lines.sort();
    lines
}

/// A b3sum or sha256sum list with CRLF line ends (written on Windows, or
/// through a tool that converted it) is read as the same list. Before:
/// every name kept its `\r`, so every file was `missing` and `extra`.
#[test]
fn a_checksum_list_with_crlf_line_ends_is_read() {
    let env = Env::new();
    env.write("a.txt", b"alpha");
    env.write("dir/b.txt", b"beta");
    env.write("mid\rname", b"a carriage return inside a name stays");
    let root = s(&env.root);
    for (tool, file) in [("b3sum", "list.b3"), ("sha256sum", "list.sha256")] {
        let list = sh_in(
            &env.root,
            &format!("{tool} a.txt dir/b.txt \"$(printf 'mid\\rname')\""),
        );
        let crlf: Vec<u8> = list
            .split_inclusive(|b| *b == b'\n')
            .flat_map(|l| [&l[..l.len() - 1], b"\r\n"].concat())
            .collect();
        assert_eq!(crlf.iter().filter(|b| **b == b'\n').count(), 3);
        let manifest = env.dir.path().join(file);
        std::fs::write(&manifest, &crlf).unwrap();
        let (code, doc) = env.json(&["verify", &root, "--manifest", &s(&manifest)]);
        assert_eq!((code, findings(&doc)), (0, vec![]), "{tool}: {doc}");
    }
    // Still a check, not a pass: a changed file is found through CRLF.
    std::fs::write(env.root.join("a.txt"), b"ALPHA").unwrap();
    let manifest = env.dir.path().join("list.b3");
    let (code, doc) = env.json(&["verify", &root, "--manifest", &s(&manifest)]);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(findings(&doc), pairs(&[("corrupt", "a.txt")]), "{doc}");
}

/// A NUL byte in a manifest path is an error naming the line (exit 2, one
/// line). Before: the stored key separates components with NUL, so
/// `a\0b.txt` silently became `a/b.txt` and was checked as that file.
#[test]
fn a_nul_byte_in_a_manifest_path_is_an_error_naming_the_line() {
    let env = Env::new();
    env.write("a/b.txt", b"beta");
    let list = sh_in(&env.root, "b3sum a/b.txt");
    let hash = &list[..64];
    let mut manifest_bytes = format!("# made by hand\n{}  a.txt\n", "00".repeat(32)).into_bytes();
    manifest_bytes.extend_from_slice(hash);
    manifest_bytes.extend_from_slice(b"  a\0b.txt\n");
    let manifest = env.dir.path().join("list.b3");
    std::fs::write(&manifest, &manifest_bytes).unwrap();
    let out = env
        .vouch()
        .args(["verify", &s(&env.root), "--manifest", &s(&manifest)])
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("line 3: a NUL byte in the path"), "{err}");
    assert!(err.contains(&s(&manifest)), "{err}");
}

/// Odd names (backslash, newline, carriage return) round-trip through the
/// escape convention: vouch's export is byte for byte what the real tool
/// prints, the tool's `--check` accepts it, and `vouch verify` reads the
/// real tool's list. Before: the sha256sum export wrote `\r` raw where
/// GNU sha256sum writes `\r` escaped; a b3sum export of a name ending in
/// `\r` wrote a line any reader takes for CRLF.
#[test]
fn the_checksum_escape_convention_round_trips_with_the_real_tools() {
    let env = Env::new();
    env.write("plain.txt", b"plain");
    env.write("back\\slash", b"backslash");
    env.write("new\nline", b"newline");
    env.write("mid\rname", b"carriage return inside");
    env.write("both\\\n\r", b"all three");
    let root = s(&env.root);
    let names = "plain.txt 'back\\slash' \"$(printf 'new\\nline')\" \"$(printf 'mid\\rname')\" \"$(printf 'both\\\\\\n\\r')\"";
    // sha256sum (GNU) escapes \\, \n and \r: the export matches it.
    let real = sh_in(&env.root, &format!("sha256sum {names}"));
    assert!(
        real.windows(3).any(|w| w == b"\\r\n"),
        "{}",
        String::from_utf8_lossy(&real)
    );
    let exported = env.dir.path().join("export.sha256");
    // An export writes its own format (not the JSON report).
    let out = export(&env, &env.root, "sha256sum", &exported);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let ours = std::fs::read(&exported).unwrap();
    assert_eq!(
        sorted_lines(&ours),
        sorted_lines(&real),
        "ours:\n{}\nsha256sum:\n{}",
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&real)
    );
    sh_in(
        &env.root,
        &format!("sha256sum --check --strict '{}'", s(&exported)),
    );
    let real_list = env.dir.path().join("real.sha256");
    std::fs::write(&real_list, &real).unwrap();
    let (code, doc) = env.json(&["verify", &root, "--manifest", &s(&real_list)]);
    assert_eq!((code, findings(&doc)), (0, vec![]), "{doc}");

    // b3sum escapes only \\ and \n and writes \r raw, so a name ending in
    // \r cannot be written where a reader tells it from CRLF: refused.
    let refused = env.dir.path().join("refused.b3");
    let out = export(&env, &env.root, "b3sum", &refused);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("ending in a carriage return"), "{err}");
    assert!(!refused.exists());
    std::fs::remove_file(env.root.join("both\\\n\r")).unwrap();
    let names = "plain.txt 'back\\slash' \"$(printf 'new\\nline')\" \"$(printf 'mid\\rname')\"";
    let real = sh_in(&env.root, &format!("b3sum {names}"));
    let exported = env.dir.path().join("export.b3");
    // An export writes its own format (not the JSON report).
    let out = export(&env, &env.root, "b3sum", &exported);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let ours = std::fs::read(&exported).unwrap();
    assert_eq!(sorted_lines(&ours), sorted_lines(&real));
    sh_in(&env.root, &format!("b3sum --check '{}'", s(&exported)));
    let real_list = env.dir.path().join("real.b3");
    std::fs::write(&real_list, &real).unwrap();
    let (code, doc) = env.json(&["verify", &root, "--manifest", &s(&real_list)]);
    assert_eq!((code, findings(&doc)), (0, vec![]), "{doc}");
}

/// A list kept inside the tree it describes, made the usual way
/// (`find . -type f | xargs b3sum > B3SUMS` lists B3SUMS itself, hashed
/// while it was empty), is neither `extra` nor `corrupt`. Before: its own
/// line made verify report B3SUMS `corrupt`, exit 1.
#[test]
fn a_manifest_inside_the_tree_it_describes_is_neither_missing_nor_extra() {
    let env = Env::new();
    env.write("a.txt", b"alpha");
    env.write("dir/b.txt", b"beta");
    sh_in(
        &env.root,
        // B3SUMS exists before find runs (the shell opens the redirection
        // concurrently with find, so without the touch it may be missed).
        "touch B3SUMS && find . -type f -print0 | xargs -0 b3sum > B3SUMS",
    );
    let list = std::fs::read(env.root.join("B3SUMS")).unwrap();
    assert!(
        String::from_utf8_lossy(&list).contains("  ./B3SUMS\n"),
        "{}",
        String::from_utf8_lossy(&list)
    );
    let root = s(&env.root);
    let manifest = s(&env.root.join("B3SUMS"));
    let (code, doc) = env.json(&["verify", &root, "--manifest", &manifest]);
    assert_eq!((code, findings(&doc)), (0, vec![]), "{doc}");
    // Reached through another spelling of the path, still itself.
    let via = format!("{root}/dir/../B3SUMS");
    let (code, doc) = env.json(&["verify", &root, "--manifest", &via]);
    assert_eq!((code, findings(&doc)), (0, vec![]), "{doc}");
    // And the other files are still checked.
    std::fs::remove_file(env.root.join("dir/b.txt")).unwrap();
    let (code, doc) = env.json(&["verify", &root, "--manifest", &manifest]);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(findings(&doc), pairs(&[("missing", "dir/b.txt")]), "{doc}");
}

/// A tree deeper than PATH_MAX (4096 bytes of path, made with relative
/// `mkdir`/`chdir` steps as a restore or a build can make it) is scanned
/// whole: every file is found with the hash b3sum gives it (run from
/// inside the deep directory), a symlink down there is recorded, and a
/// deep audit against a copy verifies every file (`cp -r` cannot make the
/// copy: it stops at PATH_MAX). Before: the listing of the first
/// directory past PATH_MAX failed (`File name too long`), so the files
/// below it were never hashed and the run ended incomplete.
#[test]
fn a_tree_deeper_than_path_max_is_scanned_and_audited_whole() {
    let env = Env::new();
    env.write("top.txt", b"at the top");
    let name = "n".repeat(120);
    // 40 levels of 121 bytes: ~4,840 bytes below ROOT; files at levels 20
    // (under PATH_MAX), 36 and 40 (past it). Python steps down with
    // relative chdirs (dash's `cd` cannot go past PATH_MAX).
    let script = format!(
        "python3 -c \"
import os, subprocess, sys
for i in range(1, 41):
    os.mkdir('{name}'); os.chdir('{name}')
    if i in (20, 36, 40):
        open('f%d.txt' % i, 'w').write('level %d\\n' % i)
        os.utime('f%d.txt' % i, (1577836800, 1577836800))
        sys.stdout.flush(); subprocess.run(['b3sum', 'f%d.txt' % i], check=True)
os.symlink('f40.txt', 'link')
open('.hidden', 'w').write('x'); os.utime('.hidden', (1577836800, 1577836800))
sys.stdout.flush(); subprocess.run(['b3sum', '.hidden'], check=True)
\""
    );
    let sums = String::from_utf8(sh_in(&env.root, &script)).unwrap();
    let mut want: Vec<(String, String)> = Vec::new();
    let lines: Vec<&str> = sums.lines().collect();
    assert_eq!(lines.len(), 4, "{sums}");
    for (line, (level, file)) in lines.iter().zip([
        (20, "f20.txt"),
        (36, "f36.txt"),
        (40, "f40.txt"),
        (40, ".hidden"),
    ]) {
        let (hash, got) = line.split_once("  ").unwrap();
        assert_eq!(got, file);
        let dir = vec![name.as_str(); level].join("/");
        want.push((format!("{dir}/{file}"), hash.to_string()));
    }
    let deepest = format!("{}/f40.txt", vec![name.as_str(); 40].join("/"));
    assert!(
        s(&env.root).len() + deepest.len() > 4096 + 500,
        "deeper than PATH_MAX"
    );

    let (code, doc) = env.scan();
    assert_eq!(code, 0, "{doc}");
    let added: std::collections::HashMap<String, Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "added")
        .map(|f| (f["path"].as_str().unwrap().to_string(), f.clone()))
        .collect();
    for (path, hash) in &want {
        let f = added
            .get(path)
            .unwrap_or_else(|| panic!("{} not found: {doc}", &path[path.len() - 30..]));
        assert_eq!(f["local"]["blake3"], hash.as_str(), "{path}");
    }
    let link = format!("{}/link", vec![name.as_str(); 40].join("/"));
    assert!(added.contains_key(&link), "{doc}");
    // 5 files and one link (`files` counts both), in 40 directories
    // below ROOT.
    assert_eq!(doc["summary"]["files"], 6, "{}", doc["summary"]);
    assert_eq!(doc["summary"]["dirs"], 41, "{}", doc["summary"]);

    // The backup: a copy (GNU cp stops at PATH_MAX, so Python copies
    // relative to directory descriptors), audited deep (every byte read).
    let backup = env.dir.path().join("backup");
    sh_in(
        env.dir.path(),
        "python3 -c \"
import os
def copy(src, dst):
    for e in os.scandir(src):
        if e.is_symlink():
            os.symlink(os.readlink(e.name, dir_fd=src), e.name, dir_fd=dst)
        elif e.is_dir(follow_symlinks=False):
            os.mkdir(e.name, dir_fd=dst)
            a = os.open(e.name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=src)
            b = os.open(e.name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=dst)
            copy(a, b); os.close(a); os.close(b)
        else:
            a = os.open(e.name, os.O_RDONLY, dir_fd=src)
            b = os.open(e.name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=dst)
            os.write(b, os.read(a, 1 << 20)); os.close(a); os.close(b)
os.mkdir('backup')
copy(os.open('root', os.O_RDONLY), os.open('backup', os.O_RDONLY))
\"",
    );
    let (code, doc) = env.json(&[
        "audit",
        &s(&env.root),
        "--remote",
        &s(&backup),
        "--mode",
        "deep",
    ]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["summary"]["verified"], 5, "{doc}");
    assert_eq!(doc["summary"]["objects_read"], 5, "{doc}");
    // A copy whose deepest file rotted is caught down there too.
    sh_in(
        &backup,
        &format!(
            "python3 -c \"import os\nfor i in range(40): os.chdir('{name}')\nopen('f40.txt', 'w').write('level 41\\n')\""
        ),
    );
    let (code, doc) = env.json(&[
        "audit",
        &s(&env.root),
        "--remote",
        &s(&backup),
        "--mode",
        "deep",
    ]);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(
        findings(&doc)
            .into_iter()
            .filter(|(k, _)| k != "low_coverage")
            .collect::<Vec<_>>(),
        pairs(&[("corrupt", deepest.as_str())]),
        "{doc}"
    );
}

/// A file's mtime before 1970 or after 2262 (the end of 64-bit
/// nanoseconds) is printed as the date it is, in JSON and CSV, and a
/// rescan sees the file unchanged. Before: 1960 printed as
/// `1970-01-01T00:00:00Z`, and 2300 overflowed (a panic in a debug build,
/// a wrapped date in a release one).
#[test]
fn mtimes_before_1970_and_after_2262_print_as_what_they_are() {
    let env = Env::new();
    std::fs::write(env.root.join("old.txt"), b"from 1960").unwrap();
    std::fs::write(env.root.join("future.txt"), b"from 2300").unwrap();
    sh_in(
        &env.root,
        "TZ=UTC touch -d '1960-01-01 00:00:00' old.txt && TZ=UTC touch -d '2300-01-01 00:00:00' future.txt",
    );
    let (code, doc) = env.scan();
    assert_eq!(code, 0, "{doc}");
    assert_eq!(
        finding(&doc, "added", "old.txt")["local"]["mtime"],
        "1960-01-01T00:00:00Z",
        "{doc}"
    );
    assert_eq!(
        finding(&doc, "added", "future.txt")["local"]["mtime"],
        "2300-01-01T00:00:00Z",
        "{doc}"
    );
    // Kept exactly in the index: nothing changed on a rescan.
    let (code, doc) = env.scan();
    assert_eq!((code, findings(&doc)), (0, vec![]), "{doc}");
    // CSV shows the same, and an audit's `missing` the same.
    let backup = env.dir.path().join("empty");
    std::fs::create_dir(&backup).unwrap();
    let out = env
        .vouch()
        .args(["audit", &s(&env.root), "--remote", &s(&backup)])
        .args(["--format", "csv"])
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&out.stdout);
    for (file, date) in [
        ("old.txt", "1960-01-01T00:00:00Z"),
        ("future.txt", "2300-01-01T00:00:00Z"),
    ] {
        let line = csv
            .lines()
            .find(|l| l.starts_with("missing,") && l.contains(file))
            .unwrap_or_else(|| panic!("no missing {file}: {csv}"));
        assert!(line.contains(date), "{line}");
    }
}

/// `vouch export ROOT --output ROOT/B3SUMS` run every night: a checksum
/// list never lists itself, so `b3sum --check` (or `sha256sum --check`) in
/// ROOT passes after the second export as after the first, and `vouch
/// verify` agrees (for a json manifest too). Before: the
/// second list held a line for the first one, whose hash was stale the
/// moment the new list replaced it.
#[test]
fn an_export_written_inside_its_tree_does_not_list_itself() {
    for format in ["b3sum", "sha256sum", "json"] {
        let env = Env::new();
        env.write("a.txt", b"alpha");
        env.write("dir/b.txt", b"beta");
        let root = s(&env.root);
        let name = format!("LIST.{format}");
        // Through another spelling of ROOT, too.
        let out = format!("{root}/dir/../{name}");
        for night in 0..3 {
            let run = export(&env, &env.root, format, Path::new(&out));
            assert_eq!(run.status.code(), Some(0), "{}", stderr_of(&run));
            let text = std::fs::read_to_string(env.root.join(&name)).unwrap();
            // A json manifest carries directory hashes that include it, so
            // it lists itself (and `verify` passes over that entry).
            if format != "json" {
                assert!(!text.contains("LIST."), "{format} night {night}: {text}");
                assert_eq!(text.lines().count(), 2, "{text}");
                let check = std::process::Command::new(if format == "b3sum" {
                    "b3sum"
                } else {
                    "sha256sum"
                })
                .args(["--check", &name])
                .current_dir(&env.root)
                .output()
                .unwrap();
                assert!(check.status.success(), "{}", stderr_of(&check));
            }
            let (code, doc) = env.json(&["verify", &root, "--manifest", &out]);
            assert_eq!((code, findings(&doc)), (0, vec![]), "{format}: {doc}");
        }
    }
    // A list written elsewhere still lists every file of the tree, a list
    // inside it included.
    let env = Env::new();
    env.write("a.txt", b"alpha");
    env.write("LIST.b3sum", b"an old list");
    let outside = env.dir.path().join("B3SUMS");
    let run = export(&env, &env.root, "b3sum", &outside);
    assert_eq!(run.status.code(), Some(0), "{}", stderr_of(&run));
    let text = std::fs::read_to_string(&outside).unwrap();
    assert!(text.contains("LIST.b3sum"), "{text}");
}

/// A small filesystem, mounted for one test and unmounted however it ends.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// The index's disk fills during a scan: one line on stderr that names the
/// index and what it kept (its last complete run), exit 2; the index is
/// intact, and once there is room the next scan completes. Before: `vouch:
/// database or disk is full`, naming neither.
#[test]
fn a_full_disk_names_the_index_and_what_it_kept() {
    if !crate::is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let env = Env::new();
    for i in 0..5 {
        env.write(format!("first-{i}"), b"small");
    }
    let small = env.dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=600k", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(st.success(), "mount a tmpfs");
    let _mounted = Mounted(small.clone());
    let index = small.join("index.sqlite3");
    let root = s(&env.root);
    let out = env
        .vouch_at(&index)
        .args(["scan", &root, "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    // Enough new names to outgrow the disk.
    let long = "x".repeat(200);
    for i in 0..4000 {
        std::fs::write(env.root.join(format!("{long}-{i:05}")), b"y").unwrap();
    }
    let out = env
        .vouch_at(&index)
        .args(["scan", &root, "--format", "json"])
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("no space left for the index {}", index.display()))
            && err.contains("it keeps run 1 (scan of ")
            && err.contains(&root),
        "{err}"
    );
    // Intact, and the scan completes once there is room.
    let st = std::process::Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(st.success());
    let out = env
        .vouch_at(&index)
        .args(["scan", &root, "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["files"], 4005, "{}", doc["summary"]);
}

/// GCS (fake-gcs-server) and Azure (Azurite) are listed byte for byte
/// like S3: a key that names no file (`p//f`, `g/` with bytes, `a//b`,
/// `./x`, `../x`) is `extra` with the reason, a zero-byte `d/` is a
/// folder marker, and the audit goes on and reads the rest. Before: the
/// first such key ended the whole audit with exit 2 (`Encountered object
/// with invalid path`).
#[test]
fn odd_keys_on_gcs_and_azure_are_extra_with_a_reason() {
    use crate::support::emulators::{azure_env, azurite, gcs, gcs_env};
    let odd: [(&str, &[u8]); 8] = [
        ("f", b"file f"),
        ("/f", b"file f"),
        ("g/", b"gg"),
        ("a//b", b"ab"),
        ("./x", b"x"),
        ("../x", b"y"),
        ("d/", b""),
        ("e", b"other"),
    ];
    let g = gcs();
    g.gcs_create_bucket("oddkeys");
    let az = azurite();
    az.azure_create_container("oddkeys");
    for (key, data) in odd {
        g.gcs_put("oddkeys", &format!("p/{key}"), data);
        az.azure_put("oddkeys", &format!("p/{key}"), data);
    }
    for (url, vars) in [
        ("gs://oddkeys/p", gcs_env(g)),
        ("az://oddkeys/p", azure_env(az)),
    ] {
        let env = Env::new();
        env.write("f", b"file f");
        env.write("g", b"gg");
        env.write("e", b"other");
        let (code, doc) = audit_with(&env, url, &vars, &["--mode", "deep"]);
        let got: Vec<(String, String)> = findings(&doc)
            .into_iter()
            .filter(|(k, _)| k != "added" && k != "low_coverage")
            .collect();
        assert_eq!(
            (code, got),
            (
                1,
                pairs(&[
                    ("extra", "/f"),
                    ("extra", "g/"),
                    ("extra", "a//b"),
                    ("extra", "./x"),
                    ("extra", "../x"),
                    ("missing", "g"),
                ])
            ),
            "{url}: {doc}"
        );
        for (path, why) in [
            ("/f", "starts with `/`"),
            ("g/", "ends in `/` but holds bytes"),
            ("a//b", "holds `//`"),
            ("./x", "a `.` name"),
            ("../x", "a `..` name"),
        ] {
            let detail = finding(&doc, "extra", path)["detail"].as_str().unwrap();
            assert!(
                detail.contains("maps to no file") && detail.contains(why),
                "{url} {path}: {detail}"
            );
        }
        assert_eq!(doc["summary"]["verified"], 2, "{url}: {doc}");
        assert_eq!(doc["summary"]["objects_read"], 2, "{url}: {doc}");
        assert_eq!(
            doc["summary"]["directory_markers_skipped"], 1,
            "{url}: {doc}"
        );
    }
}

/// An S3 object whose key holds control characters (`\x01`, a tab, DEL,
/// ESC) is read by a deep audit like any other, through a GET of its
/// exact key: the same bytes are `verified`, other bytes `corrupt`.
/// Before: object_store refused to name the key, so every such file was
/// `unreadable` and the audit ended incomplete (exit 2).
#[test]
fn s3_keys_with_control_characters_are_read_by_a_deep_audit() {
    let env = Env::new();
    let moto = crate::support::moto::MotoServer::start();
    moto.create_bucket("ctl");
    // (moto cannot hold a newline in a key: its router answers 404.)
    let same: [&str; 3] = ["ctl\x01x", "tab\tx", "del\x7fdir/in\x01x"];
    let mut objects: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, name) in same.iter().enumerate() {
        let data = format!("content {i}").into_bytes();
        env.write(name, &data);
        objects.push((format!("pre fix/{name}"), data));
    }
    env.write("esc\x1b[0m", b"the local bytes");
    objects.push(("pre fix/esc\x1b[0m".into(), b"other bytes!!!!".to_vec()));
    let refs: Vec<(&str, &[u8])> = objects
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    moto.put_objects("ctl", &refs);
    let (code, doc) = audit_with(&env, "s3://ctl/pre fix", &moto.env(), &["--mode", "deep"]);
    let got: Vec<(String, String)> = findings(&doc)
        .into_iter()
        .filter(|(k, _)| k != "added" && k != "low_coverage")
        .collect();
    assert_eq!(
        (code, got),
        (1, pairs(&[("corrupt", "esc\x1b[0m")])),
        "{doc}"
    );
    assert_eq!(doc["summary"]["verified"], 3, "{doc}");
    assert_eq!(doc["summary"]["objects_read"], 4, "{doc}");
    // A quick run afterwards: the reads recorded for these keys hold.
    let (code, doc) = audit_with(&env, "s3://ctl/pre fix", &moto.env(), &[]);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(doc["summary"]["verified"], 3, "{doc}");
}
