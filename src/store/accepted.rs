//! Accepted discrepancies (`vouch accept`): what was accepted, why, until
//! when, and each side as the accepted finding described it.

use anyhow::Result;
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::Index;
use crate::model::{Acceptance, Finding, Kind};

const SELECT_ACCEPTED: &str = "SELECT r.path, a.path, a.kind, a.reason, a.until, a.local, a.remote, a.accepted_at FROM accepted a JOIN roots r ON r.id = a.root_id";

fn parse(v: Option<String>) -> Option<Value> {
    v.and_then(|t| serde_json::from_str(&t).ok())
}

impl Index {
    /// Records (or replaces) an acceptance of ROOT `root_id`.
    pub fn accept(&mut self, root_id: i64, a: &Acceptance) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO accepted(root_id, path, kind, reason, until, local, remote, accepted_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                root_id,
                a.path,
                a.kind.name(),
                a.reason,
                a.until,
                a.local.as_ref().map(|v| v.to_string()),
                a.remote.as_ref().map(|v| v.to_string()),
                a.accepted_at
            ],
        )?;
        Ok(())
    }

    /// Forgets the acceptances of `path` (of `kind`, or of any kind);
    /// returns how many there were.
    pub fn unaccept(&mut self, root_id: i64, path: &[u8], kind: Option<Kind>) -> Result<usize> {
        Ok(self.conn.execute(
            "DELETE FROM accepted WHERE root_id = ?1 AND path = ?2 AND (?3 IS NULL OR kind = ?3)",
            params![root_id, path, kind.map(Kind::name)],
        )?)
    }

    /// The acceptances of one root, or of every root, by root and path.
    pub fn acceptances(&self, root_id: Option<i64>) -> Result<Vec<Acceptance>> {
        let mut stmt = self.conn.prepare(&format!(
            "{SELECT_ACCEPTED} WHERE ?1 IS NULL OR a.root_id = ?1 ORDER BY r.path, a.path, a.kind"
        ))?;
        let mut rows = stmt.query([root_id])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let kind: String = row.get(2)?;
            let Some(kind) = Kind::from_name(&kind) else {
                continue;
            };
            out.push(Acceptance {
                root: row.get(0)?,
                path: row.get(1)?,
                kind,
                reason: row.get(3)?,
                until: row.get(4)?,
                local: parse(row.get(5)?),
                remote: parse(row.get(6)?),
                accepted_at: row.get(7)?,
            });
        }
        Ok(out)
    }

    /// The latest stored finding of `kind` at `path` in a finished run of
    /// ROOT `root_id`: what `vouch accept` accepts.
    pub fn latest_finding(&self, root_id: i64, path: &[u8], kind: Kind) -> Result<Option<Finding>> {
        Ok(self
            .conn
            .query_row(
                "SELECT f.local, f.remote, f.detail, f.first_seen FROM findings f JOIN runs r ON r.id = f.run_id
                 WHERE r.root_id = ?1 AND f.path = ?2 AND f.kind = ?3 AND r.finished_at IS NOT NULL
                 ORDER BY f.run_id DESC LIMIT 1",
                params![root_id, path, kind.name()],
                |row| {
                    Ok(Finding {
                        kind,
                        path: path.to_vec(),
                        local: parse(row.get(0)?),
                        remote: parse(row.get(1)?),
                        detail: row.get(2)?,
                        first_seen: row.get(3)?,
                    })
                },
            )
            .optional()?)
    }
}
