//! Scenario 2 (docs/algorithms.md §3): new datasets arrive and are learned into a
//! saved model without refactorizing from scratch.
//!
//! W starts from the saved W; each new V_j is sampled from the new data;
//! new A_j, B_j start at 0; t restarts at 1; mini-batch sizes and epochs
//! count over the new datasets only. Earlier datasets are frozen (V_i, A_i,
//! B_i unchanged) but enter the W update. The new data are preprocessed with
//! the model's genes (missing genes read as zeros) and the model's scaling
//! rule (library-size normalization, then scaleNotCenter computed on each
//! new dataset). At the end H is solved for the new cells and, unless
//! `new_only`, again for the old ones (their files are read again and must
//! be unchanged). The updated model is saved, so arrivals chain.

use std::path::PathBuf;
use std::time::Instant;

use inmf_learner::{sample_v, CellSource, DatasetState, FitError, MiniBatchPlan, OnlineParams};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::RunConfig;
use crate::error::DriverError;
use crate::output::guard::{check_output_dir, OutputSet};
use crate::output::model::SavedModel;
use crate::output::set::check_pair;
use crate::output::space::{ensure_space, model_set_bytes};
use crate::scenarios::learn::{learn, resume, CheckpointSpec, LearnSettings, Learning};
use crate::scenarios::minibatch;
use crate::scenarios::prepare::{cache_root, finish_cache, open_inputs, preprocess_inputs};
use crate::scenarios::run::{
    clean_stale, create_dir, in_pool, model_datasets, write_phase_outputs, InputSpec, PhaseOutputs,
    RunSummary,
};
use inmf_reader::{same_content, BlockPool};

/// Everything `inmf add` needs.
#[derive(Debug, Clone)]
pub struct AddRequest {
    /// Directory of the saved model (its `model.h5`).
    pub model_dir: PathBuf,
    /// The new datasets.
    pub inputs: Vec<InputSpec>,
    /// Output directory (may be the model directory: files are replaced atomically).
    pub out_dir: PathBuf,
    /// Preprocessing (`matrix`) and runtime settings; in `[model]` only
    /// `epochs`, `batch_size`, `shuffle_block`, `hals_sweeps`, `seed` and
    /// `tol` apply (K and λ are the model's); an unset `batch_size` is
    /// chosen from the new datasets' cells as in `inmf run`.
    pub config: RunConfig,
    /// Solve H only for the new cells (the old files are not read).
    pub new_only: bool,
    /// No progress bar.
    pub quiet: bool,
    /// Continue from OUT/checkpoint.h5 of an interrupted `add`.
    pub resume: bool,
}

/// Stream of the RNG used to sample new V_j: distinct from scenario 1's.
const ADD_STREAM: u64 = 1 << 40;

/// Runs scenario 2; see the module doc.
pub fn add_datasets(req: &AddRequest) -> Result<RunSummary, DriverError> {
    in_pool(req.config.runtime.threads, || add_in_pool(req))?
}

fn add_in_pool(req: &AddRequest) -> Result<RunSummary, DriverError> {
    let t0 = Instant::now();
    req.config.runtime.check()?;
    let model_path_in = req.model_dir.join("model.h5");
    check_pair(&req.model_dir)?;
    let saved = SavedModel::load(&model_path_in)?;
    let mut read: Vec<PathBuf> = req.inputs.iter().map(|i| i.path.clone()).collect();
    read.push(model_path_in.clone());
    if !req.new_only {
        read.extend(saved.datasets.iter().map(|d| d.path.clone()));
    }
    check_output_dir(
        &req.out_dir,
        &read,
        OutputSet::Model,
        std::slice::from_ref(&model_path_in),
    )?;
    if saved.checkpoint_iterations.is_some() {
        return Err(DriverError::InvalidModel {
            path: model_path_in,
            message: "this is a checkpoint of an unfinished run; finish it with --resume first".into(),
        });
    }
    if req.inputs.is_empty() {
        return Err(DriverError::InvalidParameter("no new dataset given".into()));
    }
    let n_old = saved.datasets.len();
    for (i, inp) in req.inputs.iter().enumerate() {
        if saved.datasets.iter().any(|d| d.name == inp.name)
            || req.inputs[..i].iter().any(|b| b.name == inp.name)
        {
            return Err(DriverError::InvalidParameter(format!(
                "a dataset named {:?} is already in the model or given twice; name the new one as NAME=PATH",
                inp.name
            )));
        }
    }
    let m = &req.config.model;
    let mut params = OnlineParams {
        k: saved.params.k,
        lambda: saved.params.lambda,
        // Chosen from the new datasets once they are preprocessed; the
        // range check needs a value.
        batch_size: m.batch_size.unwrap_or(minibatch::REFERENCE_SIZE),
        epochs: m.epochs,
        shuffle_block: m.shuffle_block,
        hals_sweeps: m.hals_sweeps,
        seed: m.seed,
    };
    params.check()?;

    // Old inputs are read again for their H unless --new-only: they must be unchanged.
    let mut inputs: Vec<InputSpec> = Vec::new();
    if !req.new_only {
        for d in &saved.datasets {
            if !d.path.exists() {
                return Err(DriverError::InvalidParameter(format!(
                    "dataset {:?} of the model was read from {}, which no longer exists; restore or link \
                     the file there, or pass --new-only to solve H only for the new cells",
                    d.name,
                    d.path.display()
                )));
            }
            inputs.push(InputSpec {
                name: d.name.clone(),
                path: d.path.clone(),
            });
        }
    }
    inputs.extend(req.inputs.iter().cloned());
    clean_stale(&req.out_dir, req.quiet);
    let cache_root = cache_root(&req.config.runtime, &req.out_dir);
    let opened = open_inputs(&inputs, &req.config.preprocess, Some(&saved.genes))?;
    let hashed = opened.fingerprint()?;
    if !req.quiet {
        crate::log::line(&hashed);
    }
    let n_rechecked = if req.new_only { 0 } else { n_old };
    for (old, d) in saved.datasets[..n_rechecked].iter().zip(&opened.datasets) {
        if !same_content(&old.fingerprint, d)? {
            return Err(DriverError::InvalidParameter(format!(
                "dataset {:?} of the model ({}) changed since the model was made (its content \
                 fingerprint differs); restore the original file, or pass --new-only",
                old.name,
                old.path.display()
            )));
        }
    }
    let (mut source, cache) = preprocess_inputs(opened, cache_root.as_deref(), req.quiet)?;
    if !req.quiet {
        crate::log::line(source.report().to_string().trim_end());
    }
    let first_new = if req.new_only { 0 } else { n_old };
    let cells = (0..source.n_datasets()).map(|d| source.n_cells(d)).sum();
    ensure_space(
        &req.out_dir,
        model_set_bytes(
            cells,
            source.n_genes(),
            params.k,
            n_old + source.n_datasets() - first_new,
        ),
    )?;
    if !req.new_only {
        for (d, old) in saved.datasets.iter().enumerate() {
            if source.n_cells(d) != old.n_cells || source.scale_factors(d) != old.scale.as_slice() {
                return Err(DriverError::InvalidParameter(format!(
                    "dataset {:?} ({}) no longer preprocesses to what the model recorded (cells or scale \
                     factors differ; were it or the --matrix option changed?); pass --new-only",
                    old.name,
                    old.path.display()
                )));
            }
        }
    }
    // Model ids of the source's datasets.
    let model_id = |d: usize| if req.new_only { n_old + d } else { d };

    let new_ids: Vec<(usize, usize)> = (first_new..source.n_datasets())
        .map(|d| (d, source.n_cells(d)))
        .collect();
    let new_cells: Vec<usize> = new_ids.iter().map(|&(_, n)| n).collect();
    let batch = minibatch::choose(m.batch_size, &new_cells);
    params.batch_size = batch.size;
    let plan = MiniBatchPlan::new(
        &new_ids,
        params.batch_size,
        params.shuffle_block,
        params.epochs,
        params.seed,
    )
    .map_err(|e| DriverError::from(e).with_dataset_names(source.dataset_names()))?;
    if !req.quiet {
        let names = &source.dataset_names()[first_new..];
        crate::log::line(&batch.describe(names, plan.sizes(), plan.n_iterations(), plan.epochs()));
    }
    let new_meta = model_datasets(&source, &inputs)?.split_off(first_new);
    let cache_line = finish_cache(&mut source, cache, &req.config.runtime)?;
    if !req.quiet {
        crate::log::line(&cache_line);
    }
    let mut all_meta = saved.datasets.clone();
    // Old datasets read again were checked unchanged: record their
    // fingerprints in the current format.
    for (d, meta) in all_meta[..n_rechecked].iter_mut().enumerate() {
        meta.fingerprint = source.dataset(d).fingerprint()?.to_owned();
    }
    all_meta.extend(new_meta);
    let mut base = saved.model.clone();
    for d in &mut base.datasets {
        d.frozen = true;
    }
    let template = SavedModel {
        model: base.clone(),
        params: params.clone(),
        genes: saved.genes.clone(),
        datasets: all_meta,
        iterations: saved.iterations,
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
    let t_pre = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let mut state = if req.resume {
        resume(&checkpoint)?
    } else {
        let mut model = base;
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        rng.set_stream(ADD_STREAM + n_old as u64);
        for d in first_new..source.n_datasets() {
            let v = sample_v(&mut source, d, params.k, &mut rng).map_err(|e| match e {
                FitError::Source(e) => DriverError::Reader(e),
                FitError::Learner(e) => DriverError::Learner(e),
            })?;
            model.datasets.push(DatasetState::new(v));
        }
        Learning {
            model,
            iterations: 0,
            epoch_objective: Vec::new(),
            epoch_seconds: Vec::new(),
        }
    };
    if checkpoint.every_epochs > 0 {
        create_dir(&req.out_dir)?;
    }
    let settings = LearnSettings {
        hals_sweeps: params.hals_sweeps,
        tol: m.tol,
        read_ahead: req.config.runtime.read_ahead,
        quiet: req.quiet,
        id_offset: n_old - first_new,
        pool: BlockPool::for_reader(source.n_datasets(), req.config.runtime.read_ahead),
    };
    let source = learn(&mut state, source, &plan, &settings, Some(&checkpoint))?;
    let t_learn = t1.elapsed().as_secs_f64();

    let genes = source.n_genes();
    let outputs = PhaseOutputs {
        out_dir: &req.out_dir,
        method: "online iNMF (scenario 2: datasets added to a saved model)",
        params: &params,
        batch,
        runtime: &req.config.runtime,
        quiet: req.quiet,
        model_ids: (0..source.n_datasets()).map(model_id).collect(),
        genes_in: genes,
        seconds: [t_pre, t_learn],
        pool: &settings.pool,
    };
    write_phase_outputs(source, state, checkpoint, outputs)
}
