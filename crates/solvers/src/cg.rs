//! Products with the diffusion kernel K = (I + βL)⁻¹ (docs/algorithms.md §6)
//! without forming K: each product K·B is a solve (I + βL)Y = B by
//! conjugate gradients, one independent CG per column of B run together
//! (one sparse product per iteration serves every column).
//!
//! I + βL is symmetric positive definite for a graph Laplacian L and β > 0,
//! with eigenvalues in [1, 1 + 2β·max degree], so CG converges in a few tens
//! of iterations for moderate β·degree; the diagonal (Jacobi) preconditioner
//! 1 + β·deg_i evens out uneven degrees. A column stops when
//! ‖b − (I+βL)y‖ ≤ tol·‖b‖. Starting from the caller's Y (the previous
//! iterate of the outer solver) saves most iterations.
//!
//! Reductions are serial in row order and the sparse product is parallel
//! over independent rows, so results do not depend on the thread count.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use inmf_learner::LearnerError;

use crate::graph::SparseF64;
use crate::inputs::check_positive;

/// Parameters of the CG solves; [`Default`] gives the documented defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CgParams {
    /// Relative residual at which a column stops, in (0, 1). Default 1e-10.
    pub tol: f64,
    /// Maximum CG iterations per solve, ≥ 1. Default 1000.
    pub max_iter: usize,
}

impl Default for CgParams {
    fn default() -> Self {
        Self {
            tol: 1e-10,
            max_iter: 1000,
        }
    }
}

impl CgParams {
    /// Checks the ranges.
    pub fn check(&self) -> Result<(), LearnerError> {
        if !(self.tol.is_finite() && self.tol > 0.0 && self.tol < 1.0) {
            return Err(LearnerError::InvalidParameter(format!(
                "the CG tolerance must be in (0, 1), got {}",
                self.tol
            )));
        }
        if self.max_iter == 0 {
            return Err(LearnerError::InvalidParameter(
                "the CG iteration limit must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// What a solve did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CgStats {
    /// CG iterations (sparse products) used.
    pub iterations: usize,
    /// Largest ‖b_j − (I+βL)y_j‖ / ‖b_j‖ over the columns at the end.
    pub max_relative_residual: f64,
}

/// K = (I + βL)⁻¹ for the Laplacian L of a cell graph, applied by CG.
#[derive(Debug, Clone)]
pub struct DiffusionKernel {
    /// I + βL.
    a: SparseF64,
    /// 1 / diag(I + βL).
    diag_inv: Vec<f64>,
}

impl DiffusionKernel {
    /// From a symmetric non-negative adjacency (n × n) and β > 0.
    pub fn from_adjacency(adjacency: &SparseF64, beta: f64) -> Result<Self, LearnerError> {
        check_positive(beta, "beta (diffusion extent)")?;
        let l = SparseF64::laplacian(adjacency)?;
        let n = l.n_rows();
        let mut t = Vec::with_capacity(l.nnz() + n);
        for r in 0..n {
            let (cols, vals) = l.row(r);
            t.extend(cols.iter().zip(vals).map(|(&c, &v)| (r, c, beta * v)));
            t.push((r, r, 1.0));
        }
        let a = SparseF64::from_triplets(n, n, &t)?;
        let diag_inv = a.diagonal().iter().map(|d| 1.0 / d).collect();
        Ok(Self { a, diag_inv })
    }

    /// Number of nodes n.
    pub fn n(&self) -> usize {
        self.a.n_rows()
    }

    /// The sparse matrix I + βL.
    pub fn operator(&self) -> &SparseF64 {
        &self.a
    }

    /// Y ≈ K·B = (I+βL)⁻¹B, starting from the content of `y` (n × K,
    /// standard layout; zeros for a cold start). `ws` must be n × K.
    #[track_caller]
    pub fn solve_into(
        &self,
        b: ArrayView2<f64>,
        mut y: ArrayViewMut2<f64>,
        params: &CgParams,
        ws: &mut CgWorkspace,
    ) -> CgStats {
        let (n, k) = b.dim();
        assert_eq!(n, self.n(), "B must have one row per node");
        assert_eq!(y.dim(), (n, k), "Y shape");
        assert_eq!(ws.r.dim(), (n, k), "workspace shape");
        let CgWorkspace { r, z, p, q } = ws;
        // r = b − A y
        self.a.mul_dense_into(1.0, y.view(), 0.0, q.view_mut());
        let b = b.as_standard_layout();
        let bs = b.as_slice().expect("standard layout");
        let ys = y.as_slice_mut().expect("Y in standard layout");
        let (rs, zs, ps) = (
            r.as_slice_mut().expect("standard"),
            z.as_slice_mut().expect("standard"),
            p.as_slice_mut().expect("standard"),
        );
        for ((r, &b), &q) in rs.iter_mut().zip(bs).zip(q.as_slice().expect("standard")) {
            *r = b - q;
        }
        let mut b_norm = vec![0.0; k];
        column_dots(bs, bs, k, &mut b_norm);
        b_norm.iter_mut().for_each(|v| *v = v.sqrt());
        let mut res = vec![0.0; k];
        column_dots(rs, rs, k, &mut res);
        res.iter_mut().for_each(|v| *v = v.sqrt());
        let mut active: Vec<bool> = (0..k).map(|j| res[j] > params.tol * b_norm[j]).collect();
        self.precondition(rs, zs, k);
        ps.copy_from_slice(zs);
        let mut rz = vec![0.0; k];
        column_dots(rs, zs, k, &mut rz);
        let (mut pq, mut rz_new, mut alpha, mut beta) =
            (vec![0.0; k], vec![0.0; k], vec![0.0; k], vec![0.0; k]);
        let mut iterations = 0;
        while active.iter().any(|&a| a) && iterations < params.max_iter {
            iterations += 1;
            self.a.mul_dense_into(1.0, p.view(), 0.0, q.view_mut());
            let (ps, qs) = (
                p.as_slice_mut().expect("standard"),
                q.as_slice().expect("standard"),
            );
            let rs = r.as_slice_mut().expect("standard");
            column_dots(ps, qs, k, &mut pq);
            for j in 0..k {
                alpha[j] = if active[j] && pq[j] > 0.0 {
                    rz[j] / pq[j]
                } else {
                    0.0
                };
            }
            for (((yr, rr), pr), qr) in ys
                .chunks_mut(k)
                .zip(rs.chunks_mut(k))
                .zip(ps.chunks(k))
                .zip(qs.chunks(k))
            {
                for j in 0..k {
                    yr[j] += alpha[j] * pr[j];
                    rr[j] -= alpha[j] * qr[j];
                }
            }
            column_dots(rs, rs, k, &mut res);
            for j in 0..k {
                res[j] = res[j].sqrt();
                if active[j] && (res[j] <= params.tol * b_norm[j] || pq[j] <= 0.0) {
                    active[j] = false;
                }
            }
            let zs = z.as_slice_mut().expect("standard");
            self.precondition(rs, zs, k);
            column_dots(rs, zs, k, &mut rz_new);
            for j in 0..k {
                beta[j] = if active[j] && rz[j] > 0.0 {
                    rz_new[j] / rz[j]
                } else {
                    0.0
                };
            }
            for (pr, zr) in ps.chunks_mut(k).zip(zs.chunks(k)) {
                for j in 0..k {
                    pr[j] = zr[j] + beta[j] * pr[j];
                }
            }
            std::mem::swap(&mut rz, &mut rz_new);
        }
        let max_relative_residual = (0..k)
            .map(|j| {
                if b_norm[j] > 0.0 {
                    res[j] / b_norm[j]
                } else {
                    res[j]
                }
            })
            .fold(0.0, f64::max);
        CgStats {
            iterations,
            max_relative_residual,
        }
    }

    /// K·B from a cold start (allocates; for tests and one-off products).
    pub fn solve(&self, b: ArrayView2<f64>, params: &CgParams) -> (Array2<f64>, CgStats) {
        let mut y = Array2::zeros(b.dim());
        let mut ws = CgWorkspace::new(b.nrows(), b.ncols());
        let stats = self.solve_into(b, y.view_mut(), params, &mut ws);
        (y, stats)
    }

    fn precondition(&self, r: &[f64], z: &mut [f64], k: usize) {
        for ((zr, rr), &d) in z.chunks_mut(k).zip(r.chunks(k)).zip(&self.diag_inv) {
            for (zv, &rv) in zr.iter_mut().zip(rr) {
                *zv = d * rv;
            }
        }
    }
}

/// Buffers of one CG solve with K right-hand sides (n × K each), kept by
/// the caller so repeated solves allocate nothing.
#[derive(Debug, Clone)]
pub struct CgWorkspace {
    r: Array2<f64>,
    z: Array2<f64>,
    p: Array2<f64>,
    q: Array2<f64>,
}

impl CgWorkspace {
    /// Buffers for n nodes and k right-hand sides.
    pub fn new(n: usize, k: usize) -> Self {
        Self {
            r: Array2::zeros((n, k)),
            z: Array2::zeros((n, k)),
            p: Array2::zeros((n, k)),
            q: Array2::zeros((n, k)),
        }
    }
}

/// out_j = Σ_i a_ij b_ij for row-major n × k slices, summed in row order.
fn column_dots(a: &[f64], b: &[f64], k: usize, out: &mut [f64]) {
    out.fill(0.0);
    for (ra, rb) in a.chunks(k).zip(b.chunks(k)) {
        for ((o, &x), &y) in out.iter_mut().zip(ra).zip(rb) {
            *o += x * y;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray_linalg::Inverse;

    fn ring(n: usize) -> SparseF64 {
        let edges: Vec<(usize, usize, f64)> =
            (0..n).map(|i| (i, (i + 1) % n, 1.0 + (i % 3) as f64)).collect();
        SparseF64::adjacency(n, &edges).unwrap()
    }

    #[test]
    fn solves_match_the_dense_inverse() {
        let adj = ring(30);
        let kern = DiffusionKernel::from_adjacency(&adj, 2.0).unwrap();
        let l = SparseF64::laplacian(&adj).unwrap().to_dense();
        let dense_k = (Array2::<f64>::eye(30) + l * 2.0).inv().unwrap();
        let b = Array2::from_shape_fn((30, 4), |(i, j)| ((i * 7 + j * 3) % 5) as f64);
        let (y, stats) = kern.solve(
            b.view(),
            &CgParams {
                tol: 1e-14,
                max_iter: 500,
            },
        );
        assert!(stats.max_relative_residual <= 1e-14 && stats.iterations > 0);
        let expect = dense_k.dot(&b);
        let err = (&y - &expect).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(err < 1e-12, "{err:e}");
        // A warm start at the answer needs no iteration.
        let mut ws = CgWorkspace::new(30, 4);
        let mut y2 = expect.clone();
        let again = kern.solve_into(
            b.view(),
            y2.view_mut(),
            &CgParams {
                tol: 1e-10,
                max_iter: 5,
            },
            &mut ws,
        );
        assert_eq!(again.iterations, 0);
    }

    #[test]
    fn zero_columns_and_limits_are_handled() {
        let kern = DiffusionKernel::from_adjacency(&ring(10), 1.0).unwrap();
        let b = Array2::from_shape_fn((10, 2), |(i, j)| if j == 0 { 0.0 } else { i as f64 });
        let (y, _) = kern.solve(b.view(), &CgParams::default());
        assert!(y.column(0).iter().all(|&v| v == 0.0));
        let (_, stats) = kern.solve(
            b.view(),
            &CgParams {
                tol: 1e-15,
                max_iter: 1,
            },
        );
        assert_eq!(stats.iterations, 1);
        assert!(stats.max_relative_residual > 1e-15);
    }

    #[test]
    fn parameters_are_checked() {
        assert!(CgParams::default().check().is_ok());
        assert!(CgParams {
            tol: 0.0,
            max_iter: 1
        }
        .check()
        .is_err());
        assert!(CgParams {
            tol: 1e-8,
            max_iter: 0
        }
        .check()
        .is_err());
        assert!(
            matches!(DiffusionKernel::from_adjacency(&ring(4), 0.0), Err(LearnerError::InvalidParameter(m)) if m.contains("beta"))
        );
    }
}
