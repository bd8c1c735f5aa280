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
}
