//! Synthetic S3 Inventory reports for `scripts/bench scale`, and the
//! parsing benchmark.
//!
//! ```text
//! cargo run --release --example inventory -- gen DIR ROWS [BUCKET] [ROWS_PER_FILE]
//! cargo run --release --example inventory -- tree ROOT DIR BUCKET PREFIX
//! cargo run --release --example inventory -- index INDEX ROOT ROWS K N
//! cargo run --release --example inventory -- parse MANIFEST_OR_FOLDER [SHARDS]
//! ```
//!
//! `gen` writes a real report (manifest.json, manifest.checksum, gzip CSV
//! data files, form-URL-encoded keys, the full default column set) into
//! DIR as a copy of the destination bucket, with keys
//! `d{i % 1000}/f{i}.bin` of 1 KiB each; it prints the path of
//! manifest.json. `tree` writes the report of a bucket holding the local
//! tree ROOT under PREFIX (real MD5 ETags). `index` writes into INDEX the
//! manifest a `vouch scan ROOT --md5 --shard K/N` of the tree that `gen`
//! lists would have recorded — without the tree: ROOT (an existing, empty
//! directory) and its 1000 folders, then shard K's files in key order, each
//! 1 KiB with the MD5 its object's ETag names, through the index's own
//! write API (one scan run, its summary naming the shard) — so that
//! `vouch audit ROOT --no-scan --inventory … --shard K/N` audits ROWS keys
//! without a 10M-file tree. Its BLAKE3 hashes are stand-ins (no bytes
//! exist; a quick audit proves the files by MD5 ETag) and the run's Merkle
//! root is a stand-in too (an audit does not read it). `parse` reads a report through vouch's reader (MD5
//! checks included) and prints rows, seconds, rows/s and CPU seconds; with
//! SHARDS it also counts the keys per shard.

use std::io::Write;
use std::time::Instant;

use md5::{Digest, Md5};

fn cpu_seconds() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// The ETag (and so the file's MD5) `generate` gives key number `i`.
fn etag_of(i: u64) -> u128 {
    (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c)
}

fn generate(dir: &str, rows: u64, bucket: &str, per_file: u64) {
    let config = format!("inv/{bucket}/daily");
    let data_dir = std::path::Path::new(dir).join(&config).join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let mut files = Vec::new();
    let mut i = 0u64;
    let mut n = 0;
    while i < rows {
        let key = format!("{config}/data/{n:05}-bench.csv.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let end = (i + per_file).min(rows);
        let mut line = String::with_capacity(256);
        while i < end {
            line.clear();
            use std::fmt::Write as _;
            let etag = format!("{:032x}", etag_of(i));
            writeln!(
                line,
                "\"{bucket}\",\"d{}/f{i}.bin\",\"1024\",\"2026-02-{:02}T{:02}:{:02}:00.000Z\",\"{etag}\",\"STANDARD\",\"false\",\"\",\"SSE-S3\",\"\"",
                i % 1000,
                1 + i % 28,
                i % 24,
                i % 60
            )
            .unwrap();
            gz.write_all(line.as_bytes()).unwrap();
            i += 1;
        }
        let data = gz.finish().unwrap();
        std::fs::write(std::path::Path::new(dir).join(&key), &data).unwrap();
        files.push(serde_json::json!({
            "key": key, "size": data.len(), "MD5checksum": hex::encode(Md5::digest(&data)),
        }));
        n += 1;
    }
    write_manifest(dir, &config, bucket, files);
}

/// manifest.json and manifest.checksum of a report taken 2026-03-01T02:22Z;
/// prints the path of manifest.json.
fn write_manifest(dir: &str, config: &str, bucket: &str, files: Vec<serde_json::Value>) {
    let created: u64 = 1_772_331_720_000;
    let manifest = serde_json::json!({
        "sourceBucket": bucket,
        "destinationBucket": "arn:aws:s3:::inventory-dest",
        "version": "2016-11-30",
        "creationTimestamp": created.to_string(),
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus, ChecksumAlgorithm",
        "files": files,
    });
    let manifest = serde_json::to_vec_pretty(&manifest).unwrap();
    let dated = std::path::Path::new(dir)
        .join(config)
        .join("2026-03-01T02-22Z");
    std::fs::create_dir_all(&dated).unwrap();
    std::fs::write(
        dated.join("manifest.checksum"),
        format!("{}\n", hex::encode(Md5::digest(&manifest))),
    )
    .unwrap();
    std::fs::write(dated.join("manifest.json"), &manifest).unwrap();
    println!("{}", dated.join("manifest.json").display());
}

/// Form-URL-encodes a key as S3 Inventory does (space as `+`).
fn encode_key(key: &[u8]) -> String {
    let mut s = String::new();
    for &b in key {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                s.push(b as char)
            }
            b' ' => s.push('+'),
            _ => s.push_str(&format!("%{b:02X}")),
        }
    }
    s
}

/// An inventory of a local tree as a bucket `BUCKET` holding it under
/// `PREFIX/` (real MD5 ETags, so a quick audit with --md5 verifies).
fn tree(root: &str, dir: &str, bucket: &str, prefix: &str) {
    use std::os::unix::ffi::OsStrExt;
    let config = format!("inv/{bucket}/daily");
    let data_dir = std::path::Path::new(dir).join(&config).join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut n = 0u64;
    for e in walkdir::WalkDir::new(root).sort_by_file_name() {
        let e = e.unwrap();
        if !e.file_type().is_file() {
            continue;
        }
        let rel = e.path().strip_prefix(root).unwrap();
        let mut key = if prefix.is_empty() {
            Vec::new()
        } else {
            format!("{prefix}/").into_bytes()
        };
        key.extend_from_slice(rel.as_os_str().as_bytes());
        let data = std::fs::read(e.path()).unwrap();
        writeln!(
            gz,
            "\"{bucket}\",\"{}\",\"{}\",\"2026-02-01T00:00:00.000Z\",\"{}\",\"STANDARD\",\"false\",\"\",\"SSE-S3\",\"\"",
            encode_key(&key),
            data.len(),
            hex::encode(Md5::digest(&data))
        )
        .unwrap();
        n += 1;
    }
    let data = gz.finish().unwrap();
    let key = format!("{config}/data/00000-tree.csv.gz");
    std::fs::write(std::path::Path::new(dir).join(&key), &data).unwrap();
    write_manifest(
        dir,
        &config,
        bucket,
        vec![serde_json::json!({
            "key": key, "size": data.len(), "MD5checksum": hex::encode(Md5::digest(&data)),
        })],
    );
    eprintln!("{n} objects");
}

/// The index of shard `k` of `n` of the tree `generate` lists (see the
/// module docs); prints the files and dirs written.
fn index(index_path: &str, root: &str, rows: u64, k: u64, n: u64) {
    use vouch::model::{EntryKind, NewEntry, Stat};
    let shard = vouch::engine::shard::Shard::parse(&format!("{k}/{n}"), || unreachable!())
        .unwrap_or_else(|e| {
            eprintln!("{e:#}");
            std::process::exit(2)
        });
    let root = std::fs::canonicalize(root).expect("ROOT must exist");
    let mut idx =
        vouch::store::Index::open(std::path::Path::new(index_path), vouch::store::LockWait::No)
            .unwrap();
    let root_id = idx.root_id(&root).unwrap();
    let run_id = idx.begin_run(Some(root_id), "scan", None, None).unwrap();
    // Older than the report (2026-03-01T02:22Z) by more than the grace.
    let mtime_ns = 1_768_435_200_000_000_000i64; // 2026-01-15T00:00Z
    let stat = |size: u64, inode: u64| Stat {
        size,
        mtime_ns,
        ctime_ns: mtime_ns,
        inode,
    };
    let entry = |path: Vec<u8>, kind: EntryKind, stat: Stat| NewEntry {
        path,
        kind,
        stat,
        blake3: None,
        md5: None,
        sha256: None,
        target: None,
        trusted_blake3: None,
        crc64nvme: None,
    };
    // The walk's order: folder names sorted bytewise, each folder right
    // before its files, these sorted bytewise too.
    let dirs_of = rows.min(1000);
    let mut dirs: Vec<u64> = (0..dirs_of).collect();
    dirs.sort_by_key(|d| format!("d{d}"));
    let (mut files, mut inode) = (0u64, 1u64);
    let mut batch = idx.batch().unwrap();
    batch
        .insert_entry(
            root_id,
            run_id,
            &entry(Vec::new(), EntryKind::Dir, stat(0, inode)),
        )
        .unwrap();
    for d in dirs {
        inode += 1;
        let dir = format!("d{d}");
        batch
            .insert_entry(
                root_id,
                run_id,
                &entry(dir.clone().into_bytes(), EntryKind::Dir, stat(0, inode)),
            )
            .unwrap();
        let mut names: Vec<(String, u64)> = (d..rows)
            .step_by(1000)
            .map(|i| (format!("f{i}.bin"), i))
            .collect();
        names.sort();
        for (name, i) in names {
            let slash = format!("{dir}/{name}");
            if !shard.owns(slash.as_bytes()) {
                continue;
            }
            let mut e = entry(
                vouch::model::paths::key_from_slash(slash.as_bytes()),
                EntryKind::File,
                stat(1024, rows + i),
            );
            e.blake3 = Some(*blake3::hash(slash.as_bytes()).as_bytes());
            e.md5 = Some(etag_of(i).to_be_bytes());
            // A scan keeps the CRC64NVME it computed in the row: 8 bytes
            // of the index per key, as a real one has.
            e.crc64nvme = Some(i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
            batch.insert_entry(root_id, run_id, &e).unwrap();
            files += 1;
        }
    }
    batch.commit().unwrap();
    let summary = vouch::engine::scan::ScanSummary {
        run_id,
        root_id,
        added: files,
        files,
        dirs: dirs_of + 1,
        shard: Some(shard),
        merkle_root: *blake3::hash(b"stand-in: no tree").as_bytes(),
        ..Default::default()
    };
    let json = serde_json::Value::Object(summary.to_json(&root)).to_string();
    idx.finish_run(run_id, "ok", Some(0), Some(&summary.merkle_root), &json)
        .unwrap();
    println!("files {files} dirs {}", dirs_of + 1);
}

fn parse(url: &str, shards: u64) {
    let started = Instant::now();
    let cpu0 = cpu_seconds();
    let inv =
        vouch::engine::inventory::Inventory::open(url, &Default::default()).unwrap_or_else(|e| {
            eprintln!("{e:#}");
            std::process::exit(2)
        });
    let mut per = vec![0u64; shards.max(1) as usize];
    let mut bytes = 0u64;
    let stats = inv
        .for_each_row(|r| {
            bytes += r.size;
            if shards > 1 {
                per[(vouch::engine::shard::key_hash(&r.key) % shards) as usize] += 1;
            }
            Ok(())
        })
        .unwrap_or_else(|e| {
            eprintln!("{e:#}");
            std::process::exit(2)
        });
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "rows {} files {} gz_bytes {} object_bytes {bytes} seconds {secs:.2} rows_per_s {:.0} cpu_s {cpu:.2} rows_per_cpu_s {:.0}",
        stats.rows,
        stats.files,
        stats.bytes,
        stats.rows as f64 / secs,
        stats.rows as f64 / cpu
    );
    if shards > 1 {
        let mean = stats.rows as f64 / shards as f64;
        let worst = per
            .iter()
            .map(|&c| (c as f64 - mean).abs() / mean)
            .fold(0.0, f64::max);
        println!(
            "keys per shard (hash {}, N={shards}): {per:?}, worst deviation from the mean {:.3}%",
            vouch::engine::shard::HASH_NAME,
            worst * 100.0
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("generate") if args.len() >= 3 => generate(
            &args[1],
            args[2].parse().expect("ROWS"),
            args.get(3).map_or("bench-bucket", String::as_str),
            args.get(4)
                .map_or(1_000_000, |s| s.parse().expect("ROWS_PER_FILE")),
        ),
        Some("tree") if args.len() >= 5 => tree(&args[1], &args[2], &args[3], &args[4]),
        Some("index") if args.len() >= 6 => index(
            &args[1],
            &args[2],
            args[3].parse().expect("ROWS"),
            args[4].parse().expect("K"),
            args[5].parse().expect("N"),
        ),
        Some("parse") if args.len() >= 2 => parse(
            &args[1],
            args.get(2).map_or(1, |s| s.parse().expect("SHARDS")),
        ),
        _ => {
            eprintln!(
                "usage: inventory generate DIR ROWS [BUCKET] [ROWS_PER_FILE] | tree ROOT DIR BUCKET PREFIX | index INDEX ROOT ROWS K N | parse MANIFEST [SHARDS]"
            );
            std::process::exit(2);
        }
    }
}
