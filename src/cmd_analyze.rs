//! `inmf analyze`: quantile normalization, clustering, UMAP, metrics and
//! plots of a finished run (docs/algorithms.md §10).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use inmf_driver::{run_analyze, AnalyzeRequest, AnalyzeSummary, ClusterAlgorithm};

/// Community detection on the SNN graph.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlgorithmArg {
    /// Leiden (Traag et al. 2019), rliger's default.
    Leiden,
    /// Louvain (Blondel et al. 2008), rliger's `method = "louvain"`.
    Louvain,
}

/// Analyse a run: quantile-normalize H (rliger quantileNorm), build a kNN
/// graph, cluster it (Leiden or Louvain, at a resolution chosen from the
/// data unless --resolution or --n-clusters is given), embed it (UMAP),
/// score the integration
/// (alignment, kBET, silhouette; ARI, NMI, purity against --labels) and
/// plot it. Adds obsm['X_inmf_norm'], obsm['X_umap'], obs['cluster'] and
/// `uns['inmf']['metrics']` to RUN_DIR/result.h5ad (rewritten atomically) and
/// writes PNG and SVG plots to --out. Same seed, same results, whatever the
/// number of threads.
#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// Output directory of `inmf run` (holds result.h5ad and model.h5).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
    /// Cell labels for ARI, NMI and purity: an obs column of result.h5ad or
    /// of the input .h5ad files (e.g. the simulator's cell_type).
    #[arg(long, value_name = "COLUMN")]
    pub labels: Option<String>,
    /// Modularity resolution γ (higher → more clusters; 1 is rliger's
    /// default) [default: chosen from the data: the number of clusters
    /// whose partitions have the highest mean silhouette over resolutions
    /// 1, 2^-1/4, 2^-1/2, … (docs/analysis.md)].
    #[arg(long, conflicts_with = "n_clusters")]
    pub resolution: Option<f64>,
    /// Find the resolution that gives N clusters (bisection on the
    /// resolution; says so when N cannot be reached exactly).
    #[arg(long, value_name = "N")]
    pub n_clusters: Option<usize>,
    /// Community detection algorithm.
    #[arg(long, value_enum, default_value_t = AlgorithmArg::Leiden)]
    pub algorithm: AlgorithmArg,
    /// Reference dataset of the quantile normalization [default: the largest].
    #[arg(long, value_name = "NAME")]
    pub reference: Option<String>,
    /// Directory for the plots [default: RUN_DIR/analysis].
    #[arg(long, short, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Worker threads; 0 = one per core (the results do not depend on it).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Above N cells, fit UMAP on a subsample of N cells (each dataset in
    /// proportion, seeded) and place the other cells on that layout with
    /// umap-learn's transform; 0 = fit on every cell. The default keeps
    /// ≈ 20 cells of a population of 1 in 10,000 in the fit, more than
    /// UMAP's 15 neighbours (docs/analysis.md).
    #[arg(long, value_name = "N", default_value_t = AnalyzeRequest::new("").umap_fit_cells)]
    pub umap_fit_cells: usize,
    /// Print only the metrics table and plot paths (no progress).
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the summary as one JSON object on stdout (for scripts), no progress.
    #[arg(long)]
    pub json: bool,
}

/// Runs `inmf analyze`.
pub fn run(args: AnalyzeArgs) -> anyhow::Result<()> {
    let req = AnalyzeRequest {
        run_dir: args.run_dir.clone(),
        labels: args.labels,
        resolution: args.resolution,
        n_clusters: args.n_clusters,
        algorithm: match args.algorithm {
            AlgorithmArg::Leiden => ClusterAlgorithm::Leiden,
            AlgorithmArg::Louvain => ClusterAlgorithm::Louvain,
        },
        reference: args.reference,
        out_dir: args.out,
        seed: args.seed,
        threads: args.threads,
        umap_fit_cells: args.umap_fit_cells,
    };
    let quiet = args.quiet || args.json;
    let summary = run_analyze(&req, &mut |line| {
        if !quiet {
            inmf_driver::log::line(&format!("  {line}"));
        }
    })
    .with_context(|| format!("inmf analyze of {} failed", args.run_dir.display()))?;
    if args.json {
        inmf_driver::log::out(&format!("{}\n", summary_json(&summary)));
    } else {
        inmf_driver::log::out(&summary.to_string());
    }
    Ok(())
}

/// The summary as JSON; `metrics` has the keys of `uns['inmf']['metrics']`.
fn summary_json(s: &AnalyzeSummary) -> serde_json::Value {
    let metrics: serde_json::Map<String, serde_json::Value> = s
        .metrics
        .entries()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into()))
        .collect();
    let seconds: serde_json::Map<String, serde_json::Value> =
        s.seconds.iter().map(|(k, v)| (k.clone(), (*v).into())).collect();
    serde_json::json!({
        "result": s.result,
        "cells": s.cells,
        "k": s.k,
        "datasets": s.datasets.iter().map(|(n, c)| serde_json::json!({"name": n, "cells": c})).collect::<Vec<_>>(),
        "reference": s.reference,
        "labels": s.labels.as_ref().map(|(column, from)| serde_json::json!({
            "column": column,
            "from": from,
            "types": s.label_types,
        })),
        "clusters": s.n_clusters,
        "snn_edges": s.snn_edges,
        "metrics": metrics,
        "knn": {"k": s.knn.k, "approximate": s.knn.approximate, "recall": s.knn.recall},
        "plots": s.plots,
        "seconds": seconds,
        "total_seconds": s.total_seconds,
        "peak_rss_mb": s.peak_rss_bytes.map(|b| b as f64 / 1048576.0),
    })
}
