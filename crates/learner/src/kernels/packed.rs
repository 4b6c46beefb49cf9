//! A dense factor M (genes × K) packed once for many row-block
//! projections R = X·M: the online step and the final pass project a
//! mini-batch a few hundred cells at a time, next to the H solve of those
//! cells, and pack (W+V_i) once per iteration, not once per block.

use ndarray::ArrayView2;

use crate::kernels::double::project_block;
use crate::kernels::half::HalfRows;
use crate::kernels::pool::BufferPool;
use crate::kernels::single::{pack_rows, padded, project_block_f32};
use crate::sparse::CsrMatrix;

/// Precision of the sparse products (see `kernels::single` for single precision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precision {
    /// Binary16 factor rows (scaled per column), f32 sums, f64 results
    /// ([`crate::project_f16`]) for R = X·M; B += XᵀH as in `Single`.
    Half,
    /// f32 factor rows and sums, f64 results ([`crate::project_f32`]).
    Single,
    /// f64 throughout ([`crate::project`]): the exact reference the tests
    /// compare single precision with.
    #[cfg_attr(not(test), allow(dead_code))]
    Double,
}

/// Buffers of f32 factor rows (genes × [`padded`]`(k)`): the rows of a
/// [`PackedFactor`] in single precision, returned when it is dropped, and
/// the f32 rows binary16 rows are made from.
pub(crate) static FACTOR_ROWS: BufferPool<f32> = BufferPool::new();

/// M packed for [`PackedFactor::project_rows`].
pub(crate) struct PackedFactor {
    k: usize,
    values: Values,
}

enum Values {
    /// Rows of binary16 values ([`HalfRows`]).
    Half(HalfRows),
    /// Rows of [`padded`]`(k)` f32 values, zero-padded.
    Single { kp: usize, rows: Vec<f32> },
    /// M row-major, k values per row.
    Double(Vec<f64>),
}

impl PackedFactor {
    /// Packs `m` (genes × K) for products in `precision`.
    pub(crate) fn new(m: ArrayView2<f64>, precision: Precision) -> Self {
        let k = m.ncols();
        let values = match precision {
            Precision::Half => Values::Half(HalfRows::new(m)),
            Precision::Single => {
                let kp = padded(k);
                Values::Single {
                    kp,
                    rows: pack_rows(m, kp),
                }
            }
            Precision::Double => Values::Double(m.as_standard_layout().iter().copied().collect()),
        };
        Self { k, values }
    }

    /// M already packed in single precision: `rows` holds its rows of
    /// [`padded`]`(k)` f32 values, zero-padded (as [`pack_rows`] makes them).
    pub(crate) fn from_single_rows(k: usize, rows: Vec<f32>) -> Self {
        let kp = padded(k);
        debug_assert_eq!(rows.len() % kp.max(1), 0, "whole padded rows");
        Self {
            k,
            values: Values::Single { kp, rows },
        }
    }

    /// M already packed in half precision.
    pub(crate) fn from_half_rows(k: usize, rows: HalfRows) -> Self {
        Self {
            k,
            values: Values::Half(rows),
        }
    }

    /// Rows `first..first + out.len() / K` of R = X·M into `out` (rows × K,
    /// row-major): r_c = Σ_g x_cg·M_g·, each row's sum exactly as the
    /// whole-matrix product of the same precision computes it.
    pub(crate) fn project_rows(&self, x: &CsrMatrix, first: usize, out: &mut [f64]) {
        match &self.values {
            Values::Half(rows) => rows.project_rows(x, first, out),
            Values::Single { kp, rows } => project_block_f32(x, rows, self.k, *kp, first, out),
            Values::Double(ms) => project_block(x, ms, self.k, first, out),
        }
    }
}

impl Drop for PackedFactor {
    fn drop(&mut self) {
        if let Values::Single { rows, .. } = &mut self.values {
            FACTOR_ROWS.give_back_one(std::mem::take(rows));
        }
    }
}
