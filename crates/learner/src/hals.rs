//! HALS updates of W and V_i from the online sufficient statistics
//! (ALGORITHMS.md §3 step 3; derivation in seed 001).
//!
//! With A_i = Σ HᵀH/m (K × K) and B_i = Σ XᵀH/m (genes × K), the surrogate
//!
//! S = Σ_i tr((W+V_i)ᵀ(W+V_i)A_i) − 2 tr((W+V_i)ᵀB_i) + λ tr(V_iᵀV_i A_i)
//!
//! is a convex quadratic whose Hessian in one column of W (or V_i) is a
//! multiple of the identity, so each column update below is that column's
//! exact projected minimiser; one Gauss–Seidel sweep never increases S.
#![allow(non_snake_case)]

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::objective::trace_of_product;
use crate::simd::avx2_dispatch;

/// The clamp floor of the anchor: entries stay ≥ 1e-16, never exactly 0.
pub const HALS_FLOOR: f64 = 1e-16;

/// One dataset's statistics as the W update reads them.
#[derive(Debug, Clone, Copy)]
pub struct DatasetStats<'a> {
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
pub fn update_w(W: &mut Array2<f64>, stats: &[DatasetStats<'_>]) {
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
pub fn update_v(
    W: ArrayView2<f64>,
    V: &mut Array2<f64>,
    A: ArrayView2<f64>,
    B: ArrayView2<f64>,
    lambda: f64,
) {
    sweep(V, &[(W, A)], &[B], A, 1.0 + lambda);
}

/// One sweep of F (rows × K) with the fits Q = Σ_t O_t·A_t + c·F·S:
/// F_gj ← max(ε, F_gj + (Σ_t B_t,gj − Q_gj)/(c·S_jj)), column by column,
/// Q_g· kept current (Q_g· += c·δ·S_j· after F_gj moves by δ; S symmetric).
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
    let bs: Vec<_> = targets.iter().map(|b| b.as_standard_layout()).collect();
    let side = Sweep {
        others: others.iter().map(|o| o.as_slice().expect("standard")).collect(),
        a: terms.iter().map(|(_, a)| a.iter().copied().collect()).collect(),
        b: bs.iter().map(|b| b.as_slice().expect("standard")).collect(),
        s: S.iter().copied().collect(),
        c,
    };
    let f = F.as_slice_mut().expect("factor in standard layout");
    f.par_chunks_mut(GENE_BLOCK * k)
        .enumerate()
        .for_each(|(blk, rows)| {
            sweep_rows(rows, blk * GENE_BLOCK, k, &side);
        });
}

/// What a sweep of one factor F (W or V_i) reads: the other factors O_t
/// (genes × K) with their A_t (K × K), the targets B_t (genes × K), the
/// matrix S multiplying F (Σ_t A_t for W, A_i for V_i; all row-major,
/// symmetric) and c (1 for W, 1 + λ for V_i).
struct Sweep<'a> {
    others: Vec<&'a [f64]>,
    a: Vec<Vec<f64>>,
    b: Vec<&'a [f64]>,
    s: Vec<f64>,
    c: f64,
}

avx2_dispatch! {
    /// Rows `g0..` of a factor (rows × k in `rows`) through one sweep over
    /// the columns, two rows at a time (their fits are independent chains
    /// sharing every load of A_t and S; an odd last row is paired with a
    /// copy of itself, whose result is dropped). Per row, q = Σ_t O_t,g·A_t
    /// + c·F_g·S is formed (axpys over rows of A_t and S) and kept current
    /// by q += c·δ·S_j·; each row sees the same operations as alone.
    /// (A compile-time k, as in the sparse kernels, measured 1.7× slower here.)
    fn sweep_rows / sweep_rows_avx2 / sweep_rows_impl(
        rows: &mut [f64],
        g0: usize,
        k: usize,
        side: &Sweep<'_>,
    ) {
        let mut q = vec![0.0f64; 2 * k];
        let last_gene = g0 + rows.len() / k.max(1) - 1;
        let mut pairs = rows.chunks_exact_mut(2 * k);
        for (p, pair) in (&mut pairs).enumerate() {
            let (r0, r1) = pair.split_at_mut(k);
            let g = g0 + 2 * p;
            sweep_pair(r0, r1, [g, g + 1], k, side, &mut q);
        }
        let last = pairs.into_remainder();
        if !last.is_empty() {
            let mut copy = last.to_vec();
            sweep_pair(last, &mut copy, [last_gene, last_gene], k, side, &mut q);
        }
    }
}

/// One sweep over the columns of rows `r0` and `r1` (genes `g`), with
/// `q` (2K) as work space for their running fits.
#[inline(always)]
fn sweep_pair(r0: &mut [f64], r1: &mut [f64], g: [usize; 2], k: usize, side: &Sweep<'_>, q: &mut [f64]) {
    let c = side.c;
    let (q0, q1) = q.split_at_mut(k);
    q0.fill(0.0);
    q1.fill(0.0);
    for (o, a) in side.others.iter().zip(&side.a) {
        let (o0, o1) = (&o[g[0] * k..(g[0] + 1) * k], &o[g[1] * k..(g[1] + 1) * k]);
        for ((&u0, &u1), arow) in o0.iter().zip(o1).zip(a.chunks_exact(k)) {
            for ((x0, x1), &av) in q0.iter_mut().zip(q1.iter_mut()).zip(arow) {
                *x0 += u0 * av;
                *x1 += u1 * av;
            }
        }
    }
    for ((&f0, &f1), srow) in r0.iter().zip(r1.iter()).zip(side.s.chunks_exact(k)) {
        let (u0, u1) = (c * f0, c * f1);
        for ((x0, x1), &sv) in q0.iter_mut().zip(q1.iter_mut()).zip(srow) {
            *x0 += u0 * sv;
            *x1 += u1 * sv;
        }
    }
    for j in 0..k {
        let srow = &side.s[j * k..(j + 1) * k];
        let den = c * srow[j];
        if den <= 0.0 {
            continue;
        }
        let (mut n0, mut n1) = (-q0[j], -q1[j]);
        for b in &side.b {
            n0 += b[g[0] * k + j];
            n1 += b[g[1] * k + j];
        }
        let new0 = (r0[j] + n0 / den).max(HALS_FLOOR);
        let new1 = (r1[j] + n1 / den).max(HALS_FLOOR);
        let (step0, step1) = (c * (new0 - r0[j]), c * (new1 - r1[j]));
        r0[j] = new0;
        r1[j] = new1;
        // A zero step adds exact zeros: the same values as skipping it.
        if step0 != 0.0 || step1 != 0.0 {
            for ((x0, x1), &sv) in q0.iter_mut().zip(q1.iter_mut()).zip(srow) {
                *x0 += step0 * sv;
                *x1 += step1 * sv;
            }
        }
    }
}

/// The surrogate S_i = tr((W+V)ᵀ(W+V)A) − 2tr((W+V)ᵀB) + λ tr(VᵀVA) of one
/// dataset (the expected cost without its constant ‖X‖² part).
pub fn surrogate(
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
}
