//! Data and fits shared by the online-iNMF integration tests of the
//! learner (`tests/online.rs`) and of the solvers crate
//! (`crates/solvers/tests/online_vs_anls.rs`, which includes this file by
//! path): planted Poisson data, an online fit, the objective of all cells.

use inmf_learner::{
    initial_model, plan_all, run_plan, CsrMatrix, InMemorySource, ObjectiveParts, OnlineInmf, OnlineParams,
};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};

/// Poisson counts around a planted (W + V_i) H_i with `types` cell types,
/// scaled per cell like the preprocessing would (values ~ 1).
pub fn planted(seed: u64, cells: &[usize], genes: usize, k: usize) -> Vec<CsrMatrix> {
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

pub fn final_objective(model: &OnlineInmf, data: &[CsrMatrix]) -> ObjectiveParts {
    let mut total = ObjectiveParts::default();
    for (i, x) in data.iter().enumerate() {
        let (_, obj) = model.solve_h(i, x).unwrap();
        total += obj;
    }
    total
}

pub fn fit(data: &[CsrMatrix], params: &OnlineParams) -> OnlineInmf {
    let mut src = InMemorySource::new(data.to_vec());
    let mut model = initial_model(&mut src, params).unwrap();
    let plan = plan_all(&src, params).unwrap();
    run_plan(&mut model, &mut src, &plan, params.hals_sweeps, |_, _| {}).unwrap();
    model
}
