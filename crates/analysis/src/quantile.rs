//! Quantile normalization of the factor loadings H (rliger `quantileNorm`,
//! ALGORITHMS.md §10).
//!
//! 1. Per dataset `d`, scale each factor column `j` by its root mean square
//!    `s_dj = sqrt(Σ_c h_cj² / (n_d − 1))` (R's `scale(center = FALSE)`;
//!    a zero column stays zero).
//! 2. Label each cell by its arg-max factor (first maximum on ties), then
//!    refine the labels by a majority vote among each cell's `k` = 20
//!    nearest cells of the same dataset (itself included; ties go to the
//!    smallest factor; all cells vote on the unrefined labels).
//! 3. For each dataset `d`, label `c` and factor `j`, when both `d` and the
//!    reference have ≥ `min_cells` = 20 cells labelled `c`: draw up to
//!    `max_sample` = 1000 values of factor `j` from those cells of each
//!    (seeded, without replacement), take their type-7 quantiles at
//!    `0, 1/q, …, 1` (`q` = 50; R's default `quantile`), and map `d`'s values
//!    through the piecewise-linear function from `d`'s quantiles to the
//!    reference's (R's `approxfun(q_d, q_ref, rule = 2)`: clamped outside,
//!    tied knots averaged). A degenerate quantile set (sum 0 or fewer than
//!    2 distinct values, on either side) maps the values to 0. Cells whose
//!    label is too rare stay as scaled in step 1.
//!
//! The reference is mapped onto itself through one sample used on both
//! sides (the identity up to clamping at the sampled range, and degenerate
//! sets to 0); rliger draws two samples there, which only adds noise.
//!
//! Memory: the scaled H (`n × K` f64), an `f32` copy of the largest
//! dataset's scaled H for its kNN, and its kNN graph (`k` × 8 bytes per
//! cell): about 0.5 GB per million cells at K = 20.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::error::{AnalysisError, Result};
use crate::knn::{knn, KnnParams};
use crate::points::Points;
use crate::rng::sample_indices;

/// Parameters of [`quantile_normalize`] (rliger's names and defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct QuantileParams {
    /// Reference dataset index; `None` = the one with the most cells
    /// (first on ties). Default `None`.
    pub reference: Option<usize>,
    /// Number of quantile intervals `q` (quantiles at `0, 1/q, …, 1`). Default 50.
    pub quantiles: usize,
    /// Minimum cells of a label in both datasets for it to be normalized. Default 20.
    pub min_cells: usize,
    /// Neighbours (self included) of the label refinement; 0 = no refinement. Default 20.
    pub knn_k: usize,
    /// Values sampled per (dataset, label, factor) for the quantiles. Default 1000.
    pub max_sample: usize,
    /// Neighbour search for the refinement (its `k` is replaced by `knn_k`).
    pub knn: KnnParams,
    /// Seed of the samples. Default 1.
    pub seed: u64,
}

impl Default for QuantileParams {
    fn default() -> Self {
        Self {
            reference: None,
            quantiles: 50,
            min_cells: 20,
            knn_k: 20,
            max_sample: 1000,
            knn: KnnParams::default(),
            seed: 1,
        }
    }
}

/// The result of [`quantile_normalize`].
#[derive(Clone, Debug, PartialEq)]
pub struct QuantileNormalized {
    /// Normalized H, cells × K, rows in the input order.
    pub h: Array2<f64>,
    /// Refined arg-max factor label of each cell.
    pub labels: Vec<u32>,
    /// The reference dataset.
    pub reference: usize,
}

/// Type-7 quantiles (R's default) of sorted values at `p = i/q`, `i = 0..=q`:
/// with `h = (m − 1)·p`, `x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋])`.
pub fn quantiles_type7(sorted: &[f64], q: usize) -> Vec<f64> {
    let m = sorted.len();
    (0..=q)
        .map(|i| {
            let h = (m - 1) as f64 * i as f64 / q as f64;
            let lo = h.floor() as usize;
            if lo + 1 >= m {
                sorted[m - 1]
            } else {
                sorted[lo] + (h - lo as f64) * (sorted[lo + 1] - sorted[lo])
            }
        })
        .collect()
}

/// A piecewise-linear map through knots `(x_i, y_i)` with non-decreasing
/// `x`: tied `x` are merged with the mean of their `y` (R's
/// `approxfun(ties = mean)`), and values outside `[x_0, x_last]` are clamped
/// to the end values (`rule = 2`).
#[derive(Clone, Debug, PartialEq)]
pub struct Warp {
    x: Vec<f64>,
    y: Vec<f64>,
}

impl Warp {
    /// Builds the map; `None` if there are fewer than two distinct `x`.
    pub fn new(x: &[f64], y: &[f64]) -> Option<Self> {
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        let mut i = 0;
        while i < x.len() {
            let mut j = i;
            let mut s = 0.0;
            while j < x.len() && x[j] == x[i] {
                s += y[j];
                j += 1;
            }
            xs.push(x[i]);
            ys.push(s / (j - i) as f64);
            i = j;
        }
        (xs.len() >= 2).then_some(Self { x: xs, y: ys })
    }

    /// The mapped value.
    pub fn apply(&self, v: f64) -> f64 {
        let n = self.x.len();
        if v <= self.x[0] {
            return self.y[0];
        }
        if v >= self.x[n - 1] {
            return self.y[n - 1];
        }
        let i = self.x.partition_point(|&e| e <= v); // x[i-1] <= v < x[i]
        let (x0, x1, y0, y1) = (self.x[i - 1], self.x[i], self.y[i - 1], self.y[i]);
        y0 + (v - x0) * (y1 - y0) / (x1 - x0)
    }
}

fn degenerate(q: &[f64]) -> bool {
    let sum: f64 = q.iter().sum();
    let distinct = q.windows(2).filter(|w| w[0] != w[1]).count() + 1;
    sum == 0.0 || distinct < 2
}

/// Quantile-normalizes H (cells × K, non-negative loadings) across datasets;
/// `datasets[c]` is cell `c`'s dataset (`0..n_datasets`). See the module doc.
pub fn quantile_normalize(
    h: ArrayView2<'_, f64>,
    datasets: &[u32],
    n_datasets: usize,
    params: &QuantileParams,
) -> Result<QuantileNormalized> {
    let (n, k) = h.dim();
    if datasets.len() != n {
        return Err(AnalysisError::InvalidData(format!(
            "H has {n} cells but {} dataset codes were given",
            datasets.len()
        )));
    }
    if params.quantiles == 0 || params.max_sample < 2 {
        return Err(AnalysisError::InvalidParameter(format!(
            "quantiles = {} and max_sample = {} must be ≥ 1 and ≥ 2",
            params.quantiles, params.max_sample
        )));
    }
    if let Some((c, j)) = h.indexed_iter().find(|(_, v)| !v.is_finite()).map(|(ij, _)| ij) {
        return Err(AnalysisError::InvalidData(format!(
            "H[{c}, {j}] is not finite; rerun the factorization"
        )));
    }
    let mut cells = vec![Vec::new(); n_datasets];
    for (c, &d) in datasets.iter().enumerate() {
        let d = d as usize;
        if d >= n_datasets {
            return Err(AnalysisError::InvalidData(format!(
                "cell {c} has dataset code {d} but there are {n_datasets} datasets"
            )));
        }
        cells[d].push(c);
    }
    let reference = match params.reference {
        Some(r) if r >= n_datasets => {
            return Err(AnalysisError::InvalidParameter(format!(
                "reference dataset {r} does not exist ({n_datasets} datasets)"
            )))
        }
        Some(r) => r,
        None => (0..n_datasets)
            .max_by_key(|&d| (cells[d].len(), std::cmp::Reverse(d)))
            .unwrap_or(0),
    };
    if cells.get(reference).is_none_or(Vec::is_empty) {
        return Err(AnalysisError::InvalidData(format!(
            "the reference dataset {reference} has no cells"
        )));
    }

    // 1. Scale each dataset's columns by their RMS.
    let mut out = h.to_owned();
    for idx in &cells {
        if idx.is_empty() {
            continue;
        }
        let denom = (idx.len().max(2) - 1) as f64;
        for j in 0..k {
            let ss: f64 = idx.iter().map(|&c| h[[c, j]] * h[[c, j]]).sum();
            let rms = (ss / denom).sqrt();
            for &c in idx {
                out[[c, j]] = if rms > 0.0 { h[[c, j]] / rms } else { 0.0 };
            }
        }
    }

    // 2. Arg-max labels, refined by a kNN vote within each dataset.
    let mut labels = vec![0u32; n];
    for (c, row) in out.outer_iter().enumerate() {
        let mut best = 0;
        for j in 1..k {
            if row[j] > row[best] {
                best = j;
            }
        }
        labels[c] = best as u32;
    }
    if params.knn_k > 1 {
        for idx in &cells {
            if idx.len() < 2 {
                continue;
            }
            let pts = Points::from_view(out.select(ndarray::Axis(0), idx).view())?;
            let kp = KnnParams {
                k: params.knn_k,
                ..params.knn.clone()
            };
            let g = knn(&pts, &kp)?;
            let old: Vec<u32> = idx.iter().map(|&c| labels[c]).collect();
            let voted: Vec<u32> = (0..idx.len())
                .into_par_iter()
                .map_init(
                    || vec![0u32; k.max(1)],
                    |counts, i| {
                        counts.iter_mut().for_each(|x| *x = 0);
                        for &j in g.neighbors(i) {
                            counts[old[j as usize] as usize] += 1;
                        }
                        let mut best = 0;
                        for l in 1..counts.len() {
                            if counts[l] > counts[best] {
                                best = l;
                            }
                        }
                        best as u32
                    },
                )
                .collect();
            for (i, &c) in idx.iter().enumerate() {
                labels[c] = voted[i];
            }
        }
    }

    // 3. Map each (dataset, label, factor) onto the reference's quantiles.
    let mut by_label: Vec<Vec<Vec<usize>>> = vec![vec![Vec::new(); k.max(1)]; n_datasets];
    for (d, idx) in cells.iter().enumerate() {
        for &c in idx {
            by_label[d][labels[c] as usize].push(c);
        }
    }
    let q = params.quantiles;
    let sorted_sample = |vals: &[usize], j: usize, stream: &[u64]| -> Vec<f64> {
        let pick = sample_indices(params.seed, stream, vals.len(), params.max_sample);
        let mut s: Vec<f64> = pick.iter().map(|&p| out[[vals[p], j]]).collect();
        s.sort_by(f64::total_cmp);
        s
    };
    // Each task: (dataset, label, factor) → new values for its cells.
    let tasks: Vec<(usize, usize, usize)> = (0..n_datasets)
        .flat_map(|d| (0..k).flat_map(move |c| (0..k).map(move |j| (d, c, j))))
        .filter(|&(d, c, _)| {
            by_label[d][c].len() >= params.min_cells && by_label[reference][c].len() >= params.min_cells
        })
        .collect();
    let updates: Vec<Vec<f64>> = tasks
        .par_iter()
        .map(|&(d, c, j)| {
            let cells_d = &by_label[d][c];
            let q_ref = quantiles_type7(
                &sorted_sample(
                    &by_label[reference][c],
                    j,
                    &[0x9A, reference as u64, c as u64, j as u64],
                ),
                q,
            );
            let q_d = if d == reference {
                q_ref.clone()
            } else {
                quantiles_type7(
                    &sorted_sample(cells_d, j, &[0x9A, d as u64, c as u64, j as u64]),
                    q,
                )
            };
            let warp = if degenerate(&q_ref) || degenerate(&q_d) {
                None
            } else {
                Warp::new(&q_d, &q_ref)
            };
            cells_d
                .iter()
                .map(|&cell| warp.as_ref().map_or(0.0, |w| w.apply(out[[cell, j]])))
                .collect()
        })
        .collect();
    for (&(d, c, j), vals) in tasks.iter().zip(updates) {
        for (&cell, v) in by_label[d][c].iter().zip(vals) {
            out[[cell, j]] = v;
        }
    }
    Ok(QuantileNormalized {
        h: out,
        labels,
        reference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Fast;

    #[test]
    fn type7_quantiles_match_r() {
        // R: quantile(c(1, 2, 4, 8), seq(0, 1, 0.25)) = 1, 1.75, 3, 5, 8
        let q = quantiles_type7(&[1.0, 2.0, 4.0, 8.0], 4);
        assert_eq!(q, vec![1.0, 1.75, 3.0, 5.0, 8.0]);
        assert_eq!(quantiles_type7(&[3.0], 2), vec![3.0; 3]);
    }

    #[test]
    fn warp_interpolates_clamps_and_averages_ties() {
        let w = Warp::new(&[0.0, 0.0, 1.0, 2.0], &[1.0, 3.0, 4.0, 8.0]).unwrap();
        assert_eq!(w.apply(-1.0), 2.0); // tie at x = 0 → mean(1, 3)
        assert_eq!(w.apply(0.5), 3.0);
        assert_eq!(w.apply(1.5), 6.0);
        assert_eq!(w.apply(9.0), 8.0);
        assert!(Warp::new(&[1.0, 1.0], &[0.0, 2.0]).is_none());
    }

    /// Two datasets with the same 2 cell groups (each loading one factor);
    /// dataset 1's loadings are a distorted (squared, shifted) version.
    fn two_datasets(n0: usize, n1: usize) -> (Array2<f64>, Vec<u32>) {
        let mut r = Fast::new(11, &[]);
        let n = n0 + n1;
        let mut h = Array2::zeros((n, 2));
        let mut ds = vec![0u32; n];
        for c in 0..n {
            let g = c % 2;
            let u = r.unit();
            let v = if c < n0 {
                1.0 + u
            } else {
                3.0 * (1.0 + u).powi(2) + 0.5
            };
            h[[c, g]] = v;
            h[[c, 1 - g]] = 0.05 * r.unit();
            if c >= n0 {
                ds[c] = 1;
            }
        }
        (h, ds)
    }

    fn quantile_of(mut v: Vec<f64>, p: f64) -> f64 {
        v.sort_by(f64::total_cmp);
        quantiles_type7(&v, 100)[(p * 100.0) as usize]
    }

    #[test]
    fn maps_a_datasets_distribution_onto_the_reference() {
        let (h, ds) = two_datasets(3000, 2000);
        let r = quantile_normalize(h.view(), &ds, 2, &QuantileParams::default()).unwrap();
        assert_eq!(r.reference, 0);
        // Labels recover the groups.
        for c in 0..5000 {
            assert_eq!(r.labels[c], (c % 2) as u32);
        }
        // For each group and its factor, dataset 1's quantiles now match
        // dataset 0's (which are the scaled originals).
        for g in 0..2 {
            let vals = |d: u32| -> Vec<f64> {
                (0..5000)
                    .filter(|&c| ds[c] == d && c % 2 == g)
                    .map(|c| r.h[[c, g]])
                    .collect()
            };
            let (v0, v1) = (vals(0), vals(1));
            for p in [0.05, 0.25, 0.5, 0.75, 0.95] {
                let (a, b) = (quantile_of(v0.clone(), p), quantile_of(v1.clone(), p));
                assert!(
                    (a - b).abs() < 0.03 * a.abs().max(0.1),
                    "group {g} p {p}: {a} vs {b}"
                );
            }
        }
        // Before normalization the scaled distributions differed clearly.
        let med = |d: u32| {
            quantile_of(
                (0..5000)
                    .filter(|&c| ds[c] == d && c % 2 == 0)
                    .map(|c| h[[c, 0]])
                    .collect(),
                0.5,
            )
        };
        assert!((med(0) - med(1)).abs() > 1.0);
        // Deterministic for a seed.
        let r2 = quantile_normalize(h.view(), &ds, 2, &QuantileParams::default()).unwrap();
        assert_eq!(r, r2);
    }

    #[test]
    fn reference_can_be_named_and_bad_input_is_refused() {
        let (h, ds) = two_datasets(300, 200);
        let p = QuantileParams {
            reference: Some(1),
            ..Default::default()
        };
        let r = quantile_normalize(h.view(), &ds, 2, &p).unwrap();
        assert_eq!(r.reference, 1);
        let bad = QuantileParams {
            reference: Some(5),
            ..Default::default()
        };
        assert!(quantile_normalize(h.view(), &ds, 2, &bad).is_err());
        assert!(quantile_normalize(h.view(), &ds[..10], 2, &p).is_err());
        let mut hn = h.clone();
        hn[[3, 1]] = f64::NAN;
        assert!(quantile_normalize(hn.view(), &ds, 2, &p).is_err());
    }

    #[test]
    fn rare_labels_stay_scaled_and_degenerate_sets_map_to_zero() {
        // Dataset 1 has only 10 cells: nothing is normalized there.
        let (h, ds) = two_datasets(300, 10);
        let r = quantile_normalize(h.view(), &ds, 2, &QuantileParams::default()).unwrap();
        let denom = ((0..310)
            .filter(|&c| ds[c] == 1)
            .map(|c| h[[c, 0]].powi(2))
            .sum::<f64>()
            / 9.0)
            .sqrt();
        for c in 300..310 {
            assert!((r.h[[c, 0]] - h[[c, 0]] / denom).abs() < 1e-12);
        }
        // A factor that is zero in every cell: degenerate → 0.
        let mut hz = Array2::zeros((400, 3));
        let mut dz = vec![0u32; 400];
        for c in 0..400 {
            hz[[c, 0]] = 1.0 + (c % 7) as f64;
            dz[c] = (c >= 200) as u32;
        }
        let r = quantile_normalize(hz.view(), &dz, 2, &QuantileParams::default()).unwrap();
        assert!(r.h.column(1).iter().all(|&v| v == 0.0));
        assert!(r.h.column(0).iter().all(|&v| v > 0.0));
    }
}
