//! Unit tests for the structural checks.
