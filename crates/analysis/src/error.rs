//! The analysis crate's typed errors.

use std::path::PathBuf;

use thiserror::Error;

/// Everything the analysis can fail at. Messages say what and how to fix it.
#[derive(Debug, Error)]
pub enum AnalysisError {
    /// A parameter is out of range (the text names it and the valid range).
    #[error("invalid analysis parameter: {0}")]
    InvalidParameter(String),
    /// The data cannot be analysed as given: shapes that disagree, values
    /// that are not finite, too few cells or datasets.
    #[error("invalid data for the analysis: {0}")]
    InvalidData(String),
    /// The clustering library refused the graph.
    #[error("clustering failed: {0}")]
    Clustering(String),
    /// A plot could not be drawn or written.
    #[error("cannot write the plot {path}: {reason}")]
    Plot {
        /// The plot file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, AnalysisError>;
