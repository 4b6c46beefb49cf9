//! `inmf analyze`: from a run's factors to answers (docs/algorithms.md §10).
//!
//! Reads `RUN_DIR/result.h5ad` (H = `obsm['X_inmf']`, `obs['dataset']`,
//! the objective per epoch), runs [`inmf_analysis::analyze`] (quantile
//! normalization, kNN graph, clusters, UMAP, metrics), writes the plots, and
//! adds to `result.h5ad`:
//!
//! | element | content |
//! |---|---|
//! | `obsm['X_inmf_norm']` | quantile-normalized H, cells × K, float64 |
//! | `obsm['X_umap']` | UMAP layout, cells × 2, float32 (scanpy's name) |
//! | `obs['cluster']` | Leiden (or Louvain) cluster, categorical `"0"`, `"1"`, … (0 = largest) |
//! | `obs[LABELS]` | the label column, categorical, when it came from the inputs |
//! | `uns['inmf']['metrics']` | `alignment`, `kbet_acceptance`, `silhouette`; with labels also `ari`, `nmi`, `purity`, `silhouette_labels` |
//! | `uns['inmf']['analysis']` | parameters and facts: seed, algorithm, resolution and how it was set (the candidates and their scores when chosen from the data), reference, n_clusters, kNN recall, alignment's `k`, … |
//!
//! The file is rewritten through a temporary copy renamed over the original
//! when complete: a failure never leaves a half-written `result.h5ad`.
//! Running `analyze` again replaces these elements.
//!
//! Labels (`--labels COLUMN`) are read from `obs[COLUMN]` of `result.h5ad`
//! if present, else from the input files recorded in `RUN_DIR/model.h5`
//! (categorical, string or integer `obs` columns of `.h5ad` inputs), each
//! cell mapped through `obs['dataset']` and `obs['cell_index']` (its row in
//! its input file), then copied into `result.h5ad`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hdf5::types::VarLenUnicode;
use hdf5::{Group, Location};
use inmf_analysis::{
    analyze, composition_plot, embedding_plot, objective_plot, Algorithm, Analysis, AnalysisError,
    AnalysisInput, AnalysisParams, ClusteringInfo, Labels, Metrics, ResolutionOutcome, ResolutionRule,
    MISSING,
};
use ndarray::{Array2, ArrayView2};

use crate::anndata::temp::TempFile;
use crate::error::DriverError;
use crate::output::guard::{check_output_dir, OutputSet};
use crate::output::set::check_pair;
use crate::scenarios::run::peak_rss_bytes;

/// What `inmf analyze` is asked to do.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalyzeRequest {
    /// The run directory (holds `result.h5ad` and `model.h5`).
    pub run_dir: PathBuf,
    /// Label column for ARI, NMI and purity (e.g. `cell_type`).
    pub labels: Option<String>,
    /// Resolution γ; `None` with `n_clusters` = chosen from the data.
    pub resolution: Option<f64>,
    /// Search the resolution that gives this many clusters.
    pub n_clusters: Option<usize>,
    /// Leiden or Louvain.
    pub algorithm: Algorithm,
    /// Reference dataset of the quantile normalization (default: the largest).
    pub reference: Option<String>,
    /// Where the plots go (default `RUN_DIR/analysis`).
    pub out_dir: Option<PathBuf>,
    /// Seed of every random choice.
    pub seed: u64,
    /// Worker threads (0 = one per core); the results do not depend on it.
    pub threads: usize,
    /// Above this many cells UMAP is fitted on a subsample of this many
    /// (stratified by dataset) and the other cells are placed on it by
    /// umap-learn's transform; 0 = fit on every cell
    /// ([`AnalysisParams::umap_fit_cells`]).
    pub umap_fit_cells: usize,
}

impl AnalyzeRequest {
    /// A request with the defaults: no labels, resolution chosen from the
    /// data, Leiden, largest dataset as reference, plots in
    /// `RUN_DIR/analysis`, seed 1.
    pub fn new(run_dir: impl Into<PathBuf>) -> Self {
        Self {
            run_dir: run_dir.into(),
            labels: None,
            resolution: None,
            n_clusters: None,
            algorithm: Algorithm::Leiden,
            reference: None,
            out_dir: None,
            seed: 1,
            threads: 0,
            umap_fit_cells: AnalysisParams::new(1).umap_fit_cells,
        }
    }
}

/// What `inmf analyze` did.
#[derive(Clone, Debug)]
pub struct AnalyzeSummary {
    /// The updated result file.
    pub result: PathBuf,
    /// Cells analysed.
    pub cells: usize,
    /// Factors K.
    pub k: usize,
    /// Dataset names and cell counts.
    pub datasets: Vec<(String, usize)>,
    /// Reference dataset of the quantile normalization.
    pub reference: String,
    /// Label column and where it was found, if labels were used.
    pub labels: Option<(String, String)>,
    /// Distinct labels among the analysed cells, if labels were used.
    pub label_types: Option<usize>,
    /// Clusters found.
    pub n_clusters: usize,
    /// Algorithm, resolution and how it was set.
    pub clustering: ClusteringInfo,
    /// Edges of the SNN graph that was clustered.
    pub snn_edges: usize,
    /// The metrics.
    pub metrics: Metrics,
    /// kNN graph: neighbours, approximate?, recall on a sample.
    pub knn: inmf_analysis::KnnInfo,
    /// Plot files (PNG and SVG).
    pub plots: Vec<PathBuf>,
    /// Wall time per step, seconds.
    pub seconds: Vec<(String, f64)>,
    /// Total wall time, seconds.
    pub total_seconds: f64,
    /// Peak resident memory of the process, bytes (Linux).
    pub peak_rss_bytes: Option<u64>,
}

impl fmt::Display for AnalyzeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ds: Vec<String> = self.datasets.iter().map(|(n, c)| format!("{n} ({c})")).collect();
        writeln!(
            f,
            "inmf analyze: {} cells, K = {}, datasets {}; reference {}",
            self.cells,
            self.k,
            ds.join(", "),
            self.reference
        )?;
        let recall = match self.knn.recall {
            Some(r) => format!(", recall {r:.3} vs exact on a sample"),
            None => String::new(),
        };
        writeln!(
            f,
            "  kNN graph: k = {}, {}{recall}; SNN graph {} edges; {} {} clusters at resolution {:.4}",
            self.knn.k,
            if self.knn.approximate {
                format!("NN-descent ({} iterations)", self.knn.iterations)
            } else {
                "exact".to_string()
            },
            self.snn_edges,
            self.n_clusters,
            self.clustering.algorithm,
            self.clustering.resolution
        )?;
        writeln!(f, "  {}", self.clustering.explain())?;
        match &self.labels {
            Some((col, from)) => writeln!(
                f,
                "  labels: obs['{col}'] from {from}, {} types",
                self.label_types.unwrap_or(0)
            )?,
            None => writeln!(f, "  labels: none (use --labels COLUMN for ARI, NMI, purity)")?,
        }
        writeln!(f, "metrics:")?;
        write!(f, "{}", self.metrics.table())?;
        writeln!(f, "plots:")?;
        for p in &self.plots {
            writeln!(f, "  {}", p.display())?;
        }
        writeln!(f, "results added to {}", self.result.display())?;
        let steps: Vec<String> = self
            .seconds
            .iter()
            .map(|(s, t)| format!("{s} {t:.1} s"))
            .collect();
        write!(f, "time: {:.1} s ({})", self.total_seconds, steps.join(", "))?;
        if let Some(b) = self.peak_rss_bytes {
            write!(f, "; peak RSS {:.0} MB", b as f64 / 1048576.0)?;
        }
        writeln!(f)
    }
}

fn analysis_err(e: AnalysisError) -> DriverError {
    match e {
        AnalysisError::InvalidParameter(m) => DriverError::InvalidParameter(m),
        AnalysisError::InvalidData(m) => {
            DriverError::InvalidParameter(format!("cannot analyse this run: {m}"))
        }
        AnalysisError::Clustering(m) => DriverError::Internal(format!("clustering failed: {m}")),
        AnalysisError::Plot { path, reason } => DriverError::InvalidOutput { path, reason },
    }
}

fn h5(path: &Path, what: impl Into<String>) -> impl FnOnce(hdf5::Error) -> DriverError + '_ {
    let what = what.into();
    move |source| DriverError::hdf5(path, what, source)
}

/// The pieces of `result.h5ad` the analysis reads.
pub(crate) struct RunData {
    /// H read as f32 (HDF5 converts; the analysis computes in f32).
    pub(crate) h: Array2<f32>,
    pub(crate) datasets: Vec<u32>,
    pub(crate) dataset_names: Vec<String>,
    pub(crate) cell_index: Vec<i64>,
    pub(crate) objective: Vec<f64>,
}

fn read_strings(ds: &hdf5::Dataset) -> hdf5::Result<Vec<String>> {
    Ok(ds
        .read_raw::<VarLenUnicode>()?
        .iter()
        .map(|s| s.as_str().to_string())
        .collect())
}

pub(crate) fn read_run(path: &Path) -> Result<RunData, DriverError> {
    read_run_pieces(path).map_err(|e| match e {
        DriverError::Hdf5 { path, what, source } => DriverError::DamagedFile {
            path,
            reason: format!(
                "{what}: {}",
                crate::output::model::first_line(&source.to_string())
            ),
            fix: "Give the output directory of `inmf run`, `add` or `project`; if it is one, the file \
                  was not written completely or was changed since: run that command again"
                .into(),
        },
        other => other,
    })
}

fn read_run_pieces(path: &Path) -> Result<RunData, DriverError> {
    if !path.exists() {
        return Err(DriverError::InvalidParameter(format!(
            "{} does not exist; give the output directory of `inmf run` (it holds result.h5ad)",
            path.display()
        )));
    }
    let f = hdf5::File::open(path).map_err(h5(path, "opening the result file"))?;
    let h: Array2<f32> = f.dataset("obsm/X_inmf").and_then(|d| d.read_2d()).map_err(h5(
        path,
        "reading obsm/X_inmf (H); is this a result.h5ad of `inmf run`?",
    ))?;
    let cat = f.group("obs/dataset").map_err(h5(path, "opening obs/dataset"))?;
    let dataset_names = cat
        .dataset("categories")
        .and_then(|d| read_strings(&d))
        .map_err(h5(path, "reading obs/dataset/categories"))?;
    let codes: Vec<i32> = cat
        .dataset("codes")
        .and_then(|d| d.read_raw())
        .map_err(h5(path, "reading obs/dataset/codes"))?;
    let cell_index: Vec<i64> = f
        .dataset("obs/cell_index")
        .and_then(|d| d.read_raw())
        .map_err(h5(path, "reading obs/cell_index"))?;
    let objective: Vec<f64> = f
        .dataset("uns/inmf/objective_per_epoch")
        .and_then(|d| d.read_raw())
        .unwrap_or_default();
    let n = h.nrows();
    if codes.len() != n || cell_index.len() != n {
        return Err(DriverError::InvalidParameter(format!(
            "{}: obsm/X_inmf has {n} rows but obs/dataset has {} and obs/cell_index {}; the file is inconsistent",
            path.display(),
            codes.len(),
            cell_index.len()
        )));
    }
    let mut datasets = Vec::with_capacity(n);
    for (c, &d) in codes.iter().enumerate() {
        if d < 0 || d as usize >= dataset_names.len() {
            return Err(DriverError::InvalidParameter(format!(
                "{}: cell {c} has dataset code {d} outside the {} categories",
                path.display(),
                dataset_names.len()
            )));
        }
        datasets.push(d as u32);
    }
    Ok(RunData {
        h,
        datasets,
        dataset_names,
        cell_index,
        objective,
    })
}

/// An `obs` column read as categories and codes (−1 = missing).
pub(crate) struct Column {
    pub(crate) categories: Vec<String>,
    pub(crate) codes: Vec<i32>,
}

/// Reads `obs/NAME` of an AnnData file as a categorical: a categorical
/// group, a string array (categories = sorted distinct values), or an
/// integer/boolean array (categories = the distinct values as text).
/// `Ok(None)` when the file has no such column.
pub(crate) fn read_obs_column(path: &Path, name: &str) -> Result<Option<Column>, DriverError> {
    let f = hdf5::File::open(path).map_err(h5(path, "opening"))?;
    let Ok(obs) = f.group("obs") else {
        return Ok(None);
    };
    if !obs.link_exists(name) {
        return Ok(None);
    }
    let what = format!("reading obs/{name}");
    if let Ok(g) = obs.group(name) {
        let categories = g
            .dataset("categories")
            .and_then(|d| read_strings(&d))
            .map_err(h5(path, format!("{what}/categories (categorical columns only)")))?;
        let codes: Vec<i32> = g
            .dataset("codes")
            .and_then(|d| d.read_raw())
            .map_err(h5(path, format!("{what}/codes")))?;
        return Ok(Some(Column { categories, codes }));
    }
    let ds = obs.dataset(name).map_err(h5(path, what.clone()))?;
    let values: Vec<String> = if let Ok(v) = read_strings(&ds) {
        v
    } else if let Ok(v) = ds.read_raw::<i64>() {
        v.iter().map(|x| x.to_string()).collect()
    } else {
        return Err(DriverError::InvalidParameter(format!(
            "{}: obs/{name} is neither categorical, text nor integer; use a cell-type-like column",
            path.display()
        )));
    };
    let mut categories = values.clone();
    categories.sort();
    categories.dedup();
    let codes = values
        .iter()
        .map(|v| categories.binary_search(v).map_or(-1, |i| i as i32))
        .collect();
    Ok(Some(Column { categories, codes }))
}

/// The input files of the run (dataset name → path) from `model.h5`.
pub(crate) fn input_paths(run_dir: &Path) -> Result<Vec<(String, PathBuf)>, DriverError> {
    let path = run_dir.join("model.h5");
    let f = hdf5::File::open(&path).map_err(h5(&path, "opening the model file (to find the inputs)"))?;
    let g = f.group("datasets").map_err(h5(&path, "opening datasets/"))?;
    let mut out = Vec::new();
    let mut i = 0;
    while g.link_exists(&i.to_string()) {
        let d = g
            .group(&i.to_string())
            .map_err(h5(&path, format!("opening datasets/{i}")))?;
        let attr = |name: &str| -> Result<String, DriverError> {
            d.attr(name)
                .and_then(|a| a.read_scalar::<VarLenUnicode>())
                .map(|s| s.as_str().to_string())
                .map_err(h5(&path, format!("reading datasets/{i} attribute {name}")))
        };
        out.push((attr("name")?, PathBuf::from(attr("path")?)));
        i += 1;
    }
    Ok(out)
}

/// Finds an input file recorded with a (maybe relative) path.
pub(crate) fn locate(recorded: &Path, run_dir: &Path) -> Option<PathBuf> {
    if recorded.exists() {
        return Some(recorded.to_path_buf());
    }
    if recorded.is_relative() {
        for base in [Some(run_dir), run_dir.parent()].into_iter().flatten() {
            let p = base.join(recorded);
            if p.exists() {
                return Some(p);
            }
        }
    }
    None
}

/// Labels for every cell of the run: from `result.h5ad` or the inputs.
/// Returns (codes with [`MISSING`], names, where found, copy into result?).
fn read_labels(
    req: &AnalyzeRequest,
    result: &Path,
    run: &RunData,
    column: &str,
) -> Result<(Vec<u32>, Vec<String>, String, bool), DriverError> {
    if let Some(col) = read_obs_column(result, column)? {
        if col.codes.len() != run.h.nrows() {
            return Err(DriverError::InvalidParameter(format!(
                "{}: obs/{column} has {} rows for {} cells",
                result.display(),
                col.codes.len(),
                run.h.nrows()
            )));
        }
        let codes = col
            .codes
            .iter()
            .map(|&c| if c < 0 { MISSING } else { c as u32 })
            .collect();
        return Ok((codes, col.categories, "result.h5ad".into(), false));
    }
    let inputs = input_paths(&req.run_dir)?;
    let mut names: Vec<String> = Vec::new();
    let mut codes = vec![MISSING; run.h.nrows()];
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for (d, dname) in run.dataset_names.iter().enumerate() {
        let Some((_, recorded)) = inputs.iter().find(|(n, _)| n == dname) else {
            missing.push(format!("{dname} (not in model.h5)"));
            continue;
        };
        let Some(path) = locate(recorded, &req.run_dir) else {
            missing.push(format!(
                "{dname} ({} not found; run analyze from the directory `inmf run` ran in)",
                recorded.display()
            ));
            continue;
        };
        let is_h5ad = path.extension().is_some_and(|e| e == "h5ad");
        let col = if is_h5ad {
            read_obs_column(&path, column)?
        } else {
            None
        };
        let Some(col) = col else {
            missing.push(format!("{dname} ({} has no obs/{column})", path.display()));
            continue;
        };
        // Merge categories by name.
        let map: Vec<u32> = col
            .categories
            .iter()
            .map(|c| match names.iter().position(|x| x == c) {
                Some(i) => i as u32,
                None => {
                    names.push(c.clone());
                    (names.len() - 1) as u32
                }
            })
            .collect();
        for (c, _) in run.datasets.iter().enumerate().filter(|(_, &x)| x as usize == d) {
            let row = run.cell_index[c];
            let code = usize::try_from(row).ok().and_then(|r| col.codes.get(r)).copied().ok_or_else(|| {
                DriverError::InvalidParameter(format!(
                    "{}: obs/{column} has {} rows but result.h5ad maps a cell to row {row}; was the input changed since the run?",
                    path.display(),
                    col.codes.len()
                ))
            })?;
            codes[c] = if code < 0 { MISSING } else { map[code as usize] };
        }
        found.push(path.display().to_string());
    }
    if found.is_empty() {
        return Err(DriverError::InvalidParameter(format!(
            "label column {column:?} is neither in obs of {} nor in the inputs: {}",
            result.display(),
            missing.join("; ")
        )));
    }
    if !missing.is_empty() {
        crate::log::line(&format!(
            "warning: no labels for {}; their cells are left out of ARI, NMI and purity",
            missing.join("; ")
        ));
    }
    Ok((codes, names, format!("the inputs ({})", found.join(", ")), true))
}

/// Runs `inmf analyze` (see the module doc); `progress` receives one line
/// per step.
pub fn run_analyze(
    req: &AnalyzeRequest,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<AnalyzeSummary, DriverError> {
    let t0 = Instant::now();
    let rule = resolution_rule(req)?;
    let result = req.run_dir.join("result.h5ad");
    let out_dir = req
        .out_dir
        .clone()
        .unwrap_or_else(|| req.run_dir.join("analysis"));
    let read = [result.clone()];
    check_output_dir(&out_dir, &read, OutputSet::Other, &read)?;
    check_pair(&req.run_dir)?;
    let run = read_run(&result)?;
    let (n, k) = run.h.dim();
    progress(&format!(
        "read H: {n} cells × {k} factors from {}",
        result.display()
    ));
    let reference = match &req.reference {
        Some(name) => Some(run.dataset_names.iter().position(|d| d == name).ok_or_else(|| {
            DriverError::InvalidParameter(format!(
                "--reference {name:?} is not a dataset of this run; choose one of {}",
                run.dataset_names.join(", ")
            ))
        })?),
        None => None,
    };
    if let Some(c) = req.n_clusters {
        if c > n {
            return Err(DriverError::InvalidParameter(format!(
                "--n-clusters {c}: the run has only {n} cells; ask for at most {n} clusters"
            )));
        }
    }
    let labels = match &req.labels {
        Some(col) => Some(read_labels(req, &result, &run, col)?),
        None => None,
    };
    let mut params = AnalysisParams::new(req.seed);
    params.cluster.algorithm = req.algorithm;
    if let Some(r) = req.resolution {
        params.cluster.resolution = r;
    }
    params.resolution = rule;
    params.quantile.reference = reference;
    params.umap_fit_cells = req.umap_fit_cells;
    let input = AnalysisInput {
        h: run.h.view(),
        datasets: &run.datasets,
        dataset_names: &run.dataset_names,
        labels: labels
            .as_ref()
            .map(|(codes, names, _, _)| Labels { codes, names }),
    };
    let analysis = crate::scenarios::run::in_pool(req.threads, || {
        analyze(&input, &params, &mut |step, s| {
            progress(&format!("{step}: {s:.1} s"))
        })
    })?
    .map_err(analysis_err)?;
    progress(&analysis.clustering.explain());

    // Plots.
    // Plots are drawn into a temporary folder and moved into place after
    // result.h5ad is updated: a failure leaves no partial plot behind.
    let t = Instant::now();
    std::fs::create_dir_all(&out_dir).map_err(|source| DriverError::io(&out_dir, source))?;
    crate::scenarios::run::clean_stale(&out_dir, true);
    let staging = StagingDir::new(&out_dir)?;
    let staged = write_plots(&staging.path, &run, &analysis, labels.as_ref(), req).map_err(|e| match e {
        // Name the plot by its final path, not the temporary one.
        DriverError::InvalidOutput { path, reason } => DriverError::InvalidOutput {
            path: out_dir.join(path.file_name().unwrap_or_default()),
            reason,
        },
        other => other,
    })?;
    progress(&format!("plots: {:.1} s", t.elapsed().as_secs_f64()));

    // Results into result.h5ad (temporary copy, renamed when complete).
    let t = Instant::now();
    let label_copy = match (&req.labels, &labels) {
        (Some(col), Some((codes, names, _, true))) => {
            Some((col.as_str(), codes.as_slice(), names.as_slice()))
        }
        _ => None,
    };
    update_result(&result, &analysis, label_copy, req, &run.dataset_names)?;
    let plots = staging.move_into_place(&staged)?;
    progress(&format!(
        "result.h5ad updated: {:.1} s",
        t.elapsed().as_secs_f64()
    ));

    let mut seconds: Vec<(String, f64)> = analysis
        .seconds
        .iter()
        .map(|(s, t)| (s.to_string(), *t))
        .collect();
    seconds.push(("plots and output".into(), t.elapsed().as_secs_f64()));
    let mut counts = vec![0usize; run.dataset_names.len()];
    for &d in &run.datasets {
        counts[d as usize] += 1;
    }
    Ok(AnalyzeSummary {
        result,
        cells: n,
        k,
        datasets: run.dataset_names.iter().cloned().zip(counts).collect(),
        reference: run.dataset_names[analysis.reference].clone(),
        labels: match (&req.labels, &labels) {
            (Some(col), Some((_, _, from, _))) => Some((col.clone(), from.clone())),
            _ => None,
        },
        label_types: labels
            .as_ref()
            .map(|(codes, names, _, _)| distinct(codes, names.len())),
        n_clusters: analysis.n_clusters,
        clustering: analysis.clustering.clone(),
        snn_edges: analysis.snn_edges,
        metrics: analysis.metrics.clone(),
        knn: analysis.knn.clone(),
        plots,
        seconds,
        total_seconds: t0.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// How many of the `n` codes occur in `codes` ([`MISSING`] does not count).
fn distinct(codes: &[u32], n: usize) -> usize {
    let mut seen = vec![false; n];
    for &c in codes {
        if let Some(s) = seen.get_mut(c as usize) {
            *s = true;
        }
    }
    seen.into_iter().filter(|&s| s).count()
}

/// The resolution rule of a request: `--resolution`, `--n-clusters` or, with
/// neither, chosen from the data. Refuses both at once, a resolution that is
/// not a positive number, and zero clusters.
fn resolution_rule(req: &AnalyzeRequest) -> Result<ResolutionRule, DriverError> {
    match (req.resolution, req.n_clusters) {
        (Some(r), Some(c)) => Err(DriverError::InvalidParameter(format!(
            "--resolution {r} and --n-clusters {c} both set the resolution; give one of them \
             (neither: the resolution is chosen from the data)"
        ))),
        (Some(r), None) if !(r.is_finite() && r > 0.0) => Err(DriverError::InvalidParameter(format!(
            "--resolution {r}: use a positive number (1 is rliger's default; higher gives more clusters)"
        ))),
        (Some(_), None) => Ok(ResolutionRule::Given),
        (None, Some(0)) => Err(DriverError::InvalidParameter(
            "--n-clusters 0: ask for at least 1 cluster".into(),
        )),
        (None, Some(c)) => Ok(ResolutionRule::Clusters(c)),
        (None, None) => Ok(ResolutionRule::default()),
    }
}

/// A temporary folder `DIR/.plots.tmp-PID-N` for files that appear under
/// their final names only when all of them are complete; removed on drop.
pub(crate) struct StagingDir {
    pub(crate) path: PathBuf,
    target: PathBuf,
}

impl StagingDir {
    pub(crate) fn new(target: &Path) -> Result<Self, DriverError> {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = target.join(format!(".plots.tmp-{}-{n}", std::process::id()));
        std::fs::create_dir(&path).map_err(|source| DriverError::io(&path, source))?;
        Ok(Self {
            path,
            target: target.to_path_buf(),
        })
    }

    /// Renames the staged `files` into the target folder; returns their
    /// final paths.
    pub(crate) fn move_into_place(self, files: &[PathBuf]) -> Result<Vec<PathBuf>, DriverError> {
        let mut out = Vec::with_capacity(files.len());
        for f in files {
            let name = f.file_name().unwrap_or_default();
            let dest = self.target.join(name);
            std::fs::rename(f, &dest).map_err(|source| DriverError::io(&dest, source))?;
            out.push(dest);
        }
        Ok(out)
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn write_plots(
    dir: &Path,
    run: &RunData,
    a: &Analysis,
    labels: Option<&(Vec<u32>, Vec<String>, String, bool)>,
    req: &AnalyzeRequest,
) -> Result<Vec<PathBuf>, DriverError> {
    let m = &a.metrics;
    let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    let mut files = Vec::new();
    let title = format!(
        "UMAP by dataset: alignment {} (1 = mixed), kBET {}",
        fmt(m.alignment),
        fmt(m.kbet_acceptance)
    );
    files.extend(
        embedding_plot(
            &dir.join("umap_dataset"),
            a.umap.view(),
            &run.datasets,
            &run.dataset_names,
            &title,
            "dataset (cells)",
            req.seed,
        )
        .map_err(analysis_err)?,
    );
    let cluster_names: Vec<String> = (0..a.n_clusters).map(|c| c.to_string()).collect();
    let title = format!(
        "UMAP by {} cluster (resolution {:.3}): {} clusters, silhouette {}",
        a.clustering.algorithm,
        a.clustering.resolution,
        a.n_clusters,
        fmt(m.silhouette)
    );
    files.extend(
        embedding_plot(
            &dir.join("umap_cluster"),
            a.umap.view(),
            &a.clusters,
            &cluster_names,
            &title,
            "cluster (cells)",
            req.seed,
        )
        .map_err(analysis_err)?,
    );
    if let (Some((codes, names, _, _)), Some(col)) = (labels, &req.labels) {
        let title = format!(
            "UMAP by {col}: ARI {}, NMI {}, purity {}",
            fmt(m.ari),
            fmt(m.nmi),
            fmt(m.purity)
        );
        files.extend(
            embedding_plot(
                &dir.join("umap_label"),
                a.umap.view(),
                codes,
                names,
                &title,
                &format!("{col} (cells)"),
                req.seed,
            )
            .map_err(analysis_err)?,
        );
    }
    let title = "Dataset composition of each cluster (integrated: bars near the dashed lines)";
    files.extend(
        composition_plot(
            &dir.join("composition"),
            &a.clusters,
            &run.datasets,
            &run.dataset_names,
            title,
        )
        .map_err(analysis_err)?,
    );
    if !run.objective.is_empty() {
        files.extend(
            objective_plot(&dir.join("objective"), &run.objective, "iNMF objective per epoch")
                .map_err(analysis_err)?,
        );
    }
    Ok(files)
}

// ---- writing into result.h5ad ------------------------------------------

fn vlu(s: &str) -> VarLenUnicode {
    s.replace('\0', " ").parse().unwrap_or_default()
}

fn put_str_attr(loc: &Location, name: &str, value: &str) -> hdf5::Result<()> {
    if loc.attr_names()?.iter().any(|a| a == name) {
        loc.delete_attr(name)?;
    }
    loc.new_attr::<VarLenUnicode>()
        .shape(())
        .create(name)?
        .write_scalar(&vlu(value))
}

fn encoding(loc: &Location, ty: &str, version: &str) -> hdf5::Result<()> {
    put_str_attr(loc, "encoding-type", ty)?;
    put_str_attr(loc, "encoding-version", version)
}

fn remove(g: &Group, name: &str) -> hdf5::Result<()> {
    if g.link_exists(name) {
        g.unlink(name)?;
    }
    Ok(())
}

fn dense<T: hdf5::H5Type + Copy>(g: &Group, name: &str, m: ArrayView2<'_, T>) -> hdf5::Result<()> {
    remove(g, name)?;
    let (rows, cols) = m.dim();
    let mut b = g.new_dataset_builder();
    if rows > 0 && cols > 0 {
        b = b.chunk(((65_536 / cols.max(1)).clamp(1, rows), cols));
    }
    let ds = b.with_data(&m.as_standard_layout()).create(name)?;
    encoding(&ds, "array", "0.2.0")
}

/// Writes a categorical column `obs/NAME` (codes −1 for [`MISSING`]).
fn categorical(obs: &Group, name: &str, codes: &[u32], categories: &[String]) -> hdf5::Result<()> {
    remove(obs, name)?;
    let g = obs.create_group(name)?;
    encoding(&g, "categorical", "0.2.0")?;
    g.new_attr::<bool>()
        .shape(())
        .create("ordered")?
        .write_scalar(&false)?;
    let cats: Vec<VarLenUnicode> = categories.iter().map(|c| vlu(c)).collect();
    let cd = g
        .new_dataset_builder()
        .with_data(&cats[..])
        .create("categories")?;
    encoding(&cd, "string-array", "0.2.0")?;
    let chunk = codes.len().clamp(1, 1 << 16);
    let ds = if categories.len() <= i8::MAX as usize {
        let v: Vec<i8> = codes
            .iter()
            .map(|&c| if c == MISSING { -1 } else { c as i8 })
            .collect();
        g.new_dataset_builder()
            .chunk(chunk)
            .with_data(&v[..])
            .create("codes")?
    } else if categories.len() <= i16::MAX as usize {
        let v: Vec<i16> = codes
            .iter()
            .map(|&c| if c == MISSING { -1 } else { c as i16 })
            .collect();
        g.new_dataset_builder()
            .chunk(chunk)
            .with_data(&v[..])
            .create("codes")?
    } else {
        let v: Vec<i32> = codes
            .iter()
            .map(|&c| if c == MISSING { -1 } else { c as i32 })
            .collect();
        g.new_dataset_builder()
            .chunk(chunk)
            .with_data(&v[..])
            .create("codes")?
    };
    encoding(&ds, "array", "0.2.0")
}

/// Appends `names` (if absent) to the dataframe attribute `column-order`.
fn extend_column_order(obs: &Group, names: &[&str]) -> hdf5::Result<()> {
    let mut order: Vec<String> = match obs.attr("column-order") {
        Ok(a) if a.size() > 0 => a
            .read_raw::<VarLenUnicode>()?
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        _ => Vec::new(),
    };
    for n in names {
        if !order.iter().any(|o| o == n) {
            order.push(n.to_string());
        }
    }
    if obs.attr_names()?.iter().any(|a| a == "column-order") {
        obs.delete_attr("column-order")?;
    }
    let v: Vec<VarLenUnicode> = order.iter().map(|s| vlu(s)).collect();
    let a = obs
        .new_attr::<VarLenUnicode>()
        .shape(v.len())
        .create("column-order")?;
    if !v.is_empty() {
        a.write_raw(&v)?;
    }
    Ok(())
}

/// Opens (creating as an AnnData dict) `parent/name`.
fn dict(parent: &Group, name: &str) -> hdf5::Result<Group> {
    if parent.link_exists(name) {
        parent.group(name)
    } else {
        let g = parent.create_group(name)?;
        encoding(&g, "dict", "0.1.0")?;
        Ok(g)
    }
}

fn scalar<T: hdf5::H5Type>(g: &Group, name: &str, v: &T) -> hdf5::Result<()> {
    remove(g, name)?;
    let ds = g.new_dataset::<T>().shape(()).create(name)?;
    ds.write_scalar(v)?;
    encoding(&ds, "numeric-scalar", "0.2.0")
}

fn string(g: &Group, name: &str, v: &str) -> hdf5::Result<()> {
    remove(g, name)?;
    let ds = g.new_dataset::<VarLenUnicode>().shape(()).create(name)?;
    ds.write_scalar(&vlu(v))?;
    encoding(&ds, "string", "0.2.0")
}

fn array<T: hdf5::H5Type>(g: &Group, name: &str, v: &[T]) -> hdf5::Result<()> {
    remove(g, name)?;
    let ds = g.new_dataset_builder().with_data(v).create(name)?;
    encoding(&ds, "array", "0.2.0")
}

/// `uns['inmf']['analysis']` keys of the clustering: `algorithm`,
/// `resolution` (the one used), `resolution_rule` (`data`, `given` or
/// `n_clusters`), `resolution_reason` (the log line), and the evidence:
/// for `data` the candidates (`resolution_candidates`,
/// `candidate_clusters`, `candidate_silhouettes`, NaN where undefined), the
/// winning plateau's first and last candidate (`resolution_plateau`), its
/// score and the micro-clusters; for `n_clusters` the target, whether it
/// was reached, and the resolutions tried with their cluster counts.
fn write_clustering(an: &Group, c: &ClusteringInfo) -> hdf5::Result<()> {
    string(an, "algorithm", c.algorithm.name())?;
    scalar(an, "resolution", &c.resolution)?;
    scalar(an, "modularity", &c.modularity)?;
    string(an, "resolution_reason", &c.explain())?;
    match &c.outcome {
        ResolutionOutcome::Given => string(an, "resolution_rule", "given"),
        ResolutionOutcome::FromData(ch) => {
            string(an, "resolution_rule", "data")?;
            let res: Vec<f64> = ch.candidates.iter().map(|x| x.resolution).collect();
            let cl: Vec<i64> = ch.candidates.iter().map(|x| x.clusters as i64).collect();
            let sil: Vec<f64> = ch
                .candidates
                .iter()
                .map(|x| x.silhouette.unwrap_or(f64::NAN))
                .collect();
            array(an, "resolution_candidates", &res)?;
            array(an, "candidate_clusters", &cl)?;
            array(an, "candidate_silhouettes", &sil)?;
            array(
                an,
                "resolution_plateau",
                &[ch.plateau.0 as i64, ch.plateau.1 as i64],
            )?;
            scalar(an, "resolution_score", &ch.score.unwrap_or(f64::NAN))?;
            scalar(an, "micro_clusters", &(ch.micro_clusters as i64))
        }
        ResolutionOutcome::Clusters(s) => {
            string(an, "resolution_rule", "n_clusters")?;
            scalar(an, "n_clusters_requested", &(s.target as i64))?;
            scalar(an, "n_clusters_exact", &s.exact)?;
            let res: Vec<f64> = s.tried.iter().map(|x| x.0).collect();
            let cl: Vec<i64> = s.tried.iter().map(|x| x.1 as i64).collect();
            array(an, "resolutions_tried", &res)?;
            array(an, "clusters_tried", &cl)
        }
    }
}

fn update_result(
    result: &Path,
    a: &Analysis,
    label_copy: Option<(&str, &[u32], &[String])>,
    req: &AnalyzeRequest,
    dataset_names: &[String],
) -> Result<(), DriverError> {
    let tmp = TempFile::new(result)?;
    std::fs::copy(result, tmp.tmp()).map_err(|source| DriverError::Io {
        path: tmp.tmp().to_path_buf(),
        source,
    })?;
    let write = || -> hdf5::Result<()> {
        let f = hdf5::File::open_rw(tmp.tmp())?;
        let obsm = f.group("obsm")?;
        // float64 on disk, as X_inmf (the values carry f32 precision).
        dense(&obsm, "X_inmf_norm", a.h_norm.mapv(f64::from).view())?;
        dense(&obsm, "X_umap", a.umap.view())?;
        let obs = f.group("obs")?;
        let cluster_names: Vec<String> = (0..a.n_clusters).map(|c| c.to_string()).collect();
        categorical(&obs, "cluster", &a.clusters, &cluster_names)?;
        let mut added = vec!["cluster"];
        if let Some((col, codes, names)) = label_copy {
            categorical(&obs, col, codes, names)?;
            added.push(col);
        }
        extend_column_order(&obs, &added)?;
        let inmf = dict(&f.group("uns")?, "inmf")?;
        remove(&inmf, "metrics")?;
        let metrics = dict(&inmf, "metrics")?;
        for (key, v) in a.metrics.entries() {
            scalar(&metrics, key, &v)?;
        }
        remove(&inmf, "analysis")?;
        let an = dict(&inmf, "analysis")?;
        scalar(&an, "seed", &(req.seed as i64))?;
        write_clustering(&an, &a.clustering)?;
        string(&an, "reference", &dataset_names[a.reference])?;
        scalar(&an, "n_clusters", &(a.n_clusters as i64))?;
        scalar(&an, "snn_edges", &(a.snn_edges as i64))?;
        scalar(&an, "knn_k", &(a.knn.k as i64))?;
        scalar(&an, "knn_approximate", &a.knn.approximate)?;
        if let Some(r) = a.knn.recall {
            scalar(&an, "knn_recall", &r)?;
        }
        // Cells the UMAP layout was fitted on (all of them when absent).
        if let Some(m) = a.umap_fit_cells {
            scalar(&an, "umap_fit_cells", &(m as i64))?;
        }
        if let Some(al) = &a.alignment {
            // rliger's calcAlignment: k = min(max(floor(0.01 N), 10), M - 1)
            // with N all cells and M the cells sampled.
            scalar(&an, "alignment_k", &(al.k as i64))?;
            scalar(&an, "alignment_cells", &(al.cells as i64))?;
            scalar(&an, "alignment_sampled", &(al.sampled as i64))?;
            scalar(&an, "alignment_queries", &(al.queries as i64))?;
        }
        if let Some(col) = &req.labels {
            string(&an, "labels", col)?;
        }
        f.flush()?;
        f.close()
    };
    write().map_err(h5(result, "adding the analysis to a temporary copy"))?;
    // TempFile::commit syncs the file before renaming it.
    tmp.commit().map(|_| ())
}
