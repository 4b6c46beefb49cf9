//! How well datasets mix in an embedding: alignment (rliger `calcAlignment`,
//! docs/algorithms.md §10) and the kBET acceptance rate (Büttner et al., Nature
//! Methods 2019). Both need only the embedding and each cell's dataset.

use crate::error::{AnalysisError, Result};
use crate::knn::exact_queries;
use crate::points::Points;
use crate::rng::sample_indices;
use crate::stats::chi2_sf;

/// Parameters of [`alignment`].
#[derive(Clone, Debug, PartialEq)]
pub struct AlignmentParams {
    /// Query cells whose neighbourhoods are counted. When the downsampled
    /// set is larger, `x̄` is estimated on this many seeded random query
    /// cells (their neighbours are still exact among *all* sampled cells;
    /// per-cell same-dataset fractions vary by ~0.1–0.2, so the standard
    /// error of the score is ≈ 0.005 at 3,000 queries). Default 3,000.
    pub max_queries: usize,
    /// Seed of the downsampling and of the query choice. Default 1.
    pub seed: u64,
}

impl Default for AlignmentParams {
    fn default() -> Self {
        Self {
            max_queries: 3_000,
            seed: 1,
        }
    }
}

/// The result of [`alignment`].
#[derive(Clone, Debug, PartialEq)]
pub struct Alignment {
    /// The alignment score (1 = perfectly mixed, ≈ 0 = separated).
    pub score: f64,
    /// Neighbourhood size `k` (rliger's: from all cells `N`).
    pub k: usize,
    /// All cells `N`, the basis of `k`.
    pub cells: usize,
    /// Cells per dataset after downsampling, `m`.
    pub per_dataset: usize,
    /// Cells sampled, `M = (datasets) · m`.
    pub sampled: usize,
    /// Query cells counted.
    pub queries: usize,
}

fn group(datasets: &[u32], n_datasets: usize) -> Result<Vec<Vec<usize>>> {
    let mut g = vec![Vec::new(); n_datasets];
    for (c, &d) in datasets.iter().enumerate() {
        let d = d as usize;
        if d >= n_datasets {
            return Err(AnalysisError::InvalidData(format!(
                "cell {c} has dataset code {d} but there are {n_datasets} datasets"
            )));
        }
        g[d].push(c);
    }
    Ok(g)
}

/// Alignment (rliger ≥ 2.0 `calcAlignment`, all cells): downsample every
/// dataset to the smallest one's size `m` (seeded, without replacement);
/// with `D` datasets, `N` cells in all and `M = D·m` sampled cells,
/// `k = min(max(⌊0.01·N⌋, 10), M − 1)`; for each (query) sampled cell count
/// the sampled cells of its own dataset among its `k` exact nearest
/// sampled cells (itself excluded), average into `x̄`, and return
/// `1 − (x̄ − k/D) / (k − k/D)`. rliger counts every sampled cell; above
/// `params.max_queries` sampled cells the mean is estimated on that many
/// seeded query cells. Needs ≥ 2 non-empty datasets.
pub fn alignment(
    points: &Points,
    datasets: &[u32],
    n_datasets: usize,
    params: &AlignmentParams,
) -> Result<Alignment> {
    if datasets.len() != points.len() {
        return Err(AnalysisError::InvalidData(format!(
            "{} dataset codes for {} cells",
            datasets.len(),
            points.len()
        )));
    }
    let groups = group(datasets, n_datasets)?;
    if n_datasets < 2 || groups.iter().any(Vec::is_empty) {
        return Err(AnalysisError::InvalidData(
            "alignment needs at least two datasets, each with cells".into(),
        ));
    }
    let m = groups.iter().map(Vec::len).min().unwrap_or(0);
    let mut sampled = Vec::with_capacity(m * n_datasets);
    let mut sampled_ds = Vec::with_capacity(m * n_datasets);
    for (d, g) in groups.iter().enumerate() {
        let mut pick = sample_indices(params.seed, &[0xA11, d as u64], g.len(), m);
        pick.sort_unstable();
        for p in pick {
            sampled.push(g[p]);
            sampled_ds.push(d as u32);
        }
    }
    let total = sampled.len();
    let sub = points.subset(&sampled);
    // rliger: nNeighbors = min(max(floor(0.01 * length(cellIdx)), 10), nSampled - 1),
    // cellIdx = every cell, not only the sampled ones.
    let k = ((0.01 * points.len() as f64).floor() as usize)
        .max(10)
        .min(total - 1);
    let queries: Vec<usize> = if total <= params.max_queries {
        (0..total).collect()
    } else {
        let mut q = sample_indices(params.seed, &[0xA12], total, params.max_queries.max(1));
        q.sort_unstable();
        q
    };
    let same: usize = queries
        .iter()
        .zip(exact_queries(&sub, &queries, k))
        .map(|(&q, nb)| {
            nb.iter()
                .filter(|&&j| sampled_ds[j as usize] == sampled_ds[q])
                .count()
        })
        .sum();
    let xbar = same as f64 / queries.len() as f64;
    let (kf, nf) = (k as f64, n_datasets as f64);
    let score = 1.0 - (xbar - kf / nf) / (kf - kf / nf);
    Ok(Alignment {
        score,
        k,
        cells: points.len(),
        per_dataset: m,
        sampled: total,
        queries: queries.len(),
    })
}

/// Parameters of [`kbet`].
#[derive(Clone, Debug, PartialEq)]
pub struct KbetParams {
    /// Neighbourhood size `k0` (the tested cell included). kBET's own
    /// default, a quarter of the mean dataset size, grows with the atlas and
    /// makes the χ² test reject any small difference in composition; we fix
    /// it. Default 50.
    pub k0: usize,
    /// Fraction of cells tested (kBET's default 10%). Default 0.1.
    pub test_fraction: f64,
    /// Cap on the number of tested cells. Default 1,000.
    pub max_tests: usize,
    /// Significance level α. Default 0.05.
    pub alpha: f64,
    /// Seed of the tested cells. Default 1.
    pub seed: u64,
}

impl Default for KbetParams {
    fn default() -> Self {
        Self {
            k0: 50,
            test_fraction: 0.1,
            max_tests: 1_000,
            alpha: 0.05,
            seed: 1,
        }
    }
}

/// The result of [`kbet`].
#[derive(Clone, Debug, PartialEq)]
pub struct Kbet {
    /// Fraction of tested cells whose neighbourhood composition is
    /// consistent with the global one (p ≥ α).
    pub acceptance: f64,
    /// Cells tested.
    pub tested: usize,
    /// Neighbourhood size used.
    pub k0: usize,
}

/// kBET acceptance rate: for each tested cell (seeded random sample), take
/// its `k0` exact nearest cells (itself included), count datasets `O_b`,
/// and test them against the global frequencies `f_b` with Pearson's χ²:
/// `X² = Σ_b (O_b − k0·f_b)² / (k0·f_b)` on `B − 1` degrees of freedom.
/// The cell is accepted when `P(χ² ≥ X²) ≥ α`.
pub fn kbet(points: &Points, datasets: &[u32], n_datasets: usize, params: &KbetParams) -> Result<Kbet> {
    if datasets.len() != points.len() {
        return Err(AnalysisError::InvalidData(format!(
            "{} dataset codes for {} cells",
            datasets.len(),
            points.len()
        )));
    }
    let alpha_ok = params.alpha > 0.0 && params.alpha < 1.0;
    let fraction_ok = params.test_fraction > 0.0 && params.test_fraction <= 1.0;
    if !alpha_ok || !fraction_ok {
        return Err(AnalysisError::InvalidParameter(format!(
            "kBET alpha = {} and test_fraction = {} must lie in (0, 1)",
            params.alpha, params.test_fraction
        )));
    }
    let groups = group(datasets, n_datasets)?;
    let present: Vec<usize> = (0..n_datasets).filter(|&d| !groups[d].is_empty()).collect();
    let n = points.len();
    if present.len() < 2 || params.k0 < 2 || n < 3 {
        return Err(AnalysisError::InvalidData(
            "kBET needs at least two datasets with cells and k0 ≥ 2".into(),
        ));
    }
    let k0 = params.k0.min(n);
    let freq: Vec<f64> = groups.iter().map(|g| g.len() as f64 / n as f64).collect();
    let tests = ((params.test_fraction * n as f64).ceil() as usize).clamp(1, params.max_tests.max(1));
    let mut tested = sample_indices(params.seed, &[0xCBE7], n, tests);
    tested.sort_unstable();
    let df = (present.len() - 1) as f64;
    let accepted: usize = tested
        .iter()
        .zip(exact_queries(points, &tested, k0 - 1))
        .map(|(&c, nb)| {
            let mut counts = vec![0usize; n_datasets];
            counts[datasets[c] as usize] += 1;
            for j in nb {
                counts[datasets[j as usize] as usize] += 1;
            }
            let stat: f64 = present
                .iter()
                .map(|&b| {
                    let e = k0 as f64 * freq[b];
                    (counts[b] as f64 - e).powi(2) / e
                })
                .sum();
            usize::from(chi2_sf(stat, df) >= params.alpha)
        })
        .sum();
    Ok(Kbet {
        acceptance: accepted as f64 / tested.len() as f64,
        tested: tested.len(),
        k0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{sample_indices, Fast};

    /// Three datasets of `per` cells: mixed = all from one cloud,
    /// separated = each dataset its own far-away cloud.
    fn three(per: usize, separated: bool) -> (Points, Vec<u32>) {
        let mut r = Fast::new(5, &[]);
        let mut data = Vec::new();
        let mut ds = Vec::new();
        for d in 0..3u32 {
            for _ in 0..per {
                let off = if separated { 100.0 * d as f32 } else { 0.0 };
                for _ in 0..4 {
                    data.push(off + r.unit() as f32);
                }
                ds.push(d);
            }
        }
        (Points::from_vec(data, 3 * per, 4).unwrap(), ds)
    }

    #[test]
    fn alignment_is_one_when_mixed_and_zero_when_separated() {
        let (p, ds) = three(400, false);
        let a = alignment(&p, &ds, 3, &AlignmentParams::default()).unwrap();
        assert_eq!(a.k, 12); // floor(0.01 · 1200 cells)
        assert!(a.score > 0.9, "{a:?}");
        let (p, ds) = three(400, true);
        let a = alignment(&p, &ds, 3, &AlignmentParams::default()).unwrap();
        assert!(a.score.abs() < 1e-12, "{a:?}");
    }

    #[test]
    fn alignment_downsamples_and_subsamples_queries() {
        // Unequal sizes: every dataset is cut to the smallest (200).
        let (p, mut ds) = three(400, false);
        for d in ds.iter_mut().skip(1000) {
            *d = 2;
        }
        for d in &mut ds[800..1000] {
            *d = 0;
        }
        let params = AlignmentParams {
            max_queries: 300,
            seed: 3,
        };
        let a = alignment(&p, &ds, 3, &params).unwrap();
        assert_eq!((a.per_dataset, a.queries), (200, 300));
        assert_eq!(a, alignment(&p, &ds, 3, &params).unwrap());
        assert!(alignment(&p, &ds[..10], 3, &params).is_err());
        assert!(alignment(&p, &vec![0; 1200], 1, &params).is_err());
    }

    #[test]
    fn kbet_accepts_mixed_and_rejects_separated() {
        let (p, ds) = three(400, false);
        let k = kbet(&p, &ds, 3, &KbetParams::default()).unwrap();
        assert_eq!(k.tested, 120);
        assert!(k.acceptance > 0.8, "{k:?}");
        let (p, ds) = three(400, true);
        let k = kbet(&p, &ds, 3, &KbetParams::default()).unwrap();
        assert_eq!(k.acceptance, 0.0);
    }

    /// Three datasets of unequal sizes, partly mixed, in 3-D.
    fn unequal(sizes: [usize; 3], seed: u64) -> (Points, Vec<u32>) {
        let mut r = Fast::new(seed, &[]);
        let (mut data, mut ds) = (Vec::new(), Vec::new());
        for (d, &m) in sizes.iter().enumerate() {
            for _ in 0..m {
                for j in 0..3 {
                    data.push(if j == d { 0.8 } else { 0.0 } + r.unit() as f32);
                }
                ds.push(d as u32);
            }
        }
        (Points::from_vec(data, ds.len(), 3).unwrap(), ds)
    }

    /// rliger's calcAlignment written out: the same sampled cells, every
    /// one a query, its k nearest other sampled cells by sorting all
    /// distances (f64), k = min(max(⌊0.01·N⌋, 10), M − 1) with N all cells.
    fn alignment_by_brute_force(p: &Points, ds: &[u32], nd: usize, seed: u64) -> (f64, usize) {
        let groups: Vec<Vec<usize>> = (0..nd as u32)
            .map(|d| (0..ds.len()).filter(|&c| ds[c] == d).collect())
            .collect();
        let m = groups.iter().map(Vec::len).min().unwrap();
        let mut sampled = Vec::new();
        for (d, g) in groups.iter().enumerate() {
            let mut pick = sample_indices(seed, &[0xA11, d as u64], g.len(), m);
            pick.sort_unstable();
            sampled.extend(pick.into_iter().map(|i| g[i]));
        }
        let total = sampled.len();
        let k = ((ds.len() as f64 * 0.01).floor() as usize).max(10).min(total - 1);
        let dist = |a: usize, b: usize| -> f64 {
            p.row(a)
                .iter()
                .zip(p.row(b))
                .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
                .sum::<f64>()
        };
        let mut same = 0usize;
        for &q in &sampled {
            let mut others: Vec<(f64, usize)> = sampled
                .iter()
                .filter(|&&c| c != q)
                .map(|&c| (dist(q, c), c))
                .collect();
            others.sort_by(|a, b| a.partial_cmp(b).unwrap());
            same += others[..k].iter().filter(|&&(_, c)| ds[c] == ds[q]).count();
        }
        let xbar = same as f64 / total as f64;
        let (kf, nf) = (k as f64, nd as f64);
        (1.0 - (xbar - kf / nf) / (kf - kf / nf), k)
    }

    #[test]
    fn alignment_matches_rligers_definition_by_brute_force() {
        for (sizes, seed) in [([1000, 100, 100], 1), ([700, 450, 350], 2), ([5000, 60, 40], 3)] {
            let (p, ds) = unequal(sizes, seed);
            let params = AlignmentParams {
                max_queries: usize::MAX,
                seed: 4,
            };
            let a = alignment(&p, &ds, 3, &params).unwrap();
            let (score, k) = alignment_by_brute_force(&p, &ds, 3, 4);
            // k comes from all cells N, not from the M sampled ones.
            assert_eq!(a.k, k);
            assert_eq!(
                (a.cells, a.sampled, a.queries),
                (ds.len(), 3 * a.per_dataset, 3 * a.per_dataset)
            );
            assert!(
                (a.score - score).abs() < 1e-12,
                "{sizes:?}: {} vs {score}",
                a.score
            );
        }
        // The k rule on the three atlases: ⌊0.01·1200⌋ = 12 (10 from the 300
        // sampled cells); ⌊0.01·1500⌋ = 15; ⌊0.01·5100⌋ = 51, capped at M − 1 = 119.
        let ks: Vec<usize> = [[1000, 100, 100], [700, 450, 350], [5000, 60, 40]]
            .iter()
            .map(|&s| {
                let (p, ds) = unequal(s, 1);
                alignment(&p, &ds, 3, &AlignmentParams::default()).unwrap().k
            })
            .collect();
        assert_eq!(ks, vec![12, 15, 51]);
        let (p, ds) = unequal([5000, 20, 15], 1);
        assert_eq!(alignment(&p, &ds, 3, &AlignmentParams::default()).unwrap().k, 44);
    }

    #[test]
    fn kbet_matches_a_brute_force_chi_square_test() {
        // Three datasets: 2 degrees of freedom, P(χ² ≥ x) = exp(−x/2).
        let (p, ds) = unequal([300, 200, 100], 5);
        let params = KbetParams::default();
        let k = kbet(&p, &ds, 3, &params).unwrap();
        let n = ds.len();
        let freq: Vec<f64> = (0..3u32)
            .map(|d| ds.iter().filter(|&&x| x == d).count() as f64 / n as f64)
            .collect();
        let mut tested = sample_indices(params.seed, &[0xCBE7], n, 60);
        tested.sort_unstable();
        let mut accepted = 0;
        for &c in &tested {
            let mut others: Vec<(f64, usize)> = (0..n)
                .filter(|&j| j != c)
                .map(|j| (f64::from(p.dist2(c, j)), j))
                .collect();
            others.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let mut counts = [0f64; 3];
            counts[ds[c] as usize] += 1.0;
            for &(_, j) in &others[..49] {
                counts[ds[j] as usize] += 1.0;
            }
            let x2: f64 = (0..3)
                .map(|b| (counts[b] - 50.0 * freq[b]).powi(2) / (50.0 * freq[b]))
                .sum();
            accepted += usize::from((-x2 / 2.0).exp() >= 0.05);
        }
        assert_eq!(k.tested, 60);
        assert_eq!(k.acceptance, accepted as f64 / 60.0);
    }
}
