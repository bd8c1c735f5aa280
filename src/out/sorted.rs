//! Findings held until the end of a run and then listed in a stable
//! order, in a bounded amount of memory: what `--format json` and
//! `--format html` share.
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

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, BufRead, Write};

use anyhow::{Result, anyhow};

use crate::model::{Finding, Kind};
use crate::out::report::finding_json;

/// Bytes of findings held in memory before they are spilled, sorted, to a
/// temporary file.
pub const HELD_BYTES: usize = 32 << 20;

/// (a per-file finding, kind, path, the finding as JSON): findings of the
/// whole backup (path `""`, the headline) sort first.
type Held = (bool, Kind, Vec<u8>, String);

/// Findings held for a sorted listing at the end.
pub(crate) struct SortedFindings {
    findings: Vec<Held>,
    /// Bytes of `findings` (roughly: path, text and the tuple).
    held: usize,
    /// Past this many bytes held, `findings` is sorted into a run.
    spill_at: usize,
    /// Sorted runs written so far, each a temporary file of lines.
    runs: Vec<std::fs::File>,
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

    pub(crate) fn hold(&mut self, f: &Finding) -> Result<()> {
        let text = finding_json(f).to_string();
        self.held += f.path.len() + text.len() + std::mem::size_of::<Held>();
        self.findings
            .push((!f.path.is_empty(), f.kind, f.path.clone(), text));
        if self.held > self.spill_at {
            self.spill()?;
        }
        Ok(())
    }

    /// Writes the held findings, sorted, as one run: a line each, `0|1`,
    /// the kind's position in [`Kind::ALL`], the path in hex and the JSON
    /// text (one line: serde_json escapes newlines), tab-separated.
    fn spill(&mut self) -> Result<()> {
        self.findings.sort();
        let file = tempfile::tempfile()
            .map_err(|e| anyhow!("cannot create a temporary file for the report: {e}"))?;
        let mut w = io::BufWriter::new(file);
        for (per_file, kind, path, text) in self.findings.drain(..) {
            let k = Kind::ALL.iter().position(|x| *x == kind).unwrap_or(0);
            writeln!(
                w,
                "{}\t{k}\t{}\t{text}",
                u8::from(per_file),
                hex::encode(&path)
            )?;
        }
        let mut file = w.into_inner().map_err(|e| e.into_error())?;
        io::Seek::rewind(&mut file)?;
        self.runs.push(file);
        self.held = 0;
        Ok(())
    }

    /// Every finding held so far, as JSON text in the stable order (a
    /// k-way merge of the runs and what is still in memory); leaves this
    /// empty.
    pub(crate) fn drain(&mut self) -> Result<Drain> {
        self.findings.sort();
        self.held = 0;
        let mut runs: Vec<RunReader> = std::mem::take(&mut self.runs)
            .into_iter()
            .map(|f| RunReader(io::BufReader::new(f)))
            .collect();
        let mut heap = BinaryHeap::new();
        for (i, r) in runs.iter_mut().enumerate() {
            if let Some(h) = r.next()? {
                heap.push(Reverse((h, i)));
            }
        }
        Ok(Drain {
            held: std::mem::take(&mut self.findings).into_iter().peekable(),
            runs,
            heap,
        })
    }
}

/// The findings of a [`SortedFindings`], in order: JSON text each.
pub(crate) struct Drain {
    held: std::iter::Peekable<std::vec::IntoIter<Held>>,
    runs: Vec<RunReader>,
    /// The next finding of each run not yet exhausted.
    heap: BinaryHeap<Reverse<(Held, usize)>>,
}

impl Iterator for Drain {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Result<String>> {
        let from_run = self.heap.peek().map(|Reverse((h, _))| h);
        let take_held = match (self.held.peek(), from_run) {
            (Some(a), Some(b)) => a <= b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        if take_held {
            return self.held.next().map(|(_, _, _, text)| Ok(text));
        }
        let Reverse((h, i)) = self.heap.pop().expect("peeked");
        match self.runs[i].next() {
            Ok(Some(next)) => self.heap.push(Reverse((next, i))),
            Ok(None) => {}
            Err(e) => {
                // Stop here: what follows would be out of order.
                self.heap.clear();
                self.held = Vec::new().into_iter().peekable();
                return Some(Err(e));
            }
        }
        Some(Ok(h.3))
    }
}

/// Reads back a run [`SortedFindings::spill`] wrote.
struct RunReader(io::BufReader<std::fs::File>);

impl RunReader {
    fn next(&mut self) -> Result<Option<Held>> {
        let mut line = String::new();
        if self.0.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let bad = || anyhow!("a report's temporary file was damaged");
        let line = line.strip_suffix('\n').ok_or_else(bad)?;
        let mut parts = line.splitn(4, '\t');
        let (Some(per_file), Some(k), Some(path), Some(text)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let kind = k
            .parse::<usize>()
            .ok()
            .and_then(|k| Kind::ALL.get(k).copied())
            .ok_or_else(bad)?;
        let path = hex::decode(path).map_err(|_| bad())?;
        Ok(Some((per_file == "1", kind, path, text.to_string())))
    }
}
