//! The rows of one S3 Inventory CSV data file, streamed.
//!
//! A data file is gzip-compressed CSV with no header row; its columns are
//! in the order the manifest's `fileSchema` names them, and the key is
//! URL-encoded the way HTML forms are (`%XX` escapes, a space as `+`).
//! Rows are decoded into one reused [`Row`], so reading costs no
//! allocation per object: a listing of 100M objects is read at well over
//! a million rows a second per core (see `scripts/bench inventory`).
//!
//! A versioned inventory ("all versions") lists every version: only the
//! current version of an object that is not a delete marker is an object
//! of the listing.

use std::io::Read;

use anyhow::{Result, anyhow, bail};

use super::manifest::Column;

/// One object of the inventory. Fields the schema lacks are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    /// The full object key in the source bucket (URL-decoded bytes).
    pub key: Vec<u8>,
    pub size: u64,
    /// Quoted, as a listing gives it (`"…"`).
    pub etag: Option<String>,
    pub version: Option<String>,
    /// Unix seconds.
    pub last_modified: i64,
    pub is_multipart: Option<bool>,
    pub storage_class: Option<String>,
    pub checksum_algorithm: Option<String>,
}

impl Row {
    /// True for the archive classes whose bytes cannot be read without a
    /// restore (GLACIER, DEEP_ARCHIVE; GLACIER_IR is instant and is read).
    pub fn is_archived(&self) -> bool {
        self.storage_class
            .as_deref()
            .is_some_and(|c| matches!(c, "GLACIER" | "DEEP_ARCHIVE"))
    }
}

/// Streams the rows of one (already verified) data file.
pub struct RowReader<R: Read> {
    csv: csv::Reader<flate2::read::MultiGzDecoder<R>>,
    record: csv::ByteRecord,
    columns: Vec<Column>,
    row: Row,
    /// Versions that are not current, and delete markers: skipped.
    pub skipped: u64,
    name: String,
}

impl<R: Read> RowReader<R> {
    /// `name` names the file in errors.
    pub fn new(gz: R, columns: &[Column], name: &str) -> RowReader<R> {
        let csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(false)
            .buffer_capacity(1 << 16)
            .from_reader(flate2::read::MultiGzDecoder::new(gz));
        RowReader {
            csv,
            record: csv::ByteRecord::new(),
            columns: columns.to_vec(),
            row: Row::default(),
            skipped: 0,
            name: name.to_string(),
        }
    }

    /// The next current object, or `None` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<&Row>> {
        loop {
            let more = self.csv.read_byte_record(&mut self.record).map_err(|e| {
                anyhow!(
                    "inventory data file {}: {e} (damaged, or not gzip CSV)",
                    self.name
                )
            })?;
            if !more {
                return Ok(None);
            }
            let line = self.record.position().map_or(0, |p| p.line());
            if self.record.len() != self.columns.len() {
                bail!(
                    "inventory data file {} line {line}: {} fields where fileSchema names {}",
                    self.name,
                    self.record.len(),
                    self.columns.len()
                );
            }
            match fill(&mut self.row, &self.record, &self.columns) {
                Ok(true) => return Ok(Some(&self.row)),
                Ok(false) => self.skipped += 1,
                Err(e) => bail!("inventory data file {} line {line}: {e}", self.name),
            }
        }
    }
}

/// Decodes one record into `row`; false for a row that is not a current
/// object (an old version or a delete marker).
fn fill(row: &mut Row, record: &csv::ByteRecord, columns: &[Column]) -> Result<bool> {
    row.etag = None;
    row.version = None;
    row.is_multipart = None;
    row.storage_class = None;
    row.checksum_algorithm = None;
    row.last_modified = 0;
    let mut size = None;
    let mut delete_marker = false;
    let mut latest = true;
    for (field, column) in record.iter().zip(columns) {
        match column {
            Column::Key => url_decode(field, &mut row.key)?,
            Column::Size if !field.is_empty() => {
                size = Some(parse_u64(field).ok_or_else(|| {
                    anyhow!("Size {:?} is not a number", String::from_utf8_lossy(field))
                })?);
            }
            Column::ETag if !field.is_empty() => {
                let t = std::str::from_utf8(field).map_err(|_| anyhow!("ETag is not text"))?;
                let t = t.trim_matches('"');
                let mut q = String::with_capacity(t.len() + 2);
                q.push('"');
                q.push_str(t);
                q.push('"');
                row.etag = Some(q);
            }
            Column::VersionId if !field.is_empty() => {
                row.version = Some(String::from_utf8_lossy(field).into_owned());
            }
            Column::LastModifiedDate if !field.is_empty() => {
                row.last_modified = parse_time(field).ok_or_else(|| {
                    anyhow!(
                        "LastModifiedDate {:?} is not a date",
                        String::from_utf8_lossy(field)
                    )
                })?;
            }
            Column::IsMultipartUploaded if !field.is_empty() => {
                row.is_multipart = Some(parse_bool(field)?);
            }
            Column::IsLatest if !field.is_empty() => latest = parse_bool(field)?,
            Column::IsDeleteMarker if !field.is_empty() => delete_marker = parse_bool(field)?,
            Column::StorageClass if !field.is_empty() => {
                row.storage_class = Some(intern(field));
            }
            Column::ChecksumAlgorithm if !field.is_empty() => {
                row.checksum_algorithm = Some(intern(field));
            }
            _ => {}
        }
    }
    if delete_marker || !latest {
        return Ok(false);
    }
    row.size = size.ok_or_else(|| anyhow!("an object without a Size"))?;
    Ok(true)
}

fn intern(field: &[u8]) -> String {
    String::from_utf8_lossy(field).into_owned()
}

fn parse_bool(field: &[u8]) -> Result<bool> {
    if field.eq_ignore_ascii_case(b"true") {
        Ok(true)
    } else if field.eq_ignore_ascii_case(b"false") {
        Ok(false)
    } else {
        bail!("{:?} is not true or false", String::from_utf8_lossy(field))
    }
}

fn parse_u64(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > 19 {
        return std::str::from_utf8(field).ok()?.parse().ok();
    }
    let mut n = 0u64;
    for &b in field {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    Some(n)
}

/// Decodes a form-URL-encoded key (`%XX`, `+` for a space) into `out`.
pub fn url_decode(field: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    out.reserve(field.len());
    let mut i = 0;
    while i < field.len() {
        match field[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (
                    field.get(i + 1).copied().and_then(hex),
                    field.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => bail!(
                        "key {:?} has a malformed %-escape",
                        String::from_utf8_lossy(field)
                    ),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Ok(())
}

/// `2026-03-01T02:22:00.000Z` (the inventory's form; other UTC RFC 3339
/// forms are accepted) as Unix seconds.
pub fn parse_time(field: &[u8]) -> Option<i64> {
    let f = field;
    let digits = |a: usize, b: usize| -> Option<i64> {
        let mut n = 0i64;
        for &c in f.get(a..b)? {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + i64::from(c - b'0');
        }
        Some(n)
    };
    let fast = f.len() >= 20
        && f[4] == b'-'
        && f[7] == b'-'
        && f[10] == b'T'
        && f[13] == b':'
        && f[16] == b':'
        && f.last() == Some(&b'Z')
        && (f.len() == 20 || f[19] == b'.');
    if fast {
        let (y, mo, d) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
        let (h, mi, s) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        return Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s);
    }
    let t = humantime::parse_rfc3339_weak(std::str::from_utf8(field).ok()?).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(text: &str) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decodes_keys_like_html_forms() {
        let mut out = Vec::new();
        url_decode(b"a+b%2Bc%2Fd%C3%A9%0A%FF", &mut out).unwrap();
        assert_eq!(out, b"a b+c/d\xc3\xa9\n\xff");
        assert!(url_decode(b"bad%2", &mut out).is_err());
        assert!(url_decode(b"bad%zz", &mut out).is_err());
    }

    #[test]
    fn parses_inventory_times() {
        assert_eq!(parse_time(b"1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(parse_time(b"2026-03-01T02:22:00.000Z"), Some(1_772_331_720));
        assert_eq!(parse_time(b"2026-03-01T02:22:00Z"), Some(1_772_331_720));
        assert_eq!(parse_time(b"2026-03-01 02:22:00"), Some(1_772_331_720));
        assert_eq!(parse_time(b"yesterday"), None);
        assert_eq!(parse_time(b"2026-13-01T02:22:00.000Z"), None);
    }

    #[test]
    fn streams_current_objects_in_schema_order() {
        use Column::*;
        let columns = [
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
            Other,
            ChecksumAlgorithm,
        ];
        let data = gz(concat!(
            "\"src\",\"a/hello+world.txt\",\"v2\",\"true\",\"false\",\"11\",\"2026-03-01T02:22:00.000Z\",\"5eb63bbbe01eeed093cb22bb8f5acdc3\",\"STANDARD\",\"false\",\"\",\"CRC64NVME\"\n",
            "\"src\",\"a/hello+world.txt\",\"v1\",\"false\",\"false\",\"10\",\"2026-02-01T02:22:00.000Z\",\"x\",\"STANDARD\",\"false\",\"\",\"\"\n",
            "\"src\",\"gone\",\"v3\",\"true\",\"true\",\"\",\"2026-03-01T02:22:00.000Z\",\"\",\"\",\"\",\"\",\"\"\n",
            "\"src\",\"deep%2Fx\",\"\",\"true\",\"false\",\"7\",\"2026-03-01T02:22:00.000Z\",\"0123-2\",\"DEEP_ARCHIVE\",\"true\",\"\",\"\"\n",
        ));
        let mut r = RowReader::new(&data[..], &columns, "t.csv.gz");
        let a = r.next_row().unwrap().unwrap().clone();
        assert_eq!(a.key, b"a/hello world.txt");
        assert_eq!(a.size, 11);
        assert_eq!(
            a.etag.as_deref(),
            Some("\"5eb63bbbe01eeed093cb22bb8f5acdc3\"")
        );
        assert_eq!(a.version.as_deref(), Some("v2"));
        assert_eq!(a.last_modified, 1_772_331_720);
        assert_eq!(a.is_multipart, Some(false));
        assert_eq!(a.storage_class.as_deref(), Some("STANDARD"));
        assert_eq!(a.checksum_algorithm.as_deref(), Some("CRC64NVME"));
        assert!(!a.is_archived());
        let b = r.next_row().unwrap().unwrap().clone();
        assert_eq!(b.key, b"deep/x");
        assert_eq!(b.is_multipart, Some(true));
        assert_eq!(b.checksum_algorithm, None);
        assert!(b.is_archived());
        assert!(r.next_row().unwrap().is_none());
        assert_eq!(r.skipped, 2);
    }

    #[test]
    fn malformed_rows_are_errors_naming_file_and_line() {
        let columns = [Column::Bucket, Column::Key, Column::Size];
        let data = gz("\"b\",\"k\",\"1\"\n\"b\",\"k2\",\"ten\"\n");
        let mut r = RowReader::new(&data[..], &columns, "t.csv.gz");
        r.next_row().unwrap();
        let e = r.next_row().unwrap_err().to_string();
        assert!(e.contains("t.csv.gz line 2"), "{e}");
        let data = gz("\"b\",\"k\"\n");
        let e = RowReader::new(&data[..], &columns, "t.csv.gz")
            .next_row()
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 fields where fileSchema names 3"), "{e}");
        let e = RowReader::new(&b"not gzip"[..], &columns, "t.csv.gz")
            .next_row()
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.csv.gz"), "{e}");
    }
}
