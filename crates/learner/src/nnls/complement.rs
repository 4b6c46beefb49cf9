//! Block principal pivoting with passive-set solves through the full
//! inverse M = G⁻¹ (a Schur-complement update on the active set), for a
//! well-conditioned G with no fixed variables. Same method, same exchange
//! rules and tolerances as `bpp.rs`; only the linear algebra of a round
//! differs.
//!
//! For a passive set P and active set A (h_A = 0), the round's solution
//! solves G_PP·h_P = r_P and its duals are y_A = G_AP·h_P − r_A, y_P = 0.
//! Equivalently G·h = r + y with y_P = 0 and h_A = 0, so with z = M·r
//! (the unconstrained solution, once per row):
//!
//!   h = z + M_{:,A}·y_A,   h_A = 0   ⇒   M_AA·y_A = −z_A,
//!   h_P = z_P + M_PA·y_A.
//!
//! M_AA is a principal block of an SPD matrix, hence SPD. A round costs a
//! Cholesky factor of the |A| × |A| block M_AA instead of the |P| × |P|
//! block G_PP; in NMF most variables are passive (|A| ≈ K/4), so this is
//! far less work, and no grouping of rows by passive set is needed. When
//! |A| > |P|, or if rounding makes the factor of M_AA fail, the round
//! factors G_PP instead (`bpp::factor_passive`).
//!
//! Accuracy: h_P is formed as z_P plus a correction, so its rounding error
//! is ≈ ε·κ(G)·max|z| rather than ε·κ(G_PP)·max|h_P|. The solver is used
//! only when κ₁(G) = ‖G‖₁·‖M‖₁ ≤ [`MAX_CONDITION`] (checked once per call
//! from the computed M) and K ≤ 64 (a passive set is one bitmask word, so
//! the feasibility tests and exchanges are branch-free bit operations);
//! otherwise `bpp.rs` factors every passive set.

use super::bpp::{
    coordinate_descent, exchange, factor_passive, first_passive_set, BppStats, Problem, RoundBuffers, Start,
    FEAS_TOL, FULL_EXCHANGE_BUDGET, ROW_BLOCK,
};
use super::cholesky::{factor_in_place, solve_many_in_place};
use crate::error::LearnerError;
use crate::kernels::simd::avx2_dispatch;

/// Largest 1-norm condition number of G for which the complement solver is
/// used (rounding in h ≈ 1e-16·κ·max|z|, well inside the feasibility band
/// of `bpp.rs` relative to typical h).
pub(super) const MAX_CONDITION: f64 = 1e6;

/// M = G⁻¹ (row-major K × K, symmetric), when G is positive definite with
/// κ₁(G) ≤ [`MAX_CONDITION`].
pub(super) struct FullInverse {
    m: Vec<f64>,
}

impl FullInverse {
    /// Inverts G (`g`, row-major K × K, symmetric) by its Cholesky factor;
    /// `None` if G is not numerically positive definite or κ₁(G) is above
    /// [`MAX_CONDITION`].
    pub(super) fn new(g: &[f64], k: usize) -> Option<Self> {
        let mut u = g.to_vec();
        let mut inv_diag = vec![0.0; k];
        if !factor_in_place(&mut u, k, &mut inv_diag) {
            return None;
        }
        // Column s of the identity → column s of M (B is K × K, one column per rhs).
        let mut m = vec![0.0; k * k];
        for s in 0..k {
            m[s * k + s] = 1.0;
        }
        solve_many_in_place(&u, &inv_diag, k, &mut m, k);
        for i in 0..k {
            for j in i + 1..k {
                let v = 0.5 * (m[i * k + j] + m[j * k + i]);
                m[i * k + j] = v;
                m[j * k + i] = v;
            }
        }
        let norm1 = |a: &[f64]| {
            (0..k)
                .map(|j| (0..k).map(|i| a[i * k + j].abs()).sum::<f64>())
                .fold(0.0f64, f64::max)
        };
        let kappa = norm1(g) * norm1(&m);
        (kappa.is_finite() && kappa <= MAX_CONDITION).then_some(Self { m })
    }
}

/// Work buffers of one block, allocated once per rayon work split.
pub(super) struct Workspace {
    /// Z = R·M for the block (ROW_BLOCK × K).
    zs: Vec<f64>,
    y: Vec<f64>,
    round: RoundBuffers,
}

impl Workspace {
    pub(super) fn new(k: usize) -> Self {
        Self {
            zs: vec![0.0; ROW_BLOCK * k],
            y: vec![0.0; k],
            round: RoundBuffers::new(k),
        }
    }
}

/// Indices of the set bits of `bits`, ascending, into `out`.
#[inline(always)]
fn indices(mut bits: u64, out: &mut Vec<usize>) {
    out.clear();
    while bits != 0 {
        out.push(bits.trailing_zeros() as usize);
        bits &= bits - 1;
    }
}

/// Z = R·M for the nb × K block `r` (M symmetric K × K, row-major), into
/// `z` (nb × K): z_ci = Σ_j r_cj·M_ji summed in the order j = 0, 1, …, K−1
/// for every entry, so a row's result does not depend on the block it is
/// in. Tiles of 4 rows × 4 columns are kept in registers.
#[inline(always)]
fn unconstrained_block(mi: &[f64], r: &[f64], z: &mut [f64], k: usize) {
    let nb = r.len() / k;
    let quads = nb / 4;
    let col4 = k / 4 * 4;
    for q in 0..quads {
        let rows = &r[q * 4 * k..(q + 1) * 4 * k];
        let (r0, rest) = rows.split_at(k);
        let (r1, rest) = rest.split_at(k);
        let (r2, r3) = rest.split_at(k);
        let out = &mut z[q * 4 * k..(q + 1) * 4 * k];
        for i0 in (0..col4).step_by(4) {
            let mut acc = [[0.0f64; 4]; 4];
            for (j, mrow) in mi.chunks_exact(k).enumerate() {
                let m = &mrow[i0..i0 + 4];
                for (acc_c, &rc) in acc.iter_mut().zip([r0[j], r1[j], r2[j], r3[j]].iter()) {
                    for (a, &mv) in acc_c.iter_mut().zip(m) {
                        *a += rc * mv;
                    }
                }
            }
            for (c, acc_c) in acc.iter().enumerate() {
                out[c * k + i0..c * k + i0 + 4].copy_from_slice(acc_c);
            }
        }
        for i in col4..k {
            for (c, rc) in [r0, r1, r2, r3].iter().enumerate() {
                let mut a = 0.0;
                for (&rv, mrow) in rc.iter().zip(mi.chunks_exact(k)) {
                    a += rv * mrow[i];
                }
                out[c * k + i] = a;
            }
        }
    }
    for c in quads * 4..nb {
        let rc = &r[c * k..(c + 1) * k];
        for i in 0..k {
            let mut a = 0.0;
            for (&rv, mrow) in rc.iter().zip(mi.chunks_exact(k)) {
                a += rv * mrow[i];
            }
            z[c * k + i] = a;
        }
    }
}

/// max |x_j| over all j (x is zero outside P), four independent lanes.
#[inline(always)]
fn abs_max(x: &[f64]) -> f64 {
    let mut lanes = [0.0f64; 4];
    let mut chunks = x.chunks_exact(4);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            let a = v.abs();
            *l = if a > *l { a } else { *l };
        }
    }
    for &v in chunks.remainder() {
        let a = v.abs();
        lanes[0] = if a > lanes[0] { a } else { lanes[0] };
    }
    lanes[0].max(lanes[1]).max(lanes[2].max(lanes[3]))
}

avx2_dispatch! {
    /// Solves the rows of one block (`rhs` and `out` are nb × K slices,
    /// K ≤ 64 so a passive set is one bitmask word), each row to completion
    /// before the next.
    pub(super) fn solve_block / solve_block_avx2 / solve_block_impl(
        pb: &Problem,
        inv: &FullInverse,
        rhs: &[f64],
        out: &mut [f64],
        start: Start,
        ws: &mut Workspace,
        row0: usize,
    ) -> Result<BppStats, LearnerError> {
        let k = pb.k;
        debug_assert!(k <= 64 && pb.words == 1);
        let all: u64 = if k == 64 { u64::MAX } else { (1u64 << k) - 1 };
        let mi = &inv.m[..k * k];
        let mut st = BppStats::default();
        let Workspace {
            zs,
            y,
            round:
                RoundBuffers {
                    factor,
                    inv_diag,
                    pidx,
                    aidx,
                    sol,
                    infeasible,
                },
        } = ws;
        unconstrained_block(mi, rhs, &mut zs[..rhs.len()], k);
        for (c, ((r, x), z)) in rhs
            .chunks_exact(k)
            .zip(out.chunks_exact_mut(k))
            .zip(zs.chunks_exact(k))
            .enumerate()
        {
            let mut mask = [0u64; 1];
            let Some((rscale, mut beta)) =
                first_passive_set(pb, r, x, &mut mask, start, row0 + c, &mut st)?
            else {
                continue;
            };
            let mut passive = mask[0];
            let mut alpha = FULL_EXCHANGE_BUDGET;
            let mut iters = 0usize;
            loop {
                let active = all & !passive;
                let (p, a) = (passive.count_ones() as usize, active.count_ones() as usize);
                indices(active, aidx);
                // M_AA·y_A = −z_A, then h = z + M_{:,A}·y_A; a block of M
                // whose factor fails (rounding) is solved as below instead.
                let complement = a <= p
                    && (a == 0 || {
                        for (s, &i) in aidx.iter().enumerate() {
                            let row = &mi[i * k..(i + 1) * k];
                            for (d, &j) in factor[s * a + s..(s + 1) * a].iter_mut().zip(&aidx[s..]) {
                                *d = row[j];
                            }
                            y[s] = -z[i];
                        }
                        factor_in_place(&mut factor[..a * a], a, inv_diag)
                    });
                if complement {
                    x.copy_from_slice(z);
                    if a > 0 {
                        solve_many_in_place(factor, inv_diag, a, y, 1);
                        for (&i, &ys) in aidx.iter().zip(y.iter()) {
                            for (xv, &mij) in x.iter_mut().zip(&mi[i * k..(i + 1) * k]) {
                                *xv += ys * mij;
                            }
                        }
                        for &i in aidx.iter() {
                            x[i] = 0.0;
                        }
                        st.complement_solves += 1;
                    }
                } else {
                    // Few passive variables (or the fallback): factor G_PP as `bpp.rs` does.
                    indices(passive, pidx);
                    if p > 0 {
                        factor_passive(pb, pidx, factor, inv_diag, &mut st)?;
                    }
                    for (t, &j) in pidx.iter().enumerate() {
                        sol[t] = r[j];
                    }
                    solve_many_in_place(factor, inv_diag, p, sol, 1);
                    for (s, &i) in aidx.iter().enumerate() {
                        let row = &pb.g[i * k..(i + 1) * k];
                        let mut v = -r[i];
                        for (&j, &h) in pidx.iter().zip(&sol[..p]) {
                            v += row[j] * h;
                        }
                        y[s] = v;
                    }
                    x.fill(0.0);
                    for (&j, &h) in pidx.iter().zip(&sol[..p]) {
                        x[j] = h;
                    }
                }
                let xmax = abs_max(x);
                if !xmax.is_finite() || x.iter().any(|v| v.is_nan()) {
                    return Err(LearnerError::Numerical(format!(
                        "the passive-set solve of rhs row {} overflowed",
                        row0 + c
                    )));
                }
                // Infeasible: h_j < −tol_h on P (x is 0 on A), y_j < −tol_y on A.
                let tol_h = FEAS_TOL * xmax;
                let tol_y = FEAS_TOL * (rscale + pb.gdiag_max * xmax);
                let mut bad = 0u64;
                for (j, &v) in x.iter().enumerate() {
                    bad |= ((v < -tol_h) as u64) << j;
                }
                for (&i, &v) in aidx.iter().zip(y.iter()) {
                    bad |= ((v < -tol_y) as u64) << i;
                }
                if bad == 0 {
                    for v in x.iter_mut() {
                        *v = if *v > 0.0 { *v } else { 0.0 };
                    }
                    st.max_row_exchanges = st.max_row_exchanges.max(iters);
                    break;
                }
                iters += 1;
                st.exchanges += 1;
                if iters > pb.cap {
                    st.capped_rows += 1;
                    st.max_row_exchanges = st.max_row_exchanges.max(iters);
                    coordinate_descent(pb, r, x, sol);
                    break;
                }
                indices(bad, infeasible);
                mask[0] = passive;
                exchange(pb, infeasible, &mut mask, &mut alpha, &mut beta, &mut st);
                passive = mask[0];
            }
        }
        Ok(st)
    }
}
