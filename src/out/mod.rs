//! Everything vouch tells the outside world, below the engines: report
//! sinks (one printer per format), the atomic file writer, progress, and
//! alerts (metrics files, webhooks).
//!
//! Engines only see the [`Sink`] trait and the [`Progress`] trait; the
//! command picks the implementations.

pub mod alert;
pub mod atomic;
pub mod history;
pub mod html;
pub mod progress;
pub mod report;
pub mod sorted;

use anyhow::Result;
use serde_json::{Map, Value};

use crate::model::{Finding, Kind};

pub use progress::{Bar, Lines, Meter, Progress, Silent, Total};
pub use report::{Format, Report};

/// Where findings go.
pub trait Sink {
    fn finding(&mut self, f: &Finding) -> Result<()>;
    /// Whether findings of `kind` are shown with their details (`local`,
    /// `remote`); when not, an engine may pass them bare (the table format
    /// only counts changes), sparing the JSON of every added file.
    fn details(&self, _kind: Kind) -> bool {
        true
    }
    /// Writes the summary and completes the report.
    fn finish(&mut self, summary: &Map<String, Value>) -> Result<()>;
}

/// A sink for the scans diff/verify/export run first: their discrepancies
/// are stored with the run and come back as the snapshot's unsettled paths;
/// their changes (added/modified/deleted) are not this command's business.
pub struct Discard;

impl Sink for Discard {
    fn finding(&mut self, _: &Finding) -> Result<()> {
        Ok(())
    }
    fn details(&self, _: Kind) -> bool {
        false
    }
    fn finish(&mut self, _: &Map<String, Value>) -> Result<()> {
        Ok(())
    }
}
