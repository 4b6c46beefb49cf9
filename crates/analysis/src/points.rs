//! Row-major `f32` point sets: the form every neighbour search reads.

use ndarray::ArrayView2;

use crate::error::{AnalysisError, Result};

/// `n` points of dimension `dim`, row-major, `f32` (halves the memory of
/// `f64` H and doubles the distance throughput; neighbour ranks are
/// unaffected at the precision H carries).
#[derive(Clone, Debug, PartialEq)]
pub struct Points {
    data: Vec<f32>,
    n: usize,
    dim: usize,
}

impl Points {
    /// Copies a cells × dims matrix, checking that every value is finite.
    pub fn from_view<T: Copy + Into<f64>>(m: ArrayView2<'_, T>) -> Result<Self> {
        let (n, dim) = m.dim();
        let mut data = Vec::with_capacity(n * dim);
        for (i, row) in m.outer_iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let v: f64 = v.into();
                if !v.is_finite() {
                    return Err(AnalysisError::InvalidData(format!(
                        "value at row {i}, column {j} is {v}; every value must be finite"
                    )));
                }
                data.push(v as f32);
            }
        }
        Ok(Self { data, n, dim })
    }

    /// Takes over a cells × dims matrix (no copy when it is in standard
    /// layout), checking that every value is finite.
    pub fn from_array(m: ndarray::Array2<f32>) -> Result<Self> {
        let (n, dim) = m.dim();
        let m = if m.is_standard_layout() {
            m
        } else {
            m.as_standard_layout().into_owned()
        };
        let (data, offset) = m.into_raw_vec_and_offset();
        if offset.unwrap_or(0) != 0 {
            return Self::from_vec(data[offset.unwrap_or(0)..][..n * dim].to_vec(), n, dim);
        }
        Self::from_vec(data, n, dim)
    }

    /// The points as a cells × dims matrix (no copy).
    pub fn into_array(self) -> ndarray::Array2<f32> {
        ndarray::Array2::from_shape_vec((self.n, self.dim), self.data)
            .expect("n × dim values by construction")
    }

    /// Wraps a row-major buffer of `n × dim` values.
    pub fn from_vec(data: Vec<f32>, n: usize, dim: usize) -> Result<Self> {
        if data.len() != n * dim {
            return Err(AnalysisError::InvalidData(format!(
                "{} values do not make {n} points of dimension {dim}",
                data.len()
            )));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(AnalysisError::InvalidData(format!(
                "value {} of point {} is not finite",
                i % dim.max(1),
                i / dim.max(1)
            )));
        }
        Ok(Self { data, n, dim })
    }

    /// The points with the given indices, in that order.
    pub fn subset(&self, idx: &[usize]) -> Self {
        let mut data = Vec::with_capacity(idx.len() * self.dim);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Self {
            data,
            n: idx.len(),
            dim: self.dim,
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when there are no points.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Point `i`.
    #[inline]
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The row-major values.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Squared Euclidean distance between points `i` and `j`.
    #[inline]
    pub fn dist2(&self, i: usize, j: usize) -> f32 {
        sq_dist(self.row(i), self.row(j))
    }
}

/// Squared Euclidean distance ‖a − b‖², summed in a fixed order (so results
/// are identical on every run and thread count).
#[inline]
pub fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    let chunks = a.len() / 4;
    let mut s = sq_dist_chunks(a, b, chunks);
    for i in 4 * chunks..a.len() {
        let d = a[i] - b[i];
        s += d * d;
    }
    s
}

/// The part of [`sq_dist`] over the first `chunks` blocks of 4
/// coordinates, summed exactly as `sq_dist` sums them. Every term is
/// non-negative and rounded addition is monotone, so the result is never
/// above `sq_dist(a, b)`: a lower bound that can rule a point out.
#[inline]
pub(crate) fn sq_dist_chunks(a: &[f32], b: &[f32], chunks: usize) -> f32 {
    let mut acc = [0f32; 4];
    for c in 0..chunks {
        for l in 0..4 {
            let d = a[4 * c + l] - b[4 * c + l];
            acc[l] += d * d;
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}
