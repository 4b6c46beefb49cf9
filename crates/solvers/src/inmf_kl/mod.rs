//! iNMF with the generalized Kullback–Leibler loss (docs/algorithms.md §4.5) and
//! its version coupling two paired datasets by γ D(H_1‖H_2) (§4.6; Liu,
//! §3–4).
//!
//! With X_i cells × genes, W and V_i genes × K, H_i cells × K,
//! D(A‖B) = Σ a ln(a/b) − a + b (0 ln 0 = 0):
//!
//!   F = Σ_i D(X_i ‖ H_i(W+V_i)ᵀ) + λ Σ_i ‖H_iV_iᵀ‖² [+ γ D(H_1‖H_2)]
//!
//! With Q_i = X_i / max(H_i(W+V_i)ᵀ, ε) at the non-zeros of X_i (it keeps
//! X's pattern; D's other terms are in closed form: Σ_all H_i(W+V_i)ᵀ =
//! Σ_j colsum(H_i)_j colsum(W+V_i)_j), one iteration updates, for each
//! dataset i, H_i then V_i, then W. Every step has the form
//! Y ← Y ∘ r(a, b, P) with a the KL numerator, b the KL denominator and
//! P the positive part of the λ term's gradient (÷2λ):
//!
//! | block | a | b | P |
//! |---|---|---|---|
//! | H_i | Q_i(W+V_i) | 1·colsum(W+V_i) | H_i V_iᵀV_i |
//! | V_i | Q_iᵀH_i | 1·colsum(H_i) | V_i H_iᵀH_i |
//! | W | Σ_i Q_iᵀH_i | Σ_i 1·colsum(H_i) | 0 |
//!
//! ([`KlStep`]): **Linearized** is the §4.5 formula, r = a / (b + 2λP).
//! It is not a majorization–minimization step when λ > 0 (it minimizes the
//! KL auxiliary function plus the *linearization* of the convex λ term, a
//! lower bound) and F can rise: with X = [1], W = [0], V = [1], λ = 100 and
//! H = [10⁻³], it moves H to 0.83 and F from 5.9 to 69 (tested).
//! **MajorizeMinimize** (default) minimizes the KL auxiliary function plus
//! the Lee–Seung majorizer of the λ term, λ Σ P y²/ỹ, in closed form:
//! r = 2a / (b + √(b² + 8λaP)), the positive root of 2λP r² + b r − a = 0.
//! Same fixed points (r = 1 ⇔ a = b + 2λP), same cost, and F is
//! non-increasing after every block (tested). For λ = 0 the two coincide.
//!
//! **Coupling (§4.6).** γ D(H_1‖H_2) has gradients γ ln ρ for H_1 and
//! γ(1 − ρ) for H_2, ρ = H_1/H_2; the source document puts them in the denominator,
//! which can go negative. Each gradient is split into a positive part
//! (joins b) and a negative part (joins a), with ρ = max(H_1, ε)/max(H_2, ε)
//! from the current iterates:
//! - H_1: ln ρ changes sign, so as docs/algorithms.md §4.6 says, a += γ[−ln ρ]_+,
//!   b += γ[ln ρ]_+.
//! - H_2: γ(1 − ρ) is the difference of two non-negative terms, split term
//!   by term as §4.4 splits 2γ(H_1 − H_2): a += γρ, b += γ. (§4.6 writes
//!   a += γ[ρ − 1]_+, b += γ[1 − ρ]_+, which has the same fixed points but
//!   diverged in testing: with γ = 20 on two noisy views of the same cells,
//!   F became NaN by iteration 32.) In H_2 the penalty is
//!   γ Σ (h_2 − h_1 ln h_2) + const, a KL-like term, so the term-wise split
//!   is the exact minimizer of its auxiliary function: the H_2 step is an
//!   MM step and cannot increase F (with the MM λ step).
//!
//! Only two datasets with the same cells (paired). F is not guaranteed to
//! decrease monotonically (the H_1 step is not MM; for large γ, e.g. 200
//! on tiny tests, it oscillates while decreasing overall), only overall
//! (tested).
//!
//! Report: `residual` = Σ_i D(X_i‖H_i(W+V_i)ᵀ) (with H(W+V)ᵀ floored at ε
//! inside the logarithm), `penalty` = λΣ‖H_iV_iᵀ‖², `coupling` = γD(H_1‖H_2).
#![allow(non_snake_case)]

use std::time::Instant;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, Zip};

use inmf_learner::{gram_of_rows, trace_of_product, CsrMatrix, LearnerError, ObjectiveParts};

use crate::inputs::{inmf_start, validate_datasets, validate_paired};
use crate::report::{InmfFactors, InmfFit, Trace};
use crate::sparse_values::{
    accumulate_values_t, column_sums, data_sum, kl_divergence, kl_ratio, kl_ratio_only, project_values,
};

mod params;

pub use params::{InmfKlParams, KlCoupling, KlStep};

/// KL iNMF, optionally γ D(H_1‖H_2)-coupled (module docs).
///
/// `init`: `None` draws positive random factors as
/// [`inmf_mu`](crate::inmf_mu) does; `Some` must hold W, one V_i and one
/// H_i per dataset.
///
/// Errors: invalid parameters; no datasets, gene counts that differ, K >
/// genes or cells, negative or non-finite data; with coupling, other than
/// two datasets or different cell counts; a bad init (all named).
pub fn inmf_kl(
    datasets: &[CsrMatrix],
    params: &InmfKlParams,
    init: Option<InmfFactors>,
) -> Result<InmfFit, LearnerError> {
    let start = Instant::now();
    params.check()?;
    let genes = validate_datasets(datasets, params.k)?;
    if params.gamma() > 0.0 {
        validate_paired(datasets, Some(2), "KL iNMF with γ D(H_1‖H_2)")?;
    }
    let mut f = inmf_start(datasets, genes, params.k, params.seed, init, true)?;
    let mut st = KlState::new(datasets, params, &f);
    let mut trace = Trace::new(params.max_iter, params.tol);
    while trace.iterations() < params.max_iter {
        st.iterate(&mut f);
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

/// y ← y·r(a, b, P) for one entry (module docs); `b` already includes any
/// coupling term, `lp` = λP.
#[inline]
fn step_ratio(step: KlStep, a: f64, b: f64, lp: f64, eps: f64) -> f64 {
    match step {
        KlStep::Linearized => a / (b + 2.0 * lp).max(eps),
        KlStep::MajorizeMinimize => 2.0 * a / (b + (b * b + 8.0 * a * lp).sqrt()).max(eps),
    }
}

/// Data, parameters and buffers (allocated once).
pub(crate) struct KlState<'a> {
    datasets: &'a [CsrMatrix],
    lambda: f64,
    gamma: f64,
    step: KlStep,
    eps: f64,
    x_sum: Vec<f64>,
    /// Q_i at the current factors, and Σ x ln(x/y) with it.
    q: Vec<Vec<f64>>,
    xlogx: Vec<f64>,
    /// Numerator buffers: n_i × K for H_i, genes × K for V_i and W.
    num_h: Vec<Array2<f64>>,
    num_g: Array2<f64>,
    /// Penalty gradient buffers λP (n_i × K, genes × K).
    pen_h: Vec<Array2<f64>>,
    pen_g: Array2<f64>,
    /// W's numerator and denominator, summed over datasets.
    w_num: Array2<f64>,
    w_den: Vec<f64>,
}

impl<'a> KlState<'a> {
    pub(crate) fn new(datasets: &'a [CsrMatrix], params: &InmfKlParams, f: &InmfFactors) -> Self {
        let k = params.k;
        let m = datasets[0].n_cols();
        let mut st = Self {
            datasets,
            lambda: params.lambda,
            gamma: params.gamma(),
            step: params.step,
            eps: params.eps,
            x_sum: datasets.iter().map(data_sum).collect(),
            q: datasets.iter().map(|x| vec![0.0; x.nnz()]).collect(),
            xlogx: vec![0.0; datasets.len()],
            num_h: datasets.iter().map(|x| Array2::zeros((x.n_rows(), k))).collect(),
            num_g: Array2::zeros((m, k)),
            pen_h: datasets.iter().map(|x| Array2::zeros((x.n_rows(), k))).collect(),
            pen_g: Array2::zeros((m, k)),
            w_num: Array2::zeros((m, k)),
            w_den: vec![0.0; k],
        };
        for i in 0..datasets.len() {
            st.refresh(f, i);
        }
        st
    }

    /// Q_i and Σ x ln(x/y) at the current H_i, W + V_i.
    pub(crate) fn refresh(&mut self, f: &InmfFactors, i: usize) {
        let wv = &f.w + &f.v[i];
        self.xlogx[i] = kl_ratio(
            &self.datasets[i],
            f.h[i].view(),
            wv.view(),
            self.eps,
            &mut self.q[i],
        );
    }

    /// Q_i only (no logarithms) at the current H_i, W + V_i.
    fn refresh_ratio(&mut self, f: &InmfFactors, i: usize) {
        let wv = &f.w + &f.v[i];
        kl_ratio_only(
            &self.datasets[i],
            f.h[i].view(),
            wv.view(),
            self.eps,
            &mut self.q[i],
        );
    }

    /// One iteration: for each i, H_i then V_i; then W; Q_i kept current.
    pub(crate) fn iterate(&mut self, f: &mut InmfFactors) {
        self.w_num.fill(0.0);
        self.w_den.fill(0.0);
        for i in 0..self.datasets.len() {
            self.update_h(f, i);
            self.refresh_ratio(f, i);
            self.update_v(f, i);
            self.refresh_ratio(f, i);
            accumulate_values_t(
                &self.datasets[i],
                &self.q[i],
                f.h[i].view(),
                self.w_num.view_mut(),
            );
            for (d, c) in self.w_den.iter_mut().zip(column_sums(f.h[i].view())) {
                *d += c;
            }
        }
        self.update_w(f);
        for i in 0..self.datasets.len() {
            self.refresh(f, i);
        }
    }

    /// H_i step; Q_i must be current.
    pub(crate) fn update_h(&mut self, f: &mut InmfFactors, i: usize) {
        let wv = &f.w + &f.v[i];
        project_values(&self.datasets[i], &self.q[i], wv.view(), self.num_h[i].view_mut());
        let b = column_sums(wv.view());
        if self.lambda > 0.0 {
            let vtv = f.v[i].t().dot(&f.v[i]);
            general_mat_mul(self.lambda, &f.h[i], &vtv, 0.0, &mut self.pen_h[i]);
        } else {
            self.pen_h[i].fill(0.0);
        }
        let (step, eps, gamma) = (self.step, self.eps, self.gamma);
        if gamma > 0.0 {
            let first = i == 0;
            let (left, right) = f.h.split_at_mut(1);
            let (target, other) = if first {
                (&mut left[0], &right[0])
            } else {
                (&mut right[0], &left[0])
            };
            Zip::from(target.rows_mut())
                .and(self.num_h[i].rows())
                .and(self.pen_h[i].rows())
                .and(other.rows())
                .for_each(|mut h, a, lp, o| {
                    for j in 0..h.len() {
                        let (h0, h1) = if first { (h[j], o[j]) } else { (o[j], h[j]) };
                        let rho = h0.max(eps) / h1.max(eps);
                        let (ca, cb) = if first {
                            let l = rho.ln();
                            ((-l).max(0.0), l.max(0.0))
                        } else {
                            (rho, 1.0)
                        };
                        h[j] *= step_ratio(step, a[j] + gamma * ca, b[j] + gamma * cb, lp[j], eps);
                    }
                });
        } else {
            Zip::from(f.h[i].rows_mut())
                .and(self.num_h[i].rows())
                .and(self.pen_h[i].rows())
                .for_each(|mut h, a, lp| {
                    for j in 0..h.len() {
                        h[j] *= step_ratio(step, a[j], b[j], lp[j], eps);
                    }
                });
        }
    }

    /// V_i step; Q_i must be current.
    pub(crate) fn update_v(&mut self, f: &mut InmfFactors, i: usize) {
        self.num_g.fill(0.0);
        accumulate_values_t(
            &self.datasets[i],
            &self.q[i],
            f.h[i].view(),
            self.num_g.view_mut(),
        );
        let b = column_sums(f.h[i].view());
        if self.lambda > 0.0 {
            let a = gram_of_rows(f.h[i].view());
            general_mat_mul(self.lambda, &f.v[i], &a, 0.0, &mut self.pen_g);
        } else {
            self.pen_g.fill(0.0);
        }
        let (step, eps) = (self.step, self.eps);
        Zip::from(f.v[i].rows_mut())
            .and(self.num_g.rows())
            .and(self.pen_g.rows())
            .for_each(|mut v, a, lp| {
                for j in 0..v.len() {
                    v[j] *= step_ratio(step, a[j], b[j], lp[j], eps);
                }
            });
    }

    /// W step from the accumulated Σ_i Q_iᵀH_i and Σ_i colsum(H_i).
    fn update_w(&mut self, f: &mut InmfFactors) {
        let eps = self.eps;
        Zip::from(f.w.rows_mut())
            .and(self.w_num.rows())
            .for_each(|mut w, a| {
                for j in 0..w.len() {
                    w[j] *= a[j] / self.w_den[j].max(eps);
                }
            });
    }

    /// F at the current factors; every Q_i must be current.
    pub(crate) fn objective(&self, f: &InmfFactors) -> ObjectiveParts {
        let mut out = ObjectiveParts::default();
        for (i, v) in f.v.iter().enumerate() {
            let wv = &f.w + v;
            out.residual += kl_divergence(self.xlogx[i], self.x_sum[i], f.h[i].view(), wv.view());
            if self.lambda > 0.0 {
                let a = gram_of_rows(f.h[i].view());
                out.penalty += self.lambda * trace_of_product(v.t().dot(v).view(), a.view());
            }
        }
        if self.gamma > 0.0 {
            out.coupling = self.gamma * h_divergence(&f.h[0], &f.h[1], self.eps);
        }
        out
    }
}

/// D(H_1‖H_2) = Σ h1 ln(h1/h2) − h1 + h2 (0 ln 0 = 0), h2 floored at ε in the logarithm.
pub(crate) fn h_divergence(h1: &Array2<f64>, h2: &Array2<f64>, eps: f64) -> f64 {
    Zip::from(h1).and(h2).fold(0.0, |s, &a, &b| {
        if a > 0.0 {
            s + a * (a / b.max(eps)).ln() - a + b
        } else {
            s + b
        }
    })
}

#[cfg(test)]
mod tests;
