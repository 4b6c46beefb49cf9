//! The boundary between data and numerics: mini-batches and the trait a
//! data source implements.
//!
//! The learner owns this boundary (the consumer owns the type, as in
//! ripgrep's `grep-matcher`): the HDF5 reader implements [`CellSource`],
//! tests implement it in memory, and the solvers never see a file.

use std::ops::Range;

use crate::sparse::CsrMatrix;

/// One dataset's share of one online iteration: the cells it covers (in the
/// source's cell numbering, as contiguous runs) and their preprocessed
/// values (rows = cells in the order of `cells`, columns = model genes).
#[derive(Debug, Clone)]
pub struct MiniBatch {
    /// Index of the dataset in the run (0-based).
    pub dataset: usize,
    /// Contiguous runs of cell indices, in the order the rows of `x` follow.
    pub cells: Vec<Range<usize>>,
    /// Preprocessed values, cells × genes.
    pub x: CsrMatrix,
}

impl MiniBatch {
    /// Number of cells in the batch (rows of `x`).
    pub fn n_cells(&self) -> usize {
        self.x.n_rows()
    }
}

/// A set of datasets whose preprocessed cells can be read by contiguous runs.
///
/// Cell indices count the cells the source presents (after any filtering it
/// does, e.g. dropped all-zero cells); the source maps them back to the
/// original file's cells itself.
pub trait CellSource {
    /// The source's own error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Number of datasets.
    fn n_datasets(&self) -> usize;
    /// Number of cells presented for `dataset`.
    fn n_cells(&self, dataset: usize) -> usize;
    /// Number of genes (columns) every dataset presents, in the model's gene order.
    fn n_genes(&self) -> usize;
    /// Reads cells `cells` of `dataset` as a CSR block (rows in order).
    fn read_cells(&mut self, dataset: usize, cells: Range<usize>) -> Result<CsrMatrix, Self::Error>;

    /// Reads several runs of cells of `dataset` and stacks them in order.
    fn read_runs(&mut self, dataset: usize, runs: &[Range<usize>]) -> Result<CsrMatrix, Self::Error> {
        let mut out = CsrMatrix::empty(self.n_genes());
        for r in runs {
            out.append(&self.read_cells(dataset, r.clone())?);
        }
        Ok(out)
    }

    /// Like [`read_runs`](Self::read_runs), but may refill the buffers of
    /// `spare` (a block the consumer is done with) instead of allocating.
    /// The result is the same; the default ignores `spare`.
    fn read_runs_reusing(
        &mut self,
        dataset: usize,
        runs: &[Range<usize>],
        spare: CsrMatrix,
    ) -> Result<CsrMatrix, Self::Error> {
        drop(spare);
        self.read_runs(dataset, runs)
    }
}

/// An in-memory [`CellSource`]: one CSR matrix per dataset. Used by tests and
/// by callers that already hold their data.
#[derive(Debug, Clone)]
pub struct InMemorySource {
    datasets: Vec<CsrMatrix>,
}

impl InMemorySource {
    /// Wraps the given matrices; all must have the same number of columns.
    #[track_caller]
    pub fn new(datasets: Vec<CsrMatrix>) -> Self {
        assert!(!datasets.is_empty(), "at least one dataset");
        let g = datasets[0].n_cols();
        assert!(datasets.iter().all(|d| d.n_cols() == g), "gene counts differ");
        Self { datasets }
    }

    /// The matrix of dataset `i`.
    pub fn dataset(&self, i: usize) -> &CsrMatrix {
        &self.datasets[i]
    }
}

impl CellSource for InMemorySource {
    type Error = std::convert::Infallible;
    fn n_datasets(&self) -> usize {
        self.datasets.len()
    }
    fn n_cells(&self, dataset: usize) -> usize {
        self.datasets[dataset].n_rows()
    }
    fn n_genes(&self) -> usize {
        self.datasets[0].n_cols()
    }
    fn read_cells(&mut self, dataset: usize, cells: Range<usize>) -> Result<CsrMatrix, Self::Error> {
        Ok(self.datasets[dataset].slice_rows(cells))
    }
}
