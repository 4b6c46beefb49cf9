//! Dense 2-d count matrices: AnnData dense `X` (cells × genes, read by row
//! blocks) and loom `/matrix` (genes × cells, read by column blocks). Only
//! the non-zeros are kept. A read is split into sub-blocks of at most
//! [`BLOCK_ELEMENTS`] elements, so memory stays bounded whatever the run
//! length and gene count.

use std::ops::Range;
use std::path::Path;

use crate::error::ReaderError;
use crate::formats::dataset::RawBlock;
use crate::formats::h5::{self, Ctx, NumKind};

/// Elements decoded per sub-block (16 MB as f32; tiny in tests, so runs
/// are split into several sub-blocks).
pub(crate) const BLOCK_ELEMENTS: usize = if cfg!(test) { 40 } else { 4 << 20 };

/// A dense 2-d dataset of counts.
#[derive(Debug)]
pub(crate) struct DenseStore {
    pub(crate) ds: hdf5::Dataset,
    pub(crate) kind: NumKind,
    /// HDF5 path with a leading `/`.
    pub(crate) object: String,
    pub(crate) n_cells: usize,
    pub(crate) n_genes: usize,
    /// Genes along the first axis (loom), else cells (AnnData).
    pub(crate) genes_first: bool,
}

impl DenseStore {
    /// Opens `name` (a 2-d numeric dataset) and checks its shape against
    /// `n_genes` names along the gene axis.
    pub(crate) fn open(
        file: &hdf5::File,
        path: &Path,
        name: &str,
        n_genes: usize,
        genes_first: bool,
    ) -> Result<Self, ReaderError> {
        let object = format!("/{}", name.trim_start_matches('/'));
        let ds = h5::dataset(file, name, path, &object)?;
        let shape = ds.shape();
        if shape.len() != 2 {
            return Err(ReaderError::BadShape {
                path: path.to_owned(),
                object,
                expected: if genes_first {
                    "2 dimensions (genes × cells)".into()
                } else {
                    "2 dimensions (cells × genes)".into()
                },
                found: format!("{} dimensions {shape:?}", shape.len()),
            });
        }
        let kind = h5::num_kind(&ds, path, &object, true)?;
        let (n_cells, genes) = if genes_first {
            (shape[1], shape[0])
        } else {
            (shape[0], shape[1])
        };
        if genes != n_genes {
            return Err(ReaderError::BadShape {
                path: path.to_owned(),
                object,
                expected: format!(
                    "{n_genes} genes along axis {} (the gene names)",
                    usize::from(!genes_first)
                ),
                found: format!("shape {shape:?}"),
            });
        }
        Ok(Self {
            ds,
            kind,
            object,
            n_cells,
            n_genes,
            genes_first,
        })
    }

    /// Reads cells `cells` into `out` (canonical rows: only non-zeros,
    /// genes increasing).
    pub(crate) fn read(
        &self,
        path: &Path,
        cells: Range<usize>,
        out: &mut RawBlock,
    ) -> Result<(), ReaderError> {
        out.indptr.clear();
        out.indices.clear();
        out.data.clear();
        out.indptr.push(0);
        let g = self.n_genes;
        let step = (BLOCK_ELEMENTS / g.max(1)).max(1);
        let mut c0 = cells.start;
        while c0 < cells.end {
            let c1 = (c0 + step).min(cells.end);
            let w = c1 - c0;
            let block = if self.genes_first {
                h5::read_values_2d(&self.ds, self.kind, 0..g, c0..c1)
            } else {
                h5::read_values_2d(&self.ds, self.kind, c0..c1, 0..g)
            }
            .ctx(path, &self.object)?;
            let vals = match block {
                Ok(v) => v,
                Err(b) => {
                    let cell = if self.genes_first { b.pos % w } else { b.pos / g };
                    return Err(ReaderError::InvalidValue {
                        path: path.to_owned(),
                        object: self.object.clone(),
                        cell: c0 + cell,
                        value: b.value,
                    });
                }
            };
            for r in 0..w {
                for gene in 0..g {
                    let v = if self.genes_first {
                        vals[gene * w + r]
                    } else {
                        vals[r * g + gene]
                    };
                    if v != 0.0 {
                        out.indices.push(gene as u32);
                        out.data.push(v);
                    }
                }
                out.indptr.push(out.data.len());
            }
            c0 = c1;
        }
        Ok(())
    }
}
