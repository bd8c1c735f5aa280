//! Never a false OK (issue 17): each test here tries, as a user would, a
//! way a hostile review made vouch say OK (exit 0, `verified`, identical)
//! about data that is not whole, and pins down that it no longer does.
//! Every test fails on the code before its fix.

use std::path::Path;

use serde_json::Value;

use crate::{Env, findings, pairs, set_old_mtime, stderr_of};

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
    let out = env
        .vouch()
        .args(["export", &root, "--format", "b3sum", "--output", &s(&manifest)])
        .output()
        .unwrap();
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
        assert_eq!(finding(&doc, "corrupt", "photo.jpg")["first_seen"], first_seen);
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
        "audit", &root, "--remote", &s(&backup), "--mode", "deep", "--no-scan",
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
    let out = env
        .vouch()
        .args(["export", &root, "--format", "b3sum", "--output", &s(&again)])
        .output()
        .unwrap();
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
