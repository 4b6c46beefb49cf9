//! One opened input file: format detection, the matrix's arrays, gene and
//! cell names, and validated contiguous reads of raw counts.

use std::ops::Range;
use std::path::{Path, PathBuf};

use inmf_learner::CsrMatrix;

use crate::error::ReaderError;
use crate::h5::{self, Ctx, Member, NumKind};
use crate::names::make_unique;
use crate::{anndata, tenx};

/// Which matrix of an AnnData file to read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MatrixLocation {
    /// `X` (genes from `var`). The default; the only choice for 10x files.
    #[default]
    X,
    /// `raw/X` (genes from `raw/var`): where scanpy keeps counts after
    /// `adata.raw = adata`.
    Raw,
    /// `layers/<name>` (genes from `var`), e.g. `Layer("counts".into())`.
    Layer(String),
}

/// How to open an input. Defaults: matrix `X`, 10x feature type
/// "Gene Expression", dataset name = the file name without its extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// Which AnnData matrix to read (10x files have only
    /// [`MatrixLocation::X`]; asking them for another is an error).
    pub matrix: MatrixLocation,
    /// 10x files: keep only features of this `feature_type` (default
    /// `Some("Gene Expression")`); `None` keeps all features. Ignored for
    /// AnnData files.
    pub feature_type: Option<String>,
    /// Name of the dataset in reports and outputs (default: the file stem).
    pub name: Option<String>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            matrix: MatrixLocation::X,
            feature_type: Some("Gene Expression".into()),
            name: None,
        }
    }
}

/// The detected file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// AnnData .h5ad (anndata ≥ 0.7 layout; CSR matrix).
    AnnData,
    /// 10x Genomics .h5 of Cell Ranger ≥ 3 (`matrix/`, `features/`).
    TenXV3,
    /// 10x Genomics .h5 of Cell Ranger 2 (one group per genome).
    TenXV2,
}

/// Where a format keeps things; produced by the format modules.
#[derive(Debug)]
pub(crate) struct Layout {
    pub(crate) format: Format,
    /// HDF5 path of the group holding `data`, `indices`, `indptr` (no leading `/`).
    pub(crate) matrix: String,
    /// Cells and file columns, if the format records them (else inferred).
    pub(crate) shape: Option<(usize, usize)>,
    /// One name per file column.
    pub(crate) genes: Vec<String>,
    /// One id per file column, if the format has them.
    pub(crate) gene_ids: Option<Vec<String>>,
    /// One feature type per file column (10x v3).
    pub(crate) feature_types: Option<Vec<String>>,
    /// HDF5 path of the cell-name dataset.
    pub(crate) cell_names: String,
}

const NONE: u32 = u32::MAX;

/// An opened input file (read-only): a cells × genes count matrix in CSR
/// form (AnnData CSR, or 10x CSC genes × cells, which is the same layout),
/// its gene names (made unique) and cell names.
///
/// Reads of a contiguous run of cells cost one read of `indptr`, then one
/// read each of `indices` and `data` (anndata-rs' habit), and validate as
/// they go: row pointers non-decreasing and within the stored values,
/// column indices in range, values finite and ≥ 0.
#[derive(Debug)]
pub struct Dataset {
    path: PathBuf,
    name: String,
    format: Format,
    matrix: String,
    _file: hdf5::File,
    indptr: hdf5::Dataset,
    indices: hdf5::Dataset,
    data: hdf5::Dataset,
    indptr_kind: NumKind,
    indices_kind: NumKind,
    data_kind: NumKind,
    n_cells: usize,
    n_file_cols: usize,
    nnz: usize,
    genes: Vec<String>,
    gene_ids: Option<Vec<String>>,
    duplicates_renamed: usize,
    /// File column → presented column, or `NONE` (10x feature-type filter).
    col_filter: Option<Vec<u32>>,
    cell_names: hdf5::Dataset,
    cell_names_object: String,
}

/// Opens an input read-only, detecting its format from its content (not
/// its extension): AnnData .h5ad (`X`/`obs`/`var`), 10x Genomics .h5 of
/// Cell Ranger ≥ 3 (`matrix/`) or 2 (one genome group).
///
/// Checks the structure up front (encoding, data types, array lengths,
/// the ends of `indptr`); values are validated as cells are read.
pub fn open(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Dataset, ReaderError> {
    Dataset::open(path.as_ref(), options)
}

impl Dataset {
    fn open(path: &Path, options: &OpenOptions) -> Result<Self, ReaderError> {
        let file = h5::open_read_only(path)?;
        let layout = detect(&file, path, options)?;
        let m = &layout.matrix;
        let get = |name: &str| -> Result<(hdf5::Dataset, String), ReaderError> {
            let object = format!("/{m}/{name}");
            if h5::member(&file, &format!("{m}/{name}")) != Member::Dataset {
                return Err(ReaderError::MissingObject {
                    path: path.to_owned(),
                    object,
                    what: format!("the `{name}` array of the CSR matrix"),
                });
            }
            let ds = file.dataset(&format!("{m}/{name}")).ctx(path, &object)?;
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
        let n_file_cols = layout.genes.len();
        let n_cells = match layout.shape {
            Some((cells, cols)) => {
                if cols != n_file_cols {
                    return Err(ReaderError::BadShape {
                        path: path.to_owned(),
                        object: format!("/{m} (shape)"),
                        expected: format!("{n_file_cols} genes (the length of the gene names)"),
                        found: format!("{cols} genes"),
                    });
                }
                cells
            }
            None => indptr.size().saturating_sub(1),
        };
        if indptr.size() != n_cells + 1 {
            return Err(ReaderError::BadShape {
                path: path.to_owned(),
                object: indptr_obj,
                expected: format!("{} elements (cells + 1)", n_cells + 1),
                found: format!("{} elements", indptr.size()),
            });
        }
        // The two ends of indptr: the rest is checked as cells are read.
        let ends = [
            h5::read_ints(&indptr, indptr_kind, 0..1).ctx(path, &indptr_obj)?[0],
            h5::read_ints(&indptr, indptr_kind, n_cells..n_cells + 1).ctx(path, &indptr_obj)?[0],
        ];
        if ends[0] < 0 || ends[1] < ends[0] || ends[1] > nnz as i128 {
            return Err(ReaderError::BadIndptr {
                path: path.to_owned(),
                object: indptr_obj,
                cell: if ends[0] < 0 { 0 } else { n_cells },
                detail: format!(
                    "it runs from {} to {}, which is not within the {nnz} stored values",
                    ends[0], ends[1]
                ),
            });
        }

        let cell_names_object = format!("/{}", layout.cell_names);
        let cell_names = file.dataset(&layout.cell_names).ctx(path, &cell_names_object)?;
        if cell_names.size() != n_cells {
            return Err(ReaderError::BadShape {
                path: path.to_owned(),
                object: cell_names_object,
                expected: format!("{n_cells} cell names (one per cell of the matrix)"),
                found: format!("{} names", cell_names.size()),
            });
        }

        let (col_filter, mut genes, gene_ids) = filter_features(&layout, path, options)?;
        let duplicates_renamed = make_unique(&mut genes);
        let name = options.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .map_or_else(|| "dataset".into(), |s| s.to_string_lossy().into_owned())
        });
        Ok(Self {
            path: path.to_owned(),
            name,
            format: layout.format,
            matrix: format!("/{m}"),
            _file: file,
            indptr,
            indices,
            data,
            indptr_kind,
            indices_kind,
            data_kind,
            n_cells,
            n_file_cols,
            nnz,
            genes,
            gene_ids,
            duplicates_renamed,
            col_filter,
            cell_names,
            cell_names_object,
        })
    }

    /// The input file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The dataset's name (option `name`, else the file stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The detected format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// HDF5 path of the matrix read (e.g. `/X`, `/raw/X`, `/matrix`).
    pub fn matrix_object(&self) -> &str {
        &self.matrix
    }

    /// Number of cells in the file.
    pub fn n_cells(&self) -> usize {
        self.n_cells
    }

    /// Number of genes presented (after the 10x feature-type filter).
    pub fn n_genes(&self) -> usize {
        self.genes.len()
    }

    /// Number of stored values of the whole matrix (all features).
    pub fn nnz(&self) -> usize {
        self.nnz
    }

    /// Gene names of the presented columns, made unique scanpy-style
    /// (`name`, `name-1`, `name-2`, ...).
    pub fn gene_names(&self) -> &[String] {
        &self.genes
    }

    /// Gene ids of the presented columns where the file has them (10x
    /// `features/id`, Cell Ranger 2 `genes`, AnnData `var/gene_ids`).
    pub fn gene_ids(&self) -> Option<&[String]> {
        self.gene_ids.as_deref()
    }

    /// How many gene names were renamed to make them unique.
    pub fn duplicate_genes_renamed(&self) -> usize {
        self.duplicates_renamed
    }

    /// Raw counts of cells `cells` (file indices) as a CSR block over the
    /// presented genes, columns strictly increasing in each row (unsorted
    /// rows are sorted, repeated columns summed, as scipy does).
    pub fn read_cells(&self, cells: Range<usize>) -> Result<CsrMatrix, ReaderError> {
        let mut b = RawBlock::default();
        self.read_block(cells, &mut b)?;
        Ok(b.into_csr(self.n_genes()))
    }

    /// Names of cells `cells` (file indices): `obs` index or 10x barcodes.
    pub fn cell_names(&self, cells: Range<usize>) -> Result<Vec<String>, ReaderError> {
        self.check_range(&cells)?;
        if cells.is_empty() {
            return Ok(Vec::new());
        }
        h5::read_strings(&self.cell_names, Some(cells), &self.path, &self.cell_names_object)
    }

    fn check_range(&self, cells: &Range<usize>) -> Result<(), ReaderError> {
        if cells.start > cells.end || cells.end > self.n_cells {
            return Err(ReaderError::BadRequest {
                path: self.path.clone(),
                range: cells.clone(),
                n_cells: self.n_cells,
            });
        }
        Ok(())
    }

    /// Reads cells `cells` (file indices) into `out` with canonical rows
    /// (see [`Dataset::read_cells`]); `out`'s buffers are reused.
    pub(crate) fn read_block(&self, cells: Range<usize>, out: &mut RawBlock) -> Result<(), ReaderError> {
        self.check_range(&cells)?;
        out.indptr.clear();
        out.indices.clear();
        out.data.clear();
        out.indptr.push(0);
        if cells.is_empty() {
            return Ok(());
        }
        let (start, n) = (cells.start, cells.len());
        let obj = || format!("{}/indptr", self.matrix);
        let ptr =
            h5::read_ints(&self.indptr, self.indptr_kind, start..cells.end + 1).ctx(&self.path, &obj())?;
        let nnz = self.nnz as i128;
        let bad = |cell: usize, detail: String| ReaderError::BadIndptr {
            path: self.path.clone(),
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

        let indices_obj = || format!("{}/indices", self.matrix);
        match h5::read_indices(&self.indices, self.indices_kind, s..e, self.n_file_cols)
            .ctx(&self.path, &indices_obj())?
        {
            Ok(v) => out.indices = v,
            Err(b) => {
                return Err(ReaderError::IndexOutOfRange {
                    path: self.path.clone(),
                    object: indices_obj(),
                    cell: row_of(&out.indptr, b.pos),
                    index: b.value,
                    n_genes: self.n_file_cols,
                })
            }
        }
        let data_obj = || format!("{}/data", self.matrix);
        match h5::read_values(&self.data, self.data_kind, s..e).ctx(&self.path, &data_obj())? {
            Ok(v) => out.data = v,
            Err(b) => {
                return Err(ReaderError::InvalidValue {
                    path: self.path.clone(),
                    object: data_obj(),
                    cell: row_of(&out.indptr, b.pos),
                    value: b.value,
                })
            }
        }
        out.canonicalize(self.col_filter.as_deref());
        Ok(())
    }
}

/// Applies the 10x feature-type filter: returns the column map (if any
/// column is left out), the kept gene names and ids.
#[allow(clippy::type_complexity)]
fn filter_features(
    layout: &Layout,
    path: &Path,
    options: &OpenOptions,
) -> Result<(Option<Vec<u32>>, Vec<String>, Option<Vec<String>>), ReaderError> {
    let (Some(types), Some(wanted)) = (&layout.feature_types, &options.feature_type) else {
        return Ok((None, layout.genes.clone(), layout.gene_ids.clone()));
    };
    if types.iter().all(|t| t == wanted) {
        return Ok((None, layout.genes.clone(), layout.gene_ids.clone()));
    }
    let mut map = vec![NONE; types.len()];
    let mut next = 0u32;
    for (c, t) in types.iter().enumerate() {
        if t == wanted {
            map[c] = next;
            next += 1;
        }
    }
    if next == 0 {
        let mut found: Vec<String> = types.clone();
        found.sort();
        found.dedup();
        return Err(ReaderError::NoFeatures {
            path: path.to_owned(),
            object: format!("/{}/features/feature_type", layout.matrix),
            wanted: wanted.clone(),
            found,
        });
    }
    let keep = |v: &Vec<String>| -> Vec<String> {
        v.iter()
            .zip(&map)
            .filter(|(_, &m)| m != NONE)
            .map(|(s, _)| s.clone())
            .collect()
    };
    Ok((
        Some(map.clone()),
        keep(&layout.genes),
        layout.gene_ids.as_ref().map(keep),
    ))
}

fn detect(file: &hdf5::File, path: &Path, options: &OpenOptions) -> Result<Layout, ReaderError> {
    if h5::member(file, "matrix") == Member::Group && h5::member(file, "matrix/indptr") == Member::Dataset {
        return tenx::layout_v3(file, path, options);
    }
    let anndata = ["X", "obs", "var", "raw", "layers"]
        .iter()
        .any(|m| h5::member(file, m) != Member::Missing);
    if anndata {
        return anndata::layout(file, path, &options.matrix);
    }
    tenx::layout_v2(file, path, options)
}

/// A block of consecutive cells in CSR form with canonical rows; buffers are
/// reused from read to read.
#[derive(Debug, Default)]
pub(crate) struct RawBlock {
    /// Row pointers relative to the block, `n_rows + 1` entries.
    pub(crate) indptr: Vec<usize>,
    /// Presented column of each value.
    pub(crate) indices: Vec<u32>,
    /// Values (raw counts as f32).
    pub(crate) data: Vec<f32>,
    scratch: Vec<(u32, f32)>,
}

impl RawBlock {
    pub(crate) fn n_rows(&self) -> usize {
        self.indptr.len() - 1
    }

    #[inline]
    pub(crate) fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (s, e) = (self.indptr[r], self.indptr[r + 1]);
        (&self.indices[s..e], &self.data[s..e])
    }

    fn into_csr(self, n_cols: usize) -> CsrMatrix {
        CsrMatrix::new(n_cols, self.indptr, self.indices, self.data)
            .expect("canonical rows satisfy the CSR invariants (a reader bug otherwise)")
    }

    /// In one pass, in place: maps file columns through `filter` (dropping
    /// unmapped ones), sorts rows whose columns do not strictly increase and
    /// sums repeated columns. Sorted rows (the normal case) are only copied.
    pub(crate) fn canonicalize(&mut self, filter: Option<&[u32]>) {
        let n = self.n_rows();
        let mut w = 0usize;
        let mut s = 0usize;
        for r in 0..n {
            let e = self.indptr[r + 1];
            let sorted = self.indices[s..e].windows(2).all(|p| p[0] < p[1]);
            if sorted {
                match filter {
                    None => {
                        if w != s {
                            self.indices.copy_within(s..e, w);
                            self.data.copy_within(s..e, w);
                        }
                        w += e - s;
                    }
                    Some(map) => {
                        for k in s..e {
                            let c = map[self.indices[k] as usize];
                            if c != NONE {
                                self.indices[w] = c;
                                self.data[w] = self.data[k];
                                w += 1;
                            }
                        }
                    }
                }
            } else {
                self.scratch.clear();
                for k in s..e {
                    let c = filter.map_or(self.indices[k], |m| m[self.indices[k] as usize]);
                    if c != NONE {
                        self.scratch.push((c, self.data[k]));
                    }
                }
                // Stable, so repeated columns are summed in file order.
                self.scratch.sort_by_key(|p| p.0);
                let row_start = w;
                for &(c, v) in &self.scratch {
                    if w > row_start && self.indices[w - 1] == c {
                        self.data[w - 1] += v;
                    } else {
                        self.indices[w] = c;
                        self.data[w] = v;
                        w += 1;
                    }
                }
            }
            self.indptr[r + 1] = w;
            s = e;
        }
        self.indices.truncate(w);
        self.data.truncate(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(indptr: Vec<usize>, indices: Vec<u32>, data: Vec<f32>) -> RawBlock {
        RawBlock {
            indptr,
            indices,
            data,
            scratch: Vec::new(),
        }
    }

    #[test]
    fn canonicalize_sorts_sums_and_filters() {
        let mut b = block(
            vec![0, 3, 3, 6],
            vec![2, 0, 2, 0, 1, 3],
            vec![1., 2., 3., 4., 5., 6.],
        );
        b.canonicalize(None);
        assert_eq!(b.indptr, vec![0, 2, 2, 5]);
        assert_eq!(b.indices, vec![0, 2, 0, 1, 3]);
        assert_eq!(b.data, vec![2., 4., 4., 5., 6.]);

        // Keep file columns 1 and 3 as presented columns 0 and 1.
        let map = [NONE, 0, NONE, 1];
        let mut b = block(vec![0, 3, 5], vec![0, 1, 3, 3, 1], vec![1., 2., 3., 4., 5.]);
        b.canonicalize(Some(&map));
        assert_eq!(b.indptr, vec![0, 2, 4]);
        assert_eq!(b.indices, vec![0, 1, 0, 1]);
        assert_eq!(b.data, vec![2., 3., 5., 4.]);
    }
}
