//! Outputs appear complete or not at all: every file is written under a
//! temporary sibling name (`DIR/.NAME.tmp-PID-N`), synced and renamed to
//! its final name when complete, and removed if dropped before that.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::DriverError;

/// Distinguishes temporaries of the same final name within one process.
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A temporary sibling of a final path; removed on drop unless committed.
#[derive(Debug)]
pub(crate) struct TempFile {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl TempFile {
    /// Reserves `DIR/.NAME.tmp-PID-N` for the final path `DIR/NAME`. The
    /// directory must exist (it is not created here).
    pub(crate) fn new(target: &Path) -> Result<Self, DriverError> {
        let name = target.file_name().ok_or_else(|| DriverError::InvalidOutput {
            path: target.to_path_buf(),
            reason: "the output path has no file name; give a path like DIR/NAME.h5ad".into(),
        })?;
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(DriverError::InvalidOutput {
                path: target.to_path_buf(),
                reason: format!("the directory {} does not exist; create it first", dir.display()),
            });
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(
            ".{}.tmp-{}-{n}",
            name.to_string_lossy(),
            std::process::id()
        ));
        Ok(Self {
            tmp,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    /// The temporary path to write to.
    pub(crate) fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// The final path.
    pub(crate) fn target(&self) -> &Path {
        &self.target
    }

    /// Syncs the (closed) temporary file to disk and renames it to the final
    /// path, replacing any file there.
    pub(crate) fn commit(mut self) -> Result<PathBuf, DriverError> {
        let io = |source| DriverError::Io {
            path: self.target.clone(),
            source,
        };
        std::fs::File::open(&self.tmp)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        std::fs::rename(&self.tmp, &self.target).map_err(io)?;
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_renames_and_drop_removes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.txt");
        let t = TempFile::new(&target).unwrap();
        std::fs::write(t.tmp(), b"x").unwrap();
        assert!(t
            .tmp()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".out.txt.tmp-"));
        t.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"x");

        let t = TempFile::new(&dir.path().join("other.txt")).unwrap();
        std::fs::write(t.tmp(), b"y").unwrap();
        let tmp = t.tmp().to_path_buf();
        drop(t);
        assert!(!tmp.exists());
        assert!(!dir.path().join("other.txt").exists());
    }

    #[test]
    fn missing_directory_is_an_error() {
        let err = TempFile::new(Path::new("/nonexistent-dir-xyz/out.h5ad")).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
