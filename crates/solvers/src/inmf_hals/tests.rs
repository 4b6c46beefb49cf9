use inmf_learner::{accumulate_xt_h, dataset_objective, gram_of_rows, project};

use super::*;
use crate::inmf_anls::{inmf_anls, InmfAnlsParams};
use crate::report::StopReason;
use crate::testutil::*;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn datasets(seed: u64) -> Vec<CsrMatrix> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    vec![
        random_sparse(50, 20, 0.3, &mut rng),
        random_sparse(35, 20, 0.4, &mut rng),
    ]
}

fn params(k: usize, lambda: f64, max_iter: usize, tol: f64) -> InmfHalsParams {
    InmfHalsParams {
        k,
        lambda,
        max_iter,
        tol,
        ..InmfHalsParams::default()
    }
}

fn full_objective(d: &[CsrMatrix], f: &InmfFactors, lambda: f64) -> f64 {
    d.iter()
        .enumerate()
        .map(|(i, x)| dataset_objective(x, f.w.view(), f.v[i].view(), f.h[i].view(), lambda).total())
        .sum()
}

/// §4.2 column by column in the source document's notation (X_i genes × cells, H_i K × cells), dense.
fn dense_reference(x: &[Array2<f64>], f0: &InmfFactors, lambda: f64, iters: usize) -> InmfFactors {
    let mut w = f0.w.clone();
    let mut v = f0.v.clone();
    let mut h: Vec<Array2<f64>> = f0.h.iter().map(|h| h.t().to_owned()).collect();
    let k = w.ncols();
    for _ in 0..iters {
        for i in 0..x.len() {
            let wv = &w + &v[i];
            let g = wv.t().dot(&wv) + v[i].t().dot(&v[i]) * lambda;
            let r = wv.t().dot(&x[i]);
            for j in 0..k {
                if g[[j, j]] > 0.0 {
                    let step = (&r.row(j) - &g.row(j).dot(&h[i])) / g[[j, j]];
                    let new = (&h[i].row(j) + &step).mapv(|e| e.max(0.0));
                    h[i].row_mut(j).assign(&new);
                }
            }
            let a = h[i].dot(&h[i].t());
            let b = x[i].dot(&h[i].t());
            for j in 0..k {
                let den = (1.0 + lambda) * a[[j, j]];
                if den > 0.0 {
                    let fit = (&w + &(&v[i] * (1.0 + lambda))).dot(&a.column(j));
                    let new = (&v[i].column(j) + &((&b.column(j) - &fit) / den)).mapv(|e| e.max(0.0));
                    v[i].column_mut(j).assign(&new);
                }
            }
        }
        for j in 0..k {
            let mut num = Array2::<f64>::zeros((w.nrows(), 1)).column(0).to_owned();
            let mut den = 0.0;
            for i in 0..x.len() {
                let a = h[i].dot(&h[i].t());
                let b = x[i].dot(&h[i].t());
                num = num + b.column(j) - &(&w + &v[i]).dot(&a.column(j));
                den += a[[j, j]];
            }
            if den > 0.0 {
                let new = (&w.column(j) + &(num / den)).mapv(|e| e.max(0.0));
                w.column_mut(j).assign(&new);
            }
        }
    }
    InmfFactors {
        w,
        v,
        h: h.into_iter().map(|h| h.reversed_axes()).collect(),
    }
}

#[test]
fn defaults_and_parameter_checks() {
    let p = InmfHalsParams::default();
    assert_eq!(
        (p.k, p.lambda, p.max_iter, p.tol, p.seed),
        (20, 5.0, 200, 1e-6, 1)
    );
    assert!(p.check().is_ok());
    let bad = |p: InmfHalsParams, word: &str| {
        assert!(
            matches!(p.check(), Err(LearnerError::InvalidParameter(m)) if m.contains(word)),
            "{word}"
        );
    };
    bad(InmfHalsParams::new(0), "K");
    bad(params(2, -0.5, 5, 0.0), "lambda");
    bad(params(2, 1.0, 0, 0.0), "max_iter");
    bad(params(2, 1.0, 5, f64::NAN), "tol");
}

#[test]
fn rejects_bad_data_and_init() {
    let d = datasets(1);
    assert!(matches!(
        inmf_hals(&[], &InmfHalsParams::new(2), None),
        Err(LearnerError::InvalidData(_))
    ));
    let neg = vec![
        d[0].clone(),
        CsrMatrix::from_dense(2, 20, &[[-1.0f32; 20], [1.0; 20]].concat()),
    ];
    assert!(
        matches!(inmf_hals(&neg, &InmfHalsParams::new(2), None).as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("dataset 1, cell 0"))
    );
    let bad_v = InmfFactors {
        w: Array2::ones((20, 2)),
        v: vec![Array2::ones((20, 2)), Array2::ones((20, 3))],
        h: vec![],
    };
    assert!(
        matches!(inmf_hals(&d, &InmfHalsParams::new(2), Some(bad_v)).as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("V_1"))
    );
    let ok = InmfFactors {
        w: Array2::ones((20, 2)),
        v: vec![Array2::ones((20, 2)); 2],
        h: vec![],
    };
    assert!(inmf_hals(&d, &params(2, 1.0, 2, 0.0), Some(ok)).is_ok());
}

#[test]
fn every_block_update_never_increases_f() {
    for (seed, lambda) in [(1, 5.0), (2, 0.0), (3, 0.7)] {
        let d = datasets(seed);
        let mut f = inmf_start(&d, 20, 4, seed, None, false).unwrap();
        let mu = InmfMuParams {
            k: 4,
            lambda,
            ..InmfMuParams::default()
        };
        let mut st = MuState::new(&d, &mu);
        let mut r: Vec<Array2<f64>> = d.iter().map(|x| Array2::zeros((x.n_rows(), 4))).collect();
        let mut trace = vec![];
        for _ in 0..30 {
            for (i, x) in d.iter().enumerate() {
                update_h(x, &mut f, i, lambda, &mut r[i]);
                trace.push(full_objective(&d, &f, lambda));
                st.refresh_stats(&f, i);
                update_v(&mut f, i, st.a(i), st.b(i), lambda);
                trace.push(full_objective(&d, &f, lambda));
            }
            update_w(&mut f, &st);
            let slow = full_objective(&d, &f, lambda);
            assert!((st.objective(&f).total() - slow).abs() <= 1e-10 * slow);
            trace.push(slow);
        }
        let scale: f64 = d.iter().map(CsrMatrix::frobenius_sq).sum();
        assert_monotone(&trace, 1e-12, 1e-13 * scale, &format!("λ {lambda}"));
    }
}

#[test]
fn iterates_equal_the_dense_reference() {
    let d = datasets(4);
    let mut f0 = inmf_start(&d, 20, 3, 4, None, false).unwrap();
    f0.h = d
        .iter()
        .map(|x| Array2::from_elem((x.n_rows(), 3), 0.3))
        .collect();
    let fit = inmf_hals(&d, &params(3, 2.0, 25, 0.0), Some(f0.clone())).unwrap();
    let dense: Vec<Array2<f64>> = d.iter().map(|x| x.to_dense().reversed_axes()).collect();
    let r = dense_reference(&dense, &f0, 2.0, 25);
    assert!(max_rel_diff(fit.factors.w.view(), r.w.view()) < 1e-10, "W");
    for i in 0..2 {
        assert!(
            max_rel_diff(fit.factors.v[i].view(), r.v[i].view()) < 1e-10,
            "V_{i}"
        );
        assert!(
            max_rel_diff(fit.factors.h[i].view(), r.h[i].view()) < 1e-10,
            "H_{i}"
        );
    }
}

#[test]
fn ends_at_a_kkt_point_and_agrees_with_anls() {
    let d = datasets(5);
    let lambda = 2.0;
    let fit = inmf_hals(&d, &params(3, lambda, 3000, 0.0), None).unwrap();
    let f = &fit.factors;
    let mut wpos = Array2::<f64>::zeros(f.w.dim());
    let mut wneg = Array2::<f64>::zeros(f.w.dim());
    for (i, x) in d.iter().enumerate() {
        let (wv, a) = (&f.w + &f.v[i], gram_of_rows(f.h[i].view()));
        let mut b = Array2::zeros(f.w.dim());
        accumulate_xt_h(x, f.h[i].view(), 1.0, b.view_mut());
        let vpos = wv.dot(&a) + f.v[i].dot(&a) * lambda;
        let kv = kkt_violation(f.v[i].view(), vpos.view(), b.view());
        let g = wv.t().dot(&wv) + f.v[i].t().dot(&f.v[i]) * lambda;
        let kh = kkt_violation(f.h[i].view(), f.h[i].dot(&g).view(), project(x, wv.view()).view());
        assert!(kv < 1e-6 && kh < 1e-6, "KKT V_{i} {kv:e}, H_{i} {kh:e}");
        wpos = wpos + wv.dot(&a);
        wneg = wneg + b;
    }
    let kw = kkt_violation(f.w.view(), wpos.view(), wneg.view());
    assert!(kw < 1e-6, "KKT W {kw:e}");
    // Same start as ANLS: the two block-coordinate methods land on the same local minimum here.
    let anls = inmf_anls(
        &d,
        &InmfAnlsParams {
            k: 3,
            lambda,
            max_iter: 500,
            tol: 0.0,
            seed: 1,
        },
        None,
    )
    .unwrap();
    let (fa, fh) = (
        anls.objective.last().unwrap().total(),
        fit.objective.last().unwrap().total(),
    );
    assert!((fa - fh).abs() < 1e-6 * fa, "ANLS {fa} vs HALS {fh}");
}

#[test]
fn recovers_a_planted_factorization() {
    // λ = 0 so the planted dataset-specific parts V_i* are reachable. (With
    // λ > 0 iNMF has poor local minima on such tiny problems, where one
    // dataset's V_i takes over a factor: ANLS and HALS from the same
    // start end in them for some seeds, not always the same ones.)
    for sigma in [0.0, 0.01, 0.05] {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let w = planted_w(30, 3, &mut rng);
        let d: Vec<CsrMatrix> = [70, 50]
            .iter()
            .map(|&n| {
                let v = Array2::from_shape_fn((30, 3), |_| {
                    if rng.random_bool(0.1) {
                        rng.random_range(0.0..0.3)
                    } else {
                        0.0
                    }
                });
                noisy(&planted_h(n, 3, &mut rng).dot(&(&w + &v).t()), sigma, &mut rng)
            })
            .collect();
        let fit = inmf_hals(&d, &params(3, 0.0, 2000, 1e-12), None).unwrap();
        let last = fit.objective.last().unwrap();
        let scale: f64 = d.iter().map(CsrMatrix::frobenius_sq).sum();
        let rel = (last.residual / scale).sqrt();
        assert!(rel <= 1.05 * sigma + 1e-4, "σ = {sigma}: relative residual {rel}");
    }
}

#[test]
fn same_seed_same_result_for_any_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let d = vec![
        random_sparse(1100, 30, 0.2, &mut rng),
        random_sparse(700, 30, 0.2, &mut rng),
    ];
    let p = params(4, 5.0, 8, 0.0);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| inmf_hals(&d, &p, None).unwrap())
    };
    let (a, b) = (run(1), run(2));
    assert_eq!(a.factors, b.factors);
    assert_eq!(a.objective, b.objective);
    let c = inmf_hals(&d, &InmfHalsParams { seed: 5, ..p }, None).unwrap();
    assert_ne!(a.factors.w, c.factors.w);
}

#[test]
fn stops_on_tolerance_or_budget() {
    let d = datasets(9);
    let fit = inmf_hals(&d, &params(3, 5.0, 2000, 1e-4), None).unwrap();
    assert_eq!(fit.stop, StopReason::Converged);
    let fit = inmf_hals(&d, &params(3, 5.0, 2, 0.0), None).unwrap();
    assert_eq!((fit.stop, fit.iterations), (StopReason::MaxIterations, 2));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn factors_stay_nonnegative_and_f_monotone(seed in 0u64..1000, k in 1usize..4, lambda in 0.0f64..6.0) {
        let d = datasets(seed);
        let fit = inmf_hals(&d, &InmfHalsParams { seed, ..params(k, lambda, 20, 0.0) }, None).unwrap();
        let f = &fit.factors;
        prop_assert!(f.w.iter().chain(f.v.iter().flatten()).chain(f.h.iter().flatten()).all(|v| v.is_finite() && *v >= 0.0));
        let scale: f64 = d.iter().map(CsrMatrix::frobenius_sq).sum();
        for p in fit.objective.windows(2) {
            prop_assert!(p[1].total() <= p[0].total() * (1.0 + 1e-12) + 1e-13 * scale);
        }
    }
}
