//! Scenario 1: learn W, V_i from all datasets at once with online iNMF
//! (docs/algorithms.md §3), then solve H for every cell in a streaming pass and
//! write `model.h5` and `result.h5ad`.
//!
//! Data flow: the reader thread owns every HDF5 handle and sends each
//! iteration's mini-batches through a bounded channel; this thread solves
//! and updates. Memory is O(genes·K·datasets + a few mini-batches).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use inmf_learner::{initial_model, plan_all, CellSource, FitError, ObjectiveParts, OnlineInmf, OnlineParams};
use inmf_reader::{BlockPool, DecodeRate, Hdf5Source, ReaderError};
use ndarray::Array2;

use crate::scenarios::learn::{learn, resume, CheckpointSpec, LearnSettings, Learning};
use crate::scenarios::minibatch::{self, MiniBatchSize};
use crate::scenarios::prepare::{cache_root, finish_cache, open_inputs, preprocess_inputs, CacheUse};

use crate::anndata::UnsValue;
use crate::config::RunConfig;
use crate::error::DriverError;
use crate::output::guard::{check_output_dir, OutputSet};
use crate::output::model::{ModelDataset, SavedModel};
use crate::output::results::{solve_and_write, ResultContent, ResultWriter};
use crate::output::set::new_id;
use crate::output::space::{ensure_space, model_set_bytes};
use crate::scenarios::bound::{measure_epoch_bound, EpochBound};

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
    /// `PATH` when the whole argument names an existing file (even with a
    /// `=` in it); otherwise `NAME=PATH` split at the first `=`; otherwise
    /// `PATH` named by its file stem. Names become HDF5 keys
    /// (`varm['V_NAME']`), so they are non-empty and hold no `/`.
    fn from_str(s: &str) -> Result<Self, String> {
        let as_path = |p: PathBuf| {
            let stem = p
                .file_stem()
                .map(|x| x.to_string_lossy().into_owned())
                .unwrap_or_default();
            (stem, p)
        };
        let (name, path) = match s.split_once('=') {
            _ if std::path::Path::new(s).is_file() => as_path(PathBuf::from(s)),
            Some((n, p)) => {
                if n.is_empty() {
                    return Err(format!(
                        "{s:?} has an empty dataset name before '='; give NAME=PATH with a name, or the path alone"
                    ));
                }
                if n.contains('/') {
                    return Err(format!(
                        "{s:?} is neither an existing file nor NAME=PATH: the name {n:?} contains '/', which \
                         dataset names cannot hold (they become HDF5 keys). Check the path, or name the \
                         dataset without '/'"
                    ));
                }
                (n.to_string(), PathBuf::from(p))
            }
            None => as_path(PathBuf::from(s)),
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
    /// Continue from OUT/checkpoint.h5 of an interrupted run.
    pub resume: bool,
    /// After learning, measure this machine's per-epoch bound on the run's
    /// data ([`EpochBound`]; not counted in the phase times).
    pub measure_bound: bool,
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
    /// Cells per iteration over the learned datasets.
    pub batch_size: usize,
    /// The mini-batch size was chosen from the data (not given).
    pub batch_size_chosen: bool,
    /// Epochs done.
    pub epochs: usize,
    /// Mean mini-batch objective per cell of each epoch.
    pub epoch_objective: Vec<f64>,
    /// Wall seconds of each epoch this process ran.
    pub epoch_seconds: Vec<f64>,
    /// Objective of all cells after the final H pass.
    pub final_objective: ObjectiveParts,
    /// Seconds: preprocessing, epochs, final H pass (reading, solving and
    /// objective of every cell; H blocks are written by a writer thread
    /// meanwhile), writing (creating result.h5ad, the model, and completing
    /// both).
    pub seconds: [f64; 4],
    /// Output files.
    pub outputs: Vec<PathBuf>,
    /// Peak resident memory of the process (VmHWM), where the OS reports it.
    pub peak_rss_bytes: Option<u64>,
    /// The per-epoch bound, when asked for ([`RunRequest::measure_bound`]).
    pub bound: Option<EpochBound>,
    /// The preprocessing's steps and their wall seconds (`inmf run`:
    /// opening and fingerprinting the inputs, the passes, the cache build).
    pub preprocess_steps: Vec<(&'static str, f64)>,
    /// One read and decode of the inputs' stored matrices on all cores,
    /// measured after the run when asked for
    /// ([`RunRequest::measure_bound`]): the bound of any preprocessing
    /// pass. `None` when not asked for or when an input's storage is not
    /// one decoded by chunks.
    pub decode_rate: Option<DecodeRate>,
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
            "  {} iterations of {} cells ({}), {} epochs; mean mini-batch objective per cell by epoch:",
            self.iterations,
            self.batch_size,
            if self.batch_size_chosen {
                "mini-batch chosen from the data"
            } else {
                "mini-batch as given"
            },
            self.epochs
        )?;
        // A resumed run timed only its own (last) epochs.
        let untimed = self
            .epoch_objective
            .len()
            .saturating_sub(self.epoch_seconds.len());
        for (e, o) in self.epoch_objective.iter().enumerate() {
            match e.checked_sub(untimed).and_then(|i| self.epoch_seconds.get(i)) {
                Some(t) => writeln!(f, "    epoch {}: {o:.6} ({t:.2} s)", e + 1)?,
                None => writeln!(f, "    epoch {}: {o:.6}", e + 1)?,
            }
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
        let [p, e, h, w] = self.seconds;
        writeln!(
            f,
            "  time: preprocess {p:.2} s, epochs {e:.2} s, final H {h:.2} s, write {w:.2} s, total {:.2} s",
            p + e + h + w
        )?;
        if !self.preprocess_steps.is_empty() {
            let steps: Vec<String> = self
                .preprocess_steps
                .iter()
                .map(|(n, t)| format!("{n} {t:.2} s"))
                .collect();
            writeln!(f, "  preprocess: {}", steps.join(", "))?;
        }
        if let Some(d) = &self.decode_rate {
            writeln!(
                f,
                "  decode bound {:.2} s (one read of {:.1} MB stored, {:.1} MB decoded, all cores: {:.0} MB/s); preprocess / bound = {:.2}",
                d.seconds,
                d.stored_bytes as f64 / 1e6,
                d.decoded_bytes as f64 / 1e6,
                d.decoded_bytes as f64 / 1e6 / d.seconds.max(1e-9),
                p / d.seconds.max(1e-9)
            )?;
        }
        if let Some(b) = self.peak_rss_bytes {
            writeln!(f, "  peak memory (RSS): {:.1} MB", b as f64 / 1048576.0)?;
        }
        if let Some(b) = &self.bound {
            let per_epoch = e / self.epochs.max(1) as f64;
            writeln!(
                f,
                "  epoch bound {:.3} s (read {:.2} GB/s, sparse products {:.1} GFLOP/s); epoch time / bound = {:.2}",
                b.seconds,
                b.read_bytes_per_s / 1e9,
                b.sparse_flops_per_s / 1e9,
                per_epoch / b.seconds
            )?;
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
        // The size chosen from the data is only known after preprocessing;
        // the range check needs a value.
        batch_size: m.batch_size.unwrap_or(minibatch::REFERENCE_SIZE),
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
    req.config.runtime.check()?;
    let inputs: Vec<PathBuf> = req.inputs.iter().map(|i| i.path.clone()).collect();
    check_output_dir(&req.out_dir, &inputs, OutputSet::Model, &[])?;
    Ok(params)
}

/// Removes the temporaries of killed runs from `dir` (see
/// [`inmf_reader::remove_stale_temporaries`]) and says so unless `quiet`.
pub(crate) fn clean_stale(dir: &std::path::Path, quiet: bool) {
    let removed = inmf_reader::remove_stale_temporaries(dir);
    if let (Some(line), false) = (inmf_reader::describe_removed(&removed), quiet) {
        crate::log::line(&line);
    }
}

/// K must not exceed the genes of the model (checked before W is allocated).
pub(crate) fn check_k(k: usize, genes: usize) -> Result<(), DriverError> {
    if k > genes {
        return Err(DriverError::InvalidParameter(format!(
            "K = {k} factors but only {genes} genes are selected: choose --k ≤ {genes}, or select \
             more genes (--n-genes 0 keeps every gene that passes selection)"
        )));
    }
    Ok(())
}

/// Runs scenario 1 end to end. On error nothing is left in the output
/// directory that was not there before, except a checkpoint of an
/// interrupted learning phase (files are written under temporary names and
/// renamed at the end).
pub fn run_online(req: &RunRequest) -> Result<RunSummary, DriverError> {
    let params = check_request(req)?;
    in_pool(req.config.runtime.threads, || run_in_pool(req, &params))?
}

/// Threads per core accepted by [`in_pool`]: more only adds switching.
const MAX_THREADS_PER_CORE: usize = 16;

/// Runs `f` on a rayon pool of `threads` threads (0 = one per core), at
/// most [`MAX_THREADS_PER_CORE`] per core.
pub(crate) fn in_pool<T>(threads: usize, f: impl FnOnce() -> T + Send) -> Result<T, DriverError>
where
    T: Send,
{
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let max = MAX_THREADS_PER_CORE * cores;
    if threads > max {
        return Err(DriverError::InvalidParameter(format!(
            "--threads {threads} is more than {MAX_THREADS_PER_CORE} per core of this machine's {cores}: \
             choose at most {max} (0 = one per core, usually the fastest)"
        )));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| DriverError::InvalidParameter(format!("cannot start {threads} threads: {e}")))?;
    Ok(pool.install(f))
}

/// Records each input of `source` for the model file (fingerprints are
/// computed if they were not yet).
pub(crate) fn model_datasets(
    source: &Hdf5Source,
    inputs: &[InputSpec],
) -> Result<Vec<ModelDataset>, DriverError> {
    (0..source.n_datasets())
        .map(|d| {
            Ok(ModelDataset {
                name: source.dataset_names()[d].clone(),
                path: inputs[d].path.clone(),
                n_cells: source.n_cells(d),
                fingerprint: source.dataset(d).fingerprint()?.to_owned(),
                scale: source.scale_factors(d).to_vec(),
            })
        })
        .collect()
}

fn run_in_pool(req: &RunRequest, params: &OnlineParams) -> Result<RunSummary, DriverError> {
    let t0 = Instant::now();
    let cache_root = cache_root(&req.config.runtime, &req.out_dir);
    clean_stale(&req.out_dir, req.quiet);
    let opened = open_inputs(&req.inputs, &req.config.preprocess, None)?;
    let hashed = opened.fingerprint()?;
    if !req.quiet {
        crate::log::line(&hashed);
    }
    let mut steps = vec![("open and fingerprint", t0.elapsed().as_secs_f64())];
    let (mut source, cache) = preprocess_inputs(opened, cache_root.as_deref(), req.quiet)?;
    if let CacheUse::Reused(_, _, seconds) = &cache {
        steps.push(("cache check", *seconds));
    }
    if let Some(p) = source.pass_seconds() {
        steps.push(("statistics pass", p.statistics));
        if let Some(c) = p.cells {
            steps.push(("cells pass", c));
        }
    }
    check_k(params.k, source.n_genes())?;
    // Before the (long) cache build: room for the outputs, counted with
    // every cell the build may still drop (cells without counts in the
    // selected genes).
    let cells: usize = (0..source.n_datasets()).map(|d| source.n_cells(d)).sum();
    ensure_space(
        &req.out_dir,
        model_set_bytes(cells, source.n_genes(), params.k, source.n_datasets()),
    )?;
    let t_cache = Instant::now();
    let cache_line = finish_cache(&mut source, cache, &req.config.runtime)?;
    let t_build = t_cache.elapsed().as_secs_f64();
    if source.is_cached() && source.pass_seconds().is_some() {
        steps.push(("cache build", t_build));
    }
    if !req.quiet {
        crate::log::line(source.report().to_string().trim_end());
        crate::log::line(&cache_line);
    }
    // Preprocessing ends with the cache built; the cells are final.
    let t_pre = t0.elapsed().as_secs_f64();
    let per_dataset: Vec<usize> = (0..source.n_datasets()).map(|d| source.n_cells(d)).collect();
    let batch = minibatch::choose(req.config.model.batch_size, &per_dataset);
    let params = &OnlineParams {
        batch_size: batch.size,
        ..params.clone()
    };
    let names = source.dataset_names().to_vec();
    let template = SavedModel {
        model: OnlineInmf::new(
            Array2::zeros((source.n_genes(), params.k)),
            Vec::new(),
            params.lambda,
        )?,
        params: params.clone(),
        genes: source.genes().to_vec(),
        datasets: model_datasets(&source, &req.inputs)?,
        iterations: 0,
        epochs_done: 0,
        epoch_objective: Vec::new(),
        checkpoint_iterations: None,
    };
    let checkpoint = CheckpointSpec {
        path: req.out_dir.join("checkpoint.h5"),
        every_epochs: req.config.runtime.checkpoint_every,
        min_seconds: req.config.runtime.checkpoint_seconds,
        template,
    };

    // Online learning.
    let t1 = Instant::now();
    let mut state = if req.resume {
        resume(&checkpoint)?
    } else {
        let model = initial_model(&mut source, params)
            .map_err(source_err)
            .map_err(|e| e.with_dataset_names(&names))?;
        Learning {
            model,
            iterations: 0,
            epoch_objective: Vec::new(),
            epoch_seconds: Vec::new(),
        }
    };
    let plan = plan_all(&source, params).map_err(|e| DriverError::from(e).with_dataset_names(&names))?;
    if !req.quiet {
        crate::log::line(&batch.describe(&names, plan.sizes(), plan.n_iterations(), plan.epochs()));
    }
    if checkpoint.every_epochs > 0 {
        create_dir(&req.out_dir)?;
    }
    let settings = LearnSettings {
        hals_sweeps: params.hals_sweeps,
        tol: req.config.model.tol,
        read_ahead: req.config.runtime.read_ahead,
        quiet: req.quiet,
        id_offset: 0,
        pool: BlockPool::for_reader(source.n_datasets(), req.config.runtime.read_ahead),
    };
    let source = learn(&mut state, source, &plan, &settings, Some(&checkpoint))?;
    let t_learn = t1.elapsed().as_secs_f64();
    let (source, bound, decode) = if req.measure_bound {
        let (s, b) = measure_epoch_bound(source, &plan, &state.model, settings.read_ahead, &settings.pool)?;
        let decode = s.decode_rate()?;
        (s, Some(b), decode)
    } else {
        (source, None, None)
    };

    let outputs = PhaseOutputs {
        out_dir: &req.out_dir,
        method: "online iNMF (scenario 1)",
        params,
        batch,
        runtime: &req.config.runtime,
        quiet: req.quiet,
        model_ids: (0..source.n_datasets()).collect(),
        genes_in: source.report().genes_shared,
        seconds: [t_pre, t_learn],
        pool: &settings.pool,
    };
    let mut summary = write_phase_outputs(source, state, checkpoint, outputs)?;
    summary.bound = bound;
    summary.preprocess_steps = steps;
    summary.decode_rate = decode;
    Ok(summary)
}

/// What [`write_phase_outputs`] needs besides the learned state.
pub(crate) struct PhaseOutputs<'a> {
    /// Output directory.
    pub out_dir: &'a std::path::Path,
    /// `uns['inmf']['method']`.
    pub method: &'a str,
    /// Parameters of the learning phase.
    pub params: &'a OnlineParams,
    /// Its mini-batch size and where it came from.
    pub batch: MiniBatchSize,
    /// Final-pass block size and read-ahead.
    pub runtime: &'a crate::config::RuntimeConfig,
    /// No progress bar.
    pub quiet: bool,
    /// Model dataset id of each source dataset.
    pub model_ids: Vec<usize>,
    /// Genes shared by the inputs (for the summary).
    pub genes_in: usize,
    /// Seconds of preprocessing and learning so far.
    pub seconds: [f64; 2],
    /// Spare blocks left by the learning phase, refilled by the final pass.
    pub pool: &'a BlockPool,
}

/// The end of a learning phase (`run` and `add`): solve H for every cell of
/// `source` in a streaming pass, write result.h5ad and model.h5 under
/// temporary names, commit both, and drop the checkpoint.
pub(crate) fn write_phase_outputs(
    source: Hdf5Source,
    state: Learning,
    checkpoint: CheckpointSpec,
    o: PhaseOutputs<'_>,
) -> Result<RunSummary, DriverError> {
    let t_create = Instant::now();
    create_dir(o.out_dir)?;
    let model_path = o.out_dir.join("model.h5");
    let result_path = o.out_dir.join("result.h5ad");
    let model = state.model;
    let names = source.dataset_names().to_vec();
    let vs = names
        .iter()
        .zip(&o.model_ids)
        .map(|(n, &id)| (n.clone(), model.datasets[id].v.view()))
        .collect();
    let content = ResultContent {
        method: o.method,
        w: model.w.view(),
        v: vs,
        params: Some(o.params),
        epoch_objective: &state.epoch_objective,
    };
    let set_id = new_id();
    let mut writer = ResultWriter::create(&result_path, &source, content, false)?;
    writer.write_uns("inmf/output_set", UnsValue::Str(&set_id))?;
    let t_pass = Instant::now();
    let mut t_write = (t_pass - t_create).as_secs_f64();
    let datasets: Vec<(String, usize, usize)> = (0..source.n_datasets())
        .map(|d| (names[d].clone(), source.cell_map(d).n_total(), source.n_cells(d)))
        .collect();
    let genes = source.n_genes();
    let rt = o.runtime;
    let solvers = o
        .model_ids
        .iter()
        .map(|&id| model.h_solver(id))
        .collect::<Result<Vec<_>, _>>()?;
    let pass = solve_and_write(
        source,
        &mut writer,
        |d, x| solvers[d].solve(x),
        rt.final_block,
        rt.read_ahead,
        o.pool,
        o.quiet,
    )?;
    let t_final_h = t_pass.elapsed().as_secs_f64();
    let t_finish = Instant::now();
    let saved = SavedModel {
        model,
        iterations: checkpoint.template.iterations + state.iterations,
        epochs_done: state.epoch_objective.len(),
        epoch_objective: state.epoch_objective.clone(),
        ..checkpoint.template
    };
    // Both files are complete under temporary names before either is
    // renamed; the shared output-set id ties them (crate::output::set).
    let model_tmp = saved.save_to_temp(&model_path, Some(&set_id))?;
    writer.finish(pass.objective, pass.zero_cells)?;
    model_tmp.commit()?;
    let _ = std::fs::remove_file(&checkpoint.path);
    t_write += t_finish.elapsed().as_secs_f64();
    let [t_pre, t_learn] = o.seconds;
    Ok(RunSummary {
        datasets,
        genes,
        genes_in: o.genes_in,
        k: o.params.k,
        lambda: o.params.lambda,
        iterations: state.iterations,
        batch_size: o.batch.size,
        batch_size_chosen: o.batch.source != minibatch::Source::Given,
        epochs: state.epoch_objective.len(),
        epoch_objective: state.epoch_objective,
        epoch_seconds: state.epoch_seconds,
        final_objective: pass.objective,
        seconds: [t_pre, t_learn, t_final_h, t_write],
        outputs: vec![model_path, result_path],
        peak_rss_bytes: peak_rss_bytes(),
        bound: None,
        preprocess_steps: Vec::new(),
        decode_rate: None,
    })
}

pub(crate) fn create_dir(dir: &std::path::Path) -> Result<(), DriverError> {
    std::fs::create_dir_all(dir).map_err(|source| DriverError::io(dir, source))
}
