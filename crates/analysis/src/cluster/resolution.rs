//! Choosing the resolution γ: from the data (the default), or the γ that
//! gives a requested number of clusters.
//!
//! **The rule** ([`choose_resolution`]). Candidates are the resolutions
//! `γ_j = 2^(−j/4)`, `j = 0, 1, 2, …` — from 1 (standard modularity,
//! rliger's default) down in quarter octaves, until a candidate gives a
//! single cluster or γ falls below 2^−16. Each candidate's partition is
//! the best (highest modularity) of 10 seeded runs, and is scored by the
//! mean silhouette width (Rousseeuw 1987) of the cells it clusters, on a
//! seeded sample of at most 4,000 cells, Euclidean distances on normalized
//! H. Consecutive candidates with the same number of clusters form a
//! plateau; the plateau with the highest mean score wins (ties: the finer
//! one) and γ is its geometric centre `√(γ_first · γ_last)`, the point
//! farthest from the resolutions where the number of clusters changes.
//! [`cluster_from_data`] then finds the clusters at that γ from the
//! micro-clusters below (the aggregated graph partitioned at γ as the
//! candidates are, lifted to the cells, then one local-moving sweep of the
//! full graph that settles the cells at the clusters' borders).
//!
//! Why these constants: above γ = 1 the partition is finer than the
//! modularity optimum, which already splits data without any cluster
//! structure (the cells' normalized H with every factor shuffled
//! independently gives 10–15 clusters at γ = 1 on the 1,200–1,556-cell
//! real datasets, as many as the data themselves); quarter octaves are fine
//! enough that neighbouring candidates differ by about one cluster; 10
//! starts is rliger's `nRandomStarts`; 4,000 cells is the sample of the
//! silhouette metric (standard error ≈ 0.005).
//!
//! **Cost.** The candidates are not clustered on the full graph: the graph
//! is first cut into micro-clusters by Louvain levels at γ = 1, stopped at
//! the first level with at most 2,000 communities, and aggregated by them
//! ([`super::graph::aggregate`], which preserves the modularity of every
//! partition made of whole micro-clusters). Every candidate then clusters a
//! graph of ≤ 2,000 nodes; the scan costs about one local-moving pass over
//! the full graph plus the sample's distances, and [`cluster_from_data`]'s
//! clusters one sweep more.
//!
//! **A number of clusters** ([`resolution_for_clusters`]): the full graph is
//! clustered at γ = 1, then γ is doubled or halved until the count brackets
//! the target, then bisected on log γ until the count equals it (at most 30
//! clusterings). When no resolution gives exactly that count, the closest
//! count found is returned and marked inexact.

use super::graph::{aggregate, Adjacency};
use super::louvain::{levels, settle, Visit};
use super::{check_resolution, renumber_by_size, ClusterGraph, ClusterParams, Inner, Partition};
use rayon::prelude::*;

use crate::error::{AnalysisError, Result};
use crate::points::{sq_dist, Points};
use crate::silhouette::{sample_cells, width};

/// Parameters of [`choose_resolution`] (defaults in the module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct ScanParams {
    /// Largest candidate resolution. Default 1.
    pub max_resolution: f64,
    /// The scan stops below this resolution. Default 2^−16.
    pub min_resolution: f64,
    /// Candidates per halving of γ. Default 4.
    pub steps_per_octave: u32,
    /// Seeded runs per candidate, the best kept. Default 10.
    pub starts: usize,
    /// Micro-clusters: Louvain levels stop at this many communities.
    /// Default 2,000.
    pub micro_clusters: usize,
    /// Cells sampled for the silhouette. Default 4,000.
    pub silhouette_sample: usize,
    /// Graphs of up to this many cells get their clusters at the chosen γ
    /// from the whole graph, as `--resolution γ` would; larger ones from
    /// the micro-clusters ([`cluster_from_data`]). Default 200,000: up to
    /// there a clustering of the whole graph takes seconds, and the
    /// clusters stay those of `--resolution γ`; above, it becomes most of
    /// the clustering's time (two thirds at 10⁶ cells, docs/analysis.md).
    pub full_graph_cells: usize,
}

impl Default for ScanParams {
    fn default() -> Self {
        Self {
            max_resolution: 1.0,
            min_resolution: 1.0 / 65_536.0,
            steps_per_octave: 4,
            starts: 10,
            micro_clusters: 2_000,
            silhouette_sample: 4_000,
            full_graph_cells: 200_000,
        }
    }
}

/// One candidate resolution of the scan.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// γ.
    pub resolution: f64,
    /// Clusters of its partition.
    pub clusters: usize,
    /// Mean silhouette width of the partition on the sample (`None` with
    /// fewer than two clusters among the sampled cells).
    pub silhouette: Option<f64>,
}

/// What [`choose_resolution`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolutionChoice {
    /// Every candidate, by decreasing γ.
    pub candidates: Vec<Candidate>,
    /// The winning plateau: candidates `plateau.0 ..= plateau.1`.
    pub plateau: (usize, usize),
    /// Its score, the mean silhouette of its candidates (`None` when no
    /// candidate has two clusters).
    pub score: Option<f64>,
    /// The chosen γ, the plateau's geometric centre.
    pub resolution: f64,
    /// Micro-clusters the candidates were found on.
    pub micro_clusters: usize,
}

impl ResolutionChoice {
    /// Clusters of the winning plateau.
    pub fn clusters(&self) -> usize {
        self.candidates[self.plateau.0].clusters
    }

    /// One line saying what was chosen and why.
    pub fn explain(&self) -> String {
        let plateaus = plateaus(&self.candidates).len();
        let (first, last) = (&self.candidates[self.plateau.0], &self.candidates[self.plateau.1]);
        match self.score {
            Some(s) => format!(
                "resolution {:.4} chosen from the data: {} clusters over resolutions {:.4}–{:.4}, \
                 mean silhouette {s:.3}, the highest of {plateaus} cluster counts over resolutions {:.4}–1 \
                 (--resolution or --n-clusters override)",
                self.resolution,
                first.clusters,
                last.resolution,
                first.resolution,
                self.candidates.last().map_or(1.0, |c| c.resolution),
            ),
            None => format!(
                "resolution {:.4}: no candidate resolution gives two clusters",
                self.resolution
            ),
        }
    }
}

/// Runs of consecutive candidates with the same number of clusters:
/// `(first, last)` indices.
fn plateaus(candidates: &[Candidate]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        match out.last_mut() {
            Some(p) if candidates[p.0].clusters == c.clusters => p.1 = i,
            _ => out.push((i, i)),
        }
    }
    out
}

/// The winning plateau among `candidates` (module doc): the highest mean
/// silhouette, ties to the finer (earlier) plateau; `None` when no plateau
/// has a score.
fn best_plateau(candidates: &[Candidate]) -> Option<((usize, usize), f64)> {
    let mut best: Option<((usize, usize), f64)> = None;
    for p in plateaus(candidates) {
        let scores: Vec<f64> = candidates[p.0..=p.1]
            .iter()
            .filter_map(|c| c.silhouette)
            .collect();
        if candidates[p.0].clusters < 2 || scores.is_empty() {
            continue;
        }
        let mean = scores.iter().sum::<f64>() / scores.len() as f64;
        if best.is_none_or(|b| mean > b.1) {
            best = Some((p, mean));
        }
    }
    best
}

fn check_scan(params: &ScanParams) -> Result<()> {
    check_resolution(params.max_resolution)?;
    check_resolution(params.min_resolution)?;
    if params.steps_per_octave == 0
        || params.starts == 0
        || params.micro_clusters == 0
        || params.silhouette_sample < 2
    {
        return Err(AnalysisError::InvalidParameter(
            "resolution scan: steps per octave, starts and micro-clusters must be ≥ 1, the silhouette sample ≥ 2".into(),
        ));
    }
    Ok(())
}

/// Chooses γ from the data (module doc): `graph` is the SNN graph of
/// `points` (normalized H); `cluster` gives the algorithm, the seed (also
/// of the silhouette sample, the one [`crate::silhouette()`] draws) and the
/// iterations (its resolution is not read).
pub fn choose_resolution(
    graph: &ClusterGraph,
    points: &Points,
    cluster: &ClusterParams,
    params: &ScanParams,
) -> Result<ResolutionChoice> {
    Ok(scan(graph, points, cluster, params)?.0)
}

/// [`choose_resolution`], then the clusters at the chosen γ. On a graph of
/// at most `params.full_graph_cells` cells they are those of
/// [`ClusterGraph::partition`] at γ (`cluster`'s starts and iterations).
/// On a larger one they are found from the scan's micro-clusters rather
/// than from single cells: the aggregated
/// graph is partitioned at γ (the best of `params.starts` seeded runs, as
/// every candidate), each cell takes its micro-cluster's cluster, and one
/// queue-driven local-moving sweep of the full graph from that partition
/// (seeded order; a cell moves to the neighbouring cluster of largest
/// modularity gain, never to a new cluster) settles the cells at the
/// clusters' borders. Clusters are numbered by decreasing size and the
/// modularity is that of the cells' partition at γ. Cost: one sweep of
/// the full graph instead of a whole clustering of it.
pub fn cluster_from_data(
    graph: &ClusterGraph,
    points: &Points,
    cluster: &ClusterParams,
    params: &ScanParams,
) -> Result<(ResolutionChoice, Partition)> {
    let (choice, micro, small) = scan(graph, points, cluster, params)?;
    if graph.node_count() <= params.full_graph_cells {
        let p = graph.partition(&ClusterParams {
            resolution: choice.resolution,
            ..cluster.clone()
        })?;
        return Ok((choice, p));
    }
    let coarse = small.partition(&ClusterParams {
        resolution: choice.resolution,
        starts: params.starts,
        ..cluster.clone()
    })?;
    let lifted: Vec<u32> = micro.iter().map(|&u| coarse.membership[u as usize]).collect();
    let (settled, count) = match &graph.inner {
        Inner::Leiden(g) => settle_and_score(g, choice.resolution, cluster.seed, lifted),
        Inner::Louvain(g) => settle_and_score(g, choice.resolution, cluster.seed, lifted),
    };
    let membership = renumber_by_size(&settled.0);
    Ok((
        choice,
        Partition {
            membership,
            count,
            modularity: settled.1,
        },
    ))
}

/// [`settle`] on `g`, with the modularity of the result at `resolution`
/// (that of its aggregated graph, which aggregation preserves).
fn settle_and_score<G: Adjacency>(
    g: &G,
    resolution: f64,
    seed: u64,
    membership: Vec<u32>,
) -> ((Vec<u32>, f64), usize) {
    let (m, count) = settle(g, resolution, seed, membership);
    let agg = aggregate(g, &m, count);
    let identity: Vec<u32> = (0..count as u32).collect();
    let q = agg.modularity(&identity, resolution);
    ((m, q), count)
}

/// The scan of [`choose_resolution`], with the micro-cluster of each cell
/// and the aggregated graph the candidates were clustered on.
fn scan(
    graph: &ClusterGraph,
    points: &Points,
    cluster: &ClusterParams,
    params: &ScanParams,
) -> Result<(ResolutionChoice, Vec<u32>, ClusterGraph)> {
    check_scan(params)?;
    let n = graph.node_count();
    if points.len() != n {
        return Err(AnalysisError::InvalidData(format!(
            "{} points for a graph of {n} cells",
            points.len()
        )));
    }
    let (micro, count) = match &graph.inner {
        Inner::Leiden(g) => micro_partition(g, params, cluster.seed),
        Inner::Louvain(g) => micro_partition(g, params, cluster.seed),
    };
    let small = ClusterGraph::from_graph(
        match &graph.inner {
            Inner::Leiden(g) => aggregate(g, &micro, count),
            Inner::Louvain(g) => aggregate(g, &micro, count),
        },
        graph.algorithm(),
    )?;
    let sample = MicroSums::new(
        points,
        &sample_cells(&vec![true; n], params.silhouette_sample, cluster.seed),
        &micro,
        count,
    );
    let mut candidates = Vec::new();
    for j in 0u32.. {
        let resolution = params.max_resolution * (-(j as f64) / params.steps_per_octave as f64).exp2();
        if resolution < params.min_resolution {
            break;
        }
        let p = small.partition(&ClusterParams {
            resolution,
            starts: params.starts,
            ..cluster.clone()
        })?;
        let silhouette = if p.count >= 2 {
            sample.score(&p.membership, p.count)
        } else {
            None
        };
        candidates.push(Candidate {
            resolution,
            clusters: p.count,
            silhouette,
        });
        if p.count <= 1 {
            break;
        }
    }
    let (plateau, score, resolution) = match best_plateau(&candidates) {
        Some((p, s)) => {
            let g = (candidates[p.0].resolution * candidates[p.1].resolution).sqrt();
            (p, Some(s), g)
        }
        None => ((0, 0), None, params.max_resolution),
    };
    Ok((
        ResolutionChoice {
            candidates,
            plateau,
            score,
            resolution,
            micro_clusters: count,
        },
        micro,
        small,
    ))
}

/// Louvain levels at the largest candidate resolution, stopped at the first
/// level with at most `params.micro_clusters` communities.
fn micro_partition<G: Adjacency>(g: &G, params: &ScanParams, seed: u64) -> (Vec<u32>, usize) {
    levels(
        g,
        params.max_resolution,
        seed,
        params.micro_clusters,
        Visit::Queue,
    )
}

/// Sums of distances from each sampled cell to the sampled cells of each
/// micro-cluster: the silhouette of any partition made of whole
/// micro-clusters in `O(sample × micro-clusters)` instead of
/// `O(sample² × K)`. Memory: one `f32` per sampled cell and micro-cluster
/// (≤ 32 MB at 4,000 cells and 2,000 micro-clusters).
struct MicroSums {
    /// Micro-cluster of each sampled cell.
    micro: Vec<u32>,
    /// Sampled cells per micro-cluster.
    sizes: Vec<u32>,
    /// `sums[i · m + μ]`: Σ distances from sampled cell `i` to the sampled
    /// cells of micro-cluster `μ` (itself included, at distance 0).
    sums: Vec<f32>,
    m: usize,
}

impl MicroSums {
    fn new(points: &Points, cells: &[usize], micro_of_cell: &[u32], m: usize) -> Self {
        let micro: Vec<u32> = cells.iter().map(|&c| micro_of_cell[c]).collect();
        let mut sizes = vec![0u32; m];
        for &u in &micro {
            sizes[u as usize] += 1;
        }
        let rows: Vec<Vec<f32>> = cells
            .par_iter()
            .map(|&c| {
                let mut row = vec![0f64; m];
                for (&d, &u) in cells.iter().zip(&micro) {
                    row[u as usize] += f64::from(sq_dist(points.row(c), points.row(d)).sqrt());
                }
                row.into_iter().map(|x| x as f32).collect()
            })
            .collect();
        Self {
            micro,
            sizes,
            sums: rows.concat(),
            m,
        }
    }

    /// Mean silhouette width of the partition giving micro-cluster `μ` the
    /// cluster `coarse[μ]` (of `clusters`); `None` with fewer than two
    /// clusters among the sampled cells.
    fn score(&self, coarse: &[u32], clusters: usize) -> Option<f64> {
        let mut n_c = vec![0usize; clusters];
        for (u, &s) in self.sizes.iter().enumerate() {
            n_c[coarse[u] as usize] += s as usize;
        }
        if n_c.iter().filter(|&&x| x > 0).count() < 2 {
            return None;
        }
        // Collected, then summed in order: the same result whatever the thread count.
        let per_cell: Vec<f64> = (0..self.micro.len())
            .into_par_iter()
            .map(|i| {
                let mut s_c = vec![0f64; clusters];
                for (u, &x) in self.sums[i * self.m..(i + 1) * self.m].iter().enumerate() {
                    s_c[coarse[u] as usize] += f64::from(x);
                }
                let own = coarse[self.micro[i] as usize] as usize;
                // The other cells of each cluster: itself not counted.
                let mut others = n_c.clone();
                others[own] -= 1;
                width(&s_c, &others, own)
            })
            .collect();
        Some(per_cell.iter().sum::<f64>() / per_cell.len() as f64)
    }
}

/// What [`resolution_for_clusters`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterCountSearch {
    /// The requested number of clusters.
    pub target: usize,
    /// The resolution returned.
    pub resolution: f64,
    /// Clusters at that resolution.
    pub clusters: usize,
    /// True when `clusters == target`.
    pub exact: bool,
    /// Every resolution tried, with its number of clusters, in order.
    pub tried: Vec<(f64, usize)>,
}

impl ClusterCountSearch {
    /// One line saying what was found.
    pub fn explain(&self) -> String {
        if self.exact {
            format!(
                "resolution {:.4} gives the requested {} clusters (found in {} clusterings)",
                self.resolution,
                self.target,
                self.tried.len()
            )
        } else {
            format!(
                "{} clusters cannot be reached exactly: resolution {:.4} gives {}, the closest of {} resolutions tried",
                self.target,
                self.resolution,
                self.clusters,
                self.tried.len()
            )
        }
    }
}

/// Bisection bounds and budget of [`resolution_for_clusters`].
const MAX_EVALS: usize = 30;
const HIGHEST: f64 = 1024.0;
const LOWEST: f64 = 1.0 / 65_536.0;

/// The resolution whose partition has `target` clusters (module doc) and
/// that partition; `cluster` gives the algorithm, seed, starts and
/// iterations.
pub fn resolution_for_clusters(
    graph: &ClusterGraph,
    target: usize,
    cluster: &ClusterParams,
) -> Result<(ClusterCountSearch, Partition)> {
    if target == 0 || target > graph.node_count() {
        return Err(AnalysisError::InvalidParameter(format!(
            "{target} clusters requested for {} cells; ask for between 1 and the number of cells",
            graph.node_count()
        )));
    }
    let mut tried: Vec<(f64, usize)> = Vec::new();
    let mut best: Option<(f64, Partition)> = None;
    let mut eval = |gamma: f64, tried: &mut Vec<(f64, usize)>| -> Result<usize> {
        let p = graph.partition(&ClusterParams {
            resolution: gamma,
            ..cluster.clone()
        })?;
        let c = p.count;
        tried.push((gamma, c));
        let closer = best
            .as_ref()
            .is_none_or(|(_, b)| c.abs_diff(target) < b.count.abs_diff(target));
        if closer {
            best = Some((gamma, p));
        }
        Ok(c)
    };
    let mut gamma = 1.0;
    let mut count = eval(gamma, &mut tried)?;
    // Bracket: count(lo) < target < count(hi).
    let (mut lo, mut hi) = (gamma, gamma);
    if count < target {
        while count < target && gamma < HIGHEST && tried.len() < MAX_EVALS {
            lo = gamma;
            gamma *= 2.0;
            count = eval(gamma, &mut tried)?;
        }
        hi = gamma;
    } else if count > target {
        while count > target && gamma > LOWEST && tried.len() < MAX_EVALS {
            hi = gamma;
            gamma /= 2.0;
            count = eval(gamma, &mut tried)?;
        }
        lo = gamma;
    }
    while count != target && tried.len() < MAX_EVALS && hi / lo > 1.0 + 1e-6 {
        gamma = (lo * hi).sqrt();
        count = eval(gamma, &mut tried)?;
        if count < target {
            lo = gamma;
        } else if count > target {
            hi = gamma;
        }
    }
    let (resolution, partition) = best.expect("at least one clustering");
    Ok((
        ClusterCountSearch {
            target,
            resolution,
            clusters: partition.count,
            exact: partition.count == target,
            tried,
        },
        partition,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testing::ring_of_cliques;
    use crate::cluster::{Algorithm, Graph};
    use crate::knn::exact_knn;
    use crate::rng::Fast;
    use crate::silhouette::silhouette;

    /// `groups` Gaussian-like blobs of `per` points in 4-D, centres 6 apart
    /// on the axes (and their negatives).
    fn blobs(groups: usize, per: usize, seed: u64) -> (Points, Vec<u32>) {
        blobs_at(groups, per, seed, 6.0)
    }

    /// [`blobs`] with centres `at` from the origin.
    fn blobs_at(groups: usize, per: usize, seed: u64, at: f32) -> (Points, Vec<u32>) {
        let mut r = Fast::new(seed, &[]);
        let (mut data, mut truth) = (Vec::new(), Vec::new());
        for g in 0..groups {
            for _ in 0..per {
                for d in 0..4 {
                    let centre = if d == g % 4 {
                        if g < 4 {
                            at
                        } else {
                            -at
                        }
                    } else {
                        0.0
                    };
                    data.push(centre + (r.unit() + r.unit() + r.unit() - 1.5) as f32);
                }
                truth.push(g as u32);
            }
        }
        (Points::from_vec(data, groups * per, 4).unwrap(), truth)
    }

    /// The SNN graph of `g` (k = 20, pruned at 1/15) for each algorithm,
    /// with that algorithm's default parameters.
    fn both_algorithms(g: &crate::knn::KnnGraph) -> Vec<(Algorithm, ClusterGraph, ClusterParams)> {
        [Algorithm::Leiden, Algorithm::Louvain]
            .into_iter()
            .map(|algorithm| {
                let cg = ClusterGraph::from_knn(g, 20, 1.0 / 15.0, algorithm).unwrap();
                let cluster = ClusterParams {
                    algorithm,
                    ..Default::default()
                };
                (algorithm, cg, cluster)
            })
            .collect()
    }

    fn candidate(resolution: f64, clusters: usize, silhouette: Option<f64>) -> Candidate {
        Candidate {
            resolution,
            clusters,
            silhouette,
        }
    }

    #[test]
    fn the_plateau_of_highest_mean_silhouette_wins_at_its_centre() {
        let c = vec![
            candidate(1.0, 9, Some(0.30)),
            candidate(0.84, 6, Some(0.50)),
            candidate(0.71, 6, Some(0.40)),
            candidate(0.59, 4, Some(0.46)),
            candidate(0.5, 4, Some(0.46)),
            candidate(0.42, 2, Some(0.60)),
            candidate(0.35, 1, None),
        ];
        assert_eq!(plateaus(&c), vec![(0, 0), (1, 2), (3, 4), (5, 5), (6, 6)]);
        // Means: 0.30, 0.45, 0.46, 0.60: two clusters win.
        assert_eq!(best_plateau(&c).map(|b| b.0), Some((5, 5)));
        // Ties go to the finer plateau.
        let mut t = c.clone();
        t[5].silhouette = Some(0.46);
        assert_eq!(best_plateau(&t).map(|b| b.0), Some((3, 4)));
        // No candidate with two clusters: nothing to choose.
        assert_eq!(best_plateau(&c[6..]), None);
    }

    #[test]
    fn micro_cluster_sums_give_the_silhouette_of_whole_micro_clusters() {
        // Against the direct (slow, obvious) silhouette on the same sample.
        let (p, truth) = blobs(6, 120, 4);
        let n = p.len();
        // Micro-clusters: each blob cut in three by point index.
        let micro: Vec<u32> = (0..n).map(|i| (i / 40) as u32).collect();
        let cells = sample_cells(&vec![true; n], 500, 9);
        let sums = MicroSums::new(&p, &cells, &micro, 18);
        for coarse in [
            (0..18).map(|u| u / 3).collect::<Vec<u32>>(),
            (0..18).map(|u| u / 6).collect(),
            (0..18).map(|u| u % 2).collect(),
            (0..18).collect(),
        ] {
            let clusters = *coarse.iter().max().unwrap() as usize + 1;
            let labels: Vec<u32> = (0..n).map(|i| coarse[micro[i] as usize]).collect();
            let direct = silhouette(&p, &labels, 500, 9).unwrap();
            let fast = sums.score(&coarse, clusters).unwrap();
            assert!((direct - fast).abs() < 1e-5, "{direct} vs {fast}");
        }
        assert_eq!(truth.len(), n);
        assert_eq!(sums.score(&[0; 18], 1), None);
    }

    #[test]
    fn chooses_the_planted_clusters_deterministically() {
        let (p, truth) = blobs(6, 150, 2);
        let g = exact_knn(&p, 20);
        for (algorithm, cg, cluster) in both_algorithms(&g) {
            let run = |threads: usize| {
                crate::test_util::on_threads(threads, || {
                    choose_resolution(&cg, &p, &cluster, &ScanParams::default()).unwrap()
                })
            };
            let choice = run(2);
            assert_eq!(choice, run(1), "{algorithm}: thread count changed the choice");
            assert_eq!(choice.clusters(), 6, "{algorithm}: {choice:?}");
            let (a, b) = choice.plateau;
            let (hi, lo) = (choice.candidates[a].resolution, choice.candidates[b].resolution);
            assert!((choice.resolution - (hi * lo).sqrt()).abs() < 1e-12 && lo <= hi);
            // Candidates go down from 1 in quarter octaves to one cluster.
            assert_eq!(choice.candidates[0].resolution, 1.0);
            let ratio = choice.candidates[0].resolution / choice.candidates[1].resolution;
            assert!((ratio - 2f64.powf(0.25)).abs() < 1e-12);
            // The blobs are disconnected in the SNN graph: the scan goes down
            // to its floor without reaching one cluster.
            let last = choice.candidates.last().unwrap();
            assert!(
                last.clusters == 6
                    && last.resolution / ScanParams::default().min_resolution < 2f64.powf(0.25)
            );
            // The clusters at the chosen resolution are the planted ones.
            let part = cg
                .partition(&ClusterParams {
                    resolution: choice.resolution,
                    ..cluster.clone()
                })
                .unwrap();
            let ari = crate::partition::adjusted_rand_index(&part.membership, &truth).unwrap();
            assert!(ari > 0.95, "{algorithm}: ARI {ari}");
            assert!(choice.explain().contains("6 clusters"), "{}", choice.explain());
        }
        let cg = ClusterGraph::from_knn(&g, 20, 1.0 / 15.0, Algorithm::Leiden).unwrap();
        let bad = ScanParams {
            starts: 0,
            ..Default::default()
        };
        assert!(choose_resolution(&cg, &p, &ClusterParams::default(), &bad).is_err());
        let (q, _) = blobs(2, 10, 1);
        assert!(choose_resolution(&cg, &q, &ClusterParams::default(), &ScanParams::default()).is_err());
    }

    #[test]
    fn clusters_from_the_scan_match_a_full_clustering() {
        // Touching blobs: the SNN graph links them, so the borders matter.
        let (p, truth) = blobs_at(6, 200, 3, 2.0);
        let g = exact_knn(&p, 20);
        for (algorithm, cg, cluster) in both_algorithms(&g) {
            let scan = ScanParams {
                full_graph_cells: 0,
                ..Default::default()
            };
            let run = |threads: usize| {
                crate::test_util::on_threads(threads, || cluster_from_data(&cg, &p, &cluster, &scan).unwrap())
            };
            let (choice, part) = run(2);
            assert_eq!(
                (choice.clone(), part.clone()),
                run(1),
                "{algorithm}: thread count changed it"
            );
            assert_eq!(choice, choose_resolution(&cg, &p, &cluster, &scan).unwrap());
            let full = cg
                .partition(&ClusterParams {
                    resolution: choice.resolution,
                    ..cluster.clone()
                })
                .unwrap();
            let ari = |m: &[u32]| crate::partition::adjusted_rand_index(m, &truth).unwrap();
            let (a, b) = (ari(&part.membership), ari(&full.membership));
            assert!(
                a > 0.9 && a > b - 0.02,
                "{algorithm}: ARI {a} against {b} on the full graph"
            );
            assert_eq!(part.count, choice.clusters(), "{algorithm}");
            assert!(
                part.modularity > full.modularity - 0.01,
                "{part:?} {}",
                full.modularity
            );
            // Clusters numbered by size, the modularity that of the cells' partition.
            let size = |c: u32| part.membership.iter().filter(|&&x| x == c).count();
            assert!((1..part.count as u32).all(|c| size(c - 1) >= size(c)));
            let direct = Graph::from_edges(
                p.len(),
                &crate::cluster::snn_graph(&g, 1.0 / 15.0).edges,
                Vec::new(),
            )
            .modularity(&part.membership, choice.resolution);
            assert!(
                (direct - part.modularity).abs() < 1e-9,
                "{direct} vs {}",
                part.modularity
            );
            // Up to `full_graph_cells`, the clusters of the whole graph at γ.
            let small = cluster_from_data(&cg, &p, &cluster, &ScanParams::default()).unwrap();
            assert_eq!(small, (choice, full));
        }
    }

    #[test]
    fn finds_a_resolution_for_a_number_of_clusters_or_says_it_cannot() {
        let g = ClusterGraph::from_weighted(&ring_of_cliques(16, 5), Algorithm::Leiden).unwrap();
        let params = ClusterParams::default();
        for target in [16, 2, 1] {
            let (s, p) = resolution_for_clusters(&g, target, &params).unwrap();
            assert!(s.exact && p.count == target && s.clusters == target, "{s:?}");
            assert_eq!(s.tried.last().map(|t| t.1), Some(target));
            assert!(s.explain().contains("gives the requested"));
            // The same resolution gives the same partition.
            let again = g
                .partition(&ClusterParams {
                    resolution: s.resolution,
                    ..params.clone()
                })
                .unwrap();
            assert_eq!(again.membership, p.membership);
        }
        // Merging neighbouring cliques of the ring goes from 9 clusters
        // straight to 7: 8 cannot be reached, and the closest is returned.
        let (s, p) = resolution_for_clusters(&g, 8, &params).unwrap();
        assert!(!s.exact && p.count.abs_diff(8) == 1, "{s:?}");
        assert!(s.explain().contains("cannot be reached") && s.tried.len() <= MAX_EVALS);
        assert!(s.tried.iter().all(|t| t.1 != 8));
        let g2 = g;
        assert!(resolution_for_clusters(&g2, 0, &params).is_err());
        assert!(resolution_for_clusters(&g2, 81, &params).is_err());
    }
}
