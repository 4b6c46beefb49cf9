//! Online iNMF (inmf-learner) against batch iNMF by ANLS on the same
//! in-memory data: with full batches and many epochs, online reaches the
//! batch objective within one percent.

#[path = "../../learner/tests/support/planted.rs"]
mod planted;

use inmf_learner::{dataset_objective, OnlineParams};
use inmf_solvers::{inmf_anls, InmfAnlsParams, InmfFactors};
use planted::{final_objective, fit, planted};

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
