//! New points on an existing UMAP layout: umap-learn's `UMAP.transform`.
//!
//! For a query point `i` with its `k` nearest reference points at distances
//! `d_i1 ≤ … ≤ d_ik` (in the space the reference layout was computed from):
//!
//! 1. **Memberships.** As in `fuzzy_simplicial_set` with local connectivity
//!    0 (umap-learn passes `local_connectivity − 1`): `ρ_i = 0` and `σ_i`
//!    solves `Σ_{j≥2} exp(−d_ij/σ_i) = log2(k)` (bisection, 64 steps,
//!    tolerance 1e-5, floor `1e-3 ×` the mean of all distances);
//!    `w_ij = exp(−d_ij/σ_i)` (1 at distance 0). Nothing is symmetrized:
//!    the graph is bipartite, query → reference.
//! 2. **Initialization.** `y_i = Σ_j w_ij·e_j / Σ_j w_ij`, the weighted mean
//!    of the neighbours' positions `e_j` on the reference layout.
//! 3. **Optimization.** `n_epochs` = 100 for ≤ 10,000 query points, else 30
//!    (umap-learn's choice when the layout used its default epochs); edges
//!    with `w < max(w)/n_epochs` are dropped and edge `e` is sampled every
//!    `max(w)/w_e` epochs. When sampled, the query point moves along the
//!    clipped (±4) attraction `−2ab·d^{2(b−1)}/(1 + a·d^{2b})·(y_i − e_j)`,
//!    then `negative_sample_rate` reference points drawn uniformly per
//!    sample repel it with `2γb/((0.001 + d²)(1 + a·d^{2b}))·(y_i − e_k)`
//!    (clipped); the learning rate decays linearly from `learning_rate/4`
//!    to 0. The reference layout never moves.
//!
//! Query points do not interact, so each runs its whole schedule alone, in
//! parallel, with random draws from a stream named by (seed, point): the
//! placement is identical for a seed whatever the thread count.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::error::{AnalysisError, Result};
use crate::mapping::transfer::Neighbors;
use crate::rng::Fast;
use crate::umap::{find_ab, smooth_knn_sigma, UmapParams};

/// Membership strengths `w_ij` of step 1, `k` per query point.
pub fn memberships(neighbors: &Neighbors) -> Vec<f32> {
    let k = neighbors.k;
    let target = (k as f64).log2();
    let total: f64 = neighbors.distances.iter().map(|&d| d as f64).sum();
    let floor = 1e-3 * total / neighbors.distances.len().max(1) as f64;
    (0..neighbors.len())
        .into_par_iter()
        .flat_map_iter(|i| {
            let d = neighbors.distances_of(i);
            let s = smooth_knn_sigma(d, 0.0, target).max(floor);
            d.iter()
                .map(move |&x| {
                    if x <= 0.0 || s == 0.0 {
                        1.0
                    } else {
                        (-(x as f64) / s).exp() as f32
                    }
                })
                .collect::<Vec<f32>>()
        })
        .collect()
}

#[inline]
fn clip(x: f32) -> f32 {
    x.clamp(-4.0, 4.0)
}

/// Places each query point on `layout` (the reference's `n × 2` UMAP) from
/// its reference neighbours (module doc); `params` are the reference
/// layout's UMAP parameters (`min_dist`, `spread`, rates, seed). Returns
/// `n_query × 2`.
pub fn umap_transform(
    layout: ArrayView2<'_, f32>,
    neighbors: &Neighbors,
    params: &UmapParams,
) -> Result<Array2<f32>> {
    let nr = layout.nrows();
    if layout.ncols() != 2 {
        return Err(AnalysisError::InvalidData(format!(
            "the reference layout has {} columns; a 2-D UMAP is needed",
            layout.ncols()
        )));
    }
    if neighbors.indices.iter().any(|&j| j as usize >= nr) {
        return Err(AnalysisError::InvalidData(format!(
            "a neighbour lies outside the {nr} points of the reference layout"
        )));
    }
    let nq = neighbors.len();
    if nq == 0 {
        return Ok(Array2::zeros((0, 2)));
    }
    let k = neighbors.k;
    let n_epochs = if nq <= 10_000 { 100 } else { 30 };
    let (a, b) = find_ab(params.spread, params.min_dist);
    let (af, bf) = (a as f32, b as f32);
    let (two_ab, two_gb) = (2.0 * af * bf, (2.0 * params.repulsion_strength * b) as f32);
    let neg_rate = params.negative_sample_rate as f32;
    let w = memberships(neighbors);
    let wmax = w.iter().copied().fold(0f32, f32::max) as f64;
    let eps: Vec<f32> = w
        .iter()
        .map(|&x| {
            let x = x as f64;
            if wmax > 0.0 && x >= wmax / n_epochs as f64 {
                (wmax / x) as f32
            } else {
                f32::INFINITY
            }
        })
        .collect();
    let at = |j: u32| [layout[[j as usize, 0]], layout[[j as usize, 1]]];
    let out: Vec<[f32; 2]> = (0..nq)
        .into_par_iter()
        .map(|i| {
            let nb = neighbors.of(i);
            let wi = &w[i * k..(i + 1) * k];
            let ws: f64 = wi.iter().map(|&x| x as f64).sum();
            let mut cur = [0f32; 2];
            for (&j, &x) in nb.iter().zip(wi) {
                let e = at(j);
                cur[0] += (x as f64 / ws) as f32 * e[0];
                cur[1] += (x as f64 / ws) as f32 * e[1];
            }
            let ep = &eps[i * k..(i + 1) * k];
            let mut next: Vec<f32> = ep.to_vec();
            let mut next_neg: Vec<f32> = ep.iter().map(|&e| e / neg_rate.max(1e-30)).collect();
            let mut rng = Fast::new(params.seed, &[0x7A45, i as u64]);
            for epoch in 0..n_epochs {
                let n = epoch as f32;
                let alpha = (params.learning_rate / 4.0 * (1.0 - epoch as f64 / n_epochs as f64)) as f32;
                for s in 0..k {
                    if next[s] > n {
                        continue;
                    }
                    let o = at(nb[s]);
                    let dx = [cur[0] - o[0], cur[1] - o[1]];
                    let d2 = dx[0] * dx[0] + dx[1] * dx[1];
                    if d2 > 0.0 {
                        let pb = (bf * d2.ln()).exp();
                        let coef = -two_ab * (pb / d2) / (af * pb + 1.0);
                        cur[0] += clip(coef * dx[0]) * alpha;
                        cur[1] += clip(coef * dx[1]) * alpha;
                    }
                    next[s] += ep[s];
                    let epn = ep[s] / neg_rate;
                    let n_neg = if neg_rate > 0.0 {
                        ((n - next_neg[s]) / epn).floor().max(0.0) as usize
                    } else {
                        0
                    };
                    for _ in 0..n_neg {
                        let o = at(rng.below(nr) as u32);
                        let dx = [cur[0] - o[0], cur[1] - o[1]];
                        let d2 = dx[0] * dx[0] + dx[1] * dx[1];
                        if d2 > 0.0 {
                            let pb = (bf * d2.ln()).exp();
                            let coef = two_gb / ((0.001 + d2) * (af * pb + 1.0));
                            cur[0] += clip(coef * dx[0]) * alpha;
                            cur[1] += clip(coef * dx[1]) * alpha;
                        }
                    }
                    next_neg[s] += n_neg as f32 * epn;
                }
            }
            cur
        })
        .collect();
    Array2::from_shape_vec((nq, 2), out.into_iter().flatten().collect())
        .map_err(|e| AnalysisError::InvalidData(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::transfer::{nearest_in, unit_rows};
    use crate::points::Points;

    #[test]
    fn memberships_solve_the_bisection_equation() {
        let nb = Neighbors {
            k: 4,
            indices: vec![0, 1, 2, 3],
            distances: vec![0.5, 1.0, 1.5, 3.0],
        };
        let w = memberships(&nb);
        // Σ_{j≥2} w_j = log2 4 = 2 and w_j = exp(−d_j/σ) for one σ.
        let s: f64 = w[1..].iter().map(|&x| x as f64).sum();
        assert!((s - 2.0).abs() < 1e-4, "{w:?}");
        let sigma = -1.0 / (w[1] as f64).ln();
        for (x, d) in w.iter().zip(&nb.distances) {
            assert!(((*x as f64) - (-(*d as f64) / sigma).exp()).abs() < 1e-5);
        }
    }

    #[test]
    fn query_points_land_among_their_neighbours() {
        // Reference: two groups in H, laid out at x ≈ 0 and x ≈ 10.
        let n = 200;
        let h = Array2::from_shape_fn((n, 3), |(c, j)| {
            let g = c % 2;
            if j == g {
                1.0 + (c % 13) as f32 * 0.02
            } else {
                0.05 * ((c * 7 + j) % 5) as f32
            }
        });
        let layout = Array2::from_shape_fn((n, 2), |(c, d)| {
            if d == 0 {
                10.0 * (c % 2) as f32 + 0.01 * (c % 17) as f32
            } else {
                0.01 * (c % 11) as f32
            }
        });
        let q = Array2::from_shape_fn((6, 3), |(c, j)| if j == c % 2 { 1.1 } else { 0.03 });
        let (rp, qp) = (unit_rows(h.view()).unwrap(), unit_rows(q.view()).unwrap());
        let nb = nearest_in(&rp, &qp, 15).unwrap();
        let params = UmapParams::default();
        let y = umap_transform(layout.view(), &nb, &params).unwrap();
        for i in 0..6 {
            let want = 10.0 * (i % 2) as f32;
            assert!((y[[i, 0]] - want).abs() < 2.0, "query {i} at {:?}", y.row(i));
        }
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| umap_transform(layout.view(), &nb, &params).unwrap());
        assert!(one == y, "thread count changed the placement");
        let _ = Points::from_view(y.view()).unwrap();
    }
}
