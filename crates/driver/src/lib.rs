//! # inmf-driver — orchestration of inmf
//!
//! Scenario 1 (all datasets at once), the simulator, model and result files,
//! configuration and progress. Section numbers refer to `docs/algorithms.md`.
#![deny(missing_docs)]

mod add;
mod analyze;
pub mod anndata;
mod bound;
mod config;
mod error;
mod factor;
mod guard;
mod import;
mod learn;
pub mod log;
mod model;
mod output_set;
mod prepare;
mod project;
mod results;
mod run;
pub mod simulate;
mod space;

pub use add::{add_datasets, AddRequest};
pub use analyze::{run_analyze, AnalyzeRequest, AnalyzeSummary};
pub use bound::EpochBound;
pub use config::{ModelConfig, PreprocessConfig, RunConfig, RuntimeConfig};
pub use error::DriverError;
pub use factor::{
    run_factor, CellGraphInput, FactorMethod, FactorOptions, FactorRequest, FactorSummary, GeneGraphOperator,
    GeneOperatorInput,
};
pub use import::{import_mtx, ImportRequest, ImportSummary};
pub use model::{ModelDataset, SavedModel, MODEL_FORMAT_VERSION};
pub use prepare::matrix_location;
pub use project::{project, ProjectRequest, ProjectSummary};
pub use run::{peak_rss_bytes, run_online, InputSpec, RunRequest, RunSummary};
