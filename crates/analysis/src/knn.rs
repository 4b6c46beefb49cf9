//! k-nearest-neighbour graphs (Euclidean): exact for small sets,
//! NN-descent at scale.
//!
//! **Exact**: every query scans every point (`O(n²·d)`), keeping the `k`
//! smallest `(distance, index)` pairs, ties broken by index.
//!
//! **NN-descent** (Dong, Moses & Li, WWW 2011, as in PyNNDescent): start
//! from the pairs sharing a leaf (≤ max(k, 10) points) in any of 8 random-
//! projection trees, topped up with random neighbours; each iteration,
//! every point's sampled *new* and *old* candidates (forward and reverse
//! neighbours, at most `max_candidates` of each, chosen by seeded random
//! priority) are joined pairwise, and every pair `(p, q)` closer than the
//! current `k`-th neighbour of `p` or `q` is offered to both heaps. Stop when
//! fewer than `delta·n·k` heap entries change, or after `max(5,
//! round(log2 n))` iterations. Work per iteration is `O(n·c²·d)` for `c`
//! candidates, memory `O(n·(k + 2c))`.
//!
//! **Determinism**: the join runs in parallel over fixed blocks of points
//! and its proposals are collected in point order, then applied in parallel
//! over fixed ranges of target points, each range in proposal order; all
//! random choices come from streams named by `(seed, iteration, point)`.
//! The graph is therefore identical for a seed whatever the thread count.
//! We wrote this rather than use an HNSW crate because the ones available
//! (hnsw_rs, instant-distance) insert in parallel under locks, so their
//! graphs change with thread scheduling.
//!
//! Every graph lists each point itself first (distance 0), then its `k − 1`
//! nearest other points by increasing distance.

use rayon::prelude::*;

use crate::error::{AnalysisError, Result};
use crate::points::{sq_dist, sq_dist_chunks, Points};
use crate::rng::{hash, sample_indices, Fast};

/// How neighbours are found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KnnMethod {
    /// Exact up to [`KnnParams::exact_max_cells`] points, NN-descent above.
    Auto,
    /// Exact scan (`O(n²)`): for small sets and for checking.
    Exact,
    /// Approximate NN-descent.
    NnDescent,
}

/// Parameters of [`knn`].
#[derive(Clone, Debug, PartialEq)]
pub struct KnnParams {
    /// Neighbours per point, the point itself included. Default 20.
    pub k: usize,
    /// Search method. Default [`KnnMethod::Auto`].
    pub method: KnnMethod,
    /// Largest set searched exactly by `Auto`. Default 20,000.
    pub exact_max_cells: usize,
    /// NN-descent: candidates sampled per point and kind (new/old).
    /// Default 0 = `k` (at least 10, at most 60).
    pub max_candidates: usize,
    /// NN-descent: stop when fewer than `delta·n·k` entries change. Default 0.001.
    pub delta: f64,
    /// NN-descent: iteration cap; 0 = `max(5, round(log2 n))`. Default 0.
    pub max_iterations: usize,
    /// Seed of the random initial graph and candidate sampling. Default 1.
    pub seed: u64,
}

impl Default for KnnParams {
    fn default() -> Self {
        Self {
            k: 20,
            method: KnnMethod::Auto,
            exact_max_cells: 20_000,
            max_candidates: 0,
            delta: 0.001,
            max_iterations: 0,
            seed: 1,
        }
    }
}

/// A kNN graph: row `i` holds `i` itself, then its nearest other points.
#[derive(Clone, Debug, PartialEq)]
pub struct KnnGraph {
    k: usize,
    indices: Vec<u32>,
    distances: Vec<f32>,
    /// True when found by NN-descent.
    pub approximate: bool,
    /// NN-descent iterations run (0 for exact).
    pub iterations: usize,
}

impl KnnGraph {
    /// Neighbours per point (self included).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.indices.len().checked_div(self.k).unwrap_or(0)
    }

    /// True for an empty graph.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Neighbours of point `i`, itself first, by increasing distance.
    #[inline]
    pub fn neighbors(&self, i: usize) -> &[u32] {
        &self.indices[i * self.k..(i + 1) * self.k]
    }

    /// Euclidean distances matching [`neighbors`](Self::neighbors).
    #[inline]
    pub fn distances(&self, i: usize) -> &[f32] {
        &self.distances[i * self.k..(i + 1) * self.k]
    }

    /// The graph restricted to the first `k` neighbours of each point.
    pub fn truncate(&self, k: usize) -> KnnGraph {
        let k = k.clamp(1, self.k);
        let n = self.len();
        let mut indices = Vec::with_capacity(n * k);
        let mut distances = Vec::with_capacity(n * k);
        for i in 0..n {
            indices.extend_from_slice(&self.neighbors(i)[..k]);
            distances.extend_from_slice(&self.distances(i)[..k]);
        }
        KnnGraph {
            k,
            indices,
            distances,
            approximate: self.approximate,
            iterations: self.iterations,
        }
    }
}

/// The `k` nearest neighbours of every point (itself first), exact or by
/// NN-descent as `params.method` says; `k` is capped at the number of points.
pub fn knn(points: &Points, params: &KnnParams) -> Result<KnnGraph> {
    if params.k == 0 {
        return Err(AnalysisError::InvalidParameter("knn k = 0; use k ≥ 1".into()));
    }
    if !(params.delta >= 0.0 && params.delta.is_finite()) {
        return Err(AnalysisError::InvalidParameter(format!(
            "knn delta = {}; use a finite value ≥ 0",
            params.delta
        )));
    }
    let n = points.len();
    let k = params.k.min(n);
    let exact = match params.method {
        KnnMethod::Exact => true,
        KnnMethod::NnDescent => false,
        KnnMethod::Auto => n <= params.exact_max_cells,
    };
    // NN-descent needs room to sample candidates; tiny sets are exact anyway.
    if exact || n <= 4 * k.max(10) {
        Ok(exact_knn(points, k))
    } else {
        Ok(nn_descent(points, k, params))
    }
}

/// Exact kNN graph (itself first), in parallel over points.
pub fn exact_knn(points: &Points, k: usize) -> KnnGraph {
    let n = points.len();
    let k = k.min(n);
    if k == 0 {
        return KnnGraph {
            k: 0,
            indices: Vec::new(),
            distances: Vec::new(),
            approximate: false,
            iterations: 0,
        };
    }
    let mut indices = vec![0u32; n * k];
    let mut distances = vec![0f32; n * k];
    indices
        .par_chunks_mut(k)
        .zip(distances.par_chunks_mut(k))
        .enumerate()
        .for_each(|(i, (idx, dst))| {
            let mut top = TopK::new(k - 1);
            let q = points.row(i);
            for j in 0..n {
                if j != i {
                    top.push(sq_dist(q, points.row(j)), j as u32);
                }
            }
            idx[0] = i as u32;
            dst[0] = 0.0;
            for (s, (d, j)) in top.items().enumerate() {
                idx[s + 1] = j;
                dst[s + 1] = d.sqrt();
            }
        });
    KnnGraph {
        k,
        indices,
        distances,
        approximate: false,
        iterations: 0,
    }
}

/// The `k` nearest other points of `points.row(query)` (itself excluded),
/// exact, by increasing `(distance, index)` ([`exact_queries`] for one query).
pub fn exact_query(points: &Points, query: usize, k: usize) -> Vec<u32> {
    exact_queries(points, &[query], k).pop().unwrap_or_default()
}

/// [`exact_query`] for each of `queries`: the `k` nearest other points of
/// each by increasing `(distance, index)`. Queries run in blocks of 16,
/// each block in parallel, and a block reads the points in tiles of 2,048,
/// so every point is read once per block rather than once per query. Per
/// query, the candidates at most as far as the current `k`-th nearest are
/// buffered; when `k + max(k, 2,048)` are buffered the `k` nearest are
/// selected and the rest dropped (a dropped or skipped point is farther, in
/// `(distance, index)` order, than `k` others), so the result is the exact
/// selection over all points. A point whose squared distance over its
/// first 8 coordinates (summed as [`sq_dist`] sums them, so never above
/// the whole) already exceeds the current `k`-th is skipped unread. Memory: `≈ 16 × 8 × (2k + 2,048)` bytes per block.
pub fn exact_queries(points: &Points, queries: &[usize], k: usize) -> Vec<Vec<u32>> {
    const BLOCK: usize = 16;
    const TILE: usize = 2048;
    let n = points.len();
    let k = k.min(n.saturating_sub(1));
    if k == 0 {
        return vec![Vec::new(); queries.len()];
    }
    let cmp = |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    let keep = |buf: &mut Vec<(f32, u32)>| {
        if k < buf.len() {
            buf.select_nth_unstable_by(k - 1, cmp);
            buf.truncate(k);
        }
    };
    let full = k + k.max(TILE);
    // Blocks of 4 coordinates in the lower bound that rules points out.
    let head = (points.dim() / 4).min(2);
    queries
        .par_chunks(BLOCK)
        .flat_map_iter(|block| {
            let mut bufs: Vec<Vec<(f32, u32)>> =
                block.iter().map(|_| Vec::with_capacity(full + TILE)).collect();
            let mut limit = vec![f32::INFINITY; block.len()];
            for t in (0..n).step_by(TILE) {
                for ((&q, buf), lim) in block.iter().zip(&mut bufs).zip(&mut limit) {
                    let x = points.row(q);
                    for j in t..(t + TILE).min(n) {
                        let y = points.row(j);
                        if head > 0 && sq_dist_chunks(x, y, head) > *lim {
                            continue;
                        }
                        let d = sq_dist(x, y);
                        if d <= *lim && j != q {
                            buf.push((d, j as u32));
                        }
                    }
                    if buf.len() >= full {
                        keep(buf);
                        *lim = buf[k - 1].0;
                    }
                }
            }
            bufs.into_iter().map(move |mut buf| {
                keep(&mut buf);
                buf.sort_unstable_by(cmp);
                buf.into_iter().map(|(_, j)| j).collect::<Vec<u32>>()
            })
        })
        .collect()
}

/// Mean recall of `graph` against exact neighbours on `n_queries` seeded
/// random points: `|approx ∩ exact| / (k − 1)`, the point itself not counted.
pub fn recall(points: &Points, graph: &KnnGraph, n_queries: usize, seed: u64) -> f64 {
    let n = points.len();
    let k = graph.k();
    if n == 0 || k <= 1 {
        return 1.0;
    }
    let queries = sample_indices(seed, &[0x5EC0], n, n_queries.min(n));
    let hits: usize = queries
        .iter()
        .zip(exact_queries(points, &queries, k - 1))
        .map(|(&q, exact)| {
            let approx = &graph.neighbors(q)[1..];
            exact.iter().filter(|j| approx.contains(j)).count()
        })
        .sum();
    hits as f64 / (queries.len() * (k - 1)) as f64
}

/// The `cap` smallest `(distance, index)` pairs, kept sorted (insertion:
/// cheap for the small `k` of kNN graphs).
struct TopK {
    cap: usize,
    items: Vec<(f32, u32)>,
}

impl TopK {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            items: Vec::with_capacity(cap + 1),
        }
    }

    #[inline]
    fn push(&mut self, d: f32, j: u32) {
        if self.cap == 0 {
            return;
        }
        if self.items.len() == self.cap && (d, j) >= self.items[self.cap - 1] {
            return;
        }
        let pos = self.items.partition_point(|&(e, i)| e < d || (e == d && i < j));
        self.items.insert(pos, (d, j));
        self.items.truncate(self.cap);
    }

    fn items(&self) -> impl Iterator<Item = (f32, u32)> + '_ {
        self.items.iter().copied()
    }
}

/// Per-point neighbour lists of NN-descent: `kk` sorted slots per point.
struct Heaps {
    dist: Vec<f32>,
    idx: Vec<u32>,
    new: Vec<bool>,
}

/// Offers `(d, j)` to one point's sorted slots; returns whether it entered.
#[inline]
fn offer(dist: &mut [f32], idx: &mut [u32], new: &mut [bool], d: f32, j: u32) -> bool {
    let kk = dist.len();
    if d >= dist[kk - 1] {
        return false;
    }
    if idx.contains(&j) {
        return false;
    }
    let pos = dist.partition_point(|&e| e <= d);
    dist.copy_within(pos..kk - 1, pos + 1);
    idx.copy_within(pos..kk - 1, pos + 1);
    new.copy_within(pos..kk - 1, pos + 1);
    dist[pos] = d;
    idx[pos] = j;
    new[pos] = true;
    true
}

/// Candidate lists: at most `cap` entries per point with the smallest
/// random priorities.
struct Candidates {
    cap: usize,
    prio: Vec<u64>,
    idx: Vec<u32>,
    len: Vec<u32>,
}

impl Candidates {
    fn new(n: usize, cap: usize) -> Self {
        Self {
            cap,
            prio: vec![u64::MAX; n * cap],
            idx: vec![u32::MAX; n * cap],
            len: vec![0; n],
        }
    }

    fn push(&mut self, i: usize, j: u32, p: u64) {
        let (c, base) = (self.cap, i * self.cap);
        let len = self.len[i] as usize;
        let prio = &mut self.prio[base..base + c];
        let idx = &mut self.idx[base..base + c];
        if idx[..len].contains(&j) {
            return;
        }
        if len == c && p >= prio[c - 1] {
            return;
        }
        let pos = prio[..len].partition_point(|&e| e <= p);
        let end = len.min(c - 1);
        prio.copy_within(pos..end, pos + 1);
        idx.copy_within(pos..end, pos + 1);
        prio[pos] = p;
        idx[pos] = j;
        if len < c {
            self.len[i] += 1;
        }
    }

    fn of(&self, i: usize) -> &[u32] {
        &self.idx[i * self.cap..i * self.cap + self.len[i] as usize]
    }
}

/// Points per block of the local join (bounds the proposals held at once).
const BLOCK: usize = 4_096;
/// Fixed ranges of target points over which proposals are applied in parallel.
const SHARDS: usize = 64;
/// Random-projection trees of the initial graph, and their leaf size.
const TREES: usize = 8;

impl Heaps {
    /// Applies proposals `(p, q, d)` to both `p`'s and `q`'s lists, in
    /// parallel over fixed ranges of target points, each range in proposal
    /// order; returns how many list entries changed.
    fn apply(&mut self, kk: usize, proposals: &[Vec<(u32, u32, f32)>]) -> usize {
        let n = self.dist.len() / kk;
        let shard_len = n.div_ceil(SHARDS).max(1);
        let mut shards: Vec<Vec<(u32, u32, f32)>> = vec![Vec::new(); n.div_ceil(shard_len)];
        for list in proposals {
            for &(p, q, d) in list {
                shards[p as usize / shard_len].push((p, q, d));
                shards[q as usize / shard_len].push((q, p, d));
            }
        }
        self.dist
            .par_chunks_mut(shard_len * kk)
            .zip(self.idx.par_chunks_mut(shard_len * kk))
            .zip(self.new.par_chunks_mut(shard_len * kk))
            .zip(shards.par_iter())
            .enumerate()
            .map(|(s, (((d, idx), nw), ups))| {
                let base = s * shard_len;
                let mut c = 0;
                for &(t, o, dd) in ups {
                    let r = (t as usize - base) * kk;
                    if offer(&mut d[r..r + kk], &mut idx[r..r + kk], &mut nw[r..r + kk], dd, o) {
                        c += 1;
                    }
                }
                c
            })
            .sum()
    }
}

/// Leaves of a random-projection tree over `idx` (Dasgupta & Freund 2008;
/// PyNNDescent's Euclidean trees): split by the hyperplane equidistant from
/// two random points until at most `leaf` points remain.
fn rp_leaves(
    points: &Points,
    idx: Vec<u32>,
    leaf: usize,
    seed: u64,
    tree: u64,
    path: u64,
    depth: u32,
) -> Vec<Vec<u32>> {
    if idx.len() <= leaf || depth >= 48 {
        return vec![idx];
    }
    let mut r = Fast::new(seed, &[0x7EE, tree, path, depth as u64]);
    let a = idx[r.below(idx.len())] as usize;
    let mut b = idx[r.below(idx.len())] as usize;
    for _ in 0..8 {
        if points.dist2(a, b) > 0.0 {
            break;
        }
        b = idx[r.below(idx.len())] as usize;
    }
    let (pa, pb) = (points.row(a), points.row(b));
    let normal: Vec<f32> = pa.iter().zip(pb).map(|(x, y)| x - y).collect();
    let offset: f32 = normal
        .iter()
        .zip(pa.iter().zip(pb))
        .map(|(n, (x, y))| n * (x + y) / 2.0)
        .sum();
    let (mut left, mut right) = (Vec::new(), Vec::new());
    for &i in &idx {
        let m: f32 = normal
            .iter()
            .zip(points.row(i as usize))
            .map(|(n, x)| n * x)
            .sum::<f32>()
            - offset;
        let go_left = if m == 0.0 { r.below(2) == 0 } else { m < 0.0 };
        if go_left {
            left.push(i);
        } else {
            right.push(i);
        }
    }
    if left.is_empty() || right.is_empty() {
        // All points on one side (duplicates): split in halves.
        let mut all = idx;
        right = all.split_off(all.len() / 2);
        left = all;
    }
    let (pl, pr) = (2 * path, 2 * path + 1);
    let (mut l, r) = if left.len() + right.len() > 20_000 {
        rayon::join(
            || rp_leaves(points, left, leaf, seed, tree, pl, depth + 1),
            || rp_leaves(points, right, leaf, seed, tree, pr, depth + 1),
        )
    } else {
        (
            rp_leaves(points, left, leaf, seed, tree, pl, depth + 1),
            rp_leaves(points, right, leaf, seed, tree, pr, depth + 1),
        )
    };
    l.extend(r);
    l
}

fn nn_descent(points: &Points, k: usize, params: &KnnParams) -> KnnGraph {
    let n = points.len();
    let kk = k - 1; // neighbours other than the point itself
    let seed = params.seed;
    let mc = if params.max_candidates == 0 {
        k.clamp(10, 60)
    } else {
        params.max_candidates
    };
    let max_iter = if params.max_iterations == 0 {
        ((n as f64).log2().round() as usize).max(5)
    } else {
        params.max_iterations
    };
    let mut h = Heaps {
        dist: vec![f32::INFINITY; n * kk],
        idx: vec![u32::MAX; n * kk],
        new: vec![false; n * kk],
    };
    // Initial graph: all pairs within the leaves of a few random-projection
    // trees, then random neighbours for lists still not full.
    let leaf = k.max(10);
    for tree in 0..TREES as u64 {
        let leaves = rp_leaves(points, (0..n as u32).collect(), leaf, seed, tree, 1, 0);
        for chunk in leaves.chunks(BLOCK / 4) {
            let proposals: Vec<Vec<(u32, u32, f32)>> = chunk
                .par_iter()
                .map(|l| {
                    let mut out = Vec::with_capacity(l.len() * l.len() / 2);
                    for (a, &p) in l.iter().enumerate() {
                        for &q in &l[a + 1..] {
                            out.push((p, q, points.dist2(p as usize, q as usize)));
                        }
                    }
                    out
                })
                .collect();
            h.apply(kk, &proposals);
        }
    }
    h.dist
        .par_chunks_mut(kk)
        .zip(h.idx.par_chunks_mut(kk))
        .zip(h.new.par_chunks_mut(kk))
        .enumerate()
        .for_each(|(i, ((d, idx), nw))| {
            let mut r = Fast::new(seed, &[0x1417, i as u64]);
            let mut tries = 0;
            while idx[kk - 1] == u32::MAX && tries < 8 * kk {
                let j = r.below(n);
                tries += 1;
                if j != i {
                    offer(d, idx, nw, points.dist2(i, j), j as u32);
                }
            }
        });
    let threshold = (params.delta * (n * kk) as f64) as usize;
    let mut iterations = 0;
    for it in 0..max_iter {
        iterations = it + 1;
        // Sample candidates (forward and reverse), by random priority.
        let mut newc = Candidates::new(n, mc);
        let mut oldc = Candidates::new(n, mc);
        for i in 0..n {
            for s in 0..kk {
                let j = h.idx[i * kk + s];
                if j == u32::MAX {
                    continue;
                }
                let p = hash(seed, &[0xCA4D, it as u64, i as u64, s as u64]);
                let c = if h.new[i * kk + s] { &mut newc } else { &mut oldc };
                c.push(i, j, p);
                c.push(j as usize, i as u32, p);
            }
        }
        // Entries sampled as new candidates are old from now on.
        h.idx
            .par_chunks(kk)
            .zip(h.new.par_chunks_mut(kk))
            .enumerate()
            .for_each(|(i, (idx, nw))| {
                let cand = newc.of(i);
                for s in 0..kk {
                    if nw[s] && cand.contains(&idx[s]) {
                        nw[s] = false;
                    }
                }
            });
        let mut changed = 0usize;
        for start in (0..n).step_by(BLOCK) {
            let end = (start + BLOCK).min(n);
            let hr = &h;
            let proposals: Vec<Vec<(u32, u32, f32)>> = (start..end)
                .into_par_iter()
                .map(|u| {
                    let (nu, ou) = (newc.of(u), oldc.of(u));
                    let mut out = Vec::new();
                    let worst = |p: u32| hr.dist[p as usize * kk + kk - 1];
                    for (a, &p) in nu.iter().enumerate() {
                        for &q in nu[a + 1..].iter().chain(ou.iter()) {
                            if p == q {
                                continue;
                            }
                            let d = points.dist2(p as usize, q as usize);
                            if d < worst(p) || d < worst(q) {
                                out.push((p, q, d));
                            }
                        }
                    }
                    out
                })
                .collect();
            changed += h.apply(kk, &proposals);
        }
        if changed <= threshold {
            break;
        }
    }
    let mut indices = Vec::with_capacity(n * k);
    let mut distances = Vec::with_capacity(n * k);
    for i in 0..n {
        indices.push(i as u32);
        distances.push(0.0);
        for s in 0..kk {
            let j = h.idx[i * kk + s];
            if j == u32::MAX {
                // Fewer than k found (cannot happen for n > 4k); repeat self.
                indices.push(i as u32);
                distances.push(0.0);
            } else {
                indices.push(j);
                distances.push(h.dist[i * kk + s].sqrt());
            }
        }
    }
    KnnGraph {
        k,
        indices,
        distances,
        approximate: true,
        iterations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_points(n: usize, dim: usize, seed: u64) -> Points {
        let mut r = Fast::new(seed, &[]);
        let data = (0..n * dim).map(|_| r.unit() as f32).collect();
        Points::from_vec(data, n, dim).unwrap()
    }

    fn brute(points: &Points, i: usize, k: usize) -> Vec<u32> {
        let mut all: Vec<(f32, u32)> = (0..points.len())
            .filter(|&j| j != i)
            .map(|j| (points.dist2(i, j), j as u32))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        all.into_iter().take(k).map(|x| x.1).collect()
    }

    #[test]
    fn exact_matches_brute_force() {
        let p = random_points(300, 5, 1);
        let g = exact_knn(&p, 10);
        assert_eq!(g.k(), 10);
        assert_eq!(g.len(), 300);
        for i in 0..300 {
            assert_eq!(g.neighbors(i)[0], i as u32);
            assert_eq!(&g.neighbors(i)[1..], &brute(&p, i, 9)[..]);
            let d = g.distances(i);
            assert!(d.windows(2).all(|w| w[0] <= w[1]));
            let j = g.neighbors(i)[1] as usize;
            assert!((d[1] - p.dist2(i, j).sqrt()).abs() < 1e-6);
        }
        assert_eq!(exact_query(&p, 7, 50), brute(&p, 7, 50));
        assert_eq!(exact_query(&p, 7, 1000).len(), 299);
    }

    #[test]
    fn blocked_queries_match_brute_force_with_ties() {
        // Points on a coarse grid (many equal distances), more than two
        // tiles, queries over several blocks, k small (the buffer is
        // compacted) and large (it is not).
        let mut r = Fast::new(9, &[]);
        let data = (0..5000 * 2).map(|_| (r.below(40) as f32) * 0.5).collect();
        let p = Points::from_vec(data, 5000, 2).unwrap();
        let queries: Vec<usize> = (0..40).map(|i| i * 97 % 5000).collect();
        for k in [1, 30, 3000] {
            let got = exact_queries(&p, &queries, k);
            for (&q, g) in queries.iter().zip(&got) {
                assert_eq!(g, &brute(&p, q, k), "query {q}, k {k}");
            }
            let one = crate::test_util::on_threads(1, || exact_queries(&p, &queries, k));
            assert_eq!(got, one);
        }
        assert_eq!(exact_queries(&p, &queries, 0), vec![Vec::<u32>::new(); 40]);
        // 10-D: the first 8 coordinates rule points out.
        let data = (0..3000 * 10).map(|_| (r.below(6) as f32) * 0.5).collect();
        let p = Points::from_vec(data, 3000, 10).unwrap();
        let queries: Vec<usize> = queries.iter().map(|q| q % 3000).collect();
        for k in [5, 200] {
            for (&q, g) in queries.iter().zip(exact_queries(&p, &queries, k)) {
                assert_eq!(g, brute(&p, q, k), "query {q}, k {k}");
            }
        }
    }

    #[test]
    fn small_sets_and_k_larger_than_n() {
        let p = random_points(3, 2, 2);
        let g = knn(
            &p,
            &KnnParams {
                k: 10,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(g.k(), 3);
        let empty = Points::from_vec(vec![], 0, 4).unwrap();
        assert!(knn(&empty, &KnnParams::default()).unwrap().is_empty());
        assert!(knn(
            &p,
            &KnnParams {
                k: 0,
                ..Default::default()
            }
        )
        .is_err());
    }

    #[test]
    fn nn_descent_has_high_recall_and_is_deterministic() {
        let p = random_points(4000, 8, 3);
        let params = KnnParams {
            k: 15,
            method: KnnMethod::NnDescent,
            ..Default::default()
        };
        let g = knn(&p, &params).unwrap();
        assert!(g.approximate);
        let r = recall(&p, &g, 300, 9);
        assert!(r > 0.95, "recall {r}");
        for i in 0..4000 {
            assert_eq!(g.neighbors(i)[0], i as u32);
        }
        let g2 = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| knn(&p, &params).unwrap());
        assert_eq!(g, g2);
        assert_eq!(exact_knn(&p, 15).truncate(5), exact_knn(&p, 5));
    }
}
