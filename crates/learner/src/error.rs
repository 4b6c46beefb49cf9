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
}
