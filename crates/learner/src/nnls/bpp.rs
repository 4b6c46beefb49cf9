//! Block principal pivoting for many NNLS right-hand sides sharing one Gram
//! matrix (Kim & Park, "Fast nonnegative matrix factorization: an
//! active-set-like method and comparisons", SIAM J. Sci. Comput. 33(6),
//! 2011: the method with its backup rule, and the grouping of right-hand
//! sides that share a passive set; docs/algorithms.md §2).
//!
//! For each right-hand side r (a row of `rhs`), with G K × K symmetric PSD:
//!
//!   min_{h ≥ 0} ½ hᵀGh − rᵀh   ⇔   min_{h ≥ 0} ‖Ch − d‖², G = CᵀC, r = Cᵀd.
//!
//! KKT: h ≥ 0, y = Gh − r ≥ 0, h∘y = 0. The method keeps a passive set P
//! (h_P solves G_PP·h_P = r_P, y_P = 0) and its complement, the active set
//! A (h_A = 0, y_A = G_AP·h_P − r_A). Variables with h_P < 0 or y_A < 0 are
//! infeasible; all of them change sides at once ("full exchange"). If the
//! count of infeasible variables has not decreased for 3 full exchanges in
//! a row, only the infeasible variable with the largest index changes side
//! (the backup rule: a single principal pivot, which terminates finitely);
//! a decrease restores the full-exchange budget. Rows that share a passive
//! set in a round share one Cholesky factor of G_PP (rows are sorted by
//! their passive-set bitmask), and the group's solves and duals are done
//! together, as p × m and |A| × m blocks, so the inner loops run over the
//! m rows of the group and vectorize.
//!
//! Numerical conventions (all relative, so the solver is scale-invariant):
//! - feasibility: h_j < −τ·max|h_P| or y_j < −τ·(max|r| + max diag(G)·max|h_P|)
//!   with τ = [`FEAS_TOL`] = 1e-12; values inside the band count as zero and
//!   the returned h is clamped at 0;
//! - a variable with G_jj = 0 (a zero column of C) is held at 0: with
//!   consistent data r_j = Cᵀ_j d = 0 and 0 is optimal; with r_j > 0 the
//!   problem is unbounded and 0 is returned for it ([`super::kkt_residual`]
//!   will report the violation);
//! - a block G_PP whose Cholesky factorization fails (semidefinite or
//!   numerically singular, e.g. duplicated columns of C) is refactored as
//!   G_PP + δI with δ = 1e-12·max diag(G_PP), then ×100 up to δ = 1e-6·max
//!   diag; this picks a (near) minimum-norm solution among equivalent ones;
//!   if even that fails G is not PSD and an error is returned;
//! - each row may take at most max(5K, 10) exchange rounds; a row that
//!   reaches the cap (not observed in the tests or benches; 3 rounds at
//!   most there) is finished from its clamped
//!   iterate by exact coordinate descent, which decreases the objective
//!   monotonically and converges to the optimum.
//!
//! Two ways to solve a round's passive-set systems, the same method and
//! rules otherwise: when G is well conditioned (κ₁(G) ≤ 1e6), positive
//! definite and K ≤ 64, every row is pivoted to completion on its own
//! through the full inverse G⁻¹, a round costing a factor of the small
//! |A| × |A| block of G⁻¹ instead of the |P| × |P| block G_PP
//! (`complement.rs`); otherwise rows are grouped by passive set as above.
//!
//! Rows are processed in fixed blocks of [`ROW_BLOCK`]; every row's
//! arithmetic depends only on its own data and G (a passive set's factor is
//! computed the same way whichever rows share it), so results are
//! bit-identical for any number of threads.

#[cfg(test)]
use ndarray::Array2;
use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use super::cholesky::{dot, factor_in_place, solve_many_in_place};
use super::complement::{self, FullInverse};
use crate::error::LearnerError;
use crate::kernels::simd::avx2_dispatch;

/// Right-hand sides per parallel work unit (fixed, not derived from the
/// thread count; results do not depend on it either).
pub(crate) const ROW_BLOCK: usize = 256;

/// Relative band τ inside which a negative h_j or y_j counts as zero.
pub(crate) const FEAS_TOL: f64 = 1e-12;

/// Full exchanges allowed without a decrease of the infeasible count (Kim & Park's α).
pub(super) const FULL_EXCHANGE_BUDGET: u8 = 3;

/// First ridge, relative to max diag(G_PP), when a factorization fails.
const RIDGE_START: f64 = 1e-12;
/// Growth of the ridge between attempts.
const RIDGE_GROWTH: f64 = 100.0;
/// Ridged attempts after the plain one (δ = 1e-12, 1e-10, 1e-8, 1e-6).
const RIDGE_ATTEMPTS: usize = 4;

/// Sweeps of the coordinate-descent fallback for a row that hit the cap.
const CD_SWEEPS: usize = 2000;

/// Counters of one [`nnls_bpp_into`] call (summed over all right-hand sides).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BppStats {
    /// Right-hand sides solved at once by h = 0 because max_j r_j ≤ 0
    /// (or every positive r_j is within the feasibility band).
    pub trivial_rows: usize,
    /// Exchange rounds, summed over rows (0 for a row whose first passive
    /// set is already optimal).
    pub exchanges: usize,
    /// Largest number of exchange rounds taken by a single row.
    pub max_row_exchanges: usize,
    /// Rounds that used the single-variable backup rule.
    pub backup_exchanges: usize,
    /// Cholesky factors of a G_PP computed (one per distinct passive set per round).
    pub factorizations: usize,
    /// Factors that needed the ridge G_PP + δI.
    pub ridged_factorizations: usize,
    /// Rows that reached the exchange cap and were finished by coordinate descent.
    pub capped_rows: usize,
    /// Passive-set solves done through the full inverse, by the Schur
    /// complement on the active set (`complement.rs`), instead of a Cholesky
    /// factor of G_PP.
    pub complement_solves: usize,
}

impl BppStats {
    fn merge(&mut self, o: &BppStats) {
        self.trivial_rows += o.trivial_rows;
        self.exchanges += o.exchanges;
        self.max_row_exchanges = self.max_row_exchanges.max(o.max_row_exchanges);
        self.backup_exchanges += o.backup_exchanges;
        self.factorizations += o.factorizations;
        self.ridged_factorizations += o.ridged_factorizations;
        self.capped_rows += o.capped_rows;
        self.complement_solves += o.complement_solves;
    }
}

/// [`nnls_bpp_into`] into a fresh H (n × K).
#[cfg(test)]
#[track_caller]
pub(crate) fn nnls_bpp(gram: ArrayView2<f64>, rhs: ArrayView2<f64>) -> Result<Array2<f64>, LearnerError> {
    let mut h = Array2::zeros(rhs.raw_dim());
    nnls_bpp_into(gram, rhs, h.view_mut())?;
    Ok(h)
}

/// Solves, for every row r of `rhs` (n × K), min_{h ≥ 0} ½hᵀGh − rᵀh with
/// G = `gram` (K × K, symmetric PSD), by block principal pivoting from h = 0.
/// Writes H (n × K), row c the solution for row c of `rhs`, into `out`
/// (standard layout; its contents on entry are ignored) and returns the
/// solver's counters.
///
/// Equivalent to NNLS min_{h≥0} ‖Ch − d‖ with G = CᵀC, r = Cᵀd (C never
/// formed); in iNMF, G = (W+V)ᵀ(W+V) + λVᵀV and R = X·(W+V) (docs/algorithms.md §2).
/// Errors: non-finite values in `gram` or `rhs`, a non-symmetric or non-PSD
/// `gram` (negative diagonal, or a block that stays indefinite after the
/// ridge). Shape mismatches are caller bugs and panic.
#[track_caller]
pub fn nnls_bpp_into(
    gram: ArrayView2<f64>,
    rhs: ArrayView2<f64>,
    out: ArrayViewMut2<f64>,
) -> Result<BppStats, LearnerError> {
    run(gram, rhs, out, Start::Cold, Limits::default())
}

/// [`nnls_bpp_into`] warm-started from the contents of `out` (n × K,
/// standard layout): row c starts from the passive set P = {j : out_cj > 0}
/// (e.g. the previous iterate of an alternating method, which usually
/// needs 0–2 exchange rounds). The solution does not depend on the start
/// (up to rounding, and up to the choice among equivalent solutions when G
/// is singular); only the work does.
#[track_caller]
pub fn nnls_bpp_warm_into(
    gram: ArrayView2<f64>,
    rhs: ArrayView2<f64>,
    out: ArrayViewMut2<f64>,
) -> Result<BppStats, LearnerError> {
    run(gram, rhs, out, Start::Warm, Limits::default())
}

/// Where each row's first passive set comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// h = 0, so the first passive set is {j : r_j > 0}.
    Cold,
    /// P = {j : out_j > 0} from the output buffer's contents.
    Warm,
}

/// Overrides of the solver's rules, for tests of the fallback paths.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Limits {
    /// Exchange rounds per row before the coordinate-descent fallback
    /// (default max(5K, 10)).
    pub cap: Option<usize>,
    /// Disable the backup rule (plain full exchange, which can cycle).
    pub full_exchange_only: bool,
    /// Never use the complement solver (`complement.rs`); every passive set
    /// is factored.
    pub factor_only: bool,
}

/// The shared, read-only description of one call.
pub(super) struct Problem<'a> {
    pub(super) k: usize,
    pub(super) words: usize,
    /// Symmetrized G, row-major K × K.
    pub(super) g: &'a [f64],
    /// Bitmask of variables held at 0 (G_jj = 0).
    pub(super) fixed: &'a [u64],
    pub(super) gdiag_max: f64,
    pub(super) cap: usize,
    pub(super) full_exchange_only: bool,
}

#[inline]
pub(super) fn bit(mask: &[u64], j: usize) -> bool {
    (mask[j >> 6] >> (j & 63)) & 1 == 1
}

#[inline]
pub(super) fn flip(mask: &mut [u64], j: usize) {
    mask[j >> 6] ^= 1u64 << (j & 63);
}

/// Entry point shared by the public functions.
#[track_caller]
pub(crate) fn run(
    gram: ArrayView2<f64>,
    rhs: ArrayView2<f64>,
    mut out: ArrayViewMut2<f64>,
    start: Start,
    limits: Limits,
) -> Result<BppStats, LearnerError> {
    let (n, k) = rhs.dim();
    assert_eq!(
        gram.dim(),
        (k, k),
        "gram must be K × K with K = rhs.ncols() = {k}"
    );
    assert_eq!(out.dim(), (n, k), "out must have the shape of rhs");
    if n == 0 || k == 0 {
        return Ok(BppStats::default());
    }
    let prepared = PreparedGram::with_limits(gram, limits)?;
    let rhs = rhs.as_standard_layout();
    let rs = rhs.as_slice().expect("standard layout");
    let os = out.as_slice_mut().expect("out must be in standard layout");
    let results: Vec<Result<BppStats, LearnerError>> = os
        .par_chunks_mut(ROW_BLOCK * k)
        .zip(rs.par_chunks(ROW_BLOCK * k))
        .enumerate()
        .map_init(NnlsWorkspace::default, |ws, (b, (o, r))| {
            prepared.solve_rows(r, o, start, ws, b * ROW_BLOCK)
        })
        .collect();
    let mut stats = BppStats::default();
    for r in results {
        stats.merge(&r?);
    }
    Ok(stats)
}

/// A Gram matrix G checked, symmetrized and (when well conditioned)
/// inverted once, for solving many blocks of right-hand sides
/// min_{h ≥ 0} ½hᵀGh − rᵀh with the same rules as [`nnls_bpp_into`]: the
/// online learner solves each mini-batch's rows in small blocks, next to
/// the products that make them, instead of in one call.
pub(crate) struct PreparedGram {
    k: usize,
    words: usize,
    g: Vec<f64>,
    fixed: Vec<u64>,
    gdiag_max: f64,
    cap: usize,
    full_exchange_only: bool,
    inverse: Option<FullInverse>,
}

/// Work buffers for [`PreparedGram::solve_rows`] (one per thread), made
/// on first use for the solver and K they are used with.
#[derive(Default)]
pub(crate) struct NnlsWorkspace {
    complement: Option<(usize, complement::Workspace)>,
    grouped: Option<(usize, usize, Box<Workspace>)>,
}

impl PreparedGram {
    /// Checks and prepares `gram` (K × K, symmetric PSD, finite).
    pub(crate) fn new(gram: ArrayView2<f64>) -> Result<Self, LearnerError> {
        Self::with_limits(gram, Limits::default())
    }

    pub(super) fn with_limits(gram: ArrayView2<f64>, limits: Limits) -> Result<Self, LearnerError> {
        let k = gram.nrows();
        assert_eq!(gram.ncols(), k, "gram must be square");
        let words = k.div_ceil(64).max(1);
        // Validate and symmetrize G once (K² work).
        let mut g = vec![0.0; k * k];
        let mut gabs_max = 0.0f64;
        for ((i, j), &v) in gram.indexed_iter() {
            if !v.is_finite() {
                return Err(LearnerError::InvalidData(format!(
                    "gram[{i}, {j}] is not finite ({v})"
                )));
            }
            gabs_max = gabs_max.max(v.abs());
        }
        let mut fixed = vec![0u64; words];
        let mut gdiag_max = 0.0f64;
        for i in 0..k {
            let d = gram[[i, i]];
            if d < 0.0 {
                return Err(LearnerError::InvalidData(format!(
                    "gram[{i}, {i}] = {d} is negative: the Gram matrix must be positive semidefinite"
                )));
            }
            if d == 0.0 {
                flip(&mut fixed, i);
            }
            gdiag_max = gdiag_max.max(d);
            for j in 0..k {
                let (a, b) = (gram[[i, j]], gram[[j, i]]);
                if (a - b).abs() > 1e-8 * gabs_max {
                    return Err(LearnerError::InvalidData(format!(
                        "gram is not symmetric: gram[{i}, {j}] = {a}, gram[{j}, {i}] = {b}"
                    )));
                }
                g[i * k + j] = 0.5 * (a + b);
            }
        }
        let inverse = if limits.factor_only || words > 1 || k == 0 {
            None
        } else {
            FullInverse::new(&g, k)
        };
        Ok(Self {
            k,
            words,
            g,
            fixed,
            gdiag_max,
            cap: limits.cap.unwrap_or((5 * k).max(10)),
            full_exchange_only: limits.full_exchange_only,
            inverse,
        })
    }

    /// K.
    pub(crate) fn k(&self) -> usize {
        self.k
    }

    fn problem(&self) -> Problem<'_> {
        Problem {
            k: self.k,
            words: self.words,
            g: &self.g,
            fixed: &self.fixed,
            gdiag_max: self.gdiag_max,
            cap: self.cap,
            full_exchange_only: self.full_exchange_only,
        }
    }

    /// Solves the rows of `rhs` (nb × K, row-major) into `out` (same
    /// shape), [`ROW_BLOCK`] rows at a time; `row0` is the index of the
    /// first row in error messages. Each row's arithmetic depends only on
    /// the row and G, so any cut of the rows gives the same bits.
    pub(crate) fn solve_rows(
        &self,
        rhs: &[f64],
        out: &mut [f64],
        start: Start,
        ws: &mut NnlsWorkspace,
        row0: usize,
    ) -> Result<BppStats, LearnerError> {
        let k = self.k;
        assert_eq!(rhs.len(), out.len(), "rhs and out must have the same shape");
        let mut stats = BppStats::default();
        if k == 0 {
            return Ok(stats);
        }
        let pb = self.problem();
        for (b, (r, o)) in rhs
            .chunks(ROW_BLOCK * k)
            .zip(out.chunks_mut(ROW_BLOCK * k))
            .enumerate()
        {
            let first = row0 + b * ROW_BLOCK;
            let st = match &self.inverse {
                Some(inv) => {
                    if !matches!(ws.complement, Some((wk, _)) if wk == k) {
                        ws.complement = Some((k, complement::Workspace::new(k)));
                    }
                    let (_, w) = ws.complement.as_mut().expect("made above");
                    complement::solve_block(&pb, inv, r, o, start, w, first)?
                }
                None => {
                    if !matches!(ws.grouped, Some((wk, ww, _)) if wk == k && ww == self.words) {
                        ws.grouped = Some((k, self.words, Box::new(Workspace::new(k, self.words))));
                    }
                    let (_, _, w) = ws.grouped.as_mut().expect("made above");
                    solve_block(&pb, r, o, start, w, first)?
                }
            };
            stats.merge(&st);
        }
        Ok(stats)
    }
}

/// Buffers of one exchange round of one passive set, shared by both solvers.
pub(super) struct RoundBuffers {
    /// A Cholesky factor (stride = its order).
    pub(super) factor: Vec<f64>,
    /// 1/diagonal of `factor`.
    pub(super) inv_diag: Vec<f64>,
    /// Passive indices.
    pub(super) pidx: Vec<usize>,
    /// Active (free) indices.
    pub(super) aidx: Vec<usize>,
    /// A K-long solution or work vector.
    pub(super) sol: Vec<f64>,
    /// Infeasible indices of the round.
    pub(super) infeasible: Vec<usize>,
}

impl RoundBuffers {
    pub(super) fn new(k: usize) -> Self {
        Self {
            factor: vec![0.0; k * k],
            inv_diag: vec![0.0; k],
            pidx: Vec::with_capacity(k),
            aidx: Vec::with_capacity(k),
            sol: vec![0.0; k],
            infeasible: Vec::with_capacity(k),
        }
    }
}

/// Work buffers of one block, allocated once per rayon work split.
struct Workspace {
    mask: Vec<u64>,
    alpha: Vec<u8>,
    beta: Vec<u32>,
    iters: Vec<u32>,
    rscale: Vec<f64>,
    pending: Vec<u32>,
    next: Vec<u32>,
    round: RoundBuffers,
    bmat: Vec<f64>,
    ymat: Vec<f64>,
}

impl Workspace {
    fn new(k: usize, words: usize) -> Self {
        Self {
            mask: vec![0; ROW_BLOCK * words],
            alpha: vec![0; ROW_BLOCK],
            beta: vec![0; ROW_BLOCK],
            iters: vec![0; ROW_BLOCK],
            rscale: vec![0.0; ROW_BLOCK],
            pending: Vec::with_capacity(ROW_BLOCK),
            next: Vec::with_capacity(ROW_BLOCK),
            round: RoundBuffers::new(k),
            bmat: vec![0.0; ROW_BLOCK * k],
            ymat: vec![0.0; ROW_BLOCK * k],
        }
    }
}

avx2_dispatch! {
    /// Solves the rows of one block (`rhs` and `out` are nb × K slices, nb ≤ ROW_BLOCK).
    fn solve_block / solve_block_avx2 / solve_block_impl(
        pb: &Problem,
        rhs: &[f64],
        out: &mut [f64],
        start: Start,
        ws: &mut Workspace,
        row0: usize,
    ) -> Result<BppStats, LearnerError> {
        let (k, w) = (pb.k, pb.words);
        let nb = rhs.len() / k;
        let mut st = BppStats::default();
        let Workspace {
            mask,
            alpha,
            beta,
            iters,
            rscale,
            pending,
            next,
            round:
                RoundBuffers {
                    factor,
                    inv_diag,
                    pidx,
                    aidx,
                    sol,
                    infeasible,
                },
            bmat,
            ymat,
        } = ws;

        // First passive sets; rows with max r ≤ 0 are solved by h = 0 at once.
        pending.clear();
        for c in 0..nb {
            let m = &mut mask[c * w..(c + 1) * w];
            let x = &mut out[c * k..(c + 1) * k];
            let Some((scale, count)) =
                first_passive_set(pb, &rhs[c * k..(c + 1) * k], x, m, start, row0 + c, &mut st)?
            else {
                continue;
            };
            rscale[c] = scale;
            beta[c] = count;
            alpha[c] = FULL_EXCHANGE_BUDGET;
            iters[c] = 0;
            pending.push(c as u32);
        }

        while !pending.is_empty() {
            // Group rows by passive set; the index breaks ties so the order is total.
            {
                let mask: &[u64] = mask;
                pending.sort_unstable_by(|&a, &b| {
                    let (a, b) = (a as usize, b as usize);
                    mask[a * w..(a + 1) * w]
                        .cmp(&mask[b * w..(b + 1) * w])
                        .then(a.cmp(&b))
                });
            }
            next.clear();
            let mut s = 0;
            while s < pending.len() {
                let c0 = pending[s] as usize;
                let m0 = &mask[c0 * w..(c0 + 1) * w];
                let mut e = s + 1;
                while e < pending.len() {
                    let c = pending[e] as usize;
                    if mask[c * w..(c + 1) * w] != *m0 {
                        break;
                    }
                    e += 1;
                }
                pidx.clear();
                aidx.clear();
                for j in 0..k {
                    if bit(m0, j) {
                        pidx.push(j);
                    } else if !bit(pb.fixed, j) {
                        aidx.push(j);
                    }
                }
                let p = pidx.len();
                if p > 0 {
                    factor_passive(pb, pidx, factor, inv_diag, &mut st)?;
                }
                let group = &pending[s..e];
                let m = group.len();

                // X_P = G_PP⁻¹ R_P for the whole group (p × m, one column per row).
                for (t, &j) in pidx.iter().enumerate() {
                    for (dst, &c) in bmat[t * m..(t + 1) * m].iter_mut().zip(group) {
                        *dst = rhs[c as usize * k + j];
                    }
                }
                solve_many_in_place(factor, inv_diag, p, bmat, m);
                // Y_A = G_AP·X_P − R_A for the free active variables (|A| × m).
                for (q, &a) in aidx.iter().enumerate() {
                    let row = &pb.g[a * k..(a + 1) * k];
                    if m == 1 {
                        // One right-hand side (the common case after the first
                        // round): the same sums, kept in a register instead of
                        // a store/load chain through ymat.
                        let mut y = -rhs[group[0] as usize * k + a];
                        for (&j, &xv) in pidx.iter().zip(&bmat[..p]) {
                            y += row[j] * xv;
                        }
                        ymat[q] = y;
                        continue;
                    }
                    let yq = &mut ymat[q * m..(q + 1) * m];
                    for (dst, &c) in yq.iter_mut().zip(group) {
                        *dst = -rhs[c as usize * k + a];
                    }
                    for (t, &j) in pidx.iter().enumerate() {
                        let gaj = row[j];
                        for (y, &xv) in yq.iter_mut().zip(&bmat[t * m..(t + 1) * m]) {
                            *y += gaj * xv;
                        }
                    }
                }

                for (si, &c) in group.iter().enumerate() {
                    let c = c as usize;
                    let x = &mut out[c * k..(c + 1) * k];

                    x.fill(0.0);
                    let mut xmax = 0.0f64;
                    for (t, &j) in pidx.iter().enumerate() {
                        let v = bmat[t * m + si];
                        x[j] = v;
                        xmax = xmax.max(v.abs());
                    }
                    if !xmax.is_finite() {
                        return Err(LearnerError::Numerical(format!(
                            "the passive-set solve of rhs row {} overflowed",
                            row0 + c
                        )));
                    }

                    collect_infeasible(
                        pb,
                        rscale[c],
                        xmax,
                        pidx.iter().enumerate().map(|(t, &j)| (j, bmat[t * m + si])),
                        aidx.iter().enumerate().map(|(q, &a)| (a, ymat[q * m + si])),
                        infeasible,
                    );
                    if infeasible.is_empty() {
                        for v in x.iter_mut() {
                            *v = v.max(0.0);
                        }
                        st.max_row_exchanges = st.max_row_exchanges.max(iters[c] as usize);
                        continue;
                    }
                    iters[c] += 1;
                    st.exchanges += 1;
                    if iters[c] as usize > pb.cap {
                        st.capped_rows += 1;
                        st.max_row_exchanges = st.max_row_exchanges.max(iters[c] as usize);
                        coordinate_descent(pb, &rhs[c * k..(c + 1) * k], x, sol);
                        continue;
                    }
                    let m = &mut mask[c * w..(c + 1) * w];
                    exchange(pb, infeasible, m, &mut alpha[c], &mut beta[c], &mut st);
                    next.push(c as u32);
                }
                s = e;
            }
            std::mem::swap(pending, next);
        }
        Ok(st)
    }
}

/// Validates row `row` (`r`, K long) and writes its first passive set into
/// `mask` (cleared first): cold start {j : r_j > τ·max|r|}, warm start
/// {j : x_j > 0}; fixed variables never enter. Returns max|r| and the
/// initial β (the infeasible count to beat), or `None` when h = 0 solves the
/// row (max r within the band; `x` is zeroed and the row counted trivial).
#[inline(always)]
pub(super) fn first_passive_set(
    pb: &Problem,
    r: &[f64],
    x: &mut [f64],
    mask: &mut [u64],
    start: Start,
    row: usize,
    st: &mut BppStats,
) -> Result<Option<(f64, u32)>, LearnerError> {
    // max|r| and max r in four independent lanes; v·0 is NaN exactly
    // when v is not finite, so `nonfinite` is NaN iff some entry is.
    let (mut abs_lanes, mut pos_lanes) = ([0.0f64; 4], [f64::NEG_INFINITY; 4]);
    let mut nonfinite = [0.0f64; 4];
    let mut chunks = r.chunks_exact(4);
    for ch in &mut chunks {
        for l in 0..4 {
            let v = ch[l];
            nonfinite[l] += v * 0.0;
            let a = v.abs();
            abs_lanes[l] = if a > abs_lanes[l] { a } else { abs_lanes[l] };
            pos_lanes[l] = if v > pos_lanes[l] { v } else { pos_lanes[l] };
        }
    }
    for &v in chunks.remainder() {
        nonfinite[0] += v * 0.0;
        let a = v.abs();
        abs_lanes[0] = if a > abs_lanes[0] { a } else { abs_lanes[0] };
        pos_lanes[0] = if v > pos_lanes[0] { v } else { pos_lanes[0] };
    }
    if nonfinite.iter().any(|v| v.is_nan()) {
        let (j, v) = r
            .iter()
            .enumerate()
            .find(|(_, v)| !v.is_finite())
            .expect("a non-finite entry");
        return Err(LearnerError::InvalidData(format!(
            "rhs[{row}, {j}] is not finite ({v})"
        )));
    }
    let rabs = abs_lanes[0].max(abs_lanes[1]).max(abs_lanes[2].max(abs_lanes[3]));
    let rpos = pos_lanes[0].max(pos_lanes[1]).max(pos_lanes[2].max(pos_lanes[3]));
    mask.fill(0);
    if rpos <= 0.0 {
        x.fill(0.0);
        st.trivial_rows += 1;
        return Ok(None);
    }
    match start {
        Start::Cold => {
            // From h = 0, y = −r: the first full exchange moves {j : r_j > τ·max|r|} to P.
            let tol = FEAS_TOL * rabs;
            let mut count = 0u32;
            for ((word, &fixed), chunk) in mask.iter_mut().zip(pb.fixed).zip(r.chunks(64)) {
                let mut bits = 0u64;
                for (j, &v) in chunk.iter().enumerate() {
                    bits |= ((v > tol) as u64) << j;
                }
                *word = bits & !fixed;
                count += word.count_ones();
            }
            if count == 0 {
                x.fill(0.0);
                st.trivial_rows += 1;
                return Ok(None);
            }
            Ok(Some((rabs, count)))
        }
        Start::Warm => {
            for (j, &v) in x.iter().enumerate() {
                if v > 0.0 && !bit(pb.fixed, j) {
                    flip(mask, j);
                }
            }
            Ok(Some((rabs, pb.k as u32 + 1)))
        }
    }
}

/// Collects into `out` the infeasible variables of a row with max|r| =
/// `rscale`: passive h_j < −τ·max|h_P| and active y_j < −τ·(max|r| +
/// max diag(G)·max|h_P|), from (index, value) pairs of h_P and y_A.
#[inline(always)]
fn collect_infeasible(
    pb: &Problem,
    rscale: f64,
    xmax: f64,
    passive: impl Iterator<Item = (usize, f64)>,
    active: impl Iterator<Item = (usize, f64)>,
    out: &mut Vec<usize>,
) {
    let tol_h = FEAS_TOL * xmax;
    let tol_y = FEAS_TOL * (rscale + pb.gdiag_max * xmax);
    out.clear();
    out.extend(passive.filter(|&(_, v)| v < -tol_h).map(|(j, _)| j));
    out.extend(active.filter(|&(_, v)| v < -tol_y).map(|(j, _)| j));
}

/// One exchange for a row whose passive set (`mask`) has the infeasible
/// variables `infeasible` (non-empty): all of them change sides while their
/// count β decreases or the full-exchange budget α lasts; otherwise only
/// the one with the largest index does (the backup rule).
#[inline(always)]
pub(super) fn exchange(
    pb: &Problem,
    infeasible: &[usize],
    mask: &mut [u64],
    alpha: &mut u8,
    beta: &mut u32,
    st: &mut BppStats,
) {
    let count = infeasible.len() as u32;
    if count < *beta {
        *beta = count;
        *alpha = FULL_EXCHANGE_BUDGET;
        infeasible.iter().for_each(|&j| flip(mask, j));
    } else if *alpha >= 1 || pb.full_exchange_only {
        *alpha = alpha.saturating_sub(1);
        infeasible.iter().for_each(|&j| flip(mask, j));
    } else {
        let last = *infeasible.iter().max().expect("non-empty");
        flip(mask, last);
        st.backup_exchanges += 1;
    }
}

/// Factors G_PP (P = `pidx`) into `factor` (stride |P|), adding the ridge
/// δI of the module docs if the plain factorization fails.
#[inline(always)]
pub(super) fn factor_passive(
    pb: &Problem,
    pidx: &[usize],
    factor: &mut [f64],
    inv_diag: &mut [f64],
    st: &mut BppStats,
) -> Result<(), LearnerError> {
    let (k, p) = (pb.k, pidx.len());
    let dmax = pidx.iter().map(|&j| pb.g[j * k + j]).fold(0.0f64, f64::max);
    let mut ridge = 0.0;
    for attempt in 0..=RIDGE_ATTEMPTS {
        for (a, &i) in pidx.iter().enumerate() {
            let row = &pb.g[i * k..(i + 1) * k];
            let dst = &mut factor[a * p + a..(a + 1) * p];
            for (d, &j) in dst.iter_mut().zip(&pidx[a..]) {
                *d = row[j];
            }
            dst[0] += ridge;
        }
        if factor_in_place(&mut factor[..p * p], p, inv_diag) {
            st.factorizations += 1;
            if attempt > 0 {
                st.ridged_factorizations += 1;
            }
            return Ok(());
        }
        ridge = if ridge == 0.0 {
            RIDGE_START * dmax
        } else {
            ridge * RIDGE_GROWTH
        };
    }
    Err(LearnerError::Numerical(format!(
        "a {p} × {p} block of the Gram matrix is not positive semidefinite \
         (Cholesky failed even with a ridge of {:e} × its largest diagonal entry)",
        ridge / RIDGE_GROWTH / dmax.max(f64::MIN_POSITIVE)
    )))
}

/// Fallback for a row that reached the exchange cap: exact coordinate
/// descent h_j ← max(0, h_j − y_j/G_jj), y = Gh − r kept up to date, from the
/// clamped iterate, until no coordinate moves by more than the feasibility
/// band (or after [`CD_SWEEPS`] sweeps). `y` is a K-long work buffer.
pub(super) fn coordinate_descent(pb: &Problem, r: &[f64], x: &mut [f64], y: &mut [f64]) {
    let k = pb.k;
    for (j, v) in x.iter_mut().enumerate() {
        // Negatives, NaN and fixed variables start at 0.
        if v.is_nan() || *v <= 0.0 || bit(pb.fixed, j) {
            *v = 0.0;
        }
    }
    for i in 0..k {
        y[i] = dot(&pb.g[i * k..(i + 1) * k], x) - r[i];
    }
    let rscale = r.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for _ in 0..CD_SWEEPS {
        let (mut moved, mut xmax) = (0.0f64, 0.0f64);
        for j in 0..k {
            if bit(pb.fixed, j) {
                continue;
            }
            let gjj = pb.g[j * k + j];
            let new = (x[j] - y[j] / gjj).max(0.0);
            let d = new - x[j];
            if d != 0.0 {
                x[j] = new;
                for (yi, &gij) in y.iter_mut().zip(&pb.g[j * k..(j + 1) * k]) {
                    *yi += d * gij;
                }
                moved = moved.max(d.abs() * gjj);
            }
            xmax = xmax.max(x[j]);
        }
        if moved <= FEAS_TOL * (rscale + pb.gdiag_max * xmax) {
            break;
        }
    }
}
