//! `inmf analyze` end to end — simulate a small atlas, factorize
//! it, analyze it with the simulated cell types as labels, and check what
//! lands in result.h5ad (and that Python's anndata reads it).

use std::path::{Path, PathBuf};
use std::process::Command;

use hdf5::types::VarLenUnicode;
use ndarray::Array2;

use crate::common::*;

/// Simulates 3 datasets (one cell type missing from the third) and runs
/// `inmf run`; returns the run directory.
fn small_run(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    let o = inmf(&[
        "simulate",
        "--quiet",
        "--out",
        data.to_str().unwrap(),
        "--datasets",
        "3",
        "--cells",
        "900,700,600",
        "--genes",
        "600",
        "--cell-types",
        "5",
        "--missing",
        "3:5",
        "--seed",
        "3",
    ]);
    assert!(o.status.success(), "simulate failed: {}", stderr(&o));
    let run = dir.join("run");
    let mut args: Vec<String> = [
        "run",
        "--quiet",
        "--k",
        "8",
        "--epochs",
        "4",
        "--batch-size",
        "500",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(run.display().to_string());
    for b in 1..=3 {
        args.push(data.join(format!("batch{b}.h5ad")).display().to_string());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = inmf(&refs);
    assert!(o.status.success(), "run failed: {}", stderr(&o));
    run
}

fn strings(f: &hdf5::File, path: &str) -> Vec<String> {
    f.dataset(path)
        .unwrap()
        .read_raw::<VarLenUnicode>()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn attr_strings(loc: &hdf5::Location, name: &str) -> Vec<String> {
    loc.attr(name)
        .unwrap()
        .read_raw::<VarLenUnicode>()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn attr_str(loc: &hdf5::Location, name: &str) -> String {
    loc.attr(name)
        .unwrap()
        .read_scalar::<VarLenUnicode>()
        .unwrap()
        .to_string()
}

fn metric(f: &hdf5::File, key: &str) -> Option<f64> {
    f.dataset(&format!("uns/inmf/metrics/{key}"))
        .ok()
        .map(|d| d.read_scalar::<f64>().unwrap())
}

#[test]
fn analyze_adds_normalized_h_umap_clusters_metrics_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let run = small_run(dir.path());
    let result = run.join("result.h5ad");
    let h: Array2<f64> = hdf5::File::open(&result)
        .unwrap()
        .dataset("obsm/X_inmf")
        .unwrap()
        .read_2d()
        .unwrap();
    let n = h.nrows();
    assert_eq!(h.dim(), (2200, 8));

    let o = inmf(&[
        "analyze",
        run.to_str().unwrap(),
        "--labels",
        "cell_type",
        "--quiet",
    ]);
    assert!(o.status.success(), "analyze failed: {}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    for needle in [
        "ARI",
        "NMI",
        "purity",
        "alignment",
        "kBET acceptance",
        "silhouette",
        "umap_dataset.png",
    ] {
        assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
    }

    let f = hdf5::File::open(&result).unwrap();
    // Normalized H: same shape, finite, non-negative; H itself untouched.
    let hn: Array2<f64> = f.dataset("obsm/X_inmf_norm").unwrap().read_2d().unwrap();
    assert_eq!(hn.dim(), (n, 8));
    assert!(hn.iter().all(|v| v.is_finite() && *v >= 0.0));
    let h2: Array2<f64> = f.dataset("obsm/X_inmf").unwrap().read_2d().unwrap();
    assert_eq!(h, h2);
    // As in rliger, the other datasets are mapped onto the reference's
    // units of H: the reference (batch1, the largest) keeps its values
    // (its 900 cells are all in the quantile samples, so its map is the
    // identity; only degenerate factor sets go to 0), while the others move.
    let dcodes: Vec<i32> = f.dataset("obs/dataset/codes").unwrap().read_raw().unwrap();
    let same = |d: i32| -> (usize, usize) {
        let rows: Vec<usize> = (0..n).filter(|&c| dcodes[c] == d).collect();
        let kept = rows
            .iter()
            .flat_map(|&c| (0..8).map(move |j| (c, j)))
            .filter(|&(c, j)| (hn[[c, j]] - h[[c, j]]).abs() <= 1e-6 * h[[c, j]].abs().max(1.0))
            .count();
        (kept, rows.len() * 8)
    };
    let (kept, all) = same(0);
    assert!(
        kept as f64 >= 0.95 * all as f64,
        "reference: {kept} of {all} values kept"
    );
    let (kept, all) = same(2);
    assert!(
        (kept as f64) < 0.5 * all as f64,
        "batch3: {kept} of {all} values unchanged"
    );
    assert_eq!(
        attr_str(&f.dataset("obsm/X_inmf_norm").unwrap(), "encoding-type"),
        "array"
    );
    let um: Array2<f32> = f.dataset("obsm/X_umap").unwrap().read_2d().unwrap();
    assert_eq!(um.dim(), (n, 2));
    assert!(um.iter().all(|v| v.is_finite()));
    // obs['cluster'] and obs['cell_type'] are categoricals listed in column-order.
    let cl = f.group("obs/cluster").unwrap();
    assert_eq!(attr_str(&cl, "encoding-type"), "categorical");
    let cats = strings(&f, "obs/cluster/categories");
    assert!(cats.len() >= 2, "{cats:?}");
    assert_eq!(cats, (0..cats.len()).map(|c| c.to_string()).collect::<Vec<_>>());
    let codes: Vec<i32> = cl.dataset("codes").unwrap().read_raw().unwrap();
    assert_eq!(codes.len(), n);
    assert!(codes.iter().all(|&c| c >= 0 && (c as usize) < cats.len()));
    let types = strings(&f, "obs/cell_type/categories");
    assert_eq!(types.len(), 5);
    let tcodes: Vec<i32> = f.dataset("obs/cell_type/codes").unwrap().read_raw().unwrap();
    assert_eq!(tcodes.len(), n);
    let order = attr_strings(&f.group("obs").unwrap(), "column-order");
    assert!(
        order.contains(&"cluster".to_string()) && order.contains(&"cell_type".to_string()),
        "{order:?}"
    );
    assert!(order.contains(&"dataset".to_string()));
    // The labels came from the inputs, row by row through obs['cell_index'].
    let input = hdf5::File::open(dir.path().join("data/batch1.h5ad")).unwrap();
    let in_types = strings(&input, "obs/cell_type/categories");
    let in_codes: Vec<i32> = input.dataset("obs/cell_type/codes").unwrap().read_raw().unwrap();
    let cell_index: Vec<i64> = f.dataset("obs/cell_index").unwrap().read_raw().unwrap();
    for c in 0..900 {
        assert_eq!(
            types[tcodes[c] as usize],
            in_types[in_codes[cell_index[c] as usize] as usize]
        );
    }
    // The resolution was chosen from the data, and the evidence recorded.
    let an = f.group("uns/inmf/analysis").unwrap();
    let read_str = |name: &str| {
        an.dataset(name)
            .unwrap()
            .read_scalar::<VarLenUnicode>()
            .unwrap()
            .to_string()
    };
    assert_eq!(read_str("resolution_rule"), "data");
    assert_eq!(read_str("algorithm"), "leiden");
    assert!(read_str("resolution_reason").contains("chosen from the data"));
    let res: Vec<f64> = an.dataset("resolution_candidates").unwrap().read_raw().unwrap();
    let counts: Vec<i64> = an.dataset("candidate_clusters").unwrap().read_raw().unwrap();
    let sils: Vec<f64> = an.dataset("candidate_silhouettes").unwrap().read_raw().unwrap();
    let plateau: Vec<i64> = an.dataset("resolution_plateau").unwrap().read_raw().unwrap();
    assert!(res.len() >= 2 && res.len() == counts.len() && res.len() == sils.len());
    assert_eq!(res[0], 1.0);
    assert!(res.windows(2).all(|w| w[1] < w[0]));
    let (a, b) = (plateau[0] as usize, plateau[1] as usize);
    let chosen: f64 = an.dataset("resolution").unwrap().read_scalar().unwrap();
    assert!(
        (chosen - (res[a] * res[b]).sqrt()).abs() < 1e-12,
        "{chosen} {res:?} {plateau:?}"
    );
    // No other plateau of cluster counts has a higher mean silhouette.
    let score: f64 = an.dataset("resolution_score").unwrap().read_scalar().unwrap();
    let mut i = 0;
    while i < counts.len() {
        let mut j = i;
        while j + 1 < counts.len() && counts[j + 1] == counts[i] {
            j += 1;
        }
        if counts[i] >= 2 {
            let mean = sils[i..=j].iter().sum::<f64>() / (j + 1 - i) as f64;
            assert!(mean <= score + 1e-12, "plateau {i}..{j}: {mean} > {score}");
        }
        i = j + 1;
    }
    let n_clusters: i64 = an.dataset("n_clusters").unwrap().read_scalar().unwrap();
    assert_eq!(n_clusters as usize, cats.len());
    assert!(an.dataset("alignment_k").unwrap().read_scalar::<i64>().unwrap() >= 10);
    let cells: i64 = an.dataset("alignment_cells").unwrap().read_scalar().unwrap();
    assert_eq!(cells as usize, n);
    // Metrics: every key, in range; a small but real integration.
    for key in [
        "ari",
        "nmi",
        "nmi_rliger",
        "purity",
        "alignment",
        "kbet_acceptance",
        "silhouette",
    ] {
        let v = metric(&f, key).unwrap_or_else(|| panic!("uns/inmf/metrics/{key} missing"));
        assert!((-1.0..=1.0).contains(&v), "{key} = {v}");
    }
    assert!(metric(&f, "ari").unwrap() > 0.5, "ARI {:?}", metric(&f, "ari"));
    assert!(
        metric(&f, "alignment").unwrap() > 0.5,
        "alignment {:?}",
        metric(&f, "alignment")
    );
    assert!(metric(&f, "purity").unwrap() > 0.7);
    assert!(metric(&f, "nmi_rliger").unwrap() >= metric(&f, "nmi").unwrap());
    drop(f);
    // Plots, and no temporary file left.
    for p in [
        "umap_dataset",
        "umap_cluster",
        "umap_label",
        "composition",
        "objective",
    ] {
        for ext in ["png", "svg"] {
            let file = run.join("analysis").join(format!("{p}.{ext}"));
            assert!(
                std::fs::metadata(&file).map(|m| m.len() > 1000).unwrap_or(false),
                "{file:?}"
            );
        }
    }
    assert!(files_below(&run)
        .iter()
        .all(|p| !p.file_name().unwrap().to_string_lossy().contains(".tmp")));

    // Python's anndata reads it (what scanpy users do).
    check_with_anndata(&result, n, 8);

    // Again, same seed: identical results (elements replaced, not duplicated);
    // without labels the label-based metrics are absent.
    let o = inmf(&[
        "analyze",
        run.to_str().unwrap(),
        "--quiet",
        "--out",
        dir.path().join("plots2").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "second analyze failed: {}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("n/a"));
    let f = hdf5::File::open(&result).unwrap();
    let um2: Array2<f32> = f.dataset("obsm/X_umap").unwrap().read_2d().unwrap();
    assert_eq!(um, um2);
    let codes2: Vec<i32> = f.dataset("obs/cluster/codes").unwrap().read_raw().unwrap();
    assert_eq!(codes, codes2);
    assert!(metric(&f, "ari").is_none() && metric(&f, "alignment").is_some());
    assert_eq!(
        attr_strings(&f.group("obs").unwrap(), "column-order")
            .iter()
            .filter(|c| *c == "cluster")
            .count(),
        1
    );
    assert!(dir.path().join("plots2/umap_dataset.png").exists());
    assert!(!dir.path().join("plots2/umap_label.png").exists());
    drop(f);
}

fn check_with_anndata(result: &Path, n: usize, k: usize) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check-anndata");
    let o = Command::new(&script)
        .args([
            result.to_str().unwrap(),
            &n.to_string(),
            &k.to_string(),
            "cell_type",
        ])
        .output()
        .expect("scripts/check-anndata runs");
    match o.status.code() {
        Some(0) => eprintln!("{}", String::from_utf8_lossy(&o.stdout)),
        Some(3) => eprintln!(
            "\n*** NOT TESTED: result.h5ad was NOT checked with Python's anndata: {} \
             (scripts/test installs it; run scripts/setup-python) ***\n",
            stderr(&o).trim()
        ),
        _ => panic!(
            "anndata could not read or check {}:\n{}\n{}",
            result.display(),
            String::from_utf8_lossy(&o.stdout),
            stderr(&o)
        ),
    }
}

#[test]
fn analyze_refuses_bad_input_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let o = inmf(&["analyze", dir.path().join("nope").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("result.h5ad"), "{}", stderr(&o));

    let run = small_run(dir.path());
    let o = inmf(&["analyze", run.to_str().unwrap(), "--reference", "batch9"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("batch1"), "{}", stderr(&o));
    let o = inmf(&["analyze", run.to_str().unwrap(), "--labels", "no_such_column"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no_such_column"), "{}", stderr(&o));
    for (args, needle) in [
        (&["--resolution=-1"][..], "positive"),
        (&["--n-clusters", "0"][..], "at least 1"),
        (&["--n-clusters", "100000"][..], "at most 2200"),
        (
            &["--resolution", "0.5", "--n-clusters", "4"][..],
            "cannot be used with",
        ),
        (&["--algorithm", "kmeans"][..], "kmeans"),
    ] {
        let mut a = vec!["analyze", run.to_str().unwrap()];
        a.extend_from_slice(args);
        let o = inmf(&a);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    // Nothing was added by the failed attempts.
    let f = hdf5::File::open(run.join("result.h5ad")).unwrap();
    assert!(f.dataset("obsm/X_umap").is_err());
    assert!(files_below(&run)
        .iter()
        .all(|p| !p.file_name().unwrap().to_string_lossy().contains(".tmp")));
}

/// Reads `obs/cluster/codes` and two analysis keys.
fn clusters_of(result: &Path) -> (Vec<i32>, f64, String) {
    let f = hdf5::File::open(result).unwrap();
    let codes: Vec<i32> = f.dataset("obs/cluster/codes").unwrap().read_raw().unwrap();
    let an = f.group("uns/inmf/analysis").unwrap();
    let res: f64 = an.dataset("resolution").unwrap().read_scalar().unwrap();
    let rule = an
        .dataset("resolution_rule")
        .unwrap()
        .read_scalar::<VarLenUnicode>()
        .unwrap()
        .to_string();
    (codes, res, rule)
}

/// `inmf analyze RUN --quiet --out PLOTS EXTRA…`, which must succeed.
fn analyze_quietly(run: &Path, plots: &Path, extra: &[&str]) -> std::process::Output {
    let mut a = vec![
        "analyze",
        run.to_str().unwrap(),
        "--quiet",
        "--out",
        plots.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    let o = inmf(&a);
    assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
    o
}

#[test]
fn analyze_clusters_are_thread_independent_and_overridable() {
    let dir = tempfile::tempdir().unwrap();
    let run = small_run(dir.path());
    let result = run.join("result.h5ad");
    let plots = dir.path().join("plots");
    let analyze = |extra: &[&str]| {
        let o = analyze_quietly(&run, &plots, extra);
        (
            clusters_of(&result),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    for algorithm in ["leiden", "louvain"] {
        // The same seed gives the same clusters on 1 and 2 threads.
        let ((one, r1, rule), out) = analyze(&["--algorithm", algorithm, "--threads", "1"]);
        let ((two, r2, _), _) = analyze(&["--algorithm", algorithm, "--threads", "2"]);
        assert_eq!(rule, "data");
        assert!(out.contains("chosen from the data"), "{out}");
        assert!(
            one == two && r1 == r2,
            "{algorithm}: clusters differ between 1 and 2 threads"
        );
        // --resolution at the chosen resolution gives the same clusters.
        let ((given, r, rule), _) = analyze(&["--algorithm", algorithm, "--resolution", &r1.to_string()]);
        assert_eq!((rule.as_str(), r), ("given", r1));
        assert_eq!(
            given, one,
            "{algorithm}: --resolution {r1} differs from the default"
        );
    }
    // --n-clusters finds a resolution with that many clusters.
    let ((codes, _, rule), out) = analyze(&["--n-clusters", "3", "--algorithm", "louvain"]);
    assert_eq!(rule, "n_clusters");
    assert_eq!(codes.iter().max(), Some(&2), "{out}");
    assert!(out.contains("gives the requested 3 clusters"), "{out}");
    let f = hdf5::File::open(&result).unwrap();
    let an = f.group("uns/inmf/analysis").unwrap();
    assert!(an
        .dataset("n_clusters_exact")
        .unwrap()
        .read_scalar::<bool>()
        .unwrap());
    let tried: Vec<i64> = an.dataset("clusters_tried").unwrap().read_raw().unwrap();
    assert_eq!(tried.last(), Some(&3));
}

#[test]
fn analyze_fits_umap_on_a_subsample_above_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let run = small_run(dir.path());
    let result = run.join("result.h5ad");
    let plots = dir.path().join("plots");
    let layout = |extra: &[&str]| -> (Array2<f32>, Option<i64>) {
        analyze_quietly(&run, &plots, extra);
        let f = hdf5::File::open(&result).unwrap();
        let umap = f.dataset("obsm/X_umap").unwrap().read_2d::<f32>().unwrap();
        let fit = f
            .dataset("uns/inmf/analysis/umap_fit_cells")
            .ok()
            .map(|d| d.read_scalar::<i64>().unwrap());
        (umap, fit)
    };
    // 2,200 cells: the default cap fits every cell; a cap of 500 fits 500.
    let (all, none) = layout(&[]);
    assert_eq!(none, None);
    let (one, fit) = layout(&["--umap-fit-cells", "500", "--threads", "1"]);
    let (two, _) = layout(&["--umap-fit-cells", "500", "--threads", "2"]);
    assert_eq!(fit, Some(500));
    assert_eq!(one.dim(), (2200, 2));
    assert!(one.iter().all(|v| v.is_finite()));
    assert!(
        one == two,
        "the subsampled layout differs between 1 and 2 threads"
    );
    assert!(one != all);
    // A cap at or above the cell count is the layout of every cell.
    let (same, none) = layout(&["--umap-fit-cells", "2200"]);
    assert!(same == all && none.is_none());
}
