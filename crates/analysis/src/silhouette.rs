//! Silhouette width on a sample (Rousseeuw 1987).
//!
//! `s(i) = (b(i) − a(i)) / max(a(i), b(i))`, `a(i)` the mean distance of
//! cell `i` to the other cells of its cluster, `b(i)` the smallest mean
//! distance to the cells of another cluster, `s(i) = 0` for a cell alone
//! in its cluster; the score is the mean over the cells (R's
//! `cluster::silhouette` and scikit-learn's `silhouette_score`).

use rayon::prelude::*;

use crate::error::{AnalysisError, Result};
use crate::partition::MISSING;
use crate::points::{sq_dist, Points};
use crate::rng::sample_indices;

/// The silhouette width of one cell, `(b − a) / max(a, b)`, from its
/// distance sums `sum[c]` to the `cnt[c]` other cells of each group `c`
/// (itself not counted): `a` the mean to its own group `own`, `b` the
/// smallest mean to another group; 0 when it is alone in its group.
pub(crate) fn width(sum: &[f64], cnt: &[usize], own: usize) -> f64 {
    if cnt[own] == 0 {
        return 0.0;
    }
    let a = sum[own] / cnt[own] as f64;
    let b = (0..sum.len())
        .filter(|&c| c != own && cnt[c] > 0)
        .map(|c| sum[c] / cnt[c] as f64)
        .fold(f64::INFINITY, f64::min);
    let m = a.max(b);
    if m > 0.0 {
        (b - a) / m
    } else {
        0.0
    }
}

/// The cells [`silhouette`] samples: at most `sample` of those `eligible`,
/// seeded, increasing.
pub(crate) fn sample_cells(eligible: &[bool], sample: usize, seed: u64) -> Vec<usize> {
    let candidates: Vec<usize> = (0..eligible.len()).filter(|&c| eligible[c]).collect();
    let mut pick: Vec<usize> = sample_indices(seed, &[0x5111], candidates.len(), sample)
        .into_iter()
        .map(|i| candidates[i])
        .collect();
    pick.sort_unstable();
    pick
}

/// Mean silhouette width of the labelling `labels` on a seeded random
/// sample of at most `sample` labelled cells, distances Euclidean and
/// computed within the sample: for cell `i` with `a(i)` its mean distance to
/// the other sampled cells of its label and `b(i)` the smallest mean
/// distance to the sampled cells of another label,
/// `s(i) = (b − a) / max(a, b)` (0 for a cell alone in its label).
/// Cost `O(sample²·d)`. Needs ≥ 2 labels in the sample.
pub fn silhouette(points: &Points, labels: &[u32], sample: usize, seed: u64) -> Result<f64> {
    if labels.len() != points.len() {
        return Err(AnalysisError::InvalidData(format!(
            "{} labels for {} cells",
            labels.len(),
            points.len()
        )));
    }
    let eligible: Vec<bool> = labels.iter().map(|&l| l != MISSING).collect();
    let pick = sample_cells(&eligible, sample, seed);
    let mut codes: Vec<u32> = pick.iter().map(|&c| labels[c]).collect();
    let mut distinct = codes.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 2 {
        return Err(AnalysisError::InvalidData(
            "silhouette needs at least two labels among the sampled cells".into(),
        ));
    }
    for c in &mut codes {
        *c = distinct.binary_search(c).unwrap_or(0) as u32;
    }
    let l = distinct.len();
    let sub = points.subset(&pick);
    // Collected, then summed in order: the same result whatever the thread count.
    let per_cell: Vec<f64> = (0..pick.len())
        .into_par_iter()
        .map(|i| {
            let mut sum = vec![0f64; l];
            let mut cnt = vec![0usize; l];
            for (j, &code) in codes.iter().enumerate() {
                if j != i {
                    let c = code as usize;
                    sum[c] += (sq_dist(sub.row(i), sub.row(j)) as f64).sqrt();
                    cnt[c] += 1;
                }
            }
            width(&sum, &cnt, codes[i] as usize)
        })
        .collect();
    Ok(per_cell.iter().sum::<f64>() / pick.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silhouette_hand_example_and_separation() {
        // 1-D points 0, 1 (label 0) and 10, 11 (label 1):
        // s(0) = (10.5 − 1)/10.5; s(1) = (9.5 − 1)/9.5; symmetric for the others.
        let p = Points::from_vec(vec![0.0, 1.0, 10.0, 11.0], 4, 1).unwrap();
        let s = silhouette(&p, &[0, 0, 1, 1], 100, 1).unwrap();
        let expect = ((9.5 / 10.5) + (8.5 / 9.5)) / 2.0;
        assert!((s - expect).abs() < 1e-6, "{s} vs {expect}");
        // Swapping the labels of the pairs makes it negative.
        assert!(silhouette(&p, &[0, 1, 0, 1], 100, 1).unwrap() < 0.0);
        assert!(silhouette(&p, &[0, 0, 0, 0], 100, 1).is_err());
        assert!(silhouette(&p, &[0, 0, MISSING, 1], 100, 1).is_ok());
    }

    #[test]
    fn silhouette_matches_the_definition_on_every_cell() {
        // Every cell sampled: the mean over all cells of (b − a)/max(a, b),
        // distances in f64, written out.
        let mut r = crate::rng::Fast::new(3, &[]);
        let n = 150;
        let data: Vec<f32> = (0..n * 2)
            .map(|i| r.unit() as f32 + ((i / 2) % 3) as f32)
            .collect();
        let labels: Vec<u32> = (0..n).map(|c| if c == 7 { 3 } else { (c % 3) as u32 }).collect();
        let p = Points::from_vec(data, n, 2).unwrap();
        let d = |a: usize, b: usize| -> f64 {
            p.row(a)
                .iter()
                .zip(p.row(b))
                .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        let mut total = 0.0;
        for i in 0..n {
            let mean_to = |l: u32| {
                let others: Vec<usize> = (0..n).filter(|&j| j != i && labels[j] == l).collect();
                others.iter().map(|&j| d(i, j)).sum::<f64>() / others.len() as f64
            };
            if labels.iter().filter(|&&l| l == labels[i]).count() == 1 {
                continue; // alone in its label: 0
            }
            let a = mean_to(labels[i]);
            let b = (0..4u32)
                .filter(|&l| l != labels[i])
                .map(mean_to)
                .fold(f64::INFINITY, f64::min);
            total += (b - a) / a.max(b);
        }
        let s = silhouette(&p, &labels, 1000, 1).unwrap();
        assert!((s - total / n as f64).abs() < 1e-6, "{s} vs {}", total / n as f64);
    }
}
