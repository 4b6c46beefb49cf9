//! # inmf-analysis — from factor loadings to answers
//!
//! Reads the cell loadings H of an integrative NMF (cells × K, all datasets)
//! and produces what a user of an integrated atlas needs: quantile-normalized
//! factors, a kNN graph, joint clusters, a 2-D map, integration metrics and
//! plots. It knows nothing of files or of the learner: the driver reads H
//! and writes results. Section numbers refer to `shared/ALGORITHMS.md`.
//!
//! | step | module | method |
//! |---|---|---|
//! | quantile normalization | [`quantile_normalize`] | rliger `quantileNorm` (§10): RMS scaling (n − 1), arg-max labels refined by a k = 20 kNN vote, type-7 quantiles at 0, 1/50, …, 1 of ≤ 1000 sampled values mapped piecewise-linearly onto the reference's |
//! | kNN graph | [`knn()`] | exact up to 20,000 cells, else NN-descent (deterministic, recall reported) |
//! | clustering | [`cluster()`] | Leiden (modularity, resolution γ) on the Jaccard SNN graph, pruned at 1/15 |
//! | 2-D map | [`umap()`] | UMAP: fuzzy simplicial set, PCA init, SGD with negative sampling, `a`, `b` from `min_dist` |
//! | metrics | [`alignment()`], [`kbet()`], [`adjusted_rand_index`], [`normalized_mutual_info`], [`purity`], [`silhouette()`] | §10 |
//! | plots | [`embedding_plot`], [`objective_plot`], [`composition_plot`] | PNG + SVG |
//!
//! [`analyze`] runs them in order. Every random choice draws from streams
//! named by the seed, the step and the item, and parallel work is split in
//! fixed blocks combined in a fixed order: results are identical for a seed
//! whatever the number of threads.
//!
//! ## Memory per million cells (K = 20)
//!
//! The steps hold the whole H in memory (the kNN graph, the clustering and
//! the layout need every cell at once); what each adds at its peak:
//!
//! | step | memory per 10⁶ cells |
//! |---|---|
//! | H and normalized H (f64) and an f32 copy for distances | 0.4 GB |
//! | quantile normalization (largest dataset's kNN, new values) | ≤ 0.5 GB |
//! | kNN graph, k = 20 (indices + distances) | 0.16 GB (+ 0.7 GB NN-descent working set) |
//! | SNN graph + Leiden (edge list and CSR in `leiden-rs`) | ≈ 1.5 GB |
//! | UMAP (fuzzy graph, per-edge schedule, two layouts) | ≈ 1 GB |
//! | metrics (samples only) | < 0.1 GB |
//!
//! so about 3 GB per million cells at the peak (measured: see the driver's
//! `inmf analyze` documentation and `scripts/bench-analyze`).
//!
//! ```
//! use inmf_analysis::{analyze, AnalysisInput, AnalysisParams};
//! use ndarray::Array2;
//! // Two datasets of 60 cells, two cell groups loading factors 0 and 1.
//! let h = Array2::from_shape_fn((120, 2), |(c, j)| if c % 2 == j { 1.0 + (c % 7) as f64 } else { 0.01 });
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

pub use cluster::{cluster, leiden, snn_graph, ClusterParams, WeightedGraph};
pub use error::{AnalysisError, Result};
pub use knn::{exact_knn, exact_query, knn, recall, KnnGraph, KnnMethod, KnnParams};
pub use mixing::{alignment, kbet, Alignment, AlignmentParams, Kbet, KbetParams};
pub use partition::{adjusted_rand_index, normalized_mutual_info, purity, Contingency, MISSING};
pub use pipeline::{analyze, Analysis, AnalysisInput, AnalysisParams, KnnInfo, Labels, Metrics};
pub use plots::{color, composition_plot, embedding_plot, objective_plot, MAX_PNG_POINTS, MAX_SVG_POINTS};
pub use points::{sq_dist, Points};
pub use quantile::{quantile_normalize, quantiles_type7, QuantileNormalized, QuantileParams, Warp};
pub use silhouette::silhouette;
pub use umap::{find_ab, fuzzy_graph, umap, FuzzyGraph, UmapParams};
