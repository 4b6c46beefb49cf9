//! Weighted undirected graphs for community detection: a compact CSR form,
//! modularity with resolution, and aggregation by a partition.
//!
//! Conventions (those of Newman's modularity and of `leiden-rs`): `w_ij` is
//! the weight of the undirected edge `{i, j}`, `l_i` the weight of the
//! self-loop of `i` (0 on an SNN graph, the internal weight of a community
//! after aggregation), the strength `k_i = Σ_{j≠i} w_ij + 2·l_i`, and
//! `m = Σ_{i<j} w_ij + Σ_i l_i`, so that `Σ_i k_i = 2m`. Modularity with
//! resolution γ of a partition into communities `c`:
//!
//! `Q = Σ_c [ e_c / m − γ (K_c / 2m)² ]`,
//!
//! `e_c` the weight inside `c` (edges with both ends in `c`, self-loops
//! included, each once) and `K_c = Σ_{i∈c} k_i`.

use leiden_rs::GraphData;

/// Read access to an undirected weighted graph: what local moving and
/// [`aggregate`] need, implemented by [`Graph`] and by `leiden-rs`'s
/// `GraphData` (so either form of the full graph can be read).
pub(crate) trait Adjacency {
    /// Number of nodes.
    fn node_count(&self) -> usize;
    /// Strength `k_i` (self-loop counted twice).
    fn strength_of(&self, i: usize) -> f64;
    /// Total weight `m`.
    fn total(&self) -> f64;
    /// Calls `f(j, w)` for every edge `{i, j}`, `j ≠ i` (each undirected
    /// edge is seen from both ends), and returns the self-loop weight `l_i`.
    fn visit<F: FnMut(usize, f64)>(&self, i: usize, f: F) -> f64;
}

/// An undirected weighted graph in CSR form: both directions of every edge
/// are stored, self-loops apart.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    offsets: Vec<usize>,
    targets: Vec<u32>,
    weights: Vec<f64>,
    self_loops: Vec<f64>,
    strength: Vec<f64>,
    total: f64,
}

impl Graph {
    /// The graph of `n` nodes with the undirected edges `(i, j, w)`
    /// (`i ≠ j`, each pair once, any order) and self-loop weights
    /// `self_loops` (empty = none). Weights must be finite and ≥ 0.
    pub fn from_edges(n: usize, edges: &[(u32, u32, f64)], self_loops: Vec<f64>) -> Self {
        let self_loops = if self_loops.is_empty() {
            vec![0.0; n]
        } else {
            self_loops
        };
        assert_eq!(self_loops.len(), n, "one self-loop weight per node");
        let mut offsets = vec![0usize; n + 1];
        for &(i, j, _) in edges {
            debug_assert!(i != j, "self-loops go in self_loops");
            offsets[i as usize + 1] += 1;
            offsets[j as usize + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut targets = vec![0u32; offsets[n]];
        let mut weights = vec![0.0f64; offsets[n]];
        for &(i, j, w) in edges {
            for (a, b) in [(i, j), (j, i)] {
                let p = &mut fill[a as usize];
                targets[*p] = b;
                weights[*p] = w;
                *p += 1;
            }
        }
        let mut g = Self {
            offsets,
            targets,
            weights,
            self_loops,
            strength: Vec::new(),
            total: 0.0,
        };
        g.finish();
        g
    }

    /// Computes the strengths and the total weight.
    fn finish(&mut self) {
        let n = self.node_count();
        self.strength = (0..n)
            .map(|i| {
                self.weights[self.offsets[i]..self.offsets[i + 1]]
                    .iter()
                    .sum::<f64>()
                    + 2.0 * self.self_loops[i]
            })
            .collect();
        self.total = 0.5 * self.strength.iter().sum::<f64>();
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.self_loops.len()
    }

    /// Number of undirected edges between distinct nodes.
    pub fn edge_count(&self) -> usize {
        self.targets.len() / 2
    }

    /// Neighbours `j ≠ i` of `i` and the weights of the edges to them.
    pub fn neighbors(&self, i: usize) -> (&[u32], &[f64]) {
        let r = self.offsets[i]..self.offsets[i + 1];
        (&self.targets[r.clone()], &self.weights[r])
    }

    /// Self-loop weight `l_i`.
    pub fn self_loop(&self, i: usize) -> f64 {
        self.self_loops[i]
    }

    /// Strength `k_i = Σ_{j≠i} w_ij + 2·l_i`.
    pub fn strength(&self, i: usize) -> f64 {
        self.strength[i]
    }

    /// Total weight `m` (`Σ_i k_i = 2m`).
    pub fn total_weight(&self) -> f64 {
        self.total
    }

    /// Modularity with resolution `γ` of `membership` (module doc); 0 for a
    /// graph without edges.
    pub fn modularity(&self, membership: &[u32], resolution: f64) -> f64 {
        let m = self.total;
        if m <= 0.0 {
            return 0.0;
        }
        let c = membership.iter().map(|&x| x as usize + 1).max().unwrap_or(0);
        let (mut inside, mut strength) = (vec![0.0f64; c], vec![0.0f64; c]);
        for (i, &ci) in membership.iter().enumerate() {
            let ci = ci as usize;
            strength[ci] += self.strength[i];
            inside[ci] += self.self_loops[i];
            let (t, w) = self.neighbors(i);
            for (&j, &w) in t.iter().zip(w) {
                if (j as usize) > i && membership[j as usize] as usize == ci {
                    inside[ci] += w;
                }
            }
        }
        (0..c)
            .map(|x| inside[x] / m - resolution * (strength[x] / (2.0 * m)).powi(2))
            .sum()
    }
}

impl Adjacency for Graph {
    fn node_count(&self) -> usize {
        Graph::node_count(self)
    }

    fn strength_of(&self, i: usize) -> f64 {
        self.strength[i]
    }

    fn total(&self) -> f64 {
        self.total
    }

    fn visit<F: FnMut(usize, f64)>(&self, i: usize, mut f: F) -> f64 {
        let (t, w) = self.neighbors(i);
        for (&j, &w) in t.iter().zip(w) {
            f(j as usize, w);
        }
        self.self_loops[i]
    }
}

impl Adjacency for GraphData {
    fn node_count(&self) -> usize {
        GraphData::node_count(self)
    }

    fn strength_of(&self, i: usize) -> f64 {
        self.degree_of(i)
    }

    fn total(&self) -> f64 {
        self.total_weight()
    }

    fn visit<F: FnMut(usize, f64)>(&self, i: usize, mut f: F) -> f64 {
        // leiden-rs stores a self-loop once, as an entry (i, i).
        let (t, w) = self.neighbor_slices(i);
        let mut self_loop = 0.0;
        for (&j, &w) in t.iter().zip(w) {
            if j == i {
                self_loop += w;
            } else {
                f(j, w);
            }
        }
        self_loop
    }
}

/// The graph whose nodes are the communities of `membership` (ids
/// `0..count`, every id used): the weight between two communities is the
/// sum of the weights between their members, and a community's self-loop
/// is its internal weight `e_c`. Strengths and `m` are preserved, so the
/// modularity of a partition of the communities equals that of the
/// partition of the original nodes it induces.
pub(crate) fn aggregate<G: Adjacency>(g: &G, membership: &[u32], count: usize) -> Graph {
    let n = g.node_count();
    debug_assert_eq!(membership.len(), n);
    let mut members_off = vec![0usize; count + 1];
    for &c in membership {
        members_off[c as usize + 1] += 1;
    }
    for c in 0..count {
        members_off[c + 1] += members_off[c];
    }
    let mut fill = members_off.clone();
    let mut members = vec![0u32; n];
    for (i, &c) in membership.iter().enumerate() {
        members[fill[c as usize]] = i as u32;
        fill[c as usize] += 1;
    }
    let mut acc = vec![0.0f64; count];
    let mut touched: Vec<u32> = Vec::new();
    let mut self_loops = vec![0.0f64; count];
    let mut edges = Vec::new();
    for c in 0..count {
        let mut inside = 0.0;
        for &i in &members[members_off[c]..members_off[c + 1]] {
            let i = i as usize;
            inside += g.visit(i, |j, w| {
                let d = membership[j] as usize;
                if d == c {
                    // Seen from both ends: half each time.
                    acc[c] += 0.5 * w;
                } else if d > c {
                    if acc[d] == 0.0 {
                        touched.push(d as u32);
                    }
                    acc[d] += w;
                }
            });
        }
        self_loops[c] = inside + acc[c];
        acc[c] = 0.0;
        touched.sort_unstable();
        for &d in &touched {
            edges.push((c as u32, d, acc[d as usize]));
            acc[d as usize] = 0.0;
        }
        touched.clear();
    }
    Graph::from_edges(count, &edges, self_loops)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two triangles joined by the edge 2–3.
    fn two_triangles() -> Graph {
        let w = super::super::testing::two_triangles();
        Graph::from_edges(w.n, &w.edges, Vec::new())
    }

    /// Modularity straight from its definition,
    /// `Q = (1/2m) Σ_ij (A_ij − γ k_i k_j / 2m) δ(c_i, c_j)` with `A_ii = 2 l_i`.
    fn modularity_by_definition(g: &Graph, c: &[u32], gamma: f64) -> f64 {
        let n = g.node_count();
        let mut a = vec![vec![0.0; n]; n];
        for (i, row) in a.iter_mut().enumerate() {
            let (t, w) = g.neighbors(i);
            for (&j, &w) in t.iter().zip(w) {
                row[j as usize] += w;
            }
            row[i] += 2.0 * g.self_loop(i);
        }
        let k: Vec<f64> = a.iter().map(|r| r.iter().sum()).collect();
        let two_m: f64 = k.iter().sum();
        let mut q = 0.0;
        for i in 0..n {
            for j in 0..n {
                if c[i] == c[j] {
                    q += a[i][j] - gamma * k[i] * k[j] / two_m;
                }
            }
        }
        q / two_m
    }

    #[test]
    fn modularity_matches_the_definition_and_known_values() {
        let g = two_triangles();
        assert_eq!((g.total_weight(), g.edge_count()), (7.0, 7));
        let c = [0, 0, 0, 1, 1, 1];
        // Known optimum 5/14 at γ = 1.
        assert!((g.modularity(&c, 1.0) - 5.0 / 14.0).abs() < 1e-12);
        for gamma in [0.3, 1.0, 2.5] {
            for c in [[0, 0, 0, 1, 1, 1], [0, 1, 2, 3, 4, 5], [0, 0, 1, 1, 2, 2], [0; 6]] {
                let q = g.modularity(&c, gamma);
                assert!((q - modularity_by_definition(&g, &c, gamma)).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn aggregation_preserves_strength_and_modularity() {
        let g = two_triangles();
        let fine = [0, 0, 1, 2, 3, 3];
        let a = aggregate(&g, &fine, 4);
        assert_eq!(a.node_count(), 4);
        assert!((a.total_weight() - g.total_weight()).abs() < 1e-12);
        assert_eq!(a.self_loop(0), 1.0); // edge 0–1
        assert_eq!(a.self_loop(3), 1.0); // edge 4–5
        assert!((a.strength(0) - (g.strength(0) + g.strength(1))).abs() < 1e-12);
        // A coarse partition of the communities has the same modularity as
        // the partition of the nodes it induces.
        for coarse in [[0u32, 0, 1, 1], [0, 1, 2, 3], [0, 0, 0, 0], [0, 1, 1, 0]] {
            let induced: Vec<u32> = fine.iter().map(|&f| coarse[f as usize]).collect();
            for gamma in [0.5, 1.0, 2.0] {
                let (qa, qg) = (a.modularity(&coarse, gamma), g.modularity(&induced, gamma));
                assert!((qa - qg).abs() < 1e-12, "{coarse:?} {gamma}: {qa} vs {qg}");
                assert!((qa - modularity_by_definition(&a, &coarse, gamma)).abs() < 1e-12);
            }
        }
        // Aggregating again (self-loops present) composes.
        let twice = aggregate(&a, &[0, 0, 1, 1], 2);
        assert_eq!(twice.self_loop(0), 3.0);
        assert_eq!(twice.neighbors(0), (&[1u32][..], &[1.0][..]));
    }
}
