//! # inmf-analysis — from factor loadings to answers
//!
//! Reads the cell loadings H of an integrative NMF (cells × K, all datasets)
//! and produces what a user of an integrated atlas needs: quantile-normalized
//! factors, a kNN graph, joint clusters, a 2-D map, integration metrics and
//! plots. It knows nothing of files or of the learner: the driver reads H
//! and writes results. Section numbers refer to `docs/algorithms.md`.
//!
//! | step | module | method |
//! |---|---|---|
//! | quantile normalization | [`quantile_normalize`] | rliger `quantileNorm` (§10): arg-max of the RMS-scaled factors, refined by an in-place k = 20 kNN vote on H, type-7 quantiles at 0, 1/50, …, 1 of ≤ 1000 sampled values of H mapped piecewise-linearly onto the reference's |
//! | kNN graph | [`knn()`] | exact up to 20,000 cells, else NN-descent (deterministic, recall reported) |
//! | clustering | [`ClusterGraph`], [`choose_resolution`], [`cluster_from_data`], [`resolution_for_clusters`] | Leiden or Louvain (modularity, resolution γ) on the Jaccard SNN graph (Seurat's `ComputeSNN`), pruned at 1/15; γ given, chosen from the data (mean silhouette of the plateaus of cluster counts over γ = 2^(−j/4); above 200,000 cells the clusters at that γ come from the scan's micro-clusters), or found for a number of clusters |
//! | 2-D map | [`umap()`], [`umap_subsampled`] | UMAP: fuzzy simplicial set, PCA init, SGD with negative sampling, `a`, `b` from `min_dist`; above 200,000 cells fitted on a subsample stratified by dataset, the other cells placed by umap-learn's `transform` |
//! | metrics | [`alignment()`], [`kbet()`], [`adjusted_rand_index`], [`normalized_mutual_info`], [`normalized_mutual_info_rliger`], [`purity`], [`silhouette()`] | §10 |
//! | reference mapping | [`transfer_labels`], [`smoothed_residuals`], [`umap_transform`], [`joint_analysis`] | kNN label vote with confidence, unexplained-expression score of pseudo-cells, umap-learn's `transform`, reference + query clustered together (§10.1) |
//! | plots | [`embedding_plot`], [`objective_plot`], [`composition_plot`], [`mapping_plot`], [`confusion_plot`] | PNG + SVG |
//!
//! [`analyze`] runs them in order. Every random choice draws from streams
//! named by the seed, the step and the item, and parallel work is split in
//! fixed blocks combined in a fixed order: results are identical for a seed
//! whatever the number of threads.
//!
//! ## Memory per million cells (K = 20, k = 20)
//!
//! The graph steps need every cell at once (the kNN graph, the clustering
//! and the layout are global), so the normalized H is held in memory, in
//! f32; what each step holds at its peak, per million cells (formulas and
//! measurements in `docs/analysis.md`):
//!
//! | step | memory per 10⁶ cells |
//! |---|---|
//! | H and normalized H (f32) | 0.16 GB, all along |
//! | quantile normalization (refinement kNN of the largest dataset) | ≤ 0.9 GB per 10⁶ cells of that dataset |
//! | kNN graph (indices + distances, kept until UMAP ends) | 0.16 GB, + ≈ 0.65 GB while NN-descent runs |
//! | SNN graph + clustering (≈ 20–30 edges per cell; `leiden-rs` builder, its sorted copy, its CSR) | ≈ 0.8–1.7 GB |
//! | UMAP (fuzzy graph, per-edge schedule, two layouts; above 200,000 cells those of a 200,000-cell subsample plus 120 bytes per other cell) | ≈ 0.5 GB, + ≈ 0.6 GB while the fuzzy union is built |
//! | metrics (a downsampled copy for alignment and kBET, samples) | < 0.1 GB |
//!
//! Measured: `inmf analyze` on 200,000 cells peaks at 362–383 MB RSS (the
//! whole process; 513–554 MB before the clustering streamed its graph and
//! H went to f32), i.e. ≈ 1.7 GB per million cells above a fixed ≈ 45 MB
//! (`scripts/bench-analyze`); the peak is the clustering step. Time grows as
//! `n log n` for the graph steps (NN-descent, clustering) and linearly for UMAP
//! (200 epochs) and the sampled metrics.
//!
//! ```
//! use inmf_analysis::{analyze, AnalysisInput, AnalysisParams};
//! use ndarray::Array2;
//! // Two datasets of 60 cells, two cell groups loading factors 0 and 1.
//! let h = Array2::from_shape_fn((120, 2), |(c, j)| if c % 2 == j { 1.0 + (c % 7) as f32 } else { 0.01 });
//! let datasets: Vec<u32> = (0..120).map(|c| (c / 60) as u32).collect();
//! let names = vec!["a".to_string(), "b".to_string()];
//! let input = AnalysisInput { h: h.view(), datasets: &datasets, dataset_names: &names, labels: None };
//! let result = analyze(&input, &AnalysisParams::new(7), &mut |_, _| {}).unwrap();
//! assert_eq!(result.umap.dim(), (120, 2));
//! println!("{}", result.metrics.table());
//! ```
#![deny(missing_docs)]

mod cluster;
mod error;
mod knn;
mod mapping;
mod mixing;
mod partition;
mod pipeline;
mod plots;
mod points;
mod quantile;
mod rng;
mod silhouette;
mod stats;
mod umap;
mod umap_fit;

pub use cluster::{
    choose_resolution, cluster, cluster_from_data, cluster_graph, cluster_knn, louvain,
    resolution_for_clusters, snn_graph, Algorithm, Candidate, ClusterCountSearch, ClusterGraph,
    ClusterParams, Graph, Partition, ResolutionChoice, ScanParams, WeightedGraph,
};
pub use error::{AnalysisError, Result};
pub use knn::{exact_knn, exact_queries, exact_query, knn, recall, KnnGraph, KnnMethod, KnnParams};
pub use mapping::joint::{joint_analysis, Agreement, Joint, JointInput, QUERY_ONLY_SHARE};
pub use mapping::novelty::{flag_unmatched, smoothed_residuals, tail_ratio, SparseRows};
pub use mapping::plots::{
    confusion_plot, mapping_plot, scale_color, ConfusionPlot, MappingPlot, QueryColors,
};
pub use mapping::transfer::{nearest_in, transfer_labels, unit_rows, Neighbors, Transferred};
pub use mapping::umap_transform::{memberships, umap_transform};
pub use mixing::{alignment, kbet, Alignment, AlignmentParams, Kbet, KbetParams};
pub use partition::{
    adjusted_rand_index, normalized_mutual_info, normalized_mutual_info_rliger, purity, Contingency, MISSING,
};
pub use pipeline::{
    analyze, Analysis, AnalysisInput, AnalysisParams, ClusteringInfo, KnnInfo, Labels, Metrics,
    ResolutionOutcome, ResolutionRule,
};
pub use plots::{color, composition_plot, embedding_plot, objective_plot, MAX_PNG_POINTS, MAX_SVG_POINTS};
pub use points::{sq_dist, Points};
pub use quantile::{quantile_normalize, quantiles_type7, QuantileNormalized, QuantileParams, Warp};
pub use silhouette::silhouette;
pub use umap::{find_ab, fuzzy_graph, umap, FuzzyGraph, UmapParams};
pub use umap_fit::{stratified_sample, umap_subsampled, SampledUmap};

/// Helpers shared by the tests of several modules.
#[cfg(test)]
pub(crate) mod test_util {
    /// Runs `f` on a rayon pool of `threads` threads.
    pub(crate) fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool")
            .install(f)
    }
}
