//! # inmf-solvers — the batch solvers of `inmf factor`
//!
//! Whole-data (not streamed) NMF and iNMF solvers, one module per
//! algorithm, all over [`CsrMatrix`](inmf_learner::CsrMatrix) data of
//! cells × genes with factors W genes × K and H cells × K:
//!
//! - [`nmf_mu`]: plain NMF by Lee–Seung multiplicative updates, Frobenius
//!   or KL loss (§5);
//! - [`inmf_anls`]: iNMF by alternating NNLS (§4.1), [`inmf_hals`] by HALS
//!   (§4.2), [`inmf_mu`] by multiplicative updates with optional γ coupling
//!   of paired datasets (§4.3–4.4), [`inmf_kl`] with the KL loss and
//!   optional γ D(H_1‖H_2) coupling (§4.5–4.6);
//! - [`diffusion_nmf`]: diffusion-kernel NMF over a cell graph (§6), its
//!   kernel products by conjugate gradients;
//! - [`regularized_nmf`]: ‖MW‖-regularized NMF with a gene operator M (§7);
//! - [`SparseF64`]: the graphs and operators the last two take;
//! - [`FitReport`]: what every solver reports (§8).
//!
//! The sparse products, NNLS, starting factors and the iNMF objective are
//! the learner's ([`inmf_learner`]); errors are [`LearnerError`](inmf_learner::LearnerError)s.
//! Section numbers refer to `docs/algorithms.md`.
#![deny(missing_docs)]

mod cg;
mod diffusion;
mod graph;
mod inmf_anls;
mod inmf_hals;
mod inmf_kl;
mod inmf_mu;
mod inputs;
mod nmf_mu;
mod regularized;
mod report;
mod sparse_values;
#[cfg(test)]
mod testutil;

pub use cg::{CgParams, CgStats, CgWorkspace, DiffusionKernel};
pub use diffusion::{diffusion_nmf, DiffusionFit, DiffusionParams};
pub use graph::SparseF64;
pub use inmf_anls::{inmf_anls, InmfAnlsParams};
pub use inmf_hals::{inmf_hals, InmfHalsParams};
pub use inmf_kl::{inmf_kl, InmfKlParams, KlCoupling, KlStep};
pub use inmf_mu::{inmf_mu, Coupling, InmfMuParams};
pub use inputs::{concat_rows, DEFAULT_EPS};
pub use nmf_mu::{nmf_mu, nmf_objective, Loss, NmfMuParams};
pub use regularized::{regularized_nmf, RegularizedParams, RegularizedScale, RegularizedSolver, Regularizer};
pub use report::{relative_change, FitReport, InmfFactors, InmfFit, NmfFactors, NmfFit, StopReason};
