//! The Leiden algorithm (Traag, Waltman & van Eck, Sci. Rep. 2019)
//! maximizing modularity with resolution γ, through the `leiden-rs` crate:
//! local moving, refinement (communities split into well-connected
//! sub-communities), aggregation of the refined partition, repeated up to
//! `max_iterations` times. Sequential and seeded: deterministic for a seed.

use leiden_rs::{GraphData, GraphDataBuilder, Leiden, LeidenConfig};

use super::graph::Graph;
use crate::error::{AnalysisError, Result};

pub(crate) fn clustering_err(e: leiden_rs::LeidenError) -> AnalysisError {
    AnalysisError::Clustering(e.to_string())
}

/// `leiden-rs`'s graph of a [`Graph`] (small graphs: aggregated ones).
pub(crate) fn graph_data(g: &Graph) -> Result<GraphData> {
    let n = g.node_count();
    let mut b = GraphDataBuilder::new(n);
    for i in 0..n {
        let (t, w) = g.neighbors(i);
        for (&j, &w) in t.iter().zip(w) {
            if j as usize > i {
                b.add_edge(i, j as usize, w).map_err(clustering_err)?;
            }
        }
        if g.self_loop(i) > 0.0 {
            b.add_edge(i, i, g.self_loop(i)).map_err(clustering_err)?;
        }
    }
    b.build().map_err(clustering_err)
}

/// Leiden on `data`: the community of each node (ids `0..count`) and the
/// modularity of the partition.
pub(crate) fn leiden_run(
    data: &GraphData,
    resolution: f64,
    seed: u64,
    max_iterations: usize,
) -> Result<(Vec<u32>, f64)> {
    let config = LeidenConfig {
        resolution,
        seed: Some(seed),
        max_iterations,
        ..LeidenConfig::default()
    };
    let out = Leiden::new(config).run(data).map_err(clustering_err)?;
    let n = data.node_count();
    let membership = (0..n).map(|i| out.partition.community_of(i) as u32).collect();
    Ok((membership, out.quality))
}
