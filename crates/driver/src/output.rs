//! Outputs appear complete or not at all: write under a temporary name in
//! the destination directory, rename when done, remove on failure.

use std::path::{Path, PathBuf};

use crate::error::DriverError;

/// A temporary sibling of a final path; removed on drop unless committed.
#[derive(Debug)]
pub struct TempPath {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl TempPath {
    /// `DIR/.NAME.tmp-PID` for the final path `DIR/NAME`.
    pub fn for_final(target: &Path) -> Result<Self, DriverError> {
        let name = target.file_name().ok_or_else(|| {
            DriverError::InvalidParameter(format!("{} is not a file path", target.display()))
        })?;
        let tmp = target.with_file_name(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
        Ok(Self {
            tmp,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    /// The temporary path to write to.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Renames the temporary file to the final path.
    pub fn commit(mut self) -> Result<(), DriverError> {
        std::fs::rename(&self.tmp, &self.target).map_err(|source| DriverError::Io {
            path: self.target.clone(),
            source,
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
