//! Writes a real S3 Inventory report, as AWS lays it out in the
//! destination bucket, for tests:
//!
//! ```text
//! DEST/PREFIX/SRC-BUCKET/CONFIG-ID/YYYY-MM-DDTHH-MMZ/manifest.json
//!                                                   /manifest.checksum
//! DEST/PREFIX/SRC-BUCKET/CONFIG-ID/data/<uuid>.csv.gz
//! ```
//!
//! `manifest.json` lists each gzip CSV data file with its size and MD5;
//! `manifest.checksum` is the MD5 of `manifest.json`. Data files have no
//! header row, fields in `fileSchema` order, keys form-URL-encoded (space
//! as `+`). Discrepancies are injected by editing the object list before
//! writing (drop, add, change size or ETag, leave out new keys), and the
//! files can be tampered with afterwards. With `file_format = "Parquet"`
//! the data files are Snappy Parquet as S3 writes them (raw keys,
//! snake-case columns), written with the `parquet` crate's own writer.

use std::io::Write;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

/// One object as the inventory lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct InvObject {
    pub key: Vec<u8>,
    pub size: u64,
    /// Without quotes, as inventories write it.
    pub etag: String,
    /// Unix seconds.
    pub last_modified: i64,
    pub storage_class: String,
    pub multipart: bool,
}

impl InvObject {
    /// A single-part object holding `data`.
    pub fn of(key: &str, data: &[u8], last_modified: i64) -> InvObject {
        InvObject {
            key: key.as_bytes().to_vec(),
            size: data.len() as u64,
            etag: hex::encode(Md5::digest(data)),
            last_modified,
            storage_class: "STANDARD".into(),
            multipart: false,
        }
    }
}

/// What to write.
#[derive(Debug, Clone)]
pub struct Spec {
    pub source_bucket: String,
    pub destination_bucket: String,
    /// The inventory configuration's destination prefix.
    pub prefix: String,
    pub config_id: String,
    /// Unix seconds: creationTimestamp, and the dated folder's name.
    pub created: i64,
    pub objects: Vec<InvObject>,
    /// Rows per data file (several files exercise the manifest's list).
    pub rows_per_file: usize,
    /// Write a versioned ("all versions") inventory: each object gets an
    /// old version and a delete-marked sibling that must be skipped.
    pub versioned: bool,
    pub file_format: String,
}

impl Spec {
    pub fn new(source_bucket: &str, created: i64, objects: Vec<InvObject>) -> Spec {
        Spec {
            source_bucket: source_bucket.into(),
            destination_bucket: "inventory-dest".into(),
            prefix: "inv".into(),
            config_id: "daily".into(),
            created,
            objects,
            rows_per_file: 3,
            versioned: false,
            file_format: "CSV".into(),
        }
    }

    /// `PREFIX/SRC/CONFIG` — the folder `--inventory` may point at.
    pub fn config_key(&self) -> String {
        format!("{}/{}/{}", self.prefix, self.source_bucket, self.config_id)
    }

    /// The dated folder's name, `YYYY-MM-DDTHH-MMZ`.
    pub fn dated(&self) -> String {
        let t = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.created as u64),
        )
        .to_string();
        // 2026-03-01T02:22:00Z -> 2026-03-01T02-22Z
        format!("{}-{}Z", &t[..13], &t[14..16])
    }
}

/// Form-URL-encodes a key as S3 Inventory does (space as `+`).
pub fn encode_key(key: &[u8]) -> String {
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

fn time(t: i64) -> String {
    let s = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64),
    )
    .to_string();
    format!("{}.000Z", &s[..19])
}

fn gz(text: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text).unwrap();
    e.finish().unwrap()
}

/// The report's files: (key in the destination bucket, bytes).
pub fn render(spec: &Spec) -> Vec<(String, Vec<u8>)> {
    let schema = if spec.versioned {
        "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus, ChecksumAlgorithm"
    } else {
        "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus, ChecksumAlgorithm"
    };
    let row = |o: &InvObject, version: &str, latest: bool, marker: bool| -> String {
        let mut f: Vec<String> = vec![spec.source_bucket.clone(), encode_key(&o.key)];
        if spec.versioned {
            f.push(version.into());
            f.push(latest.to_string());
            f.push(marker.to_string());
        }
        if marker {
            f.extend([
                "".into(),
                time(o.last_modified),
                "".into(),
                "".into(),
                "".into(),
            ]);
        } else {
            f.extend([
                o.size.to_string(),
                time(o.last_modified),
                o.etag.clone(),
                o.storage_class.clone(),
                o.multipart.to_string(),
            ]);
        }
        f.extend(["".into(), "SSE-S3".into(), "".into()]);
        let quoted: Vec<String> = f.iter().map(|x| format!("\"{x}\"")).collect();
        format!("{}\n", quoted.join(","))
    };
    let mut lines = Vec::new();
    for (i, o) in spec.objects.iter().enumerate() {
        if spec.versioned {
            let mut old = o.clone();
            old.size += 1;
            lines.push(row(&old, &format!("old{i}"), false, false));
            lines.push(row(o, &format!("v{i}"), true, false));
            let mut gone = o.clone();
            gone.key.extend_from_slice(b".deleted");
            lines.push(row(&gone, &format!("dm{i}"), true, true));
        } else {
            lines.push(row(o, "", true, false));
        }
    }
    let per = spec.rows_per_file.max(1) * if spec.versioned { 3 } else { 1 };
    let parquet = spec.file_format == "Parquet";
    let schema = if parquet { PARQUET_SCHEMA } else { schema };
    let records = parquet_records(spec);
    let mut out = Vec::new();
    let mut files = Vec::new();
    for (n, chunk) in lines.chunks(per).enumerate() {
        let (data, key) = if parquet {
            (
                parquet_file(&records[n * per..(n * per + per).min(records.len())]),
                format!("{}/data/{n:04}-5c1a0d2e.parquet", spec.config_key()),
            )
        } else {
            (
                gz(chunk.concat().as_bytes()),
                format!("{}/data/{n:04}-5c1a0d2e.csv.gz", spec.config_key()),
            )
        };
        files.push(serde_json::json!({
            "key": key,
            "size": data.len(),
            "MD5checksum": hex::encode(Md5::digest(&data)),
        }));
        out.push((key, data));
    }
    let manifest = serde_json::json!({
        "sourceBucket": spec.source_bucket,
        "destinationBucket": format!("arn:aws:s3:::{}", spec.destination_bucket),
        "version": "2016-11-30",
        "creationTimestamp": (spec.created * 1000).to_string(),
        "fileFormat": spec.file_format,
        "fileSchema": schema,
        "files": files,
    });
    let manifest = serde_json::to_vec_pretty(&manifest).unwrap();
    let dated = format!("{}/{}", spec.config_key(), spec.dated());
    out.push((
        format!("{dated}/manifest.checksum"),
        format!("{}\n", hex::encode(Md5::digest(&manifest))).into_bytes(),
    ));
    out.push((format!("{dated}/manifest.json"), manifest));
    out
}

/// The `fileSchema` of a Parquet inventory, as S3 writes it (the column
/// names are the file's own).
const PARQUET_SCHEMA: &str = "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); optional binary version_id (UTF8); optional boolean is_latest; optional boolean is_delete_marker; optional int64 size; optional int64 last_modified_date (TIMESTAMP_MILLIS); optional binary e_tag (UTF8); optional binary storage_class (UTF8); optional boolean is_multipart_uploaded; optional binary encryption_status (UTF8); optional binary checksum_algorithm (UTF8); }";

/// One row of a Parquet inventory: (bucket, key, version, latest, marker,
/// object) — the object's fields are null for a delete marker.
type Record = (String, Vec<u8>, String, bool, bool, Option<InvObject>);

/// The rows of the report, in the order `render` writes the CSV lines.
fn parquet_records(spec: &Spec) -> Vec<Record> {
    let mut out = Vec::new();
    for (i, o) in spec.objects.iter().enumerate() {
        let b = spec.source_bucket.clone();
        if spec.versioned {
            let mut old = o.clone();
            old.size += 1;
            out.push((
                b.clone(),
                o.key.clone(),
                format!("old{i}"),
                false,
                false,
                Some(old),
            ));
            out.push((
                b.clone(),
                o.key.clone(),
                format!("v{i}"),
                true,
                false,
                Some(o.clone()),
            ));
            let mut gone = o.key.clone();
            gone.extend_from_slice(b".deleted");
            out.push((b, gone, format!("dm{i}"), true, true, None));
        } else {
            out.push((
                b,
                o.key.clone(),
                String::new(),
                true,
                false,
                Some(o.clone()),
            ));
        }
    }
    out
}

/// One Snappy-compressed Parquet data file of `rows`, written with the
/// `parquet` crate's own column writers (no arrow).
pub fn parquet_file(rows: &[Record]) -> Vec<u8> {
    use parquet::basic::Compression;
    use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;
    let schema = Arc::new(parquet::schema::parser::parse_message_type(PARQUET_SCHEMA).unwrap());
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let mut buf = Vec::new();
    let mut w = SerializedFileWriter::new(&mut buf, schema, props).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let bytes = |v: &[u8]| ByteArray::from(v.to_vec());
    let mut i = 0;
    while let Some(mut col) = rg.next_column().unwrap() {
        // Values of the present rows, and a definition level per row.
        let strings = |f: &dyn Fn(&Record) -> Option<Vec<u8>>| {
            let got: Vec<Option<Vec<u8>>> = rows.iter().map(f).collect();
            let levels: Vec<i16> = got.iter().map(|v| i16::from(v.is_some())).collect();
            let values: Vec<ByteArray> = got.iter().flatten().map(|v| bytes(v)).collect();
            (values, levels)
        };
        let obj = |r: &Record| r.5.clone();
        match i {
            0..=2 | 7 | 8 | 10 | 11 => {
                let (values, levels) = match i {
                    0 => strings(&|r| Some(r.0.clone().into_bytes())),
                    1 => strings(&|r| Some(r.1.clone())),
                    2 => strings(&|r| Some(r.2.clone().into_bytes())),
                    7 => strings(&|r| obj(r).map(|o| o.etag.into_bytes())),
                    8 => strings(&|r| obj(r).map(|o| o.storage_class.into_bytes())),
                    10 => strings(&|_| Some(b"SSE-S3".to_vec())),
                    _ => strings(&|_| None),
                };
                let required = i <= 1;
                col.typed::<ByteArrayType>()
                    .write_batch(&values, (!required).then_some(&levels[..]), None)
                    .unwrap();
            }
            3 | 4 | 9 => {
                let got: Vec<Option<bool>> = rows
                    .iter()
                    .map(|r| match i {
                        3 => Some(r.3),
                        4 => Some(r.4),
                        _ => obj(r).map(|o| o.multipart),
                    })
                    .collect();
                let levels: Vec<i16> = got.iter().map(|v| i16::from(v.is_some())).collect();
                let values: Vec<bool> = got.iter().flatten().copied().collect();
                col.typed::<BoolType>()
                    .write_batch(&values, Some(&levels), None)
                    .unwrap();
            }
            _ => {
                let got: Vec<Option<i64>> = rows
                    .iter()
                    .map(|r| {
                        obj(r).map(|o| {
                            if i == 5 {
                                o.size as i64
                            } else {
                                o.last_modified * 1000
                            }
                        })
                    })
                    .collect();
                let levels: Vec<i16> = got.iter().map(|v| i16::from(v.is_some())).collect();
                let values: Vec<i64> = got.iter().flatten().copied().collect();
                col.typed::<Int64Type>()
                    .write_batch(&values, Some(&levels), None)
                    .unwrap();
            }
        }
        col.close().unwrap();
        i += 1;
    }
    rg.close().unwrap();
    w.close().unwrap();
    buf
}

/// Writes the report under `bucket_dir` (a local copy of the destination
/// bucket). Returns the path of manifest.json.
pub fn write_dir(bucket_dir: &Path, spec: &Spec) -> PathBuf {
    let mut manifest = PathBuf::new();
    for (key, data) in render(spec) {
        let path = bucket_dir.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &data).unwrap();
        if key.ends_with("manifest.json") {
            manifest = path;
        }
    }
    manifest
}

/// Flips one byte in the middle of a file.
pub fn tamper(path: &Path) {
    let mut data = std::fs::read(path).unwrap();
    let i = data.len() / 2;
    data[i] ^= 0x20;
    std::fs::write(path, data).unwrap();
}

/// Uploads the report into `spec.destination_bucket` on a moto server
/// (the bucket must exist). Returns the `s3://` URL of the config folder.
pub fn put_moto(moto: &super::moto::MotoServer, spec: &Spec) -> String {
    let files = render(spec);
    let objects: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(k, d)| (k.as_str(), d.as_slice()))
        .collect();
    moto.put_objects(&spec.destination_bucket, &objects);
    format!("s3://{}/{}/", spec.destination_bucket, spec.config_key())
}

/// The objects of a moto bucket as an inventory would list them (the
/// server's own ETags, sizes and times), in key order.
pub fn objects_of(moto: &super::moto::MotoServer, bucket: &str) -> Vec<InvObject> {
    let out = moto.boto3(
        "import json\n\
         p = s3.get_paginator('list_objects_v2')\n\
         rows = []\n\
         for page in p.paginate(Bucket=args[0]):\n    \
             for o in page.get('Contents', []):\n        \
                 rows.append([o['Key'], o['Size'], o['ETag'].strip('\"'), int(o['LastModified'].timestamp())])\n\
         print(json.dumps(rows))",
        &[bucket],
        b"",
    );
    let rows: Vec<(String, u64, String, i64)> = serde_json::from_str(&out).unwrap();
    rows.into_iter()
        .map(|(key, size, etag, last_modified)| InvObject {
            multipart: etag.contains('-'),
            key: key.into_bytes(),
            size,
            etag,
            last_modified,
            storage_class: "STANDARD".into(),
        })
        .collect()
}
