//! Online iNMF (inmf-learner) against batch iNMF by ANLS on the same
//! in-memory data: with full batches and many epochs, online reaches the
//! batch objective within one percent.

use inmf_learner::{
    dataset_objective, initial_model, plan_all, run_plan, CsrMatrix, InMemorySource, ObjectiveParts,
    OnlineInmf, OnlineParams,
};
use inmf_solvers::{inmf_anls, InmfAnlsParams, InmfFactors};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};

/// Poisson counts around a planted (W + V_i) H_i with `types` cell types,
/// scaled per cell like the preprocessing would (values ~ 1).
fn planted(seed: u64, cells: &[usize], genes: usize, k: usize) -> Vec<CsrMatrix> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let w = Array2::from_shape_fn((genes, k), |_| {
        if rng.random::<f64>() < 0.3 {
            rng.random::<f64>() * 4.0
        } else {
            0.0
        }
    });
    cells
        .iter()
        .map(|&n| {
            let v = Array2::from_shape_fn((genes, k), |_| {
                if rng.random::<f64>() < 0.1 {
                    rng.random::<f64>()
                } else {
                    0.0
                }
            });
            let mut dense = Vec::with_capacity(n * genes);
            for _ in 0..n {
                let t = rng.random_range(0..k);
                for g in 0..genes {
                    let mu = (w[[g, t]] + v[[g, t]]) * (0.5 + rng.random::<f64>());
                    let c = if mu > 0.0 {
                        Poisson::new(mu).unwrap().sample(&mut rng)
                    } else {
                        0.0
                    };
                    dense.push(c as f32 * 0.3);
                }
            }
            CsrMatrix::from_dense(n, genes, &dense)
        })
        .collect()
}

fn final_objective(model: &OnlineInmf, data: &[CsrMatrix]) -> ObjectiveParts {
    let mut total = ObjectiveParts::default();
    for (i, x) in data.iter().enumerate() {
        let (_, obj) = model.solve_h(i, x).unwrap();
        total += obj;
    }
    total
}

fn fit(data: &[CsrMatrix], params: &OnlineParams) -> OnlineInmf {
    let mut src = InMemorySource::new(data.to_vec());
    let mut model = initial_model(&mut src, params).unwrap();
    let plan = plan_all(&src, params).unwrap();
    run_plan(&mut model, &mut src, &plan, params.hals_sweeps, |_, _| {}).unwrap();
    model
}

#[test]
fn online_with_full_batches_matches_batch_anls_within_one_percent() {
    let data = planted(11, &[300, 200], 60, 4);
    let total: usize = data.iter().map(|d| d.n_rows()).sum();
    let params = OnlineParams {
        k: 4,
        lambda: 5.0,
        batch_size: total,
        epochs: 300,
        ..Default::default()
    };
    let online = fit(&data, &params);
    let f_online = final_objective(&online, &data).total();

    let anls = inmf_anls(
        &data,
        &InmfAnlsParams {
            k: 4,
            lambda: 5.0,
            max_iter: 500,
            tol: 1e-9,
            seed: 1,
        },
        None,
    )
    .unwrap();
    let f_anls = anls.objective.last().unwrap().total();
    let rel = (f_online - f_anls) / f_anls;
    eprintln!(
        "online {f_online:.6e} vs batch ANLS {f_anls:.6e} ({} iterations): {:+.4}%",
        anls.iterations,
        100.0 * rel
    );
    assert!(
        rel < 0.01,
        "online {f_online} vs ANLS {f_anls}: {:.3}% worse",
        100.0 * rel
    );
    // And the reference really is a reference: its objective is consistent with its factors.
    let InmfFactors { w, v, h } = &anls.factors;
    let recomputed: f64 = data
        .iter()
        .enumerate()
        .map(|(i, x)| dataset_objective(x, w.view(), v[i].view(), h[i].view(), 5.0).total())
        .sum();
    assert!((recomputed - f_anls).abs() <= 1e-9 * f_anls);
}
