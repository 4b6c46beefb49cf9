//! One opened input file: format detection, the matrix's arrays, gene and
//! cell names, and validated contiguous reads of raw counts.

use std::ops::Range;
use std::path::{Path, PathBuf};

use inmf_learner::CsrMatrix;

use crate::error::ReaderError;
use crate::formats::arrays::{Outer, SparseArrays};
use crate::formats::chunks::RawChunks;
use crate::formats::csc::CscStore;
use crate::formats::dense::DenseStore;
use crate::formats::h5::{self, Member};
use crate::formats::names::make_unique;
use crate::formats::obs::{self, ObsColumn, ObsLayout, ObsStore, ObsValues};
use crate::formats::{anndata, liger, loom, tenx};

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
/// "Gene Expression", every genome, format-detected prescaling, the system
/// temporary directory, dataset name = the file name without its extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// Which matrix to read: AnnData `X`, `raw/X` or `layers/<name>`; loom
    /// `matrix` or `layers/<name>`. 10x and LIGER files have only
    /// [`MatrixLocation::X`]; asking them for another is an error.
    pub matrix: MatrixLocation,
    /// 10x files: keep only features of this `feature_type` (default
    /// `Some("Gene Expression")`); `None` keeps all features. Ignored for
    /// other formats.
    pub feature_type: Option<String>,
    /// 10x files holding several genomes: the genome to read. Cell Ranger
    /// 2 keeps one group per genome (the option is required when there are
    /// several); Cell Ranger ≥ 3 files keep only features of this
    /// `features/genome`. A file of a single genome is read whole whatever
    /// this names ([`Dataset::notes`] then says so). Default `None`: the
    /// only genome (v2), all features (v3).
    pub genome: Option<String>,
    /// Whether the input holds already normalized and scaled values
    /// (`is_prescaled`): `None` (default) detects it (LIGER files with
    /// `scaleDataSparse/`, 10x-layout files named `*_scaleData.h5`);
    /// `Some(true)` forces it for any file; `Some(false)` reads a LIGER
    /// file's raw counts (`matrix/`) instead of its scaled data.
    pub prescaled: Option<bool>,
    /// Directory for temporary files (the CSR copy of a CSC matrix).
    /// Default `None`: the system's (`TMPDIR`, else `/tmp`).
    pub temp_dir: Option<PathBuf>,
    /// Name of the dataset in reports and outputs (default: the file stem).
    pub name: Option<String>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            matrix: MatrixLocation::X,
            feature_type: Some("Gene Expression".into()),
            genome: None,
            prescaled: None,
            temp_dir: None,
            name: None,
        }
    }
}

/// The detected file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// AnnData .h5ad: matrix as CSR, CSC or dense; dataframes of anndata
    /// ≥ 0.7 (groups) or older (compound datasets).
    AnnData,
    /// 10x Genomics .h5 of Cell Ranger ≥ 3 (`matrix/`, `features/`).
    TenXV3,
    /// 10x Genomics .h5 of Cell Ranger 2 (one group per genome).
    TenXV2,
    /// loom (`/matrix` genes × cells, `row_attrs/`, `col_attrs/`).
    Loom,
    /// LIGER .h5 written by rliger, read from its `scaleDataSparse/`
    /// (already normalized and scaled).
    Liger,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::AnnData => "AnnData .h5ad",
            Format::TenXV3 => "10x Genomics .h5 (Cell Ranger >= 3)",
            Format::TenXV2 => "10x Genomics .h5 (Cell Ranger 2)",
            Format::Loom => "loom",
            Format::Liger => "LIGER .h5 (rliger scaleDataSparse)",
        })
    }
}

/// How the count matrix is stored in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Storage {
    /// Compressed rows of cells in this group (AnnData CSR; 10x and LIGER
    /// CSC genes × cells, which is the same layout).
    Csr(String),
    /// AnnData CSC (compressed gene columns) in this group.
    Csc(String),
    /// A 2-d dataset; genes along the first axis for loom.
    Dense { name: String, genes_first: bool },
}

/// Where cell names are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NameSource {
    /// A 1-d string dataset.
    Strings(String),
    /// A string field of a compound dataset (AnnData < 0.7 `obs`).
    Compound { dataset: String, field: String },
}

impl NameSource {
    fn object(&self) -> String {
        match self {
            NameSource::Strings(d) => format!("/{d}"),
            NameSource::Compound { dataset, field } => format!("/{dataset} (field `{field}`)"),
        }
    }
}

/// Where a format keeps things; produced by the format modules.
#[derive(Debug)]
pub(crate) struct Layout {
    pub(crate) format: Format,
    pub(crate) storage: Storage,
    /// Cells and file columns, if the format records them (else inferred).
    pub(crate) shape: Option<(usize, usize)>,
    /// One name per file column.
    pub(crate) genes: Vec<String>,
    /// Where the gene names come from (for `inmf inspect`).
    pub(crate) genes_object: String,
    /// One id per file column, if the format has them.
    pub(crate) gene_ids: Option<Vec<String>>,
    /// One feature type per file column (10x v3).
    pub(crate) feature_types: Option<Vec<String>>,
    /// One genome per file column (10x v3 `features/genome`).
    pub(crate) genomes: Option<Vec<String>>,
    pub(crate) cell_names: NameSource,
    /// Already normalized and scaled values.
    pub(crate) prescaled: bool,
    /// Where obs columns are.
    pub(crate) obs: ObsLayout,
}

const NONE: u32 = u32::MAX;

/// How the matrix is read.
#[derive(Debug)]
enum Store {
    Csr(SparseArrays),
    Csc(CscStore),
    Dense(DenseStore),
}

/// An opened input file (read-only): a cells × genes matrix however the
/// file stores it (CSR, CSC through a temporary CSR copy, dense by row or
/// column blocks), its gene names (made unique), cell names and obs
/// columns.
///
/// Reads of a contiguous run of cells validate as they go: row pointers
/// non-decreasing and within the stored values, column indices in range,
/// values finite and ≥ 0.
#[derive(Debug)]
pub struct Dataset {
    path: PathBuf,
    name: String,
    format: Format,
    matrix: String,
    storage: Storage,
    _file: hdf5::File,
    store: Store,
    n_cells: usize,
    nnz: usize,
    genes: Vec<String>,
    genes_object: String,
    gene_ids: Option<Vec<String>>,
    duplicates_renamed: usize,
    /// File column → presented column, or `NONE` (10x feature filters).
    col_filter: Option<Vec<u32>>,
    /// File columns left out by the feature filters, by feature type.
    features_dropped: Vec<(String, usize)>,
    /// Remarks for the user ([`Dataset::notes`]).
    notes: Vec<String>,
    prescaled: bool,
    cell_names: hdf5::Dataset,
    cell_names_source: NameSource,
    obs: Vec<(ObsColumn, ObsStore)>,
    /// The file's content fingerprint, once computed (`fingerprint.rs`).
    pub(crate) fingerprint: std::sync::OnceLock<String>,
}

/// Opens an input read-only, detecting its format from its content (not
/// its extension): AnnData .h5ad (`X`/`obs`/`var`; CSR, CSC or dense;
/// anndata < 0.7 compound dataframes too), 10x Genomics .h5 of Cell Ranger
/// ≥ 3 (`matrix/`) or 2 (genome groups), loom (`matrix`, `row_attrs/`,
/// `col_attrs/`), LIGER .h5 (`scaleDataSparse/`, prescaled).
///
/// Checks the structure up front (encoding, data types, array lengths,
/// the ends of `indptr`); values are validated as cells are read. A CSC
/// matrix is converted to a temporary CSR copy on the first read.
pub fn open(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Dataset, ReaderError> {
    Dataset::open(path.as_ref(), options)
}

impl Dataset {
    fn open(path: &Path, options: &OpenOptions) -> Result<Self, ReaderError> {
        let file = h5::open_read_only(path)?;
        let mut layout = detect(&file, path, options)?;
        if options.prescaled == Some(true) {
            layout.prescaled = true;
        }
        let n_file_cols = layout.genes.len();
        let (store, matrix, n_cells, nnz) = match &layout.storage {
            Storage::Csr(g) => {
                let a = SparseArrays::open(
                    &file,
                    path,
                    g,
                    layout.shape.map(|s| s.0),
                    n_file_cols,
                    Outer::Cells,
                )?;
                check_cols(path, &a.group, layout.shape, n_file_cols)?;
                let (m, n, z) = (a.group.clone(), a.n_outer, a.nnz);
                (Store::Csr(a), m, n, z)
            }
            Storage::Csc(g) => {
                let Some((cells, cols)) = layout.shape else {
                    return Err(ReaderError::MissingObject {
                        path: path.to_owned(),
                        object: format!("/{g}@shape"),
                        what: "the shape attribute of the CSC matrix (cells, genes)".into(),
                    });
                };
                let a = SparseArrays::open(&file, path, g, Some(cols), cells, Outer::Genes)?;
                check_cols(path, &a.group, layout.shape, n_file_cols)?;
                let temp = options.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
                let (m, z) = (a.group.clone(), a.nnz);
                (Store::Csc(CscStore::new(a, temp)), m, cells, z)
            }
            Storage::Dense { name, genes_first } => {
                let d = DenseStore::open(&file, path, name, n_file_cols, *genes_first)?;
                let (m, n, z) = (d.object.clone(), d.n_cells, d.n_cells.saturating_mul(d.n_genes));
                (Store::Dense(d), m, n, z)
            }
        };

        let cell_names_object = layout.cell_names.object();
        let cell_ds = match &layout.cell_names {
            NameSource::Strings(d) | NameSource::Compound { dataset: d, .. } => {
                h5::dataset(&file, d, path, &cell_names_object)?
            }
        };
        if cell_ds.size() != n_cells {
            return Err(ReaderError::BadShape {
                path: path.to_owned(),
                object: cell_names_object,
                expected: format!("{n_cells} cell names (one per cell of the matrix)"),
                found: format!("{} names", cell_ds.size()),
            });
        }

        let Filtered {
            map: col_filter,
            mut genes,
            gene_ids,
            dropped: features_dropped,
            note,
        } = filter_features(&layout, path, options)?;
        // Cell Ranger 2: a single genome group is read whatever the option names.
        let v2_note = match (&layout.storage, &options.genome) {
            (Storage::Csr(g), Some(w)) if layout.format == Format::TenXV2 && g != w => {
                Some(single_genome_note(g, w))
            }
            _ => None,
        };
        let notes: Vec<String> = note.into_iter().chain(v2_note).collect();
        let duplicates_renamed = make_unique(&mut genes);
        let name = options.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .map_or_else(|| "dataset".into(), |s| s.to_string_lossy().into_owned())
        });
        let obs = obs::discover(&file, path, &layout.obs, n_cells);
        Ok(Self {
            path: path.to_owned(),
            name,
            format: layout.format,
            matrix,
            storage: layout.storage,
            _file: file,
            store,
            n_cells,
            nnz,
            genes,
            genes_object: layout.genes_object,
            gene_ids,
            duplicates_renamed,
            col_filter,
            features_dropped,
            notes,
            prescaled: layout.prescaled,
            cell_names: cell_ds,
            cell_names_source: layout.cell_names,
            obs,
            fingerprint: std::sync::OnceLock::new(),
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

    /// HDF5 path of the matrix read (e.g. `/X`, `/raw/X`, `/matrix`,
    /// `/scaleDataSparse`).
    pub fn matrix_object(&self) -> &str {
        &self.matrix
    }

    /// Whether the values are already normalized and scaled (LIGER
    /// `scaleDataSparse/`, `*_scaleData.h5`, or [`OpenOptions::prescaled`]):
    /// preprocessing then passes them through unchanged (no library-size
    /// normalization, no gene selection over them, scale factors 1) and a
    /// source serves them as stored.
    pub fn is_prescaled(&self) -> bool {
        self.prescaled
    }

    /// Number of cells in the file.
    pub fn n_cells(&self) -> usize {
        self.n_cells
    }

    /// Number of genes presented (after the 10x feature filters).
    pub fn n_genes(&self) -> usize {
        self.genes.len()
    }

    /// Number of stored values of the whole matrix (all features; cells ×
    /// genes for a dense matrix).
    pub fn nnz(&self) -> usize {
        self.nnz
    }

    /// The direct chunk readers of the matrix's `indices` and `data`, when
    /// the matrix is stored by cell and both arrays' chunks are decoded by
    /// this crate ([`chunks`](super::chunks)).
    pub(crate) fn raw_chunks(&self) -> Option<[&RawChunks; 2]> {
        match &self.store {
            Store::Csr(a) => Some([a.indices_chunks.as_ref()?, a.data_chunks.as_ref()?]),
            _ => None,
        }
    }

    /// Gene names of the presented columns, made unique scanpy-style
    /// (`name`, `name-1`, `name-2`, ...).
    pub fn gene_names(&self) -> &[String] {
        &self.genes
    }

    /// Gene ids of the presented columns where the file has them (10x
    /// `features/id`, Cell Ranger 2 `genes`, AnnData `var/gene_ids`, loom
    /// `row_attrs/Accession`), as stored (not made unique).
    pub fn gene_ids(&self) -> Option<&[String]> {
        self.gene_ids.as_deref()
    }

    /// How many gene names were renamed to make them unique.
    pub fn duplicate_genes_renamed(&self) -> usize {
        self.duplicates_renamed
    }

    /// The categorical and string columns of the cells' dataframe (AnnData
    /// `obs` ≥ 0.7, loom `col_attrs`), in the file's column order. Numeric
    /// columns and columns that do not match the cells are not listed.
    pub fn obs_columns(&self) -> Vec<&ObsColumn> {
        self.obs.iter().map(|(c, _)| c).collect()
    }

    /// Values of obs column `name` for cells `cells` (file indices):
    /// strings, or category codes (−1 = missing) into the categories of
    /// [`Dataset::obs_columns`]. One read of the range.
    pub fn read_obs_column(&self, name: &str, cells: Range<usize>) -> Result<ObsValues, ReaderError> {
        self.check_range(&cells)?;
        let Some((col, store)) = self.obs.iter().find(|(c, _)| c.name == name) else {
            return Err(ReaderError::MissingObject {
                path: self.path.clone(),
                object: format!("obs column {name:?}"),
                what: format!(
                    "a categorical or string column of the cells (available: {})",
                    self.obs
                        .iter()
                        .map(|(c, _)| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        };
        store.read(&self.path, col, cells)
    }

    /// Raw counts (or prescaled values) of cells `cells` (file indices) as
    /// a CSR block over the presented genes, columns strictly increasing in
    /// each row (unsorted rows are sorted, repeated columns summed, as
    /// scipy does).
    pub fn read_cells(&self, cells: Range<usize>) -> Result<CsrMatrix, ReaderError> {
        let mut b = RawBlock::default();
        self.read_block(cells, &mut b)?;
        Ok(b.into_csr(self.n_genes()))
    }

    /// Names of cells `cells` (file indices): `obs` index, 10x barcodes,
    /// loom `CellID`.
    pub fn cell_names(&self, cells: Range<usize>) -> Result<Vec<String>, ReaderError> {
        self.check_range(&cells)?;
        if cells.is_empty() {
            return Ok(Vec::new());
        }
        let object = self.cell_names_source.object();
        match &self.cell_names_source {
            NameSource::Strings(_) => h5::read_strings(&self.cell_names, Some(cells), &self.path, &object),
            NameSource::Compound { field, dataset } => h5::read_compound_strings(
                &self.cell_names,
                field,
                Some(cells),
                &self.path,
                &format!("/{dataset}"),
            ),
        }
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
        match &self.store {
            Store::Csr(a) => a.read_rows(&self.path, cells, out)?,
            Store::Csc(c) => c.read(&self.path, cells, out)?,
            Store::Dense(d) => d.read(&self.path, cells, out)?,
        }
        out.canonicalize(self.col_filter.as_deref());
        Ok(())
    }

    /// What `inmf inspect` reports about the storage: the HDF5 datasets
    /// read for the matrix, with a one-line summary each.
    pub(crate) fn storage_summaries(&self) -> Vec<(String, String)> {
        match &self.store {
            Store::Csr(a) | Store::Csc(CscStore { arrays: a, .. }) => {
                [(&a.data, "data"), (&a.indices, "indices"), (&a.indptr, "indptr")]
                    .iter()
                    .map(|(d, n)| (format!("{}/{n}", a.group), h5::storage_summary(d)))
                    .collect()
            }
            Store::Dense(d) => vec![(d.object.clone(), h5::storage_summary(&d.ds))],
        }
    }

    /// How the matrix is stored, in words.
    pub(crate) fn storage_words(&self) -> String {
        match &self.storage {
            Storage::Csr(_) if self.format == Format::AnnData => {
                "CSR (cells x genes), read by runs of cells".into()
            }
            Storage::Csr(_) => "compressed by cell (CSC genes x cells), read by runs of cells".into(),
            Storage::Csc(_) => {
                let state = match &self.store {
                    Store::Csc(c) if c.converted() => "built",
                    _ => "built on the first read",
                };
                format!(
                    "CSC (compressed gene columns): converted once to a temporary CSR copy ({state}), \
                     then read by runs of cells"
                )
            }
            Storage::Dense {
                genes_first: true, ..
            } => "dense genes x cells, read by column blocks (non-zeros kept)".into(),
            Storage::Dense { .. } => "dense cells x genes, read by row blocks (non-zeros kept)".into(),
        }
    }

    /// Where the gene and cell names come from.
    pub(crate) fn name_objects(&self) -> (String, String) {
        (self.genes_object.clone(), self.cell_names_source.object())
    }

    /// Remarks on how the file was read that the user should see, e.g. that
    /// the genome option did not apply to this single-genome file.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Feature types left out by the 10x filters, with counts.
    pub(crate) fn features_dropped(&self) -> &[(String, usize)] {
        &self.features_dropped
    }
}

/// Checks the shape's column count against the gene names.
fn check_cols(
    path: &Path,
    group: &str,
    shape: Option<(usize, usize)>,
    n_file_cols: usize,
) -> Result<(), ReaderError> {
    match shape {
        Some((_, cols)) if cols != n_file_cols => Err(ReaderError::BadShape {
            path: path.to_owned(),
            object: format!("{group} (shape)"),
            expected: format!("{n_file_cols} genes (the length of the gene names)"),
            found: format!("{cols} genes"),
        }),
        _ => Ok(()),
    }
}

/// The outcome of the 10x feature filters: the column map (if any column
/// is left out), the kept gene names and ids, what was left out, and a
/// remark when the genome option did not apply.
struct Filtered {
    map: Option<Vec<u32>>,
    genes: Vec<String>,
    gene_ids: Option<Vec<String>>,
    dropped: Vec<(String, usize)>,
    note: Option<String>,
}

/// The distinct values of `v`, sorted.
fn distinct(v: &[String]) -> Vec<String> {
    let mut d = v.to_vec();
    d.sort();
    d.dedup();
    d
}

/// The remark recorded when `--genome` names another genome than the only
/// one of a file, which is then read as it is.
pub(crate) fn single_genome_note(present: &str, wanted: &str) -> String {
    format!(
        "the file holds the single genome \"{present}\", not \"{wanted}\"; it is read as it is \
         (the genome option chooses among the genomes of files that hold several)"
    )
}

/// Applies the 10x feature-type and genome filters. The genome filter
/// applies only to a file whose features belong to several genomes; a
/// single-genome file is read whole (with a remark if the option named
/// another genome).
fn filter_features(layout: &Layout, path: &Path, options: &OpenOptions) -> Result<Filtered, ReaderError> {
    let n = layout.genes.len();
    let group = match &layout.storage {
        Storage::Csr(g) | Storage::Csc(g) => g.clone(),
        Storage::Dense { name, .. } => name.clone(),
    };
    let by_type = match (&layout.feature_types, &options.feature_type) {
        (Some(types), Some(wanted)) => Some((types, wanted)),
        _ => None,
    };
    if let Some((types, wanted)) = by_type {
        if !types.iter().any(|t| t == wanted) && n > 0 {
            return Err(ReaderError::NoFeatures {
                path: path.to_owned(),
                object: format!("/{group}/features/feature_type"),
                wanted: wanted.clone(),
                found: distinct(types),
            });
        }
    }
    let mut note = None;
    let by_genome = match (&layout.genomes, &options.genome) {
        (Some(genomes), Some(wanted)) => {
            let present = distinct(genomes);
            if present.len() > 1 {
                if !present.contains(wanted) {
                    return Err(ReaderError::NoGenome {
                        path: path.to_owned(),
                        object: format!("/{group}/features/genome"),
                        wanted: Some(wanted.clone()),
                        found: present,
                    });
                }
                Some((genomes, wanted))
            } else {
                if let Some(only) = present.first().filter(|g| *g != wanted) {
                    note = Some(single_genome_note(only, wanted));
                }
                None
            }
        }
        _ => None,
    };
    let keep: Vec<bool> = (0..n)
        .map(|c| by_type.is_none_or(|(t, w)| &t[c] == w) && by_genome.is_none_or(|(g, w)| &g[c] == w))
        .collect();
    if keep.iter().all(|&k| k) {
        return Ok(Filtered {
            map: None,
            genes: layout.genes.clone(),
            gene_ids: layout.gene_ids.clone(),
            dropped: Vec::new(),
            note,
        });
    }
    if !keep.iter().any(|&k| k) {
        // The type and the genome asked for each exist (checked above), but
        // no feature has both.
        let wanted = match (by_type, by_genome) {
            (Some((_, t)), Some((_, g))) => format!("{t}\" and genome \"{g}"),
            (Some((_, t)), None) => t.clone(),
            (None, Some((_, g))) => format!("any\" and genome \"{g}"),
            (None, None) => "any".to_owned(),
        };
        return Err(ReaderError::NoFeatures {
            path: path.to_owned(),
            object: format!("/{group}/features/feature_type"),
            wanted,
            found: layout.feature_types.as_deref().map(distinct).unwrap_or_default(),
        });
    }
    let mut map = vec![NONE; n];
    let mut next = 0u32;
    let mut dropped: Vec<(String, usize)> = Vec::new();
    for c in 0..n {
        if keep[c] {
            map[c] = next;
            next += 1;
        } else {
            let t = match (by_type, by_genome) {
                (Some((t, w)), _) if &t[c] != w => t[c].clone(),
                (_, Some((g, _))) => format!("genome {}", g[c]),
                _ => "other".to_owned(),
            };
            match dropped.iter_mut().find(|(k, _)| *k == t) {
                Some(e) => e.1 += 1,
                None => dropped.push((t, 1)),
            }
        }
    }
    let kept = |v: &Vec<String>| -> Vec<String> {
        v.iter()
            .zip(&keep)
            .filter(|(_, &k)| k)
            .map(|(s, _)| s.clone())
            .collect()
    };
    Ok(Filtered {
        map: Some(map),
        genes: kept(&layout.genes),
        gene_ids: layout.gene_ids.as_ref().map(kept),
        dropped,
        note,
    })
}

fn detect(file: &hdf5::File, path: &Path, options: &OpenOptions) -> Result<Layout, ReaderError> {
    if options.prescaled != Some(false) && liger::is_liger(file) {
        return liger::layout(file, path, options);
    }
    if h5::member(file, "matrix") == Member::Group && h5::member(file, "matrix/indptr") == Member::Dataset {
        let mut l = tenx::layout_v3(file, path, options)?;
        l.prescaled = liger::named_scaled(path);
        return Ok(l);
    }
    if loom::is_loom(file) {
        return loom::layout(file, path, &options.matrix);
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
