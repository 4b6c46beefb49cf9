//! The two sparse × dense products of online learning in single precision:
//! the dense factor is rounded to f32, the per-cell and per-chunk sums run
//! in f32 (eight lanes per AVX2 register instead of four), and everything
//! that is kept — R, B — is f64.
//!
//! - [`project_f32`]: R = X·M (cells × K), as [`crate::project`].
//! - [`accumulate_xt_h_f32`]: B += s·XᵀH (genes × K), as
//!   [`crate::accumulate_xt_h`].
//!
//! Accuracy: each entry is a sum of n terms (n = a cell's or a chunk's
//! non-zeros in a gene) rounded in f32, so its relative error is about
//! √n·2⁻²⁴ (≈ 1e-6 for n = 400) instead of ≈ 1e-15; the online objective
//! moves by far less than the 1e-4 relative that the performance issue
//! allows (7e-10 in the test
//! `online::tests::f32_products_move_the_online_objective_by_less_than_1e_5`,
//! 2.4e-10 on the 50k-cell comparison run). Every result is a fixed
//! sequence of operations per row or per chunk, so results do not depend
//! on the number of threads.
//!
//! Rows of the packed factor are padded with zeros to a multiple of 8
//! (K 20 → 24), so a row is three whole registers.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use crate::kernels::double::{
    check_accumulate_shapes, check_project_shapes, project_rows_generic, scatter_rows_generic, B_CHUNKS,
    CELL_BLOCK,
};
use crate::kernels::pool::BufferPool;
use crate::kernels::simd::{avx2_dispatch, dispatch_const};
use crate::sparse::CsrMatrix;

/// Calls `$f::<KP>` for the padded widths up to 64 and `$f::<0>`
/// (run-time width) otherwise.
macro_rules! dispatch_kp {
    ($kp:expr, $f:ident ( $($arg:expr),* )) => {
        dispatch_const!($kp; 8, 16, 24, 32, 40, 48, 56, 64; $f($($arg),*))
    };
}

/// K rounded up to a multiple of 8.
pub(crate) fn padded(k: usize) -> usize {
    k.div_ceil(8) * 8
}

/// `m` (rows × K, f64) as f32 rows of `kp` values, zero-padded.
pub(crate) fn pack_rows(m: ArrayView2<f64>, kp: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; m.nrows() * kp];
    pack_rows_into(m, kp, &mut out);
    out
}

/// [`pack_rows`] into `out` (zeroed, m.nrows() × kp).
fn pack_rows_into(m: ArrayView2<f64>, kp: usize, out: &mut [f32]) {
    for (dst, src) in out.chunks_exact_mut(kp).zip(m.rows()) {
        for (d, &s) in dst.iter_mut().zip(src.iter()) {
            *d = s as f32;
        }
    }
}

avx2_dispatch! {
    /// Rows `first..` of R into `out` (rows × k, f64) from the packed M
    /// (`kp` per row); `KP` = kp at compile time, or 0.
    fn project_rows / project_rows_avx2 / project_rows_impl<const KP: usize>(
        x: &CsrMatrix,
        ms: &[f32],
        k: usize,
        kp: usize,
        first: usize,
        out: &mut [f64],
    ) {
        project_rows_generic::<f32, KP>(x, ms, k, kp, first, out);
    }
}

/// Rows `first..first + out.len() / k` of [`project_f32`]'s R into `out`
/// (rows × k) from M packed by [`pack_rows`] (`kp` = [`padded`]`(k)` per
/// row); the same per-row arithmetic.
pub(crate) fn project_block_f32(
    x: &CsrMatrix,
    ms: &[f32],
    k: usize,
    kp: usize,
    first: usize,
    out: &mut [f64],
) {
    if k > 0 {
        dispatch_kp!(kp, project_rows(x, ms, k, kp, first, out));
    }
}

/// R = X·M with M rounded to f32 and f32 sums per cell (see the module
/// docs for the accuracy): r_c = Σ_g x_cg·M_g· (cells × K, f64).
///
/// Shapes: `x` n × m, `m` m × K → n × K.
#[track_caller]
pub fn project_f32(x: &CsrMatrix, m: ArrayView2<f64>) -> Array2<f64> {
    check_project_shapes(x, m);
    let k = m.ncols();
    let mut r = Array2::<f64>::zeros((x.n_rows(), k));
    if k == 0 {
        return r;
    }
    let kp = padded(k);
    let ms = pack_rows(m, kp);
    let out = r.as_slice_mut().expect("fresh array");
    out.par_chunks_mut(CELL_BLOCK * k)
        .enumerate()
        .for_each(|(blk, chunk)| {
            project_block_f32(x, &ms, k, kp, blk * CELL_BLOCK, chunk);
        });
    r
}

avx2_dispatch! {
    /// acc += X[range]ᵀ·H[range] in f32 (`hs` packed, `kp` per row; `acc`
    /// genes × kp): each non-zero adds x_cg·h_c to its gene's row.
    fn scatter_rows / scatter_rows_avx2 / scatter_rows_impl<const KP: usize>(
        x: &CsrMatrix,
        hs: &[f32],
        kp: usize,
        range: std::ops::Range<usize>,
        acc: &mut [f32],
    ) {
        // Scale 1 is exact; s is applied once per entry of B below.
        scatter_rows_generic::<f32, KP>(x, hs, kp, 1.0, range, acc);
    }
}

/// B += s·XᵀH with H rounded to f32: the cells are cut into a fixed
/// number of chunks, each scattered (x_cg·h_c into gene g's row) into its
/// own f32 partial sum P_t; then B_gj += s·(((P_0 + P_1) + P_2) + P_3) in
/// f64 (the same pieces the online step uses for all datasets at once:
/// `scatter_partials_f32` and `ScatteredPartials::gene_sums`).
///
/// Shapes: `x` n × m, `h` n × K, `b` m × K.
#[track_caller]
pub fn accumulate_xt_h_f32(x: &CsrMatrix, h: ArrayView2<f64>, scale: f64, mut b: ArrayViewMut2<f64>) {
    check_accumulate_shapes(x, h, b.view());
    let k = h.ncols();
    if k == 0 {
        return;
    }
    let partials = scatter_partials_f32(&[(x, h)]);
    let mut sums = vec![0.0f64; k];
    for (g, mut brow) in b.rows_mut().into_iter().enumerate() {
        partials.gene_sums(0, g, &mut sums);
        for (o, &s) in brow.iter_mut().zip(sums.iter()) {
            *o += scale * s;
        }
    }
}

/// The f32 partial sums P_{j,t} of X_jᵀH_j for several blocks j
/// ([`scatter_partials_f32`]); buffers go back to a pool when dropped.
pub(crate) struct ScatteredPartials {
    k: usize,
    kp: usize,
    /// Block j's [`B_CHUNKS`] partials at `j * B_CHUNKS..`, genes × kp each.
    partials: Vec<Vec<f32>>,
    /// Each block's H rounded to f32 (cells × kp).
    packed_h: Vec<Vec<f32>>,
}

impl ScatteredPartials {
    /// (X_jᵀH_j)_g· = Σ_t P_{j,t}[g] added in f64 in chunk order, into `sums` (K).
    pub(crate) fn gene_sums(&self, j: usize, g: usize, sums: &mut [f64]) {
        let span = g * self.kp..g * self.kp + self.k;
        sums.fill(0.0);
        for p in &self.partials[j * B_CHUNKS..(j + 1) * B_CHUNKS] {
            for (s, &v) in sums.iter_mut().zip(&p[span.clone()]) {
                *s += f64::from(v);
            }
        }
    }
}

impl Drop for ScatteredPartials {
    fn drop(&mut self) {
        PARTIALS.give_back(std::mem::take(&mut self.partials));
        PACKED_H.give_back(std::mem::take(&mut self.packed_h));
    }
}

/// For every block j = (X_j, H_j) (cells × genes, cells × K, all with the
/// same genes and K): H_j rounded to f32, its cells cut into [`B_CHUNKS`]
/// fixed chunks, and each chunk's x_cg·h_c scattered into gene g's row of
/// its own f32 partial sum, all chunks of all blocks in one parallel pass
/// (each zeroes its partial first, on the thread that fills it).
#[track_caller]
pub(crate) fn scatter_partials_f32(blocks: &[(&CsrMatrix, ArrayView2<f64>)]) -> ScatteredPartials {
    let k = blocks.first().map_or(0, |(_, h)| h.ncols());
    let genes = blocks.first().map_or(0, |(x, _)| x.n_cols());
    let kp = padded(k);
    let packed_h: Vec<Vec<f32>> = blocks
        .iter()
        .map(|(x, h)| {
            assert_eq!(
                x.n_rows(),
                h.nrows(),
                "X has {} cells, H has {} rows",
                x.n_rows(),
                h.nrows()
            );
            assert_eq!(
                (x.n_cols(), h.ncols()),
                (genes, k),
                "every block has the same genes and K"
            );
            let mut rows = PACKED_H.take_one(h.nrows() * kp);
            pack_rows_into(*h, kp, &mut rows);
            rows
        })
        .collect();
    let mut partials = PARTIALS.take_any(blocks.len() * B_CHUNKS);
    partials.par_iter_mut().enumerate().for_each(|(u, acc)| {
        let (j, c) = (u / B_CHUNKS, u % B_CHUNKS);
        acc.clear();
        acc.resize(genes * kp, 0.0);
        let x = blocks[j].0;
        let n = x.n_rows();
        let per = n.div_ceil(B_CHUNKS).max(1);
        let range = (c * per).min(n)..((c + 1) * per).min(n);
        if k > 0 {
            dispatch_kp!(kp, scatter_rows(x, &packed_h[j], kp, range, acc));
        }
    });
    ScatteredPartials {
        k,
        kp,
        partials,
        packed_h,
    }
}

/// The f32 partial sums of [`scatter_partials_f32`].
static PARTIALS: BufferPool<f32> = BufferPool::new();

/// The f32 copies of H of [`scatter_partials_f32`].
static PACKED_H: BufferPool<f32> = BufferPool::new();

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::double::{accumulate_xt_h, project};
    use crate::kernels::half::project_f16;
    use crate::testutil::narrow_copy;

    #[test]
    fn every_product_gives_the_same_bits_with_16_bit_column_indices() {
        let builds = crate::kernels::simd::Builds::take();
        for (k, baseline) in [
            (3, false),
            (20, false),
            (40, false),
            (70, false),
            (20, true),
            (70, true),
        ] {
            builds.baseline(baseline);
            let (x, m, h) = problem(2 * CELL_BLOCK + 9, 300, k);
            let narrow = narrow_copy(&x, 37);
            assert!(narrow.row(0).0.is_narrow());
            let same = |a: &Array2<f64>, b: &Array2<f64>, what: &str| {
                assert!(
                    a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits()),
                    "{what}, K = {k}"
                );
            };
            same(&project(&narrow, m.view()), &project(&x, m.view()), "R f64");
            same(
                &project_f32(&narrow, m.view()),
                &project_f32(&x, m.view()),
                "R f32",
            );
            same(
                &project_f16(&narrow, m.view()),
                &project_f16(&x, m.view()),
                "R f16",
            );
            let scatter = |x: &CsrMatrix, single: bool| {
                let mut b = Array2::<f64>::zeros((x.n_cols(), k));
                if single {
                    accumulate_xt_h_f32(x, h.view(), 0.5, b.view_mut());
                } else {
                    accumulate_xt_h(x, h.view(), 0.5, b.view_mut());
                }
                b
            };
            same(&scatter(&narrow, false), &scatter(&x, false), "B f64");
            same(&scatter(&narrow, true), &scatter(&x, true), "B f32");
        }
    }

    /// max |a − b| / max |b|.
    fn rel_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
        let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale
    }

    fn problem(n: usize, genes: usize, k: usize) -> (CsrMatrix, Array2<f64>, Array2<f64>) {
        let dense: Vec<f32> = (0..n * genes)
            .map(|i| {
                if (i * 7919) % 5 < 2 {
                    ((i * 31) % 13) as f32 * 0.37
                } else {
                    0.0
                }
            })
            .collect();
        let x = CsrMatrix::from_dense(n, genes, &dense);
        let m = Array2::from_shape_fn((genes, k), |(i, j)| ((i * 3 + j * 7) % 11) as f64 * 0.173 + 0.01);
        let h = Array2::from_shape_fn((n, k), |(i, j)| ((i + 2 * j) % 5) as f64 * 0.41);
        (x, m, h)
    }

    #[test]
    fn f32_products_agree_with_f64_to_single_precision() {
        // 20 and 40 are compile-time widths (24, 40), 3 pads to 8, 70 takes
        // the run-time path (72); the cell count spans several blocks and
        // an odd last one.
        for k in [3, 20, 40, 70] {
            let (x, m, h) = problem(3 * CELL_BLOCK + 7, 50, k);
            let r = project_f32(&x, m.view());
            let d = rel_diff(&r, &project(&x, m.view()));
            assert!(d < 1e-6, "project k {k}: {d:e}");
            let mut b32 = Array2::from_elem((50, k), 0.5);
            let mut b64 = b32.clone();
            accumulate_xt_h_f32(&x, h.view(), 0.25, b32.view_mut());
            accumulate_xt_h(&x, h.view(), 0.25, b64.view_mut());
            let d = rel_diff(&b32, &b64);
            assert!(d < 1e-6, "accumulate k {k}: {d:e}");
        }
    }

    #[test]
    fn f32_products_are_exact_on_small_integers() {
        // Integer data and factors: every f32 sum is exact, so the results
        // equal the dense f64 products bit for bit.
        let dense: Vec<f32> = (0..40 * 9).map(|i| ((i * 7) % 4) as f32).collect();
        let x = CsrMatrix::from_dense(40, 9, &dense);
        let m = Array2::from_shape_fn((9, 5), |(i, j)| ((i + j) % 3) as f64);
        let h = Array2::from_shape_fn((40, 5), |(i, j)| ((i * j) % 4) as f64);
        assert_eq!(project_f32(&x, m.view()), x.to_dense().dot(&m));
        let mut b = Array2::zeros((9, 5));
        accumulate_xt_h_f32(&x, h.view(), 1.0, b.view_mut());
        assert_eq!(b, x.to_dense().t().dot(&h));
    }

    #[test]
    fn empty_blocks_and_zero_k_are_handled() {
        let x = CsrMatrix::empty(6);
        let m = Array2::<f64>::ones((6, 4));
        assert_eq!(project_f32(&x, m.view()).dim(), (0, 4));
        let mut b = Array2::from_elem((6, 4), 2.0);
        accumulate_xt_h_f32(&x, Array2::zeros((0, 4)).view(), 1.0, b.view_mut());
        assert!(b.iter().all(|&v| v == 2.0));
        let (x, _, _) = problem(10, 6, 1);
        assert_eq!(project_f32(&x, Array2::zeros((6, 0)).view()).dim(), (10, 0));
    }
}
