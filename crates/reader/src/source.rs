//! [`Hdf5Source`]: the learner's [`CellSource`] over opened, preprocessed
//! HDF5 inputs. A read of kept cells k0..k1 is one contiguous read of the
//! file cells spanning them (dropped cells inside are skipped), decoded
//! straight to x̂ = x / nUMI / s_g over the model genes (docs/algorithms.md §9).

use std::ops::Range;
use std::path::{Path, PathBuf};

use inmf_learner::{CellSource, CsrMatrix};

use crate::cache::{
    build_entry, cache_key, cache_key_of, index_bytes_for, open_entry, CacheMeta, CacheReader, EntryProblem,
    OpenError, SharedBlocks, CACHE_FORMAT_VERSION, DEFAULT_KEEP_MAPPED_BYTES,
};
use crate::error::ReaderError;
use crate::formats::dataset::{Dataset, RawBlock};
use crate::formats::names::make_unique;
use crate::preprocess::cellmap::CellMap;
use crate::preprocess::params::CheckedPreprocessParams;
use crate::preprocess::report::PreprocessReport;
use crate::preprocess::stats::numi;
use crate::preprocess::{preprocess, PassSeconds, Prepared};

const NONE: u32 = u32::MAX;

/// One dataset of the run with what preprocessing learned about it.
#[derive(Debug)]
struct Part {
    file: Dataset,
    cells: CellMap,
    /// s_g per model gene.
    scale: Vec<f64>,
    /// 1/s_g per model gene (0 where s_g = 0, so x̂ = 0 there).
    inv_scale: Vec<f64>,
    /// File column of each model gene (None: absent, reads as zero).
    model_cols: Vec<Option<usize>>,
    /// Presented column → model column, or `NONE`.
    col_map: Vec<u32>,
    /// Whether `col_map` increases along presented columns (then decoded
    /// rows come out sorted without sorting).
    monotone: bool,
    block: RawBlock,
    scratch: Vec<(u32, f32)>,
}

/// Preprocessed HDF5 datasets as a [`CellSource`]: cell k of dataset i is
/// the k-th cell with non-zero counts of file i; `read_cells` returns x̂
/// (cells × model genes, f32, columns sorted) with
/// x̂_gc = x_gc / nUMI_c / s_g, nUMI_c = Σ over all the file's genes
/// (all presented genes: after a 10x feature-type filter, antibody or
/// other feature counts are not part of the library size),
/// s_g = sqrt(Σ_c x̃_gc² / (n − 1)) (0 where s_g = 0).
///
/// Owns every HDF5 handle of the run and is `Send`, so it can move into
/// the reader thread ([`crate::spawn_reader`]).
#[derive(Debug)]
pub struct Hdf5Source {
    parts: Vec<Part>,
    genes: Vec<String>,
    names: Vec<String>,
    report: PreprocessReport,
    /// When set, preprocessed blocks are read from this cache entry
    /// instead of being decoded from the inputs.
    cache: Option<CacheReader>,
    /// Cache entries up to this many bytes of non-zeros stay mapped whole.
    keep_mapped: u64,
    /// The preprocessing passes' wall seconds (none when served from a
    /// cache entry found complete).
    pass_seconds: Option<PassSeconds>,
}

/// The outcome of [`Hdf5Source::from_cache`].
#[derive(Debug)]
pub enum CacheLookup {
    /// A complete entry for these inputs and parameters: the source serves
    /// blocks from it (no preprocessing pass over the inputs was needed).
    Hit(Box<Hdf5Source>, PathBuf),
    /// No entry: the datasets are handed back for [`Hdf5Source::preprocess`].
    Miss(Vec<Dataset>),
    /// The entry of these inputs and parameters (its directory) was
    /// unusable for the reason given and has been removed: a miss, to be
    /// built again.
    Discarded(Vec<Dataset>, PathBuf, EntryProblem),
}

impl Hdf5Source {
    /// Preprocesses `datasets` (docs/algorithms.md §9; one streaming pass per
    /// dataset) and returns the source ready to serve mini-batches. Dataset
    /// names are made unique (`name`, `name-1`, ...).
    pub fn preprocess(datasets: Vec<Dataset>, params: &CheckedPreprocessParams) -> Result<Self, ReaderError> {
        Self::preprocess_passes(datasets, params, true)
    }

    /// [`preprocess`](Self::preprocess) for a source that builds a cache
    /// entry next ([`build_cache`](Self::build_cache)): the cells with
    /// counts but none in the selected genes are not looked for in a pass of
    /// their own; the build drops them as the rows that come out empty, and
    /// only then are [`CellSource::n_cells`] and the report final. Until the
    /// build, blocks hold those cells as empty rows.
    pub fn preprocess_for_cache(
        datasets: Vec<Dataset>,
        params: &CheckedPreprocessParams,
    ) -> Result<Self, ReaderError> {
        Self::preprocess_passes(datasets, params, false)
    }

    fn preprocess_passes(
        datasets: Vec<Dataset>,
        params: &CheckedPreprocessParams,
        cells_pass: bool,
    ) -> Result<Self, ReaderError> {
        let mut names: Vec<String> = datasets.iter().map(|d| d.name().to_owned()).collect();
        make_unique(&mut names);
        let (genes, prepared, report, seconds) = preprocess(&datasets, &names, params, cells_pass)?;
        let mut source = Self::assemble(datasets, names, genes, prepared, report);
        source.pass_seconds = Some(seconds);
        Ok(source)
    }

    /// Looks for a preprocessed cache entry of these inputs and parameters
    /// under `cache_root` (see the `cache` module) and, if a complete one
    /// exists, returns a source serving from it without any pass over the
    /// inputs. The entry's files are checked against the sizes and
    /// checksums it records first; a damaged, incomplete or other-version
    /// entry is removed ([`CacheLookup::Discarded`]). Dataset names are the
    /// datasets' own (made unique as [`preprocess`](Self::preprocess) does),
    /// never the entry's.
    pub fn from_cache(
        datasets: Vec<Dataset>,
        params: &CheckedPreprocessParams,
        cache_root: &Path,
    ) -> Result<CacheLookup, ReaderError> {
        let key = cache_key(&datasets, params)?;
        let dir = cache_root.join(&key);
        let found = match std::fs::symlink_metadata(&dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CacheLookup::Miss(datasets)),
            Err(e) => {
                return Err(ReaderError::Cache {
                    path: dir,
                    message: e.to_string(),
                })
            }
        };
        let entry = match open_entry(&dir, &key, true) {
            Ok(entry) if entry.meta.n_total.len() == datasets.len() => entry,
            Ok(_) => {
                let problem = EntryProblem::Damaged("meta.json: another number of datasets".into());
                return discard(datasets, dir, found.is_dir(), problem);
            }
            Err(OpenError::Unusable(problem)) => return discard(datasets, dir, found.is_dir(), problem),
            Err(OpenError::Env(e)) => return Err(e),
        };
        let mut names: Vec<String> = datasets.iter().map(|d| d.name().to_owned()).collect();
        make_unique(&mut names);
        let mut report = entry.meta.report;
        for ((r, name), d) in report.datasets.iter_mut().zip(&names).zip(&datasets) {
            r.name = name.clone();
            r.path = d.path().to_owned();
        }
        let prepared = entry
            .per_dataset
            .into_iter()
            .zip(&entry.meta.n_total)
            .map(|((dropped, model_cols, scale), &n)| Prepared {
                cells: CellMap::new(n, dropped),
                model_cols,
                scale,
            })
            .collect();
        let mut src = Self::assemble(datasets, names, entry.meta.genes, prepared, report);
        src.cache = Some(entry.reader);
        Ok(CacheLookup::Hit(Box::new(src), dir))
    }

    /// Writes this source's preprocessed cells into a cache entry under
    /// `cache_root` (one pass over the inputs; `params` must be those the
    /// source was preprocessed with) and serves blocks from it afterwards.
    pub fn build_cache(
        &mut self,
        params: &CheckedPreprocessParams,
        cache_root: &Path,
    ) -> Result<PathBuf, ReaderError> {
        let files: Vec<&Dataset> = self.parts.iter().map(|p| &p.file).collect();
        let key = cache_key_of(&files, params)?;
        let mut report = self.report.clone();
        for d in &mut report.datasets {
            // The entry serves any run of the same content: names and
            // paths are the using run's.
            d.name.clear();
            d.path = PathBuf::new();
        }
        let index_bytes = index_bytes_for(self.genes.len());
        let meta = CacheMeta {
            version: CACHE_FORMAT_VERSION,
            key: key.clone(),
            genes: self.genes.clone(),
            report,
            n_total: self.parts.iter().map(|p| p.cells.n_total()).collect(),
            index_bytes,
            files: Vec::new(),
            checksum: String::new(),
        };
        let per: Vec<_> = self
            .parts
            .iter()
            .map(|p| (p.cells.dropped().to_vec(), p.model_cols.clone(), p.scale.clone()))
            .collect();
        // At most every non-zero of the inputs, plus row pointers, norms,
        // dropped rows and the per-gene files.
        let size_hint: u64 = self
            .parts
            .iter()
            .map(|p| {
                let cells = p.cells.n_total() as u64;
                p.file.nnz() as u64 * (u64::from(index_bytes) + 4)
                    + (cells + 1) * 16
                    + per_gene_bytes(&self.genes)
            })
            .sum();
        self.cache = None;
        let (built, ours) = build_entry(&*self, cache_root, &meta, &per, size_hint)?;
        let entry = open_entry(&built, &key, !ours).map_err(|e| match e {
            OpenError::Env(e) => e,
            OpenError::Unusable(problem) if ours => ReaderError::Cache {
                path: built.clone(),
                message: format!("the entry just built cannot be opened: it {problem}"),
            },
            OpenError::Unusable(problem) => ReaderError::Cache {
                path: built.clone(),
                message: format!(
                    "the entry, completed by another run at the same time, {problem}; delete it and run again"
                ),
            },
        })?;
        // The build dropped the cells whose rows came out empty (see
        // [`preprocess_for_cache`](Self::preprocess_for_cache)): the cells
        // and counts are the entry's from now on.
        for ((part, (dropped, _, _)), (ours, theirs)) in self
            .parts
            .iter_mut()
            .zip(entry.per_dataset)
            .zip(self.report.datasets.iter_mut().zip(&entry.meta.report.datasets))
        {
            part.cells = CellMap::new(part.cells.n_total(), dropped);
            ours.cells_kept = theirs.cells_kept;
            ours.cells_no_model_counts = theirs.cells_no_model_counts;
        }
        let mut reader = entry.reader;
        reader.set_keep_mapped_limit(self.keep_mapped);
        self.cache = Some(reader);
        Ok(built)
    }

    fn assemble(
        datasets: Vec<Dataset>,
        names: Vec<String>,
        genes: Vec<String>,
        prepared: Vec<Prepared>,
        report: PreprocessReport,
    ) -> Self {
        let parts = datasets
            .into_iter()
            .zip(prepared)
            .map(|(file, p)| {
                let mut col_map = vec![NONE; file.n_genes()];
                for (m, c) in p.model_cols.iter().enumerate() {
                    if let Some(c) = *c {
                        col_map[c] = m as u32;
                    }
                }
                let mut last = None;
                let monotone = col_map.iter().filter(|&&m| m != NONE).all(|&m| {
                    let ok = last.is_none_or(|l| l < m);
                    last = Some(m);
                    ok
                });
                let inv_scale = p
                    .scale
                    .iter()
                    .map(|&s| if s > 0.0 { 1.0 / s } else { 0.0 })
                    .collect();
                Part {
                    file,
                    cells: p.cells,
                    scale: p.scale,
                    inv_scale,
                    model_cols: p.model_cols,
                    col_map,
                    monotone,
                    block: RawBlock::default(),
                    scratch: Vec::new(),
                }
            })
            .collect();
        Self {
            parts,
            genes,
            names,
            report,
            cache: None,
            keep_mapped: DEFAULT_KEEP_MAPPED_BYTES,
            pass_seconds: None,
        }
    }

    /// One read and decode of every input's stored matrix on all worker
    /// threads ([`decode_rate`](crate::decode_rate)).
    pub fn decode_rate(&self) -> Result<Option<crate::DecodeRate>, ReaderError> {
        crate::decode_rate(self.parts.iter().map(|p| &p.file))
    }

    /// Wall seconds of the preprocessing passes over the inputs, when this
    /// source ran them ([`Hdf5Source::preprocess`]).
    pub fn pass_seconds(&self) -> Option<PassSeconds> {
        self.pass_seconds
    }

    /// True when blocks are served from a preprocessed cache.
    pub fn is_cached(&self) -> bool {
        self.cache.is_some()
    }

    /// The model's genes, in column order.
    pub fn genes(&self) -> &[String] {
        &self.genes
    }

    /// The datasets' unique names, in input order.
    pub fn dataset_names(&self) -> &[String] {
        &self.names
    }

    /// The opened file of dataset `dataset` (path, format, gene ids, ...).
    /// Panics if `dataset` is out of range.
    pub fn dataset(&self, dataset: usize) -> &Dataset {
        &self.parts[dataset].file
    }

    /// scaleNotCenter's factors s_g of dataset `dataset`, one per model gene.
    /// Panics if `dataset` is out of range.
    pub fn scale_factors(&self, dataset: usize) -> &[f64] {
        &self.parts[dataset].scale
    }

    /// Kept-cell ↔ file-cell map of dataset `dataset`.
    /// Panics if `dataset` is out of range.
    pub fn cell_map(&self, dataset: usize) -> &CellMap {
        &self.parts[dataset].cells
    }

    /// What preprocessing did.
    pub fn report(&self) -> &PreprocessReport {
        &self.report
    }

    /// Names of kept cells `cells` of dataset `dataset` (for outputs).
    pub fn cell_names(&self, dataset: usize, cells: Range<usize>) -> Result<Vec<String>, ReaderError> {
        let part = self.part(dataset, &cells)?;
        let span = part.cells.original_span(cells);
        let mut names = part.file.cell_names(span.clone())?;
        if part.cells.dropped().is_empty() {
            return Ok(names);
        }
        let mut next = part.cells.first_dropped_from(span.start);
        let dropped = part.cells.dropped();
        let mut r = 0;
        names.retain(|_| {
            let o = span.start + r;
            r += 1;
            if next < dropped.len() && dropped[next] == o {
                next += 1;
                false
            } else {
                true
            }
        });
        Ok(names)
    }

    fn part(&self, dataset: usize, cells: &Range<usize>) -> Result<&Part, ReaderError> {
        let Some(part) = self.parts.get(dataset) else {
            return Err(ReaderError::BadRequest {
                path: Default::default(),
                range: cells.clone(),
                n_cells: 0,
            });
        };
        if cells.start > cells.end || cells.end > part.cells.n_kept() {
            return Err(ReaderError::BadRequest {
                path: part.file.path().to_owned(),
                range: cells.clone(),
                n_cells: part.cells.n_kept(),
            });
        }
        Ok(part)
    }

    /// Decodes kept cells `cells` of `dataset` and appends them to `out`.
    fn decode(&mut self, dataset: usize, cells: Range<usize>, out: &mut Out) -> Result<(), ReaderError> {
        self.part(dataset, &cells)?;
        let part = &mut self.parts[dataset];
        let (mut block, mut scratch) = (std::mem::take(&mut part.block), std::mem::take(&mut part.scratch));
        let done = part.decode(cells, out, &mut block, &mut scratch);
        (part.block, part.scratch) = (block, scratch);
        done
    }
}

thread_local! {
    /// A block reader's raw block and sort scratch ([`SharedBlocks`]).
    static SHARED_SCRATCH: std::cell::RefCell<(RawBlock, Vec<(u32, f32)>)> =
        std::cell::RefCell::new((RawBlock::default(), Vec::new()));
}

/// Blocks for an entry build, read from several threads at once, each with
/// its own buffers; the same values as [`CellSource::read_cells`].
impl SharedBlocks for Hdf5Source {
    fn n_cells(&self, dataset: usize) -> usize {
        self.parts[dataset].cells.n_kept()
    }

    fn block(&self, dataset: usize, cells: Range<usize>) -> Result<CsrMatrix, ReaderError> {
        let part = self.part(dataset, &cells)?;
        let mut out = Out {
            indptr: vec![0],
            indices: Vec::new(),
            data: Vec::new(),
        };
        SHARED_SCRATCH.with_borrow_mut(|(block, scratch)| part.decode(cells, &mut out, block, scratch))?;
        Ok(
            CsrMatrix::new(self.genes.len(), out.indptr, out.indices, out.data)
                .expect("decoded rows satisfy the CSR invariants (a reader bug otherwise)"),
        )
    }
}

impl Part {
    /// Decodes kept cells `cells` (within range) into `out`, reading the
    /// file into `block` (`scratch`: sort buffer).
    fn decode(
        &self,
        cells: Range<usize>,
        out: &mut Out,
        block: &mut RawBlock,
        scratch: &mut Vec<(u32, f32)>,
    ) -> Result<(), ReaderError> {
        let part = self;
        if cells.is_empty() {
            return Ok(());
        }
        let span = part.cells.original_span(cells.clone());
        part.file.read_block(span.clone(), block)?;
        let dropped = part.cells.dropped();
        let mut next = part.cells.first_dropped_from(span.start);
        let rows_before = out.indptr.len();
        for r in 0..block.n_rows() {
            let o = span.start + r;
            if next < dropped.len() && dropped[next] == o {
                next += 1;
                continue;
            }
            let (cols, vals) = block.row(r);
            // Prescaled inputs (LIGER scaled data) are already x̂ up to s_g = 1.
            let total = if part.file.is_prescaled() { 1.0 } else { numi(vals) };
            // A kept cell has nUMI > 0; guard anyway (a file changed under us).
            if total > 0.0 {
                if part.monotone {
                    for (&c, &v) in cols.iter().zip(vals) {
                        let m = part.col_map[c as usize];
                        if m != NONE {
                            let x = f64::from(v) / total * part.inv_scale[m as usize];
                            if x != 0.0 {
                                out.indices.push(m);
                                out.data.push(x as f32);
                            }
                        }
                    }
                } else {
                    scratch.clear();
                    for (&c, &v) in cols.iter().zip(vals) {
                        let m = part.col_map[c as usize];
                        if m != NONE {
                            let x = f64::from(v) / total * part.inv_scale[m as usize];
                            if x != 0.0 {
                                scratch.push((m, x as f32));
                            }
                        }
                    }
                    scratch.sort_unstable_by_key(|p| p.0);
                    out.indices.extend(scratch.iter().map(|p| p.0));
                    out.data.extend(scratch.iter().map(|p| p.1));
                }
            }
            out.indptr.push(out.data.len());
        }
        debug_assert_eq!(out.indptr.len() - rows_before, cells.len());
        Ok(())
    }
}

impl Hdf5Source {
    /// Keeps a cache entry whose non-zeros (column indices and values)
    /// take at most `bytes` mapped whole for the life of this source, so
    /// epochs after the first read it without filling page tables again;
    /// larger entries (and all with 0) are mapped one block at a time, so
    /// the resident set stays flat at any size. Mapped pages are the page
    /// cache's (clean, shared, reclaimable) but count in the resident set.
    /// Default [`DEFAULT_KEEP_MAPPED_BYTES`].
    pub fn keep_cache_mapped_up_to(&mut self, bytes: u64) {
        self.keep_mapped = bytes;
        if let Some(c) = &mut self.cache {
            c.set_keep_mapped_limit(bytes);
        }
    }

    /// Whether blocks are views of a cache entry mapped whole
    /// ([`keep_cache_mapped_up_to`](Self::keep_cache_mapped_up_to)).
    pub fn cache_kept_mapped(&self) -> bool {
        self.cache.as_ref().is_some_and(CacheReader::keeps_mapped)
    }

    /// Bytes of the non-zeros (column indices and values) of the cache
    /// entry this source reads, if it reads one.
    pub fn cache_nonzero_bytes(&self) -> Option<u64> {
        self.cache.as_ref().map(CacheReader::nonzero_bytes)
    }

    /// Maps (`true`, the default) or copies the non-zeros of cached blocks.
    #[cfg(test)]
    pub(crate) fn set_zero_copy(&mut self, on: bool) {
        if let Some(c) = &mut self.cache {
            c.set_zero_copy(on);
        }
    }

    fn decode_runs(
        &mut self,
        dataset: usize,
        runs: &[Range<usize>],
        spare: Option<CsrMatrix>,
    ) -> Result<CsrMatrix, ReaderError> {
        if self.cache.is_some() {
            for r in runs {
                self.part(dataset, r)?;
            }
        }
        let (mut indptr, mut indices, mut data) = spare.map(CsrMatrix::into_parts).unwrap_or_default();
        indptr.clear();
        indptr.push(0);
        if let Some(cache) = &mut self.cache {
            debug_assert_eq!(cache.n_genes(), self.genes.len());
            // The cache overwrites the old values in place (no zero-fill).
            return cache.read_runs(dataset, runs, (indptr, indices, data));
        }
        indices.clear();
        data.clear();
        let mut out = Out {
            indptr,
            indices,
            data,
        };
        for r in runs {
            self.decode(dataset, r.clone(), &mut out)?;
        }
        Ok(
            CsrMatrix::new(self.genes.len(), out.indptr, out.indices, out.data)
                .expect("decoded rows satisfy the CSR invariants (a reader bug otherwise)"),
        )
    }
}

/// Bytes of an entry's per-gene files (column map and scale factors) of one dataset.
fn per_gene_bytes(genes: &[String]) -> u64 {
    genes.len() as u64 * 16
}

/// Removes the unusable entry `dir` (a directory, or whatever else took its
/// name) so that it is built again.
fn discard(
    datasets: Vec<Dataset>,
    dir: PathBuf,
    is_dir: bool,
    problem: EntryProblem,
) -> Result<CacheLookup, ReaderError> {
    let removed = if is_dir {
        std::fs::remove_dir_all(&dir)
    } else {
        std::fs::remove_file(&dir)
    };
    match removed {
        Ok(()) => Ok(CacheLookup::Discarded(datasets, dir, problem)),
        // Another run removed it first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(CacheLookup::Discarded(datasets, dir, problem))
        }
        Err(error) => Err(ReaderError::CacheEntryUnremovable {
            path: dir,
            problem: problem.to_string(),
            error,
        }),
    }
}

/// CSR buffers being filled.
struct Out {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    data: Vec<f32>,
}

impl CellSource for Hdf5Source {
    type Error = ReaderError;

    fn n_datasets(&self) -> usize {
        self.parts.len()
    }

    /// Kept cells of `dataset`. Panics if `dataset` is out of range.
    fn n_cells(&self, dataset: usize) -> usize {
        self.parts[dataset].cells.n_kept()
    }

    fn n_genes(&self) -> usize {
        self.genes.len()
    }

    fn read_cells(&mut self, dataset: usize, cells: Range<usize>) -> Result<CsrMatrix, ReaderError> {
        self.decode_runs(dataset, std::slice::from_ref(&cells), None)
    }

    /// Decodes all runs into one block (no intermediate blocks to append).
    fn read_runs(&mut self, dataset: usize, runs: &[Range<usize>]) -> Result<CsrMatrix, ReaderError> {
        self.decode_runs(dataset, runs, None)
    }

    /// Decodes into `spare`'s buffers (no allocation once they are large enough).
    fn read_runs_reusing(
        &mut self,
        dataset: usize,
        runs: &[Range<usize>],
        spare: CsrMatrix,
    ) -> Result<CsrMatrix, ReaderError> {
        self.decode_runs(dataset, runs, Some(spare))
    }
}
