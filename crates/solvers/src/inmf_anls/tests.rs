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
    assert!(
        matches!(e.as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("no datasets"))
    );
}

#[test]
fn rejects_unequal_gene_counts_naming_the_dataset() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let d = vec![
        random_sparse(10, 8, 0.5, &mut rng),
        random_sparse(10, 7, 0.5, &mut rng),
    ];
    let e = inmf_anls(&d, &InmfAnlsParams::new(2), None);
    let e = e.unwrap_err();
    assert!(matches!(e, LearnerError::InDataset { dataset: 1, .. }), "{e}");
    assert!(matches!(e.root(), LearnerError::InvalidData(m) if m.contains("dataset 1 has 7 genes")));
}

#[test]
fn rejects_k_above_genes() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let d = vec![random_sparse(10, 4, 0.5, &mut rng)];
    let e = inmf_anls(&d, &InmfAnlsParams::new(5), None);
    assert!(
        matches!(e.as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidParameter(m)) if m.contains("genes"))
    );
}

#[test]
fn rejects_k_above_cells_naming_the_dataset() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let d = vec![
        random_sparse(10, 8, 0.5, &mut rng),
        random_sparse(3, 8, 0.5, &mut rng),
    ];
    let e = inmf_anls(&d, &InmfAnlsParams::new(4), None);
    assert!(
        matches!(e.as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidParameter(m)) if m.contains("cells of dataset 1"))
    );
}

#[test]
fn rejects_negative_values_naming_the_dataset() {
    let good = CsrMatrix::from_dense(3, 3, &[1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 1.0, 1.0, 1.0]);
    let bad = CsrMatrix::from_dense(3, 3, &[1.0, 0.0, 2.0, 0.0, -3.0, 0.0, 1.0, 1.0, 1.0]);
    let e = inmf_anls(&[good, bad], &InmfAnlsParams::new(2), None);
    assert!(
        matches!(e.as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("dataset 1, cell 1, gene 1"))
    );
}

#[test]
fn rejects_too_few_nonzero_cells_naming_the_dataset() {
    let good = CsrMatrix::from_dense(3, 3, &[1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 1.0, 1.0, 1.0]);
    let sparse = CsrMatrix::from_dense(3, 3, &[1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    let e = inmf_anls(&[good, sparse], &InmfAnlsParams::new(2), None).unwrap_err();
    assert!(matches!(e.root(), LearnerError::InvalidData(m) if m.contains("dataset 1 has 1 non-zero cells")));
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
    assert!(
        matches!(e.as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("V_1"))
    );
    let mut f = ok();
    f.w[[4, 2]] = -1.0;
    assert!(
        matches!(inmf_anls(&d, &p, Some(f)).as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("W[4, 2]"))
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
