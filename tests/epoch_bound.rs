//! `inmf run --measure-bound` reports a per-epoch bound that is
//! consistent with its own rates and the run's data, and measuring it does
//! not change the model.

use crate::run::{run, simulate, w_of};

#[test]
fn measure_bound_is_consistent_and_leaves_the_model_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = simulate(
        &dir.path().join("data"),
        &[
            "--datasets",
            "2",
            "--cells",
            "1500",
            "--genes",
            "200",
            "--seed",
            "3",
        ],
    );
    let common = ["--k", "5", "--epochs", "2", "--batch-size", "500", "--seed", "2"];
    let plain = run(&inputs, &dir.path().join("plain"), &common);
    assert!(plain["bound"].is_null(), "no bound unless asked for");
    let mut extra = common.to_vec();
    extra.push("--measure-bound");
    let s = run(&inputs, &dir.path().join("bound"), &extra);
    let b = &s["bound"];
    let num = |key: &str| {
        b[key]
            .as_f64()
            .unwrap_or_else(|| panic!("bound.{key} missing: {b}"))
    };
    let (bytes, nnz) = (num("bytes_per_epoch"), num("nnz_per_epoch"));
    let (read, flops) = (num("read_gb_per_s") * 1e9, num("sparse_gflop_per_s") * 1e9);
    for v in [bytes, nnz, read, flops, num("epoch_s")] {
        assert!(v.is_finite() && v > 0.0, "bound fields must be positive: {b}");
    }
    // One epoch covers every cell of the first dataset and the same share of
    // the second: 8 bytes per non-zero plus 8 per cell.
    let cells = s["cells"].as_f64().unwrap();
    assert!((bytes - 8.0 * (nnz + cells)).abs() <= 8.0 * 0.01 * cells, "{b}");
    let expect = (bytes / read).max(4.0 * nnz * 5.0 / flops);
    assert!(
        (num("epoch_s") - expect).abs() <= 1e-9 * expect,
        "bound = max(read, products): {b}"
    );
    // Epoch times: one per epoch, summing to the epochs phase; the ratio
    // uses their median (of two: the mean), the mean ratio their mean.
    let total = s["seconds"]["epochs"].as_f64().unwrap();
    let epochs: Vec<f64> = s["epoch_seconds"]
        .as_array()
        .expect("epoch_seconds")
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(epochs.len(), 2, "{s}");
    assert!(epochs.iter().all(|&t| t > 0.0));
    assert!(epochs.iter().sum::<f64>() <= total * (1.0 + 1e-9), "{s}");
    assert!(epochs.iter().sum::<f64>() >= 0.5 * total, "{s}");
    let median = 0.5 * (epochs[0] + epochs[1]);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b;
    assert!(
        close(num("epoch_time_over_bound"), median / num("epoch_s")),
        "{b}"
    );
    assert!(
        close(num("mean_epoch_time_over_bound"), total / 2.0 / num("epoch_s")),
        "{b}"
    );
    assert_eq!(w_of(&dir.path().join("plain")), w_of(&dir.path().join("bound")));

    // The decode bound: one read of the stored matrices, consistent with
    // the preprocessing time it is compared with.
    assert!(plain["decode"].is_null(), "no decode bound unless asked for");
    let d = &s["decode"];
    let field = |key: &str| {
        d[key]
            .as_f64()
            .unwrap_or_else(|| panic!("decode.{key} missing: {d}"))
    };
    let (stored, decoded, secs) = (field("stored_mb"), field("decoded_mb"), field("seconds"));
    assert!(stored > 0.0 && decoded >= stored && secs > 0.0, "{d}");
    // 4-byte indices and 4-byte values per stored non-zero, at least one
    // non-zero per cell.
    assert!(decoded * 1e6 >= 8.0 * cells, "{d}");
    assert!(close(field("decoded_mb_per_s"), decoded / secs), "{d}");
    let pre = s["seconds"]["preprocess"].as_f64().unwrap();
    assert!(close(field("preprocess_over_decode"), pre / secs), "{d}");

    // The preprocessing steps, in order, within the preprocessing time:
    // the second run found the first run's cache entry; a fresh cache
    // builds one; without the cache there is no build but a cells pass.
    let steps = |s: &serde_json::Value| -> Vec<String> {
        let steps = s["preprocess_steps"].as_array().expect("preprocess_steps");
        let pre = s["seconds"]["preprocess"].as_f64().unwrap();
        let secs: Vec<f64> = steps.iter().map(|x| x["seconds"].as_f64().unwrap()).collect();
        assert!(secs.iter().all(|&t| t >= 0.0), "{s}");
        assert!(secs.iter().sum::<f64>() <= pre * (1.0 + 1e-9), "{s}");
        steps
            .iter()
            .map(|x| x["step"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(steps(&s), ["open and fingerprint", "cache check"], "{s}");
    let fresh = dir.path().join("fresh-cache");
    extra.extend(["--cache", fresh.to_str().unwrap()]);
    // The cache build drops the cells without counts in the selected
    // genes: no pass of their own.
    let built = run(&inputs, &dir.path().join("built"), &extra);
    assert_eq!(
        steps(&built),
        ["open and fingerprint", "statistics pass", "cache build"],
        "{built}"
    );
    let nocache = run(
        &inputs,
        &dir.path().join("nocache"),
        &["--no-cache", "--k", "5", "--epochs", "1"],
    );
    assert_eq!(
        steps(&nocache),
        ["open and fingerprint", "statistics pass", "cells pass"],
        "{nocache}"
    );
}
