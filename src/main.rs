//! The `vouch` binary: parse, resolve, dispatch, and map the outcome to the
//! exit status like diff(1) and ripgrep: 0 clean, 1 discrepancies, 2
//! trouble (one line on stderr). A closed pipe (`vouch audit … | head`) is
//! not trouble: the reader has what it wanted, so it exits 0, silently.

use std::process::ExitCode;

use clap::Parser;
use vouch::cli::{Cli, settings};
use vouch::commands;
use vouch::model::Outcome;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = settings::resolve(cli).and_then(|(ctx, inv)| commands::dispatch(&ctx, inv));
    match result {
        Ok(Outcome::Clean) => ExitCode::from(0),
        Ok(Outcome::Discrepancies) => ExitCode::from(1),
        Err(e) if broken_pipe(&e) => ExitCode::from(0),
        Err(e) => {
            eprintln!("vouch: {}", commands::one_line(&e));
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
