//! S3 Inventory as the listing: reports written by the generator in
//! tests/support/inventory.rs, read back through the library.

use vouch::engine::inventory::Inventory;
use vouch::engine::remote::RemoteOptions;

use crate::support::inventory::{InvObject, Spec, tamper, write_dir};
use crate::support::inventory::{objects_of, put_moto};
use crate::support::moto::MotoServer;
use crate::*;

const CREATED: i64 = 1_772_331_720; // 2026-03-01T02:22:00Z

fn objects() -> Vec<InvObject> {
    vec![
        InvObject::of("photos/a b+c.jpg", b"hello", CREATED - 100),
        InvObject::of("photos/é/ü.txt", b"unicode", CREATED - 50),
        InvObject::of("odd/100%,\"quoted\"\nline", b"x", CREATED - 10),
        InvObject::of("top", b"", CREATED - 1),
    ]
}

fn read_all(inv: &Inventory) -> Vec<(Vec<u8>, u64, Option<String>)> {
    let mut rows = Vec::new();
    inv.for_each_row(|r| {
        rows.push((r.key.clone(), r.size, r.etag.clone()));
        Ok(())
    })
    .unwrap();
    rows
}

#[test]
fn inventory_rows_round_trip_from_the_newest_dated_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut old = Spec::new("src", CREATED - 86_400, objects()[..1].to_vec());
    old.rows_per_file = 1;
    write_dir(dir.path(), &old);
    let mut spec = Spec::new("src", CREATED, objects());
    spec.versioned = true;
    spec.rows_per_file = 1;
    let manifest = write_dir(dir.path(), &spec);
    let config = dir.path().join(spec.config_key());

    // The folder: the newest report is chosen.
    let inv = Inventory::open(config.to_str().unwrap(), &RemoteOptions::default()).unwrap();
    assert_eq!(inv.location, manifest.display().to_string());
    assert_eq!(inv.created(), CREATED);
    assert_eq!(inv.manifest.files.len(), 4);
    let rows = read_all(&inv);
    let want: Vec<_> = objects()
        .into_iter()
        .map(|o| (o.key, o.size, Some(format!("\"{}\"", o.etag))))
        .collect();
    assert_eq!(rows, want);
    // One manifest.json, by path or file:// URL.
    let url = format!("file://{}", manifest.display());
    let inv = Inventory::open(&url, &RemoteOptions::default()).unwrap();
    assert_eq!(read_all(&inv).len(), 4);
    assert_eq!(inv.to_json()["created"], "2026-03-01T02:22:00Z");
}

#[test]
fn a_tampered_manifest_or_data_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec::new("src", CREATED, objects());
    let manifest = write_dir(dir.path(), &spec);
    let path = manifest.to_str().unwrap();

    // A data file with one byte changed: refused before any row.
    let data = dir
        .path()
        .join(spec.config_key())
        .join("data/0001-5c1a0d2e.csv.gz");
    let good = std::fs::read(&data).unwrap();
    tamper(&data);
    let inv = Inventory::open(path, &RemoteOptions::default()).unwrap();
    let mut seen = 0;
    let e = inv
        .for_each_row(|_| {
            seen += 1;
            Ok(())
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not match the manifest"), "{e}");
    assert_eq!(seen, 3, "rows of the intact first file only");
    // Truncated: refused too.
    std::fs::write(&data, &good[..good.len() - 1]).unwrap();
    let e = Inventory::open(path, &RemoteOptions::default())
        .unwrap()
        .for_each_row(|_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not match the manifest"), "{e}");
    std::fs::write(&data, &good).unwrap();

    // The manifest edited (its checksum no longer matches).
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"src\"", "\"srd\"")).unwrap();
    let e = Inventory::open(path, &RemoteOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("does not match manifest.checksum"), "{e}");

    // No checksum at all.
    std::fs::write(&manifest, text).unwrap();
    std::fs::remove_file(manifest.with_file_name("manifest.checksum")).unwrap();
    let e = Inventory::open(path, &RemoteOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("manifest.checksum"), "{e}");
}

#[test]
fn orc_is_refused_clearly_and_parquet_reads_like_csv() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::new("src", CREATED, objects());
    spec.file_format = "ORC".into();
    let manifest = write_dir(dir.path(), &spec);
    let e = Inventory::open(manifest.to_str().unwrap(), &RemoteOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("is in ORC format")
            && e.contains("configure the inventory with output format CSV or Parquet"),
        "{e}"
    );
    // The same objects as Parquet (raw keys, snake-case columns, Snappy):
    // the same rows as the CSV report, versions and delete markers skipped.
    for versioned in [false, true] {
        let mut rows = Vec::new();
        for format in ["CSV", "Parquet"] {
            let dir = tempfile::tempdir().unwrap();
            let mut spec = Spec::new("src", CREATED, objects());
            spec.file_format = format.into();
            spec.versioned = versioned;
            let manifest = write_dir(dir.path(), &spec);
            let inv =
                Inventory::open(manifest.to_str().unwrap(), &RemoteOptions::default()).unwrap();
            let mut got = Vec::new();
            let stats = inv
                .for_each_row(|r| {
                    got.push((r.key.clone(), r.size, r.etag.clone(), r.last_modified));
                    Ok(())
                })
                .unwrap();
            assert_eq!(stats.rows, 4, "{format}");
            assert_eq!(stats.skipped, if versioned { 8 } else { 0 }, "{format}");
            rows.push(got);
            if format == "Parquet" {
                // A damaged Parquet file is refused by its MD5 first.
                let data = dir
                    .path()
                    .join(format!("{}/data/0000-5c1a0d2e.parquet", spec.config_key()));
                tamper(&data);
                let inv =
                    Inventory::open(manifest.to_str().unwrap(), &RemoteOptions::default()).unwrap();
                let e = inv.for_each_row(|_| Ok(())).unwrap_err().to_string();
                assert!(e.contains("does not match the manifest"), "{e}");
            }
        }
        assert_eq!(rows[0], rows[1]);
        assert_eq!(rows[1][0].0, b"photos/a b+c.jpg");
    }
}

// ---------------------------------------------------------------------------
// `vouch audit --inventory`: the built binary against moto.

/// Runs `vouch audit` against a moto bucket; returns (exit, document, stderr).
fn audit_moto(
    env: &Env,
    index: &std::path::Path,
    moto: &MotoServer,
    url: &str,
    args: &[&str],
) -> (i32, Value, String) {
    let out = env
        .vouch_at(index)
        .envs(moto.env())
        .arg("audit")
        .arg(&env.root)
        .args(["--remote", url, "--format", "json", "--retries", "1"])
        .args(args)
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    // A run refused before it starts (exit 2) prints nothing on stdout.
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        assert_eq!(code, 2, "audit {args:?}: {e}: stderr {}", stderr_of(&out));
        Value::Null
    });
    (code, doc, stderr_of(&out))
}

/// The counters both listings must agree on.
const SAME: [&str; 12] = [
    "missing",
    "extra",
    "size_mismatch",
    "corrupt",
    "unverified",
    "verified",
    "local_files",
    "local_bytes",
    "remote_objects",
    "remote_bytes",
    "held_files",
    "held_bytes",
];

#[test]
fn an_inventory_audit_equals_the_list_audit_and_judges_by_the_report_time() {
    let env = Env::new();
    let moto = MotoServer::start();
    moto.create_bucket("bkt");
    moto.create_bucket("inventory-dest");
    env.write("same.txt", b"same content");
    env.write("dir/with space+plus.txt", b"odd name");
    env.write("dir/é.txt", b"unicode name");
    env.write("only-local.txt", b"never uploaded");
    env.write("short.txt", b"the local copy is longer");
    env.write("other.txt", b"content A");
    moto.put_objects(
        "bkt",
        &[
            ("p/same.txt", b"same content"),
            ("p/dir/with space+plus.txt", b"odd name"),
            ("p/dir/é.txt", b"unicode name"),
            ("p/short.txt", b"truncated"),
            ("p/other.txt", b"content B"),
            ("p/only-remote.txt", b"extra"),
            ("elsewhere/x", b"not under the prefix"),
        ],
    );

    // The LIST audit, then the same bucket through its inventory.
    let list_index = env.dir.path().join("list.sqlite3");
    let (code, list, _) = audit_moto(&env, &list_index, &moto, "s3://bkt/p", &["--md5"]);
    assert_eq!(code, 1);
    // Taken after the files were written (their ctime is now, and a file
    // changed after the report is not judged by it).
    let spec =
        crate::support::inventory::Spec::new("bkt", now() + 3 * 3600, objects_of(&moto, "bkt"));
    let url = put_moto(&moto, &spec);
    let inv_index = env.dir.path().join("inv.sqlite3");
    let (code, inv, err) = audit_moto(
        &env,
        &inv_index,
        &moto,
        "s3://bkt/p",
        &["--md5", "--inventory", &url],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(findings(&inv), findings(&list));
    let not_added: Vec<_> = findings(&inv)
        .into_iter()
        .filter(|(k, _)| k != "added")
        .collect();
    assert_eq!(
        not_added,
        // other.txt has the size of its file and other content: the
        // quick audit's HEAD proves it different through its MD5 ETag.
        pairs(&[
            ("corrupt", "other.txt"),
            ("extra", "only-remote.txt"),
            ("low_coverage", ""),
            ("missing", "only-local.txt"),
            ("size_mismatch", "short.txt"),
        ])
    );
    for c in SAME {
        assert_eq!(counter(&inv, c), counter(&list, c), "{c}");
    }
    assert_eq!(counter(&inv, "verified"), 3);
    let listing = &inv["summary"]["listing"];
    assert_eq!(listing["source"], "inventory");
    assert!(
        listing["manifest"]
            .as_str()
            .unwrap()
            .ends_with("/manifest.json")
    );
    assert_eq!(listing["rows"], 7);
    assert_eq!(list["summary"]["listing"]["source"], "list");

    // An inventory of another bucket is refused.
    let other = crate::support::inventory::Spec::new("not-bkt", now(), Vec::new());
    let other_url = put_moto(&moto, &other);
    let (code, _, err) = audit_moto(
        &env,
        &inv_index,
        &moto,
        "s3://bkt/p",
        &["--inventory", &other_url],
    );
    assert_eq!(code, 2);
    assert!(err.contains("lists bucket not-bkt"), "{err}");

    // A data file replaced in the destination bucket: exit 2, no listing.
    let data_key = format!("{}/data/0001-5c1a0d2e.csv.gz", spec.config_key());
    moto.put_object("inventory-dest", &data_key, b"not the data file");
    let (code, doc, err) = audit_moto(
        &env,
        &inv_index,
        &moto,
        "s3://bkt/p",
        &["--inventory", &url],
    );
    assert_eq!(code, 2);
    assert!(err.contains("does not match the manifest"), "{err}");
    assert!(doc["error"].as_str().unwrap().contains("0001-5c1a0d2e"));
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn files_newer_than_the_inventory_are_unverified_and_archives_are_not_read() {
    let env = Env::new();
    let moto = MotoServer::start();
    moto.create_bucket("bkt");
    // Old files, as the report saw them. The report is taken at the next
    // whole second after they were written (their ctime is before it,
    // whatever the fraction of the second they were written in), and
    // --inventory-grace is 0.
    env.write("old.txt", b"old and listed");
    env.write("gone.txt", b"old, not listed");
    env.write("cold.bin", b"in deep archive");
    env.write("changed.txt", b"before");
    let created = now() + 1;
    // Files written or changed after the report: not judged by it.
    std::thread::sleep(std::time::Duration::from_millis(3100));
    std::fs::write(env.root.join("new.txt"), b"created after the report").unwrap();
    std::fs::write(env.root.join("changed.txt"), b"rewritten after the report").unwrap();
    let mut cold = InvObject::of("p/cold.bin", b"in deep archive", created - 10);
    cold.storage_class = "DEEP_ARCHIVE".into();
    cold.etag = "0123456789abcdef0123456789abcdef-2".into();
    let spec = Spec::new(
        "bkt",
        created,
        vec![
            InvObject::of("p/old.txt", b"old and listed", created - 100),
            InvObject::of("p/changed.txt", b"before", created - 1),
            cold,
        ],
    );
    // A deep run reads what it verifies (an MD5 ETag match is no read):
    // the one object it judges must be there to read.
    moto.put_object("bkt", "p/old.txt", b"old and listed");
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_dir(dir.path(), &spec);
    let index = env.dir.path().join("i.sqlite3");
    let inv = manifest.to_str().unwrap();
    let (code, doc, err) = audit_moto(
        &env,
        &index,
        &moto,
        "s3://bkt/p",
        &[
            "--md5",
            "--inventory",
            inv,
            "--inventory-grace",
            "0s",
            "--mode",
            "deep",
            "--max-age",
            "1s",
            // Files written after the report count as not held (a known
            // limit): coverage is not what this test is about.
            "--min-coverage",
            "0",
        ],
    );
    assert_eq!(code, 1, "{err}");
    let not_added: Vec<_> = findings(&doc)
        .into_iter()
        .filter(|(k, _)| k != "added")
        .collect();
    assert_eq!(
        not_added,
        pairs(&[
            ("missing", "gone.txt"),
            ("stale", ""), // the newest object
            ("stale", ""), // the inventory itself
            ("unverified", "changed.txt"),
            ("unverified", "cold.bin"),
            ("unverified", "new.txt"),
        ])
    );
    let detail = |path: &str| -> String {
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["path"] == path && f["kind"] != "added")
            .map(|f| f["detail"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    assert!(detail("new.txt").contains("after the inventory report was taken"));
    assert!(detail("cold.bin").contains("archived in DEEP_ARCHIVE: not read"));
    assert!(
        detail("").contains("the inventory report is") && detail("").contains("over --max-age 1s"),
        "{}",
        detail("")
    );
    assert_eq!(counter(&doc, "archived_not_read"), 1);
    assert_eq!(
        counter(&doc, "objects_read"),
        1,
        "old.txt read (a deep run reads), cold.bin never"
    );
    assert_eq!(counter(&doc, "verified"), 1);
    let age = doc["summary"]["listing"]["age_s"].as_i64().unwrap();
    assert!((2..600).contains(&age), "{age}");

    // A manifest that no longer matches its checksum: exit 2.
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("bkt", "bku")).unwrap();
    let (code, _, err) = audit_moto(&env, &index, &moto, "s3://bkt/p", &["--inventory", inv]);
    assert_eq!(code, 2);
    assert!(err.contains("does not match manifest.checksum"), "{err}");
}
