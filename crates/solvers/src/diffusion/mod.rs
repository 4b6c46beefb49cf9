//! Diffusion-kernel NMF (docs/algorithms.md §6): D ≈ X V K with
//! K = (I + βL)⁻¹, L the Laplacian of a graph over the cells, V sparse
//! "initiators" that the kernel diffuses over the graph.
//!
//! Storage here: data X cells × genes (= Dᵀ), gene loadings W genes × K
//! (the source document's X), initiators U cells × K (= Vᵀ) and the smoothed cell
//! loadings H = K U (= (VK)ᵀ, K symmetric), so X ≈ H Wᵀ and
//!
//!   F = ‖X − (KU)Wᵀ‖² + α Σ U      (U ≥ 0, so α‖U‖₁ = α Σ U).
//!
//! One iteration (the source document's updates, transposed; with the association of
//! §6 every product with K is a solve with k columns):
//! - W ← W ∘ XᵀH / max(W(HᵀH), ε)                                (source's X step)
//! - U ← U ∘ K(XW) / max(K(H(WᵀW)) + α/2, ε)                     (source's V step)
//! - H ← K U
//!
//! K is never formed: K·B solves (I + βL)Y = B by conjugate gradients
//! ([`DiffusionKernel`]), warm-started from the previous iteration's
//! solution; the two products of the U step are one solve with 2K columns.
//! The L1 term adds α/2 (not α) to U's denominator because the Frobenius
//! term's gradient carries a factor 2: ∇_U F = 2(K H WᵀW − K X W) + α.
//!
//! **Scale.** α‖U‖₁ alone is defeated by rescaling: U → cU, W → W/c leaves
//! the fit unchanged and lowers the penalty, so the solver would shrink U
//! rather than sparsify it. With α > 0, W's columns are therefore kept at
//! unit L2 norm: after the W step, W_·j ← W_·j/‖W_·j‖ and U_·j, H_·j are
//! multiplied by ‖W_·j‖ (the fit is unchanged). With α = 0 nothing is
//! rescaled (scale-free problem).
//!
//! **Monotonicity.** With exact solves and α = 0 both steps are Lee–Seung
//! majorization–minimization steps (K ≥ 0 element-wise, as the inverse of
//! an M-matrix), so F never increases; CG's residual (tol 1e-10 by
//! default) perturbs that only at that level (tested with a dense K on
//! small graphs). With α > 0 the U step is still MM, but the rescaling can
//! raise the penalty slightly (tested: F decreases overall; single rises
//! stay below 1e-5 relative in the tests).
//!
//! Report: `residual` = ‖X − HWᵀ‖², `penalty` = α Σ U.
#![allow(non_snake_case)]

use std::time::Instant;

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, Zip};

use inmf_learner::{
    accumulate_xt_h, gram_of_rows, project_into, trace_of_product, CsrMatrix, LearnerError, ObjectiveParts,
};

use crate::cg::{CgWorkspace, DiffusionKernel};
use crate::graph::SparseF64;
use crate::inputs::{nmf_start, validate_matrix};
use crate::nmf_mu::mu_step;
use crate::report::{FitReport, NmfFactors, StopReason, Trace};

mod params;

pub use params::DiffusionParams;

/// Result of [`diffusion_nmf`].
#[derive(Debug, Clone)]
pub struct DiffusionFit {
    /// W (genes × K) and the smoothed cell loadings H = K U (cells × K).
    pub factors: NmfFactors,
    /// The initiators U (cells × K).
    pub initiators: Array2<f64>,
    /// F and its parts after each iteration.
    pub objective: Vec<ObjectiveParts>,
    /// Iterations run.
    pub iterations: usize,
    /// Why the loop stopped.
    pub stop: StopReason,
    /// Wall time in seconds.
    pub seconds: f64,
    /// CG iterations over all solves.
    pub cg_iterations: usize,
    /// Largest relative residual any solve ended with.
    pub cg_max_residual: f64,
}

impl FitReport for DiffusionFit {
    fn objective(&self) -> &[ObjectiveParts] {
        &self.objective
    }
    fn iterations(&self) -> usize {
        self.iterations
    }
    fn stop(&self) -> StopReason {
        self.stop
    }
    fn seconds(&self) -> f64 {
        self.seconds
    }
}

/// Diffusion-kernel NMF of X (cells × genes) over a cell graph (module docs).
///
/// `graph`: the symmetric non-negative adjacency of the cells (cells ×
/// cells, e.g. [`SparseF64::adjacency`] of an edge list). `init`: `None`
/// draws W = [`random_w`](inmf_learner::random_w) then U ~ Uniform(0.01, 1) from
/// `ChaCha8Rng::seed_from_u64(seed)`; `Some` gives W and, in `h`, the
/// initiators U.
///
/// Errors: invalid parameters; K > genes or cells; negative or non-finite
/// data; a graph that is not cells × cells, symmetric and non-negative; a
/// bad init (all named).
pub fn diffusion_nmf(
    x: &CsrMatrix,
    graph: &SparseF64,
    params: &DiffusionParams,
    init: Option<NmfFactors>,
) -> Result<DiffusionFit, LearnerError> {
    let start = Instant::now();
    params.check()?;
    validate_matrix(x, params.k, "X")?;
    if graph.n_rows() != x.n_rows() || graph.n_cols() != x.n_rows() {
        return Err(LearnerError::InvalidData(format!(
            "the cell graph is {} × {} but there are {} cells",
            graph.n_rows(),
            graph.n_cols(),
            x.n_rows()
        )));
    }
    let kernel = DiffusionKernel::from_adjacency(graph, params.beta)?;
    let NmfFactors { w: mut W, h: mut U } = nmf_start(x, params.k, params.seed, init)?;
    let (n, m, k) = (x.n_rows(), x.n_cols(), params.k);
    let x_sq = x.frobenius_sq();

    let mut cg_iterations = 0;
    let mut cg_max_residual: f64 = 0.0;
    let mut ws_k = CgWorkspace::new(n, k);
    let mut ws_2k = CgWorkspace::new(n, 2 * k);
    let mut H = Array2::<f64>::zeros((n, k));
    let mut record = |s: crate::cg::CgStats| {
        cg_iterations += s.iterations;
        cg_max_residual = cg_max_residual.max(s.max_relative_residual);
    };
    record(kernel.solve_into(U.view(), H.view_mut(), &params.cg, &mut ws_k));
    H.mapv_inplace(|v| v.max(0.0));

    let mut xth = Array2::<f64>::zeros((m, k));
    let mut w_den = Array2::<f64>::zeros((m, k));
    let mut xw = Array2::<f64>::zeros((n, k));
    let mut hg = Array2::<f64>::zeros((n, k));
    let mut rhs = Array2::<f64>::zeros((n, 2 * k));
    let mut sol = Array2::<f64>::zeros((n, 2 * k));
    let mut trace = Trace::new(params.max_iter, params.tol);
    while trace.iterations() < params.max_iter {
        // W step.
        xth.fill(0.0);
        accumulate_xt_h(x, H.view(), 1.0, xth.view_mut());
        let hth = gram_of_rows(H.view());
        general_mat_mul(1.0, &W, &hth, 0.0, &mut w_den);
        mu_step(&mut W, &xth, &w_den, params.eps);
        if params.alpha > 0.0 {
            normalize_columns(&mut W, &mut U, &mut H);
        }

        // U step: [K(XW) | K(H WᵀW)] in one solve.
        let wtw = W.t().dot(&W);
        project_into(x, W.view(), xw.view_mut());
        general_mat_mul(1.0, &H, &wtw, 0.0, &mut hg);
        rhs.slice_mut(s![.., ..k]).assign(&xw);
        rhs.slice_mut(s![.., k..]).assign(&hg);
        record(kernel.solve_into(rhs.view(), sol.view_mut(), &params.cg, &mut ws_2k));
        let half_alpha = 0.5 * params.alpha;
        Zip::from(U.rows_mut()).and(sol.rows()).for_each(|mut u, s| {
            for j in 0..k {
                u[j] *= s[j].max(0.0) / (s[k + j] + half_alpha).max(params.eps);
            }
        });

        // H = K U (≥ 0 exactly; clamp CG's rounding-level negatives).
        record(kernel.solve_into(U.view(), H.view_mut(), &params.cg, &mut ws_k));
        H.mapv_inplace(|v| v.max(0.0));

        // F: ⟨X, HWᵀ⟩ = Σ (XW)∘H with XW at the current W.
        let cross: f64 = Zip::from(&xw).and(&H).fold(0.0, |a, &p, &q| a + p * q);
        let hth = gram_of_rows(H.view());
        let residual = (x_sq - 2.0 * cross + trace_of_product(wtw.view(), hth.view())).max(0.0);
        let f = ObjectiveParts {
            residual,
            penalty: params.alpha * U.sum(),
            coupling: 0.0,
        };
        if trace.record(f)? {
            break;
        }
    }
    Ok(DiffusionFit {
        factors: NmfFactors { w: W, h: H },
        initiators: U,
        iterations: trace.iterations(),
        stop: trace.stop,
        objective: trace.objective,
        seconds: start.elapsed().as_secs_f64(),
        cg_iterations,
        cg_max_residual,
    })
}

/// W_·j ← W_·j/‖W_·j‖, U_·j ← ‖W_·j‖U_·j, H_·j ← ‖W_·j‖H_·j (H = KU is
/// linear in U): the fit HWᵀ is unchanged, the scale sits in U.
fn normalize_columns(W: &mut Array2<f64>, U: &mut Array2<f64>, H: &mut Array2<f64>) {
    for j in 0..W.ncols() {
        let norm = W.column(j).dot(&W.column(j)).sqrt();
        if norm > 0.0 {
            W.column_mut(j).mapv_inplace(|v| v / norm);
            U.column_mut(j).mapv_inplace(|v| v * norm);
            H.column_mut(j).mapv_inplace(|v| v * norm);
        }
    }
}

#[cfg(test)]
mod tests;
