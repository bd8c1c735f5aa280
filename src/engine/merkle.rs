//! Merkle hashes of directories: one hash names a whole tree.
//!
//! A directory's hash covers its children in name order, each as (kind,
//! name, size, content hash); a child directory contributes its own
//! Merkle hash, so the root hash changes when any byte, name or file kind
//! anywhere below changes. Two equal roots prove two trees identical, and a
//! diff descends only into subtrees whose hashes differ.
//!
//! [`Folder`] computes all directory hashes in one streaming pass over
//! entries in key order (see [`crate::model::paths`]), keeping only the open
//! directories on a stack: memory grows with depth, not with file count.
//! Directories absent from the input (a manifest that lists only files)
//! are opened implicitly.

use crate::model::EntryKind;
use crate::model::paths;

/// Domain separation for directory hashes; bump the version if the
/// encoding below ever changes.
const CONTEXT: &str = "vouch 2026-11 merkle directory v1";

/// The result for one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirHash {
    pub path: Vec<u8>,
    pub hash: [u8; 32],
    /// Total bytes of regular files below.
    pub size: u64,
    /// Regular files and symlinks below.
    pub files: u64,
    /// Files below with no content hash (never read): a root with any is
    /// not proof of anything for them.
    pub unhashed: u64,
}

struct OpenDir {
    path: Vec<u8>,
    hasher: blake3::Hasher,
    size: u64,
    files: u64,
    unhashed: u64,
}

impl OpenDir {
    fn new(path: Vec<u8>) -> OpenDir {
        OpenDir {
            path,
            hasher: blake3::Hasher::new_derive_key(CONTEXT),
            size: 0,
            files: 0,
            unhashed: 0,
        }
    }

    fn add_child(&mut self, name: &[u8], kind: EntryKind, size: u64, hash: Option<&[u8; 32]>) {
        // The child's record is (kind, name length, name, size, 1 and the
        // hash, or 0), fed to the hasher in one call: one update per field
        // cost more than the hashing.
        const MOST: usize = 1 + 8 + 256 + 8 + 1 + 32;
        let mut buf = [0u8; MOST];
        let len = 1 + 8 + name.len() + 8 + 1 + if hash.is_some() { 32 } else { 0 };
        if len > MOST {
            let h = &mut self.hasher;
            h.update(&[kind as u8]);
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(name);
            h.update(&size.to_le_bytes());
            match hash {
                Some(hash) => {
                    h.update(&[1]);
                    h.update(hash);
                }
                None => {
                    h.update(&[0]);
                }
            }
            return;
        }
        buf[0] = kind as u8;
        buf[1..9].copy_from_slice(&(name.len() as u64).to_le_bytes());
        let mut at = 9 + name.len();
        buf[9..at].copy_from_slice(name);
        buf[at..at + 8].copy_from_slice(&size.to_le_bytes());
        at += 8;
        match hash {
            Some(hash) => {
                buf[at] = 1;
                buf[at + 1..at + 33].copy_from_slice(hash);
            }
            None => buf[at] = 0,
        }
        self.hasher.update(&buf[..len]);
    }
}

/// Folds entries, given in key order, into directory hashes.
pub struct Folder<F: FnMut(DirHash)> {
    stack: Vec<OpenDir>,
    on_dir: F,
}

impl<F: FnMut(DirHash)> Folder<F> {
    /// `on_dir` receives each directory's hash as it is completed
    /// (children before parents), the root last.
    pub fn new(on_dir: F) -> Folder<F> {
        Folder {
            stack: vec![OpenDir::new(Vec::new())],
            on_dir,
        }
    }

    /// Adds one entry. Keys must come in strictly increasing order.
    pub fn push(&mut self, key: &[u8], kind: EntryKind, size: u64, hash: Option<&[u8; 32]>) {
        if key.is_empty() {
            return; // ROOT itself: always open.
        }
        let parent = paths::parent(key);
        self.close_until(parent);
        self.open_down_to(parent);
        if kind == EntryKind::Dir {
            self.stack.push(OpenDir::new(key.to_vec()));
            return;
        }
        let top = self.stack.last_mut().expect("root is always open");
        top.add_child(paths::name(key), kind, size, hash);
        top.files += 1;
        if kind == EntryKind::File {
            top.size += size;
        }
        if hash.is_none() {
            top.unhashed += 1;
        }
    }

    /// Completes every open directory and returns the root's hash.
    pub fn finish(mut self) -> DirHash {
        while self.stack.len() > 1 {
            self.pop();
        }
        let root = self.stack.pop().expect("root is always open");
        let done = DirHash {
            path: root.path,
            hash: *root.hasher.finalize().as_bytes(),
            size: root.size,
            files: root.files,
            unhashed: root.unhashed,
        };
        (self.on_dir)(done.clone());
        done
    }

    fn close_until(&mut self, dir: &[u8]) {
        while self.stack.len() > 1 {
            let top = &self.stack.last().expect("non-empty").path;
            if top.as_slice() == dir || paths::is_inside(dir, top) {
                break;
            }
            self.pop();
        }
    }

    fn open_down_to(&mut self, dir: &[u8]) {
        let top_len = self.stack.last().expect("root is always open").path.len();
        if dir.len() <= top_len {
            return;
        }
        // Open each missing component below the current top.
        let mut end = if top_len == 0 { 0 } else { top_len + 1 };
        loop {
            let next = dir[end..]
                .iter()
                .position(|b| *b == paths::SEP)
                .map_or(dir.len(), |i| end + i);
            self.stack.push(OpenDir::new(dir[..next].to_vec()));
            if next == dir.len() {
                break;
            }
            end = next + 1;
        }
    }

    fn pop(&mut self) {
        let done = self.stack.pop().expect("non-empty");
        let hash = *done.hasher.finalize().as_bytes();
        let parent = self.stack.last_mut().expect("root is always open");
        parent.add_child(
            paths::name(&done.path),
            EntryKind::Dir,
            done.size,
            Some(&hash),
        );
        parent.size += done.size;
        parent.files += done.files;
        parent.unhashed += done.unhashed;
        (self.on_dir)(DirHash {
            path: done.path,
            hash,
            size: done.size,
            files: done.files,
            unhashed: done.unhashed,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::paths::key_from_slash;

    fn root_of(entries: &[(&str, EntryKind, u64, u8)]) -> (DirHash, Vec<Vec<u8>>) {
        let mut dirs = Vec::new();
        let mut folder = Folder::new(|d: DirHash| dirs.push(d.path));
        for (p, kind, size, fill) in entries {
            let h = [*fill; 32];
            folder.push(
                &key_from_slash(p.as_bytes()),
                *kind,
                *size,
                (*kind != EntryKind::Dir).then_some(&h),
            );
        }
        let root = folder.finish();
        (root, dirs)
    }

    #[test]
    fn implicit_and_explicit_directories_give_the_same_root() {
        use EntryKind::*;
        let (explicit, dirs) = root_of(&[
            ("a", Dir, 0, 0),
            ("a/b", Dir, 0, 0),
            ("a/b/f", File, 3, 1),
            ("a/g", File, 4, 2),
            ("z", File, 5, 3),
        ]);
        let (implicit, _) = root_of(&[
            ("a/b/f", File, 3, 1),
            ("a/g", File, 4, 2),
            ("z", File, 5, 3),
        ]);
        assert_eq!(explicit, implicit);
        assert_eq!(explicit.size, 12);
        assert_eq!(explicit.files, 3);
        let shown: Vec<String> = dirs.iter().map(|d| paths::display(d)).collect();
        assert_eq!(shown, ["a/b", "a", ""]);
    }

    #[test]
    fn any_change_below_changes_the_root() {
        use EntryKind::*;
        let base = [("d", Dir, 0, 0), ("d/f", File, 3, 1)];
        let (a, _) = root_of(&base);
        let (b, _) = root_of(&[("d", Dir, 0, 0), ("d/f", File, 3, 9)]);
        let (c, _) = root_of(&[("d", Dir, 0, 0), ("d/g", File, 3, 1)]);
        let (d, _) = root_of(&[("d", Dir, 0, 0), ("d/f", Symlink, 3, 1)]);
        let (e, _) = root_of(&[("d", Dir, 0, 0), ("d/e", Dir, 0, 0), ("d/f", File, 3, 1)]);
        for other in [&b, &c, &d, &e] {
            assert_ne!(a.hash, other.hash);
        }
    }
}
