//! Joint analysis of a reference and a mapped query (docs/algorithms.md
//! §10.1), as in the online iNMF paper's scenario-3 evaluation: the
//! reference's and the query's normalized H (both in the reference's
//! units) are clustered together with the clustering of [`crate::analyze`]
//! (kNN graph [`knn()`], SNN + Leiden [`cluster_knn`]), and scored:
//!
//! - ARI, NMI and purity of the joint clusters against labels, over every
//!   cell of either side that has one (the reference's label column and the
//!   query's own labels, matched by name);
//! - the same three on the query's cells alone;
//! - alignment ([`alignment()`]) of reference against query, the two sides
//!   as two datasets: 1 = the query sits among reference cells, ≈ 0 = apart;
//! - the clusters made almost only of query cells (share ≥
//!   [`QUERY_ONLY_SHARE`]): populations the reference lacks.

use ndarray::{concatenate, ArrayView2, Axis};

use crate::cluster::cluster_knn;
use crate::error::{AnalysisError, Result};
use crate::knn::knn;
use crate::mixing::alignment;
use crate::partition::{adjusted_rand_index, normalized_mutual_info, purity, MISSING};
use crate::pipeline::AnalysisParams;
use crate::points::Points;

/// Share of query cells above which a joint cluster counts as query-only.
pub const QUERY_ONLY_SHARE: f64 = 0.9;

/// What [`joint_analysis`] reads.
#[derive(Clone, Copy, Debug)]
pub struct JointInput<'a> {
    /// The reference's normalized H, cells × K.
    pub reference: ArrayView2<'a, f32>,
    /// The query's normalized H (in the reference's units), cells × K.
    pub query: ArrayView2<'a, f32>,
    /// Labels of the reference's cells and of the query's cells, codes of
    /// one shared name list ([`MISSING`] = unlabelled); `None` = no labels.
    pub labels: Option<(&'a [u32], &'a [u32])>,
}

/// Agreement of the joint clusters with labels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Agreement {
    /// Adjusted Rand index.
    pub ari: f64,
    /// Normalized mutual information.
    pub nmi: f64,
    /// Purity.
    pub purity: f64,
    /// Labelled cells scored.
    pub cells: usize,
}

/// The results of [`joint_analysis`].
#[derive(Clone, Debug, PartialEq)]
pub struct Joint {
    /// Joint cluster of each cell, reference cells first (0 = largest).
    pub clusters: Vec<u32>,
    /// Number of joint clusters.
    pub n_clusters: usize,
    /// Alignment of reference against query; `None` if either is empty.
    pub alignment: Option<f64>,
    /// Against the labels of both sides; `None` without labelled cells.
    pub all: Option<Agreement>,
    /// Against the query's labels, query cells only.
    pub query: Option<Agreement>,
    /// Joint clusters whose cells are ≥ [`QUERY_ONLY_SHARE`] query cells.
    pub query_only_clusters: Vec<u32>,
}

fn agreement(clusters: &[u32], labels: &[u32]) -> Result<Option<Agreement>> {
    let cells = labels.iter().filter(|&&l| l != MISSING).count();
    if cells == 0 {
        return Ok(None);
    }
    Ok(Some(Agreement {
        ari: adjusted_rand_index(clusters, labels)?,
        nmi: normalized_mutual_info(clusters, labels)?,
        purity: purity(clusters, labels)?,
        cells,
    }))
}

/// Clusters reference and query together and scores the result (module
/// doc). Uses `params.knn`, `params.cluster` and `params.alignment`, as
/// [`crate::analyze`] does.
pub fn joint_analysis(input: &JointInput<'_>, params: &AnalysisParams) -> Result<Joint> {
    let (nr, nq) = (input.reference.nrows(), input.query.nrows());
    if input.reference.ncols() != input.query.ncols() {
        return Err(AnalysisError::InvalidData(format!(
            "joint analysis: the reference has {} factors, the query {}",
            input.reference.ncols(),
            input.query.ncols()
        )));
    }
    if let Some((r, q)) = input.labels {
        if r.len() != nr || q.len() != nq {
            return Err(AnalysisError::InvalidData(format!(
                "joint analysis: {} + {} labels for {nr} + {nq} cells",
                r.len(),
                q.len()
            )));
        }
    }
    if nr + nq < 3 {
        return Err(AnalysisError::InvalidData(format!(
            "joint analysis: {} cells are too few",
            nr + nq
        )));
    }
    let h = concatenate(Axis(0), &[input.reference, input.query]).expect("equal widths");
    let points = Points::from_array(h)?;
    let graph = knn(&points, &params.knn)?;
    let (clusters, _) = cluster_knn(&graph, params.knn.k, &params.cluster)?;
    drop(graph);
    let n_clusters = clusters.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
    let side: Vec<u32> = (0..nr + nq).map(|c| u32::from(c >= nr)).collect();
    let align = if nr > 0 && nq > 0 {
        Some(alignment(&points, &side, 2, &params.alignment)?.score)
    } else {
        None
    };
    let (all, query) = match input.labels {
        Some((r, q)) => {
            let both: Vec<u32> = r.iter().chain(q).copied().collect();
            (agreement(&clusters, &both)?, agreement(&clusters[nr..], q)?)
        }
        None => (None, None),
    };
    let mut counts = vec![(0usize, 0usize); n_clusters];
    for (c, &k) in clusters.iter().enumerate() {
        let e = &mut counts[k as usize];
        if c >= nr {
            e.1 += 1;
        } else {
            e.0 += 1;
        }
    }
    let query_only_clusters = counts
        .iter()
        .enumerate()
        .filter(|(_, &(r, q))| q as f64 >= QUERY_ONLY_SHARE * (r + q) as f64 && q > 0)
        .map(|(k, _)| k as u32)
        .collect();
    Ok(Joint {
        clusters,
        n_clusters,
        alignment: align,
        all,
        query,
        query_only_clusters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Fast;
    use ndarray::Array2;

    /// Groups g load factor g; the query has groups 0–2, the reference 0–1
    /// and a group 3 the query lacks: group 2 is new to the reference.
    fn sides() -> (Array2<f32>, Array2<f32>, Vec<u32>, Vec<u32>) {
        let mut r = Fast::new(5, &[]);
        let mut cell = |g: usize| -> Vec<f32> {
            (0..4)
                .map(|j| {
                    if j == g {
                        2.0 + r.unit() as f32
                    } else {
                        0.2 * r.unit() as f32
                    }
                })
                .collect()
        };
        let (mut rv, mut qv, mut rl, mut ql) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for c in 0..600 {
            let g = [0, 1, 3][c % 3];
            rv.extend(cell(g));
            rl.push(g as u32);
        }
        for c in 0..300 {
            let g = c % 3;
            qv.extend(cell(g));
            ql.push(if c == 4 { MISSING } else { g as u32 });
        }
        (
            Array2::from_shape_vec((600, 4), rv).unwrap(),
            Array2::from_shape_vec((300, 4), qv).unwrap(),
            rl,
            ql,
        )
    }

    #[test]
    fn recovers_groups_finds_the_new_one_and_is_thread_independent() {
        let (rh, qh, rl, ql) = sides();
        let input = JointInput {
            reference: rh.view(),
            query: qh.view(),
            labels: Some((&rl, &ql)),
        };
        let mut params = AnalysisParams::new(2);
        params.cluster.resolution = 0.1;
        let j = joint_analysis(&input, &params).unwrap();
        assert_eq!(j.clusters.len(), 900);
        let all = j.all.unwrap();
        assert_eq!(all.cells, 899);
        assert!(all.ari > 0.9 && all.purity > 0.95, "{j:?}");
        assert!(j.query.unwrap().ari > 0.9);
        // Group 2 exists only in the query: its cluster is query-only.
        let c2 = j.clusters[600 + 2];
        assert_eq!(j.query_only_clusters, vec![c2], "{:?}", j.query_only_clusters);
        // Two thirds of the query sit among reference cells, a third apart.
        let a = j.alignment.unwrap();
        assert!((0.2..0.9).contains(&a), "alignment {a}");
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| joint_analysis(&input, &params).unwrap());
        assert_eq!(one, j);
        let none = joint_analysis(
            &JointInput {
                labels: None,
                ..input
            },
            &params,
        )
        .unwrap();
        assert!(none.all.is_none() && none.clusters == j.clusters);
        assert!(joint_analysis(
            &JointInput {
                labels: Some((&rl[..5], &ql)),
                ..input
            },
            &params
        )
        .is_err());
    }
}
