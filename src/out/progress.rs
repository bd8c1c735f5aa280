//! Progress: how an engine says how far it got, without knowing whether
//! anyone is watching.
//!
//! Engines are handed a `&dyn Progress` and call it as they go; the
//! command decides what it is: [`Bar`], a spinner with counts and rates on
//! a terminal, or [`Silent`] for pipes, files, cron and `--quiet`. An
//! engine never sees a terminal or a flag.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What engines report.
pub trait Progress: Sync {
    /// Starts a stage ("scanning", "auditing", …), replacing the last one.
    fn begin(&self, what: &str);
    /// `n` more items (entries, objects) done.
    fn advance(&self, n: u64);
    /// Bytes processed so far in this stage (hashed, read), shown with a rate.
    fn bytes(&self, verb: &str, total: u64);
    /// A short status line ("1200 objects listed").
    fn status(&self, msg: &str);
    /// Ends the stage and clears what it drew.
    fn end(&self);
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn begin(&self, _: &str) {}
    fn advance(&self, _: u64) {}
    fn bytes(&self, _: &str, _: u64) {}
    fn status(&self, _: &str) {}
    fn end(&self) {}
}

/// A spinner on a terminal (stderr).
#[derive(Default)]
pub struct Bar {
    bar: Mutex<Option<(indicatif::ProgressBar, Instant)>>,
}

impl Bar {
    pub fn new() -> Bar {
        Bar::default()
    }

    fn with(&self, f: impl FnOnce(&indicatif::ProgressBar, Instant)) {
        if let Ok(guard) = self.bar.lock()
            && let Some((bar, started)) = guard.as_ref()
        {
            f(bar, *started);
        }
    }
}

impl Progress for Bar {
    fn begin(&self, what: &str) {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "{{spinner}} {what}: {{human_pos}} files ({{per_sec}}) {{msg}} [{{elapsed}}]"
            ))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut guard) = self.bar.lock()
            && let Some((old, _)) = guard.replace((bar, Instant::now()))
        {
            old.finish_and_clear();
        }
    }

    fn advance(&self, n: u64) {
        self.with(|bar, _| bar.inc(n));
    }

    fn bytes(&self, verb: &str, total: u64) {
        self.with(|bar, started| {
            let secs = started.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!(
                "{} {verb} ({}/s)",
                indicatif::HumanBytes(total),
                indicatif::HumanBytes((total as f64 / secs) as u64)
            ));
        });
    }

    fn status(&self, msg: &str) {
        self.with(|bar, _| bar.set_message(msg.to_string()));
    }

    fn end(&self) {
        if let Ok(mut guard) = self.bar.lock()
            && let Some((bar, _)) = guard.take()
        {
            bar.finish_and_clear();
        }
    }
}
