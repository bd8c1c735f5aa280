//! Findings: the typed outcome of every comparison vouch makes.
//!
//! The kind names are a stable contract (scripts and monitors match on
//! them), so they live in one enum with one spelling each. A kind is either
//! a *discrepancy* (it makes the exit status 1) or a *change* / *notice*
//! that is counted and listed but does not fail the run.

use serde::Serialize;
use serde_json::Value;

/// Every finding kind vouch reports, with its stable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    // Discrepancies.
    Missing,
    Extra,
    SizeMismatch,
    Corrupt,
    Moved,
    Unreadable,
    RemoteEmpty,
    LowCoverage,
    Shrunk,
    Stale,
    Damaged,
    // Local changes since the previous scan.
    Added,
    Modified,
    Deleted,
    // Present, size matches, content never verified.
    Unverified,
    // Only on the backup, and the audit is one-way (`--one-way`).
    BackupOnly,
    // A discrepancy accepted with `vouch accept`, still the same.
    Accepted,
}

impl Kind {
    pub const ALL: [Kind; 17] = [
        Kind::Missing,
        Kind::Extra,
        Kind::SizeMismatch,
        Kind::Corrupt,
        Kind::Moved,
        Kind::Unreadable,
        Kind::RemoteEmpty,
        Kind::LowCoverage,
        Kind::Shrunk,
        Kind::Stale,
        Kind::Damaged,
        Kind::Added,
        Kind::Modified,
        Kind::Deleted,
        Kind::Unverified,
        Kind::BackupOnly,
        Kind::Accepted,
    ];

    /// The stable name used in every output format.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Missing => "missing",
            Kind::Extra => "extra",
            Kind::SizeMismatch => "size_mismatch",
            Kind::Corrupt => "corrupt",
            Kind::Moved => "moved",
            Kind::Unreadable => "unreadable",
            Kind::RemoteEmpty => "remote_empty",
            Kind::LowCoverage => "low_coverage",
            Kind::Shrunk => "shrunk",
            Kind::Stale => "stale",
            Kind::Damaged => "damaged",
            Kind::Added => "added",
            Kind::Modified => "modified",
            Kind::Deleted => "deleted",
            Kind::Unverified => "unverified",
            Kind::BackupOnly => "backup_only",
            Kind::Accepted => "accepted",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// True for the kinds that make the exit status 1.
    pub fn is_discrepancy(self) -> bool {
        !matches!(
            self,
            Kind::Added
                | Kind::Modified
                | Kind::Deleted
                | Kind::Unverified
                | Kind::BackupOnly
                | Kind::Accepted
        )
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One finding. `path` is the stored key (see [`crate::model::paths`]); reports
/// print it escaped and `/`-separated. `local` and `remote` describe each
/// side where known (size, hash, etag, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: Kind,
    pub path: Vec<u8>,
    pub local: Option<Value>,
    pub remote: Option<Value>,
    pub detail: Option<String>,
    /// Unix seconds of the first run that saw this discrepancy.
    pub first_seen: Option<i64>,
}

impl Finding {
    pub fn new(kind: Kind, path: impl Into<Vec<u8>>) -> Finding {
        Finding {
            kind,
            path: path.into(),
            local: None,
            remote: None,
            detail: None,
            first_seen: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Finding {
        self.detail = Some(detail.into());
        self
    }

    pub fn local(mut self, local: Value) -> Finding {
        self.local = Some(local);
        self
    }

    pub fn remote(mut self, remote: Value) -> Finding {
        self.remote = Some(remote);
        self
    }
}

/// A discrepancy accepted with `vouch accept`: it is reported as
/// `accepted` while it stays what it was when accepted — the same kind, and
/// the same content on each side — and until `until` (unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Acceptance {
    /// ROOT, as the index stores it.
    pub root: Vec<u8>,
    pub path: Vec<u8>,
    pub kind: Kind,
    pub reason: String,
    pub until: Option<i64>,
    /// Each side as the accepted finding described it.
    pub local: Option<Value>,
    pub remote: Option<Value>,
    pub accepted_at: i64,
}

/// What identifies the content of one side of a finding: size and hashes,
/// ETag and version; not times (a copy rewritten with the same bytes is
/// the same content).
pub fn content_of(side: Option<&Value>) -> Option<Value> {
    let obj = side?.as_object()?;
    let kept: serde_json::Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "size" | "blake3" | "etag" | "version" | "files" | "bytes" | "objects"
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Some(Value::Object(kept))
}

impl Acceptance {
    /// True when `f` is this accepted finding, unchanged, at time `now`.
    pub fn covers(&self, f: &Finding, now: i64) -> bool {
        f.kind == self.kind
            && f.path == self.path
            && self.until.is_none_or(|t| now < t)
            && content_of(f.local.as_ref()) == content_of(self.local.as_ref())
            && content_of(f.remote.as_ref()) == content_of(self.remote.as_ref())
    }

    /// Reports `f` (which this covers) as `accepted`, saying what it was,
    /// when it was accepted and why.
    pub fn mark(&self, f: &mut Finding) {
        let until = self
            .until
            .map(|t| format!(", until {}", super::format_time(t)))
            .unwrap_or_default();
        f.detail = Some(format!(
            "{} accepted {}{until}: {}",
            f.kind,
            super::format_time(self.accepted_at),
            self.reason
        ));
        f.kind = Kind::Accepted;
    }
}
