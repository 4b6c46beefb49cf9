use super::*;
use crate::cg::CgParams;
use crate::inputs::DEFAULT_EPS;
use crate::testutil::*;
use ndarray_linalg::Inverse;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A kNN-like graph: each cell linked to the next `deg` cells of its group.
fn graph(n: usize, groups: usize, deg: usize, rng: &mut ChaCha8Rng) -> SparseF64 {
    let mut edges = Vec::new();
    for i in 0..n {
        for d in 1..=deg {
            let j = i + d * groups;
            if j < n {
                edges.push((i, j, rng.random_range(0.5..1.5)));
            }
        }
    }
    SparseF64::adjacency(n, &edges).unwrap()
}

fn tight(params: DiffusionParams) -> DiffusionParams {
    DiffusionParams {
        cg: CgParams {
            tol: 1e-14,
            max_iter: 2000,
        },
        ..params
    }
}

fn params(k: usize, beta: f64, alpha: f64, max_iter: usize) -> DiffusionParams {
    DiffusionParams {
        k,
        beta,
        alpha,
        max_iter,
        tol: 0.0,
        ..DiffusionParams::default()
    }
}

/// §6 with a dense K in the source document's notation: D genes × cells, X genes × k, V k × cells.
fn dense_reference(
    d: &Array2<f64>,
    kmat: &Array2<f64>,
    x0: &Array2<f64>,
    v0: &Array2<f64>,
    alpha: f64,
    iters: usize,
) -> (Array2<f64>, Array2<f64>) {
    let eps = DEFAULT_EPS;
    let (mut x, mut v) = (x0.clone(), v0.clone());
    for _ in 0..iters {
        let vk = v.dot(kmat);
        let num = d.dot(&kmat.t()).dot(&v.t());
        let den = x.dot(&vk).dot(&kmat.t()).dot(&v.t());
        x = &x * &(num / den.mapv(|e| e.max(eps)));
        if alpha > 0.0 {
            for j in 0..x.ncols() {
                let nj = x.column(j).dot(&x.column(j)).sqrt();
                x.column_mut(j).mapv_inplace(|e| e / nj);
                v.row_mut(j).mapv_inplace(|e| e * nj);
            }
        }
        let num = x.t().dot(d).dot(&kmat.t());
        let den = x.t().dot(&x).dot(&v).dot(kmat).dot(&kmat.t()) + alpha / 2.0;
        v = &v * &(num.mapv(|e| e.max(0.0)) / den.mapv(|e| e.max(eps)));
    }
    (x, v)
}

fn dense_k(g: &SparseF64, beta: f64) -> Array2<f64> {
    let l = SparseF64::laplacian(g).unwrap().to_dense();
    (Array2::<f64>::eye(g.n_rows()) + l * beta).inv().unwrap()
}

#[test]
fn defaults_and_parameter_checks() {
    let p = DiffusionParams::default();
    assert_eq!(
        (p.k, p.beta, p.alpha, p.max_iter, p.tol, p.seed),
        (20, 1.0, 0.0, 200, 1e-5, 1)
    );
    assert_eq!(
        p.cg,
        CgParams {
            tol: 1e-10,
            max_iter: 1000
        }
    );
    assert!(p.check().is_ok());
    let bad = |p: DiffusionParams, word: &str| {
        assert!(
            matches!(p.check(), Err(LearnerError::InvalidParameter(m)) if m.contains(word)),
            "{word}"
        );
    };
    bad(DiffusionParams::new(0), "K");
    bad(
        DiffusionParams {
            beta: 0.0,
            ..DiffusionParams::new(2)
        },
        "beta",
    );
    bad(
        DiffusionParams {
            alpha: -1.0,
            ..DiffusionParams::new(2)
        },
        "alpha",
    );
    bad(
        DiffusionParams {
            max_iter: 0,
            ..DiffusionParams::new(2)
        },
        "max_iter",
    );
    bad(
        DiffusionParams {
            cg: CgParams {
                tol: 2.0,
                max_iter: 3,
            },
            ..DiffusionParams::new(2)
        },
        "CG",
    );
}

#[test]
fn rejects_a_graph_of_the_wrong_size_or_kind() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x = random_sparse(20, 10, 0.4, &mut rng);
    let g = graph(19, 2, 2, &mut rng);
    assert!(
        matches!(diffusion_nmf(&x, &g, &DiffusionParams::new(2), None).as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("19 × 19") && m.contains("20 cells"))
    );
    let asym = SparseF64::from_triplets(20, 20, &[(0, 1, 1.0)]).unwrap();
    assert!(
        matches!(diffusion_nmf(&x, &asym, &DiffusionParams::new(2), None).as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("symmetric"))
    );
    let neg = CsrMatrix::from_dense(1, 2, &[1.0, -2.0]);
    assert!(diffusion_nmf(&neg, &SparseF64::identity(1), &DiffusionParams::new(1), None).is_err());
}

#[test]
fn iterates_equal_the_dense_kernel_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let x = random_sparse(30, 12, 0.4, &mut rng);
    let g = graph(30, 3, 3, &mut rng);
    for alpha in [0.0, 0.5] {
        let start = nmf_start(&x, 3, 4, None).unwrap();
        let p = tight(params(3, 1.5, alpha, 30));
        let fit = diffusion_nmf(&x, &g, &p, Some(start.clone())).unwrap();
        let kmat = dense_k(&g, 1.5);
        let (w, v) = dense_reference(
            &x.to_dense().reversed_axes(),
            &kmat,
            &start.w,
            &start.h.t().to_owned(),
            alpha,
            30,
        );
        assert!(
            max_rel_diff(fit.factors.w.view(), w.view()) < 1e-10,
            "α {alpha}: W"
        );
        assert!(max_rel_diff(fit.initiators.view(), v.t()) < 1e-10, "α {alpha}: U");
        assert!(
            max_rel_diff(fit.factors.h.view(), kmat.dot(&v.t()).view()) < 1e-10,
            "α {alpha}: H"
        );
        assert!(fit.cg_max_residual <= 1e-14);
    }
}

#[test]
fn objective_never_increases_without_l1() {
    for (seed, beta) in [(3, 1.0), (4, 5.0), (5, 0.3)] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = random_sparse(60, 20, 0.3, &mut rng);
        let g = graph(60, 4, 3, &mut rng);
        let fit = diffusion_nmf(&x, &g, &tight(params(4, beta, 0.0, 150)), None).unwrap();
        let trace: Vec<f64> = fit.objective.iter().map(ObjectiveParts::total).collect();
        assert_monotone(&trace, 1e-12, 1e-12 * x.frobenius_sq(), &format!("β {beta}"));
        assert!(trace.last().unwrap() < &trace[0]);
    }
}

#[test]
fn objective_decreases_overall_with_l1() {
    for (seed, alpha) in [(5, 2.0), (6, 0.5)] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = random_sparse(60, 20, 0.3, &mut rng);
        let g = graph(60, 4, 3, &mut rng);
        let fit = diffusion_nmf(&x, &g, &params(4, 1.0, alpha, 150), None).unwrap();
        let trace: Vec<f64> = fit.objective.iter().map(ObjectiveParts::total).collect();
        assert!(
            trace.last().unwrap() < &trace[0],
            "α {alpha}: {} → {}",
            trace[0],
            trace.last().unwrap()
        );
        // The normalization step may raise F, by little.
        assert_monotone(&trace, 1e-5, 0.0, &format!("α {alpha}"));
        assert!(fit
            .factors
            .w
            .columns()
            .into_iter()
            .all(|c| (c.dot(&c) - 1.0).abs() < 1e-12));
    }
}

#[test]
fn ends_near_a_kkt_point() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let x = random_sparse(40, 15, 0.4, &mut rng);
    let g = graph(40, 4, 2, &mut rng);
    let beta = 1.0;
    let kmat = dense_k(&g, beta);
    for alpha in [0.0, 0.2] {
        let fit = diffusion_nmf(&x, &g, &tight(params(3, beta, alpha, 2000)), None).unwrap();
        let (w, h, u) = (&fit.factors.w, &fit.factors.h, &fit.initiators);
        // U's block is convex for fixed W: its KKT conditions hold at the end.
        let upos = kmat.dot(&h.dot(&w.t().dot(w))) + alpha / 2.0;
        let uneg = kmat.dot(&inmf_learner::project(&x, w.view()));
        let ku = kkt_violation(u.view(), upos.view(), uneg.view());
        assert!(ku < 1e-3, "α {alpha}: KKT U {ku:e}");
        if alpha == 0.0 {
            // With α > 0, W is kept on unit columns (a constraint), so only α = 0 has plain KKT for W.
            let mut xth = Array2::zeros(w.dim());
            accumulate_xt_h(&x, h.view(), 1.0, xth.view_mut());
            let kw = kkt_violation(w.view(), w.dot(&h.t().dot(h)).view(), xth.view());
            assert!(kw < 1e-3, "KKT W {kw:e}");
        }
    }
}

#[test]
fn l1_makes_initiators_sparser() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x = random_sparse(60, 20, 0.3, &mut rng);
    let g = graph(60, 4, 3, &mut rng);
    // Hoyer's sparsity: 0 for a constant matrix, 1 for a single non-zero.
    let hoyer = |a: &Array2<f64>| {
        let n = (a.len() as f64).sqrt();
        (n - a.sum() / a.iter().map(|v| v * v).sum::<f64>().sqrt()) / (n - 1.0)
    };
    let plain = diffusion_nmf(&x, &g, &params(3, 1.0, 0.0, 300), None).unwrap();
    let l1 = diffusion_nmf(&x, &g, &params(3, 1.0, 5.0, 300), None).unwrap();
    let (sl, sp) = (hoyer(&l1.initiators), hoyer(&plain.initiators));
    assert!(sl > sp + 0.1, "sparsity with α: {sl}, without: {sp}");
    assert!(l1.objective.last().unwrap().penalty > 0.0);
}

#[test]
fn recovers_a_planted_smooth_factorization() {
    // H* = K U* is smooth over the graph by construction.
    for sigma in [0.0, 0.01, 0.05] {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let g = graph(80, 4, 3, &mut rng);
        let kern = DiffusionKernel::from_adjacency(&g, 1.0).unwrap();
        let (w, u) = (planted_w(30, 3, &mut rng), planted_h(80, 3, &mut rng));
        let (h, _) = kern.solve(
            u.view(),
            &CgParams {
                tol: 1e-14,
                max_iter: 500,
            },
        );
        let x = noisy(&h.dot(&w.t()), sigma, &mut rng);
        let fit = diffusion_nmf(
            &x,
            &g,
            &DiffusionParams {
                tol: 1e-12,
                ..params(3, 1.0, 0.0, 2000)
            },
            None,
        )
        .unwrap();
        let rel = (fit.objective.last().unwrap().residual / x.frobenius_sq()).sqrt();
        // MU converges slowly: 2000 iterations reach ≈ 4e-3 in the noise-free case.
        assert!(rel <= 1.05 * sigma + 5e-3, "σ = {sigma}: relative residual {rel}");
    }
}

#[test]
fn same_seed_same_result_for_any_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x = random_sparse(2500, 20, 0.2, &mut rng);
    let g = graph(2500, 10, 3, &mut rng);
    let p = params(3, 1.0, 0.1, 5);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| diffusion_nmf(&x, &g, &p, None).unwrap())
    };
    let (a, b) = (run(1), run(2));
    assert_eq!(a.factors, b.factors);
    assert_eq!(a.initiators, b.initiators);
    assert_eq!(a.objective, b.objective);
    let c = diffusion_nmf(&x, &g, &DiffusionParams { seed: 2, ..p }, None).unwrap();
    assert_ne!(a.factors.w, c.factors.w);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn factors_stay_nonnegative_and_f_monotone(seed in 0u64..1000, k in 1usize..4, beta in 0.1f64..10.0, alpha in 0.0f64..2.0) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = random_sparse(25, 10, 0.4, &mut rng);
        let g = graph(25, 3, 2, &mut rng);
        let fit = diffusion_nmf(&x, &g, &tight(DiffusionParams { seed, ..params(k, beta, alpha, 20) }), None).unwrap();
        prop_assert!(fit.factors.w.iter().chain(fit.factors.h.iter()).chain(fit.initiators.iter()).all(|v| v.is_finite() && *v >= 0.0));
        for p in fit.objective.windows(2) {
            prop_assert!(p[1].total() <= p[0].total() * (1.0 + 1e-12) + 1e-12 * x.frobenius_sq());
        }
    }
}
