//! Files a reader must never see half-written: reports (`--output`),
//! exported manifests, metrics for node_exporter's textfile collector.
//!
//! One writer for all of them: the bytes go to a temporary file beside the
//! target (same directory, so the rename cannot cross filesystems), which
//! is flushed and fsynced, then renamed over the target, and the directory
//! is fsynced so the rename itself survives a crash. A writer dropped
//! before [`AtomicFile::commit`] (a failed run) removes its temporary file
//! and leaves the target as it was.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A file written under a temporary name and renamed into place.
pub struct AtomicFile {
    /// `None` once committed.
    tmp: Option<BufWriter<tempfile::NamedTempFile>>,
    path: PathBuf,
}

impl AtomicFile {
    /// Starts writing `path`; nothing is visible there until `commit`.
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let dir = parent_dir(path);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(dir)
            .with_context(|| format!("cannot write {} (in {})", path.display(), dir.display()))?;
        Ok(AtomicFile {
            tmp: Some(BufWriter::new(tmp)),
            path: path.to_path_buf(),
        })
    }

    /// Flushes, fsyncs and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        let shown = self.path.display().to_string();
        let tmp = self
            .tmp
            .take()
            .expect("committed once")
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {shown}"))?;
        tmp.as_file()
            .sync_all()
            .with_context(|| format!("cannot write {shown}"))?;
        tmp.persist(&self.path)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot move the finished file into {shown}"))?;
        // The rename is durable once the directory is.
        if let Ok(dir) = File::open(parent_dir(&self.path)) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.as_mut().expect("open").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tmp.as_mut().expect("open").flush()
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.commit()
}

/// Where a command's output goes: stdout, or a file written atomically.
pub enum Output {
    Stdout(BufWriter<io::Stdout>),
    File(AtomicFile),
}

impl Output {
    /// `--output FILE` when given, else stdout.
    pub fn open(path: Option<&Path>) -> Result<Output> {
        Ok(match path {
            None => Output::Stdout(BufWriter::new(io::stdout())),
            Some(path) => Output::File(AtomicFile::create(path)?),
        })
    }

    /// Completes the output: flushes stdout, or moves the file into place.
    pub fn commit(self) -> Result<()> {
        match self {
            Output::Stdout(mut w) => Ok(w.flush()?),
            Output::File(f) => f.commit(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write(buf),
            Output::File(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(w) => w.flush(),
            Output::File(f) => f.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_visible_until_commit_and_a_dropped_writer_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        std::fs::write(&path, b"old").unwrap();
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"new").unwrap();
        f.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
