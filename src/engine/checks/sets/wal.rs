//! The WAL a pg_basebackup needs: its `backup_manifest`'s `WAL-Ranges`
//! (timeline, start and end LSN) must be covered by WAL segment files in
//! the backup (`pg_wal/` of a plain backup; `pg_wal.tar` of a tar backup
//! taken with `-X stream`, or `pg_wal/` inside `base.tar` with `-X fetch`).
//! `pg_verifybackup` proves this by replaying the range with `pg_waldump`;
//! this looks only at the files: every segment from the one holding the
//! start LSN to the one holding the last byte before the end LSN must be
//! there, named `TTTTTTTTXXXXXXXXYYYYYYYY` (`XLogFileName`: timeline, then
//! the segment number split at 2^32 bytes, upper-case hex), with the size of
//! a segment.
//!
//! A backup taken with `-X none` carries no WAL at all (it is restored from
//! a WAL archive kept elsewhere): a backup with neither a segment nor an
//! `archive_status/*.done` marker (pg_basebackup writes one for a segment
//! it saw complete) is not judged, unless it has a `pg_wal.tar` (only
//! `-X stream` writes one). The segment size is the size the
//! segments present share (a power of two from 1 MiB to 1 GiB, as initdb
//! allows).

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use super::super::n;

/// One `WAL-Ranges` entry of the manifest.
#[derive(Deserialize, Debug, Clone)]
pub(super) struct WalRange {
    #[serde(rename = "Timeline")]
    tli: u32,
    #[serde(rename = "Start-LSN")]
    start: String,
    #[serde(rename = "End-LSN")]
    end: String,
}

/// The WAL files a backup holds, by segment file name.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// Segment files and their sizes.
    segments: HashMap<String, u64>,
    /// Segments with an `archive_status/NAME.done` marker.
    done: HashSet<String>,
}

impl Seen {
    /// Records `rel`, a path relative to a `pg_wal` directory, of `size`
    /// bytes; anything but a segment or a `.done` marker is ignored.
    pub(super) fn add(&mut self, rel: &str, size: u64) {
        if is_segment_name(rel) {
            self.segments.insert(rel.to_string(), size);
        } else if let Some(seg) = rel
            .strip_prefix("archive_status/")
            .and_then(|r| r.strip_suffix(".done"))
            .filter(|s| is_segment_name(s))
        {
            self.done.insert(seg.to_string());
        }
    }
}

fn is_segment_name(s: &str) -> bool {
    s.len() == 24
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

fn lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    (hi <= u32::MAX as u64 && lo <= u32::MAX as u64).then_some((hi << 32) | lo)
}

/// The ranges in words: "WAL from 0/700028 to 0/700100 on timeline 1".
pub(super) fn describe(ranges: &[WalRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("from {} to {} on timeline {}", r.start, r.end, r.tli))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What is wrong with the WAL `seen` for `ranges`. `None`: cannot decide
/// (no WAL in the backup, odd ranges or sizes); an empty list: sound.
/// Each problem is a phrase completing "pg_wal.tar ..." or "pg_wal/ ...".
///
/// `expected`: the backup says it carries WAL (a `pg_wal.tar`, which
/// pg_basebackup writes only with `-X stream`), so holding none is damage.
pub(super) fn problems(ranges: &[WalRange], seen: &Seen, expected: bool) -> Option<Vec<String>> {
    if ranges.is_empty() {
        return None;
    }
    if seen.segments.is_empty() && seen.done.is_empty() {
        return expected.then(|| {
            vec![format!(
                "holds no WAL segment: restoring the backup needs the WAL {}",
                describe(ranges)
            )]
        });
    }
    let Some(seg_size) = segment_size(seen) else {
        if !seen.segments.is_empty() {
            return None;
        }
        // Markers but no segment at all: each marked segment was there.
        let mut gone: Vec<String> = seen.done.iter().cloned().collect();
        gone.sort();
        return Some(vec![missing(&gone, ranges)]);
    };
    let per_id = (1u64 << 32) / seg_size;
    let mut gone = Vec::new();
    let mut short = Vec::new();
    for r in ranges {
        let (Some(start), Some(end)) = (lsn(&r.start), lsn(&r.end)) else {
            return None;
        };
        if end < start {
            return None;
        }
        let first = start / seg_size;
        let last = (end.saturating_sub(1) / seg_size).max(first);
        if last - first > 1_000_000 {
            return None;
        }
        for seg in first..=last {
            let name = format!("{:08X}{:08X}{:08X}", r.tli, seg / per_id, seg % per_id);
            match seen.segments.get(&name) {
                None => gone.push(name),
                Some(&s) if s != seg_size => short.push(format!(
                    "holds WAL segment {name} of {} bytes where a segment has {}: it was cut off",
                    n(s),
                    n(seg_size)
                )),
                Some(_) => {}
            }
        }
    }
    let mut out = Vec::new();
    if !gone.is_empty() {
        out.push(missing(&gone, ranges));
    }
    out.extend(short);
    Some(out)
}

fn missing(gone: &[String], ranges: &[WalRange]) -> String {
    let what = if gone.len() == 1 {
        format!("WAL segment {}", gone[0])
    } else {
        format!("{} WAL segments ({})", gone.len(), super::some_names(gone))
    };
    format!(
        "lacks {what} that restoring the backup needs (WAL {})",
        describe(ranges)
    )
}

/// The size most segments present share, if it is a valid segment size.
fn segment_size(seen: &Seen) -> Option<u64> {
    let mut count: HashMap<u64, usize> = HashMap::new();
    for &s in seen.segments.values() {
        if s.is_power_of_two() && (1 << 20..=1 << 30).contains(&s) {
            *count.entry(s).or_default() += 1;
        }
    }
    count
        .into_iter()
        .max_by_key(|&(s, c)| (c, s))
        .map(|(s, _)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(tli: u32, start: &str, end: &str) -> WalRange {
        WalRange {
            tli,
            start: start.into(),
            end: end.into(),
        }
    }

    #[test]
    fn segments_covering_a_range_are_named_like_xlogfilename() {
        let mut seen = Seen::default();
        seen.add("000000010000000000000007", 1 << 20);
        seen.add("archive_status/000000010000000000000007.done", 0);
        seen.add("README", 3);
        let r = [range(1, "0/700028", "0/700100")];
        assert_eq!(problems(&r, &seen, false), Some(vec![]));
        // 16 MiB segments: 0/700028 is in segment 0 of log 0.
        let mut big = Seen::default();
        big.add("000000010000000000000000", 16 << 20);
        assert_eq!(problems(&r, &big, false), Some(vec![]));
        // Across a log boundary with 1 GiB segments: 1/3FFFFFF0 .. 1/40000010.
        let mut g = Seen::default();
        g.add("000000020000000100000000", 1 << 30);
        let r2 = [range(2, "1/3FFFFFF0", "1/40000010")];
        assert_eq!(
            problems(&r2, &g, false).unwrap(),
            vec![
                "lacks WAL segment 000000020000000100000001 that restoring the backup needs \
                 (WAL from 1/3FFFFFF0 to 1/40000010 on timeline 2)"
                    .to_string()
            ]
        );
        // An end exactly on a segment boundary needs nothing after it.
        let r3 = [range(1, "0/7FFF00", "0/800000")];
        let mut s3 = Seen::default();
        s3.add("000000010000000000000007", 1 << 20);
        assert_eq!(problems(&r3, &s3, false), Some(vec![]));
    }

    #[test]
    fn no_wal_at_all_is_not_judged_a_cut_segment_is() {
        let r = [range(1, "0/700028", "0/700100")];
        assert_eq!(problems(&r, &Seen::default(), false), None);
        assert_eq!(
            problems(&r, &Seen::default(), true),
            Some(vec![
                "holds no WAL segment: restoring the backup needs the WAL from 0/700028 to \
                 0/700100 on timeline 1"
                    .to_string()
            ])
        );
        let mut marker_only = Seen::default();
        marker_only.add("archive_status/000000010000000000000007.done", 0);
        assert!(
            problems(&r, &marker_only, false).unwrap()[0]
                .starts_with("lacks WAL segment 000000010000000000000007 that restoring")
        );
        let mut cut = Seen::default();
        cut.add("000000010000000000000006", 1 << 20);
        cut.add("000000010000000000000007", 4096);
        assert_eq!(
            problems(&r, &cut, false).unwrap(),
            vec![
                "holds WAL segment 000000010000000000000007 of 4,096 bytes where a segment has \
                 1,048,576: it was cut off"
                    .to_string()
            ]
        );
        // Sizes that are no segment size: undecided.
        let mut odd = Seen::default();
        odd.add("000000010000000000000007", 4096);
        assert_eq!(problems(&r, &odd, false), None);
    }
}
