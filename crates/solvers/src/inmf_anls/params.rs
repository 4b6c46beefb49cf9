//! Parameters of [`inmf_anls`](super::inmf_anls) and their ranges.

use inmf_learner::LearnerError;

/// Parameters of batch iNMF by ANLS. Every field is public; [`Default`]
/// gives the documented defaults and [`InmfAnlsParams::check`] validates
/// the ranges (data-dependent rules are checked by [`inmf_anls`](super::inmf_anls)).
#[derive(Debug, Clone, PartialEq)]
pub struct InmfAnlsParams {
    /// K, the number of factors (≥ 1, ≤ genes, ≤ cells of every dataset). Default 20.
    pub k: usize,
    /// λ ≥ 0, weight of the dataset-specific penalty λ Σ_i ‖H_iV_iᵀ‖². Default 5 (rliger).
    pub lambda: f64,
    /// Maximum number of iterations (H, V, W steps once each), ≥ 1. Default 30 (rliger).
    pub max_iter: usize,
    /// Stop when (F_{t−1} − F_t)/F_{t−1} < tol; finite, ≥ 0 (0 runs `max_iter`
    /// iterations unless F stops decreasing). Default 1e-6 (rliger).
    pub tol: f64,
    /// Seed of the default initialisation. Default 1.
    pub seed: u64,
}

impl Default for InmfAnlsParams {
    fn default() -> Self {
        Self {
            k: 20,
            lambda: 5.0,
            max_iter: 30,
            tol: 1e-6,
            seed: 1,
        }
    }
}

impl InmfAnlsParams {
    /// The defaults with K = `k`.
    pub fn new(k: usize) -> Self {
        Self { k, ..Self::default() }
    }

    /// Checks every parameter's range.
    pub fn check(&self) -> Result<(), LearnerError> {
        let bad = |s: String| Err(LearnerError::InvalidParameter(s));
        if self.k == 0 {
            return bad("K (number of factors) must be at least 1".into());
        }
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return bad(format!("lambda must be finite and ≥ 0, got {}", self.lambda));
        }
        if self.max_iter == 0 {
            return bad("max_iter must be at least 1".into());
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return bad(format!("tol must be finite and ≥ 0, got {}", self.tol));
        }
        Ok(())
    }
}
