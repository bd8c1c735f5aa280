//! An S3 Inventory `manifest.json`: what the report covers, when it was
//! taken, which columns its data files hold, and the MD5 of each one.
//!
//! Nothing in it is trusted before its own MD5 (the `manifest.checksum`
//! file next to it) matches: a truncated or edited manifest would silently
//! drop whole data files from the listing, and every object in them would
//! read as `missing` — or worse, a forged one could list objects that are
//! gone.

use anyhow::{Context, Result, anyhow, bail};
use md5::{Digest, Md5};
use serde::Deserialize;

/// The inventory's output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    Orc,
    Parquet,
}

/// A column of the data files, as `fileSchema` names it. Columns vouch
/// does not use are `Other` and skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Bucket,
    Key,
    VersionId,
    IsLatest,
    IsDeleteMarker,
    Size,
    LastModifiedDate,
    ETag,
    StorageClass,
    IsMultipartUploaded,
    ChecksumAlgorithm,
    Other,
}

impl Column {
    fn from_name(name: &str) -> Column {
        match name {
            "Bucket" => Column::Bucket,
            "Key" => Column::Key,
            "VersionId" => Column::VersionId,
            "IsLatest" => Column::IsLatest,
            "IsDeleteMarker" => Column::IsDeleteMarker,
            "Size" => Column::Size,
            "LastModifiedDate" => Column::LastModifiedDate,
            "ETag" => Column::ETag,
            "StorageClass" => Column::StorageClass,
            "IsMultipartUploaded" => Column::IsMultipartUploaded,
            "ChecksumAlgorithm" => Column::ChecksumAlgorithm,
            _ => Column::Other,
        }
    }
}

/// One data file the manifest lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// Its key in the destination bucket.
    pub key: String,
    pub size: u64,
    pub md5: [u8; 16],
}

/// A verified manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub source_bucket: String,
    /// The destination bucket's name (from its ARN).
    pub destination_bucket: String,
    /// Unix milliseconds when the report was begun.
    pub creation_ms: i64,
    pub format: FileFormat,
    pub columns: Vec<Column>,
    pub files: Vec<DataFile>,
    /// MD5 of manifest.json itself: the identity of this snapshot.
    pub md5: [u8; 16],
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    source_bucket: String,
    #[serde(default)]
    destination_bucket: String,
    creation_timestamp: String,
    file_format: String,
    #[serde(default)]
    file_schema: String,
    files: Vec<RawFile>,
}

#[derive(Deserialize)]
struct RawFile {
    key: String,
    size: u64,
    #[serde(rename = "MD5checksum")]
    md5: String,
}

fn md5_hex(text: &str, what: &str) -> Result<[u8; 16]> {
    let mut out = [0u8; 16];
    hex::decode_to_slice(text.trim(), &mut out)
        .map_err(|_| anyhow!("{what}: {:?} is not an MD5 in hex", text.trim()))?;
    Ok(out)
}

impl Manifest {
    /// Parses `manifest.json` after checking it against the contents of
    /// `manifest.checksum` (its MD5 in hex). `name` names it in errors.
    pub fn parse(json: &[u8], checksum: &[u8], name: &str) -> Result<Manifest> {
        let want = md5_hex(
            std::str::from_utf8(checksum).unwrap_or_default(),
            &format!("{name}: manifest.checksum"),
        )?;
        let got: [u8; 16] = Md5::digest(json).into();
        if got != want {
            bail!(
                "{name}: manifest.json does not match manifest.checksum (MD5 {} ≠ {}): refusing a damaged or edited inventory",
                hex::encode(got),
                hex::encode(want)
            );
        }
        let raw: Raw = serde_json::from_slice(json)
            .with_context(|| format!("{name}: not an S3 Inventory manifest"))?;
        let format = match raw.file_format.to_ascii_lowercase().as_str() {
            "csv" => FileFormat::Csv,
            "orc" => FileFormat::Orc,
            "parquet" => FileFormat::Parquet,
            other => bail!("{name}: unknown inventory fileFormat {other:?}"),
        };
        let columns: Vec<Column> = raw
            .file_schema
            .split(',')
            .map(|c| Column::from_name(c.trim()))
            .collect();
        if format == FileFormat::Csv {
            for need in [Column::Key, Column::Size] {
                if !columns.contains(&need) {
                    bail!(
                        "{name}: the inventory's fileSchema has no {need:?} column; configure the inventory with the Size field"
                    );
                }
            }
        }
        let creation_ms: i64 = raw.creation_timestamp.trim().parse().map_err(|_| {
            anyhow!(
                "{name}: creationTimestamp {:?} is not a number",
                raw.creation_timestamp
            )
        })?;
        let destination_bucket = raw
            .destination_bucket
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_string();
        let files = raw
            .files
            .into_iter()
            .map(|f| {
                Ok(DataFile {
                    md5: md5_hex(&f.md5, &format!("{name}: MD5checksum of {}", f.key))?,
                    key: f.key,
                    size: f.size,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Manifest {
            source_bucket: raw.source_bucket,
            destination_bucket,
            creation_ms,
            format,
            columns,
            files,
            md5: got,
        })
    }

    /// Unix seconds when the report was begun.
    pub fn created(&self) -> i64 {
        self.creation_ms.div_euclid(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        br#"{
  "sourceBucket" : "src",
  "destinationBucket" : "arn:aws:s3:::dest",
  "version" : "2016-11-30",
  "creationTimestamp" : "1764547200000",
  "fileFormat" : "CSV",
  "fileSchema" : "Bucket, Key, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus, ChecksumAlgorithm",
  "files" : [ {
    "key" : "inv/src/cfg/data/a.csv.gz",
    "size" : 123,
    "MD5checksum" : "00112233445566778899aabbccddeeff"
  } ]
}"#
        .to_vec()
    }

    fn checksum(json: &[u8]) -> Vec<u8> {
        format!("{}\n", hex::encode(Md5::digest(json))).into_bytes()
    }

    #[test]
    fn parses_a_verified_manifest() {
        let json = sample();
        let m = Manifest::parse(&json, &checksum(&json), "m").unwrap();
        assert_eq!(m.source_bucket, "src");
        assert_eq!(m.destination_bucket, "dest");
        assert_eq!(m.created(), 1_764_547_200);
        assert_eq!(m.format, FileFormat::Csv);
        assert_eq!(
            &m.columns[..4],
            &[
                Column::Bucket,
                Column::Key,
                Column::Size,
                Column::LastModifiedDate
            ]
        );
        assert_eq!(m.columns[7], Column::Other);
        assert_eq!(m.files[0].size, 123);
        assert_eq!(m.files[0].md5[0], 0);
        assert_eq!(m.files[0].md5[15], 0xff);
    }

    #[test]
    fn refuses_a_manifest_that_does_not_match_its_checksum() {
        let json = sample();
        let sum = checksum(&json);
        let mut edited = json.clone();
        let at = edited.windows(3).position(|w| w == b"123").unwrap();
        edited[at] = b'9';
        let e = Manifest::parse(&edited, &sum, "m").unwrap_err().to_string();
        assert!(e.contains("does not match manifest.checksum"), "{e}");
        let e = Manifest::parse(&json, b"nothex", "m")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an MD5"), "{e}");
    }

    #[test]
    fn a_schema_without_size_is_refused() {
        let json = String::from_utf8(sample())
            .unwrap()
            .replace("Key, Size,", "Key,")
            .into_bytes();
        let e = Manifest::parse(&json, &checksum(&json), "m")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no Size column"), "{e}");
    }
}
