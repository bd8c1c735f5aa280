//! TIFF (TIFF 6.0 and BigTIFF), and the camera raw formats built on it
//! (DNG, NEF, CR2, ARW...).
//!
//! Layout: a header (`II*\0` little-endian or `MM\0*` big-endian, then the
//! offset of the first image file directory; BigTIFF `II+\0`/`MM\0+` with
//! 8-byte offsets), then a chain of IFDs: an entry count, 12-byte entries
//! (20 in BigTIFF: tag, type, count, value or offset), the next IFD's
//! offset (0 ends the chain). The image data is where each IFD's
//! StripOffsets/TileOffsets (273/324) say, StripByteCounts/TileByteCounts
//! (279/325) long.
//!
//! `fast` walks the IFD chain and checks that every IFD, every entry's
//! out-of-line value and every strip or tile lies within the file: a TIFF
//! cut off at the end loses its last strips (or, written directory-last as
//! libtiff does, its directory). Pixel data is not decoded. Values a
//! reader is told to ignore (unknown types) are ignored; anything stranger
//! (a loop in the chain, absurd counts) is undecided.

use std::collections::HashSet;
use std::io::{self, Read, Seek};

use super::{Format, Level, Report, Source, Verdict, n};

const STRIP_OFFSETS: u16 = 273;
const STRIP_BYTE_COUNTS: u16 = 279;
const TILE_OFFSETS: u16 = 324;
const TILE_BYTE_COUNTS: u16 = 325;

/// More IFDs than this in one chain: undecided.
const MAX_IFDS: usize = 10_000;
/// More strips or tiles than this in one IFD: undecided.
const MAX_PIECES: u64 = 4 << 20;

/// Whether `head` starts like a TIFF file.
pub(super) fn sniff(head: &[u8]) -> bool {
    head.len() >= 8
        && (head.starts_with(b"II*\0")
            || head.starts_with(b"MM\0*")
            || head.starts_with(b"II+\0")
            || head.starts_with(b"MM\0+"))
}

struct Tiff {
    le: bool,
    big: bool,
}

impl Tiff {
    fn uint(&self, b: &[u8]) -> u64 {
        let mut v = 0u64;
        if self.le {
            for (i, &x) in b.iter().enumerate().take(8) {
                v |= (x as u64) << (8 * i);
            }
        } else {
            for &x in b.iter().take(8) {
                v = (v << 8) | x as u64;
            }
        }
        v
    }
    fn off_len(&self) -> usize {
        if self.big { 8 } else { 4 }
    }
}

/// Bytes per value of a TIFF field type; `None` for unknown types.
fn type_size(t: u64) -> Option<u64> {
    Some(match t {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 | 13 => 4,
        5 | 10 | 12 | 16 | 17 | 18 => 8,
        _ => return None,
    })
}

enum Stop {
    Verdict(Verdict),
    Io(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        Stop::Io(e)
    }
}

fn strange(why: impl Into<String>) -> Stop {
    Stop::Verdict(Verdict::Undecided(why.into()))
}

pub(super) fn check<R: Read + Seek>(src: &mut Source<'_, R>) -> io::Result<Report> {
    let verdict = match walk(src) {
        Ok(()) => Verdict::Sound,
        Err(Stop::Verdict(v)) => v,
        Err(Stop::Io(e)) => return Err(e),
    };
    Ok(Report::new(Format::Tiff, verdict, Level::Fast))
}

fn walk<R: Read + Seek>(src: &mut Source<'_, R>) -> Result<(), Stop> {
    let size = src.size();
    let head = src.read_at(0, 16)?;
    let t = Tiff {
        le: head[0] == b'I',
        big: head[2] == b'+' || head[3] == b'+',
    };
    let cut = |what: String| {
        Stop::Verdict(Verdict::Damaged(format!(
            "{what} lies past the end of the file at byte {}: the TIFF was cut off",
            n(size)
        )))
    };
    let mut next = if t.big {
        if head.len() < 16 {
            return Err(cut("the BigTIFF header".into()));
        }
        if t.uint(&head[4..6]) != 8 {
            return Err(strange("BigTIFF offset size is not 8"));
        }
        t.uint(&head[8..16])
    } else {
        t.uint(&head[4..8])
    };
    if next == 0 {
        return Err(strange("no image file directory"));
    }
    let (count_len, entry_len) = if t.big { (8u64, 20u64) } else { (2, 12) };
    let mut seen = HashSet::new();
    let mut index = 0usize;
    while next != 0 {
        index += 1;
        if index > MAX_IFDS || !seen.insert(next) {
            return Err(strange("the directory chain loops or is too long"));
        }
        let at = next;
        let which = if index == 1 {
            "the first image directory".to_string()
        } else {
            format!("image directory {index}")
        };
        if at.saturating_add(count_len) > size {
            return Err(cut(format!("{which} (at byte {})", n(at))));
        }
        let count = t.uint(&src.read_at(at, count_len as usize)?);
        if count == 0 || count > 65_535 {
            return Err(strange("implausible directory entry count"));
        }
        let len = count * entry_len + t.off_len() as u64;
        if at + count_len + len > size {
            return Err(cut(format!(
                "{which} (bytes {} to {})",
                n(at),
                n(at + count_len + len)
            )));
        }
        let ifd = src.read_at(at + count_len, len as usize)?;
        let mut offsets = None;
        let mut counts = None;
        let mut tiled = false;
        for e in ifd[..(count * entry_len) as usize].chunks(entry_len as usize) {
            let tag = t.uint(&e[0..2]) as u16;
            let typ = t.uint(&e[2..4]);
            let (cnt, value) = if t.big {
                (t.uint(&e[4..12]), &e[12..20])
            } else {
                (t.uint(&e[4..8]), &e[8..12])
            };
            let Some(unit) = type_size(typ) else {
                continue;
            };
            let Some(bytes) = cnt.checked_mul(unit) else {
                return Err(strange("implausible value count"));
            };
            let inline = bytes <= t.off_len() as u64;
            let data_at = if inline { None } else { Some(t.uint(value)) };
            if let Some(d) = data_at
                && d.saturating_add(bytes) > size
            {
                return Err(cut(format!(
                    "the value of tag {tag} in {which} (bytes {} to {})",
                    n(d),
                    n(d.saturating_add(bytes))
                )));
            }
            if matches!(
                tag,
                STRIP_OFFSETS | STRIP_BYTE_COUNTS | TILE_OFFSETS | TILE_BYTE_COUNTS
            ) {
                if !matches!(typ, 3 | 4 | 16) {
                    return Err(strange(format!("tag {tag} of type {typ}")));
                }
                if cnt > MAX_PIECES {
                    return Err(strange("too many strips or tiles"));
                }
                let raw = match data_at {
                    None => value[..bytes as usize].to_vec(),
                    Some(d) => src.read_at(d, bytes as usize)?,
                };
                let vals: Vec<u64> = raw.chunks(unit as usize).map(|c| t.uint(c)).collect();
                match tag {
                    STRIP_OFFSETS => offsets = Some(vals),
                    TILE_OFFSETS => {
                        tiled = true;
                        offsets = Some(vals)
                    }
                    _ => counts = Some(vals),
                }
            }
        }
        match (offsets, counts) {
            (Some(o), Some(c)) if o.len() == c.len() => {
                let piece = if tiled { "tile" } else { "strip" };
                for (i, (&off, &len)) in o.iter().zip(&c).enumerate() {
                    if len == 0 {
                        continue; // sparse
                    }
                    let end = off.saturating_add(len);
                    if end > size {
                        return Err(cut(format!(
                            "the image data of {piece} {} of {} in {which} (bytes {} to {})",
                            i + 1,
                            o.len(),
                            n(off),
                            n(end)
                        )));
                    }
                }
            }
            (None, None) => {}
            _ => {
                return Err(strange(
                    "strip or tile offsets without matching byte counts",
                ));
            }
        }
        next = t.uint(&ifd[(count * entry_len) as usize..]);
    }
    Ok(())
}
