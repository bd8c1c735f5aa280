//! S3 Inventory as the listing: reports written by the generator in
//! tests/support/inventory.rs, read back through the library.

use vouch::inventory::Inventory;
use vouch::remote::RemoteOptions;

use crate::support::inventory::{InvObject, Spec, tamper, write_dir};

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
fn orc_and_parquet_inventories_are_refused_clearly() {
    for format in ["ORC", "Parquet"] {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = Spec::new("src", CREATED, objects());
        spec.file_format = format.into();
        let manifest = write_dir(dir.path(), &spec);
        let e = Inventory::open(manifest.to_str().unwrap(), &RemoteOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains(&format!("is in {format} format"))
                && e.contains("configure the inventory with output format CSV"),
            "{e}"
        );
    }
}
