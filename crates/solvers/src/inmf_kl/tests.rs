use super::*;
use crate::inputs::DEFAULT_EPS;
use crate::report::StopReason;
use crate::testutil::*;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn paired(seed: u64) -> Vec<CsrMatrix> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    vec![
        random_sparse(40, 20, 0.3, &mut rng),
        random_sparse(40, 20, 0.4, &mut rng),
    ]
}

fn unpaired(seed: u64) -> Vec<CsrMatrix> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    vec![
        random_sparse(50, 20, 0.3, &mut rng),
        random_sparse(30, 20, 0.4, &mut rng),
    ]
}

fn params(k: usize, lambda: f64, gamma: f64, step: KlStep, max_iter: usize) -> InmfKlParams {
    InmfKlParams {
        k,
        lambda,
        coupling: if gamma > 0.0 {
            KlCoupling::Paired { gamma }
        } else {
            KlCoupling::None
        },
        step,
        max_iter,
        tol: 0.0,
        ..InmfKlParams::default()
    }
}

/// F from the dense definition (X_i cells × genes).
fn dense_objective(d: &[CsrMatrix], f: &InmfFactors, lambda: f64, gamma: f64) -> f64 {
    let mut s = 0.0;
    for (i, x) in d.iter().enumerate() {
        let y = f.h[i].dot(&(&f.w + &f.v[i]).t());
        for (&xv, &yv) in x.to_dense().iter().zip(&y) {
            s += if xv > 0.0 {
                xv * (xv / yv.max(DEFAULT_EPS)).ln() - xv + yv
            } else {
                yv
            };
        }
        s += lambda * f.h[i].dot(&f.v[i].t()).iter().map(|e| e * e).sum::<f64>();
    }
    if gamma > 0.0 {
        s += gamma * h_divergence(&f.h[0], &f.h[1], DEFAULT_EPS);
    }
    s
}

/// §4.5/§4.6 in the source document's notation (X_i genes × cells, H_i K × cells), dense.
fn dense_reference(
    x: &[Array2<f64>],
    f0: &InmfFactors,
    lambda: f64,
    gamma: f64,
    step: KlStep,
    iters: usize,
) -> InmfFactors {
    let eps = DEFAULT_EPS;
    let mut w = f0.w.clone();
    let mut v = f0.v.clone();
    let mut h: Vec<Array2<f64>> = f0.h.iter().map(|h| h.t().to_owned()).collect();
    let q = |x: &Array2<f64>, y: Array2<f64>| {
        Array2::from_shape_fn(x.dim(), |p| if x[p] != 0.0 { x[p] / y[p].max(eps) } else { 0.0 })
    };
    let ratio = |a: f64, b: f64, lp: f64| match step {
        KlStep::Linearized => a / (b + 2.0 * lp).max(eps),
        KlStep::MajorizeMinimize => 2.0 * a / (b + (b * b + 8.0 * a * lp).sqrt()).max(eps),
    };
    for _ in 0..iters {
        let mut wn = Array2::<f64>::zeros(w.dim());
        let mut wd = Array2::<f64>::zeros(w.dim());
        for i in 0..x.len() {
            let wv = &w + &v[i];
            let qi = q(&x[i], wv.dot(&h[i]));
            let num = wv.t().dot(&qi);
            let den = wv.t().dot(&Array2::<f64>::ones(x[i].dim()));
            let lp = v[i].t().dot(&v[i]).dot(&h[i]) * lambda;
            let hold: Vec<Array2<f64>> = h.clone();
            h[i] = Array2::from_shape_fn(h[i].dim(), |(a, c)| {
                let (mut ca, mut cb) = (0.0, 0.0);
                if gamma > 0.0 {
                    let rho = hold[0][[a, c]].max(eps) / hold[1][[a, c]].max(eps);
                    if i == 0 {
                        (ca, cb) = ((-rho.ln()).max(0.0), rho.ln().max(0.0));
                    } else {
                        (ca, cb) = (rho, 1.0);
                    }
                }
                hold[i][[a, c]] * ratio(num[[a, c]] + gamma * ca, den[[a, c]] + gamma * cb, lp[[a, c]])
            });
            let qi = q(&x[i], wv.dot(&h[i]));
            let num = qi.dot(&h[i].t());
            let den = Array2::<f64>::ones(x[i].dim()).dot(&h[i].t());
            let lp = v[i].dot(&h[i].dot(&h[i].t())) * lambda;
            v[i] = Array2::from_shape_fn(v[i].dim(), |p| v[i][p] * ratio(num[p], den[p], lp[p]));
            let qi = q(&x[i], (&w + &v[i]).dot(&h[i]));
            wn = wn + qi.dot(&h[i].t());
            wd = wd + Array2::<f64>::ones(x[i].dim()).dot(&h[i].t());
        }
        w = Array2::from_shape_fn(w.dim(), |p| w[p] * wn[p] / wd[p].max(eps));
    }
    InmfFactors {
        w,
        v,
        h: h.into_iter().map(|h| h.reversed_axes()).collect(),
    }
}

#[test]
fn defaults_and_parameter_checks() {
    let p = InmfKlParams::default();
    assert_eq!(
        (p.k, p.lambda, p.coupling, p.step, p.max_iter, p.tol, p.seed),
        (20, 5.0, KlCoupling::None, KlStep::MajorizeMinimize, 200, 1e-4, 1)
    );
    assert!(p.check().is_ok());
    let bad = |p: InmfKlParams, word: &str| {
        assert!(
            matches!(p.check(), Err(LearnerError::InvalidParameter(m)) if m.contains(word)),
            "{word}"
        );
    };
    bad(InmfKlParams::new(0), "K");
    bad(
        InmfKlParams {
            lambda: -1.0,
            ..InmfKlParams::new(2)
        },
        "lambda",
    );
    bad(
        InmfKlParams {
            coupling: KlCoupling::Paired { gamma: -1.0 },
            ..InmfKlParams::new(2)
        },
        "gamma",
    );
    bad(
        InmfKlParams {
            max_iter: 0,
            ..InmfKlParams::new(2)
        },
        "max_iter",
    );
    bad(
        InmfKlParams {
            tol: f64::INFINITY,
            ..InmfKlParams::new(2)
        },
        "tol",
    );
    bad(
        InmfKlParams {
            eps: 2.0,
            ..InmfKlParams::new(2)
        },
        "eps",
    );
}

#[test]
fn coupled_refuses_unpaired_or_more_than_two_datasets() {
    let p = params(3, 1.0, 0.5, KlStep::MajorizeMinimize, 3);
    let e = inmf_kl(&unpaired(1), &p, None);
    assert!(
        matches!(e.as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("paired") && m.contains("50") && m.contains("30"))
    );
    let mut three = paired(1);
    three.push(three[0].clone());
    assert!(
        matches!(inmf_kl(&three, &p, None).as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("exactly 2"))
    );
    assert!(inmf_kl(
        &unpaired(1),
        &params(3, 1.0, 0.0, KlStep::MajorizeMinimize, 3),
        None
    )
    .is_ok());
}

#[test]
fn rejects_bad_data_and_init() {
    let d = unpaired(2);
    assert!(
        matches!(inmf_kl(&d, &InmfKlParams::new(21), None).as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidParameter(m)) if m.contains("genes"))
    );
    let few = vec![d[0].clone(), d[1].slice_rows(0..3)];
    assert!(
        matches!(inmf_kl(&few, &InmfKlParams::new(4), None).as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidParameter(m)) if m.contains("cells of dataset 1"))
    );
    let f = InmfFactors {
        w: Array2::ones((20, 2)),
        v: vec![Array2::ones((20, 2)); 2],
        h: vec![Array2::ones((50, 2)), Array2::ones((31, 2))],
    };
    assert!(
        matches!(inmf_kl(&d, &InmfKlParams::new(2), Some(f)).as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("H_1"))
    );
}

#[test]
fn linearized_step_can_increase_f_and_mm_cannot() {
    let x = vec![CsrMatrix::from_dense(1, 1, &[1.0])];
    let f0 = InmfFactors {
        w: Array2::zeros((1, 1)),
        v: vec![Array2::ones((1, 1))],
        h: vec![Array2::from_elem((1, 1), 1e-3)],
    };
    let before = dense_objective(&x, &f0, 100.0, 0.0);
    for (step, rises) in [(KlStep::Linearized, true), (KlStep::MajorizeMinimize, false)] {
        let mut f = f0.clone();
        let mut st = KlState::new(&x, &params(1, 100.0, 0.0, step, 1), &f);
        st.update_h(&mut f, 0);
        let after = dense_objective(&x, &f, 100.0, 0.0);
        assert_eq!(after > before, rises, "{step:?}: F {before} → {after}");
    }
}

#[test]
fn every_block_update_never_increases_f_with_mm_steps() {
    for (seed, lambda) in [(1, 5.0), (2, 0.0), (3, 50.0)] {
        let d = unpaired(seed);
        let p = params(4, lambda, 0.0, KlStep::MajorizeMinimize, 1);
        let mut f = inmf_start(&d, 20, 4, seed, None, true).unwrap();
        let mut st = KlState::new(&d, &p, &f);
        let mut trace = vec![dense_objective(&d, &f, lambda, 0.0)];
        for _ in 0..30 {
            for i in 0..d.len() {
                st.update_h(&mut f, i);
                st.refresh(&f, i);
                trace.push(dense_objective(&d, &f, lambda, 0.0));
                st.update_v(&mut f, i);
                st.refresh(&f, i);
                trace.push(dense_objective(&d, &f, lambda, 0.0));
            }
            // A whole iteration (its W step included) through the public loop.
            st.iterate(&mut f);
            let slow = dense_objective(&d, &f, lambda, 0.0);
            assert!((st.objective(&f).total() - slow).abs() <= 1e-10 * slow);
            trace.push(slow);
        }
        assert_monotone(&trace, 1e-12, 1e-12, &format!("λ {lambda}"));
    }
}

#[test]
fn iterates_equal_the_dense_reference() {
    for (gamma, step) in [
        (0.0, KlStep::MajorizeMinimize),
        (0.0, KlStep::Linearized),
        (0.8, KlStep::Linearized),
        (0.8, KlStep::MajorizeMinimize),
    ] {
        let d = paired(6);
        let f0 = inmf_start(&d, 20, 3, 9, None, true).unwrap();
        let fit = inmf_kl(&d, &params(3, 2.0, gamma, step, 25), Some(f0.clone())).unwrap();
        let dense: Vec<Array2<f64>> = d.iter().map(|x| x.to_dense().reversed_axes()).collect();
        let r = dense_reference(&dense, &f0, 2.0, gamma, step, 25);
        let what = format!("γ {gamma} {step:?}");
        assert!(
            max_rel_diff(fit.factors.w.view(), r.w.view()) < 1e-10,
            "{what}: W"
        );
        for i in 0..2 {
            assert!(
                max_rel_diff(fit.factors.v[i].view(), r.v[i].view()) < 1e-10,
                "{what}: V_{i}"
            );
            assert!(
                max_rel_diff(fit.factors.h[i].view(), r.h[i].view()) < 1e-10,
                "{what}: H_{i}"
            );
        }
        let slow = dense_objective(&d, &fit.factors, 2.0, gamma);
        assert!(
            (fit.objective.last().unwrap().total() - slow).abs() <= 1e-10 * slow,
            "{what}: F"
        );
    }
}

#[test]
fn ends_near_a_kkt_point() {
    let d = unpaired(7);
    let lambda = 1.0;
    let fit = inmf_kl(&d, &params(3, lambda, 0.0, KlStep::MajorizeMinimize, 6000), None).unwrap();
    let f = &fit.factors;
    let mut wpos = Array2::<f64>::zeros(f.w.dim());
    let mut wneg = Array2::<f64>::zeros(f.w.dim());
    for (i, x) in d.iter().enumerate() {
        let wv = &f.w + &f.v[i];
        let mut q = vec![0.0; x.nnz()];
        kl_ratio(x, f.h[i].view(), wv.view(), DEFAULT_EPS, &mut q);
        let mut qth = Array2::zeros(f.w.dim());
        accumulate_values_t(x, &q, f.h[i].view(), qth.view_mut());
        let mut qw = Array2::zeros(f.h[i].dim());
        project_values(x, &q, wv.view(), qw.view_mut());
        let (ch, cw) = (column_sums(f.h[i].view()), column_sums(wv.view()));
        let colsum_h = Array2::from_shape_fn(f.w.dim(), |(_, j)| ch[j]);
        // ∇V_i = colsum(H_i) + 2λV_iA_i − Q_iᵀH_i; ∇H_i = colsum(W+V_i) + 2λH_iV_iᵀV_i − Q_i(W+V_i).
        let vpos = &colsum_h + &(f.v[i].dot(&gram_of_rows(f.h[i].view())) * (2.0 * lambda));
        let kv = kkt_violation(f.v[i].view(), vpos.view(), qth.view());
        let hpos = Array2::from_shape_fn(f.h[i].dim(), |(_, j)| cw[j])
            + f.h[i].dot(&f.v[i].t().dot(&f.v[i])) * (2.0 * lambda);
        let kh = kkt_violation(f.h[i].view(), hpos.view(), qw.view());
        assert!(kv < 1e-3 && kh < 1e-3, "KKT V_{i} {kv:e}, H_{i} {kh:e}");
        wpos = wpos + colsum_h;
        wneg = wneg + qth;
    }
    let kw = kkt_violation(f.w.view(), wpos.view(), wneg.view());
    assert!(kw < 1e-3, "KKT W {kw:e}");
}

#[test]
fn recovers_a_planted_factorization() {
    for sigma in [0.0, 0.01, 0.05] {
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        let w = planted_w(30, 3, &mut rng);
        let d: Vec<CsrMatrix> = [70, 50]
            .iter()
            .map(|&n| noisy(&planted_h(n, 3, &mut rng).dot(&w.t()), sigma, &mut rng))
            .collect();
        let fit = inmf_kl(
            &d,
            &InmfKlParams {
                tol: 1e-12,
                ..params(3, 0.5, 0.0, KlStep::MajorizeMinimize, 1500)
            },
            None,
        )
        .unwrap();
        let f = &fit.factors;
        let mut resid = 0.0;
        let mut scale = 0.0;
        for (i, x) in d.iter().enumerate() {
            let y = f.h[i].dot(&(&f.w + &f.v[i]).t());
            resid += (&x.to_dense() - &y).iter().map(|e| e * e).sum::<f64>();
            scale += x.frobenius_sq();
        }
        let rel = (resid / scale).sqrt();
        assert!(rel <= 1.05 * sigma + 3e-3, "σ = {sigma}: relative residual {rel}");
    }
}

#[test]
fn coupled_objective_decreases_overall_and_pulls_h_together() {
    // Well posed: two noisy views of the same cells.
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let (w, h) = (planted_w(30, 3, &mut rng), planted_h(60, 3, &mut rng));
    let clean = h.dot(&w.t());
    let d = vec![noisy(&clean, 0.1, &mut rng), noisy(&clean, 0.1, &mut rng)];
    for step in [KlStep::MajorizeMinimize, KlStep::Linearized] {
        let fit = inmf_kl(&d, &params(3, 1.0, 20.0, step, 400), None).unwrap();
        let trace: Vec<f64> = fit.objective.iter().map(ObjectiveParts::total).collect();
        let (first, last) = (trace[0], *trace.last().unwrap());
        assert!(last < 0.5 * first, "{step:?}: F {first} → {last}");
        let tail = &trace[trace.len() - 50..];
        assert!(
            tail.iter().all(|&t| t <= tail[0] * (1.0 + 1e-9)),
            "{step:?}: F still rising at the end"
        );
        let free = inmf_kl(&d, &params(3, 1.0, 0.0, step, 400), None).unwrap();
        let coupled = h_divergence(&fit.factors.h[0], &fit.factors.h[1], DEFAULT_EPS);
        let uncoupled = h_divergence(&free.factors.h[0], &free.factors.h[1], DEFAULT_EPS);
        assert!(
            coupled < 0.5 * uncoupled,
            "{step:?}: D(H1‖H2) {coupled} vs {uncoupled} uncoupled"
        );
    }
}

#[test]
fn same_seed_same_result_for_any_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let d = vec![
        random_sparse(1100, 30, 0.2, &mut rng),
        random_sparse(1100, 30, 0.2, &mut rng),
    ];
    let p = params(4, 5.0, 0.5, KlStep::MajorizeMinimize, 6);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| inmf_kl(&d, &p, None).unwrap())
    };
    let (a, b) = (run(1), run(2));
    assert_eq!(a.factors, b.factors);
    assert_eq!(a.objective, b.objective);
    let c = inmf_kl(&d, &InmfKlParams { seed: 4, ..p }, None).unwrap();
    assert_ne!(a.factors.w, c.factors.w);
}

#[test]
fn stops_on_tolerance_or_budget() {
    let d = unpaired(9);
    let fit = inmf_kl(
        &d,
        &InmfKlParams {
            tol: 1e-3,
            ..params(3, 5.0, 0.0, KlStep::MajorizeMinimize, 2000)
        },
        None,
    )
    .unwrap();
    assert_eq!(fit.stop, StopReason::Converged);
    let fit = inmf_kl(&d, &params(3, 5.0, 0.0, KlStep::MajorizeMinimize, 3), None).unwrap();
    assert_eq!((fit.stop, fit.iterations), (StopReason::MaxIterations, 3));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn mm_factors_stay_nonnegative_and_f_monotone(seed in 0u64..1000, k in 1usize..4, lambda in 0.0f64..20.0) {
        let d = unpaired(seed);
        let fit = inmf_kl(&d, &InmfKlParams { seed, ..params(k, lambda, 0.0, KlStep::MajorizeMinimize, 20) }, None).unwrap();
        let f = &fit.factors;
        prop_assert!(f.w.iter().chain(f.v.iter().flatten()).chain(f.h.iter().flatten()).all(|v| v.is_finite() && *v >= 0.0));
        for p in fit.objective.windows(2) {
            prop_assert!(p[1].total() <= p[0].total() * (1.0 + 1e-12) + 1e-12);
        }
    }
}
