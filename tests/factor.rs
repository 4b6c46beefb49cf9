//! `inmf factor` runs the batch solvers on the inputs of `inmf run`
//! and writes a result.h5ad of the same kind; its errors are input errors.

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use ndarray::{Array1, Array2};

use crate::common::*;

/// Two simulated datasets of 150 cells (paired sizes) and 120 genes.
fn simulate(dir: &Path) -> Vec<PathBuf> {
    simulate_cells(dir, "150")
}

/// Two simulated datasets with `cells` cells ("150" or "150,100") and 120 genes.
fn simulate_cells(dir: &Path, cells: &str) -> Vec<PathBuf> {
    let out = dir.join(format!("data{}", cells.replace(',', "_")));
    let o = inmf(&[
        "simulate",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--datasets",
        "2",
        "--cells",
        cells,
        "--genes",
        "120",
    ]);
    assert!(o.status.success(), "simulate failed: {}", stderr(&o));
    let mut files: Vec<PathBuf> = files_below(&out)
        .into_iter()
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("h5ad"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 2);
    files
}

/// Runs `inmf factor --json` and returns the summary.
fn factor(inputs: &[PathBuf], out: &Path, method: &str, extra: &[&str]) -> serde_json::Value {
    let mut args: Vec<String> = ["factor", "--json", "--k", "4", "--method", method, "--out"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(out.display().to_string());
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = inmf(&refs);
    assert!(
        o.status.success(),
        "factor --method {method} failed: {}",
        stderr(&o)
    );
    serde_json::from_slice(&o.stdout).expect("--json prints one JSON object")
}

fn factor_fails(inputs: &[PathBuf], out: &Path, method: &str, extra: &[&str]) -> String {
    let mut args: Vec<String> = ["factor", "--quiet", "--k", "4", "--method", method, "--out"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(out.display().to_string());
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = inmf(&refs);
    assert_eq!(
        o.status.code(),
        Some(2),
        "expected an input error: {}",
        stderr(&o)
    );
    assert!(!out.join("result.h5ad").exists(), "nothing is written on error");
    stderr(&o)
}

fn read_2d(out: &Path, path: &str) -> Array2<f64> {
    hdf5::File::open(out.join("result.h5ad"))
        .unwrap()
        .dataset(path)
        .unwrap()
        .read_2d()
        .unwrap()
}

fn read_strings(out: &Path, path: &str) -> Vec<String> {
    hdf5::File::open(out.join("result.h5ad"))
        .unwrap()
        .dataset(path)
        .unwrap()
        .read_raw::<VarLenUnicode>()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn read_f64s(out: &Path, path: &str) -> Vec<f64> {
    hdf5::File::open(out.join("result.h5ad"))
        .unwrap()
        .dataset(path)
        .unwrap()
        .read_raw()
        .unwrap()
}

#[test]
fn factor_writes_a_result_like_run_for_inmf_and_plain_methods() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = simulate(dir.path());
    let hals = dir.path().join("hals");
    let s = factor(&inputs, &hals, "inmf-hals", &["--max-iter", "40"]);
    assert_eq!(s["method"], "inmf-hals");
    let cells = s["cells"].as_u64().unwrap() as usize;
    let genes = s["genes"].as_u64().unwrap() as usize;
    assert_eq!(cells, 300);
    let h = read_2d(&hals, "obsm/X_inmf");
    assert_eq!(h.dim(), (cells, 4));
    assert!(h.iter().all(|&v| v >= 0.0 && v.is_finite()));
    assert_eq!(read_2d(&hals, "varm/W").dim(), (genes, 4));
    for name in ["batch1", "batch2"] {
        assert_eq!(read_2d(&hals, &format!("varm/V_{name}")).dim(), (genes, 4));
    }
    assert_eq!(read_strings(&hals, "var/_index").len(), genes);
    // The objective trace is what the summary reports, non-increasing for HALS.
    let trace = read_f64s(&hals, "uns/inmf/objective_trace/total");
    assert_eq!(trace.len(), s["iterations"].as_u64().unwrap() as usize);
    assert!(trace.windows(2).all(|p| p[1] <= p[0] * (1.0 + 1e-9)), "{trace:?}");
    assert_eq!(read_f64s(&hals, "uns/inmf/objective_per_epoch"), trace);
    let total = s["final_objective"]["total"].as_f64().unwrap();
    assert!((trace.last().unwrap() - total).abs() <= 1e-12 * total);

    // A plain method factorizes all cells together: no V, same file layout.
    let kl = dir.path().join("kl");
    let s = factor(&inputs, &kl, "nmf-kl", &["--max-iter", "30"]);
    assert_eq!(read_2d(&kl, "obsm/X_inmf").dim(), (cells, 4));
    let f = hdf5::File::open(kl.join("result.h5ad")).unwrap();
    assert!(!f.link_exists("varm/V_batch1"));
    assert!(s["final_objective"]["residual"].as_f64().unwrap() > 0.0);
    drop(f);

    // `inmf analyze` accepts the result.
    let o = inmf(&["analyze", "--quiet", hals.to_str().unwrap()]);
    assert!(o.status.success(), "analyze failed: {}", stderr(&o));
}

#[test]
fn factor_same_seed_same_factors() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = simulate(dir.path());
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    factor(&inputs, &a, "inmf-mu", &["--max-iter", "20", "--threads", "1"]);
    factor(&inputs, &b, "inmf-mu", &["--max-iter", "20", "--threads", "2"]);
    factor(&inputs, &c, "inmf-mu", &["--max-iter", "20", "--seed", "2"]);
    // Bit identity is the property under test.
    assert_eq!(read_2d(&a, "obsm/X_inmf"), read_2d(&b, "obsm/X_inmf"));
    assert_ne!(read_2d(&a, "obsm/X_inmf"), read_2d(&c, "obsm/X_inmf"));
}

#[test]
fn factor_diffusion_reads_edge_lists_and_hdf5_graphs_alike() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = simulate(dir.path());
    // A chain through each dataset's cells (file rows, concatenated).
    let edges: Vec<(i64, i64)> = (0..300).filter(|i| i % 150 != 149).map(|i| (i, i + 1)).collect();
    let tsv = dir.path().join("edges.tsv");
    let text: String = edges.iter().map(|(i, j)| format!("{i}\t{j}\n")).collect();
    std::fs::write(&tsv, format!("# cell graph\n{text}")).unwrap();
    // The same graph as a symmetric CSR adjacency in HDF5.
    let mut adj = vec![Vec::new(); 300];
    for &(i, j) in &edges {
        adj[i as usize].push(j);
        adj[j as usize].push(i);
    }
    let (mut indptr, mut indices) = (vec![0i64], Vec::new());
    for row in &mut adj {
        row.sort();
        indices.extend_from_slice(row);
        indptr.push(indices.len() as i64);
    }
    let h5 = dir.path().join("graph.h5");
    {
        let f = create_unlocked(&h5);
        let g = f.create_group("neighbors").unwrap();
        g.new_dataset_builder()
            .with_data(&Array1::from(indptr))
            .create("indptr")
            .unwrap();
        g.new_dataset_builder()
            .with_data(&Array1::from(indices.clone()))
            .create("indices")
            .unwrap();
        g.new_dataset_builder()
            .with_data(&Array1::from(vec![1.0f32; indices.len()]))
            .create("data")
            .unwrap();
    } // every handle closed: the file is complete

    let (a, b) = (dir.path().join("tsv"), dir.path().join("h5"));
    let common = ["--max-iter", "15", "--beta", "2", "--alpha", "0.1"];
    let sa = factor(
        &inputs,
        &a,
        "diffusion-nmf",
        &[&["--graph", tsv.to_str().unwrap()][..], &common[..]].concat(),
    );
    let spec = format!("{}:neighbors", h5.display());
    factor(
        &inputs,
        &b,
        "diffusion-nmf",
        &[&["--graph-h5", spec.as_str()][..], &common[..]].concat(),
    );
    let (ha, hb) = (read_2d(&a, "obsm/X_inmf"), read_2d(&b, "obsm/X_inmf"));
    assert_eq!(ha.dim(), (300, 4));
    assert_eq!(ha, hb);
    assert_eq!(read_2d(&a, "obsm/X_initiators").dim(), (300, 4));
    let notes = sa["notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().contains("298 edges over 300 cells")),
        "{notes:?}"
    );
}

#[test]
fn factor_regularized_takes_a_gene_graph_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = simulate(dir.path());
    let plain = dir.path().join("plain");
    factor(&inputs, &plain, "nmf-mu", &["--max-iter", "5"]);
    let genes = read_strings(&plain, "var/_index");
    let mut text: String = genes
        .windows(2)
        .map(|p| format!("{}\t{}\t0.5\n", p[0], p[1]))
        .collect();
    text.push_str("not_a_gene\tnor_this\n");
    let graph = dir.path().join("genes.tsv");
    std::fs::write(&graph, text).unwrap();
    let out = dir.path().join("reg");
    let s = factor(
        &inputs,
        &out,
        "regularized-nmf",
        &[
            "--max-iter",
            "20",
            "--lambda",
            "3",
            "--gene-graph",
            graph.to_str().unwrap(),
            "--reg-solver",
            "mu",
        ],
    );
    let notes = s["notes"].as_array().unwrap();
    let expect = format!(
        "{} edges between selected genes (1 edges naming unselected genes ignored)",
        genes.len() - 1
    );
    assert!(
        notes.iter().any(|n| n.as_str().unwrap().contains(&expect)),
        "{notes:?}"
    );
    assert!(s["final_objective"]["penalty"].as_f64().unwrap() > 0.0);
    assert_eq!(s["params"]["solver"], "Multiplicative");
}

#[test]
fn factor_refuses_bad_requests_as_input_errors() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = simulate(dir.path());
    let out = dir.path().join("out");
    let e = factor_fails(&inputs, &out, "diffusion-nmf", &[]);
    assert!(e.contains("needs a cell graph"), "{e}");
    let e = factor_fails(&inputs, &out, "nmf-mu", &["--beta", "1", "--graph", "x.tsv"]);
    assert!(e.contains("only used by diffusion-nmf"), "{e}");
    let e = factor_fails(&inputs[..1], &out, "inmf-kl-coupled", &[]);
    assert!(e.contains("paired"), "{e}");
    let e = factor_fails(&inputs, &out, "inmf-mu", &["--lambda=-1"]);
    assert!(e.contains("lambda"), "{e}");
    // Unpaired data: the coupled solvers need the same cells in every dataset.
    let unpaired = simulate_cells(dir.path(), "150,100");
    for m in ["inmf-mu-coupled", "inmf-kl-coupled"] {
        let e = factor_fails(&unpaired, &out, m, &["--max-iter", "2"]);
        assert!(
            e.contains("paired") && e.contains("150") && e.contains("100"),
            "{e}"
        );
    }
}

#[test]
fn factor_help_documents_every_method_with_its_objective() {
    let o = inmf(&["factor", "--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for m in [
        "nmf-mu",
        "nmf-kl",
        "inmf-anls",
        "inmf-hals",
        "inmf-mu",
        "inmf-mu-coupled",
        "inmf-kl",
        "inmf-kl-coupled",
        "diffusion-nmf",
        "regularized-nmf",
    ] {
        assert!(help.contains(m), "{m} missing from --help");
    }
    for formula in [
        "‖X − HWᵀ‖²",
        "D(X‖HWᵀ)",
        "λ Σ_i ‖H_iV_iᵀ‖²",
        "γ D(H_1‖H_2)",
        "(I + βL)⁻¹",
        "λ‖MW‖²",
    ] {
        assert!(help.contains(formula), "{formula} missing from --help");
    }
    assert!(
        help.contains("in-memory"),
        "the help says batch solvers are in-memory"
    );
}
