//! Progress: how an engine says how far it got, without knowing whether
//! anyone is watching.
//!
//! Engines are handed a `&dyn Progress` and call it as they go; the
//! command decides what it is: [`Bar`], a spinner with counts and rates on
//! a terminal; [`Lines`], one plain line on stderr at a modest interval
//! when stderr is a pipe, a file or cron's mail (a run that hashes for an
//! hour must still say it is alive); or [`Silent`] for `--quiet`. An
//! engine never sees a terminal or a flag.
//!
//! Bytes are counted as they are read, not when a file completes (a 6 GiB
//! file must move the count while it is hashed): the stage hands out a
//! [`Meter`], a shared counter the readers add to once per buffer or
//! mapped piece (one relaxed atomic add, never one per byte), and the
//! reporter reads it on its own tick. When an engine knows what the stage
//! will do in all ([`Total`]: the listing's bytes of a deep audit, the
//! previous scan's files, the bytes queued once a walk ends) the line
//! shows a percentage and an ETA.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A count of bytes read, shared by the readers (hashers, downloads) on
/// any thread and read by the reporter on its tick.
#[derive(Debug, Clone, Default)]
pub struct Meter(Arc<AtomicU64>);

impl Meter {
    /// `n` more bytes read: call once per buffer or piece, not per byte.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The bytes counted so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// What a stage will do in all, as far as it is known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Total {
    /// Files (or objects) the stage will count with `advance`.
    pub files: Option<u64>,
    /// Bytes the stage will add to its [`Meter`].
    pub bytes: Option<u64>,
    /// False for an estimate (shown with `~`): the previous scan's totals,
    /// the bytes a deep audit reads at most.
    pub exact: bool,
}

/// What engines report.
pub trait Progress: Sync {
    /// Starts a stage ("scanning", "auditing", …), replacing the last one.
    fn begin(&self, what: &str);
    /// `n` more items (entries, objects) done.
    fn advance(&self, n: u64);
    /// Starts counting this stage's bytes (`verb`: "hashed", "read"): the
    /// readers add to the meter returned as they read, and every line
    /// shows its count with a rate.
    fn meter(&self, verb: &str) -> Meter;
    /// What the stage will do in all; a `None` keeps what was known.
    fn total(&self, total: Total);
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
    fn meter(&self, _: &str) -> Meter {
        Meter::default()
    }
    fn total(&self, _: Total) {}
    fn status(&self, _: &str) {}
    fn end(&self) {}
}

/// What [`Bar`] and [`Lines`] know of the current stage.
#[derive(Default)]
struct Stage {
    /// The stage and when it began; `None` between stages.
    what: Option<(String, Instant)>,
    files: u64,
    /// The verb of the bytes counted, and since when they are.
    verb: Option<(String, Instant)>,
    total: Total,
    status: Option<String>,
}

/// The state a reporter shares with its ticker.
#[derive(Default)]
struct Shared {
    stage: Mutex<Stage>,
    meter: Meter,
}

impl Shared {
    fn with(&self, f: impl FnOnce(&mut Stage)) {
        if let Ok(mut s) = self.stage.lock() {
            f(&mut s);
        }
    }

    fn begin(&self, what: &str) {
        self.meter.reset();
        self.with(|s| {
            *s = Stage {
                what: Some((what.to_string(), Instant::now())),
                ..Stage::default()
            }
        });
    }

    fn meter(&self, verb: &str) -> Meter {
        self.meter.reset();
        self.with(|s| s.verb = Some((verb.to_string(), Instant::now())));
        self.meter.clone()
    }

    fn total(&self, t: Total) {
        self.with(|s| {
            // An estimate never replaces what is known exactly (the scan's
            // estimate may come after its walk has ended and counted).
            if s.total.exact && !t.exact {
                return;
            }
            s.total = Total {
                files: t.files.or(s.total.files),
                bytes: t.bytes.or(s.total.bytes),
                exact: t.exact,
            }
        });
    }

    /// The stage's name, the text after it, and its elapsed time.
    fn line(&self) -> Option<(String, String, Duration)> {
        let s = self.stage.lock().ok()?;
        let (what, started) = s.what.as_ref()?;
        Some((what.clone(), s.body(self.meter.get()), started.elapsed()))
    }
}

impl Stage {
    /// Files, then bytes with their rate, percentage and ETA (or the
    /// status): `12 files, 1.50 GiB of 6.00 GiB hashed (25%, 120 MiB/s,
    /// ETA 38s)`.
    fn body(&self, bytes: u64) -> String {
        let approx = if self.total.exact { "" } else { "~" };
        let mut line = match self.total.files {
            Some(all) if all >= self.files => format!(
                "{} of {approx}{} files",
                indicatif::HumanCount(self.files),
                indicatif::HumanCount(all)
            ),
            _ => format!("{} files", indicatif::HumanCount(self.files)),
        };
        if let Some((verb, since)) = &self.verb {
            let secs = since.elapsed().as_secs_f64().max(0.001);
            let rate = bytes as f64 / secs;
            let rate_text = format!("{}/s", indicatif::HumanBytes(rate as u64));
            match self.total.bytes {
                Some(all) if all >= bytes && all > 0 => {
                    let pct = (100 * bytes / all).min(100);
                    let mut extra = vec![format!("{pct}%"), rate_text];
                    if bytes > 0 && rate > 0.0 {
                        let left = (all - bytes) as f64 / rate;
                        extra.push(format!("ETA {}", short_duration(left)));
                    }
                    line.push_str(&format!(
                        ", {} of {approx}{} {verb} ({})",
                        indicatif::HumanBytes(bytes),
                        indicatif::HumanBytes(all),
                        extra.join(", ")
                    ));
                }
                _ => line.push_str(&format!(
                    ", {} {verb} ({rate_text})",
                    indicatif::HumanBytes(bytes)
                )),
            }
        } else if let Some(msg) = &self.status {
            line.push_str(&format!(", {msg}"));
        }
        line
    }
}

/// `38s`, `4m 05s`, `2h 10m`.
fn short_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

/// A spinner on a terminal (stderr), redrawn on its own tick from the
/// same state as [`Lines`].
#[derive(Default)]
pub struct Bar {
    shared: Arc<Shared>,
    bar: Mutex<Option<indicatif::ProgressBar>>,
}

impl Bar {
    pub fn new() -> Bar {
        Bar::default()
    }
}

impl Progress for Bar {
    fn begin(&self, what: &str) {
        self.shared.begin(what);
        let bar = indicatif::ProgressBar::new_spinner();
        let shared = Arc::clone(&self.shared);
        let body = move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            if let Some((what, body, _)) = shared.line() {
                let _ = write!(w, "{what}: {body}");
            }
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {line} [{elapsed}]")
                .map(|s| s.with_key("line", body))
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut guard) = self.bar.lock()
            && let Some(old) = guard.replace(bar)
        {
            old.finish_and_clear();
        }
    }

    fn advance(&self, n: u64) {
        self.shared.with(|s| s.files += n);
    }

    fn meter(&self, verb: &str) -> Meter {
        self.shared.meter(verb)
    }

    fn total(&self, total: Total) {
        self.shared.total(total);
    }

    fn status(&self, msg: &str) {
        self.shared.with(|s| s.status = Some(msg.to_string()));
    }

    fn end(&self) {
        self.shared.with(|s| *s = Stage::default());
        if let Ok(mut guard) = self.bar.lock()
            && let Some(bar) = guard.take()
        {
            bar.finish_and_clear();
        }
    }
}

/// One plain line on stderr every `interval` while a stage runs, for
/// stderr that is not a terminal. The first line comes only after one
/// interval, so short runs print nothing; nothing ever goes to stdout.
pub struct Lines {
    shared: Arc<Shared>,
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
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = channel::<()>();
        let ticking = Arc::clone(&shared);
        let ticker = std::thread::Builder::new()
            .name("vouch-progress".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    if let Some((what, body, elapsed)) = ticking.line() {
                        // A closed stderr is no reason to fail the run.
                        let _ = writeln!(
                            out(),
                            "vouch: {what}: {body}, {} elapsed",
                            indicatif::FormattedDuration(elapsed)
                        );
                    }
                }
            })
            .ok();
        Lines {
            shared,
            stop: Some(stop),
            ticker,
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
        self.shared.begin(what);
    }

    fn advance(&self, n: u64) {
        self.shared.with(|s| s.files += n);
    }

    fn meter(&self, verb: &str) -> Meter {
        self.shared.meter(verb)
    }

    fn total(&self, total: Total) {
        self.shared.total(total);
    }

    fn status(&self, msg: &str) {
        self.shared.with(|s| s.status = Some(msg.to_string()));
    }

    fn end(&self) {
        self.shared.with(|s| *s = Stage::default());
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
        lines.meter("hashed").add(3 * 1024 * 1024 * 1024 / 2);
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

    #[test]
    fn bytes_move_as_they_are_read_with_a_total_percentage_and_eta() {
        let shared = Shared::default();
        shared.begin("auditing");
        let meter = shared.meter("read");
        // Another thread's reads show on the next line, before any item
        // (object, file) is done.
        let other = meter.clone();
        std::thread::spawn(move || other.add(1 << 30))
            .join()
            .unwrap();
        let body = shared.line().unwrap().1;
        assert!(body.starts_with("0 files, 1.00 GiB read ("), "{body}");
        shared.total(Total {
            files: None,
            bytes: Some(4 << 30),
            exact: false,
        });
        let body = shared.line().unwrap().1;
        assert!(
            body.starts_with("0 files, 1.00 GiB of ~4.00 GiB read (25%, "),
            "{body}"
        );
        assert!(body.contains(", ETA ") && body.ends_with(')'), "{body}");
        // An exact total replaces the estimate; files keep theirs.
        shared.with(|s| s.files = 3);
        shared.total(Total {
            files: Some(10),
            bytes: Some(2 << 30),
            exact: true,
        });
        let body = shared.line().unwrap().1;
        assert!(
            body.starts_with("3 of 10 files, 1.00 GiB of 2.00 GiB read (50%, "),
            "{body}"
        );
        // Past an estimate: no total rather than 120%.
        meter.add(2 << 30);
        let body = shared.line().unwrap().1;
        assert!(body.starts_with("3 of 10 files, 3.00 GiB read ("), "{body}");
        // A new stage starts from zero.
        shared.begin("scanning");
        assert_eq!(shared.line().unwrap().1, "0 files");
        assert_eq!(short_duration(38.4), "38s");
        assert_eq!(short_duration(245.0), "4m 05s");
        assert_eq!(short_duration(7830.0), "2h 10m");
    }
}
