//! Portable manifests: reading and writing b3sum, sha256sum and vouch's own
//! json, so a tree can be checked on a host that has never seen the index.
//!
//! Checksum lists are what people already have (`b3sum`, `sha256sum`, the
//! `manifest-sha256.txt` of a BagIt bag), so vouch writes them exactly as
//! those tools do and reads them back: `HASH  PATH` (or `HASH *PATH`), and
//! a name holding a backslash or a newline is written with `\\`/`\n`
//! escapes on a line that starts with `\`. Such a list knows regular files
//! and one hash kind only: no sizes, directories or symlinks. Both kinds
//! are 64 hex digits, so the kind comes from `--manifest-format` or from
//! the file name (`*.b3`, `B3SUMS`, `*.sha256`, `SHA256SUMS`,
//! `manifest-sha256.txt`); vouch refuses to guess from the content.
//!
//! The json manifest is vouch's own: every entry (paths escaped as in
//! reports), its kind, size, BLAKE3, SHA-256/MD5 when known, symlink
//! targets, directory Merkle hashes and the root. When it is read back the
//! Merkle hashes are recomputed from the entries and must match, so an
//! edited or damaged manifest is refused instead of letting a stale root
//! "prove" anything; a verified root lets `diff` skip equal subtrees just
//! as it does between two snapshots.
//!
//! Errors name the file and the line: `manifest F: line N: why`.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::hash;
use crate::engine::merkle::{DirHash, Folder};
use crate::engine::snapshot::{Data, Source, manifest_describe};
use crate::model::paths;
use crate::model::{EntryKind, Node};

/// The manifest formats vouch reads (and, with `bagit`, writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    /// `b3sum` output: BLAKE3 per regular file.
    B3sum,
    /// `sha256sum` output: SHA-256 per regular file.
    Sha256sum,
    /// vouch's json manifest (`vouch export --format json`).
    Json,
}

impl ManifestFormat {
    pub fn name(self) -> &'static str {
        match self {
            ManifestFormat::B3sum => "b3sum",
            ManifestFormat::Sha256sum => "sha256sum",
            ManifestFormat::Json => "json",
        }
    }
}

/// The version written to, and accepted from, `"vouch_manifest"`.
pub const JSON_VERSION: u64 = 1;

/// Reads a manifest file into a [`Source`] sorted by key.
pub fn load(path: &Path, hint: Option<ManifestFormat>) -> Result<Source> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read manifest {}", path.display()))?;
    let format = detect(path, &bytes, hint)?;
    match format {
        ManifestFormat::Json => parse_json(path, &bytes),
        _ => parse_checksums(path, &bytes, format),
    }
}

/// Decides the format: json by content, a checksum list by `hint` or name.
pub fn detect(path: &Path, bytes: &[u8], hint: Option<ManifestFormat>) -> Result<ManifestFormat> {
    let looks_json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    match hint {
        Some(ManifestFormat::Json) | None if looks_json => return Ok(ManifestFormat::Json),
        Some(h) if looks_json => bail!(
            "manifest {} is a json document, not a {} list",
            path.display(),
            h.name()
        ),
        Some(h) => return Ok(h),
        None => {}
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.contains("sha256") {
        return Ok(ManifestFormat::Sha256sum);
    }
    if name.contains("b3") || name.contains("blake3") {
        return Ok(ManifestFormat::B3sum);
    }
    bail!(
        "cannot tell whether manifest {} holds BLAKE3 (b3sum) or SHA-256 (sha256sum) hashes: both are 64 hex digits; pass --manifest-format b3sum|sha256sum, or name the file *.b3 or *.sha256",
        path.display()
    )
}

/// Parses a b3sum/sha256sum list.
fn parse_checksums(path: &Path, bytes: &[u8], format: ManifestFormat) -> Result<Source> {
    let algo = if format == ManifestFormat::B3sum {
        "BLAKE3"
    } else {
        "SHA-256"
    };
    let mut lines: Vec<(Node, usize)> = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let lineno = i + 1;
        // A list written on Windows (or passed through a tool that did)
        // ends its lines in CRLF. A name's own trailing `\r` is never
        // lost: sha256sum writes it as `\r`, and vouch's export refuses a
        // b3sum list where it would be raw.
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let err = |why: &str| anyhow!("manifest {}: line {lineno}: {why}", path.display());
        let (escaped, rest) = match line.strip_prefix(b"\\") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let Some(sp) = rest.iter().position(|b| *b == b' ') else {
            return Err(err("expected `HASH  PATH`"));
        };
        let hex_part = &rest[..sp];
        let hash = parse_hash(hex_part).map_err(|why| err(&format!("{why} ({algo} expected)")))?;
        let name = match rest.get(sp + 1) {
            Some(b' ') | Some(b'*') => &rest[sp + 2..],
            _ => {
                return Err(err(
                    "expected two spaces (or ` *`) between the hash and the path",
                ));
            }
        };
        if name.is_empty() {
            return Err(err("the path is empty"));
        }
        let raw = if escaped {
            unescape_checksum(name).ok_or_else(|| {
                err("bad backslash escape in the path (only \\\\, \\n and \\r are defined)")
            })?
        } else {
            name.to_vec()
        };
        let key = normalize(&raw).map_err(|why| err(&why))?;
        let (blake3, sha256) = if format == ManifestFormat::B3sum {
            (Some(hash), None)
        } else {
            (None, Some(hash))
        };
        lines.push((
            Node {
                key,
                kind: EntryKind::File,
                size: None,
                blake3,
                sha256,
                md5: None,
                target: None,
                stat: None,
            },
            lineno,
        ));
    }
    lines.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    for w in lines.windows(2) {
        if w[0].0.key == w[1].0.key {
            let (first, second) = if w[0].1 < w[1].1 {
                (w[0].1, w[1].1)
            } else {
                (w[1].1, w[0].1)
            };
            bail!(
                "manifest {}: line {second}: {} is listed again (first on line {first})",
                path.display(),
                paths::display(&w[0].0.key)
            );
        }
    }
    let nodes: Vec<Node> = lines.into_iter().map(|(n, _)| n).collect();
    let total_files = nodes.len() as u64;
    Ok(Source {
        describe: manifest_describe(path, format.name()),
        data: Data::Memory(nodes),
        merkle_root: None,
        has_dir_hashes: false,
        files_only: true,
        unhashed: false,
        unsettled: Default::default(),
        total_files,
        total_dirs: 0,
    })
}

fn parse_hash(hex_part: &[u8]) -> Result<[u8; 32], String> {
    if !hex_part.iter().all(u8::is_ascii_hexdigit) || hex_part.is_empty() {
        return Err("not a hex hash".into());
    }
    if hex_part.len() != 64 {
        return Err(format!("a {}-digit hash", hex_part.len()));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Reverses the escaping of b3sum/sha256sum (`\\`, `\n`, and GNU's `\r`).
fn unescape_checksum(name: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(name.len());
    let mut it = name.iter();
    while let Some(&b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match it.next()? {
            b'\\' => out.push(b'\\'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            _ => return None,
        }
    }
    Some(out)
}

/// A manifest path relative to ROOT (`/`-separated bytes) as a stored key.
/// Leading `./` is dropped (`find . | xargs b3sum` writes it); absolute
/// paths and empty, `.` or `..` components are refused.
pub fn normalize(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut p = raw;
    while let Some(rest) = p.strip_prefix(b"./") {
        p = rest;
    }
    if p.first() == Some(&b'/') {
        return Err("an absolute path (manifest paths are relative to ROOT)".into());
    }
    if p.is_empty() {
        return Err("the path is empty".into());
    }
    if p.contains(&0) {
        // A stored key separates components with NUL: a NUL in a name
        // would silently become a `/`. No file can have one.
        return Err("a NUL byte in the path (no file name can hold one)".into());
    }
    for comp in p.split(|b| *b == b'/') {
        match comp {
            b"" => return Err("an empty path component (`//` or a trailing `/`)".into()),
            b"." | b".." => return Err("a `.` or `..` path component".into()),
            _ => {}
        }
    }
    Ok(paths::key_from_slash(p))
}

// ---------------------------------------------------------------- json

#[derive(Deserialize)]
struct JsonDoc {
    vouch_manifest: u64,
    #[serde(default)]
    merkle_root: Option<String>,
    entries: Vec<JsonNode>,
}

/// One entry, validated while it is parsed so that serde_json's error
/// carries the line it is on.
#[derive(Deserialize)]
#[serde(try_from = "RawEntry")]
struct JsonNode(Node);

#[derive(Deserialize)]
struct RawEntry {
    path: String,
    kind: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    blake3: Option<String>,
    #[serde(default)]
    merkle: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    md5: Option<String>,
    #[serde(default)]
    target: Option<String>,
}

fn hex_field<const N: usize>(name: &str, v: &Option<String>) -> Result<Option<[u8; N]>, String> {
    let Some(text) = v else { return Ok(None) };
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out)
        .map_err(|_| format!("{name} is not {} hex digits: {text:?}", N * 2))?;
    Ok(Some(out))
}

impl TryFrom<RawEntry> for JsonNode {
    type Error = String;

    fn try_from(r: RawEntry) -> Result<JsonNode, String> {
        let shown = &r.path;
        let raw = paths::unescape(&r.path)
            .ok_or_else(|| format!("path {shown:?} has a malformed escape"))?;
        let key = normalize(&raw).map_err(|why| format!("path {shown:?}: {why}"))?;
        let kind = match r.kind.as_str() {
            "file" => EntryKind::File,
            "symlink" => EntryKind::Symlink,
            "dir" => EntryKind::Dir,
            other => return Err(format!("{shown:?}: unknown kind {other:?}")),
        };
        let target = match &r.target {
            Some(t) => Some(
                paths::unescape(t)
                    .ok_or_else(|| format!("{shown:?}: target {t:?} has a malformed escape"))?,
            ),
            None => None,
        };
        let mut blake3 = hex_field::<32>("blake3", &r.blake3)?;
        let merkle = hex_field::<32>("merkle", &r.merkle)?;
        let sha256 = hex_field::<32>("sha256", &r.sha256)?;
        let md5 = hex_field::<16>("md5", &r.md5)?;
        match kind {
            EntryKind::Dir => blake3 = merkle.or(blake3),
            EntryKind::File => {
                if r.size.is_none() {
                    return Err(format!("{shown:?}: a file entry needs a size"));
                }
            }
            EntryKind::Symlink => {
                let Some(t) = &target else {
                    return Err(format!("{shown:?}: a symlink entry needs a target"));
                };
                let h = hash::symlink_hash(t);
                if blake3.is_some_and(|b| b != h) {
                    return Err(format!("{shown:?}: blake3 is not the hash of the target"));
                }
                if r.size.is_some_and(|s| s != t.len() as u64) {
                    return Err(format!("{shown:?}: size is not the target's length"));
                }
                blake3 = Some(h);
            }
        }
        let size = match kind {
            EntryKind::Symlink => target.as_ref().map(|t| t.len() as u64),
            _ => r.size,
        };
        Ok(JsonNode(Node {
            key,
            kind,
            size,
            blake3,
            sha256,
            md5,
            target,
            stat: None,
        }))
    }
}

/// serde_json's message without its " at line L column C" suffix.
fn bare_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn parse_json(path: &Path, bytes: &[u8]) -> Result<Source> {
    let shown = path.display();
    let doc: JsonDoc = serde_json::from_slice(bytes).map_err(|e| {
        anyhow!(
            "manifest {shown}: line {}: {} (column {})",
            e.line(),
            bare_message(&e),
            e.column()
        )
    })?;
    if doc.vouch_manifest != JSON_VERSION {
        bail!(
            "manifest {shown}: vouch_manifest version {} is not one this vouch reads ({JSON_VERSION})",
            doc.vouch_manifest
        );
    }
    let mut nodes: Vec<Node> = doc.entries.into_iter().map(|n| n.0).collect();
    nodes.sort_by(|a, b| a.key.cmp(&b.key));
    for w in nodes.windows(2) {
        if w[0].key == w[1].key {
            bail!(
                "manifest {shown}: {} is listed twice",
                paths::display(&w[0].key)
            );
        }
    }
    let unhashed = nodes
        .iter()
        .any(|n| n.kind != EntryKind::Dir && n.blake3.is_none());
    let merkle_root = match &doc.merkle_root {
        None => None,
        Some(text) => {
            let stated = hex_field::<32>("merkle_root", &Some(text.clone()))
                .map_err(|why| anyhow!("manifest {shown}: {why}"))?
                .expect("given");
            if unhashed {
                bail!("manifest {shown}: it states a merkle_root but some files have no blake3");
            }
            check_merkle(path, &mut nodes, &stated)?;
            Some(stated)
        }
    };
    let total_dirs = nodes.iter().filter(|n| n.kind == EntryKind::Dir).count() as u64;
    let total_files = nodes.len() as u64 - total_dirs;
    let mut describe = manifest_describe(path, "json");
    if let Some(h) = &merkle_root {
        describe.insert("merkle_root".into(), json!(hex::encode(h)));
    }
    Ok(Source {
        describe,
        data: Data::Memory(nodes),
        has_dir_hashes: merkle_root.is_some(),
        merkle_root,
        files_only: false,
        unhashed,
        unsettled: Default::default(),
        total_files,
        total_dirs,
    })
}

/// Recomputes every directory hash and the root from the entries; refuses
/// a manifest whose stated hashes disagree, and fills in the computed ones.
fn check_merkle(path: &Path, nodes: &mut [Node], stated_root: &[u8; 32]) -> Result<()> {
    let mut computed: HashMap<Vec<u8>, DirHash> = HashMap::new();
    let root = {
        let mut folder = Folder::new(|d: DirHash| {
            computed.insert(d.path.clone(), d);
        });
        for n in nodes.iter() {
            folder.push(&n.key, n.kind, n.size.unwrap_or(0), n.blake3.as_ref());
        }
        folder.finish()
    };
    if root.hash != *stated_root {
        bail!(
            "manifest {}: its merkle_root does not match its entries (edited or damaged manifest)",
            path.display()
        );
    }
    for n in nodes.iter_mut().filter(|n| n.kind == EntryKind::Dir) {
        let Some(d) = computed.get(&n.key) else {
            continue;
        };
        if n.blake3.is_some_and(|h| h != d.hash) || n.size.is_some_and(|s| s != d.size) {
            bail!(
                "manifest {}: the merkle hash of directory {} does not match its entries",
                path.display(),
                paths::display(&n.key)
            );
        }
        n.blake3 = Some(d.hash);
        n.size = Some(d.size);
    }
    Ok(())
}

// ---------------------------------------------------------------- writing

/// Writes one line as `b3sum`/`sha256sum` print it, so their `--check`
/// (and vouch's own reader) reads it back: `HASH  PATH`, or `\HASH  PATH`
/// with `\\` and `\n` escapes when the name holds a backslash or a
/// newline; `sha256sum` (GNU) also escapes `\r`, which `b3sum` does not
/// know. A name that is not valid UTF-8 cannot be written (b3sum would
/// only ever see U+FFFD), nor, in a b3sum list, one ending in `\r` (a
/// reader takes it for a CRLF line end): see [`checksum_name_problem`].
pub fn write_checksum_line(
    out: &mut dyn Write,
    format: ManifestFormat,
    hash: &[u8; 32],
    key: &[u8],
) -> Result<()> {
    let raw = paths::slash_bytes(key);
    if let Some(why) = checksum_name_problem(key, format) {
        return Err(anyhow::Error::msg(format!(
            "{}: {why}",
            paths::display(key)
        )));
    }
    let name = String::from_utf8(raw).expect("checked above");
    let escape_cr = format == ManifestFormat::Sha256sum;
    if name.contains(['\\', '\n']) || (escape_cr && name.contains('\r')) {
        let mut escaped = name.replace('\\', "\\\\").replace('\n', "\\n");
        if escape_cr {
            escaped = escaped.replace('\r', "\\r");
        }
        writeln!(out, "\\{}  {escaped}", hex::encode(hash))?;
    } else {
        writeln!(out, "{}  {name}", hex::encode(hash))?;
    }
    Ok(())
}

/// Why a checksum list of this format cannot hold this key, if it cannot.
pub fn checksum_name_problem(key: &[u8], format: ManifestFormat) -> Option<&'static str> {
    if std::str::from_utf8(key).is_err() {
        return Some("not valid UTF-8");
    }
    if format == ManifestFormat::B3sum && key.ends_with(b"\r") {
        return Some(
            "ending in a carriage return, which b3sum writes raw and readers take for a CRLF line end",
        );
    }
    None
}

/// Writes `{"k":v,...}` with the keys in the order given (readable
/// manifests: path and kind first).
pub fn ordered_object(fields: &[(&str, Value)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| format!("{}:{v}", Value::from(*k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// The json object of one manifest entry (one line of the `entries` array).
pub fn json_entry(n: &Node) -> String {
    let hex_of = |h: Option<&[u8]>| h.map_or(Value::Null, |h| json!(hex::encode(h)));
    let (blake3, merkle) = if n.kind == EntryKind::Dir {
        (Value::Null, hex_of(n.blake3.as_ref().map(|h| &h[..])))
    } else {
        (hex_of(n.blake3.as_ref().map(|h| &h[..])), Value::Null)
    };
    ordered_object(&[
        ("path", json!(paths::display(&n.key))),
        ("kind", json!(n.kind.name())),
        ("size", n.size.map_or(Value::Null, |s| json!(s))),
        ("blake3", blake3),
        ("merkle", merkle),
        ("sha256", hex_of(n.sha256.as_ref().map(|h| &h[..]))),
        ("md5", hex_of(n.md5.as_ref().map(|h| &h[..]))),
        (
            "target",
            n.target
                .as_ref()
                .map_or(Value::Null, |t| json!(paths::escape_bytes(t))),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_bytes(name: &str, bytes: &[u8], hint: Option<ManifestFormat>) -> Result<Source> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        load(&p, hint)
    }

    fn nodes(s: &Source) -> &[Node] {
        match &s.data {
            Data::Memory(n) => n,
            _ => unreachable!(),
        }
    }

    #[test]
    fn checksum_lines_round_trip_odd_names() {
        let h = [0xab; 32];
        let mut out = Vec::new();
        for name in [
            &b"plain"[..],
            b"sp ace",
            b"back\\slash",
            b"new\nline",
            b"cr\rname",
        ] {
            write_checksum_line(
                &mut out,
                ManifestFormat::B3sum,
                &h,
                &paths::key_from_slash(name),
            )
            .unwrap();
        }
        write_checksum_line(&mut out, ManifestFormat::B3sum, &h, b"dir\0f").unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains(&format!("\\{}  back\\\\slash\n", hex::encode(h))));
        assert!(text.contains(&format!("\\{}  new\\nline\n", hex::encode(h))));
        assert!(text.contains(&format!("{}  dir/f\n", hex::encode(h))));
        let s = load_bytes("x.b3", &out, None).unwrap();
        let keys: Vec<String> = nodes(&s).iter().map(|n| paths::display(&n.key)).collect();
        assert_eq!(
            keys,
            [
                "back\\\\slash",
                "cr\\rname",
                "dir/f",
                "new\\nline",
                "plain",
                "sp ace"
            ]
        );
        assert!(
            write_checksum_line(&mut Vec::new(), ManifestFormat::B3sum, &h, b"caf\xe9").is_err()
        );
        assert!(write_checksum_line(&mut Vec::new(), ManifestFormat::B3sum, &h, b"end\r").is_err());
    }

    #[test]
    fn format_comes_from_the_name_or_the_hint_never_a_guess() {
        let line = format!("{}  a\n", "00".repeat(32));
        assert!(
            load_bytes("SHA256SUMS", line.as_bytes(), None)
                .unwrap()
                .nodes_sha()
        );
        assert!(
            !load_bytes("B3SUMS", line.as_bytes(), None)
                .unwrap()
                .nodes_sha()
        );
        let err = load_bytes("sums.txt", line.as_bytes(), None).unwrap_err();
        assert!(err.to_string().contains("--manifest-format"), "{err}");
        assert!(
            load_bytes("sums.txt", line.as_bytes(), Some(ManifestFormat::Sha256sum))
                .unwrap()
                .nodes_sha()
        );
    }

    impl Source {
        fn nodes_sha(&self) -> bool {
            nodes(self)[0].sha256.is_some()
        }
    }

    #[test]
    fn bad_lines_name_the_file_and_the_line() {
        let good = "00".repeat(32);
        for (text, why) in [
            (format!("{good}  a\nnot a line\n"), "line 2"),
            (format!("{good}  a\n{good} b\n"), "line 2"),
            (
                format!("\n{}  a\n", "0".repeat(40)),
                "line 2: a 40-digit hash",
            ),
            (format!("{good}  /etc/passwd\n"), "line 1: an absolute path"),
            (format!("{good}  a/../b\n"), "line 1: a `.` or `..`"),
            (format!("\\{good}  a\\qb\n"), "line 1: bad backslash escape"),
            (
                format!("{good}  a\n{good}  ./a\n"),
                "line 2: a is listed again (first on line 1)",
            ),
        ] {
            let err = load_bytes("m.b3", text.as_bytes(), None)
                .unwrap_err()
                .to_string();
            assert!(err.contains("m.b3") && err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn json_entries_are_checked_against_the_stated_merkle_root() {
        let f = blake3::hash(b"x");
        let entries = [
            json!({"path": "d", "kind": "dir"}),
            json!({"path": "d/f", "kind": "file", "size": 1, "blake3": f.to_hex().to_string()}),
        ];
        let mut folder = Folder::new(|_| {});
        folder.push(b"d", EntryKind::Dir, 0, None);
        folder.push(b"d\0f", EntryKind::File, 1, Some(f.as_bytes()));
        let root = hex::encode(folder.finish().hash);
        let doc = |root: &str| {
            format!(
                "{{\"vouch_manifest\":1,\"merkle_root\":\"{root}\",\"entries\":[\n{},\n{}\n]}}",
                entries[0], entries[1]
            )
        };
        let s = load_bytes("m.json", doc(&root).as_bytes(), None).unwrap();
        assert!(s.root_is_proof());
        assert!(nodes(&s)[0].blake3.is_some(), "directory hashes filled in");
        let err = load_bytes("m.json", doc(&"11".repeat(32)).as_bytes(), None).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        let bad = doc(&root).replace("\"size\":1", "\"size\":\"one\"");
        let err = load_bytes("m.json", bad.as_bytes(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("m.json: line 3"), "{err}");
    }
}
