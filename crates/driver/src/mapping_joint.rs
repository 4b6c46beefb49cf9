//! `inmf project --joint`: the reference and the query clustered together
//! on their normalized H ([`inmf_analysis::joint_analysis`], the clustering
//! of `inmf analyze` at the reference's resolution), as in the online iNMF
//! paper's scenario-3 evaluation. Adds to the projection's `result.h5ad`:
//!
//! | element | content |
//! |---|---|
//! | `obs['joint_cluster']` | joint cluster of each query cell, categorical `"0"`, `"1"`, … (0 = largest) |
//! | `uns['inmf']['mapping']['joint']` | `n_clusters`, `resolution`, `alignment` (reference vs query), `query_only_clusters`; with labels `ari`, `nmi`, `purity`, `labelled_cells` (both sides), `query_ari`, `query_nmi`, `query_purity`, `labels_reference`, `labels_query` |

use std::fmt;

use inmf_analysis::{joint_analysis, Agreement, AnalysisParams, JointInput, MISSING, QUERY_ONLY_SHARE};

use crate::anndata::{Axis, UnsValue};
use crate::error::DriverError;
use crate::mapping::{analysis_err, Mapped, Reference};
use crate::output::results::ResultWriter;

/// What the joint analysis found.
#[derive(Clone, Debug)]
pub struct JointSummary {
    /// Reference cells and query cells clustered.
    pub cells: (usize, usize),
    /// Leiden resolution (the reference's analysis').
    pub resolution: f64,
    /// Joint clusters.
    pub n_clusters: usize,
    /// Alignment of reference against query.
    pub alignment: Option<f64>,
    /// Labels compared: the reference's column and the query's.
    pub labels: Option<(String, String)>,
    /// Against the labels of both sides.
    pub all: Option<Agreement>,
    /// Against the query's labels, query cells only.
    pub query: Option<Agreement>,
    /// Clusters of (almost) only query cells.
    pub query_only_clusters: Vec<u32>,
}

impl fmt::Display for JointSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  joint analysis: {} reference + {} query cells, {} Leiden clusters (resolution {})",
            self.cells.0, self.cells.1, self.n_clusters, self.resolution
        )?;
        if let Some(a) = self.alignment {
            writeln!(
                f,
                "    alignment reference vs query {a:.4} (1 = mixed, 0 = apart)"
            )?;
        }
        if let (Some((r, q)), Some(a)) = (&self.labels, &self.all) {
            writeln!(
                f,
                "    vs labels (reference {r}, query {q}; {} cells): ARI {:.4}, NMI {:.4}, purity {:.4}",
                a.cells, a.ari, a.nmi, a.purity
            )?;
        }
        if let Some(a) = &self.query {
            writeln!(
                f,
                "    query cells only: ARI {:.4}, NMI {:.4}, purity {:.4}",
                a.ari, a.nmi, a.purity
            )?;
        }
        let list: Vec<String> = self.query_only_clusters.iter().map(u32::to_string).collect();
        writeln!(
            f,
            "    clusters ≥ {:.0} % query cells (new to the reference?): {}",
            100.0 * QUERY_ONLY_SHARE,
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join(", ")
            }
        )
    }
}

/// The joint clusters of the query's cells and the summary.
pub(crate) struct JointResult {
    pub(crate) summary: JointSummary,
    query_clusters: Vec<u32>,
}

/// Runs the joint analysis; the reference must have its normalized H
/// (checked when it is loaded).
pub(crate) fn run_joint(reference: &Reference, m: &Mapped) -> Result<JointResult, DriverError> {
    let ref_norm = reference
        .norm
        .as_ref()
        .ok_or_else(|| DriverError::Internal("--joint without the reference's normalized H".into()))?;
    let mut params = AnalysisParams::new(reference.seed);
    params.cluster.resolution = reference.resolution;
    // Labels: the compared reference column and the query's own, by name.
    let mut labels = None;
    if let (Some(c), Some((qcol, qcodes, qnames))) = (&m.summary.confusion, &m.truth) {
        if let Some(col) = reference.column(&c.column) {
            let mut names = col.categories.clone();
            let rcodes: Vec<u32> = col
                .codes
                .iter()
                .map(|&x| if x < 0 { MISSING } else { x as u32 })
                .collect();
            let map: Vec<u32> = qnames
                .iter()
                .map(|n| match names.iter().position(|x| x == n) {
                    Some(i) => i as u32,
                    None => {
                        names.push(n.clone());
                        (names.len() - 1) as u32
                    }
                })
                .collect();
            let qc: Vec<u32> = qcodes
                .iter()
                .map(|&x| if x == MISSING { MISSING } else { map[x as usize] })
                .collect();
            labels = Some(((c.column.clone(), qcol.clone()), rcodes, qc));
        }
    }
    let input = JointInput {
        reference: ref_norm.view(),
        query: m.norm.view(),
        labels: labels.as_ref().map(|(_, r, q)| (r.as_slice(), q.as_slice())),
    };
    let j = joint_analysis(&input, &params).map_err(analysis_err)?;
    let nr = ref_norm.nrows();
    Ok(JointResult {
        summary: JointSummary {
            cells: (nr, m.norm.nrows()),
            resolution: reference.resolution,
            n_clusters: j.n_clusters,
            alignment: j.alignment,
            labels: labels.map(|(names, _, _)| names),
            all: j.all,
            query: j.query,
            query_only_clusters: j.query_only_clusters,
        },
        query_clusters: j.clusters[nr..].to_vec(),
    })
}

/// Writes `obs['joint_cluster']` and `uns['inmf']['mapping']['joint']`.
pub(crate) fn write_joint(writer: &mut ResultWriter, j: &JointResult) -> Result<(), DriverError> {
    let s = &j.summary;
    let names: Vec<String> = (0..s.n_clusters).map(|c| c.to_string()).collect();
    let mut a = writer
        .file_mut()
        .categorical_column(Axis::Obs, "joint_cluster", &names, false)?;
    let codes: Vec<i32> = j.query_clusters.iter().map(|&c| c as i32).collect();
    a.append(&codes)?;
    a.finish()?;
    let key = |k: &str| format!("inmf/mapping/joint/{k}");
    writer.write_uns(&key("n_clusters"), UnsValue::I64(s.n_clusters as i64))?;
    writer.write_uns(&key("resolution"), UnsValue::F64(s.resolution))?;
    writer.write_uns(&key("reference_cells"), UnsValue::I64(s.cells.0 as i64))?;
    if let Some(a) = s.alignment {
        writer.write_uns(&key("alignment"), UnsValue::F64(a))?;
    }
    let only: Vec<i64> = s.query_only_clusters.iter().map(|&c| i64::from(c)).collect();
    writer.write_uns(&key("query_only_clusters"), UnsValue::I64s(&only))?;
    if let Some((r, q)) = &s.labels {
        writer.write_uns(&key("labels_reference"), UnsValue::Str(r))?;
        writer.write_uns(&key("labels_query"), UnsValue::Str(q))?;
    }
    if let Some(a) = &s.all {
        writer.write_uns(&key("ari"), UnsValue::F64(a.ari))?;
        writer.write_uns(&key("nmi"), UnsValue::F64(a.nmi))?;
        writer.write_uns(&key("purity"), UnsValue::F64(a.purity))?;
        writer.write_uns(&key("labelled_cells"), UnsValue::I64(a.cells as i64))?;
    }
    if let Some(a) = &s.query {
        writer.write_uns(&key("query_ari"), UnsValue::F64(a.ari))?;
        writer.write_uns(&key("query_nmi"), UnsValue::F64(a.nmi))?;
        writer.write_uns(&key("query_purity"), UnsValue::F64(a.purity))?;
    }
    Ok(())
}
