//! Batch iNMF by alternating non-negative least squares (ALGORITHMS.md §4.1;
//! rliger's `optimizeALS`).
//!
//! With X_i cells × genes, W and V_i genes × K, H_i cells × K, minimise
//!
//!   F = Σ_i ‖X_i − H_i(W + V_i)ᵀ‖² + λ Σ_i ‖H_iV_iᵀ‖²,  W, V_i, H_i ≥ 0,
//!
//! (ALGORITHMS.md §1 transposed) by exact block minimisations, each a batch
//! of NNLS problems sharing one Gram matrix, solved by [`nnls_bpp_warm_into`]'s
//! block principal pivoting (warm-started from the previous iterate):
//!
//! 1. each H_i, one row per cell: G = (W+V_i)ᵀ(W+V_i) + λV_iᵀV_i,
//!    R = X_i(W+V_i);
//! 2. each V_i, one row per gene: G = (1+λ)H_iᵀH_i, R = X_iᵀH_i − W·H_iᵀH_i;
//! 3. W, one row per gene: G = Σ_i H_iᵀH_i, R = Σ_i (X_iᵀH_i − V_i·H_iᵀH_i).
//!
//! Each step minimises F exactly over its block, so F is non-increasing (up
//! to rounding). Iterations stop when the relative decrease
//! (F_{t−1} − F_t)/F_{t−1} falls below `tol` (from the second iteration on)
//! or after `max_iter` iterations. Unlike online iNMF, the W step weighs
//! datasets by their number of cells.
//!
//! [`nnls_bpp_warm_into`]: inmf_learner::nnls_bpp_warm_into

use std::time::Instant;

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use inmf_learner::{
    accumulate_xt_h, dataset_objective, gram_of_rows, nnls_bpp_into, nnls_bpp_warm_into, project, random_w,
    shuffled_cells, v_from_cells, CsrMatrix, LearnerError, ObjectiveParts,
};

use crate::report::{InmfFactors, InmfFit, StopReason};

/// Parameters of batch iNMF by ANLS. Every field is public; [`Default`]
/// gives the documented defaults and [`InmfAnlsParams::check`] validates
/// the ranges (data-dependent rules are checked by [`inmf_anls`]).
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

/// Batch iNMF by ANLS (module docs; ALGORITHMS.md §4.1).
///
/// `datasets`: X_i, cells × genes, non-negative, same genes. `init`: if
/// `None`, W = [`random_w`] and V_i = [`v_from_cells`] of K distinct random
/// non-zero cells of dataset i (drawn with [`shuffled_cells`]), all from
/// `ChaCha8Rng::seed_from_u64(seed)`, W first then V_1, V_2, … in dataset
/// order (as online iNMF, ALGORITHMS.md §3). If `Some`, W and V_i are used
/// as given; `h` may be empty (then the first H solve starts cold) or hold
/// one H_i per dataset, used as the warm start of the first H solve (the
/// H step is exact, so it only changes the work, not the result).
///
/// Errors name the offending dataset: no datasets, gene counts that differ,
/// K > genes or K > cells of a dataset, negative or non-finite values,
/// fewer than K non-zero cells (default init), init factors of the wrong
/// shape or with negative / non-finite entries; numerical failures of the
/// NNLS steps are passed on.
pub fn inmf_anls(
    datasets: &[CsrMatrix],
    params: &InmfAnlsParams,
    init: Option<InmfFactors>,
) -> Result<InmfFit, LearnerError> {
    let start = Instant::now();
    params.check()?;
    let genes = crate::inputs::validate_datasets(datasets, params.k)?;
    let k = params.k;
    let lambda = params.lambda;

    let (mut w, mut v, mut h, h_warm) = match init {
        Some(f) => {
            crate::inputs::check_inmf_init(&f, datasets, genes, k, false)?;
            let warm = !f.h.is_empty();
            let h: Vec<Array2<f64>> = if warm {
                f.h.into_iter().map(standard_layout).collect()
            } else {
                datasets.iter().map(|x| Array2::zeros((x.n_rows(), k))).collect()
            };
            (
                standard_layout(f.w),
                f.v.into_iter().map(standard_layout).collect::<Vec<_>>(),
                h,
                warm,
            )
        }
        None => {
            let (w, v) = default_init(datasets, genes, k, params.seed)?;
            let h = datasets.iter().map(|x| Array2::zeros((x.n_rows(), k))).collect();
            (w, v, h, false)
        }
    };

    let mut objective: Vec<ObjectiveParts> = Vec::with_capacity(params.max_iter);
    let mut stop = StopReason::MaxIterations;
    let mut w_gram = Array2::<f64>::zeros((k, k));
    let mut w_rhs = Array2::<f64>::zeros((genes, k));
    let mut xth = Array2::<f64>::zeros((genes, k));
    for iter in 0..params.max_iter {
        w_gram.fill(0.0);
        w_rhs.fill(0.0);
        for (i, x) in datasets.iter().enumerate() {
            // H_i: rows per cell, G = (W+V_i)ᵀ(W+V_i) + λV_iᵀV_i, R = X_i(W+V_i).
            let wv = &w + &v[i];
            let g = wv.t().dot(&wv) + v[i].t().dot(&v[i]) * lambda;
            let r = project(x, wv.view());
            if iter == 0 && !h_warm {
                nnls_bpp_into(g.view(), r.view(), h[i].view_mut())?;
            } else {
                nnls_bpp_warm_into(g.view(), r.view(), h[i].view_mut())?;
            }

            // V_i: rows per gene, G = (1+λ)H_iᵀH_i, R = X_iᵀH_i − W·H_iᵀH_i.
            let hth = gram_of_rows(h[i].view());
            xth.fill(0.0);
            accumulate_xt_h(x, h[i].view(), 1.0, xth.view_mut());
            let v_rhs = &xth - &w.dot(&hth);
            nnls_bpp_warm_into((&hth * (1.0 + lambda)).view(), v_rhs.view(), v[i].view_mut())?;

            // W's normal equations collect Σ_i H_iᵀH_i and Σ_i (X_iᵀH_i − V_i·H_iᵀH_i).
            w_gram += &hth;
            w_rhs += &xth;
            w_rhs -= &v[i].dot(&hth);
        }
        nnls_bpp_warm_into(w_gram.view(), w_rhs.view(), w.view_mut())?;

        let mut f = ObjectiveParts::default();
        for (i, x) in datasets.iter().enumerate() {
            f += dataset_objective(x, w.view(), v[i].view(), h[i].view(), lambda);
        }
        let previous = objective.last().map(ObjectiveParts::total);
        objective.push(f);
        if let Some(prev) = previous {
            if relative_decrease(prev, f.total()) < params.tol {
                stop = StopReason::Converged;
                break;
            }
        }
    }

    Ok(InmfFit {
        factors: InmfFactors { w, v, h },
        iterations: objective.len(),
        objective,
        stop,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The NNLS steps write into the factors in place, which needs row-major storage.
fn standard_layout(a: Array2<f64>) -> Array2<f64> {
    if a.is_standard_layout() {
        a
    } else {
        a.as_standard_layout().into_owned()
    }
}

/// (F_{t−1} − F_t)/F_{t−1}; an increase is negative, and F_{t−1} = 0 gives 0.
fn relative_decrease(prev: f64, cur: f64) -> f64 {
    if prev > 0.0 {
        (prev - cur) / prev
    } else {
        0.0
    }
}

fn is_nonzero_cell(x: &CsrMatrix, c: usize) -> bool {
    x.row(c).1.iter().any(|&v| v != 0.0)
}

/// W = random_w, then V_i from K distinct random non-zero cells of each dataset.
fn default_init(
    datasets: &[CsrMatrix],
    genes: usize,
    k: usize,
    seed: u64,
) -> Result<(Array2<f64>, Vec<Array2<f64>>), LearnerError> {
    for (i, x) in datasets.iter().enumerate() {
        let nonzero = (0..x.n_rows()).filter(|&c| is_nonzero_cell(x, c)).count();
        if nonzero < k {
            return Err(LearnerError::InvalidData(format!(
                "dataset {i} has {nonzero} non-zero cells, fewer than K = {k}: V_{i} cannot be initialised"
            )));
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let w = random_w(genes, k, &mut rng);
    let mut v = Vec::with_capacity(datasets.len());
    for x in datasets {
        let mut cells = CsrMatrix::empty(genes);
        for c in shuffled_cells(x.n_rows(), &mut rng)
            .filter(|&c| is_nonzero_cell(x, c))
            .take(k)
        {
            let (cols, vals) = x.row(c);
            cells.push_row_cols(cols, vals);
        }
        v.push(v_from_cells(&cells)?);
    }
    Ok((w, v))
}

#[cfg(test)]
mod tests {
    use inmf_learner::kkt_residual;

    use super::*;

    use rand::Rng;
    use rand_distr::{Distribution, StandardNormal};

    /// Random sparse non-negative data (cells × genes), density `p`.
    fn random_sparse(cells: usize, genes: usize, p: f64, rng: &mut ChaCha8Rng) -> CsrMatrix {
        let dense: Vec<f32> = (0..cells * genes)
            .map(|_| {
                if rng.random_bool(p) {
                    rng.random_range(0.1..5.0f32)
                } else {
                    0.0
                }
            })
            .collect();
        CsrMatrix::from_dense(cells, genes, &dense)
    }

    /// X_i = H_i*(W* + V_i*)ᵀ ∘ (1 + σ·N(0,1)), clamped at 0, for a planted
    /// factorization; V_i* has entries up to `v_max` (0: no dataset-specific part).
    fn planted(
        cells: &[usize],
        genes: usize,
        k: usize,
        sigma: f64,
        v_max: f64,
        rng: &mut ChaCha8Rng,
    ) -> Vec<CsrMatrix> {
        // Gene programs with distinct supports make the planted factors identifiable.
        let w = Array2::from_shape_fn((genes, k), |(g, j)| {
            if g % k == j || rng.random_bool(0.2) {
                rng.random_range(0.5..2.0)
            } else {
                0.0
            }
        });
        cells
            .iter()
            .map(|&n| {
                let v = Array2::from_shape_fn((genes, k), |_| {
                    if v_max > 0.0 && rng.random_bool(0.1) {
                        rng.random_range(0.0..v_max)
                    } else {
                        0.0
                    }
                });
                let h = Array2::from_shape_fn((n, k), |_| {
                    if rng.random_bool(0.6) {
                        rng.random_range(0.0..2.0)
                    } else {
                        0.0
                    }
                });
                let clean = h.dot(&(&w + &v).t());
                let dense: Vec<f32> = clean
                    .iter()
                    .map(|&x| {
                        let e: f64 = StandardNormal.sample(rng);
                        (x * (1.0 + sigma * e)).max(0.0) as f32
                    })
                    .collect();
                CsrMatrix::from_dense(n, genes, &dense)
            })
            .collect()
    }

    fn sparse_datasets(seed: u64) -> Vec<CsrMatrix> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        vec![
            random_sparse(120, 50, 0.2, &mut rng),
            random_sparse(90, 50, 0.3, &mut rng),
        ]
    }

    fn params(k: usize, lambda: f64, max_iter: usize, tol: f64) -> InmfAnlsParams {
        InmfAnlsParams {
            k,
            lambda,
            max_iter,
            tol,
            ..InmfAnlsParams::default()
        }
    }

    fn total_norm_sq(datasets: &[CsrMatrix]) -> f64 {
        datasets.iter().map(CsrMatrix::frobenius_sq).sum()
    }

    #[test]
    fn defaults_are_documented_values() {
        let p = InmfAnlsParams::default();
        assert_eq!((p.k, p.lambda, p.max_iter, p.tol, p.seed), (20, 5.0, 30, 1e-6, 1));
        assert_eq!(InmfAnlsParams::new(7).k, 7);
        assert!(p.check().is_ok());
    }

    #[test]
    fn check_rejects_k_zero() {
        assert!(
            matches!(InmfAnlsParams::new(0).check(), Err(LearnerError::InvalidParameter(m)) if m.contains('K'))
        );
    }

    #[test]
    fn check_rejects_bad_lambda() {
        for lambda in [-1.0, f64::NAN, f64::INFINITY] {
            let p = InmfAnlsParams {
                lambda,
                ..InmfAnlsParams::default()
            };
            assert!(matches!(p.check(), Err(LearnerError::InvalidParameter(m)) if m.contains("lambda")));
        }
    }

    #[test]
    fn check_rejects_zero_max_iter() {
        let p = InmfAnlsParams {
            max_iter: 0,
            ..InmfAnlsParams::default()
        };
        assert!(matches!(p.check(), Err(LearnerError::InvalidParameter(m)) if m.contains("max_iter")));
    }

    #[test]
    fn check_rejects_bad_tol() {
        for tol in [-1e-6, f64::NAN] {
            let p = InmfAnlsParams {
                tol,
                ..InmfAnlsParams::default()
            };
            assert!(matches!(p.check(), Err(LearnerError::InvalidParameter(m)) if m.contains("tol")));
        }
    }

    #[test]
    fn rejects_no_datasets() {
        let e = inmf_anls(&[], &InmfAnlsParams::new(2), None);
        assert!(matches!(e, Err(LearnerError::InvalidData(m)) if m.contains("no datasets")));
    }

    #[test]
    fn rejects_unequal_gene_counts_naming_the_dataset() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let d = vec![
            random_sparse(10, 8, 0.5, &mut rng),
            random_sparse(10, 7, 0.5, &mut rng),
        ];
        let e = inmf_anls(&d, &InmfAnlsParams::new(2), None);
        assert!(matches!(e, Err(LearnerError::InvalidData(m)) if m.contains("dataset 1 has 7 genes")));
    }

    #[test]
    fn rejects_k_above_genes() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let d = vec![random_sparse(10, 4, 0.5, &mut rng)];
        let e = inmf_anls(&d, &InmfAnlsParams::new(5), None);
        assert!(matches!(e, Err(LearnerError::InvalidParameter(m)) if m.contains("genes")));
    }

    #[test]
    fn rejects_k_above_cells_naming_the_dataset() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let d = vec![
            random_sparse(10, 8, 0.5, &mut rng),
            random_sparse(3, 8, 0.5, &mut rng),
        ];
        let e = inmf_anls(&d, &InmfAnlsParams::new(4), None);
        assert!(matches!(e, Err(LearnerError::InvalidParameter(m)) if m.contains("cells of dataset 1")));
    }

    #[test]
    fn rejects_negative_values_naming_the_dataset() {
        let good = CsrMatrix::from_dense(3, 3, &[1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 1.0, 1.0, 1.0]);
        let bad = CsrMatrix::from_dense(3, 3, &[1.0, 0.0, 2.0, 0.0, -3.0, 0.0, 1.0, 1.0, 1.0]);
        let e = inmf_anls(&[good, bad], &InmfAnlsParams::new(2), None);
        assert!(matches!(e, Err(LearnerError::InvalidData(m)) if m.contains("dataset 1, cell 1, gene 1")));
    }

    #[test]
    fn rejects_too_few_nonzero_cells_naming_the_dataset() {
        let good = CsrMatrix::from_dense(3, 3, &[1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 1.0, 1.0, 1.0]);
        let sparse = CsrMatrix::from_dense(3, 3, &[1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let e = inmf_anls(&[good, sparse], &InmfAnlsParams::new(2), None);
        assert!(
            matches!(e, Err(LearnerError::InvalidData(m)) if m.contains("dataset 1 has 1 non-zero cells"))
        );
    }

    #[test]
    fn rejects_misshapen_or_negative_init() {
        let d = sparse_datasets(2);
        let p = params(3, 1.0, 2, 0.0);
        let ok = || InmfFactors {
            w: Array2::ones((50, 3)),
            v: vec![Array2::ones((50, 3)), Array2::ones((50, 3))],
            h: vec![],
        };
        assert!(inmf_anls(&d, &p, Some(ok())).is_ok());
        // Column-major factors are accepted (copied to row-major).
        let mut f = ok();
        f.w = Array2::ones((3, 50)).reversed_axes();
        assert!(!f.w.is_standard_layout());
        assert!(inmf_anls(&d, &p, Some(f)).is_ok());
        let mut f = ok();
        f.v[1] = Array2::ones((49, 3));
        let e = inmf_anls(&d, &p, Some(f));
        assert!(matches!(e, Err(LearnerError::InvalidData(m)) if m.contains("V_1")));
        let mut f = ok();
        f.w[[4, 2]] = -1.0;
        assert!(
            matches!(inmf_anls(&d, &p, Some(f)), Err(LearnerError::InvalidData(m)) if m.contains("W[4, 2]"))
        );
        let mut f = ok();
        f.v.pop();
        assert!(inmf_anls(&d, &p, Some(f)).is_err());
        let mut f = ok();
        f.h = vec![Array2::ones((120, 3))];
        assert!(inmf_anls(&d, &p, Some(f)).is_err());
    }

    #[test]
    fn objective_never_increases() {
        for (seed, lambda) in [(3, 5.0), (4, 0.0), (5, 0.5)] {
            let d = sparse_datasets(seed);
            let fit = inmf_anls(&d, &params(6, lambda, 40, 0.0), None).unwrap();
            // Each step is an exact block minimisation; allow rounding of the
            // expanded objective (ε·‖X‖²) and of the solves (1e-10 relative).
            let floor = 1e-13 * total_norm_sq(&d);
            for (t, pair) in fit.objective.windows(2).enumerate() {
                let (a, b) = (pair[0].total(), pair[1].total());
                assert!(
                    b <= a + 1e-10 * a + floor,
                    "seed {seed}: F rose from {a} to {b} at iteration {}",
                    t + 2
                );
            }
            assert!(fit.objective.last().unwrap().total() < fit.objective[0].total());
        }
    }

    #[test]
    fn recovers_a_planted_factorization() {
        // With λ = 0 any planted W*+V_i* is reachable; with λ > 0 the optimum
        // puts the shared part in W, so plant V_i* = 0 there.
        for (lambda, v_max) in [(0.0, 0.3), (5.0, 0.0)] {
            for sigma in [0.0, 0.01, 0.05] {
                let mut rng = ChaCha8Rng::seed_from_u64(6);
                let d = planted(&[150, 100], 40, 4, sigma, v_max, &mut rng);
                let fit = inmf_anls(&d, &params(4, lambda, 500, 1e-10), None).unwrap();
                assert_eq!(fit.stop, StopReason::Converged);
                let f = fit.objective.last().unwrap();
                let rel = (f.residual / total_norm_sq(&d)).sqrt();
                // The relative noise ‖X − X*‖/‖X‖ is ≈ σ; f32 storage limits the noise-free case.
                assert!(
                    rel <= 1.05 * sigma + 1e-5,
                    "λ = {lambda}, σ = {sigma}: relative residual {rel}"
                );
                assert!(
                    f.penalty <= 1e-4 * total_norm_sq(&d),
                    "λ = {lambda}, σ = {sigma}: penalty {}",
                    f.penalty
                );
            }
        }
    }

    #[test]
    fn every_block_satisfies_kkt() {
        let d = sparse_datasets(7);
        let lambda = 2.0;
        let first = inmf_anls(&d, &params(5, lambda, 8, 0.0), None).unwrap();
        // One more iteration from the previous factors: each block's NNLS data are then known.
        let prev = first.factors.clone();
        let next = inmf_anls(&d, &params(5, lambda, 1, 0.0), Some(prev.clone()))
            .unwrap()
            .factors;
        let mut w_gram = Array2::<f64>::zeros((5, 5));
        let mut w_rhs = Array2::<f64>::zeros((50, 5));
        for (i, x) in d.iter().enumerate() {
            let wv = &prev.w + &prev.v[i];
            let g = wv.t().dot(&wv) + prev.v[i].t().dot(&prev.v[i]) * lambda;
            let r = project(x, wv.view());
            let kkt = kkt_residual(g.view(), r.view(), next.h[i].view());
            assert!(kkt <= 1e-8, "H_{i}: KKT {kkt:e}");
            let hth = gram_of_rows(next.h[i].view());
            let mut xth = Array2::zeros((50, 5));
            accumulate_xt_h(x, next.h[i].view(), 1.0, xth.view_mut());
            let v_rhs = &xth - &prev.w.dot(&hth);
            let kkt = kkt_residual((&hth * (1.0 + lambda)).view(), v_rhs.view(), next.v[i].view());
            assert!(kkt <= 1e-8, "V_{i}: KKT {kkt:e}");
            w_gram += &hth;
            w_rhs += &(&xth - &next.v[i].dot(&hth));
        }
        let kkt = kkt_residual(w_gram.view(), w_rhs.view(), next.w.view());
        assert!(kkt <= 1e-8, "W: KKT {kkt:e}");
    }

    #[test]
    fn same_seed_same_result_for_any_thread_count() {
        let d = sparse_datasets(8);
        let p = params(5, 5.0, 10, 0.0);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| inmf_anls(&d, &p, None).unwrap())
        };
        let (a, b) = (run(1), run(2));
        // Bit identity is the property under test, hence `==` on floats.
        assert_eq!(a.factors, b.factors);
        assert_eq!(a.objective, b.objective);
        let other = inmf_anls(&d, &InmfAnlsParams { seed: 2, ..p }, None).unwrap();
        assert_ne!(a.factors.w, other.factors.w);
    }

    #[test]
    fn stops_on_tolerance_or_budget() {
        let d = sparse_datasets(9);
        let loose = inmf_anls(&d, &params(4, 5.0, 200, 1e-3), None).unwrap();
        assert_eq!(loose.stop, StopReason::Converged);
        assert!(loose.iterations < 200 && loose.iterations == loose.objective.len());
        let (a, b) = (
            loose.objective[loose.iterations - 2].total(),
            loose.objective[loose.iterations - 1].total(),
        );
        assert!((a - b) / a < 1e-3);
        let short = inmf_anls(&d, &params(4, 5.0, 3, 0.0), None).unwrap();
        assert_eq!((short.stop, short.iterations), (StopReason::MaxIterations, 3));
        assert!(short.seconds >= 0.0);
        assert!(short
            .factors
            .h
            .iter()
            .zip(&d)
            .all(|(h, x)| h.dim() == (x.n_rows(), 4)));
    }
}
