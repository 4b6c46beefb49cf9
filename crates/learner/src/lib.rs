//! # inmf-learner — the numerics of inmf
//!
//! Online integrative NMF (LIGER; Gao et al. 2021) and its batch relatives,
//! with no I/O. The model for datasets i = 1..D, X_i genes × cells:
//!
//! F = Σ_i ‖X_i − (W + V_i) H_i‖² + λ Σ_i ‖V_i H_i‖², W, V_i, H_i ≥ 0.
//!
//! Data arrive as [`CsrMatrix`] blocks of cells × genes through the
//! [`CellSource`] trait; H is stored cells × K. Section numbers in the docs
//! refer to `docs/algorithms.md`.
#![deny(missing_docs)]

mod anls;
mod batch;
mod cg;
mod diffusion;
mod error;
mod fit;
mod graph;
mod hals;
mod init;
mod inmf_hals;
mod inmf_kl;
mod inmf_mu;
mod kernels;
mod kernels_f16;
mod kernels_f32;
mod nmf_mu;
mod nnls;
mod objective;
mod online;
mod packed;
mod regularized;
mod report;
mod schedule;
mod simd;
mod source;
mod sparse;
mod sparse_values;
#[cfg(test)]
mod testutil;

pub use anls::{inmf_anls, InmfAnlsParams, InmfFactors, InmfFit, StopReason};
pub use batch::{concat_rows, DEFAULT_EPS};
pub use cg::{CgParams, CgStats, CgWorkspace, DiffusionKernel};
pub use diffusion::{diffusion_nmf, DiffusionFit, DiffusionParams};
pub use error::LearnerError;
pub use fit::{initial_model, plan_all, run_plan, sample_v, FitError};
pub use graph::SparseF64;
pub use hals::{surrogate, update_v, update_w, DatasetStats, HALS_FLOOR};
pub use init::{random_w, shuffled_cells, v_from_cells};
pub use inmf_hals::{inmf_hals, InmfHalsParams};
pub use inmf_kl::{inmf_kl, InmfKlParams, KlCoupling, KlStep};
pub use inmf_mu::{inmf_mu, Coupling, InmfMuParams};
pub use kernels::{accumulate_xt_h, gram_of_rows, project, project_into};
pub use kernels_f16::project_f16;
pub use kernels_f32::{accumulate_xt_h_f32, project_f32};
pub use nmf_mu::{nmf_mu, nmf_objective, Loss, NmfMuParams};
pub use nnls::{kkt_residual, nnls_bpp, nnls_bpp_into, nnls_bpp_warm_into, BppStats};
pub use objective::{block_objective, dataset_objective, ObjectiveParts};
pub use online::{DatasetState, HSolver, OnlineInmf, OnlineParams, StepReport};
pub use regularized::{regularized_nmf, RegularizedParams, RegularizedScale, RegularizedSolver, Regularizer};
pub use report::{relative_change, FitReport, NmfFactors, NmfFit};
pub use schedule::{IterationInfo, IterationPlan, MiniBatchPlan};
pub use source::{CellSource, InMemorySource, MiniBatch};
pub use sparse::{row_norm_sq, Cols, ColsIter, CsrMatrix, RowIter, SharedNonZeros};
