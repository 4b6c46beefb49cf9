//! The one streaming pass per dataset (docs/algorithms.md §9, normalize): per
//! cell nUMI = Σ_g x_gc over all presented genes; cells with nUMI = 0 are
//! dropped; per gene, over kept cells, Σ x̃ and Σ x̃² with x̃ = x / nUMI;
//! and Σ 1/nUMI. All sums in f64. Memory: two f64 per gene, one chunk of
//! cells, and the list of dropped cells.
//!
//! Cells with counts but none in the model's genes would get H = 0 (and
//! spoil the initialization of V), so they are dropped too. When the genes
//! are known before this pass (given genes, prescaled inputs) they are
//! found in it; after a gene selection they need [`cells_without`], a
//! second pass that only tests each kept cell's columns against the
//! selection (no arithmetic; the I/O of one read of the matrix). A single
//! pass would have to remember every cell's genes until the selection is
//! known, i.e. hold the matrix. When the preprocessed cache is built, its
//! pass over the data finds them instead, as the rows that come out empty
//! (`Hdf5Source::preprocess_for_cache`); [`cells_without`] serves runs
//! without the cache.

use crate::error::ReaderError;
use crate::formats::dataset::{Dataset, RawBlock};
use crate::preprocess::cellmap::CellMap;

/// Per-gene sufficient statistics of one dataset's normalized counts.
#[derive(Debug, Clone)]
pub(crate) struct GeneStats {
    /// Kept (non-zero) cells.
    pub(crate) cells: CellMap,
    /// Σ_c x̃_gc per presented gene.
    pub(crate) sum: Vec<f64>,
    /// Σ_c x̃_gc² per presented gene.
    pub(crate) sumsq: Vec<f64>,
    /// Σ_c 1/nUMI_c over kept cells.
    pub(crate) inv_numi_sum: f64,
    /// Kept cells (file indices, increasing) without a positive value in
    /// the `wanted` columns of [`gene_stats`]; empty when none were given.
    pub(crate) no_model: Vec<usize>,
}

impl GeneStats {
    /// Number of kept cells n.
    pub(crate) fn n(&self) -> usize {
        self.cells.n_kept()
    }

    /// ν = mean_c(1/nUMI_c).
    pub(crate) fn nu(&self) -> f64 {
        self.inv_numi_sum / self.n() as f64
    }

    /// μ_g = Σ x̃ / n.
    pub(crate) fn mean(&self, g: usize) -> f64 {
        self.sum[g] / self.n() as f64
    }

    /// σ²_g = (Σ x̃² − (Σ x̃)² / n) / (n − 1), floored at 0 (rounding).
    pub(crate) fn var(&self, g: usize) -> f64 {
        let n = self.n() as f64;
        ((self.sumsq[g] - self.sum[g] * self.sum[g] / n) / (n - 1.0)).max(0.0)
    }

    /// scaleNotCenter's s_g = sqrt(Σ_c x̃² / (n − 1)).
    pub(crate) fn scale(&self, g: usize) -> f64 {
        (self.sumsq[g] / (self.n() as f64 - 1.0)).sqrt()
    }
}

/// nUMI of one canonical row, summed in f64 in storage order (the same
/// order every pass uses, so a cell's nUMI is bit-identical everywhere).
#[inline]
pub(crate) fn numi(vals: &[f32]) -> f64 {
    vals.iter().map(|&v| f64::from(v)).sum()
}

/// Streams `ds` in chunks of `chunk_cells` cells and accumulates its
/// [`GeneStats`]; with `wanted` (one flag per presented column: a model
/// gene), also lists the kept cells without a positive value there.
pub(crate) fn gene_stats(
    ds: &Dataset,
    chunk_cells: usize,
    wanted: Option<&[bool]>,
) -> Result<GeneStats, ReaderError> {
    let g = ds.n_genes();
    let (mut sum, mut sumsq) = (vec![0.0f64; g], vec![0.0f64; g]);
    let mut dropped = Vec::new();
    let mut inv_numi_sum = 0.0f64;
    let mut no_model = Vec::new();
    let mut block = RawBlock::default();
    let n = ds.n_cells();
    let mut start = 0;
    while start < n {
        let end = (start + chunk_cells).min(n);
        ds.read_block(start..end, &mut block)?;
        for r in 0..block.n_rows() {
            let (cols, vals) = block.row(r);
            let total = numi(vals);
            if total <= 0.0 {
                dropped.push(start + r);
                continue;
            }
            inv_numi_sum += 1.0 / total;
            if let Some(w) = wanted {
                if !has_wanted(cols, vals, w) {
                    no_model.push(start + r);
                }
            }
            for (&c, &v) in cols.iter().zip(vals) {
                let x = f64::from(v) / total;
                sum[c as usize] += x;
                sumsq[c as usize] += x * x;
            }
        }
        start = end;
    }
    Ok(GeneStats {
        cells: CellMap::new(n, dropped),
        sum,
        sumsq,
        inv_numi_sum,
        no_model,
    })
}

/// Whether a row has a positive value in a wanted column.
#[inline]
fn has_wanted(cols: &[u32], vals: &[f32], wanted: &[bool]) -> bool {
    cols.iter()
        .zip(vals)
        .any(|(&c, &v)| v > 0.0 && wanted[c as usize])
}

/// The second pass after a gene selection: the kept cells of `cells`
/// (file indices, increasing) without a positive value in the `wanted`
/// columns. Reads runs of kept cells in chunks of `chunk_cells`.
pub(crate) fn cells_without(
    ds: &Dataset,
    cells: &CellMap,
    wanted: &[bool],
    chunk_cells: usize,
) -> Result<Vec<usize>, ReaderError> {
    let mut out = Vec::new();
    let mut block = RawBlock::default();
    let n = cells.n_kept();
    let mut k = 0;
    while k < n {
        let end = (k + chunk_cells).min(n);
        let span = cells.original_span(k..end);
        ds.read_block(span.clone(), &mut block)?;
        for r in 0..block.n_rows() {
            let o = span.start + r;
            let (cols, vals) = block.row(r);
            // Dropped (all-zero) cells inside the span have no values.
            if !vals.is_empty() && !cells.is_dropped(o) && !has_wanted(cols, vals, wanted) {
                out.push(o);
            }
        }
        k = end;
    }
    Ok(out)
}
