//! Sparse f64 operators for the graph-based solvers: cell graphs for
//! diffusion NMF (§6) and gene operators M for ‖MW‖-regularized NMF (§7).
//!
//! [`SparseF64`] is a general rows × cols CSR matrix with f64 values (the
//! data matrix [`CsrMatrix`](inmf_learner::CsrMatrix) stays f32); builders make
//! the matrices the solvers need from an edge list (i, j, w):
//! - [`SparseF64::adjacency`]: symmetric A with A_ij = A_ji = Σ w over the
//!   edges {i, j} (self-loops ignored: they cancel in the Laplacian);
//! - [`SparseF64::laplacian`]: L = D − A, D = diag(row sums of A);
//! - [`SparseF64::incidence`]: B (edges × nodes) with row e = √w (e_i − e_j),
//!   so BᵀB = L and ‖BW‖² = Σ_e w ‖W_i· − W_j·‖² (a smoothness penalty).

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use inmf_learner::LearnerError;

/// Rows per parallel work unit of the products (fixed: results do not
/// depend on the thread count; rows are independent anyway).
const ROW_BLOCK: usize = 1024;

/// A rows × cols sparse matrix in CSR form with f64 values.
///
/// Invariants (checked by [`SparseF64::from_triplets`]): `indptr` has
/// rows + 1 non-decreasing entries from 0 to nnz, column indices are
/// < cols and strictly increasing within a row, values are finite.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseF64 {
    n_rows: usize,
    n_cols: usize,
    indptr: Vec<usize>,
    indices: Vec<usize>,
    data: Vec<f64>,
}

impl SparseF64 {
    /// Builds a matrix from (row, col, value) triplets in any order;
    /// duplicates are summed and explicit zeros kept out. Errors name the
    /// first triplet out of range or not finite.
    pub fn from_triplets(
        n_rows: usize,
        n_cols: usize,
        triplets: &[(usize, usize, f64)],
    ) -> Result<Self, LearnerError> {
        for (t, &(r, c, v)) in triplets.iter().enumerate() {
            if r >= n_rows || c >= n_cols {
                return Err(LearnerError::InvalidData(format!(
                    "entry {t}: ({r}, {c}) is outside a {n_rows} × {n_cols} matrix"
                )));
            }
            if !v.is_finite() {
                return Err(LearnerError::InvalidData(format!(
                    "entry {t}: value {v} at ({r}, {c}) is not finite"
                )));
            }
        }
        let mut sorted: Vec<(usize, usize, f64)> = triplets.to_vec();
        sorted.sort_by_key(|t| (t.0, t.1));
        let mut indptr = vec![0usize; n_rows + 1];
        let mut indices = Vec::with_capacity(sorted.len());
        let mut data: Vec<f64> = Vec::with_capacity(sorted.len());
        let mut last: Option<(usize, usize)> = None;
        for (r, c, v) in sorted {
            if last == Some((r, c)) {
                *data.last_mut().expect("a previous entry") += v;
            } else {
                indices.push(c);
                data.push(v);
                indptr[r + 1] += 1;
                last = Some((r, c));
            }
        }
        for r in 0..n_rows {
            indptr[r + 1] += indptr[r];
        }
        let mut m = Self {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        };
        m.drop_zeros();
        Ok(m)
    }

    fn drop_zeros(&mut self) {
        if self.data.iter().all(|&v| v != 0.0) {
            return;
        }
        let mut indptr = vec![0usize; self.n_rows + 1];
        let (mut indices, mut data) = (Vec::new(), Vec::new());
        for r in 0..self.n_rows {
            for p in self.indptr[r]..self.indptr[r + 1] {
                if self.data[p] != 0.0 {
                    indices.push(self.indices[p]);
                    data.push(self.data[p]);
                }
            }
            indptr[r + 1] = data.len();
        }
        (self.indptr, self.indices, self.data) = (indptr, indices, data);
    }

    /// The n × n identity.
    pub fn identity(n: usize) -> Self {
        Self {
            n_rows: n,
            n_cols: n,
            indptr: (0..=n).collect(),
            indices: (0..n).collect(),
            data: vec![1.0; n],
        }
    }

    /// Keeps the non-zeros of a dense matrix.
    pub fn from_dense(a: ArrayView2<f64>) -> Result<Self, LearnerError> {
        let t: Vec<(usize, usize, f64)> = a
            .indexed_iter()
            .filter(|(_, &v)| v != 0.0)
            .map(|((r, c), &v)| (r, c, v))
            .collect();
        Self::from_triplets(a.nrows(), a.ncols(), &t)
    }

    /// Symmetric adjacency over `n` nodes from weighted undirected edges
    /// (module docs). Weights must be finite and > 0.
    pub fn adjacency(n: usize, edges: &[(usize, usize, f64)]) -> Result<Self, LearnerError> {
        let mut t = Vec::with_capacity(2 * edges.len());
        for (e, &(i, j, w)) in edges.iter().enumerate() {
            check_edge(e, i, j, w, n)?;
            if i != j {
                t.push((i, j, w));
                t.push((j, i, w));
            }
        }
        Self::from_triplets(n, n, &t)
    }

    /// L = D − A of a symmetric non-negative adjacency `a` (n × n).
    pub fn laplacian(a: &SparseF64) -> Result<Self, LearnerError> {
        a.check_adjacency()?;
        let n = a.n_rows;
        let mut t = Vec::with_capacity(a.nnz() + n);
        for r in 0..n {
            let mut deg = 0.0;
            for p in a.indptr[r]..a.indptr[r + 1] {
                let c = a.indices[p];
                if c != r {
                    t.push((r, c, -a.data[p]));
                    deg += a.data[p];
                }
            }
            t.push((r, r, deg));
        }
        Self::from_triplets(n, n, &t)
    }

    /// Incidence B (one row per edge with i ≠ j, columns = `n` nodes), row
    /// e = √w (e_i − e_j), so that BᵀB is the Laplacian of the edges.
    pub fn incidence(n: usize, edges: &[(usize, usize, f64)]) -> Result<Self, LearnerError> {
        let mut t = Vec::with_capacity(2 * edges.len());
        let mut row = 0;
        for (e, &(i, j, w)) in edges.iter().enumerate() {
            check_edge(e, i, j, w, n)?;
            if i != j {
                t.push((row, i, w.sqrt()));
                t.push((row, j, -w.sqrt()));
                row += 1;
            }
        }
        Self::from_triplets(row, n, &t)
    }

    /// Checks that this is a valid adjacency: square, symmetric (to 1e-12
    /// relative), non-negative.
    pub fn check_adjacency(&self) -> Result<(), LearnerError> {
        if self.n_rows != self.n_cols {
            return Err(LearnerError::InvalidData(format!(
                "an adjacency matrix must be square, got {} × {}",
                self.n_rows, self.n_cols
            )));
        }
        for r in 0..self.n_rows {
            for p in self.indptr[r]..self.indptr[r + 1] {
                let (c, v) = (self.indices[p], self.data[p]);
                if v < 0.0 {
                    return Err(LearnerError::InvalidData(format!(
                        "adjacency weight {v} at ({r}, {c}) is negative"
                    )));
                }
                let back = self.get(c, r);
                if (back - v).abs() > 1e-12 * v.abs().max(back.abs()) {
                    return Err(LearnerError::InvalidData(format!(
                        "the adjacency matrix is not symmetric: ({r}, {c}) = {v} but ({c}, {r}) = {back}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Entry (r, c) (0 if not stored).
    pub fn get(&self, r: usize, c: usize) -> f64 {
        let (s, e) = (self.indptr[r], self.indptr[r + 1]);
        match self.indices[s..e].binary_search(&c) {
            Ok(p) => self.data[s + p],
            Err(_) => 0.0,
        }
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.data.len()
    }

    /// Column indices and values of row `r`.
    pub fn row(&self, r: usize) -> (&[usize], &[f64]) {
        let (s, e) = (self.indptr[r], self.indptr[r + 1]);
        (&self.indices[s..e], &self.data[s..e])
    }

    /// The diagonal (length min(rows, cols)).
    pub fn diagonal(&self) -> Vec<f64> {
        (0..self.n_rows.min(self.n_cols))
            .map(|i| self.get(i, i))
            .collect()
    }

    /// Aᵀ.
    pub fn transpose(&self) -> Self {
        let mut t = Vec::with_capacity(self.nnz());
        for r in 0..self.n_rows {
            let (cols, vals) = self.row(r);
            t.extend(cols.iter().zip(vals).map(|(&c, &v)| (c, r, v)));
        }
        Self::from_triplets(self.n_cols, self.n_rows, &t).expect("a transpose stays in range")
    }

    /// AᵀA (cols × cols), accumulated row of A by row of A.
    pub fn gram(&self) -> Self {
        let at = self.transpose();
        let n = self.n_cols;
        let mut acc = vec![0.0; n];
        let mut seen = vec![false; n];
        let mut touched: Vec<usize> = Vec::new();
        let mut t = Vec::new();
        for i in 0..n {
            // Row i of AᵀA = Σ_{r: A_ri ≠ 0} A_ri · A_r·.
            let (rows, vals) = at.row(i);
            for (&r, &a) in rows.iter().zip(vals) {
                let (cols, rv) = self.row(r);
                for (&c, &b) in cols.iter().zip(rv) {
                    if !seen[c] {
                        seen[c] = true;
                        touched.push(c);
                    }
                    acc[c] += a * b;
                }
            }
            touched.sort_unstable();
            for &c in &touched {
                t.push((i, c, acc[c]));
                acc[c] = 0.0;
                seen[c] = false;
            }
            touched.clear();
        }
        Self::from_triplets(n, n, &t).expect("in range")
    }

    /// The entries > 0 and the negated entries < 0, as two matrices
    /// (A = P − N, P, N ≥ 0).
    pub fn split_signs(&self) -> (Self, Self) {
        let mut p = Vec::new();
        let mut q = Vec::new();
        for r in 0..self.n_rows {
            let (cols, vals) = self.row(r);
            for (&c, &v) in cols.iter().zip(vals) {
                if v > 0.0 {
                    p.push((r, c, v));
                } else if v < 0.0 {
                    q.push((r, c, -v));
                }
            }
        }
        (
            Self::from_triplets(self.n_rows, self.n_cols, &p).expect("in range"),
            Self::from_triplets(self.n_rows, self.n_cols, &q).expect("in range"),
        )
    }

    /// out = α·A·B + β·out for a dense B (cols × K) and out (rows × K),
    /// both standard layout; parallel over fixed row blocks.
    #[track_caller]
    pub fn mul_dense_into(&self, alpha: f64, b: ArrayView2<f64>, beta: f64, mut out: ArrayViewMut2<f64>) {
        assert_eq!(b.nrows(), self.n_cols, "B must have {} rows", self.n_cols);
        let k = b.ncols();
        assert_eq!(out.dim(), (self.n_rows, k), "output shape");
        let b = b.as_standard_layout();
        let bs = b.as_slice().expect("standard layout");
        let os = out.as_slice_mut().expect("output in standard layout");
        let block = |(blk, chunk): (usize, &mut [f64])| {
            for (i, o) in chunk.chunks_mut(k).enumerate() {
                let r = blk * ROW_BLOCK + i;
                for v in o.iter_mut() {
                    *v *= beta;
                }
                let (cols, vals) = self.row(r);
                for (&c, &a) in cols.iter().zip(vals) {
                    let a = alpha * a;
                    for (v, &x) in o.iter_mut().zip(&bs[c * k..(c + 1) * k]) {
                        *v += a * x;
                    }
                }
            }
        };
        // Small products run inline: dispatching to the pool would cost more than the work.
        if self.n_rows <= ROW_BLOCK {
            block((0, os));
        } else {
            os.par_chunks_mut(ROW_BLOCK * k.max(1))
                .enumerate()
                .for_each(block);
        }
    }

    /// A·B for a dense B (cols × K).
    pub fn mul_dense(&self, b: ArrayView2<f64>) -> Array2<f64> {
        let mut out = Array2::zeros((self.n_rows, b.ncols()));
        self.mul_dense_into(1.0, b, 0.0, out.view_mut());
        out
    }

    /// Dense copy (for tests and small references).
    pub fn to_dense(&self) -> Array2<f64> {
        let mut d = Array2::zeros((self.n_rows, self.n_cols));
        for r in 0..self.n_rows {
            let (cols, vals) = self.row(r);
            for (&c, &v) in cols.iter().zip(vals) {
                d[[r, c]] = v;
            }
        }
        d
    }
}

fn check_edge(e: usize, i: usize, j: usize, w: f64, n: usize) -> Result<(), LearnerError> {
    if i >= n || j >= n {
        return Err(LearnerError::InvalidData(format!(
            "edge {e}: ({i}, {j}) refers to a node ≥ {n} (indices are 0-based over {n} nodes)"
        )));
    }
    if !(w.is_finite() && w > 0.0) {
        return Err(LearnerError::InvalidData(format!(
            "edge {e}: ({i}, {j}) has weight {w}; weights must be finite and > 0"
        )));
    }
    Ok(())
}

/// Largest eigenvalue of a symmetric positive semi-definite operator
/// (= its spectral norm) by power iterations from a fixed pseudo-random
/// start, stopping when the estimate changes by less than `rel_tol`
/// (relative) or after `max_iter` products. The estimate ‖Ax‖ (‖x‖ = 1)
/// approaches the norm from below.
pub(crate) fn power_norm(n: usize, apply: impl Fn(&[f64], &mut [f64]), max_iter: usize, rel_tol: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    // A fixed start with no special structure (all-ones is in the null space of a Laplacian).
    let mut x: Vec<f64> = (0..n)
        .map(|i| 1.0 + ((i as f64 + 1.0) * 0.618_033_988_75).fract())
        .collect();
    let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
    x.iter_mut().for_each(|v| *v /= norm);
    let mut y = vec![0.0; n];
    let mut est = 0.0;
    for _ in 0..max_iter {
        apply(&x, &mut y);
        let ny = y.iter().map(|v| v * v).sum::<f64>().sqrt();
        if ny == 0.0 {
            return 0.0;
        }
        let done = (ny - est).abs() <= rel_tol * ny;
        est = ny;
        for (a, b) in x.iter_mut().zip(&y) {
            *a = b / ny;
        }
        if done {
            break;
        }
    }
    est
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn triplets_sum_duplicates_drop_zeros_and_validate() {
        let m =
            SparseF64::from_triplets(2, 3, &[(1, 2, 1.0), (0, 1, 2.0), (1, 2, 0.5), (0, 0, 0.0)]).unwrap();
        assert_eq!(m.to_dense(), array![[0.0, 2.0, 0.0], [0.0, 0.0, 1.5]]);
        assert_eq!(m.nnz(), 2);
        assert!(
            matches!(SparseF64::from_triplets(2, 2, &[(2, 0, 1.0)]).as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("outside"))
        );
        assert!(SparseF64::from_triplets(2, 2, &[(0, 0, f64::NAN)]).is_err());
    }

    #[test]
    fn laplacian_incidence_and_gram_agree() {
        let edges = [(0, 1, 1.0), (1, 2, 2.0), (2, 0, 0.5), (3, 3, 9.0), (1, 0, 1.0)];
        let a = SparseF64::adjacency(4, &edges).unwrap();
        assert_eq!(a.get(0, 1), 2.0); // the two (0,1) edges add up
        assert_eq!(a.get(3, 3), 0.0); // self-loop ignored
        let l = SparseF64::laplacian(&a).unwrap();
        let ld = l.to_dense();
        assert!(ld.rows().into_iter().all(|r| r.sum().abs() < 1e-12));
        let b = SparseF64::incidence(4, &edges).unwrap();
        assert_eq!(b.n_rows(), 4);
        let btb = b.gram().to_dense();
        assert!((&btb - &ld).iter().all(|v| v.abs() < 1e-12));
        assert!((&btb - &b.to_dense().t().dot(&b.to_dense()))
            .iter()
            .all(|v| v.abs() < 1e-12));
        let (p, n) = l.split_signs();
        assert!((&(p.to_dense() - n.to_dense()) - &ld)
            .iter()
            .all(|v| v.abs() == 0.0));
        assert_eq!(l.diagonal(), vec![2.5, 4.0, 2.5, 0.0]);
    }

    #[test]
    fn adjacency_errors_name_the_edge() {
        assert!(
            matches!(SparseF64::adjacency(3, &[(0, 3, 1.0)]).as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("edge 0"))
        );
        assert!(
            matches!(SparseF64::adjacency(3, &[(0, 1, 1.0), (0, 2, -1.0)]).as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("edge 1"))
        );
        let asym = SparseF64::from_triplets(2, 2, &[(0, 1, 1.0)]).unwrap();
        assert!(
            matches!(SparseF64::laplacian(&asym).as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("symmetric"))
        );
        let neg = SparseF64::from_triplets(2, 2, &[(0, 1, -1.0), (1, 0, -1.0)]).unwrap();
        assert!(
            matches!(neg.check_adjacency().as_ref().map_err(LearnerError::root), Err(LearnerError::InvalidData(m)) if m.contains("negative"))
        );
        let rect = SparseF64::from_triplets(2, 3, &[]).unwrap();
        assert!(rect.check_adjacency().is_err());
    }

    #[test]
    fn products_match_dense() {
        let m = SparseF64::from_triplets(3, 2, &[(0, 0, 1.0), (2, 1, -2.0), (1, 0, 0.5)]).unwrap();
        let b = array![[1.0, 2.0], [3.0, 4.0]];
        let mut out = Array2::from_elem((3, 2), 1.0);
        m.mul_dense_into(2.0, b.view(), 0.5, out.view_mut());
        let expect = m.to_dense().dot(&b) * 2.0 + 0.5;
        assert!((&out - &expect).iter().all(|v| v.abs() < 1e-12));
        assert_eq!(m.transpose().to_dense(), m.to_dense().t());
        assert_eq!(SparseF64::identity(2).to_dense(), Array2::eye(2));
        assert_eq!(SparseF64::from_dense(m.to_dense().view()).unwrap(), m);
    }

    #[test]
    fn power_norm_finds_the_largest_eigenvalue() {
        let a = array![[2.0, -1.0, 0.0], [-1.0, 2.0, -1.0], [0.0, -1.0, 2.0]];
        let apply = |x: &[f64], y: &mut [f64]| {
            for (i, yi) in y.iter_mut().enumerate() {
                *yi = (0..3).map(|j| a[[i, j]] * x[j]).sum();
            }
        };
        let est = power_norm(3, apply, 500, 1e-14);
        assert!((est - (2.0 + 2f64.sqrt())).abs() < 1e-8, "{est}");
    }
}
