//! Parameters of [`inmf_hals`](super::inmf_hals) and their ranges.

use inmf_learner::LearnerError;

use crate::inputs::{check_k, check_loop, check_nonneg};

/// Parameters of [`inmf_hals`](super::inmf_hals); [`Default`] gives the documented defaults,
/// [`InmfHalsParams::check`] the ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct InmfHalsParams {
    /// K, the number of factors (≥ 1, ≤ genes, ≤ cells of every dataset). Default 20.
    pub k: usize,
    /// λ ≥ 0, weight of λ Σ_i ‖H_iV_iᵀ‖². Default 5 (rliger).
    pub lambda: f64,
    /// Maximum number of iterations (one sweep over H_i, V_i, W), ≥ 1. Default 200.
    pub max_iter: usize,
    /// Stop when |F_{t−1} − F_t|/F_{t−1} < tol; finite, ≥ 0. Default 1e-6 (as ANLS).
    pub tol: f64,
    /// Seed of the default initialisation. Default 1.
    pub seed: u64,
}

impl Default for InmfHalsParams {
    fn default() -> Self {
        Self {
            k: 20,
            lambda: 5.0,
            max_iter: 200,
            tol: 1e-6,
            seed: 1,
        }
    }
}

impl InmfHalsParams {
    /// The defaults with K = `k`.
    pub fn new(k: usize) -> Self {
        Self { k, ..Self::default() }
    }

    /// Checks every parameter's range.
    pub fn check(&self) -> Result<(), LearnerError> {
        check_k(self.k)?;
        check_nonneg(self.lambda, "lambda")?;
        check_loop(self.max_iter, self.tol)
    }
}
