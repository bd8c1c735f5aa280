//! `damaged`: files broken on both sides (a cut-off dump, a truncated gzip,
//! a JPEG missing its tail, an emptied dump) are found by the scan's
//! structural checks, even though the backup holds the very same bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::{Env, counter, set_mtime};

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/checks")
        .join(name);
    std::fs::read(p).unwrap()
}

/// A JPEG made by Pillow (larger than 200 KiB).
fn jpeg(dir: &Path) -> Vec<u8> {
    let st = Command::new("python3")
        .current_dir(dir)
        .args([
            "-c",
            "from PIL import Image\nimport random\nrandom.seed(3)\nim = Image.new('RGB', (800, 600))\nim.putdata([(random.randrange(256), x % 256, 40) for x in range(800 * 600)])\nim.save('x.jpg', quality=95)",
        ])
        .status()
        .expect("python3 with Pillow (scripts/test installs it)");
    assert!(st.success());
    std::fs::read(dir.join("x.jpg")).unwrap()
}

fn gzip(dir: &Path, content: &[u8]) -> Vec<u8> {
    std::fs::write(dir.join("g"), content).unwrap();
    let st = Command::new("gzip")
        .current_dir(dir)
        .args(["-kf", "g"])
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read(dir.join("g.gz")).unwrap()
}

/// Copies ROOT to a backup folder beside it, byte for byte.
fn mirror(env: &Env) -> PathBuf {
    let backup = env.dir.path().join("backup");
    let st = Command::new("cp")
        .args(["-a"])
        .arg(&env.root)
        .arg(&backup)
        .status()
        .unwrap();
    assert!(st.success());
    backup
}

fn damaged(doc: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "damaged")
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A byte offset as the details print it: 73400320 -> "73,400,320".
fn sep(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn lines(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!("{i}\tcustomer {i}\tc{i}@example.com\n").into_bytes())
        .collect()
}

#[test]
fn broken_files_audit_as_damaged_though_the_backup_matches() {
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    let dump = fixture("pg-shop.sql");
    let gz = gzip(tmp.path(), &lines(5000));
    let jpg = jpeg(tmp.path());
    env.write("db/shop.sql", &dump);
    env.write("db/shop-cut.sql", &dump[..dump.len() / 2]);
    env.write("logs/app.log.gz", &gz);
    env.write("logs/app-cut.log.gz", &gz[..gz.len() / 2]);
    env.write("photos/ok.jpg", &jpg);
    env.write("photos/cut.jpg", &jpg[..jpg.len() - 100 * 1024]);
    env.write("notes.sql", b"SELECT 1;\n-- not a dump\n");
    let backup = mirror(&env);
    let root = env.root.to_str().unwrap().to_string();
    let (code, doc) = env.json(&[
        "audit",
        &root,
        "--remote",
        backup.to_str().unwrap(),
        "--checks",
        "full",
    ]);
    assert_eq!(code, 1, "{doc}");
    let dump_cut = dump.len() / 2;
    let gz_cut = gz.len() / 2;
    let jpg_cut = jpg.len() - 100 * 1024;
    let mid = if dump[dump_cut - 1] == b'\n' {
        ""
    } else {
        " mid-line"
    };
    assert_eq!(
        damaged(&doc),
        vec![
            (
                "db/shop-cut.sql".to_string(),
                format!(
                    "pg_dump output ends{mid} at byte {} without its '-- PostgreSQL database dump complete' trailer: the dump was cut off",
                    sep(dump_cut)
                )
            ),
            (
                "logs/app-cut.log.gz".to_string(),
                format!(
                    "gzip stream ends at byte {} before its trailer: the file was cut off",
                    sep(gz_cut)
                )
            ),
            (
                "photos/cut.jpg".to_string(),
                format!(
                    "JPEG has no end-of-image marker: its data stops at byte {} (the image was cut off)",
                    sep(jpg_cut)
                )
            ),
        ]
    );
    assert_eq!(counter(&doc, "damaged"), 3);
    // Each damaged finding says what it is and when it was first seen.
    let f = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "damaged" && f["path"] == "photos/cut.jpg")
        .unwrap();
    assert_eq!(f["local"]["format"], "jpeg");
    assert!(!f["first_seen"].is_null(), "{f}");
    // Healthy files: nothing to say; the backup matches everything.
    assert_eq!(counter(&doc, "missing"), 0);
    // Six files of known formats were checked; notes.sql is not a dump.
    assert_eq!(doc["summary"]["scan"]["checked"], 6, "{}", doc["summary"]);
}

#[test]
fn an_emptied_dump_is_damaged_when_its_previous_version_had_data() {
    let env = Env::new();
    let p = env.write("db/nightly.sql", &fixture("pg-shop.sql"));
    let (code, doc) = env.scan();
    assert_eq!(code, 0, "{doc}");
    assert_eq!(counter(&doc, "damaged"), 0);
    // The next night's dump is complete, but of an empty database.
    std::fs::write(&p, fixture("pg-empty.sql")).unwrap();
    set_mtime(&p, 1_600_100_000);
    let (code, doc) = env.scan();
    assert_eq!(code, 1, "{doc}");
    assert_eq!(
        damaged(&doc),
        vec![(
            "db/nightly.sql".to_string(),
            "the dump holds no table data (no COPY or INSERT statement) while its previous version did: it may be a dump of an empty database".to_string()
        )]
    );
    // A dump that was always empty is not damaged.
    let env = Env::new();
    env.write("db/empty.sql", &fixture("pg-empty.sql"));
    let (code, doc) = env.scan();
    assert_eq!((code, counter(&doc, "damaged")), (0, 0), "{doc}");
}

#[test]
fn an_unchanged_file_is_not_checked_again_and_stays_damaged() {
    let env = Env::new();
    let dump = fixture("my-shop.sql");
    env.write("a/cut.sql", &dump[..dump.len() - 100]);
    env.write("a/ok.sql", &dump);
    env.write("a/plain.txt", b"hello\n");
    let (code, first) = env.scan();
    assert_eq!(code, 1, "{first}");
    assert_eq!(counter(&first, "checked"), 2);
    assert!(counter(&first, "check_bytes") > 0);
    let seen = damaged(&first);
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].1.starts_with("mariadb-dump output ends"),
        "{seen:?}"
    );
    let first_seen = first["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "damaged")
        .unwrap()["first_seen"]
        .clone();
    assert!(!first_seen.is_null());

    let (code, again) = env.scan();
    assert_eq!(code, 1, "{again}");
    assert_eq!(counter(&again, "checked"), 0);
    assert_eq!(counter(&again, "check_bytes"), 0);
    assert_eq!(counter(&again, "checks_skipped"), 3);
    assert_eq!(damaged(&again), seen);
    let f = again["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "damaged")
        .unwrap();
    assert_eq!(f["first_seen"], first_seen);

    // Fixing the file clears the finding.
    let p = env.write("a/cut.sql", &dump);
    set_mtime(&p, 1_600_200_000);
    let (code, fixed) = env.scan();
    assert_eq!((code, counter(&fixed, "damaged")), (0, 0), "{fixed}");
    assert_eq!(counter(&fixed, "checked"), 1);
}

#[test]
fn checks_none_checks_nothing_and_bad_levels_are_refused() {
    let env = Env::new();
    let dump = fixture("pg-shop.sql");
    env.write("cut.sql", &dump[..100]);
    let root = env.root.to_str().unwrap().to_string();
    let (code, doc) = env.json(&["scan", &root, "--checks", "none"]);
    assert_eq!(
        (code, counter(&doc, "damaged"), counter(&doc, "checked")),
        (0, 0, 0),
        "{doc}"
    );
    let out = env
        .vouch()
        .args(["scan", &root, "--checks", "deep"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_named_audit_takes_checks_from_the_config_file_and_every_format_lists_damage() {
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    // Large enough that the fast check cannot prove a gzip's end.
    let big: Vec<u8> = (0..2_000_000u32)
        .flat_map(|i| (i.wrapping_mul(2_654_435_761) >> 7).to_le_bytes())
        .collect();
    let gz = gzip(tmp.path(), &big);
    assert!(gz.len() > 5 << 20, "{}", gz.len());
    env.write("cut.gz", &gz[..gz.len() - 1000]);
    let backup = mirror(&env);
    let prom = env.dir.path().join("v.prom");
    let config = env.dir.path().join("vouch.toml");
    let write_config = |checks: &str, index: &Path| {
        std::fs::write(
            &config,
            format!(
                "index = {:?}\n\n[audit.logs]\nroot = {:?}\nremote = {:?}\nchecks = {checks:?}\nchecks_budget = \"1G\"\nmetrics = {:?}\n",
                index, env.root, backup, prom
            ),
        )
        .unwrap();
    };
    let run = |format: &str| {
        let mut cmd = assert_cmd::Command::cargo_bin("vouch").unwrap();
        cmd.env_remove("VOUCH_INDEX")
            .args(["run", "logs", "--format", format, "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    // fast: the gzip is too large to prove anything without decompressing.
    write_config("fast", &env.index);
    let out = run("json");
    assert_eq!(out.status.code(), Some(0), "{}", super::stderr_of(&out));
    // full (on a fresh index: an unchanged file is not checked again).
    write_config("full", &env.dir.path().join("second.sqlite3"));
    let out = run("jsonl");
    assert_eq!(out.status.code(), Some(1), "{}", super::stderr_of(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("\"damaged\"") && l.contains("cut.gz"))
        .unwrap();
    let f: Value = serde_json::from_str(line).unwrap();
    let want = format!(
        "gzip stream ends at byte {} before its trailer: the file was cut off",
        sep(gz.len() - 1000)
    );
    assert_eq!(f["detail"], want.as_str());
    let prom_text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        prom_text.contains("vouch_findings{")
            && prom_text
                .lines()
                .any(|l| l.contains("kind=\"damaged\"") && l.trim_end().ends_with(" 1")),
        "{prom_text}"
    );
    // The same finding in the other formats (the index remembers it).
    for format in ["csv", "table"] {
        let out = run(format);
        assert_eq!(out.status.code(), Some(1));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("damaged") && text.contains(&want),
            "{format}: {text}"
        );
    }
}
