//! The driver's typed errors: what failed, where, and how to fix it.

use std::path::PathBuf;

use thiserror::Error;

/// Everything the driver can fail at. Messages name the file or parameter.
#[derive(Debug, Error)]
pub enum DriverError {
    /// A parameter is out of range or inconsistent (how to fix is in the text).
    #[error("{0}")]
    InvalidParameter(String),
    /// An HDF5 operation on an output or model file failed.
    #[error("HDF5 error on {path} ({what}): {source}")]
    Hdf5 {
        /// File concerned.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// The library's error.
        #[source]
        source: hdf5::Error,
    },
    /// An output file cannot be written as asked: malformed rows, lengths
    /// that disagree, a name used twice, a piece left unfinished.
    #[error("cannot write {path}: {reason}")]
    InvalidOutput {
        /// The output file (its final name, not the temporary one).
        path: PathBuf,
        /// What is wrong and what to do about it.
        reason: String,
    },
    /// A file-system operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// File or directory concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A model file is missing, not a model, from a newer version, or inconsistent.
    #[error("invalid model file {path}: {message}")]
    InvalidModel {
        /// The model file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// A bug or an environment failure inside inmf (not the user's input).
    #[error("internal error: {0}")]
    Internal(String),
    /// An input could not be read or is invalid.
    #[error(transparent)]
    Reader(#[from] inmf_reader::ReaderError),
    /// The numerics refused the data or parameters.
    #[error(transparent)]
    Learner(#[from] inmf_learner::LearnerError),
}

impl DriverError {
    /// True when the user can fix the failure by changing inputs or
    /// parameters (the binary exits with code 2 for these).
    pub fn is_input_error(&self) -> bool {
        use inmf_learner::LearnerError as L;
        match self {
            DriverError::InvalidParameter(_) | DriverError::InvalidModel { .. } => true,
            DriverError::Reader(e) => e.is_input_error(),
            DriverError::Learner(e) => matches!(
                e,
                L::InvalidParameter(_) | L::InvalidData(_) | L::InvalidSparse(_)
            ),
            _ => false,
        }
    }
}
