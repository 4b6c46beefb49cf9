//! Plain NMF by Lee–Seung multiplicative updates, Frobenius and KL
//! (ALGORITHMS.md §5; seed 004).
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
//! Both are non-increasing in F (auxiliary-function proof in seed 004). X is
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

use crate::inputs::{check_eps, check_k, check_loop, nmf_start, validate_matrix, DEFAULT_EPS};
use crate::report::{NmfFactors, NmfFit, Trace};
use crate::sparse_values::{
    accumulate_values_t, column_sums, data_sum, kl_divergence, kl_ratio, kl_ratio_only, project_values,
};

/// The divergence a multiplicative solver minimizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Loss {
    /// Squared Frobenius norm ‖X − Y‖².
    #[default]
    Frobenius,
    /// Generalized Kullback–Leibler divergence D(X‖Y) = Σ x ln(x/y) − x + y.
    KullbackLeibler,
}

/// Parameters of [`nmf_mu`]; [`Default`] gives the documented defaults
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
mod tests {
    use super::*;
    use crate::report::{FitReport, StopReason};
    use crate::testutil::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn data(seed: u64) -> CsrMatrix {
        random_sparse(40, 25, 0.3, &mut ChaCha8Rng::seed_from_u64(seed))
    }

    fn params(k: usize, loss: Loss, max_iter: usize, tol: f64) -> NmfMuParams {
        NmfMuParams {
            k,
            loss,
            max_iter,
            tol,
            ..NmfMuParams::default()
        }
    }

    /// The §5 formulas in the seed's notation (V genes × cells ≈ W H, H K × cells), dense.
    fn dense_reference(
        v: &Array2<f64>,
        w0: &Array2<f64>,
        h0: &Array2<f64>,
        loss: Loss,
        iters: usize,
    ) -> (Array2<f64>, Array2<f64>) {
        let eps = DEFAULT_EPS;
        let (mut w, mut h) = (w0.clone(), h0.clone());
        for _ in 0..iters {
            match loss {
                Loss::Frobenius => {
                    let num = w.t().dot(v);
                    let den = w.t().dot(&w).dot(&h);
                    h = &h * &(&num / &den.mapv(|d| d.max(eps)));
                    let num = v.dot(&h.t());
                    let den = w.dot(&h).dot(&h.t());
                    w = &w * &(&num / &den.mapv(|d| d.max(eps)));
                }
                Loss::KullbackLeibler => {
                    let (m, n) = v.dim();
                    let k = w.ncols();
                    let wh = w.dot(&h);
                    let mut h_new = h.clone();
                    for a in 0..k {
                        let sw: f64 = (0..m).map(|i| w[[i, a]]).sum();
                        for mu in 0..n {
                            let s: f64 = (0..m)
                                .filter(|&i| v[[i, mu]] != 0.0)
                                .map(|i| w[[i, a]] * v[[i, mu]] / wh[[i, mu]].max(eps))
                                .sum();
                            h_new[[a, mu]] = h[[a, mu]] * s / sw.max(eps);
                        }
                    }
                    h = h_new;
                    let wh = w.dot(&h);
                    let mut w_new = w.clone();
                    for a in 0..k {
                        let sh: f64 = (0..n).map(|mu| h[[a, mu]]).sum();
                        for i in 0..m {
                            let s: f64 = (0..n)
                                .filter(|&mu| v[[i, mu]] != 0.0)
                                .map(|mu| h[[a, mu]] * v[[i, mu]] / wh[[i, mu]].max(eps))
                                .sum();
                            w_new[[i, a]] = w[[i, a]] * s / sh.max(eps);
                        }
                    }
                    w = w_new;
                }
            }
        }
        (w, h)
    }

    #[test]
    fn defaults_are_documented_values() {
        let p = NmfMuParams::default();
        assert_eq!(
            (p.k, p.loss, p.max_iter, p.tol, p.seed, p.eps),
            (20, Loss::Frobenius, 200, 1e-4, 1, 1e-16)
        );
        assert!(p.check().is_ok());
        assert_eq!(
            NmfMuParams::new(3, Loss::KullbackLeibler).loss,
            Loss::KullbackLeibler
        );
    }

    #[test]
    fn check_rejects_each_bad_parameter() {
        let bad = |p: NmfMuParams, word: &str| {
            assert!(
                matches!(p.check(), Err(LearnerError::InvalidParameter(m)) if m.contains(word)),
                "{word}"
            );
        };
        bad(NmfMuParams::new(0, Loss::Frobenius), "K");
        bad(params(2, Loss::Frobenius, 0, 0.0), "max_iter");
        bad(params(2, Loss::Frobenius, 5, -1.0), "tol");
        bad(params(2, Loss::Frobenius, 5, f64::NAN), "tol");
        for eps in [0.0, -1.0, 1.0, f64::NAN] {
            bad(
                NmfMuParams {
                    eps,
                    ..NmfMuParams::new(2, Loss::Frobenius)
                },
                "eps",
            );
        }
    }

    #[test]
    fn rejects_bad_data_and_init() {
        let x = data(1);
        let e = nmf_mu(&x, &NmfMuParams::new(26, Loss::Frobenius), None);
        assert!(matches!(e, Err(LearnerError::InvalidParameter(m)) if m.contains("genes")));
        let small = random_sparse(3, 25, 0.5, &mut ChaCha8Rng::seed_from_u64(1));
        let e = nmf_mu(&small, &NmfMuParams::new(4, Loss::Frobenius), None);
        assert!(matches!(e, Err(LearnerError::InvalidParameter(m)) if m.contains("cells")));
        let neg = CsrMatrix::from_dense(2, 2, &[1.0, -1.0, 2.0, 3.0]);
        let e = nmf_mu(&neg, &NmfMuParams::new(1, Loss::KullbackLeibler), None);
        assert!(matches!(e, Err(LearnerError::InvalidData(m)) if m.contains("cell 0, gene 1")));
        let f = NmfFactors {
            w: Array2::ones((25, 2)),
            h: Array2::ones((39, 2)),
        };
        let e = nmf_mu(&x, &NmfMuParams::new(2, Loss::Frobenius), Some(f));
        assert!(matches!(e, Err(LearnerError::InvalidData(m)) if m.contains("H is 39")));
        let mut f = NmfFactors {
            w: Array2::ones((25, 2)),
            h: Array2::ones((40, 2)),
        };
        f.w[[3, 1]] = f64::NAN;
        let e = nmf_mu(&x, &NmfMuParams::new(2, Loss::Frobenius), Some(f));
        assert!(matches!(e, Err(LearnerError::InvalidData(m)) if m.contains("W[3, 1]")));
    }

    #[test]
    fn objective_never_increases() {
        for loss in [Loss::Frobenius, Loss::KullbackLeibler] {
            for seed in 1..4 {
                let x = data(seed);
                let fit = nmf_mu(&x, &params(5, loss, 300, 0.0), None).unwrap();
                let mut trace =
                    vec![nmf_objective(&x, &nmf_start(&x, 5, 1, None).unwrap(), loss, DEFAULT_EPS).total()];
                trace.extend(fit.objective.iter().map(ObjectiveParts::total));
                assert_monotone(
                    &trace,
                    1e-12,
                    1e-12 * x.frobenius_sq(),
                    &format!("{loss:?} seed {seed}"),
                );
                assert!(trace.last().unwrap() < &(0.9 * trace[0]));
            }
        }
    }

    #[test]
    fn iterates_equal_the_dense_reference() {
        let x = random_sparse(12, 9, 0.4, &mut ChaCha8Rng::seed_from_u64(5));
        let start = nmf_start(&x, 3, 7, None).unwrap();
        let v = x.to_dense().reversed_axes();
        for loss in [Loss::Frobenius, Loss::KullbackLeibler] {
            let fit = nmf_mu(&x, &params(3, loss, 40, 0.0), Some(start.clone())).unwrap();
            let (w, h) = dense_reference(&v, &start.w, &start.h.t().to_owned(), loss, 40);
            assert!(max_rel_diff(fit.factors.w.view(), w.view()) < 1e-10, "{loss:?} W");
            assert!(max_rel_diff(fit.factors.h.view(), h.t()) < 1e-10, "{loss:?} H");
            let f = nmf_objective(&x, &fit.factors, loss, DEFAULT_EPS).total();
            assert!((f - fit.final_objective().total()).abs() <= 1e-10 * f);
        }
    }

    #[test]
    fn ends_near_a_kkt_point() {
        let x = data(9);
        for loss in [Loss::Frobenius, Loss::KullbackLeibler] {
            let fit = nmf_mu(&x, &params(3, loss, 3000, 0.0), None).unwrap();
            let NmfFactors { w, h } = &fit.factors;
            // ∇_W = pos − neg: Frobenius W·HᵀH − XᵀH; KL 1·colsum(H) − QᵀH.
            let (wpos, wneg, hpos, hneg) = match loss {
                Loss::Frobenius => {
                    let mut xth = Array2::zeros(w.dim());
                    accumulate_xt_h(&x, h.view(), 1.0, xth.view_mut());
                    let xw = inmf_learner::project(&x, w.view());
                    (w.dot(&gram_of_rows(h.view())), xth, h.dot(&w.t().dot(w)), xw)
                }
                Loss::KullbackLeibler => {
                    let mut q = vec![0.0; x.nnz()];
                    kl_ratio(&x, h.view(), w.view(), DEFAULT_EPS, &mut q);
                    let mut qth = Array2::zeros(w.dim());
                    accumulate_values_t(&x, &q, h.view(), qth.view_mut());
                    let mut qw = Array2::zeros(h.dim());
                    project_values(&x, &q, w.view(), qw.view_mut());
                    let (ch, cw) = (column_sums(h.view()), column_sums(w.view()));
                    let wpos = Array2::from_shape_fn(w.dim(), |(_, j)| ch[j]);
                    let hpos = Array2::from_shape_fn(h.dim(), |(_, j)| cw[j]);
                    (wpos, qth, hpos, qw)
                }
            };
            let kw = kkt_violation(w.view(), wpos.view(), wneg.view());
            let kh = kkt_violation(h.view(), hpos.view(), hneg.view());
            assert!(
                kw < 1e-3 && kh < 1e-3,
                "{loss:?}: KKT violation W {kw:e}, H {kh:e}"
            );
        }
    }

    #[test]
    fn recovers_a_planted_factorization() {
        for loss in [Loss::Frobenius, Loss::KullbackLeibler] {
            for sigma in [0.0, 0.01, 0.05] {
                let mut rng = ChaCha8Rng::seed_from_u64(11);
                let (w, h) = (planted_w(30, 3, &mut rng), planted_h(80, 3, &mut rng));
                let x = noisy(&h.dot(&w.t()), sigma, &mut rng);
                let fit = nmf_mu(&x, &params(3, loss, 2000, 1e-12), None).unwrap();
                let f = nmf_objective(&x, &fit.factors, Loss::Frobenius, DEFAULT_EPS);
                let rel = (f.residual / x.frobenius_sq()).sqrt();
                assert!(
                    rel <= 1.05 * sigma + 2e-3,
                    "{loss:?}, σ = {sigma}: relative residual {rel}"
                );
            }
        }
    }

    #[test]
    fn same_seed_same_result_for_any_thread_count() {
        let x = random_sparse(1300, 30, 0.2, &mut ChaCha8Rng::seed_from_u64(3));
        for loss in [Loss::Frobenius, Loss::KullbackLeibler] {
            let p = params(4, loss, 15, 0.0);
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| nmf_mu(&x, &p, None).unwrap())
            };
            let (a, b) = (run(1), run(2));
            // Bit identity is the property under test.
            assert_eq!(a.factors, b.factors);
            assert_eq!(a.objective, b.objective);
            let c = nmf_mu(&x, &NmfMuParams { seed: 2, ..p }, None).unwrap();
            assert_ne!(a.factors.w, c.factors.w);
        }
    }

    #[test]
    fn stops_on_tolerance_or_budget() {
        let x = data(4);
        let fit = nmf_mu(&x, &params(3, Loss::Frobenius, 1000, 1e-3), None).unwrap();
        assert_eq!(fit.stop, StopReason::Converged);
        assert_eq!(fit.iterations, fit.objective.len());
        assert_eq!(fit.iterations_to(1e-3), Some(fit.iterations));
        let fit = nmf_mu(&x, &params(3, Loss::KullbackLeibler, 4, 0.0), None).unwrap();
        assert_eq!((fit.stop, fit.iterations), (StopReason::MaxIterations, 4));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn factors_stay_nonnegative_and_f_monotone(seed in 0u64..1000, k in 1usize..5, kl in any::<bool>(), p in 0.1f64..0.9) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let x = random_sparse(15, 10, p, &mut rng);
            prop_assume!(x.nnz() > 0);
            let loss = if kl { Loss::KullbackLeibler } else { Loss::Frobenius };
            let fit = nmf_mu(&x, &NmfMuParams { seed, ..params(k, loss, 30, 0.0) }, None).unwrap();
            prop_assert!(fit.factors.w.iter().chain(fit.factors.h.iter()).all(|v| v.is_finite() && *v >= 0.0));
            let trace: Vec<f64> = fit.objective.iter().map(ObjectiveParts::total).collect();
            for p in trace.windows(2) {
                prop_assert!(p[1] <= p[0] * (1.0 + 1e-12) + 1e-12 * x.frobenius_sq());
            }
        }
    }
}
