//! The two sparse × dense products every solver is built on.
//!
//! With X a cells × genes CSR block and M a genes × K dense matrix
//! (row-major, so a gene's K loadings are contiguous):
//! - [`project`]: R = X·M (cells × K), i.e. the transpose of Mᵀ Xᵀ = (W+V)ᵀX
//!   in the gene × cell notation of docs/algorithms.md §2; it gathers rows of M.
//! - [`accumulate_xt_h`]: B += s · Xᵀ·H (genes × K) for H cells × K; it
//!   scatters into rows of B.
//!
//! Both are parallel over fixed blocks of cells and reduce in a fixed order,
//! so their results do not depend on the number of threads. Online learning
//! runs their single-precision versions (`kernels::single`), which share the
//! row kernels below through [`Lane`].

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use crate::kernels::pool::BufferPool;
use crate::kernels::simd::{avx2_dispatch, dispatch_const};
use crate::sparse::{with_cols, CsrMatrix};

/// Cells per parallel work unit of [`project`]. Fixed (not derived from
/// the thread count) so results are the same on any machine.
pub const CELL_BLOCK: usize = 512;

/// Number of cell chunks whose partial B sums [`accumulate_xt_h`] adds in
/// order: fixed, so the reduction order never depends on the thread count,
/// and small, so the partials (chunks × genes × K) stay cheap.
pub(crate) const B_CHUNKS: usize = 4;

/// Calls `$f::<K>` for the common factor counts (compile-time loop
/// lengths: ~2.5× faster here) and `$f::<0>` (run-time length) otherwise.
macro_rules! dispatch_k {
    ($k:expr, $f:ident ( $($arg:expr),* )) => {
        dispatch_const!($k; 5, 8, 10, 12, 15, 16, 20, 24, 25, 30, 32, 40, 50, 60, 64; $f($($arg),*))
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

/// The element type of a product's dense factor and sums: f64 (the exact
/// kernels here) or f32 (`kernels::single`).
pub(crate) trait Lane:
    Copy + Default + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self> + std::ops::AddAssign + Into<f64>
{
    /// A stored value in this precision.
    fn from_f32(v: f32) -> Self;
}

impl Lane for f64 {
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        f64::from(v)
    }
}

impl Lane for f32 {
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v
    }
}

/// Rows `first..` of R = X·M into `out` (rows × k, f64), M's rows `stride`
/// apart in `ms`; `K` = stride at compile time, or 0. Per row
/// r_c = Σ_g x_cg·M_g· in T (even and odd non-zeros in two accumulators,
/// added at the end), the first k entries kept.
#[inline(always)]
pub(crate) fn project_rows_generic<T: Lane, const K: usize>(
    x: &CsrMatrix,
    ms: &[T],
    k: usize,
    stride: usize,
    first: usize,
    out: &mut [f64],
) {
    if K > 0 {
        let gather = |g: usize| -> &[T; K] { ms[g * K..(g + 1) * K].try_into().expect("K values") };
        let rows = x.rows(first..first + out.len() / k);
        for (row_out, (cols, vals)) in out.chunks_exact_mut(k).zip(rows) {
            // Two independent add chains per register instead of one.
            let (mut even, mut odd) = ([T::default(); K], [T::default(); K]);
            with_cols!(cols, cols => {
                let mut pairs = cols.chunks_exact(2).zip(vals.chunks_exact(2));
                for (g2, v2) in &mut pairs {
                    let (m0, m1) = (gather(g2[0] as usize), gather(g2[1] as usize));
                    let (v0, v1) = (T::from_f32(v2[0]), T::from_f32(v2[1]));
                    for j in 0..K {
                        even[j] += v0 * m0[j];
                        odd[j] += v1 * m1[j];
                    }
                }
                if cols.len() % 2 == 1 {
                    let m0 = gather(cols[cols.len() - 1] as usize);
                    let v = T::from_f32(vals[vals.len() - 1]);
                    for j in 0..K {
                        even[j] += v * m0[j];
                    }
                }
            });
            for ((o, &e), &d) in row_out.iter_mut().zip(&even).zip(&odd) {
                *o = e.into() + d.into();
            }
        }
    } else {
        let mut acc = vec![T::default(); stride];
        let rows = x.rows(first..first + out.len() / k);
        for (row_out, (cols, vals)) in out.chunks_exact_mut(k).zip(rows) {
            acc.fill(T::default());
            with_cols!(cols, cols => {
                for (&g, &v) in cols.iter().zip(vals) {
                    let mg = &ms[g as usize * stride..(g as usize + 1) * stride];
                    let v = T::from_f32(v);
                    for (a, &w) in acc.iter_mut().zip(mg) {
                        *a += v * w;
                    }
                }
            });
            for (o, &a) in row_out.iter_mut().zip(&acc) {
                *o = a.into();
            }
        }
    }
}

/// acc += s·X[range]ᵀ·H[range] in T: each non-zero adds s·x_cg·h_c to gene
/// g's row (H's and acc's rows `stride` apart; `K` = stride at compile
/// time, or 0).
#[inline(always)]
pub(crate) fn scatter_rows_generic<T: Lane, const K: usize>(
    x: &CsrMatrix,
    hs: &[T],
    stride: usize,
    scale: T,
    range: std::ops::Range<usize>,
    acc: &mut [T],
) {
    for (c, (cols, vals)) in range.clone().zip(x.rows(range)) {
        if K > 0 {
            // A copy: the compiler then keeps h_c in registers instead of
            // reloading it for every non-zero (≈ 10 % of the scatter).
            let hc: [T; K] = hs[c * K..(c + 1) * K].try_into().expect("K values");
            with_cols!(cols, cols => {
                for (&g, &v) in cols.iter().zip(vals) {
                    let v = scale * T::from_f32(v);
                    let row: &mut [T; K] = (&mut acc[g as usize * K..(g as usize + 1) * K])
                        .try_into()
                        .expect("K values");
                    for j in 0..K {
                        row[j] += v * hc[j];
                    }
                }
            });
        } else {
            let hc = &hs[c * stride..(c + 1) * stride];
            with_cols!(cols, cols => {
                for (&g, &v) in cols.iter().zip(vals) {
                    let v = scale * T::from_f32(v);
                    let row = &mut acc[g as usize * stride..(g as usize + 1) * stride];
                    for (o, &hv) in row.iter_mut().zip(hc) {
                        *o += v * hv;
                    }
                }
            });
        }
    }
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
        project_rows_generic::<f64, K>(x, ms, k, k, first, out);
    }
}

/// Rows `first..first + out.len() / k` of R = X·M into `out` (rows × k),
/// M row-major genes × k; the same per-row arithmetic as [`project`].
pub(crate) fn project_block(x: &CsrMatrix, ms: &[f64], k: usize, first: usize, out: &mut [f64]) {
    if k > 0 {
        dispatch_k!(k, project_rows(x, ms, k, first, out));
    }
}

/// Panics unless `x` (n × m) and `m` (m × K) fit R = X·M.
#[track_caller]
pub(crate) fn check_project_shapes(x: &CsrMatrix, m: ArrayView2<f64>) {
    assert_eq!(
        x.n_cols(),
        m.nrows(),
        "X has {} genes, M has {} rows",
        x.n_cols(),
        m.nrows()
    );
}

/// [`project`] into a caller's buffer (`n × K`, standard layout).
#[track_caller]
pub fn project_into(x: &CsrMatrix, m: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) {
    check_project_shapes(x, m);
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
            project_block(x, ms, k, blk * CELL_BLOCK, chunk);
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
        scatter_rows_generic::<f64, K>(x, hs, k, scale, range, acc);
    }
}

/// Panics unless `x` (n × m), `h` (n × K) and `b` (m × K) fit B += XᵀH.
#[track_caller]
pub(crate) fn check_accumulate_shapes(x: &CsrMatrix, h: ArrayView2<f64>, b: ArrayView2<f64>) {
    assert_eq!(
        x.n_rows(),
        h.nrows(),
        "X has {} cells, H has {} rows",
        x.n_rows(),
        h.nrows()
    );
    assert_eq!(b.dim(), (x.n_cols(), h.ncols()), "B shape");
}

/// B += s · Xᵀ·H: for each cell c and each non-zero x_cg, B_g· += s·x_cg·h_c.
///
/// Shapes: `x` n × m, `h` n × K, `b` m × K. The cells are cut into a fixed
/// number of chunks: the first adds straight into `b`, the others into
/// partial sums that are then added to `b` in chunk order (deterministic
/// for any thread count).
#[track_caller]
pub fn accumulate_xt_h(x: &CsrMatrix, h: ArrayView2<f64>, scale: f64, mut b: ArrayViewMut2<f64>) {
    check_accumulate_shapes(x, h, b.view());
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
    let mut partials = PARTIALS.take(B_CHUNKS - 1, bs.len());
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
    PARTIALS.give_back(partials);
}

/// The partial sums of [`accumulate_xt_h`].
static PARTIALS: BufferPool<f64> = BufferPool::new();

/// HᵀH (K × K) for H stored rows × K: Σ_c h_c h_cᵀ over fixed blocks
/// of rows (a register-tiled kernel, `add_gram_of_rows`) formed in
/// parallel and summed in block order (the same bits for any thread
/// count); exactly symmetric.
pub fn gram_of_rows(h: ArrayView2<f64>) -> Array2<f64> {
    let k = h.ncols();
    let n = h.nrows();
    let h = h.as_standard_layout();
    let rows = h.as_slice().expect("standard layout");
    let parts: Vec<Vec<f64>> = rows
        .par_chunks(CELL_BLOCK * k.max(1))
        .map(|blk| {
            let mut g = vec![0.0; k * k];
            add_gram_of_rows(blk, k, &mut g);
            g
        })
        .collect();
    let mut acc = Array2::<f64>::zeros((k, k));
    if n > 0 && k > 0 {
        let out = acc.as_slice_mut().expect("fresh array");
        for p in &parts {
            for (o, &v) in out.iter_mut().zip(p) {
                *o += v;
            }
        }
    }
    acc
}

/// Column tiles of [`add_gram_of_rows`]: 4 rows × 4 columns of G.
const GRAM_TILE: usize = 4;

avx2_dispatch! {
    /// `g` (K × K, row-major, symmetric on entry) += Σ_r u_r u_rᵀ for the
    /// rows u_r of `u` (n × K, row-major). Each entry (i, j), i ≤ j, is one sum over the
    /// rows in order and is stored at (i, j) and (j, i), so G is exactly symmetric
    /// and an entry does not depend on how the caller cuts the rows into
    /// calls beyond the per-call sums.
    pub(crate) fn add_gram_of_rows / add_gram_of_rows_avx2 / add_gram_of_rows_impl(
        u: &[f64],
        k: usize,
        g: &mut [f64],
    ) {
        if k == 0 {
            return;
        }
        let k4 = k / GRAM_TILE * GRAM_TILE;
        // Upper tiles of the first k4 columns, 4 × 4 entries each, two
        // tiles of a row band at a time (eight independent sums in
        // registers).
        for i0 in (0..k4).step_by(GRAM_TILE) {
            let mut j0 = i0;
            while j0 < k4 {
                let width = if j0 + 2 * GRAM_TILE <= k4 { 2 * GRAM_TILE } else { GRAM_TILE };
                let mut tile = [[0.0f64; 2 * GRAM_TILE]; GRAM_TILE];
                if width == 2 * GRAM_TILE {
                    for row in u.chunks_exact(k) {
                        let b: &[f64; 2 * GRAM_TILE] = row[j0..j0 + 2 * GRAM_TILE].try_into().expect("tiles");
                        for (t, &a) in tile.iter_mut().zip(&row[i0..i0 + GRAM_TILE]) {
                            for (x, &bv) in t.iter_mut().zip(b) {
                                *x += a * bv;
                            }
                        }
                    }
                } else {
                    for row in u.chunks_exact(k) {
                        let b: &[f64; GRAM_TILE] = row[j0..j0 + GRAM_TILE].try_into().expect("tile");
                        for (t, &a) in tile.iter_mut().zip(&row[i0..i0 + GRAM_TILE]) {
                            for (x, &bv) in t.iter_mut().zip(b) {
                                *x += a * bv;
                            }
                        }
                    }
                }
                for (ii, t) in tile.iter().enumerate() {
                    for (jj, &v) in t[..width].iter().enumerate() {
                        let (i, j) = (i0 + ii, j0 + jj);
                        if j >= i {
                            let v = g[i * k + j] + v;
                            g[i * k + j] = v;
                            g[j * k + i] = v;
                        }
                    }
                }
                j0 += width;
            }
        }
        // Columns k4.. (K not a multiple of 4): one dot product per entry.
        for j in k4..k {
            for i in 0..=j {
                let mut s = 0.0;
                for row in u.chunks_exact(k) {
                    s += row[i] * row[j];
                }
                let v = g[i * k + j] + s;
                g[i * k + j] = v;
                g[j * k + i] = v;
            }
        }
    }
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

    /// Σ_r u_r u_rᵀ one entry at a time, in row order.
    fn naive_gram(u: &[f64], k: usize) -> Vec<f64> {
        let mut g = vec![0.0; k * k];
        for i in 0..k {
            for j in 0..k {
                g[i * k + j] = u.chunks_exact(k).fold(0.0, |s, r| s + r[i] * r[j]);
            }
        }
        g
    }

    #[test]
    fn the_gram_kernel_sums_every_entry_in_row_order_and_is_exactly_symmetric() {
        // Widths with and without a remainder beyond the 4-wide tiles, an
        // odd count of tiles per band (20: five tiles), row counts 0…9.
        for k in [1, 3, 4, 5, 8, 12, 20, 23] {
            for n in 0..10 {
                let u: Vec<f64> = (0..n * k).map(|i| ((i * 37) % 11) as f64 * 0.3 - 1.1).collect();
                let mut g = vec![0.0; k * k];
                add_gram_of_rows(&u, k, &mut g);
                let want = naive_gram(&u, k);
                for i in 0..k {
                    for j in 0..k {
                        assert_eq!(
                            g[i * k + j].to_bits(),
                            g[j * k + i].to_bits(),
                            "k {k} n {n}: symmetric"
                        );
                        let (a, b) = (g[i * k + j], want[i.min(j) * k + i.max(j)]);
                        // The same sum in the same order: equal bits.
                        assert_eq!(a.to_bits(), b.to_bits(), "k {k} n {n} ({i}, {j}): {a} vs {b}");
                    }
                }
                // It adds to what is there.
                let before = g.clone();
                add_gram_of_rows(&u, k, &mut g);
                for (a, b) in g.iter().zip(&before) {
                    assert_eq!(a.to_bits(), (b + b).to_bits());
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn gram_of_rows_is_symmetric_psd_and_matches_the_dense_product(
            n in 0usize..1200,
            k in 1usize..26,
            seed in 0u64..1000,
        ) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let h = Array2::from_shape_fn((n, k), |_| rng.random_range(-1.0..1.0));
            let g = gram_of_rows(h.view());
            let want = h.t().dot(&h);
            let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for ((i, j), &v) in g.indexed_iter() {
                proptest::prop_assert_eq!(v.to_bits(), g[[j, i]].to_bits());
                proptest::prop_assert!((v - want[[i, j]]).abs() <= 1e-12 * scale);
            }
            // xᵀGx = ‖Hx‖² ≥ 0 for a probe x.
            let x = ndarray::Array1::from_shape_fn(k, |j| (j as f64 * 0.7).sin());
            let quad = x.dot(&g.dot(&x));
            proptest::prop_assert!(quad >= -1e-12 * scale * k as f64);
        }
    }
}
