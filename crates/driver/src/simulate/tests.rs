//! Tests of the simulator: parameters, determinism, thread independence,
//! missing types, library sizes, the batch × type interaction, formats.

use std::path::Path;

use hdf5::types::{FixedAscii, VarLenUnicode};

use super::*;
use crate::DriverError;

fn small() -> SimulationParams {
    SimulationParams {
        datasets: 2,
        cells: vec![300, 200],
        genes: 150,
        cell_types: 4,
        chunk_cells: 64,
        ..SimulationParams::default()
    }
}

/// CSR X of an .h5ad: (indptr, indices, data).
fn read_x(path: &Path) -> (Vec<i64>, Vec<i32>, Vec<f32>) {
    let f = hdf5::File::open(path).unwrap();
    let x = f.group("X").unwrap();
    (
        x.dataset("indptr").unwrap().read_raw().unwrap(),
        x.dataset("indices").unwrap().read_raw().unwrap(),
        x.dataset("data").unwrap().read_raw().unwrap(),
    )
}

fn read_codes(path: &Path, column: &str) -> Vec<i8> {
    let f = hdf5::File::open(path).unwrap();
    f.dataset(&format!("obs/{column}/codes"))
        .unwrap()
        .read_raw()
        .unwrap()
}

fn read_names(path: &Path) -> Vec<String> {
    let f = hdf5::File::open(path).unwrap();
    let v: Vec<VarLenUnicode> = f.dataset("obs/_index").unwrap().read_raw().unwrap();
    v.iter().map(|s| s.as_str().to_string()).collect()
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn err(p: SimulationParams) -> String {
    match p.check() {
        Ok(_) => panic!("expected an error"),
        Err(DriverError::InvalidParameter(m)) => m,
        Err(e) => panic!("unexpected error kind {e}"),
    }
}

#[test]
fn defaults_are_the_documented_ones() {
    let p = SimulationParams::default();
    assert_eq!(
        (p.datasets, p.cells.clone(), p.genes, p.cell_types),
        (3, vec![10_000], 2_000, 8)
    );
    assert_eq!(
        (
            p.batch_effect,
            p.batch_factor_sigma,
            p.interaction_prob,
            p.interaction_sigma
        ),
        (1.0, 0.1, 0.2, 0.5)
    );
    assert_eq!(
        (p.de_prob, p.de_down_prob, p.de_loc, p.de_scale),
        (0.1, 0.5, 1.0, 0.8)
    );
    assert_eq!(
        (
            p.mean_shape,
            p.mean_rate,
            p.outlier_prob,
            p.outlier_loc,
            p.outlier_scale
        ),
        (0.12, 0.3, 0.05, 4.0, 0.5)
    );
    assert_eq!((p.lib_locs.clone(), p.lib_scale), (vec![8.0, 8.3, 8.6], 0.4));
    assert_eq!(
        (p.bcv_common, p.bcv_gene_sd, p.bcv_trend, p.bcv_df),
        (0.3, 0.5, 0.0, 60.0)
    );
    assert_eq!(
        (p.seed, p.format, p.compression, p.chunk_cells),
        (1, OutputFormat::H5ad, Compression::Gzip(4), 10_000)
    );
    assert!(p.type_proportions.is_none() && p.missing_types.is_empty());
    assert_eq!(p.cells_per_dataset(), vec![10_000; 3]);
    p.check().unwrap();
}

#[test]
fn splatter_differs_in_means_dispersion_de_and_library_sizes_only() {
    let s = SimulationParams::splatter();
    assert_eq!(
        (
            s.mean_shape,
            s.de_loc,
            s.de_scale,
            s.lib_locs.clone(),
            s.lib_scale
        ),
        (0.6, 0.8, 0.4, vec![7.6, 8.0, 8.4], 0.3)
    );
    assert_eq!((s.bcv_common, s.bcv_gene_sd, s.bcv_trend), (0.1, 0.0, 1.0));
    let back_to_default = SimulationParams {
        mean_shape: 0.12,
        de_loc: 1.0,
        de_scale: 0.8,
        lib_locs: vec![8.0, 8.3, 8.6],
        lib_scale: 0.4,
        bcv_common: 0.3,
        bcv_gene_sd: 0.5,
        bcv_trend: 0.0,
        ..s
    };
    assert_eq!(back_to_default, SimulationParams::default());
}

#[test]
fn every_validation_rule_names_its_parameter() {
    let d = SimulationParams::default;
    let cases: Vec<(SimulationParams, &str)> = vec![
        (SimulationParams { datasets: 0, ..d() }, "datasets = 0"),
        (SimulationParams { genes: 0, ..d() }, "genes = 0"),
        (SimulationParams { cell_types: 0, ..d() }, "cell_types = 0"),
        (
            SimulationParams {
                cells: vec![1, 2],
                ..d()
            },
            "cells has 2 values for 3 datasets",
        ),
        (
            SimulationParams {
                cells: vec![0],
                ..d()
            },
            "cells = 0",
        ),
        (
            SimulationParams {
                batch_effect: -1.0,
                ..d()
            },
            "batch_effect = -1",
        ),
        (
            SimulationParams {
                batch_effect: f64::NAN,
                ..d()
            },
            "batch_effect = NaN",
        ),
        (
            SimulationParams {
                batch_factor_sigma: -0.1,
                ..d()
            },
            "batch_factor_sigma",
        ),
        (
            SimulationParams {
                interaction_prob: 1.5,
                ..d()
            },
            "interaction_prob = 1.5 must be between 0 and 1",
        ),
        (
            SimulationParams {
                interaction_sigma: f64::INFINITY,
                ..d()
            },
            "interaction_sigma",
        ),
        (SimulationParams { de_prob: -0.1, ..d() }, "de_prob"),
        (
            SimulationParams {
                de_down_prob: 2.0,
                ..d()
            },
            "de_down_prob",
        ),
        (
            SimulationParams {
                de_loc: f64::NAN,
                ..d()
            },
            "de_loc",
        ),
        (
            SimulationParams {
                de_scale: -1.0,
                ..d()
            },
            "de_scale",
        ),
        (
            SimulationParams {
                mean_shape: 0.0,
                ..d()
            },
            "mean_shape = 0 must be a finite number > 0",
        ),
        (
            SimulationParams {
                mean_rate: -1.0,
                ..d()
            },
            "mean_rate",
        ),
        (
            SimulationParams {
                outlier_prob: 2.0,
                ..d()
            },
            "outlier_prob",
        ),
        (
            SimulationParams {
                outlier_loc: f64::NAN,
                ..d()
            },
            "outlier_loc",
        ),
        (
            SimulationParams {
                outlier_scale: -1.0,
                ..d()
            },
            "outlier_scale",
        ),
        (
            SimulationParams {
                lib_locs: vec![],
                ..d()
            },
            "lib_locs is empty",
        ),
        (
            SimulationParams {
                lib_locs: vec![8.0, f64::NAN],
                ..d()
            },
            "lib_locs entry",
        ),
        (
            SimulationParams {
                lib_scale: -0.3,
                ..d()
            },
            "lib_scale",
        ),
        (
            SimulationParams {
                bcv_common: -0.1,
                ..d()
            },
            "bcv_common",
        ),
        (
            SimulationParams {
                bcv_gene_sd: -0.5,
                ..d()
            },
            "bcv_gene_sd = -0.5",
        ),
        (
            SimulationParams {
                bcv_trend: f64::NAN,
                ..d()
            },
            "bcv_trend = NaN",
        ),
        (SimulationParams { bcv_df: 0.0, ..d() }, "bcv_df"),
        (
            SimulationParams {
                seed: u64::MAX,
                ..d()
            },
            "seed = ",
        ),
        (
            SimulationParams {
                chunk_cells: 0,
                ..d()
            },
            "chunk_cells = 0",
        ),
        (
            SimulationParams {
                compression: Compression::Gzip(12),
                ..d()
            },
            "gzip level 12",
        ),
        (
            SimulationParams {
                type_proportions: Some(vec![1.0; 3]),
                ..d()
            },
            "type_proportions has 3 values for 8",
        ),
        (
            SimulationParams {
                type_proportions: Some(vec![-1.0; 8]),
                ..d()
            },
            "type_proportions entry = -1",
        ),
        (
            SimulationParams {
                missing_types: vec![(4, 1)],
                ..d()
            },
            "missing type (4, 1) is out of range",
        ),
        (
            SimulationParams {
                missing_types: vec![(1, 0)],
                ..d()
            },
            "missing type (1, 0)",
        ),
        (
            SimulationParams {
                cell_types: 2,
                missing_types: vec![(2, 1), (2, 2)],
                ..d()
            },
            "dataset 2 has no cell type left",
        ),
        (
            SimulationParams {
                type_proportions: Some(vec![0.0, 1.0]),
                cell_types: 2,
                missing_types: vec![(1, 2)],
                ..d()
            },
            "dataset 1 has no cell type left",
        ),
    ];
    for (p, want) in cases {
        let m = err(p);
        assert!(m.contains(want), "{m:?} should contain {want:?}");
        assert!(m.starts_with("simulation: "), "{m}");
    }
}

#[test]
fn params_read_from_toml() {
    let p: SimulationParams =
        toml::from_str("cells = 5000\ngenes = 100\nformat = \"10x\"\ncompression = \"none\"").unwrap();
    assert_eq!(
        (p.cells.clone(), p.genes, p.format, p.compression),
        (vec![5000], 100, OutputFormat::TenX, Compression::None)
    );
    assert_eq!(p.datasets, 3);
    let p: SimulationParams = toml::from_str(
        "datasets = 2\ncells = [10, 20]\nmissing_types = [[1, 2]]\ncompression = { gzip = 1 }",
    )
    .unwrap();
    assert_eq!(
        (p.cells.clone(), p.missing_types.clone(), p.compression),
        (vec![10, 20], vec![(1, 2)], Compression::Gzip(1))
    );
    assert!(toml::from_str::<SimulationParams>("cels = 5").is_err());
}

#[test]
fn writes_what_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let p = small();
    let s = p.clone().check().unwrap().run(dir.path()).unwrap();
    assert_eq!(s.datasets.len(), 2);
    assert_eq!(s.params_file, dir.path().join("simulation.toml"));
    let back: SimulationParams = toml::from_str(&std::fs::read_to_string(&s.params_file).unwrap()).unwrap();
    assert_eq!(back, p);
    for (b, d) in s.datasets.iter().enumerate() {
        let name = format!("batch{}", b + 1);
        assert_eq!(d.name, name);
        assert_eq!(d.path, dir.path().join(format!("{name}.h5ad")));
        assert!(d.labels.is_none());
        assert_eq!(d.cells, p.cells[b]);
        assert_eq!(d.type_counts.iter().sum::<usize>(), d.cells);
        let (indptr, indices, data) = read_x(&d.path);
        assert_eq!(indptr.len(), d.cells + 1);
        assert_eq!(*indptr.last().unwrap() as u64, d.nnz);
        assert_eq!(data.iter().map(|&v| v as u64).sum::<u64>(), d.total_counts);
        assert!(data.iter().all(|&v| v >= 1.0 && v.fract() == 0.0));
        assert!(indices.iter().all(|&g| (0..150).contains(&g)));
        let names = read_names(&d.path);
        assert_eq!(names[0], format!("{name}_cell1"));
        assert_eq!(names[d.cells - 1], format!("{name}_cell{}", d.cells));
        let codes = read_codes(&d.path, "cell_type");
        for t in 0..4 {
            assert_eq!(
                codes.iter().filter(|&&c| c as usize == t).count(),
                d.type_counts[t]
            );
        }
        assert!(read_codes(&d.path, "dataset").iter().all(|&c| c as usize == b));
        let f = hdf5::File::open(&d.path).unwrap();
        let genes: Vec<VarLenUnicode> = f.dataset("var/_index").unwrap().read_raw().unwrap();
        assert_eq!((genes[0].as_str(), genes[149].as_str()), ("gene1", "gene150"));
        assert_eq!(
            f.dataset("uns/simulation/seed")
                .unwrap()
                .read_scalar::<i64>()
                .unwrap(),
            1
        );
    }
    let names: Vec<String> = files(dir.path()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["batch1.h5ad", "batch2.h5ad", "simulation.toml"]);
}

#[test]
fn same_seed_same_bytes_other_seed_other_counts() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    small().check().unwrap().run(a.path()).unwrap();
    // Different chunking of cells must not matter either.
    SimulationParams {
        chunk_cells: 7,
        ..small()
    }
    .check()
    .unwrap()
    .run(b.path())
    .unwrap();
    let fa = files(a.path());
    let fb = files(b.path());
    for ((na, da), (nb, db)) in fa.iter().zip(&fb) {
        assert_eq!(na, nb);
        if na != "simulation.toml" {
            assert!(da == db, "{na} differs");
        }
    }
    SimulationParams { seed: 2, ..small() }
        .check()
        .unwrap()
        .run(c.path())
        .unwrap();
    assert_ne!(
        read_x(&a.path().join("batch1.h5ad")),
        read_x(&c.path().join("batch1.h5ad"))
    );
}

#[test]
fn one_or_two_threads_same_bytes() {
    let run = |threads: usize| {
        let dir = tempfile::tempdir().unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| small().check().unwrap().run(dir.path())).unwrap();
        files(dir.path())
    };
    assert!(run(1) == run(2));
}

#[test]
fn missing_types_are_absent() {
    let dir = tempfile::tempdir().unwrap();
    let p = SimulationParams {
        missing_types: vec![(1, 2), (2, 1), (2, 4)],
        ..small()
    };
    let s = p.check().unwrap().run(dir.path()).unwrap();
    assert_eq!(s.datasets[0].type_counts[1], 0);
    assert!(s.datasets[0]
        .type_counts
        .iter()
        .enumerate()
        .all(|(t, &n)| t == 1 || n > 30));
    assert_eq!(
        (s.datasets[1].type_counts[0], s.datasets[1].type_counts[3]),
        (0, 0)
    );
    assert!(!read_codes(&s.datasets[0].path, "cell_type").contains(&1));
    let codes = read_codes(&s.datasets[1].path, "cell_type");
    assert!(!codes.contains(&0) && !codes.contains(&3));
    // All four categories are still declared.
    let f = hdf5::File::open(&s.datasets[1].path).unwrap();
    let cats: Vec<VarLenUnicode> = f.dataset("obs/cell_type/categories").unwrap().read_raw().unwrap();
    assert_eq!(
        cats.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        ["type1", "type2", "type3", "type4"]
    );
}

#[test]
fn proportions_are_respected() {
    let dir = tempfile::tempdir().unwrap();
    let p = SimulationParams {
        datasets: 1,
        cells: vec![4000],
        genes: 20,
        cell_types: 3,
        type_proportions: Some(vec![1.0, 2.0, 5.0]),
        ..SimulationParams::default()
    };
    let s = p.check().unwrap().run(dir.path()).unwrap();
    let n = &s.datasets[0].type_counts;
    for (t, want) in [(0, 0.125), (1, 0.25), (2, 0.625)] {
        let got = n[t] as f64 / 4000.0;
        let sd = (want * (1.0 - want) / 4000.0f64).sqrt();
        assert!((got - want).abs() < 5.0 * sd, "type {t}: {got} vs {want}");
    }
}

/// Per-cell log total counts: mean ≈ the batch's location (the sum of
/// the means is L_c exactly, the count noise adds little), sd ≈ 0.4.
#[test]
fn library_sizes_follow_their_batch() {
    let dir = tempfile::tempdir().unwrap();
    let p = SimulationParams {
        datasets: 3,
        cells: vec![2000],
        genes: 500,
        compression: Compression::None,
        ..small()
    };
    let s = p.check().unwrap().run(dir.path()).unwrap();
    for (d, loc) in s.datasets.iter().zip([8.0, 8.3, 8.6]) {
        let (indptr, _, data) = read_x(&d.path);
        let logs: Vec<f64> = indptr
            .windows(2)
            .map(|w| {
                data[w[0] as usize..w[1] as usize]
                    .iter()
                    .map(|&v| v as f64)
                    .sum::<f64>()
                    .ln()
            })
            .collect();
        let mean = logs.iter().sum::<f64>() / logs.len() as f64;
        let sd = (logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (logs.len() - 1) as f64).sqrt();
        assert!(
            (mean - loc).abs() < 0.03,
            "{}: mean log library size {mean} vs {loc}",
            d.name
        );
        assert!((sd - 0.4).abs() < 0.04, "{}: sd {sd}", d.name);
    }
}

/// log of the per-gene mean (library-size normalized) of each type in a file.
fn type_means(path: &Path, types: usize, genes: usize) -> Vec<Vec<f64>> {
    let (indptr, indices, data) = read_x(path);
    let codes = read_codes(path, "cell_type");
    let mut sums = vec![vec![0.0; genes]; types];
    let mut n = vec![0usize; types];
    for (c, w) in indptr.windows(2).enumerate() {
        let t = codes[c] as usize;
        let (a, b) = (w[0] as usize, w[1] as usize);
        let total: f64 = data[a..b].iter().map(|&v| v as f64).sum();
        for k in a..b {
            sums[t][indices[k] as usize] += data[k] as f64 / total;
        }
        n[t] += 1;
    }
    sums.iter()
        .zip(&n)
        .map(|(s, &n)| s.iter().map(|x| x / n as f64).collect())
        .collect()
}

/// Variance over well-expressed genes of the difference between the log
/// batch1/batch2 ratios of type 1 and of type 2: the batch × type
/// interaction makes the batch ratio depend on the type; a per-gene batch
/// factor alone would cancel.
fn interaction_variance(batch_effect: f64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let (genes, types) = (300, 2);
    let p = SimulationParams {
        datasets: 2,
        cells: vec![1500],
        genes,
        cell_types: types,
        batch_effect,
        compression: Compression::None,
        ..SimulationParams::default()
    };
    let s = p.check().unwrap().run(dir.path()).unwrap();
    let m1 = type_means(&s.datasets[0].path, types, genes);
    let m2 = type_means(&s.datasets[1].path, types, genes);
    let d: Vec<f64> = (0..genes)
        .filter(|&g| (0..types).all(|t| m1[t][g] > 5e-4 && m2[t][g] > 5e-4))
        .map(|g| (m1[0][g] / m2[0][g]).ln() - (m1[1][g] / m2[1][g]).ln())
        .collect();
    assert!(d.len() > 20, "too few expressed genes: {}", d.len());
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (d.len() - 1) as f64
}

#[test]
fn batch_by_type_interaction_exists() {
    let with = interaction_variance(1.0);
    let without = interaction_variance(0.0);
    assert!(with > 0.05, "variance with batch effects {with}");
    assert!(with > 10.0 * without, "with {with} vs without {without}");
}

#[test]
fn tenx_has_the_same_cells() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    small().check().unwrap().run(a.path()).unwrap();
    let s = SimulationParams {
        format: OutputFormat::TenX,
        ..small()
    }
    .check()
    .unwrap()
    .run(b.path())
    .unwrap();
    for d in &s.datasets {
        assert_eq!(d.path, b.path().join(format!("{}.h5", d.name)));
        let f = hdf5::File::open(&d.path).unwrap();
        let m = f.group("matrix").unwrap();
        let data: Vec<i32> = m.dataset("data").unwrap().read_raw().unwrap();
        let indices: Vec<i64> = m.dataset("indices").unwrap().read_raw().unwrap();
        let indptr: Vec<i64> = m.dataset("indptr").unwrap().read_raw().unwrap();
        let shape: Vec<i32> = m.dataset("shape").unwrap().read_raw().unwrap();
        assert_eq!(shape, [150, d.cells as i32]);
        let (p2, i2, d2) = read_x(&a.path().join(format!("{}.h5ad", d.name)));
        assert_eq!(indptr, p2);
        assert_eq!(indices, i2.iter().map(|&v| v as i64).collect::<Vec<_>>());
        assert_eq!(data, d2.iter().map(|&v| v as i32).collect::<Vec<_>>());
        let barcodes: Vec<FixedAscii<64>> = m.dataset("barcodes").unwrap().read_raw().unwrap();
        let names = read_names(&a.path().join(format!("{}.h5ad", d.name)));
        assert_eq!(
            barcodes
                .iter()
                .map(|b| b.as_str().to_string())
                .collect::<Vec<_>>(),
            names
        );
        let labels = std::fs::read_to_string(d.labels.as_ref().unwrap()).unwrap();
        let lines: Vec<&str> = labels.lines().collect();
        assert_eq!(lines[0], "barcode\tcell_type");
        assert_eq!(lines.len(), d.cells + 1);
        let codes = read_codes(&a.path().join(format!("{}.h5ad", d.name)), "cell_type");
        for (c, line) in lines[1..].iter().enumerate() {
            assert_eq!(*line, format!("{}\ttype{}", names[c], codes[c] + 1));
        }
    }
    let names: Vec<String> = files(b.path()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "batch1.h5",
            "batch1_labels.tsv",
            "batch2.h5",
            "batch2_labels.tsv",
            "simulation.toml"
        ]
    );
}

#[test]
fn unwritable_output_is_an_error_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let e = small().check().unwrap().run(&file).unwrap_err();
    assert!(matches!(e, DriverError::UnsafeOutput { .. }), "{e}");
    assert!(e.to_string().contains("a-file"), "{e}");
    // A dataset that cannot be created (its name is taken by a directory).
    std::fs::create_dir(dir.path().join("out")).unwrap();
    std::fs::create_dir(dir.path().join("out/batch2.h5ad")).unwrap();
    let e = small().check().unwrap().run(&dir.path().join("out")).unwrap_err();
    assert!(e.to_string().contains("batch2.h5ad"), "{e}");
    let left: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.iter().all(|n| !n.contains(".tmp-")), "{left:?}");
}

/// What 10x data look like, measured on one simulated dataset: the share
/// of genes rliger's selectGenes keeps (through the reader's own
/// preprocessing), non-zeros per cell, genes never detected, and the share
/// of non-zero counts equal to 1.
struct Shape {
    selected_share: f64,
    nnz_per_cell: f64,
    undetected_share: f64,
    ones_share: f64,
}

fn shape_of(path: &Path, genes: usize) -> Shape {
    let (indptr, indices, data) = read_x(path);
    let cells = indptr.len() - 1;
    let mut detected = vec![false; genes];
    indices.iter().for_each(|&g| detected[g as usize] = true);
    let dataset = inmf_reader::open(path, &crate::OpenOptions::default()).unwrap();
    let params = inmf_reader::PreprocessParams::default().check().unwrap();
    let source = inmf_reader::Hdf5Source::preprocess(vec![dataset], &params).unwrap();
    let selected = source.report().datasets[0].genes_selected.unwrap();
    Shape {
        selected_share: selected as f64 / genes as f64,
        nnz_per_cell: data.len() as f64 / cells as f64,
        undetected_share: detected.iter().filter(|&&d| !d).count() as f64 / genes as f64,
        ones_share: data.iter().filter(|&&v| v == 1.0).count() as f64 / data.len() as f64,
    }
}

/// One dataset of 2,000 cells × 30,000 genes at the middle default library
/// location (8.3, as 10x PBMC 4k: 2,170 cells × 33,694 genes, log library
/// size mean 8.28).
fn shape_at_30k_genes(p: SimulationParams) -> Shape {
    let dir = tempfile::tempdir().unwrap();
    let genes = 30_000;
    let p = SimulationParams {
        datasets: 1,
        cells: vec![2_000],
        genes,
        lib_locs: vec![8.3],
        compression: Compression::None,
        ..p
    };
    let s = p.check().unwrap().run(dir.path()).unwrap();
    shape_of(&s.datasets[0].path, genes)
}

/// docs/algorithms.md §11: the defaults reproduce 10x PBMC 4k, which keeps
/// 2.6 % of its genes in selectGenes, has 1,321 non-zeros per cell, 45.5 %
/// of genes never detected and 69.5 % of non-zero counts equal to 1.
/// Splatter's dispersion trend (BCV = 0.1 + 1/√m) fails the selection by
/// far: every gene is over-dispersed, so selection keeps most of them.
#[test]
fn defaults_look_like_10x_data_at_30k_genes() {
    let s = shape_at_30k_genes(SimulationParams::default());
    assert!(
        (0.015..0.04).contains(&s.selected_share),
        "selected {}",
        s.selected_share
    );
    assert!(
        (900.0..1_600.0).contains(&s.nnz_per_cell),
        "non-zeros per cell {}",
        s.nnz_per_cell
    );
    assert!(
        (0.35..0.55).contains(&s.undetected_share),
        "undetected {}",
        s.undetected_share
    );
    assert!((0.6..0.75).contains(&s.ones_share), "ones {}", s.ones_share);
    let splatter = shape_at_30k_genes(SimulationParams::splatter());
    assert!(
        splatter.selected_share > 0.2,
        "Splatter's trend: selected {}",
        splatter.selected_share
    );
}
