//! The online learning loop shared by scenario 1 (`inmf run`) and
//! scenario 2 (`inmf add`): the reader thread streams each iteration's
//! mini-batches, this thread steps the model (docs/algorithms.md §3), tracks the
//! objective per epoch and writes checkpoints at epoch boundaries so an
//! interrupted run resumes to a bit-identical result.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use inmf_learner::{MiniBatchPlan, OnlineInmf, OnlineParams};
use inmf_reader::{spawn_reader, BlockPool, Hdf5Source};

use crate::error::DriverError;
use crate::output::model::SavedModel;

/// Where and how often to write checkpoints.
#[derive(Debug, Clone)]
pub(crate) struct CheckpointSpec {
    /// The checkpoint file (written via a temporary name).
    pub path: PathBuf,
    /// Write one every this many epochs; 0 = never.
    pub every_epochs: usize,
    /// …and only when this many seconds passed since the last one (or the
    /// start of learning).
    pub min_seconds: f64,
    /// Everything but the model state and counters, copied into each checkpoint.
    pub template: SavedModel,
}

/// Knobs of one learning phase.
#[derive(Debug, Clone)]
pub(crate) struct LearnSettings {
    /// HALS sweeps per iteration.
    pub hals_sweeps: usize,
    /// Early stop on the relative change of the epoch objective; 0 = off.
    pub tol: f64,
    /// Mini-batches read ahead.
    pub read_ahead: usize,
    /// No progress bar.
    pub quiet: bool,
    /// Model dataset id of the source's dataset 0 (scenario 2 with a
    /// source holding only the new datasets: the number of old ones).
    pub id_offset: usize,
    /// Spare blocks shared with the phase's other reader threads.
    pub pool: BlockPool,
}

/// The state of a learning phase, possibly restored from a checkpoint.
#[derive(Debug, Clone)]
pub(crate) struct Learning {
    /// The model being learned.
    pub model: OnlineInmf,
    /// Iterations of this phase already done.
    pub iterations: usize,
    /// Mean mini-batch objective per cell of each finished epoch.
    pub epoch_objective: Vec<f64>,
    /// Wall seconds of each epoch finished by this process (a resumed run
    /// lists only the epochs it ran; the checkpoint write after an epoch
    /// counts in that epoch).
    pub epoch_seconds: Vec<f64>,
}

pub(crate) fn progress_bar(quiet: bool, len: u64, prefix: &'static str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} {msg} ({per_sec}, ETA {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(prefix);
    pb
}

pub(crate) fn thread_err(e: std::io::Error) -> DriverError {
    DriverError::Internal(format!("cannot start the reader thread: {e}"))
}

/// Runs the remaining iterations of `plan` (plan ids are source dataset
/// indices) and gives the source back.
pub(crate) fn learn(
    state: &mut Learning,
    source: Hdf5Source,
    plan: &MiniBatchPlan,
    settings: &LearnSettings,
    checkpoint: Option<&CheckpointSpec>,
) -> Result<Hdf5Source, DriverError> {
    let skip = state.iterations;
    let requests = plan.iter().skip(skip).map(|it| it.batches);
    let reader = spawn_reader(source, requests, settings.read_ahead, &settings.pool).map_err(thread_err)?;
    let rx = reader.batches;
    let pb = progress_bar(settings.quiet, plan.n_iterations() as u64, "learning");
    pb.set_position(skip as u64);
    let (mut epoch_sum, mut epoch_cells) = (0.0, 0usize);
    let mut stopped_early = false;
    let mut outcome = Ok(());
    let mut epoch_start = std::time::Instant::now();
    let mut last_checkpoint = epoch_start;
    for info in plan.iter().skip(skip).map(|it| it.info) {
        if let Err(e) = crate::stop::check() {
            outcome = Err(e);
            break;
        }
        let mut batches = match rx.recv() {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                outcome = Err(e.into());
                break;
            }
            Err(_) => break, // reader ended early; checked below
        };
        for mb in &mut batches {
            mb.dataset += settings.id_offset;
        }
        let pool = &settings.pool;
        let rep = match state
            .model
            .step_releasing(info, batches, settings.hals_sweeps, |b| pool.give_back(b))
        {
            Ok(r) => r,
            Err(e) => {
                outcome = Err(e.into());
                break;
            }
        };
        state.iterations += 1;
        epoch_sum += rep.objective.total();
        epoch_cells += rep.cells;
        pb.inc(1);
        if info.new_epoch {
            let mean = epoch_sum / epoch_cells.max(1) as f64;
            pb.set_message(format!("epoch {} objective/cell {mean:.5}", info.epoch));
            let converged = settings.tol > 0.0
                && state
                    .epoch_objective
                    .last()
                    .is_some_and(|&prev| ((prev - mean) / prev).abs() < settings.tol);
            state.epoch_objective.push(mean);
            (epoch_sum, epoch_cells) = (0.0, 0);
            if converged {
                state.epoch_seconds.push(epoch_start.elapsed().as_secs_f64());
                stopped_early = true;
                break;
            }
            let last = state.iterations == plan.n_iterations();
            if let Some(c) = checkpoint.filter(|c| c.every_epochs > 0 && !last) {
                let due = last_checkpoint.elapsed().as_secs_f64() >= c.min_seconds;
                if info.epoch % c.every_epochs == 0 && due {
                    if let Err(e) = write_checkpoint(c, state) {
                        outcome = Err(e);
                        break;
                    }
                    last_checkpoint = std::time::Instant::now();
                }
            }
            state.epoch_seconds.push(epoch_start.elapsed().as_secs_f64());
            epoch_start = std::time::Instant::now();
        }
    }
    drop(rx);
    pb.finish_and_clear();
    let source = reader
        .thread
        .join()
        .map_err(|_| DriverError::Internal("the reader thread panicked".into()))?;
    outcome?;
    if state.iterations < plan.n_iterations() && !stopped_early {
        return Err(DriverError::Internal(
            "the reader stopped before the plan was done".into(),
        ));
    }
    Ok(source)
}

fn write_checkpoint(c: &CheckpointSpec, state: &Learning) -> Result<(), DriverError> {
    let mut snap = c.template.clone();
    snap.model = state.model.clone();
    snap.iterations = c.template.iterations + state.iterations;
    snap.epochs_done = state.epoch_objective.len();
    snap.epoch_objective = state.epoch_objective.clone();
    snap.checkpoint_iterations = Some(state.iterations);
    snap.save(&c.path)
}

/// `"a", "b"` for the log.
fn dataset_names(datasets: &[crate::output::model::ModelDataset]) -> String {
    datasets
        .iter()
        .map(|d| format!("{:?}", d.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Restores a learning phase from the checkpoint at `spec.path`, after
/// checking it belongs to this very run (same genes, datasets, fingerprints
/// and parameters as `spec.template`).
/// The parameters that differ between a checkpoint's (`was`) and this
/// run's (`now`), as `--k 10 (checkpoint: 20)`.
fn params_differ(was: &OnlineParams, now: &OnlineParams) -> Vec<String> {
    let mut out = Vec::new();
    let mut cmp = |flag: &str, w: String, n: String| {
        if w != n {
            out.push(format!("{flag} {n} (checkpoint: {w})"));
        }
    };
    cmp("--k", was.k.to_string(), now.k.to_string());
    cmp("--lambda", was.lambda.to_string(), now.lambda.to_string());
    cmp(
        "--batch-size",
        was.batch_size.to_string(),
        now.batch_size.to_string(),
    );
    cmp("--epochs", was.epochs.to_string(), now.epochs.to_string());
    cmp(
        "--shuffle-block",
        was.shuffle_block.to_string(),
        now.shuffle_block.to_string(),
    );
    cmp(
        "model.hals_sweeps",
        was.hals_sweeps.to_string(),
        now.hals_sweeps.to_string(),
    );
    cmp("--seed", was.seed.to_string(), now.seed.to_string());
    out
}

pub(crate) fn resume(spec: &CheckpointSpec) -> Result<Learning, DriverError> {
    let invalid =
        |m: String| DriverError::InvalidParameter(format!("cannot resume from {}: {m}", spec.path.display()));
    if !spec.path.exists() {
        return Err(invalid(
            "there is no checkpoint there; run without --resume (or with the same --out as the interrupted run)"
                .into(),
        ));
    }
    let ck = SavedModel::load(&spec.path).map_err(|e| match e {
        DriverError::DamagedFile { path, reason, .. } => DriverError::DamagedFile {
            path,
            reason,
            fix: "A run killed while writing it leaves the previous checkpoint, so it was changed \
                  afterwards; delete it and run without --resume"
                .into(),
        },
        other => other,
    })?;
    let t = &spec.template;
    let Some(iterations) = ck.checkpoint_iterations else {
        return Err(invalid("the file is a finished model, not a checkpoint".into()));
    };
    let differ = params_differ(&ck.params, &t.params);
    if !differ.is_empty() {
        return Err(invalid(format!(
            "it was written with other parameters: {}. Rerun with the checkpoint's values, or \
             without --resume to start again",
            differ.join(", ")
        )));
    }
    if ck.datasets.len() != t.datasets.len()
        || ck.datasets.iter().zip(&t.datasets).any(|(a, b)| a.name != b.name)
    {
        return Err(invalid(format!(
            "it was written for the datasets {}, this run has {}; rerun with the same inputs or without --resume",
            dataset_names(&ck.datasets),
            dataset_names(&t.datasets)
        )));
    }
    for (a, b) in ck.datasets.iter().zip(&t.datasets) {
        if a.fingerprint != b.fingerprint {
            return Err(invalid(format!(
                "input {:?} ({}) changed since the checkpoint was written (its content fingerprint \
                 differs); run without --resume to start over with the current file",
                b.name,
                b.path.display()
            )));
        }
    }
    if ck.genes != t.genes {
        return Err(invalid(
            "its genes differ from this run's (preprocessing options changed); rerun with the same \
             options or without --resume"
                .into(),
        ));
    }
    if let Some(b) = ck
        .datasets
        .iter()
        .zip(&t.datasets)
        .find_map(|(a, b)| (a.n_cells != b.n_cells || a.scale != b.scale).then_some(b))
    {
        return Err(invalid(format!(
            "dataset {:?} ({}) preprocesses differently from when the checkpoint was written (cells or \
             scale factors differ: was --matrix or another preprocessing option changed?); rerun with \
             the same options or without --resume",
            b.name,
            b.path.display()
        )));
    }
    Ok(Learning {
        model: ck.model,
        iterations,
        epoch_objective: ck.epoch_objective,
        epoch_seconds: Vec::new(),
    })
}
