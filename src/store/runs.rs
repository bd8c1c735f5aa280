//! Roots and runs: what was run, on what, when, and how it ended.
//!
//! Every question the engines and commands ask about past runs ("the last
//! delivered scan", "the previous audit of this remote") is a method here,
//! so the rules they encode are written once.

use std::path::Path;

use anyhow::{Result, bail};
use rusqlite::{OptionalExtension, params};

use super::Index;
use crate::model::{Run, now_unix};

impl Index {
    /// The id of ROOT in this index, created on first use.
    pub fn root_id(&mut self, root: &Path) -> Result<i64> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = root.as_os_str().as_bytes();
        if let Some(id) = self.find_root(root)? {
            return Ok(id);
        }
        self.conn.execute(
            "INSERT INTO roots(path, created_at) VALUES (?1, ?2)",
            params![bytes, now_unix()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn find_root(&self, root: &Path) -> Result<Option<i64>> {
        use std::os::unix::ffi::OsStrExt;
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM roots WHERE path = ?1",
                [root.as_os_str().as_bytes()],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn begin_run(
        &mut self,
        root_id: Option<i64>,
        command: &str,
        remote: Option<&str>,
        label: Option<&str>,
    ) -> Result<i64> {
        if let Some(label) = label
            && let Some(run) = self.run_labelled(label)?
        {
            bail!("label {label:?} already names run {run}");
        }
        self.conn.execute(
            "INSERT INTO runs(root_id, command, remote, label, started_at, status) VALUES (?1, ?2, ?3, ?4, ?5, 'running')",
            params![root_id, command, remote, label, now_unix()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_run(
        &mut self,
        run_id: i64,
        status: &str,
        exit_code: Option<i64>,
        merkle_root: Option<&[u8; 32]>,
        summary: &str,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET finished_at = ?2, status = ?3, exit_code = ?4, merkle_root = ?5, summary = ?6 WHERE id = ?1",
            params![run_id, now_unix(), status, exit_code, merkle_root.map(|h| h.as_slice()), summary],
        )?;
        Ok(())
    }

    /// Replaces the outcome of a finished run (an audit's command adds its
    /// scan's discrepancies to the engine's summary), keeping its times.
    pub fn set_run_outcome(
        &mut self,
        run_id: i64,
        status: &str,
        exit_code: Option<i64>,
        summary: &str,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET status = ?2, exit_code = ?3, summary = ?4 WHERE id = ?1 AND finished_at IS NOT NULL",
            params![run_id, status, exit_code, summary],
        )?;
        Ok(())
    }

    /// The last finished scan of a root, if any.
    pub fn last_scan(&self, root_id: i64) -> Result<Option<Run>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{SELECT_RUN} WHERE r.root_id = ?1 AND r.merkle_root IS NOT NULL ORDER BY r.id DESC LIMIT 1"
        ))?;
        Ok(stmt.query_row([root_id], run_from_row).optional()?)
    }

    /// The last run that finished (any outcome but `failed`): what the
    /// index holds as complete.
    pub fn last_finished_run(&self) -> Result<Option<Run>> {
        let mut stmt = self.conn.prepare(&format!(
            "{SELECT_RUN} WHERE r.finished_at IS NOT NULL AND r.status != 'failed' ORDER BY r.id DESC LIMIT 1"
        ))?;
        Ok(stmt.query_row([], run_from_row).optional()?)
    }

    pub fn runs(&self) -> Result<Vec<Run>> {
        let mut stmt = self.conn.prepare(&format!("{SELECT_RUN} ORDER BY r.id"))?;
        let rows = stmt.query_map([], run_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn run(&self, id: i64) -> Result<Option<Run>> {
        let mut stmt = self
            .conn
            .prepare(&format!("{SELECT_RUN} WHERE r.id = ?1"))?;
        Ok(stmt.query_row([id], run_from_row).optional()?)
    }

    /// Finds the root whose stored path is `root_bytes` (a run's `root`).
    pub fn root_id_of_bytes(&self, root_bytes: &[u8]) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT id FROM roots WHERE path = ?1", [root_bytes], |r| {
                r.get(0)
            })?)
    }

    /// The last run that scanned this root (any run without a remote: a
    /// scan, whatever command it served), and its Merkle root if it
    /// finished. A later interrupted scan counts (with no root), so its
    /// partial writes are never mistaken for an unchanged tree.
    pub fn last_scan_run(&self, root_id: i64) -> Result<Option<(i64, Option<[u8; 32]>)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, merkle_root FROM runs WHERE root_id = ?1 AND remote IS NULL ORDER BY id DESC LIMIT 1",
                [root_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// The last scan of this root whose report reached its reader: a
    /// finished `vouch scan`, or the scan an audit runs first (recorded as
    /// an `audit` run without a remote) when the audit itself (the next
    /// run) finished without failing; otherwise its report never came out.
    pub fn delivered_scan(&self, root_id: i64) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT s.id FROM runs s WHERE s.root_id = ?1 AND s.merkle_root IS NOT NULL
                   AND (s.command = 'scan' OR EXISTS (SELECT 1 FROM runs a WHERE a.id = s.id + 1
                       AND a.root_id = s.root_id AND a.remote IS NOT NULL
                       AND a.finished_at IS NOT NULL AND a.status != 'failed'))
                 ORDER BY s.id DESC LIMIT 1",
                [root_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Scan runs of a root strictly between two runs (scans whose report
    /// never came out, see [`Index::delivered_scan`]).
    pub fn scans_between(&self, root_id: i64, after: i64, before: i64) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM runs WHERE root_id = ?1 AND id > ?2 AND id < ?3 AND remote IS NULL",
            params![root_id, after, before],
            |r| r.get(0),
        )?)
    }

    /// The previous finished audit of the same root and remote (for
    /// `first_seen`).
    pub fn last_audit_run(&self, root_id: i64, remote: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM runs WHERE root_id = ?1 AND remote = ?2 AND command = 'audit' AND status IN ('ok', 'findings') ORDER BY id DESC LIMIT 1",
                params![root_id, remote],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// When a run of the same command, root and remote last exited 0.
    pub fn last_success(
        &self,
        command: &str,
        root: Option<&str>,
        remote: Option<&str>,
    ) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT max(r.finished_at) FROM runs r JOIN roots ON roots.id = r.root_id
                 WHERE r.command = ?1 AND CAST(roots.path AS TEXT) = ?2 AND r.remote IS ?3 AND r.exit_code = 0",
                params![command, root, remote],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// The run a label names, if any.
    pub fn run_labelled(&self, label: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row("SELECT id FROM runs WHERE label = ?1", [label], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Every label in use, oldest run first.
    pub fn labels(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT label FROM runs WHERE label IS NOT NULL ORDER BY id")?;
        let labels = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(labels)
    }
}

const SELECT_RUN: &str = "SELECT r.id, roots.path, r.command, r.remote, r.label, r.started_at, r.finished_at, r.status, r.exit_code, r.merkle_root, r.summary FROM runs r LEFT JOIN roots ON roots.id = r.root_id";

fn run_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        id: row.get(0)?,
        root: row.get(1)?,
        command: row.get(2)?,
        remote: row.get(3)?,
        label: row.get(4)?,
        started_at: row.get(5)?,
        finished_at: row.get(6)?,
        status: row.get(7)?,
        exit_code: row.get(8)?,
        merkle_root: row.get(9)?,
        summary: row.get(10)?,
    })
}
