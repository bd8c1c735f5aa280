//! Synthetic S3 Inventory reports for `scripts/bench scale`, and the
//! parsing benchmark.
//!
//! ```text
//! cargo run --release --example inventory -- gen DIR ROWS [BUCKET] [ROWS_PER_FILE]
//! cargo run --release --example inventory -- tree ROOT DIR BUCKET PREFIX
//! cargo run --release --example inventory -- parse MANIFEST_OR_FOLDER [SHARDS]
//! ```
//!
//! `gen` writes a real report (manifest.json, manifest.checksum, gzip CSV
//! data files, form-URL-encoded keys, the full default column set) into
//! DIR as a copy of the destination bucket, with keys
//! `d{i % 1000}/f{i}.bin` of 1 KiB each; it prints the path of
//! manifest.json. `tree` writes the report of a bucket holding the local
//! tree ROOT under PREFIX (real MD5 ETags). `parse` reads a report through vouch's reader (MD5
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
            let etag = format!(
                "{:032x}",
                (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c)
            );
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
        Some("parse") if args.len() >= 2 => parse(
            &args[1],
            args.get(2).map_or(1, |s| s.parse().expect("SHARDS")),
        ),
        _ => {
            eprintln!(
                "usage: inventory generate DIR ROWS [BUCKET] [ROWS_PER_FILE] | tree ROOT DIR BUCKET PREFIX | parse MANIFEST [SHARDS]"
            );
            std::process::exit(2);
        }
    }
}
