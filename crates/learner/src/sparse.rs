//! Compressed sparse rows of cells: the one data layout the numerics consume.
//!
//! A [`CsrMatrix`] holds a block of cells (rows) × genes (columns). Each
//! cell's non-zeros are contiguous, which is both the AnnData CSR layout and
//! the 10x Genomics CSC (genes × cells) layout read column by column, so
//! both hot products walk it cell by cell (ARCHITECTURE.md).

use crate::error::LearnerError;

/// A cells × genes sparse block in CSR form with `f32` values.
///
/// Invariants (checked by [`CsrMatrix::new`]): `indptr.len() == n_rows + 1`,
/// `indptr[0] == 0`, `indptr` non-decreasing, `indptr[n_rows] == nnz`,
/// every column index `< n_cols`, and within a row column indices strictly
/// increasing.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrMatrix {
    n_cols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    data: Vec<f32>,
}

impl CsrMatrix {
    /// Builds a matrix after checking every invariant listed on the type.
    pub fn new(
        n_cols: usize,
        indptr: Vec<usize>,
        indices: Vec<u32>,
        data: Vec<f32>,
    ) -> Result<Self, LearnerError> {
        let bad = |msg: String| Err(LearnerError::InvalidSparse(msg));
        if indptr.is_empty() || indptr[0] != 0 {
            return bad("indptr must start with 0".into());
        }
        if indices.len() != data.len() {
            return bad(format!(
                "indices ({}) and data ({}) differ in length",
                indices.len(),
                data.len()
            ));
        }
        if *indptr.last().unwrap() != data.len() {
            return bad(format!(
                "indptr ends at {} but there are {} non-zeros",
                indptr.last().unwrap(),
                data.len()
            ));
        }
        for (row, w) in indptr.windows(2).enumerate() {
            if w[1] < w[0] {
                return bad(format!("indptr decreases at row {row}"));
            }
            let cols = &indices[w[0]..w[1]];
            // Fast check (strictly increasing, so only the last can be out of
            // range); the slow loop below only runs to name the fault.
            let increasing = cols.windows(2).fold(true, |ok, p| ok & (p[0] < p[1]));
            if increasing && cols.last().is_none_or(|&c| (c as usize) < n_cols) {
                continue;
            }
            for (k, &c) in cols.iter().enumerate() {
                if c as usize >= n_cols {
                    return bad(format!("row {row}: column {c} out of range (n_cols {n_cols})"));
                }
                if k > 0 && cols[k - 1] >= c {
                    return bad(format!("row {row}: column indices not strictly increasing"));
                }
            }
        }
        Ok(Self {
            n_cols,
            indptr,
            indices,
            data,
        })
    }

    /// An empty block (0 rows) with `n_cols` columns.
    pub fn empty(n_cols: usize) -> Self {
        Self {
            n_cols,
            indptr: vec![0],
            indices: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Builds a CSR matrix from a dense row-major slice (`n_rows × n_cols`), keeping non-zeros.
    /// Panics if `dense.len() != n_rows * n_cols` (a caller's bug).
    #[track_caller]
    pub fn from_dense(n_rows: usize, n_cols: usize, dense: &[f32]) -> Self {
        assert_eq!(dense.len(), n_rows * n_cols, "dense slice has the wrong length");
        let mut m = Self::empty(n_cols);
        for r in 0..n_rows {
            for (c, &v) in dense[r * n_cols..(r + 1) * n_cols].iter().enumerate() {
                if v != 0.0 {
                    m.indices.push(c as u32);
                    m.data.push(v);
                }
            }
            m.indptr.push(m.data.len());
        }
        m
    }

    /// Gives the buffers back as `(indptr, indices, data)`, so a reader can
    /// refill a block the consumer is done with instead of allocating (and
    /// page-faulting) new ones every iteration.
    pub fn into_parts(self) -> (Vec<usize>, Vec<u32>, Vec<f32>) {
        (self.indptr, self.indices, self.data)
    }

    /// Appends one row given its (strictly increasing) column indices and values.
    /// Panics on mismatched lengths or out-of-range columns (a caller's bug).
    #[track_caller]
    pub fn push_row(&mut self, cols: &[u32], vals: &[f32]) {
        assert_eq!(cols.len(), vals.len(), "row indices and values differ in length");
        debug_assert!(cols.windows(2).all(|w| w[0] < w[1]), "row indices not increasing");
        assert!(
            cols.last().is_none_or(|&c| (c as usize) < self.n_cols),
            "column out of range"
        );
        self.indices.extend_from_slice(cols);
        self.data.extend_from_slice(vals);
        self.indptr.push(self.data.len());
    }

    /// Appends all rows of `other` (same number of columns) below `self`.
    #[track_caller]
    pub fn append(&mut self, other: &CsrMatrix) {
        assert_eq!(self.n_cols, other.n_cols, "column counts differ");
        let base = self.data.len();
        self.indices.extend_from_slice(&other.indices);
        self.data.extend_from_slice(&other.data);
        self.indptr.extend(other.indptr[1..].iter().map(|p| p + base));
    }

    /// Number of rows (cells).
    pub fn n_rows(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Number of columns (genes).
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Number of stored non-zeros.
    pub fn nnz(&self) -> usize {
        self.data.len()
    }

    /// Column indices and values of row `i`.
    #[inline]
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let (s, e) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[s..e], &self.data[s..e])
    }

    /// Row pointer array (`n_rows + 1` entries).
    pub fn indptr(&self) -> &[usize] {
        &self.indptr
    }

    /// Column indices of all non-zeros, row after row.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// Values of all non-zeros, row after row.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Rows `range` as a new matrix.
    pub fn slice_rows(&self, range: std::ops::Range<usize>) -> CsrMatrix {
        let (s, e) = (self.indptr[range.start], self.indptr[range.end]);
        CsrMatrix {
            n_cols: self.n_cols,
            indptr: self.indptr[range.start..=range.end]
                .iter()
                .map(|p| p - s)
                .collect(),
            indices: self.indices[s..e].to_vec(),
            data: self.data[s..e].to_vec(),
        }
    }

    /// ‖X‖² = Σ x², accumulated in f64 in eight interleaved partial sums
    /// (independent chains that vectorize; a fixed order, so reproducible).
    pub fn frobenius_sq(&self) -> f64 {
        let mut lanes = [0.0f64; 8];
        let mut chunks = self.data.chunks_exact(8);
        for c in &mut chunks {
            for (l, &v) in lanes.iter_mut().zip(c) {
                *l += f64::from(v) * f64::from(v);
            }
        }
        for (l, &v) in lanes.iter_mut().zip(chunks.remainder()) {
            *l += f64::from(v) * f64::from(v);
        }
        let quads = [
            lanes[0] + lanes[4],
            lanes[1] + lanes[5],
            lanes[2] + lanes[6],
            lanes[3] + lanes[7],
        ];
        (quads[0] + quads[2]) + (quads[1] + quads[3])
    }

    /// Dense row-major copy (`n_rows × n_cols`), for tests and small references.
    pub fn to_dense(&self) -> ndarray::Array2<f64> {
        let mut d = ndarray::Array2::zeros((self.n_rows(), self.n_cols));
        for r in 0..self.n_rows() {
            let (cols, vals) = self.row(r);
            for (&c, &v) in cols.iter().zip(vals) {
                d[[r, c as usize]] = f64::from(v);
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frobenius_sq_matches_the_plain_sum_for_any_length() {
        // Lengths around the 8-lane blocking, values exactly representable.
        for n in [0usize, 1, 7, 8, 9, 17, 100] {
            let dense: Vec<f32> = (0..n).map(|i| (i % 5) as f32 * 0.5 + 0.25).collect();
            let x = CsrMatrix::from_dense(1, n.max(1), &if n == 0 { vec![0.0] } else { dense.clone() });
            let plain: f64 = dense.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            assert_eq!(x.frobenius_sq(), plain, "n = {n}");
        }
    }

    #[test]
    fn rejects_each_broken_invariant() {
        assert!(CsrMatrix::new(3, vec![], vec![], vec![]).is_err());
        assert!(CsrMatrix::new(3, vec![1, 1], vec![0], vec![1.0]).is_err());
        assert!(CsrMatrix::new(3, vec![0, 1], vec![0, 1], vec![1.0]).is_err());
        assert!(CsrMatrix::new(3, vec![0, 2], vec![0], vec![1.0]).is_err());
        assert!(CsrMatrix::new(3, vec![0, 2, 1], vec![0, 1], vec![1.0, 1.0]).is_err());
        assert!(CsrMatrix::new(3, vec![0, 1], vec![3], vec![1.0]).is_err());
        assert!(CsrMatrix::new(3, vec![0, 2], vec![1, 1], vec![1.0, 1.0]).is_err());
        assert!(CsrMatrix::new(3, vec![0, 2, 3], vec![0, 2, 1], vec![1.0, 2.0, 3.0]).is_ok());
    }

    #[test]
    fn dense_round_trip_and_slicing() {
        let dense = [1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 4.0];
        let m = CsrMatrix::from_dense(3, 3, &dense);
        assert_eq!(m.nnz(), 4);
        assert_eq!(m.row(1).0.len(), 0);
        let s = m.slice_rows(1..3);
        assert_eq!(s.n_rows(), 2);
        assert_eq!(s.row(1), (&[1u32, 2][..], &[3.0f32, 4.0][..]));
        let mut a = m.slice_rows(0..1);
        a.append(&s);
        assert_eq!(a, m);
        assert_eq!(m.frobenius_sq(), 30.0);
        assert_eq!(m.to_dense()[[2, 2]], 4.0);
    }
}
