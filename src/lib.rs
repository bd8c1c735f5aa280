//! vouch: an integrity auditor for files and object stores.
//!
//! Data flows one way through one module per stage:
//!
//! ```text
//! walk ─▶ hash ─▶ index (SQLite) ─▶ merkle roots
//!                       │
//! remote listing ───────┴▶ audit (merge-join) ─▶ findings ─▶ report
//! ```
//!
//! `scan` drives walk → hash → index → merkle; `audit` adds the remote side.
//! `diff`, `verify` and `export` read finished scans back as snapshots
//! (`snapshot`) and portable manifests (`manifest`).
//! The binary (`src/main.rs`) only parses arguments and maps the outcome to
//! an exit status: 0 clean, 1 discrepancies, 2 trouble.

pub mod alert;
pub mod audit;
pub mod cli;
pub mod config;
pub mod diff;
pub mod export;
pub mod finding;
pub mod hash;
pub mod history;
pub mod index;
pub mod manifest;
#[path = "engine/mapped.rs"]
pub mod mapped;
pub mod merkle;
pub mod paths;
pub mod remote;
pub mod report;
pub mod scan;
pub mod snapshot;
pub mod verify;
pub mod walk;

/// The outcome of a command, mapped by `main` to the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No discrepancy (exit 0).
    Clean,
    /// At least one discrepancy (exit 1).
    Discrepancies,
}
