//! Cells that match nothing in the reference: the unexplained-expression
//! score and its calibration.
//!
//! A cell of a type the reference's factors never saw keeps expression that
//! no combination of the metagenes W reproduces. One cell's residual is
//! dominated by counting noise, so the score is taken on a *pseudo-cell*:
//! the mean of the cell and its `k − 1` nearest cells of the same set,
//! nearest by the direction of H *and* of the cell's own expression —
//! Euclidean distance between the points `(h_c/‖h_c‖, p_c/‖p_c‖)`, where
//! `p_c = Σ_g x_cg Ω_g` is a 32-value random sign sketch of the row
//! (`Ω_gj = ±1` from a hash of g and j, the same for every set, so
//! `p_a·p_b / ‖p_a‖‖p_b‖` estimates the rows' cosine). H alone would put a
//! type the reference lacks among the reference type it resembles to the
//! factors, and their pseudo-cells would share its unexplained expression:
//!
//! `x̄ = mean_{a∈N(c)} x_a`, `h̄ = mean_{a∈N(c)} h_a`,
//! `s_c = Σ_g max(0, x̄_g − (W h̄)_g)² / Σ_g x̄_g²`
//!
//! — the share of the pseudo-cell's squared expression that the factors
//! leave unexplained *above* the fit (expression the model lacks; an
//! over-fit is not evidence of a missing type).
//!
//! **Calibration.** The same score on reference cells projected onto W the
//! same way tells how far the upper tail of well-matched cells reaches
//! relative to their typical level: `t = quantile_q(s_ref) / median(s_ref)`.
//! A query set's own typical level absorbs what shifts every one of its
//! cells alike (another donor, technology or sequencing depth, and the
//! reference's cells having been fitted in-sample); a query cell is
//! unmatched when `s_c > t · median(s_query set)`. The rule assumes that
//! most of a query set matches the reference: a set made mostly of unseen
//! cells raises its own median and hides them.

use ndarray::ArrayView2;
use rayon::prelude::*;

use crate::error::{AnalysisError, Result};
use crate::knn::{knn, KnnParams};
use crate::mapping::transfer::unit_rows;

/// Sparse rows (cells × genes, CSR) of the preprocessed expression.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SparseRows {
    /// Number of genes.
    pub n_cols: usize,
    /// Row offsets (`rows + 1`).
    pub indptr: Vec<usize>,
    /// Gene of each value.
    pub indices: Vec<u32>,
    /// Values.
    pub data: Vec<f32>,
}

impl SparseRows {
    /// No rows, `n_cols` genes.
    pub fn new(n_cols: usize) -> Self {
        Self {
            n_cols,
            indptr: vec![0],
            indices: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Appends a row (genes increasing, each `< n_cols`).
    pub fn push_row(&mut self, cols: impl IntoIterator<Item = u32>, vals: &[f32]) {
        self.indices.extend(cols);
        self.data.extend_from_slice(vals);
        self.indptr.push(self.data.len());
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.indptr.len() - 1
    }

    fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let r = self.indptr[i]..self.indptr[i + 1];
        (&self.indices[r.clone()], &self.data[r])
    }
}

/// The pseudo-cell score `s_c` of every row of `x` (module doc); `w` is
/// genes × K, `h` cells × K, `k` the pseudo-cell size (itself included).
pub fn smoothed_residuals(
    x: &SparseRows,
    w: ArrayView2<'_, f64>,
    h: ArrayView2<'_, f64>,
    k: usize,
    seed: u64,
) -> Result<Vec<f64>> {
    let n = x.n_rows();
    if h.nrows() != n || w.ncols() != h.ncols() || w.nrows() != x.n_cols {
        return Err(AnalysisError::InvalidData(format!(
            "residual score: {n} cells × {} genes, H {:?}, W {:?}",
            x.n_cols,
            h.dim(),
            w.dim()
        )));
    }
    if x.indices.iter().any(|&g| g as usize >= x.n_cols) {
        return Err(AnalysisError::InvalidData("a gene index is out of range".into()));
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    let graph = knn(
        &neighbour_points(x, h)?,
        &KnnParams {
            k: k.max(1),
            seed,
            ..KnnParams::default()
        },
    )?;
    let (genes, kk) = (x.n_cols, h.ncols());
    let scores = (0..n)
        .into_par_iter()
        .map_init(
            || (vec![0f64; genes], vec![0f64; kk]),
            |(xbar, hbar), c| {
                let nb = graph.neighbors(c);
                let inv = 1.0 / nb.len() as f64;
                xbar.iter_mut().for_each(|v| *v = 0.0);
                hbar.iter_mut().for_each(|v| *v = 0.0);
                for &a in nb {
                    let (cols, vals) = x.row(a as usize);
                    for (&g, &v) in cols.iter().zip(vals) {
                        xbar[g as usize] += f64::from(v) * inv;
                    }
                    for (j, hb) in hbar.iter_mut().enumerate() {
                        *hb += h[[a as usize, j]] * inv;
                    }
                }
                let (mut above, mut total) = (0.0, 0.0);
                for (g, &xv) in xbar.iter().enumerate() {
                    let fit: f64 = (0..kk).map(|j| w[[g, j]] * hbar[j]).sum();
                    let r = xv - fit;
                    if r > 0.0 {
                        above += r * r;
                    }
                    total += xv * xv;
                }
                if total > 0.0 {
                    above / total
                } else {
                    0.0
                }
            },
        )
        .collect();
    Ok(scores)
}

/// Values of the expression sketch `p_c` (module doc).
pub const SKETCH_DIM: usize = 32;

/// The sign pattern Ω_g· of gene `g`: bit j set ⇔ Ω_gj = −1 (SplitMix64 of g).
fn sketch_signs(g: u32) -> u32 {
    let mut z = u64::from(g).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as u32
}

/// The neighbour points of the pseudo-cells: per row `(h_c/‖h_c‖,
/// p_c/‖p_c‖)` (module doc), `K + SKETCH_DIM` values; a zero part stays 0.
pub(crate) fn neighbour_points(x: &SparseRows, h: ArrayView2<'_, f64>) -> Result<crate::Points> {
    let n = x.n_rows();
    let hu = unit_rows(h)?;
    let kk = h.ncols();
    let dim = kk + SKETCH_DIM;
    let rows: Vec<Vec<f32>> = (0..n)
        .into_par_iter()
        .map(|c| {
            let (cols, vals) = x.row(c);
            let mut p = [0f64; SKETCH_DIM];
            for (&g, &v) in cols.iter().zip(vals) {
                let signs = sketch_signs(g);
                let v = f64::from(v);
                for (j, pj) in p.iter_mut().enumerate() {
                    if signs >> j & 1 == 0 {
                        *pj += v;
                    } else {
                        *pj -= v;
                    }
                }
            }
            let norm = p.iter().map(|v| v * v).sum::<f64>().sqrt();
            let s = if norm > 0.0 { 1.0 / norm } else { 0.0 };
            let mut out = Vec::with_capacity(dim);
            out.extend_from_slice(&hu.as_slice()[c * kk..(c + 1) * kk]);
            out.extend(p.iter().map(|v| (v * s) as f32));
            out
        })
        .collect();
    crate::Points::from_vec(rows.concat(), n, dim)
}

/// Median of finite values (mean of the two middle ones); 0 when empty.
fn median(v: &[f64]) -> f64 {
    quantile(v, 0.5)
}

/// Type-7 quantile of `v` at `p` (0 when empty).
fn quantile(v: &[f64], p: f64) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return 0.0;
    }
    s.sort_by(f64::total_cmp);
    let h = (s.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    if lo + 1 >= s.len() {
        s[s.len() - 1]
    } else {
        s[lo] + (h - lo as f64) * (s[lo + 1] - s[lo])
    }
}

/// The calibrated tail ratio `t = quantile_q(reference) / median(reference)`
/// (module doc); an error when the reference scores are all zero.
pub fn tail_ratio(reference: &[f64], q: f64) -> Result<f64> {
    if !(0.5..1.0).contains(&q) {
        return Err(AnalysisError::InvalidParameter(format!(
            "unmatched quantile {q}; use a value in [0.5, 1)"
        )));
    }
    let m = median(reference);
    if m <= 0.0 {
        return Err(AnalysisError::InvalidData(
            "the reference cells' residual scores are all zero: nothing to calibrate the unmatched flag on"
                .into(),
        ));
    }
    Ok(quantile(reference, q) / m)
}

/// Flags the cells of one query set: `s_c > ratio · median(scores)`;
/// returns the flags and the threshold.
pub fn flag_unmatched(scores: &[f64], ratio: f64) -> (Vec<bool>, f64) {
    let threshold = ratio * median(scores);
    (scores.iter().map(|&s| s > threshold).collect(), threshold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// The score by its definition, neighbours given.
    fn slow(x: &Array2<f64>, w: &Array2<f64>, h: &Array2<f64>, nb: &[usize]) -> f64 {
        let m = nb.len() as f64;
        let xbar: Vec<f64> = (0..x.ncols())
            .map(|g| nb.iter().map(|&a| x[[a, g]]).sum::<f64>() / m)
            .collect();
        let hbar: Vec<f64> = (0..h.ncols())
            .map(|j| nb.iter().map(|&a| h[[a, j]]).sum::<f64>() / m)
            .collect();
        let fit = w.dot(&ndarray::Array1::from(hbar));
        let above: f64 = xbar
            .iter()
            .zip(fit.iter())
            .map(|(a, b)| (a - b).max(0.0).powi(2))
            .sum();
        above / xbar.iter().map(|a| a * a).sum::<f64>()
    }

    #[test]
    fn score_matches_its_definition_and_sees_unexplained_genes() {
        // Two metagenes over 4 genes; cells 0–5 are explained by them, cells
        // 6–8 also express gene 3 that no metagene carries.
        let w = ndarray::arr2(&[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]);
        let mut x = Array2::zeros((9, 4));
        let mut h = Array2::zeros((9, 2));
        for c in 0..9 {
            let a = 1.0 + c as f64 * 0.1;
            h[[c, c % 2]] = a;
            x[[c, 0]] = if c % 2 == 0 { a } else { 0.0 };
            x[[c, 1]] = x[[c, 0]] * 0.9;
            x[[c, 2]] = if c % 2 == 1 { a } else { 0.0 };
            if c >= 6 {
                h[[c, 0]] = 0.5;
                h[[c, 1]] = 0.0;
                x[[c, 3]] = 2.0;
            }
        }
        let mut rows = SparseRows::new(4);
        for c in 0..9 {
            let nz: Vec<(u32, f32)> = (0..4)
                .filter(|&g| x[[c, g]] != 0.0)
                .map(|g| (g as u32, x[[c, g]] as f32))
                .collect();
            let vals: Vec<f32> = nz.iter().map(|p| p.1).collect();
            rows.push_row(nz.iter().map(|p| p.0), &vals);
        }
        let xs = x.mapv(|v| v as f32 as f64);
        let s1 = smoothed_residuals(&rows, w.view(), h.view(), 1, 1).unwrap();
        for (c, &sc) in s1.iter().enumerate() {
            assert!((sc - slow(&xs, &w, &h, &[c])).abs() < 1e-9, "cell {c}");
        }
        assert!(s1[..6].iter().all(|&s| s < 0.02), "{s1:?}");
        assert!(s1[6..].iter().all(|&s| s > 0.5), "{s1:?}");
        // With 3-cell pseudo-cells: the neighbours found on unit H and the
        // expression sketch.
        let s3 = smoothed_residuals(&rows, w.view(), h.view(), 3, 1).unwrap();
        let g = knn(
            &neighbour_points(&rows, h.view()).unwrap(),
            &KnnParams {
                k: 3,
                ..KnnParams::default()
            },
        )
        .unwrap();
        for (c, &sc) in s3.iter().enumerate() {
            let nb: Vec<usize> = g.neighbors(c).iter().map(|&a| a as usize).collect();
            assert!((sc - slow(&xs, &w, &h, &nb)).abs() < 1e-9, "cell {c}");
        }
    }

    #[test]
    fn calibration_follows_the_query_level() {
        let reference: Vec<f64> = (1..=100).map(|i| i as f64 / 100.0).collect();
        let t = tail_ratio(&reference, 0.99).unwrap();
        assert!((t - 0.9901 / 0.505).abs() < 1e-9, "{t}");
        // A query twice as high everywhere flags only its own outliers.
        let mut query: Vec<f64> = reference.iter().map(|v| 2.0 * v).collect();
        query.push(50.0);
        let (flags, thr) = flag_unmatched(&query, t);
        assert!((thr - t * median(&query)).abs() < 1e-12);
        // The outlier, and at most the top 1 % of the shifted bulk.
        assert!(flags[100]);
        assert!(flags[..100].iter().filter(|&&f| f).count() <= 1);
        assert!(flags.iter().zip(&query).all(|(&f, &v)| f == (v > thr)));
        assert!(tail_ratio(&[0.0, 0.0], 0.99).is_err());
        assert!(tail_ratio(&reference, 1.0).is_err());
    }

    /// The sketch estimates cosines: rows with the same direction get the
    /// same sketch direction, disjoint rows nearly orthogonal ones, and
    /// the H part is the unit H.
    #[test]
    fn neighbour_points_join_unit_h_and_the_expression_sketch() {
        let mut rows = SparseRows::new(400);
        let a: Vec<u32> = (0..200).collect();
        let b: Vec<u32> = (200..400).collect();
        rows.push_row(a.iter().copied(), &vec![1.0; 200]);
        rows.push_row(a.iter().copied(), &vec![3.0; 200]);
        rows.push_row(b.iter().copied(), &vec![1.0; 200]);
        rows.push_row(std::iter::empty(), &[]);
        let h = ndarray::arr2(&[[3.0, 4.0], [6.0, 8.0], [1.0, 0.0], [0.0, 0.0]]);
        let p = neighbour_points(&rows, h.view()).unwrap();
        let v = p.as_slice();
        let dim = 2 + SKETCH_DIM;
        let row = |c: usize| &v[c * dim..(c + 1) * dim];
        assert_eq!(&row(0)[..2], &[0.6, 0.8]);
        let dot = |a: &[f32], b: &[f32]| {
            a[2..]
                .iter()
                .zip(&b[2..])
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum::<f64>()
        };
        assert!((dot(row(0), row(1)) - 1.0).abs() < 1e-5, "same direction");
        assert!(
            dot(row(0), row(2)).abs() < 0.5,
            "disjoint rows: {}",
            dot(row(0), row(2))
        );
        assert!(row(3).iter().all(|&x| x == 0.0), "an empty row stays at 0");
        // The sign patterns use every bit about equally.
        let ones: u32 = (0..1000u32).map(|g| sketch_signs(g).count_ones()).sum();
        assert!((15_000..17_000).contains(&ones), "{ones}");
    }
}
