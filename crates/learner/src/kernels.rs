//! The two sparse × dense products every solver is built on.
//!
//! With X a cells × genes CSR block and M a genes × K dense matrix
//! (row-major, so a gene's K loadings are contiguous):
//! - [`project`]: R = X·M (cells × K), i.e. the transpose of Mᵀ Xᵀ = (W+V)ᵀX
//!   in the gene × cell notation of ALGORITHMS.md §2; it gathers rows of M.
//! - [`accumulate_xt_h`]: B += s · Xᵀ·H (genes × K) for H cells × K; it
//!   scatters into rows of B.
//!
//! Both are parallel over fixed blocks of cells and reduce in a fixed order,
//! so their results do not depend on the number of threads.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::sparse::CsrMatrix;

/// Cells per parallel work unit. Fixed (not derived from the thread count)
/// so reductions happen in the same order on any machine.
pub(crate) const CELL_BLOCK: usize = 512;

/// R = X·M: for each cell c, r_c = Σ_g x_cg · M_g· (cells × K).
///
/// Shapes: `x` n × m, `m` m × K (standard layout) → n × K.
#[track_caller]
pub fn project(x: &CsrMatrix, m: ArrayView2<f64>) -> Array2<f64> {
    let k = m.ncols();
    let mut r = Array2::<f64>::zeros((x.n_rows(), k));
    project_into(x, m, r.view_mut());
    r
}

/// [`project`] into a caller's buffer (`n × K`, standard layout).
#[track_caller]
pub fn project_into(x: &CsrMatrix, m: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) {
    assert_eq!(
        x.n_cols(),
        m.nrows(),
        "X has {} genes, M has {} rows",
        x.n_cols(),
        m.nrows()
    );
    assert_eq!(out.dim(), (x.n_rows(), m.ncols()), "output shape");
    let k = m.ncols();
    let m = m.as_standard_layout();
    let ms = m.as_slice().expect("standard layout");
    let out_s = out.as_slice_mut().expect("output must be in standard layout");
    out_s
        .par_chunks_mut(CELL_BLOCK * k.max(1))
        .enumerate()
        .for_each(|(blk, chunk)| {
            let first = blk * CELL_BLOCK;
            for (i, row_out) in chunk.chunks_mut(k).enumerate() {
                row_out.fill(0.0);
                let (cols, vals) = x.row(first + i);
                for (&g, &v) in cols.iter().zip(vals) {
                    let mg = &ms[g as usize * k..(g as usize + 1) * k];
                    let v = f64::from(v);
                    for (o, &w) in row_out.iter_mut().zip(mg) {
                        *o += v * w;
                    }
                }
            }
        });
}

/// B += s · Xᵀ·H: for each cell c and each non-zero x_cg, B_g· += s·x_cg·h_c.
///
/// Shapes: `x` n × m, `h` n × K, `b` m × K. Partial sums per fixed block of
/// cells are added to `b` in block order (deterministic for any thread count).
#[track_caller]
pub fn accumulate_xt_h(x: &CsrMatrix, h: ArrayView2<f64>, scale: f64, mut b: ArrayViewMut2<f64>) {
    assert_eq!(
        x.n_rows(),
        h.nrows(),
        "X has {} cells, H has {} rows",
        x.n_rows(),
        h.nrows()
    );
    assert_eq!(b.dim(), (x.n_cols(), h.ncols()), "B shape");
    let k = h.ncols();
    let h = h.as_standard_layout();
    let hs = h.as_slice().expect("standard layout");
    let n = x.n_rows();
    let n_blocks = n.div_ceil(CELL_BLOCK);
    let scatter = |range: std::ops::Range<usize>, acc: &mut [f64]| {
        for c in range {
            let (cols, vals) = x.row(c);
            let hc = &hs[c * k..(c + 1) * k];
            for (&g, &v) in cols.iter().zip(vals) {
                let v = scale * f64::from(v);
                let row = &mut acc[g as usize * k..(g as usize + 1) * k];
                for (o, &hv) in row.iter_mut().zip(hc) {
                    *o += v * hv;
                }
            }
        }
    };
    let bs = b.as_slice_mut().expect("B must be in standard layout");
    if n_blocks <= 1 {
        scatter(0..n, bs);
        return;
    }
    // Partials per block, then an ordered sum.
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

/// HᵀH (K × K) for H stored cells × K, summed over fixed cell blocks in order.
pub fn gram_of_rows(h: ArrayView2<f64>) -> Array2<f64> {
    let k = h.ncols();
    let mut acc = Array2::<f64>::zeros((k, k));
    for blk in h.axis_chunks_iter(Axis(0), CELL_BLOCK) {
        acc += &blk.t().dot(&blk);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn example() -> CsrMatrix {
        CsrMatrix::from_dense(
            3,
            4,
            &[1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 3.0, 0.0, 1.0],
        )
    }

    #[test]
    fn project_matches_dense_product() {
        let x = example();
        let m = array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]];
        let r = project(&x, m.view());
        let expect = x.to_dense().dot(&m);
        assert!((&r - &expect).iter().all(|v| v.abs() < 1e-12));
    }

    #[test]
    fn accumulate_matches_dense_product() {
        let x = example();
        let h = array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]];
        let mut b = Array2::from_elem((4, 2), 1.0);
        accumulate_xt_h(&x, h.view(), 0.5, b.view_mut());
        let expect = x.to_dense().t().dot(&h) * 0.5 + 1.0;
        assert!((&b - &expect).iter().all(|v| v.abs() < 1e-12));
    }

    #[test]
    fn accumulate_is_blocked_and_exact_over_many_cells() {
        let n = 3 * CELL_BLOCK + 7;
        let dense: Vec<f32> = (0..n * 5).map(|i| ((i * 7919) % 13) as f32 * 0.25).collect();
        let x = CsrMatrix::from_dense(n, 5, &dense);
        let h = Array2::from_shape_fn((n, 3), |(i, j)| ((i + 2 * j) % 5) as f64);
        let mut b = Array2::zeros((5, 3));
        accumulate_xt_h(&x, h.view(), 1.0, b.view_mut());
        let expect = x.to_dense().t().dot(&h);
        assert!((&b - &expect).iter().all(|v| v.abs() < 1e-9));
        let g = gram_of_rows(h.view());
        assert!((&g - &h.t().dot(&h)).iter().all(|v| v.abs() < 1e-9));
    }
}
