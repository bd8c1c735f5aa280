//! The config file for cron: named audits, `vouch run NAME | --all`.
//!
//! One TOML file (default `$XDG_CONFIG_HOME/vouch/vouch.toml`) with an
//! `[audit.NAME]` section per job. A section holds exactly the options of
//! `vouch audit` ([`AuditArgs`], the same type, so the two cannot drift),
//! each checked by the same parser. Unknown keys are errors, not silently
//! ignored: a misspelt `min_coverage` must not quietly fall back to the
//! default on a job nobody watches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use serde::Deserialize;

use super::AuditArgs;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The index every audit of this file uses (else `--index`, else the
    /// default location).
    pub index: Option<PathBuf>,
    #[serde(default)]
    pub audit: BTreeMap<String, AuditArgs>,
}

/// Reads and checks a config file; errors name the file and line.
pub fn load(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let msg = e.message().replace('\n', " ");
        match line {
            Some(line) => anyhow!("config {} line {line}: {msg}", path.display()),
            None => anyhow!("config {}: {msg}", path.display()),
        }
    })
}
