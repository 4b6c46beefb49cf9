//! Orchestration of an online run over any [`CellSource`], reading in the
//! caller's thread: initialisation (§3 "Initialisation") and the iteration
//! loop. The driver runs the same steps with a reader thread in between.

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::LearnerError;
use crate::online::init::{random_w, shuffled_cells, v_from_cells};
use crate::online::schedule::{IterationInfo, MiniBatchPlan};
use crate::online::source::{CellSource, MiniBatch};
use crate::online::{OnlineInmf, OnlineParams, StepReport};
use crate::sparse::CsrMatrix;

/// A failure of a fit: the data source's own error, or the numerics'.
#[derive(Debug, thiserror::Error)]
pub enum FitError<E: std::error::Error + 'static> {
    /// Reading from the source failed.
    #[error(transparent)]
    Source(E),
    /// The numerics refused the data or parameters.
    #[error(transparent)]
    Learner(#[from] LearnerError),
}

/// The initial model: W ~ Uniform(0,2) with unit columns, then for each
/// dataset in order V_i from K distinct random non-zero cells (unit columns),
/// all drawn from one ChaCha8 stream seeded by `params.seed`.
///
/// Errors if K exceeds the genes, or a dataset has fewer than K non-zero cells.
pub fn initial_model<S: CellSource>(
    source: &mut S,
    params: &OnlineParams,
) -> Result<OnlineInmf, FitError<S::Error>> {
    params.check()?;
    let (m, k) = (source.n_genes(), params.k);
    if k > m {
        return Err(LearnerError::InvalidParameter(format!(
            "K = {k} factors but only {m} genes: choose K ≤ {m} or select more genes"
        ))
        .into());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let w = random_w(m, k, &mut rng);
    let mut vs = Vec::with_capacity(source.n_datasets());
    for i in 0..source.n_datasets() {
        vs.push(sample_v(source, i, k, &mut rng)?);
    }
    Ok(OnlineInmf::new(w, vs, params.lambda)?)
}

/// V_i (genes × K) from K distinct random cells of `dataset` with non-zero
/// values, each scaled to unit L2 norm (§3 "Initialisation"; all-zero cells
/// are skipped). Errors if the dataset has fewer than K such cells.
pub fn sample_v<S: CellSource, R: rand::Rng>(
    source: &mut S,
    dataset: usize,
    k: usize,
    rng: &mut R,
) -> Result<Array2<f64>, FitError<S::Error>> {
    let m = source.n_genes();
    let n = source.n_cells(dataset);
    if k > n {
        return Err(LearnerError::InvalidParameter(format!(
            "K = {k} factors but dataset {dataset} has only {n} cells: choose K ≤ {n}"
        ))
        .into());
    }
    let mut chosen = CsrMatrix::empty(m);
    for c in shuffled_cells(n, rng) {
        let cell = source.read_cells(dataset, c..c + 1).map_err(FitError::Source)?;
        if cell.data().iter().any(|&x| x != 0.0) {
            chosen.append(&cell);
            if chosen.n_rows() == k {
                break;
            }
        }
    }
    if chosen.n_rows() < k {
        return Err(LearnerError::InvalidData(format!(
            "dataset {dataset} has only {} cells with non-zero values in the model genes, fewer than K = {k}",
            chosen.n_rows()
        ))
        .in_dataset(dataset)
        .into());
    }
    Ok(v_from_cells(&chosen)?)
}

/// The plan of scenario 1: all datasets of the source, learned together.
pub fn plan_all<S: CellSource>(source: &S, params: &OnlineParams) -> Result<MiniBatchPlan, LearnerError> {
    let ds: Vec<(usize, usize)> = (0..source.n_datasets()).map(|i| (i, source.n_cells(i))).collect();
    MiniBatchPlan::new(
        &ds,
        params.batch_size,
        params.shuffle_block,
        params.epochs,
        params.seed,
    )
}

/// Runs every iteration of `plan` on `model`, reading batches from `source`
/// in this thread; `on_step` sees each iteration's counters and report.
pub fn run_plan<S: CellSource>(
    model: &mut OnlineInmf,
    source: &mut S,
    plan: &MiniBatchPlan,
    hals_sweeps: usize,
    mut on_step: impl FnMut(IterationInfo, &StepReport),
) -> Result<(), FitError<S::Error>> {
    for it in plan.iter() {
        let mut batches = Vec::with_capacity(it.batches.len());
        for (d, runs) in it.batches {
            let x = source.read_runs(d, &runs).map_err(FitError::Source)?;
            batches.push(MiniBatch {
                dataset: d,
                cells: runs,
                x,
            });
        }
        let rep = model.step(it.info, &batches, hals_sweeps)?;
        on_step(it.info, &rep);
    }
    Ok(())
}
