//! Reference mapping for `inmf project` (docs/algorithms.md §10.1): what the
//! query's cells are and where they sit in the reference.
//!
//! Reads the reference's `result.h5ad` (H, its categorical label columns,
//! and after `inmf analyze` the normalized H and the UMAP), and adds to the
//! projection's `result.h5ad`:
//!
//! | element | content |
//! |---|---|
//! | `obs['<col>_transferred']`, `obs['<col>_confidence']` | label of each `--transfer` column by a 30-NN vote on unit-norm H, and the winner's vote share |
//! | `obs['unmatched']` (int8), `obs['unmatched_score']` | 1 where the cell's pseudo-cell keeps more unexplained expression than the reference's tail allows (§10.1) |
//! | `obsm['X_inmf_norm']` | H quantile-normalized onto the reference's normalization reference dataset (the reference unchanged) |
//! | `obsm['X_umap']` | position on the reference's UMAP (only when the reference was analysed) |
//! | `uns['inmf']['mapping']` | k, columns, the calibration, the genes the query's selection adds to the score (`unmatched_extra_genes`), per-dataset thresholds and flagged counts; with `--labels` accuracy (unmatched counted wrong), label_accuracy (every transferred label), per-type recall and the confusion table |

use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;

use hdf5::types::VarLenUnicode;
use inmf_analysis::{
    flag_unmatched, nearest_in, quantile_normalize, smoothed_residuals, tail_ratio, transfer_labels,
    umap_transform, unit_rows, AnalysisError, Points, QuantileParams, UmapParams, MISSING,
};
use inmf_learner::{CellSource, HSolver};
use inmf_reader::{read_obs_kept, CellMap, Hdf5Source, ObsKind, ObsValues};
use ndarray::{concatenate, s, Array2, Axis as NdAxis};

use crate::analyze::{read_obs_column, read_run, Column, RunData};
use crate::anndata::{Axis, DatasetOptions, UnsValue};
use crate::config::PreprocessConfig;
use crate::error::DriverError;
use crate::mapping_genes::{extended_w, fit_extra_rows, read_and_solve, ColumnMap};
use crate::mapping_joint::JointSummary;
use crate::output::model::SavedModel;
use crate::output::results::ResultWriter;
use crate::scenarios::prepare::open_and_preprocess;
use crate::scenarios::run::InputSpec;

/// Reference neighbours of the label vote.
pub const TRANSFER_K: usize = 30;
/// Pseudo-cell size of the unmatched score (the cell itself included).
pub const PSEUDO_CELL_K: usize = 15;
/// Reference cells per reference dataset sampled to calibrate the score.
pub const CALIBRATION_CELLS: usize = 2_000;
/// Quantile of the reference's scores that bounds a matched cell's.
pub const UNMATCHED_QUANTILE: f64 = 0.99;

/// obs columns written by inmf, never transferred by default.
const OWN: [&str; 5] = ["dataset", "cell_index", "h_all_zero", "cluster", "unmatched"];

/// What the user asked of the mapping.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MappingOptions {
    /// Reference obs columns to transfer; `None` = every categorical label
    /// column of the reference's `result.h5ad` that varies within a dataset.
    pub transfer: Option<Vec<String>>,
    /// A query obs column with the query's own labels, to score the transfer.
    pub labels: Option<String>,
    /// Cluster reference and query together and score the clusters
    /// (`crate::mapping_joint`); needs an analysed reference.
    pub joint: bool,
}

/// The reference as the mapping reads it, checked before any output.
pub(crate) struct Reference {
    pub(crate) run: RunData,
    columns: Vec<(String, Column)>,
    pub(crate) norm: Option<Array2<f32>>,
    pub(crate) umap: Option<Array2<f32>>,
    norm_reference: Option<String>,
    pub(crate) seed: u64,
    /// Leiden resolution of the reference's analysis (1 if none recorded).
    pub(crate) resolution: f64,
}

impl Reference {
    /// A transferred column of the reference, by name.
    pub(crate) fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.0 == name).map(|c| &c.1)
    }
}

fn h5err(path: &Path, what: &str) -> impl FnOnce(hdf5::Error) -> DriverError {
    let (path, what) = (path.to_path_buf(), what.to_string());
    move |source| DriverError::hdf5(&path, what, source)
}

/// Names of the categorical obs columns of an AnnData file.
fn categorical_columns(path: &Path) -> Result<Vec<String>, DriverError> {
    let f = hdf5::File::open(path).map_err(h5err(path, "opening the reference result"))?;
    let Ok(obs) = f.group("obs") else {
        return Ok(Vec::new());
    };
    let names = obs.member_names().map_err(h5err(path, "listing obs"))?;
    Ok(names
        .into_iter()
        .filter(|n| obs.group(n).is_ok_and(|g| g.link_exists("categories")))
        .collect())
}

/// Reads and checks the reference folder's `result.h5ad`.
pub(crate) fn load_reference(model_dir: &Path, opts: &MappingOptions) -> Result<Reference, DriverError> {
    let path = model_dir.join("result.h5ad");
    let run = read_run(&path)?;
    let available = categorical_columns(&path)?;
    let wanted: Vec<String> = match &opts.transfer {
        Some(cols) => {
            for c in cols {
                if !available.contains(c) {
                    return Err(DriverError::InvalidParameter(format!(
                        "--transfer {c}: {} has no categorical obs column {c:?}; its label columns are: {}. \
                         Run `inmf analyze {} --labels {c}` to copy it from the reference inputs, or name another",
                        path.display(),
                        if available.is_empty() { "none".to_string() } else { available.join(", ") },
                        model_dir.display()
                    )));
                }
            }
            cols.clone()
        }
        None => available
            .into_iter()
            .filter(|c| !OWN.contains(&c.as_str()) && !c.ends_with("_transferred"))
            .collect(),
    };
    let mut columns = Vec::new();
    for name in wanted {
        let col = read_obs_column(&path, &name)?.ok_or_else(|| {
            DriverError::InvalidParameter(format!("{}: obs/{name} vanished while reading", path.display()))
        })?;
        if col.codes.len() != run.h.nrows() {
            return Err(DriverError::InvalidParameter(format!(
                "{}: obs/{name} has {} rows for {} cells",
                path.display(),
                col.codes.len(),
                run.h.nrows()
            )));
        }
        // A column constant within every dataset describes datasets, not cells.
        let varies = (0..run.dataset_names.len()).any(|d| {
            let mut seen = None;
            run.datasets
                .iter()
                .zip(&col.codes)
                .filter(|(&x, &c)| x as usize == d && c >= 0)
                .any(|(_, &c)| *seen.get_or_insert(c) != c)
        });
        if varies || opts.transfer.is_some() {
            columns.push((name, col));
        }
    }
    let f = hdf5::File::open(&path).map_err(h5err(&path, "opening the reference result"))?;
    let read2 = |name: &str| -> Option<Array2<f32>> {
        f.dataset(name)
            .and_then(|d| d.read_2d::<f32>())
            .ok()
            .filter(|m| m.nrows() == run.h.nrows())
    };
    let norm = read2("obsm/X_inmf_norm");
    let umap = read2("obsm/X_umap").filter(|m| m.ncols() == 2);
    let norm_reference = f
        .dataset("uns/inmf/analysis/reference")
        .and_then(|d| d.read_scalar::<VarLenUnicode>())
        .ok()
        .map(|s| s.as_str().to_string());
    let seed = f
        .dataset("uns/inmf/analysis/seed")
        .and_then(|d| d.read_scalar::<i64>())
        .map_or(1, |s| s as u64);
    let resolution = f
        .dataset("uns/inmf/analysis/resolution")
        .and_then(|d| d.read_scalar::<f64>())
        .unwrap_or(1.0);
    if opts.joint && norm.is_none() {
        return Err(DriverError::InvalidParameter(format!(
            "--joint clusters the reference's normalized H with the query's, but {} has no obsm/X_inmf_norm: \
             run `inmf analyze {}` first",
            path.display(),
            model_dir.display()
        )));
    }
    Ok(Reference {
        run,
        columns,
        norm,
        umap,
        norm_reference,
        seed,
        resolution,
    })
}

/// The query's own labels (`--labels`), per query cell, read from the
/// inputs before the projection consumes the source; checked up front.
pub(crate) fn query_labels(
    source: &Hdf5Source,
    column: &str,
) -> Result<(Vec<u32>, Vec<String>), DriverError> {
    let mut names: Vec<String> = Vec::new();
    let mut codes = Vec::new();
    let mut found = false;
    for d in 0..source.n_datasets() {
        let ds = source.dataset(d);
        let kind = ds
            .obs_columns()
            .into_iter()
            .find(|c| c.name == column)
            .map(|c| c.kind.clone());
        let n = source.n_cells(d);
        let values: Vec<Option<String>> = match kind {
            None => vec![None; n],
            Some(kind) => {
                found = true;
                match (read_obs_kept(ds, source.cell_map(d), column, 0..n)?, kind) {
                    (ObsValues::Strings(v), _) => v.into_iter().map(Some).collect(),
                    (ObsValues::Codes(v), ObsKind::Categorical { categories, .. }) => v
                        .into_iter()
                        .map(|x| usize::try_from(x).ok().map(|i| categories[i].clone()))
                        .collect(),
                    (ObsValues::Codes(v), ObsKind::Strings) => vec![None; v.len()],
                }
            }
        };
        for v in values {
            codes.push(match v {
                None => MISSING,
                Some(s) => match names.iter().position(|n| *n == s) {
                    Some(i) => i as u32,
                    None => {
                        names.push(s);
                        (names.len() - 1) as u32
                    }
                },
            });
        }
    }
    if !found {
        return Err(DriverError::InvalidParameter(format!(
            "--labels {column}: no query input has an obs column {column:?}; name a categorical or text obs column of the query files"
        )));
    }
    Ok((codes, names))
}

/// Collects, block by block in obs order, the query's H per query dataset
/// (the rows the unmatched score needs are read again with its genes,
/// [`crate::mapping_genes`]).
pub(crate) struct Collector {
    parts: Mutex<Vec<Vec<Array2<f64>>>>,
}

impl Collector {
    pub(crate) fn new(n_datasets: usize) -> Self {
        Self {
            parts: Mutex::new((0..n_datasets).map(|_| Vec::new()).collect()),
        }
    }

    pub(crate) fn push(&self, dataset: usize, h: &Array2<f64>) {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        parts[dataset].push(h.clone());
    }

    fn into_parts(self, k: usize) -> Vec<Array2<f64>> {
        self.parts
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .map(|hs| {
                let views: Vec<_> = hs.iter().map(|h| h.view()).collect();
                if views.is_empty() {
                    Array2::zeros((0, k))
                } else {
                    concatenate(NdAxis(0), &views).expect("blocks of equal width")
                }
            })
            .collect()
    }
}

/// The query as the unmatched score reads it again: its inputs, the
/// projection's kept cells, and the genes its own selection adds
/// ([`crate::mapping_genes::query_genes`]) or why there are none.
pub(crate) struct QueryInputs {
    pub(crate) specs: Vec<InputSpec>,
    pub(crate) cells: Vec<CellMap>,
    pub(crate) extra_genes: Result<Vec<String>, String>,
    /// Cells per block of the score's pass (`runtime.final_block`).
    pub(crate) block: usize,
}

pub(crate) fn analysis_err(e: AnalysisError) -> DriverError {
    match e {
        AnalysisError::InvalidParameter(m) | AnalysisError::InvalidData(m) => {
            DriverError::InvalidParameter(format!("reference mapping: {m}"))
        }
        other => DriverError::Internal(other.to_string()),
    }
}

/// The unmatched score's calibration: the tail ratio, W over the score's
/// genes (the model's, then the extra genes kept), and those extra genes.
pub(crate) struct Calibrated {
    ratio: f64,
    w: Array2<f64>,
    extra: Vec<String>,
}

/// Scores of a sample of the reference's own cells, read from the inputs
/// the model records and projected onto W like the query, over the model's
/// genes and the `extra` genes every reference input measures (their rows
/// of W fitted on the same sample, [`crate::mapping_genes`]). `Ok(Err)`
/// (and the reason) when the inputs cannot be found.
fn calibrate(
    saved: &SavedModel,
    model_dir: &Path,
    cfg: &PreprocessConfig,
    solver: &HSolver,
    seed: u64,
    extra: &[String],
) -> Result<Result<Calibrated, String>, DriverError> {
    let mut specs = Vec::new();
    for d in &saved.datasets {
        match crate::analyze::locate(&d.path, model_dir) {
            Some(path) => specs.push(InputSpec {
                name: d.name.clone(),
                path,
            }),
            None => {
                return Ok(Err(format!(
                    "the reference input {} of dataset {} is not found",
                    d.path.display(),
                    d.name
                )))
            }
        }
    }
    let n_model = saved.genes.len();
    let genes: Vec<String> = saved.genes.iter().chain(extra).cloned().collect();
    let (source, _) = open_and_preprocess(&specs, cfg, Some(&genes), None)?;
    // An extra gene counts only where every reference input measures it.
    let keep: Vec<bool> = (0..genes.len())
        .map(|g| g < n_model || (0..source.n_datasets()).all(|d| source.scale_factors(d)[g] > 0.0))
        .collect();
    let used: Vec<String> = extra
        .iter()
        .zip(&keep[n_model..])
        .filter(|(_, &k)| k)
        .map(|(g, _)| g.clone())
        .collect();
    let mut requests = Vec::new();
    for d in 0..source.n_datasets() {
        let n = source.n_cells(d);
        let take = n.min(CALIBRATION_CELLS);
        // Evenly spaced cells: every part of each file is represented.
        let ranges: Vec<_> = (0..take).map(|i| i * n / take).map(|c| c..c + 1).collect();
        if !ranges.is_empty() {
            requests.push(vec![(d, ranges)]);
        }
    }
    let parts = read_and_solve(
        source,
        requests,
        solver,
        n_model,
        saved.params.k,
        Some(&ColumnMap::keeping(&keep)),
    )?;
    let w_extra = fit_extra_rows(&parts, n_model, used.len(), saved.params.k)?;
    let w = extended_w(saved.model.w.view(), w_extra.view());
    let mut scores = Vec::new();
    for p in &parts {
        scores.extend(
            smoothed_residuals(&p.rows, w.view(), p.h.view(), PSEUDO_CELL_K, seed).map_err(analysis_err)?,
        );
    }
    Ok(tail_ratio(&scores, UNMATCHED_QUANTILE)
        .map(|ratio| Calibrated {
            ratio,
            w,
            extra: used,
        })
        .map_err(|e| e.to_string()))
}

/// The unmatched score of every projected query cell, per query dataset:
/// the query read again over the calibration's genes, H solved on the
/// model's, pseudo-cells among those cells (`inmf_analysis`'s
/// `smoothed_residuals`).
fn query_scores(
    query: &QueryInputs,
    cfg: &PreprocessConfig,
    saved: &SavedModel,
    solver: &HSolver,
    cal: &Calibrated,
    seed: u64,
) -> Result<Vec<Vec<f64>>, DriverError> {
    let n_model = saved.genes.len();
    let genes: Vec<String> = saved.genes.iter().chain(&cal.extra).cloned().collect();
    let (source, _) = open_and_preprocess(&query.specs, cfg, Some(&genes), None)?;
    let maps: Vec<CellMap> = (0..source.n_datasets())
        .map(|d| source.cell_map(d).clone())
        .collect();
    let block = query.block.max(1);
    let requests: Vec<_> = (0..source.n_datasets())
        .flat_map(|d| {
            let n = source.n_cells(d);
            (0..n).step_by(block).map(move |a| {
                let cells: Vec<Range<usize>> = std::iter::once(a..(a + block).min(n)).collect();
                vec![(d, cells)]
            })
        })
        .collect();
    let parts = read_and_solve(source, requests, solver, n_model, saved.params.k, None)?;
    let mut out = Vec::with_capacity(parts.len());
    for (d, p) in parts.iter().enumerate() {
        if p.rows.n_rows() != maps[d].n_kept() {
            return Err(DriverError::Internal(format!(
                "the unmatched score's pass read {} of the {} cells of query dataset {d}",
                p.rows.n_rows(),
                maps[d].n_kept()
            )));
        }
        let s = smoothed_residuals(&p.rows, cal.w.view(), p.h.view(), PSEUDO_CELL_K, seed)
            .map_err(analysis_err)?;
        let proj = &query.cells[d];
        // The projection's cells have counts in the model's genes, so the
        // score's pass (the model's genes and more) keeps every one of them.
        let aligned = (0..proj.n_kept())
            .map(|i| {
                maps[d].kept(proj.original(i)).map(|j| s[j]).ok_or_else(|| {
                    DriverError::Internal(format!(
                        "query cell {} of dataset {d} is kept by the projection but not by the unmatched score's pass",
                        proj.original(i)
                    ))
                })
            })
            .collect::<Result<Vec<f64>, _>>()?;
        out.push(aligned);
    }
    Ok(out)
}

/// The query's labels against the transferred ones.
#[derive(Clone, Debug)]
pub struct Confusion {
    /// The reference column compared.
    pub column: String,
    /// Query label names (rows).
    pub truth: Vec<String>,
    /// Transferred label names (columns), the last one "unmatched".
    pub predicted: Vec<String>,
    /// Counts, rows × columns.
    pub counts: Vec<Vec<u64>>,
    /// Share of labelled query cells whose transferred label equals their
    /// own (flagged cells count as wrong).
    pub accuracy: f64,
    /// The same share with every cell's transferred label, flagged or not
    /// (the transfer alone, comparable with a vote in a joint run).
    pub label_accuracy: f64,
    /// Per query label: recall, cells, flagged share.
    pub recall: Vec<(String, f64, usize, f64)>,
}

/// What the mapping did (part of the `inmf project` summary).
#[derive(Clone, Debug, Default)]
pub struct MappingSummary {
    /// Transferred columns.
    pub columns: Vec<String>,
    /// Tail ratio of the calibration, or why there is none.
    pub calibration: Option<Result<f64, String>>,
    /// Genes the query's own selection adds to the unmatched score (the
    /// model's genes come first), measured in every reference input.
    pub extra_genes: Vec<String>,
    /// Per query dataset: name, cells, flagged, threshold.
    pub flagged: Vec<(String, usize, usize, f64)>,
    /// Whether the query was placed on the reference UMAP, or why not.
    pub umap: Option<String>,
    /// Scores against `--labels`.
    pub confusion: Option<Confusion>,
    /// The joint analysis (`--joint`).
    pub joint: Option<JointSummary>,
}

impl fmt::Display for MappingSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  mapping: transferred {} by a {TRANSFER_K}-NN vote",
            if self.columns.is_empty() {
                "no label column".to_string()
            } else {
                self.columns.join(", ")
            }
        )?;
        match &self.calibration {
            Some(Ok(t)) => writeln!(
                f,
                "  unmatched: pseudo-cell score above {t:.3} × its query dataset's median (reference q{:.0} / median), over the model's genes and {} the query's selection adds",
                UNMATCHED_QUANTILE * 100.0,
                self.extra_genes.len()
            )?,
            Some(Err(why)) => writeln!(f, "  unmatched: not computed: {why}")?,
            None => {}
        }
        for (name, n, k, thr) in &self.flagged {
            writeln!(
                f,
                "    {name}: {k} of {n} cells unmatched ({:.1} %), threshold {thr:.4}",
                100.0 * *k as f64 / (*n).max(1) as f64
            )?;
        }
        if let Some(u) = &self.umap {
            writeln!(f, "  {u}")?;
        }
        if let Some(c) = &self.confusion {
            writeln!(
                f,
                "  {} vs the query's labels: accuracy {:.3} (unmatched count as wrong), {:.3} of the transferred labels right",
                c.column, c.accuracy, c.label_accuracy
            )?;
            for (name, r, n, fl) in &c.recall {
                writeln!(
                    f,
                    "    {name:<20} recall {r:.3} of {n:>6} cells, {:.1} % unmatched",
                    100.0 * fl
                )?;
            }
        }
        if let Some(j) = &self.joint {
            write!(f, "{j}")?;
        }
        Ok(())
    }
}

/// One transferred column: name, codes, categories, confidence.
type TransferredColumn = (String, Vec<u32>, Vec<String>, Vec<f64>);

/// Everything computed, ready to be written.
pub(crate) struct Mapped {
    pub(crate) summary: MappingSummary,
    pub(crate) transferred: Vec<TransferredColumn>,
    pub(crate) scores: Option<(Vec<f64>, Vec<bool>)>,
    pub(crate) norm: Array2<f32>,
    pub(crate) umap: Option<Array2<f32>>,
    /// Query dataset of each query cell.
    pub(crate) query_datasets: Vec<u32>,
    /// The query's own labels (`--labels`): column, codes, names.
    pub(crate) truth: Option<(String, Vec<u32>, Vec<String>)>,
}

/// Transfers, flags, normalizes and places the query (module doc).
#[allow(clippy::too_many_arguments)]
pub(crate) fn map_query(
    reference: &Reference,
    collected: Collector,
    query: &QueryInputs,
    saved: &SavedModel,
    model_dir: &Path,
    cfg: &PreprocessConfig,
    solver: &HSolver,
    dataset_names: &[String],
    labels: Option<(&str, Vec<u32>, Vec<String>)>,
    log: &mut dyn FnMut(&str),
) -> Result<Mapped, DriverError> {
    let seed = reference.seed;
    let k = saved.params.k;
    let parts = collected.into_parts(k);
    let hq: Vec<_> = parts.iter().map(|h| h.view()).collect();
    let hq = if hq.is_empty() {
        Array2::zeros((0, k))
    } else {
        concatenate(NdAxis(0), &hq).expect("equal width")
    };
    let mut query_datasets = Vec::new();
    for (d, h) in parts.iter().enumerate() {
        query_datasets.extend(std::iter::repeat_n(d as u32, h.nrows()));
    }
    let mut summary = MappingSummary::default();
    // Label transfer.
    let ref_unit = unit_rows(reference.run.h.view()).map_err(analysis_err)?;
    let q_unit = unit_rows(hq.view()).map_err(analysis_err)?;
    let nb = nearest_in(&ref_unit, &q_unit, TRANSFER_K).map_err(analysis_err)?;
    let mut transferred = Vec::new();
    for (name, col) in &reference.columns {
        let codes: Vec<u32> = col
            .codes
            .iter()
            .map(|&c| if c < 0 { MISSING } else { c as u32 })
            .collect();
        let t = transfer_labels(&nb, &codes).map_err(analysis_err)?;
        transferred.push((name.clone(), t.codes, col.categories.clone(), t.confidence));
        summary.columns.push(name.clone());
    }
    // Unmatched cells.
    let extra: &[String] = match &query.extra_genes {
        Ok(g) => g,
        Err(why) => {
            log(&format!(
                "unmatched score on the model's genes only: the query's gene selection failed: {why}"
            ));
            &[]
        }
    };
    let calibrated = calibrate(saved, model_dir, cfg, solver, seed, extra)?;
    let scores = match &calibrated {
        Ok(cal) => {
            let mut all = Vec::with_capacity(hq.nrows());
            let mut flags = Vec::with_capacity(hq.nrows());
            for (d, s) in query_scores(query, cfg, saved, solver, cal, seed)?
                .into_iter()
                .enumerate()
            {
                let (f, thr) = flag_unmatched(&s, cal.ratio);
                summary.flagged.push((
                    dataset_names[d].clone(),
                    s.len(),
                    f.iter().filter(|&&x| x).count(),
                    thr,
                ));
                all.extend(s);
                flags.extend(f);
            }
            summary.extra_genes = cal.extra.clone();
            Some((all, flags))
        }
        Err(why) => {
            log(&format!("unmatched flag not computed: {why}"));
            None
        }
    };
    let calibration = calibrated.map(|c| c.ratio);
    summary.calibration = Some(calibration);
    drop(parts);
    // Quantile normalization onto the reference's normalization reference.
    let names = &reference.run.dataset_names;
    let rd = match &reference.norm_reference {
        Some(n) => names.iter().position(|x| x == n),
        None => None,
    }
    .unwrap_or_else(|| {
        let mut counts = vec![0usize; names.len()];
        reference
            .run
            .datasets
            .iter()
            .for_each(|&d| counts[d as usize] += 1);
        (0..names.len())
            .max_by_key(|&d| (counts[d], std::cmp::Reverse(d)))
            .unwrap_or(0)
    });
    let ref_rows: Vec<usize> = (0..reference.run.h.nrows())
        .filter(|&c| reference.run.datasets[c] as usize == rd)
        .collect();
    let ref_h = reference.run.h.select(NdAxis(0), &ref_rows);
    let joint = concatenate(NdAxis(0), &[ref_h.view(), hq.mapv(|v| v as f32).view()]).expect("equal width");
    let mut codes = vec![0u32; ref_rows.len()];
    codes.extend(query_datasets.iter().map(|&d| d + 1));
    let qp = QuantileParams {
        reference: Some(0),
        seed,
        ..QuantileParams::default()
    };
    let qn = quantile_normalize(joint.view(), &codes, dataset_names.len() + 1, &qp).map_err(analysis_err)?;
    let norm = qn.h.slice(s![ref_rows.len().., ..]).to_owned();
    // UMAP placement.
    let umap = match (&reference.norm, &reference.umap) {
        (Some(rn), Some(layout)) => {
            let params = UmapParams {
                seed,
                ..UmapParams::default()
            };
            let rp = Points::from_view(rn.view()).map_err(analysis_err)?;
            let qp = Points::from_view(norm.view()).map_err(analysis_err)?;
            let nbu = nearest_in(&rp, &qp, params.n_neighbors).map_err(analysis_err)?;
            summary.umap = Some("placed on the reference UMAP (umap-learn's transform)".into());
            Some(umap_transform(layout.view(), &nbu, &params).map_err(analysis_err)?)
        }
        _ => {
            let why = format!(
                "no reference UMAP in {}: run `inmf analyze {}` first to place the query on it and draw the mapping plots; skipped",
                model_dir.join("result.h5ad").display(),
                model_dir.display()
            );
            log(&why);
            summary.umap = Some(why);
            None
        }
    };
    let mut kept = None;
    if let Some((column, truth, truth_names)) = labels {
        summary.confusion = transferred
            .iter()
            .find(|t| t.0 == column)
            .or(transferred.first())
            .map(|t| {
                confusion(
                    &t.0,
                    &truth,
                    &truth_names,
                    &t.1,
                    &t.2,
                    scores.as_ref().map(|s| s.1.as_slice()),
                )
            });
        kept = Some((column.to_string(), truth, truth_names));
    }
    Ok(Mapped {
        summary,
        transferred,
        scores,
        norm,
        umap,
        query_datasets,
        truth: kept,
    })
}

/// The confusion table of `truth` against `pred` (flagged cells in a last
/// column "unmatched"); accuracy and recall match label names.
fn confusion(
    column: &str,
    truth: &[u32],
    truth_names: &[String],
    pred: &[u32],
    pred_names: &[String],
    flags: Option<&[bool]>,
) -> Confusion {
    let mut predicted = pred_names.to_vec();
    predicted.push("unmatched".into());
    let un = predicted.len() - 1;
    let mut counts = vec![vec![0u64; predicted.len()]; truth_names.len()];
    let (mut right, mut label_right, mut total) = (0u64, 0u64, 0u64);
    for c in 0..truth.len() {
        if truth[c] == MISSING {
            continue;
        }
        if pred[c] != MISSING && pred_names[pred[c] as usize] == truth_names[truth[c] as usize] {
            label_right += 1;
        }
        let flagged = flags.is_some_and(|f| f[c]);
        let p = if flagged || pred[c] == MISSING {
            un
        } else {
            pred[c] as usize
        };
        counts[truth[c] as usize][p] += 1;
        total += 1;
        if p != un && pred_names[p] == truth_names[truth[c] as usize] {
            right += 1;
        }
    }
    let recall = truth_names
        .iter()
        .enumerate()
        .map(|(t, name)| {
            let n: u64 = counts[t].iter().sum();
            let hit = predicted
                .iter()
                .position(|p| p == name)
                .filter(|&p| p != un)
                .map_or(0, |p| counts[t][p]);
            let r = if n > 0 { hit as f64 / n as f64 } else { 0.0 };
            let fl = if n > 0 {
                counts[t][un] as f64 / n as f64
            } else {
                0.0
            };
            (name.clone(), r, n as usize, fl)
        })
        .collect();
    Confusion {
        column: column.to_string(),
        truth: truth_names.to_vec(),
        predicted,
        counts,
        accuracy: if total > 0 {
            right as f64 / total as f64
        } else {
            0.0
        },
        label_accuracy: if total > 0 {
            label_right as f64 / total as f64
        } else {
            0.0
        },
        recall,
    }
}

/// Writes the mapping into the result file (before it is completed).
pub(crate) fn write_mapping(writer: &mut ResultWriter, m: &Mapped) -> Result<(), DriverError> {
    let file = writer.file_mut();
    for (name, codes, cats, conf) in &m.transferred {
        let mut a = file.categorical_column(Axis::Obs, &format!("{name}_transferred"), cats, false)?;
        let c: Vec<i32> = codes
            .iter()
            .map(|&c| if c == MISSING { -1 } else { c as i32 })
            .collect();
        a.append(&c)?;
        a.finish()?;
        let mut a = file.numeric_column::<f64>(
            Axis::Obs,
            &format!("{name}_confidence"),
            DatasetOptions::default(),
        )?;
        a.append(conf)?;
        a.finish()?;
    }
    if let Some((scores, flags)) = &m.scores {
        let mut a = file.numeric_column::<i8>(Axis::Obs, "unmatched", DatasetOptions::default())?;
        a.append(&flags.iter().map(|&f| i8::from(f)).collect::<Vec<_>>())?;
        a.finish()?;
        let mut a = file.numeric_column::<f64>(Axis::Obs, "unmatched_score", DatasetOptions::default())?;
        a.append(scores)?;
        a.finish()?;
    }
    writer.write_obsm("X_inmf_norm", m.norm.mapv(f64::from).view())?;
    if let Some(u) = &m.umap {
        writer.write_obsm("X_umap", u.mapv(f64::from).view())?;
    }
    let s = &m.summary;
    writer.write_uns("inmf/mapping/transfer_k", UnsValue::I64(TRANSFER_K as i64))?;
    writer.write_uns("inmf/mapping/pseudo_cell_k", UnsValue::I64(PSEUDO_CELL_K as i64))?;
    let cols: Vec<&str> = s.columns.iter().map(String::as_str).collect();
    writer.write_uns("inmf/mapping/columns", UnsValue::Strs(&cols))?;
    if let Some(Ok(t)) = &s.calibration {
        writer.write_uns("inmf/mapping/unmatched_tail_ratio", UnsValue::F64(*t))?;
        let extra: Vec<&str> = s.extra_genes.iter().map(String::as_str).collect();
        writer.write_uns("inmf/mapping/unmatched_extra_genes", UnsValue::Strs(&extra))?;
        writer.write_uns(
            "inmf/mapping/unmatched_quantile",
            UnsValue::F64(UNMATCHED_QUANTILE),
        )?;
        let thr: Vec<f64> = s.flagged.iter().map(|f| f.3).collect();
        let n: Vec<i64> = s.flagged.iter().map(|f| f.2 as i64).collect();
        writer.write_uns("inmf/mapping/unmatched_threshold", UnsValue::F64s(&thr))?;
        writer.write_uns("inmf/mapping/unmatched_cells", UnsValue::I64s(&n))?;
    }
    if let Some(c) = &s.confusion {
        writer.write_uns("inmf/mapping/labels_compared", UnsValue::Str(&c.column))?;
        writer.write_uns("inmf/mapping/accuracy", UnsValue::F64(c.accuracy))?;
        writer.write_uns("inmf/mapping/label_accuracy", UnsValue::F64(c.label_accuracy))?;
        let names: Vec<&str> = c.recall.iter().map(|r| r.0.as_str()).collect();
        let rec: Vec<f64> = c.recall.iter().map(|r| r.1).collect();
        writer.write_uns("inmf/mapping/recall_labels", UnsValue::Strs(&names))?;
        writer.write_uns("inmf/mapping/recall", UnsValue::F64s(&rec))?;
        let rows: Vec<&str> = c.truth.iter().map(String::as_str).collect();
        let colsn: Vec<&str> = c.predicted.iter().map(String::as_str).collect();
        let m2 = Array2::from_shape_fn((c.truth.len(), c.predicted.len()), |(i, j)| c.counts[i][j] as f64);
        writer.write_uns("inmf/mapping/confusion_rows", UnsValue::Strs(&rows))?;
        writer.write_uns("inmf/mapping/confusion_columns", UnsValue::Strs(&colsn))?;
        writer.write_uns("inmf/mapping/confusion", UnsValue::F64Matrix(m2.view()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Flagged cells count as wrong in `accuracy` and by their transferred
    /// label in `label_accuracy`; cells without a label are left out of both.
    #[test]
    fn confusion_counts_flags_apart_from_labels() {
        let truth_names = names(&["T", "B"]);
        let pred_names = names(&["B", "T", "NK"]);
        // truth: T T B B (unlabelled) T; predicted: T T B T B NK
        let truth = [0, 0, 1, 1, MISSING, 0];
        let pred = [1, 1, 0, 1, 0, 2];
        let flags = [false, true, false, false, false, true];
        let c = confusion(
            "cell_type",
            &truth,
            &truth_names,
            &pred,
            &pred_names,
            Some(&flags),
        );
        // labelled: 5 cells; right by label: cells 0, 1, 2 → 3 of 5; cell 1 flagged.
        assert!(
            (c.label_accuracy - 3.0 / 5.0).abs() < 1e-12,
            "{}",
            c.label_accuracy
        );
        assert!((c.accuracy - 2.0 / 5.0).abs() < 1e-12, "{}", c.accuracy);
        assert_eq!(c.predicted.last().map(String::as_str), Some("unmatched"));
        // T row: cell 0 → T, cell 1 flagged, cell 5 flagged.
        assert_eq!(c.counts[0], vec![0, 1, 0, 2]);
        let t = &c.recall[0];
        assert_eq!((t.0.as_str(), t.2), ("T", 3));
        assert!((t.1 - 1.0 / 3.0).abs() < 1e-12 && (t.3 - 2.0 / 3.0).abs() < 1e-12);
        // Without flags both shares agree.
        let c = confusion("cell_type", &truth, &truth_names, &pred, &pred_names, None);
        assert!((c.accuracy - c.label_accuracy).abs() < 1e-12);
    }
}
