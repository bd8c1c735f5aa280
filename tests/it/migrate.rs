//! Pre-migration verification: `vouch diff`, `vouch export`, `vouch verify`.
//! Real trees, the real index, and the real peers (`b3sum --check`,
//! `sha256sum --check`, python's `bagit`) checking what vouch exports.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::*;

/// A tree with nesting, a symlink, an empty directory and distinct content
/// in every file (so moves pair unambiguously).
fn populate(env: &Env) {
    env.write("db/base/1/100", &pattern(10_000, 1));
    env.write("db/base/1/101", b"table one-oh-one");
    env.write("db/pg_wal/000001", &pattern(4096, 2));
    env.write("images/a.jpg", &pattern(3000, 3));
    env.write("images/b.jpg", &pattern(2000, 4));
    env.write("notes.txt", b"remember the milk");
    std::os::unix::fs::symlink("notes.txt", env.root.join("link")).unwrap();
    std::fs::create_dir(env.root.join("empty")).unwrap();
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// `cp -a` of the tree to a sibling directory (mtimes kept).
fn copy_tree(env: &Env, name: &str) -> PathBuf {
    let dst = env.dir.path().join(name);
    let ok = Command::new("cp")
        .arg("-a")
        .arg(&env.root)
        .arg(&dst)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp -a failed");
    dst
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Applies the five classic kinds of damage to a copy.
fn damage(copy: &Path) {
    std::fs::remove_file(copy.join("db/base/1/101")).unwrap();
    // Truncated.
    let a = copy.join("images/a.jpg");
    std::fs::write(&a, pattern(1000, 3)).unwrap();
    set_old_mtime(&a);
    // Corrupted in place: same size, mtime restored (only ctime tells).
    let wal = copy.join("db/pg_wal/000001");
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes[2048] ^= 0x40;
    std::fs::write(&wal, &bytes).unwrap();
    set_old_mtime(&wal);
    Env::write_in(copy, "extra.bin", b"not in the original");
    std::fs::create_dir(copy.join("images/old")).unwrap();
    std::fs::rename(copy.join("images/b.jpg"), copy.join("images/old/b.jpg")).unwrap();
}

fn damage_findings() -> Vec<(String, String)> {
    pairs(&[
        ("missing", "db/base/1/101"),
        ("size_mismatch", "images/a.jpg"),
        ("corrupt", "db/pg_wal/000001"),
        ("extra", "extra.bin"),
        ("moved", "images/old/b.jpg"),
    ])
}

fn finding<'d>(doc: &'d Value, kind: &str, path: &str) -> &'d Value {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == kind && f["path"] == path)
        .unwrap_or_else(|| panic!("no {kind} {path} in {doc}"))
}

fn exported(env: &Env, root: &Path, format: &str, name: &str) -> PathBuf {
    let out_path = env.dir.path().join(name);
    let out = export(env, root, format, &out_path);
    assert_eq!(
        out.status.code(),
        Some(0),
        "export {format}: {}",
        stderr_of(&out)
    );
    out_path
}

#[test]
fn identical_trees_are_decided_by_their_merkle_roots() {
    let env = Env::new();
    populate(&env);
    let copy = copy_tree(&env, "copy");
    let (code, doc) = env.json(&["diff", &s(&env.root), &s(&copy)]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(findings(&doc), vec![]);
    assert_eq!(doc["summary"]["identical"], true);
    assert_eq!(doc["summary"]["decided_by"], "merkle_root");
    assert_eq!(
        counter(&doc, "files_compared"),
        0,
        "nothing compared file by file"
    );
    assert_eq!(counter(&doc, "files_skipped"), 7, "6 files and a symlink");
    assert_eq!(counter(&doc, "dirs_skipped"), 6);
    assert_eq!(
        doc["summary"]["a"]["merkle_root"],
        doc["summary"]["b"]["merkle_root"]
    );
    assert_eq!(doc["summary"]["scan_b"]["added"], 7, "B was scanned first");
}

#[test]
fn a_damaged_copy_gives_exact_findings_and_exit_1() {
    let env = Env::new();
    populate(&env);
    let copy = copy_tree(&env, "copy");
    damage(&copy);
    let (code, doc) = env.json(&["diff", &s(&env.root), &s(&copy)]);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(findings(&doc), damage_findings());
    assert_eq!(doc["summary"]["identical"], false);
    for kind in ["missing", "extra", "size_mismatch", "corrupt", "moved"] {
        assert_eq!(counter(&doc, kind), 1, "{kind}");
    }
    let moved = finding(&doc, "moved", "images/old/b.jpg");
    assert_eq!(moved["detail"], "from images/b.jpg");
    assert_eq!(moved["local"]["blake3"], moved["remote"]["blake3"]);
    let truncated = finding(&doc, "size_mismatch", "images/a.jpg");
    assert_eq!(
        (
            truncated["local"]["size"].as_u64(),
            truncated["remote"]["size"].as_u64()
        ),
        (Some(3000), Some(1000))
    );
    let corrupt = finding(&doc, "corrupt", "db/pg_wal/000001");
    assert_eq!(corrupt["local"]["size"], corrupt["remote"]["size"]);
    assert_ne!(corrupt["local"]["blake3"], corrupt["remote"]["blake3"]);

    // Every report format carries the same findings.
    let out = env
        .vouch()
        .args(["diff", &s(&env.root), &s(&copy), "--format", "jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[5]["kind"], "summary");
    assert_eq!(lines[5]["identical"], false);
}

#[test]
fn kinds_and_symlink_targets_that_differ_are_findings() {
    let env = Env::new();
    env.write("dir-or-file/inner", b"inside");
    env.write("plain", b"a file");
    std::os::unix::fs::symlink("target-one", env.root.join("sym")).unwrap();
    std::fs::create_dir(env.root.join("gone-empty")).unwrap();
    let copy = copy_tree(&env, "copy");
    std::fs::remove_dir_all(copy.join("dir-or-file")).unwrap();
    Env::write_in(&copy, "dir-or-file", b"now a file");
    std::fs::remove_file(copy.join("plain")).unwrap();
    std::os::unix::fs::symlink("elsewhere", copy.join("plain")).unwrap();
    std::fs::remove_file(copy.join("sym")).unwrap();
    std::os::unix::fs::symlink("target-two", copy.join("sym")).unwrap();
    std::fs::remove_dir(copy.join("gone-empty")).unwrap();
    let (code, doc) = env.json(&["diff", &s(&env.root), &s(&copy)]);
    assert_eq!(code, 1);
    assert_eq!(
        findings(&doc),
        pairs(&[
            ("missing", "dir-or-file/inner"),
            ("extra", "dir-or-file"),
            ("corrupt", "plain"),
            ("corrupt", "sym"),
            ("missing", "gone-empty"),
        ])
    );
    assert_eq!(
        finding(&doc, "corrupt", "sym")["detail"],
        "symlink target differs: A -> target-one, B -> target-two"
    );
    assert_eq!(
        finding(&doc, "corrupt", "plain")["detail"],
        "A has a regular file, B a symlink"
    );
    assert_eq!(
        finding(&doc, "extra", "dir-or-file")["detail"],
        "A has a directory here"
    );
    assert_eq!(
        finding(&doc, "missing", "gone-empty")["detail"],
        "an empty directory"
    );
}

#[test]
fn snapshot_diff_descends_only_into_subtrees_whose_hashes_differ() {
    let env = Env::new();
    for d in 0..5 {
        for f in 0..4 {
            env.write(format!("d{d}/sub/f{f}"), format!("file {d}/{f}").as_bytes());
        }
    }
    env.write("deep/top", b"top");
    env.write("deep/x/sibling", b"sibling");
    env.write("deep/x/y/target", b"the one byte that changes");
    let copy = copy_tree(&env, "copy");
    let root = s(&env.root);
    assert_eq!(env.json(&["scan", &root, "--label", "a"]).0, 0);
    assert_eq!(env.json(&["scan", &s(&copy), "--label", "b"]).0, 0);

    let (code, doc) = env.json(&["diff", "@a", "@b"]);
    assert_eq!(code, 0);
    assert_eq!(doc["summary"]["decided_by"], "merkle_root");
    assert_eq!(doc["summary"]["identical"], true);
    assert_eq!(counter(&doc, "files_skipped"), 23);

    let target = copy.join("deep/x/y/target");
    std::fs::write(&target, b"the one byte that chAnges").unwrap();
    set_mtime(&target, 1_600_000_100); // a rewrite (with the mtime put back: bit rot)
    assert_eq!(env.json(&["scan", &s(&copy), "--label", "b2"]).0, 0);
    let (code, doc) = env.json(&["diff", "@a", "@b2"]);
    assert_eq!(code, 1);
    assert_eq!(findings(&doc), pairs(&[("corrupt", "deep/x/y/target")]));
    assert_eq!(doc["summary"]["decided_by"], "merkle_tree");
    // Only the changed path is walked: deep, deep/x, deep/x/y and the
    // files directly in them; the five equal d* subtrees are skipped.
    assert_eq!(counter(&doc, "dirs_compared"), 3);
    assert_eq!(counter(&doc, "files_compared"), 3);
    assert_eq!(counter(&doc, "files_matched"), 2);
    assert_eq!(counter(&doc, "subtrees_skipped"), 5);
    assert_eq!(counter(&doc, "files_skipped"), 20);
    assert_eq!(counter(&doc, "dirs_skipped"), 5, "the d*/sub directories");
    // The snapshots are the runs' manifests, not the current tree: @b
    // still equals @a after the copy changed.
    let (code, _) = env.json(&["diff", "@a", "@b"]);
    assert_eq!(code, 0);
    let run_a = doc["summary"]["a"]["run"].as_u64().unwrap().to_string();
    let (code, doc) = env.json(&["diff", &format!("@{run_a}"), "@b2"]);
    assert_eq!(
        (code, findings(&doc)),
        (1, pairs(&[("corrupt", "deep/x/y/target")]))
    );
}

#[test]
fn diff_of_a_directory_against_a_json_manifest() {
    let env = Env::new();
    populate(&env);
    let manifest = exported(&env, &env.root, "json", "manifest.json");
    let doc: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(doc["vouch_manifest"], 1);
    assert_eq!(doc["merkle_root"].as_str().unwrap().len(), 64);
    let entries = doc["entries"].as_array().unwrap();
    let link = entries.iter().find(|e| e["path"] == "link").unwrap();
    assert_eq!(
        (&link["kind"], &link["target"]),
        (&Value::from("symlink"), &Value::from("notes.txt"))
    );
    let db = entries.iter().find(|e| e["path"] == "db").unwrap();
    assert_eq!(db["kind"], "dir");
    assert_eq!(db["merkle"].as_str().unwrap().len(), 64);

    let copy = copy_tree(&env, "copy");
    let (code, doc) = env.json(&["diff", &s(&manifest), &s(&copy)]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["summary"]["decided_by"], "merkle_root");
    assert_eq!(doc["summary"]["a"]["kind"], "manifest");

    damage(&copy);
    let (code, doc) = env.json(&["diff", &s(&manifest), &s(&copy)]);
    assert_eq!(code, 1);
    assert_eq!(findings(&doc), damage_findings());
    assert_eq!(doc["summary"]["decided_by"], "merkle_tree");

    // A manifest whose entries were edited no longer matches its own root:
    // refused, rather than trusted.
    let text = std::fs::read_to_string(&manifest).unwrap();
    let sum = blake3::hash(b"remember the milk").to_hex().to_string();
    let edited = text.replace(&sum, blake3::hash(b"forget the milk").to_hex().as_str());
    assert_ne!(edited, text);
    std::fs::write(&manifest, edited).unwrap();
    let out = env
        .vouch()
        .args(["diff", &s(&manifest), &s(&copy)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("does not match its entries"),
        "{}",
        stderr_of(&out)
    );
}

fn odd_tree(env: &Env) {
    env.write("sp ace.txt", b"space");
    env.write("back\\slash", b"backslash");
    env.write("new\nline", b"newline");
    env.write("dir/plain", b"plain");
    env.write("dir/percent%41", b"percent");
    env.write("cr\rname", b"carriage");
}

fn check_with(tool: &str, manifest: &Path, cwd: &Path) -> std::process::Output {
    Command::new(tool)
        .arg("--check")
        .arg(manifest)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} (scripts/test installs it): {e}"))
}

#[test]
fn b3sum_and_sha256sum_check_the_exported_manifests_odd_names_included() {
    let env = Env::new();
    odd_tree(&env);
    for (format, tool, name) in [
        ("b3sum", "b3sum", "sums.b3"),
        ("sha256sum", "sha256sum", "sums.sha256"),
    ] {
        let manifest = exported(&env, &env.root, format, name);
        let text = std::fs::read_to_string(&manifest).unwrap();
        assert_eq!(text.lines().count(), 6, "{text}");
        assert!(
            text.contains("  back\\\\slash\n") && text.contains("  new\\nline\n"),
            "{text}"
        );
        let out = check_with(tool, &manifest, &env.root);
        assert!(
            out.status.success(),
            "{tool} --check: {} {}",
            String::from_utf8_lossy(&out.stdout),
            stderr_of(&out)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).matches(": OK").count(),
            6
        );
        // vouch reads back what it wrote.
        let (code, doc) = env.json(&["verify", &s(&env.root), "--manifest", &s(&manifest)]);
        assert_eq!((code, findings(&doc)), (0, vec![]), "{doc}");
        assert_eq!(counter(&doc, "files_matched"), 6);
    }
    // And the checks are real: damage makes both tools fail.
    let victim = env.root.join("sp ace.txt");
    std::fs::write(&victim, b"SPACE").unwrap();
    for (tool, name) in [("b3sum", "sums.b3"), ("sha256sum", "sums.sha256")] {
        let out = check_with(tool, &env.dir.path().join(name), &env.root);
        assert!(!out.status.success(), "{tool} should fail");
    }
}

#[test]
fn a_name_that_is_not_utf8_refuses_a_checksum_export_but_json_holds_it() {
    let env = Env::new();
    env.write(b"caf\xe9.txt", b"latin-1 name");
    env.write("fine", b"fine");
    let out = export(&env, &env.root, "b3sum", &env.dir.path().join("x.b3"));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains("caf\\xe9.txt")
            && err.contains("not valid UTF-8")
            && err.contains("--format json"),
        "{err}"
    );
    assert!(
        !env.dir.path().join("x.b3").exists(),
        "nothing half-written"
    );

    let manifest = exported(&env, &env.root, "json", "m.json");
    let copy = copy_tree(&env, "copy");
    let (code, doc) = env.json(&["verify", &s(&copy), "--manifest", &s(&manifest)]);
    assert_eq!((code, findings(&doc)), (0, vec![]));
    std::fs::remove_file(copy.join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"))).unwrap();
    let (code, doc) = env.json(&["verify", &s(&copy), "--manifest", &s(&manifest)]);
    assert_eq!(
        (code, findings(&doc)),
        (1, pairs(&[("missing", "caf\\xe9.txt")]))
    );
}

#[test]
fn a_bagit_export_is_a_valid_bag_and_leaves_the_source_as_it_was() {
    let env = Env::new();
    populate(&env);
    odd_tree(&env);
    let root = s(&env.root);
    assert_eq!(env.json(&["scan", &root, "--label", "before"]).0, 0);
    for (name, extra) in [("bag", None), ("bag-copied", Some("--copy"))] {
        let bag = env.dir.path().join(name);
        let out = env
            .vouch()
            .args(["export", &root, "--format", "bagit", "--output", &s(&bag)])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        for f in [
            "bagit.txt",
            "bag-info.txt",
            "manifest-sha256.txt",
            "tagmanifest-sha256.txt",
        ] {
            assert!(bag.join(f).is_file(), "{f}");
        }
        let info = std::fs::read_to_string(bag.join("bag-info.txt")).unwrap();
        let bytes: usize = [10_000, 16, 4096, 3000, 2000, 17, 5, 9, 7, 5, 7, 8]
            .iter()
            .sum();
        assert!(
            info.contains(&format!("Payload-Oxum: {bytes}.12\n")),
            "{info}"
        );
        assert!(info.contains("Bagging-Date: "), "{info}");
        assert_eq!(
            std::fs::read(bag.join("data/images/a.jpg")).unwrap(),
            pattern(3000, 3)
        );
        let v = Command::new("python3")
            .args([
                "-c",
                "import bagit, sys; bagit.Bag(sys.argv[1]).validate(); print('valid')",
            ])
            .arg(&bag)
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "bagit validation of {name}: {}",
            stderr_of(&v)
        );
    }
    // The validator is real: a damaged payload fails (on the copied bag,
    // whose files are not the source's).
    let copied = env.dir.path().join("bag-copied/data/notes.txt");
    std::fs::write(&copied, b"remember the MILK").unwrap();
    let v = Command::new("python3")
        .args(["-c", "import bagit, sys; bagit.Bag(sys.argv[1]).validate()"])
        .arg(env.dir.path().join("bag-copied"))
        .output()
        .unwrap();
    assert!(!v.status.success());
    // The source tree is byte for byte what it was.
    let (code, doc) = env.json(&["diff", "@before", &root]);
    assert_eq!((code, findings(&doc)), (0, vec![]), "{doc}");
    // A bag is never written over something, nor inside ROOT.
    let out = export(&env, &env.root, "bagit", &env.dir.path().join("bag"));
    assert_eq!(out.status.code(), Some(2));
    let out = export(&env, &env.root, "bagit", &env.root.join("bag"));
    assert_eq!(out.status.code(), Some(2));
    assert!(!env.root.join("bag").exists());
    // A name that BagIt readers would decode two ways is refused.
    env.write("odd%0Aname", b"x");
    let out = export(&env, &env.root, "bagit", &env.dir.path().join("bag3"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("odd%0Aname"),
        "{}",
        stderr_of(&out)
    );
    assert!(!env.dir.path().join("bag3").exists());
}

#[test]
fn verify_passes_an_intact_copy_and_lists_exactly_what_a_damaged_one_lacks() {
    let env = Env::new();
    populate(&env);
    let manifests = [
        exported(&env, &env.root, "json", "m.json"),
        exported(&env, &env.root, "b3sum", "m.b3"),
        exported(&env, &env.root, "sha256sum", "m.sha256"),
    ];
    // The copy is verified on "another host": a fresh index.
    let other = Env::new();
    let copy = copy_tree(&env, "copy");
    for m in &manifests {
        let (code, doc) = other.json(&["verify", &s(&copy), "--manifest", &s(m)]);
        assert_eq!(
            (code, findings(&doc)),
            (0, vec![]),
            "{}: {doc}",
            m.display()
        );
        assert_eq!(doc["summary"]["identical"], true);
    }
    damage(&copy);
    for m in &manifests {
        let (code, doc) = other.json(&["verify", &s(&copy), "--manifest", &s(m)]);
        assert_eq!(code, 1, "{}", m.display());
        let mut expected = damage_findings();
        if !m.ends_with("m.json") {
            // A checksum list records no size: a truncated file is simply
            // other content.
            expected = expected
                .into_iter()
                .map(|(k, p)| {
                    (
                        if k == "size_mismatch" {
                            "corrupt".into()
                        } else {
                            k
                        },
                        p,
                    )
                })
                .collect();
            expected.sort();
        }
        assert_eq!(findings(&doc), expected, "{}", m.display());
        assert_eq!(doc["summary"]["command"], "verify");
    }
    // The tree was only read.
    assert_eq!(
        std::fs::read(copy.join("images/a.jpg")).unwrap(),
        pattern(1000, 3)
    );
}

#[test]
fn a_manifest_made_by_b3sum_itself_verifies() {
    let env = Env::new();
    populate(&env);
    let sums = env.dir.path().join("B3SUMS");
    let ok = Command::new("sh")
        .arg("-c")
        .arg("find . -type f -print0 | sort -z | xargs -0 b3sum > \"$1\"")
        .arg("sh")
        .arg(&sums)
        .current_dir(&env.root)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    assert!(
        std::fs::read_to_string(&sums)
            .unwrap()
            .contains("  ./db/base/1/100\n")
    );
    let (code, doc) = env.json(&["verify", &s(&env.root), "--manifest", &s(&sums)]);
    assert_eq!((code, findings(&doc)), (0, vec![]), "{doc}");
    assert_eq!(counter(&doc, "files_matched"), 6);
    assert_eq!(
        counter(&doc, "symlinks_ignored"),
        1,
        "b3sum lists regular files only"
    );
    // A manifest kept inside the tree it describes is not an extra file.
    std::fs::copy(&sums, env.root.join("B3SUMS")).unwrap();
    let (code, doc) = env.json(&[
        "verify",
        &s(&env.root),
        "--manifest",
        &s(&env.root.join("B3SUMS")),
    ]);
    assert_eq!((code, findings(&doc)), (0, vec![]), "{doc}");
}

#[test]
fn a_malformed_manifest_line_is_trouble_naming_the_file_and_line() {
    let env = Env::new();
    populate(&env);
    let good = exported(&env, &env.root, "b3sum", "good.b3");
    let mut text = std::fs::read_to_string(&good).unwrap();
    text.push_str("this is not a checksum line\n");
    let bad = env.dir.path().join("bad.b3");
    std::fs::write(&bad, &text).unwrap();
    let line = text.lines().count();
    let out = env
        .vouch()
        .args(["verify", &s(&env.root), "--manifest", &s(&bad)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&s(&bad)) && err.contains(&format!("line {line}")),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let json = exported(&env, &env.root, "json", "m.json");
    let text = std::fs::read_to_string(&json).unwrap();
    let broken: String = text.replacen("\"size\":", "\"size\":\"big\",\"x\":", 1);
    std::fs::write(&json, &broken).unwrap();
    let line = broken.lines().position(|l| l.contains("\"big\"")).unwrap() + 1;
    let out = env
        .vouch()
        .args(["diff", &s(&json), &s(&env.root)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains(&s(&json)) && err.contains(&format!("line {line}")),
        "{err}"
    );

    // Which 64-hex-digit hash a list holds is never guessed.
    let vague = env.dir.path().join("checksums.txt");
    std::fs::copy(&good, &vague).unwrap();
    let out = env
        .vouch()
        .args(["verify", &s(&env.root), "--manifest", &s(&vague)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("--manifest-format"));
    let (code, _) = env.json(&[
        "verify",
        &s(&env.root),
        "--manifest",
        &s(&vague),
        "--manifest-format",
        "b3sum",
    ]);
    assert_eq!(code, 0);
}

#[test]
fn an_unknown_label_is_trouble_listing_the_known_ones() {
    let env = Env::new();
    populate(&env);
    let root = s(&env.root);
    assert_eq!(env.json(&["scan", &root, "--label", "monday"]).0, 0);
    assert_eq!(env.json(&["scan", &root, "--label", "tuesday"]).0, 0);
    let out = env
        .vouch()
        .args(["diff", "@monday", "@friday"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("friday") && err.contains("known labels: monday, tuesday"),
        "{err}"
    );
    let out = env
        .vouch()
        .args(["diff", "@monday", "@99"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("no run 99"));
}

#[test]
fn a_run_that_did_not_finish_a_scan_is_not_a_snapshot() {
    let env = Env::new();
    populate(&env);
    assert_eq!(env.json(&["scan", &s(&env.root), "--label", "good"]).0, 0);
    let conn = rusqlite::Connection::open(&env.index).unwrap();
    conn.execute(
        "INSERT INTO runs(root_id, command, label, started_at, status) VALUES (1, 'scan', 'half', 0, 'interrupted')",
        [],
    )
    .unwrap();
    drop(conn);
    let out = env
        .vouch()
        .args(["diff", "@good", "@half"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("did not finish a scan"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn a_snapshot_with_an_unreadable_file_is_never_identical_by_its_root() {
    let env = Env::new();
    env.write("secret", b"cannot be read at the second scan");
    env.write("open", b"fine");
    let root = s(&env.root);
    assert_eq!(env.json(&["scan", &root, "--label", "a"]).0, 0);
    let secret = env.root.join("secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    // The metadata changed (ctime), so the scan must read the file, and
    // cannot: the index keeps the old row, and the root stays the same.
    let args = ["--format", "json", "scan", root.as_str(), "--label", "b"];
    let out = if is_root() {
        std::fs::set_permissions(&env.root, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(
            env.root.join("open"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        vouch_as_nobody(&env, &args)
    } else {
        env.vouch().args(args).output().unwrap()
    };
    assert_eq!(
        out.status.code(),
        Some(2),
        "incomplete (issue 17): {}",
        stderr_of(&out)
    );
    let scan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(findings(&scan), pairs(&[("unreadable", "secret")]));

    let (code, doc) = env.json(&["diff", "@a", "@b"]);
    assert_eq!(code, 1, "an unread file is not proven identical: {doc}");
    assert_eq!(findings(&doc), pairs(&[("unreadable", "secret")]));
    assert_eq!(doc["summary"]["identical"], false);
    assert_ne!(doc["summary"]["decided_by"], "merkle_root");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
}

#[test]
fn format_means_the_manifest_for_export_and_the_report_elsewhere() {
    let env = Env::new();
    populate(&env);
    let root = s(&env.root);
    let out = env.vouch().args(["export", &root]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("--format b3sum, sha256sum, bagit or json"));
    let out = env
        .vouch()
        .args(["export", &root, "--format", "csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // diff's --format offers only the report formats (the parser refuses
    // the others); before the subcommand the resolver does.
    let out = env
        .vouch()
        .args(["diff", &root, &root, "--format", "b3sum"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("[possible values: table, json, jsonl, csv, html]"));
    let out = env
        .vouch()
        .args(["--format", "b3sum", "diff", &root, &root])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("manifest format"));
    // Without --output, a checksum list goes to stdout, ready for b3sum.
    let out = env
        .vouch()
        .args(["--format", "b3sum", "export", &root])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 6);
    assert!(text.contains(&format!(
        "{}  notes.txt\n",
        blake3::hash(b"remember the milk").to_hex()
    )));
}
