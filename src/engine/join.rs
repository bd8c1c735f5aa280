//! One merge-join of two key-sorted streams, used wherever vouch compares
//! a manifest with something else (the audit's manifest and listing).
//!
//! Both inputs are streams sorted by key; the join holds one item of each
//! side, so memory does not grow with the number of keys. Exactly one
//! [`Pair`] comes out per distinct key: a repeated key (a misbehaving
//! listing) is paired once, and input out of order is an error, never a
//! wrong pairing (which would read as `missing` plus `extra`).

use anyhow::{Result, anyhow};

use crate::model::{Entry, RemoteRow, paths};

/// One side or both of a merge-join step.
#[derive(Debug)]
// One pair at a time is moved through the join, never stored in bulk.
#[allow(clippy::large_enum_variant)]
pub enum Pair {
    LocalOnly(Entry),
    RemoteOnly(RemoteRow),
    Both(Entry, RemoteRow),
}

/// Merge-joins two streams sorted by key into pairs: exactly one pair per
/// distinct key. A key repeated on either side (a misbehaving listing) is
/// paired once, with its first row; input out of key order is an error,
/// never a wrong pairing (which would read as `missing` plus `extra`).
pub fn merge_join(
    locals: impl Iterator<Item = Result<Entry>>,
    remotes: impl Iterator<Item = Result<RemoteRow>>,
    mut on: impl FnMut(Pair) -> Result<()>,
) -> Result<()> {
    let mut locals = sorted_unique(locals, |e: &Entry| &e.path, "manifest");
    let mut remotes = sorted_unique(remotes, |r: &RemoteRow| &r.key, "listing");
    let mut l = locals.next().transpose()?;
    let mut r = remotes.next().transpose()?;
    loop {
        let step = match (&l, &r) {
            (None, None) => return Ok(()),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(a), Some(b)) => a.path.cmp(&b.key),
        };
        match step {
            std::cmp::Ordering::Less => {
                on(Pair::LocalOnly(l.take().expect("present")))?;
                l = locals.next().transpose()?;
            }
            std::cmp::Ordering::Greater => {
                on(Pair::RemoteOnly(r.take().expect("present")))?;
                r = remotes.next().transpose()?;
            }
            std::cmp::Ordering::Equal => {
                on(Pair::Both(
                    l.take().expect("present"),
                    r.take().expect("present"),
                ))?;
                l = locals.next().transpose()?;
                r = remotes.next().transpose()?;
            }
        }
    }
}

/// Passes on items in strictly increasing key order: drops a repeat of
/// the previous key, and turns a step backwards into an error.
fn sorted_unique<T>(
    items: impl Iterator<Item = Result<T>>,
    key: fn(&T) -> &Vec<u8>,
    side: &'static str,
) -> impl Iterator<Item = Result<T>> {
    let mut last: Option<Vec<u8>> = None;
    items.filter_map(move |item| {
        let t = match item {
            Ok(t) => t,
            Err(e) => return Some(Err(e)),
        };
        let k = key(&t);
        match &last {
            Some(prev) if k == prev => None,
            Some(prev) if k < prev => Some(Err(anyhow!(
                "the {side} is out of key order at {} (after {})",
                paths::display(k),
                paths::display(prev)
            ))),
            _ => {
                last = Some(k.clone());
                Some(Ok(t))
            }
        }
    })
}
