//! Opening what lies deeper than `PATH_MAX`, relative to a directory.
//!
//! A path handed to one system call may be at most `PATH_MAX` (4096) bytes;
//! a tree can be deeper (`mkdir` step by step with relative paths, a
//! restore, a build tree), and `std::fs` opens by full path, so every file
//! past that depth failed with `ENAMETOOLONG`. Here a path is resolved in
//! steps of less than `PATH_MAX` bytes, each opened relative to the
//! directory before it (`openat(dirfd, rest)`, `O_PATH` on Linux, so only
//! search permission is needed, as for a plain path lookup), and the last
//! component is opened, stat-ed, read as a link or listed relative to its
//! directory. A short path takes one system call, as before. Nothing is
//! held open between calls: a deep tree costs one extra `openat` per 4 KiB
//! of path, never a descriptor per level.
//!
//! A directory is listed with `getdents64` and each entry stat-ed
//! relative to it (`fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW)`), never
//! through its full path.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use rustix::fs::{AtFlags, CWD, Dir, FileType, Mode, OFlags};

use crate::model::Stat;

/// The longest path (with its NUL) one system call takes.
pub const PATH_MAX: usize = 4096;

/// What a listing says of one entry: its type and the fields vouch
/// compares (not following a symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub stat: Stat,
    /// The device id (part of a directory backup's version).
    pub dev: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

impl Meta {
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }

    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    fn of(st: &rustix::fs::Stat) -> Meta {
        let kind = match FileType::from_raw_mode(st.st_mode as _) {
            FileType::Directory => Kind::Dir,
            FileType::RegularFile => Kind::File,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        };
        let time = crate::model::time::unix_ns;
        Meta {
            kind,
            stat: Stat {
                size: st.st_size as u64,
                mtime_ns: time(st.st_mtime as i64, st.st_mtime_nsec as i64),
                ctime_ns: time(st.st_ctime as i64, st.st_ctime_nsec as i64),
                inode: st.st_ino as u64,
            },
            dev: st.st_dev as u64,
        }
    }

    /// From `std`'s metadata (of a path short enough for it).
    pub fn of_std(meta: &std::fs::Metadata) -> Meta {
        use std::os::unix::fs::MetadataExt;
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File
        } else if ft.is_symlink() {
            Kind::Symlink
        } else {
            Kind::Other
        };
        Meta {
            kind,
            stat: Stat::of(meta),
            dev: meta.dev(),
        }
    }
}

/// The directory a path's last steps are relative to (`None`: the
/// current one) and those steps, fewer than [`PATH_MAX`] bytes.
fn split(path: &Path) -> io::Result<(Option<OwnedFd>, &[u8])> {
    let mut rest = path.as_os_str().as_bytes();
    let mut dir: Option<OwnedFd> = None;
    while rest.len() >= PATH_MAX {
        let Some(cut) = rest[..PATH_MAX - 1].iter().rposition(|b| *b == b'/') else {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        };
        let head: &[u8] = if cut == 0 { b"/" } else { &rest[..cut] };
        let flags = search_only() | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = match &dir {
            Some(d) => rustix::fs::openat(d, OsStr::from_bytes(head), flags, Mode::empty()),
            None => rustix::fs::openat(CWD, OsStr::from_bytes(head), flags, Mode::empty()),
        }?;
        dir = Some(fd);
        rest = &rest[cut + 1..];
    }
    Ok((dir, rest))
}

/// Opens a directory on the way: for lookups only where the system has it.
fn search_only() -> OFlags {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        OFlags::PATH
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        OFlags::RDONLY
    }
}

fn open_fd(path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let (dir, rest) = split(path)?;
    let rest = if rest.is_empty() { b"." } else { rest };
    let flags = flags | OFlags::CLOEXEC;
    let fd = match &dir {
        Some(d) => rustix::fs::openat(d, OsStr::from_bytes(rest), flags, Mode::empty()),
        None => rustix::fs::openat(CWD, OsStr::from_bytes(rest), flags, Mode::empty()),
    }?;
    Ok(fd)
}

/// Opens `path` for reading with `flags` (`O_NOFOLLOW`, `O_NONBLOCK`…), at
/// any length.
pub fn open(path: &Path, flags: i32) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::from_bits_retain(flags as _);
    Ok(File::from(open_fd(path, flags)?))
}

/// The target of the symlink at `path`, at any length.
pub fn read_link(path: &Path) -> io::Result<Vec<u8>> {
    let (dir, rest) = split(path)?;
    let target = match &dir {
        Some(d) => rustix::fs::readlinkat(d, OsStr::from_bytes(rest), Vec::new()),
        None => rustix::fs::readlinkat(CWD, OsStr::from_bytes(rest), Vec::new()),
    }?;
    Ok(target.into_bytes())
}

/// The metadata of `path` itself (not following a last symlink), at any
/// length.
pub fn symlink_metadata(path: &Path) -> io::Result<Meta> {
    let (dir, rest) = split(path)?;
    let rest = OsStr::from_bytes(rest);
    let st = match &dir {
        Some(d) => rustix::fs::statat(d, rest, AtFlags::SYMLINK_NOFOLLOW),
        None => rustix::fs::statat(CWD, rest, AtFlags::SYMLINK_NOFOLLOW),
    }?;
    Ok(Meta::of(&st))
}

/// A directory's entries (no `.` and `..`), each with its metadata or the
/// error stat-ing it gave, in the order the directory gives them. The
/// directory itself must not be a symlink (`O_NOFOLLOW`): a directory
/// swapped for a link since it was seen is an error, never followed.
pub fn list(path: &Path) -> io::Result<Vec<(OsString, io::Result<Meta>)>> {
    let fd = open_fd(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::NONBLOCK,
    )?;
    let mut dir = Dir::new(fd)?;
    let mut out = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let meta = rustix::fs::statat(dir.fd()?, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW)
            .map(|st| Meta::of(&st))
            .map_err(io::Error::from);
        out.push((OsString::from_vec(name.to_vec()), meta));
    }
    Ok(out)
}

/// Reads the whole file at `path` (any length), as text.
pub fn read_to_string(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    open(path, 0)?.read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree deeper than PATH_MAX, made with relative steps.
    #[test]
    fn paths_past_path_max_are_opened_listed_and_stat_ed() {
        let tmp = tempfile::tempdir().unwrap();
        let name = "d".repeat(200);
        let mut path = tmp.path().to_path_buf();
        let mut dir = File::open(tmp.path()).unwrap();
        for _ in 0..30 {
            rustix::fs::mkdirat(&dir, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            dir = File::from(
                rustix::fs::openat(&dir, name.as_str(), OFlags::RDONLY, Mode::empty()).unwrap(),
            );
            path.push(&name);
        }
        assert!(path.as_os_str().len() > PATH_MAX + 1000);
        let file = rustix::fs::openat(
            &dir,
            "f",
            OFlags::WRONLY | OFlags::CREATE,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        rustix::io::write(&file, b"deep").unwrap();
        rustix::fs::symlinkat("f", &dir, "link").unwrap();
        assert_eq!(
            std::fs::read(path.join("f")).unwrap_err().raw_os_error(),
            Some(libc::ENAMETOOLONG),
            "std cannot"
        );
        assert_eq!(read_to_string(&path.join("f")).unwrap(), "deep");
        assert_eq!(read_link(&path.join("link")).unwrap(), b"f");
        let meta = symlink_metadata(&path.join("f")).unwrap();
        assert_eq!((meta.kind, meta.stat.size), (Kind::File, 4));
        let mut names: Vec<_> = list(&path)
            .unwrap()
            .into_iter()
            .map(|(n, m)| (n.into_string().unwrap(), m.unwrap().kind))
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            names,
            [
                ("f".to_string(), Kind::File),
                ("link".into(), Kind::Symlink)
            ]
        );
        assert_eq!(
            open(&path.join("missing"), 0).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        // A short path takes the plain way and agrees.
        let short = tmp.path().join(&name);
        assert_eq!(list(&short).unwrap().len(), 1);
        assert_eq!(
            symlink_metadata(&short).unwrap(),
            Meta::of_std(&std::fs::symlink_metadata(&short).unwrap())
        );
    }
}
