//! The per-epoch lower bound of online learning on this machine, for the
//! performance report ("epoch time / bound").
//!
//! An epoch must at least (a) read every mini-batch from the source and
//! (b) run the two sparse products of every mini-batch, R = X·(W+V_i) and
//! B_i += XᵀH, each 2·nnz·K flops, with the kernels the run uses (the
//! reduced-precision ones: `inmf_learner::project_f16` for R and
//! `accumulate_xt_h_f32` for B). Reading happens on the reader thread,
//! overlapped with compute, so
//!
//!   bound = max(bytes / read rate, 4·nnz·K / sparse-product rate),
//!
//! with both rates measured here, on the run's own data, right after the
//! run: the read rate by streaming one epoch of the plan through the reader
//! thread with nothing consuming it, the product rate by timing both
//! kernels (all worker threads) on the first iteration's mini-batches
//! (median over repetitions). The
//! dense work (BPP NNLS, HALS) is left out, so the bound is optimistic:
//! an epoch within 2× of it has little left to win in the products or I/O.

use std::time::Instant;

use inmf_learner::{accumulate_xt_h_f32, project_f16, CellSource, MiniBatchPlan, OnlineInmf};
use inmf_reader::{spawn_reader, BlockPool, Hdf5Source};
use ndarray::Array2;

use crate::error::DriverError;
use crate::scenarios::learn::thread_err;

/// Rates measured on this machine and the bound they give per epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochBound {
    /// Bytes read per epoch: per cell a row pointer (8 B), per non-zero a
    /// column index and a value (4 + 4 B).
    pub bytes_per_epoch: f64,
    /// Non-zeros read per epoch.
    pub nnz_per_epoch: f64,
    /// Read rate of the source (bytes/s), reader thread alone.
    pub read_bytes_per_s: f64,
    /// Rate of the two sparse products (flop/s), all worker threads.
    pub sparse_flops_per_s: f64,
    /// max(bytes/read rate, 4·nnz·K/product rate), seconds.
    pub seconds: f64,
}

/// Measures the rates and the per-epoch bound for `plan` over `source`
/// with `model`'s factors (K columns), and gives the source back.
pub(crate) fn measure_epoch_bound(
    source: Hdf5Source,
    plan: &MiniBatchPlan,
    model: &OnlineInmf,
    read_ahead: usize,
    pool: &BlockPool,
) -> Result<(Hdf5Source, EpochBound), DriverError> {
    // (a) One epoch through the reader thread, nothing but recycling on the
    // consuming side.
    let mut first_epoch = Vec::new();
    for it in plan.iter() {
        first_epoch.push(it.batches);
        if it.info.new_epoch {
            break; // the iteration that completes epoch 1
        }
    }
    let first = first_epoch.first().cloned().unwrap_or_default();
    let started = Instant::now();
    let reader = spawn_reader(source, first_epoch, read_ahead.max(1), pool).map_err(thread_err)?;
    let (mut nnz, mut rows) = (0usize, 0usize);
    for msg in reader.batches.iter() {
        let batches = msg?;
        for mb in &batches {
            nnz += mb.x.nnz();
            rows += mb.n_cells();
        }
        pool.give_back(batches);
    }
    let read_s = started.elapsed().as_secs_f64();
    let mut source = reader
        .thread
        .join()
        .map_err(|_| DriverError::Internal("the reader thread panicked".into()))?;
    let bytes = (8 * rows + 8 * nnz) as f64;

    // (b) The two products on the first iteration's mini-batches, repeated
    // at least 7 times and for at least 0.5 s; the rate is the median over
    // repetitions (this machine's rate drifts by ±15 % from second to second).
    let mut blocks = Vec::new();
    for (d, runs) in &first {
        let x = source.read_runs(*d, runs)?;
        let wv = &model.w + &model.datasets[*d].v;
        blocks.push((x, wv));
    }
    let block_nnz: usize = blocks.iter().map(|(x, _)| x.nnz()).sum();
    let k = model.k();
    let mut b = Array2::<f64>::zeros((model.n_genes(), k));
    let (mut rep_seconds, started) = (Vec::new(), Instant::now());
    while rep_seconds.len() < 7 || started.elapsed().as_secs_f64() < 0.5 {
        let rep = Instant::now();
        for (x, wv) in &blocks {
            let r = project_f16(x, wv.view());
            accumulate_xt_h_f32(x, r.view(), 1e-3, b.view_mut());
        }
        rep_seconds.push(rep.elapsed().as_secs_f64());
    }
    rep_seconds.sort_by(f64::total_cmp);
    let median_s = rep_seconds[rep_seconds.len() / 2];
    let flops_per_rep = 4.0 * block_nnz as f64 * k as f64;
    let sparse_rate = flops_per_rep / median_s.max(1e-12);
    let read_rate = bytes / read_s.max(1e-9);
    let flops = 4.0 * nnz as f64 * k as f64;
    let bound = EpochBound {
        bytes_per_epoch: bytes,
        nnz_per_epoch: nnz as f64,
        read_bytes_per_s: read_rate,
        sparse_flops_per_s: sparse_rate,
        seconds: (bytes / read_rate).max(flops / sparse_rate),
    };
    Ok((source, bound))
}
