//! Relative paths as the index stores them, and as reports print them.
//!
//! A path relative to ROOT is stored as its components joined by a NUL byte
//! (`a\0b\0c.txt`), never as text. NUL cannot occur in a Unix file name, so
//! byte order of this key is component order: a directory sorts right
//! before its own contents and every subtree is one contiguous range. That
//! is exactly the order in which a walk with children sorted by name yields
//! entries, so the walk and the index can be merge-joined as two sorted
//! streams, and the Merkle pass can fold directories with a stack.
//!
//! Reports print paths `/`-separated and escaped so that any byte string
//! survives a round trip through text: `\` becomes `\\`, a newline `\n`, a
//! carriage return `\r`, and each byte that is not part of valid UTF-8
//! becomes `\xNN`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Separator between components in a stored key.
pub const SEP: u8 = 0;

/// Builds the stored key of `path`, which must lie under `root`.
pub fn key_of(root: &Path, path: &Path) -> Vec<u8> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let mut key = Vec::with_capacity(rel.as_os_str().len());
    for (i, comp) in rel.components().enumerate() {
        if i > 0 {
            key.push(SEP);
        }
        key.extend_from_slice(comp.as_os_str().as_bytes());
    }
    key
}

/// The filesystem path of a stored key under `root`.
pub fn fs_path(root: &Path, key: &[u8]) -> PathBuf {
    let mut p = root.to_path_buf();
    if !key.is_empty() {
        for comp in key.split(|b| *b == SEP) {
            p.push(OsStr::from_bytes(comp));
        }
    }
    p
}

/// The raw `/`-separated bytes of a key (for object keys and exports).
pub fn slash_bytes(key: &[u8]) -> Vec<u8> {
    key.iter()
        .map(|b| if *b == SEP { b'/' } else { *b })
        .collect()
}

/// Converts `/`-separated bytes (an object key relative to a prefix) to a
/// stored key. Empty components (`a//b`, a trailing `/`) are kept as they
/// are, so a key that no file could have never matches one.
pub fn key_from_slash(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|b| if *b == b'/' { SEP } else { *b })
        .collect()
}

/// The object key of an index key under `prefix` (raw, no trailing `/`;
/// empty for a whole bucket): `prefix/path`, byte for byte. The one place
/// a path becomes a key; [`from_object_key`] is its inverse.
pub fn object_key(prefix: &[u8], key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 1 + key.len());
    if !prefix.is_empty() {
        out.extend_from_slice(prefix);
        out.push(b'/');
    }
    out.extend_from_slice(&slash_bytes(key));
    out
}

/// The index key of an object key listed under `prefix`, byte for byte
/// (no `/` dropped, none merged), or `None` for a key outside the prefix.
/// A key that names no file (`a//b`, `./x`, `x/`) keeps its shape, so it
/// never equals a file's key; [`why_no_file`] says why. A NUL byte (no
/// file name holds one) cannot be a separator here: such a key becomes one
/// with an empty first name, each NUL a 0xFF byte (object keys are UTF-8,
/// so no other key can hold that byte).
pub fn from_object_key(prefix: &[u8], object_key: &[u8]) -> Option<Vec<u8>> {
    let rel = if prefix.is_empty() {
        object_key
    } else {
        object_key
            .strip_prefix(prefix)?
            .strip_prefix(b"/".as_slice())?
    };
    Some(key_from_object_key(rel))
}

/// [`from_object_key`] of a key already relative to its prefix.
pub fn key_from_object_key(rel: &[u8]) -> Vec<u8> {
    if rel.contains(&0) {
        let mut out = vec![SEP];
        for b in rel {
            match b {
                0 => out.push(0xFF),
                b'/' => out.push(SEP),
                b => out.push(*b),
            }
        }
        return out;
    }
    key_from_slash(rel)
}

/// Why a listed key (index form, relative to the prefix) can be no file's
/// copy, or `None` when it names a path a file can have.
pub fn why_no_file(key: &[u8]) -> Option<&'static str> {
    if key.is_empty() {
        return Some("it is the prefix itself with bytes in it, and no file is the root");
    }
    let parts: Vec<&[u8]> = key.split(|b| *b == SEP).collect();
    let last = parts.len() - 1;
    for (i, part) in parts.iter().enumerate() {
        match *part {
            b"" if i == 0 => {
                return Some("it starts with `/` after the prefix (an empty name)");
            }
            b"" if i == last => {
                return Some("it ends in `/` but holds bytes (no file name is empty)");
            }
            b"" => return Some("it holds `//` (an empty name)"),
            b"." => return Some("it holds a `.` name, which no file has"),
            b".." => return Some("it holds a `..` name, which no file has"),
            _ => {}
        }
    }
    None
}

/// The key of the parent directory (`""` for top-level entries).
pub fn parent(key: &[u8]) -> &[u8] {
    match key.iter().rposition(|b| *b == SEP) {
        Some(i) => &key[..i],
        None => &[],
    }
}

/// The last component of a key.
pub fn name(key: &[u8]) -> &[u8] {
    match key.iter().rposition(|b| *b == SEP) {
        Some(i) => &key[i + 1..],
        None => key,
    }
}

/// True when `key` lies strictly inside directory `dir`.
pub fn is_inside(key: &[u8], dir: &[u8]) -> bool {
    if dir.is_empty() {
        return !key.is_empty();
    }
    key.len() > dir.len() && key.starts_with(dir) && key[dir.len()] == SEP
}

/// The printable, escaped, `/`-separated form of a key.
pub fn display(key: &[u8]) -> String {
    escape_bytes(&slash_bytes(key))
}

/// Escapes arbitrary bytes into a printable string (see the module docs).
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Text for a terminal: every control character (C0 but for nothing, DEL,
/// C1) written as `\xNN` or `\u{NN}`, as `ls` and `b3sum` do, so a file
/// name cannot move the cursor, recolour or retitle the terminal of the
/// person reading a table. In [`display`]ed paths a `\` is already `\\`,
/// so this stays unambiguous; JSON keeps the name as it is.
pub fn terminal_safe(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c as u32 {
            n @ (0..=0x1f | 0x7f) => out.push_str(&format!("\\x{n:02x}")),
            n @ 0x80..=0x9f => out.push_str(&format!("\\u{{{n:02x}}}")),
            _ => out.push(c),
        }
    }
    out
}

/// Reverses [`escape_bytes`]. Returns `None` for a malformed escape.
pub fn unescape(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1)? {
            b'\\' => out.push(b'\\'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'x' => {
                let hex = text.get(i + 2..i + 4)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            _ => return None,
        }
        i += 2;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_order_puts_a_directory_before_its_siblings_with_longer_names() {
        let mut keys = [
            b"a.txt".to_vec(),
            key_from_slash(b"a/b"),
            b"a".to_vec(),
            b"a-x".to_vec(),
        ];
        keys.sort();
        let shown: Vec<String> = keys.iter().map(|k| display(k)).collect();
        assert_eq!(shown, ["a", "a/b", "a-x", "a.txt"]);
    }

    #[test]
    fn escaping_round_trips_odd_names() {
        let raw: &[u8] = b"we\\ird\nna\xffme\r";
        let shown = escape_bytes(raw);
        assert_eq!(shown, "we\\\\ird\\nna\\xffme\\r");
        assert_eq!(unescape(&shown).unwrap(), raw);
        assert_eq!(unescape("bad\\q"), None);
    }

    #[test]
    fn parents_and_names() {
        let k = key_from_slash(b"x/y/z");
        assert_eq!(parent(&k), key_from_slash(b"x/y").as_slice());
        assert_eq!(name(&k), b"z");
        assert_eq!(parent(b"top"), b"");
        assert!(is_inside(&k, b"x"));
        assert!(!is_inside(b"xy", b"x"));
        assert!(is_inside(b"x", b""));
    }

    /// Every path over a small alphabet, exhaustively: path → key → path
    /// is the identity on every valid path, and every key that is no
    /// valid path is refused with a reason.
    #[test]
    fn object_keys_map_both_ways_exactly_and_invalid_keys_name_no_file() {
        let alphabet: [&[u8]; 5] = [b"a", b"/", b".", b"\0", "é".as_bytes()];
        let mut words: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..4 {
            let next: Vec<Vec<u8>> = words
                .iter()
                .flat_map(|w| {
                    alphabet.iter().map(move |c| {
                        let mut w = w.clone();
                        w.extend_from_slice(c);
                        w
                    })
                })
                .collect();
            words.extend(next);
        }
        words.sort();
        words.dedup();
        for prefix in [&b""[..], b"p", "my photos/\u{e9}t\u{e9}".as_bytes()] {
            let mut seen = std::collections::HashMap::new();
            for raw in &words {
                let mut full = prefix.to_vec();
                if !prefix.is_empty() {
                    full.push(b'/');
                }
                full.extend_from_slice(raw);
                let key = from_object_key(prefix, &full).unwrap();
                // Two object keys never share an index key.
                if let Some(other) = seen.insert(key.clone(), raw.clone()) {
                    panic!("{raw:?} and {other:?} map to the same key");
                }
                let valid = !raw.is_empty()
                    && !raw.contains(&0)
                    && raw
                        .split(|b| *b == b'/')
                        .all(|c| !matches!(c, b"" | b"." | b".."));
                assert_eq!(why_no_file(&key).is_none(), valid, "{raw:?}");
                if valid {
                    // A valid path: the file's key, and back to the same object.
                    assert_eq!(key, key_from_slash(raw));
                    assert_eq!(object_key(prefix, &key), full);
                }
            }
        }
        assert_eq!(from_object_key(b"p", b"pa/b"), None);
        assert_eq!(from_object_key(b"p", b"p"), None);
    }

    #[test]
    fn terminal_text_holds_no_control_character() {
        let name = display(&key_from_slash(
            "a\x1b[31mred\x07\tb\u{9b}c\\x1b".as_bytes(),
        ));
        let safe = terminal_safe(&name);
        assert_eq!(safe, "a\\x1b[31mred\\x07\\x09b\\u{9b}c\\\\x1b");
        assert!(!safe.chars().any(char::is_control));
        assert_eq!(terminal_safe("plain été"), "plain été");
    }
}
