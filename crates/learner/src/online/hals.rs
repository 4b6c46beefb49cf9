//! HALS updates of W and V_i from the online sufficient statistics
//! (docs/algorithms.md §3 step 3; derivation in the online iNMF supplementary note).
//!
//! With A_i = Σ HᵀH/m (K × K) and B_i = Σ XᵀH/m (genes × K), the surrogate
//!
//! S = Σ_i tr((W+V_i)ᵀ(W+V_i)A_i) − 2 tr((W+V_i)ᵀB_i) + λ tr(V_iᵀV_i A_i)
//!
//! is a convex quadratic whose Hessian in one column of W (or V_i) is a
//! multiple of the identity, so each column update below is that column's
//! exact projected minimiser; one Gauss–Seidel sweep never increases S.
#![allow(non_snake_case)]

use std::cell::RefCell;

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use crate::kernels::simd::avx2_dispatch;
use crate::online::objective::trace_of_product;

/// The clamp floor of the anchor: entries stay ≥ 1e-16, never exactly 0.
pub(crate) const HALS_FLOOR: f64 = 1e-16;

/// One dataset's statistics as the W update reads them.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct DatasetStats<'a> {
    /// V_i (genes × K).
    pub v: ArrayView2<'a, f64>,
    /// A_i (K × K).
    pub a: ArrayView2<'a, f64>,
    /// B_i (genes × K).
    pub b: ArrayView2<'a, f64>,
}

/// Genes per parallel work unit of the sweeps. A gene's row of W (or V_i)
/// depends only on its own row and the statistics, so the Gauss–Seidel
/// sweep over columns runs row by row, rows in parallel, in the same
/// column order for every row.
const GENE_BLOCK: usize = 128;

/// One sweep over the columns j of W:
/// W_·j ← max(ε, W_·j + Σ_i (B_i·j − (W+V_i)A_i·j) / Σ_i A_i,jj).
/// A column with Σ_i A_i,jj = 0 is left unchanged.
///
/// Only sums over datasets enter: with Ā = Σ_i A_i the numerator is
/// Σ_i B_i·j − (Σ_i V_iA_i + W·Ā)_·j, so the sweep keeps one running fit
/// per row (c = 1, Ā multiplying W).
#[cfg(test)]
pub(crate) fn update_w(W: &mut Array2<f64>, stats: &[DatasetStats<'_>]) {
    let k = W.ncols();
    let mut a_sum = Array2::<f64>::zeros((k, k));
    for s in stats {
        a_sum += &s.a;
    }
    let terms: Vec<_> = stats.iter().map(|s| (s.v, s.a)).collect();
    let targets: Vec<_> = stats.iter().map(|s| s.b).collect();
    sweep(W, &terms, &targets, a_sum.view(), 1.0);
}

/// One sweep over the columns j of V_i:
/// V_·j ← max(ε, V_·j + (B_·j − (W + (1+λ)V)A_·j) / ((1+λ)A_jj)).
/// A column with A_jj = 0 is left unchanged.
#[cfg(test)]
pub(crate) fn update_v(
    W: ArrayView2<f64>,
    V: &mut Array2<f64>,
    A: ArrayView2<f64>,
    B: ArrayView2<f64>,
    lambda: f64,
) {
    sweep(V, &[(W, A)], &[B], A, 1.0 + lambda);
}

/// For V_i the fits W·A + c·V·A are one product (W + c·V)·A: half the
/// flops of the stacked form. True when the one other factor's matrix is S.
#[cfg(test)]
fn merges(terms: &[(ArrayView2<f64>, ArrayView2<f64>)], S: ArrayView2<f64>) -> bool {
    terms.len() == 1 && terms[0].1 == S
}

/// One sweep of F (rows × K) with the fits Q = Σ_t O_t·A_t + c·F·S:
/// F_gj ← max(ε, F_gj + (Σ_t B_t,gj − Q_gj)/(c·S_jj)), column by column,
/// Q_gj being the current fit: the starting fit plus c·δ_{j'}·S_{j'j} for
/// every earlier column j' whose entry moved by δ_{j'} (see `column_loop`).
///
/// Per block of rows the starting fits are one dense product
/// Q = [O_1 … O_T F]·[A_1; …; A_T; c·S] (the bulk of the flops, at GEMM
/// speed); only the Gauss–Seidel column loop runs per group of rows.
#[cfg(test)]
fn sweep(
    F: &mut Array2<f64>,
    terms: &[(ArrayView2<f64>, ArrayView2<f64>)],
    targets: &[ArrayView2<f64>],
    S: ArrayView2<f64>,
    c: f64,
) {
    let k = F.ncols();
    if k == 0 {
        return;
    }
    let others: Vec<_> = terms.iter().map(|(o, _)| o.as_standard_layout()).collect();
    let others: Vec<&[f64]> = others.iter().map(|o| o.as_slice().expect("standard")).collect();
    let a: Vec<_> = terms.iter().map(|(_, a)| *a).collect();
    let bs: Vec<_> = targets.iter().map(|b| b.as_standard_layout()).collect();
    let merged = merges(terms, S);
    let stacked = if merged {
        S.to_owned()
    } else {
        stack_right_factor(&a, S, c)
    };
    let side = Sweep {
        stacked: stacked.view(),
        merged,
        b: bs.iter().map(|b| b.as_slice().expect("standard")).collect(),
        s: S.iter().copied().collect(),
        c,
    };
    let f = F.as_slice_mut().expect("factor in standard layout");
    f.par_chunks_mut(GENE_BLOCK * k)
        .enumerate()
        .for_each(|(blk, rows)| {
            let span = blk * GENE_BLOCK * k..blk * GENE_BLOCK * k + rows.len();
            let local: Vec<&[f64]> = others.iter().map(|o| &o[span.clone()]).collect();
            sweep_block(rows, &local, blk * GENE_BLOCK, k, &side);
        });
}

/// [A_1; …; A_T; c·S], the right factor of the fits Q = [O_1 … O_T F]·(it).
fn stack_right_factor(a: &[ArrayView2<f64>], S: ArrayView2<f64>, c: f64) -> Array2<f64> {
    let k = S.nrows();
    let mut stacked = Array2::<f64>::zeros(((a.len() + 1) * k, k));
    for (t, a) in a.iter().enumerate() {
        stacked.slice_mut(s![t * k..(t + 1) * k, ..]).assign(a);
    }
    stacked
        .slice_mut(s![a.len() * k.., ..])
        .zip_mut_with(&S, |d, &v| *d = c * v);
    stacked
}

/// One Gauss–Seidel sweep of online iNMF's factors: [`update_w`] from all
/// datasets, then [`update_v`] for each dataset with `learned[i]` — with
/// the same arithmetic, hence bit for bit the same result, but in one pass
/// over gene blocks: a gene's new W row needs only that gene's rows of the
/// V_i and B_i, and its new V_i rows only its new W row, so each block of
/// genes is finished (W, then every learned V_i) before the next, with one
/// parallel region instead of 1 + (learned datasets) and the block's rows
/// still in cache.
///
/// `vs`, `a`, `b`: V_i, A_i, B_i of every dataset (frozen ones included,
/// they enter the W update). Panics if the lengths differ (a caller's bug).
#[track_caller]
pub(crate) fn sweep_w_then_v(
    W: &mut Array2<f64>,
    vs: &mut [&mut Array2<f64>],
    a: &[ArrayView2<f64>],
    b: &[ArrayView2<f64>],
    learned: &[bool],
    lambda: f64,
) {
    let (n, k) = W.dim();
    assert!(vs.len() == a.len() && a.len() == b.len() && b.len() == learned.len());
    if k == 0 || n == 0 {
        return;
    }
    let mut a_sum = Array2::<f64>::zeros((k, k));
    for ai in a {
        a_sum += ai;
    }
    let bs: Vec<_> = b.iter().map(|b| b.as_standard_layout()).collect();
    let bs: Vec<&[f64]> = bs.iter().map(|b| b.as_slice().expect("standard")).collect();
    // As in `sweep`: one dataset makes W's fits (V_1 + W)·A_1.
    let w_merged = a.len() == 1 && a[0] == a_sum.view();
    let w_stacked = if w_merged {
        a_sum.clone()
    } else {
        stack_right_factor(a, a_sum.view(), 1.0)
    };
    let w_side = Sweep {
        stacked: w_stacked.view(),
        merged: w_merged,
        b: bs.clone(),
        s: a_sum.iter().copied().collect(),
        c: 1.0,
    };
    let c = 1.0 + lambda;
    let v_sides: Vec<_> = (0..a.len())
        .map(|i| Sweep {
            stacked: a[i],
            merged: true,
            b: vec![bs[i]],
            s: a[i].iter().copied().collect(),
            c,
        })
        .collect();
    // Blocks × (W rows, every V_i's rows).
    let rows = GENE_BLOCK * k;
    let mut v_chunks: Vec<_> = vs
        .iter_mut()
        .map(|v| {
            v.as_slice_mut()
                .expect("factor in standard layout")
                .chunks_mut(rows)
        })
        .collect();
    let blocks: Vec<_> = W
        .as_slice_mut()
        .expect("factor in standard layout")
        .chunks_mut(rows)
        .enumerate()
        .map(|(blk, w)| {
            (
                blk,
                w,
                v_chunks
                    .iter_mut()
                    .map(|c| c.next().expect("same shape"))
                    .collect::<Vec<&mut [f64]>>(),
            )
        })
        .collect();
    blocks.into_par_iter().for_each(|(blk, w, mut v)| {
        let g0 = blk * GENE_BLOCK;
        {
            let others: Vec<&[f64]> = v.iter().map(|v| &**v).collect();
            sweep_block(w, &others, g0, k, &w_side);
        }
        for ((vi, side), _) in v.iter_mut().zip(&v_sides).zip(learned).filter(|(_, &l)| l) {
            sweep_block(vi, &[&*w], g0, k, side);
        }
    });
}

/// What a sweep of one factor F (W or V_i) reads besides the other
/// factors: the stacked right factor [A_1; …; A_T; c·S] of the fits (or,
/// `merged`, just S = A_1, the fits then being (O_1 + c·F)·S), the
/// targets B_t (genes × K), the matrix S multiplying F (Σ_t A_t for W,
/// A_i for V_i; row-major, symmetric) and c (1 for W, 1 + λ for V_i).
struct Sweep<'a> {
    stacked: ArrayView2<'a, f64>,
    merged: bool,
    b: Vec<&'a [f64]>,
    s: Vec<f64>,
    c: f64,
}

/// Rows `g0..` of a factor (`rows`, n × k), with the same rows of the
/// other factors O_t (`others`, each n × k): their starting fits by one
/// product, then the column loop.
fn sweep_block(rows: &mut [f64], others: &[&[f64]], g0: usize, k: usize, side: &Sweep<'_>) {
    let n = rows.len() / k;
    let width = side.stacked.nrows();
    BLOCK_SCRATCH.with_borrow_mut(|BlockScratch { left, q, group }| {
        left.clear();
        left.resize(n * width, 0.0);
        for (i, lrow) in left.chunks_exact_mut(width.max(1)).enumerate() {
            let f = &rows[i * k..(i + 1) * k];
            if side.merged {
                for ((l, &o), &fv) in lrow.iter_mut().zip(&others[0][i * k..(i + 1) * k]).zip(f) {
                    *l = o + side.c * fv;
                }
                continue;
            }
            for (t, o) in others.iter().enumerate() {
                lrow[t * k..(t + 1) * k].copy_from_slice(&o[i * k..(i + 1) * k]);
            }
            lrow[others.len() * k..].copy_from_slice(f);
        }
        q.clear();
        q.resize(n * k, 0.0);
        let left = ArrayView2::from_shape((n, width), &left[..]).expect("n × width");
        let mut fits = ArrayViewMut2::from_shape((n, k), &mut q[..]).expect("n × k");
        general_mat_mul(1.0, &left, &side.stacked, 0.0, &mut fits);
        column_loop(rows, q, g0, k, side, group);
    });
}

/// Buffers of [`sweep_block`], one set per worker thread for the life of
/// the thread, so that a sweep allocates nothing per block.
#[derive(Default)]
struct BlockScratch {
    /// The left factor [O_1 … O_T F] of the starting fits (n × width).
    left: Vec<f64>,
    /// The starting fits (n × k).
    q: Vec<f64>,
    group: Group,
}

thread_local! {
    static BLOCK_SCRATCH: RefCell<BlockScratch> = RefCell::default();
}

/// Rows whose column loops run together, one row per vector lane (four
/// AVX2 registers of f64 per column).
const LANES: usize = 16;

avx2_dispatch! {
    /// The Gauss–Seidel column loop over rows `g0..` of a factor (`rows`,
    /// n × k) from their starting fits `q` (n × k), [`LANES`] rows at a
    /// time (the last group is padded with copies of its last row, whose
    /// results are dropped).
    ///
    /// Column j needs only entry j of a row's running fit, and that entry
    /// is the starting fit plus the earlier columns' steps:
    /// q_j = q⁰_j + Σ_{j' < j} δ_{j'}·S_{j'j}, added for j' = 0, 1, … in
    /// order — the same operations, in the same order, as keeping the
    /// whole running fit current after every column (K − j fewer updates
    /// per column).
    fn column_loop / column_loop_avx2 / column_loop_impl(
        rows: &mut [f64],
        q: &[f64],
        g0: usize,
        k: usize,
        side: &Sweep<'_>,
        group: &mut Group,
    ) {
        let n = rows.len() / k.max(1);
        group.resize(k, side.b.len());
        let mut first = 0;
        while first < n {
            let len = (n - first).min(LANES);
            group.load(rows, q, side, g0, first, len, k);
            group.sweep(k, side);
            group.store(rows, first, len, k);
            first += len;
        }
    }
}

/// One group of [`LANES`] rows of [`column_loop`], column-major: entry
/// (j, l) of each matrix at `j * LANES + l`. Every entry a sweep reads is
/// written first (`load`, then each column's step before later columns
/// read it), so a group can be reused.
#[derive(Default)]
struct Group {
    /// The rows' factor entries.
    f: Vec<f64>,
    /// Their starting fits.
    q0: Vec<f64>,
    /// B_t,gj of each row for every target t, t-major (entry (t, j, l) at
    /// `(t * k + j) * LANES + l`).
    b: Vec<f64>,
    /// Steps δ_j = c·(new − old) of the columns done so far.
    steps: Vec<f64>,
}

impl Group {
    /// Sizes the group for K columns and `targets` targets.
    fn resize(&mut self, k: usize, targets: usize) {
        self.f.resize(k * LANES, 0.0);
        self.q0.resize(k * LANES, 0.0);
        self.b.resize(targets * k * LANES, 0.0);
        self.steps.resize(k * LANES, 0.0);
    }

    /// Rows `first..first + len` (len ≥ 1; missing lanes repeat the last row).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn load(
        &mut self,
        rows: &[f64],
        q: &[f64],
        side: &Sweep<'_>,
        g0: usize,
        first: usize,
        len: usize,
        k: usize,
    ) {
        for l in 0..LANES {
            let i = first + l.min(len - 1);
            let g = g0 + i;
            for j in 0..k {
                self.f[j * LANES + l] = rows[i * k + j];
                self.q0[j * LANES + l] = q[i * k + j];
                for (t, b) in side.b.iter().enumerate() {
                    self.b[(t * k + j) * LANES + l] = b[g * k + j];
                }
            }
        }
    }

    #[inline(always)]
    fn sweep(&mut self, k: usize, side: &Sweep<'_>) {
        let c = side.c;
        for j in 0..k {
            let den = c * side.s[j * k + j];
            if den <= 0.0 {
                // The column is left unchanged: no step.
                self.steps[j * LANES..(j + 1) * LANES].fill(0.0);
                continue;
            }
            let done = &self.steps[..j * LANES];
            let inv_den = 1.0 / den;
            let mut fit: [f64; LANES] = self.q0[j * LANES..(j + 1) * LANES].try_into().expect("lanes");
            for (jp, st) in done.chunks_exact(LANES).enumerate() {
                let sv = side.s[jp * k + j];
                for (x, &d) in fit.iter_mut().zip(st) {
                    *x += d * sv;
                }
            }
            // num = −q_j + B_1,gj + B_2,gj + …, left to right.
            let mut num = fit.map(|v| -v);
            for t in 0..side.b.len() {
                let b = &self.b[(t * k + j) * LANES..(t * k + j + 1) * LANES];
                for (x, &bv) in num.iter_mut().zip(b) {
                    *x += bv;
                }
            }
            // Local copies: the compiler cannot tell that two Vecs' buffers
            // do not overlap, and would not vectorize across them.
            let old: [f64; LANES] = self.f[j * LANES..(j + 1) * LANES].try_into().expect("lanes");
            let mut new = [0.0f64; LANES];
            let mut delta = [0.0f64; LANES];
            for l in 0..LANES {
                // One division per column: num·(1/den); max(·, ε) as a
                // compare and select (NaN → ε, as f64::max), which vectorizes.
                let x = old[l] + num[l] * inv_den;
                new[l] = if x > HALS_FLOOR { x } else { HALS_FLOOR };
                delta[l] = c * (new[l] - old[l]);
            }
            self.f[j * LANES..(j + 1) * LANES].copy_from_slice(&new);
            self.steps[j * LANES..(j + 1) * LANES].copy_from_slice(&delta);
        }
    }

    /// The first `len` lanes back into rows `first..`.
    #[inline(always)]
    fn store(&self, rows: &mut [f64], first: usize, len: usize, k: usize) {
        for l in 0..len {
            for j in 0..k {
                rows[(first + l) * k + j] = self.f[j * LANES + l];
            }
        }
    }
}

/// The surrogate S_i = tr((W+V)ᵀ(W+V)A) − 2tr((W+V)ᵀB) + λ tr(VᵀVA) of one
/// dataset (the expected cost without its constant ‖X‖² part).
pub(crate) fn surrogate(
    W: ArrayView2<f64>,
    V: ArrayView2<f64>,
    A: ArrayView2<f64>,
    B: ArrayView2<f64>,
    lambda: f64,
) -> f64 {
    let WV = &W + &V;
    let gram = WV.t().dot(&WV);
    let vgram = V.t().dot(&V);
    let cross: f64 = WV.iter().zip(B.iter()).map(|(x, y)| x * y).sum();
    trace_of_product(gram.view(), A) - 2.0 * cross + lambda * trace_of_product(vgram.view(), A)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// (V, A, B) of one dataset.
    type Stats = (Array2<f64>, Array2<f64>, Array2<f64>);

    fn random_problem(seed: u64, m: usize, k: usize, d: usize) -> (Array2<f64>, Vec<Stats>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut rnd = |r: usize, c: usize| Array2::from_shape_simple_fn((r, c), || rng.random::<f64>());
        let w = rnd(m, k);
        let sets = (0..d)
            .map(|_| {
                let h = rnd(30, k);
                let x = rnd(30, m);
                (rnd(m, k) * 0.3, h.t().dot(&h) / 30.0, x.t().dot(&h) / 30.0)
            })
            .collect();
        (w, sets)
    }

    fn stats_of(sets: &[Stats]) -> Vec<DatasetStats<'_>> {
        sets.iter()
            .map(|(v, a, b)| DatasetStats {
                v: v.view(),
                a: a.view(),
                b: b.view(),
            })
            .collect()
    }

    fn total(w: &Array2<f64>, sets: &[Stats], lambda: f64) -> f64 {
        sets.iter()
            .map(|(v, a, b)| surrogate(w.view(), v.view(), a.view(), b.view(), lambda))
            .sum()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn sweeps_never_increase_the_surrogate(seed in 0u64..10_000, k in 1usize..8, d in 1usize..4, lambda in 0.0f64..10.0) {
            let (mut w, mut sets) = random_problem(seed, 25, k, d);
            let mut prev = total(&w, &sets, lambda);
            for _ in 0..5 {
                let stats: Vec<_> = sets.iter().map(|(v, a, b)| DatasetStats { v: v.view(), a: a.view(), b: b.view() }).collect();
                update_w(&mut w, &stats);
                let now = total(&w, &sets, lambda);
                prop_assert!(now <= prev + 1e-10 * prev.abs().max(1.0), "W step: {} > {}", now, prev);
                prev = now;
                for (v, a, b) in sets.iter_mut() {
                    update_v(w.view(), v, a.view(), b.view(), lambda);
                }
                let now = total(&w, &sets, lambda);
                prop_assert!(now <= prev + 1e-10 * prev.abs().max(1.0), "V step: {} > {}", now, prev);
                prev = now;
                prop_assert!(w.iter().all(|&x| x >= HALS_FLOOR));
            }
        }
    }

    #[test]
    fn column_update_is_the_exact_projected_minimiser() {
        // For one dataset and K = 1 the W update solves a scalar quadratic per gene exactly.
        let (mut w, sets) = random_problem(5, 10, 1, 1);
        let (v, a, b) = &sets[0];
        update_w(
            &mut w,
            &[DatasetStats {
                v: v.view(),
                a: a.view(),
                b: b.view(),
            }],
        );
        for g in 0..10 {
            let expect = ((b[[g, 0]] / a[[0, 0]]) - v[[g, 0]]).max(HALS_FLOOR);
            assert!((w[[g, 0]] - expect).abs() < 1e-12);
        }
    }

    /// The textbook sweep: column by column, every row's numerator formed
    /// from scratch with the current factors (no running fits, no GEMM).
    fn reference_sweep(
        f: &mut Array2<f64>,
        others: &[(Array2<f64>, Array2<f64>)],
        targets: &[Array2<f64>],
        s: &Array2<f64>,
        c: f64,
    ) {
        let (m, k) = f.dim();
        for j in 0..k {
            let den = c * s[[j, j]];
            if den <= 0.0 {
                continue;
            }
            for g in 0..m {
                let mut num: f64 = targets.iter().map(|b| b[[g, j]]).sum();
                for (o, a) in others {
                    num -= (0..k).map(|l| o[[g, l]] * a[[l, j]]).sum::<f64>();
                }
                num -= c * (0..k).map(|l| f[[g, l]] * s[[l, j]]).sum::<f64>();
                f[[g, j]] = (f[[g, j]] + num / den).max(HALS_FLOOR);
            }
        }
    }

    /// The column loop as first written: one row at a time, its whole
    /// running fit updated after every column (q += δ_j·S_j·).
    fn running_fit_loop(rows: &mut [f64], q: &mut [f64], g0: usize, k: usize, side: &Sweep<'_>) {
        for (i, (r, q)) in rows.chunks_exact_mut(k).zip(q.chunks_exact_mut(k)).enumerate() {
            for j in 0..k {
                let srow = &side.s[j * k..(j + 1) * k];
                let den = side.c * srow[j];
                if den <= 0.0 {
                    continue;
                }
                let mut num = -q[j];
                for b in &side.b {
                    num += b[(g0 + i) * k + j];
                }
                let new = (r[j] + num * (1.0 / den)).max(HALS_FLOOR);
                let step = side.c * (new - r[j]);
                r[j] = new;
                for (x, &sv) in q.iter_mut().zip(srow) {
                    *x += step * sv;
                }
            }
        }
    }

    #[test]
    fn the_lazy_fit_column_loop_equals_the_running_fit_loop() {
        // Row counts around the group width, W-like (three targets) and
        // V-like (one) sides, a column with S_jj = 0 (left unchanged).
        for (n, k, t) in [(1, 20, 3), (15, 20, 3), (16, 7, 1), (37, 20, 1), (50, 5, 2)] {
            let (f0, sets) = random_problem(n as u64 + 40, n, k, t);
            let mut s_mat = sets.iter().fold(Array2::zeros((k, k)), |acc, (_, a, _)| acc + a);
            if k > 3 {
                s_mat.row_mut(2).fill(0.0);
                s_mat.column_mut(2).fill(0.0);
            }
            let bs: Vec<Vec<f64>> = sets.iter().map(|(_, _, b)| b.iter().copied().collect()).collect();
            let side = Sweep {
                stacked: s_mat.view(),
                merged: true,
                b: bs.iter().map(|b| b.as_slice()).collect(),
                s: s_mat.iter().copied().collect(),
                c: 1.7,
            };
            let q0: Vec<f64> = sets[0].0.iter().map(|v| v * 0.3).collect();
            let (mut got, mut want) = (
                f0.iter().copied().collect::<Vec<_>>(),
                f0.iter().copied().collect::<Vec<_>>(),
            );
            let mut q_want = q0.clone();
            column_loop(&mut got, &q0, 0, k, &side, &mut Group::default());
            running_fit_loop(&mut want, &mut q_want, 0, k, &side);
            assert_eq!(got, want, "n {n} k {k} targets {t}");
            assert_ne!(got, f0.iter().copied().collect::<Vec<_>>(), "the rows moved");
            if k > 3 {
                assert!(
                    got.chunks_exact(k).zip(f0.rows()).all(|(g, o)| g[2] == o[2]),
                    "column 2 unchanged"
                );
            }
        }
    }

    #[test]
    fn the_fused_sweep_is_update_w_then_update_v_bit_for_bit() {
        // 301 genes: several gene blocks, a short last block; one frozen dataset.
        for (k, d, lambda) in [(20, 3, 5.0), (7, 2, 0.5), (1, 1, 0.0)] {
            let (w0, sets) = random_problem(5, 301, k, d);
            let learned: Vec<bool> = (0..d).map(|i| d == 1 || i != 1).collect();
            let mut w_ref = w0.clone();
            let mut v_ref: Vec<_> = sets.iter().map(|(v, _, _)| v.clone()).collect();
            let stats = stats_of(&sets);
            update_w(&mut w_ref, &stats);
            for ((v, (_, a, b)), &l) in v_ref.iter_mut().zip(&sets).zip(&learned) {
                if l {
                    update_v(w_ref.view(), v, a.view(), b.view(), lambda);
                }
            }
            let mut w = w0.clone();
            let mut vs: Vec<_> = sets.iter().map(|(v, _, _)| v.clone()).collect();
            let a: Vec<_> = sets.iter().map(|(_, a, _)| a.view()).collect();
            let b: Vec<_> = sets.iter().map(|(_, _, b)| b.view()).collect();
            let mut v_refs: Vec<_> = vs.iter_mut().collect();
            sweep_w_then_v(&mut w, &mut v_refs, &a, &b, &learned, lambda);
            let bits = |m: &Array2<f64>| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&w), bits(&w_ref), "W (k {k})");
            assert_ne!(bits(&w), bits(&w0), "W moved");
            for (i, (v, r)) in vs.iter().zip(&v_ref).enumerate() {
                assert_eq!(bits(v), bits(r), "V_{i} (k {k})");
                assert_eq!(bits(v) == bits(&sets[i].0), !learned[i], "only learned V_i move");
            }
        }
    }

    #[test]
    fn sweeps_match_the_textbook_column_updates() {
        // 301 genes: several gene blocks and a last group padded to LANES rows.
        for (k, d, lambda) in [(20, 3, 5.0), (7, 2, 0.5), (1, 1, 0.0)] {
            let (mut w, sets) = random_problem(11, 301, k, d);
            let mut w_ref = w.clone();
            let a_sum = sets.iter().fold(Array2::zeros((k, k)), |acc, (_, a, _)| acc + a);
            let others: Vec<_> = sets.iter().map(|(v, a, _)| (v.clone(), a.clone())).collect();
            let targets: Vec<_> = sets.iter().map(|(_, _, b)| b.clone()).collect();
            reference_sweep(&mut w_ref, &others, &targets, &a_sum, 1.0);
            let stats = stats_of(&sets);
            update_w(&mut w, &stats);
            let scale = w_ref.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (x, y) in w.iter().zip(&w_ref) {
                assert!((x - y).abs() <= 1e-10 * scale, "W: {x} vs {y} (k {k})");
            }
            let (v, a, b) = &sets[0];
            let (mut v_new, mut v_ref) = (v.clone(), v.clone());
            reference_sweep(
                &mut v_ref,
                &[(w.clone(), a.clone())],
                std::slice::from_ref(b),
                a,
                1.0 + lambda,
            );
            update_v(w.view(), &mut v_new, a.view(), b.view(), lambda);
            let scale = v_ref.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (x, y) in v_new.iter().zip(&v_ref) {
                assert!((x - y).abs() <= 1e-10 * scale, "V: {x} vs {y} (k {k})");
            }
        }
    }
}
