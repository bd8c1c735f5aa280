//! Progress: how an engine says how far it got, without knowing whether
//! anyone is watching.
//!
//! Engines are handed a `&dyn Progress` and call it as they go; the
//! command decides what it is: [`Bar`], a spinner with counts and rates on
//! a terminal; [`Lines`], one plain line on stderr at a modest interval
//! when stderr is a pipe, a file or cron's mail (a run that hashes for an
//! hour must still say it is alive); or [`Silent`] for `--quiet`. An
//! engine never sees a terminal or a flag.

use std::io::Write;
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
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
                "{{spinner}} {what}: {{human_pos}} files {{msg}} [{{elapsed}}]"
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

/// What [`Lines`] knows of the current stage.
#[derive(Default)]
struct Stage {
    /// The stage and when it began; `None` between stages.
    what: Option<(String, Instant)>,
    files: u64,
    bytes: Option<(String, u64)>,
    status: Option<String>,
}

impl Stage {
    /// One plain line: stage, files, bytes and rate, elapsed.
    fn line(&self) -> Option<String> {
        let (what, started) = self.what.as_ref()?;
        let elapsed = started.elapsed();
        let mut line = format!("vouch: {what}: {} files", indicatif::HumanCount(self.files));
        if let Some((verb, total)) = &self.bytes {
            let rate = *total as f64 / elapsed.as_secs_f64().max(0.001);
            line.push_str(&format!(
                ", {} {verb} ({}/s)",
                indicatif::HumanBytes(*total),
                indicatif::HumanBytes(rate as u64)
            ));
        } else if let Some(msg) = &self.status {
            line.push_str(&format!(", {msg}"));
        }
        line.push_str(&format!(
            ", {} elapsed",
            indicatif::FormattedDuration(elapsed)
        ));
        Some(line)
    }
}

/// One plain line on stderr every `interval` while a stage runs, for
/// stderr that is not a terminal. The first line comes only after one
/// interval, so short runs print nothing; nothing ever goes to stdout.
pub struct Lines {
    stage: Arc<Mutex<Stage>>,
    stop: Option<Sender<()>>,
    ticker: Option<JoinHandle<()>>,
}

impl Lines {
    /// Starts the clock; a line every `interval` (at least 1 ms).
    pub fn new(interval: Duration) -> Lines {
        Lines::to(interval, std::io::stderr)
    }

    /// [`Lines::new`], writing to what `out` opens (a test's buffer).
    fn to<W: Write>(interval: Duration, out: impl Fn() -> W + Send + 'static) -> Lines {
        let interval = interval.max(Duration::from_millis(1));
        let stage = Arc::new(Mutex::new(Stage::default()));
        let (stop, stopped) = channel::<()>();
        let shared = Arc::clone(&stage);
        let ticker = std::thread::Builder::new()
            .name("vouch-progress".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    let line = shared.lock().ok().and_then(|s| s.line());
                    if let Some(line) = line {
                        // A closed stderr is no reason to fail the run.
                        let _ = writeln!(out(), "{line}");
                    }
                }
            })
            .ok();
        Lines {
            stage,
            stop: Some(stop),
            ticker,
        }
    }

    fn with(&self, f: impl FnOnce(&mut Stage)) {
        if let Ok(mut s) = self.stage.lock() {
            f(&mut s);
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

impl Progress for Lines {
    fn begin(&self, what: &str) {
        self.with(|s| {
            *s = Stage {
                what: Some((what.to_string(), Instant::now())),
                ..Stage::default()
            }
        });
    }

    fn advance(&self, n: u64) {
        self.with(|s| s.files += n);
    }

    fn bytes(&self, verb: &str, total: u64) {
        self.with(|s| s.bytes = Some((verb.to_string(), total)));
    }

    fn status(&self, msg: &str) {
        self.with(|s| s.status = Some(msg.to_string()));
    }

    fn end(&self) {
        self.with(|s| *s = Stage::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_per_interval_while_a_stage_runs_and_none_before() {
        let buf = Buf::default();
        let out = buf.clone();
        let lines = Lines::to(Duration::from_millis(50), move || out.clone());
        std::thread::sleep(Duration::from_millis(120));
        // No stage yet: nothing.
        assert!(buf.0.lock().unwrap().is_empty());
        lines.begin("scanning");
        lines.advance(1234);
        lines.bytes("hashed", 3 * 1024 * 1024 * 1024 / 2);
        std::thread::sleep(Duration::from_millis(120));
        lines.end();
        drop(lines);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let first = text.lines().next().expect("a progress line");
        assert!(
            first.starts_with("vouch: scanning: 1,234 files, 1.50 GiB hashed ("),
            "{first}"
        );
        assert!(first.ends_with(" elapsed"), "{first}");
        // The rate: whole or two decimals, never `1234.5678/s`.
        let rate = first.split('(').nth(1).unwrap().split(')').next().unwrap();
        assert!(rate.ends_with("B/s"), "{rate}");
        let number = rate.split(' ').next().unwrap();
        assert!(
            number.split('.').nth(1).is_none_or(|d| d.len() <= 2),
            "{rate}"
        );
    }

    #[test]
    fn a_run_shorter_than_the_interval_prints_nothing() {
        let buf = Buf::default();
        let out = buf.clone();
        let lines = Lines::to(Duration::from_secs(60), move || out.clone());
        lines.begin("scanning");
        lines.advance(5);
        lines.end();
        let started = Instant::now();
        drop(lines);
        // Dropping stops the clock at once, not after the interval.
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(buf.0.lock().unwrap().is_empty());
    }
}
