//! UMAP of a large set: the layout fitted on a subsample, every other
//! point placed on it by umap-learn's transform.
//!
//! With `n` points and a cap `m` ([`umap_subsampled`]; `m = 0` or `n ≤ m`:
//! plain [`umap`] on the whole kNN graph, the same bits):
//!
//! 1. **Subsample.** Each dataset `d` of `n_d` points keeps
//!    `m_d = ⌊m·n_d/n⌋` of them, plus one for the datasets with the largest
//!    remainders `m·n_d/n − m_d` (ties: lower index) until `Σ m_d = m`, so
//!    every batch is represented in proportion. The `m_d` are drawn without
//!    replacement from a stream named by (seed, dataset) and kept in point
//!    order.
//! 2. **Fit.** The subsample's own kNN graph ([`knn()`], `k = n_neighbors`,
//!    the analysis' search parameters) and [`umap`] on it.
//! 3. **Placement.** Each other point's `n_neighbors` nearest subsample
//!    points by a best-first search of the subsample's kNN graph (beam of
//!    `2·n_neighbors` points; the search expands the closest unexpanded
//!    point of the beam until it is farther than the beam's farthest), started from the
//!    subsample points among the point's own kNN neighbours, else among
//!    their neighbours, else from the first `2·n_neighbors` subsample
//!    points; then [`umap_transform`] (its fixed schedule: 30 epochs above
//!    10,000 points). Subsample points keep their fitted positions.
//!
//! Every step is seeded or searches each point alone, so the layout is
//! identical for a seed whatever the thread count.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::error::{AnalysisError, Result};
use crate::knn::{knn, KnnGraph, KnnParams};
use crate::mapping::transfer::Neighbors;
use crate::mapping::umap_transform::umap_transform;
use crate::points::{sq_dist, Points};
use crate::rng::sample_indices;
use crate::umap::{umap, UmapParams};

/// A layout from [`umap_subsampled`].
#[derive(Clone, Debug, PartialEq)]
pub struct SampledUmap {
    /// The layout, points × 2.
    pub layout: Array2<f32>,
    /// Points the layout was fitted on (`None`: all of them).
    pub fit_cells: Option<usize>,
    /// Wall time of each part, seconds: `UMAP` alone without a subsample;
    /// with one, the subsample's kNN graph, its layout, and the others'
    /// neighbour search and transform.
    pub seconds: Vec<(&'static str, f64)>,
}

/// The subsample of step 1 of the module doc: `m` of the `datasets.len()`
/// points (all of them when `m ≥` that), in increasing order.
pub fn stratified_sample(datasets: &[u32], n_datasets: usize, m: usize, seed: u64) -> Result<Vec<usize>> {
    let n = datasets.len();
    if m >= n {
        return Ok((0..n).collect());
    }
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_datasets];
    for (c, &d) in datasets.iter().enumerate() {
        members
            .get_mut(d as usize)
            .ok_or_else(|| {
                AnalysisError::InvalidData(format!(
                    "point {c} is in dataset {d}, but there are {n_datasets} datasets"
                ))
            })?
            .push(c);
    }
    let share = |d: usize| m as f64 * members[d].len() as f64 / n as f64;
    let mut take: Vec<usize> = (0..n_datasets).map(|d| share(d).floor() as usize).collect();
    let mut by_remainder: Vec<usize> = (0..n_datasets).collect();
    by_remainder.sort_by(|&a, &b| {
        let (ra, rb) = (share(a) - take[a] as f64, share(b) - take[b] as f64);
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    let mut missing = m - take.iter().sum::<usize>();
    for &d in by_remainder.iter().cycle() {
        if missing == 0 {
            break;
        }
        if take[d] < members[d].len() {
            take[d] += 1;
            missing -= 1;
        }
    }
    let mut out = Vec::with_capacity(m);
    for (d, cells) in members.iter().enumerate() {
        out.extend(
            sample_indices(seed, &[0x5B5, d as u64], cells.len(), take[d])
                .into_iter()
                .map(|i| cells[i]),
        );
    }
    out.sort_unstable();
    Ok(out)
}

/// Position of each of the `m` layout points in a Z-order (Morton) curve
/// over the layout's bounding box (16 bits per axis; ties by index):
/// points close on the layout are close in this order.
fn z_order(layout: ArrayView2<'_, f32>) -> Vec<usize> {
    let m = layout.nrows();
    let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
    for r in layout.outer_iter() {
        for a in 0..2 {
            lo[a] = lo[a].min(r[a]);
            hi[a] = hi[a].max(r[a]);
        }
    }
    let cell = |v: f32, a: usize| -> u32 {
        let span = hi[a] - lo[a];
        if span > 0.0 {
            (((v - lo[a]) / span) * 65_535.0) as u32
        } else {
            0
        }
    };
    let spread = |mut x: u32| -> u32 {
        x &= 0xFFFF;
        x = (x | (x << 8)) & 0x00FF_00FF;
        x = (x | (x << 4)) & 0x0F0F_0F0F;
        x = (x | (x << 2)) & 0x3333_3333;
        (x | (x << 1)) & 0x5555_5555
    };
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by_key(|&f| {
        let r = layout.row(f);
        (spread(cell(r[0], 0)) | (spread(cell(r[1], 1)) << 1), f)
    });
    order
}

/// The subsample a layout was fitted on.
struct Fitted<'a> {
    /// Its points (indices into all points), increasing.
    cells: &'a [usize],
    /// For each of all points, its position in `cells` or `u32::MAX`.
    position: &'a [u32],
    /// Its own kNN graph (positions in `cells`).
    graph: &'a KnnGraph,
    /// Its layout, `cells.len() × 2`.
    layout: ArrayView2<'a, f32>,
}

/// Step 3's search: for each point of `queries` (indices into `points`),
/// its `k` nearest points of the subsample `fitted`, as positions in
/// `fitted.cells`, searched on the subsample's kNN graph from the seeds
/// the full graph `graph` gives (module doc). For memory locality the
/// subsample is stored in the Z-order of its layout and the queries are
/// searched in the order of their first seed; each query's search is
/// independent of the others, so the order changes no result.
fn search_fit(
    points: &Points,
    graph: &KnnGraph,
    fitted: &Fitted<'_>,
    queries: &[usize],
    k: usize,
) -> Neighbors {
    let (fit, fit_of, fit_graph) = (fitted.cells, fitted.position, fitted.graph);
    let m = fit.len();
    let k = k.min(m);
    let beam = (2 * k).max(1);
    // Subsample in Z-order: `old[r]` is the fit position of local point r.
    let old = z_order(fitted.layout);
    let mut local = vec![0u32; m];
    for (r, &f) in old.iter().enumerate() {
        local[f] = r as u32;
    }
    let dim = points.dim();
    let mut rows = Vec::with_capacity(m * dim);
    for &f in &old {
        rows.extend_from_slice(points.row(fit[f]));
    }
    let row = |r: u32| &rows[r as usize * dim..(r as usize + 1) * dim];
    let deg = fit_graph.k().saturating_sub(1);
    let adj: Vec<u32> = old
        .iter()
        .flat_map(|&f| fit_graph.neighbors(f)[1..].iter().map(|&g| local[g as usize]))
        .collect();
    let seed_of = |q: usize| {
        graph
            .neighbors(q)
            .iter()
            .find(|&&j| fit_of[j as usize] != u32::MAX)
            .map_or(u32::MAX, |&j| local[fit_of[j as usize] as usize])
    };
    let mut order: Vec<(u32, usize)> = queries
        .iter()
        .enumerate()
        .map(|(i, &q)| (seed_of(q), i))
        .collect();
    order.sort_unstable();
    const CHUNK: usize = 4096;
    let parts: Vec<Vec<(u32, f32)>> = order
        .par_chunks(CHUNK)
        .map(|chunk| {
            // Visit stamps: `seen[r] == stamp` = local point r met for this query.
            let mut seen = vec![0u32; m];
            let mut out = Vec::with_capacity(chunk.len() * k);
            // Keys `(squared distance bits, local id)`: non-negative f32
            // bits order as the values, ties go to the lower id.
            let key = |d2: f32, r: u32| ((d2.to_bits() as u64) << 32) | r as u64;
            let mut todo: BinaryHeap<Reverse<u64>> = BinaryHeap::new();
            let mut best: BinaryHeap<u64> = BinaryHeap::new();
            for (s, &(_, i)) in chunk.iter().enumerate() {
                let stamp = s as u32 + 1;
                let q = queries[i];
                let x = points.row(q);
                todo.clear();
                best.clear();
                let mut offer = |r: u32, todo: &mut BinaryHeap<Reverse<u64>>, best: &mut BinaryHeap<u64>| {
                    if seen[r as usize] == stamp {
                        return;
                    }
                    seen[r as usize] = stamp;
                    let e = key(sq_dist(x, row(r)), r);
                    if best.len() < beam || e < *best.peek().expect("a full beam") {
                        todo.push(Reverse(e));
                        best.push(e);
                        if best.len() > beam {
                            best.pop();
                        }
                    }
                };
                for &j in graph.neighbors(q) {
                    if fit_of[j as usize] != u32::MAX {
                        offer(local[fit_of[j as usize] as usize], &mut todo, &mut best);
                    }
                }
                if best.is_empty() {
                    for &j in graph.neighbors(q) {
                        for &l in graph.neighbors(j as usize) {
                            if fit_of[l as usize] != u32::MAX {
                                offer(local[fit_of[l as usize] as usize], &mut todo, &mut best);
                            }
                        }
                    }
                }
                if best.is_empty() {
                    for &r in &local[..beam.min(m)] {
                        offer(r, &mut todo, &mut best);
                    }
                }
                while let Some(Reverse(e)) = todo.pop() {
                    if best.len() >= beam && e > *best.peek().expect("a full beam") {
                        break;
                    }
                    let r = (e & 0xFFFF_FFFF) as usize;
                    for &g in &adj[r * deg..(r + 1) * deg] {
                        offer(g, &mut todo, &mut best);
                    }
                }
                // A subsample graph in pieces the seeds do not reach: any k points more.
                let mut f = 0;
                while best.len() < k {
                    offer(local[f], &mut todo, &mut best);
                    f += 1;
                }
                for e in std::mem::take(&mut best).into_sorted_vec().into_iter().take(k) {
                    let r = (e & 0xFFFF_FFFF) as usize;
                    out.push((old[r] as u32, f32::from_bits((e >> 32) as u32).sqrt()));
                }
            }
            out
        })
        .collect();
    let mut indices = vec![0u32; queries.len() * k];
    let mut distances = vec![0f32; queries.len() * k];
    for (&(_, i), found) in order.iter().zip(parts.iter().flat_map(|p| p.chunks(k))) {
        for (s, &(j, d)) in found.iter().enumerate() {
            indices[i * k + s] = j;
            distances[i * k + s] = d;
        }
    }
    Neighbors {
        k,
        indices,
        distances,
    }
}

/// 2-D UMAP layout of `points` (kNN graph `graph`, dataset of each point
/// in `datasets`), fitted on at most `fit_cells` of them (0 = all) as the
/// module doc says; `knn_params` are the search parameters of the
/// subsample's graph (its `k` is replaced by `params.n_neighbors`).
pub fn umap_subsampled(
    points: &Points,
    graph: &KnnGraph,
    datasets: &[u32],
    n_datasets: usize,
    fit_cells: usize,
    knn_params: &KnnParams,
    params: &UmapParams,
) -> Result<SampledUmap> {
    let n = points.len();
    if datasets.len() != n || graph.len() != n {
        return Err(AnalysisError::InvalidData(format!(
            "{n} points, {} dataset codes and a kNN graph of {} points",
            datasets.len(),
            graph.len()
        )));
    }
    let t = Instant::now();
    if fit_cells == 0 || n <= fit_cells {
        let layout = umap(points, graph, params)?;
        return Ok(SampledUmap {
            layout,
            fit_cells: None,
            seconds: vec![("UMAP", t.elapsed().as_secs_f64())],
        });
    }
    if fit_cells < params.n_neighbors {
        return Err(AnalysisError::InvalidParameter(format!(
            "UMAP fitted on {fit_cells} cells: use at least n_neighbors = {} (or 0 for all cells)",
            params.n_neighbors
        )));
    }
    let fit = stratified_sample(datasets, n_datasets, fit_cells, params.seed)?;
    let mut fit_of = vec![u32::MAX; n];
    for (f, &c) in fit.iter().enumerate() {
        fit_of[c] = f as u32;
    }
    let fit_points = points.subset(&fit);
    let fit_graph = knn(
        &fit_points,
        &KnnParams {
            k: params.n_neighbors,
            ..knn_params.clone()
        },
    )?;
    let mut seconds = vec![("UMAP subsample kNN graph", t.elapsed().as_secs_f64())];
    let t = Instant::now();
    let fitted = umap(&fit_points, &fit_graph, params)?;
    drop(fit_points);
    seconds.push(("UMAP fit", t.elapsed().as_secs_f64()));
    let t = Instant::now();
    let others: Vec<usize> = (0..n).filter(|&c| fit_of[c] == u32::MAX).collect();
    let subsample = Fitted {
        cells: &fit,
        position: &fit_of,
        graph: &fit_graph,
        layout: fitted.view(),
    };
    let nb = search_fit(points, graph, &subsample, &others, params.n_neighbors);
    drop(fit_graph);
    seconds.push(("UMAP neighbours of the other cells", t.elapsed().as_secs_f64()));
    let t = Instant::now();
    let placed = umap_transform(fitted.view(), &nb, params)?;
    let mut layout = Array2::zeros((n, 2));
    for (f, &c) in fit.iter().enumerate() {
        layout.row_mut(c).assign(&fitted.row(f));
    }
    for (q, &c) in others.iter().enumerate() {
        layout.row_mut(c).assign(&placed.row(q));
    }
    seconds.push(("UMAP transform", t.elapsed().as_secs_f64()));
    Ok(SampledUmap {
        layout,
        fit_cells: Some(fit.len()),
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knn::exact_knn;
    use crate::mapping::transfer::nearest_in;
    use crate::rng::Fast;
    use crate::test_util::on_threads;

    /// Four 6-D clouds, points alternating between two datasets.
    fn clouds(n: usize) -> (Points, Vec<u32>) {
        let mut r = Fast::new(5, &[]);
        let mut data = Vec::with_capacity(n * 6);
        for c in 0..n {
            for dim in 0..6 {
                let centre = if dim == c % 4 { 20.0 } else { 0.0 };
                data.push(centre + r.unit() as f32);
            }
        }
        let ds = (0..n).map(|c| (c % 3 == 0) as u32).collect();
        (Points::from_vec(data, n, 6).unwrap(), ds)
    }

    #[test]
    fn sample_is_stratified_sorted_and_seeded() {
        let ds: Vec<u32> = (0..1000)
            .map(|c| {
                if c < 700 {
                    0
                } else if c < 950 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let s = stratified_sample(&ds, 3, 101, 4).unwrap();
        assert_eq!(s.len(), 101);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        let count = |d: u32| s.iter().filter(|&&c| ds[c] == d).count();
        // Shares 70.7, 25.25, 5.05: floors 70, 25, 5, the one left to dataset 0.
        assert_eq!((count(0), count(1), count(2)), (71, 25, 5));
        assert_eq!(s, stratified_sample(&ds, 3, 101, 4).unwrap());
        assert_ne!(s, stratified_sample(&ds, 3, 101, 5).unwrap());
        assert_eq!(stratified_sample(&ds, 3, 5000, 4).unwrap().len(), 1000);
        assert!(stratified_sample(&ds, 2, 10, 4).is_err());
    }

    #[test]
    fn search_finds_the_exact_neighbours_in_the_subsample() {
        let (p, ds) = clouds(2000);
        let graph = exact_knn(&p, 20);
        let fit = stratified_sample(&ds, 2, 300, 1).unwrap();
        let mut fit_of = vec![u32::MAX; 2000];
        for (f, &c) in fit.iter().enumerate() {
            fit_of[c] = f as u32;
        }
        let fp = p.subset(&fit);
        let fg = exact_knn(&fp, 15);
        let layout = umap(&fp, &fg, &UmapParams::default()).unwrap();
        let others: Vec<usize> = (0..2000).filter(|&c| fit_of[c] == u32::MAX).collect();
        let fitted = Fitted {
            cells: &fit,
            position: &fit_of,
            graph: &fg,
            layout: layout.view(),
        };
        let nb = search_fit(&p, &graph, &fitted, &others, 15);
        let exact = nearest_in(&fp, &p.subset(&others), 15).unwrap();
        let hits: usize = (0..others.len())
            .map(|q| nb.of(q).iter().filter(|j| exact.of(q).contains(j)).count())
            .sum();
        let recall = hits as f64 / (others.len() * 15) as f64;
        assert!(recall > 0.95, "recall {recall}");
        for q in 0..others.len() {
            let d = nb.distances_of(q);
            assert!(d.windows(2).all(|w| w[0] <= w[1]));
            assert!((d[0] - exact.distances_of(q)[0]).abs() < 1e-4);
        }
    }

    #[test]
    fn subsampled_layout_is_deterministic_and_places_cells_by_their_neighbours() {
        let n = 1200;
        let (p, ds) = clouds(n);
        let graph = exact_knn(&p, 20);
        let params = UmapParams {
            n_epochs: 200,
            ..Default::default()
        };
        let kp = KnnParams::default();
        let run = || umap_subsampled(&p, &graph, &ds, 2, 300, &kp, &params).unwrap();
        let a = on_threads(2, run);
        assert_eq!(a.fit_cells, Some(300));
        assert_eq!(a.seconds.len(), 4);
        assert!(a.layout.iter().all(|v| v.is_finite()));
        assert!(
            a.layout == on_threads(1, run).layout,
            "thread count changed the layout"
        );
        // Subsample points keep the layout fitted on them alone.
        let fit = stratified_sample(&ds, 2, 300, params.seed).unwrap();
        let fp = p.subset(&fit);
        let fitted = umap(&fp, &exact_knn(&fp, 15), &params).unwrap();
        for (f, &c) in fit.iter().enumerate() {
            assert_eq!(a.layout.row(c), fitted.row(f));
        }
        // Each placed point is closer to its own cloud's fitted centre than to any other.
        let mut centre = [[0f64; 2]; 4];
        for (f, &c) in fit.iter().enumerate() {
            for x in 0..2 {
                centre[c % 4][x] +=
                    fitted[[f, x]] as f64 / fit.iter().filter(|&&e| e % 4 == c % 4).count() as f64;
            }
        }
        for c in (0..n).filter(|c| fit.binary_search(c).is_err()) {
            let d = |g: usize| {
                (0..2)
                    .map(|x| (a.layout[[c, x]] as f64 - centre[g][x]).powi(2))
                    .sum::<f64>()
            };
            let own = d(c % 4);
            assert!(
                (0..4).all(|g| g == c % 4 || own < d(g)),
                "point {c} lies off its cloud"
            );
        }
        // At or below the cap: plain UMAP, same bits.
        let all = umap_subsampled(&p, &graph, &ds, 2, n, &kp, &params).unwrap();
        assert_eq!(all.fit_cells, None);
        assert!(all.layout == umap(&p, &graph, &params).unwrap());
        assert!(umap_subsampled(&p, &graph, &ds, 2, 10, &kp, &params).is_err());
    }
}
