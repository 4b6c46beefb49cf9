//! Batch iNMF by alternating non-negative least squares (docs/algorithms.md §4.1;
//! rliger's `optimizeALS`).
//!
//! With X_i cells × genes, W and V_i genes × K, H_i cells × K, minimise
//!
//!   F = Σ_i ‖X_i − H_i(W + V_i)ᵀ‖² + λ Σ_i ‖H_iV_iᵀ‖²,  W, V_i, H_i ≥ 0,
//!
//! (docs/algorithms.md §1 transposed) by exact block minimisations, each a batch
//! of NNLS problems sharing one Gram matrix, solved by [`nnls_bpp_warm_into`]'s
//! block principal pivoting (warm-started from the previous iterate):
//!
//! 1. each H_i, one row per cell: G = (W+V_i)ᵀ(W+V_i) + λV_iᵀV_i,
//!    R = X_i(W+V_i);
//! 2. each V_i, one row per gene: G = (1+λ)H_iᵀH_i, R = X_iᵀH_i − W·H_iᵀH_i;
//! 3. W, one row per gene: G = Σ_i H_iᵀH_i, R = Σ_i (X_iᵀH_i − V_i·H_iᵀH_i).
//!
//! Each step minimises F exactly over its block, so F is non-increasing (up
//! to rounding). Iterations stop when the relative decrease
//! (F_{t−1} − F_t)/F_{t−1} falls below `tol` (from the second iteration on)
//! or after `max_iter` iterations. Unlike online iNMF, the W step weighs
//! datasets by their number of cells.
//!
//! [`nnls_bpp_warm_into`]: inmf_learner::nnls_bpp_warm_into

use std::time::Instant;

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use inmf_learner::{
    accumulate_xt_h, dataset_objective, gram_of_rows, nnls_bpp_into, nnls_bpp_warm_into, project, random_w,
    shuffled_cells, v_from_cells, CsrMatrix, LearnerError, ObjectiveParts,
};

use crate::report::{InmfFactors, InmfFit, StopReason};

mod params;

pub use params::InmfAnlsParams;

/// Batch iNMF by ANLS (module docs; docs/algorithms.md §4.1).
///
/// `datasets`: X_i, cells × genes, non-negative, same genes. `init`: if
/// `None`, W = [`random_w`] and V_i = [`v_from_cells`] of K distinct random
/// non-zero cells of dataset i (drawn with [`shuffled_cells`]), all from
/// `ChaCha8Rng::seed_from_u64(seed)`, W first then V_1, V_2, … in dataset
/// order (as online iNMF, docs/algorithms.md §3). If `Some`, W and V_i are used
/// as given; `h` may be empty (then the first H solve starts cold) or hold
/// one H_i per dataset, used as the warm start of the first H solve (the
/// H step is exact, so it only changes the work, not the result).
///
/// Errors name the offending dataset: no datasets, gene counts that differ,
/// K > genes or K > cells of a dataset, negative or non-finite values,
/// fewer than K non-zero cells (default init), init factors of the wrong
/// shape or with negative / non-finite entries; numerical failures of the
/// NNLS steps are passed on.
pub fn inmf_anls(
    datasets: &[CsrMatrix],
    params: &InmfAnlsParams,
    init: Option<InmfFactors>,
) -> Result<InmfFit, LearnerError> {
    let start = Instant::now();
    params.check()?;
    let genes = crate::inputs::validate_datasets(datasets, params.k)?;
    let k = params.k;
    let lambda = params.lambda;

    let (mut w, mut v, mut h, h_warm) = match init {
        Some(f) => {
            crate::inputs::check_inmf_init(&f, datasets, genes, k, false)?;
            let warm = !f.h.is_empty();
            let h: Vec<Array2<f64>> = if warm {
                f.h.into_iter().map(standard_layout).collect()
            } else {
                datasets.iter().map(|x| Array2::zeros((x.n_rows(), k))).collect()
            };
            (
                standard_layout(f.w),
                f.v.into_iter().map(standard_layout).collect::<Vec<_>>(),
                h,
                warm,
            )
        }
        None => {
            let (w, v) = default_init(datasets, genes, k, params.seed)?;
            let h = datasets.iter().map(|x| Array2::zeros((x.n_rows(), k))).collect();
            (w, v, h, false)
        }
    };

    let mut objective: Vec<ObjectiveParts> = Vec::with_capacity(params.max_iter);
    let mut stop = StopReason::MaxIterations;
    let mut w_gram = Array2::<f64>::zeros((k, k));
    let mut w_rhs = Array2::<f64>::zeros((genes, k));
    let mut xth = Array2::<f64>::zeros((genes, k));
    for iter in 0..params.max_iter {
        w_gram.fill(0.0);
        w_rhs.fill(0.0);
        for (i, x) in datasets.iter().enumerate() {
            // H_i: rows per cell, G = (W+V_i)ᵀ(W+V_i) + λV_iᵀV_i, R = X_i(W+V_i).
            let wv = &w + &v[i];
            let g = wv.t().dot(&wv) + v[i].t().dot(&v[i]) * lambda;
            let r = project(x, wv.view());
            if iter == 0 && !h_warm {
                nnls_bpp_into(g.view(), r.view(), h[i].view_mut())?;
            } else {
                nnls_bpp_warm_into(g.view(), r.view(), h[i].view_mut())?;
            }

            // V_i: rows per gene, G = (1+λ)H_iᵀH_i, R = X_iᵀH_i − W·H_iᵀH_i.
            let hth = gram_of_rows(h[i].view());
            xth.fill(0.0);
            accumulate_xt_h(x, h[i].view(), 1.0, xth.view_mut());
            let v_rhs = &xth - &w.dot(&hth);
            nnls_bpp_warm_into((&hth * (1.0 + lambda)).view(), v_rhs.view(), v[i].view_mut())?;

            // W's normal equations collect Σ_i H_iᵀH_i and Σ_i (X_iᵀH_i − V_i·H_iᵀH_i).
            w_gram += &hth;
            w_rhs += &xth;
            w_rhs -= &v[i].dot(&hth);
        }
        nnls_bpp_warm_into(w_gram.view(), w_rhs.view(), w.view_mut())?;

        let mut f = ObjectiveParts::default();
        for (i, x) in datasets.iter().enumerate() {
            f += dataset_objective(x, w.view(), v[i].view(), h[i].view(), lambda);
        }
        let previous = objective.last().map(ObjectiveParts::total);
        objective.push(f);
        if let Some(prev) = previous {
            if relative_decrease(prev, f.total()) < params.tol {
                stop = StopReason::Converged;
                break;
            }
        }
    }

    Ok(InmfFit {
        factors: InmfFactors { w, v, h },
        iterations: objective.len(),
        objective,
        stop,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The NNLS steps write into the factors in place, which needs row-major storage.
fn standard_layout(a: Array2<f64>) -> Array2<f64> {
    if a.is_standard_layout() {
        a
    } else {
        a.as_standard_layout().into_owned()
    }
}

/// (F_{t−1} − F_t)/F_{t−1}; an increase is negative, and F_{t−1} = 0 gives 0.
fn relative_decrease(prev: f64, cur: f64) -> f64 {
    if prev > 0.0 {
        (prev - cur) / prev
    } else {
        0.0
    }
}

fn is_nonzero_cell(x: &CsrMatrix, c: usize) -> bool {
    x.row(c).1.iter().any(|&v| v != 0.0)
}

/// W = random_w, then V_i from K distinct random non-zero cells of each dataset.
fn default_init(
    datasets: &[CsrMatrix],
    genes: usize,
    k: usize,
    seed: u64,
) -> Result<(Array2<f64>, Vec<Array2<f64>>), LearnerError> {
    for (i, x) in datasets.iter().enumerate() {
        let nonzero = (0..x.n_rows()).filter(|&c| is_nonzero_cell(x, c)).count();
        if nonzero < k {
            return Err(LearnerError::InvalidData(format!(
                "dataset {i} has {nonzero} non-zero cells, fewer than K = {k}: V_{i} cannot be initialised"
            )));
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let w = random_w(genes, k, &mut rng);
    let mut v = Vec::with_capacity(datasets.len());
    for x in datasets {
        let mut cells = CsrMatrix::empty(genes);
        for c in shuffled_cells(x.n_rows(), &mut rng)
            .filter(|&c| is_nonzero_cell(x, c))
            .take(k)
        {
            let (cols, vals) = x.row(c);
            cells.push_row_cols(cols, vals);
        }
        v.push(v_from_cells(&cells)?);
    }
    Ok((w, v))
}

#[cfg(test)]
mod tests;
