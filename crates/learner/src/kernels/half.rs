//! R = X·M with M's rows stored in half precision (IEEE binary16), the
//! product online learning runs on every mini-batch (the final H pass and
//! the projection keep `kernels::single`).
//!
//! Why: R = X·(W+V_i) gathers one factor row per non-zero of X, and at
//! K 20 an f32 row is 80–96 bytes, two cache lines, with the factor
//! (genes × K) larger than L1. In half precision a row padded to 32 values
//! is 64 bytes and starts on a line boundary, so each non-zero touches one
//! line: the gather ran ≈ 1.4–1.5× faster in a standalone prototype
//! (2,000 genes, 312 non-zeros per cell; 2,500 cells in cache: 1.32 → 0.93
//! ns per non-zero, 40,000 cells streamed from memory: 1.66 → 1.08 ns).
//!
//! Storage: column j of M is scaled by an exact power of two, s_j = 2^e_j
//! with max_g M_gj·s_j in [2¹⁴, 2¹⁵) (so no column underflows or overflows
//! the binary16 range), then every value is rounded to the nearest binary16
//! (ties to even): m̃_gj = fl16(fl32(M_gj)·s_j). The sums run in f32 and
//! r_cj = (Σ_g x_cg·m̃_gj)/s_j, the division exact.
//!
//! Accuracy: each stored value is within a relative 2⁻¹¹ (≈ 4.9e-4) of
//! M_gj, with independent rounding errors, so an entry of R that sums n
//! terms of similar size is off by ≈ 2⁻¹¹·√(n/3)/n relative (≈ 1.6e-5 for
//! n = 312), always by at most 2⁻¹¹·Σ_g |x_cg|·M_gj plus the f32 sums'
//! rounding (tested). Online learning uses R only to solve each mini-batch's
//! H; the objective of a run moves by less than the 1e-4 relative the
//! performance issue allows (tested in `online::state`).
//!
//! Both builds — F16C (`_mm256_cvtph_ps`) and portable — convert exactly
//! and perform the same multiplications and additions in the same order,
//! so they give the same bits.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::kernels::double::{check_project_shapes, CELL_BLOCK};
use crate::kernels::pool::BufferPool;
use crate::kernels::single::{pack_rows, padded};
use crate::sparse::{with_cols, CsrMatrix};

/// 2¹¹²: turns binary16 bits shifted into an f32's place into their value.
const HALF_TO_F32: f32 = f32::from_bits((127 + 112) << 23);

/// The value of a non-negative binary16 `h` (bits; no sign, infinity or
/// NaN), exactly: its exponent and mantissa bits moved to an f32's place
/// give the value·2⁻¹¹², and multiplying by 2¹¹² is exact.
#[inline(always)]
pub(crate) fn from_half(h: u16) -> f32 {
    f32::from_bits(u32::from(h & 0x7fff) << 13) * HALF_TO_F32
}

/// `y` (finite, ≥ 0, below 65520) rounded to the nearest binary16, ties
/// to even; values below the smallest normal (2⁻¹⁴) round to the subnormal
/// grid, larger ones saturate to 65504.
pub(crate) fn to_half(y: f32) -> u16 {
    debug_assert!(y >= 0.0 && y.is_finite(), "non-negative finite value");
    let bits = y.to_bits();
    if bits >= (127 + 16) << 23 {
        0x7bff
    } else if bits < (127 - 14) << 23 {
        // Subnormal (or zero): adding 0.5 (2⁻¹) aligns y's mantissa so the
        // f32 addition itself rounds y to a multiple of 2⁻²⁴ (ties to
        // even); that multiple's count sits in the low bits.
        let magic = f32::from_bits((127 - 1) << 23);
        ((y + magic).to_bits() - magic.to_bits()) as u16
    } else {
        // Normal: rebias the exponent, round the 13 dropped mantissa bits
        // to nearest, ties to even (adding the kept lowest bit).
        let odd = (bits >> 13) & 1;
        let rounded = bits.wrapping_sub((127 - 15) << 23) + 0xfff + odd;
        (rounded >> 13).min(0x7bff) as u16
    }
}

/// Values per row that the kernels read: K rounded up to a multiple of 8.
/// Row stride: that, rounded up to 8, 16 or 32 values (16, 32, 64 bytes)
/// or to a multiple of 32, so no row of up to 64 bytes straddles a cache
/// line.
fn half_layout(k: usize) -> (usize, usize) {
    let lanes = padded(k);
    let stride = if lanes <= 32 {
        lanes.next_power_of_two()
    } else {
        lanes.div_ceil(32) * 32
    };
    (lanes, stride)
}

/// Bytes a row buffer is aligned to (one cache line).
const LINE: usize = 64;

/// A genes × K factor M stored for [`HalfRows::project_rows`]: rows of
/// binary16 values of M·diag(s) (see the module docs), 64-byte aligned.
pub(crate) struct HalfRows {
    k: usize,
    lanes: usize,
    stride: usize,
    /// Index of row 0 in `buf` (so that it starts on a cache line).
    start: usize,
    buf: Vec<u16>,
    /// 1/s_j, exact powers of two.
    inv_scales: Vec<f64>,
}

/// The buffers of [`HalfRows`], returned when one is dropped.
static HALF_ROWS: BufferPool<u16> = BufferPool::new();

impl Drop for HalfRows {
    fn drop(&mut self) {
        HALF_ROWS.give_back_one(std::mem::take(&mut self.buf));
    }
}

impl HalfRows {
    /// Packs `m` (genes × K): see the module docs.
    pub(crate) fn new(m: ArrayView2<f64>) -> Self {
        let k = m.ncols();
        let rows = pack_rows(m, padded(k));
        let col_max: Vec<f64> = m
            .columns()
            .into_iter()
            .map(|c| c.fold(0.0, |a, &v| v.max(a)))
            .collect();
        Self::from_f32_rows(k, &rows, &col_max)
    }

    /// M from its rows already rounded to f32 (`rows`, [`padded`]`(k)`
    /// values each, zero-padded, all ≥ 0) and each column's maximum
    /// `col_max` (K): scales chosen from `col_max`, then every value
    /// scaled and rounded, in parallel over blocks of rows.
    pub(crate) fn from_f32_rows(k: usize, rows: &[f32], col_max: &[f64]) -> Self {
        assert_eq!(col_max.len(), k, "one maximum per column");
        let (lanes, stride) = half_layout(k);
        let genes = rows.len() / lanes.max(1);
        let exponents: Vec<i32> = col_max.iter().map(|&mx| scale_exponent(mx as f32)).collect();
        // Padding lanes hold zeros; their scale is 1.
        let mut scales = vec![1.0f32; lanes];
        for (s, &e) in scales.iter_mut().zip(&exponents) {
            *s = 2f32.powi(e);
        }
        let inv_scales = exponents.iter().map(|&e| 2f64.powi(-e)).collect();
        let mut buf = HALF_ROWS.take_one(genes * stride + LINE / 2);
        let start = buf.as_ptr().align_offset(LINE).min(LINE / 2);
        if k > 0 {
            buf[start..start + genes * stride]
                .par_chunks_mut(CELL_BLOCK * stride)
                .zip(rows.par_chunks(CELL_BLOCK * lanes))
                .for_each(|(dst, src)| round_rows(src, lanes, &scales, dst, stride));
        }
        Self {
            k,
            lanes,
            stride,
            start,
            buf,
            inv_scales,
        }
    }

    /// The stored rows (genes × stride).
    fn rows(&self) -> &[u16] {
        &self.buf[self.start..]
    }

    /// Rows `first..first + out.len() / K` of R = X·M into `out` (rows × K,
    /// row-major): per cell, even and odd non-zeros summed in two f32
    /// accumulators, r_cj = (even_j + odd_j in f64)/s_j.
    pub(crate) fn project_rows(&self, x: &CsrMatrix, first: usize, out: &mut [f64]) {
        if self.k == 0 {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::simd::f16c() {
            let groups = self.lanes / 8;
            let done = match groups {
                1 => f16c_rows::<1>(self, x, first, out),
                2 => f16c_rows::<2>(self, x, first, out),
                3 => f16c_rows::<3>(self, x, first, out),
                4 => f16c_rows::<4>(self, x, first, out),
                5 => f16c_rows::<5>(self, x, first, out),
                6 => f16c_rows::<6>(self, x, first, out),
                7 => f16c_rows::<7>(self, x, first, out),
                8 => f16c_rows::<8>(self, x, first, out),
                _ => false,
            };
            if done {
                return;
            }
        }
        self.portable_rows(x, first, out);
    }

    /// The portable build of [`Self::project_rows`].
    fn portable_rows(&self, x: &CsrMatrix, first: usize, out: &mut [f64]) {
        let (k, lanes, stride) = (self.k, self.lanes, self.stride);
        let rows = self.rows();
        let (mut even, mut odd) = (vec![0.0f32; lanes], vec![0.0f32; lanes]);
        let cells = first..first + out.len() / k;
        for (row_out, (cols, vals)) in out.chunks_exact_mut(k).zip(x.rows(cells)) {
            even.fill(0.0);
            odd.fill(0.0);
            with_cols!(cols, cols => {
                let mut pairs = cols.chunks_exact(2).zip(vals.chunks_exact(2));
                for (g2, v2) in &mut pairs {
                    let m0 = &rows[g2[0] as usize * stride..][..lanes];
                    let m1 = &rows[g2[1] as usize * stride..][..lanes];
                    for j in 0..lanes {
                        even[j] += v2[0] * from_half(m0[j]);
                        odd[j] += v2[1] * from_half(m1[j]);
                    }
                }
                if cols.len() % 2 == 1 {
                    let m0 = &rows[cols[cols.len() - 1] as usize * stride..][..lanes];
                    let v = vals[vals.len() - 1];
                    for j in 0..lanes {
                        even[j] += v * from_half(m0[j]);
                    }
                }
            });
            finish_row(row_out, &even, &odd, &self.inv_scales);
        }
    }
}

/// r_j = (even_j + odd_j in f64)·(1/s_j) for the first K entries.
#[inline(always)]
fn finish_row(row_out: &mut [f64], even: &[f32], odd: &[f32], inv_scales: &[f64]) {
    for (((o, &e), &d), &inv) in row_out.iter_mut().zip(even).zip(odd).zip(inv_scales) {
        *o = (f64::from(e) + f64::from(d)) * inv;
    }
}

/// e such that max·2^e lies in [2¹⁴, 2¹⁵) (0 for a zero column), kept
/// within ±126 so that 2^e is an f32 (a column whose maximum is below
/// 2⁻¹¹² then keeps a smaller scale; the solvers floor factors far above).
fn scale_exponent(max: f32) -> i32 {
    if max <= 0.0 {
        return 0;
    }
    let bits = max.to_bits();
    let biased = (bits >> 23) as i32;
    let exp = if biased == 0 {
        // Subnormal: 2^(−126 − leading zeros of the 23-bit mantissa …).
        -127 - ((bits << 9).leading_zeros() as i32)
    } else {
        biased - 127
    };
    (14 - exp).clamp(-126, 126)
}

/// Rounds rows of f32 values (`lanes` each, zero-padded) to binary16 rows
/// (`stride` each): value j of a row becomes fl16(y_j·s_j), the product in
/// f32 (exact: s_j is a power of two and the result at most 2¹⁵).
fn round_rows(src: &[f32], lanes: usize, scales: &[f32], dst: &mut [u16], stride: usize) {
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::simd::f16c() {
        // SAFETY: the CPU has AVX2 and F16C.
        #[allow(unsafe_code)]
        unsafe {
            round_rows_f16c(src, lanes, scales, dst, stride)
        };
        return;
    }
    for (d, s) in dst.chunks_exact_mut(stride).zip(src.chunks_exact(lanes)) {
        for ((o, &y), &sc) in d.iter_mut().zip(s).zip(scales) {
            *o = to_half(y * sc);
        }
    }
}

/// The F16C build of [`round_rows`] (`_mm256_cvtps_ph`, round to nearest
/// even: the same values as [`to_half`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
#[allow(unsafe_code)]
fn round_rows_f16c(src: &[f32], lanes: usize, scales: &[f32], dst: &mut [u16], stride: usize) {
    use std::arch::x86_64::{
        __m128i, _mm256_cvtps_ph, _mm256_loadu_ps, _mm256_mul_ps, _mm_storeu_si128, _MM_FROUND_TO_NEAREST_INT,
    };
    const MODE: i32 = _MM_FROUND_TO_NEAREST_INT;
    for (d, s) in dst.chunks_exact_mut(stride).zip(src.chunks_exact(lanes)) {
        for i in 0..lanes / 8 {
            let (y, sc, out) = (
                &s[8 * i..8 * i + 8],
                &scales[8 * i..8 * i + 8],
                &mut d[8 * i..8 * i + 8],
            );
            // SAFETY: each slice holds exactly 8 values; unaligned loads
            // and stores need no alignment.
            unsafe {
                let prod = _mm256_mul_ps(_mm256_loadu_ps(y.as_ptr()), _mm256_loadu_ps(sc.as_ptr()));
                _mm_storeu_si128(out.as_mut_ptr().cast::<__m128i>(), _mm256_cvtps_ph::<MODE>(prod));
            }
        }
    }
}

/// The F16C build of [`HalfRows::project_rows`] for `G` groups of 8 lanes
/// (returns false, doing nothing, if the layout has another width).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn f16c_rows<const G: usize>(m: &HalfRows, x: &CsrMatrix, first: usize, out: &mut [f64]) -> bool {
    if m.lanes != 8 * G {
        return false;
    }
    // SAFETY: `crate::kernels::simd::f16c()` said the CPU has AVX2 and F16C.
    unsafe { f16c_rows_impl::<G>(m, x, first, out) };
    true
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
#[allow(unsafe_code)]
fn f16c_rows_impl<const G: usize>(m: &HalfRows, x: &CsrMatrix, first: usize, out: &mut [f64]) {
    use std::arch::x86_64::{
        __m128i, _mm256_add_ps, _mm256_cvtph_ps, _mm256_mul_ps, _mm256_set1_ps, _mm256_setzero_ps,
        _mm256_storeu_ps, _mm_loadu_si128,
    };
    let (k, stride) = (m.k, m.stride);
    let rows = m.rows();
    let (mut even_out, mut odd_out) = ([0.0f32; 64], [0.0f32; 64]);
    let cells = first..first + out.len() / k;
    for (row_out, (cols, vals)) in out.chunks_exact_mut(k).zip(x.rows(cells)) {
        let mut even = [_mm256_setzero_ps(); G];
        let mut odd = [_mm256_setzero_ps(); G];
        with_cols!(cols, cols => {
            let mut pairs = cols.chunks_exact(2).zip(vals.chunks_exact(2));
            for (g2, v2) in &mut pairs {
                let r0: &[u16] = &rows[g2[0] as usize * stride..][..8 * G];
                let r1: &[u16] = &rows[g2[1] as usize * stride..][..8 * G];
                let (v0, v1) = (_mm256_set1_ps(v2[0]), _mm256_set1_ps(v2[1]));
                for i in 0..G {
                    // SAFETY: each row slice holds 8·G values, so the 8 from
                    // 8·i are in bounds; unaligned loads need no alignment.
                    let (a, b) = unsafe {
                        (
                            _mm_loadu_si128(r0.as_ptr().add(8 * i).cast::<__m128i>()),
                            _mm_loadu_si128(r1.as_ptr().add(8 * i).cast::<__m128i>()),
                        )
                    };
                    even[i] = _mm256_add_ps(even[i], _mm256_mul_ps(v0, _mm256_cvtph_ps(a)));
                    odd[i] = _mm256_add_ps(odd[i], _mm256_mul_ps(v1, _mm256_cvtph_ps(b)));
                }
            }
            if cols.len() % 2 == 1 {
                let r0: &[u16] = &rows[cols[cols.len() - 1] as usize * stride..][..8 * G];
                let v = _mm256_set1_ps(vals[vals.len() - 1]);
                for (i, e) in even.iter_mut().enumerate() {
                    // SAFETY: as above.
                    let a = unsafe { _mm_loadu_si128(r0.as_ptr().add(8 * i).cast::<__m128i>()) };
                    *e = _mm256_add_ps(*e, _mm256_mul_ps(v, _mm256_cvtph_ps(a)));
                }
            }
        });
        for i in 0..G {
            // SAFETY: both arrays hold 64 ≥ 8·G values.
            unsafe {
                _mm256_storeu_ps(even_out.as_mut_ptr().add(8 * i), even[i]);
                _mm256_storeu_ps(odd_out.as_mut_ptr().add(8 * i), odd[i]);
            }
        }
        finish_row(row_out, &even_out, &odd_out, &m.inv_scales);
    }
}

/// R = X·M with M stored in half precision (see the module docs for the
/// storage and the accuracy): r_c = Σ_g x_cg·M_g· (cells × K, f64). M must
/// be non-negative.
///
/// Shapes: `x` n × m, `m` m × K → n × K.
#[track_caller]
pub fn project_f16(x: &CsrMatrix, m: ArrayView2<f64>) -> Array2<f64> {
    check_project_shapes(x, m);
    assert!(m.iter().all(|&v| v >= 0.0), "M must be non-negative");
    let k = m.ncols();
    let mut r = Array2::<f64>::zeros((x.n_rows(), k));
    if k == 0 {
        return r;
    }
    let packed = HalfRows::new(m);
    let out = r.as_slice_mut().expect("fresh array");
    out.par_chunks_mut(CELL_BLOCK * k)
        .enumerate()
        .for_each(|(blk, chunk)| packed.project_rows(x, blk * CELL_BLOCK, chunk));
    r
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::kernels::double::project;
    use crate::kernels::simd::Builds;
    use crate::testutil::random_sparse;

    /// The binary16 value of `h` from its fields (the slow, obvious way).
    fn half_value(h: u16) -> f64 {
        let (exp, man) = (i32::from(h >> 10 & 0x1f), f64::from(h & 0x3ff));
        if exp == 0 {
            man * 2f64.powi(-24)
        } else {
            (1.0 + man / 1024.0) * 2f64.powi(exp - 15)
        }
    }

    #[test]
    fn every_half_converts_exactly_and_rounds_back_to_itself() {
        for h in 0..=0x7bffu16 {
            let v = from_half(h);
            assert_eq!(f64::from(v), half_value(h), "{h:#06x}");
            assert_eq!(to_half(v), h, "{h:#06x}");
        }
        assert_eq!(to_half(65504.0), 0x7bff);
        assert_eq!(
            to_half(65519.0),
            0x7bff,
            "saturates instead of rounding to infinity"
        );
    }

    #[test]
    fn halfway_values_round_to_the_even_neighbour() {
        for h in (0..0x7bfeu16).step_by(7) {
            let mid = (f64::from(from_half(h)) + f64::from(from_half(h + 1))) / 2.0;
            // The midpoint of two binary16 neighbours is an f32.
            assert_eq!(f64::from(mid as f32), mid);
            let want = if h % 2 == 0 { h } else { h + 1 };
            assert_eq!(to_half(mid as f32), want, "tie between {h:#06x} and the next");
        }
    }

    proptest::proptest! {
        #[test]
        fn to_half_rounds_to_the_nearest_binary16(bits in 0u32..0x4780_0000) {
            // Every non-negative f32 below 65536.
            let y = f32::from_bits(bits);
            let h = to_half(y);
            let err = (f64::from(y) - half_value(h)).abs();
            if h > 0 {
                proptest::prop_assert!(err <= (f64::from(y) - half_value(h - 1)).abs());
            }
            if h < 0x7bff {
                proptest::prop_assert!(err <= (f64::from(y) - half_value(h + 1)).abs());
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_f16c_rounding_gives_the_portable_bits() {
        if !crate::kernels::simd::f16c() {
            eprintln!("the_f16c_rounding_gives_the_portable_bits: this CPU has no F16C, nothing to compare");
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (lanes, stride) = (24, 32);
        let src: Vec<f32> = (0..lanes * 300)
            .map(|i| match i % 4 {
                0 => f32::from_bits(rng.random_range(0..0x4780_0000)),
                1 => rng.random_range(0.0..1e-6),
                2 => 0.0,
                _ => rng.random_range(0.0..2.0),
            })
            .collect();
        let scales: Vec<f32> = (0..lanes).map(|j| 2f32.powi(j as i32 % 5 - 2)).collect();
        let src: Vec<f32> = src
            .iter()
            .enumerate()
            .map(|(i, &y)| (y / scales[i % lanes]).min(30000.0))
            .collect();
        let builds = Builds::take();
        builds.baseline(false);
        let mut fast = vec![0u16; 300 * stride];
        round_rows(&src, lanes, &scales, &mut fast, stride);
        let mut slow = vec![0u16; 300 * stride];
        builds.baseline(true);
        round_rows(&src, lanes, &scales, &mut slow, stride);
        drop(builds);
        assert_eq!(fast, slow);
    }

    /// A non-negative factor whose columns span 60 orders of magnitude,
    /// with a zero column.
    fn wide_factor(genes: usize, k: usize, rng: &mut ChaCha8Rng) -> Array2<f64> {
        Array2::from_shape_fn((genes, k), |(_, j)| {
            let scale = [1e-30, 1.0, 1e30, 0.0, 3e-3][j % 5];
            scale * rng.random_range(0.0..1.0f64).powi(2)
        })
    }

    #[test]
    fn half_products_are_within_the_rounding_bound_of_the_exact_product() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        // 20 and 40 are F16C widths (24, 40 lanes), 3 pads to 8, 70 takes
        // the portable path (72 lanes); several cell blocks and an odd one.
        for k in [3, 20, 40, 70] {
            let x = random_sparse(2 * CELL_BLOCK + 9, 90, 0.3, &mut rng);
            let m = wide_factor(90, k, &mut rng);
            let got = project_f16(&x, m.view());
            let exact = project(&x, m.view());
            // |x|·|M| per entry: the scale of each sum's terms.
            let xd = x.to_dense().mapv(f64::abs);
            let size = xd.dot(&m);
            let nnz_max = x.rows(0..x.n_rows()).map(|(c, _)| c.len()).max().unwrap_or(0) as f64;
            for ((i, j), &g) in got.indexed_iter() {
                let bound = (2f64.powi(-11) + (nnz_max + 2.0) * 2f64.powi(-24)) * size[[i, j]];
                assert!(
                    (g - exact[[i, j]]).abs() <= bound,
                    "k {k} ({i}, {j}): {g} vs {} (bound {bound:e})",
                    exact[[i, j]]
                );
            }
            assert!(got.column(1).iter().any(|&v| v > 0.0), "a non-trivial product");
            if k > 3 {
                assert!(got.column(3).iter().all(|&v| v == 0.0), "zero column");
            }
        }
    }

    #[test]
    fn the_f16c_and_portable_products_give_the_same_bits() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        for k in [5, 20, 33] {
            let x = random_sparse(700, 60, 0.25, &mut rng);
            let m = wide_factor(60, k, &mut rng);
            let builds = Builds::take();
            builds.baseline(false);
            let fast = project_f16(&x, m.view());
            builds.baseline(true);
            let slow = project_f16(&x, m.view());
            drop(builds);
            let bits = |a: &Array2<f64>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&slow), "k {k}");
        }
    }

    #[test]
    fn rows_are_cache_line_aligned_and_never_straddle_a_line() {
        for k in [1, 8, 9, 16, 20, 32, 33, 64, 70] {
            let (lanes, stride) = half_layout(k);
            assert!(lanes >= k && lanes % 8 == 0 && stride >= lanes, "k {k}");
            let bytes = 2 * stride;
            assert!(bytes % LINE == 0 || LINE % bytes == 0, "k {k}: {bytes} B rows");
            let m = Array2::<f64>::ones((10, k));
            let packed = HalfRows::new(m.view());
            assert_eq!(packed.rows().as_ptr() as usize % LINE, 0, "k {k}");
        }
    }

    #[test]
    fn empty_blocks_and_zero_k_are_handled() {
        let x = CsrMatrix::empty(6);
        let m = Array2::<f64>::ones((6, 4));
        assert_eq!(project_f16(&x, m.view()).dim(), (0, 4));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let x = random_sparse(10, 6, 0.5, &mut rng);
        assert_eq!(project_f16(&x, Array2::zeros((6, 0)).view()).dim(), (10, 0));
    }
}
