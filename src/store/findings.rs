//! Stored discrepancies of past runs (`findings`), read back for `report`
//! and for the trust rules of snapshots.

use anyhow::Result;
use rusqlite::OptionalExtension;
use serde_json::Value;

use super::{Index, PAGE, Paged};
use crate::model::{Finding, Kind};

/// A path a run could not vouch for: its key, the finding's kind and
/// detail.
pub type Unsettled = (Vec<u8>, Kind, Option<String>);

impl Index {
    /// The stored findings of run `run_id`, in the order they were found,
    /// read a page at a time (`PAGE` rows, by id from the run's first
    /// to its last), so a run with millions of findings is never held
    /// whole. A kind this binary does not know (from a newer vouch) is
    /// skipped.
    pub fn findings_of_run(&self, run_id: i64) -> impl Iterator<Item = Result<Finding>> + '_ {
        // The run's first and last id, read once: its rows lie between
        // them (written together, under the index lock; another run's
        // rows in between are skipped), so a page is a range of the
        // table's own key, whatever the run's size. The index by run is
        // in path order: paging it by id would sort the run at each page.
        let mut span: Option<Option<(i64, i64)>> = None;
        Paged::new(
            |row: &([u8; 8], Option<Finding>)| row.0.as_slice(),
            move |after: Option<&[u8]>| {
                let span = match span {
                    Some(span) => span,
                    None => *span.insert(self.conn.query_row(
                        "SELECT min(id), max(id) FROM findings WHERE run_id = ?1",
                        [run_id],
                        |r| Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?)),
                    )?),
                };
                let Some((first, last)) = span else {
                    return Ok(Vec::new());
                };
                let from = match after {
                    Some(key) => i64::from_be_bytes(key.try_into()?),
                    None => first,
                };
                let mut stmt = self.conn.prepare_cached(
                    "SELECT id, kind, path, local, remote, detail, first_seen FROM findings
                     WHERE id BETWEEN ?2 AND ?3 AND +run_id = ?1 ORDER BY id LIMIT ?4",
                )?;
                let rows =
                    stmt.query_map(rusqlite::params![run_id, from, last, PAGE as i64], |row| {
                        let id: i64 = row.get(0)?;
                        let kind_name: String = row.get(1)?;
                        let parse = |v: Option<String>| {
                            v.and_then(|t| serde_json::from_str::<Value>(&t).ok())
                        };
                        let finding = match Kind::from_name(&kind_name) {
                            Some(kind) => Some(Finding {
                                kind,
                                path: row.get(2)?,
                                local: parse(row.get(3)?),
                                remote: parse(row.get(4)?),
                                detail: row.get(5)?,
                                first_seen: row.get(6)?,
                            }),
                            None => None,
                        };
                        Ok((id.to_be_bytes(), finding))
                    })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            },
        )
        .filter_map(|row| row.map(|(_, f)| f).transpose())
    }

    /// The first finding of `kind` run `run_id` made about the whole tree
    /// or backup (path `""`), if any: one row of the index by run, however
    /// many findings the run made.
    pub fn whole_finding(&self, run_id: i64, kind: Kind) -> Result<Option<Finding>> {
        let row = self
            .conn
            .query_row(
                "SELECT local, remote, detail, first_seen FROM findings
                 WHERE run_id = ?1 AND path = ?2 AND kind = ?3 ORDER BY id LIMIT 1",
                rusqlite::params![run_id, Vec::<u8>::new(), kind.name()],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                },
            )
            .optional()?;
        let parse = |v: Option<String>| v.and_then(|t| serde_json::from_str::<Value>(&t).ok());
        Ok(row.map(|(local, remote, detail, first_seen)| Finding {
            kind,
            path: Vec::new(),
            local: parse(local),
            remote: parse(remote),
            detail,
            first_seen,
        }))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::index_with_runs;

    /// Past a page (4,096 rows), with a path found twice, odd bytes and
    /// another kind and run in between: each path once, in key order,
    /// from the key asked for.
    #[test]
    fn finding_paths_stream_each_path_once_in_key_order_across_pages() {
        let dir = tempfile::tempdir().unwrap();
        let index = index_with_runs(&dir.path().join("i.sqlite3"), &[(1, "audit"), (2, "audit")]);
        let mut insert = index
            .conn
            .prepare("INSERT INTO findings(run_id, kind, path) VALUES (?1, ?2, ?3)")
            .unwrap();
        let mut missing = Vec::new();
        for i in 0..(PAGE as u32 * 2 + 10) {
            let mut path = format!("d{}\0f{i:05}", i % 3).into_bytes();
            if i % 100 == 0 {
                path.push(0xff);
            }
            for (run, kind) in [(1, "missing"), (1, "extra"), (2, "missing")] {
                insert.execute(rusqlite::params![run, kind, path]).unwrap();
            }
            if i % 1000 == 0 {
                insert
                    .execute(rusqlite::params![1, "missing", path])
                    .unwrap();
            }
            missing.push(path);
        }
        drop(insert);
        missing.sort();
        let read = |from: &[u8]| -> Vec<Vec<u8>> {
            index
                .finding_paths(1, Kind::Missing, from.to_vec())
                .collect::<Result<_>>()
                .unwrap()
        };
        assert_eq!(read(b""), missing);
        let from = b"d1\0f05000".to_vec();
        let start = missing.partition_point(|p| *p < from);
        assert_eq!(read(&from), missing[start..]);
        assert_eq!(read(b"e"), Vec::<Vec<u8>>::new());
        assert_eq!(index.finding_paths(1, Kind::Corrupt, Vec::new()).count(), 0);
    }
}
