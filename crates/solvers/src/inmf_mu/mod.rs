//! iNMF by multiplicative updates, Frobenius loss (docs/algorithms.md §4.3), and
//! its γ-coupled version for paired datasets (§4.4; Liu, *Investigating iNMF for Batch Effect Correction* §1–2).
//!
//! With X_i cells × genes, W and V_i genes × K, H_i cells × K (the source document's
//! H_i transposed), A_i = H_iᵀH_i, B_i = X_iᵀH_i:
//!
//!   F = Σ_i ‖X_i − H_i(W+V_i)ᵀ‖² + λ Σ_i ‖H_iV_iᵀ‖² [+ γ Σ_{i<j} ‖H_i − H_j‖²]
//!
//! One iteration, for each dataset i in order, then W:
//! - H_i ← H_i ∘ (X_i(W+V_i) [+ γ Σ_{j≠i} H_j])
//!   / max(H_i((W+V_i)ᵀ(W+V_i) + λV_iᵀV_i) [+ γ(D−1)H_i], ε)
//! - V_i ← V_i ∘ B_i / max(W A_i + (1+λ)V_i A_i, ε)
//! - W ← W ∘ Σ_i B_i / max(Σ_i (W+V_i)A_i, ε)
//!
//! Each block update is the minimizer of a Lee–Seung auxiliary function of
//! F, so F is non-increasing after every block (tested). The coupling
//! follows docs/algorithms.md §4.4, not the source document: the gradient 2γ(H_1 − H_2) is
//! split into its positive part (γH_1, denominator) and negative part (γH_2,
//! numerator) — the source document's −γH_2 in the denominator can make it zero or
//! negative. With D > 2 paired datasets the penalty is γ Σ_{i<j} ‖H_i − H_j‖²
//! (for D = 2, exactly §4.4). Coupling needs paired data: the same cells, in
//! the same order, in every dataset.
//!
//! Report: `residual` = Σ‖X_i − H_i(W+V_i)ᵀ‖², `penalty` = λΣ‖H_iV_iᵀ‖²,
//! `coupling` = the γ term. X is never densified (the objective is
//! ‖X_i‖² − 2⟨B_i, W+V_i⟩ + tr((W+V_i)ᵀ(W+V_i)A_i), from B_i and A_i the
//! V and W steps already need).
#![allow(non_snake_case)]

use std::time::Instant;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, Zip};

use inmf_learner::{
    accumulate_xt_h, gram_of_rows, project_into, trace_of_product, CsrMatrix, LearnerError, ObjectiveParts,
};

use crate::inputs::{inmf_start, validate_datasets, validate_paired};
use crate::nmf_mu::mu_step;
use crate::report::{InmfFactors, InmfFit, Trace};

mod params;

pub use params::{Coupling, InmfMuParams};

/// iNMF (optionally γ-coupled) by multiplicative updates (module docs).
///
/// `init`: `None` draws positive random factors from
/// `ChaCha8Rng::seed_from_u64(seed)`: W = [`random_w`](inmf_learner::random_w), each
/// V_i likewise, then each H_i ~ Uniform(0.01, 1) (a multiplicative update
/// never moves an exact zero, so V_i cannot start from sparse cells as in
/// ANLS); `Some` must hold W, one V_i and one H_i per dataset.
///
/// Errors: invalid parameters; no datasets, gene counts that differ, K >
/// genes or cells, negative or non-finite data; unpaired data (different
/// cell counts) with coupling; a bad init (all named).
pub fn inmf_mu(
    datasets: &[CsrMatrix],
    params: &InmfMuParams,
    init: Option<InmfFactors>,
) -> Result<InmfFit, LearnerError> {
    let start = Instant::now();
    params.check()?;
    let genes = validate_datasets(datasets, params.k)?;
    if params.gamma() > 0.0 {
        validate_paired(datasets, None, "γ-coupled iNMF")?;
    }
    let mut f = inmf_start(datasets, genes, params.k, params.seed, init, true)?;
    let mut st = MuState::new(datasets, params);
    let mut trace = Trace::new(params.max_iter, params.tol);
    while trace.iterations() < params.max_iter {
        for i in 0..datasets.len() {
            st.update_h(&mut f, i);
            st.refresh_stats(&f, i);
            st.update_v(&mut f, i);
        }
        st.update_w(&mut f);
        if trace.record(st.objective(&f))? {
            break;
        }
    }
    Ok(InmfFit {
        factors: f,
        iterations: trace.iterations(),
        stop: trace.stop,
        objective: trace.objective,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Data, parameters and buffers of the iteration (allocated once).
pub(crate) struct MuState<'a> {
    datasets: &'a [CsrMatrix],
    lambda: f64,
    gamma: f64,
    eps: f64,
    x_sq: Vec<f64>,
    /// A_i = H_iᵀH_i and B_i = X_iᵀH_i at the current H_i.
    a: Vec<Array2<f64>>,
    b: Vec<Array2<f64>>,
    /// Numerator and denominator of the H_i step (n_i × K).
    num: Vec<Array2<f64>>,
    den: Vec<Array2<f64>>,
}

impl<'a> MuState<'a> {
    pub(crate) fn new(datasets: &'a [CsrMatrix], params: &InmfMuParams) -> Self {
        let k = params.k;
        let m = datasets[0].n_cols();
        Self {
            datasets,
            lambda: params.lambda,
            gamma: params.gamma(),
            eps: params.eps,
            x_sq: datasets.iter().map(CsrMatrix::frobenius_sq).collect(),
            a: datasets.iter().map(|_| Array2::zeros((k, k))).collect(),
            b: datasets.iter().map(|_| Array2::zeros((m, k))).collect(),
            num: datasets.iter().map(|x| Array2::zeros((x.n_rows(), k))).collect(),
            den: datasets.iter().map(|x| Array2::zeros((x.n_rows(), k))).collect(),
        }
    }

    /// A_i = H_iᵀH_i as of the last [`MuState::refresh_stats`].
    pub(crate) fn a(&self, i: usize) -> &Array2<f64> {
        &self.a[i]
    }

    /// B_i = X_iᵀH_i as of the last [`MuState::refresh_stats`].
    pub(crate) fn b(&self, i: usize) -> &Array2<f64> {
        &self.b[i]
    }

    /// H_i step (§4.3, coupled §4.4).
    pub(crate) fn update_h(&mut self, f: &mut InmfFactors, i: usize) {
        let wv = &f.w + &f.v[i];
        project_into(&self.datasets[i], wv.view(), self.num[i].view_mut());
        let g = wv.t().dot(&wv) + f.v[i].t().dot(&f.v[i]) * self.lambda;
        general_mat_mul(1.0, &f.h[i], &g, 0.0, &mut self.den[i]);
        if self.gamma > 0.0 {
            let others = (f.h.len() - 1) as f64;
            for (j, hj) in f.h.iter().enumerate() {
                if j != i {
                    self.num[i].scaled_add(self.gamma, hj);
                }
            }
            self.den[i].scaled_add(self.gamma * others, &f.h[i]);
        }
        mu_step(&mut f.h[i], &self.num[i], &self.den[i], self.eps);
    }

    /// A_i, B_i from the current H_i.
    pub(crate) fn refresh_stats(&mut self, f: &InmfFactors, i: usize) {
        self.a[i] = gram_of_rows(f.h[i].view());
        self.b[i].fill(0.0);
        accumulate_xt_h(&self.datasets[i], f.h[i].view(), 1.0, self.b[i].view_mut());
    }

    /// V_i step; A_i, B_i must be current.
    pub(crate) fn update_v(&mut self, f: &mut InmfFactors, i: usize) {
        let mut den = f.w.dot(&self.a[i]);
        general_mat_mul(1.0 + self.lambda, &f.v[i], &self.a[i], 1.0, &mut den);
        mu_step(&mut f.v[i], &self.b[i], &den, self.eps);
    }

    /// W step; every A_i, B_i must be current.
    pub(crate) fn update_w(&mut self, f: &mut InmfFactors) {
        let mut num = Array2::<f64>::zeros(f.w.dim());
        let mut den = Array2::<f64>::zeros(f.w.dim());
        for (i, v) in f.v.iter().enumerate() {
            num += &self.b[i];
            let wv = &f.w + v;
            general_mat_mul(1.0, &wv, &self.a[i], 1.0, &mut den);
        }
        mu_step(&mut f.w, &num, &den, self.eps);
    }

    /// F at the current factors; every A_i, B_i must be current.
    pub(crate) fn objective(&self, f: &InmfFactors) -> ObjectiveParts {
        let mut out = ObjectiveParts::default();
        for (i, v) in f.v.iter().enumerate() {
            let wv = &f.w + v;
            let cross: f64 = Zip::from(&self.b[i]).and(&wv).fold(0.0, |s, &p, &q| s + p * q);
            let fit = trace_of_product(wv.t().dot(&wv).view(), self.a[i].view());
            out.residual += (self.x_sq[i] - 2.0 * cross + fit).max(0.0);
            out.penalty += self.lambda * trace_of_product(v.t().dot(v).view(), self.a[i].view());
        }
        if self.gamma > 0.0 {
            out.coupling = self.gamma * pairwise_sq_distance(&f.h);
        }
        out
    }
}

/// Σ_{i<j} ‖H_i − H_j‖² (all H_i of the same shape).
pub(crate) fn pairwise_sq_distance(h: &[Array2<f64>]) -> f64 {
    let mut s = 0.0;
    for i in 0..h.len() {
        for j in i + 1..h.len() {
            s += Zip::from(&h[i])
                .and(&h[j])
                .fold(0.0, |acc, &a, &b| acc + (a - b) * (a - b));
        }
    }
    s
}

#[cfg(test)]
mod tests;
