//! Plain NMF by Lee–Seung multiplicative updates, Frobenius and KL
//! (docs/algorithms.md §5; Lee & Seung).
//!
//! With X cells × genes (the transpose of §5's V, genes × cells), W genes × K
//! and H cells × K, X ≈ H Wᵀ and one iteration updates H, then W:
//!
//! - Frobenius, F = ‖X − HWᵀ‖²:
//!   H ← H ∘ XW / max(H(WᵀW), ε);  W ← W ∘ XᵀH / max(W(HᵀH), ε).
//! - KL, F = D(X‖HWᵀ) = Σ x ln(x/y) − x + y with y = HWᵀ, 0·ln 0 = 0:
//!   with Q = X / max(HWᵀ, ε) at the non-zeros of X (Q has X's pattern),
//!   H_cj ← H_cj (QW)_cj / max(Σ_g W_gj, ε);
//!   W_gj ← W_gj (QᵀH)_gj / max(Σ_c H_cj, ε) (Q recomputed with the new H).
//!
//! Both are non-increasing in F (auxiliary-function proof: Lee & Seung). X is
//! never densified: Frobenius uses ‖X‖² − 2⟨XᵀH, W⟩ + tr(WᵀW·HᵀH); KL
//! evaluates y only at non-zeros and Σ_all y = Σ_j (Σ_c H_cj)(Σ_g W_gj).
//!
//! **Matching scikit-learn.** `NMF(solver='mu', beta_loss=…)` run on X (cells
//! × genes) has its W = our H and its H = our Wᵀ, and updates its W then its
//! H: the same order as here. It floors y at its `EPSILON` (float32 ε) at the
//! non-zeros of X, replaces exactly-zero denominators by it, and (KL) sets
//! entries of its H below float64 ε to 0; setting `eps` to
//! `f32::EPSILON as f64` reproduces its iterates to rounding
//! (`scripts/compare-sklearn`).
#![allow(non_snake_case)]

use std::time::Instant;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, Zip};

use inmf_learner::{
    accumulate_xt_h, gram_of_rows, project_into, trace_of_product, CsrMatrix, LearnerError, ObjectiveParts,
};

use crate::inputs::{nmf_start, validate_matrix};
use crate::report::{NmfFactors, NmfFit, Trace};
use crate::sparse_values::{
    accumulate_values_t, column_sums, data_sum, kl_divergence, kl_ratio, kl_ratio_only, project_values,
};

mod params;

pub use params::{Loss, NmfMuParams};

/// Plain NMF of X (cells × genes) by multiplicative updates (module docs).
///
/// `init`: `None` draws W = [`random_w`](inmf_learner::random_w) then
/// H ~ Uniform(0.01, 1) from `ChaCha8Rng::seed_from_u64(seed)`; `Some` uses
/// the given (non-negative, correctly shaped) factors.
///
/// Errors: invalid parameters, K > genes or cells, negative or non-finite
/// data, a bad init (named); a non-finite objective (numerical failure).
pub fn nmf_mu(x: &CsrMatrix, params: &NmfMuParams, init: Option<NmfFactors>) -> Result<NmfFit, LearnerError> {
    let start = Instant::now();
    params.check()?;
    validate_matrix(x, params.k, "X")?;
    let NmfFactors { mut w, mut h } = nmf_start(x, params.k, params.seed, init)?;
    let mut trace = Trace::new(params.max_iter, params.tol);
    match params.loss {
        Loss::Frobenius => {
            let mut ws = FrobeniusWork::new(x, params.k);
            while trace.iterations() < params.max_iter {
                let f = ws.iterate(x, &mut w, &mut h, params.eps);
                if trace.record(f)? {
                    break;
                }
            }
        }
        Loss::KullbackLeibler => {
            let mut ws = KlWork::new(x, params.k);
            ws.refresh(x, &w, &h, params.eps);
            while trace.iterations() < params.max_iter {
                let f = ws.iterate(x, &mut w, &mut h, params.eps);
                if trace.record(f)? {
                    break;
                }
            }
        }
    }
    Ok(NmfFit {
        factors: NmfFactors { w, h },
        iterations: trace.iterations(),
        stop: trace.stop,
        objective: trace.objective,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// F of a plain factorization (residual = ‖X − HWᵀ‖² or D(X‖HWᵀ), y
/// floored at `eps` inside the logarithm as the solver does).
pub fn nmf_objective(x: &CsrMatrix, factors: &NmfFactors, loss: Loss, eps: f64) -> ObjectiveParts {
    let (w, h) = (factors.w.view(), factors.h.view());
    let residual = match loss {
        Loss::Frobenius => {
            let mut xth = Array2::zeros(w.dim());
            let h_std = h.as_standard_layout();
            accumulate_xt_h(x, h_std.view(), 1.0, xth.view_mut());
            frobenius_residual(x.frobenius_sq(), &xth, &w.to_owned(), &gram_of_rows(h))
        }
        Loss::KullbackLeibler => {
            let (w, h) = (w.as_standard_layout(), h.as_standard_layout());
            let mut q = vec![0.0; x.nnz()];
            let xlogx = kl_ratio(x, h.view(), w.view(), eps, &mut q);
            kl_divergence(xlogx, data_sum(x), h.view(), w.view())
        }
    };
    ObjectiveParts {
        residual,
        ..ObjectiveParts::default()
    }
}

/// ‖X‖² − 2⟨XᵀH, W⟩ + tr(WᵀW·HᵀH), clamped at 0 (rounding).
pub(crate) fn frobenius_residual(x_sq: f64, xth: &Array2<f64>, w: &Array2<f64>, hth: &Array2<f64>) -> f64 {
    let cross: f64 = Zip::from(xth).and(w).fold(0.0, |a, &p, &q| a + p * q);
    let wtw = w.t().dot(w);
    (x_sq - 2.0 * cross + trace_of_product(wtw.view(), hth.view())).max(0.0)
}

/// A ← A ∘ num / max(den, ε), element-wise.
pub(crate) fn mu_step(a: &mut Array2<f64>, num: &Array2<f64>, den: &Array2<f64>, eps: f64) {
    Zip::from(a)
        .and(num)
        .and(den)
        .for_each(|a, &n, &d| *a *= n / d.max(eps));
}

/// Buffers of the Frobenius iteration, allocated once.
struct FrobeniusWork {
    x_sq: f64,
    xw: Array2<f64>,
    h_den: Array2<f64>,
    xth: Array2<f64>,
    w_den: Array2<f64>,
}

impl FrobeniusWork {
    fn new(x: &CsrMatrix, k: usize) -> Self {
        let (n, m) = (x.n_rows(), x.n_cols());
        Self {
            x_sq: x.frobenius_sq(),
            xw: Array2::zeros((n, k)),
            h_den: Array2::zeros((n, k)),
            xth: Array2::zeros((m, k)),
            w_den: Array2::zeros((m, k)),
        }
    }

    /// One iteration (H, then W); returns F at the new factors.
    fn iterate(
        &mut self,
        x: &CsrMatrix,
        W: &mut Array2<f64>,
        H: &mut Array2<f64>,
        eps: f64,
    ) -> ObjectiveParts {
        project_into(x, W.view(), self.xw.view_mut());
        let wtw = W.t().dot(W);
        general_mat_mul(1.0, H, &wtw, 0.0, &mut self.h_den);
        mu_step(H, &self.xw, &self.h_den, eps);

        self.xth.fill(0.0);
        accumulate_xt_h(x, H.view(), 1.0, self.xth.view_mut());
        let hth = gram_of_rows(H.view());
        general_mat_mul(1.0, W, &hth, 0.0, &mut self.w_den);
        mu_step(W, &self.xth, &self.w_den, eps);

        ObjectiveParts {
            residual: frobenius_residual(self.x_sq, &self.xth, W, &hth),
            ..ObjectiveParts::default()
        }
    }
}

/// Buffers of the KL iteration; `q` always holds X / max(HWᵀ, ε) at the
/// current factors (one ratio pass serves the objective and the next H step).
struct KlWork {
    x_sum: f64,
    q: Vec<f64>,
    xlogx: f64,
    qw: Array2<f64>,
    qth: Array2<f64>,
}

impl KlWork {
    fn new(x: &CsrMatrix, k: usize) -> Self {
        Self {
            x_sum: data_sum(x),
            q: vec![0.0; x.nnz()],
            xlogx: 0.0,
            qw: Array2::zeros((x.n_rows(), k)),
            qth: Array2::zeros((x.n_cols(), k)),
        }
    }

    fn refresh(&mut self, x: &CsrMatrix, W: &Array2<f64>, H: &Array2<f64>, eps: f64) {
        self.xlogx = kl_ratio(x, H.view(), W.view(), eps, &mut self.q);
    }

    fn iterate(
        &mut self,
        x: &CsrMatrix,
        W: &mut Array2<f64>,
        H: &mut Array2<f64>,
        eps: f64,
    ) -> ObjectiveParts {
        project_values(x, &self.q, W.view(), self.qw.view_mut());
        let cw = column_sums(W.view());
        Zip::from(H.rows_mut())
            .and(self.qw.rows())
            .for_each(|mut h, num| {
                for ((h, &n), &c) in h.iter_mut().zip(num).zip(&cw) {
                    *h *= n / c.max(eps);
                }
            });
        kl_ratio_only(x, H.view(), W.view(), eps, &mut self.q);

        self.qth.fill(0.0);
        accumulate_values_t(x, &self.q, H.view(), self.qth.view_mut());
        let ch = column_sums(H.view());
        Zip::from(W.rows_mut())
            .and(self.qth.rows())
            .for_each(|mut w, num| {
                for ((w, &n), &c) in w.iter_mut().zip(num).zip(&ch) {
                    *w *= n / c.max(eps);
                }
            });
        self.refresh(x, W, H, eps);
        ObjectiveParts {
            residual: kl_divergence(self.xlogx, self.x_sum, H.view(), W.view()),
            ..ObjectiveParts::default()
        }
    }
}

#[cfg(test)]
mod tests;
