//! vouch: an integrity auditor for files and object stores.
//!
//! # Layout
//!
//! Five layers; a module imports only from its own layer or below, so data
//! and control flow one way and the compiler keeps it so (a lower layer
//! cannot name a higher one without a cycle that `scripts/test` refuses):
//!
//! ```text
//! main.rs    parse → resolve → dispatch → ExitCode (BrokenPipe → 0)
//!   cli/       clap types, the config file, and one settings resolver
//!              (flag > env > config file > default) for every command
//!   commands/  one file per subcommand: resolved settings in, Outcome out;
//!              opens the index, builds sinks and progress, calls engines
//!   engine/    walk, hash, merkle, remote, join (one merge-join), scan/,
//!              audit/, snapshot, manifest, compare, export — no clap, no
//!              indicatif, no environment, no stdout: a progress reporter
//!              and a sink are handed in
//!   store/     the SQLite index: every SQL string and the only `rusqlite`
//!   out/       sinks (one type per format), the atomic file writer,
//!              progress (a bar on a terminal, nothing otherwise), alerts
//!   model/     plain data: keys, findings, entries, runs, remote objects
//! ```
//!
//! Data flows one way through the engines:
//!
//! ```text
//! walk ─▶ hash ─▶ store (SQLite) ─▶ merkle roots
//!                       │
//! remote listing ───────┴▶ audit (merge-join) ─▶ findings ─▶ sink
//! ```
//!
//! Where a change goes: a new finding kind → `model::finding`; a new
//! column or query → `store`; a new output format → `out`; a new rule for
//! deciding a pair → `engine::audit::decide`; a new flag → `cli` (the
//! resolver gives it a default once, for the command line and the config
//! file alike) and the command's settings struct.

pub mod cli;
pub mod commands;
pub mod engine;
#[cfg(test)]
mod heap;
pub mod model;
pub mod out;
pub mod store;

pub use model::Outcome;
