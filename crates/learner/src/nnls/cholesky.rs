//! Small dense Cholesky factor and solve, in place, for the passive-set
//! blocks G_PP of block principal pivoting (|P| ≤ K, K a few tens).
//!
//! Why not LAPACK (`dpotrf`/`dpotrs` through ndarray-linalg): the blocks are
//! tiny and there is one factor per group of right-hand sides per exchange
//! round, one solve per right-hand side. At this size a foreign call, the
//! layout transposes ndarray-linalg performs for row-major input and its
//! per-call allocations cost more than the arithmetic, and the solver must
//! not allocate inside its loops. These two routines are allocation-free,
//! work on caller-owned row-major buffers with stride p, and are tested
//! against ndarray-linalg in `nnls/tests.rs`.
#![allow(non_snake_case)]

/// A pivot d_j = a_jj − Σ_{k<j} U_kj² is accepted only if
/// d_j > `PIVOT_TOL`·a_jj: an exactly singular block (duplicated columns of
/// C) leaves d_j at rounding level (≈ 1e-16·a_jj) and is rejected, a merely
/// ill-conditioned one (κ up to ~1e12) passes.
pub(crate) const PIVOT_TOL: f64 = 1e-14;

/// Dot product with four independent accumulators (better pipelining than a
/// single running sum; the summation order is fixed, so results are
/// reproducible).
#[inline(always)]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut s = [0.0f64; 4];
    let mut ca = a.chunks_exact(4);
    let mut cb = b.chunks_exact(4);
    for (x, y) in (&mut ca).zip(&mut cb) {
        s[0] += x[0] * y[0];
        s[1] += x[1] * y[1];
        s[2] += x[2] * y[2];
        s[3] += x[3] * y[3];
    }
    let mut tail = 0.0;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * y;
    }
    (s[0] + s[1]) + (s[2] + s[3]) + tail
}

/// Factors A = UᵀU in place (U = Lᵀ upper triangular; right-looking, so
/// the trailing update is a contiguous axpy per row, which vectorizes).
///
/// `U` holds A, p × p row-major with stride p; only its upper triangle is
/// read and it is overwritten by U (the strict lower triangle is left
/// untouched). `inv_diag[j]` receives 1/U_jj. Returns `false` (A not
/// numerically positive definite, see [`PIVOT_TOL`]; NaN included) without
/// panicking.
#[inline(always)]
pub(crate) fn factor_in_place(U: &mut [f64], p: usize, inv_diag: &mut [f64]) -> bool {
    debug_assert!(U.len() >= p * p && inv_diag.len() >= p);
    // Keep the original diagonal for the relative pivot test.
    for k in 0..p {
        inv_diag[k] = U[k * p + k];
    }
    for k in 0..p {
        let (head, trailing) = U[..p * p].split_at_mut((k + 1) * p);
        let row_k = &mut head[k * p..];
        let d = row_k[k];
        if d.is_nan() || d <= PIVOT_TOL * inv_diag[k] || d.is_infinite() {
            return false;
        }
        // 1/√d as √d·(1/d): the square root and the division run in
        // parallel instead of one after the other (this chain is the
        // factor's latency).
        let l = d.sqrt();
        let inv = l * (1.0 / d);
        row_k[k] = l;
        inv_diag[k] = inv;
        row_k[k + 1..].iter_mut().for_each(|v| *v *= inv);
        // A_ij −= U_ki·U_kj for k < i ≤ j.
        for (i, row_i) in (k + 1..p).zip(trailing.chunks_exact_mut(p)) {
            let f = row_k[i];
            for (a, &b) in row_i[i..].iter_mut().zip(&row_k[i..]) {
                *a -= f * b;
            }
        }
    }
    true
}

/// Solves UᵀU·X = B in place for m right-hand sides at once (`B` becomes
/// X), with U and `inv_diag` from [`factor_in_place`]. `B` is p × m
/// row-major: column s is one right-hand side, so every update is an axpy
/// over the m columns, which vectorizes.
///
/// Each column sees the same sequence of floating-point operations whatever
/// m is (z_i −= U_ki·z_k for k = 0, 1, …, then x_k −= U_ki·x_i for
/// i = p−1, p−2, …), so a right-hand side's solution does not depend on
/// which others share the call.
#[inline(always)]
pub(crate) fn solve_many_in_place(U: &[f64], inv_diag: &[f64], p: usize, B: &mut [f64], m: usize) {
    debug_assert!(U.len() >= p * p && inv_diag.len() >= p && B.len() >= p * m);
    if m == 1 {
        // The same operations without the per-row loop overhead.
        for k in 0..p {
            let zk = B[k] * inv_diag[k];
            B[k] = zk;
            for (bi, &uki) in B[k + 1..p].iter_mut().zip(&U[k * p + k + 1..(k + 1) * p]) {
                *bi -= uki * zk;
            }
        }
        for i in (0..p).rev() {
            let xi = B[i] * inv_diag[i];
            B[i] = xi;
            for k in 0..i {
                B[k] -= U[k * p + i] * xi;
            }
        }
        return;
    }
    // Uᵀ z = b
    for k in 0..p {
        let (head, tail) = B[..p * m].split_at_mut((k + 1) * m);
        let zk = &mut head[k * m..];
        let inv = inv_diag[k];
        zk.iter_mut().for_each(|v| *v *= inv);
        for (i, zi) in (k + 1..p).zip(tail.chunks_exact_mut(m)) {
            let uki = U[k * p + i];
            for (a, &b) in zi.iter_mut().zip(zk.iter()) {
                *a -= uki * b;
            }
        }
    }
    // U x = z
    for i in (0..p).rev() {
        let (head, tail) = B[..p * m].split_at_mut(i * m);
        let xi = &mut tail[..m];
        let inv = inv_diag[i];
        xi.iter_mut().for_each(|v| *v *= inv);
        for (k, xk) in head.chunks_exact_mut(m).enumerate() {
            let uki = U[k * p + i];
            for (a, &b) in xk.iter_mut().zip(xi.iter()) {
                *a -= uki * b;
            }
        }
    }
}
