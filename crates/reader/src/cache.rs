//! The preprocessed cache: selected genes only, normalized and scaled
//! (x̂ of ALGORITHMS.md §9), so every epoch reads compact CSR instead of
//! decoding all raw genes of the inputs again.
//!
//! Layout of one cache entry, the directory `ROOT/<key>/`:
//! ```text
//! meta.json        format version, key, genes, dataset names, preprocessing report
//! <i>.indptr       u64 LE, kept cells + 1 row pointers of dataset i
//! <i>.indices      u16 LE (at most 65,536 genes) or u32 LE, model-gene column of every non-zero
//! <i>.data         f32 LE, x̂ of every non-zero
//! <i>.norms        f64 LE, ‖x̂_c‖² of every kept cell (`row_norm_sq` of its values)
//! <i>.scale        f64 LE, s_g per model gene
//! <i>.dropped      u64 LE, file rows of dropped (all-zero) cells
//! <i>.cols         i64 LE, file column of each model gene (−1: absent, reads as zero)
//! ```
//! Reads are positioned reads (`pread`) of the row pointers and cell norms;
//! the run's indices and values are memory-mapped, not copied (`mapped.rs`:
//! the whole files once for entries up to a size limit, else run by run;
//! copied with `pread` where mapping fails or on big-endian targets): no
//! library lock, no decoding. The stored cell norms give a block's
//! ‖X‖² (for the objective) without a pass over its values, and a reader
//! checks the rows of each cell once, not in every epoch (entry files
//! never change). Uncompressed on purpose: measured here,
//! reading it runs at memory speed, faster than any codec would decode
//! (ARCHITECTURE.md: 1 GB/s uncompressed vs 0.3–0.7 GB/s for LZF/deflate).
//!
//! The key is xxh3 of the cache format version, every input's content
//! fingerprint, matrix object, shape and gene names, and every
//! preprocessing parameter: any change gives a new entry. An entry is built
//! in a temporary directory and renamed into place only when complete, so a
//! half-written cache is never found.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use inmf_learner::{row_norm_sq, CellSource, CsrMatrix, SharedNonZeros};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::dataset::Dataset;
use crate::error::ReaderError;
use crate::fingerprint::fingerprint;
use crate::mapped::{MappedFiles, MappedRun};
use crate::params::{CheckedPreprocessParams, Combine};
use crate::report::PreprocessReport;

/// Entries whose non-zeros (indices and values) take at most this many
/// bytes stay mapped whole for the life of the reader (see `mapped.rs`):
/// 512 MiB: 6 bytes per non-zero with 16-bit indices, so about 450k cells
/// at 10 % non-zeros of 2,000 genes (220k at 20 %).
pub const DEFAULT_KEEP_MAPPED_BYTES: u64 = 512 << 20;

/// Bumped whenever the layout or the preprocessing it stores changes
/// (3: 16-bit column indices up to 65,536 genes).
pub const CACHE_FORMAT_VERSION: u32 = 3;

/// Bytes per stored column index for `n_genes` model genes: 2 up to
/// 65,536 genes, else 4. An entry then takes 6 instead of 8 bytes per
/// non-zero on disk, in the page cache and, mapped whole, in the resident
/// set (50k cells: 117 vs 155 MB, run peak RSS 175 vs 210 MB). Speed:
/// standalone kernels streaming X from memory gathered and scattered
/// ≈ 14 % faster; whole runs were the same within this machine's noise
/// (50k epochs 0.365 vs 0.360 s, medians of 21; 1M 1.22 vs 1.23 s).
pub(crate) fn index_bytes_for(n_genes: usize) -> u8 {
    if n_genes <= 1 << 16 {
        2
    } else {
        4
    }
}

/// Cells encoded per step when building (bounds the build's memory: a few
/// blocks are in flight between the reading and the writing thread). 8,192
/// gave the build the run's peak RSS (283–285 MB at 50k cells with 20 %
/// non-zeros, 216–223 MB at 1M); 4,096: 218–220 and 174–193 MB, at the
/// same preprocessing time; 2,048 gained nothing more.
const BUILD_BLOCK: usize = 4096;

/// What `meta.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct CacheMeta {
    pub version: u32,
    pub key: String,
    pub genes: Vec<String>,
    pub names: Vec<String>,
    pub report: PreprocessReport,
    /// Cells in each file (kept + dropped).
    pub n_total: Vec<usize>,
    /// Bytes per stored column index: 2 or 4 ([`index_bytes_for`]).
    pub index_bytes: u8,
}

/// The cache key of these inputs under these parameters.
pub(crate) fn cache_key(
    datasets: &[Dataset],
    params: &CheckedPreprocessParams,
) -> Result<String, ReaderError> {
    cache_key_of(&datasets.iter().collect::<Vec<_>>(), params)
}

/// [`cache_key`] over borrowed datasets.
pub(crate) fn cache_key_of(
    datasets: &[&Dataset],
    params: &CheckedPreprocessParams,
) -> Result<String, ReaderError> {
    let p = params.params();
    let mut h = Xxh3::new();
    let mut put = |s: &str| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    put(&format!("inmf-cache-v{CACHE_FORMAT_VERSION}"));
    for d in datasets {
        put(&fingerprint(d.path())?);
        put(d.matrix_object());
        put(&format!(
            "{}x{}:{} prescaled={}",
            d.n_cells(),
            d.n_genes(),
            d.nnz(),
            d.is_prescaled()
        ));
        for g in d.gene_names() {
            put(g);
        }
    }
    let s = &p.selection;
    put(&format!(
        "alpha={:x} var={:x} n={:?} combine={} min_present={:x} match={:?}",
        s.alpha.to_bits(),
        s.var_thresh.to_bits(),
        s.n_genes,
        match s.combine {
            Combine::Union => "union",
            Combine::Intersection => "intersection",
        },
        p.min_genes_present.to_bits(),
        p.match_genes
    ));
    match &p.genes {
        Some(g) => {
            put("given");
            for x in g {
                put(x);
            }
        }
        None => put("selected"),
    }
    Ok(format!("{:016x}", h.digest()))
}

fn cache_err(path: &Path, e: impl std::fmt::Display) -> ReaderError {
    ReaderError::Cache {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A failed read of an entry file: a file shorter than its row pointers
/// or cell count need is a damaged entry, anything else an I/O error.
fn read_err(path: &Path, e: std::io::Error) -> ReaderError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        cache_err(
            path,
            "a file of the entry is shorter than it must be (damaged entry: delete it)",
        )
    } else {
        cache_err(path, e)
    }
}

fn write_le<T: Copy, const N: usize>(
    path: &Path,
    values: &[T],
    to: impl Fn(T) -> [u8; N],
) -> Result<(), ReaderError> {
    let f = File::create(path).map_err(|e| cache_err(path, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    for &v in values {
        w.write_all(&to(v)).map_err(|e| cache_err(path, e))?;
    }
    w.flush().map_err(|e| cache_err(path, e))
}

fn read_le<T, const N: usize>(path: &Path, from: impl Fn([u8; N]) -> T) -> Result<Vec<T>, ReaderError> {
    let bytes = std::fs::read(path).map_err(|e| cache_err(path, e))?;
    if bytes.len() % N != 0 {
        return Err(cache_err(path, "truncated file"));
    }
    Ok(bytes
        .chunks_exact(N)
        .map(|c| from(c.try_into().expect("N bytes")))
        .collect())
}

/// One dataset's data files, open for positioned reads.
#[derive(Debug)]
struct CachedData {
    indptr: File,
    indices: File,
    data: File,
    norms: File,
    /// Non-zeros both the indices and the data file hold (their lengths
    /// at open over the entry sizes): a run beyond this is refused before
    /// it is mapped (reading a mapping past the end of a file kills the
    /// process).
    nnz_in_files: u64,
    /// Bytes per column index (2 or 4).
    index_bytes: u8,
    path: PathBuf,
}

impl CachedData {
    /// File `which`: 0 = row pointers, 1 = column indices, else values.
    fn file(&self, which: u8) -> &File {
        match which {
            0 => &self.indptr,
            1 => &self.indices,
            _ => &self.data,
        }
    }
}

/// An open cache entry serving preprocessed blocks.
#[derive(Debug)]
pub(crate) struct CacheReader {
    parts: Vec<CachedData>,
    n_genes: usize,
    bytes: Vec<u8>,
    /// Stored norms of the cells of the block being read.
    norms: Vec<f64>,
    /// Per dataset, one bit per kept cell: its row already passed the block
    /// checks (entry files never change, so once is enough).
    checked: Vec<Vec<u64>>,
    /// Map runs of non-zeros instead of copying them (see `mapped.rs`);
    /// turned off for the rest of the run if a mapping fails.
    zero_copy: bool,
    /// Map the entry's files whole, once, if its non-zeros take at most
    /// this many bytes; else map each run on its own.
    keep_mapped_limit: u64,
    /// Per dataset, its files mapped whole (once used, if kept mapped).
    whole: Vec<Option<MappedFiles>>,
}

/// Per dataset: dropped file rows, model → file column (None: absent),
/// scale factors s_g.
pub(crate) type DatasetPrep = (Vec<usize>, Vec<Option<usize>>, Vec<f64>);

/// Everything needed to assemble a source from a cache entry.
pub(crate) struct CacheEntry {
    pub meta: CacheMeta,
    /// Per dataset: dropped file rows, model → file column, scale factors.
    pub per_dataset: Vec<DatasetPrep>,
    pub reader: CacheReader,
}

/// Opens the complete entry `dir` (None if absent); errors if it is damaged.
pub(crate) fn open_entry(dir: &Path, key: &str) -> Result<Option<CacheEntry>, ReaderError> {
    let meta_path = dir.join("meta.json");
    if !meta_path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&meta_path).map_err(|e| cache_err(&meta_path, e))?;
    let meta: CacheMeta = serde_json::from_str(&text)
        .map_err(|e| cache_err(&meta_path, format!("{e} (damaged entry: delete it)")))?;
    if meta.version != CACHE_FORMAT_VERSION || meta.key != key {
        return Ok(None);
    }
    if !(meta.index_bytes == 4 || (meta.index_bytes == 2 && meta.genes.len() <= 1 << 16)) {
        return Err(cache_err(
            &meta_path,
            format!(
                "{}-byte column indices for {} genes (damaged entry: delete it)",
                meta.index_bytes,
                meta.genes.len()
            ),
        ));
    }
    let mut per_dataset = Vec::new();
    let mut parts = Vec::new();
    for i in 0..meta.names.len() {
        let f = |ext: &str| dir.join(format!("{i}.{ext}"));
        let dropped = read_le(&f("dropped"), |b: [u8; 8]| u64::from_le_bytes(b) as usize)?;
        let cols = read_le(&f("cols"), |b: [u8; 8]| {
            let c = i64::from_le_bytes(b);
            (c >= 0).then_some(c as usize)
        })?;
        let scale = read_le(&f("scale"), f64::from_le_bytes)?;
        if cols.len() != meta.genes.len() || scale.len() != meta.genes.len() {
            return Err(cache_err(
                dir,
                "gene count disagrees with meta.json (damaged entry: delete it)",
            ));
        }
        let open = |ext: &str| File::open(f(ext)).map_err(|e| cache_err(&f(ext), e));
        let (indices, data) = (open("indices")?, open("data")?);
        let len = |file: &File, ext: &str| {
            file.metadata()
                .map(|m| m.len())
                .map_err(|e| cache_err(&f(ext), e))
        };
        let nnz_in_files =
            (len(&indices, "indices")? / u64::from(meta.index_bytes)).min(len(&data, "data")? / 4);
        parts.push(CachedData {
            indptr: open("indptr")?,
            indices,
            data,
            norms: open("norms")?,
            nnz_in_files,
            index_bytes: meta.index_bytes,
            path: dir.to_path_buf(),
        });
        per_dataset.push((dropped, cols, scale));
    }
    let n_genes = meta.genes.len();
    let n_datasets = parts.len();
    Ok(Some(CacheEntry {
        meta,
        per_dataset,
        reader: CacheReader {
            parts,
            n_genes,
            bytes: Vec::new(),
            norms: Vec::new(),
            checked: vec![Vec::new(); n_datasets],
            zero_copy: true,
            keep_mapped_limit: DEFAULT_KEEP_MAPPED_BYTES,
            whole: vec![None; n_datasets],
        },
    }))
}

/// Complete entries under `root` written by another cache format version
/// (so never read by this one), with their sizes in bytes, sorted by path.
/// Entries that cannot be read are skipped: this is advice, not a check.
pub fn stale_entries(root: &Path) -> Vec<(PathBuf, u64)> {
    let Ok(dirs) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut stale: Vec<(PathBuf, u64)> = dirs
        .filter_map(|d| d.ok().map(|d| d.path()))
        .filter(|dir| {
            std::fs::read_to_string(dir.join("meta.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|m| m.get("version").and_then(serde_json::Value::as_u64))
                .is_some_and(|v| v != u64::from(CACHE_FORMAT_VERSION))
        })
        .map(|dir| {
            let bytes = std::fs::read_dir(&dir)
                .map(|files| {
                    files
                        .filter_map(|f| f.ok()?.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0);
            (dir, bytes)
        })
        .collect();
    stale.sort();
    stale
}

/// Builds the entry `root/<key>` by reading every kept cell of `source`
/// (through its raw path), then renames it into place.
pub(crate) fn build_entry<S>(
    source: &mut S,
    root: &Path,
    meta: &CacheMeta,
    per_dataset: &[DatasetPrep],
) -> Result<PathBuf, ReaderError>
where
    S: CellSource<Error = ReaderError> + Send,
{
    std::fs::create_dir_all(root).map_err(|e| cache_err(root, e))?;
    let final_dir = root.join(&meta.key);
    let tmp = root.join(format!(".tmp-{}-{}", meta.key, std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| cache_err(&tmp, e))?;
    // Blocks are read (decoded, normalized, scaled) on a scoped thread while
    // this one writes the previous ones: reading and writing overlap.
    let n_cells: Vec<usize> = (0..per_dataset.len()).map(|i| source.n_cells(i)).collect();
    let (blocks_tx, blocks) = std::sync::mpsc::sync_channel::<Result<CsrMatrix, ReaderError>>(1);
    let result = std::thread::scope(|scope| {
        let n_cells = &n_cells;
        scope.spawn(move || {
            for (i, &n) in n_cells.iter().enumerate() {
                for s in (0..n).step_by(BUILD_BLOCK) {
                    let x = source.read_cells(i, s..(s + BUILD_BLOCK).min(n));
                    let failed = x.is_err();
                    // A failed send: the writer stopped on an error of its own.
                    if blocks_tx.send(x).is_err() || failed {
                        return;
                    }
                }
            }
        });
        // Owns the receiver, so a writer error drops it (ending the scope
        // closure) and the reading thread's next send fails: no deadlock.
        let tmp_dir = tmp.as_path();
        let mut next_block = move || {
            blocks
                .recv()
                .unwrap_or_else(|_| Err(cache_err(tmp_dir, "the block reader stopped early")))
        };
        write_entry(tmp_dir, meta, per_dataset, n_cells, &mut next_block)
    });
    let result = result.and_then(|()| {
        if final_dir.exists() {
            // Another run built the same entry meanwhile; keep theirs.
            std::fs::remove_dir_all(&tmp).map_err(|e| cache_err(&tmp, e))
        } else {
            std::fs::rename(&tmp, &final_dir).map_err(|e| cache_err(&final_dir, e))
        }
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result.map(|()| final_dir)
}

/// Writes every dataset's files and meta.json into `tmp`, taking the
/// blocks of BUILD_BLOCK cells (dataset by dataset, in order) from
/// `next_block`.
fn write_entry(
    tmp: &Path,
    meta: &CacheMeta,
    per_dataset: &[DatasetPrep],
    n_cells: &[usize],
    next_block: &mut dyn FnMut() -> Result<CsrMatrix, ReaderError>,
) -> Result<(), ReaderError> {
    {
        for (i, (dropped, cols, scale)) in per_dataset.iter().enumerate() {
            let f = |ext: &str| tmp.join(format!("{i}.{ext}"));
            write_le(&f("dropped"), dropped, |v| (v as u64).to_le_bytes())?;
            write_le(&f("cols"), cols, |c| c.map_or(-1i64, |c| c as i64).to_le_bytes())?;
            write_le(&f("scale"), scale, f64::to_le_bytes)?;
            let create = |ext: &str| {
                File::create(f(ext))
                    .map(|h| BufWriter::with_capacity(1 << 22, h))
                    .map_err(|e| cache_err(&f(ext), e))
            };
            let (mut ip, mut ix, mut dx) = (create("indptr")?, create("indices")?, create("data")?);
            let mut nx = create("norms")?;
            let n = n_cells[i];
            let mut nnz = 0u64;
            ip.write_all(&0u64.to_le_bytes())
                .map_err(|e| cache_err(&f("indptr"), e))?;
            let mut buf = Vec::new();
            for s in (0..n).step_by(BUILD_BLOCK) {
                let x = next_block()?;
                if x.n_rows() != (s + BUILD_BLOCK).min(n) - s {
                    return Err(cache_err(
                        tmp,
                        "a block read for the cache has the wrong number of cells",
                    ));
                }
                buf.clear();
                for w in x.indptr()[1..].iter() {
                    buf.extend_from_slice(&(nnz + *w as u64).to_le_bytes());
                }
                ip.write_all(&buf).map_err(|e| cache_err(&f("indptr"), e))?;
                buf.clear();
                if meta.index_bytes == 2 {
                    for c in x.indices().iter() {
                        let c = u16::try_from(c)
                            .map_err(|_| cache_err(tmp, format!("column {c} does not fit 16 bits")))?;
                        buf.extend_from_slice(&c.to_le_bytes());
                    }
                } else {
                    buf.extend(x.indices().iter().flat_map(|v| v.to_le_bytes()));
                }
                ix.write_all(&buf).map_err(|e| cache_err(&f("indices"), e))?;
                buf.clear();
                buf.extend(x.data().iter().flat_map(|v| v.to_le_bytes()));
                dx.write_all(&buf).map_err(|e| cache_err(&f("data"), e))?;
                buf.clear();
                for (_, vals) in x.rows(0..x.n_rows()) {
                    buf.extend_from_slice(&row_norm_sq(vals).to_le_bytes());
                }
                nx.write_all(&buf).map_err(|e| cache_err(&f("norms"), e))?;
                nnz += x.nnz() as u64;
            }
            for (w, ext) in [(ip, "indptr"), (ix, "indices"), (dx, "data"), (nx, "norms")] {
                w.into_inner()
                    .map_err(|e| cache_err(&f(ext), e.error().to_string()))?
                    .sync_all()
                    .map_err(|e| cache_err(&f(ext), e))?;
            }
        }
        let meta_path = tmp.join("meta.json");
        let text = serde_json::to_string(meta).map_err(|e| cache_err(&meta_path, e))?;
        std::fs::write(&meta_path, text).map_err(|e| cache_err(&meta_path, e))?;
        Ok(())
    }
}

impl CacheReader {
    /// Maps (`true`, the default) or copies the non-zeros of later blocks.
    #[cfg(test)]
    pub(crate) fn set_zero_copy(&mut self, on: bool) {
        self.zero_copy = on;
    }

    /// Keeps the entry's files mapped whole if its non-zeros take at most
    /// `bytes` (0: never; each run is mapped on its own and released with
    /// its block).
    pub(crate) fn set_keep_mapped_limit(&mut self, bytes: u64) {
        self.keep_mapped_limit = bytes;
        if !self.keeps_mapped() {
            self.whole.iter_mut().for_each(|w| *w = None);
        }
    }

    /// Whether runs are views of whole-file mappings.
    pub(crate) fn keeps_mapped(&self) -> bool {
        let bytes = self.nonzero_bytes();
        bytes > 0 && bytes <= self.keep_mapped_limit
    }

    /// Bytes of the entry's non-zeros (column indices and values).
    pub(crate) fn nonzero_bytes(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| p.nnz_in_files * (4 + u64::from(p.index_bytes)))
            .sum()
    }

    /// Number of genes.
    pub(crate) fn n_genes(&self) -> usize {
        self.n_genes
    }

    fn pread(&mut self, file: usize, which: u8, offset: u64, len: usize) -> Result<&[u8], ReaderError> {
        let p = &self.parts[file];
        self.bytes.resize(len, 0);
        p.file(which)
            .read_exact_at(&mut self.bytes[..len], offset)
            .map_err(|e| read_err(&p.path, e))?;
        Ok(&self.bytes[..len])
    }

    /// Reads `dst.len()` little-endian values of file `which` of dataset
    /// `d` at element `start`, straight into `dst` (no staging copy).
    fn pread_values<T: bytemuck::Pod>(
        &self,
        d: usize,
        which: u8,
        start: u64,
        dst: &mut [T],
    ) -> Result<(), ReaderError> {
        let p = &self.parts[d];
        let offset = start * std::mem::size_of::<T>() as u64;
        p.file(which)
            .read_exact_at(bytemuck::cast_slice_mut(dst), offset)
            .map_err(|e| read_err(&p.path, e))
    }

    /// Appends the stored norms of kept cells `cells` of dataset `d` to
    /// `self.norms`.
    fn append_norms(&mut self, d: usize, cells: &Range<usize>) -> Result<(), ReaderError> {
        let at = self.norms.len();
        self.norms.resize(at + cells.len(), 0.0);
        let p = &self.parts[d];
        p.norms
            .read_exact_at(
                bytemuck::cast_slice_mut(&mut self.norms[at..]),
                cells.start as u64 * 8,
            )
            .map_err(|e| read_err(&p.path, e))?;
        if cfg!(target_endian = "big") {
            for v in &mut self.norms[at..] {
                *v = f64::from_bits(u64::from_le(v.to_bits()));
            }
        }
        Ok(())
    }

    /// Whether every cell of `cells` of dataset `d` passed the block checks.
    fn all_checked(&self, d: usize, cells: &Range<usize>) -> bool {
        let bits = &self.checked[d];
        cells
            .clone()
            .all(|c| bits.get(c / 64).is_some_and(|w| w >> (c % 64) & 1 == 1))
    }

    /// Records that every cell of `runs` of dataset `d` passed the block checks.
    fn mark_checked(&mut self, d: usize, runs: &[Range<usize>]) {
        let bits = &mut self.checked[d];
        for c in runs.iter().flat_map(|r| r.clone()) {
            if bits.len() <= c / 64 {
                bits.resize(c / 64 + 1, 0);
            }
            bits[c / 64] |= 1 << (c % 64);
        }
    }

    /// Row pointers of cells `cells` of dataset `d` (rows + 1 values), as
    /// offsets from the first; checked to be non-decreasing at the ends.
    fn run_pointers(&mut self, d: usize, cells: &Range<usize>) -> Result<(u64, u64), ReaderError> {
        let rows = cells.len();
        let first: &[u8] = self.pread(d, 0, cells.start as u64 * 8, 8)?;
        let s = u64::from_le_bytes(first.try_into().expect("8 bytes"));
        let last: &[u8] = self.pread(d, 0, (cells.start + rows) as u64 * 8, 8)?;
        let e = u64::from_le_bytes(last.try_into().expect("8 bytes"));
        if e < s {
            return Err(cache_err(
                &self.parts[d].path,
                "row pointers decrease (damaged entry: delete it)",
            ));
        }
        Ok((s, e))
    }

    /// Appends the row pointers of kept cells `cells` of dataset `d`
    /// (non-zeros `s..e` of the entry) to `indptr`, shifted so the run's
    /// first non-zero is at `base`.
    fn append_row_pointers(
        &mut self,
        d: usize,
        cells: Range<usize>,
        (s, e): (u64, u64),
        base: usize,
        indptr: &mut Vec<usize>,
    ) -> Result<(), ReaderError> {
        let rows = cells.len();
        let ptr: &[u8] = self.pread(d, 0, cells.start as u64 * 8, (rows + 1) * 8)?;
        let at = |i: usize| u64::from_le_bytes(ptr[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        if at(0) != s || at(rows) != e {
            return Err(cache_err(
                &self.parts[d].path,
                "row pointers changed while reading (damaged entry: delete it)",
            ));
        }
        indptr.extend((1..=rows).map(|i| base + at(i).wrapping_sub(s) as usize));
        Ok(())
    }

    /// Copies non-zeros `s..e` of dataset `d` into `indices`/`data`
    /// (already sized) from position `base`.
    fn read_values(
        &self,
        d: usize,
        (s, e): (u64, u64),
        base: usize,
        indices: &mut [u32],
        data: &mut [f32],
    ) -> Result<(), ReaderError> {
        let nnz = (e - s) as usize;
        let (indices, data) = (&mut indices[base..base + nnz], &mut data[base..base + nnz]);
        if self.parts[d].index_bytes == 2 {
            // The copying path (no mapping): widen to the block's u32.
            let mut narrow = vec![0u16; nnz];
            self.pread_values(d, 1, s, &mut narrow)?;
            for (w, &n) in indices.iter_mut().zip(&narrow) {
                *w = u32::from(u16::from_le(n));
            }
        } else {
            self.pread_values(d, 1, s, indices)?;
        }
        self.pread_values(d, 2, s, data)?;
        if cfg!(target_endian = "big") && self.parts[d].index_bytes == 4 {
            indices.iter_mut().for_each(|v| *v = u32::from_le(*v));
        }
        if cfg!(target_endian = "big") {
            data.iter_mut()
                .for_each(|v| *v = f32::from_bits(u32::from_le(v.to_bits())));
        }
        Ok(())
    }

    /// Kept cells of dataset `d`, given as runs, as one validated block built
    /// in `buffers` = (indptr = [0], indices, data), which are reused: their
    /// old contents are overwritten, and they grow (with 25 % headroom, so a
    /// recycled buffer settles after a few blocks) only when the block has
    /// more non-zeros than they hold.
    ///
    /// On little-endian machines the non-zeros are not copied: each run's
    /// are memory-mapped (`mapped.rs`) and the block only fills `indptr`.
    /// If mapping fails (a file system without `mmap`), this and every
    /// later block are copied instead.
    pub(crate) fn read_runs(
        &mut self,
        d: usize,
        runs: &[Range<usize>],
        buffers: (Vec<usize>, Vec<u32>, Vec<f32>),
    ) -> Result<CsrMatrix, ReaderError> {
        let (mut ip, mut ix, mut dx) = buffers;
        self.norms.clear();
        for r in runs {
            self.append_norms(d, r)?;
        }
        if self.zero_copy && cfg!(target_endian = "little") {
            match self.map_runs(d, runs, &mut ip)? {
                Some(x) => {
                    x.remember_row_norms_sq(&self.norms);
                    return Ok(x);
                }
                None => self.zero_copy = false,
            }
            ip.truncate(1);
        }
        let mut bounds = Vec::with_capacity(runs.len());
        for r in runs {
            bounds.push(self.run_pointers(d, r)?);
        }
        let total: usize = bounds.iter().map(|&(s, e)| (e - s) as usize).sum();
        fit_len(&mut ix, total, 0);
        fit_len(&mut dx, total, 0.0);
        ip.reserve(runs.iter().map(|r| r.len()).sum());
        let mut base = 0;
        for (r, &b) in runs.iter().zip(&bounds) {
            self.append_row_pointers(d, r.clone(), b, base, &mut ip)?;
            self.read_values(d, b, base, &mut ix, &mut dx)?;
            base += (b.1 - b.0) as usize;
        }
        let x = CsrMatrix::new(self.n_genes, ip, ix, dx)
            .map_err(|e| cache_err(&self.parts[d].path, format!("{e} (damaged entry: delete it)")))?;
        x.remember_row_norms_sq(&self.norms);
        Ok(x)
    }
}

impl CacheReader {
    /// Kept cells of dataset `d`, given as runs, as one validated block
    /// whose non-zeros stay in read-only mappings of the entry's files
    /// (one per run); row pointers go into `indptr` (= [0] on entry).
    /// `None` if the system refused a mapping (nothing is lost: the caller
    /// copies instead).
    fn map_runs(
        &mut self,
        d: usize,
        runs: &[Range<usize>],
        indptr: &mut Vec<usize>,
    ) -> Result<Option<CsrMatrix>, ReaderError> {
        let mut shared: Vec<Arc<dyn SharedNonZeros>> = Vec::with_capacity(runs.len());
        indptr.reserve(runs.iter().map(|r| r.len()).sum());
        let mut base = 0;
        for r in runs {
            let (s, e) = self.run_pointers(d, r)?;
            self.append_row_pointers(d, r.clone(), (s, e), base, indptr)?;
            let nnz = (e - s) as usize;
            if e > self.parts[d].nnz_in_files {
                return Err(cache_err(
                    &self.parts[d].path,
                    "row pointers point past the end of the data files (damaged entry: delete it)",
                ));
            }
            if nnz > 0 {
                let checked = self.all_checked(d, r);
                let run = match self.whole_files(d) {
                    Some(files) => Ok(MappedRun::within(files, s as usize, nnz, checked)),
                    None => {
                        let p = &self.parts[d];
                        MappedRun::map(&p.indices, &p.data, p.index_bytes, s, nnz, checked)
                    }
                };
                match run {
                    Ok(run) => shared.push(Arc::new(run)),
                    Err(_) => return Ok(None),
                }
            }
            base += nnz;
        }
        let ip = std::mem::take(indptr);
        let x = CsrMatrix::from_shared_runs(self.n_genes, ip, shared)
            .map_err(|e| cache_err(&self.parts[d].path, format!("{e} (damaged entry: delete it)")))?;
        self.mark_checked(d, runs);
        Ok(Some(x))
    }
}

impl CacheReader {
    /// Dataset `d`'s files mapped whole, mapping them on first use, if the
    /// entry is kept mapped; `None` otherwise, or if the mapping failed
    /// (then runs are mapped one by one from now on).
    fn whole_files(&mut self, d: usize) -> Option<&MappedFiles> {
        if !self.keeps_mapped() {
            return None;
        }
        if self.whole[d].is_none() {
            let p = &self.parts[d];
            match MappedFiles::map(&p.indices, &p.data, p.index_bytes, p.nnz_in_files as usize) {
                Ok(files) => self.whole[d] = Some(files),
                Err(_) => {
                    self.set_keep_mapped_limit(0);
                    return None;
                }
            }
        }
        self.whole[d].as_ref()
    }
}

/// Sets `v`'s length to `n`: truncates, or grows with 25 % spare capacity
/// (new elements = `fill`, overwritten by the caller). The old contents
/// are garbage to the caller, so a too-small buffer is replaced, not
/// reallocated (which would copy them).
fn fit_len<T: Clone>(v: &mut Vec<T>, n: usize, fill: T) {
    if v.len() >= n {
        v.truncate(n);
        return;
    }
    if v.capacity() < n {
        *v = Vec::new(); // frees the old buffer first, so it can be reused
        v.reserve_exact(n + n / 4);
    }
    v.resize(n, fill);
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use inmf_learner::CellSource;

    use super::{cache_key, stale_entries};
    use crate::fixtures::*;
    use crate::*;

    /// Two datasets with Poisson counts over 30 genes, some all-zero cells.
    fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut rng = Rng(7);
        (0..2)
            .map(|d| {
                let rows: Vec<Vec<f64>> = (0..150)
                    .map(|c| {
                        (0..30)
                            .map(|g| {
                                if c % 37 == 5 {
                                    0.0
                                } else {
                                    rng.poisson(if (g + c) % 3 == 0 { 4.0 } else { 0.4 })
                                }
                            })
                            .collect()
                    })
                    .collect();
                let p = dir.join(format!("d{d}.h5ad"));
                write_h5ad(
                    &p,
                    &RawCsr::from_dense(&rows),
                    &names("g", 30),
                    &names(&format!("c{d}_"), 150),
                    &Opts::default(),
                    Enc::Csr,
                    &H5adExtras::default(),
                );
                p
            })
            .collect()
    }

    fn open_all(paths: &[std::path::PathBuf]) -> Vec<Dataset> {
        paths
            .iter()
            .map(|p| open(p, &OpenOptions::default()).unwrap())
            .collect()
    }

    #[test]
    fn cached_blocks_equal_decoded_blocks_and_entries_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let paths = inputs(dir.path());
        let params = PreprocessParams::default().check().unwrap();
        let root = dir.path().join("cache");
        let mut raw = Hdf5Source::preprocess(open_all(&paths), &params).unwrap();
        let CacheLookup::Miss(ds) = Hdf5Source::from_cache(open_all(&paths), &params, &root).unwrap() else {
            panic!("an empty cache root cannot hit");
        };
        let mut built = Hdf5Source::preprocess(ds, &params).unwrap();
        let entry = built.build_cache(&params, &root).unwrap();
        assert!(built.is_cached());
        let CacheLookup::Hit(mut hit, dir2) =
            Hdf5Source::from_cache(open_all(&paths), &params, &root).unwrap()
        else {
            panic!("the entry just built must be found");
        };
        assert_eq!(dir2, entry);
        assert_eq!(hit.genes(), raw.genes());
        assert_eq!(hit.report(), raw.report());
        for d in 0..2 {
            let n = raw.n_cells(d);
            assert_eq!(hit.n_cells(d), n);
            assert_eq!(hit.scale_factors(d), raw.scale_factors(d));
            assert_eq!(hit.cell_map(d), raw.cell_map(d));
            assert_eq!(hit.cell_names(d, 0..n).unwrap(), raw.cell_names(d, 0..n).unwrap());
            let runs_list: [Vec<std::ops::Range<usize>>; 3] = [
                std::iter::once(0..n).collect(),
                std::iter::once(3..9).collect(),
                vec![40..41, 7..20, 100..n],
            ];
            // A recycled block of any size (bigger, smaller, the same) is overwritten exactly.
            let mut spare = hit.read_runs(d, &runs_list[1]).unwrap();
            // Small entries stay mapped whole by default; then every run
            // mapped on its own; then whole again.
            assert!(hit.cache_kept_mapped());
            let limits = [DEFAULT_KEEP_MAPPED_BYTES, 0, u64::MAX];
            for (runs, &limit) in runs_list
                .iter()
                .chain(runs_list.iter().rev())
                .zip(limits.iter().cycle())
            {
                hit.keep_cache_mapped_up_to(limit);
                assert_eq!(hit.cache_kept_mapped(), limit > 0);
                let a = raw.read_runs(d, runs).unwrap();
                let mapped = hit.read_runs(d, runs).unwrap();
                assert_eq!(mapped, a);
                // Mapped, not copied: one shared run per non-empty run of cells.
                let mut first = 0;
                let mut non_empty = 0;
                for r in runs {
                    non_empty += usize::from(a.indptr()[first + r.len()] > a.indptr()[first]);
                    first += r.len();
                }
                assert_eq!(mapped.runs().count(), non_empty, "runs {runs:?}");
                assert_eq!(mapped.frobenius_sq().to_bits(), a.frobenius_sq().to_bits());
                assert_eq!(built.read_runs(d, runs).unwrap(), a);
                spare = hit.read_runs_reusing(d, runs, spare).unwrap();
                assert_eq!(spare, a);
                // The copying path (used where mapping fails) reads the same.
                hit.set_zero_copy(false);
                let copied = hit.read_runs(d, runs).unwrap();
                assert_eq!(copied.runs().count(), 1);
                assert_eq!(copied, a);
                spare = hit.read_runs_reusing(d, runs, copied).unwrap();
                assert_eq!(spare, a);
                hit.set_zero_copy(true);
            }
        }
        // Other parameters: another key, a miss.
        let other = PreprocessParams {
            selection: GeneSelection {
                var_thresh: 0.2,
                ..Default::default()
            },
            ..Default::default()
        }
        .check()
        .unwrap();
        assert!(matches!(
            Hdf5Source::from_cache(open_all(&paths), &other, &root).unwrap(),
            CacheLookup::Miss(_)
        ));
    }

    #[test]
    fn cells_are_checked_once_and_blocks_carry_their_stored_norms() {
        let dir = tempfile::tempdir().unwrap();
        let paths = inputs(dir.path());
        let params = PreprocessParams::default().check().unwrap();
        let root = dir.path().join("cache");
        let mut raw = Hdf5Source::preprocess(open_all(&paths), &params).unwrap();
        let entry = raw.build_cache(&params, &root).unwrap();
        let key = cache_key(&open_all(&paths), &params).unwrap();
        for keep in [false, true] {
            let mut reader = super::open_entry(&entry, &key)
                .unwrap()
                .expect("complete entry")
                .reader;
            reader.set_keep_mapped_limit(if keep { DEFAULT_KEEP_MAPPED_BYTES } else { 0 });
            assert_eq!(reader.keeps_mapped(), keep);
            let fresh = || (vec![0], Vec::new(), Vec::new());
            let runs = [30..45, 2..9];
            assert!(!reader.all_checked(1, &(2..9)));
            let first = reader.read_runs(1, &runs, fresh()).unwrap();
            for r in &runs {
                assert!(reader.all_checked(1, r), "{r:?}");
            }
            assert!(!reader.all_checked(1, &(8..10)), "cell 9 was not read");
            assert!(!reader.all_checked(0, &(2..9)), "bits are per dataset");
            // Read again (now trusted), partly overlapping, and copied: the same
            // block and the same ‖X‖² bits as computing it from the values.
            let again = reader.read_runs(1, &runs, fresh()).unwrap();
            assert_eq!(again, first);
            let one_run = std::iter::once(5..12).collect::<Vec<_>>();
            let overlapping = reader.read_runs(1, &one_run, fresh()).unwrap();
            assert!(reader.all_checked(1, &(2..12)));
            reader.set_zero_copy(false);
            let copied = reader.read_runs(1, &runs, fresh()).unwrap();
            assert_eq!(copied, first);
            for x in [&first, &again, &overlapping, &copied] {
                let computed = inmf_learner::CsrMatrix::new(
                    x.n_cols(),
                    x.indptr().to_vec(),
                    x.rows(0..x.n_rows()).flat_map(|(c, _)| c.iter()).collect(),
                    x.rows(0..x.n_rows())
                        .flat_map(|(_, v)| v.iter().copied())
                        .collect(),
                )
                .unwrap();
                assert_eq!(x.frobenius_sq().to_bits(), computed.frobenius_sq().to_bits());
            }
            assert_eq!(overlapping, raw.read_runs(1, &one_run).unwrap());
        }
    }

    #[test]
    fn entries_of_other_format_versions_are_listed_as_stale() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(stale_entries(&root.join("absent")).is_empty());
        let entry = |name: &str, version: u32, payload: usize| {
            let d = root.join(name);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(
                d.join("meta.json"),
                format!("{{\"version\": {version}, \"key\": \"{name}\"}}"),
            )
            .unwrap();
            std::fs::write(d.join("0.data"), vec![0u8; payload]).unwrap();
            d
        };
        let old = entry("old", CACHE_FORMAT_VERSION - 1, 1000);
        entry("current", CACHE_FORMAT_VERSION, 1000);
        std::fs::create_dir(root.join("no-meta")).unwrap();
        let garbled = entry("garbled", 0, 10);
        std::fs::write(garbled.join("meta.json"), "not json").unwrap();
        let stale = stale_entries(root);
        assert_eq!(stale.len(), 1, "{stale:?}");
        assert_eq!(stale[0].0, old);
        let meta_len = std::fs::metadata(old.join("meta.json")).unwrap().len();
        assert_eq!(stale[0].1, 1000 + meta_len);
    }

    #[test]
    fn incomplete_or_foreign_entries_are_never_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let paths = inputs(dir.path());
        let params = PreprocessParams::default().check().unwrap();
        let root = dir.path().join("cache");
        let mut src = Hdf5Source::preprocess(open_all(&paths), &params).unwrap();
        let entry = src.build_cache(&params, &root).unwrap();
        // No temporary directory is left behind.
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
        // Without meta.json (as if interrupted before completion), it is a miss.
        std::fs::rename(entry.join("meta.json"), dir.path().join("meta.json")).unwrap();
        assert!(matches!(
            Hdf5Source::from_cache(open_all(&paths), &params, &root).unwrap(),
            CacheLookup::Miss(_)
        ));
        // A damaged data file is an error, not a silent wrong answer.
        std::fs::rename(dir.path().join("meta.json"), entry.join("meta.json")).unwrap();
        let indptr = std::fs::read(entry.join("0.indptr")).unwrap();
        std::fs::write(entry.join("0.indptr"), [0u8; 12]).unwrap();
        let read_all = |expect: &str| match Hdf5Source::from_cache(open_all(&paths), &params, &root).unwrap()
        {
            CacheLookup::Hit(mut s, _) => {
                let n = s.n_cells(0);
                let e = s.read_cells(0, 0..n).unwrap_err();
                assert!(matches!(e, ReaderError::Cache { .. }), "{e}");
                assert!(e.to_string().contains(expect), "{e}");
            }
            CacheLookup::Miss(_) => panic!("the entry is complete"),
        };
        read_all("shorter than it must be (damaged entry");
        // Data files shorter than the row pointers say: an error before
        // anything is mapped (reading a mapping past the end of its file
        // would kill the process).
        std::fs::write(entry.join("0.indptr"), indptr).unwrap();
        let indices = std::fs::read(entry.join("0.indices")).unwrap();
        std::fs::write(entry.join("0.indices"), &indices[..indices.len() / 2]).unwrap();
        read_all("past the end of the data files");
        std::fs::write(entry.join("0.indices"), indices).unwrap();
        // Missing cell norms: the same.
        let norms = std::fs::read(entry.join("0.norms")).unwrap();
        std::fs::write(entry.join("0.norms"), &norms[..norms.len() - 8]).unwrap();
        read_all("shorter than it must be (damaged entry");
        std::fs::write(entry.join("0.norms"), norms).unwrap();
        let CacheLookup::Hit(mut whole, _) =
            Hdf5Source::from_cache(open_all(&paths), &params, &root).unwrap()
        else {
            panic!("the entry is complete");
        };
        let n = whole.n_cells(0);
        whole.read_cells(0, 0..n).expect("the entry is whole again");
        // A changed input changes the key.
        let key_before = cache_key(&open_all(&paths), &params).unwrap();
        let mut bytes = std::fs::read(&paths[0]).unwrap();
        bytes.extend_from_slice(&[0u8; 1024]);
        std::fs::write(&paths[0], bytes).unwrap();
        assert_ne!(cache_key(&open_all(&paths), &params).unwrap(), key_before);
    }

    /// Delegates to a preprocessed source; the `fail_on`-th block read fails.
    struct FailingReads {
        inner: Hdf5Source,
        reads: usize,
        fail_on: usize,
    }

    impl CellSource for FailingReads {
        type Error = ReaderError;
        fn n_datasets(&self) -> usize {
            self.inner.n_datasets()
        }
        fn n_cells(&self, dataset: usize) -> usize {
            self.inner.n_cells(dataset)
        }
        fn n_genes(&self) -> usize {
            self.inner.n_genes()
        }
        fn read_cells(
            &mut self,
            dataset: usize,
            cells: std::ops::Range<usize>,
        ) -> Result<inmf_learner::CsrMatrix, ReaderError> {
            self.reads += 1;
            if self.reads == self.fail_on {
                return Err(ReaderError::Cache {
                    path: "injected".into(),
                    message: "read failure".into(),
                });
            }
            self.inner.read_cells(dataset, cells)
        }
    }

    #[test]
    fn a_failed_read_while_building_leaves_no_entry_and_reports_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let paths = inputs(dir.path());
        let params = PreprocessParams::default().check().unwrap();
        let inner = Hdf5Source::preprocess(open_all(&paths), &params).unwrap();
        let meta = super::CacheMeta {
            version: 1,
            key: "k".into(),
            genes: inner.genes().to_vec(),
            names: inner.dataset_names().to_vec(),
            report: inner.report().clone(),
            n_total: vec![150, 150],
            index_bytes: 2,
        };
        let per = vec![(Vec::new(), Vec::new(), Vec::new()); 2];
        // The second dataset's block fails after the first one was written.
        let mut src = FailingReads {
            inner,
            reads: 0,
            fail_on: 2,
        };
        let root = dir.path().join("cache");
        let err = super::build_entry(&mut src, &root, &meta, &per).unwrap_err();
        assert!(err.to_string().contains("read failure"), "{err}");
        assert_eq!(
            std::fs::read_dir(&root).unwrap().count(),
            0,
            "no entry, no temporary"
        );
        // Without the failure the same call builds the entry.
        src.fail_on = usize::MAX;
        let built = super::build_entry(&mut src, &root, &meta, &per).unwrap();
        assert!(built.join("meta.json").exists());
    }

    #[test]
    fn entries_with_16_and_32_bit_indices_read_the_same_blocks_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let paths = inputs(dir.path());
        let params = PreprocessParams::default().check().unwrap();
        let mut src = Hdf5Source::preprocess(open_all(&paths), &params).unwrap();
        assert_eq!(super::index_bytes_for(src.n_genes()), 2);
        assert_eq!(super::index_bytes_for(1 << 16), 2);
        assert_eq!(super::index_bytes_for((1 << 16) + 1), 4);
        let n_cells: Vec<usize> = (0..2).map(|d| src.n_cells(d)).collect();
        let per: Vec<super::DatasetPrep> = (0..2)
            .map(|d| {
                (
                    Vec::new(),
                    (0..src.n_genes()).map(Some).collect(),
                    src.scale_factors(d).to_vec(),
                )
            })
            .collect();
        let runs = [0..3, 10..n_cells[0] - 1, 5..6];
        for index_bytes in [2u8, 4] {
            let meta = super::CacheMeta {
                version: super::CACHE_FORMAT_VERSION,
                key: format!("k{index_bytes}"),
                genes: src.genes().to_vec(),
                names: src.dataset_names().to_vec(),
                report: src.report().clone(),
                n_total: n_cells.clone(),
                index_bytes,
            };
            let root = dir.path().join(format!("cache{index_bytes}"));
            let entry = super::build_entry(&mut src, &root, &meta, &per).unwrap();
            let indices = std::fs::metadata(entry.join("0.indices")).unwrap().len();
            let data = std::fs::metadata(entry.join("0.data")).unwrap().len();
            assert_eq!(
                indices * 4,
                data * u64::from(index_bytes),
                "{index_bytes}-byte indices on disk"
            );
            let mut reader = super::open_entry(&entry, &meta.key).unwrap().unwrap().reader;
            for d in 0..2 {
                let runs = if d == 0 { &runs[..] } else { &runs[..1] };
                let want = src.read_runs(d, runs).unwrap();
                // Mapped whole, mapped run by run, copied.
                for (zero_copy, limit) in [(true, u64::MAX), (true, 0), (false, 0)] {
                    reader.set_zero_copy(zero_copy);
                    reader.set_keep_mapped_limit(limit);
                    let got = reader
                        .read_runs(d, runs, (vec![0], Vec::new(), Vec::new()))
                        .unwrap();
                    assert_eq!(
                        got, want,
                        "{index_bytes} bytes, zero copy {zero_copy}, limit {limit}"
                    );
                    let narrow = got.row(0).0.is_narrow();
                    assert_eq!(narrow, zero_copy && index_bytes == 2, "{index_bytes} {zero_copy}");
                }
            }
            // An entry with another index size is damaged.
            let mut bad = meta.clone();
            bad.index_bytes = 3;
            std::fs::write(entry.join("meta.json"), serde_json::to_string(&bad).unwrap()).unwrap();
            let Err(e) = super::open_entry(&entry, &meta.key) else {
                panic!("a damaged entry must not open");
            };
            let e = e.to_string();
            assert!(
                e.contains("3-byte column indices") && e.contains("delete it"),
                "{e}"
            );
            // So is one without the field.
            let mut raw = serde_json::to_value(&meta).unwrap();
            raw.as_object_mut().unwrap().remove("index_bytes");
            std::fs::write(entry.join("meta.json"), raw.to_string()).unwrap();
            let Err(e) = super::open_entry(&entry, &meta.key) else {
                panic!("an entry without index_bytes must not open");
            };
            let e = e.to_string();
            assert!(e.contains("index_bytes") && e.contains("delete it"), "{e}");
        }
    }
}
