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

use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use crate::simd::avx2_dispatch;
use crate::sparse::CsrMatrix;

/// Cells per parallel work unit of [`project`]. Fixed (not derived from
/// the thread count) so results are the same on any machine.
pub(crate) const CELL_BLOCK: usize = 512;

/// Number of cell chunks whose partial B sums [`accumulate_xt_h`] adds in
/// order: fixed, so the reduction order never depends on the thread count,
/// and small, so the partials (chunks × genes × K) stay cheap.
const B_CHUNKS: usize = 4;

/// Calls `$f::<K>` for the common factor counts (the inner loops then have
/// a compile-time length and vectorize fully: ~2.5× faster here) and
/// `$f::<0>` (run-time length) otherwise.
macro_rules! dispatch_k {
    ($k:expr, $f:ident ( $($arg:expr),* )) => {
        match $k {
            5 => $f::<5>($($arg),*),
            8 => $f::<8>($($arg),*),
            10 => $f::<10>($($arg),*),
            12 => $f::<12>($($arg),*),
            15 => $f::<15>($($arg),*),
            16 => $f::<16>($($arg),*),
            20 => $f::<20>($($arg),*),
            24 => $f::<24>($($arg),*),
            25 => $f::<25>($($arg),*),
            30 => $f::<30>($($arg),*),
            32 => $f::<32>($($arg),*),
            40 => $f::<40>($($arg),*),
            50 => $f::<50>($($arg),*),
            60 => $f::<60>($($arg),*),
            64 => $f::<64>($($arg),*),
            _ => $f::<0>($($arg),*),
        }
    };
}

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

avx2_dispatch! {
    /// Rows `first..` of R into `out` (rows × k); `K` = k at compile time, or 0.
    fn project_rows / project_rows_avx2 / project_rows_impl<const K: usize>(
        x: &CsrMatrix,
        ms: &[f64],
        k: usize,
        first: usize,
        out: &mut [f64],
    ) {
        for (i, row_out) in out.chunks_exact_mut(k).enumerate() {
            let (cols, vals) = x.row(first + i);
            if K > 0 {
                // Even and odd non-zeros in two accumulators: two independent
                // add chains per register instead of one.
                let gather = |g: u32| -> &[f64; K] {
                    ms[g as usize * K..(g as usize + 1) * K]
                        .try_into()
                        .expect("K values")
                };
                let (mut even, mut odd) = ([0.0f64; K], [0.0f64; K]);
                let mut pairs = cols.chunks_exact(2).zip(vals.chunks_exact(2));
                for (g2, v2) in &mut pairs {
                    let (m0, m1) = (gather(g2[0]), gather(g2[1]));
                    let (v0, v1) = (f64::from(v2[0]), f64::from(v2[1]));
                    for j in 0..K {
                        even[j] += v0 * m0[j];
                        odd[j] += v1 * m1[j];
                    }
                }
                if cols.len() % 2 == 1 {
                    let (g, v) = (cols[cols.len() - 1], f64::from(vals[vals.len() - 1]));
                    let m0 = gather(g);
                    for j in 0..K {
                        even[j] += v * m0[j];
                    }
                }
                for ((o, &e), &d) in row_out.iter_mut().zip(&even).zip(&odd) {
                    *o = e + d;
                }
            } else {
                row_out.fill(0.0);
                for (&g, &v) in cols.iter().zip(vals) {
                    let mg = &ms[g as usize * k..(g as usize + 1) * k];
                    let v = f64::from(v);
                    for (o, &w) in row_out.iter_mut().zip(mg) {
                        *o += v * w;
                    }
                }
            }
        }
    }
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
    if k == 0 {
        return;
    }
    let m = m.as_standard_layout();
    let ms = m.as_slice().expect("standard layout");
    let out_s = out.as_slice_mut().expect("output must be in standard layout");
    out_s
        .par_chunks_mut(CELL_BLOCK * k)
        .enumerate()
        .for_each(|(blk, chunk)| {
            dispatch_k!(k, project_rows(x, ms, k, blk * CELL_BLOCK, chunk));
        });
}

avx2_dispatch! {
    /// acc += s · X[range]ᵀ · H[range] (scatter of each non-zero into its gene row).
    fn scatter_rows / scatter_rows_avx2 / scatter_rows_impl<const K: usize>(
        x: &CsrMatrix,
        hs: &[f64],
        k: usize,
        scale: f64,
        range: std::ops::Range<usize>,
        acc: &mut [f64],
    ) {
        for c in range {
            let (cols, vals) = x.row(c);
            if K > 0 {
                let hc: &[f64; K] = hs[c * K..(c + 1) * K].try_into().expect("K values");
                for (&g, &v) in cols.iter().zip(vals) {
                    let v = scale * f64::from(v);
                    let row: &mut [f64; K] = (&mut acc[g as usize * K..(g as usize + 1) * K])
                        .try_into()
                        .expect("K values");
                    for j in 0..K {
                        row[j] += v * hc[j];
                    }
                }
            } else {
                let hc = &hs[c * k..(c + 1) * k];
                for (&g, &v) in cols.iter().zip(vals) {
                    let v = scale * f64::from(v);
                    let row = &mut acc[g as usize * k..(g as usize + 1) * k];
                    for (o, &hv) in row.iter_mut().zip(hc) {
                        *o += v * hv;
                    }
                }
            }
        }
    }
}

/// B += s · Xᵀ·H: for each cell c and each non-zero x_cg, B_g· += s·x_cg·h_c.
///
/// Shapes: `x` n × m, `h` n × K, `b` m × K. The cells are cut into a fixed
/// number of chunks: the first adds straight into `b`, the others into
/// partial sums that are then added to `b` in chunk order (deterministic
/// for any thread count).
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
    if k == 0 {
        return;
    }
    let h = h.as_standard_layout();
    let hs = h.as_slice().expect("standard layout");
    let n = x.n_rows();
    let bs = b.as_slice_mut().expect("B must be in standard layout");
    if n < 2 * CELL_BLOCK {
        dispatch_k!(k, scatter_rows(x, hs, k, scale, 0..n, bs));
        return;
    }
    let per = n.div_ceil(B_CHUNKS);
    // Chunk 0 adds straight into B; chunks 1.. into zeroed partials (reused
    // across calls), then added to B in chunk order.
    let mut partials = take_partials(B_CHUNKS - 1, bs.len());
    {
        let mut targets: Vec<&mut [f64]> = Vec::with_capacity(B_CHUNKS);
        targets.push(&mut *bs);
        targets.extend(partials.iter_mut().map(Vec::as_mut_slice));
        targets.par_iter_mut().enumerate().for_each(|(c, acc)| {
            let range = c * per..((c + 1) * per).min(n);
            dispatch_k!(k, scatter_rows(x, hs, k, scale, range, acc));
        });
    }
    for p in &partials {
        for (o, v) in bs.iter_mut().zip(p) {
            *o += v;
        }
    }
    give_back_partials(partials);
}

/// Partial-sum buffers of [`accumulate_xt_h`] kept between calls, so that a
/// mini-batch does not allocate (and fault in) fresh pages for them.
static PARTIALS: std::sync::Mutex<Vec<Vec<f64>>> = std::sync::Mutex::new(Vec::new());

/// `count` zeroed buffers of length `len`, from the pool when it has them.
fn take_partials(count: usize, len: usize) -> Vec<Vec<f64>> {
    let mut pool = PARTIALS.lock().unwrap_or_else(|e| e.into_inner());
    (0..count)
        .map(|_| {
            let mut v = pool.pop().unwrap_or_default();
            v.clear();
            v.resize(len, 0.0);
            v
        })
        .collect()
}

/// Returns buffers to the pool (at most a few calls' worth are kept).
fn give_back_partials(bufs: Vec<Vec<f64>>) {
    let mut pool = PARTIALS.lock().unwrap_or_else(|e| e.into_inner());
    for b in bufs {
        if pool.len() < 4 * B_CHUNKS {
            pool.push(b);
        }
    }
}

/// HᵀH (K × K) for H stored rows × K: the blocks' products over fixed
/// blocks of rows are formed in parallel and summed in block order (the
/// same bits for any thread count).
pub fn gram_of_rows(h: ArrayView2<f64>) -> Array2<f64> {
    let k = h.ncols();
    let n = h.nrows();
    let parts: Vec<Array2<f64>> = (0..n.div_ceil(CELL_BLOCK))
        .into_par_iter()
        .map(|b| {
            let blk = h.slice(s![b * CELL_BLOCK..((b + 1) * CELL_BLOCK).min(n), ..]);
            blk.t().dot(&blk)
        })
        .collect();
    let mut acc = Array2::<f64>::zeros((k, k));
    for p in &parts {
        acc += p;
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
    fn kernels_are_exact_over_many_cells_for_specialized_and_generic_k() {
        let n = 3 * CELL_BLOCK + 7;
        let dense: Vec<f32> = (0..n * 9).map(|i| ((i * 7919) % 13) as f32 * 0.25).collect();
        let x = CsrMatrix::from_dense(n, 9, &dense);
        // 20 is specialized at compile time, 3 and 21 take the generic path.
        for k in [3, 20, 21] {
            let h = Array2::from_shape_fn((n, k), |(i, j)| ((i + 2 * j) % 5) as f64);
            let mut b = Array2::zeros((9, k));
            accumulate_xt_h(&x, h.view(), 1.0, b.view_mut());
            let expect = x.to_dense().t().dot(&h);
            assert!((&b - &expect).iter().all(|v| v.abs() < 1e-9), "k = {k}");
            let m = Array2::from_shape_fn((9, k), |(i, j)| (i * j % 7) as f64 * 0.5);
            let r = project(&x, m.view());
            assert!(
                (&r - &x.to_dense().dot(&m)).iter().all(|v| v.abs() < 1e-9),
                "k = {k}"
            );
            let g = gram_of_rows(h.view());
            assert!((&g - &h.t().dot(&h)).iter().all(|v| v.abs() < 1e-9));
        }
    }
}
