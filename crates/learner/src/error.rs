//! The learner's typed errors.

use thiserror::Error;

/// Everything the numerics can refuse or fail at.
#[derive(Debug, Error)]
pub enum LearnerError {
    /// A sparse block broke a structural invariant.
    #[error("invalid sparse matrix: {0}")]
    InvalidSparse(String),
    /// A parameter is out of its range or inconsistent with another one.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The data do not fit the request (shapes, sizes, values).
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// A linear-algebra kernel failed (e.g. a Gram block that is not positive definite).
    #[error("numerical failure: {0}")]
    Numerical(String),
    /// `error` concerns one dataset: `dataset` is its index in the request,
    /// which callers can map to the dataset's name. The message is the
    /// inner error's (it already says "dataset N").
    #[error("{error}")]
    InDataset {
        /// Index of the dataset in the request.
        dataset: usize,
        /// What is wrong with it.
        error: Box<LearnerError>,
    },
}

impl LearnerError {
    /// This error, marked as concerning dataset `dataset`.
    pub fn in_dataset(self, dataset: usize) -> Self {
        LearnerError::InDataset {
            dataset,
            error: Box::new(self),
        }
    }

    /// The error itself, below any [`LearnerError::InDataset`] marks.
    pub fn root(&self) -> &LearnerError {
        match self {
            LearnerError::InDataset { error, .. } => error.root(),
            other => other,
        }
    }
}
