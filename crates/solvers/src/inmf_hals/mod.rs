//! Batch iNMF by hierarchical alternating least squares (docs/algorithms.md §4.2;
//! derivation in the online iNMF supplementary note).
//!
//! With X_i cells × genes, W and V_i genes × K, H_i cells × K,
//! A_i = H_iᵀH_i, B_i = X_iᵀH_i, G_i = (W+V_i)ᵀ(W+V_i) + λV_iᵀV_i,
//! R_i = X_i(W+V_i), minimise
//!
//!   F = Σ_i ‖X_i − H_i(W+V_i)ᵀ‖² + λ Σ_i ‖H_iV_iᵀ‖²
//!
//! one column at a time, Gauss–Seidel over j = 1..K (each update uses the
//! columns already updated), for each dataset i then W:
//! - H_i·j ← [H_i·j + (R_i·j − H_iG_i·j) / G_i,jj]_+
//! - V_i·j ← [V_i·j + (B_i·j − (W + (1+λ)V_i)A_i·j) / ((1+λ)A_i,jj)]_+
//! - W_·j ← [W_·j + Σ_i (B_i·j − (W+V_i)A_i·j) / Σ_i A_i,jj]_+
//!
//! Each is the exact minimiser of F over its column (the Hessian in one
//! column is a multiple of the identity), so F never increases. A column
//! whose denominator is 0 (factor j unused) is left unchanged. Because the
//! rows of H_i (cells) and of V_i, W (genes) do not interact within a column
//! update, the sweep runs row by row (all j for one cell, then the next),
//! which is the same arithmetic as column by column, cache-friendly and
//! parallel over fixed blocks of cells.
//!
//! Report: `residual` = Σ‖X_i − H_i(W+V_i)ᵀ‖², `penalty` = λΣ‖H_iV_iᵀ‖².
#![allow(non_snake_case)]

use std::time::Instant;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use inmf_learner::{project_into, CsrMatrix, LearnerError, CELL_BLOCK};

use crate::inmf_mu::{InmfMuParams, MuState};
use crate::inputs::{inmf_start, validate_datasets};
use crate::report::{InmfFactors, InmfFit, Trace};

mod params;

pub use params::InmfHalsParams;

/// Batch iNMF by HALS (module docs).
///
/// `init`: `None` draws W and V_i exactly as [`inmf_anls`](crate::inmf_anls)
/// does for the same seed and starts from H_i = 0; `Some` uses the given W,
/// V_i and, if `h` is not empty, one H_i per dataset (else H_i = 0).
///
/// Errors: invalid parameters; no datasets, gene counts that differ, K >
/// genes or cells, negative or non-finite data, fewer than K non-zero cells
/// (default init); a bad init (all named).
pub fn inmf_hals(
    datasets: &[CsrMatrix],
    params: &InmfHalsParams,
    init: Option<InmfFactors>,
) -> Result<InmfFit, LearnerError> {
    let start = Instant::now();
    params.check()?;
    let genes = validate_datasets(datasets, params.k)?;
    let mut f = inmf_start(datasets, genes, params.k, params.seed, init, false)?;
    // The statistics and objective are those of the MU solver; only the updates differ.
    let mu_params = InmfMuParams {
        k: params.k,
        lambda: params.lambda,
        ..InmfMuParams::default()
    };
    let mut st = MuState::new(datasets, &mu_params);
    let mut r: Vec<Array2<f64>> = datasets
        .iter()
        .map(|x| Array2::zeros((x.n_rows(), params.k)))
        .collect();
    let mut trace = Trace::new(params.max_iter, params.tol);
    while trace.iterations() < params.max_iter {
        for (i, x) in datasets.iter().enumerate() {
            update_h(x, &mut f, i, params.lambda, &mut r[i]);
            st.refresh_stats(&f, i);
            update_v(&mut f, i, st.a(i), st.b(i), params.lambda);
        }
        update_w(&mut f, &st);
        if trace.record(st.objective(&f))? {
            break;
        }
    }
    Ok(InmfFit {
        factors: f,
        iterations: trace.iterations(),
        stop: trace.stop,
        objective: trace.objective,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// One Gauss–Seidel sweep over the columns of the rows of `Y` (n × K):
/// y_rj ← [y_rj + (c_rj − Σ_l y_rl M_lj) / (s·M_jj)]_+ with the target rows
/// `c` (n × K), M (K × K) and scale s (columns with M_jj = 0 unchanged).
/// The rows are independent: parallel over fixed blocks of rows.
fn sweep_rows(y: &mut Array2<f64>, c: ArrayView2<f64>, m: ArrayView2<f64>, s: f64) {
    let k = y.ncols();
    let c = c.as_standard_layout();
    let cs = c.as_slice().expect("standard layout");
    let m = m.as_standard_layout();
    let ms = m.as_slice().expect("standard layout");
    let ys = y.as_slice_mut().expect("factors are kept in standard layout");
    ys.par_chunks_mut(CELL_BLOCK * k.max(1))
        .zip(cs.par_chunks(CELL_BLOCK * k.max(1)))
        .for_each(|(yb, cb)| {
            for (yr, cr) in yb.chunks_mut(k).zip(cb.chunks(k)) {
                for j in 0..k {
                    let den = s * ms[j * k + j];
                    if den <= 0.0 {
                        continue;
                    }
                    // M is symmetric: column j = row j, contiguous.
                    let fit: f64 = yr.iter().zip(&ms[j * k..(j + 1) * k]).map(|(a, b)| a * b).sum();
                    yr[j] = (yr[j] + (cr[j] - s * fit) / den).max(0.0);
                }
            }
        });
}

/// H_i sweep: target R_i = X_i(W+V_i), M = G_i.
fn update_h(x: &CsrMatrix, f: &mut InmfFactors, i: usize, lambda: f64, r: &mut Array2<f64>) {
    let wv = &f.w + &f.v[i];
    project_into(x, wv.view(), r.view_mut());
    let g = wv.t().dot(&wv) + f.v[i].t().dot(&f.v[i]) * lambda;
    sweep_rows(&mut f.h[i], r.view(), g.view(), 1.0);
}

/// V_i sweep: target B_i − W A_i, M = A_i, scale 1 + λ.
fn update_v(f: &mut InmfFactors, i: usize, a: &Array2<f64>, b: &Array2<f64>, lambda: f64) {
    let mut c = b.clone();
    general_mat_mul(-1.0, &f.w, a, 1.0, &mut c);
    sweep_rows(&mut f.v[i], c.view(), a.view(), 1.0 + lambda);
}

/// W sweep: target Σ_i (B_i − V_i A_i), M = Σ_i A_i.
fn update_w(f: &mut InmfFactors, st: &MuState<'_>) {
    let k = f.w.ncols();
    let mut c = Array2::<f64>::zeros(f.w.dim());
    let mut sa = Array2::<f64>::zeros((k, k));
    for (i, v) in f.v.iter().enumerate() {
        c += st.b(i);
        general_mat_mul(-1.0, v, st.a(i), 1.0, &mut c);
        sa += st.a(i);
    }
    sweep_rows(&mut f.w, c.view(), sa.view(), 1.0);
}

#[cfg(test)]
mod tests;
