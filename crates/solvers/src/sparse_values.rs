//! Kernels on the sparsity pattern of X with f64 values of their own: the
//! KL solvers' ratio matrix Q = X / (H Mᵀ), evaluated only at the non-zeros
//! of X (so it has X's pattern), and its two products.
//!
//! With X cells × genes (CSR), H cells × K and M genes × K:
//! - [`kl_ratio`]: q_cg = x_cg / max(h_c·m_g, ε) at every non-zero, and
//!   Σ x log(x / max(h_c·m_g, ε)) (the non-zero part of D(X‖HMᵀ));
//! - [`project_values`]: Q·M (cells × K);
//! - [`accumulate_values_t`]: B += Qᵀ·H (genes × K).
//!
//! Work is split into the same fixed cell blocks as the learner's kernels and
//! partial results are combined in block order, so results do not depend
//! on the number of threads.

use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use inmf_learner::{CsrMatrix, CELL_BLOCK};

/// Splits `values` (one per non-zero of `x`) at the fixed cell blocks.
fn blocks_mut<'a>(x: &CsrMatrix, values: &'a mut [f64]) -> Vec<(usize, &'a mut [f64])> {
    let n = x.n_rows();
    let mut out = Vec::with_capacity(n.div_ceil(CELL_BLOCK));
    let mut rest = values;
    let mut start = 0;
    while start < n {
        let end = (start + CELL_BLOCK).min(n);
        let len = x.indptr()[end] - x.indptr()[start];
        let (head, tail) = rest.split_at_mut(len);
        out.push((start, head));
        rest = tail;
        start = end;
    }
    out
}

/// Q = X / max(H Mᵀ, ε) at the non-zeros of X, written to `q` (length nnz);
/// returns Σ_nz x·ln(x / max(h_c·m_g, ε)).
///
/// Shapes: `x` n × m, `h` n × K, `m` m × K, both standard layout.
#[track_caller]
pub(crate) fn kl_ratio(
    x: &CsrMatrix,
    h: ArrayView2<f64>,
    m: ArrayView2<f64>,
    eps: f64,
    q: &mut [f64],
) -> f64 {
    ratio_pass::<true>(x, h, m, eps, q)
}

/// [`kl_ratio`] without the logarithms (for passes that only need Q).
#[track_caller]
pub(crate) fn kl_ratio_only(x: &CsrMatrix, h: ArrayView2<f64>, m: ArrayView2<f64>, eps: f64, q: &mut [f64]) {
    ratio_pass::<false>(x, h, m, eps, q);
}

#[track_caller]
fn ratio_pass<const LOG: bool>(
    x: &CsrMatrix,
    h: ArrayView2<f64>,
    m: ArrayView2<f64>,
    eps: f64,
    q: &mut [f64],
) -> f64 {
    assert_eq!(q.len(), x.nnz(), "q has one entry per non-zero");
    assert_eq!((h.nrows(), m.nrows()), (x.n_rows(), x.n_cols()), "shapes");
    let k = h.ncols();
    let hs = h.as_slice().expect("H in standard layout");
    let ms = m.as_slice().expect("M in standard layout");
    let block = |(first, qb): (usize, &mut [f64])| {
        let base = x.indptr()[first];
        let mut sum = 0.0;
        let last = (first + CELL_BLOCK).min(x.n_rows());
        for c in first..last {
            let hc = &hs[c * k..(c + 1) * k];
            let (s, e) = (x.indptr()[c] - base, x.indptr()[c + 1] - base);
            let (cols, vals) = x.row(c);
            for ((g, &v), qv) in cols.iter().zip(vals).zip(&mut qb[s..e]) {
                let mg = &ms[g as usize * k..(g as usize + 1) * k];
                let y: f64 = hc.iter().zip(mg).map(|(a, b)| a * b).sum();
                let y = y.max(eps);
                let xv = f64::from(v);
                *qv = xv / y;
                if LOG && xv > 0.0 {
                    sum += xv * (xv / y).ln();
                }
            }
        }
        sum
    };
    let blocks = blocks_mut(x, q);
    // One block runs inline: dispatching to the pool would cost more than the work.
    let partial: Vec<f64> = if blocks.len() <= 1 {
        blocks.into_iter().map(block).collect()
    } else {
        blocks.into_par_iter().map(block).collect()
    };
    partial.iter().sum()
}

/// out = Q·M (cells × K), Q with the pattern of `x` and values `q`.
#[track_caller]
pub(crate) fn project_values(x: &CsrMatrix, q: &[f64], m: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) {
    assert_eq!(q.len(), x.nnz(), "q has one entry per non-zero");
    assert_eq!(m.nrows(), x.n_cols(), "M rows = genes");
    let k = m.ncols();
    assert_eq!(out.dim(), (x.n_rows(), k), "output shape");
    let ms = m.as_slice().expect("M in standard layout");
    let os = out.as_slice_mut().expect("output in standard layout");
    let block = |(blk, chunk): (usize, &mut [f64])| {
        let first = blk * CELL_BLOCK;
        for (i, row_out) in chunk.chunks_mut(k).enumerate() {
            let c = first + i;
            row_out.fill(0.0);
            let (s, e) = (x.indptr()[c], x.indptr()[c + 1]);
            for (g, &v) in x.indices().slice(s..e).iter().zip(&q[s..e]) {
                let mg = &ms[g as usize * k..(g as usize + 1) * k];
                for (o, &w) in row_out.iter_mut().zip(mg) {
                    *o += v * w;
                }
            }
        }
    };
    if x.n_rows() <= CELL_BLOCK {
        block((0, os));
    } else {
        os.par_chunks_mut(CELL_BLOCK * k.max(1))
            .enumerate()
            .for_each(block);
    }
}

/// b += Qᵀ·H (genes × K), Q with the pattern of `x` and values `q`; partial
/// sums per fixed cell block are added in block order.
#[track_caller]
pub(crate) fn accumulate_values_t(x: &CsrMatrix, q: &[f64], h: ArrayView2<f64>, mut b: ArrayViewMut2<f64>) {
    assert_eq!(q.len(), x.nnz(), "q has one entry per non-zero");
    assert_eq!(h.nrows(), x.n_rows(), "H rows = cells");
    let k = h.ncols();
    assert_eq!(b.dim(), (x.n_cols(), k), "B shape");
    let hs = h.as_slice().expect("H in standard layout");
    let n = x.n_rows();
    let scatter = |range: std::ops::Range<usize>, acc: &mut [f64]| {
        for c in range {
            let hc = &hs[c * k..(c + 1) * k];
            let (s, e) = (x.indptr()[c], x.indptr()[c + 1]);
            for (g, &v) in x.indices().slice(s..e).iter().zip(&q[s..e]) {
                let row = &mut acc[g as usize * k..(g as usize + 1) * k];
                for (o, &hv) in row.iter_mut().zip(hc) {
                    *o += v * hv;
                }
            }
        }
    };
    let bs = b.as_slice_mut().expect("B in standard layout");
    let n_blocks = n.div_ceil(CELL_BLOCK);
    if n_blocks <= 1 {
        scatter(0..n, bs);
        return;
    }
    let partials: Vec<Vec<f64>> = (0..n_blocks)
        .into_par_iter()
        .map(|blk| {
            let mut acc = vec![0.0; bs.len()];
            scatter(blk * CELL_BLOCK..((blk + 1) * CELL_BLOCK).min(n), &mut acc);
            acc
        })
        .collect();
    for p in &partials {
        for (o, v) in bs.iter_mut().zip(p) {
            *o += v;
        }
    }
}

/// Column sums of a standard-layout matrix (length = columns), summed in row order.
pub(crate) fn column_sums(a: ArrayView2<f64>) -> Vec<f64> {
    let mut s = vec![0.0; a.ncols()];
    for row in a.rows() {
        for (o, &v) in s.iter_mut().zip(row) {
            *o += v;
        }
    }
    s
}

/// Σ_nz x (as f64).
pub(crate) fn data_sum(x: &CsrMatrix) -> f64 {
    x.data().iter().map(|&v| f64::from(v)).sum()
}

/// D(X‖H Mᵀ) = Σ_nz x ln(x/y) − Σ x + Σ_all y, with Σ_all y = Σ_j (Σ_c h_cj)(Σ_g m_gj)
/// in closed form; `xlogx` = the value [`kl_ratio`] returned.
pub(crate) fn kl_divergence(xlogx: f64, x_sum: f64, h: ArrayView2<f64>, m: ArrayView2<f64>) -> f64 {
    let total: f64 = column_sums(h)
        .iter()
        .zip(column_sums(m))
        .map(|(a, b)| a * b)
        .sum();
    xlogx - x_sum + total
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn example(n: usize) -> CsrMatrix {
        let dense: Vec<f32> = (0..n * 6)
            .map(|i| {
                if (i * 7) % 5 < 2 {
                    ((i % 11) as f32) * 0.5
                } else {
                    0.0
                }
            })
            .collect();
        CsrMatrix::from_dense(n, 6, &dense)
    }

    #[test]
    fn ratio_and_products_match_dense_formulas() {
        // More cells than one block, so the blocked paths run.
        let n = 2 * CELL_BLOCK + 9;
        let x = example(n);
        let h = Array2::from_shape_fn((n, 3), |(i, j)| 0.1 + ((i * 3 + j) % 7) as f64 * 0.3);
        let m = Array2::from_shape_fn((6, 3), |(g, j)| 0.2 + ((g + 2 * j) % 4) as f64 * 0.5);
        let mut q = vec![0.0; x.nnz()];
        let xlogx = kl_ratio(&x, h.view(), m.view(), 1e-16, &mut q);
        let xd = x.to_dense();
        let y = h.dot(&m.t());
        let qd = Array2::from_shape_fn(xd.dim(), |(c, g)| {
            if xd[[c, g]] != 0.0 {
                xd[[c, g]] / y[[c, g]]
            } else {
                0.0
            }
        });
        let expect_xlogx: f64 = xd
            .iter()
            .zip(&y)
            .filter(|(v, _)| **v > 0.0)
            .map(|(v, y)| v * (v / y).ln())
            .sum();
        assert!((xlogx - expect_xlogx).abs() < 1e-10 * expect_xlogx.abs().max(1.0));
        let mut qm = Array2::zeros((n, 3));
        project_values(&x, &q, m.view(), qm.view_mut());
        assert!((&qm - &qd.dot(&m)).iter().all(|v| v.abs() < 1e-9));
        let mut qth = Array2::from_elem((6, 3), 1.0);
        accumulate_values_t(&x, &q, h.view(), qth.view_mut());
        assert!((&qth - &(qd.t().dot(&h) + 1.0)).iter().all(|v| v.abs() < 1e-8));
        let d = kl_divergence(xlogx, data_sum(&x), h.view(), m.view());
        let expect: f64 = xd
            .iter()
            .zip(&y)
            .map(|(v, y)| if *v > 0.0 { v * (v / y).ln() - v + y } else { *y })
            .sum();
        assert!((d - expect).abs() < 1e-9 * expect);
    }
}
