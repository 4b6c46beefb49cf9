//! Parameters of [`nmf_mu`](super::nmf_mu) and their ranges.

use inmf_learner::LearnerError;

use crate::inputs::{check_eps, check_k, check_loop, DEFAULT_EPS};

/// The divergence a multiplicative solver minimizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Loss {
    /// Squared Frobenius norm ‖X − Y‖².
    #[default]
    Frobenius,
    /// Generalized Kullback–Leibler divergence D(X‖Y) = Σ x ln(x/y) − x + y.
    KullbackLeibler,
}

/// Parameters of [`nmf_mu`](super::nmf_mu); [`Default`] gives the documented defaults
/// (scikit-learn's `max_iter` and `tol`), [`NmfMuParams::check`] the ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct NmfMuParams {
    /// K, the number of factors (≥ 1, ≤ genes, ≤ cells). Default 20.
    pub k: usize,
    /// Frobenius or KL. Default Frobenius.
    pub loss: Loss,
    /// Maximum number of iterations (H then W once each), ≥ 1. Default 200.
    pub max_iter: usize,
    /// Stop when |F_{t−1} − F_t|/F_{t−1} < tol; finite, ≥ 0. Default 1e-4.
    pub tol: f64,
    /// Seed of the default initialisation. Default 1.
    pub seed: u64,
    /// ε, floor of every denominator and (KL) of HWᵀ at the non-zeros of X,
    /// in (0, 1). Default 1e-16.
    pub eps: f64,
}

impl Default for NmfMuParams {
    fn default() -> Self {
        Self {
            k: 20,
            loss: Loss::Frobenius,
            max_iter: 200,
            tol: 1e-4,
            seed: 1,
            eps: DEFAULT_EPS,
        }
    }
}

impl NmfMuParams {
    /// The defaults with K = `k` and the given loss.
    pub fn new(k: usize, loss: Loss) -> Self {
        Self {
            k,
            loss,
            ..Self::default()
        }
    }

    /// Checks every parameter's range.
    pub fn check(&self) -> Result<(), LearnerError> {
        check_k(self.k)?;
        check_loop(self.max_iter, self.tol)?;
        check_eps(self.eps)
    }
}
