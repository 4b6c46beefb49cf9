//! Joint clustering: Leiden or Louvain on a shared-nearest-neighbour graph.
//!
//! Graph ([`snn`]): the Jaccard SNN graph of the kNN graph (Seurat's
//! `ComputeSNN`, as rliger's `runCluster`), `w = s / (2k − s)` for `s`
//! shared neighbours, pruned below 1/15, no self-loops.
//!
//! Partition: modularity with resolution γ,
//! `Q = Σ_c [e_c/m − γ (K_c/2m)²]` ([`graph`]), maximized by the Leiden
//! algorithm ([`leiden`], the `leiden-rs` crate; rliger's default) or the
//! Louvain method ([`louvain`], our own; rliger's `method = "louvain"`),
//! both sequential and seeded. With several starts the partition of highest
//! modularity is kept (rliger's `nRandomStarts`). Clusters are numbered by
//! decreasing size (ties: smallest first cell). [`resolution`] chooses γ
//! when none is given, or finds the γ that gives a number of clusters.
//!
//! Memory: the SNN rows are computed in blocks of 32,768 cells and handed
//! straight to the graph builder, so no edge list of its own is kept:
//! the reverse neighbour lists (`k` × 4 bytes per cell), then for Leiden
//! `leiden-rs`'s builder (24 bytes per edge), its sorted, de-duplicated
//! copy (24) and its CSR graph (both directions, 32 bytes per edge),
//! ≈ 56 bytes per edge at the peak; for Louvain an edge list (16 bytes per
//! edge) and our CSR (both directions, 24 bytes per edge). E is ≈ 20–35
//! edges per cell at k = 20 (1,031,099 for the 30,000 cells of the demo,
//! 3.9 million for 200,000 cells): 0.8–1.7 GB per million cells.

mod graph;
mod leiden;
mod louvain;
mod resolution;
mod snn;

use std::fmt;
use std::str::FromStr;

use leiden_rs::{GraphData, GraphDataBuilder};

pub use graph::Graph;
pub use louvain::louvain;
pub use resolution::{
    choose_resolution, cluster_from_data, resolution_for_clusters, Candidate, ClusterCountSearch,
    ResolutionChoice, ScanParams,
};
pub use snn::{snn_graph, WeightedGraph};

use crate::error::{AnalysisError, Result};
use crate::knn::KnnGraph;
use crate::rng::hash;
use leiden::{clustering_err, graph_data, leiden_run};
use snn::SnnRows;

/// The community-detection algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Algorithm {
    /// Leiden (Traag et al. 2019), rliger's default.
    #[default]
    Leiden,
    /// Louvain (Blondel et al. 2008): local moving and aggregation.
    Louvain,
}

impl Algorithm {
    /// The name used on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Leiden => "leiden",
            Algorithm::Louvain => "louvain",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = AnalysisError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "leiden" => Ok(Algorithm::Leiden),
            "louvain" => Ok(Algorithm::Louvain),
            _ => Err(AnalysisError::InvalidParameter(format!(
                "clustering algorithm {s:?}; use leiden or louvain"
            ))),
        }
    }
}

/// Parameters of a clustering at one resolution.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterParams {
    /// Modularity resolution γ (higher → more clusters). Default 1.0.
    pub resolution: f64,
    /// Jaccard weights below this are dropped. Default 1/15.
    pub prune: f64,
    /// Leiden iterations (local move → refine → aggregate). Default 10.
    pub max_iterations: usize,
    /// Seed of the random node orders. Default 1.
    pub seed: u64,
    /// Leiden or Louvain. Default Leiden.
    pub algorithm: Algorithm,
    /// Random starts; the partition of highest modularity is kept (the
    /// first start uses `seed` itself). Default 1.
    pub starts: usize,
}

impl Default for ClusterParams {
    fn default() -> Self {
        Self {
            resolution: 1.0,
            prune: 1.0 / 15.0,
            max_iterations: 10,
            seed: 1,
            algorithm: Algorithm::Leiden,
            starts: 1,
        }
    }
}

fn check_params(params: &ClusterParams) -> Result<()> {
    check_resolution(params.resolution)?;
    if params.max_iterations == 0 || params.starts == 0 {
        return Err(AnalysisError::InvalidParameter(format!(
            "max_iterations = {}, starts = {}; use ≥ 1",
            params.max_iterations, params.starts
        )));
    }
    if !(0.0..1.0).contains(&params.prune) {
        return Err(AnalysisError::InvalidParameter(format!(
            "prune = {}; use a value in [0, 1)",
            params.prune
        )));
    }
    Ok(())
}

pub(crate) fn check_resolution(resolution: f64) -> Result<()> {
    if resolution.is_finite() && resolution > 0.0 {
        Ok(())
    } else {
        Err(AnalysisError::InvalidParameter(format!(
            "resolution = {resolution}; use a positive number (1 is the usual start)"
        )))
    }
}

/// A partition of the nodes of a graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Partition {
    /// Cluster of each node, `0..count`, 0 = largest.
    pub membership: Vec<u32>,
    /// Number of clusters.
    pub count: usize,
    /// Modularity at the resolution it was found at.
    pub modularity: f64,
}

/// A graph to cluster, held in the form its algorithm reads.
pub struct ClusterGraph {
    inner: Inner,
    edges: usize,
}

enum Inner {
    Leiden(GraphData),
    Louvain(Graph),
}

impl ClusterGraph {
    /// The SNN graph of the first `k` columns of `knn` ([`snn_graph`]), pruned at
    /// `prune`, built straight from row blocks (no separate edge list for
    /// Leiden; see the module doc for the memory).
    pub fn from_knn(knn: &KnnGraph, k: usize, prune: f64, algorithm: Algorithm) -> Result<Self> {
        let n = knn.len();
        let rows = SnnRows::new(knn, k, prune);
        let mut edges = 0usize;
        let inner = match algorithm {
            Algorithm::Leiden => {
                let mut b = GraphDataBuilder::new(n);
                rows.for_each_block(|r| {
                    edges += r.len();
                    for &(i, j, w) in r {
                        b.add_edge(i as usize, j as usize, w).map_err(clustering_err)?;
                    }
                    Ok::<(), AnalysisError>(())
                })?;
                drop(rows);
                Inner::Leiden(b.build().map_err(clustering_err)?)
            }
            Algorithm::Louvain => {
                let mut list = Vec::new();
                let done: std::result::Result<(), std::convert::Infallible> = rows.for_each_block(|r| {
                    list.extend_from_slice(r);
                    Ok(())
                });
                let Ok(()) = done;
                drop(rows);
                edges = list.len();
                Inner::Louvain(Graph::from_edges(n, &list, Vec::new()))
            }
        };
        Ok(Self { inner, edges })
    }

    /// `graph` held for `algorithm`.
    pub fn from_graph(graph: Graph, algorithm: Algorithm) -> Result<Self> {
        let edges = graph.edge_count();
        let inner = match algorithm {
            Algorithm::Leiden => Inner::Leiden(graph_data(&graph)?),
            Algorithm::Louvain => Inner::Louvain(graph),
        };
        Ok(Self { inner, edges })
    }

    /// `graph` (an edge list) held for `algorithm`.
    pub fn from_weighted(graph: &WeightedGraph, algorithm: Algorithm) -> Result<Self> {
        Self::from_graph(Graph::from_edges(graph.n, &graph.edges, Vec::new()), algorithm)
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        match &self.inner {
            Inner::Leiden(g) => g.node_count(),
            Inner::Louvain(g) => g.node_count(),
        }
    }

    /// Number of undirected edges between distinct nodes.
    pub fn edge_count(&self) -> usize {
        self.edges
    }

    /// The algorithm this graph is held for.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            Inner::Leiden(_) => Algorithm::Leiden,
            Inner::Louvain(_) => Algorithm::Louvain,
        }
    }

    /// One run of the algorithm: membership (ids `0..count`) and modularity.
    fn run_once(&self, resolution: f64, seed: u64, max_iterations: usize) -> Result<(Vec<u32>, f64)> {
        match &self.inner {
            Inner::Leiden(g) => leiden_run(g, resolution, seed, max_iterations),
            Inner::Louvain(g) => {
                let m = louvain(g, resolution, seed);
                let q = g.modularity(&m, resolution);
                Ok((m, q))
            }
        }
    }

    /// The partition at `params.resolution`: the best of `params.starts`
    /// seeded runs (highest modularity; ties: the earliest start).
    pub fn partition(&self, params: &ClusterParams) -> Result<Partition> {
        check_params(params)?;
        if self.node_count() == 0 {
            return Ok(Partition {
                membership: Vec::new(),
                count: 0,
                modularity: 0.0,
            });
        }
        let mut best: Option<(Vec<u32>, f64)> = None;
        for s in 0..params.starts {
            let (m, q) = self.run_once(
                params.resolution,
                start_seed(params.seed, s),
                params.max_iterations,
            )?;
            if best.as_ref().is_none_or(|b| q > b.1) {
                best = Some((m, q));
            }
        }
        let (m, q) = best.expect("starts ≥ 1");
        let membership = renumber_by_size(&m);
        let count = membership.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
        Ok(Partition {
            membership,
            count,
            modularity: q,
        })
    }
}

/// The seed of start `s` of a multi-start clustering: `seed` itself for the
/// first, a hash of it for the others.
pub(crate) fn start_seed(seed: u64, s: usize) -> u64 {
    if s == 0 {
        seed
    } else {
        hash(seed, &[0x57A7, s as u64])
    }
}

/// Clusters of an SNN edge list (see [`ClusterGraph::partition`]); one
/// cluster id per node, numbered by decreasing cluster size.
pub fn cluster_graph(graph: &WeightedGraph, params: &ClusterParams) -> Result<Vec<u32>> {
    check_params(params)?;
    Ok(ClusterGraph::from_weighted(graph, params.algorithm)?
        .partition(params)?
        .membership)
}

/// The joint clusters of a kNN graph: the SNN graph of its first `k`
/// columns ([`snn_graph`], pruned at `params.prune`) clustered at
/// `params.resolution`. Returns the clusters and the number of SNN edges.
pub fn cluster_knn(knn: &KnnGraph, k: usize, params: &ClusterParams) -> Result<(Vec<u32>, usize)> {
    check_params(params)?;
    let g = ClusterGraph::from_knn(knn, k, params.prune, params.algorithm)?;
    let p = g.partition(params)?;
    Ok((p.membership, g.edge_count()))
}

/// kNN graph → SNN graph → clusters (all columns of `knn`; [`cluster_knn`]
/// with `k = knn.k()`).
pub fn cluster(knn: &KnnGraph, params: &ClusterParams) -> Result<Vec<u32>> {
    cluster_knn(knn, knn.k(), params).map(|(c, _)| c)
}

/// Renumbers cluster ids so that 0 is the largest cluster (ties: the one
/// whose first node comes first).
pub(crate) fn renumber_by_size<T: Copy + Into<u64>>(raw: &[T]) -> Vec<u32> {
    let m = raw.iter().map(|&c| c.into() as usize + 1).max().unwrap_or(0);
    let mut size = vec![0usize; m];
    let mut first = vec![usize::MAX; m];
    for (i, &c) in raw.iter().enumerate() {
        let c = c.into() as usize;
        size[c] += 1;
        first[c] = first[c].min(i);
    }
    let mut order: Vec<usize> = (0..m).filter(|&c| size[c] > 0).collect();
    order.sort_by_key(|&c| (std::cmp::Reverse(size[c]), first[c]));
    let mut new = vec![0u32; m];
    for (r, &c) in order.iter().enumerate() {
        new[c] = r as u32;
    }
    raw.iter().map(|&c| new[c.into() as usize]).collect()
}

/// Graphs for the tests of the clustering modules.
#[cfg(test)]
pub(crate) mod testing {
    use super::WeightedGraph;

    /// A ring of `c` cliques of size `s`, neighbouring cliques joined by one
    /// edge: the modularity optimum (for c ≤ ~√edges) is one clique per cluster.
    pub(crate) fn ring_of_cliques(c: usize, s: usize) -> WeightedGraph {
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

    /// Two triangles {0, 1, 2} and {3, 4, 5} joined by the edge 2–3.
    pub(crate) fn two_triangles() -> WeightedGraph {
        let edges = vec![
            (0, 1, 1.0),
            (0, 2, 1.0),
            (1, 2, 1.0),
            (2, 3, 1.0),
            (3, 4, 1.0),
            (3, 5, 1.0),
            (4, 5, 1.0),
        ];
        WeightedGraph { n: 6, edges }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{ring_of_cliques, two_triangles};
    use super::*;
    use crate::knn::exact_knn;
    use crate::partition::adjusted_rand_index;
    use crate::points::Points;
    use crate::rng::Fast;

    #[test]
    fn leiden_finds_the_cliques_of_a_ring() {
        let g = ring_of_cliques(10, 6);
        let labels = cluster_graph(&g, &ClusterParams::default()).unwrap();
        for q in 0..10 {
            let l = labels[q * 6];
            assert!(labels[q * 6..(q + 1) * 6].iter().all(|&x| x == l), "{labels:?}");
        }
        let mut distinct = labels.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 10);
        assert_eq!(labels, cluster_graph(&g, &ClusterParams::default()).unwrap());
    }

    #[test]
    fn two_triangles_joined_by_an_edge() {
        // Known optimum: {0,1,2} and {3,4,5}, modularity 5/14.
        let g = two_triangles();
        let l = cluster_graph(&g, &ClusterParams::default()).unwrap();
        assert_eq!(l[0], l[1]);
        assert_eq!(l[1], l[2]);
        assert_eq!(l[3], l[4]);
        assert_eq!(l[4], l[5]);
        assert_ne!(l[0], l[3]);
        // A tiny resolution merges everything.
        let one = cluster_graph(
            &g,
            &ClusterParams {
                resolution: 0.01,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(one.iter().all(|&x| x == 0));
        assert!(cluster_graph(
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
        assert_eq!(renumber_by_size(&[5u32, 5, 2, 9, 9, 9]), vec![1, 1, 2, 0, 0, 0]);
        // Streaming the SNN rows of the first k columns straight into the
        // Leiden builder gives the same graph and clusters as the edge list
        // of the truncated kNN graph.
        let g30 = exact_knn(&p, 30);
        let (streamed, edges) = cluster_knn(&g30, 20, &ClusterParams::default()).unwrap();
        assert_eq!(edges, snn.edges.len());
        assert_eq!(streamed, labels);
        assert_eq!(snn_graph(&g30.truncate(20), 1.0 / 15.0), snn);
        assert!(cluster_knn(
            &g,
            20,
            &ClusterParams {
                prune: 1.0,
                ..Default::default()
            }
        )
        .is_err());
    }

    #[test]
    fn louvain_and_leiden_agree_on_clear_structure_and_are_seeded() {
        let g = ring_of_cliques(12, 6);
        for algorithm in [Algorithm::Leiden, Algorithm::Louvain] {
            let params = ClusterParams {
                algorithm,
                ..Default::default()
            };
            let a = cluster_graph(&g, &params).unwrap();
            assert_eq!(a.iter().max(), Some(&11), "{algorithm}: {a:?}");
            assert_eq!(a, cluster_graph(&g, &params).unwrap());
            // More starts never lower the modularity.
            let cg = ClusterGraph::from_weighted(&g, algorithm).unwrap();
            let one = cg.partition(&params).unwrap();
            let ten = cg
                .partition(&ClusterParams {
                    starts: 10,
                    ..params.clone()
                })
                .unwrap();
            assert!(ten.modularity >= one.modularity);
        }
        let cg = ClusterGraph::from_weighted(&g, Algorithm::Leiden).unwrap();
        assert!(cg
            .partition(&ClusterParams {
                starts: 0,
                ..Default::default()
            })
            .is_err());
        assert_eq!("louvain".parse::<Algorithm>().unwrap(), Algorithm::Louvain);
        assert!("kmeans".parse::<Algorithm>().is_err());
    }

    #[test]
    fn clustering_is_thread_independent() {
        let mut r = Fast::new(8, &[]);
        let mut data = Vec::new();
        for c in 0..6 {
            for _ in 0..300 {
                for d in 0..3 {
                    data.push(if d == c % 3 { 4.0 * (c / 3 + 1) as f32 } else { 0.0 } + r.unit() as f32);
                }
            }
        }
        let p = Points::from_vec(data, 1800, 3).unwrap();
        let g = exact_knn(&p, 20);
        for algorithm in [Algorithm::Leiden, Algorithm::Louvain] {
            let params = ClusterParams {
                algorithm,
                resolution: 0.5,
                ..Default::default()
            };
            let run =
                |threads: usize| crate::test_util::on_threads(threads, || cluster(&g, &params).unwrap());
            let (a, b) = (run(1), run(2));
            assert_eq!(a, b, "{algorithm}");
            let truth: Vec<u32> = (0..1800).map(|i| (i / 300) as u32).collect();
            assert!(adjusted_rand_index(&a, &truth).unwrap() > 0.9, "{algorithm}");
        }
    }
}
