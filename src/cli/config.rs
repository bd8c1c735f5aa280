//! The config file for cron: named audits, `vouch run NAME | --all`.
//!
//! One TOML file (default `$XDG_CONFIG_HOME/vouch/vouch.toml`) with an
//! `[audit.NAME]` section per job. A section holds exactly the options of
//! `vouch audit` ([`AuditArgs`], the same type, so the two cannot drift),
//! each checked by the same parser. Unknown keys are errors, not silently
//! ignored: a misspelt `min_coverage` must not quietly fall back to the
//! default on a job nobody watches.
//!
//! Relative paths in the file (`root`, a directory `remote`, `index`,
//! `output`, `metrics`, `exclude_from`) are relative to the directory of
//! the config file, not to wherever cron or systemd started vouch.

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
    let mut cfg: Config = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let msg = e.message().replace('\n', " ");
        match line {
            Some(line) => anyhow!("config {} line {line}: {msg}", path.display()),
            None => anyhow!("config {}: {msg}", path.display()),
        }
    })?;
    let dir = path.parent().unwrap_or(Path::new(""));
    cfg.index = cfg.index.map(|p| dir.join(p));
    for a in cfg.audit.values_mut() {
        a.root = a.root.take().map(|p| dir.join(p));
        a.remote = a.remote.take().map(|r| relative_remote(dir, r));
        a.output = a.output.take().map(|p| dir.join(p));
        a.metrics = a.metrics.take().map(|p| dir.join(p));
        for p in &mut a.exclude_from {
            *p = dir.join(&*p);
        }
    }
    Ok(cfg)
}

/// A remote that is a relative directory path (no `scheme://`) is
/// relative to the config file's directory too; URLs are left alone.
fn relative_remote(dir: &Path, remote: String) -> String {
    if remote.contains("://") || Path::new(&remote).is_absolute() {
        return remote;
    }
    dir.join(&remote).to_string_lossy().into_owned()
}
