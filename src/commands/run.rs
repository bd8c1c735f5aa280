//! `vouch run NAME | --all`: the named audits of the config file, for
//! cron. Each is resolved by the same resolver as `vouch audit` (see
//! `cli::settings`), so the two never differ.

use anyhow::{Result, bail};

use super::audit::{self, AuditSettings};
use super::{Context, one_line};
use crate::model::Outcome;

/// One named audit, resolved, with the context it runs in (the config
/// file may name its own index and output).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedAudit {
    pub name: String,
    pub ctx: Context,
    pub settings: AuditSettings,
}

/// Runs each audit in turn; exits with the worst status.
pub fn run(audits: &[NamedAudit]) -> Result<Outcome> {
    let mut worst = Outcome::Clean;
    let mut failed = Vec::new();
    for a in audits {
        let mut ctx = a.ctx.clone();
        if audits.len() > 1 {
            ctx.heading = Some(format!("audit {}", a.name));
        }
        match audit::run(&ctx, &a.settings, Some(&a.name)) {
            Ok(o) => worst = worst.worst(o),
            Err(e) => {
                eprintln!("vouch: audit {}: {}", a.name, one_line(&e));
                failed.push(a.name.clone());
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} named audits could not run: {}",
            failed.len(),
            audits.len(),
            failed.join(", ")
        );
    }
    Ok(worst)
}
