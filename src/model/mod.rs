//! The bottom layer: plain data every other layer shares, and nothing else.
//!
//! No I/O beyond reading a clock, no SQL, no terminal: keys and their
//! escaping (`paths`), findings and their stable kind names (`finding`),
//! manifest entries and runs (`entry`), remote objects and the rule for a
//! cached proof (`remote`), time (`time`), and a run's [`Outcome`].

pub mod entry;
pub mod finding;
pub mod paths;
pub mod remote;
pub mod time;
pub mod verdict;

pub use entry::{Entry, EntryKind, NewEntry, Node, Run, Stat};
pub use finding::{Acceptance, Finding, Kind};
pub use remote::{Listed, Proof, ProofRow, ReadError, RemoteRow, etag_md5};
pub use time::{format_time, now_unix, parse_time};
pub use verdict::{Status, Verdict};

/// The outcome of a command, mapped by `main` to the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No discrepancy (exit 0).
    Clean,
    /// At least one discrepancy (exit 1).
    Discrepancies,
    /// Finished, but could not read some entries (exit 2); the report
    /// holds everything else.
    Incomplete,
}

impl Outcome {
    /// The outcome of a finished scan or audit from its summary.
    pub fn of_summary(summary: &serde_json::Map<String, serde_json::Value>, bad: bool) -> Outcome {
        let unreadable = summary
            .get(Kind::Unreadable.name())
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if unreadable > 0 {
            Outcome::Incomplete
        } else if bad {
            Outcome::Discrepancies
        } else {
            Outcome::Clean
        }
    }

    /// The worse of two outcomes.
    pub fn worst(self, other: Outcome) -> Outcome {
        let rank = |o: Outcome| match o {
            Outcome::Clean => 0,
            Outcome::Discrepancies => 1,
            Outcome::Incomplete => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}
