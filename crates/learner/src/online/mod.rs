//! The online iNMF engine (docs/algorithms.md §3): its parameters, state and one
//! iteration, the HALS updates of W and V_i, the mini-batch schedule, the
//! boundary to data sources, initialisation, the objective and the
//! in-thread orchestration of a run.

mod fit;
mod hals;
mod init;
mod objective;
mod params;
mod schedule;
mod solve;
mod source;
mod state;
mod statistics;
mod system;

pub use fit::{initial_model, plan_all, run_plan, sample_v, FitError};
pub use init::{random_w, shuffled_cells, v_from_cells};
pub use objective::{dataset_objective, trace_of_product, ObjectiveParts};
pub use params::OnlineParams;
pub use schedule::{IterationInfo, IterationPlan, MiniBatchPlan};
pub use solve::HSolver;
pub use source::{CellSource, InMemorySource, MiniBatch};
pub use state::{DatasetState, OnlineInmf, StepReport};
