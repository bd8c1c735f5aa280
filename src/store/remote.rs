//! The remote side of the index: the last listing of each remote, and what
//! vouch proved about each object (`remote_objects`).

use std::collections::HashSet;

use anyhow::Result;
use rusqlite::params;

use super::{FILE, Index, PAGE, Paged};
use crate::model::{Proof, RemoteRow};

const SELECT_REMOTE: &str = "SELECT key, size, etag, version, last_modified, verified_blake3, verified_etag, verified_size, verified_at, storage_class, verified_method FROM remote_objects";

fn remote_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RemoteRow> {
    Ok(RemoteRow {
        key: row.get(0)?,
        size: row.get::<_, i64>(1)? as u64,
        etag: row.get(2)?,
        version: row.get(3)?,
        last_modified: row.get::<_, Option<i64>>(4)?.unwrap_or(0),
        verified_blake3: row.get(5)?,
        verified_fingerprint: row.get(6)?,
        verified_size: row.get::<_, Option<i64>>(7)?.map(|s| s as u64),
        verified_at: row.get(8)?,
        storage_class: row.get(9)?,
        verified_method: row
            .get::<_, Option<String>>(10)?
            .as_deref()
            .and_then(Proof::from_name),
    })
}

/// How much of a root's manifest a listing holds at the right size.
#[derive(Debug, Clone, Copy, Default)]
pub struct Coverage {
    pub local_files: u64,
    pub local_bytes: u64,
    pub held_files: u64,
    pub held_bytes: u64,
    /// Objects listed under the prefix.
    pub objects: u64,
    /// Newest last-modified time among them.
    pub newest: Option<i64>,
}

impl Index {
    /// Forgets cached objects the latest complete listing did not return.
    pub fn prune_remote(&self, remote: &str, run_id: i64) -> Result<usize> {
        Ok(self.conn.execute(
            "DELETE FROM remote_objects WHERE remote = ?1 AND seen_run IS NOT ?2",
            params![remote, run_id],
        )?)
    }

    /// The objects listed by run `run_id`, in key order.
    pub fn listed_objects<'a>(
        &'a self,
        remote: &'a str,
        run_id: i64,
    ) -> impl Iterator<Item = Result<RemoteRow>> + 'a {
        Paged::new(
            |r: &RemoteRow| &r.key,
            move |after: Option<&[u8]>| {
                let mut stmt = self.conn.prepare_cached(&format!(
                    "{SELECT_REMOTE} WHERE remote = ?1 AND seen_run = ?2 AND key >= ?3 ORDER BY key LIMIT ?4"
                ))?;
                let rows = stmt.query_map(
                    params![remote, run_id, after.unwrap_or(b""), PAGE as i64],
                    remote_from_row,
                )?;
                Ok(rows.collect::<rusqlite::Result<Vec<RemoteRow>>>()?)
            },
        )
    }

    /// Coverage of the current manifest of `root_id` by the listing of run
    /// `run_id`, and the newest object.
    pub fn coverage(&self, root_id: i64, remote: &str, run_id: i64) -> Result<Coverage> {
        let (local_files, local_bytes, held_files, held_bytes): (i64, i64, i64, i64) =
            self.conn.query_row(
                &format!(
                    "SELECT count(*), coalesce(sum(e.size), 0), count(r.key),
                            coalesce(sum(CASE WHEN r.key IS NOT NULL THEN e.size END), 0)
                     FROM entries e LEFT JOIN remote_objects r
                       ON r.remote = ?2 AND r.key = e.path AND r.seen_run = ?3 AND r.size = e.size
                     WHERE e.root_id = ?1 AND e.until_run IS NULL AND e.kind = {FILE}"
                ),
                params![root_id, remote, run_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
        let (objects, newest): (i64, Option<i64>) = self.conn.query_row(
            "SELECT count(*), max(last_modified) FROM remote_objects WHERE remote = ?1 AND seen_run = ?2",
            params![remote, run_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(Coverage {
            local_files: local_files as u64,
            local_bytes: local_bytes as u64,
            held_files: held_files as u64,
            held_bytes: held_bytes as u64,
            objects: objects as u64,
            newest,
        })
    }

    /// The least recently read objects (never read first: an MD5 ETag
    /// match is no read) that have a
    /// file of the same size in the manifest, whose sizes add up to at most
    /// `budget` bytes.
    pub fn scrub_selection(
        &self,
        root_id: i64,
        remote: &str,
        run_id: i64,
        budget: u64,
    ) -> Result<HashSet<Vec<u8>>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT r.key, r.size FROM remote_objects r
             JOIN entries e ON e.root_id = ?3 AND e.path = r.key AND e.until_run IS NULL
                           AND e.kind = {FILE} AND e.size = r.size
             WHERE r.remote = ?1 AND r.seen_run = ?2
             ORDER BY r.verified_method IS 'read', r.verified_at, r.key"
        ))?;
        let mut rows = stmt.query(params![remote, run_id, root_id])?;
        let mut chosen = HashSet::new();
        let mut used = 0u64;
        while let Some(row) = rows.next()? {
            let size = row.get::<_, i64>(1)? as u64;
            if used + size > budget {
                break;
            }
            used += size;
            chosen.insert(row.get(0)?);
        }
        Ok(chosen)
    }
}
