//! Malformed inputs: small valid files of each HDF5 layout (AnnData CSR and
//! CSC, 10x Cell Ranger 3, loom), damaged at random in their structure.
//! Opening, reading every cell, reading the cell names and preprocessing
//! must each give a [`ReaderError`] or the right answer (what the damaged
//! file really holds, when the damage left it valid), never a panic.

use std::path::Path;

use hdf5::types::VarLenUnicode;
use inmf_learner::CellSource;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseError, TestRunner};

use super::fixtures::*;
use crate::*;

/// The layouts damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    H5adCsr,
    H5adCsc,
    TenX,
    Loom,
}

/// A sparse array of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Array {
    Indptr,
    Indices,
    Data,
}

/// A damage to the shape record (AnnData `X@shape`, 10x `matrix/shape`;
/// for loom, the matrix itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShapeDamage {
    /// One of the two numbers moved by `by`.
    Off {
        genes: bool,
        by: i64,
    },
    Zero,
    /// `i64::MAX` cells.
    Huge,
    /// `u64::MAX` cells, stored unsigned.
    HugeUnsigned,
    Negative,
    Missing,
    /// Three numbers instead of two.
    ThreeNumbers,
}

/// One structural damage.
#[derive(Debug, Clone, PartialEq)]
enum Damage {
    None,
    /// Element `at` (modulo the length) of an integer array set to `value`.
    SetInt {
        array: Array,
        at: usize,
        value: i64,
    },
    /// Element `at` (modulo the length) of the values set to `value`.
    SetValue {
        at: usize,
        value: f64,
    },
    /// Indices `at` and `at + 1` swapped (rows out of order).
    SwapIndices {
        at: usize,
    },
    /// An array shortened (negative `by`) or lengthened.
    Resize {
        array: Array,
        by: i64,
    },
    /// The values stored as strings.
    ValuesAsStrings,
    Shape(ShapeDamage),
    /// Gene (or cell) names stored as numbers.
    NamesAsNumbers {
        genes: bool,
    },
    /// A required dataset replaced by an empty group.
    DatasetToGroup {
        which: u8,
    },
    /// The file cut at this fraction of its length.
    Truncate {
        fraction: f64,
    },
}

fn damage() -> impl Strategy<Value = Damage> {
    let array = prop_oneof![Just(Array::Indptr), Just(Array::Indices), Just(Array::Data)];
    let int_value = prop_oneof![
        -3i64..12,
        Just(-1i64),
        Just(i64::MAX),
        Just(i64::MIN),
        Just(i32::MAX as i64 + 1),
    ];
    let value = prop_oneof![
        Just(f64::NAN),
        Just(-1.0),
        Just(f64::INFINITY),
        Just(1e39),
        Just(0.0),
        Just(2.5),
        Just(7.0),
    ];
    let shape = prop_oneof![
        (any::<bool>(), -2i64..3).prop_map(|(genes, by)| ShapeDamage::Off { genes, by }),
        Just(ShapeDamage::Zero),
        Just(ShapeDamage::Huge),
        Just(ShapeDamage::HugeUnsigned),
        Just(ShapeDamage::Negative),
        Just(ShapeDamage::Missing),
        Just(ShapeDamage::ThreeNumbers),
    ];
    prop_oneof![
        1 => Just(Damage::None),
        3 => (array.clone(), 0usize..64, int_value)
            .prop_map(|(array, at, value)| Damage::SetInt { array, at, value }),
        2 => (0usize..64, value).prop_map(|(at, value)| Damage::SetValue { at, value }),
        1 => (0usize..64).prop_map(|at| Damage::SwapIndices { at }),
        2 => (array, -3i64..4).prop_map(|(array, by)| Damage::Resize { array, by }),
        1 => Just(Damage::ValuesAsStrings),
        2 => shape.prop_map(Damage::Shape),
        1 => any::<bool>().prop_map(|genes| Damage::NamesAsNumbers { genes }),
        1 => (0u8..5).prop_map(|which| Damage::DatasetToGroup { which }),
        1 => (0.0f64..1.0).prop_map(|fraction| Damage::Truncate { fraction }),
    ]
}

/// A small count matrix (cells × genes, some cells all zero) and a damage.
fn case() -> impl Strategy<Value = (Vec<Vec<f64>>, Damage)> {
    (1usize..7, 1usize..6)
        .prop_flat_map(|(cells, genes)| {
            proptest::collection::vec(
                proptest::collection::vec(prop_oneof![3 => Just(0u8), 2 => 1u8..6], genes),
                cells,
            )
        })
        .prop_map(|rows| {
            rows.into_iter()
                .map(|r| r.into_iter().map(f64::from).collect())
                .collect()
        })
        .prop_flat_map(|rows: Vec<Vec<f64>>| (Just(rows), damage()))
}

/// What the damaged file holds, as far as the checks need to know.
struct Written {
    /// The stored sparse arrays (CSC for AnnData CSC: one `indptr` entry
    /// per gene), or for loom the dense genes × cells matrix, row-major,
    /// in `data` (with `indptr` = [genes, cells]).
    indptr: Vec<i64>,
    indices: Vec<i64>,
    data: Vec<f64>,
    /// The recorded shape, (cells, genes); `None` when missing or unusable.
    shape: Option<(i64, i64)>,
    /// Whether the shape record is damaged beyond a plain (cells, genes) pair.
    shape_unreadable: bool,
    genes: Vec<String>,
    cells: Vec<String>,
    values_as_strings: bool,
    genes_as_numbers: bool,
    cells_as_numbers: bool,
    /// A dataset the matrix or the names need is a group.
    required_is_group: bool,
    /// The cell names are a group (the matrix itself may still be read).
    cells_is_group: bool,
    truncated: bool,
}

/// HDF5 paths of the parts of each layout: (matrix group or dataset, gene
/// names, cell names).
fn parts(kind: Kind) -> (&'static str, &'static str, &'static str) {
    match kind {
        Kind::H5adCsr | Kind::H5adCsc => ("X", "var/_index", "obs/_index"),
        Kind::TenX => ("matrix", "matrix/features/name", "matrix/barcodes"),
        Kind::Loom => ("matrix", "row_attrs/Gene", "col_attrs/CellID"),
    }
}

fn rewrite<T: hdf5::H5Type>(f: &hdf5::File, name: &str, v: &[T]) {
    f.unlink(name).unwrap();
    f.new_dataset_builder().with_data(v).create(name).unwrap();
}

fn rewrite_strings(f: &hdf5::File, name: &str, v: &[String]) {
    let a: Vec<VarLenUnicode> = v.iter().map(|s| s.parse().unwrap()).collect();
    rewrite(f, name, &a);
}

/// Writes the valid file of `rows` in layout `kind` and applies `damage`.
fn write_damaged(path: &Path, kind: Kind, rows: &[Vec<f64>], damage: &Damage) -> Written {
    let m = RawCsr::from_dense(rows);
    let genes = names("g", m.n_cols);
    let cells = names("c", m.n_rows);
    let o = Opts::default();
    match kind {
        Kind::H5adCsr => write_h5ad(path, &m, &genes, &cells, &o, Enc::Csr, &H5adExtras::default()),
        Kind::H5adCsc => write_h5ad(path, &m, &genes, &cells, &o, Enc::Csc, &H5adExtras::default()),
        Kind::TenX => write_10x_v3(
            path,
            &m,
            &genes,
            &names("id", m.n_cols),
            &vec!["Gene Expression".into(); m.n_cols],
            &cells,
            &o,
        ),
        Kind::Loom => write_loom(path, &m, &genes, &names("id", m.n_cols), &cells, &[]),
    }
    let stored = if kind == Kind::H5adCsc {
        m.transpose()
    } else {
        m.clone()
    };
    let mut w = Written {
        indptr: stored.indptr.clone(),
        indices: stored.indices.clone(),
        data: stored.data.clone(),
        shape: Some((m.n_rows as i64, m.n_cols as i64)),
        shape_unreadable: false,
        genes,
        cells,
        values_as_strings: false,
        genes_as_numbers: false,
        cells_as_numbers: false,
        required_is_group: false,
        cells_is_group: false,
        truncated: false,
    };
    if kind == Kind::Loom {
        // Dense genes × cells; `indptr` holds its dimensions.
        let d = m.to_dense();
        w.indptr = vec![m.n_cols as i64, m.n_rows as i64];
        w.indices = Vec::new();
        w.data = (0..m.n_cols).flat_map(|g| d.iter().map(move |r| r[g])).collect();
    }
    let (matrix, gene_names, cell_names) = parts(kind);
    let f = hdf5::File::open_rw(path).unwrap();
    let array_name = |a: Array| match a {
        Array::Indptr => format!("{matrix}/indptr"),
        Array::Indices => format!("{matrix}/indices"),
        Array::Data => format!("{matrix}/data"),
    };
    let write_dense = |f: &hdf5::File, w: &Written| {
        let (g, c) = (w.indptr[0] as usize, w.indptr[1] as usize);
        let a = ndarray::Array2::from_shape_vec((g, c), w.data.clone()).unwrap();
        f.unlink(matrix).unwrap();
        f.new_dataset_builder().with_data(&a).create(matrix).unwrap();
    };
    match damage.clone() {
        Damage::None => {}
        Damage::SetInt { array, at, value } if kind != Kind::Loom => {
            let v = match array {
                Array::Indptr => &mut w.indptr,
                Array::Indices => &mut w.indices,
                Array::Data => {
                    if !w.data.is_empty() {
                        let n = w.data.len();
                        w.data[at % n] = value as f64;
                        rewrite(&f, &array_name(array), &w.data);
                    }
                    return finish(w, f);
                }
            };
            if !v.is_empty() {
                let n = v.len();
                v[at % n] = value;
                let v = v.clone();
                rewrite(&f, &array_name(array), &v);
            }
        }
        Damage::SetValue { at, value } => {
            if !w.data.is_empty() {
                let n = w.data.len();
                w.data[at % n] = value;
                if kind == Kind::Loom {
                    write_dense(&f, &w);
                } else {
                    rewrite(&f, &array_name(Array::Data), &w.data);
                }
            }
        }
        Damage::SwapIndices { at } if kind != Kind::Loom => {
            if w.indices.len() >= 2 {
                let i = at % (w.indices.len() - 1);
                w.indices.swap(i, i + 1);
                rewrite(&f, &array_name(Array::Indices), &w.indices);
            }
        }
        Damage::Resize { array, by } if kind != Kind::Loom => {
            let resize_i = |v: &mut Vec<i64>| {
                let n = (v.len() as i64 + by).max(0) as usize;
                let last = v.last().copied().unwrap_or(0);
                v.resize(n, last);
            };
            match array {
                Array::Indptr => resize_i(&mut w.indptr),
                Array::Indices => resize_i(&mut w.indices),
                Array::Data => {
                    let n = (w.data.len() as i64 + by).max(0) as usize;
                    w.data.resize(n, 1.0);
                }
            }
            match array {
                Array::Indptr => rewrite(&f, &array_name(array), &w.indptr),
                Array::Indices => rewrite(&f, &array_name(array), &w.indices),
                Array::Data => rewrite(&f, &array_name(array), &w.data),
            }
        }
        Damage::Resize { by, .. } => {
            // loom: genes added (zeros) or removed.
            let (g, c) = (w.indptr[0], w.indptr[1]);
            let g2 = (g + by).max(0);
            w.data.resize((g2 * c) as usize, 0.0);
            w.indptr[0] = g2;
            write_dense(&f, &w);
        }
        Damage::ValuesAsStrings => {
            w.values_as_strings = true;
            let s: Vec<String> = w.data.iter().map(|v| v.to_string()).collect();
            if kind == Kind::Loom {
                rewrite_strings(&f, matrix, &s);
            } else {
                rewrite_strings(&f, &array_name(Array::Data), &s);
            }
        }
        Damage::Shape(s) => match kind {
            Kind::Loom => {
                // The matrix flattened to one dimension.
                w.shape_unreadable = true;
                rewrite(&f, matrix, &w.data);
            }
            _ => {
                let (c, g) = w.shape.unwrap();
                let pair = match s {
                    ShapeDamage::Off { genes: true, by } => Some((c, g + by)),
                    ShapeDamage::Off { genes: false, by } => Some((c + by, g)),
                    ShapeDamage::Zero => Some((0, 0)),
                    ShapeDamage::Huge => Some((i64::MAX, g)),
                    ShapeDamage::Negative => Some((-c - 1, g)),
                    ShapeDamage::HugeUnsigned | ShapeDamage::Missing | ShapeDamage::ThreeNumbers => None,
                };
                w.shape = pair;
                w.shape_unreadable = matches!(s, ShapeDamage::ThreeNumbers | ShapeDamage::HugeUnsigned);
                let numbers: Option<Vec<i64>> = match (s, pair) {
                    (ShapeDamage::ThreeNumbers, _) => Some(vec![c, g, 1]),
                    (_, Some((c, g))) if kind == Kind::TenX => Some(vec![g, c]),
                    (_, Some((c, g))) => Some(vec![c, g]),
                    _ => None,
                };
                let unsigned = s == ShapeDamage::HugeUnsigned;
                if kind == Kind::TenX {
                    f.unlink("matrix/shape").unwrap();
                    let ds = f.group("matrix").unwrap();
                    if unsigned {
                        ds.new_dataset_builder()
                            .with_data(&[g as u64, u64::MAX][..])
                            .create("shape")
                            .unwrap();
                    } else if let Some(n) = numbers {
                        ds.new_dataset_builder()
                            .with_data(&n[..])
                            .create("shape")
                            .unwrap();
                    }
                } else {
                    let x = f.group("X").unwrap();
                    x.delete_attr("shape").unwrap();
                    if unsigned {
                        x.new_attr_builder()
                            .with_data(&[u64::MAX, g as u64][..])
                            .create("shape")
                            .unwrap();
                    } else if let Some(n) = numbers {
                        x.new_attr_builder().with_data(&n[..]).create("shape").unwrap();
                    }
                }
            }
        },
        Damage::NamesAsNumbers { genes } => {
            let (name, n) = if genes {
                w.genes_as_numbers = true;
                (gene_names, w.genes.len())
            } else {
                w.cells_as_numbers = true;
                (cell_names, w.cells.len())
            };
            let v: Vec<i64> = (0..n as i64).collect();
            rewrite(&f, name, &v);
        }
        Damage::DatasetToGroup { which } => {
            let target = match (kind, which) {
                (Kind::Loom, 0..=2) => matrix.to_owned(),
                (_, 0) => array_name(Array::Indptr),
                (_, 1) => array_name(Array::Indices),
                (_, 2) => array_name(Array::Data),
                (_, 3) => gene_names.to_owned(),
                _ => cell_names.to_owned(),
            };
            if target == cell_names {
                w.cells_is_group = true;
            } else {
                w.required_is_group = true;
            }
            f.unlink(&target).unwrap();
            f.create_group(&target).unwrap();
        }
        Damage::Truncate { fraction } => {
            drop(f);
            let bytes = std::fs::read(path).unwrap();
            let keep = (bytes.len() as f64 * fraction) as usize;
            std::fs::write(path, &bytes[..keep]).unwrap();
            w.truncated = true;
            return w;
        }
        // Sparse-array damages do not apply to a dense loom matrix.
        Damage::SetInt { .. } | Damage::SwapIndices { .. } => {}
    }
    finish(w, f)
}

fn finish(w: Written, f: hdf5::File) -> Written {
    drop(f);
    w
}

/// The cells × genes matrix a reader must return for `w`, or `None` if the
/// file is invalid (then only an error is right). Repeated entries of a row
/// are summed in file order, in f32, as the reader does.
fn expected(kind: Kind, w: &Written) -> Option<Vec<Vec<f32>>> {
    if w.values_as_strings || w.genes_as_numbers || w.required_is_group || w.shape_unreadable {
        return None;
    }
    let (n_genes_named, n_cells_named) = (w.genes.len(), w.cells.len());
    let value = |v: f64| -> Option<f32> {
        let f = v as f32;
        (v.is_finite() && v >= 0.0 && f.is_finite()).then_some(f)
    };
    if kind == Kind::Loom {
        let (g, c) = (w.indptr[0] as usize, w.indptr[1] as usize);
        if g != n_genes_named || c != n_cells_named {
            return None;
        }
        let mut out = vec![vec![0f32; g]; c];
        for gi in 0..g {
            for (ci, row) in out.iter_mut().enumerate() {
                row[gi] = value(w.data[gi * c + ci])?;
            }
        }
        return Some(out);
    }
    let (cells, genes) = match w.shape {
        Some((c, g)) => (usize::try_from(c).ok()?, usize::try_from(g).ok()?),
        // Only a CSR group may go without its shape (inferred from indptr).
        None if kind == Kind::H5adCsr => (w.indptr.len().checked_sub(1)?, n_genes_named),
        None => return None,
    };
    if cells != n_cells_named || genes != n_genes_named {
        return None;
    }
    let (n_outer, n_inner) = if kind == Kind::H5adCsc {
        (genes, cells)
    } else {
        (cells, genes)
    };
    let nnz = w.data.len();
    if w.indptr.len() != n_outer + 1 || w.indices.len() != nnz {
        return None;
    }
    if w.indptr[0] != 0 || w.indptr[n_outer] != nnz as i64 {
        return None;
    }
    if w.indptr.windows(2).any(|p| p[1] < p[0]) {
        return None;
    }
    let mut out = vec![vec![0f32; genes]; cells];
    for o in 0..n_outer {
        for k in w.indptr[o] as usize..w.indptr[o + 1] as usize {
            let i = usize::try_from(w.indices[k]).ok().filter(|&i| i < n_inner)?;
            let v = value(w.data[k])?;
            let (c, g) = if kind == Kind::H5adCsc { (i, o) } else { (o, i) };
            out[c][g] += v;
        }
    }
    Some(out)
}

/// Opens, reads every cell and the cell names, and preprocesses the file,
/// checking each answer that is not an error.
fn check(kind: Kind, path: &Path, w: &Written, damage: &Damage) -> Result<(), TestCaseError> {
    let ds = match open(path, &OpenOptions::default()) {
        Ok(ds) => ds,
        Err(e) => {
            prop_assert!(*damage != Damage::None, "the undamaged file was refused: {}", e);
            return Ok(());
        }
    };
    let want = expected(kind, w);
    prop_assert!(!w.truncated || want.is_some(), "a truncated file opened");
    let read = ds.read_cells(0..ds.n_cells());
    prop_assert!(read.is_ok() || *damage != Damage::None, "{:?}", read);
    if let Ok(x) = &read {
        let Some(want) = &want else {
            return Err(TestCaseError::fail(format!(
                "an invalid file was read as {:?}",
                x.to_dense()
            )));
        };
        let got: Vec<Vec<f64>> = x.to_dense().outer_iter().map(|r| r.to_vec()).collect();
        let want: Vec<Vec<f64>> = want
            .iter()
            .map(|r| r.iter().map(|&v| f64::from(v)).collect())
            .collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(ds.gene_names(), &w.genes[..]);
    }
    if let Ok(names) = ds.cell_names(0..ds.n_cells()) {
        prop_assert!(
            !w.cells_as_numbers && !w.cells_is_group,
            "cell names of a wrong type were read: {:?}",
            names
        );
        prop_assert_eq!(&names, &w.cells);
    }
    // Preprocess and serve every kept cell.
    let Ok(ds) = open(path, &OpenOptions::default()) else {
        return Err(TestCaseError::fail("the file opened once, not twice"));
    };
    let params = PreprocessParams::default().check().unwrap();
    if let Ok(mut src) = Hdf5Source::preprocess(vec![ds], &params) {
        let n = src.n_cells(0);
        if let Ok(x) = src.read_cells(0, 0..n) {
            prop_assert!(want.is_some(), "an invalid file was preprocessed and served");
            prop_assert!(x.to_dense().iter().all(|v| v.is_finite()));
        }
    }
    Ok(())
}

/// A fixed number of cases from a fixed seed, without writing failure files
/// into the source tree (whatever PROPTEST_* variables say).
fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(20_240_611),
        max_shrink_iters: 512,
        ..Config::default()
    })
}

fn damaged_files_give_errors_or_the_right_matrix(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let n = std::cell::Cell::new(0usize);
    let result = runner().run(&case(), |(rows, damage)| {
        n.set(n.get() + 1);
        let path = dir.path().join(format!("case{}.h5", n.get()));
        let w = write_damaged(&path, kind, &rows, &damage);
        let out = check(kind, &path, &w, &damage);
        std::fs::remove_file(&path).ok();
        out
    });
    if let Err(e) = result {
        panic!("{kind:?}: {e}");
    }
}

#[test]
fn damaged_h5ad_csr_gives_errors_or_the_right_matrix() {
    damaged_files_give_errors_or_the_right_matrix(Kind::H5adCsr);
}

#[test]
fn damaged_h5ad_csc_gives_errors_or_the_right_matrix() {
    damaged_files_give_errors_or_the_right_matrix(Kind::H5adCsc);
}

#[test]
fn damaged_10x_gives_errors_or_the_right_matrix() {
    damaged_files_give_errors_or_the_right_matrix(Kind::TenX);
}

#[test]
fn damaged_loom_gives_errors_or_the_right_matrix() {
    damaged_files_give_errors_or_the_right_matrix(Kind::Loom);
}
