//! The H system of a dataset (docs/algorithms.md §2–3): W+V_i packed for
//! R = X·(W+V_i) in the products' precision, G_i = (W+V_i)ᵀ(W+V_i) +
//! λV_iᵀV_i prepared for NNLS, and the two Gram parts the objective needs.

use std::cell::RefCell;

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::error::LearnerError;
use crate::kernels::double::{add_gram_of_rows, gram_of_rows, CELL_BLOCK};
use crate::kernels::half::HalfRows;
use crate::kernels::packed::{PackedFactor, Precision, FACTOR_ROWS};
use crate::kernels::pool::BufferPool;
use crate::kernels::single::padded;
use crate::nnls::PreparedGram;
use crate::online::state::OnlineInmf;

/// Each gene-block unit's shares of the Gram matrices and column maxima.
static UNIT_SUMS: BufferPool<f64> = BufferPool::new();

thread_local! {
    /// A unit's rows of W+V in f64, one buffer per worker thread.
    static WV_ROWS: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// W+V_i packed for R, (W+V_i)ᵀ(W+V_i) and V_iᵀV_i: the parts of an
/// [`HSystem`] before G_i is prepared.
type SystemParts = (PackedFactor, Array2<f64>, Array2<f64>);
/// Precision of the two sparse products an iteration runs, R = X·(W+V_i)
/// and XᵀH: half (binary16 rows of W+V_i for R, `kernels::half`; f32 rows of
/// H for XᵀH, `kernels::single`; f32 sums, f64 results). R only steers each
/// mini-batch's H; the run's objective moves by < 1e-5 relative against
/// the f64 kernels (tested; 2e-7 against f32 on a 50k-cell run).
pub(super) const STEP_PRODUCTS: Precision = Precision::Half;

/// Precision of R = X·(W+V_i) in the H solves whose H is a result (the
/// final pass, projection): single (f32 rows and sums, `kernels::single`).
pub(super) const RESULT_PRODUCTS: Precision = Precision::Single;
/// Everything an H solve of one dataset needs from W, V_i and λ.
pub(super) struct HSystem {
    /// W+V_i, packed for R = X·(W+V_i).
    pub(super) wv: PackedFactor,
    /// G_i = (W+V_i)ᵀ(W+V_i) + λV_iᵀV_i, prepared for NNLS.
    pub(super) nnls: PreparedGram,
    /// (W+V_i)ᵀ(W+V_i).
    pub(super) wv_gram: Array2<f64>,
    /// V_iᵀV_i.
    pub(super) v_gram: Array2<f64>,
    /// λ.
    pub(super) lambda: f64,
}
impl OnlineInmf {
    /// The H system of dataset `dataset` (or of V = `v_override`):
    /// (W+V_i) packed for R = X·(W+V_i), G_i = (W+V_i)ᵀ(W+V_i) + λV_iᵀV_i
    /// prepared for NNLS, and the two Gram parts for the objective
    /// ([`Self::h_systems`] of one V).
    pub(super) fn h_system(
        &self,
        dataset: usize,
        v_override: Option<ArrayView2<f64>>,
        precision: Precision,
    ) -> Result<HSystem, LearnerError> {
        let v = v_override.unwrap_or(self.datasets[dataset].v.view());
        let mut one = self.h_systems(&[v], precision)?;
        Ok(one.pop().expect("one system per V"))
    }

    /// The H systems of W with each of `vs` (see [`Self::h_system`]). In
    /// single and half precision, one parallel pass over blocks of
    /// [`CELL_BLOCK`] gene rows of every V forms the block's rows of W+V
    /// (packed to f32 in place), its column maxima and its shares of
    /// (W+V)ᵀ(W+V) and VᵀV, added in block order (the bits of
    /// [`gram_of_rows`] and `pack_rows` on the whole W+V); in half
    /// precision the f32 rows are then scaled and rounded to binary16
    /// (`kernels::half`); then each G is prepared.
    pub(super) fn h_systems(
        &self,
        vs: &[ArrayView2<f64>],
        precision: Precision,
    ) -> Result<Vec<HSystem>, LearnerError> {
        let (genes, k) = self.w.dim();
        let parts: Vec<SystemParts> = match precision {
            Precision::Double => vs
                .iter()
                .map(|v| {
                    let wv = &self.w + v;
                    let grams = (gram_of_rows(wv.view()), gram_of_rows(*v));
                    (PackedFactor::new(wv.view(), precision), grams.0, grams.1)
                })
                .collect(),
            Precision::Single | Precision::Half => self.reduced_precision_parts(vs, genes, k, precision)?,
        };
        parts
            .into_par_iter()
            .map(|(wv, wv_gram, v_gram)| {
                let gram = &wv_gram + &(&v_gram * self.lambda);
                Ok(HSystem {
                    wv,
                    nnls: PreparedGram::new(gram.view())?,
                    wv_gram,
                    v_gram,
                    lambda: self.lambda,
                })
            })
            .collect()
    }

    /// The single- and half-precision pass of [`Self::h_systems`]: per V,
    /// W+V packed (f32 rows, or binary16 rows made from them),
    /// (W+V)ᵀ(W+V) and VᵀV.
    fn reduced_precision_parts(
        &self,
        vs: &[ArrayView2<f64>],
        genes: usize,
        k: usize,
        precision: Precision,
    ) -> Result<Vec<SystemParts>, LearnerError> {
        let kp = padded(k);
        let w = self.w.as_standard_layout();
        let w = w.as_slice().expect("standard layout");
        let vs: Vec<_> = vs.iter().map(|v| v.as_standard_layout()).collect();
        let mut packed = FACTOR_ROWS.take(vs.len(), genes * kp);
        let units: Vec<(usize, usize, &mut [f32])> = packed
            .iter_mut()
            .enumerate()
            .flat_map(|(j, rows)| {
                rows.chunks_mut(CELL_BLOCK * kp.max(1))
                    .enumerate()
                    .map(move |(b, out)| (j, b * CELL_BLOCK, out))
            })
            .collect();
        let unit_dataset: Vec<usize> = units.iter().map(|u| u.0).collect();
        // Per unit, zeroed: its shares of (W+V)ᵀ(W+V) and VᵀV, its column maxima.
        let per_unit = 2 * k * k + k;
        let mut unit_sums = UNIT_SUMS.take_one(units.len() * per_unit);
        units
            .into_par_iter()
            .zip(unit_sums.par_chunks_mut(per_unit.max(1)))
            .for_each(|((j, g0, out), sums)| {
                let (wv_gram, rest) = sums.split_at_mut(k * k);
                let (v_gram, col_max) = rest.split_at_mut(k * k);
                let n = out.len() / kp.max(1);
                let span = g0 * k..(g0 + n) * k;
                let v = &vs[j].as_slice().expect("standard layout")[span.clone()];
                WV_ROWS.with_borrow_mut(|wv| {
                    wv.clear();
                    wv.extend(w[span].iter().zip(v).map(|(a, b)| a + b));
                    add_gram_of_rows(wv, k, wv_gram);
                    add_gram_of_rows(v, k, v_gram);
                    for (dst, src) in out.chunks_exact_mut(kp.max(1)).zip(wv.chunks_exact(k.max(1))) {
                        for ((d, &x), mx) in dst.iter_mut().zip(src).zip(col_max.iter_mut()) {
                            *d = x as f32;
                            // NaN propagates (f64::max would drop it).
                            *mx = if x > *mx || x.is_nan() { x } else { *mx };
                        }
                    }
                });
            });
        let mut grams = vec![(Array2::<f64>::zeros((k, k)), Array2::<f64>::zeros((k, k))); vs.len()];
        let mut col_max = vec![vec![0.0f64; k]; vs.len()];
        for (&j, sums) in unit_dataset.iter().zip(unit_sums.chunks_exact(per_unit.max(1))) {
            let (wv_part, rest) = sums.split_at(k * k);
            let (v_part, max_part) = rest.split_at(k * k);
            let (wv_gram, v_gram) = &mut grams[j];
            for ((o, &a), (q, &b)) in wv_gram.iter_mut().zip(wv_part).zip(v_gram.iter_mut().zip(v_part)) {
                *o += a;
                *q += b;
            }
            for (m, &p) in col_max[j].iter_mut().zip(max_part) {
                *m = if p > *m || p.is_nan() { p } else { *m };
            }
        }
        UNIT_SUMS.give_back_one(unit_sums);
        packed
            .into_iter()
            .zip(grams)
            .zip(col_max)
            .map(|((rows, (wv_gram, v_gram)), col_max)| {
                let wv = match precision {
                    Precision::Half => {
                        // Binary16 would saturate an infinite or NaN entry
                        // into a finite one; f32 carries it into R, where the
                        // H solve reports it. Report it here instead.
                        if let Some(j) = col_max.iter().position(|m| !m.is_finite()) {
                            return Err(LearnerError::Numerical(format!(
                                "W + V has a non-finite entry in factor {j} (the factors diverged)"
                            )));
                        }
                        let half = HalfRows::from_f32_rows(k, &rows, &col_max);
                        FACTOR_ROWS.give_back_one(rows);
                        PackedFactor::from_half_rows(k, half)
                    }
                    _ => PackedFactor::from_single_rows(k, rows),
                };
                Ok((wv, wv_gram, v_gram))
            })
            .collect()
    }
}
