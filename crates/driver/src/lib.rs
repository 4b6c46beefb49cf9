//! # inmf-driver — orchestration of inmf
//!
//! Scenario 1 (all datasets at once), the simulator, model and result files,
//! configuration and progress. Section numbers refer to `shared/ALGORITHMS.md`.
#![deny(missing_docs)]

pub mod anndata;
mod config;
mod error;
mod model;
mod output;
mod prepare;
mod results;
mod run;
pub mod simulate;

pub use config::{ModelConfig, PreprocessConfig, RunConfig, RuntimeConfig};
pub use error::DriverError;
pub use model::{ModelDataset, SavedModel, MODEL_FORMAT_VERSION};
pub use run::{peak_rss_bytes, run_online, InputSpec, RunRequest, RunSummary};
