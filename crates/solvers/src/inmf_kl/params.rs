//! Parameters of [`inmf_kl`](super::inmf_kl) and their ranges.

use inmf_learner::LearnerError;

use crate::inputs::{check_eps, check_k, check_loop, check_nonneg, check_positive, DEFAULT_EPS};

/// How the λ term enters the multiplicative KL steps (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KlStep {
    /// r = 2a / (b + √(b² + 8λaP)): majorization–minimization, F non-increasing.
    #[default]
    MajorizeMinimize,
    /// r = a / (b + 2λP): the formula of docs/algorithms.md §4.5 (Liu §3); F may rise when λ > 0.
    Linearized,
}

/// Coupling of the KL solver.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum KlCoupling {
    /// KL iNMF (§4.5); any number of datasets of any sizes.
    #[default]
    None,
    /// γ D(H_1‖H_2), γ > 0 (§4.6); exactly two datasets with the same cells.
    Paired {
        /// γ, the weight of the coupling.
        gamma: f64,
    },
}

/// Parameters of [`inmf_kl`](super::inmf_kl); [`Default`] gives the documented defaults,
/// [`InmfKlParams::check`] the ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct InmfKlParams {
    /// K, the number of factors (≥ 1, ≤ genes, ≤ cells of every dataset). Default 20.
    pub k: usize,
    /// λ ≥ 0, weight of λ Σ_i ‖H_iV_iᵀ‖². Default 5.
    pub lambda: f64,
    /// Coupling of paired datasets. Default none.
    pub coupling: KlCoupling,
    /// Multiplicative step for the λ term. Default majorize–minimize.
    pub step: KlStep,
    /// Maximum number of iterations, ≥ 1. Default 200.
    pub max_iter: usize,
    /// Stop when |F_{t−1} − F_t|/F_{t−1} < tol; finite, ≥ 0. Default 1e-4.
    pub tol: f64,
    /// Seed of the default initialisation. Default 1.
    pub seed: u64,
    /// ε, floor of every denominator and of H(W+V)ᵀ at the non-zeros, in (0, 1). Default 1e-16.
    pub eps: f64,
}

impl Default for InmfKlParams {
    fn default() -> Self {
        Self {
            k: 20,
            lambda: 5.0,
            coupling: KlCoupling::None,
            step: KlStep::MajorizeMinimize,
            max_iter: 200,
            tol: 1e-4,
            seed: 1,
            eps: DEFAULT_EPS,
        }
    }
}

impl InmfKlParams {
    /// The defaults with K = `k`.
    pub fn new(k: usize) -> Self {
        Self { k, ..Self::default() }
    }

    /// Checks every parameter's range.
    pub fn check(&self) -> Result<(), LearnerError> {
        check_k(self.k)?;
        check_nonneg(self.lambda, "lambda")?;
        if let KlCoupling::Paired { gamma } = self.coupling {
            check_positive(gamma, "gamma (coupling weight)")?;
        }
        check_loop(self.max_iter, self.tol)?;
        check_eps(self.eps)
    }

    pub(super) fn gamma(&self) -> f64 {
        match self.coupling {
            KlCoupling::None => 0.0,
            KlCoupling::Paired { gamma } => gamma,
        }
    }
}
