use super::*;
use crate::inputs::DEFAULT_EPS;
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

/// The §5 formulas in the source document's notation (V genes × cells ≈ W H, H K × cells), dense.
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
    assert!(
        matches!(e.as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidParameter(m)) if m.contains("genes"))
    );
    let small = random_sparse(3, 25, 0.5, &mut ChaCha8Rng::seed_from_u64(1));
    let e = nmf_mu(&small, &NmfMuParams::new(4, Loss::Frobenius), None);
    assert!(
        matches!(e.as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidParameter(m)) if m.contains("cells"))
    );
    let neg = CsrMatrix::from_dense(2, 2, &[1.0, -1.0, 2.0, 3.0]);
    let e = nmf_mu(&neg, &NmfMuParams::new(1, Loss::KullbackLeibler), None);
    assert!(
        matches!(e.as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("cell 0, gene 1"))
    );
    let f = NmfFactors {
        w: Array2::ones((25, 2)),
        h: Array2::ones((39, 2)),
    };
    let e = nmf_mu(&x, &NmfMuParams::new(2, Loss::Frobenius), Some(f));
    assert!(
        matches!(e.as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("H is 39"))
    );
    let mut f = NmfFactors {
        w: Array2::ones((25, 2)),
        h: Array2::ones((40, 2)),
    };
    f.w[[3, 1]] = f64::NAN;
    let e = nmf_mu(&x, &NmfMuParams::new(2, Loss::Frobenius), Some(f));
    assert!(
        matches!(e.as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("W[3, 1]"))
    );
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
