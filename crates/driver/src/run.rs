//! Scenario 1: learn W, V_i from all datasets at once with online iNMF
//! (ALGORITHMS.md §3), then solve H for every cell in a streaming pass and
//! write `model.h5` and `result.h5ad`.
//!
//! Data flow: the reader thread owns every HDF5 handle and sends each
//! iteration's mini-batches through a bounded channel; this thread solves
//! and updates. Memory is O(genes·K·datasets + a few mini-batches).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use inmf_learner::{initial_model, plan_all, CellSource, FitError, ObjectiveParts, OnlineParams};
use inmf_reader::{spawn_reader, Hdf5Source, ReaderError};

use crate::prepare::open_and_preprocess;

use crate::config::RunConfig;
use crate::error::DriverError;
use crate::model::{ModelDataset, SavedModel};
use crate::results::ResultWriter;

/// One input dataset: `NAME=PATH` or `PATH` (name = file stem).
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// Dataset name used in outputs.
    pub name: String,
    /// File path.
    pub path: PathBuf,
}

impl FromStr for InputSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, path) = match s.split_once('=') {
            Some((n, p)) if !n.is_empty() && !n.contains('/') => (n.to_string(), PathBuf::from(p)),
            _ => {
                let p = PathBuf::from(s);
                let stem = p
                    .file_stem()
                    .map(|x| x.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (stem, p)
            }
        };
        if name.is_empty() || path.as_os_str().is_empty() {
            return Err(format!("{s:?} is not NAME=PATH or PATH"));
        }
        Ok(Self { name, path })
    }
}

/// Everything `inmf run` needs.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Datasets, in order (the first one defines an epoch).
    pub inputs: Vec<InputSpec>,
    /// Output directory.
    pub out_dir: PathBuf,
    /// Parameters.
    pub config: RunConfig,
    /// No progress bar.
    pub quiet: bool,
}

/// What a run did, with timings; `Display` prints the summary.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Per dataset: name, cells in the file, cells used.
    pub datasets: Vec<(String, usize, usize)>,
    /// Genes selected.
    pub genes: usize,
    /// Genes shared by all inputs (the candidates of selectGenes).
    pub genes_in: usize,
    /// K, λ.
    pub k: usize,
    /// λ.
    pub lambda: f64,
    /// Online iterations done.
    pub iterations: usize,
    /// Epochs done.
    pub epochs: usize,
    /// Mean mini-batch objective per cell of each epoch.
    pub epoch_objective: Vec<f64>,
    /// Objective of all cells after the final H pass.
    pub final_objective: ObjectiveParts,
    /// Seconds: preprocessing, epochs, final H pass + writing.
    pub seconds: [f64; 3],
    /// Output files.
    pub outputs: Vec<PathBuf>,
    /// Peak resident memory of the process (VmHWM), where the OS reports it.
    pub peak_rss_bytes: Option<u64>,
}

/// Peak resident set size of this process from /proc/self/status (Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells: usize = self.datasets.iter().map(|d| d.2).sum();
        writeln!(
            f,
            "inmf run: {} datasets, {cells} cells, {} genes selected, K = {}, λ = {}",
            self.datasets.len(),
            self.genes,
            self.k,
            self.lambda
        )?;
        for (name, total, used) in &self.datasets {
            writeln!(
                f,
                "  {name}: {used} cells used of {total}{}",
                if total > used {
                    format!(" ({} all-zero cells dropped)", total - used)
                } else {
                    String::new()
                }
            )?;
        }
        writeln!(
            f,
            "  {} iterations, {} epochs; mean mini-batch objective per cell by epoch:",
            self.iterations, self.epochs
        )?;
        for (e, o) in self.epoch_objective.iter().enumerate() {
            writeln!(f, "    epoch {}: {o:.6}", e + 1)?;
        }
        let o = &self.final_objective;
        writeln!(
            f,
            "  final objective F = {:.6e} (residual {:.6e} + penalty {:.6e}), {:.6} per cell",
            o.total(),
            o.residual,
            o.penalty,
            o.total() / cells.max(1) as f64
        )?;
        let [p, e, h] = self.seconds;
        writeln!(
            f,
            "  time: preprocess {p:.2} s, epochs {e:.2} s, final H + write {h:.2} s, total {:.2} s",
            p + e + h
        )?;
        if let Some(b) = self.peak_rss_bytes {
            writeln!(f, "  peak memory (RSS): {:.1} MB", b as f64 / 1048576.0)?;
        }
        for out in &self.outputs {
            writeln!(f, "  wrote {}", out.display())?;
        }
        Ok(())
    }
}

fn source_err(e: FitError<ReaderError>) -> DriverError {
    match e {
        FitError::Source(e) => DriverError::Reader(e),
        FitError::Learner(e) => DriverError::Learner(e),
    }
}

fn check_request(req: &RunRequest) -> Result<OnlineParams, DriverError> {
    let m = &req.config.model;
    let params = OnlineParams {
        k: m.k,
        lambda: m.lambda,
        batch_size: m.batch_size,
        epochs: m.epochs,
        shuffle_block: m.shuffle_block,
        hals_sweeps: m.hals_sweeps,
        seed: m.seed,
    };
    params.check()?;
    if !(m.tol.is_finite() && m.tol >= 0.0) {
        return Err(DriverError::InvalidParameter(format!(
            "tol must be ≥ 0, got {}",
            m.tol
        )));
    }
    if req.inputs.is_empty() {
        return Err(DriverError::InvalidParameter("no input dataset given".into()));
    }
    for (i, a) in req.inputs.iter().enumerate() {
        if req.inputs[..i].iter().any(|b| b.name == a.name) {
            return Err(DriverError::InvalidParameter(format!(
                "two inputs are named {:?}; name them explicitly as NAME=PATH",
                a.name
            )));
        }
    }
    if req.config.runtime.final_block == 0 || req.config.runtime.read_ahead == 0 {
        return Err(DriverError::InvalidParameter(
            "final_block and read_ahead must be at least 1".into(),
        ));
    }
    Ok(params)
}

/// Runs scenario 1 end to end. On error nothing is left in the output
/// directory that was not there before (files are written under temporary
/// names and renamed at the end).
pub fn run_online(req: &RunRequest) -> Result<RunSummary, DriverError> {
    let params = check_request(req)?;
    let threads = req.config.runtime.threads;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| DriverError::InvalidParameter(format!("cannot start {threads} threads: {e}")))?;
    pool.install(|| run_in_pool(req, &params))
}

fn progress_bar(quiet: bool, len: u64) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} {msg} ({per_sec}, ETA {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb
}

fn run_in_pool(req: &RunRequest, params: &OnlineParams) -> Result<RunSummary, DriverError> {
    let t0 = Instant::now();
    let mut source = open_and_preprocess(&req.inputs, &req.config.preprocess)?;
    if !req.quiet {
        eprint!("{}", source.report());
    }
    let t_pre = t0.elapsed().as_secs_f64();

    // Online learning.
    let t1 = Instant::now();
    let mut model = initial_model(&mut source, params).map_err(source_err)?;
    let plan = plan_all(&source, params)?;
    let requests = plan.iter().map(|it| it.batches);
    let (rx, reader) = spawn_reader(source, requests, req.config.runtime.read_ahead).map_err(thread_err)?;
    let pb = progress_bar(req.quiet, plan.n_iterations() as u64);
    pb.set_prefix("learning");
    let mut epoch_objective = Vec::new();
    let (mut epoch_sum, mut epoch_cells) = (0.0, 0usize);
    let mut iterations = 0;
    let mut stopped_early = false;
    for info in plan.iter().map(|it| it.info) {
        let batches = match rx.recv() {
            Ok(b) => b?,
            Err(_) => break, // the reader ended; its error (if any) comes from join below
        };
        let rep = model.step(info, &batches, params.hals_sweeps)?;
        iterations += 1;
        epoch_sum += rep.objective.total();
        epoch_cells += rep.cells;
        pb.inc(1);
        if info.new_epoch {
            let mean = epoch_sum / epoch_cells.max(1) as f64;
            pb.set_message(format!("epoch {} objective/cell {mean:.5}", info.epoch));
            let tol = req.config.model.tol;
            let converged = tol > 0.0
                && epoch_objective
                    .last()
                    .is_some_and(|&prev: &f64| ((prev - mean) / prev).abs() < tol);
            epoch_objective.push(mean);
            (epoch_sum, epoch_cells) = (0.0, 0);
            if converged {
                stopped_early = true;
                break;
            }
        }
    }
    drop(rx);
    pb.finish_and_clear();
    let source = reader
        .join()
        .map_err(|_| DriverError::Internal("the reader thread panicked".into()))?;
    if iterations < plan.n_iterations() && !stopped_early {
        return Err(DriverError::Internal(
            "the reader stopped before the plan was done".into(),
        ));
    }
    let t_learn = t1.elapsed().as_secs_f64();

    // Final H pass, objective, outputs.
    let t2 = Instant::now();
    std::fs::create_dir_all(&req.out_dir).map_err(|source| DriverError::Io {
        path: req.out_dir.clone(),
        source,
    })?;
    let model_path = req.out_dir.join("model.h5");
    let result_path = req.out_dir.join("result.h5ad");
    let mut writer = ResultWriter::create(&result_path, &source, &model, params, &epoch_objective)?;
    let saved = SavedModel {
        model,
        params: params.clone(),
        genes: source.genes().to_vec(),
        datasets: (0..source.n_datasets())
            .map(|d| ModelDataset {
                name: req.inputs[d].name.clone(),
                path: req.inputs[d].path.clone(),
                n_cells: source.n_cells(d),
                scale: source.scale_factors(d).to_vec(),
            })
            .collect(),
        iterations,
        epochs_done: epoch_objective.len(),
    };
    let genes_in = source.report().genes_shared;
    let datasets: Vec<(String, usize, usize)> = (0..source.n_datasets())
        .map(|d| {
            (
                req.inputs[d].name.clone(),
                source.cell_map(d).n_total(),
                source.n_cells(d),
            )
        })
        .collect();
    let genes = source.n_genes();
    let final_objective = solve_all_h(source, &saved.model, &mut writer, req)?;
    let model_tmp = saved.save_to_temp(&model_path)?;
    writer.finish(final_objective)?;
    model_tmp.commit()?;
    let t_final = t2.elapsed().as_secs_f64();

    Ok(RunSummary {
        datasets,
        genes,
        genes_in,
        k: params.k,
        lambda: params.lambda,
        iterations,
        epochs: epoch_objective.len(),
        epoch_objective,
        final_objective,
        seconds: [t_pre, t_learn, t_final],
        outputs: vec![model_path, result_path],
        peak_rss_bytes: peak_rss_bytes(),
    })
}

fn thread_err(e: std::io::Error) -> DriverError {
    DriverError::Internal(format!("cannot start the reader thread: {e}"))
}

/// Solves H for every cell of every dataset in blocks read ahead by the
/// reader thread, writes each block as it is solved and sums the objective.
fn solve_all_h(
    source: Hdf5Source,
    model: &inmf_learner::OnlineInmf,
    writer: &mut ResultWriter,
    req: &RunRequest,
) -> Result<ObjectiveParts, DriverError> {
    let block = req.config.runtime.final_block;
    let mut requests = Vec::new();
    for d in 0..source.n_datasets() {
        let n = source.n_cells(d);
        for s in (0..n).step_by(block) {
            requests.push(vec![(d, vec![s..(s + block).min(n)])]);
        }
    }
    let total: usize = (0..source.n_datasets()).map(|d| source.n_cells(d)).sum();
    let pb = progress_bar(req.quiet, total as u64);
    pb.set_prefix("final H");
    let n_requests = requests.len();
    let (rx, reader) = spawn_reader(source, requests, req.config.runtime.read_ahead).map_err(thread_err)?;
    let mut objective = ObjectiveParts::default();
    let mut received = 0;
    for msg in rx.iter() {
        for mb in msg? {
            let (h, obj) = model.solve_h(mb.dataset, &mb.x)?;
            objective += obj;
            writer.write_h(mb.dataset, mb.cells[0].clone(), h.view())?;
            pb.inc(mb.n_cells() as u64);
        }
        received += 1;
    }
    pb.finish_and_clear();
    reader
        .join()
        .map_err(|_| DriverError::Internal("the reader thread panicked".into()))?;
    if received != n_requests {
        return Err(DriverError::Internal(
            "the reader stopped before all cells were read".into(),
        ));
    }
    Ok(objective)
}
