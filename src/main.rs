//! The `vouch` binary: parse, resolve, dispatch, and map the outcome to the
//! exit status like diff(1) and ripgrep: 0 clean, 1 discrepancies, 2
//! trouble (one line on stderr). A closed pipe (`vouch audit … | head`) is
//! not trouble: the reader has what it wanted, so it exits 0, silently.
//!
//! A panic anywhere (ours or a dependency's) is trouble too: the hook
//! keeps its message instead of printing a backtrace, and the process
//! prints one line and exits 2.

use std::process::ExitCode;
use std::sync::Mutex;

use clap::Parser;
use vouch::cli::{Cli, settings};
use vouch::commands;
use vouch::model::Outcome;

/// The first panic's message and place, kept by the hook.
static PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Blocks of 128 KiB and more (a page of 4,096 index rows, a report's
/// buffers) are mapped for themselves and unmapped when freed, for the
/// whole run. By default glibc raises that threshold to the largest block
/// freed so far, after which such blocks come from a thread's heap, and
/// the holes a page leaves among the small blocks made since grow that
/// heap by a little now and then: over a 10M-key audit, ~2 MiB more peak
/// RSS than over 2.5M keys. Set, the threshold stays where it is.
fn fix_the_malloc_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of the allocator; called first
    // thing in main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

fn main() -> ExitCode {
    fix_the_malloc_threshold();
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut first) = PANIC.lock()
            && first.is_none()
        {
            *first = Some(format!("{what}{at}").replace('\n', " "));
        }
    }));
    let cli = Cli::parse();
    let result = std::panic::catch_unwind(|| {
        settings::resolve(cli).and_then(|(ctx, inv)| commands::dispatch(&ctx, inv))
    });
    let panicked = || PANIC.lock().ok().and_then(|p| p.clone());
    match result {
        Ok(Ok(Outcome::Clean)) => ExitCode::from(0),
        Ok(Ok(Outcome::Discrepancies)) => ExitCode::from(1),
        // Finished and reported, but some entries could not be read.
        Ok(Ok(Outcome::Incomplete)) => ExitCode::from(2),
        Ok(Err(e)) if broken_pipe(&e) => ExitCode::from(0),
        Ok(Err(e)) => {
            match panicked() {
                Some(p) => eprintln!(
                    "vouch: {} (after an internal error: {p})",
                    commands::one_line(&e)
                ),
                None => eprintln!("vouch: {}", commands::one_line(&e)),
            }
            ExitCode::from(2)
        }
        Err(_) => {
            eprintln!(
                "vouch: internal error (a bug, please report it): {}",
                panicked().unwrap_or_else(|| "unknown panic".into())
            );
            ExitCode::from(2)
        }
    }
}

/// True when the error is stdout closed under us.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
