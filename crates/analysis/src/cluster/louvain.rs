//! The Louvain method (Blondel, Guillaume, Lambiotte & Lefebvre, J. Stat.
//! Mech. 2008) maximizing modularity with resolution γ
//! (`Q = Σ_c [e_c/m − γ (K_c/2m)²]`, [`super::graph`]).
//!
//! Each level: (1) *local moving* — every node starts in its own community;
//! nodes are visited in a seeded random order, pass after pass, and each is
//! moved to the community that maximizes the modularity gain of inserting
//! it, `ΔQ(i → C) ∝ k_{i,C} − γ k_i K_C / 2m` (`k_{i,C}` the weight from `i`
//! to the members of `C`, `K_C` the strength of `C` without `i`), among
//! its neighbours' communities, its own, and an empty one; a node moves only
//! on a strictly larger gain (ties: its own community, then the first
//! neighbour community met). Passes stop when one moves no node. (2)
//! *aggregation* — communities become the nodes of the next level's graph
//! ([`super::graph::aggregate`]). Levels stop when local moving merges
//! nothing. Sequential and seeded: the same graph and seed give the same
//! partition on any number of threads.

use super::graph::{aggregate, Adjacency, Graph};
use crate::rng::Fast;

/// Stream name of the node orders.
const ORDER: u64 = 0x10_0A1;

/// How local moving visits the nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Visit {
    /// Classic passes: every node in a seeded random order, pass after
    /// pass, until a pass moves no node.
    Passes,
    /// A queue (Traag et al. 2019's fast local moving): every node once in
    /// a seeded random order, then each node whose neighbour moved is
    /// queued again (if not queued already); stops when the queue is empty.
    Queue,
}

/// The state of local moving: communities, their sizes and strengths, and
/// scratch space for the weights from a node to its neighbours'
/// communities.
struct Moving<'g, G> {
    g: &'g G,
    resolution: f64,
    two_m: f64,
    comm: Vec<u32>,
    size: Vec<usize>,
    strength: Vec<f64>,
    empty: Vec<u32>,
    acc: Vec<f64>,
    touched: Vec<u32>,
    /// Whether a node may leave for an empty community.
    open: bool,
}

impl<'g, G: Adjacency> Moving<'g, G> {
    fn new(g: &'g G, resolution: f64) -> Self {
        let n = g.node_count();
        Self {
            g,
            resolution,
            two_m: 2.0 * g.total(),
            comm: (0..n as u32).collect(),
            size: vec![1; n],
            strength: (0..n).map(|i| g.strength_of(i)).collect(),
            empty: Vec::new(),
            acc: vec![0.0; n],
            touched: Vec::new(),
            open: true,
        }
    }

    /// Nodes in the communities `membership` (ids `< n`), none of them
    /// allowed to open a new community.
    fn closed(g: &'g G, resolution: f64, membership: Vec<u32>) -> Self {
        let n = g.node_count();
        let mut m = Self::new(g, resolution);
        m.size = vec![0; n];
        m.strength = vec![0.0; n];
        for (i, &c) in membership.iter().enumerate() {
            m.size[c as usize] += 1;
            m.strength[c as usize] += g.strength_of(i);
        }
        m.empty = (0..n as u32).filter(|&c| m.size[c as usize] == 0).collect();
        m.comm = membership;
        m.open = false;
        m
    }

    /// Moves node `i` to the community of largest gain (module doc);
    /// returns true when it changed community.
    fn visit(&mut self, i: usize) -> bool {
        let (own, ki) = (self.comm[i] as usize, self.g.strength_of(i));
        let (comm, acc, touched) = (&self.comm, &mut self.acc, &mut self.touched);
        self.g.visit(i, |j, w| {
            let c = comm[j] as usize;
            if acc[c] == 0.0 {
                touched.push(c as u32);
            }
            acc[c] += w;
        });
        self.strength[own] -= ki;
        self.size[own] -= 1;
        if self.size[own] == 0 {
            self.empty.push(own as u32);
        }
        let factor = self.resolution * ki / self.two_m;
        let gain = |c: usize| self.acc[c] - factor * self.strength[c];
        let (mut best, mut best_gain) = (own, gain(own));
        let tol = 1e-12 * ki.max(f64::MIN_POSITIVE);
        for &c in &self.touched {
            let x = gain(c as usize);
            if x > best_gain + tol {
                (best, best_gain) = (c as usize, x);
            }
        }
        // An empty community: gain 0.
        if self.open && best_gain < -tol && self.size[own] > 0 {
            if let Some(&e) = self.empty.last() {
                best = e as usize;
            }
        }
        for &c in &self.touched {
            self.acc[c as usize] = 0.0;
        }
        self.touched.clear();
        if self.size[best] == 0 {
            let p = self
                .empty
                .iter()
                .rposition(|&e| e as usize == best)
                .expect("empty list holds it");
            self.empty.swap_remove(p);
        }
        self.strength[best] += ki;
        self.size[best] += 1;
        self.comm[i] = best as u32;
        best != own
    }

    /// The communities, renumbered `0..count` by first node, and `count`.
    fn finish(mut self) -> (Vec<u32>, usize) {
        let mut id = vec![u32::MAX; self.comm.len()];
        let mut count = 0u32;
        for c in self.comm.iter_mut() {
            let x = &mut id[*c as usize];
            if *x == u32::MAX {
                *x = count;
                count += 1;
            }
            *c = *x;
        }
        (self.comm, count as usize)
    }
}

/// Local moving on `g` from singletons, nodes visited as `visit` says, the
/// first order drawn from `rng`; returns the community of each node (ids
/// `0..count`, numbered by first node) and `count`.
fn local_moving<G: Adjacency>(g: &G, resolution: f64, rng: &mut Fast, visit: Visit) -> (Vec<u32>, usize) {
    let mut m = Moving::new(g, resolution);
    moves(&mut m, rng, visit);
    m.finish()
}

/// Queue-driven local moving on `g` ([`Visit::Queue`]) from the
/// communities `membership` (ids `< n`), the first order drawn from `seed`,
/// each node moving only to a neighbour's community (never to a new one):
/// the community of each node (ids `0..count`, numbered by first node)
/// and `count`. Modularity at `resolution` never decreases.
pub(crate) fn settle<G: Adjacency>(
    g: &G,
    resolution: f64,
    seed: u64,
    membership: Vec<u32>,
) -> (Vec<u32>, usize) {
    let mut m = Moving::closed(g, resolution, membership);
    moves(&mut m, &mut Fast::new(seed, &[ORDER, 0x5E7]), Visit::Queue);
    m.finish()
}

/// Visits the nodes of `m` as `visit` says, the first order drawn from `rng`.
fn moves<G: Adjacency>(m: &mut Moving<'_, G>, rng: &mut Fast, visit: Visit) {
    let g = m.g;
    let n = g.node_count();
    let mut order: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    if m.two_m <= 0.0 {
        return;
    }
    match visit {
        Visit::Passes => loop {
            let mut moved = false;
            for &i in &order {
                moved |= m.visit(i as usize);
            }
            if !moved {
                break;
            }
        },
        Visit::Queue => {
            let mut queue: std::collections::VecDeque<u32> = order.into();
            let mut queued = vec![true; n];
            while let Some(i) = queue.pop_front() {
                let i = i as usize;
                queued[i] = false;
                if m.visit(i) {
                    let c = m.comm[i];
                    g.visit(i, |j, _| {
                        if !queued[j] && m.comm[j] != c {
                            queued[j] = true;
                            queue.push_back(j as u32);
                        }
                    });
                }
            }
        }
    }
}

/// Louvain on `g` at resolution `resolution`, node orders drawn from
/// `seed`: the community of each node (ids `0..count`, by first node).
pub fn louvain(g: &Graph, resolution: f64, seed: u64) -> Vec<u32> {
    levels(g, resolution, seed, 0, Visit::Passes).0
}

/// Louvain levels on `g` (any form of graph), nodes visited as `visit`
/// says, until they converge or a level leaves at most `stop_at`
/// communities: the community of each node (ids `0..count`, by first node)
/// and `count`.
pub(crate) fn levels<G: Adjacency>(
    g: &G,
    resolution: f64,
    seed: u64,
    stop_at: usize,
    visit: Visit,
) -> (Vec<u32>, usize) {
    let n = g.node_count();
    let mut rng = Fast::new(seed, &[ORDER, 0]);
    let (mut membership, mut count) = local_moving(g, resolution, &mut rng, visit);
    if count == n || count <= stop_at {
        return (membership, count);
    }
    let mut cur = aggregate(g, &membership, count);
    for level in 1u64.. {
        let mut rng = Fast::new(seed, &[ORDER, level]);
        let (comm, c) = local_moving(&cur, resolution, &mut rng, visit);
        if c == cur.node_count() {
            break;
        }
        for m in membership.iter_mut() {
            *m = comm[*m as usize];
        }
        count = c;
        if count <= stop_at {
            break;
        }
        cur = aggregate(&cur, &comm, count);
    }
    (membership, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring_of_cliques(c: usize, s: usize) -> Graph {
        let w = super::super::testing::ring_of_cliques(c, s);
        Graph::from_edges(w.n, &w.edges, Vec::new())
    }

    /// All partitions of `0..n` (restricted growth strings).
    fn all_partitions(n: usize) -> Vec<Vec<u32>> {
        fn rec(p: &mut Vec<u32>, n: usize, out: &mut Vec<Vec<u32>>) {
            if p.len() == n {
                out.push(p.clone());
                return;
            }
            let next = p.iter().max().map_or(0, |&m| m + 1);
            for c in 0..=next {
                p.push(c);
                rec(p, n, out);
                p.pop();
            }
        }
        let mut out = Vec::new();
        rec(&mut Vec::new(), n, &mut out);
        out
    }

    #[test]
    fn finds_the_cliques_of_a_ring_and_is_seeded() {
        let g = ring_of_cliques(12, 5);
        let c = louvain(&g, 1.0, 3);
        for q in 0..12 {
            assert!(c[q * 5..(q + 1) * 5].iter().all(|&x| x == c[q * 5]), "{c:?}");
        }
        let distinct: std::collections::BTreeSet<u32> = c.iter().copied().collect();
        assert_eq!(distinct.len(), 12);
        assert_eq!(c, louvain(&g, 1.0, 3));
        // A small resolution merges neighbouring cliques.
        let coarse = louvain(&g, 0.05, 3);
        let k: std::collections::BTreeSet<u32> = coarse.iter().copied().collect();
        assert!(k.len() < 12, "{coarse:?}");
    }

    #[test]
    fn reaches_the_optimum_of_small_graphs() {
        // Random small weighted graphs: Louvain's modularity against the
        // best of every partition (brute force). A heuristic: never above
        // the optimum, at it in most cases, never far below.
        let mut r = Fast::new(11, &[]);
        let (mut cases, mut optimal) = (0, 0);
        for case in 0..20 {
            let n = 7 + case % 3;
            let mut e = Vec::new();
            for i in 0..n as u32 {
                for j in i + 1..n as u32 {
                    if r.unit() < 0.45 {
                        e.push((i, j, 0.1 + r.unit()));
                    }
                }
            }
            let g = Graph::from_edges(n, &e, Vec::new());
            for gamma in [0.5, 1.0, 1.5] {
                let best = all_partitions(n)
                    .iter()
                    .map(|p| g.modularity(p, gamma))
                    .fold(f64::NEG_INFINITY, f64::max);
                let q = g.modularity(&louvain(&g, gamma, case as u64), gamma);
                assert!(
                    q <= best + 1e-12 && q > best - 0.05,
                    "case {case} γ {gamma}: {q} vs optimum {best}"
                );
                cases += 1;
                optimal += usize::from(q > best - 1e-9);
            }
        }
        // Measured: 57 of 60.
        assert!(optimal * 10 >= cases * 9, "{optimal} of {cases} optimal");
    }
}
