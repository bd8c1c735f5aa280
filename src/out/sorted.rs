//! Findings held until the end of a run and then listed in a stable
//! order, in a bounded amount of memory: what `--format json`,
//! `--format html` and the table written to a file share.
//!
//! Both documents list every finding sorted — findings about the whole
//! backup (path `""`: `remote_empty`, `low_coverage`, a stopped backup's
//! `stale`) first, then by kind (discrepancies first, in [`Kind::ALL`]
//! order), then path, then the rest of the finding — so the same tree
//! gives byte-identical output whatever order parallel walkers and
//! readers found things in. A run with millions of findings (a shard of a
//! backup that lost everything) must not hold them all: up to
//! [`HELD_BYTES`] stay in memory, past that they are sorted into a run in
//! a temporary file, and the runs are merged at the end (an external
//! sort). Memory is then the bound plus one line per run.
//!
//! The table format written to a file (`--output FILE`, every
//! discrepancy listed) holds its lines here too, in its own order: by
//! kind, then path, then the order found.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, BufRead, Write};
use std::rc::Rc;

use anyhow::{Result, anyhow};

use crate::model::{Finding, Kind};
use crate::out::report::finding_json;

/// Bytes of findings held in memory before they are spilled, sorted, to a
/// temporary file.
pub const HELD_BYTES: usize = 32 << 20;

/// (a per-file finding, kind, path, the order held among ties, the
/// text): findings of the whole backup (path `""`, the headline) sort
/// first. The JSON documents hold every finding at order 0, so ties on
/// kind and path sort by their text, whatever order they came in.
type Held = (bool, Kind, Vec<u8>, u64, String);

/// Findings held for a sorted listing at the end.
pub(crate) struct SortedFindings {
    findings: Vec<Held>,
    /// Bytes of `findings` (roughly: path, text and the tuple).
    held: usize,
    /// Past this many bytes held, `findings` is sorted into a run.
    spill_at: usize,
    /// Sorted runs written so far, each a temporary file of lines.
    runs: Vec<std::fs::File>,
    /// Lines held with [`SortedFindings::hold_line`] so far.
    lines: u64,
}

impl Default for SortedFindings {
    fn default() -> SortedFindings {
        SortedFindings::spilling_at(HELD_BYTES)
    }
}

impl SortedFindings {
    pub(crate) fn spilling_at(spill_at: usize) -> SortedFindings {
        SortedFindings {
            findings: Vec::new(),
            held: 0,
            spill_at,
            runs: Vec::new(),
            lines: 0,
        }
    }

    /// Bytes held in memory past which findings are spilled.
    #[cfg(test)]
    pub(crate) fn bound(&self) -> usize {
        self.spill_at
    }

    /// Findings held in memory now (the rest are in runs).
    #[cfg(test)]
    pub(crate) fn in_memory(&self) -> usize {
        self.findings.len()
    }

    /// Holds `f` as its JSON text, listed in the stable order.
    pub(crate) fn hold(&mut self, f: &Finding) -> Result<()> {
        let text = finding_json(f).to_string();
        self.push((!f.path.is_empty(), f.kind, f.path.clone(), 0, text))
    }

    /// Holds one line of text (no newline in it) for `f`, listed by kind,
    /// then path, then in the order held — the table's order, where a
    /// finding about the whole backup is not taken out of its kind.
    pub(crate) fn hold_line(&mut self, f: &Finding, line: String) -> Result<()> {
        debug_assert!(!line.contains('\n'), "{line}");
        self.lines += 1;
        self.push((true, f.kind, f.path.clone(), self.lines, line))
    }

    fn push(&mut self, h: Held) -> Result<()> {
        self.held += h.2.len() + h.4.len() + std::mem::size_of::<Held>();
        self.findings.push(h);
        if self.held > self.spill_at {
            self.spill()?;
        }
        Ok(())
    }

    /// Writes the held findings, sorted, as one run: a line each, `0|1`,
    /// the kind's position in [`Kind::ALL`], the path in hex, the order
    /// held and the text (one line: serde_json escapes newlines, a table
    /// line has no control character), tab-separated.
    fn spill(&mut self) -> Result<()> {
        self.findings.sort();
        let file = tempfile::tempfile()
            .map_err(|e| anyhow!("cannot create a temporary file for the report: {e}"))?;
        let mut w = io::BufWriter::new(file);
        for (per_file, kind, path, order, text) in self.findings.drain(..) {
            let k = Kind::ALL.iter().position(|x| *x == kind).unwrap_or(0);
            writeln!(
                w,
                "{}\t{k}\t{}\t{order}\t{text}",
                u8::from(per_file),
                hex::encode(&path)
            )?;
        }
        let file = w.into_inner().map_err(|e| e.into_error())?;
        self.runs.push(file);
        self.held = 0;
        Ok(())
    }

    /// Every finding held so far, as text in the stable order (a k-way
    /// merge of the runs and what is still in memory).
    pub(crate) fn sorted(&mut self) -> Result<Sorted<'_>> {
        self.sorted_of(|_| true)
    }

    /// The findings held so far of the kinds `keep` takes, as
    /// [`SortedFindings::sorted`] lists them. Each call reads the runs
    /// from their start, so a listing can be made in passes (the table:
    /// the kinds with a finding about the whole backup first).
    pub(crate) fn sorted_of<'a>(
        &'a mut self,
        keep: impl Fn(Kind) -> bool + 'a,
    ) -> Result<Sorted<'a>> {
        self.findings.sort();
        let keep: Rc<dyn Fn(Kind) -> bool + 'a> = Rc::new(keep);
        let mut runs = Vec::with_capacity(self.runs.len());
        for mut file in &self.runs {
            io::Seek::rewind(&mut file)?;
            runs.push(RunReader(io::BufReader::new(file)));
        }
        let mut heap = BinaryHeap::new();
        for (i, r) in runs.iter_mut().enumerate() {
            if let Some(h) = r.next(&*keep)? {
                heap.push(Reverse((h, i)));
            }
        }
        let keep_held = Rc::clone(&keep);
        let held: Box<dyn Iterator<Item = &'a Held> + 'a> =
            Box::new(self.findings.iter().filter(move |h| keep_held(h.1)));
        Ok(Sorted {
            held: held.peekable(),
            runs,
            heap,
            keep,
        })
    }
}

/// The findings of a [`SortedFindings`], in order: their text each.
pub(crate) struct Sorted<'a> {
    held: std::iter::Peekable<Box<dyn Iterator<Item = &'a Held> + 'a>>,
    runs: Vec<RunReader<'a>>,
    /// The next finding of each run not yet exhausted.
    heap: BinaryHeap<Reverse<(Held, usize)>>,
    keep: Rc<dyn Fn(Kind) -> bool + 'a>,
}

impl Iterator for Sorted<'_> {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Result<String>> {
        let from_run = self.heap.peek().map(|Reverse((h, _))| h);
        let take_held = match (self.held.peek(), from_run) {
            (Some(a), Some(b)) => *a <= b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        if take_held {
            return self.held.next().map(|h| Ok(h.4.clone()));
        }
        let Reverse((h, i)) = self.heap.pop().expect("peeked");
        match self.runs[i].next(&*self.keep) {
            Ok(Some(next)) => self.heap.push(Reverse((next, i))),
            Ok(None) => {}
            Err(e) => {
                // Stop here: what follows would be out of order.
                self.heap.clear();
                let none: Box<dyn Iterator<Item = &Held>> = Box::new(std::iter::empty());
                self.held = none.peekable();
                return Some(Err(e));
            }
        }
        Some(Ok(h.4))
    }
}

/// Reads back a run [`SortedFindings::spill`] wrote.
struct RunReader<'a>(io::BufReader<&'a std::fs::File>);

impl RunReader<'_> {
    /// The next finding of a kind `keep` takes.
    fn next(&mut self, keep: &dyn Fn(Kind) -> bool) -> Result<Option<Held>> {
        loop {
            let mut line = String::new();
            if self.0.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            let bad = || anyhow!("a report's temporary file was damaged");
            let line = line.strip_suffix('\n').ok_or_else(bad)?;
            let mut parts = line.splitn(5, '\t');
            let (Some(per_file), Some(k), Some(path), Some(order), Some(text)) = (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
            ) else {
                return Err(bad());
            };
            let kind = k
                .parse::<usize>()
                .ok()
                .and_then(|k| Kind::ALL.get(k).copied())
                .ok_or_else(bad)?;
            if !keep(kind) {
                continue;
            }
            let path = hex::decode(path).map_err(|_| bad())?;
            let order = order.parse::<u64>().map_err(|_| bad())?;
            return Ok(Some((per_file == "1", kind, path, order, text.to_string())));
        }
    }
}
