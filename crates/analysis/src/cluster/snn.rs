//! The shared-nearest-neighbour graph of a kNN graph (Seurat's
//! `ComputeSNN`, as rliger's `runCluster` uses).
//!
//! With `N(i)` the `k` nearest neighbours of `i` (itself included), every
//! pair sharing `s ≥ 1` neighbours gets the Jaccard weight
//! `w_ij = |N(i) ∩ N(j)| / |N(i) ∪ N(j)| = s / (2k − s)`; pairs with
//! `w < prune` (default 1/15, i.e. `s < 3` at k = 20) are dropped; the
//! graph is undirected (`{i, j}` kept once) and has no self-loops.

use rayon::prelude::*;

use crate::knn::KnnGraph;

/// An undirected weighted graph as a list of unique edges `i < j`.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightedGraph {
    /// Number of nodes.
    pub n: usize,
    /// Edges `(i, j, w)` with `i < j`, sorted.
    pub edges: Vec<(u32, u32, f64)>,
}

/// Rows of the SNN graph in blocks: reverse neighbour lists of the first
/// `k` columns of a kNN graph, and the rows `i` of `A·Aᵀ` (pairs `j > i`).
pub(crate) struct SnnRows<'a> {
    knn: &'a KnnGraph,
    k: usize,
    prune: f64,
    /// `rev[rev_off[m]..rev_off[m + 1]]` = { i : m ∈ N(i) }.
    rev_off: Vec<usize>,
    rev: Vec<u32>,
}

/// Rows per block of [`SnnRows::for_each_block`]: bounds the memory of the
/// edges in flight (≈ 30 edges × 16 bytes per row).
const SNN_BLOCK: usize = 1 << 15;

impl<'a> SnnRows<'a> {
    pub(crate) fn new(knn: &'a KnnGraph, k: usize, prune: f64) -> Self {
        let n = knn.len();
        let k = k.clamp(1, knn.k().max(1));
        let mut rev_off = vec![0usize; n + 1];
        for i in 0..n {
            for &m in &knn.neighbors(i)[..k] {
                rev_off[m as usize + 1] += 1;
            }
        }
        for m in 0..n {
            rev_off[m + 1] += rev_off[m];
        }
        let mut fill = rev_off.clone();
        let mut rev = vec![0u32; rev_off[n]];
        for i in 0..n {
            for &m in &knn.neighbors(i)[..k] {
                rev[fill[m as usize]] = i as u32;
                fill[m as usize] += 1;
            }
        }
        Self {
            knn,
            k,
            prune,
            rev_off,
            rev,
        }
    }

    /// Calls `sink` with the edges `(i, j, w)`, `i < j`, of consecutive row
    /// blocks, in row order (each block computed in parallel).
    pub(crate) fn for_each_block<E>(
        &self,
        mut sink: impl FnMut(&[(u32, u32, f64)]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let n = self.knn.len();
        let k = self.k;
        let mut start = 0;
        while start < n {
            let end = (start + SNN_BLOCK).min(n);
            let rows: Vec<Vec<(u32, u32, f64)>> = (start..end)
                .into_par_iter()
                .map_init(
                    || (vec![0u16; n], Vec::new()),
                    |(count, touched), i| {
                        for &m in &self.knn.neighbors(i)[..k] {
                            let m = m as usize;
                            for &j in &self.rev[self.rev_off[m]..self.rev_off[m + 1]] {
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
                            if w >= self.prune {
                                out.push((i as u32, j, w));
                            }
                        }
                        touched.clear();
                        out
                    },
                )
                .collect();
            for r in &rows {
                sink(r)?;
            }
            start = end;
        }
        Ok(())
    }
}

/// The Jaccard-weighted shared-nearest-neighbour graph of `knn` (see the
/// module doc): every pair `i < j` sharing at least one neighbour gets
/// `w = s / (2k − s)`, kept when `w ≥ prune` (Seurat's `ComputeSNN`, used by
/// rliger). Computed as the sparse product `A·Aᵀ` of the kNN indicator
/// matrix through reverse neighbour lists, one row at a time.
pub fn snn_graph(knn: &KnnGraph, prune: f64) -> WeightedGraph {
    let mut edges = Vec::new();
    let rows = SnnRows::new(knn, knn.k(), prune);
    let done: std::result::Result<(), std::convert::Infallible> = rows.for_each_block(|r| {
        edges.extend_from_slice(r);
        Ok(())
    });
    let Ok(()) = done;
    WeightedGraph { n: knn.len(), edges }
}
