use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::kernels::double::{gram_of_rows, CELL_BLOCK};
use crate::kernels::packed::PackedFactor;
use crate::nnls::PreparedGram;
use crate::online::solve::SOLVE_ROWS;
use crate::online::statistics::A_DIAG_FLOOR;
use crate::testutil::{max_rel_diff, planted_w, random_sparse};

/// The f64 kernels: the slow, exact reference for the f32 products.
const F64_PRODUCTS: Precision = Precision::Double;

/// One mini-batch per dataset: cells `lo..lo + len` of each.
fn batches_of(data: &[CsrMatrix], lo: usize, len: usize) -> Vec<MiniBatch> {
    data.iter()
        .enumerate()
        .map(|(d, x)| MiniBatch {
            dataset: d,
            cells: std::iter::once(lo..lo + len).collect(),
            x: x.slice_rows(lo..lo + len),
        })
        .collect()
}

#[test]
fn releasing_the_batches_during_hals_changes_no_bit_and_releases_once() {
    let (genes, k, cells) = (120, 6, 400);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let w = planted_w(genes, k, &mut rng);
    let vs: Vec<_> = (0..2).map(|_| planted_w(genes, k, &mut rng) * 0.2).collect();
    let mut plain = OnlineInmf::new(w, vs, 5.0).unwrap();
    let mut releasing = plain.clone();
    let data: Vec<CsrMatrix> = (0..2)
        .map(|_| random_sparse(cells, genes, 0.2, &mut rng))
        .collect();
    let batches_at = |lo: usize| batches_of(&data, lo, 100);
    let released = std::sync::Mutex::new(Vec::new());
    for t in 1..=6 {
        let info = IterationInfo {
            t,
            epoch: t / 4,
            new_epoch: t % 4 == 0,
        };
        let lo = (t - 1) % 4 * 100;
        let a = plain.step(info, &batches_at(lo), 2).unwrap();
        let b = releasing
            .step_releasing(info, batches_at(lo), 2, |b| {
                released.lock().unwrap().push(b.len())
            })
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(plain, releasing, "iteration {t}");
    }
    assert_eq!(*released.lock().unwrap(), vec![2; 6]);
    // A refused iteration still hands its batches back.
    let mut bad = batches_at(0);
    bad[1].dataset = 0;
    let info = IterationInfo {
        t: 7,
        epoch: 1,
        new_epoch: false,
    };
    let e = releasing
        .step_releasing(info, bad, 1, |b| released.lock().unwrap().push(b.len()))
        .unwrap_err();
    assert!(e.to_string().contains("two mini-batches"), "{e}");
    assert_eq!(released.lock().unwrap().len(), 7);
}

/// A small model and data of two datasets (cells × genes, K).
fn small_problem(seed: u64, genes: usize, k: usize, cells: usize) -> (OnlineInmf, Vec<CsrMatrix>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let w = planted_w(genes, k, &mut rng);
    let vs: Vec<_> = (0..2).map(|_| planted_w(genes, k, &mut rng) * 0.2).collect();
    let model = OnlineInmf::new(w, vs, 5.0).unwrap();
    let data = (0..2)
        .map(|_| random_sparse(cells, genes, 0.2, &mut rng))
        .collect();
    (model, data)
}

#[test]
fn the_unit_wise_h_solve_equals_the_whole_block_solve() {
    // Units of SOLVE_ROWS cells (R, BPP, sums) against one projection of
    // the whole block, one NNLS call and the objective's formula.
    let (model, data) = small_problem(21, 150, 7, 3 * SOLVE_ROWS + 29);
    for (i, x) in data.iter().enumerate() {
        let v = model.datasets[i].v.view();
        let wv = &model.w + &v;
        let wv_gram = crate::gram_of_rows(wv.view());
        let v_gram = crate::gram_of_rows(v);
        let gram = &wv_gram + &(&v_gram * model.lambda);
        let r = crate::project_f32(x, wv.view());
        let h_ref = crate::nnls::nnls_bpp(gram.view(), r.view()).unwrap();
        let obj_ref = crate::online::objective::block_objective(
            x.frobenius_sq(),
            r.view(),
            h_ref.view(),
            wv_gram.view(),
            v_gram.view(),
            model.lambda,
        );
        let (h, obj) = model.solve_h(i, x).unwrap();
        assert_eq!(h, h_ref, "dataset {i}: every row's arithmetic is the same");
        for (got, want) in [(obj.residual, obj_ref.residual), (obj.penalty, obj_ref.penalty)] {
            assert!((got - want).abs() <= 1e-10 * want.abs(), "{got} vs {want}");
        }
    }
    let e = model.solve_h(5, &data[0]).unwrap_err();
    assert!(e.to_string().contains("unknown dataset 5"), "{e}");
    let e = model
        .solve_h(0, &CsrMatrix::from_dense(2, 10, &[1.0; 20]))
        .unwrap_err();
    assert!(e.to_string().contains("genes"), "{e}");
}

#[test]
fn the_systems_of_all_datasets_at_once_equal_the_whole_matrix_products() {
    // More genes than one CELL_BLOCK (several blocks, a short last one);
    // the reference packs and multiplies the whole W+V_i at once.
    let (model, data) = small_problem(23, CELL_BLOCK + 77, 6, 40);
    let ids = [1, 0];
    let vs: Vec<_> = ids.iter().map(|&d| model.datasets[d].v.view()).collect();
    let bits = |m: &Array2<f64>| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for precision in [Precision::Single, Precision::Half] {
        let all = model.h_systems(&vs, precision).unwrap();
        for (&d, sys) in ids.iter().zip(&all) {
            let v = model.datasets[d].v.view();
            let wv = &model.w + &v;
            let (wv_gram, v_gram) = (gram_of_rows(wv.view()), gram_of_rows(v));
            let gram = &wv_gram + &(&v_gram * model.lambda);
            let reference = HSystem {
                wv: PackedFactor::new(wv.view(), precision),
                nnls: PreparedGram::new(gram.view()).unwrap(),
                wv_gram,
                v_gram,
                lambda: model.lambda,
            };
            let what = format!("{precision:?}, dataset {d}");
            assert_eq!(
                bits(&sys.wv_gram),
                bits(&reference.wv_gram),
                "{what}: (W+V)ᵀ(W+V)"
            );
            assert_eq!(bits(&sys.v_gram), bits(&reference.v_gram), "{what}: VᵀV");
            let got = solve_blocks(&[(sys, &data[d])]).unwrap().pop().unwrap();
            let want = solve_blocks(&[(&reference, &data[d])]).unwrap().pop().unwrap();
            assert_eq!(bits(&got.h), bits(&want.h), "{what}: H");
            assert!(got.h.iter().any(|&v| v > 0.0), "a non-trivial H");
            assert_eq!(got.objective.total().to_bits(), want.objective.total().to_bits());
        }
    }
}

#[test]
fn a_non_finite_factor_is_an_error_not_a_saturated_value() {
    for bad in [f64::NAN, f64::INFINITY] {
        let (mut model, data) = small_problem(5, 40, 4, 30);
        model.w[[7, 2]] = bad;
        let batches = batches_of(&data, 0, 10);
        let info = IterationInfo {
            t: 1,
            epoch: 0,
            new_epoch: false,
        };
        match model.step(info, &batches, 1) {
            Err(LearnerError::Numerical(msg)) => assert!(msg.contains("factor 2"), "{msg}"),
            other => panic!(
                "{bad}: expected a numerical error, got {:?}",
                other.map(|r| r.objective)
            ),
        }
    }
}

#[test]
fn statistics_follow_the_anchor_schedule() {
    // A_i, B_i, A_old, B_old after each step against their definitions
    // (module docs, step 2), from H solved with the step's own W and V
    // (the same arithmetic as inside the step) and a dense f64 XᵀH.
    let (mut model, data) = small_problem(22, 90, 5, 240);
    let k = 5;
    let mut want: Vec<[Array2<f64>; 4]> = (0..2)
        .map(|_| {
            [
                Array2::zeros((k, k)),
                Array2::zeros((90, k)),
                Array2::zeros((k, k)),
                Array2::zeros((90, k)),
            ]
        })
        .collect();
    for t in 1..=7 {
        let lo = (t - 1) % 3 * 80;
        let batches = batches_of(&data, lo, 80);
        let info = IterationInfo {
            t,
            epoch: t / 3,
            new_epoch: t % 3 == 1 && t > 1,
        };
        let s = match t {
            1 => 0.0,
            2 => 1.0 / 80.0,
            t => (t - 2) as f64 / (t - 1) as f64,
        };
        for (d, mb) in batches.iter().enumerate() {
            let step_solver = HSolver {
                sys: model.h_system(d, None, STEP_PRODUCTS).unwrap(),
                n_genes: model.n_genes(),
            };
            let (h, _) = step_solver.solve(&mb.x).unwrap();
            let [a, b, a_old, b_old] = &mut want[d];
            if info.new_epoch {
                *a -= &*a_old;
                *b -= &*b_old;
                *a_old = &*a * s;
                *b_old = &*b * s;
            } else {
                *a_old *= s;
                *b_old *= s;
            }
            *a = &*a * s + h.t().dot(&h) / 80.0;
            *b = &*b * s + mb.x.to_dense().t().dot(&h) / 80.0;
        }
        model.step(info, &batches, 1).unwrap();
        for (d, [a, b, a_old, b_old]) in want.iter().enumerate() {
            let st = &model.datasets[d];
            let mut a = a.clone();
            for j in 0..k {
                if a[[j, j]] == 0.0 {
                    a[[j, j]] = A_DIAG_FLOOR;
                }
            }
            for (got, exp, what) in [
                (&st.a, &a, "A"),
                (&st.b, b, "B"),
                (&st.a_old, a_old, "A_old"),
                (&st.b_old, b_old, "B_old"),
            ] {
                let scale = exp.iter().fold(1e-300f64, |m, v| m.max(v.abs()));
                let diff = got.iter().zip(exp).fold(0.0f64, |m, (g, e)| m.max((g - e).abs()));
                assert!(
                    diff <= 1e-5 * scale,
                    "t {t} dataset {d} {what}: {diff:e} of {scale:e}"
                );
            }
        }
    }
}

#[test]
fn reduced_precision_products_move_the_online_objective_by_less_than_1e_5() {
    let (genes, k, cells) = (300, 20, 1200);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let w = planted_w(genes, k, &mut rng);
    let vs: Vec<_> = (0..2).map(|_| planted_w(genes, k, &mut rng) * 0.2).collect();
    // `fast` runs the steps' products (half-precision R), `single` f32.
    let mut fast = OnlineInmf::new(w, vs, 5.0).unwrap();
    let mut single = fast.clone();
    let mut exact = fast.clone();
    let data: Vec<CsrMatrix> = (0..2)
        .map(|_| random_sparse(cells, genes, 0.2, &mut rng))
        .collect();
    let (mut obj_fast, mut obj_single, mut obj_exact) = (0.0, 0.0, 0.0);
    for t in 1..=12 {
        let lo = (t - 1) % 4 * (cells / 4);
        let batches = batches_of(&data, lo, cells / 4);
        let info = IterationInfo {
            t,
            epoch: t / 4,
            new_epoch: t % 4 == 0,
        };
        obj_fast = fast.step(info, &batches, 1).unwrap().objective.total();
        let step = |m: &mut OnlineInmf, p| m.step_with(info, &batches, 1, p).unwrap().objective.total();
        obj_single = step(&mut single, Precision::Single);
        obj_exact = step(&mut exact, F64_PRODUCTS);
    }
    // Different bits (the reduced-precision kernels ran), the same
    // objective to 1e-5; W to 1e-4 (single) and 1e-3 (half: R's
    // rounding moves each H by ≈ 1e-5–1e-4, and W follows the H's).
    for (name, obj, model, w_tol) in [
        ("half", obj_fast, &fast, 1e-3),
        ("single", obj_single, &single, 1e-4),
    ] {
        assert_ne!(obj, obj_exact, "{name}");
        assert!(
            ((obj - obj_exact) / obj_exact).abs() < 1e-5,
            "{name}: {obj} vs {obj_exact}"
        );
        let dw = max_rel_diff(model.w.view(), exact.w.view());
        assert!(dw < w_tol, "{name}: W off by {dw:e}");
    }
    assert_ne!(obj_fast, obj_single, "the steps ran half-precision products");
    let (h_fast, o_fast) = fast.solve_h(1, &data[1]).unwrap();
    let exact_solver = HSolver {
        sys: fast.h_system(1, None, Precision::Double).unwrap(),
        n_genes: genes,
    };
    let (h_exact, o_exact) = exact_solver.solve(&data[1]).unwrap();
    assert!(((o_fast.total() - o_exact.total()) / o_exact.total()).abs() < 1e-5);
    assert!(max_rel_diff(h_fast.view(), h_exact.view()) < 1e-3);
}
