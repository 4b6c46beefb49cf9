//! The reader's typed errors: each says what went wrong, where (file, HDF5
//! object, cells) and what to do about it.

use std::ops::Range;
use std::path::PathBuf;

use thiserror::Error;

/// Everything opening, validating, preprocessing or reading an input can
/// fail at. Every variant names the file and, where known, the HDF5 object
/// and the cell (0-based index in the file) concerned.
#[derive(Debug, Error)]
pub enum ReaderError {
    /// The input file does not exist.
    #[error(
        "input file {path} does not exist. Check the path (it is resolved relative to the \
         current directory) and that the file was copied completely."
    )]
    NotFound {
        /// The input file.
        path: PathBuf,
    },

    /// The operating system refused to read the file. The message leaves
    /// the operating system's words to the error's source, so a `{:#}`
    /// chain prints them once, after it.
    #[error("cannot read input file {path} (check its permissions and that it is a regular file)")]
    Io {
        /// The input file.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },

    /// Writing or reading the preprocessed cache failed.
    #[error(
        "preprocessed cache {path}: {message}. Check free space and permissions of the cache \
         directory (--cache DIR), or run without the cache (--no-cache)."
    )]
    Cache {
        /// The cache file or directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },

    /// The disk holding the preprocessed cache filled up while an entry was
    /// being built (the partial entry was removed).
    #[error(
        "preprocessed cache {path}: the disk is full (no space left on device) while building a \
         cache entry{}. Free space there, choose a cache directory on a disk with room \
         (--cache DIR), or run without the cache (--no-cache).",
        needs(*needed_bytes)
    )]
    CacheDiskFull {
        /// The cache directory.
        path: PathBuf,
        /// About how many bytes the entry needs (0: unknown).
        needed_bytes: u64,
    },

    /// A cache entry that cannot be used could not be removed either.
    #[error(
        "preprocessed cache: entry {path} {problem} and cannot be removed ({error}). Delete it \
         (`rm -r {path}`) and run again, or run without the cache (--no-cache).",
        path = path.display()
    )]
    CacheEntryUnremovable {
        /// The entry's directory.
        path: PathBuf,
        /// Why it cannot be used ("is damaged (0.data: checksum mismatch)").
        problem: String,
        /// The operating system's refusal (in the message, printed once).
        error: std::io::Error,
    },

    /// The file carries no HDF5 signature (it is, e.g., a CSV, an .rds, a
    /// Matrix Market file or a truncated download).
    #[error(
        "{path} is not an HDF5 file (no HDF5 signature found). inmf reads AnnData .h5ad, 10x \
         Genomics .h5, loom and LIGER .h5 files; convert a Matrix Market directory first with \
         `inmf import DIR --out FILE.h5ad`, or re-download the file if it is truncated."
    )]
    NotHdf5 {
        /// The input file.
        path: PathBuf,
    },

    /// The expected matrix is not in the file.
    #[error(
        "{path} has no count matrix at `{object}` (objects found: {}). An AnnData .h5ad needs \
         `X` (or `raw/X`, `layers/<name>` when asked for); a 10x Genomics .h5 needs `matrix/` \
         (Cell Ranger 3+) or one genome group (Cell Ranger 2; choose one with --genome); a loom \
         file needs `matrix` (or `layers/<name>`). Choose the matrix with the matrix option, or \
         re-write the file with anndata/Cell Ranger.",
        list(found)
    )]
    NoMatrix {
        /// The input file.
        path: PathBuf,
        /// The HDF5 object that was looked for.
        object: String,
        /// What the file does contain at the level searched.
        found: Vec<String>,
    },

    /// A part of the file the layout requires (gene or cell names, a matrix
    /// array) is missing.
    #[error(
        "{path} has no `{object}` ({what}). The file does not follow the AnnData / 10x \
         Genomics layout; re-write it with anndata or Cell Ranger."
    )]
    MissingObject {
        /// The input file.
        path: PathBuf,
        /// The HDF5 object that was looked for.
        object: String,
        /// What it should hold.
        what: String,
    },

    /// The matrix is stored in a layout this reader does not read (yet).
    #[error(
        "{path}: the matrix `{object}` is stored as {found}, which inmf does not read (it reads \
         csr_matrix, csc_matrix and 2-D dense arrays of numbers). Convert and re-write it, e.g. \
         in Python: `adata.X = scipy.sparse.csr_matrix(adata.X); adata.write_h5ad(\"out.h5ad\")`."
    )]
    UnsupportedEncoding {
        /// The input file.
        path: PathBuf,
        /// The HDF5 object concerned.
        object: String,
        /// What was found (e.g. "csc_matrix", "a dense array").
        found: String,
    },

    /// An HDF5 dataset or attribute has a data type this reader cannot use.
    #[error(
        "{path}: `{object}` has data type {found}, expected {expected}. The file was probably \
         written by an unusual tool; re-write it with anndata or Cell Ranger."
    )]
    BadDtype {
        /// The input file.
        path: PathBuf,
        /// The HDF5 object concerned.
        object: String,
        /// What the reader accepts.
        expected: String,
        /// What the file holds.
        found: String,
    },

    /// Sizes that must agree do not (e.g. `indptr` length vs the number of cells).
    #[error(
        "{path}: `{object}` has {found}, expected {expected}. The file is inconsistent \
         (truncated or written by a faulty tool); re-write it from the source data."
    )]
    BadShape {
        /// The input file.
        path: PathBuf,
        /// The HDF5 object concerned.
        object: String,
        /// What the other parts of the file imply.
        expected: String,
        /// What the object holds.
        found: String,
    },

    /// A stored count is negative, NaN or infinite.
    #[error(
        "{path}: cell {cell} has the invalid value {value} in `{object}`; counts must be finite \
         and >= 0. Give inmf raw (or at least non-negative) counts: log-transformed or \
         centred/scaled data cannot be factorized by NMF (use `adata.raw` or a counts layer)."
    )]
    InvalidValue {
        /// The input file.
        path: PathBuf,
        /// The HDF5 object (the `data` array).
        object: String,
        /// The cell (0-based, in the file) holding the value.
        cell: usize,
        /// The offending value (as stored, converted to f64).
        value: f64,
    },

    /// The row pointer array is not a valid CSR `indptr`.
    #[error(
        "{path}: `{object}` is not a valid CSR row pointer at cell {cell}: {detail}. The file \
         is corrupt or not CSR; re-write it with anndata."
    )]
    BadIndptr {
        /// The input file.
        path: PathBuf,
        /// The HDF5 object (the `indptr` array).
        object: String,
        /// The cell (0-based, in the file) whose pointer is wrong.
        cell: usize,
        /// What is wrong (e.g. "decreases from 10 to 7").
        detail: String,
    },

    /// A column (gene) index is negative or not below the number of genes.
    #[error(
        "{path}: cell {cell} refers to gene index {index} in `{object}`, but the matrix has \
         {n_genes} genes. The file is corrupt or its gene table does not match the matrix; \
         re-write it with anndata or Cell Ranger."
    )]
    IndexOutOfRange {
        /// The input file.
        path: PathBuf,
        /// The HDF5 object (the `indices` array).
        object: String,
        /// The cell (0-based, in the file) holding the index.
        cell: usize,
        /// The offending index.
        index: i128,
        /// Number of genes (columns) of the matrix.
        n_genes: usize,
    },

    /// No feature of the requested type is in a 10x file (or Matrix Market
    /// directory).
    #[error("{}", no_features(path, object, wanted, found))]
    NoFeatures {
        /// The input file.
        path: PathBuf,
        /// The HDF5 object (`matrix/features/feature_type`) or column.
        object: String,
        /// The requested feature type.
        wanted: String,
        /// The feature types present.
        found: Vec<String>,
    },

    /// A 10x file holds several genomes and the one asked for is not among
    /// them, or none was asked for where one must be chosen (Cell Ranger 2).
    #[error(
        "{path} holds several genomes ({}, in `{object}`){}. Choose the one to read with \
         --genome NAME (or `genome = \"NAME\"` in the [preprocess] table of a --config file).",
        list(found),
        wanted.as_ref().map(|w| format!(" and none is \"{w}\"")).unwrap_or_default()
    )]
    NoGenome {
        /// The input file.
        path: PathBuf,
        /// Where the genomes are (`matrix/features/genome`, or the top-level
        /// groups of a Cell Ranger 2 file).
        object: String,
        /// The genome asked for, if any.
        wanted: Option<String>,
        /// The genomes present.
        found: Vec<String>,
    },

    /// The datasets have no gene name in common.
    #[error(
        "the inputs share no gene names: {}. Genes are matched by name across datasets (or by \
         id with --match-genes id); check that all files use the same naming (symbols vs Ensembl \
         IDs, species, upper/lower case), match by id if the files carry gene ids, or rename the \
         genes of the odd file (e.g. `adata.var_names = adata.var[\"gene_ids\"]`).",
        list_paths(paths)
    )]
    NoSharedGenes {
        /// All input files of the run.
        paths: Vec<PathBuf>,
    },

    /// Genes requested by the caller (e.g. a saved model's genes) are missing
    /// from a file: a smaller fraction than `min_present` of them is there,
    /// or none at all.
    #[error(
        "{path} lacks {missing} of the {requested} requested genes (e.g. {}): {}. Missing genes \
         are treated as zeros, but too many make the dataset incomparable with the model; check \
         the gene naming of this file (symbols vs Ensembl ids, species){}",
        list(examples),
        present_words(*missing, *requested, *min_present),
        if missing < requested {
            ", or lower the fraction required with `min_genes_present = 0.2` (say) in the \
             [preprocess] table of a --config file."
        } else {
            "."
        }
    )]
    MissingGenes {
        /// The input file.
        path: PathBuf,
        /// How many requested genes are absent.
        missing: usize,
        /// How many genes were requested.
        requested: usize,
        /// Up to ten of the absent names.
        examples: Vec<String>,
        /// The fraction of the requested genes a file must have
        /// (`min_genes_present`).
        min_present: f64,
    },

    /// Gene selection kept no gene.
    #[error(
        "gene selection kept no gene ({detail}) in {}. Lower the variance threshold \
         (var_thresh, default 0.1), raise alpha, ask for a fixed number of genes (n_genes), or \
         combine datasets by union; also check that the inputs hold raw counts, not \
         normalized or log values.",
        list_paths(paths)
    )]
    NoGenesSelected {
        /// All input files of the run.
        paths: Vec<PathBuf>,
        /// The parameters and per-dataset counts that led to it.
        detail: String,
    },

    /// A dataset has fewer than two cells with non-zero counts (variances need n ≥ 2).
    #[error(
        "{path} has only {kept} cell(s) with non-zero counts ({dropped} all-zero cells \
         dropped); preprocessing needs at least 2. Check that the right matrix was chosen."
    )]
    TooFewCells {
        /// The input file.
        path: PathBuf,
        /// Cells with non-zero counts.
        kept: usize,
        /// All-zero cells dropped.
        dropped: usize,
    },

    /// A parameter is out of its range.
    #[error("invalid parameter {name} = {value}: expected {expected}.")]
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// The value given.
        value: String,
        /// The valid range.
        expected: String,
    },

    /// A read request names a dataset or cells that do not exist (a caller's mistake).
    #[error(
        "{path}: cells {}..{} were requested but the dataset presents {n_cells} cells. This \
         is a bug in the caller's read plan; please report it.",
        range.start, range.end
    )]
    BadRequest {
        /// The input file (empty when the dataset index itself is wrong).
        path: PathBuf,
        /// The cells requested.
        range: Range<usize>,
        /// Cells available.
        n_cells: usize,
    },

    /// A read request names a dataset the source does not have (a caller's mistake).
    #[error(
        "dataset {dataset} was requested but the run has {n_datasets} dataset(s). This is a bug \
         in the caller's read plan; please report it."
    )]
    NoSuchDataset {
        /// The index requested.
        dataset: usize,
        /// Datasets in the run.
        n_datasets: usize,
    },

    /// A structure of the file is inconsistent in a way the other variants
    /// do not describe (a CSC column pointer, a feature index of a LIGER
    /// file, a categorical code).
    #[error(
        "{path}: `{object}` is corrupt: {detail}. The file is inconsistent (truncated or written \
         by a faulty tool); re-write it from the source data."
    )]
    Corrupt {
        /// The input file.
        path: PathBuf,
        /// The HDF5 object (or text file line) concerned.
        object: String,
        /// What is wrong.
        detail: String,
    },

    /// A temporary file (the CSR copy of a CSC matrix, the external sort of
    /// a Matrix Market file) could not be written or read back.
    #[error(
        "temporary file in {path}: {error}. Check the free space and permissions of that \
         directory, or choose another one (the temp-dir option, or the TMPDIR variable)."
    )]
    Temp {
        /// The directory of the temporary file.
        path: PathBuf,
        /// The operating-system error (in the message, printed once).
        error: std::io::Error,
    },

    /// Genes were to be matched by id but a file has no gene ids.
    #[error(
        "{path} has no gene ids (looked for 10x `features/id`, Cell Ranger 2 `genes`, AnnData \
         `var/gene_ids`, loom `row_attrs/Accession`), so genes cannot be matched by id. Match by \
         name (--match-genes name) or add the ids to the file."
    )]
    NoGeneIds {
        /// The input file.
        path: PathBuf,
    },

    /// A Matrix Market directory or one of its files is malformed.
    #[error(
        "{path}{}: {detail}. Matrix Market input needs `matrix.mtx[.gz]` (coordinate, integer, \
         real or pattern, general), `features.tsv[.gz]` or `genes.tsv[.gz]` and \
         `barcodes.tsv[.gz]` as Cell Ranger writes them; fix or re-export the directory.",
        line.map(|l| format!(" line {l}")).unwrap_or_default()
    )]
    BadMtx {
        /// The file (or directory) concerned.
        path: PathBuf,
        /// The 1-based line number, when one line is at fault.
        line: Option<u64>,
        /// What is wrong.
        detail: String,
    },

    /// A Matrix Market file is not ordered by cell. Returned only by
    /// [`crate::MtxDir::cells`] in [`crate::MtxOrder::AsStored`] mode, as
    /// the signal to start again with [`crate::MtxOrder::SortByCell`].
    #[error(
        "{path} line {line}: the entries are not ordered by cell (cell {cell} follows cell \
         {previous}); they must be sorted first (inmf import does this by itself)."
    )]
    MtxUnsorted {
        /// The matrix file.
        path: PathBuf,
        /// The 1-based line of the first entry out of order.
        line: u64,
        /// Its cell (0-based).
        cell: usize,
        /// The cell before it (0-based).
        previous: usize,
    },

    /// A dataset is compressed with a filter this build cannot decode (no
    /// built-in or registered filter, no HDF5 plugin for it).
    #[error(
        "{path}: `{object}` is compressed with filter {id} ({name}) that this build of inmf cannot \
         decode. Re-write the file with gzip or no compression, e.g. in Python \
         `adata.write_h5ad(path, compression='gzip')` (scanpy reads 10x and loom files into such an \
         `adata`), or make an HDF5 plugin for the filter available through the HDF5_PLUGIN_PATH \
         variable."
    )]
    UnsupportedFilter {
        /// The input file.
        path: PathBuf,
        /// The dataset concerned.
        object: String,
        /// The HDF5 filter id.
        id: i32,
        /// Its common name (e.g. "zstd"), or "an unregistered filter".
        name: String,
    },

    /// The HDF5 library reported an error.
    #[error(
        "HDF5 error in {path} at `{object}`: {error}. The file may be corrupt, truncated or \
         locked by another program (a writer that is still running)."
    )]
    Hdf5 {
        /// The input file.
        path: PathBuf,
        /// The HDF5 object being accessed.
        object: String,
        /// The library's error (part of the message, not a separate
        /// source, so `{:#}` chains print it once).
        error: hdf5::Error,
    },
}

/// The message of [`ReaderError::NoFeatures`]: what inmf reads, what the
/// file has, and what that suggests.
fn no_features(path: &std::path::Path, object: &str, wanted: &str, found: &[String]) -> String {
    let mut s = format!(
        "{}: no feature in `{object}` has type \"{wanted}\" (types present: {}). ",
        path.display(),
        list(found)
    );
    if wanted == "Gene Expression" {
        s.push_str(
            "inmf reads the \"Gene Expression\" features of 10x files and this file has none: it is \
             probably an antibody-capture (CITE-seq) or CRISPR-guide library alone; give the \
             gene-expression file of the same sample instead.",
        );
    } else if wanted.contains("\" and genome \"") {
        s.push_str("No feature of that genome has that type; choose another genome with --genome NAME.");
    } else {
        s.push_str("Ask for one of the types present.");
    }
    s
}

/// "only 49.5 % of them are present, below min_genes_present = 0.5", or
/// "none of them is present".
fn present_words(missing: usize, requested: usize, min_present: f64) -> String {
    if missing >= requested {
        return "none of them is present".to_owned();
    }
    let present = (requested - missing) as f64 / requested.max(1) as f64;
    format!(
        "only {:.1} % of them are present, below the fraction required, min_genes_present = \
         {min_present}",
        100.0 * present
    )
}

impl ReaderError {
    /// True when the user can fix the failure by changing the inputs or
    /// parameters (a file that is missing, not a count matrix, corrupt,
    /// inconsistent, or parameters out of range); false for failures of the
    /// environment: the preprocessed cache (I/O, a full disk, permissions,
    /// an entry that cannot be removed) and temporary files.
    pub fn is_input_error(&self) -> bool {
        !matches!(
            self,
            ReaderError::Cache { .. }
                | ReaderError::CacheDiskFull { .. }
                | ReaderError::CacheEntryUnremovable { .. }
                | ReaderError::Temp { .. }
        )
    }
}

/// " that needs about N MB", or nothing when unknown.
fn needs(bytes: u64) -> String {
    if bytes == 0 {
        String::new()
    } else {
        format!(" that needs about {:.1} MB", bytes as f64 / 1e6)
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    let mut s = items
        .iter()
        .take(20)
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > 20 {
        s.push_str(&format!(" and {} more", items.len() - 20));
    }
    s
}

fn list_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_of_the_cache_and_temporary_files_are_not_input_errors() {
        let io = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let environment = [
            ReaderError::Cache {
                path: "c".into(),
                message: "Read-only file system".into(),
            },
            ReaderError::CacheDiskFull {
                path: "c".into(),
                needed_bytes: 43_000_000,
            },
            ReaderError::CacheEntryUnremovable {
                path: "c/k".into(),
                problem: "is damaged (0.data: checksum mismatch)".into(),
                error: io(),
            },
            ReaderError::Temp {
                path: "t".into(),
                error: io(),
            },
        ];
        for e in &environment {
            assert!(!e.is_input_error(), "{e}");
        }
        let input = [
            ReaderError::NotFound {
                path: "a.h5ad".into(),
            },
            ReaderError::NotHdf5 { path: "a.csv".into() },
            ReaderError::InvalidParameter {
                name: "alpha",
                value: "2".into(),
                expected: "(0, 1)".into(),
            },
            ReaderError::Io {
                path: "a.h5ad".into(),
                source: io(),
            },
        ];
        for e in &input {
            assert!(e.is_input_error(), "{e}");
        }
        let full = environment[1].to_string();
        assert!(
            full.starts_with("preprocessed cache c: the disk is full")
                && full.contains("needs about 43.0 MB")
                && full.contains("--no-cache"),
            "{full}"
        );
        let unknown = ReaderError::CacheDiskFull {
            path: "c".into(),
            needed_bytes: 0,
        };
        assert!(!unknown.to_string().contains("needs about"), "{unknown}");
    }
}
