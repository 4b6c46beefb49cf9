//! Parameters of [`diffusion_nmf`](super::diffusion_nmf) and their ranges.

use inmf_learner::LearnerError;

use crate::cg::CgParams;
use crate::inputs::{check_eps, check_k, check_loop, check_nonneg, check_positive, DEFAULT_EPS};

/// Parameters of [`diffusion_nmf`](super::diffusion_nmf); [`Default`] gives the documented
/// defaults, [`DiffusionParams::check`] the ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffusionParams {
    /// K, the number of factors (≥ 1, ≤ genes, ≤ cells). Default 20.
    pub k: usize,
    /// β > 0, the extent of diffusion in K = (I + βL)⁻¹. Default 1.
    pub beta: f64,
    /// α ≥ 0, weight of the sparsity penalty α‖U‖₁ on the initiators. Default 0.
    pub alpha: f64,
    /// Maximum number of iterations, ≥ 1. Default 200.
    pub max_iter: usize,
    /// Stop when |F_{t−1} − F_t|/F_{t−1} < tol; finite, ≥ 0. Default 1e-5:
    /// F falls slowly at first (the diffusion smooths the multiplicative
    /// steps of U), and at 1e-4 a 4000-cell test stopped after 5 iterations
    /// with F 4 % above its value after 400.
    pub tol: f64,
    /// Seed of the default initialisation. Default 1.
    pub seed: u64,
    /// ε, floor of every denominator, in (0, 1). Default 1e-16.
    pub eps: f64,
    /// The conjugate-gradient solves with I + βL. Default tol 1e-10, 1000 iterations.
    pub cg: CgParams,
}

impl Default for DiffusionParams {
    fn default() -> Self {
        Self {
            k: 20,
            beta: 1.0,
            alpha: 0.0,
            max_iter: 200,
            tol: 1e-5,
            seed: 1,
            eps: DEFAULT_EPS,
            cg: CgParams::default(),
        }
    }
}

impl DiffusionParams {
    /// The defaults with K = `k`.
    pub fn new(k: usize) -> Self {
        Self { k, ..Self::default() }
    }

    /// Checks every parameter's range.
    pub fn check(&self) -> Result<(), LearnerError> {
        check_k(self.k)?;
        check_positive(self.beta, "beta (diffusion extent)")?;
        check_nonneg(self.alpha, "alpha (L1 weight)")?;
        check_loop(self.max_iter, self.tol)?;
        check_eps(self.eps)?;
        self.cg.check()
    }
}
