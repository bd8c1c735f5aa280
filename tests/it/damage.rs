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

/// Rot that empties a dump (same size, same mtime): `corrupt`, and the
/// check of the bytes now there compares with the trusted version's, which
/// held table data: `damaged` as an emptied dump, not sound.
#[test]
fn a_dump_emptied_by_rot_is_corrupt_and_damaged() {
    let env = Env::new();
    let dump = fixture("pg-shop.sql");
    let p = env.write("db/nightly.sql", &dump);
    let (code, doc) = env.scan();
    assert_eq!((code, counter(&doc, "damaged")), (0, 0), "{doc}");
    let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
    // Every COPY turned into a comment, byte for byte the same length.
    let text = String::from_utf8(dump.clone()).unwrap();
    let rotted = text.replace("COPY public.", "--PY public.");
    assert_eq!(rotted.len(), dump.len());
    std::fs::write(&p, rotted).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let (code, doc) = env.scan();
    assert_eq!(code, 1, "{doc}");
    assert_eq!(counter(&doc, "corrupt"), 1, "{doc}");
    assert_eq!(
        damaged(&doc),
        vec![(
            "db/nightly.sql".to_string(),
            "the dump holds no table data (no COPY or INSERT statement) while its previous version did: it may be a dump of an empty database".to_string()
        )]
    );
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

/// Copies a fixture directory under ROOT/`rel` with old mtimes.
fn fixture_dir(env: &Env, name: &str, rel: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/checks")
        .join(name);
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let file = format!("{rel}/{}", e.file_name().to_str().unwrap());
        env.write(&file, &std::fs::read(e.path()).unwrap());
    }
}

/// A first scan finds its set checks' anchors as it writes them (it does
/// not read the manifest back): every dump directory it meets is checked,
/// in directory order, the nested one too.
#[test]
fn a_first_scan_checks_every_dump_directory_it_finds() {
    let env = Env::new();
    fixture_dir(&env, "pg-shop.dir", "db/shop");
    fixture_dir(&env, "pg-shop-z0.dir", "db/shop0");
    fixture_dir(&env, "pg-shop.dir", "db/shop0/old/shop");
    fixture_dir(&env, "pg-empty.dir", "db/empty");
    std::fs::remove_file(env.root.join("db/shop/3352.dat.gz")).unwrap();
    std::fs::remove_file(env.root.join("db/shop0/old/shop/3352.dat.gz")).unwrap();
    let data = env.root.join("db/shop0/3351.dat");
    let customers = std::fs::read(&data).unwrap();
    let cut = customers.len() - 10;
    std::fs::write(&data, &customers[..cut]).unwrap();
    let (code, doc) = env.scan();
    assert_eq!(code, 1, "{doc}");
    let lacks = "pg_dump directory archive lacks 1 data file its toc.dat names: 3352.dat (table data public.orders)";
    assert_eq!(
        damaged(&doc),
        vec![
            ("db/shop/toc.dat".to_string(), lacks.to_string()),
            (
                "db/shop0/3351.dat".to_string(),
                format!(
                    "pg_dump data file of table data public.customers ends at byte {} without the \\. line that ends COPY data: it was cut off",
                    sep(cut)
                ),
            ),
            ("db/shop0/old/shop/toc.dat".to_string(), lacks.to_string()),
        ]
    );
    assert_eq!(counter(&doc, "damaged"), 3, "{doc}");
}

#[test]
fn a_pg_dump_directory_missing_or_cutting_a_data_file_is_damaged() {
    let env = Env::new();
    fixture_dir(&env, "pg-shop.dir", "db/shop");
    fixture_dir(&env, "pg-shop-z0.dir", "db/shop0");
    fixture_dir(&env, "pg-empty.dir", "db/empty");
    let (code, doc) = env.scan();
    assert_eq!((code, counter(&doc, "damaged")), (0, 0), "{doc}");

    // A data file lost, another cut off: the dump cannot be restored.
    let gone = env.root.join("db/shop/3352.dat.gz");
    let orders = std::fs::read(&gone).unwrap();
    std::fs::remove_file(&gone).unwrap();
    let data = env.root.join("db/shop0/3351.dat");
    let customers = std::fs::read(&data).unwrap();
    let cut = customers.len() - 10;
    std::fs::write(&data, &customers[..cut]).unwrap();
    set_mtime(&data, 1_600_300_000);
    let (code, doc) = env.scan();
    assert_eq!(code, 1, "{doc}");
    let want = vec![
        (
            "db/shop/toc.dat".to_string(),
            "pg_dump directory archive lacks 1 data file its toc.dat names: 3352.dat (table data public.orders)".to_string(),
        ),
        (
            "db/shop0/3351.dat".to_string(),
            format!(
                "pg_dump data file of table data public.customers ends at byte {} without the \\. line that ends COPY data: it was cut off",
                sep(cut)
            ),
        ),
    ];
    assert_eq!(damaged(&doc), want);

    // Nothing changed: nothing is checked again, the findings stand.
    let (code, again) = env.scan();
    assert_eq!(code, 1, "{again}");
    assert_eq!(counter(&again, "checked"), 0);
    assert_eq!(counter(&again, "check_bytes"), 0);
    assert_eq!(damaged(&again), want);

    // Putting the files back clears both.
    env.write("db/shop/3352.dat.gz", &orders);
    let p = env.write("db/shop0/3351.dat", &customers);
    set_mtime(&p, 1_600_400_000);
    let (code, fixed) = env.scan();
    assert_eq!((code, counter(&fixed, "damaged")), (0, 0), "{fixed}");

    // A toc.dat cut off is damaged itself.
    let toc = fixture("pg-shop.dir/toc.dat");
    let p = env.write("db/shop/toc.dat", &toc[..toc.len() / 2]);
    set_mtime(&p, 1_600_500_000);
    let (code, doc) = env.scan();
    assert_eq!(code, 1, "{doc}");
    assert_eq!(
        damaged(&doc),
        vec![(
            "db/shop/toc.dat".to_string(),
            format!(
                "pg_dump directory archive's toc.dat ends at byte {} inside its table of contents: the dump was cut off",
                sep(toc.len() / 2)
            )
        )]
    );
}

/// Unpacks the checked-in pg_basebackup (made by scripts/gen-check-fixtures)
/// under ROOT/`rel`.
fn basebackup(env: &Env, rel: &str) -> PathBuf {
    let dir = env.root.join(rel);
    std::fs::create_dir_all(&dir).unwrap();
    let tar =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checks/pg-basebackup.tar.xz");
    let st = Command::new("tar")
        .arg("xJf")
        .arg(tar)
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    dir
}

/// `pg_verifybackup -n DIR`'s complaints, as the files they name, when
/// the PostgreSQL client tools are installed.
fn pg_verifybackup(dir: &Path) -> Option<(bool, Vec<String>)> {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin/pg_verifybackup"))
        .find(|p| p.exists())?;
    let out = Command::new(bin).arg("-n").arg(dir).output().unwrap();
    let mut named: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.split('"').nth(1).map(str::to_string))
        .collect();
    named.sort();
    Some((out.status.success(), named))
}

#[test]
fn a_pg_basebackup_is_verified_against_its_backup_manifest_like_pg_verifybackup() {
    let env = Env::new();
    let bb = basebackup(&env, "pg/base");
    let root = env.root.to_str().unwrap().to_string();
    let (code, doc) = env.json(&["scan", &root, "--checks", "full"]);
    assert_eq!((code, counter(&doc, "damaged")), (0, 0), "{doc}");
    if let Some((ok, named)) = pg_verifybackup(&bb) {
        assert!(ok, "pg_verifybackup: {named:?}");
    }
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(bb.join("backup_manifest")).unwrap()).unwrap();
    let listed = |path: &str| -> Value {
        manifest["Files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["Path"] == path)
            .unwrap()
            .clone()
    };

    // One file removed, one cut, one altered in place (same size).
    std::fs::remove_file(bb.join("global/1262")).unwrap();
    let cut = bb.join("base/1/1259");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(100)
        .unwrap();
    set_mtime(&cut, 1_600_300_000);
    let altered = bb.join("base/1/1255");
    let mut bytes = std::fs::read(&altered).unwrap();
    bytes[5000] ^= 0x20;
    std::fs::write(&altered, &bytes).unwrap();
    set_mtime(&altered, 1_600_300_000);
    let lacks = (
        "pg/base/backup_manifest".to_string(),
        "backup_manifest lists 1 file the backup lacks: global/1262".to_string(),
    );
    let short = (
        "pg/base/base/1/1259".to_string(),
        format!(
            "size 100 differs from the {} bytes its backup_manifest lists: the file was cut off or changed after the backup",
            sep(listed("base/1/1259")["Size"].as_u64().unwrap() as usize)
        ),
    );

    // fast: what the tree lacks and sizes, from the index alone.
    let (code, doc) = env.json(&["scan", &root, "--checks", "fast"]);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(damaged(&doc), vec![lacks.clone(), short.clone()]);

    // full: every file's CRC32C too.
    let (code, doc) = env.json(&["scan", &root, "--checks", "full"]);
    assert_eq!(code, 1, "{doc}");
    let found = damaged(&doc);
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(found[1].0, "pg/base/base/1/1255");
    let expected = listed("base/1/1255")["Checksum"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        found[1].1.starts_with("CRC32C checksum ")
            && found[1].1.ends_with(&format!(
                "differs from the {expected} its backup_manifest lists: the file changed after the backup"
            )),
        "{found:?}"
    );
    assert_eq!((&found[0], &found[2]), (&lacks, &short));

    // The peer names the same three files.
    if let Some((ok, named)) = pg_verifybackup(&bb) {
        assert!(!ok);
        assert_eq!(named, vec!["base/1/1255", "base/1/1259", "global/1262"]);
    }

    // No change: nothing read again, the findings stand.
    let (code, again) = env.json(&["scan", &root, "--checks", "full"]);
    assert_eq!(code, 1);
    assert_eq!(counter(&again, "check_bytes"), 0);
    assert_eq!(damaged(&again), found);

    // A manifest edited by hand fails its own checksum.
    let mpath = bb.join("backup_manifest");
    let text = std::fs::read_to_string(&mpath).unwrap();
    let edited = text.replacen("\"Size\": 3,", "\"Size\": 4,", 1);
    assert_ne!(edited, text);
    std::fs::write(&mpath, edited).unwrap();
    set_mtime(&mpath, 1_600_400_000);
    let (code, doc) = env.json(&["scan", &root]);
    assert_eq!(code, 1, "{doc}");
    let on_manifest: Vec<_> = damaged(&doc)
        .into_iter()
        .filter(|(p, _)| p == "pg/base/backup_manifest")
        .collect();
    assert_eq!(on_manifest.len(), 1);
    assert!(
        on_manifest[0]
            .1
            .starts_with("backup_manifest's own SHA-256 checksum ")
            && on_manifest[0]
                .1
                .ends_with("the manifest was altered or damaged"),
        "{on_manifest:?}"
    );
}

#[test]
fn tiff_cut_and_xz_bzip2_corrupt_inside_are_damaged() {
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    let st = Command::new("python3")
        .current_dir(tmp.path())
        .args([
            "-c",
            "from PIL import Image\nim = Image.new('RGB', (300, 200), (10, 200, 30))\nim.save('x.tif')",
        ])
        .status()
        .expect("python3 with Pillow");
    assert!(st.success());
    let tif = std::fs::read(tmp.path().join("x.tif")).unwrap();
    env.write("img/ok.tif", &tif);
    env.write("img/cut.tif", &tif[..tif.len() - 1000]);
    std::fs::write(tmp.path().join("t"), lines(20_000)).unwrap();
    for tool in ["xz", "bzip2"] {
        let st = Command::new(tool)
            .current_dir(tmp.path())
            .args(["-kf", "t"])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let xz = std::fs::read(tmp.path().join("t.xz")).unwrap();
    let bz = std::fs::read(tmp.path().join("t.bz2")).unwrap();
    let flip = |b: &[u8]| {
        let mut v = b.to_vec();
        let at = v.len() / 2;
        v[at] ^= 0x55;
        v
    };
    env.write("logs/ok.xz", &xz);
    env.write("logs/bad.xz", &flip(&xz));
    env.write("logs/ok.bz2", &bz);
    env.write("logs/bad.bz2", &flip(&bz));
    let root = env.root.to_str().unwrap().to_string();
    // fast: only the cut TIFF (the corruption is inside the streams).
    let (code, doc) = env.json(&["scan", &root]);
    assert_eq!(code, 1, "{doc}");
    let found = damaged(&doc);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "img/cut.tif");
    assert!(
        found[0].1.starts_with("the image data of strip ")
            && found[0].1.ends_with(&format!(
                "lies past the end of the file at byte {}: the TIFF was cut off",
                sep(tif.len() - 1000)
            )),
        "{found:?}"
    );
    // full decompresses: both corrupt streams are found.
    let env2 = Env::new();
    for (k, v) in [
        ("ok.xz", &xz),
        ("bad.xz", &flip(&xz)),
        ("ok.bz2", &bz),
        ("bad.bz2", &flip(&bz)),
    ] {
        env2.write(k, v);
    }
    let root2 = env2.root.to_str().unwrap().to_string();
    let (code, doc) = env2.json(&["scan", &root2, "--checks", "full"]);
    assert_eq!(code, 1, "{doc}");
    let found = damaged(&doc);
    let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, vec!["bad.bz2", "bad.xz"], "{found:?}");
    assert!(
        found[0].1.starts_with("bzip2 data is corrupt: "),
        "{found:?}"
    );
    assert!(found[1].1.starts_with("xz data is corrupt: "), "{found:?}");
}

/// Unpacks the checked-in `pg_basebackup -Ft -X stream` (made by
/// scripts/gen-check-fixtures) under ROOT/`rel`; returns the tablespace OID.
fn tar_basebackup(env: &Env, rel: &str) -> (PathBuf, String) {
    let dir = env.root.join(rel);
    std::fs::create_dir_all(&dir).unwrap();
    let xz = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/checks/pg-basebackup-tar.tar.xz");
    sh(&dir, "tar", &["xJf", xz.to_str().unwrap()]);
    let oid = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find_map(|n| {
            n.strip_suffix(".tar")
                .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
                .map(str::to_string)
        })
        .unwrap();
    (dir, oid)
}

fn sh(dir: &Path, cmd: &str, args: &[&str]) {
    let st = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(st.success(), "{cmd} {args:?}");
}

/// The regular-file members of an uncompressed tar: (name, data offset, size).
fn tar_members(tar: &[u8]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 512 <= tar.len() && tar[pos..pos + 512].iter().any(|&b| b != 0) {
        let h = &tar[pos..pos + 512];
        let field = |r: std::ops::Range<usize>| {
            let f = &h[r];
            let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
            String::from_utf8_lossy(&f[..end]).trim().to_string()
        };
        let name = field(0..100);
        let size = usize::from_str_radix(&field(124..136), 8).unwrap();
        if matches!(h[156], b'0' | 0) {
            out.push((name, pos + 512, size));
        }
        pos += 512 + size.div_ceil(512) * 512;
    }
    out
}

/// Removes member `name` from the tar at `path` (GNU tar --delete damages
/// the member before it in an archive not padded to 10 KiB records, as
/// pg_basebackup's are not).
fn tar_delete(path: &Path, name: &str) {
    let mut tar = std::fs::read(path).unwrap();
    let (_, off, size) = tar_members(&tar)
        .into_iter()
        .find(|(n, _, _)| n == name)
        .unwrap();
    tar.drain(off - 512..off + size.div_ceil(512) * 512);
    std::fs::write(path, tar).unwrap();
}

/// Renames member `from` to `to` (same length) in the tar at `path`.
fn tar_rename(path: &Path, from: &str, to: &str) {
    let mut tar = std::fs::read(path).unwrap();
    let (_, off, _) = tar_members(&tar)
        .into_iter()
        .find(|(n, _, _)| n == from)
        .unwrap();
    let h = &mut tar[off - 512..off];
    h[..to.len()].copy_from_slice(to.as_bytes());
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    std::fs::write(path, tar).unwrap();
}

/// The segment name before `seg` (same timeline).
fn segment_before(seg: &str) -> String {
    let n = u64::from_str_radix(&seg[8..], 16).unwrap() - 1;
    format!("{}{:016X}", &seg[..8], n)
}

/// The WAL segment names a tar holds.
fn wal_segments(tar: &Path) -> Vec<String> {
    let out = Command::new("tar").arg("tf").arg(tar).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.len() == 24)
        .map(str::to_string)
        .collect()
}

#[test]
fn a_tar_format_pg_basebackup_is_verified_member_by_member_with_its_wal() {
    let env = Env::new();
    let (bt, oid) = tar_basebackup(&env, "pg/tar");
    let (bz, _) = tar_basebackup(&env, "pg/tgz");
    for a in [
        "base.tar".to_string(),
        format!("{oid}.tar"),
        "pg_wal.tar".into(),
    ] {
        sh(&bz, "gzip", &["-n", &a]);
    }
    let root = env.root.to_str().unwrap().to_string();
    for level in ["fast", "full"] {
        let (code, doc) = env.json(&["scan", &root, "--checks", level]);
        assert_eq!((code, counter(&doc, "damaged")), (0, 0), "{level}: {doc}");
    }
    let seg = wal_segments(&bt.join("pg_wal.tar")).remove(0);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(bt.join("backup_manifest")).unwrap()).unwrap();
    let range = &manifest["WAL-Ranges"][0];

    // A member removed, a file slipped in, the WAL segment lost; in the
    // gzip'd copy, a member removed.
    tar_delete(&bt.join("base.tar"), "global/pg_control");
    std::fs::write(bt.join("extra.conf"), b"work_mem = 1GB\n").unwrap();
    sh(
        &bt,
        "python3",
        &[
            "-c",
            "import tarfile\nwith tarfile.open('base.tar', 'a', format=tarfile.USTAR_FORMAT) as t: t.add('extra.conf')",
        ],
    );
    std::fs::remove_file(bt.join("extra.conf")).unwrap();
    tar_rename(&bt.join("pg_wal.tar"), &seg, &segment_before(&seg));
    sh(&bz, "gunzip", &[&format!("{oid}.tar.gz")]);
    let ts_file = {
        let out = Command::new("tar")
            .arg("tf")
            .arg(bz.join(format!("{oid}.tar")))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| !l.ends_with('/'))
            .unwrap()
            .to_string()
    };
    tar_delete(&bz.join(format!("{oid}.tar")), &ts_file);
    sh(&bz, "gzip", &["-n", &format!("{oid}.tar")]);
    for p in [
        bt.join("base.tar"),
        bt.join("pg_wal.tar"),
        bz.join(format!("{oid}.tar.gz")),
    ] {
        set_mtime(&p, 1_600_300_000);
    }
    let base = (
        "pg/tar/base.tar".to_string(),
        "base.tar lacks global/pg_control listed in backup_manifest; base.tar holds extra.conf, \
         which backup_manifest does not list: it was added after the backup"
            .to_string(),
    );
    let wal = (
        "pg/tar/pg_wal.tar".to_string(),
        format!(
            "pg_wal.tar lacks WAL segment {seg} that restoring the backup needs (WAL from {} to {} on timeline 1)",
            range["Start-LSN"].as_str().unwrap(),
            range["End-LSN"].as_str().unwrap()
        ),
    );
    // fast: the uncompressed archives' headers; a .tar.gz is not opened.
    let (code, doc) = env.json(&["scan", &root, "--checks", "fast"]);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(damaged(&doc), vec![base.clone(), wal.clone()]);
    // full: the .tar.gz decompressed too.
    let (code, doc) = env.json(&["scan", &root, "--checks", "full"]);
    assert_eq!(code, 1, "{doc}");
    let tgz = (
        format!("pg/tgz/{oid}.tar.gz"),
        format!(
            "{oid}.tar.gz lacks pg_tblspc/{oid}/{} listed in backup_manifest",
            ts_file.trim_start_matches("./")
        ),
    );
    assert_eq!(damaged(&doc), vec![base, wal, tgz]);
    // Nothing changed: nothing read again.
    let (code, again) = env.json(&["scan", &root, "--checks", "full"]);
    assert_eq!(code, 1);
    assert_eq!(counter(&again, "check_bytes"), 0);
    assert_eq!(damaged(&again), damaged(&doc));
}

/// `pg_verifybackup DIR` (parsing the WAL with pg_waldump) when the
/// PostgreSQL tools are installed: (success, stderr).
fn pg_verifybackup_wal(dir: &Path) -> Option<(bool, String)> {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin/pg_verifybackup"))
        .find(|p| p.exists())?;
    let out = Command::new(bin).arg(dir).output().unwrap();
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn a_plain_pg_basebackup_with_wal_agrees_with_pg_verifybackup() {
    let env = Env::new();
    // The tar fixture unpacked as pg_basebackup -Fp -X stream lays it out.
    let (bt, oid) = tar_basebackup(&env, "tars");
    let seg = wal_segments(&bt.join("pg_wal.tar")).remove(0);
    let bp = env.root.join("pg/plain");
    let ts = bp.join(format!("pg_tblspc/{oid}"));
    std::fs::create_dir_all(bp.join("pg_wal")).unwrap();
    std::fs::create_dir_all(&ts).unwrap();
    let at = |a: &str| bt.join(a).to_str().unwrap().to_string();
    sh(&bp, "tar", &["xf", &at("base.tar")]);
    sh(&bp.join("pg_wal"), "tar", &["xf", &at("pg_wal.tar")]);
    sh(&ts, "tar", &["xf", &at(&format!("{oid}.tar"))]);
    std::fs::copy(bt.join("backup_manifest"), bp.join("backup_manifest")).unwrap();
    std::fs::remove_dir_all(&bt).unwrap();
    let root = env.root.to_str().unwrap().to_string();
    let (code, doc) = env.json(&["scan", &root, "--checks", "full"]);
    assert_eq!((code, counter(&doc, "damaged")), (0, 0), "{doc}");
    if let Some((ok, err)) = pg_verifybackup_wal(&bp) {
        assert!(ok, "{err}");
    }

    // A file slipped in, the WAL segment lost.
    env.write("pg/plain/base/1/99999", b"x");
    std::fs::rename(
        bp.join("pg_wal").join(&seg),
        bp.join("pg_wal").join(segment_before(&seg)),
    )
    .unwrap();
    let (code, doc) = env.json(&["scan", &root, "--checks", "fast"]);
    assert_eq!(code, 1, "{doc}");
    let found = damaged(&doc);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        found[0],
        ("pg/plain/backup_manifest".to_string(), found[0].1.clone())
    );
    assert!(
        found[0].1.starts_with(&format!(
            "pg_wal/ lacks WAL segment {seg} that restoring the backup needs"
        )),
        "{found:?}"
    );
    assert_eq!(
        found[1],
        (
            "pg/plain/base/1/99999".to_string(),
            "not listed in the backup's backup_manifest: the file was added to the backup after it was taken".to_string()
        )
    );
    // The peer fails on both: the extra file, and WAL it cannot read.
    if let Some((ok, err)) = pg_verifybackup_wal(&bp) {
        assert!(!ok);
        assert!(
            err.contains("\"base/1/99999\" is present on disk but not in the manifest"),
            "{err}"
        );
        assert!(
            err.contains(&seg) || err.contains("WAL parsing failed"),
            "{err}"
        );
    }
}
