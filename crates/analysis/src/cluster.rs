//! Joint clustering: Leiden on a shared-nearest-neighbour graph.
//!
//! Graph (Seurat's `ComputeSNN`, as rliger's `runCluster` uses): with
//! `N(i)` the `k` nearest neighbours of `i` (itself included), every pair
//! sharing `s ≥ 1` neighbours gets the Jaccard weight
//! `w_ij = |N(i) ∩ N(j)| / |N(i) ∪ N(j)| = s / (2k − s)`; pairs with
//! `w < prune` (default 1/15, i.e. `s < 3` at k = 20) are dropped; the
//! graph is undirected (`{i, j}` kept once).
//!
//! Partition: the Leiden algorithm (Traag, Waltman & van Eck, Sci. Rep.
//! 2019) maximizing modularity with resolution γ,
//! `Q = (1/2m) Σ_ij (A_ij − γ k_i k_j / 2m) δ(c_i, c_j)`, through the
//! `leiden-rs` crate, sequential and seeded (deterministic for a seed).
//! Clusters are numbered by decreasing size (ties: smallest first cell).
//!
//! Memory: the edge list (E unique edges, 16 bytes each here and 24 in the
//! crate's builder) and the crate's CSR graph (both directions, ≈ 16 bytes
//! per entry). E is ≈ 30 per cell at k = 20 on the demo atlas (899,371
//! edges for 30,000 cells): about 2 GB per million cells at the peak.

use leiden_rs::{GraphDataBuilder, Leiden, LeidenConfig};
use rayon::prelude::*;

use crate::error::{AnalysisError, Result};
use crate::knn::KnnGraph;

/// Parameters of [`cluster`].
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterParams {
    /// Modularity resolution γ (higher → more clusters). Default 1.0.
    pub resolution: f64,
    /// Jaccard weights below this are dropped. Default 1/15.
    pub prune: f64,
    /// Leiden iterations (local move → refine → aggregate). Default 10.
    pub max_iterations: usize,
    /// Seed of Leiden's random node order. Default 1.
    pub seed: u64,
}

impl Default for ClusterParams {
    fn default() -> Self {
        Self {
            resolution: 1.0,
            prune: 1.0 / 15.0,
            max_iterations: 10,
            seed: 1,
        }
    }
}

/// An undirected weighted graph as a list of unique edges `i < j`.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightedGraph {
    /// Number of nodes.
    pub n: usize,
    /// Edges `(i, j, w)` with `i < j`, sorted.
    pub edges: Vec<(u32, u32, f64)>,
}

/// The Jaccard-weighted shared-nearest-neighbour graph of `knn` (see the
/// module doc): every pair `i < j` sharing at least one neighbour gets
/// `w = s / (2k − s)`, kept when `w ≥ prune` (Seurat's `ComputeSNN`, used by
/// rliger). Computed as the sparse product `A·Aᵀ` of the kNN indicator
/// matrix through reverse neighbour lists, one row at a time.
pub fn snn_graph(knn: &KnnGraph, prune: f64) -> WeightedGraph {
    let n = knn.len();
    let k = knn.k();
    // Reverse lists: rev[m] = { i : m ∈ N(i) }.
    let mut rev_off = vec![0usize; n + 1];
    for i in 0..n {
        for &m in knn.neighbors(i) {
            rev_off[m as usize + 1] += 1;
        }
    }
    for m in 0..n {
        rev_off[m + 1] += rev_off[m];
    }
    let mut fill = rev_off.clone();
    let mut rev = vec![0u32; rev_off[n]];
    for i in 0..n {
        for &m in knn.neighbors(i) {
            rev[fill[m as usize]] = i as u32;
            fill[m as usize] += 1;
        }
    }
    drop(fill);
    let rows: Vec<Vec<(u32, u32, f64)>> = (0..n)
        .into_par_iter()
        .map_init(
            || (vec![0u16; n], Vec::new()),
            |(count, touched), i| {
                for &m in knn.neighbors(i) {
                    for &j in &rev[rev_off[m as usize]..rev_off[m as usize + 1]] {
                        if j as usize > i {
                            if count[j as usize] == 0 {
                                touched.push(j);
                            }
                            count[j as usize] += 1;
                        }
                    }
                }
                touched.sort_unstable();
                let mut out = Vec::new();
                for &j in touched.iter() {
                    let shared = count[j as usize] as usize;
                    count[j as usize] = 0;
                    let w = shared as f64 / (2 * k - shared) as f64;
                    if w >= prune {
                        out.push((i as u32, j, w));
                    }
                }
                touched.clear();
                out
            },
        )
        .collect();
    let edges = rows.into_iter().flatten().collect();
    WeightedGraph { n, edges }
}

/// Leiden clustering of `graph` (modularity with resolution); returns one
/// cluster id per node, numbered by decreasing cluster size.
pub fn leiden(graph: &WeightedGraph, params: &ClusterParams) -> Result<Vec<u32>> {
    if !(params.resolution.is_finite() && params.resolution > 0.0) {
        return Err(AnalysisError::InvalidParameter(format!(
            "resolution = {}; use a positive number (1 is the usual start)",
            params.resolution
        )));
    }
    if params.max_iterations == 0 {
        return Err(AnalysisError::InvalidParameter(
            "max_iterations = 0; use ≥ 1".into(),
        ));
    }
    let n = graph.n;
    if n == 0 {
        return Ok(Vec::new());
    }
    let err = |e: leiden_rs::LeidenError| AnalysisError::Clustering(e.to_string());
    let mut b = GraphDataBuilder::new(n);
    for &(i, j, w) in &graph.edges {
        b.add_edge(i as usize, j as usize, w).map_err(err)?;
    }
    let data = b.build().map_err(err)?;
    let config = LeidenConfig {
        resolution: params.resolution,
        seed: Some(params.seed),
        max_iterations: params.max_iterations,
        ..LeidenConfig::default()
    };
    let out = Leiden::new(config).run(&data).map_err(err)?;
    let raw: Vec<usize> = (0..n).map(|i| out.partition.community_of(i)).collect();
    Ok(renumber_by_size(&raw))
}

/// Renumbers cluster ids so that 0 is the largest cluster (ties: the one
/// whose first node comes first).
pub(crate) fn renumber_by_size(raw: &[usize]) -> Vec<u32> {
    let m = raw.iter().copied().max().map_or(0, |x| x + 1);
    let mut size = vec![0usize; m];
    let mut first = vec![usize::MAX; m];
    for (i, &c) in raw.iter().enumerate() {
        size[c] += 1;
        first[c] = first[c].min(i);
    }
    let mut order: Vec<usize> = (0..m).filter(|&c| size[c] > 0).collect();
    order.sort_by_key(|&c| (std::cmp::Reverse(size[c]), first[c]));
    let mut new = vec![0u32; m];
    for (r, &c) in order.iter().enumerate() {
        new[c] = r as u32;
    }
    raw.iter().map(|&c| new[c]).collect()
}

/// kNN graph → SNN graph → Leiden: the joint clusters.
pub fn cluster(knn: &KnnGraph, params: &ClusterParams) -> Result<Vec<u32>> {
    if !(0.0..1.0).contains(&params.prune) {
        return Err(AnalysisError::InvalidParameter(format!(
            "prune = {}; use a value in [0, 1)",
            params.prune
        )));
    }
    leiden(&snn_graph(knn, params.prune), params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knn::exact_knn;
    use crate::points::Points;
    use crate::rng::Fast;

    /// A ring of `c` cliques of size `s`, neighbouring cliques joined by one
    /// edge: the modularity optimum (for c ≤ ~√edges) is one clique per cluster.
    fn ring_of_cliques(c: usize, s: usize) -> WeightedGraph {
        let mut edges = Vec::new();
        for q in 0..c {
            let base = q * s;
            for a in 0..s {
                for b in a + 1..s {
                    edges.push(((base + a) as u32, (base + b) as u32, 1.0));
                }
            }
            let next = ((q + 1) % c) * s;
            let (a, b) = (base.min(next), base.max(next));
            edges.push((a as u32, b as u32 + 1, 1.0));
        }
        edges.sort_by_key(|e| (e.0, e.1));
        WeightedGraph { n: c * s, edges }
    }

    #[test]
    fn leiden_finds_the_cliques_of_a_ring() {
        let g = ring_of_cliques(10, 6);
        let labels = leiden(&g, &ClusterParams::default()).unwrap();
        for q in 0..10 {
            let l = labels[q * 6];
            assert!(labels[q * 6..(q + 1) * 6].iter().all(|&x| x == l), "{labels:?}");
        }
        let mut distinct = labels.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 10);
        assert_eq!(labels, leiden(&g, &ClusterParams::default()).unwrap());
    }

    #[test]
    fn two_triangles_joined_by_an_edge() {
        // Known optimum: {0,1,2} and {3,4,5}, modularity 5/14.
        let edges = vec![
            (0, 1, 1.0),
            (0, 2, 1.0),
            (1, 2, 1.0),
            (2, 3, 1.0),
            (3, 4, 1.0),
            (3, 5, 1.0),
            (4, 5, 1.0),
        ];
        let g = WeightedGraph { n: 6, edges };
        let l = leiden(&g, &ClusterParams::default()).unwrap();
        assert_eq!(l[0], l[1]);
        assert_eq!(l[1], l[2]);
        assert_eq!(l[3], l[4]);
        assert_eq!(l[4], l[5]);
        assert_ne!(l[0], l[3]);
        // A tiny resolution merges everything.
        let one = leiden(
            &g,
            &ClusterParams {
                resolution: 0.01,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(one.iter().all(|&x| x == 0));
        assert!(leiden(
            &g,
            &ClusterParams {
                resolution: 0.0,
                ..Default::default()
            }
        )
        .is_err());
    }

    #[test]
    fn clusters_of_point_clouds_from_knn() {
        let mut r = Fast::new(2, &[]);
        let mut data = Vec::new();
        for c in 0..4 {
            for _ in 0..150 {
                data.push(20.0 * c as f32 + r.unit() as f32);
                data.push(r.unit() as f32);
            }
        }
        let p = Points::from_vec(data, 600, 2).unwrap();
        let g = exact_knn(&p, 20);
        let snn = snn_graph(&g, 1.0 / 15.0);
        assert!(snn.edges.iter().all(|&(i, j, w)| i < j && w > 0.0 && w <= 1.0));
        let labels = cluster(&g, &ClusterParams::default()).unwrap();
        // No cluster spans two clouds (a cloud may split in several).
        for i in 0..600 {
            for j in 0..600 {
                if labels[i] == labels[j] {
                    assert_eq!(i / 150, j / 150);
                }
            }
        }
        assert_eq!(renumber_by_size(&[5, 5, 2, 9, 9, 9]), vec![1, 1, 2, 0, 0, 0]);
    }
}
