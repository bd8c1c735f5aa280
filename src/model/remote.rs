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
    /// What identifies this exact content version: the ETag, the size,
    /// the last-modified time and the version id (or generation) where the
    /// store has one, all of them. A cached proof holds only while the
    /// fingerprint is unchanged: an ETag alone is not enough (an MD5
    /// collision; stores whose ETag is no content hash). Proofs recorded
    /// under the earlier form (`etag:…`) match no fingerprint now, so each
    /// object is read once more.
    pub fn fingerprint(&self) -> String {
        let parts = serde_json::json!([self.size, self.last_modified, self.etag, self.version]);
        format!("v2:{parts}")
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
    /// How `verified_blake3` was proven; `None` for a proof recorded
    /// before methods were (it counts as no read).
    pub verified_method: Option<Proof>,
}

/// How a proof about an object's content was made. Only a read is a
/// read: "read within N days" and a deep run count nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// Every byte read and hashed.
    Read,
    /// A single-part ETag equal to the local file's MD5: the bytes were
    /// not read.
    EtagMd5,
}

impl Proof {
    pub fn name(self) -> &'static str {
        match self {
            Proof::Read => "read",
            Proof::EtagMd5 => "etag_md5",
        }
    }

    pub fn from_name(name: &str) -> Option<Proof> {
        [Proof::Read, Proof::EtagMd5]
            .into_iter()
            .find(|p| p.name() == name)
    }
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

    /// True when the proof at the current version was a read of every byte.
    pub fn known_by_read(&self) -> bool {
        self.known_blake3().is_some() && self.verified_method == Some(Proof::Read)
    }

    /// The remote's content hash, if it was proven at its current version
    /// (read, or inferred from an MD5 ETag: see `verified_method`).
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
    /// The remote as a whole cannot be read (no credentials, no such
    /// bucket): one line that says what to do; the audit ends with it
    /// (exit 2) rather than blaming the object.
    Fatal(String),
    /// The store refused this read or did not answer it (access denied, a
    /// timeout, no connection), in one line: the object is `unreadable`,
    /// and the audit ends with the line when no read gets through at all.
    Refused(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotFound => f.write_str("deleted after it was listed"),
            ReadError::Changed => f.write_str("replaced while the audit ran"),
            ReadError::Other(e) | ReadError::Fatal(e) | ReadError::Refused(e) => f.write_str(e),
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
    fn a_proof_holds_only_for_the_same_etag_size_time_and_version() {
        let base = Listed {
            key: b"k".to_vec(),
            size: 10,
            etag: Some("\"e\"".into()),
            version: Some("v1".into()),
            last_modified: 100,
            storage_class: None,
        };
        let changed = [
            Listed {
                size: 11,
                ..base.clone()
            },
            Listed {
                last_modified: 101,
                ..base.clone()
            },
            Listed {
                etag: Some("\"f\"".into()),
                ..base.clone()
            },
            Listed {
                etag: None,
                ..base.clone()
            },
            Listed {
                version: Some("v2".into()),
                ..base.clone()
            },
            Listed {
                version: None,
                ..base.clone()
            },
        ];
        for other in &changed {
            assert_ne!(other.fingerprint(), base.fingerprint(), "{other:?}");
        }
        // No two of them collide either (no separator an ETag could fake).
        let mut all: Vec<String> = changed.iter().map(Listed::fingerprint).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), changed.len());
        let tricky = Listed {
            etag: Some("\"e\",\"v1\"".into()),
            version: None,
            ..base.clone()
        };
        assert_ne!(tricky.fingerprint(), base.fingerprint());
    }

    #[test]
    fn only_plain_32_hex_etags_carry_an_md5() {
        assert!(etag_md5("\"5d41402abc4b2a76b9719d911017c592\"").is_some());
        assert!(etag_md5("5d41402abc4b2a76b9719d911017c592").is_some());
        assert!(etag_md5("\"5d41402abc4b2a76b9719d911017c592-3\"").is_none());
        assert!(etag_md5("\"zz41402abc4b2a76b9719d911017c592\"").is_none());
    }
}

/// What the checksum ladder concluded about one object version, as the
/// index keeps it (`remote_proofs`): valid only while the object's ETag,
/// size, last-modified time and version id are those recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct ProofRow {
    pub key: Vec<u8>,
    pub etag: Option<String>,
    pub size: u64,
    pub last_modified: i64,
    pub version: Option<String>,
    /// The store's facts (stored checksums, part sizes) as JSON, so a
    /// later run needs no request for this version.
    pub facts: Option<String>,
    /// `proven`, `mismatch` or `undecided`.
    pub verdict: String,
    /// The method that decided (`crc64nvme`, `multipart-etag`, ...).
    pub method: Option<String>,
    /// The part layout used, for per-part methods.
    pub params: Option<String>,
    /// The BLAKE3 of the local content the verdict is about.
    pub blake3: Option<[u8; 32]>,
    pub detail: Option<String>,
    pub checked_at: i64,
}

impl ProofRow {
    /// Whether this record is about the object version `obj` lists now.
    pub fn is_for(&self, obj: &RemoteRow) -> bool {
        self.key == obj.key
            && self.etag == obj.etag
            && self.size == obj.size
            && self.last_modified == obj.last_modified
            && self.version == obj.version
    }
}
