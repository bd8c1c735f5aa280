//! Stored discrepancies of past runs (`findings`), read back for `report`
//! and for the trust rules of snapshots.

use anyhow::Result;
use serde_json::Value;

use super::{Index, PAGE, Paged};
use crate::model::{Finding, Kind};

/// A path a run could not vouch for: its key, the finding's kind and
/// detail.
pub type Unsettled = (Vec<u8>, Kind, Option<String>);

impl Index {
    /// The stored findings of run `run_id`, in the order they were found.
    /// A kind this binary does not know (from a newer vouch) is skipped.
    pub fn findings_of_run(&self, run_id: i64) -> Result<Vec<Finding>> {
        let mut stmt = self.conn.prepare(
            "SELECT kind, path, local, remote, detail, first_seen FROM findings WHERE run_id = ?1 ORDER BY id",
        )?;
        let mut rows = stmt.query([run_id])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let kind_name: String = row.get(0)?;
            let Some(kind) = Kind::from_name(&kind_name) else {
                continue;
            };
            let parse = |v: Option<String>| v.and_then(|t| serde_json::from_str::<Value>(&t).ok());
            out.push(Finding {
                kind,
                path: row.get(1)?,
                local: parse(row.get(2)?),
                remote: parse(row.get(3)?),
                detail: row.get(4)?,
                first_seen: row.get(5)?,
            });
        }
        Ok(out)
    }

    /// The paths run `run_id` could not vouch for: `unreadable` and
    /// `corrupt` findings, with their details.
    pub fn unsettled_of_run(&self, run_id: i64) -> Result<Vec<Unsettled>> {
        let mut stmt = self.conn.prepare(
            "SELECT path, kind, detail FROM findings WHERE run_id = ?1 AND kind IN ('unreadable', 'corrupt')",
        )?;
        let mut rows = stmt.query([run_id])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let kind: String = row.get(1)?;
            out.push((
                row.get(0)?,
                Kind::from_name(&kind).unwrap_or(Kind::Unreadable),
                row.get(2)?,
            ));
        }
        Ok(out)
    }

    /// The paths of run `run_id`'s findings of `kind`, each once, in key
    /// order, from `from` on: read a page at a time (the index
    /// `findings_by_run` is in this order), so a run with millions of
    /// findings is never held whole.
    pub fn finding_paths(
        &self,
        run_id: i64,
        kind: Kind,
        from: Vec<u8>,
    ) -> impl Iterator<Item = Result<Vec<u8>>> + '_ {
        Paged::new(
            |p: &Vec<u8>| p.as_slice(),
            move |after: Option<&[u8]>| {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT DISTINCT path FROM findings WHERE run_id = ?1 AND kind = ?2 AND path >= ?3 ORDER BY path LIMIT ?4",
                )?;
                let rows = stmt.query_map(
                    rusqlite::params![
                        run_id,
                        kind.name(),
                        after.unwrap_or(from.as_slice()),
                        PAGE as i64
                    ],
                    |r| r.get::<_, Vec<u8>>(0),
                )?;
                Ok(rows.collect::<rusqlite::Result<Vec<Vec<u8>>>>()?)
            },
        )
    }
}
