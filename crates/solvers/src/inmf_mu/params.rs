//! Parameters of [`inmf_mu`](super::inmf_mu) and their ranges.

use inmf_learner::LearnerError;

use crate::inputs::{check_eps, check_k, check_loop, check_nonneg, check_positive, DEFAULT_EPS};

/// Coupling of the cell loadings of paired datasets (Frobenius, §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Coupling {
    /// Plain iNMF (§4.3); datasets may have any numbers of cells.
    #[default]
    None,
    /// γ Σ_{i<j} ‖H_i − H_j‖², γ > 0; all datasets must have the same cells.
    Paired {
        /// γ, the weight of the coupling.
        gamma: f64,
    },
}

/// Parameters of [`inmf_mu`](super::inmf_mu); [`Default`] gives the documented defaults,
/// [`InmfMuParams::check`] the ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct InmfMuParams {
    /// K, the number of factors (≥ 1, ≤ genes, ≤ cells of every dataset). Default 20.
    pub k: usize,
    /// λ ≥ 0, weight of λ Σ_i ‖H_iV_iᵀ‖². Default 5 (rliger).
    pub lambda: f64,
    /// Coupling of paired datasets. Default none.
    pub coupling: Coupling,
    /// Maximum number of iterations, ≥ 1. Default 200.
    pub max_iter: usize,
    /// Stop when |F_{t−1} − F_t|/F_{t−1} < tol; finite, ≥ 0. Default 1e-4.
    pub tol: f64,
    /// Seed of the default initialisation. Default 1.
    pub seed: u64,
    /// ε, floor of every denominator, in (0, 1). Default 1e-16.
    pub eps: f64,
}

impl Default for InmfMuParams {
    fn default() -> Self {
        Self {
            k: 20,
            lambda: 5.0,
            coupling: Coupling::None,
            max_iter: 200,
            tol: 1e-4,
            seed: 1,
            eps: DEFAULT_EPS,
        }
    }
}

impl InmfMuParams {
    /// The defaults with K = `k`.
    pub fn new(k: usize) -> Self {
        Self { k, ..Self::default() }
    }

    /// Checks every parameter's range.
    pub fn check(&self) -> Result<(), LearnerError> {
        check_k(self.k)?;
        check_nonneg(self.lambda, "lambda")?;
        if let Coupling::Paired { gamma } = self.coupling {
            check_positive(gamma, "gamma (coupling weight)")?;
        }
        check_loop(self.max_iter, self.tol)?;
        check_eps(self.eps)
    }

    pub(super) fn gamma(&self) -> f64 {
        match self.coupling {
            Coupling::None => 0.0,
            Coupling::Paired { gamma } => gamma,
        }
    }
}
