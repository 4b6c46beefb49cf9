//! Compressed sparse rows of cells: the one data layout the numerics consume.
//!
//! A [`CsrMatrix`] holds a block of cells (rows) × genes (columns). Each
//! cell's non-zeros are contiguous, which is both the AnnData CSR layout and
//! the 10x Genomics CSC (genes × cells) layout read column by column, so
//! both hot products walk it cell by cell (ARCHITECTURE.md).

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use crate::error::LearnerError;

/// A run of non-zeros of consecutive rows held outside the matrix, shared
/// read-only: for example a memory map of a cache file, so a mini-batch is
/// read without copying its non-zeros ([`CsrMatrix::from_shared_runs`]).
pub trait SharedNonZeros: Send + Sync + std::fmt::Debug {
    /// Column indices of the run's non-zeros, row after row (16-bit ones
    /// are read as they are: the products then stream 6 bytes per non-zero
    /// instead of 8).
    fn indices(&self) -> Cols<'_>;
    /// Values of the run's non-zeros (as long as [`indices`](Self::indices)).
    fn data(&self) -> &[f32];
    /// Whether these non-zeros, cut into rows by the same row pointers,
    /// already passed the row checks of [`CsrMatrix::from_shared_runs`]
    /// for the same number of columns, so they need not be checked again
    /// (a reader of files that never change, remembering what it checked).
    /// Skipping a check can never make a kernel read out of bounds (every
    /// index is bounds-checked); it only trusts the earlier check.
    /// Default `false`.
    fn rows_checked(&self) -> bool {
        false
    }
}

/// Column indices of a row (or of a run of rows) of a [`CsrMatrix`]:
/// 16-bit where the storage chose them (a cache entry of at most 65,536
/// genes), else 32-bit. The values are the same either way; the width only
/// changes how many bytes a product streams per non-zero.
#[derive(Debug, Clone, Copy)]
pub enum Cols<'a> {
    /// 16-bit column indices.
    Narrow(&'a [u16]),
    /// 32-bit column indices.
    Wide(&'a [u32]),
}

/// Runs `$body` with `$c` bound to the index slice of a [`Cols`] (`&[u16]`
/// or `&[u32]`), compiled once per width: the hot loops then index with
/// `c as usize` and never branch on the width inside a row.
macro_rules! with_cols {
    ($cols:expr, $c:ident => $body:expr) => {
        match $cols {
            $crate::sparse::Cols::Narrow($c) => $body,
            $crate::sparse::Cols::Wide($c) => $body,
        }
    };
}
pub(crate) use with_cols;

impl<'a> Cols<'a> {
    /// No indices.
    pub const EMPTY: Cols<'static> = Cols::Wide(&[]);

    /// Number of indices.
    #[inline]
    pub fn len(&self) -> usize {
        with_cols!(self, c => c.len())
    }

    /// Whether there are no indices.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Index `i`. Panics if `i ≥ len`.
    #[inline]
    #[track_caller]
    pub fn get(&self, i: usize) -> u32 {
        match self {
            Cols::Narrow(c) => u32::from(c[i]),
            Cols::Wide(c) => c[i],
        }
    }

    /// The last index, if any.
    pub fn last(&self) -> Option<u32> {
        match self {
            Cols::Narrow(c) => c.last().map(|&v| u32::from(v)),
            Cols::Wide(c) => c.last().copied(),
        }
    }

    /// Indices `range` (panics outside `0..len`).
    #[inline]
    #[track_caller]
    pub fn slice(&self, range: Range<usize>) -> Cols<'a> {
        match *self {
            Cols::Narrow(c) => Cols::Narrow(&c[range]),
            Cols::Wide(c) => Cols::Wide(&c[range]),
        }
    }

    /// The indices in order, as u32.
    pub fn iter(&self) -> ColsIter<'a> {
        match *self {
            Cols::Narrow(c) => ColsIter::Narrow(c.iter()),
            Cols::Wide(c) => ColsIter::Wide(c.iter()),
        }
    }

    /// The indices as a new u32 vector.
    pub fn to_vec(&self) -> Vec<u32> {
        self.iter().collect()
    }

    /// Whether the width is 16 bits.
    pub fn is_narrow(&self) -> bool {
        matches!(self, Cols::Narrow(_))
    }
}

impl PartialEq for Cols<'_> {
    /// Same indices, whatever their widths.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

/// The indices of a [`Cols`] as u32 ([`Cols::iter`]).
#[derive(Debug, Clone)]
pub enum ColsIter<'a> {
    /// Over 16-bit indices.
    Narrow(std::slice::Iter<'a, u16>),
    /// Over 32-bit indices.
    Wide(std::slice::Iter<'a, u32>),
}

impl Iterator for ColsIter<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        match self {
            ColsIter::Narrow(i) => i.next().map(|&v| u32::from(v)),
            ColsIter::Wide(i) => i.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            ColsIter::Narrow(i) => i.size_hint(),
            ColsIter::Wide(i) => i.size_hint(),
        }
    }
}

impl ExactSizeIterator for ColsIter<'_> {}

/// ‖x‖² = Σ v² of one row's values, in f64, in eight interleaved partial
/// sums (value p goes to sum p mod 8: independent chains that vectorize),
/// combined as ((s0+s4) + (s2+s6)) + ((s1+s5) + (s3+s7)). A fixed order,
/// so a reader that stores it per row (the cache) gives the same bits as
/// [`CsrMatrix::frobenius_sq`].
pub fn row_norm_sq(vals: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let mut chunks = vals.chunks_exact(8);
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

/// Where a block's non-zeros live.
#[derive(Debug, Clone)]
enum NonZeros {
    /// In the matrix's own buffers.
    Owned { indices: Vec<u32>, data: Vec<f32> },
    /// In shared runs; run r holds the non-zeros `starts[r]..starts[r + 1]`
    /// (no run is empty, and run boundaries are row boundaries).
    Shared {
        runs: Vec<Arc<dyn SharedNonZeros>>,
        starts: Vec<usize>,
    },
}

/// A cells × genes sparse block in CSR form with `f32` values.
///
/// Invariants (checked by [`CsrMatrix::new`] and
/// [`CsrMatrix::from_shared_runs`]): `indptr.len() == n_rows + 1`,
/// `indptr[0] == 0`, `indptr` non-decreasing, `indptr[n_rows] == nnz`,
/// every column index `< n_cols`, and within a row column indices strictly
/// increasing. The non-zeros are either the matrix's own buffers or runs
/// shared with their owner (a memory map); both read the same through
/// [`row`](Self::row) and [`rows`](Self::rows).
#[derive(Debug, Clone)]
pub struct CsrMatrix {
    n_cols: usize,
    indptr: Vec<usize>,
    nz: NonZeros,
    /// ‖X‖², once computed ([`CsrMatrix::frobenius_sq`]); reset by every
    /// change of the non-zeros.
    norm_sq: OnceLock<f64>,
}

impl PartialEq for CsrMatrix {
    /// Same shape and the same non-zeros, wherever they are stored.
    fn eq(&self, other: &Self) -> bool {
        self.n_cols == other.n_cols
            && self.indptr == other.indptr
            && self.rows(0..self.n_rows()).eq(other.rows(0..other.n_rows()))
    }
}

/// Checks every row of `indptr` over the non-zeros given run by run
/// (`runs` yields `(first non-zero, indices, already checked)`; run
/// boundaries are row boundaries): strictly increasing columns, all
/// `< n_cols`. Rows of runs already checked are skipped.
fn check_rows<'a>(
    n_cols: usize,
    indptr: &[usize],
    runs: impl Iterator<Item = (usize, Cols<'a>, bool)>,
) -> Result<(), LearnerError> {
    let bad = |msg: String| Err(LearnerError::InvalidSparse(msg));
    if let Some(row) = indptr.windows(2).position(|w| w[1] < w[0]) {
        return bad(format!("indptr decreases at row {row}"));
    }
    let mut row = 0;
    for (first, indices, checked) in runs {
        let end = first + indices.len();
        if checked {
            row += indptr[row..].partition_point(|&p| p <= end).saturating_sub(1);
            continue;
        }
        while row + 1 < indptr.len() && indptr[row + 1] <= end {
            let cols = indices.slice(indptr[row] - first..indptr[row + 1] - first);
            // Fast check (strictly increasing, so only the last can be out of
            // range); the slow loop below only runs to name the fault.
            let increasing = with_cols!(cols, c => c.windows(2).fold(true, |ok, p| ok & (p[0] < p[1])));
            if !(increasing && cols.last().is_none_or(|c| (c as usize) < n_cols)) {
                for k in 0..cols.len() {
                    let c = cols.get(k);
                    if c as usize >= n_cols {
                        return bad(format!("row {row}: column {c} out of range (n_cols {n_cols})"));
                    }
                    if k > 0 && cols.get(k - 1) >= c {
                        return bad(format!("row {row}: column indices not strictly increasing"));
                    }
                }
            }
            row += 1;
        }
    }
    Ok(())
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
        check_rows(
            n_cols,
            &indptr,
            std::iter::once((0, Cols::Wide(&indices[..]), false)),
        )?;
        Ok(Self {
            n_cols,
            indptr,
            nz: NonZeros::Owned { indices, data },
            norm_sq: OnceLock::new(),
        })
    }

    /// Builds a matrix whose non-zeros stay in `runs` (shared, read-only),
    /// laid end to end: the non-zeros of rows `indptr[i]..indptr[i + 1]`
    /// are positions of that concatenation. Every run must start and end
    /// on a row boundary; all invariants listed on the type are checked.
    pub fn from_shared_runs(
        n_cols: usize,
        indptr: Vec<usize>,
        runs: Vec<Arc<dyn SharedNonZeros>>,
    ) -> Result<Self, LearnerError> {
        let bad = |msg: String| Err(LearnerError::InvalidSparse(msg));
        if indptr.is_empty() || indptr[0] != 0 {
            return bad("indptr must start with 0".into());
        }
        let mut starts = vec![0];
        let mut kept = Vec::with_capacity(runs.len());
        for (r, run) in runs.into_iter().enumerate() {
            if run.indices().len() != run.data().len() {
                return bad(format!(
                    "run {r}: indices ({}) and data ({}) differ in length",
                    run.indices().len(),
                    run.data().len()
                ));
            }
            if run.data().is_empty() {
                continue;
            }
            let end = starts.last().unwrap() + run.data().len();
            if indptr.binary_search(&end).is_err() {
                return bad(format!("run {r} does not end on a row boundary"));
            }
            starts.push(end);
            kept.push(run);
        }
        let nnz = *starts.last().unwrap();
        if *indptr.last().unwrap() != nnz {
            return bad(format!(
                "indptr ends at {} but the runs hold {nnz} non-zeros",
                indptr.last().unwrap()
            ));
        }
        check_rows(
            n_cols,
            &indptr,
            kept.iter()
                .zip(&starts)
                .map(|(run, &s)| (s, run.indices(), run.rows_checked())),
        )?;
        Ok(Self {
            n_cols,
            indptr,
            nz: NonZeros::Shared { runs: kept, starts },
            norm_sq: OnceLock::new(),
        })
    }

    /// An empty block (0 rows) with `n_cols` columns.
    pub fn empty(n_cols: usize) -> Self {
        Self {
            n_cols,
            indptr: vec![0],
            nz: NonZeros::Owned {
                indices: Vec::new(),
                data: Vec::new(),
            },
            norm_sq: OnceLock::new(),
        }
    }

    /// Builds a CSR matrix from a dense row-major slice (`n_rows × n_cols`), keeping non-zeros.
    /// Panics if `dense.len() != n_rows * n_cols` (a caller's bug).
    #[track_caller]
    pub fn from_dense(n_rows: usize, n_cols: usize, dense: &[f32]) -> Self {
        assert_eq!(dense.len(), n_rows * n_cols, "dense slice has the wrong length");
        let mut m = Self::empty(n_cols);
        let (mut cols, mut vals) = (Vec::new(), Vec::new());
        for r in 0..n_rows {
            cols.clear();
            vals.clear();
            for (c, &v) in dense[r * n_cols..(r + 1) * n_cols].iter().enumerate() {
                if v != 0.0 {
                    cols.push(c as u32);
                    vals.push(v);
                }
            }
            m.push_row(&cols, &vals);
        }
        m
    }

    /// Gives the buffers the matrix owns back as `(indptr, indices, data)`,
    /// so a reader can refill a block the consumer is done with instead of
    /// allocating (and page-faulting) new ones every iteration. A matrix
    /// over shared runs owns only `indptr` (its indices and data come back
    /// empty); its runs are released here.
    pub fn into_parts(self) -> (Vec<usize>, Vec<u32>, Vec<f32>) {
        match self.nz {
            NonZeros::Owned { indices, data } => (self.indptr, indices, data),
            NonZeros::Shared { .. } => (self.indptr, Vec::new(), Vec::new()),
        }
    }

    /// This block as a spare for a reader to refill (see
    /// [`into_parts`](Self::into_parts)): an owned block is returned as it
    /// is; a block over shared runs releases them now and keeps only its
    /// row-pointer buffer, as an empty block.
    pub fn into_spare(self) -> CsrMatrix {
        match self.nz {
            NonZeros::Owned { .. } => self,
            NonZeros::Shared { .. } => {
                let mut indptr = self.indptr;
                indptr.clear();
                indptr.push(0);
                CsrMatrix {
                    n_cols: self.n_cols,
                    indptr,
                    nz: NonZeros::Owned {
                        indices: Vec::new(),
                        data: Vec::new(),
                    },
                    norm_sq: OnceLock::new(),
                }
            }
        }
    }

    /// The owned buffers, copying shared runs into new ones first.
    fn owned_mut(&mut self) -> (&mut Vec<u32>, &mut Vec<f32>) {
        self.norm_sq = OnceLock::new();
        if let NonZeros::Shared { runs, .. } = &self.nz {
            let indices = runs.iter().flat_map(|r| r.indices().iter()).collect();
            let data = runs.iter().flat_map(|r| r.data().iter().copied()).collect();
            self.nz = NonZeros::Owned { indices, data };
        }
        match &mut self.nz {
            NonZeros::Owned { indices, data } => (indices, data),
            NonZeros::Shared { .. } => unreachable!("converted above"),
        }
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
        let (indices, data) = self.owned_mut();
        indices.extend_from_slice(cols);
        data.extend_from_slice(vals);
        let end = data.len();
        self.indptr.push(end);
    }

    /// [`push_row`](Self::push_row) from indices of either width.
    #[track_caller]
    pub fn push_row_cols(&mut self, cols: Cols<'_>, vals: &[f32]) {
        match cols {
            Cols::Wide(c) => self.push_row(c, vals),
            Cols::Narrow(c) => {
                let wide: Vec<u32> = c.iter().map(|&v| u32::from(v)).collect();
                self.push_row(&wide, vals);
            }
        }
    }

    /// Appends all rows of `other` (same number of columns) below `self`.
    #[track_caller]
    pub fn append(&mut self, other: &CsrMatrix) {
        assert_eq!(self.n_cols, other.n_cols, "column counts differ");
        let base = self.nnz();
        let (indices, data) = self.owned_mut();
        for (ix, dx) in other.runs() {
            indices.extend(ix.iter());
            data.extend_from_slice(dx);
        }
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
        self.indptr[self.indptr.len() - 1]
    }

    /// The non-zeros as contiguous pieces `(indices, values)`, in order:
    /// one for owned buffers, one per run for shared runs.
    pub fn runs(&self) -> impl Iterator<Item = (Cols<'_>, &[f32])> + '_ {
        let (owned, shared) = match &self.nz {
            NonZeros::Owned { indices, data } => (Some((Cols::Wide(&indices[..]), &data[..])), &[][..]),
            NonZeros::Shared { runs, .. } => (None, &runs[..]),
        };
        owned
            .into_iter()
            .chain(shared.iter().map(|r| (r.indices(), r.data())))
    }

    /// Column indices and values of row `i`.
    #[inline]
    pub fn row(&self, i: usize) -> (Cols<'_>, &[f32]) {
        let (s, e) = (self.indptr[i], self.indptr[i + 1]);
        match &self.nz {
            NonZeros::Owned { indices, data } => (Cols::Wide(&indices[s..e]), &data[s..e]),
            NonZeros::Shared { .. } if s == e => (Cols::EMPTY, &[]),
            NonZeros::Shared { runs, starts } => {
                let r = starts.partition_point(|&p| p <= s) - 1;
                let (ix, dx) = (runs[r].indices(), runs[r].data());
                (
                    ix.slice(s - starts[r]..e - starts[r]),
                    &dx[s - starts[r]..e - starts[r]],
                )
            }
        }
    }

    /// Rows `range` in order, as [`row`](Self::row) would give them (a
    /// run is looked up once, not once per row).
    #[inline]
    pub fn rows(&self, range: Range<usize>) -> RowIter<'_> {
        let bounds = &self.indptr[range.start..range.end + 1];
        match &self.nz {
            NonZeros::Owned { indices, data } => RowIter {
                bounds,
                indices: Cols::Wide(indices),
                data,
                base: 0,
                end: usize::MAX,
                runs: &[],
                starts: &[0],
            },
            NonZeros::Shared { runs, starts } => RowIter {
                bounds,
                indices: Cols::EMPTY,
                data: &[],
                base: 0,
                end: 0,
                runs,
                starts,
            },
        }
    }

    /// Row pointer array (`n_rows + 1` entries).
    pub fn indptr(&self) -> &[usize] {
        &self.indptr
    }

    /// Column indices of all non-zeros, row after row.
    ///
    /// Panics if the matrix is made of several shared runs (a mini-batch
    /// mapped from a cache); use [`runs`](Self::runs) or
    /// [`row`](Self::row), which work for every matrix.
    #[track_caller]
    pub fn indices(&self) -> Cols<'_> {
        self.contiguous().0
    }

    /// Values of all non-zeros, row after row. Panics like
    /// [`indices`](Self::indices).
    #[track_caller]
    pub fn data(&self) -> &[f32] {
        self.contiguous().1
    }

    #[track_caller]
    fn contiguous(&self) -> (Cols<'_>, &[f32]) {
        match &self.nz {
            NonZeros::Owned { indices, data } => (Cols::Wide(indices), data),
            NonZeros::Shared { runs, .. } => match &runs[..] {
                [] => (Cols::EMPTY, &[]),
                [one] => (one.indices(), one.data()),
                _ => panic!(
                    "the non-zeros of this block are in several runs; iterate them with CsrMatrix::runs"
                ),
            },
        }
    }

    /// Rows `range` as a new matrix (owned buffers).
    pub fn slice_rows(&self, range: std::ops::Range<usize>) -> CsrMatrix {
        let mut out = CsrMatrix::empty(self.n_cols);
        for (cols, vals) in self.rows(range) {
            out.push_row_cols(cols, vals);
        }
        out
    }

    /// ‖X‖² = Σ_r ‖x_r‖², the rows' [`row_norm_sq`] added in row order (a
    /// fixed order: reproducible, the same for owned and shared storage, and
    /// the same as a reader's stored row norms, see
    /// [`remember_row_norms_sq`](Self::remember_row_norms_sq)). Computed once
    /// and kept, so a reader thread can compute it ahead of the learner that
    /// needs it.
    pub fn frobenius_sq(&self) -> f64 {
        *self.norm_sq.get_or_init(|| self.compute_frobenius_sq())
    }

    fn compute_frobenius_sq(&self) -> f64 {
        self.rows(0..self.n_rows())
            .fold(0.0, |total, (_, vals)| total + row_norm_sq(vals))
    }

    /// Keeps ‖X‖² = Σ_r `row_norms[r]` (added in row order) as the block's
    /// [`frobenius_sq`](Self::frobenius_sq), from row norms a reader stored
    /// when it wrote the rows (`row_norms[r]` = [`row_norm_sq`] of row r),
    /// instead of a pass over every value. Same bits as computing it, if the
    /// stored norms are right (checked in debug builds). Does nothing if
    /// ‖X‖² is already known. Panics if `row_norms` is not one per row.
    #[track_caller]
    pub fn remember_row_norms_sq(&self, row_norms: &[f64]) {
        assert_eq!(row_norms.len(), self.n_rows(), "one norm per row");
        let total = row_norms.iter().fold(0.0, |t, &v| t + v);
        debug_assert_eq!(
            total.to_bits(),
            self.compute_frobenius_sq().to_bits(),
            "stored row norms disagree with the rows"
        );
        let _ = self.norm_sq.set(total);
    }

    /// Dense row-major copy (`n_rows × n_cols`), for tests and small references.
    pub fn to_dense(&self) -> ndarray::Array2<f64> {
        let mut d = ndarray::Array2::zeros((self.n_rows(), self.n_cols));
        for (r, (cols, vals)) in self.rows(0..self.n_rows()).enumerate() {
            for (c, &v) in cols.iter().zip(vals) {
                d[[r, c as usize]] = f64::from(v);
            }
        }
        d
    }
}

/// The rows of a [`CsrMatrix`] in order ([`CsrMatrix::rows`]): each item
/// is `(column indices, values)` of one row.
#[derive(Debug)]
pub struct RowIter<'a> {
    /// Row pointers of the rows still to come (one more than rows).
    bounds: &'a [usize],
    /// The current run's non-zeros, which start at non-zero `base` and end
    /// before `end`.
    indices: Cols<'a>,
    data: &'a [f32],
    base: usize,
    end: usize,
    /// The shared runs (none for owned buffers) and where each starts.
    runs: &'a [Arc<dyn SharedNonZeros>],
    starts: &'a [usize],
}

impl<'a> Iterator for RowIter<'a> {
    type Item = (Cols<'a>, &'a [f32]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (s, e) = match self.bounds {
            [s, e, ..] => (*s, *e),
            _ => return None,
        };
        self.bounds = &self.bounds[1..];
        if s == e {
            return Some((Cols::EMPTY, &[]));
        }
        if e > self.end {
            // Enter the run holding non-zero s (rows never span runs).
            let r = self.starts.partition_point(|&p| p <= s) - 1;
            self.indices = self.runs[r].indices();
            self.data = self.runs[r].data();
            self.base = self.starts[r];
            self.end = self.starts[r + 1];
        }
        let (a, b) = (s - self.base, e - self.base);
        Some((self.indices.slice(a..b), &self.data[a..b]))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.bounds.len().saturating_sub(1);
        (n, Some(n))
    }
}

impl ExactSizeIterator for RowIter<'_> {}

#[cfg(test)]
mod tests;
