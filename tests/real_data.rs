//! `inmf run` and `inmf add` with their defaults on small real datasets of
//! the shared data folder (`../shared/data` beside the repository): the
//! mini-batch is chosen from the data and named in the log, and an explicit
//! one that does not fit is still refused.

use std::path::{Path, PathBuf};

use crate::common::*;
use crate::run::{h_of, simulate};

/// The shared real dataset `name` (a folder of `<batch>.h5ad` files), or
/// `None` after a loud NOT TESTED line when it is not there.
fn shared_dataset(name: &str, test: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(name);
    if dir.is_dir() {
        return Some(dir);
    }
    eprintln!(
        "\n*** NOT TESTED: {test}, because the real dataset {} is not there (the shared data \
         folder ../shared/data beside the repository holds it) ***\n",
        dir.display()
    );
    None
}

/// The two batch files of kang_ifnb_liger_tiny (300 + 300 cells) and a
/// temporary folder, or `None` after a NOT TESTED line.
fn tiny_kang(test: &str) -> Option<(PathBuf, PathBuf, tempfile::TempDir)> {
    let data = shared_dataset("kang_ifnb_liger_tiny", test)?;
    Some((
        data.join("ctrl.h5ad"),
        data.join("stim.h5ad"),
        tempfile::tempdir().unwrap(),
    ))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn batch_size_in_result(out: &Path) -> i64 {
    hdf5::File::open(out.join("result.h5ad"))
        .unwrap()
        .dataset("uns/inmf/params/batch_size")
        .unwrap()
        .read_scalar()
        .unwrap()
}

/// kang_ifnb_liger_tiny: 300 + 300 cells, fewer than the reference's
/// 5000, so all 600 are used in every iteration.
#[test]
fn run_with_no_options_chooses_the_mini_batch_from_the_data() {
    let Some((ctrl, stim, dir)) = tiny_kang("`inmf run` with no options on real data") else {
        return;
    };
    let out = dir.path().join("run");
    let o = inmf(&["run", s(&ctrl), s(&stim), "--out", s(&out)]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(
        log.contains(
            "mini-batch: 600 cells per iteration (ctrl 300, stim 300), 5 iterations in 5 epochs; \
             all 600 cells, fewer than the reference's 5000: one iteration per epoch"
        ),
        "{log}"
    );
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(
        summary.contains("5 iterations of 600 cells (mini-batch chosen from the data), 5 epochs"),
        "{summary}"
    );
    assert_eq!(batch_size_in_result(&out), 600);
    let model: u64 = hdf5::File::open(out.join("model.h5"))
        .unwrap()
        .attr("batch_size")
        .unwrap()
        .read_scalar()
        .unwrap();
    assert_eq!(model, 600);

    // The same size given explicitly is the same run, bit for bit.
    let given = dir.path().join("given");
    let o = inmf(&[
        "run",
        s(&ctrl),
        s(&stim),
        "--out",
        s(&given),
        "--batch-size",
        "600",
    ]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(
        log.contains(
            "mini-batch: 600 cells per iteration (ctrl 300, stim 300), 5 iterations in 5 epochs; as given"
        ),
        "{log}"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("5 iterations of 600 cells (mini-batch as given)"));
    assert_eq!(h_of(&out), h_of(&given));
}

#[test]
fn an_explicit_mini_batch_larger_than_the_data_is_still_refused() {
    let Some((ctrl, stim, dir)) = tiny_kang("an explicit --batch-size on real data") else {
        return;
    };
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[model]\nbatch_size = 5000\n").unwrap();
    for how in [["--batch-size", "5000"], ["--config", s(&cfg)]] {
        let out = dir.path().join("out");
        let o = inmf(&["run", s(&ctrl), s(&stim), "--out", s(&out), how[0], how[1]]);
        assert_eq!(o.status.code(), Some(2), "{how:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("a mini-batch of 5000 cells")
                && err.contains("decrease the mini-batch size to at most 600")
                && err.contains("0 = ctrl, 1 = stim"),
            "{err}"
        );
        assert!(!out.exists(), "nothing is written on bad input");
    }
}

/// Scenario 2 with a 300-cell new dataset: all 300 new cells per
/// iteration; an explicit 5000 is refused as before.
#[test]
fn add_with_no_options_chooses_the_mini_batch_from_the_new_data() {
    let Some((ctrl, stim, dir)) = tiny_kang("`inmf add` with no options on real data") else {
        return;
    };
    let run = dir.path().join("run");
    let o = inmf(&["run", s(&ctrl), "--out", s(&run), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(batch_size_in_result(&run), 300);

    let added = dir.path().join("added");
    let o = inmf(&["add", s(&run), s(&stim), "--out", s(&added)]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(
        log.contains(
            "mini-batch: 300 cells per iteration (stim 300), 5 iterations in 5 epochs; all 300 cells"
        ),
        "{log}"
    );
    assert_eq!(batch_size_in_result(&added), 300);

    let refused = dir.path().join("refused");
    let o = inmf(&[
        "add",
        s(&run),
        s(&stim),
        "--out",
        s(&refused),
        "--batch-size",
        "5000",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("decrease the mini-batch size to at most 300"),
        "{}",
        stderr(&o)
    );
    assert!(!refused.exists());
}

/// `inmf analyze --json` prints the metrics stored in `uns['inmf']['metrics']`,
/// the clusters and the number of label types (here rliger's own 8
/// clusters of this data, `obs['leiden_cluster']`).
#[test]
fn analyze_json_reports_the_stored_metrics_and_the_label_types() {
    let Some((ctrl, stim, dir)) = tiny_kang("`inmf analyze --json` on real data") else {
        return;
    };
    let run = dir.path().join("run");
    let o = inmf(&["run", s(&ctrl), s(&stim), "--out", s(&run), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = inmf(&["analyze", s(&run), "--labels", "leiden_cluster", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "--json prints no progress: {}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(json["cells"], 600);
    assert_eq!(json["labels"]["column"], "leiden_cluster");
    assert_eq!(json["labels"]["types"], 8);
    let f = hdf5::File::open(run.join("result.h5ad")).unwrap();
    let clusters = f
        .dataset("obs/cluster/categories")
        .unwrap()
        .shape()
        .iter()
        .product::<usize>();
    assert_eq!(json["clusters"], clusters);
    // Every metric of uns['inmf']['metrics'] (all 8 with labels), same values.
    let stored = f.group("uns/inmf/metrics").unwrap().member_names().unwrap();
    let metrics = json["metrics"].as_object().unwrap();
    assert_eq!(stored.len(), 8, "{stored:?}");
    assert_eq!(metrics.len(), stored.len(), "{metrics:?}");
    for key in &stored {
        let v: f64 = f
            .dataset(&format!("uns/inmf/metrics/{key}"))
            .unwrap()
            .read_scalar()
            .unwrap();
        assert_eq!(metrics[key].as_f64(), Some(v), "{key}");
    }
    assert!(json["seconds"]["UMAP"].as_f64().unwrap() > 0.0);
    assert!(json["peak_rss_mb"].as_f64().unwrap() > 1.0);
}

/// `scripts/real-data` on a folder it has never seen: a labelled 2-batch
/// dataset is measured for every setting (and a setting that does not fit
/// is reported as failed, with exit code 1), while a single-batch dataset,
/// one without labels and an empty folder are skipped with their reasons.
#[test]
fn the_real_data_report_runs_on_any_folder_of_labelled_batches() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("\n*** NOT TESTED: scripts/real-data, because python3 is not on PATH ***\n");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    simulate(
        &data.join("sim"),
        &[
            "--datasets",
            "2",
            "--cells",
            "300",
            "--genes",
            "300",
            "--cell-types",
            "3",
        ],
    );
    std::fs::create_dir_all(data.join("single")).unwrap();
    std::fs::copy(data.join("sim/batch1.h5ad"), data.join("single/only.h5ad")).unwrap();
    let nolabels = data.join("nolabels");
    std::fs::create_dir_all(&nolabels).unwrap();
    valid_h5ad(&nolabels, "a", 100, 50, "g");
    valid_h5ad(&nolabels, "b", 100, 50, "g");
    std::fs::create_dir_all(data.join("empty")).unwrap();

    let json = dir.path().join("report.json");
    let o = std::process::Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/real-data"))
        .args([
            "--data",
            s(&data),
            "--seeds",
            "1",
            "--batch-size",
            "auto,cells/10,5000",
            "--k",
            "5",
            "--inmf",
            env!("CARGO_BIN_EXE_inmf"),
            "--json",
            s(&json),
        ])
        .output()
        .expect("scripts/real-data runs");
    let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), stderr(&o));
    assert_eq!(
        o.status.code(),
        Some(1),
        "a failed setting exits 1:\n{out}\n{err}"
    );
    assert!(
        out.contains("| sim | 600 | 2 | cell_type (3) | 5 | auto: 600 (5 it.) |"),
        "{out}"
    );
    assert!(
        out.contains("| sim | 600 | 2 | cell_type (3) | 5 | cells/10: 60 (50 it.) |"),
        "{out}"
    );
    for (needle, place) in [
        ("*** SKIPPED single: a single batch (only.h5ad)", &err),
        ("*** SKIPPED nolabels: no label column", &err),
        ("*** SKIPPED empty: no <batch>.h5ad files", &err),
        ("*** FAILED sim (5000, seed 1): inmf run exited with 2", &err),
        ("decrease the mini-batch size to at most 600", &out),
    ] {
        assert!(place.contains(needle), "{needle:?} missing:\n{out}\n{err}");
    }
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let auto = &results[0];
    assert_eq!(auto["setting"], "auto");
    assert_eq!(auto["runs"][0]["batch_size"], 600);
    assert_eq!(auto["runs"][0]["batch_size_chosen"], true);
    assert_eq!(auto["runs"][0]["iterations"], 5);
    for key in ["ari", "nmi", "purity", "kbet_acceptance"] {
        let v = auto["mean"][key].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&v), "{key} = {v}");
    }
    assert!(auto["mean"]["alignment"].as_f64().unwrap().is_finite());
    assert!(auto["mean"]["peak_rss_mb"].as_f64().unwrap() > 1.0);
    assert_eq!(results[1]["runs"][0]["iterations"], 50);
    assert_eq!(results[1]["runs"][0]["batch_size_chosen"], false);
    assert!(results[2]["mean"].is_null());
    let skipped: Vec<&str> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["dataset"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["empty", "nolabels", "single"]);
}
