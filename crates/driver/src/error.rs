//! The driver's typed errors: what failed, where, and how to fix it.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Everything the driver can fail at. Messages name the file or parameter.
#[derive(Debug, Error)]
pub enum DriverError {
    /// A parameter is out of range or inconsistent (how to fix is in the text).
    #[error("{0}")]
    InvalidParameter(String),
    /// An HDF5 operation on an output or model file failed. (The library's
    /// error is the source, not part of the message, so a `{:#}` chain
    /// prints it once.)
    #[error("HDF5 error on {path} ({what})")]
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
    /// A file-system operation failed. (The OS error is the source, not
    /// part of the message, so a `{:#}` chain prints it once.)
    #[error("I/O error on {path}")]
    Io {
        /// File or directory concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file of parameters (the --config file, a gene list) cannot be read.
    #[error("cannot read {what} {path}: {reason}; {fix}")]
    ParameterFile {
        /// What the file is for ("the configuration file", "the gene list").
        what: String,
        /// The file.
        path: PathBuf,
        /// Why, in the operating system's words.
        reason: String,
        /// How to fix it.
        fix: String,
    },
    /// A model file is missing, not a model, from a newer version, or inconsistent.
    #[error("invalid model file {path}: {message}")]
    InvalidModel {
        /// The model file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// An output would replace or lie among the command's inputs or another
    /// command's results, or has the wrong kind (found before any work).
    #[error("refusing to write {path}: {reason}")]
    UnsafeOutput {
        /// The output path as given.
        path: PathBuf,
        /// Why, and which path to choose instead.
        reason: String,
    },
    /// The file system of an output is full.
    #[error(
        "no space left on the device holding {path}{}. Free space there or choose another output \
         directory; nothing was written under a final name.",
        needed.map(|n| format!(" (about {:.1} MB are needed)", n as f64 / 1e6)).unwrap_or_default()
    )]
    NoSpace {
        /// The file being written.
        path: PathBuf,
        /// Bytes the output needs, where known.
        needed: Option<u64>,
    },
    /// A model, checkpoint or result file of inmf cannot be read or holds
    /// values no run writes (truncated, edited, from another tool).
    #[error("{path} is damaged: {reason}. {fix}")]
    DamagedFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
        /// What to do.
        fix: String,
    },
    /// The command was asked to stop ([`crate::stop::request`]); nothing
    /// was written under a final name.
    #[error("interrupted: the run was stopped before it finished; nothing was written under a final name")]
    Interrupted,
    /// A bug or an environment failure inside inmf (not the user's input).
    #[error("internal error: {0}")]
    Internal(String),
    /// A learner error about one dataset, with the legend of dataset
    /// indices to names.
    #[error("{error} (datasets: {names})")]
    DatasetNamed {
        /// "0 = name, 1 = name, …".
        names: String,
        /// The learner's error.
        error: inmf_learner::LearnerError,
    },
    /// An input could not be read or is invalid.
    #[error(transparent)]
    Reader(#[from] inmf_reader::ReaderError),
    /// The numerics refused the data or parameters.
    #[error(transparent)]
    Learner(#[from] inmf_learner::LearnerError),
}

impl DriverError {
    /// An HDF5 failure on `path` while doing `what`; a full file system
    /// (ENOSPC in the library's message) becomes [`DriverError::NoSpace`].
    pub fn hdf5(path: &Path, what: impl Into<String>, source: hdf5::Error) -> Self {
        let text = source.to_string();
        if text.contains("errno = 28") || text.contains("No space left on device") {
            return DriverError::NoSpace {
                path: path.to_path_buf(),
                needed: None,
            };
        }
        DriverError::Hdf5 {
            path: path.to_path_buf(),
            what: what.into(),
            source,
        }
    }

    /// An I/O failure on `path`; a full file system becomes
    /// [`DriverError::NoSpace`].
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::StorageFull {
            return DriverError::NoSpace {
                path: path.to_path_buf(),
                needed: None,
            };
        }
        DriverError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A [`DriverError::ParameterFile`] for `path`, whose read failed with `e`.
    pub fn parameter_file(what: &str, path: &std::path::Path, e: &std::io::Error, fix: &str) -> Self {
        let text = e.to_string();
        // "No such file or directory (os error 2)" → "No such file or directory".
        let reason = match text.rfind(" (os error ") {
            Some(i) if text.ends_with(')') => text[..i].to_owned(),
            _ => text,
        };
        DriverError::ParameterFile {
            what: what.to_owned(),
            path: path.to_owned(),
            reason,
            fix: fix.to_owned(),
        }
    }

    /// A learner error that concerns one dataset
    /// ([`inmf_learner::LearnerError::InDataset`]) with the names of the
    /// request's datasets added (`names[i]` is dataset i's); other errors
    /// as they are.
    pub(crate) fn with_dataset_names(self, names: &[String]) -> Self {
        match self {
            DriverError::Learner(e @ inmf_learner::LearnerError::InDataset { .. }) if names.len() > 1 => {
                let list: Vec<String> = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| format!("{i} = {n}"))
                    .collect();
                DriverError::DatasetNamed {
                    names: list.join(", "),
                    error: e,
                }
            }
            other => other,
        }
    }

    /// True when the user can fix the failure by changing inputs or
    /// parameters (the binary exits with code 2 for these).
    pub fn is_input_error(&self) -> bool {
        match self {
            DriverError::InvalidParameter(_)
            | DriverError::ParameterFile { .. }
            | DriverError::InvalidModel { .. }
            | DriverError::UnsafeOutput { .. }
            | DriverError::DamagedFile { .. } => true,
            DriverError::Reader(e) => e.is_input_error(),
            DriverError::DatasetNamed { error, .. } => learner_input_error(error),
            DriverError::Learner(e) => learner_input_error(e),
            _ => false,
        }
    }
}

/// A learner error the user can fix (parameters or data), below any
/// per-dataset marks.
fn learner_input_error(e: &inmf_learner::LearnerError) -> bool {
    use inmf_learner::LearnerError as L;
    matches!(
        e.root(),
        L::InvalidParameter(_) | L::InvalidData(_) | L::InvalidSparse(_)
    )
}

/// The process exit code for a failure whose cause chain is `err`: 2 when
/// the user can fix it in the inputs or parameters (a [`DriverError`] or
/// a reader error that says so anywhere in the chain), 1 otherwise (the
/// environment: disk, memory, I/O, a numerical failure).
pub fn exit_code(err: &(dyn std::error::Error + 'static)) -> u8 {
    let mut cause = Some(err);
    while let Some(e) = cause {
        let input = e
            .downcast_ref::<DriverError>()
            .is_some_and(DriverError::is_input_error)
            || e.downcast_ref::<inmf_reader::ReaderError>()
                .is_some_and(inmf_reader::ReaderError::is_input_error);
        if input {
            return 2;
        }
        cause = e.source();
    }
    1
}
