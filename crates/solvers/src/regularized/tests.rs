use super::*;
use crate::inputs::DEFAULT_EPS;
use crate::testutil::*;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The objective as written (`Free`): what the theory is about.
fn params(k: usize, lambda: f64, solver: RegularizedSolver, max_iter: usize) -> RegularizedParams {
    RegularizedParams {
        k,
        lambda,
        solver,
        scale: RegularizedScale::Free,
        max_iter,
        tol: 0.0,
        ..RegularizedParams::default()
    }
}

/// A chain graph over the genes plus a few random edges, as an incidence matrix.
fn gene_graph(genes: usize, rng: &mut ChaCha8Rng) -> SparseF64 {
    let mut edges: Vec<(usize, usize, f64)> = (0..genes - 1).map(|g| (g, g + 1, 1.0)).collect();
    for _ in 0..genes / 2 {
        edges.push((
            rng.random_range(0..genes),
            rng.random_range(0..genes),
            rng.random_range(0.5..2.0),
        ));
    }
    SparseF64::incidence(genes, &edges).unwrap()
}

fn operators(genes: usize, rng: &mut ChaCha8Rng) -> Vec<(&'static str, Regularizer)> {
    let b = gene_graph(genes, rng);
    let l = b.gram();
    let dense = Array2::from_shape_fn((genes / 2, genes), |_| rng.random_range(-1.0..1.0));
    vec![
        ("identity", Regularizer::Identity),
        ("incidence", Regularizer::Sparse(b)),
        ("laplacian", Regularizer::Sparse(l)),
        ("dense", Regularizer::Dense(dense)),
    ]
}

fn dense_m(m: &Regularizer, genes: usize) -> Array2<f64> {
    match m {
        Regularizer::Identity => Array2::eye(genes),
        Regularizer::Sparse(s) => s.to_dense(),
        Regularizer::Dense(d) => d.clone(),
    }
}

/// F = ‖X − HWᵀ‖² + λ‖MW‖² from the dense definitions.
fn dense_objective(x: &CsrMatrix, f: &NmfFactors, m: &Array2<f64>, lambda: f64) -> f64 {
    let r = &x.to_dense() - &f.h.dot(&f.w.t());
    r.iter().map(|e| e * e).sum::<f64>() + lambda * m.dot(&f.w).iter().map(|e| e * e).sum::<f64>()
}

/// §7 in the source document's notation (X genes × cells ≈ W H, H K × cells), dense.
fn dense_reference(
    x: &Array2<f64>,
    m: &Array2<f64>,
    f0: &NmfFactors,
    lambda: f64,
    solver: RegularizedSolver,
    unit_h: bool,
    iters: usize,
) -> (Array2<f64>, Array2<f64>) {
    let eps = DEFAULT_EPS;
    let (mut w, mut h) = (f0.w.clone(), f0.h.t().to_owned());
    let mtm = m.t().dot(m);
    let mtm_norm = spectral_norm(mtm.view(), 100);
    for _ in 0..iters {
        let num = w.t().dot(x);
        let den = w.t().dot(&w).dot(&h);
        h = &h * &(num / den.mapv(|e| e.max(eps)));
        if unit_h {
            for j in 0..h.nrows() {
                let nj = h.row(j).dot(&h.row(j)).sqrt();
                h.row_mut(j).mapv_inplace(|e| e / nj);
                w.column_mut(j).mapv_inplace(|e| e * nj);
            }
        }
        let hht = h.dot(&h.t());
        match solver {
            RegularizedSolver::ProjectedGradient => {
                let l = spectral_norm(hht.view(), 100) + lambda * mtm_norm;
                let g = w.dot(&hht) - x.dot(&h.t()) + mtm.dot(&w) * lambda;
                w = (&w - &(g / l)).mapv(|e| e.max(0.0));
            }
            RegularizedSolver::Multiplicative => {
                let (p, n) = (mtm.mapv(|v| v.max(0.0)), mtm.mapv(|v| (-v).max(0.0)));
                let num = x.dot(&h.t()) + n.dot(&w) * lambda;
                let den = w.dot(&hht) + p.dot(&w) * lambda;
                w = &w * &(num / den.mapv(|e| e.max(eps)));
            }
        }
    }
    (w, h)
}

const SOLVERS: [RegularizedSolver; 2] = [
    RegularizedSolver::ProjectedGradient,
    RegularizedSolver::Multiplicative,
];

#[test]
fn defaults_and_parameter_checks() {
    let p = RegularizedParams::default();
    assert_eq!(
        (
            p.k,
            p.lambda,
            p.solver,
            p.scale,
            p.max_iter,
            p.tol,
            p.seed,
            p.power_iterations
        ),
        (
            20,
            1.0,
            RegularizedSolver::ProjectedGradient,
            RegularizedScale::Free,
            200,
            1e-4,
            1,
            100
        )
    );
    assert!(p.check().is_ok());
    let bad = |p: RegularizedParams, word: &str| {
        assert!(
            matches!(p.check(), Err(LearnerError::InvalidParameter(m)) if m.contains(word)),
            "{word}"
        );
    };
    bad(RegularizedParams::new(0), "K");
    bad(
        RegularizedParams {
            lambda: f64::NAN,
            ..RegularizedParams::new(2)
        },
        "lambda",
    );
    bad(
        RegularizedParams {
            max_iter: 0,
            ..RegularizedParams::new(2)
        },
        "max_iter",
    );
    bad(
        RegularizedParams {
            power_iterations: 0,
            ..RegularizedParams::new(2)
        },
        "power_iterations",
    );
    bad(
        RegularizedParams {
            eps: -1.0,
            ..RegularizedParams::new(2)
        },
        "eps",
    );
}

#[test]
fn rejects_an_operator_of_the_wrong_width() {
    let x = random_sparse(20, 10, 0.4, &mut ChaCha8Rng::seed_from_u64(1));
    let m = Regularizer::Dense(Array2::ones((3, 9)));
    assert!(
        matches!(regularized_nmf(&x, &m, &RegularizedParams::new(2), None).as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(e)) if e.contains("9 columns") && e.contains("10 genes"))
    );
    let m = Regularizer::Sparse(SparseF64::identity(11));
    assert!(regularized_nmf(&x, &m, &RegularizedParams::new(2), None).is_err());
    let mut d = Array2::ones((3, 10));
    d[[1, 2]] = f64::INFINITY;
    assert!(
        matches!(regularized_nmf(&x, &Regularizer::Dense(d), &RegularizedParams::new(2), None).as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(e)) if e.contains("M[1, 2]"))
    );
}

#[test]
fn objective_never_increases() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let x = random_sparse(40, 16, 0.3, &mut rng);
    for (name, m) in operators(16, &mut rng) {
        for solver in SOLVERS {
            for lambda in [0.0, 0.5, 20.0] {
                let fit = regularized_nmf(&x, &m, &params(4, lambda, solver, 150), None).unwrap();
                let trace: Vec<f64> = fit.objective.iter().map(ObjectiveParts::total).collect();
                assert_monotone(
                    &trace,
                    1e-12,
                    1e-12 * x.frobenius_sq(),
                    &format!("{name} {solver:?} λ {lambda}"),
                );
                let slow = dense_objective(&x, &fit.factors, &dense_m(&m, 16), lambda);
                assert!(
                    (trace.last().unwrap() - slow).abs() <= 1e-9 * slow,
                    "{name} {solver:?} λ {lambda}: F"
                );
            }
        }
    }
}

#[test]
fn iterates_equal_the_dense_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = random_sparse(15, 10, 0.4, &mut rng);
    for (name, m) in operators(10, &mut rng) {
        for (solver, scale) in SOLVERS
            .into_iter()
            .flat_map(|s| [(s, RegularizedScale::Free), (s, RegularizedScale::UnitNormH)])
        {
            let start = nmf_start(&x, 3, 5, None).unwrap();
            let p = RegularizedParams {
                scale,
                ..params(3, 0.7, solver, 30)
            };
            let fit = regularized_nmf(&x, &m, &p, Some(start.clone())).unwrap();
            let unit = scale == RegularizedScale::UnitNormH;
            let (w, h) = dense_reference(
                &x.to_dense().reversed_axes(),
                &dense_m(&m, 10),
                &start,
                0.7,
                solver,
                unit,
                30,
            );
            assert!(
                max_rel_diff(fit.factors.w.view(), w.view()) < 1e-10,
                "{name} {solver:?} {scale:?}: W"
            );
            assert!(
                max_rel_diff(fit.factors.h.view(), h.t()) < 1e-10,
                "{name} {solver:?} {scale:?}: H"
            );
        }
    }
}

#[test]
fn ends_near_a_kkt_point() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let x = random_sparse(40, 16, 0.4, &mut rng);
    let lambda = 2.0;
    for (name, m) in operators(16, &mut rng) {
        let mtm = dense_m(&m, 16).t().dot(&dense_m(&m, 16));
        let (p, n) = (mtm.mapv(|v| v.max(0.0)), mtm.mapv(|v| (-v).max(0.0)));
        for solver in SOLVERS {
            let fit = regularized_nmf(&x, &m, &params(3, lambda, solver, 8000), None).unwrap();
            let NmfFactors { w, h } = &fit.factors;
            let mut xth = Array2::zeros(w.dim());
            accumulate_xt_h(&x, h.view(), 1.0, xth.view_mut());
            let wpos = w.dot(&h.t().dot(h)) + p.dot(w) * lambda;
            let wneg = xth + n.dot(w) * lambda;
            let kw = kkt_violation(w.view(), wpos.view(), wneg.view());
            let kh = kkt_violation(
                h.view(),
                h.dot(&w.t().dot(w)).view(),
                inmf_learner::project(&x, w.view()).view(),
            );
            assert!(
                kw < 1e-3 && kh < 1e-3,
                "{name} {solver:?}: KKT W {kw:e}, H {kh:e}"
            );
        }
    }
}

#[test]
fn recovers_a_planted_factorization_with_a_weak_penalty() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let b = Regularizer::Sparse(gene_graph(30, &mut rng));
    for solver in SOLVERS {
        for sigma in [0.0, 0.01, 0.05] {
            let mut rng = ChaCha8Rng::seed_from_u64(6);
            let (w, h) = (planted_w(30, 3, &mut rng), planted_h(80, 3, &mut rng));
            let x = noisy(&h.dot(&w.t()), sigma, &mut rng);
            let p = RegularizedParams {
                tol: 1e-12,
                ..params(3, 1e-4, solver, 3000)
            };
            let fit = regularized_nmf(&x, &b, &p, None).unwrap();
            let rel = (fit.objective.last().unwrap().residual / x.frobenius_sq()).sqrt();
            assert!(
                rel <= 1.05 * sigma + 3e-3,
                "{solver:?} σ = {sigma}: relative residual {rel}"
            );
        }
    }
}

#[test]
fn a_gene_graph_penalty_smooths_w_over_the_graph() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x = random_sparse(60, 20, 0.3, &mut rng);
    let b = gene_graph(20, &mut rng);
    let m = Regularizer::Sparse(b.clone());
    for solver in SOLVERS {
        let rough = |f: &NmfFit| {
            // ‖BW‖² relative to ‖W‖²: scale-free roughness of W over the graph.
            let w = &f.factors.w;
            b.mul_dense(w.view()).iter().map(|e| e * e).sum::<f64>() / w.iter().map(|e| e * e).sum::<f64>()
        };
        let unit = |lambda: f64| RegularizedParams {
            scale: RegularizedScale::UnitNormH,
            ..params(3, lambda, solver, 300)
        };
        let free = regularized_nmf(&x, &m, &unit(0.0), None).unwrap();
        let smooth = regularized_nmf(&x, &m, &unit(10.0), None).unwrap();
        assert!(
            rough(&smooth) < 0.5 * rough(&free),
            "{solver:?}: {} vs {}",
            rough(&smooth),
            rough(&free)
        );
        // On this small problem F still decreases overall (not guaranteed), and H keeps unit columns.
        let (first, last) = (
            smooth.objective[0].total(),
            smooth.objective.last().unwrap().total(),
        );
        assert!(last < first, "{solver:?}: F {first} → {last}");
        assert!(smooth
            .factors
            .h
            .columns()
            .into_iter()
            .all(|c| (c.dot(&c) - 1.0).abs() < 1e-9));
    }
}

#[test]
fn same_seed_same_result_for_any_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let x = random_sparse(1300, 30, 0.2, &mut rng);
    let m = Regularizer::Sparse(gene_graph(30, &mut rng));
    for solver in SOLVERS {
        let p = params(4, 1.0, solver, 8);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| regularized_nmf(&x, &m, &p, None).unwrap())
        };
        let (a, b) = (run(1), run(2));
        assert_eq!(a.factors, b.factors);
        assert_eq!(a.objective, b.objective);
        let c = regularized_nmf(&x, &m, &RegularizedParams { seed: 9, ..p }, None).unwrap();
        assert_ne!(a.factors.w, c.factors.w);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn factors_stay_nonnegative_and_f_monotone(seed in 0u64..1000, k in 1usize..4, lambda in 0.0f64..10.0, mu in any::<bool>(), which in 0usize..4) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = random_sparse(20, 12, 0.4, &mut rng);
        let (_, m) = operators(12, &mut rng).swap_remove(which);
        let solver = if mu { RegularizedSolver::Multiplicative } else { RegularizedSolver::ProjectedGradient };
        let fit = regularized_nmf(&x, &m, &RegularizedParams { seed, ..params(k, lambda, solver, 25) }, None).unwrap();
        prop_assert!(fit.factors.w.iter().chain(fit.factors.h.iter()).all(|v| v.is_finite() && *v >= 0.0));
        for p in fit.objective.windows(2) {
            prop_assert!(p[1].total() <= p[0].total() * (1.0 + 1e-12) + 1e-12 * x.frobenius_sq());
        }
    }
}
