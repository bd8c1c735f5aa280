//! The manifest: temporal rows of `entries`, read back as the current
//! manifest, as the manifest of any finished run, or as the changes a run
//! made.
//!
//! A row is valid from `since_run` until `until_run` (NULL while current);
//! the manifest as of run N is spelled once, by [`super::at_run`].

use anyhow::Result;
use rusqlite::{OptionalExtension, params};
use serde_json::{Map, Value, json};

use super::{DIR, FILE, Index, PAGE, Page, Paged, Pager, at_run};
use crate::model::{Entry, EntryKind, Finding, Kind, Node, Stat};

const SELECT_ENTRY: &str = "SELECT path, kind, size, mtime_ns, ctime_ns, inode, blake3, md5, sha256, target, since_run, trusted_blake3, crc64nvme FROM entries";

/// Reads an entry from a row selected with [`SELECT_ENTRY`]'s columns.
pub(super) fn entry_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let kind: i64 = row.get(1)?;
    Ok(Entry {
        path: row.get_ref(0)?.as_blob()?.to_vec(),
        kind: EntryKind::from_i64(kind).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Integer, e.into())
        })?,
        stat: Stat {
            size: row.get::<_, i64>(2)? as u64,
            mtime_ns: row.get(3)?,
            ctime_ns: row.get(4)?,
            inode: row.get::<_, i64>(5)? as u64,
        },
        blake3: row.get(6)?,
        md5: row.get(7)?,
        sha256: row.get(8)?,
        target: row.get(9)?,
        since_run: row.get(10)?,
        trusted_blake3: row.get(11)?,
        crc64nvme: row.get(12)?,
    })
}

const SNAPSHOT_COLUMNS: &str =
    "SELECT path, kind, size, blake3, md5, sha256, target, mtime_ns, ctime_ns, inode FROM entries";

fn node_from_row(row: &rusqlite::Row<'_>) -> Result<Node> {
    let kind = EntryKind::from_i64(row.get(1)?)?;
    let size = row.get::<_, i64>(2)? as u64;
    Ok(Node {
        key: row.get(0)?,
        kind,
        size: Some(size),
        stat: Some(Stat {
            size,
            mtime_ns: row.get(7)?,
            ctime_ns: row.get(8)?,
            inode: row.get::<_, i64>(9)? as u64,
        }),
        blake3: row.get(3)?,
        md5: row.get(4)?,
        sha256: row.get(5)?,
        target: row.get(6)?,
    })
}

/// A current row as the Merkle fold reads it (see
/// [`Index::fold_current`]).
pub struct FoldRow<'a> {
    pub path: &'a [u8],
    pub kind: EntryKind,
    pub stat: Stat,
    pub blake3: Option<[u8; 32]>,
    pub since_run: i64,
}

/// A page of the current manifest as the scan's walker reads it (see
/// [`Index::manifest_pages`]): the rows' paths and targets in one buffer,
/// their other columns inline, so a page is two allocations, not one or
/// two per row; a row becomes an owned [`Entry`] only when asked.
#[derive(Default)]
pub struct ManifestPage {
    bytes: Vec<u8>,
    rows: Vec<PageRow>,
    /// The first of `rows` in the page: the one before it repeated the
    /// last row of the page before (see [`Pager`]).
    from: usize,
}

struct PageRow {
    path: (u32, u32),
    target: Option<(u32, u32)>,
    kind: EntryKind,
    stat: Stat,
    since_run: i64,
    blake3: Option<[u8; 32]>,
    md5: Option<[u8; 16]>,
    sha256: Option<[u8; 32]>,
    trusted_blake3: Option<[u8; 32]>,
    crc64nvme: Option<[u8; 8]>,
}

/// A row of a [`ManifestPage`], borrowed.
#[derive(Clone, Copy)]
pub struct PageEntry<'a> {
    page: &'a ManifestPage,
    row: &'a PageRow,
}

impl ManifestPage {
    pub fn len(&self) -> usize {
        self.rows.len() - self.from
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i` (in key order).
    pub fn get(&self, i: usize) -> Option<PageEntry<'_>> {
        self.rows
            .get(self.from + i)
            .map(|row| PageEntry { page: self, row })
    }

    fn span(&self, (at, len): (u32, u32)) -> &[u8] {
        &self.bytes[at as usize..at as usize + len as usize]
    }

    fn keep(&mut self, b: &[u8]) -> Result<(u32, u32)> {
        let at = u32::try_from(self.bytes.len())?;
        self.bytes.extend_from_slice(b);
        Ok((at, u32::try_from(b.len())?))
    }
}

impl Page for ManifestPage {
    fn len(&self) -> usize {
        ManifestPage::len(self)
    }
    fn key_at(&self, i: usize) -> &[u8] {
        self.span(self.rows[self.from + i].path)
    }
    fn skip(&mut self, n: usize) {
        self.from += n;
    }
}

impl<'a> PageEntry<'a> {
    pub fn path(&self) -> &'a [u8] {
        self.page.span(self.row.path)
    }
    pub fn kind(&self) -> EntryKind {
        self.row.kind
    }
    pub fn stat(&self) -> Stat {
        self.row.stat
    }
    pub fn target(&self) -> Option<&'a [u8]> {
        self.row.target.map(|t| self.page.span(t))
    }
    pub fn has_blake3(&self) -> bool {
        self.row.blake3.is_some()
    }
    pub fn has_md5(&self) -> bool {
        self.row.md5.is_some()
    }
    pub fn has_sha256(&self) -> bool {
        self.row.sha256.is_some()
    }
    /// Set while the file is rotted (see [`Entry::trusted_blake3`]).
    pub fn is_rotted(&self) -> bool {
        self.row.trusted_blake3.is_some()
    }

    /// The row as an owned [`Entry`].
    pub fn to_entry(&self) -> Entry {
        let r = self.row;
        Entry {
            path: self.path().to_vec(),
            kind: r.kind,
            stat: r.stat,
            blake3: r.blake3,
            md5: r.md5,
            sha256: r.sha256,
            target: self.target().map(<[u8]>::to_vec),
            since_run: r.since_run,
            trusted_blake3: r.trusted_blake3,
            crc64nvme: r.crc64nvme,
        }
    }
}

/// A blob column of `N` bytes, or NULL.
fn fixed<const N: usize>(row: &rusqlite::Row<'_>, i: usize) -> Result<Option<[u8; N]>> {
    match row.get_ref(i)?.as_blob_or_null()? {
        None => Ok(None),
        Some(b) => Ok(Some(<[u8; N]>::try_from(b).map_err(|_| {
            anyhow::anyhow!(
                "the index is corrupt: a value of {} bytes where {N} belong",
                b.len()
            )
        })?)),
    }
}

/// Which current rows to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// Every entry, ROOT itself (key `""`) and directories included.
    All,
    /// Regular files and symlinks.
    NotDirs,
}

impl Index {
    /// The current manifest of a root, in key order, read a page at a time
    /// (each page in a read transaction of its own: safe beside a writer
    /// that writes only rows the reader has passed).
    pub fn current_entries(
        &self,
        root_id: i64,
        which: Rows,
    ) -> impl Iterator<Item = Result<Entry>> + '_ {
        let kinds = match which {
            Rows::All => String::new(),
            Rows::NotDirs => format!("AND kind != {DIR}"),
        };
        Paged::new(
            |e: &Entry| &e.path,
            move |after: Option<&[u8]>| {
                // From ROOT itself, whose key is empty, or from the last row
                // read (see [`Pager`]).
                let mut stmt = self.conn.prepare_cached(&format!(
                    "{SELECT_ENTRY} WHERE root_id = ?1 AND until_run IS NULL {kinds} AND path >= ?2 ORDER BY path LIMIT ?3"
                ))?;
                let rows = stmt.query_map(
                    params![root_id, after.unwrap_or(b""), PAGE as i64],
                    entry_from_row,
                )?;
                // A page's room at once: growing it row by row moved
                // every row again at each doubling.
                let mut page = Vec::with_capacity(PAGE);
                for row in rows {
                    page.push(row?);
                }
                Ok(page)
            },
        )
    }

    /// The current manifest of a root, in key order, a page (`PAGE`
    /// rows) at a time, as [`Index::current_entries`] reads it (each page
    /// in a read transaction of its own, as long as its fetch; two current
    /// rows for one path are an error: see `Pager`) but into
    /// [`ManifestPage`]s: the scan's walker compares most rows and keeps
    /// none. Each page is read into one `blank` gives: a page already
    /// read, given back, is read into again, its room kept.
    pub fn manifest_pages(
        &self,
        root_id: i64,
        mut blank: impl FnMut() -> ManifestPage,
    ) -> impl Iterator<Item = Result<ManifestPage>> {
        let mut pager = Pager::default();
        std::iter::from_fn(move || pager.next(|after| self.manifest_page(root_id, after, blank())))
    }

    /// One page of [`Index::manifest_pages`], read into `page`: up to
    /// [`PAGE`] rows from `after` (included; from the start when `None`).
    fn manifest_page(
        &self,
        root_id: i64,
        after: Option<&[u8]>,
        mut page: ManifestPage,
    ) -> Result<ManifestPage> {
        // The statement is reset when `rows` is dropped, at the end of the
        // fetch: no snapshot is held between pages (see [`Pager`]).
        let mut stmt = self.conn.prepare_cached(&format!(
            "{SELECT_ENTRY} WHERE root_id = ?1 AND until_run IS NULL AND path >= ?2 ORDER BY path LIMIT ?3"
        ))?;
        let mut rows = stmt.query(params![root_id, after.unwrap_or(b""), PAGE as i64])?;
        page.bytes.clear();
        page.rows.clear();
        page.from = 0;
        // A page's room at once (a page given back has it already).
        page.bytes.reserve(PAGE * 64);
        page.rows.reserve(PAGE);
        while let Some(row) = rows.next()? {
            let path = page.keep(row.get_ref(0)?.as_blob()?)?;
            let target = match row.get_ref(9)?.as_blob_or_null()? {
                Some(t) => Some(page.keep(t)?),
                None => None,
            };
            let kind = EntryKind::from_i64(row.get_ref(1)?.as_i64()?)?;
            page.rows.push(PageRow {
                path,
                target,
                kind,
                stat: Stat {
                    size: row.get_ref(2)?.as_i64()? as u64,
                    mtime_ns: row.get_ref(3)?.as_i64()?,
                    ctime_ns: row.get_ref(4)?.as_i64()?,
                    inode: row.get_ref(5)?.as_i64()? as u64,
                },
                blake3: fixed(row, 6)?,
                md5: fixed(row, 7)?,
                sha256: fixed(row, 8)?,
                since_run: row.get_ref(10)?.as_i64()?,
                trusted_blake3: fixed(row, 11)?,
                crc64nvme: fixed(row, 12)?,
            });
        }
        Ok(page)
    }

    /// Every current row of a root in key order, for the Merkle fold:
    /// one statement streamed on this connection (no other writer can
    /// run meanwhile), each row lent to `each` without copying its path.
    /// Two current rows for one path are an error, as in
    /// [`Index::current_entries`].
    pub fn fold_current(
        &self,
        root_id: i64,
        mut each: impl FnMut(FoldRow<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT path, kind, size, blake3, mtime_ns, ctime_ns, inode, since_run FROM entries
             WHERE root_id = ?1 AND until_run IS NULL ORDER BY path",
        )?;
        let mut rows = stmt.query([root_id])?;
        let mut last: Option<Vec<u8>> = None;
        while let Some(row) = rows.next()? {
            let path = row.get_ref(0)?.as_blob()?;
            if last.as_deref() == Some(path) {
                anyhow::bail!(
                    "the index is corrupt: two current rows for {}",
                    crate::model::paths::display(path)
                );
            }
            let blake3 = match row.get_ref(3)?.as_blob_or_null()? {
                None => None,
                Some(b) => Some(<[u8; 32]>::try_from(b).map_err(|_| {
                    anyhow::anyhow!(
                        "the index is corrupt: a hash of {} bytes for {}",
                        b.len(),
                        crate::model::paths::display(path)
                    )
                })?),
            };
            let size = row.get::<_, i64>(2)? as u64;
            each(FoldRow {
                path,
                kind: EntryKind::from_i64(row.get(1)?)?,
                stat: Stat {
                    size,
                    mtime_ns: row.get(4)?,
                    ctime_ns: row.get(5)?,
                    inode: row.get::<_, i64>(6)? as u64,
                },
                blake3,
                since_run: row.get(7)?,
            })?;
            let l = last.get_or_insert_with(Vec::new);
            l.clear();
            l.extend_from_slice(path);
        }
        Ok(())
    }

    /// One page of the manifest as of run `run_id`: up to `limit` nodes
    /// with keys after `lower` (or from it, when `inclusive`).
    pub fn snapshot_page(
        &self,
        root_id: i64,
        run_id: i64,
        lower: &[u8],
        inclusive: bool,
        limit: usize,
    ) -> Result<Vec<Node>> {
        let op = if inclusive { ">=" } else { ">" };
        let mut stmt = self.conn.prepare_cached(&format!(
            "{SNAPSHOT_COLUMNS} WHERE root_id = ?1 AND {} AND path {op} ?3 ORDER BY path LIMIT ?4",
            at_run(2)
        ))?;
        let mut rows = stmt.query(params![root_id, run_id, lower, limit as i64])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(node_from_row(row)?);
        }
        Ok(out)
    }

    /// True when some file of run `run_id`'s manifest has no content hash.
    pub fn has_unhashed(&self, root_id: i64, run_id: i64) -> Result<bool> {
        Ok(self.conn.query_row(
            &format!(
                "SELECT EXISTS(SELECT 1 FROM entries WHERE root_id = ?1 AND {} AND kind != {DIR} AND blake3 IS NULL)",
                at_run(2)
            ),
            params![root_id, run_id],
            |r| r.get(0),
        )?)
    }

    /// Regular files of run `run_id`'s manifest without a SHA-256.
    pub fn files_without_sha256(&self, root_id: i64, run_id: i64) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            &format!(
                "SELECT count(*) FROM entries WHERE root_id = ?1 AND {} AND kind = {FILE} AND sha256 IS NULL",
                at_run(2)
            ),
            params![root_id, run_id],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Files (with symlinks) and directories of run `run_id`'s manifest,
    /// ROOT excluded.
    pub fn count_at_run(&self, root_id: i64, run_id: i64) -> Result<(u64, u64)> {
        let (files, dirs): (i64, i64) = self.conn.query_row(
            &format!(
                "SELECT COALESCE(SUM(kind != {DIR}), 0), COALESCE(SUM(kind = {DIR} AND path != x''), 0) FROM entries WHERE root_id = ?1 AND {}",
                at_run(2)
            ),
            params![root_id, run_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((files as u64, dirs as u64))
    }

    /// True when `path` is a directory of the current manifest.
    pub fn is_current_dir(&self, root_id: i64, path: &[u8]) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT EXISTS(SELECT 1 FROM entries WHERE root_id = ?1 AND path = ?2 AND until_run IS NULL AND kind = {DIR})"
            ))?
            .query_row(params![root_id, path], |r| r.get(0))?)
    }

    /// Regular files of run `run_id`'s manifest and their total bytes.
    pub fn file_totals_at_run(&self, root_id: i64, run_id: i64) -> Result<(u64, u64)> {
        let (files, bytes): (i64, i64) = self.conn.query_row(
            &format!(
                "SELECT count(*), COALESCE(SUM(size), 0) FROM entries WHERE root_id = ?1 AND {} AND kind = {FILE}",
                at_run(2)
            ),
            params![root_id, run_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((files as u64, bytes as u64))
    }

    /// Current rows written by runs strictly between `after` and `before`
    /// (scans whose report never came out), in key order.
    pub fn opened_between(&self, root_id: i64, after: i64, before: i64) -> Result<Vec<Entry>> {
        let mut stmt = self.conn.prepare(&format!(
            "{SELECT_ENTRY} WHERE root_id = ?1 AND until_run IS NULL AND since_run > ?2 AND since_run < ?3 ORDER BY path"
        ))?;
        let rows = stmt
            .query_map(params![root_id, after, before], entry_from_row)?
            .collect::<rusqlite::Result<Vec<Entry>>>()?;
        Ok(rows)
    }

    /// The row of `path` that was current at run `after` and was closed by
    /// a run before `before`.
    pub fn closed_between(
        &self,
        root_id: i64,
        path: &[u8],
        after: i64,
        before: i64,
    ) -> Result<Option<Entry>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "{SELECT_ENTRY} WHERE root_id = ?1 AND path = ?2 AND since_run <= ?3 AND until_run > ?3 AND until_run < ?4"
            ))?
            .query_row(params![root_id, path, after, before], entry_from_row)
            .optional()?)
    }

    /// Files and symlinks current at run `after`, deleted by a run before
    /// `before`, with no row at all now (nor one closed by `before`).
    pub fn gone_between(&self, root_id: i64, after: i64, before: i64) -> Result<Vec<Entry>> {
        let mut stmt = self.conn.prepare(&format!(
            "{SELECT_ENTRY} e WHERE root_id = ?1 AND kind != {DIR} AND since_run <= ?2 AND until_run > ?2 AND until_run < ?3
             AND NOT EXISTS (SELECT 1 FROM entries c WHERE c.root_id = e.root_id AND c.path = e.path
                             AND (c.until_run IS NULL OR c.until_run = ?3))
             ORDER BY path"
        ))?;
        let rows = stmt
            .query_map(params![root_id, after, before], entry_from_row)?
            .collect::<rusqlite::Result<Vec<Entry>>>()?;
        Ok(rows)
    }

    /// The added, modified and deleted files of scan run `run_id`, derived
    /// from the rows it opened and closed: the added and modified ones by
    /// path, then the deleted ones by path, read a page (`PAGE` rows) at
    /// a time, so a first scan of millions of files is never held whole.
    /// A row opened for a rotted file is no change (the run stored its
    /// `corrupt` finding).
    pub fn scan_changes(&self, run_id: i64) -> impl Iterator<Item = Result<Finding>> + '_ {
        let opened = Paged::new(
            |f: &Finding| f.path.as_slice(),
            move |after: Option<&[u8]>| {
                let mut stmt = self.conn.prepare_cached(&format!(
                    "SELECT n.path, n.size, n.blake3,
                            EXISTS(SELECT 1 FROM entries o WHERE o.root_id = n.root_id AND o.path = n.path
                                   AND o.until_run = n.since_run AND o.kind != {DIR})
                     FROM entries n JOIN runs r ON r.root_id = n.root_id
                     WHERE r.id = ?1 AND n.since_run = ?1 AND n.kind != {DIR} AND n.trusted_blake3 IS NULL
                       AND n.path >= ?2
                     ORDER BY n.path LIMIT ?3"
                ))?;
                let rows = stmt.query_map(
                    params![run_id, after.unwrap_or_default(), PAGE as i64],
                    |row| {
                        let path: Vec<u8> = row.get(0)?;
                        let size: i64 = row.get(1)?;
                        let hash: Option<Vec<u8>> = row.get(2)?;
                        let replaced: bool = row.get(3)?;
                        let mut local = Map::new();
                        local.insert("size".into(), json!(size));
                        if let Some(h) = hash {
                            local.insert("blake3".into(), json!(hex::encode(h)));
                        }
                        let kind = if replaced {
                            Kind::Modified
                        } else {
                            Kind::Added
                        };
                        Ok(Finding::new(kind, path).local(Value::Object(local)))
                    },
                )?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            },
        );
        let closed = Paged::new(
            |f: &Finding| f.path.as_slice(),
            move |after: Option<&[u8]>| {
                let mut stmt = self.conn.prepare_cached(&format!(
                    "SELECT o.path, o.size FROM entries o JOIN runs r ON r.root_id = o.root_id
                     WHERE r.id = ?1 AND o.until_run = ?1 AND o.kind != {DIR}
                       AND NOT EXISTS(SELECT 1 FROM entries n WHERE n.root_id = o.root_id AND n.path = o.path
                                      AND n.since_run = ?1 AND n.kind != {DIR})
                       AND o.path >= ?2
                     ORDER BY o.path LIMIT ?3"
                ))?;
                let rows = stmt.query_map(
                    params![run_id, after.unwrap_or_default(), PAGE as i64],
                    |row| {
                        let path: Vec<u8> = row.get(0)?;
                        let size: i64 = row.get(1)?;
                        Ok(Finding::new(Kind::Deleted, path).local(json!({ "size": size })))
                    },
                )?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            },
        );
        opened.chain(closed)
    }
}
