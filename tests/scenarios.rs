//! Scenario 2 (`inmf add`), scenario 3 (`inmf project`), model
//! files and checkpoint/resume, end to end on simulated data.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdf5::types::VarLenUnicode;
use ndarray::{Array2, Axis};

use crate::common::*;

fn sim(dir: &Path, args: &[&str]) -> Vec<PathBuf> {
    let mut full = vec!["simulate", "--quiet", "--out", dir.to_str().unwrap()];
    full.extend_from_slice(args);
    let o = inmf(&full);
    assert!(o.status.success(), "simulate failed: {}", stderr(&o));
    let mut files: Vec<PathBuf> = files_below(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "h5ad"))
        .collect();
    files.sort();
    files
}

fn ok_json(args: &[String]) -> serde_json::Value {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = inmf(&refs);
    assert!(o.status.success(), "inmf {args:?} failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("JSON summary")
}

fn args(cmd: &str, pre: &[&Path], inputs: &[&Path], out: &Path, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        cmd.to_string(),
        "--json".into(),
        "--out".into(),
        out.display().to_string(),
    ];
    a.extend(pre.iter().chain(inputs).map(|p| p.display().to_string()));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn read2(path: &Path, ds: &str) -> Array2<f64> {
    hdf5::File::open(path)
        .unwrap()
        .dataset(ds)
        .unwrap()
        .read_2d()
        .unwrap()
}

fn strings(path: &Path, ds: &str) -> Vec<String> {
    hdf5::File::open(path)
        .unwrap()
        .dataset(ds)
        .unwrap()
        .read_raw::<VarLenUnicode>()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The simulated cell type of every cell of an input file.
fn cell_types(path: &Path) -> Vec<String> {
    let f = hdf5::File::open(path).unwrap();
    let cats = strings(path, "obs/cell_type/categories");
    let codes: Vec<i64> = f
        .dataset("obs/cell_type/codes")
        .unwrap()
        .read_raw::<i64>()
        .unwrap();
    codes.iter().map(|&c| cats[c as usize].clone()).collect()
}

const LEARN: [&str; 8] = [
    "--k",
    "6",
    "--batch-size",
    "600",
    "--epochs",
    "6",
    "--quiet",
    "--seed",
];

#[test]
fn datasets_arriving_one_at_a_time_reach_scenario_1_objective() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = sim(
        &d.join("data"),
        &[
            "--datasets",
            "3",
            "--cells",
            "1500",
            "--genes",
            "400",
            "--cell-types",
            "5",
        ],
    );
    let [b1, b2, b3] = [&files[0], &files[1], &files[2]].map(|p| p.as_path());
    let learn = [&LEARN[..], &["1"]].concat();

    // Arrival 1, then 2, then 3.
    ok_json(&args("run", &[], &[b1], &d.join("m1"), &learn));
    let genes = strings(&d.join("m1/model.h5"), "genes");
    let add_opts = ["--batch-size", "600", "--epochs", "6", "--quiet"];
    ok_json(&args("add", &[&d.join("m1")], &[b2], &d.join("m2"), &add_opts));
    let s3 = ok_json(&args("add", &[&d.join("m2")], &[b3], &d.join("m3"), &add_opts));
    assert_eq!(s3["cells"], 4500, "the final result holds every cell");

    // Scenario 1 on all cells with the same genes.
    let list = d.join("genes.txt");
    std::fs::write(&list, genes.join("\n")).unwrap();
    let s1 = ok_json(&args(
        "run",
        &[],
        &[b1, b2, b3],
        &d.join("all"),
        &[&learn[..], &["--genes", list.to_str().unwrap()]].concat(),
    ));
    let (f1, f2) = (
        s1["final_objective"]["total"].as_f64().unwrap(),
        s3["final_objective"]["total"].as_f64().unwrap(),
    );
    let rel = (f2 - f1) / f1;
    eprintln!(
        "scenario 1 F = {f1:.6e}, scenario 2 (one at a time) F = {f2:.6e}: {:+.2}%",
        100.0 * rel
    );
    assert!(
        rel < 0.05,
        "scenario 2 objective {f2} is {:.2}% above scenario 1 {f1}",
        100.0 * rel
    );

    // Chained model: 3 datasets, earlier V's frozen, obs in model order.
    let m3 = d.join("m3/model.h5");
    assert_eq!(
        read2(&m3, "datasets/0/V"),
        read2(&d.join("m1/model.h5"), "datasets/0/V")
    );
    assert_eq!(
        read2(&m3, "datasets/1/V"),
        read2(&d.join("m2/model.h5"), "datasets/1/V")
    );
    let f = hdf5::File::open(&m3).unwrap();
    assert_eq!(f.group("datasets").unwrap().member_names().unwrap().len(), 3);
    let mut names = strings(b1, "obs/_index");
    names.extend(strings(b2, "obs/_index"));
    names.extend(strings(b3, "obs/_index"));
    assert_eq!(strings(&d.join("m3/result.h5ad"), "obs/_index"), names);
}

#[test]
fn add_new_only_and_changed_old_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = sim(
        &d.join("data"),
        &[
            "--datasets",
            "2",
            "--cells",
            "800",
            "--genes",
            "200",
            "--cell-types",
            "3",
        ],
    );
    let old_copy = d.join("old.h5ad");
    std::fs::copy(&files[0], &old_copy).unwrap();
    ok_json(&args(
        "run",
        &[],
        &[&old_copy],
        &d.join("m1"),
        &[&LEARN[..], &["1"]].concat(),
    ));
    let opts = ["--batch-size", "300", "--epochs", "2", "--quiet"];
    // --new-only: only the new cells in the result.
    let s = ok_json(&args(
        "add",
        &[&d.join("m1")],
        &[&files[1]],
        &d.join("n"),
        &[&opts[..], &["--new-only"]].concat(),
    ));
    assert_eq!(s["cells"], 800);
    assert_eq!(read2(&d.join("n/result.h5ad"), "obsm/X_inmf").dim(), (800, 6));
    // A changed old file is refused (with a fix), nothing written.
    std::fs::copy(&files[1], &old_copy).unwrap();
    let out = d.join("refused");
    let a = args("add", &[&d.join("m1")], &[&files[1]], &out, &opts);
    let o = inmf(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("changed") && stderr(&o).contains("--new-only"),
        "{}",
        stderr(&o)
    );
    assert!(files_below(&out).is_empty());
    // A dataset name already in the model is refused.
    let a = args(
        "add",
        &[&d.join("m1")],
        &[&PathBuf::from(format!("old={}", files[1].display()))],
        &out,
        &[&opts[..], &["--new-only"]].concat(),
    );
    let o = inmf(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // Out-of-range runtime knobs are refused by add and project alike
    // (a 0-cell final block once panicked in the final pass).
    let bad = d.join("bad.toml");
    std::fs::write(&bad, "[runtime]\nfinal_block = 0\n").unwrap();
    for cmd in ["add", "project"] {
        let extra = [&opts[..], &["--new-only", "--config", bad.to_str().unwrap()]].concat();
        let extra = if cmd == "add" {
            &extra[..]
        } else {
            &extra[extra.len() - 2..]
        };
        let a = args(cmd, &[&d.join("m1")], &[&files[1]], &out, extra);
        let o = inmf(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", stderr(&o));
        assert!(stderr(&o).contains("final_block"), "{cmd}: {}", stderr(&o));
        assert!(files_below(&out).is_empty());
    }
    // Not a model directory.
    let a = args("project", &[d], &[&files[1]], &out, &[]);
    let o = inmf(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("model"), "{}", stderr(&o));
}

/// Cosine-normalized rows.
fn normalize(h: &Array2<f64>) -> Array2<f64> {
    let mut h = h.clone();
    for mut r in h.rows_mut() {
        let n = r.dot(&r).sqrt();
        if n > 0.0 {
            r /= n;
        }
    }
    h
}

/// For each query row: (majority type among its k nearest reference rows, mean cosine similarity to them).
fn knn_vote(
    reference: &Array2<f64>,
    ref_types: &[String],
    query: &Array2<f64>,
    k: usize,
) -> Vec<(String, f64)> {
    let (r, q) = (normalize(reference), normalize(query));
    let sims = q.dot(&r.t());
    sims.axis_iter(Axis(0))
        .map(|row| {
            let mut idx: Vec<usize> = (0..row.len()).collect();
            idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            let mut counts = std::collections::HashMap::<&str, usize>::new();
            for &i in &idx[..k] {
                *counts.entry(&ref_types[i]).or_default() += 1;
            }
            let best = counts
                .into_iter()
                .max_by_key(|(t, c)| (*c, std::cmp::Reverse(*t)))
                .unwrap()
                .0
                .to_string();
            (best, idx[..k].iter().map(|&i| row[i]).sum::<f64>() / k as f64)
        })
        .collect()
}

#[test]
fn projection_places_query_cells_near_their_own_type() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Type 5 is absent from both reference datasets but present in the query.
    let files = sim(
        &d.join("data"),
        &[
            "--datasets",
            "3",
            "--cells",
            "1500",
            "--genes",
            "500",
            "--cell-types",
            "5",
            "--missing",
            "1:5",
            "--missing",
            "2:5",
        ],
    );
    ok_json(&args(
        "run",
        &[],
        &[&files[0], &files[1]],
        &d.join("ref"),
        &["--k", "8", "--batch-size", "600", "--epochs", "8", "--quiet"],
    ));
    let s = ok_json(&args(
        "project",
        &[&d.join("ref")],
        &[&files[2]],
        &d.join("q"),
        &["--quiet"],
    ));
    assert_eq!(s["cells"], 1500);
    assert_eq!(s["genes_missing"][0], 0);

    let h_ref = read2(&d.join("ref/result.h5ad"), "obsm/X_inmf");
    let h_q = read2(&d.join("q/result.h5ad"), "obsm/X_inmf");
    let mut ref_types = cell_types(&files[0]);
    ref_types.extend(cell_types(&files[1]));
    let q_types = cell_types(&files[2]);
    let votes = knn_vote(&h_ref, &ref_types, &h_q, 15);
    let (mut known, mut agree, mut sim_known, mut sim_novel, mut novel) = (0, 0, 0.0, 0.0, 0);
    for (t, (vote, sim)) in q_types.iter().zip(&votes) {
        if t == "type5" {
            novel += 1;
            sim_novel += sim;
        } else {
            known += 1;
            agree += usize::from(vote == t);
            sim_known += sim;
        }
    }
    let frac = agree as f64 / known as f64;
    let (sim_known, sim_novel) = (sim_known / known as f64, sim_novel / novel.max(1) as f64);
    eprintln!(
        "projection: {frac:.3} of {known} known-type query cells have a same-type kNN majority; \
         mean cosine similarity to their 15 nearest reference cells: known {sim_known:.3}, novel type5 {sim_novel:.3} ({novel} cells); \
         {} cells with all-zero H",
        s["zero_cells"]
    );
    assert!(
        frac >= 0.9,
        "only {frac:.3} of known-type query cells land among their own type"
    );
    assert!(novel > 100);
    assert!(
        sim_novel < sim_known,
        "the novel type should sit farther from every reference cell"
    );
}

#[test]
fn resume_after_kill_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = sim(
        &d.join("data"),
        &[
            "--datasets",
            "2",
            "--cells",
            "3000",
            "--genes",
            "300",
            "--cell-types",
            "4",
        ],
    );
    let base = [
        "--k",
        "6",
        "--batch-size",
        "400",
        "--epochs",
        "40",
        "--quiet",
        "--checkpoint-seconds",
        "0",
    ];
    let full = d.join("full");
    ok_json(&args("run", &[], &[&files[0], &files[1]], &full, &base));

    let spawn = |a: &[String]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_inmf"))
            .args(a)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let cut = d.join("cut");
    let mut child = spawn(&args("run", &[], &[&files[0], &files[1]], &cut, &base));
    let ck = cut.join("checkpoint.h5");
    let start = Instant::now();
    // Let a few checkpoints pass, then kill mid-run.
    while !ck.exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let first_checkpoint = start.elapsed();
    std::thread::sleep(Duration::from_millis(40));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ck.exists(), "no checkpoint was written");
    // With a long --checkpoint-seconds the same stretch writes none.
    let rare = d.join("rare");
    let mut a = args("run", &[], &[&files[0], &files[1]], &rare, &base[..7]);
    a.extend(["--checkpoint-seconds".to_string(), "1000".to_string()]);
    let mut child = spawn(&a);
    std::thread::sleep(first_checkpoint + Duration::from_millis(40));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!rare.join("model.h5").exists(), "the run ended before the kill");
    assert!(
        !rare.join("checkpoint.h5").exists(),
        "a checkpoint was written before --checkpoint-seconds passed"
    );
    assert!(
        !cut.join("model.h5").exists(),
        "the run finished before it could be interrupted; make it longer"
    );
    let s = ok_json(&args(
        "run",
        &[],
        &[&files[0], &files[1]],
        &cut,
        &[&base[..], &["--resume"]].concat(),
    ));
    assert_eq!(s["epochs"], 40);
    assert!(!ck.exists(), "the checkpoint is removed once the run completes");
    assert_eq!(
        read2(&full.join("model.h5"), "W"),
        read2(&cut.join("model.h5"), "W")
    );
    assert_eq!(
        read2(&full.join("result.h5ad"), "obsm/X_inmf"),
        read2(&cut.join("result.h5ad"), "obsm/X_inmf")
    );
    // Resuming with other parameters is refused.
    let o = inmf(
        &args(
            "run",
            &[],
            &[&files[0], &files[1]],
            &d.join("full"),
            &[&base[..], &["--resume", "--seed", "9"]].concat(),
        )
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
