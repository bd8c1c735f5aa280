//! The rows of one S3 Inventory Parquet data file (cargo feature
//! `parquet`, on by default).
//!
//! Inventories of large buckets are often configured as Parquet (Athena
//! reads it best); asking users to add a CSV configuration for vouch
//! doubles their inventory bill. The `parquet` crate is used without
//! arrow and with Snappy only (the codec S3 Inventory writes): its record
//! API reads only the columns vouch uses, by the names S3 gives them
//! (`key`, `size`, `e_tag`, …, snake case). Unlike CSV, Parquet keys
//! are not URL-encoded, and `last_modified_date` is a timestamp.

use std::fs::File;

use anyhow::{Result, anyhow, bail};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::Type;

use super::manifest::Column;
use super::rows::Row;

/// The column a Parquet inventory field is, by its name.
fn column(name: &str) -> Column {
    match name {
        "key" => Column::Key,
        "version_id" => Column::VersionId,
        "is_latest" => Column::IsLatest,
        "is_delete_marker" => Column::IsDeleteMarker,
        "size" => Column::Size,
        "last_modified_date" => Column::LastModifiedDate,
        "e_tag" => Column::ETag,
        "storage_class" => Column::StorageClass,
        "is_multipart_uploaded" => Column::IsMultipartUploaded,
        "checksum_algorithm" => Column::ChecksumAlgorithm,
        _ => Column::Other,
    }
}

fn text(f: &Field) -> Option<&[u8]> {
    match f {
        Field::Str(s) => Some(s.as_bytes()),
        Field::Bytes(b) => Some(b.data()),
        _ => None,
    }
}

fn boolean(f: &Field, what: &str) -> Result<Option<bool>> {
    match f {
        Field::Null => Ok(None),
        Field::Bool(b) => Ok(Some(*b)),
        other => bail!("{what} {other} is not true or false"),
    }
}

/// Reads every row of a verified Parquet data file into `row`, calling
/// `f` for each current object. Returns (objects, skipped versions).
pub fn for_each_row(
    file: File,
    name: &str,
    row: &mut Row,
    f: &mut dyn FnMut(&Row) -> Result<()>,
) -> Result<(u64, u64)> {
    let bad = |e: &dyn std::fmt::Display| {
        anyhow!("inventory data file {name}: {e} (damaged, or not Parquet)")
    };
    let reader = SerializedFileReader::new(file).map_err(|e| bad(&e))?;
    let schema = reader.metadata().file_metadata().schema();
    // Only the columns vouch reads are decoded.
    let fields: Vec<_> = schema
        .get_fields()
        .iter()
        .filter(|t| column(t.name()) != Column::Other)
        .cloned()
        .collect();
    let columns: Vec<Column> = fields.iter().map(|t| column(t.name())).collect();
    for need in [Column::Key, Column::Size] {
        if !columns.contains(&need) {
            bail!(
                "inventory data file {name}: no {} column; configure the inventory with the Size field",
                if need == Column::Key { "key" } else { "size" }
            );
        }
    }
    let projection = Type::group_type_builder(schema.name())
        .with_fields(fields)
        .build()
        .map_err(|e| bad(&e))?;
    let (mut kept, mut skipped) = (0u64, 0u64);
    for (n, record) in reader
        .get_row_iter(Some(projection))
        .map_err(|e| bad(&e))?
        .enumerate()
    {
        let record = record.map_err(|e| bad(&e))?;
        let at = |e: anyhow::Error| anyhow!("inventory data file {name} row {}: {e}", n + 1);
        row.key.clear();
        row.etag = None;
        row.version = None;
        row.is_multipart = None;
        row.storage_class = None;
        row.checksum_algorithm = None;
        row.last_modified = 0;
        let mut size = None;
        let (mut latest, mut marker) = (true, false);
        for ((_, field), col) in record.get_column_iter().zip(&columns) {
            if matches!(field, Field::Null) {
                continue;
            }
            match col {
                Column::Key => row.key.extend_from_slice(
                    text(field).ok_or_else(|| at(anyhow!("key {field} is not text")))?,
                ),
                Column::Size => {
                    size = Some(
                        match field {
                            Field::Long(v) => u64::try_from(*v).ok(),
                            Field::Int(v) => u64::try_from(*v).ok(),
                            Field::ULong(v) => Some(*v),
                            _ => None,
                        }
                        .ok_or_else(|| at(anyhow!("size {field} is not a number")))?,
                    );
                }
                Column::ETag => {
                    let t = text(field).ok_or_else(|| at(anyhow!("e_tag is not text")))?;
                    let t = String::from_utf8_lossy(t);
                    row.etag = Some(format!("\"{}\"", t.trim_matches('"')));
                }
                Column::VersionId => {
                    row.version = text(field).map(|t| String::from_utf8_lossy(t).into_owned());
                }
                Column::LastModifiedDate => {
                    row.last_modified = match field {
                        Field::TimestampMillis(ms) => ms.div_euclid(1000),
                        Field::TimestampMicros(us) => us.div_euclid(1_000_000),
                        Field::Long(ms) => ms.div_euclid(1000),
                        other => {
                            return Err(at(anyhow!("last_modified_date {other} is not a time")));
                        }
                    };
                }
                Column::IsMultipartUploaded => {
                    row.is_multipart = boolean(field, "is_multipart_uploaded").map_err(at)?;
                }
                Column::IsLatest => {
                    latest = boolean(field, "is_latest").map_err(at)?.unwrap_or(true);
                }
                Column::IsDeleteMarker => {
                    marker = boolean(field, "is_delete_marker")
                        .map_err(at)?
                        .unwrap_or(false);
                }
                Column::StorageClass => {
                    row.storage_class =
                        text(field).map(|t| String::from_utf8_lossy(t).into_owned());
                }
                Column::ChecksumAlgorithm => {
                    row.checksum_algorithm =
                        text(field).map(|t| String::from_utf8_lossy(t).into_owned());
                }
                _ => {}
            }
        }
        if marker || !latest {
            skipped += 1;
            continue;
        }
        if row.key.is_empty() {
            return Err(at(anyhow!("an object without a key")));
        }
        row.size = size.ok_or_else(|| at(anyhow!("an object without a size")))?;
        kept += 1;
        f(row)?;
    }
    Ok((kept, skipped))
}
