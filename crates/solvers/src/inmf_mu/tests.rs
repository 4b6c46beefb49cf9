use inmf_learner::{dataset_objective, project};

use super::*;
use crate::inputs::DEFAULT_EPS;
use crate::report::StopReason;
use crate::testutil::*;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn unpaired(seed: u64) -> Vec<CsrMatrix> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    vec![
        random_sparse(50, 20, 0.3, &mut rng),
        random_sparse(35, 20, 0.4, &mut rng),
    ]
}

fn paired(seed: u64) -> Vec<CsrMatrix> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    vec![
        random_sparse(40, 20, 0.3, &mut rng),
        random_sparse(40, 20, 0.4, &mut rng),
    ]
}

fn params(k: usize, lambda: f64, gamma: f64, max_iter: usize, tol: f64) -> InmfMuParams {
    InmfMuParams {
        k,
        lambda,
        coupling: if gamma > 0.0 {
            Coupling::Paired { gamma }
        } else {
            Coupling::None
        },
        max_iter,
        tol,
        ..InmfMuParams::default()
    }
}

/// F from scratch, with the dense-free objective of §1 plus the coupling.
fn full_objective(d: &[CsrMatrix], f: &InmfFactors, lambda: f64, gamma: f64) -> f64 {
    let mut s: f64 = d
        .iter()
        .enumerate()
        .map(|(i, x)| dataset_objective(x, f.w.view(), f.v[i].view(), f.h[i].view(), lambda).total())
        .sum();
    if gamma > 0.0 {
        s += gamma * pairwise_sq_distance(&f.h);
    }
    s
}

/// §4.3/§4.4 in the source document's notation (X_i genes × cells, H_i K × cells), dense.
fn dense_reference(
    x: &[Array2<f64>],
    f0: &InmfFactors,
    lambda: f64,
    gamma: f64,
    iters: usize,
) -> InmfFactors {
    let eps = DEFAULT_EPS;
    let floor = |a: Array2<f64>| a.mapv(|v| v.max(eps));
    let mut w = f0.w.clone();
    let mut v = f0.v.clone();
    let mut h: Vec<Array2<f64>> = f0.h.iter().map(|h| h.t().to_owned()).collect();
    let d = x.len();
    for _ in 0..iters {
        for i in 0..d {
            let wv = &w + &v[i];
            let mut num = wv.t().dot(&x[i]);
            let mut den = wv.t().dot(&wv).dot(&h[i]) + v[i].t().dot(&v[i]).dot(&h[i]) * lambda;
            if gamma > 0.0 {
                for j in (0..d).filter(|&j| j != i) {
                    num = num + &h[j] * gamma;
                }
                den = den + &h[i] * (gamma * (d - 1) as f64);
            }
            h[i] = &h[i] * &(num / floor(den));
            let hht = h[i].dot(&h[i].t());
            let num = x[i].dot(&h[i].t());
            let den = (&w + &v[i]).dot(&hht) + v[i].dot(&hht) * lambda;
            v[i] = &v[i] * &(num / floor(den));
        }
        let mut num = Array2::<f64>::zeros(w.dim());
        let mut den = Array2::<f64>::zeros(w.dim());
        for i in 0..d {
            num = num + x[i].dot(&h[i].t());
            den = den + (&w + &v[i]).dot(&h[i].dot(&h[i].t()));
        }
        w = &w * &(num / floor(den));
    }
    InmfFactors {
        w,
        v,
        h: h.into_iter().map(|h| h.reversed_axes()).collect(),
    }
}

#[test]
fn defaults_and_parameter_checks() {
    let p = InmfMuParams::default();
    assert_eq!(
        (p.k, p.lambda, p.coupling, p.max_iter, p.tol, p.seed),
        (20, 5.0, Coupling::None, 200, 1e-4, 1)
    );
    assert!(p.check().is_ok());
    let bad = |p: InmfMuParams, word: &str| {
        assert!(
            matches!(p.check(), Err(LearnerError::InvalidParameter(m)) if m.contains(word)),
            "{word}"
        );
    };
    bad(InmfMuParams::new(0), "K");
    bad(params(2, -1.0, 0.0, 5, 0.0), "lambda");
    bad(params(2, f64::NAN, 0.0, 5, 0.0), "lambda");
    bad(
        InmfMuParams {
            coupling: Coupling::Paired { gamma: 0.0 },
            ..InmfMuParams::new(2)
        },
        "gamma",
    );
    bad(
        InmfMuParams {
            coupling: Coupling::Paired { gamma: f64::INFINITY },
            ..InmfMuParams::new(2)
        },
        "gamma",
    );
    bad(params(2, 1.0, 0.0, 0, 0.0), "max_iter");
    bad(params(2, 1.0, 0.0, 5, -1.0), "tol");
    bad(
        InmfMuParams {
            eps: 0.0,
            ..InmfMuParams::new(2)
        },
        "eps",
    );
}

#[test]
fn coupled_refuses_unpaired_data() {
    let e = inmf_mu(&unpaired(1), &params(3, 1.0, 0.5, 5, 0.0), None);
    assert!(
        matches!(e.as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("paired") && m.contains("50") && m.contains("35"))
    );
    let one = vec![unpaired(1).remove(0)];
    assert!(matches!(
        inmf_mu(&one, &params(3, 1.0, 0.5, 5, 0.0), None),
        Err(LearnerError::InvalidData(_))
    ));
    assert!(inmf_mu(&unpaired(1), &params(3, 1.0, 0.0, 5, 0.0), None).is_ok());
}

#[test]
fn rejects_bad_data_and_init() {
    let d = unpaired(2);
    assert!(
        matches!(inmf_mu(&[], &InmfMuParams::new(2), None).as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("no datasets"))
    );
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let other = vec![d[0].clone(), random_sparse(10, 19, 0.5, &mut rng)];
    assert!(
        matches!(inmf_mu(&other, &InmfMuParams::new(2), None).as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("dataset 1 has 19 genes"))
    );
    assert!(
        matches!(inmf_mu(&d, &InmfMuParams::new(21), None).as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidParameter(m)) if m.contains("genes"))
    );
    let no_h = InmfFactors {
        w: Array2::ones((20, 2)),
        v: vec![Array2::ones((20, 2)); 2],
        h: vec![],
    };
    assert!(
        matches!(inmf_mu(&d, &params(2, 1.0, 0.0, 2, 0.0), Some(no_h)).as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("H matrices"))
    );
}

#[test]
fn every_block_update_never_increases_f() {
    for (seed, lambda, gamma) in [(1, 5.0, 0.0), (2, 0.0, 0.0), (3, 1.0, 2.0), (4, 5.0, 0.3)] {
        let d = if gamma > 0.0 { paired(seed) } else { unpaired(seed) };
        let p = params(4, lambda, gamma, 1, 0.0);
        let genes = d[0].n_cols();
        let mut f = inmf_start(&d, genes, 4, seed, None, true).unwrap();
        let mut st = MuState::new(&d, &p);
        let mut trace = vec![full_objective(&d, &f, lambda, gamma)];
        for _ in 0..40 {
            for i in 0..d.len() {
                st.update_h(&mut f, i);
                trace.push(full_objective(&d, &f, lambda, gamma));
                st.refresh_stats(&f, i);
                st.update_v(&mut f, i);
                trace.push(full_objective(&d, &f, lambda, gamma));
            }
            for i in 0..d.len() {
                st.refresh_stats(&f, i);
            }
            st.update_w(&mut f);
            let fast = st.objective(&f).total();
            let slow = full_objective(&d, &f, lambda, gamma);
            assert!((fast - slow).abs() <= 1e-10 * slow);
            trace.push(slow);
        }
        let scale: f64 = d.iter().map(CsrMatrix::frobenius_sq).sum();
        assert_monotone(&trace, 1e-12, 1e-13 * scale, &format!("λ {lambda} γ {gamma}"));
    }
}

#[test]
fn iterates_equal_the_dense_reference() {
    for gamma in [0.0, 0.7] {
        let d = paired(6);
        let f0 = inmf_start(&d, 20, 3, 9, None, true).unwrap();
        let fit = inmf_mu(&d, &params(3, 2.0, gamma, 30, 0.0), Some(f0.clone())).unwrap();
        let dense: Vec<Array2<f64>> = d.iter().map(|x| x.to_dense().reversed_axes()).collect();
        let r = dense_reference(&dense, &f0, 2.0, gamma, 30);
        assert!(
            max_rel_diff(fit.factors.w.view(), r.w.view()) < 1e-10,
            "γ {gamma}: W"
        );
        for i in 0..2 {
            assert!(
                max_rel_diff(fit.factors.v[i].view(), r.v[i].view()) < 1e-10,
                "γ {gamma}: V_{i}"
            );
            assert!(
                max_rel_diff(fit.factors.h[i].view(), r.h[i].view()) < 1e-10,
                "γ {gamma}: H_{i}"
            );
        }
    }
}

#[test]
fn ends_near_a_kkt_point() {
    for gamma in [0.0, 1.0] {
        let d = paired(7);
        let lambda = 1.0;
        let fit = inmf_mu(&d, &params(3, lambda, gamma, 8000, 0.0), None).unwrap();
        let f = &fit.factors;
        let mut wpos = Array2::<f64>::zeros(f.w.dim());
        let mut wneg = Array2::<f64>::zeros(f.w.dim());
        for (i, x) in d.iter().enumerate() {
            let (wv, a) = (&f.w + &f.v[i], gram_of_rows(f.h[i].view()));
            let mut b = Array2::zeros(f.w.dim());
            accumulate_xt_h(x, f.h[i].view(), 1.0, b.view_mut());
            // ∇V_i ∝ (W+V_i)A_i + λV_iA_i − B_i; ∇H_i ∝ H_iG_i − X_i(W+V_i) + γ(H_i − H_j).
            let vpos = wv.dot(&a) + f.v[i].dot(&a) * lambda;
            let kv = kkt_violation(f.v[i].view(), vpos.view(), b.view());
            assert!(kv < 1e-3, "γ {gamma}: V_{i} KKT {kv:e}");
            let g = wv.t().dot(&wv) + f.v[i].t().dot(&f.v[i]) * lambda;
            let hpos = f.h[i].dot(&g) + &f.h[i] * gamma;
            let hneg = project(x, wv.view()) + &f.h[1 - i] * gamma;
            let kh = kkt_violation(f.h[i].view(), hpos.view(), hneg.view());
            assert!(kh < 1e-3, "γ {gamma}: H_{i} KKT {kh:e}");
            wpos = wpos + wv.dot(&a);
            wneg = wneg + b;
        }
        let kw = kkt_violation(f.w.view(), wpos.view(), wneg.view());
        assert!(kw < 1e-3, "γ {gamma}: W KKT {kw:e}");
    }
}

#[test]
fn recovers_a_planted_factorization() {
    for sigma in [0.0, 0.01, 0.05] {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let w = planted_w(30, 3, &mut rng);
        let d: Vec<CsrMatrix> = [70, 50]
            .iter()
            .map(|&n| noisy(&planted_h(n, 3, &mut rng).dot(&w.t()), sigma, &mut rng))
            .collect();
        let fit = inmf_mu(&d, &params(3, 5.0, 0.0, 5000, 1e-12), None).unwrap();
        let last = fit.objective.last().unwrap();
        let scale: f64 = d.iter().map(CsrMatrix::frobenius_sq).sum();
        let rel = (last.residual / scale).sqrt();
        assert!(rel <= 1.05 * sigma + 3e-3, "σ = {sigma}: relative residual {rel}");
        assert!(
            last.penalty <= 1e-3 * scale,
            "σ = {sigma}: penalty {}",
            last.penalty
        );
    }
}

#[test]
fn coupling_pulls_paired_loadings_together() {
    let d = paired(8);
    let loose = inmf_mu(&d, &params(3, 1.0, 0.0, 300, 0.0), None).unwrap();
    let tight = inmf_mu(&d, &params(3, 1.0, 50.0, 300, 0.0), None).unwrap();
    let dist = |f: &InmfFactors| pairwise_sq_distance(&f.h);
    assert!(dist(&tight.factors) < 0.1 * dist(&loose.factors));
    assert!(tight.objective.last().unwrap().coupling > 0.0);
    assert_eq!(loose.objective.last().unwrap().coupling, 0.0);
}

#[test]
fn same_seed_same_result_for_any_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let d = vec![
        random_sparse(1100, 30, 0.2, &mut rng),
        random_sparse(1100, 30, 0.2, &mut rng),
    ];
    let p = params(4, 5.0, 0.5, 8, 0.0);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| inmf_mu(&d, &p, None).unwrap())
    };
    let (a, b) = (run(1), run(2));
    assert_eq!(a.factors, b.factors);
    assert_eq!(a.objective, b.objective);
    let c = inmf_mu(&d, &InmfMuParams { seed: 5, ..p }, None).unwrap();
    assert_ne!(a.factors.w, c.factors.w);
}

#[test]
fn stops_on_tolerance_or_budget() {
    let d = unpaired(9);
    let fit = inmf_mu(&d, &params(3, 5.0, 0.0, 2000, 1e-3), None).unwrap();
    assert_eq!(fit.stop, StopReason::Converged);
    let fit = inmf_mu(&d, &params(3, 5.0, 0.0, 3, 0.0), None).unwrap();
    assert_eq!(
        (fit.stop, fit.iterations, fit.objective.len()),
        (StopReason::MaxIterations, 3, 3)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn factors_stay_nonnegative_and_f_monotone(seed in 0u64..1000, k in 1usize..4, lambda in 0.0f64..6.0, gamma in 0.0f64..3.0) {
        let d = paired(seed);
        let fit = inmf_mu(&d, &InmfMuParams { seed, ..params(k, lambda, gamma, 25, 0.0) }, None).unwrap();
        let f = &fit.factors;
        prop_assert!(f.w.iter().chain(f.v.iter().flatten()).chain(f.h.iter().flatten()).all(|v| v.is_finite() && *v >= 0.0));
        let scale: f64 = d.iter().map(CsrMatrix::frobenius_sq).sum();
        for p in fit.objective.windows(2) {
            prop_assert!(p[1].total() <= p[0].total() * (1.0 + 1e-12) + 1e-13 * scale);
        }
    }
}
