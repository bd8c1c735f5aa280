//! Paged reads in key order, the rules spelled once: where the next page
//! starts, that a key read twice is an error, and why each page is a
//! statement of its own. Every paged reader of the store goes through a
//! [`Pager`]: the row readers as a [`Paged`] iterator of rows, the scan's
//! manifest reader ([`super::Index::manifest_pages`]) a page at a time.

use std::collections::VecDeque;

use anyhow::{Result, bail};

use super::PAGE;

/// A page of rows in key order, as a [`Pager`] fetches it.
pub(super) trait Page {
    /// Rows in the page.
    fn len(&self) -> usize;
    /// The key of row `i`.
    fn key_at(&self, i: usize) -> &[u8];
    /// Drops the first `n` rows.
    fn skip(&mut self, n: usize);
}

/// Rows in key order, read a page at a time: `fetch(after)` returns up to
/// [`PAGE`] rows with keys from `after` on, `after` included (from the
/// start when `None`). Keys are unique: a key seen twice (two current rows
/// for one path, which the v9 schema no longer refuses at insert) is an
/// error, never a row passed on twice or skipped.
///
/// Reading in key order beside a writer (the scan's walker, the
/// audit's merger): each page of a paged reader
/// ([`super::Index::current_entries`], [`super::Index::listed_objects`],
/// [`super::Index::manifest_pages`]) is one statement run to its end, so
/// its read transaction lasts as long as the page's fetch and no longer;
/// between pages the reader holds no snapshot at all.
///
/// A snapshot held while the rows are worked through kept the writer's
/// pages in the WAL: SQLite cannot checkpoint past the oldest reader,
/// and cannot start the WAL over while any reader reads from it. One
/// transaction for the whole run grew the WAL by gigabytes in an audit
/// of 10M objects; one per page, held until the next, still let it
/// grow by ~16 MB a second (the writer never found a moment with no
/// reader in the WAL, so it appended for ever, and the WAL index mapped
/// into the process grew with it). A fresh snapshot per page is as good
/// as one for the run for these readers: a page is fetched when the
/// reader has passed every row before it, and the writer only writes
/// rows for keys the reader has passed (rows after the page's first key
/// are as they were when the run began).
#[derive(Default)]
pub(super) struct Pager {
    /// The last key of the page before.
    after: Option<Vec<u8>>,
    done: bool,
}

impl Pager {
    /// The next page: what `fetch(after)` returned, checked, without the
    /// row it repeats from the page before. `None` past the last row and
    /// after an error; a page given is never empty.
    pub(super) fn next<P: Page>(
        &mut self,
        fetch: impl FnOnce(Option<&[u8]>) -> Result<P>,
    ) -> Option<Result<P>> {
        if self.done {
            return None;
        }
        let page = fetch(self.after.as_deref()).and_then(|mut page| {
            self.done = page.len() < PAGE;
            self.turn(&mut page)?;
            Ok(page)
        });
        match page {
            Ok(page) if page.len() == 0 => None,
            Ok(page) => Some(Ok(page)),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    /// Checks a fetched page and moves past it.
    fn turn(&mut self, page: &mut impl Page) -> Result<()> {
        // The page starts with the last row of the one before.
        let again = (0..page.len())
            .take_while(|&i| Some(page.key_at(i)) == self.after.as_deref())
            .count();
        let twice = if again > 1 {
            self.after.clone()
        } else {
            (again + 1..page.len())
                .find(|&i| page.key_at(i - 1) == page.key_at(i))
                .map(|i| page.key_at(i).to_vec())
        };
        if let Some(key) = twice {
            bail!(
                "the index is corrupt: two current rows for {}",
                crate::model::paths::display(&key)
            );
        }
        page.skip(again);
        if let Some(last) = page.len().checked_sub(1) {
            self.after = Some(page.key_at(last).to_vec());
        }
        Ok(())
    }
}

/// The rows of a [`Pager`]'s pages, one at a time: `fetch(after)` reads a
/// page as a `Vec` of rows (see [`Pager`]), `key` gives a row's key.
pub(super) struct Paged<T, F> {
    fetch: F,
    key: fn(&T) -> &[u8],
    pager: Pager,
    buf: VecDeque<T>,
}

impl<T, F: FnMut(Option<&[u8]>) -> Result<Vec<T>>> Paged<T, F> {
    pub(super) fn new(key: fn(&T) -> &[u8], fetch: F) -> Paged<T, F> {
        Paged {
            fetch,
            key,
            pager: Pager::default(),
            buf: VecDeque::new(),
        }
    }
}

/// A page of [`Paged`]'s rows.
struct Keyed<T> {
    rows: VecDeque<T>,
    key: fn(&T) -> &[u8],
}

impl<T> Page for Keyed<T> {
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn key_at(&self, i: usize) -> &[u8] {
        (self.key)(&self.rows[i])
    }
    fn skip(&mut self, n: usize) {
        self.rows.drain(..n);
    }
}

impl<T, F: FnMut(Option<&[u8]>) -> Result<Vec<T>>> Iterator for Paged<T, F> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.buf.is_empty() {
            let (fetch, key) = (&mut self.fetch, self.key);
            // The buffer is empty: take the page's allocation as it is
            // rather than move every row again.
            match self.pager.next(|after| {
                Ok(Keyed {
                    rows: fetch(after)?.into(),
                    key,
                })
            })? {
                Ok(page) => self.buf = page.rows,
                Err(e) => return Some(Err(e)),
            }
        }
        self.buf.pop_front().map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page of keys.
    impl Page for Vec<Vec<u8>> {
        fn len(&self) -> usize {
            Vec::len(self)
        }
        fn key_at(&self, i: usize) -> &[u8] {
            &self[i]
        }
        fn skip(&mut self, n: usize) {
            self.drain(..n);
        }
    }

    /// Keys `k00000`, `k00001`, ... for each of `numbers`.
    fn keys(numbers: impl IntoIterator<Item = usize>) -> Vec<Vec<u8>> {
        numbers
            .into_iter()
            .map(|i| format!("k{i:05}").into_bytes())
            .collect()
    }

    type Keys = Vec<Vec<u8>>;

    /// Reads `table` (sorted) through a [`Pager`] as the store's readers
    /// do (`key >= after`, up to [`PAGE`] rows): the pages given and
    /// every `after` the fetches were asked from.
    fn read(table: &[Vec<u8>]) -> (Vec<Result<Keys>>, Vec<Option<Vec<u8>>>) {
        let mut pager = Pager::default();
        let (mut pages, mut asked) = (Vec::new(), Vec::new());
        while let Some(page) = pager.next(|after| {
            asked.push(after.map(<[u8]>::to_vec));
            Ok(table
                .iter()
                .filter(|k| after.is_none_or(|a| k.as_slice() >= a))
                .take(PAGE)
                .cloned()
                .collect::<Vec<_>>())
        }) {
            pages.push(page);
        }
        (pages, asked)
    }

    /// Each page starts from the last key of the one before, which is
    /// given once; a full last page is followed by one more fetch, which
    /// finds that key alone and ends the read without an empty page.
    #[test]
    fn each_page_starts_after_the_last_key_of_the_one_before() {
        for n in [0, 1, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE - 1, 3 * PAGE] {
            let table = keys(0..n);
            let (pages, asked) = read(&table);
            let pages: Vec<Vec<Vec<u8>>> = pages.into_iter().map(Result::unwrap).collect();
            assert!(pages.iter().all(|p| !p.is_empty()), "{n}");
            assert_eq!(pages.concat(), table, "{n}");
            // The first fetch from the start, each next one from the last
            // key given.
            let mut want = vec![None];
            want.extend(pages.iter().map(|p| p.last().cloned()));
            want.truncate(asked.len());
            assert_eq!(asked, want, "{n}");
            // Fetches until one comes back short: the page after a full
            // one is fetched.
            let fetches = if n < PAGE { 1 } else { 1 + n / (PAGE - 1) };
            assert_eq!(asked.len(), fetches, "{n}");
        }
    }

    /// A key twice is an error, whether the two rows meet inside a page,
    /// across two pages (the first page's last row again), or at the head
    /// of a page; nothing is read past it.
    #[test]
    fn a_key_twice_is_an_error_inside_a_page_and_across_pages() {
        for at in [0, 1, PAGE - 2, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE - 2] {
            let mut table = keys(0..2 * PAGE + 3);
            table.insert(at, table[at].clone());
            let (pages, _) = read(&table);
            let (last, given) = pages.split_last().unwrap();
            let err = last.as_ref().unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "the index is corrupt: two current rows for {}",
                    String::from_utf8_lossy(&table[at])
                ),
                "{at}"
            );
            let given: Vec<Vec<u8>> = given
                .iter()
                .flat_map(|p| p.as_ref().unwrap().clone())
                .collect();
            assert!(given.len() <= at + 1, "{at}: {} rows given", given.len());
            assert_eq!(given, table[..given.len()], "{at}");
        }
    }
}
