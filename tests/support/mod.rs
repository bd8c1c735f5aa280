//! Shared helpers for integration tests: `mod support;` in a test file.
#![allow(dead_code)]

pub mod emulators;
pub mod inventory;
pub mod moto;
pub mod proxy;
pub mod s3;
