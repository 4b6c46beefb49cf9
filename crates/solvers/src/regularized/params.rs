//! Parameters of [`regularized_nmf`](super::regularized_nmf) and their ranges.

use inmf_learner::LearnerError;
use ndarray::Array2;

use crate::graph::SparseF64;
use crate::inputs::{check_eps, check_k, check_loop, check_nonneg, DEFAULT_EPS};

/// The operator M of the penalty λ‖MW‖² (p × genes).
#[derive(Debug, Clone, PartialEq)]
pub enum Regularizer {
    /// M = I: λ‖W‖², a ridge penalty.
    Identity,
    /// A sparse M, e.g. [`SparseF64::incidence`] of a gene graph (then
    /// MᵀM = L and ‖MW‖² = Σ_edges w‖W_i· − W_j·‖²) or a Laplacian.
    Sparse(SparseF64),
    /// A dense M.
    Dense(Array2<f64>),
}

/// How the scale of the factors is handled (module docs, "Scale").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegularizedScale {
    /// The objective exactly as written, no rescaling: F never increases,
    /// but the penalty is mostly met by shrinking W and growing H.
    #[default]
    Free,
    /// Heuristic: after each H step, H_·j ← H_·j/‖H_·j‖ and
    /// W_·j ← ‖H_·j‖W_·j, so the penalty acts on W at a fixed scale of H.
    /// F is not guaranteed to decrease and can drift up.
    UnitNormH,
}

/// How W is updated (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegularizedSolver {
    /// Projected gradient with step 1/L, L = ‖HᵀH‖₂ + λ‖MᵀM‖₂.
    #[default]
    ProjectedGradient,
    /// Multiplicative update with MᵀM = P − N split by sign.
    Multiplicative,
}

/// Parameters of [`regularized_nmf`](super::regularized_nmf); [`Default`] gives the documented
/// defaults, [`RegularizedParams::check`] the ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct RegularizedParams {
    /// K, the number of factors (≥ 1, ≤ genes, ≤ cells). Default 20.
    pub k: usize,
    /// λ ≥ 0, weight of λ‖MW‖². Default 1.
    pub lambda: f64,
    /// W update. Default projected gradient.
    pub solver: RegularizedSolver,
    /// Scale handling. Default free (the objective as written).
    pub scale: RegularizedScale,
    /// Maximum number of iterations, ≥ 1. Default 200.
    pub max_iter: usize,
    /// Stop when |F_{t−1} − F_t|/F_{t−1} < tol; finite, ≥ 0. Default 1e-4.
    pub tol: f64,
    /// Seed of the default initialisation. Default 1.
    pub seed: u64,
    /// ε, floor of every denominator, in (0, 1). Default 1e-16.
    pub eps: f64,
    /// Power iterations per spectral norm (stopping earlier at 1e-10
    /// relative change), ≥ 1. Default 100.
    pub power_iterations: usize,
}

impl Default for RegularizedParams {
    fn default() -> Self {
        Self {
            k: 20,
            lambda: 1.0,
            solver: RegularizedSolver::ProjectedGradient,
            scale: RegularizedScale::Free,
            max_iter: 200,
            tol: 1e-4,
            seed: 1,
            eps: DEFAULT_EPS,
            power_iterations: 100,
        }
    }
}

impl RegularizedParams {
    /// The defaults with K = `k`.
    pub fn new(k: usize) -> Self {
        Self { k, ..Self::default() }
    }

    /// Checks every parameter's range.
    pub fn check(&self) -> Result<(), LearnerError> {
        check_k(self.k)?;
        check_nonneg(self.lambda, "lambda")?;
        check_loop(self.max_iter, self.tol)?;
        check_eps(self.eps)?;
        if self.power_iterations == 0 {
            return Err(LearnerError::InvalidParameter(
                "power_iterations must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
