//! Checksum proofs in the index: what the ladder concluded about each
//! object version (`remote_proofs`), and local digests of content other
//! than BLAKE3 (`content_digests`), keyed by the content's BLAKE3 so that
//! a digest is never reused for other bytes.

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::{Batch, Index};
use crate::model::ProofRow;

impl Index {
    /// The last proof recorded for `key` on `remote`, whatever its version.
    pub fn proof_of(&self, remote: &str, key: &[u8]) -> Result<Option<ProofRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT etag, size, last_modified, version, facts, verdict, method, params, blake3, detail, checked_at
             FROM remote_proofs WHERE remote = ?1 AND key = ?2",
        )?;
        Ok(stmt
            .query_row(params![remote, key], |r| {
                Ok(ProofRow {
                    key: key.to_vec(),
                    etag: r.get(0)?,
                    size: r.get::<_, i64>(1)? as u64,
                    last_modified: r.get(2)?,
                    version: r.get(3)?,
                    facts: r.get(4)?,
                    verdict: r.get(5)?,
                    method: r.get(6)?,
                    params: r.get(7)?,
                    blake3: r.get(8)?,
                    detail: r.get(9)?,
                    checked_at: r.get(10)?,
                })
            })
            .optional()?)
    }

    /// Every cached digest of the content whose BLAKE3 is `blake3`, as
    /// (spec, value) pairs.
    pub fn digests_of(&self, blake3: &[u8; 32]) -> Result<Vec<(String, Vec<u8>)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT spec, value FROM content_digests WHERE blake3 = ?1")?;
        let rows = stmt.query_map([blake3.as_slice()], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl Batch<'_> {
    /// Records (replacing any earlier one) the proof of one object version.
    pub fn record_proof(&mut self, remote: &str, p: &ProofRow) -> Result<()> {
        let mut stmt = self.conn()?.prepare_cached(
            "INSERT OR REPLACE INTO remote_proofs(remote, key, etag, size, last_modified, version,
                 facts, verdict, method, params, blake3, detail, checked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        stmt.execute(params![
            remote,
            p.key,
            p.etag,
            p.size as i64,
            p.last_modified,
            p.version,
            p.facts,
            p.verdict,
            p.method,
            p.params,
            p.blake3.as_ref().map(|b| b.as_slice()),
            p.detail,
            p.checked_at
        ])?;
        self.tick()
    }
}
