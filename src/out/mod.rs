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

use anyhow::Result;
use serde_json::{Map, Value};

use crate::model::Finding;

pub use progress::{Bar, Progress, Silent};
pub use report::{Format, Report};

/// Where findings go.
pub trait Sink {
    fn finding(&mut self, f: &Finding) -> Result<()>;
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
    fn finish(&mut self, _: &Map<String, Value>) -> Result<()> {
        Ok(())
    }
}
