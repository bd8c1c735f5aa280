//! Remote objects as vouch sees them: a listing row, and the cached state
//! of what an earlier run proved about it.
//!
//! The rule for a cached proof lives here, beside the data it reads, so the
//! audit and the store agree on it: a read counts only while the object's
//! fingerprint (what identifies its content version) is unchanged.

/// One listed object.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// Index key relative to the prefix.
    pub key: Vec<u8>,
    pub size: u64,
    pub etag: Option<String>,
    pub version: Option<String>,
    /// Unix seconds.
    pub last_modified: i64,
    /// The storage class, where the listing gives it (an inventory does).
    pub storage_class: Option<String>,
}

/// True for the archive classes whose bytes cannot be read without a
/// restore (GLACIER, DEEP_ARCHIVE; GLACIER_IR is instant and is read).
pub fn is_archived(storage_class: Option<&str>) -> bool {
    matches!(storage_class, Some("GLACIER" | "DEEP_ARCHIVE"))
}

impl Listed {
    /// What identifies this exact content version: the ETag, else the
    /// version id, else size and modification time. A cached verification
    /// is valid only while the fingerprint is unchanged.
    pub fn fingerprint(&self) -> String {
        match (&self.etag, &self.version) {
            (Some(e), _) => format!("etag:{e}"),
            (None, Some(v)) => format!("version:{v}"),
            (None, None) => format!("mtime:{}:{}", self.size, self.last_modified),
        }
    }
}

/// One cached remote object: the last listing plus what vouch verified.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteRow {
    pub key: Vec<u8>,
    pub size: u64,
    pub etag: Option<String>,
    pub version: Option<String>,
    pub last_modified: i64,
    pub storage_class: Option<String>,
    /// BLAKE3 of the bytes read, at `verified_fingerprint`.
    pub verified_blake3: Option<[u8; 32]>,
    pub verified_fingerprint: Option<String>,
    pub verified_size: Option<u64>,
    pub verified_at: Option<i64>,
}

impl RemoteRow {
    pub fn listed(&self) -> Listed {
        Listed {
            key: self.key.clone(),
            size: self.size,
            etag: self.etag.clone(),
            version: self.version.clone(),
            last_modified: self.last_modified,
            storage_class: self.storage_class.clone(),
        }
    }

    /// The remote's content hash, if it was read at its current version.
    pub fn known_blake3(&self) -> Option<[u8; 32]> {
        let current = self.listed().fingerprint();
        (self.verified_fingerprint.as_deref() == Some(current.as_str())
            && self.verified_size == Some(self.size))
        .then_some(self.verified_blake3)
        .flatten()
    }
}

/// Why an object could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Gone since it was listed.
    NotFound,
    /// Replaced since it was listed (the ETag no longer matches).
    Changed,
    Other(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotFound => f.write_str("deleted after it was listed"),
            ReadError::Changed => f.write_str("replaced while the audit ran"),
            ReadError::Other(e) => f.write_str(e),
        }
    }
}

/// The single-part MD5 an S3 ETag carries, if it has that form (32 hex
/// digits, no `-N` multipart suffix). Only a hint: with SSE-KMS or SSE-C
/// the ETag is not an MD5 even when it looks like one.
pub fn etag_md5(etag: &str) -> Option<[u8; 16]> {
    let t = etag.trim_matches('"');
    if t.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    hex::decode_to_slice(t, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_32_hex_etags_carry_an_md5() {
        assert!(etag_md5("\"5d41402abc4b2a76b9719d911017c592\"").is_some());
        assert!(etag_md5("5d41402abc4b2a76b9719d911017c592").is_some());
        assert!(etag_md5("\"5d41402abc4b2a76b9719d911017c592-3\"").is_none());
        assert!(etag_md5("\"zz41402abc4b2a76b9719d911017c592\"").is_none());
    }
}
