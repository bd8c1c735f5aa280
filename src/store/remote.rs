//! The remote side of the index: the last listing of each remote, and what
//! vouch proved about each object (`remote_objects`).

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
    /// match is no read) that have a file of the same size in the
    /// manifest, whose sizes add up to at most `budget` bytes.
    ///
    /// They are the first objects in [`ScrubPlace`] order, so what is
    /// returned is where they end, not their keys: one key, however many
    /// objects (and however small) the budget covers. The rows are read in
    /// that order and dropped until the budget is spent.
    pub fn scrub_selection(
        &self,
        root_id: i64,
        remote: &str,
        run_id: i64,
        budget: u64,
    ) -> Result<ScrubSelection> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT r.key, r.size, r.verified_method IS 'read', r.verified_at FROM remote_objects r
             JOIN entries e ON e.root_id = ?3 AND e.path = r.key AND e.until_run IS NULL
                           AND e.kind = {FILE} AND e.size = r.size
             WHERE r.remote = ?1 AND r.seen_run = ?2
             ORDER BY r.verified_method IS 'read', r.verified_at, r.key"
        ))?;
        let mut rows = stmt.query(params![remote, run_id, root_id])?;
        let mut used = 0u64;
        while let Some(row) = rows.next()? {
            let size = row.get::<_, i64>(1)? as u64;
            if used + size > budget {
                return Ok(ScrubSelection::Before(Some(ScrubPlace {
                    read: row.get(2)?,
                    verified_at: row.get(3)?,
                    key: row.get(0)?,
                })));
            }
            used += size;
        }
        Ok(ScrubSelection::Before(None))
    }
}

/// Where an object stands in a scrub's order: never read before read
/// (`verified_method IS 'read'`), then least recently read (never read,
/// `NULL`, first), then by key — the `ORDER BY` of
/// [`Index::scrub_selection`], field for field (SQLite sorts `NULL` first
/// and a BLOB bytewise, as `Option` and `Vec<u8>` compare).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ScrubPlace {
    read: bool,
    verified_at: Option<i64>,
    key: Vec<u8>,
}

/// The objects a scrub re-reads (see [`Index::scrub_selection`]), held as
/// the first object it does not: memory does not grow with the number
/// chosen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ScrubSelection {
    /// No scrub: nothing is re-read.
    #[default]
    Nothing,
    /// Every object before this place (`None`: every object).
    Before(Option<ScrubPlace>),
}

impl ScrubSelection {
    /// Whether `obj` is chosen. Asked only of an object of the listing the
    /// selection was made from, with a current file of the same size (the
    /// objects the selection was made among).
    pub fn selects(&self, obj: &RemoteRow) -> bool {
        match self {
            ScrubSelection::Nothing => false,
            ScrubSelection::Before(None) => true,
            ScrubSelection::Before(Some(cut)) => {
                let read = obj.verified_method == Some(Proof::Read);
                (read, obj.verified_at, obj.key.as_slice())
                    < (cut.read, cut.verified_at, cut.key.as_slice())
            }
        }
    }

    /// Keys held (at most one, whatever the number chosen).
    pub fn keys_held(&self) -> usize {
        usize::from(matches!(self, ScrubSelection::Before(Some(_))))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::store::tests::index_with_runs;

    /// The selection as it was made before: every chosen key, collected.
    fn collected_whole(index: &Index, budget: u64) -> HashSet<Vec<u8>> {
        let mut stmt = index
            .conn
            .prepare(&format!(
                "SELECT r.key, r.size FROM remote_objects r
                 JOIN entries e ON e.root_id = 1 AND e.path = r.key AND e.until_run IS NULL
                               AND e.kind = {FILE} AND e.size = r.size
                 WHERE r.remote = 'r' AND r.seen_run = 2
                 ORDER BY r.verified_method IS 'read', r.verified_at, r.key"
            ))
            .unwrap();
        let mut rows = stmt.query([]).unwrap();
        let mut chosen = HashSet::new();
        let mut used = 0u64;
        while let Some(row) = rows.next().unwrap() {
            let size = row.get::<_, i64>(1).unwrap() as u64;
            if used + size > budget {
                break;
            }
            used += size;
            chosen.insert(row.get(0).unwrap());
        }
        chosen
    }

    /// Thousands of tiny objects (zero bytes too), read and never read,
    /// ties on when, keys with odd bytes, objects with no file, a file of
    /// another size, a deleted file, a symlink, an object gone from the
    /// listing: whatever the budget, the selection holds one key and
    /// chooses exactly the objects collecting them all chose.
    #[test]
    fn a_scrub_selection_holds_one_key_and_chooses_what_collecting_chose() {
        let dir = tempfile::tempdir().unwrap();
        let index = index_with_runs(&dir.path().join("i.sqlite3"), &[(1, "scan"), (2, "audit")]);
        let mut entry = index
            .conn
            .prepare(
                "INSERT INTO entries(root_id, path, since_run, until_run, kind, size, mtime_ns, ctime_ns, inode)
                 VALUES (1, ?1, 1, ?2, ?3, ?4, 1, 1, 1)",
            )
            .unwrap();
        let mut object = index
            .conn
            .prepare(
                "INSERT INTO remote_objects(remote, key, size, seen_run, verified_method, verified_at)
                 VALUES ('r', ?1, ?2, ?3, ?4, ?5)",
            )
            .unwrap();
        // xorshift: the same objects every time.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut candidates = HashSet::new();
        for i in 0..6000u64 {
            let mut key = format!("d{}\0f{i}", i % 7).into_bytes();
            if i % 61 == 0 {
                key.insert(0, 0xff);
            }
            let size = next(40) as i64;
            let method = match next(4) {
                0 => None,
                1 => Some(Proof::EtagMd5.name()),
                _ => Some(Proof::Read.name()),
            };
            let at = (next(3) > 0).then(|| next(5) as i64);
            let seen = if i % 37 == 0 { 1 } else { 2 };
            object
                .execute(params![key, size, seen, method, at])
                .unwrap();
            let (until, kind, file_size) = match i % 11 {
                0 => continue,
                1 => (None, FILE, size + 1),
                2 => (Some(2), FILE, size),
                3 => (None, 1, size),
                _ => (None, FILE, size),
            };
            entry.execute(params![key, until, kind, file_size]).unwrap();
            if seen == 2 && i % 11 > 3 {
                candidates.insert(key);
            }
        }
        drop((entry, object));
        // What the merger asks about: listed objects with a current file
        // of the same size.
        let asked: Vec<RemoteRow> = index
            .listed_objects("r", 2)
            .map(Result::unwrap)
            .filter(|r| candidates.contains(&r.key))
            .collect();
        assert_eq!(asked.len(), candidates.len());
        let total: u64 = asked.iter().map(|r| r.size).sum();
        let mut most = 0;
        for budget in [0, 1, 39, 1000, 20_000, total - 1, total, u64::MAX] {
            let selection = index.scrub_selection(1, "r", 2, budget).unwrap();
            assert!(selection.keys_held() <= 1, "{budget}");
            let chosen: HashSet<Vec<u8>> = asked
                .iter()
                .filter(|r| selection.selects(r))
                .map(|r| r.key.clone())
                .collect();
            let whole = collected_whole(&index, budget);
            assert_eq!(chosen, whole, "budget {budget}");
            most = most.max(whole.len());
        }
        // Collected, the biggest selection would have held every key.
        assert_eq!(most, candidates.len());
        assert!(most > 3000, "{most}");
        assert!(asked.iter().all(|r| !ScrubSelection::Nothing.selects(r)));
    }
}
