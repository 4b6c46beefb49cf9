//! The three arrays of a compressed sparse matrix (`data`, `indices`,
//! `indptr`) in one HDF5 group, checked when opened, and the CSR read of a
//! run of rows (anndata-rs' habit: one read of `indptr`, then one read each
//! of `indices` and `data`), validated as it goes.

use std::ops::Range;
use std::path::Path;

use crate::error::ReaderError;
use crate::formats::chunks::RawChunks;
use crate::formats::dataset::RawBlock;
use crate::formats::h5::{self, Ctx, Member, NumKind};

/// What the outer dimension (one `indptr` entry per element) holds: cells
/// (CSR cells × genes; 10x CSC genes × cells is the same layout) or genes
/// (AnnData CSC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outer {
    Cells,
    Genes,
}

/// The opened arrays.
#[derive(Debug)]
pub(crate) struct SparseArrays {
    /// HDF5 path of the group, with a leading `/`.
    pub(crate) group: String,
    pub(crate) indptr: hdf5::Dataset,
    pub(crate) indices: hdf5::Dataset,
    pub(crate) data: hdf5::Dataset,
    pub(crate) indptr_kind: NumKind,
    pub(crate) indices_kind: NumKind,
    pub(crate) data_kind: NumKind,
    /// Elements of the outer dimension.
    pub(crate) n_outer: usize,
    /// Elements of the inner dimension (bound of `indices`).
    pub(crate) n_inner: usize,
    pub(crate) nnz: usize,
    pub(crate) outer: Outer,
    /// Direct chunk readers of `indices` and `data`, when their storage
    /// allows them (`formats::chunks`).
    pub(crate) indices_chunks: Option<RawChunks>,
    pub(crate) data_chunks: Option<RawChunks>,
}

impl SparseArrays {
    /// Opens `group`'s arrays and checks types, lengths (`indices` and
    /// `data` alike; `indptr` = `n_outer` + 1 when known) and the ends of
    /// `indptr` (0 and the number of stored values). The rest of `indptr`
    /// and the values are checked as they are read.
    pub(crate) fn open(
        file: &hdf5::File,
        path: &Path,
        group: &str,
        n_outer: Option<usize>,
        n_inner: usize,
        outer: Outer,
    ) -> Result<Self, ReaderError> {
        let g = group.trim_start_matches('/');
        let get = |name: &str| -> Result<(hdf5::Dataset, String), ReaderError> {
            let object = format!("/{g}/{name}");
            if h5::member(file, &format!("{g}/{name}")) != Member::Dataset {
                return Err(ReaderError::MissingObject {
                    path: path.to_owned(),
                    object,
                    what: format!("the `{name}` array of the sparse matrix"),
                });
            }
            let ds = h5::dataset(file, &format!("{g}/{name}"), path, &object)?;
            if ds.ndim() != 1 {
                return Err(ReaderError::BadShape {
                    path: path.to_owned(),
                    object,
                    expected: "1 dimension".into(),
                    found: format!("{} dimensions", ds.ndim()),
                });
            }
            Ok((ds, object))
        };
        let (indptr, indptr_obj) = get("indptr")?;
        let (indices, indices_obj) = get("indices")?;
        let (data, data_obj) = get("data")?;
        let indptr_kind = h5::num_kind(&indptr, path, &indptr_obj, false)?;
        let indices_kind = h5::num_kind(&indices, path, &indices_obj, false)?;
        let data_kind = h5::num_kind(&data, path, &data_obj, true)?;

        let nnz = data.size();
        if indices.size() != nnz {
            return Err(ReaderError::BadShape {
                path: path.to_owned(),
                object: indices_obj,
                expected: format!("{nnz} elements (as many as `{data_obj}`)"),
                found: format!("{} elements", indices.size()),
            });
        }
        let n_outer = n_outer.unwrap_or_else(|| indptr.size().saturating_sub(1));
        let what = match outer {
            Outer::Cells => "cells",
            Outer::Genes => "genes",
        };
        // Checked: `n_outer` may come from a shape record of any size.
        if n_outer.checked_add(1) != Some(indptr.size()) {
            return Err(ReaderError::BadShape {
                path: path.to_owned(),
                object: indptr_obj,
                expected: format!("{} elements ({what} + 1)", n_outer as u128 + 1),
                found: format!("{} elements", indptr.size()),
            });
        }
        let ends = [
            h5::read_ints(&indptr, indptr_kind, 0..1).ctx(path, &indptr_obj)?[0],
            h5::read_ints(&indptr, indptr_kind, n_outer..n_outer + 1).ctx(path, &indptr_obj)?[0],
        ];
        if ends[0] != 0 || ends[1] != nnz as i128 {
            let detail = format!(
                "it runs from {} to {}, but must run from 0 to {nnz} (the number of stored values)",
                ends[0], ends[1]
            );
            return Err(match outer {
                Outer::Cells => ReaderError::BadIndptr {
                    path: path.to_owned(),
                    object: indptr_obj,
                    cell: if ends[0] != 0 { 0 } else { n_outer },
                    detail,
                },
                Outer::Genes => ReaderError::Corrupt {
                    path: path.to_owned(),
                    object: indptr_obj,
                    detail,
                },
            });
        }
        let indices_chunks = h5::raw_chunks(&indices, indices_kind, path);
        let data_chunks = h5::raw_chunks(&data, data_kind, path);
        Ok(Self {
            indices_chunks,
            data_chunks,
            group: format!("/{g}"),
            indptr,
            indices,
            data,
            indptr_kind,
            indices_kind,
            data_kind,
            n_outer,
            n_inner,
            nnz,
            outer,
        })
    }

    /// Reads rows (outer elements) `rows` into `out` as stored (file
    /// columns, not canonicalized), checking pointers, indices and values;
    /// errors name the cell (for [`Outer::Cells`]).
    pub(crate) fn read_rows(
        &self,
        path: &Path,
        rows: Range<usize>,
        out: &mut RawBlock,
    ) -> Result<(), ReaderError> {
        debug_assert_eq!(self.outer, Outer::Cells);
        out.indptr.clear();
        out.indices.clear();
        out.data.clear();
        out.indptr.push(0);
        if rows.is_empty() {
            return Ok(());
        }
        let (start, n) = (rows.start, rows.len());
        let obj = || format!("{}/indptr", self.group);
        let ptr = h5::read_ints(&self.indptr, self.indptr_kind, start..rows.end + 1).ctx(path, &obj())?;
        let nnz = self.nnz as i128;
        let bad = |cell: usize, detail: String| ReaderError::BadIndptr {
            path: path.to_owned(),
            object: obj(),
            cell,
            detail,
        };
        if !(0..=nnz).contains(&ptr[0]) {
            return Err(bad(start, format!("it is {}, outside 0..={nnz}", ptr[0])));
        }
        for i in 0..n {
            if ptr[i + 1] < ptr[i] {
                return Err(bad(
                    start + i,
                    format!("it decreases from {} to {}", ptr[i], ptr[i + 1]),
                ));
            }
            if ptr[i + 1] > nnz {
                return Err(bad(
                    start + i,
                    format!("it ends at {}, past the {nnz} stored values", ptr[i + 1]),
                ));
            }
        }
        let (s, e) = (ptr[0] as usize, ptr[n] as usize);
        out.indptr.extend(ptr[1..].iter().map(|&p| p as usize - s));
        let row_of = |indptr: &[usize], pos: usize| start + indptr.partition_point(|&p| p <= pos) - 1;

        let indices_obj = || format!("{}/indices", self.group);
        match h5::read_indices(
            &self.indices,
            self.indices_chunks.as_ref(),
            self.indices_kind,
            s..e,
            self.n_inner,
        )
        .ctx(path, &indices_obj())?
        {
            Ok(v) => out.indices = v,
            Err(b) => {
                return Err(ReaderError::IndexOutOfRange {
                    path: path.to_owned(),
                    object: indices_obj(),
                    cell: row_of(&out.indptr, b.pos),
                    index: b.value,
                    n_genes: self.n_inner,
                })
            }
        }
        let data_obj = || format!("{}/data", self.group);
        match h5::read_values(&self.data, self.data_chunks.as_ref(), self.data_kind, s..e)
            .ctx(path, &data_obj())?
        {
            Ok(v) => out.data = v,
            Err(b) => {
                return Err(ReaderError::InvalidValue {
                    path: path.to_owned(),
                    object: data_obj(),
                    cell: row_of(&out.indptr, b.pos),
                    value: b.value,
                })
            }
        }
        Ok(())
    }
}
