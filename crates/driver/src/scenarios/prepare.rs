//! From the `[preprocess]` configuration to opened, preprocessed inputs.

use std::path::{Path, PathBuf};

use inmf_reader::{
    describe_removed, fingerprint_datasets, open, remove_stale_temporaries, CacheLookup,
    CheckedPreprocessParams, Combine, Dataset, GeneKey, GeneSelection, Hdf5Source, MatrixLocation,
    OpenOptions, PreprocessParams,
};

use crate::config::{PreprocessConfig, RuntimeConfig};
use crate::error::DriverError;
use crate::scenarios::run::InputSpec;

/// Parses `X`, `raw` or `layer:NAME`.
pub fn matrix_location(s: &str) -> Result<MatrixLocation, DriverError> {
    match s {
        "X" | "x" => Ok(MatrixLocation::X),
        "raw" | "raw/X" => Ok(MatrixLocation::Raw),
        _ => match s.strip_prefix("layer:").or_else(|| s.strip_prefix("layers/")) {
            Some(name) if !name.is_empty() => Ok(MatrixLocation::Layer(name.to_string())),
            _ => Err(DriverError::InvalidParameter(format!(
                "matrix {s:?} is not one of X, raw, layer:NAME"
            ))),
        },
    }
}

/// Parses `name` or `id` (how genes are matched across datasets).
pub fn gene_key(s: &str) -> Result<GeneKey, DriverError> {
    match s {
        "name" | "names" => Ok(GeneKey::Name),
        "id" | "ids" => Ok(GeneKey::Id),
        _ => Err(DriverError::InvalidParameter(format!(
            "match_genes {s:?} is not \"name\" or \"id\""
        ))),
    }
}

/// Reads a gene list: one name per line, blank lines and `#` comments skipped.
pub fn read_gene_list(path: &Path) -> Result<Vec<String>, DriverError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        DriverError::parameter_file(
            "the gene list",
            path,
            &e,
            "check the path given with --genes or as genes_file in the [preprocess] table of the \
             --config file (relative paths start from the current directory)",
        )
    })?;
    let genes: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if genes.is_empty() {
        return Err(DriverError::InvalidParameter(format!(
            "gene list {} names no gene",
            path.display()
        )));
    }
    Ok(genes)
}

/// Whether and where the preprocessed cache is used.
#[derive(Debug, Clone)]
pub enum CacheUse {
    /// No cache: every epoch decodes the inputs.
    Off,
    /// An entry existed and is being used: its directory, its size in
    /// bytes, and the seconds its lookup took (checking every file's
    /// checksum).
    Reused(PathBuf, u64, f64),
    /// No entry yet: [`finish_cache`] builds it under this root.
    ToBuild(PathBuf, CheckedPreprocessParams),
}

impl CacheUse {
    /// One line for the log.
    pub fn describe(&self) -> String {
        match self {
            CacheUse::Off => "preprocessed cache: off".into(),
            CacheUse::Reused(d, bytes, seconds) => format!(
                "preprocessed cache: reused {} ({:.1} MB checked in {seconds:.2} s, {:.2} GB/s)",
                d.display(),
                *bytes as f64 / 1e6,
                *bytes as f64 / 1e9 / seconds.max(1e-9)
            ),
            CacheUse::ToBuild(r, _) => format!("preprocessed cache: building under {}", r.display()),
        }
    }
}

/// Opens every input read-only and runs the preprocessing passes (§9);
/// what the reader remarks about an input (e.g. a genome option that does
/// not apply to it) is printed on stderr as a warning line.
/// `given_genes` (a model's genes) replaces gene selection; otherwise the
/// configuration's `genes_file`, if set, does. With `cache_root`, a
/// complete cache entry of the same inputs and parameters is used instead
/// of the statistics pass; without one, [`finish_cache`] builds it later
/// (after the caller validated what depends on the data).
/// [`open_inputs`] then [`preprocess_inputs`].
pub fn open_and_preprocess(
    inputs: &[InputSpec],
    cfg: &PreprocessConfig,
    given_genes: Option<&[String]>,
    cache_root: Option<&Path>,
) -> Result<(Hdf5Source, CacheUse), DriverError> {
    preprocess_inputs(open_inputs(inputs, cfg, given_genes)?, cache_root, false)
}

/// The genes `cfg`'s selection keeps on `inputs` (one statistics pass per
/// input; no cells pass, no cache).
pub fn selected_genes(inputs: &[InputSpec], cfg: &PreprocessConfig) -> Result<Vec<String>, DriverError> {
    let OpenedInputs { datasets, params } = open_inputs(inputs, cfg, None)?;
    Ok(Hdf5Source::preprocess_for_cache(datasets, &params)?
        .genes()
        .to_vec())
}

/// The inputs of a run, opened read-only, with the run's preprocessing
/// parameters.
pub struct OpenedInputs {
    /// One per input, in order.
    pub datasets: Vec<Dataset>,
    params: CheckedPreprocessParams,
}

impl OpenedInputs {
    /// Computes every input's content fingerprint (the whole files, hashed
    /// in parallel; see inmf-reader's `fingerprint.rs`) and returns a line
    /// for the log with their size and the hashing time and rate.
    pub fn fingerprint(&self) -> Result<String, DriverError> {
        let t = std::time::Instant::now();
        let refs: Vec<&Dataset> = self.datasets.iter().collect();
        fingerprint_datasets(&refs)?;
        let seconds = t.elapsed().as_secs_f64();
        let bytes: u64 = self
            .datasets
            .iter()
            .filter_map(|d| std::fs::metadata(d.path()).ok())
            .map(|m| m.len())
            .sum();
        let size = if bytes >= 1_000_000_000 {
            format!("{:.2} GB", bytes as f64 / 1e9)
        } else {
            format!("{:.1} MB", bytes as f64 / 1e6)
        };
        Ok(format!(
            "input fingerprints: {} file{}, {size} hashed in {seconds:.2} s ({:.2} GB/s)",
            self.datasets.len(),
            if self.datasets.len() == 1 { "" } else { "s" },
            bytes as f64 / 1e9 / seconds.max(1e-9)
        ))
    }
}

/// Opens every input read-only and checks the preprocessing parameters
/// (see [`open_and_preprocess`]).
pub fn open_inputs(
    inputs: &[InputSpec],
    cfg: &PreprocessConfig,
    given_genes: Option<&[String]>,
) -> Result<OpenedInputs, DriverError> {
    cfg.check(given_genes.is_none())?;
    let matrix = matrix_location(&cfg.matrix)?;
    let genes = match (given_genes, &cfg.genes_file) {
        (Some(g), _) => Some(g.to_vec()),
        (None, Some(p)) => Some(read_gene_list(p)?),
        (None, None) => None,
    };
    let combine = match cfg.combine.as_str() {
        "union" => Combine::Union,
        "intersection" => Combine::Intersection,
        other => {
            return Err(DriverError::InvalidParameter(format!(
                "combine {other:?} is not \"union\" or \"intersection\""
            )))
        }
    };
    let params = PreprocessParams {
        selection: GeneSelection {
            alpha: cfg.alpha,
            var_thresh: cfg.var_thresh,
            n_genes: (cfg.n_genes > 0).then_some(cfg.n_genes),
            combine,
        },
        genes,
        match_genes: gene_key(&cfg.match_genes)?,
        min_genes_present: cfg.min_genes_present,
        ..PreprocessParams::default()
    }
    .check()?;
    let datasets = inputs
        .iter()
        .map(|i| {
            let opts = OpenOptions {
                matrix: matrix.clone(),
                name: Some(i.name.clone()),
                genome: cfg.genome.clone(),
                ..OpenOptions::default()
            };
            open(&i.path, &opts)
        })
        .collect::<Result<Vec<_>, _>>()?;
    for d in &datasets {
        for note in d.notes() {
            crate::log::line(&format!("warning: {}: {note}", d.path().display()));
        }
    }
    Ok(OpenedInputs { datasets, params })
}

/// Preprocesses opened inputs, through the cache under `cache_root` if
/// given (see [`open_and_preprocess`]). Before the lookup, temporaries that
/// killed runs left in the cache directory are removed (said on stderr
/// unless `quiet`); an entry found damaged is reported on stderr, removed
/// and built again later ([`finish_cache`]).
pub fn preprocess_inputs(
    opened: OpenedInputs,
    cache_root: Option<&Path>,
    quiet: bool,
) -> Result<(Hdf5Source, CacheUse), DriverError> {
    let OpenedInputs { datasets, params } = opened;
    let Some(root) = cache_root else {
        return Ok((Hdf5Source::preprocess(datasets, &params)?, CacheUse::Off));
    };
    if let Some(line) = describe_removed(&remove_stale_temporaries(root)) {
        if !quiet {
            crate::log::line(&format!("preprocessed cache: {line}"));
        }
    }
    let t = std::time::Instant::now();
    let datasets = match Hdf5Source::from_cache(datasets, &params, root)? {
        CacheLookup::Hit(src, dir) => {
            let seconds = t.elapsed().as_secs_f64();
            let bytes = std::fs::read_dir(&dir)
                .map(|files| {
                    files
                        .flatten()
                        .filter_map(|f| f.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0);
            return Ok((*src, CacheUse::Reused(dir, bytes, seconds)));
        }
        CacheLookup::Miss(datasets) => datasets,
        CacheLookup::Discarded(datasets, dir, problem) => {
            crate::log::line(&format!(
                "preprocessed cache: entry {} {problem}; rebuilding it",
                dir.display()
            ));
            datasets
        }
    };
    // The build finds the cells without counts in the selected genes (no
    // pass of their own); the caller builds before reading any cell.
    Ok((
        Hdf5Source::preprocess_for_cache(datasets, &params)?,
        CacheUse::ToBuild(root.to_path_buf(), params),
    ))
}

/// Builds the cache entry if [`open_and_preprocess`] asked for it; the
/// source then serves from it, kept mapped whole if its non-zeros take at
/// most `rt.keep_mapped_mb` MiB. Returns the log line.
pub fn finish_cache(
    source: &mut Hdf5Source,
    cache: CacheUse,
    rt: &RuntimeConfig,
) -> Result<String, DriverError> {
    source.keep_cache_mapped_up_to(rt.keep_mapped_mb.saturating_mul(1 << 20));
    let mut line = finish_cache_line(source, cache)?;
    if let (true, Some(bytes)) = (source.cache_kept_mapped(), source.cache_nonzero_bytes()) {
        line += &format!(
            "\n  its {:.1} MB of non-zeros stay memory-mapped for the run (page cache, counted in the \
             resident set; runtime.keep_mapped_mb = {} sets the limit)",
            bytes as f64 / 1e6,
            rt.keep_mapped_mb
        );
    }
    Ok(line)
}

fn finish_cache_line(source: &mut Hdf5Source, cache: CacheUse) -> Result<String, DriverError> {
    match cache {
        CacheUse::ToBuild(root, params) => {
            let t = std::time::Instant::now();
            let dir = source.build_cache(&params, &root)?;
            let mut line = format!(
                "preprocessed cache: built {} in {:.2} s",
                dir.display(),
                t.elapsed().as_secs_f64()
            );
            let stale = inmf_reader::stale_cache_entries(&root);
            if !stale.is_empty() {
                let bytes: u64 = stale.iter().map(|s| s.1).sum();
                line += &format!(
                    "\n  {} entr{} of an older cache format ({:.1} MB) in {} will not be read again \
                     by this version; delete {} to free the space: {}",
                    stale.len(),
                    if stale.len() == 1 { "y" } else { "ies" },
                    bytes as f64 / 1e6,
                    root.display(),
                    if stale.len() == 1 { "it" } else { "them" },
                    stale
                        .iter()
                        .map(|s| s.0.file_name().unwrap_or_default().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            Ok(line)
        }
        other => Ok(other.describe()),
    }
}

/// The cache root of a run writing to `out_dir`: `runtime.cache_dir` if
/// set, else `.inmf-cache` beside the output directory; None when disabled.
pub fn cache_root(rt: &RuntimeConfig, out_dir: &Path) -> Option<PathBuf> {
    if !rt.cache {
        return None;
    }
    Some(rt.cache_dir.clone().unwrap_or_else(|| {
        let parent = out_dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        parent.join(".inmf-cache")
    }))
}
