//! Crate-level tests over fixture files: formats × storage types, chunk-size
//! invariance, preprocessing against a dense reference, dropped cells, each
//! bad input's error, read-only access, and the reader thread.

// Plans are vectors of runs; a one-run vector is what we mean.
#![allow(clippy::single_range_in_vec_init)]

pub(crate) mod fixtures;
mod inputs;
mod malformed;

use std::ops::Range;
use std::path::{Path, PathBuf};

use inmf_learner::{CellSource, Cols, CsrMatrix, InMemorySource};
use proptest::prelude::*;
use tempfile::TempDir;

use crate::preprocess::normal_quantile::normal_upper_quantile;
use crate::*;
use fixtures::Rng;
use fixtures::*;

// ---------------------------------------------------------------- helpers

/// 7 cells × 5 genes, with an all-zero cell (3) and a cell with one value.
fn small() -> Vec<Vec<f64>> {
    vec![
        vec![1., 0., 3., 0., 0.],
        vec![0., 0., 0., 2., 0.],
        vec![5., 6., 0., 0., 7.],
        vec![0., 0., 0., 0., 0.],
        vec![0., 9., 0., 0., 0.],
        vec![4., 0., 0., 1., 8.],
        vec![2., 2., 2., 2., 2.],
    ]
}

fn dense_of(m: &CsrMatrix) -> Vec<Vec<f64>> {
    m.to_dense().outer_iter().map(|r| r.to_vec()).collect()
}

fn tmp() -> TempDir {
    tempfile::tempdir().unwrap()
}

fn h5ad(dir: &TempDir, name: &str, rows: &[Vec<f64>], genes: &[String], o: &Opts) -> PathBuf {
    let p = dir.path().join(name);
    let cells = names("cell", rows.len());
    write_h5ad(
        &p,
        &RawCsr::from_dense(rows),
        genes,
        &cells,
        o,
        Enc::Csr,
        &H5adExtras::default(),
    );
    p
}

fn open_default(p: &Path) -> Result<Dataset, ReaderError> {
    open(p, &OpenOptions::default())
}

fn read_all(ds: &Dataset) -> Vec<Vec<f64>> {
    dense_of(&ds.read_cells(0..ds.n_cells()).unwrap())
}

fn checked(p: PreprocessParams) -> CheckedPreprocessParams {
    p.check().unwrap()
}

// ------------------------------------------------- formats and data types

#[test]
fn every_format_and_storage_type_reads_the_same_matrix() {
    let dir = tmp();
    let rows = small();
    let m = RawCsr::from_dense(&rows);
    let genes = names("g", 5);
    let cells = names("c", 7);
    let data_types = [
        uint(1),
        uint(2),
        uint(4),
        uint(8),
        int(1),
        int(2),
        int(4),
        int(8),
        float(4),
        float(8),
    ];
    let index_types = [int(4), int(8), uint(2), uint(4), uint(8), int(2)];
    let ptr_types = [int(4), int(8), uint(4), uint(8)];
    let str_kinds = [Str::VarUnicode, Str::FixedAscii, Str::VarAscii, Str::FixedUnicode];
    for (i, dt) in data_types.iter().enumerate() {
        let o = Opts {
            data: dt.clone(),
            indices: index_types[i % index_types.len()].clone(),
            indptr: ptr_types[i % ptr_types.len()].clone(),
            strings: str_kinds[i % str_kinds.len()],
            ..Opts::default()
        };
        let tag = format!("{i}-{dt}");
        // .h5ad X, old h5sparse X, raw/X, layers/counts
        let p = dir.path().join(format!("a{i}.h5ad"));
        let extras = H5adExtras {
            raw: true,
            layer: Some("counts".into()),
            ..Default::default()
        };
        write_h5ad(&p, &m, &genes, &cells, &o, Enc::Csr, &extras);
        for loc in [
            MatrixLocation::X,
            MatrixLocation::Raw,
            MatrixLocation::Layer("counts".into()),
        ] {
            let ds = open(
                &p,
                &OpenOptions {
                    matrix: loc.clone(),
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(ds.format(), Format::AnnData);
            assert_eq!(read_all(&ds), rows, "{tag} {loc:?}");
            assert_eq!(ds.gene_names(), genes.as_slice(), "{tag}");
            assert_eq!(ds.cell_names(0..7).unwrap(), cells, "{tag}");
        }
        let p = dir.path().join(format!("old{i}.h5ad"));
        write_h5ad(&p, &m, &genes, &cells, &o, Enc::OldCsr, &H5adExtras::default());
        assert_eq!(read_all(&open_default(&p).unwrap()), rows, "{tag} old");

        // 10x v3 and v2
        let p = dir.path().join(format!("t{i}.h5"));
        let ids = names("ENSG", 5);
        let types = vec!["Gene Expression".to_string(); 5];
        write_10x_v3(&p, &m, &genes, &ids, &types, &cells, &o);
        let ds = open_default(&p).unwrap();
        assert_eq!(ds.format(), Format::TenXV3);
        assert_eq!(read_all(&ds), rows, "{tag} 10x");
        assert_eq!(ds.gene_ids().unwrap(), ids.as_slice());
        assert_eq!(ds.cell_names(2..4).unwrap(), cells[2..4].to_vec());
        let p = dir.path().join(format!("v2_{i}.h5"));
        write_10x_v2(&p, &m, &genes, &ids, &cells, &o);
        let ds = open_default(&p).unwrap();
        assert_eq!(ds.format(), Format::TenXV2);
        assert_eq!(read_all(&ds), rows, "{tag} 10x v2");
        assert_eq!(ds.gene_names(), genes.as_slice());
    }
}

#[test]
fn tenx_feature_type_filter() {
    let dir = tmp();
    let rows = small();
    let genes = names("g", 5);
    let ids = names("id", 5);
    let ge = "Gene Expression".to_string();
    let ab = "Antibody Capture".to_string();
    let types = vec![ge.clone(), ab.clone(), ge.clone(), ab.clone(), ge.clone()];
    let p = dir.path().join("f.h5");
    write_10x_v3(
        &p,
        &RawCsr::from_dense(&rows),
        &genes,
        &ids,
        &types,
        &names("c", 7),
        &Opts::default(),
    );
    let ds = open_default(&p).unwrap();
    assert_eq!(ds.gene_names(), &["g0", "g2", "g4"]);
    assert_eq!(ds.gene_ids().unwrap(), &["id0", "id2", "id4"]);
    let want: Vec<Vec<f64>> = rows.iter().map(|r| vec![r[0], r[2], r[4]]).collect();
    assert_eq!(read_all(&ds), want);
    let all = open(
        &p,
        &OpenOptions {
            feature_type: None,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(read_all(&all), rows);
    let err = open(
        &p,
        &OpenOptions {
            feature_type: Some("Peaks".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, ReaderError::NoFeatures { ref found, .. } if found.len() == 2),
        "{err}"
    );
}

#[test]
fn unsorted_and_repeated_indices_are_canonicalized() {
    let dir = tmp();
    let m = RawCsr {
        n_rows: 2,
        n_cols: 4,
        indptr: vec![0, 3, 5],
        indices: vec![3, 1, 3, 2, 0],
        data: vec![1., 2., 4., 5., 6.],
    };
    let p = dir.path().join("u.h5ad");
    write_h5ad(
        &p,
        &m,
        &names("g", 4),
        &names("c", 2),
        &Opts::default(),
        Enc::Csr,
        &Default::default(),
    );
    let x = open_default(&p).unwrap().read_cells(0..2).unwrap();
    assert_eq!(x.row(0), (Cols::Wide(&[1, 3]), &[2f32, 5.][..]));
    assert_eq!(x.row(1), (Cols::Wide(&[0, 2]), &[6f32, 5.][..]));
}

#[test]
fn duplicate_gene_names_are_made_unique() {
    let dir = tmp();
    let genes: Vec<String> = ["A", "B", "A", "A-1", "A"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let p = h5ad(&dir, "d.h5ad", &small(), &genes, &Opts::default());
    let ds = open_default(&p).unwrap();
    assert_eq!(ds.gene_names(), &["A", "B", "A-2", "A-1", "A-3"]);
    assert_eq!(ds.duplicate_genes_renamed(), 2);
}

#[test]
fn utf8_names_survive_every_string_storage() {
    let dir = tmp();
    let genes: Vec<String> = ["Gène-α", "β2m", "plain", "日本", "x"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let cells: Vec<String> = (0..7).map(|i| format!("zelle-ä{i}")).collect();
    for kind in [Str::VarUnicode, Str::FixedUnicode] {
        let p = dir.path().join(format!("{kind:?}.h5ad"));
        let o = Opts {
            strings: kind,
            ..Opts::default()
        };
        write_h5ad(
            &p,
            &RawCsr::from_dense(&small()),
            &genes,
            &cells,
            &o,
            Enc::Csr,
            &Default::default(),
        );
        let ds = open_default(&p).unwrap();
        assert_eq!(ds.gene_names(), genes.as_slice(), "{kind:?}");
        assert_eq!(ds.cell_names(0..7).unwrap(), cells, "{kind:?}");
    }
}

// ------------------------------------------------------ chunk invariance

fn write_chunked(dir: &Path, name: &str, rows: &[Vec<f64>], chunk: Option<usize>, deflate: bool) -> PathBuf {
    let p = dir.join(name);
    let o = Opts {
        chunk,
        deflate,
        ..Opts::default()
    };
    write_h5ad(
        &p,
        &RawCsr::from_dense(rows),
        &names("g", rows[0].len()),
        &names("c", rows.len()),
        &o,
        Enc::Csr,
        &Default::default(),
    );
    p
}

fn random_rows(rng: &mut Rng, n: usize, g: usize, density: f64) -> Vec<Vec<f64>> {
    (0..n)
        .map(|_| {
            (0..g)
                .map(|_| {
                    if rng.uniform() < density {
                        1.0 + (rng.next_u64() % 20) as f64
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect()
}

/// Reads `runs` of every file; all must agree with the dense truth.
fn check_chunk_invariance(rows: &[Vec<f64>], chunks: &[Option<usize>], runs: &[Range<usize>]) {
    let dir = tmp();
    for (i, &c) in chunks.iter().enumerate() {
        let p = write_chunked(dir.path(), &format!("c{i}.h5ad"), rows, c, i % 2 == 1);
        let ds = open_default(&p).unwrap();
        for r in runs {
            assert_eq!(
                dense_of(&ds.read_cells(r.clone()).unwrap()),
                rows[r.clone()].to_vec(),
                "chunk {c:?} run {r:?}"
            );
        }
    }
}

#[test]
fn reads_do_not_depend_on_chunk_size() {
    let rows = random_rows(&mut Rng(7), 53, 11, 0.3);
    let runs = [0..53, 0..1, 5..17, 17..18, 40..53, 20..20];
    check_chunk_invariance(&rows, &[None, Some(1), Some(7), Some(1000)], &runs);
}

#[test]
fn minibatches_do_not_depend_on_chunk_size() {
    let dir = tmp();
    let rows = random_rows(&mut Rng(9), 60, 12, 0.35);
    let plan: Vec<(usize, Vec<Range<usize>>)> = vec![(0, vec![10..20, 0..5]), (0, vec![30..58])];
    let mut reference: Option<Vec<CsrMatrix>> = None;
    for (i, c) in [Some(1), Some(7), Some(1000), None].into_iter().enumerate() {
        let p = write_chunked(dir.path(), &format!("m{i}.h5ad"), &rows, c, true);
        let mut src = Hdf5Source::preprocess(
            vec![open_default(&p).unwrap()],
            &checked(PreprocessParams {
                chunk_cells: 3 + i * 5,
                ..Default::default()
            }),
        )
        .unwrap();
        let got: Vec<CsrMatrix> = plan.iter().map(|(d, r)| src.read_runs(*d, r).unwrap()).collect();
        match &reference {
            None => reference = Some(got),
            Some(want) => assert_eq!(&got, want, "chunk {c:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]
    #[test]
    fn prop_reader_output_is_independent_of_chunk_size(
        seed in any::<u64>(),
        n in 1usize..40,
        g in 1usize..9,
        chunk in 1usize..50,
        a in 0usize..40,
        len in 0usize..40,
    ) {
        let rows = random_rows(&mut Rng(seed), n, g, 0.4);
        let start = a % n;
        let end = (start + len).min(n);
        check_chunk_invariance(&rows, &[None, Some(chunk)], &[start..end, 0..n]);
    }
}

// --------------------------------------------- preprocessing vs reference

/// Dense reference of §9 for one dataset: returns (kept original indices,
/// x̃ rows of kept cells, ν).
fn ref_normalize(rows: &[Vec<f64>]) -> (Vec<usize>, Vec<Vec<f64>>, f64) {
    let mut kept = vec![];
    let mut xt = vec![];
    let mut inv = 0.0;
    for (c, r) in rows.iter().enumerate() {
        let n: f64 = r.iter().sum();
        if n > 0.0 {
            kept.push(c);
            xt.push(r.iter().map(|v| v / n).collect::<Vec<f64>>());
            inv += 1.0 / n;
        }
    }
    let nu = inv / kept.len() as f64;
    (kept, xt, nu)
}

/// Dense reference selectGenes (two-pass mean/variance) over columns `cols`.
fn ref_select(
    xt: &[Vec<f64>],
    nu: f64,
    n_genes_total: usize,
    cols: &[usize],
    alpha: f64,
    thresh: f64,
) -> Vec<bool> {
    let n = xt.len() as f64;
    let z = normal_upper_quantile(alpha / n_genes_total as f64 / 2.0);
    cols.iter()
        .map(|&g| {
            let mu = xt.iter().map(|r| r[g]).sum::<f64>() / n;
            let var = xt.iter().map(|r| (r[g] - mu).powi(2)).sum::<f64>() / (n - 1.0);
            let upper = mu + z * (mu * nu / n).sqrt();
            var / nu > upper && var.log10() > (mu * nu).log10() + thresh
        })
        .collect()
}

/// Counts with over-dispersed genes (selected) and Poisson genes (mostly
/// not): gene `j` is bursty when `j % 4 == 0`.
fn overdispersed(rng: &mut Rng, n: usize, g: usize, zero_cells: &[usize]) -> Vec<Vec<f64>> {
    overdispersed_ids(rng, n, &(0..g).collect::<Vec<_>>(), zero_cells, None)
}

/// As [`overdispersed`] with column `k` being gene `ids[k]`, and gene
/// `extra` bursty too.
fn overdispersed_ids(
    rng: &mut Rng,
    n: usize,
    ids: &[usize],
    zero_cells: &[usize],
    extra: Option<usize>,
) -> Vec<Vec<f64>> {
    (0..n)
        .map(|c| {
            ids.iter()
                .map(|&j| {
                    if zero_cells.contains(&c) {
                        0.0
                    } else if j % 4 == 0 || Some(j) == extra {
                        // bursty: mostly 0, sometimes large
                        if rng.uniform() < 0.15 {
                            5.0 + rng.poisson(4.0)
                        } else {
                            0.0
                        }
                    } else {
                        rng.poisson(20.0)
                    }
                })
                .collect()
        })
        .collect()
}

#[test]
fn preprocessing_matches_dense_reference() {
    let dir = tmp();
    let mut rng = Rng(42);
    // Dataset A: genes g0..g11 plus "onlyA"; dataset B: a permutation of g0..g11 minus g5, plus "onlyB".
    let ga: Vec<String> = names("g", 12).into_iter().chain(["onlyA".to_string()]).collect();
    // g2 bursty only in A, g3 only in B: union and intersection differ.
    let a_rows = overdispersed_ids(&mut rng, 80, &(0..13).collect::<Vec<_>>(), &[0, 17, 79], Some(2));
    let gb_order = [11usize, 3, 0, 7, 1, 9, 2, 4, 10, 6, 8];
    let gb: Vec<String> = gb_order
        .iter()
        .map(|&j| format!("g{j}"))
        .chain(["onlyB".to_string()])
        .collect();
    let b_ids: Vec<usize> = gb_order.iter().copied().chain([13]).collect();
    let b_rows = overdispersed_ids(&mut rng, 50, &b_ids, &[5], Some(3));
    let pa = h5ad(&dir, "a.h5ad", &a_rows, &ga, &Opts::default());
    let pb = dir.path().join("b.h5");
    write_10x_v3(
        &pb,
        &RawCsr::from_dense(&b_rows),
        &gb,
        &names("id", 12),
        &vec!["Gene Expression".to_string(); 12],
        &names("bc", 50),
        &Opts {
            data: int(4),
            indices: int(8),
            strings: Str::FixedAscii,
            ..Opts::default()
        },
    );
    for combine in [Combine::Union, Combine::Intersection] {
        let params = PreprocessParams {
            selection: GeneSelection {
                combine,
                ..Default::default()
            },
            chunk_cells: 16,
            ..Default::default()
        };
        let mut src = Hdf5Source::preprocess(
            vec![open_default(&pa).unwrap(), open_default(&pb).unwrap()],
            &checked(params),
        )
        .unwrap();

        // Reference.
        let (ka, xa, nua) = ref_normalize(&a_rows);
        let (kb, xb, nub) = ref_normalize(&b_rows);
        let shared: Vec<String> = ga.iter().filter(|g| gb.contains(g)).cloned().collect();
        let cols_a: Vec<usize> = shared
            .iter()
            .map(|s| ga.iter().position(|g| g == s).unwrap())
            .collect();
        let cols_b: Vec<usize> = shared
            .iter()
            .map(|s| gb.iter().position(|g| g == s).unwrap())
            .collect();
        let sa = ref_select(&xa, nua, 13, &cols_a, 0.99, 0.1);
        let sb = ref_select(&xb, nub, 12, &cols_b, 0.99, 0.1);
        let chosen: Vec<usize> = (0..shared.len())
            .filter(|&i| {
                if combine == Combine::Union {
                    sa[i] || sb[i]
                } else {
                    sa[i] && sb[i]
                }
            })
            .collect();
        assert!(
            !chosen.is_empty() && chosen.len() < shared.len(),
            "fixture must select some but not all genes: {sa:?} {sb:?}"
        );
        assert_ne!(sa, sb, "fixture must make union and intersection differ");
        let model: Vec<String> = chosen.iter().map(|&i| shared[i].clone()).collect();
        assert_eq!(src.genes(), model.as_slice(), "{combine:?}");

        // Report.
        let rep = src.report().clone();
        assert_eq!(rep.genes_shared, 11);
        assert_eq!(rep.genes_selected, model.len());
        // Cells without counts in the model genes are dropped too.
        let empty = |xt: &[Vec<f64>], cols: &[usize]| {
            xt.iter()
                .filter(|r| chosen.iter().all(|&i| r[cols[i]] == 0.0))
                .count()
        };
        let (ea, eb) = (empty(&xa, &cols_a), empty(&xb, &cols_b));
        assert_eq!(rep.datasets[0].cells_dropped, 3);
        assert_eq!(rep.datasets[0].cells_no_model_counts, ea);
        assert_eq!(rep.datasets[0].cells_kept, 77 - ea);
        assert_eq!(rep.datasets[1].cells_dropped, 1);
        assert_eq!(rep.datasets[1].cells_no_model_counts, eb);
        assert_eq!(rep.datasets[0].genes_not_shared, 2);
        assert_eq!(rep.datasets[1].genes_not_shared, 1);
        assert_eq!(
            rep.datasets[0].genes_selected,
            Some(sa.iter().filter(|&&s| s).count())
        );
        assert_eq!(
            rep.datasets[1].genes_selected,
            Some(sb.iter().filter(|&&s| s).count())
        );
        assert_eq!(src.dataset_names(), &["a", "b"]);

        // Scale factors and x̂ values, per dataset.
        for (d, (xt, kept, cols)) in [(&xa, &ka, &cols_a), (&xb, &kb, &cols_b)].into_iter().enumerate() {
            // s_g is over every cell with counts (n), as in rliger.
            let n = xt.len() as f64;
            let s: Vec<f64> = chosen
                .iter()
                .map(|&i| (xt.iter().map(|r| r[cols[i]].powi(2)).sum::<f64>() / (n - 1.0)).sqrt())
                .collect();
            for (got, want) in src.scale_factors(d).iter().zip(&s) {
                assert!(
                    (got - want).abs() <= 1e-12 * want.max(1e-300),
                    "scale {got} vs {want}"
                );
            }
            let in_model: Vec<&Vec<f64>> = xt
                .iter()
                .filter(|r| chosen.iter().any(|&i| r[cols[i]] != 0.0))
                .collect();
            assert_eq!(kept.len(), xt.len());
            assert_eq!(src.cell_map(d).n_kept(), in_model.len());
            let x = src.read_cells(d, 0..in_model.len()).unwrap();
            let dense = x.to_dense();
            for (k, row) in in_model.into_iter().enumerate() {
                for (j, &i) in chosen.iter().enumerate() {
                    let want = if s[j] > 0.0 { row[cols[i]] / s[j] } else { 0.0 };
                    let got = dense[[k, j]];
                    assert!(
                        (got - want).abs() <= 1e-6 * want.abs().max(1e-6),
                        "d{d} cell {k} gene {j}: {got} vs {want}"
                    );
                }
            }
            // Columns sorted in every row.
            for r in 0..x.n_rows() {
                assert!(x.row(r).0.to_vec().windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
}

#[test]
fn n_genes_ranks_and_given_genes_are_respected() {
    let dir = tmp();
    let rows = overdispersed(&mut Rng(3), 60, 12, &[]);
    let p = h5ad(&dir, "a.h5ad", &rows, &names("g", 12), &Opts::default());
    let params = PreprocessParams {
        selection: GeneSelection {
            n_genes: Some(2),
            ..Default::default()
        },
        ..Default::default()
    };
    let src = Hdf5Source::preprocess(vec![open_default(&p).unwrap()], &checked(params)).unwrap();
    assert_eq!(src.genes().len(), 2);
    // The two must be among the bursty genes (every fourth).
    for g in src.genes() {
        let j: usize = g[1..].parse().unwrap();
        assert_eq!(j % 4, 0, "{g}");
    }
    let given: Vec<String> = ["g7", "g1", "g4"].iter().map(|s| s.to_string()).collect();
    let params = PreprocessParams {
        genes: Some(given.clone()),
        ..Default::default()
    };
    let mut src = Hdf5Source::preprocess(vec![open_default(&p).unwrap()], &checked(params)).unwrap();
    assert_eq!(src.genes(), given.as_slice());
    assert_eq!(src.report().datasets[0].genes_selected, None);
    let x = src.read_cells(0, 0..60).unwrap().to_dense();
    let (_, xt, _) = ref_normalize(&rows);
    for (j, g) in [7usize, 1, 4].into_iter().enumerate() {
        let s = (xt.iter().map(|r| r[g] * r[g]).sum::<f64>() / 59.0).sqrt();
        for c in 0..60 {
            assert!((x[[c, j]] - xt[c][g] / s).abs() < 1e-6 * (xt[c][g] / s).max(1e-6));
        }
    }
}

#[test]
fn dropped_cells_keep_indices_in_sync() {
    let dir = tmp();
    let mut rows = random_rows(&mut Rng(11), 30, 6, 0.5);
    let zero = [0usize, 1, 9, 10, 11, 20, 29];
    for &z in &zero {
        rows[z] = vec![0.0; 6];
    }
    let cells = names("cell", 30);
    let p = dir.path().join("z.h5ad");
    write_h5ad(
        &p,
        &RawCsr::from_dense(&rows),
        &names("g", 6),
        &cells,
        &Opts::default(),
        Enc::Csr,
        &Default::default(),
    );
    let params = PreprocessParams {
        genes: Some(names("g", 6)),
        chunk_cells: 4,
        ..Default::default()
    };
    let mut src = Hdf5Source::preprocess(vec![open_default(&p).unwrap()], &checked(params)).unwrap();
    let kept: Vec<usize> = (0..30).filter(|c| !zero.contains(c)).collect();
    let map = src.cell_map(0).clone();
    assert_eq!(map.n_kept(), kept.len());
    assert_eq!(map.dropped(), &zero);
    assert_eq!(src.report().datasets[0].cells_dropped, zero.len());
    let all = src.read_cells(0, 0..kept.len()).unwrap();
    for (k, &o) in kept.iter().enumerate() {
        assert_eq!(map.original(k), o);
        let one = src.read_cells(0, k..k + 1).unwrap();
        assert_eq!(one, all.slice_rows(k..k + 1));
        // Same support as the original cell.
        let support: Vec<u32> = (0..6u32).filter(|&g| rows[o][g as usize] != 0.0).collect();
        assert_eq!(one.row(0).0, Cols::Wide(support.as_slice()));
    }
    let names_kept: Vec<String> = kept.iter().map(|&o| cells[o].clone()).collect();
    assert_eq!(src.cell_names(0, 0..kept.len()).unwrap(), names_kept);
    assert_eq!(src.cell_names(0, 3..7).unwrap(), names_kept[3..7].to_vec());
    // Runs spanning dropped cells equal the stacked single reads.
    let runs = [2..9, 0..1, 15..kept.len()];
    let stacked = src.read_runs(0, &runs).unwrap();
    let mut want = CsrMatrix::empty(6);
    for r in &runs {
        want.append(&all.slice_rows(r.clone()));
    }
    assert_eq!(stacked, want);
}

// ------------------------------------------------------------ bad inputs

#[test]
fn missing_and_non_hdf5_files() {
    let dir = tmp();
    let e = open_default(&dir.path().join("nope.h5ad")).unwrap_err();
    assert!(matches!(e, ReaderError::NotFound { .. }), "{e}");
    let p = dir.path().join("x.h5ad");
    std::fs::write(&p, "gene,cell,count\nA,c1,3\n".repeat(100)).unwrap();
    let e = open_default(&p).unwrap_err();
    assert!(matches!(e, ReaderError::NotHdf5 { .. }), "{e}");
    let p = dir.path().join("empty.h5");
    std::fs::write(&p, "").unwrap();
    assert!(matches!(
        open_default(&p).unwrap_err(),
        ReaderError::NotHdf5 { .. }
    ));
}

#[test]
fn h5ad_without_x_lists_what_exists() {
    let dir = tmp();
    let p = dir.path().join("nox.h5ad");
    let extras = H5adExtras {
        no_x: true,
        ..Default::default()
    };
    write_h5ad(
        &p,
        &RawCsr::from_dense(&small()),
        &names("g", 5),
        &names("c", 7),
        &Opts::default(),
        Enc::Csr,
        &extras,
    );
    let e = open_default(&p).unwrap_err();
    match &e {
        ReaderError::NoMatrix { object, found, .. } => {
            assert_eq!(object, "/X");
            assert!(
                found.contains(&"obs".to_string()) && found.contains(&"var".to_string()),
                "{found:?}"
            );
        }
        other => panic!("expected NoMatrix, got {other}"),
    }
    assert!(e.to_string().contains("`obs`"), "{e}");
    let e = open(
        &p,
        &OpenOptions {
            matrix: MatrixLocation::Layer("counts".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(e, ReaderError::NoMatrix { ref object, .. } if object == "/layers/counts"),
        "{e}"
    );
}

#[test]
fn unknown_encodings_are_unsupported_with_advice() {
    let dir = tmp();
    let p = dir.path().join("coo.h5ad");
    write_h5ad(
        &p,
        &RawCsr::from_dense(&small()),
        &names("g", 5),
        &names("c", 7),
        &Opts::default(),
        Enc::Csr,
        &Default::default(),
    );
    {
        let f = hdf5::File::open_rw(&p).unwrap();
        let x = f.group("X").unwrap();
        x.delete_attr("encoding-type").unwrap();
        let v: hdf5::types::VarLenUnicode = "coo_matrix".parse().unwrap();
        x.new_attr::<hdf5::types::VarLenUnicode>()
            .shape(())
            .create("encoding-type")
            .unwrap()
            .write_scalar(&v)
            .unwrap();
    }
    let e = open_default(&p).unwrap_err();
    assert!(matches!(e, ReaderError::UnsupportedEncoding { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("coo_matrix") && msg.contains("csr_matrix(adata.X)"),
        "{msg}"
    );
}

/// Writes `m` as an .h5ad with signed/float storage (so bad values survive).
fn bad_file(dir: &TempDir, name: &str, m: RawCsr) -> PathBuf {
    let p = dir.path().join(name);
    let o = Opts {
        data: float(8),
        indices: int(8),
        indptr: int(8),
        ..Opts::default()
    };
    write_h5ad(
        &p,
        &m,
        &names("g", m.n_cols),
        &names("c", m.n_rows),
        &o,
        Enc::Csr,
        &Default::default(),
    );
    p
}

fn valid_raw() -> RawCsr {
    RawCsr::from_dense(&small())
}

#[test]
fn bad_values_name_the_cell() {
    let dir = tmp();
    // Cell 2's second value (position 4 of data) negative, then NaN.
    for (name, v) in [("neg", -1.0), ("nan", f64::NAN), ("inf", f64::INFINITY)] {
        let mut m = valid_raw();
        m.data[4] = v;
        let p = bad_file(&dir, &format!("{name}.h5ad"), m);
        let ds = open_default(&p).unwrap();
        let e = ds.read_cells(0..7).unwrap_err();
        match &e {
            ReaderError::InvalidValue {
                cell, object, value, ..
            } => {
                assert_eq!(*cell, 2, "{e}");
                assert_eq!(object, "/X/data");
                assert!(value.is_nan() == v.is_nan());
            }
            other => panic!("{name}: expected InvalidValue, got {other}"),
        }
        // Reading around the bad cell works; preprocessing stops on it.
        assert!(ds.read_cells(0..2).is_ok() && ds.read_cells(3..7).is_ok());
        let e = Hdf5Source::preprocess(vec![ds], &checked(PreprocessParams::default())).unwrap_err();
        assert!(matches!(e, ReaderError::InvalidValue { cell: 2, .. }), "{e}");
    }
}

#[test]
fn bad_indptr_and_indices_name_the_cell() {
    let dir = tmp();
    // indptr of small(): [0, 2, 3, 6, 6, 7, 10, 15]
    let mut m = valid_raw();
    m.indptr[4] = 4; // cell 3 ends before it starts; cell 4 "decreases"
    let e = open_default(&bad_file(&dir, "ptr.h5ad", m))
        .unwrap()
        .read_cells(0..7)
        .unwrap_err();
    assert!(matches!(e, ReaderError::BadIndptr { cell: 3, .. }), "{e}");

    let mut m = valid_raw();
    m.indptr[7] = 99; // last pointer past the data
    let e = open_default(&bad_file(&dir, "end.h5ad", m)).unwrap_err();
    assert!(matches!(e, ReaderError::BadIndptr { .. }), "{e}");

    for (name, idx) in [("big", 5i64), ("negative", -1)] {
        let mut m = valid_raw();
        m.indices[7] = idx; // cell 5's first index
        let e = open_default(&bad_file(&dir, &format!("{name}.h5ad"), m))
            .unwrap()
            .read_cells(0..7)
            .unwrap_err();
        match e {
            ReaderError::IndexOutOfRange {
                cell, index, n_genes, ..
            } => {
                assert_eq!((cell, index, n_genes), (5, idx as i128, 5));
            }
            other => panic!("{name}: expected IndexOutOfRange, got {other}"),
        }
    }

    let mut m = valid_raw();
    m.indices.pop();
    m.indices.push(0);
    m.indices.push(1); // indices longer than data
    let e = open_default(&bad_file(&dir, "len.h5ad", m)).unwrap_err();
    assert!(matches!(e, ReaderError::BadShape { .. }), "{e}");
}

#[test]
fn gene_set_errors() {
    let dir = tmp();
    let rows = overdispersed(&mut Rng(5), 40, 6, &[]);
    let a = h5ad(&dir, "a.h5ad", &rows, &names("g", 6), &Opts::default());
    let b = h5ad(&dir, "b.h5ad", &rows, &names("ENSG", 6), &Opts::default());
    let e = Hdf5Source::preprocess(
        vec![open_default(&a).unwrap(), open_default(&b).unwrap()],
        &checked(PreprocessParams::default()),
    )
    .unwrap_err();
    match &e {
        ReaderError::NoSharedGenes { paths } => assert_eq!(paths, &vec![a.clone(), b.clone()]),
        other => panic!("expected NoSharedGenes, got {other}"),
    }
    assert!(e.to_string().contains("a.h5ad") && e.to_string().contains("b.h5ad"));

    let strict = PreprocessParams {
        selection: GeneSelection {
            var_thresh: 50.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let e = Hdf5Source::preprocess(vec![open_default(&a).unwrap()], &checked(strict)).unwrap_err();
    assert!(matches!(e, ReaderError::NoGenesSelected { .. }), "{e}");
    assert!(e.to_string().contains("var_thresh"), "{e}");

    // Too many given genes missing: an error naming the file.
    let given = PreprocessParams {
        genes: Some(vec!["g1".into(), "zz".into(), "zy".into()]),
        ..Default::default()
    };
    let e = Hdf5Source::preprocess(vec![open_default(&a).unwrap()], &checked(given)).unwrap_err();
    assert!(
        matches!(
            e,
            ReaderError::MissingGenes {
                missing: 2,
                requested: 3,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("a.h5ad"), "{e}");
    // Within the allowed fraction: the missing gene is a column of zeros, reported.
    let given = PreprocessParams {
        genes: Some(vec!["zz".into(), "g1".into()]),
        ..Default::default()
    };
    let mut src = Hdf5Source::preprocess(vec![open_default(&a).unwrap()], &checked(given)).unwrap();
    assert_eq!(src.report().datasets[0].genes_missing, 1);
    assert_eq!(src.scale_factors(0)[0], 0.0);
    let x = src.read_cells(0, 0..src.n_cells(0)).unwrap();
    assert!(
        x.indices().iter().all(|c| c == 1),
        "the missing gene must stay empty"
    );
    assert!(x.nnz() > 0);

    let mut one = vec![vec![0.0; 6]; 5];
    one[2][1] = 3.0;
    let c = h5ad(&dir, "one.h5ad", &one, &names("g", 6), &Opts::default());
    let e = Hdf5Source::preprocess(
        vec![open_default(&c).unwrap()],
        &checked(PreprocessParams::default()),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            ReaderError::TooFewCells {
                kept: 1,
                dropped: 4,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn bad_requests_are_errors_not_panics() {
    let dir = tmp();
    let p = h5ad(
        &dir,
        "a.h5ad",
        &overdispersed(&mut Rng(1), 20, 6, &[]),
        &names("g", 6),
        &Opts::default(),
    );
    let params = PreprocessParams {
        genes: Some(names("g", 6)),
        ..Default::default()
    };
    let mut src = Hdf5Source::preprocess(vec![open_default(&p).unwrap()], &checked(params)).unwrap();
    assert!(matches!(
        src.read_cells(0, 15..21),
        Err(ReaderError::BadRequest { .. })
    ));
    assert!(matches!(
        src.read_cells(1, 0..1),
        Err(ReaderError::BadRequest { .. })
    ));
    assert!(matches!(
        src.cell_names(0, 19..30),
        Err(ReaderError::BadRequest { .. })
    ));
    assert_eq!(src.read_cells(0, 4..4).unwrap().n_rows(), 0);
}

// ------------------------------------------------------------- read-only

#[test]
fn inputs_are_not_modified() {
    let dir = tmp();
    let rows = overdispersed(&mut Rng(8), 40, 9, &[3]);
    let a = h5ad(
        &dir,
        "a.h5ad",
        &rows,
        &names("g", 9),
        &Opts {
            chunk: Some(5),
            deflate: true,
            ..Opts::default()
        },
    );
    let b = dir.path().join("b.h5");
    write_10x_v3(
        &b,
        &RawCsr::from_dense(&rows),
        &names("g", 9),
        &names("id", 9),
        &vec!["Gene Expression".into(); 9],
        &names("bc", 40),
        &Opts::default(),
    );
    let snapshot = |p: &Path| {
        (
            std::fs::read(p).unwrap(),
            std::fs::metadata(p).unwrap().modified().unwrap(),
        )
    };
    let before = (snapshot(&a), snapshot(&b));
    {
        let mut src = Hdf5Source::preprocess(
            vec![open_default(&a).unwrap(), open_default(&b).unwrap()],
            &checked(PreprocessParams::default()),
        )
        .unwrap();
        let (n0, n1) = (src.n_cells(0), src.n_cells(1));
        src.read_runs(0, &[0..n0 / 3, n0 / 2..n0]).unwrap();
        src.cell_names(1, 0..n1).unwrap();
    }
    assert!(before == (snapshot(&a), snapshot(&b)), "an input file changed");
}

// ------------------------------------------------------------ the thread

fn mem_source() -> InMemorySource {
    let a = CsrMatrix::from_dense(10, 3, &(0..30).map(|v| v as f32).collect::<Vec<_>>());
    let b = CsrMatrix::from_dense(4, 3, &(0..12).map(|v| (v % 5) as f32).collect::<Vec<_>>());
    InMemorySource::new(vec![a, b])
}

#[test]
fn reader_thread_delivers_in_plan_order() {
    let plan: Vec<ReadRequest> = vec![
        vec![(0, vec![0..3]), (1, vec![0..2])],
        vec![(0, vec![5..7, 3..4]), (1, vec![2..4])],
        vec![(1, vec![1..2])],
    ];
    let mut check = mem_source();
    // Consumed blocks are given back and refilled: the contents must not
    // depend on which spare buffer a block was read into.
    let pool = BlockPool::new(2);
    let h = spawn_reader(mem_source(), plan.clone(), 0, &pool).unwrap();
    let mut n = 0;
    for (req, batches) in plan.iter().zip(h.batches.iter()) {
        let batches = batches.unwrap();
        assert_eq!(req.len(), batches.len());
        for ((d, runs), mb) in req.iter().zip(&batches) {
            assert_eq!(mb.dataset, *d);
            assert_eq!(&mb.cells, runs);
            assert_eq!(mb.x, check.read_runs(*d, runs).unwrap());
        }
        pool.give_back(batches);
        n += 1;
    }
    assert_eq!(n, plan.len());
    let back = h.thread.join().unwrap();
    assert_eq!(back.n_datasets(), 2);
}

#[test]
fn reader_thread_stops_when_receiver_is_dropped() {
    // An endless plan: only a dropped receiver can stop it.
    let plan = std::iter::repeat_with(|| vec![(0usize, vec![0..10])]);
    let h = spawn_reader(mem_source(), plan, 2, &BlockPool::for_reader(1, 2)).unwrap();
    for _ in 0..3 {
        assert_eq!(h.batches.recv().unwrap().unwrap()[0].n_cells(), 10);
    }
    drop(h.batches);
    let back = h.thread.join().unwrap();
    assert_eq!(back.n_cells(0), 10);
}

#[test]
fn reader_thread_sends_the_error_and_stops() {
    let dir = tmp();
    let p = h5ad(
        &dir,
        "a.h5ad",
        &overdispersed(&mut Rng(2), 20, 6, &[]),
        &names("g", 6),
        &Opts::default(),
    );
    let params = PreprocessParams {
        genes: Some(names("g", 6)),
        ..Default::default()
    };
    let src = Hdf5Source::preprocess(vec![open_default(&p).unwrap()], &checked(params)).unwrap();
    let plan = vec![
        vec![(0, vec![0..5])],
        vec![(0, vec![18..25])],
        vec![(0, vec![0..5])],
    ];
    let h = spawn_reader(src, plan, 4, &BlockPool::for_reader(1, 4)).unwrap();
    let got: Vec<_> = h.batches.iter().collect();
    assert_eq!(got.len(), 2);
    assert!(got[0].is_ok());
    assert!(matches!(got[1], Err(ReaderError::BadRequest { .. })));
    h.thread.join().unwrap();
}

#[test]
fn source_is_send() {
    fn send<T: Send + 'static>() {}
    send::<Hdf5Source>();
    send::<Dataset>();
    send::<ReaderError>();
}

// ------------------------------------------------------------ throughput

/// Throughput smoke test (not a benchmark; run with
/// `cargo test -p inmf-reader --release perf_smoke -- --ignored --nocapture`).
#[test]
#[ignore]
fn perf_smoke() {
    let (n, g, per_cell) = (100_000usize, 2000usize, 150usize);
    let mut rng = Rng(1);
    let mut m = RawCsr {
        n_rows: n,
        n_cols: g,
        indptr: vec![0],
        indices: vec![],
        data: vec![],
    };
    for _ in 0..n {
        let mut cols: Vec<i64> = (0..per_cell)
            .map(|_| (rng.next_u64() % g as u64) as i64)
            .collect();
        cols.sort_unstable();
        cols.dedup();
        for c in cols {
            m.indices.push(c);
            m.data.push(1.0 + (rng.next_u64() % 5) as f64);
        }
        m.indptr.push(m.indices.len() as i64);
    }
    let dir = tmp();
    for (label, o) in [
        (
            "uncompressed",
            Opts {
                chunk: Some(1 << 16),
                ..Opts::default()
            },
        ),
        (
            "gzip-4",
            Opts {
                chunk: Some(1 << 16),
                deflate: true,
                ..Opts::default()
            },
        ),
    ] {
        let p = dir.path().join(format!("{label}.h5ad"));
        write_h5ad(
            &p,
            &m,
            &names("g", g),
            &names("c", n),
            &o,
            Enc::Csr,
            &Default::default(),
        );
        let t = std::time::Instant::now();
        let mut src = Hdf5Source::preprocess(
            vec![open_default(&p).unwrap()],
            &checked(PreprocessParams::default()),
        )
        .unwrap();
        let pass = t.elapsed();
        let t = std::time::Instant::now();
        let mut nnz = 0;
        let blocks = n.div_ceil(1000);
        for b in 0..blocks {
            let b = (b * 7919) % blocks; // a fixed permutation of the blocks
            let r = b * 1000..((b + 1) * 1000).min(n);
            nnz += src.read_cells(0, r).unwrap().nnz();
        }
        let epoch = t.elapsed();
        eprintln!(
            "{label}: {} nnz; stats pass {pass:?} ({:.0} M nnz/s); epoch of 1000-cell reads {epoch:?} ({:.0} M nnz/s, {} genes kept, {nnz} nnz out)",
            m.data.len(),
            m.data.len() as f64 / pass.as_secs_f64() / 1e6,
            m.data.len() as f64 / epoch.as_secs_f64() / 1e6,
            src.genes().len()
        );
    }
}
