//! Scenario 3 (docs/algorithms.md §3): project query datasets onto a saved
//! model's W. H = NNLS with G = WᵀW and R = X·W (V treated as 0, as in the
//! anchor); the model does not change. Queries are preprocessed with the
//! model's genes (missing genes read as zeros) and the model's scaling rule.
//! Cells whose projection is all zeros are counted, named in the summary
//! and flagged in `obs['h_all_zero']`: never silently kept.

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use inmf_learner::{CellSource, ObjectiveParts};
use inmf_reader::BlockPool;

use crate::analyze::StagingDir;
use crate::config::RunConfig;
use crate::error::DriverError;
use crate::mapping::{
    load_reference, map_query, query_labels, write_mapping, Collector, MappingOptions, MappingSummary,
    QueryInputs,
};
use crate::mapping_genes::query_genes;
use crate::mapping_joint::{run_joint, write_joint};
use crate::mapping_plots::{remove_old_plots, write_mapping_plots};
use crate::output::guard::{check_output_dir, OutputSet};
use crate::output::model::SavedModel;
use crate::output::results::{solve_and_write, ResultContent, ResultWriter};
use crate::output::set::check_pair;
use crate::output::space::{ensure_space, projection_bytes};
use crate::scenarios::prepare::open_and_preprocess;
use crate::scenarios::run::{clean_stale, create_dir, in_pool, peak_rss_bytes, InputSpec};

/// Everything `inmf project` needs.
#[derive(Debug, Clone)]
pub struct ProjectRequest {
    /// Directory of the saved model (its `model.h5`).
    pub model_dir: PathBuf,
    /// Query datasets.
    pub inputs: Vec<InputSpec>,
    /// Output directory.
    pub out_dir: PathBuf,
    /// Preprocessing (`matrix`) and runtime settings.
    pub config: RunConfig,
    /// No progress bar.
    pub quiet: bool,
    /// Label transfer and the unmatched flag (docs/algorithms.md §10.1).
    pub mapping: MappingOptions,
}

/// What a projection did.
#[derive(Debug, Clone)]
pub struct ProjectSummary {
    /// Per query dataset: name, cells in the file, cells used.
    pub datasets: Vec<(String, usize, usize)>,
    /// Model genes, and how many each query lacks.
    pub genes: usize,
    /// Model genes missing per query dataset.
    pub genes_missing: Vec<usize>,
    /// ‖X − WH‖² over all query cells.
    pub objective: ObjectiveParts,
    /// Cells whose H is all zeros.
    pub zero_cells: usize,
    /// Seconds.
    pub seconds: f64,
    /// The result file.
    pub output: PathBuf,
    /// Peak RSS.
    pub peak_rss_bytes: Option<u64>,
    /// What the reference mapping found.
    pub mapping: MappingSummary,
    /// Plot files (PNG and SVG) in `OUT/analysis/`; none without a reference UMAP.
    pub plots: Vec<PathBuf>,
}

impl fmt::Display for ProjectSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells: usize = self.datasets.iter().map(|d| d.2).sum();
        writeln!(
            f,
            "inmf project: {cells} query cells onto W ({} genes)",
            self.genes
        )?;
        for ((name, total, used), missing) in self.datasets.iter().zip(&self.genes_missing) {
            writeln!(
                f,
                "  {name}: {used} cells used of {total}, {missing} model genes missing (zeros)"
            )?;
        }
        writeln!(
            f,
            "  residual ‖X − WH‖² = {:.6e} ({:.6} per cell)",
            self.objective.residual,
            self.objective.residual / cells.max(1) as f64
        )?;
        if self.zero_cells > 0 {
            writeln!(
                f,
                "  WARNING: {} cells project to all-zero H (nothing of W explains them); they are flagged in obs['h_all_zero']",
                self.zero_cells
            )?;
        } else {
            writeln!(f, "  every cell has a non-zero projection")?;
        }
        write!(f, "{}", self.mapping)?;
        if !self.plots.is_empty() {
            writeln!(f, "plots:")?;
            for p in &self.plots {
                writeln!(f, "  {}", p.display())?;
            }
        }
        writeln!(f, "  time {:.2} s", self.seconds)?;
        if let Some(b) = self.peak_rss_bytes {
            writeln!(f, "  peak memory (RSS): {:.1} MB", b as f64 / 1048576.0)?;
        }
        writeln!(f, "  wrote {}", self.output.display())
    }
}

/// Runs scenario 3; see the module doc.
pub fn project(req: &ProjectRequest) -> Result<ProjectSummary, DriverError> {
    in_pool(req.config.runtime.threads, || project_in_pool(req))?
}

fn project_in_pool(req: &ProjectRequest) -> Result<ProjectSummary, DriverError> {
    let t0 = Instant::now();
    req.config.runtime.check()?;
    if req.inputs.is_empty() {
        return Err(DriverError::InvalidParameter("no query dataset given".into()));
    }
    let model_path = req.model_dir.join("model.h5");
    let mut inputs: Vec<PathBuf> = req.inputs.iter().map(|i| i.path.clone()).collect();
    inputs.push(model_path.clone());
    check_output_dir(&req.out_dir, &inputs, OutputSet::ResultOnly, &[])?;
    check_pair(&req.model_dir)?;
    let saved = SavedModel::load(&model_path)?;
    let reference = load_reference(&req.model_dir, &req.mapping)?;
    clean_stale(&req.out_dir, req.quiet);
    // One pass over the query: a cache would cost a pass more than it saves.
    let (source, _) = open_and_preprocess(&req.inputs, &req.config.preprocess, Some(&saved.genes), None)?;
    if !req.quiet {
        crate::log::line(source.report().to_string().trim_end());
    }
    let labels = match &req.mapping.labels {
        Some(col) => Some((col.as_str(), query_labels(&source, col)?)),
        None => None,
    };
    let cells = (0..source.n_datasets()).map(|d| source.n_cells(d)).sum();
    ensure_space(
        &req.out_dir,
        projection_bytes(cells, source.n_genes(), saved.params.k),
    )?;
    create_dir(&req.out_dir)?;
    let output = req.out_dir.join("result.h5ad");
    let model = &saved.model;
    let content = ResultContent {
        method: "projection onto W (scenario 3)",
        w: model.w.view(),
        v: Vec::new(),
        params: None,
        epoch_objective: &[],
    };
    let mut writer = ResultWriter::create(&output, &source, content, true)?;
    let datasets: Vec<(String, usize, usize)> = (0..source.n_datasets())
        .map(|d| {
            (
                source.dataset_names()[d].clone(),
                source.cell_map(d).n_total(),
                source.n_cells(d),
            )
        })
        .collect();
    let genes_missing = source.report().datasets.iter().map(|d| d.genes_missing).collect();
    let genes = source.n_genes();
    let rt = &req.config.runtime;
    let solver = model.projection_solver()?;
    let dataset_names = source.dataset_names().to_vec();
    let collected = Collector::new(source.n_datasets());
    let query = QueryInputs {
        specs: req.inputs.clone(),
        cells: (0..source.n_datasets())
            .map(|d| source.cell_map(d).clone())
            .collect(),
        extra_genes: query_genes(&req.inputs, &req.config.preprocess, &saved.genes),
        block: req.config.runtime.final_block,
    };
    let pass = solve_and_write(
        source,
        &mut writer,
        |d, x| {
            let (h, obj) = solver.solve(x)?;
            collected.push(d, &h);
            Ok((h, obj))
        },
        rt.final_block,
        rt.read_ahead,
        &BlockPool::for_reader(1, rt.read_ahead),
        req.quiet,
    )?;
    let quiet = req.quiet;
    let mut mapped = map_query(
        &reference,
        collected,
        &query,
        &saved,
        &req.model_dir,
        &req.config.preprocess,
        &solver,
        &dataset_names,
        labels.map(|(c, (codes, names))| (c, codes, names)),
        &mut |line| {
            if !quiet {
                crate::log::line(line)
            }
        },
    )?;
    write_mapping(&mut writer, &mapped)?;
    if req.mapping.joint {
        let t = Instant::now();
        let joint = run_joint(&reference, &mapped)?;
        write_joint(&mut writer, &joint)?;
        if !quiet {
            crate::log::line(&format!(
                "joint analysis of reference and query: {:.1} s",
                t.elapsed().as_secs_f64()
            ));
        }
        mapped.summary.joint = Some(joint.summary);
    }
    // Plots are drawn into a temporary folder and moved into place once
    // result.h5ad is complete: a failure leaves no partial plot behind.
    let plot_dir = req.out_dir.join("analysis");
    let staged = match (&reference.umap, &mapped.umap) {
        (Some(ru), Some(qu)) => {
            std::fs::create_dir_all(&plot_dir).map_err(|source| DriverError::io(&plot_dir, source))?;
            let staging = StagingDir::new(&plot_dir)?;
            let files = write_mapping_plots(
                &staging.path,
                ru.view(),
                qu.view(),
                &mapped,
                &dataset_names,
                reference.seed,
            )
            .map_err(|e| match e {
                DriverError::InvalidOutput { path, reason } => DriverError::InvalidOutput {
                    path: plot_dir.join(path.file_name().unwrap_or_default()),
                    reason,
                },
                other => other,
            })?;
            Some((staging, files))
        }
        _ => None,
    };
    writer.finish(pass.objective, pass.zero_cells)?;
    remove_old_plots(&plot_dir);
    let plots = match staged {
        Some((staging, files)) => staging.move_into_place(&files)?,
        None => Vec::new(),
    };
    Ok(ProjectSummary {
        datasets,
        genes,
        genes_missing,
        objective: pass.objective,
        zero_cells: pass.zero_cells,
        seconds: t0.elapsed().as_secs_f64(),
        output,
        peak_rss_bytes: peak_rss_bytes(),
        mapping: mapped.summary,
        plots,
    })
}
