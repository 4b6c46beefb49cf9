//! # inmf-driver — orchestration of inmf
//!
//! The scenarios of online iNMF (`scenarios/`: `inmf run`, `inmf add`,
//! `inmf project`, with their input preparation, learning loop and epoch
//! bound) and the files they write (`output/`: model, results, output sets,
//! output guard, free space); the batch solvers of `inmf factor`
//! (`factor.rs`), `inmf analyze`, `inmf import`, the simulator
//! ([`simulate`]), the AnnData and 10x writers ([`anndata`]), configuration,
//! progress, and the stop request of embedding hosts ([`stop`]). Section numbers refer to `docs/algorithms.md`.
#![deny(missing_docs)]

mod analyze;
pub mod anndata;
mod config;
mod error;
mod factor;
mod import;
pub mod log;
mod mapping;
mod mapping_genes;
mod mapping_joint;
mod mapping_plots;
mod output;
mod scenarios;
pub mod simulate;
pub mod stop;

pub use analyze::{run_analyze, AnalyzeRequest, AnalyzeSummary};
pub use config::{ModelConfig, PreprocessConfig, RunConfig, RuntimeConfig};
pub use error::{exit_code, DriverError};
pub use factor::{
    run_factor, CellGraphInput, FactorMethod, FactorOptions, FactorRequest, FactorSummary, GeneGraphOperator,
    GeneOperatorInput,
};
pub use import::{import_mtx, ImportRequest, ImportSummary};
pub use inmf_analysis::Algorithm as ClusterAlgorithm;
/// What `inmf inspect` reads and prints.
pub use inmf_reader::{inspect, Inspection, OpenOptions};
/// The batch solvers' options, as `inmf factor` takes them.
pub use inmf_solvers::{KlStep, RegularizedScale, RegularizedSolver, StopReason};
pub use mapping::{Confusion, MappingOptions, MappingSummary};
pub use mapping_joint::JointSummary;
pub use output::model::{ModelDataset, SavedModel, MODEL_FORMAT_VERSION};
pub use scenarios::add::{add_datasets, AddRequest};
pub use scenarios::bound::EpochBound;
pub use scenarios::prepare::matrix_location;
pub use scenarios::project::{project, ProjectRequest, ProjectSummary};
pub use scenarios::run::{peak_rss_bytes, run_online, InputSpec, RunRequest, RunSummary};
