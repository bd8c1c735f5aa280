//! The engines: every stage that reads a tree, a remote or the index and
//! decides something.
//!
//! Engines take resolved options, an open [`crate::store::Index`], a
//! [`crate::out::Sink`] for findings and a [`crate::out::Progress`] for
//! progress. They never parse arguments, read the environment, or write to
//! a terminal, so every command (and every test) drives them the same way.

pub mod audit;
#[cfg(feature = "aws-config")]
pub mod aws_chain;
pub mod checks;
pub mod compare;
pub mod exclude;
pub mod export;
pub mod hash;
pub mod inventory;
pub mod join;
pub mod longpath;
pub mod manifest;
pub mod mapped;
pub mod merge;
pub mod merkle;
pub mod proof;
pub mod remote;
pub mod reports;
pub mod s3list;
pub mod scan;
pub mod shard;
pub mod snapshot;
pub mod walk;
