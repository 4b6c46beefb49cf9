//! The preprocessed cache: selected genes only, normalized and scaled
//! (x̂ of docs/algorithms.md §9), so every epoch reads compact CSR instead of
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
//! fingerprint (xxh3-128 of the whole file, `fingerprint.rs`), matrix
//! object, shape and gene names, and every preprocessing parameter: any
//! change gives a new entry. Nothing that belongs to one run is in the key
//! or read from the entry: dataset names and paths come from the command
//! line of the run that uses it (the stored report carries none), so the
//! same files under other names or at other paths reuse the entry.
//!
//! An entry is built in the temporary directory `ROOT/.tmp-<key>-<pid>`
//! (`stale.rs` removes those of killed runs) and renamed into place only
//! when complete, so a half-written entry is never found. meta.json records
//! the size and xxh3-128 of every file of the entry, and its own checksum;
//! before an entry is reused every file is checked against them (sizes,
//! then contents, files hashed in parallel), so no value of a damaged entry
//! reaches the learner. A damaged, incomplete or other-version entry found
//! under a key is reported ([`EntryProblem`]), removed and built again.
//! The check reads the whole entry once per run, up front rather than
//! lazily: measured with `scripts/bench-fingerprint` (1M cells, a 1.22 GB
//! entry) it takes 0.21 s with the entry in the page cache (5.8 GB/s, two
//! files hashed at a time; 4 % of five 1.2 s epochs) and 0.56 s after
//! `drop_caches` (2.2 GB/s; the epochs then read the entry from the page
//! cache the check filled instead of from disk); 50k cells (61 MB): 0.09 s
//! warm, 0.14 s cold. The epoch loop itself does no hashing.
//!
//! Beside it: [`fingerprint`] (content fingerprints of inputs),
//! [`mapped`] (zero-copy reads of an entry) and [`stale`] (temporaries of
//! runs that are gone).

pub(crate) mod fingerprint;
mod mapped;
pub(crate) mod stale;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use inmf_learner::{row_norm_sq, CsrMatrix, SharedNonZeros};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::error::ReaderError;
use crate::formats::dataset::Dataset;
use crate::preprocess::cellmap::CellMap;
use crate::preprocess::params::{CheckedPreprocessParams, Combine};
use crate::preprocess::report::PreprocessReport;
use fingerprint::{fingerprint_datasets, hash_file};
use mapped::{MappedFiles, MappedRun};

/// Entries whose non-zeros (indices and values) take at most this many
/// bytes stay mapped whole for the life of the reader (see `mapped.rs`):
/// 512 MiB: 6 bytes per non-zero with 16-bit indices, so about 450k cells
/// at 10 % non-zeros of 2,000 genes (220k at 20 %).
pub const DEFAULT_KEEP_MAPPED_BYTES: u64 = 512 << 20;

/// Bumped whenever the layout or the preprocessing it stores changes
/// (3: 16-bit column indices up to 65,536 genes; 4: whole-content input
/// fingerprints in the key, checksums of every file, no dataset names).
pub const CACHE_FORMAT_VERSION: u32 = 4;

/// Extensions of the files of each dataset of an entry (`<i>.<ext>`).
const DATASET_FILES: [&str; 7] = ["dropped", "cols", "scale", "indptr", "indices", "data", "norms"];

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
    /// What preprocessing did, without dataset names and paths (those are
    /// the using run's).
    pub report: PreprocessReport,
    /// Cells in each file (kept + dropped); one per dataset.
    pub n_total: Vec<usize>,
    /// Bytes per stored column index: 2 or 4 ([`index_bytes_for`]).
    pub index_bytes: u8,
    /// Size and checksum of every other file of the entry, filled in by
    /// [`build_entry`].
    #[serde(default)]
    pub files: Vec<EntryFile>,
    /// xxh3-128 of this meta.json written with `checksum` empty.
    #[serde(default)]
    pub checksum: String,
}

/// One file of an entry as meta.json records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct EntryFile {
    /// File name within the entry (`0.data`).
    pub name: String,
    pub bytes: u64,
    /// xxh3-128 of the content, 32 hex digits.
    pub xxh3: String,
}

impl CacheMeta {
    /// The checksum of this meta.json's content (`checksum` left out).
    fn own_checksum(&self) -> String {
        let blank = CacheMeta {
            checksum: String::new(),
            ..self.clone()
        };
        let text = serde_json::to_string(&blank).expect("meta.json serializes");
        format!("{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes()))
    }
}

/// Why an entry found under its key is not used (then it is removed and
/// built again).
#[derive(Debug, Clone, PartialEq)]
pub enum EntryProblem {
    /// A file is missing, has the wrong size or content, or meta.json is
    /// not what this version writes.
    Damaged(String),
    /// The entry holds no meta.json (meta.json is written last).
    Incomplete(String),
    /// meta.json was written by another cache format version.
    OtherVersion(u64),
}

impl std::fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntryProblem::Damaged(why) => write!(f, "is damaged ({why})"),
            EntryProblem::Incomplete(why) => write!(f, "is incomplete ({why})"),
            EntryProblem::OtherVersion(v) => write!(
                f,
                "was written by cache format version {v} (this inmf reads version {CACHE_FORMAT_VERSION})"
            ),
        }
    }
}

/// A failure to open an entry: the entry is unusable, or the system failed.
#[derive(Debug)]
pub(crate) enum OpenError {
    Unusable(EntryProblem),
    Env(ReaderError),
}

impl From<ReaderError> for OpenError {
    fn from(e: ReaderError) -> Self {
        OpenError::Env(e)
    }
}

fn damaged(why: impl Into<String>) -> OpenError {
    OpenError::Unusable(EntryProblem::Damaged(why.into()))
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
    let fingerprints = fingerprint_datasets(datasets)?;
    let mut h = Xxh3::new();
    let mut put = |s: &str| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    put(&format!("inmf-cache-v{CACHE_FORMAT_VERSION}"));
    for (d, fingerprint) in datasets.iter().zip(&fingerprints) {
        put(fingerprint);
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
    Ok(format!("{:032x}", h.digest128()))
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
) -> Result<EntryFile, ReaderError> {
    let mut w = HashingWriter::create(path, 1 << 20)?;
    for &v in values {
        w.put(&to(v))?;
    }
    w.finish()
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

/// Opens the entry `dir` of `key`, checking that every file has the size
/// meta.json records and, with `verify`, the content (xxh3-128 of every
/// file, hashed in parallel). An entry that is not one this version
/// writes, or whose files disagree with meta.json, is
/// [`OpenError::Unusable`]; a failure to read it is [`OpenError::Env`].
pub(crate) fn open_entry(dir: &Path, key: &str, verify: bool) -> Result<CacheEntry, OpenError> {
    let meta_path = dir.join("meta.json");
    if !std::fs::symlink_metadata(dir)
        .map_err(|e| cache_err(dir, e))?
        .is_dir()
    {
        return Err(damaged("not a directory"));
    }
    let text = match std::fs::read(&meta_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(OpenError::Unusable(EntryProblem::Incomplete(
                "it has no meta.json".into(),
            )))
        }
        Err(e) => return Err(cache_err(&meta_path, e).into()),
    };
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| damaged(format!("meta.json: {e}")))?;
    match value.get("version").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(CACHE_FORMAT_VERSION) => {}
        Some(v) => return Err(OpenError::Unusable(EntryProblem::OtherVersion(v))),
        None => return Err(damaged("meta.json: no format version")),
    }
    let meta: CacheMeta = serde_json::from_value(value).map_err(|e| damaged(format!("meta.json: {e}")))?;
    if meta.checksum != meta.own_checksum() {
        return Err(damaged("meta.json: checksum mismatch"));
    }
    if meta.key != key {
        return Err(damaged(format!("meta.json: written for key {}", meta.key)));
    }
    if !(meta.index_bytes == 4 || (meta.index_bytes == 2 && meta.genes.len() <= 1 << 16)) {
        return Err(damaged(format!(
            "meta.json: {}-byte column indices for {} genes",
            meta.index_bytes,
            meta.genes.len()
        )));
    }
    let n_datasets = meta.n_total.len();
    let expected: Vec<String> = (0..n_datasets)
        .flat_map(|i| DATASET_FILES.iter().map(move |ext| format!("{i}.{ext}")))
        .collect();
    if meta.report.datasets.len() != n_datasets
        || meta.files.len() != expected.len()
        || meta.files.iter().zip(&expected).any(|(f, e)| &f.name != e)
    {
        return Err(damaged(
            "meta.json: its list of files or datasets is not this layout's",
        ));
    }
    for f in &meta.files {
        let path = dir.join(&f.name);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if !m.is_file() => return Err(damaged(format!("{}: not a regular file", f.name))),
            Ok(m) if m.len() != f.bytes => {
                return Err(damaged(format!(
                    "{}: {} bytes, meta.json records {}",
                    f.name,
                    m.len(),
                    f.bytes
                )))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(damaged(format!("{}: missing", f.name)))
            }
            Err(e) => return Err(cache_err(&path, e).into()),
        }
    }
    if verify {
        verify_checksums(dir, &meta.files)?;
    }
    let mut per_dataset = Vec::new();
    let mut parts = Vec::new();
    for i in 0..n_datasets {
        let f = |ext: &str| dir.join(format!("{i}.{ext}"));
        let dropped = read_le(&f("dropped"), |b: [u8; 8]| u64::from_le_bytes(b) as usize)?;
        let cols = read_le(&f("cols"), |b: [u8; 8]| {
            let c = i64::from_le_bytes(b);
            (c >= 0).then_some(c as usize)
        })?;
        let scale = read_le(&f("scale"), f64::from_le_bytes)?;
        if cols.len() != meta.genes.len() || scale.len() != meta.genes.len() {
            return Err(damaged(format!(
                "{i}.cols or {i}.scale: gene count disagrees with meta.json"
            )));
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
    Ok(CacheEntry {
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
    })
}

/// Checks the content of every file of an entry against meta.json, files
/// hashed in parallel; the first mismatch in file order is reported.
fn verify_checksums(dir: &Path, files: &[EntryFile]) -> Result<(), OpenError> {
    use rayon::prelude::*;
    let sums: Vec<std::io::Result<(u64, u128)>> =
        files.par_iter().map(|f| hash_file(&dir.join(&f.name))).collect();
    for (f, sum) in files.iter().zip(sums) {
        let (bytes, digest) = sum.map_err(|e| cache_err(&dir.join(&f.name), e))?;
        if bytes != f.bytes || format!("{digest:032x}") != f.xxh3 {
            return Err(damaged(format!("{}: checksum mismatch", f.name)));
        }
    }
    Ok(())
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
/// (through its raw path) into `root/.tmp-<key>-<pid>`, then renames it
/// into place. Returns its directory and whether this call placed it
/// (false: another run completed the same entry first, and theirs is
/// kept). `size_hint`: an upper bound of the entry's bytes, for the
/// message when the disk fills up.
///
/// On failure nothing is left: the temporary directory is removed, and so
/// is every directory this call created for `root` that is now empty.
pub(crate) fn build_entry<S: SharedBlocks>(
    source: &S,
    root: &Path,
    meta: &CacheMeta,
    per_dataset: &[DatasetPrep],
    size_hint: u64,
) -> Result<(PathBuf, bool), ReaderError> {
    let created = create_dirs(root).map_err(|e| write_err(root, e))?;
    let final_dir = root.join(&meta.key);
    let tmp = root.join(format!(".tmp-{}-{}", meta.key, std::process::id()));
    let n_cells: Vec<usize> = (0..per_dataset.len()).map(|i| source.n_cells(i)).collect();
    let mut progress = Progress::default();
    let result = build_in(
        source,
        &tmp,
        &final_dir,
        meta,
        per_dataset,
        &n_cells,
        &mut progress,
    );
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        for dir in created.iter().rev() {
            // Only if empty: another run may be building beside us.
            let _ = std::fs::remove_dir(dir);
        }
    }
    result.map_err(|e| match e {
        ReaderError::CacheDiskFull { .. } => {
            let total: usize = n_cells.iter().sum();
            let extrapolated = (progress.cells > 0)
                .then(|| (progress.bytes as f64 * total as f64 / progress.cells as f64) as u64);
            let needed = match extrapolated {
                Some(x) if size_hint > 0 => x.min(size_hint),
                Some(x) => x,
                None => size_hint,
            };
            ReaderError::CacheDiskFull {
                path: root.to_path_buf(),
                needed_bytes: needed,
            }
        }
        e => e,
    })
}

/// Preprocessed cells that several threads can read at once, the input of
/// an entry build.
pub(crate) trait SharedBlocks: Sync {
    /// Kept cells of `dataset`.
    fn n_cells(&self, dataset: usize) -> usize;
    /// Kept cells `cells` of `dataset`, preprocessed (as
    /// [`inmf_learner::CellSource::read_cells`] gives them).
    fn block(&self, dataset: usize, cells: Range<usize>) -> Result<CsrMatrix, ReaderError>;
}

/// Cells and bytes an entry build has written so far.
#[derive(Debug, Default)]
struct Progress {
    cells: usize,
    bytes: u64,
}

fn build_in<S: SharedBlocks>(
    source: &S,
    tmp: &Path,
    final_dir: &Path,
    meta: &CacheMeta,
    per_dataset: &[DatasetPrep],
    n_cells: &[usize],
    progress: &mut Progress,
) -> Result<(PathBuf, bool), ReaderError> {
    let _ = std::fs::remove_dir_all(tmp);
    // A refusal here is the cache directory's: name it.
    std::fs::create_dir(tmp).map_err(|e| write_err(tmp.parent().unwrap_or(tmp), e))?;
    // Blocks are read (decoded, normalized, scaled) on scoped threads while
    // this one writes the previous ones: reading and writing overlap, and
    // the readers decode several blocks at once. Block j (in writing order:
    // dataset by dataset, cells ascending) is read by reader j mod R and
    // taken from that reader's channel in turn, so the entry is the same
    // whatever R, and at most 2R blocks are held at once.
    let jobs: Vec<(usize, Range<usize>)> = n_cells
        .iter()
        .enumerate()
        .flat_map(|(i, &n)| {
            (0..n)
                .step_by(BUILD_BLOCK)
                .map(move |s| (i, s..(s + BUILD_BLOCK).min(n)))
        })
        .collect();
    let readers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(jobs.len())
        .max(1);
    let files = std::thread::scope(|scope| {
        let mut channels = Vec::with_capacity(readers);
        for r in 0..readers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<CsrMatrix, ReaderError>>(1);
            channels.push(rx);
            let jobs = &jobs;
            scope.spawn(move || {
                for (dataset, cells) in jobs.iter().skip(r).step_by(readers) {
                    let x = source.block(*dataset, cells.clone());
                    let failed = x.is_err();
                    // A failed send: the writer stopped on an error of its own.
                    if tx.send(x).is_err() || failed {
                        return;
                    }
                }
            });
        }
        // Owns the receivers, so a writer error drops them (ending the
        // scope closure) and the readers' next sends fail: no deadlock.
        let mut taken = 0usize;
        let mut next_block = move || {
            let rx = &channels[taken % readers];
            taken += 1;
            rx.recv()
                .unwrap_or_else(|_| Err(cache_err(tmp, "a block reader stopped early")))
        };
        write_entry(tmp, meta, per_dataset, n_cells, &mut next_block, progress)
    })?;
    let (files, emptied) = files;
    let mut meta = meta.clone();
    for (d, n) in meta.report.datasets.iter_mut().zip(emptied) {
        d.cells_kept -= n;
        d.cells_no_model_counts += n;
    }
    meta.files = files;
    meta.checksum = meta.own_checksum();
    let meta_path = tmp.join("meta.json");
    let text = serde_json::to_string(&meta).map_err(|e| cache_err(&meta_path, e))?;
    let mut w = HashingWriter::create(&meta_path, 1 << 12)?;
    w.write_all(text.as_bytes())
        .map_err(|e| write_err(&meta_path, e))?;
    w.finish()?;
    if final_dir.exists() {
        // Another run built the same entry meanwhile; keep theirs.
        std::fs::remove_dir_all(tmp).map_err(|e| cache_err(tmp, e))?;
        return Ok((final_dir.to_path_buf(), false));
    }
    std::fs::rename(tmp, final_dir).map_err(|e| write_err(final_dir, e))?;
    Ok((final_dir.to_path_buf(), true))
}

/// Creates `dir` and its missing ancestors; returns those it created,
/// outermost first. On failure it removes them again.
fn create_dirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut p = Some(dir);
    while let Some(d) = p.filter(|d| !d.as_os_str().is_empty() && std::fs::symlink_metadata(d).is_err()) {
        missing.push(d.to_path_buf());
        p = d.parent();
    }
    missing.reverse();
    let mut created = Vec::new();
    for d in missing {
        match std::fs::create_dir(&d) {
            Ok(()) => created.push(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => {
                for c in created.iter().rev() {
                    let _ = std::fs::remove_dir(c);
                }
                return Err(e);
            }
        }
    }
    Ok(created)
}

/// A full disk (or quota) is told apart from other write failures.
fn write_err(path: &Path, e: std::io::Error) -> ReaderError {
    use std::io::ErrorKind::{QuotaExceeded, StorageFull};
    if matches!(e.kind(), StorageFull | QuotaExceeded) {
        ReaderError::CacheDiskFull {
            path: path.to_path_buf(),
            needed_bytes: 0,
        }
    } else {
        cache_err(path, e)
    }
}

/// A buffered file writer that hashes what it writes (xxh3-128), for the
/// checksums meta.json records.
struct HashingWriter {
    inner: BufWriter<File>,
    hash: Xxh3,
    bytes: u64,
    path: PathBuf,
}

impl HashingWriter {
    fn create(path: &Path, buffer: usize) -> Result<Self, ReaderError> {
        let f = File::create(path).map_err(|e| write_err(path, e))?;
        Ok(Self {
            inner: BufWriter::with_capacity(buffer, f),
            hash: Xxh3::new(),
            bytes: 0,
            path: path.to_path_buf(),
        })
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), ReaderError> {
        self.write_all(bytes).map_err(|e| write_err(&self.path, e))
    }

    /// Flushes and syncs the file; its record for meta.json.
    fn finish(self) -> Result<EntryFile, ReaderError> {
        let path = self.path;
        self.inner
            .into_inner()
            .map_err(|e| write_err(&path, e.into_error()))?
            .sync_all()
            .map_err(|e| write_err(&path, e))?;
        Ok(EntryFile {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            bytes: self.bytes,
            xxh3: format!("{:032x}", self.hash.digest128()),
        })
    }
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes every dataset's files into `tmp`, taking the blocks of
/// BUILD_BLOCK cells (dataset by dataset, in order) from `next_block`;
/// returns their records for meta.json, in [`DATASET_FILES`] order.
fn write_entry(
    tmp: &Path,
    meta: &CacheMeta,
    per_dataset: &[DatasetPrep],
    n_cells: &[usize],
    next_block: &mut dyn FnMut() -> Result<CsrMatrix, ReaderError>,
    progress: &mut Progress,
) -> Result<(Vec<EntryFile>, Vec<usize>), ReaderError> {
    let mut files = Vec::new();
    let mut emptied = Vec::with_capacity(per_dataset.len());
    for (i, (dropped, cols, scale)) in per_dataset.iter().enumerate() {
        let f = |ext: &str| tmp.join(format!("{i}.{ext}"));
        // Kept cells whose preprocessed row is empty (counts, but none in
        // the model's genes) are dropped here, by their file row.
        let cells = CellMap::new(meta.n_total[i], dropped.clone());
        let mut empty = Vec::new();
        let first = files.len();
        files.push(write_le(&f("cols"), cols, |c| {
            c.map_or(-1i64, |c| c as i64).to_le_bytes()
        })?);
        files.push(write_le(&f("scale"), scale, f64::to_le_bytes)?);
        let create = |ext: &str| HashingWriter::create(&f(ext), 1 << 22);
        let (mut ip, mut ix, mut dx) = (create("indptr")?, create("indices")?, create("data")?);
        let mut nx = create("norms")?;
        let n = n_cells[i];
        let mut nnz = 0u64;
        let bytes_before = progress.bytes;
        ip.put(&0u64.to_le_bytes())?;
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
            for (r, w) in x.indptr().windows(2).enumerate() {
                if w[0] == w[1] {
                    empty.push(cells.original(s + r));
                } else {
                    buf.extend_from_slice(&(nnz + w[1] as u64).to_le_bytes());
                }
            }
            ip.put(&buf)?;
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
            ix.put(&buf)?;
            buf.clear();
            buf.extend(x.data().iter().flat_map(|v| v.to_le_bytes()));
            dx.put(&buf)?;
            buf.clear();
            for (_, vals) in x.rows(0..x.n_rows()).filter(|(cols, _)| !cols.is_empty()) {
                buf.extend_from_slice(&row_norm_sq(vals).to_le_bytes());
            }
            nx.put(&buf)?;
            nnz += x.nnz() as u64;
            progress.cells += x.n_rows();
            progress.bytes = bytes_before + ip.bytes + ix.bytes + dx.bytes + nx.bytes;
        }
        for w in [ip, ix, dx, nx] {
            files.push(w.finish()?);
        }
        let all = crate::preprocess::merge(dropped, &empty);
        // Written last, recorded first (the layout's order).
        files.insert(
            first,
            write_le(&f("dropped"), &all, |v| (v as u64).to_le_bytes())?,
        );
        emptied.push(empty.len());
    }
    Ok((files, emptied))
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

    use super::{cache_key, stale_entries, CACHE_FORMAT_VERSION};
    use crate::tests::fixtures::*;
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
            let mut reader = super::open_entry(&entry, &key, true).unwrap().reader;
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

    /// Why `open_entry` refuses the entry.
    fn unusable(entry: &Path, key: &str) -> super::EntryProblem {
        match super::open_entry(entry, key, true) {
            Err(super::OpenError::Unusable(p)) => p,
            Err(super::OpenError::Env(e)) => panic!("not an entry problem: {e}"),
            Ok(_) => panic!("the entry opened"),
        }
    }

    fn damaged(why: &str) -> super::EntryProblem {
        super::EntryProblem::Damaged(why.into())
    }

    /// Rewrites meta.json with the sizes and checksums the files now have
    /// (an entry consistent with itself, whatever its files hold).
    fn reseal(entry: &Path) {
        let meta_path = entry.join("meta.json");
        let mut meta: super::CacheMeta =
            serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
        for f in &mut meta.files {
            let (bytes, digest) = super::fingerprint::hash_file(&entry.join(&f.name)).unwrap();
            f.bytes = bytes;
            f.xxh3 = format!("{digest:032x}");
        }
        meta.checksum = meta.own_checksum();
        std::fs::write(&meta_path, serde_json::to_string(&meta).unwrap()).unwrap();
    }

    #[test]
    fn damaged_incomplete_or_foreign_entries_are_discarded_and_built_again() {
        let dir = tempfile::tempdir().unwrap();
        let paths = inputs(dir.path());
        let params = PreprocessParams::default().check().unwrap();
        let root = dir.path().join("cache");
        let mut src = Hdf5Source::preprocess(open_all(&paths), &params).unwrap();
        let entry = src.build_cache(&params, &root).unwrap();
        // No temporary directory is left behind.
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
        let want = src.read_cells(1, 0..src.n_cells(1)).unwrap();
        let meta_len = std::fs::metadata(entry.join("meta.json")).unwrap().len();
        let indptr_len = std::fs::metadata(entry.join("0.indptr")).unwrap().len();
        type Damage = Box<dyn Fn(&Path)>;
        let cases: Vec<(Damage, super::EntryProblem)> = vec![
            (
                Box::new(|e| std::fs::remove_file(e.join("meta.json")).unwrap()),
                super::EntryProblem::Incomplete("it has no meta.json".into()),
            ),
            (
                Box::new(|e| {
                    std::fs::remove_dir_all(e).unwrap();
                    std::fs::create_dir(e).unwrap();
                }),
                super::EntryProblem::Incomplete("it has no meta.json".into()),
            ),
            (
                Box::new(|e| {
                    std::fs::remove_dir_all(e).unwrap();
                    std::fs::write(e, b"not an entry").unwrap();
                }),
                damaged("not a directory"),
            ),
            (
                Box::new(|e| {
                    let p = e.join("meta.json");
                    let text = std::fs::read_to_string(&p).unwrap();
                    let v = format!("\"version\":{}", super::CACHE_FORMAT_VERSION);
                    std::fs::write(&p, text.replacen(&v, "\"version\":99", 1)).unwrap();
                }),
                super::EntryProblem::OtherVersion(99),
            ),
            (
                Box::new(|e| {
                    let p = e.join("0.data");
                    let mut bytes = std::fs::read(&p).unwrap();
                    for b in &mut bytes[100..356] {
                        *b ^= 0xa5;
                    }
                    std::fs::write(&p, bytes).unwrap();
                }),
                damaged("0.data: checksum mismatch"),
            ),
            (
                Box::new(|e| std::fs::write(e.join("0.indptr"), [0u8; 12]).unwrap()),
                damaged(&format!("0.indptr: 12 bytes, meta.json records {indptr_len}")),
            ),
            (
                Box::new(|e| std::fs::remove_file(e.join("1.norms")).unwrap()),
                damaged("1.norms: missing"),
            ),
            (
                Box::new(|e| {
                    // A gene renamed: meta.json still parses.
                    let p = e.join("meta.json");
                    let mut meta: serde_json::Value =
                        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                    meta["genes"][0] = "renamed".into();
                    std::fs::write(&p, meta.to_string()).unwrap();
                }),
                damaged("meta.json: checksum mismatch"),
            ),
        ];
        assert_eq!(
            std::fs::metadata(entry.join("meta.json")).unwrap().len(),
            meta_len
        );
        for (damage, problem) in cases {
            damage(&entry);
            match Hdf5Source::from_cache(open_all(&paths), &params, &root).unwrap() {
                CacheLookup::Discarded(ds, d, p) => {
                    assert_eq!((&d, &p), (&entry, &problem));
                    assert!(std::fs::symlink_metadata(&entry).is_err(), "{problem}: removed");
                    let mut s = Hdf5Source::preprocess(ds, &params).unwrap();
                    assert_eq!(s.build_cache(&params, &root).unwrap(), entry);
                }
                other => panic!("{problem}: {other:?}"),
            }
            let CacheLookup::Hit(mut hit, _) =
                Hdf5Source::from_cache(open_all(&paths), &params, &root).unwrap()
            else {
                panic!("{problem}: the rebuilt entry is found");
            };
            assert_eq!(hit.read_cells(1, 0..want.n_rows()).unwrap(), want);
        }
        assert_eq!(
            super::EntryProblem::OtherVersion(99).to_string(),
            format!(
                "was written by cache format version 99 (this inmf reads version {})",
                super::CACHE_FORMAT_VERSION
            )
        );
        assert_eq!(
            damaged("0.data: checksum mismatch").to_string(),
            "is damaged (0.data: checksum mismatch)"
        );
    }

    #[test]
    fn entries_inconsistent_with_themselves_fail_reads_instead_of_mapping_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let paths = inputs(dir.path());
        let params = PreprocessParams::default().check().unwrap();
        let root = dir.path().join("cache");
        let entry = Hdf5Source::preprocess(open_all(&paths), &params)
            .unwrap()
            .build_cache(&params, &root)
            .unwrap();
        let read_all = |expect: &str| match Hdf5Source::from_cache(open_all(&paths), &params, &root).unwrap()
        {
            CacheLookup::Hit(mut s, _) => {
                let n = s.n_cells(0);
                let e = s.read_cells(0, 0..n).unwrap_err();
                assert!(matches!(e, ReaderError::Cache { .. }), "{e}");
                assert!(e.to_string().contains(expect), "{e}");
            }
            other => panic!("the entry is consistent: {other:?}"),
        };
        let indptr = std::fs::read(entry.join("0.indptr")).unwrap();
        std::fs::write(entry.join("0.indptr"), [0u8; 12]).unwrap();
        reseal(&entry);
        read_all("shorter than it must be (damaged entry");
        // Data files shorter than the row pointers say: an error before
        // anything is mapped (reading a mapping past the end of its file
        // would kill the process).
        std::fs::write(entry.join("0.indptr"), indptr).unwrap();
        let indices = std::fs::read(entry.join("0.indices")).unwrap();
        std::fs::write(entry.join("0.indices"), &indices[..indices.len() / 2]).unwrap();
        reseal(&entry);
        read_all("past the end of the data files");
        std::fs::write(entry.join("0.indices"), indices).unwrap();
        // Missing cell norms: the same.
        let norms = std::fs::read(entry.join("0.norms")).unwrap();
        std::fs::write(entry.join("0.norms"), &norms[..norms.len() - 8]).unwrap();
        reseal(&entry);
        read_all("shorter than it must be (damaged entry");
        std::fs::write(entry.join("0.norms"), norms).unwrap();
        reseal(&entry);
        let CacheLookup::Hit(mut whole, _) =
            Hdf5Source::from_cache(open_all(&paths), &params, &root).unwrap()
        else {
            panic!("the entry is complete");
        };
        let n = whole.n_cells(0);
        whole.read_cells(0, 0..n).expect("the entry is whole again");
    }

    #[test]
    fn one_count_rewritten_in_place_changes_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let paths = inputs(dir.path());
        let params = PreprocessParams::default().check().unwrap();
        let key_before = cache_key(&open_all(&paths), &params).unwrap();
        let size = std::fs::metadata(&paths[0]).unwrap().len();
        {
            let f = hdf5::File::open_rw(&paths[0]).unwrap();
            let data = f.dataset("X/data").unwrap();
            let mut values: Vec<f64> = data.read_raw().unwrap();
            values[10] += 1.0;
            data.write_raw(&values).unwrap();
        }
        assert_eq!(std::fs::metadata(&paths[0]).unwrap().len(), size, "same size");
        assert_ne!(cache_key(&open_all(&paths), &params).unwrap(), key_before);
        // Renaming the datasets keeps the key.
        let renamed: Vec<Dataset> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let opts = OpenOptions {
                    name: Some(format!("other{i}")),
                    ..OpenOptions::default()
                };
                open(p, &opts).unwrap()
            })
            .collect();
        assert_eq!(
            cache_key(&renamed, &params).unwrap(),
            cache_key(&open_all(&paths), &params).unwrap()
        );
        // An entry built under the files' own names serves the renamed
        // datasets under their new names, and the report says so.
        let root = dir.path().join("cache");
        Hdf5Source::preprocess(open_all(&paths), &params)
            .unwrap()
            .build_cache(&params, &root)
            .unwrap();
        let CacheLookup::Hit(hit, _) = Hdf5Source::from_cache(renamed, &params, &root).unwrap() else {
            panic!("renaming reuses the entry");
        };
        assert_eq!(hit.dataset_names(), ["other0", "other1"]);
        for (i, r) in hit.report().datasets.iter().enumerate() {
            assert_eq!(
                (r.name.as_str(), r.path.as_path()),
                (hit.dataset_names()[i].as_str(), paths[i].as_path())
            );
        }
        let meta = std::fs::read_to_string(
            root.join(cache_key(&open_all(&paths), &params).unwrap())
                .join("meta.json"),
        )
        .unwrap();
        assert!(
            !meta.contains("\"d0\"") && !meta.contains("d0.h5ad"),
            "no names or paths in the entry: {meta}"
        );
    }

    /// Delegates to a preprocessed source; the `fail_on`-th block read fails.
    /// Fails the read of the block with index `fail_on` (0-based, in
    /// writing order).
    struct FailingReads {
        inner: Hdf5Source,
        fail_on: (usize, usize),
    }

    impl super::SharedBlocks for FailingReads {
        fn n_cells(&self, dataset: usize) -> usize {
            super::SharedBlocks::n_cells(&self.inner, dataset)
        }
        fn block(
            &self,
            dataset: usize,
            cells: std::ops::Range<usize>,
        ) -> Result<inmf_learner::CsrMatrix, ReaderError> {
            if (dataset, cells.start) == self.fail_on {
                return Err(ReaderError::Cache {
                    path: "injected".into(),
                    message: "read failure".into(),
                });
            }
            super::SharedBlocks::block(&self.inner, dataset, cells)
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
            report: inner.report().clone(),
            n_total: vec![150, 150],
            index_bytes: 2,
            files: Vec::new(),
            checksum: String::new(),
        };
        let per = vec![(Vec::new(), Vec::new(), Vec::new()); 2];
        // The second dataset's block fails after the first one was written.
        let mut src = FailingReads {
            inner,
            fail_on: (1, 0),
        };
        let root = dir.path().join("new").join("cache");
        let err = super::build_entry(&src, &root, &meta, &per, 0).unwrap_err();
        assert!(err.to_string().contains("read failure"), "{err}");
        assert!(
            !dir.path().join("new").exists(),
            "no entry, no temporary, and the directories the build created are gone"
        );
        // In an existing cache directory, only the temporary goes.
        std::fs::create_dir_all(&root).unwrap();
        super::build_entry(&src, &root, &meta, &per, 0).unwrap_err();
        assert_eq!(
            std::fs::read_dir(&root).unwrap().count(),
            0,
            "no entry, no temporary"
        );
        // Without the failure the same call builds the entry.
        src.fail_on = (usize::MAX, 0);
        let (built, ours) = super::build_entry(&src, &root, &meta, &per, 0).unwrap();
        assert!(ours && built.join("meta.json").exists());
    }

    /// Delegates to a preprocessed source; records the names in `root`
    /// at the first block read (while the entry is being built).
    struct Peeking {
        inner: Hdf5Source,
        root: std::path::PathBuf,
        seen: std::sync::Mutex<Option<Vec<String>>>,
    }

    impl super::SharedBlocks for Peeking {
        fn n_cells(&self, dataset: usize) -> usize {
            super::SharedBlocks::n_cells(&self.inner, dataset)
        }
        fn block(
            &self,
            dataset: usize,
            cells: std::ops::Range<usize>,
        ) -> Result<inmf_learner::CsrMatrix, ReaderError> {
            let mut seen = self.seen.lock().unwrap();
            if seen.is_none() {
                let names = std::fs::read_dir(&self.root)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                *seen = Some(names);
            }
            drop(seen);
            super::SharedBlocks::block(&self.inner, dataset, cells)
        }
    }

    #[test]
    fn an_entry_being_built_carries_its_builders_pid_and_records_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let paths = inputs(dir.path());
        let params = PreprocessParams::default().check().unwrap();
        let inner = Hdf5Source::preprocess(open_all(&paths), &params).unwrap();
        let n_total = (0..2).map(|d| inner.cell_map(d).n_total()).collect();
        let meta = super::CacheMeta {
            version: super::CACHE_FORMAT_VERSION,
            key: "0123456789abcdef0123456789abcdef".into(),
            genes: inner.genes().to_vec(),
            report: inner.report().clone(),
            n_total,
            index_bytes: 2,
            files: Vec::new(),
            checksum: String::new(),
        };
        let per: Vec<super::DatasetPrep> = (0..2)
            .map(|d| {
                (
                    inner.cell_map(d).dropped().to_vec(),
                    (0..inner.n_genes()).map(Some).collect(),
                    inner.scale_factors(d).to_vec(),
                )
            })
            .collect();
        let root = dir.path().join("cache");
        let src = Peeking {
            inner,
            root: root.clone(),
            seen: std::sync::Mutex::new(None),
        };
        let (entry, ours) = super::build_entry(&src, &root, &meta, &per, 0).unwrap();
        assert!(ours);
        let seen = src.seen.into_inner().unwrap().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0], format!(".tmp-{}-{}", meta.key, std::process::id()));
        assert_eq!(super::stale::temporary_owner(&seen[0]), Some(std::process::id()));
        // meta.json lists every file with its size and checksum.
        let on_disk: super::CacheMeta =
            serde_json::from_str(&std::fs::read_to_string(entry.join("meta.json")).unwrap()).unwrap();
        assert_eq!(on_disk.files.len(), 2 * super::DATASET_FILES.len());
        for f in &on_disk.files {
            let (bytes, digest) = super::fingerprint::hash_file(&entry.join(&f.name)).unwrap();
            assert_eq!(
                (bytes, format!("{digest:032x}")),
                (f.bytes, f.xxh3.clone()),
                "{}",
                f.name
            );
        }
        assert_eq!(on_disk.checksum, on_disk.own_checksum());
        super::open_entry(&entry, &meta.key, true).expect("the entry opens");
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
                report: src.report().clone(),
                n_total: n_cells.clone(),
                index_bytes,
                files: Vec::new(),
                checksum: String::new(),
            };
            let root = dir.path().join(format!("cache{index_bytes}"));
            let (entry, _) = super::build_entry(&src, &root, &meta, &per, 0).unwrap();
            let indices = std::fs::metadata(entry.join("0.indices")).unwrap().len();
            let data = std::fs::metadata(entry.join("0.data")).unwrap().len();
            assert_eq!(
                indices * 4,
                data * u64::from(index_bytes),
                "{index_bytes}-byte indices on disk"
            );
            let mut reader = super::open_entry(&entry, &meta.key, true).unwrap().reader;
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
            // An entry with another index size is damaged, even with a
            // consistent checksum.
            let meta_path = entry.join("meta.json");
            let on_disk: super::CacheMeta =
                serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
            let mut bad = on_disk.clone();
            bad.index_bytes = 3;
            bad.checksum = bad.own_checksum();
            std::fs::write(&meta_path, serde_json::to_string(&bad).unwrap()).unwrap();
            assert_eq!(
                unusable(&entry, &meta.key),
                damaged(&format!(
                    "meta.json: 3-byte column indices for {} genes",
                    meta.genes.len()
                ))
            );
            // So is one without the field.
            let mut raw = serde_json::to_value(&on_disk).unwrap();
            raw.as_object_mut().unwrap().remove("index_bytes");
            std::fs::write(&meta_path, raw.to_string()).unwrap();
            let super::EntryProblem::Damaged(why) = unusable(&entry, &meta.key) else {
                panic!("an entry without index_bytes is damaged");
            };
            assert!(why.contains("index_bytes"), "{why}");
        }
    }
}
