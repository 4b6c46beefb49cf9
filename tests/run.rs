//! `inmf run` end to end on simulated data — complete outputs in
//! sync with the inputs, determinism across seeds and thread counts, and
//! the online objective against a batch ANLS reference.

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use ndarray::Array2;

use crate::common::*;

pub(crate) fn simulate(dir: &Path, args: &[&str]) -> Vec<PathBuf> {
    let mut full = vec!["simulate", "--quiet", "--out", dir.to_str().unwrap()];
    full.extend_from_slice(args);
    let o = inmf(&full);
    assert!(o.status.success(), "simulate failed: {}", stderr(&o));
    let mut files: Vec<PathBuf> = files_below(dir)
        .into_iter()
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("h5ad" | "h5")))
        .collect();
    files.sort();
    files
}

pub(crate) fn run(inputs: &[PathBuf], out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args: Vec<String> = vec![
        "run".into(),
        "--json".into(),
        "--out".into(),
        out.display().to_string(),
    ];
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = inmf(&refs);
    assert!(o.status.success(), "run failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("--json prints one JSON object")
}

fn read_strings(f: &hdf5::File, path: &str) -> Vec<String> {
    f.dataset(path)
        .unwrap()
        .read_raw::<VarLenUnicode>()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect()
}

pub(crate) fn h_of(out: &Path) -> Array2<f64> {
    hdf5::File::open(out.join("result.h5ad"))
        .unwrap()
        .dataset("obsm/X_inmf")
        .unwrap()
        .read_2d()
        .unwrap()
}

pub(crate) fn w_of(out: &Path) -> Array2<f64> {
    hdf5::File::open(out.join("model.h5"))
        .unwrap()
        .dataset("W")
        .unwrap()
        .read_2d()
        .unwrap()
}

#[test]
fn run_writes_complete_outputs_in_sync_with_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = simulate(
        &dir.path().join("data"),
        &[
            "--datasets",
            "3",
            "--cells",
            "500,400,300",
            "--genes",
            "300",
            "--cell-types",
            "4",
        ],
    );
    assert_eq!(inputs.len(), 3);
    let out = dir.path().join("run");
    let s = run(
        &inputs,
        &out,
        &["--k", "6", "--batch-size", "300", "--epochs", "3", "--quiet"],
    );
    assert_eq!(s["cells"], 1200);
    assert_eq!(s["epochs"], 3);
    let genes = s["genes_selected"].as_u64().unwrap() as usize;
    assert!(genes > 6 && genes <= 300);

    // Only the two outputs, no temporaries.
    let names: Vec<String> = files_below(&out)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into())
        .collect();
    assert_eq!(names, ["model.h5", "result.h5ad"]);

    let res = hdf5::File::open(out.join("result.h5ad")).unwrap();
    let h = h_of(&out);
    assert_eq!(h.dim(), (1200, 6));
    assert!(h.iter().all(|v| v.is_finite() && *v >= 0.0));
    assert!(h.sum_axis(ndarray::Axis(1)).iter().filter(|&&s| s > 0.0).count() > 1100);
    // obs names are the input cell names, in input order.
    let mut expect = Vec::new();
    for p in &inputs {
        expect.extend(read_strings(&hdf5::File::open(p).unwrap(), "obs/_index"));
    }
    assert_eq!(read_strings(&res, "obs/_index"), expect);
    assert_eq!(read_strings(&res, "var/_index").len(), genes);
    let w = w_of(&out);
    assert_eq!(w.dim(), (genes, 6));
    let model = hdf5::File::open(out.join("model.h5")).unwrap();
    for i in 0..3 {
        let a: Array2<f64> = model
            .dataset(&format!("datasets/{i}/A"))
            .unwrap()
            .read_2d()
            .unwrap();
        assert_eq!(a.dim(), (6, 6));
        assert!(a.diag().iter().all(|&d| d > 0.0));
    }
    // The objective per epoch decreases from the first to the last epoch.
    let per_epoch: Vec<f64> = s["epoch_objective"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(per_epoch.len(), 3);
    assert!(per_epoch[2] < per_epoch[0], "{per_epoch:?}");
}

#[test]
fn same_seed_is_bit_identical_with_one_or_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = simulate(
        &dir.path().join("data"),
        &[
            "--datasets",
            "2",
            "--cells",
            "700",
            "--genes",
            "200",
            "--cell-types",
            "3",
        ],
    );
    let args = ["--k", "5", "--batch-size", "400", "--epochs", "2", "--quiet"];
    let one = dir.path().join("t1");
    let two = dir.path().join("t2");
    let other = dir.path().join("seed2");
    run(&inputs, &one, &[&args[..], &["--threads", "1"]].concat());
    run(&inputs, &two, &[&args[..], &["--threads", "2"]].concat());
    run(&inputs, &other, &[&args[..], &["--seed", "2"]].concat());
    assert_eq!(w_of(&one), w_of(&two));
    assert_eq!(h_of(&one), h_of(&two));
    assert_ne!(w_of(&one), w_of(&other));
}

/// Decoding the inputs every epoch, reading a cache entry mapped whole, and
/// reading it mapped mini-batch by mini-batch give the same bits.
#[test]
fn cache_reads_are_bit_identical_whether_kept_mapped_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = simulate(
        &dir.path().join("data"),
        &[
            "--datasets",
            "2",
            "--cells",
            "600",
            "--genes",
            "150",
            "--cell-types",
            "3",
        ],
    );
    let args = ["--k", "4", "--batch-size", "300", "--epochs", "2", "--quiet"];
    let per_block = dir.path().join("per-block.toml");
    std::fs::write(&per_block, "[runtime]\nkeep_mapped_mb = 0\n").unwrap();
    let outs = ["decoded", "whole", "per-block"].map(|n| dir.path().join(n));
    let cache = dir.path().join("cache");
    let cache_args = ["--cache", cache.to_str().unwrap()];
    let runs = [
        run(&inputs, &outs[0], &[&args[..], &["--no-cache"]].concat()),
        run(&inputs, &outs[1], &[&args[..], &cache_args].concat()),
        run(
            &inputs,
            &outs[2],
            &[&args[..], &cache_args, &["--config", per_block.to_str().unwrap()]].concat(),
        ),
    ];
    for (out, s) in outs.iter().zip(&runs).skip(1) {
        assert_eq!(w_of(out), w_of(&outs[0]), "{}", out.display());
        assert_eq!(h_of(out), h_of(&outs[0]), "{}", out.display());
        assert_eq!(s["final_objective"], runs[0]["final_objective"]);
        assert_eq!(s["epoch_objective"], runs[0]["epoch_objective"]);
    }
}

#[test]
fn reads_10x_inputs_like_h5ad() {
    let dir = tempfile::tempdir().unwrap();
    let common = [
        "--datasets",
        "2",
        "--cells",
        "400",
        "--genes",
        "150",
        "--cell-types",
        "3",
    ];
    let h5ad = simulate(&dir.path().join("a"), &common);
    let tenx = simulate(
        &dir.path().join("b"),
        &[&common[..], &["--format", "10x"]].concat(),
    );
    let args = ["--k", "4", "--batch-size", "200", "--epochs", "2", "--quiet"];
    let sa = run(&h5ad, &dir.path().join("ra"), &args);
    let sb = run(&tenx, &dir.path().join("rb"), &args);
    assert_eq!(sa["genes_selected"], sb["genes_selected"]);
    assert_eq!(h_of(&dir.path().join("ra")), h_of(&dir.path().join("rb")));
}

#[test]
fn demo_sized_online_objective_is_within_5_percent_of_batch_anls() {
    use inmf_learner::CellSource;
    use inmf_solvers::{inmf_anls, InmfAnlsParams};
    let dir = tempfile::tempdir().unwrap();
    let inputs = simulate(
        &dir.path().join("data"),
        &[
            "--datasets",
            "3",
            "--cells",
            "12000,10000,8000",
            "--genes",
            "2000",
            "--missing",
            "3:8",
        ],
    );
    let s = run(&inputs, &dir.path().join("run"), &["--quiet"]);
    let online = s["final_objective"]["total"].as_f64().unwrap();

    // The same preprocessed data, in memory, factorized by batch ANLS to convergence.
    let opts = inmf_reader::OpenOptions::default();
    let datasets = inputs
        .iter()
        .map(|p| inmf_reader::open(p, &opts).unwrap())
        .collect();
    let params = inmf_reader::PreprocessParams::default().check().unwrap();
    let mut source = inmf_reader::Hdf5Source::preprocess(datasets, &params).unwrap();
    let data: Vec<_> = (0..3)
        .map(|d| source.read_cells(d, 0..source.n_cells(d)).unwrap())
        .collect();
    let anls = inmf_anls(
        &data,
        &InmfAnlsParams {
            k: 20,
            lambda: 5.0,
            max_iter: 100,
            tol: 1e-5,
            seed: 1,
        },
        None,
    )
    .unwrap();
    let reference = anls.objective.last().unwrap().total();
    let rel = (online - reference) / reference;
    eprintln!(
        "online {online:.6e}, batch ANLS {reference:.6e} after {} iterations: {:+.3}%",
        anls.iterations,
        100.0 * rel
    );
    assert!(
        rel < 0.05,
        "online objective {online} is {:.2}% above batch ANLS {reference}",
        100.0 * rel
    );
}

#[test]
fn config_file_sets_parameters_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = simulate(
        &dir.path().join("data"),
        &[
            "--datasets",
            "2",
            "--cells",
            "300",
            "--genes",
            "120",
            "--cell-types",
            "3",
        ],
    );
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[model]\nk = 4\nepochs = 2\nbatch_size = 200\n").unwrap();
    let s = run(
        &inputs,
        &dir.path().join("a"),
        &["--config", cfg.to_str().unwrap(), "--quiet"],
    );
    assert_eq!((s["k"].as_u64(), s["epochs"].as_u64()), (Some(4), Some(2)));
    let s = run(
        &inputs,
        &dir.path().join("b"),
        &["--config", cfg.to_str().unwrap(), "--k", "3", "--quiet"],
    );
    assert_eq!(s["k"].as_u64(), Some(3));
    std::fs::write(&cfg, "[model]\nkay = 4\n").unwrap();
    let o = inmf(&[
        "run",
        "--quiet",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        dir.path().join("c").to_str().unwrap(),
        inputs[0].to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("kay"), "{}", stderr(&o));
}
