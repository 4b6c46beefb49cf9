//! # inmf-learner — the numerics of online iNMF
//!
//! Online integrative NMF (LIGER; Gao et al. 2021), with no I/O. The model
//! for datasets i = 1..D, X_i genes × cells:
//!
//! F = Σ_i ‖X_i − (W + V_i) H_i‖² + λ Σ_i ‖V_i H_i‖², W, V_i, H_i ≥ 0.
//!
//! Data arrive as [`CsrMatrix`] blocks of cells × genes through the
//! [`CellSource`] trait; H is stored cells × K. Section numbers in the docs
//! refer to `docs/algorithms.md`.
//!
//! By concern:
//! - `online`: the engine ([`OnlineInmf`], [`OnlineParams`]), its
//!   mini-batch schedule ([`MiniBatchPlan`]), the data boundary
//!   ([`CellSource`], [`MiniBatch`]), initialisation and the objective;
//! - `kernels`: the sparse × dense products in f64 ([`project`],
//!   [`accumulate_xt_h`]), f32 and f16, with run-time AVX2 dispatch;
//! - `sparse`: the f32 CSR storage ([`CsrMatrix`]);
//! - `nnls`: NNLS by block principal pivoting ([`nnls_bpp_into`]).
//!
//! The batch solvers of `inmf factor` live in the `inmf-solvers` crate,
//! built on the kernels, NNLS, initialisation and objective exported here.
#![deny(missing_docs)]

mod error;
mod kernels;
mod nnls;
mod online;
mod sparse;
#[cfg(test)]
mod testutil;

pub use error::LearnerError;
pub use kernels::{
    accumulate_xt_h, accumulate_xt_h_f32, gram_of_rows, project, project_f16, project_f32, project_into,
    CELL_BLOCK,
};
pub use nnls::{kkt_residual, nnls_bpp_into, nnls_bpp_warm_into, BppStats};
pub use online::{
    dataset_objective, initial_model, plan_all, random_w, run_plan, sample_v, shuffled_cells,
    trace_of_product, v_from_cells, CellSource, DatasetState, FitError, HSolver, InMemorySource,
    IterationInfo, IterationPlan, MiniBatch, MiniBatchPlan, ObjectiveParts, OnlineInmf, OnlineParams,
    StepReport,
};
pub use sparse::{row_norm_sq, Cols, ColsIter, CsrMatrix, RowIter, SharedNonZeros};
