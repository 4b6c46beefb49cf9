//! The genes the unmatched score runs over (docs/algorithms.md §10.1): the
//! model's genes and the genes the query selects beyond them.
//!
//! The reference's selection keeps the genes that vary among *its* cells.
//! The marker genes of a type the reference lacks need not vary there, and
//! then a query cell of that type looks explained on the model's genes
//! alone. So the score also runs over E: the genes the query's own
//! selection keeps (the same rule and parameters as the model's), outside
//! the model's genes and measured (scale factor > 0) in every reference
//! input. Their rows of W come from the reference's calibration sample:
//! with H the sample's projection onto W (cells × K) and X_E its
//! preprocessed values of those genes,
//!
//! `w_e = argmin_{w ≥ 0} ‖X_E[:, e] − H w‖²` — NNLS with Gram `HᵀH` and
//! right-hand side `Σ_c x_ce h_c` (block principal pivoting),
//!
//! so a gene the reference's types express is expected where they sit in
//! H, and a gene none of them expresses is not expected anywhere.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::Range;

use inmf_analysis::SparseRows;
use inmf_learner::{nnls_bpp_into, CellSource, CsrMatrix, HSolver};
use inmf_reader::{spawn_reader, BlockPool, Hdf5Source};
use ndarray::{concatenate, Array2, ArrayView2, Axis};

use crate::config::PreprocessConfig;
use crate::error::DriverError;
use crate::scenarios::learn::thread_err;
use crate::scenarios::prepare::selected_genes;
use crate::scenarios::run::InputSpec;

/// Column dropped by a [`ColumnMap`].
pub(crate) const DROP: u32 = u32::MAX;

/// The genes of the query's own selection that are not among
/// `model_genes`, in the query's order; `Err(reason)` when the selection
/// cannot run on the query (the score then keeps the model's genes).
pub(crate) fn query_genes(
    inputs: &[InputSpec],
    cfg: &PreprocessConfig,
    model_genes: &[String],
) -> Result<Vec<String>, String> {
    let selected = selected_genes(inputs, cfg).map_err(|e| e.to_string())?;
    let model: HashSet<&str> = model_genes.iter().map(String::as_str).collect();
    Ok(selected
        .into_iter()
        .filter(|g| !model.contains(g.as_str()))
        .collect())
}

/// Column `c` of a block goes to column `map[c]` of the collected rows, or
/// is dropped (`DROP`); the kept columns keep their order.
pub(crate) struct ColumnMap {
    map: Vec<u32>,
    n_out: usize,
}

impl ColumnMap {
    /// Keeps the columns where `keep` is true.
    pub(crate) fn keeping(keep: &[bool]) -> Self {
        let mut n_out = 0u32;
        let map = keep
            .iter()
            .map(|&k| {
                if k {
                    n_out += 1;
                    n_out - 1
                } else {
                    DROP
                }
            })
            .collect();
        Self {
            map,
            n_out: n_out as usize,
        }
    }
}

/// What [`read_and_solve`] collects of one dataset, in the order it was
/// asked for: its rows (mapped columns) and H solved on the model's genes.
pub(crate) struct SolvedCells {
    pub(crate) rows: SparseRows,
    pub(crate) h: Array2<f64>,
}

/// The first `n` columns of `x` (borrowed when they are all of them).
fn leading_columns(x: &CsrMatrix, n: usize) -> Cow<'_, CsrMatrix> {
    if x.n_cols() == n {
        return Cow::Borrowed(x);
    }
    let (mut indptr, mut indices, mut data) = (vec![0], Vec::new(), Vec::new());
    for i in 0..x.n_rows() {
        let (cols, vals) = x.row(i);
        for (c, &v) in cols.iter().zip(vals) {
            if (c as usize) < n {
                indices.push(c);
                data.push(v);
            }
        }
        indptr.push(indices.len());
    }
    Cow::Owned(CsrMatrix::new(n, indptr, indices, data).expect("a column prefix of a valid matrix is valid"))
}

/// Reads `requests` (one message per entry: dataset and kept-cell runs)
/// from `source`; for each block solves H on its first `n_model` columns
/// (the model's genes, which come first) and keeps its rows through
/// `columns` (every column when `None`). One [`SolvedCells`] per dataset
/// (H with `k` columns).
pub(crate) fn read_and_solve(
    source: Hdf5Source,
    requests: Vec<Vec<(usize, Vec<Range<usize>>)>>,
    solver: &HSolver,
    n_model: usize,
    k: usize,
    columns: Option<&ColumnMap>,
) -> Result<Vec<SolvedCells>, DriverError> {
    let n_datasets = source.n_datasets();
    let n_cols = columns.map_or(source.n_genes(), |m| m.n_out);
    let mut parts: Vec<(SparseRows, Vec<Array2<f64>>)> = (0..n_datasets)
        .map(|_| (SparseRows::new(n_cols), Vec::new()))
        .collect();
    let pool = BlockPool::for_reader(1, 2);
    let reader = spawn_reader(source, requests, 2, &pool).map_err(thread_err)?;
    let mut mapped = (Vec::new(), Vec::new());
    for msg in reader.batches.iter() {
        for mb in msg? {
            let (h, _) = solver.solve(&leading_columns(&mb.x, n_model))?;
            let (rows, hs) = &mut parts[mb.dataset];
            for i in 0..mb.x.n_rows() {
                let (cols, vals) = mb.x.row(i);
                match columns {
                    None => rows.push_row(cols.iter(), vals),
                    Some(m) => {
                        mapped.0.clear();
                        mapped.1.clear();
                        for (c, &v) in cols.iter().zip(vals) {
                            let to = m.map[c as usize];
                            if to != DROP {
                                mapped.0.push(to);
                                mapped.1.push(v);
                            }
                        }
                        rows.push_row(mapped.0.iter().copied(), &mapped.1);
                    }
                }
            }
            hs.push(h);
        }
    }
    reader
        .thread
        .join()
        .map_err(|_| DriverError::Internal("the mapping's reader panicked".into()))?;
    Ok(parts
        .into_iter()
        .map(|(rows, hs)| {
            let views: Vec<_> = hs.iter().map(|h| h.view()).collect();
            let h = if views.is_empty() {
                Array2::zeros((0, k))
            } else {
                concatenate(Axis(0), &views).expect("blocks of equal width")
            };
            SolvedCells { rows, h }
        })
        .collect())
}

/// Rows of W for columns `n_model..` of `parts`' rows (module doc): one row
/// per extra gene, `n_extra × K`.
pub(crate) fn fit_extra_rows(
    parts: &[SolvedCells],
    n_model: usize,
    n_extra: usize,
    k: usize,
) -> Result<Array2<f64>, DriverError> {
    let mut gram = Array2::<f64>::zeros((k, k));
    let mut rhs = Array2::<f64>::zeros((n_extra, k));
    for p in parts {
        gram += &p.h.t().dot(&p.h);
        for c in 0..p.rows.n_rows() {
            let r = p.rows.indptr[c]..p.rows.indptr[c + 1];
            for (&g, &v) in p.rows.indices[r.clone()].iter().zip(&p.rows.data[r]) {
                if (g as usize) >= n_model {
                    let mut row = rhs.row_mut(g as usize - n_model);
                    row.scaled_add(f64::from(v), &p.h.row(c));
                }
            }
        }
    }
    let mut w = Array2::<f64>::zeros((n_extra, k));
    if n_extra > 0 {
        nnls_bpp_into(gram.view(), rhs.view(), w.view_mut())?;
    }
    Ok(w)
}

/// W with the extra rows below it (`(n_model + n_extra) × K`).
pub(crate) fn extended_w(w: ArrayView2<'_, f64>, extra: ArrayView2<'_, f64>) -> Array2<f64> {
    concatenate(Axis(0), &[w, extra]).expect("W and its extra rows have K columns")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn rows(n_cols: usize, r: &[&[(u32, f32)]]) -> SparseRows {
        let mut s = SparseRows::new(n_cols);
        for row in r {
            let (c, v): (Vec<u32>, Vec<f32>) = row.iter().copied().unzip();
            s.push_row(c, &v);
        }
        s
    }

    /// The extra rows are the NNLS fits of each extra column on H, checked
    /// against a brute-force search over the active sets (K = 2).
    #[test]
    fn extra_rows_are_the_nonnegative_least_squares_fits() {
        let h = array![[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.5]];
        // Model gene 0, extra genes 1 (= 2·h0 + 1·h1) and 2 (falls with h1).
        let x = rows(
            3,
            &[
                &[(0, 1.0), (1, 2.0), (2, 3.0)],
                &[(1, 1.0)],
                &[(0, 1.0), (1, 3.0), (2, 1.0)],
                &[(1, 4.5), (2, 5.0)],
            ],
        );
        let parts = [SolvedCells {
            rows: x.clone(),
            h: h.clone(),
        }];
        let w = fit_extra_rows(&parts, 1, 2, 2).unwrap();
        assert!(
            (w[[0, 0]] - 2.0).abs() < 1e-9 && (w[[0, 1]] - 1.0).abs() < 1e-9,
            "{w}"
        );
        // Brute force for gene 2: the best of w ≥ 0 over the four active sets.
        let y = [3.0, 0.0, 1.0, 5.0];
        let f = |a: f64, b: f64| {
            (0..4)
                .map(|c| (y[c] - h[[c, 0]] * a - h[[c, 1]] * b).powi(2))
                .sum::<f64>()
        };
        let (mut best, mut arg) = (f64::INFINITY, (0.0, 0.0));
        for i in 0..=4000 {
            for j in 0..=400 {
                let (a, b) = (i as f64 * 1e-3, j as f64 * 1e-3);
                if f(a, b) < best {
                    (best, arg) = (f(a, b), (a, b));
                }
            }
        }
        assert!(
            (w[[1, 0]] - arg.0).abs() < 2e-3 && (w[[1, 1]] - arg.1).abs() < 2e-3,
            "{w} vs {arg:?}"
        );
        assert!(w.iter().all(|&v| v >= 0.0));
    }

    #[test]
    fn column_prefix_and_map_keep_order() {
        let x = CsrMatrix::new(4, vec![0, 3, 4], vec![0, 2, 3, 3], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let p = leading_columns(&x, 3);
        assert_eq!(p.n_cols(), 3);
        let (c, v) = p.row(0);
        assert_eq!(
            (c.iter().collect::<Vec<_>>(), v),
            (vec![0, 2], &[1.0f32, 2.0][..])
        );
        assert_eq!(p.row(1).1.len(), 0);
        assert!(matches!(leading_columns(&x, 4), Cow::Borrowed(_)));
        let m = ColumnMap::keeping(&[true, false, true, true]);
        assert_eq!((m.map.clone(), m.n_out), (vec![0, DROP, 1, 2], 3));
    }
}
