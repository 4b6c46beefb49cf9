//! AnnData CSC `X` (`encoding-type` = csc_matrix): genes are the outer
//! dimension, so a run of cells is scattered over every gene column.
//!
//! Reading gene columns per run of cells would read the whole matrix for
//! every mini-batch. Instead, on the first read the matrix is converted
//! once, in one streaming pass, to a temporary CSR copy
//! ([`crate::formats::spill`]): gene columns are read in blocks of
//! [`READ_ENTRIES`] stored values (validated: column pointers, cell
//! indices, values), each entry is bucketed by cell block into an
//! anonymous temporary file, then each cell block is assembled in order
//! and appended to the CSR copy, which then serves runs of cells with
//! three positioned reads. Memory stays bounded: the read block
//! (≈ 8 bytes × [`READ_ENTRIES`] plus the stored types), the bucket buffers
//! ([`crate::formats::spill::BUFFER_BYTES`]) and one assembled cell block
//! (≈ 12 bytes × [`crate::formats::spill::BUCKET_ENTRIES`]): about 50 MB whatever
//! the matrix size. The copy costs 12 bytes per stored value (+ 8 per
//! cell) of temporary disk while the dataset is open, in the temporary
//! directory of [`crate::OpenOptions::temp_dir`].

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::ReaderError;
use crate::formats::arrays::SparseArrays;
use crate::formats::dataset::RawBlock;
use crate::formats::h5::{self, Ctx};
use crate::formats::spill::{Buckets, SpilledCsr};

/// Stored values read per block during the conversion (tiny in tests, so
/// blocks end inside gene columns).
pub(crate) const READ_ENTRIES: usize = if cfg!(test) { 7 } else { 1 << 20 };

/// A CSC matrix served by cells through its CSR copy, built on first use.
#[derive(Debug)]
pub(crate) struct CscStore {
    pub(crate) arrays: SparseArrays,
    temp_dir: PathBuf,
    copy: OnceLock<SpilledCsr>,
}

impl CscStore {
    pub(crate) fn new(arrays: SparseArrays, temp_dir: PathBuf) -> Self {
        Self {
            arrays,
            temp_dir,
            copy: OnceLock::new(),
        }
    }

    /// Whether the CSR copy was built already.
    pub(crate) fn converted(&self) -> bool {
        self.copy.get().is_some()
    }

    /// Reads cells `cells` (canonical rows over the genes).
    pub(crate) fn read(
        &self,
        path: &Path,
        cells: Range<usize>,
        out: &mut RawBlock,
    ) -> Result<(), ReaderError> {
        if let Some(copy) = self.copy.get() {
            return copy.read(cells, out);
        }
        let copy = self.convert(path)?;
        // A concurrent first read cannot happen (`&self` is never shared
        // across threads by the reader); keep whichever copy landed.
        let _ = self.copy.set(copy);
        self.copy.get().expect("the copy was just set").read(cells, out)
    }

    /// The one streaming pass: gene columns → cell buckets → CSR copy.
    fn convert(&self, path: &Path) -> Result<SpilledCsr, ReaderError> {
        let a = &self.arrays;
        let (n_genes, n_cells) = (a.n_outer, a.n_inner);
        let ptr_obj = format!("{}/indptr", a.group);
        let ptr = h5::read_ints(&a.indptr, a.indptr_kind, 0..n_genes + 1).ctx(path, &ptr_obj)?;
        for g in 0..n_genes {
            if ptr[g + 1] < ptr[g] {
                return Err(ReaderError::Corrupt {
                    path: path.to_owned(),
                    object: ptr_obj,
                    detail: format!(
                        "the column pointer of gene {g} decreases from {} to {}",
                        ptr[g],
                        ptr[g + 1]
                    ),
                });
            }
        }
        let mut buckets = Buckets::new(&self.temp_dir, n_cells, a.nnz as u64)?;
        let idx_obj = format!("{}/indices", a.group);
        let dat_obj = format!("{}/data", a.group);
        let mut g = 0usize;
        let mut s = 0usize;
        while s < a.nnz {
            let e = (s + READ_ENTRIES).min(a.nnz);
            let cells = match h5::read_indices(
                &a.indices,
                a.indices_chunks.as_ref(),
                a.indices_kind,
                s..e,
                n_cells,
            )
            .ctx(path, &idx_obj)?
            {
                Ok(v) => v,
                Err(b) => {
                    let gene = ptr.partition_point(|&p| p <= (s + b.pos) as i128) - 1;
                    return Err(ReaderError::Corrupt {
                        path: path.to_owned(),
                        object: idx_obj,
                        detail: format!(
                            "gene column {gene} refers to cell {}, but the matrix has {n_cells} cells",
                            b.value
                        ),
                    });
                }
            };
            let values = match h5::read_values(&a.data, a.data_chunks.as_ref(), a.data_kind, s..e)
                .ctx(path, &dat_obj)?
            {
                Ok(v) => v,
                Err(b) => {
                    return Err(ReaderError::InvalidValue {
                        path: path.to_owned(),
                        object: dat_obj,
                        cell: cells[b.pos] as usize,
                        value: b.value,
                    })
                }
            };
            for (k, (&c, &v)) in cells.iter().zip(&values).enumerate() {
                let pos = (s + k) as i128;
                while ptr[g + 1] <= pos {
                    g += 1;
                }
                buckets.push(c as usize, g as u32, v)?;
            }
            s = e;
        }
        SpilledCsr::build(buckets.finish()?, &self.temp_dir)
    }
}
