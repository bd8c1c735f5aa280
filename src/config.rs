//! The config file for cron: named audits, `vouch run NAME | --all`.
//!
//! One TOML file (default `$XDG_CONFIG_HOME/vouch/vouch.toml`) with an
//! `[audit.NAME]` section per job. Unknown keys are errors, not silently
//! ignored: a misspelt `min_coverage` must not quietly fall back to the
//! default on a job nobody watches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use serde::Deserialize;

use crate::audit::Mode;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The index every audit of this file uses (else `--index`, else the
    /// default location).
    pub index: Option<PathBuf>,
    #[serde(default)]
    pub audit: BTreeMap<String, AuditConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    pub root: PathBuf,
    pub remote: String,
    pub endpoint: Option<String>,
    pub mode: Option<Mode>,
    pub scrub_budget: Option<String>,
    pub jobs: Option<usize>,
    pub retries: Option<usize>,
    pub timeout: Option<u64>,
    pub strict: Option<bool>,
    pub md5: Option<bool>,
    pub no_scan: Option<bool>,
    pub min_coverage: Option<f64>,
    pub shrink_threshold: Option<f64>,
    pub max_age: Option<String>,
    pub metrics: Option<PathBuf>,
    pub notify: Option<String>,
    pub notify_always: Option<bool>,
    /// Write this audit's report to a file instead of stdout.
    pub output: Option<PathBuf>,
}

/// `$XDG_CONFIG_HOME/vouch/vouch.toml`.
pub fn default_path() -> PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("vouch")
        .join("vouch.toml")
}

/// Reads and checks a config file; errors name the file and line.
pub fn load(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let config: Config = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let msg = e.message().replace('\n', " ");
        match line {
            Some(line) => anyhow!("config {} line {line}: {msg}", path.display()),
            None => anyhow!("config {}: {msg}", path.display()),
        }
    })?;
    for (name, audit) in &config.audit {
        let bad = |what: &str| anyhow!("config {}: [audit.{name}] {what}", path.display());
        if let Some(c) = audit.min_coverage
            && !(0.0..=1.0).contains(&c)
        {
            return Err(bad("min_coverage must be between 0 and 1"));
        }
        if let Some(t) = audit.shrink_threshold
            && !(0.0..=1.0).contains(&t)
        {
            return Err(bad("shrink_threshold must be between 0 and 1"));
        }
        if let Some(age) = &audit.max_age {
            humantime::parse_duration(age).map_err(|e| bad(&format!("max_age {age:?}: {e}")))?;
        }
        if let Some(b) = &audit.scrub_budget {
            crate::cli::parse_size(b).map_err(|e| bad(&format!("scrub_budget: {e}")))?;
        }
    }
    Ok(config)
}
