//! The whole analysis of one factorization: quantile normalization → kNN
//! graph → clusters (resolution chosen from the data, given, or found for
//! a number of clusters) → UMAP → metrics.

use std::time::Instant;

use ndarray::{Array2, ArrayView2};

use crate::cluster::{
    cluster_from_data, resolution_for_clusters, Algorithm, ClusterCountSearch, ClusterGraph, ClusterParams,
    ResolutionChoice, ScanParams,
};
use crate::error::{AnalysisError, Result};
use crate::knn::{knn, recall, KnnParams};
use crate::mixing::{alignment, kbet, Alignment, AlignmentParams, KbetParams};
use crate::partition::{adjusted_rand_index, normalized_mutual_info, normalized_mutual_info_rliger, purity};
use crate::points::Points;
use crate::quantile::{quantile_normalize, QuantileParams};
use crate::silhouette::silhouette;
use crate::umap::UmapParams;
use crate::umap_fit::umap_subsampled;

/// Every parameter of [`analyze`]; [`AnalysisParams::new`] gives the
/// documented defaults with one seed for every random choice.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisParams {
    /// Quantile normalization (reference, quantiles, refinement).
    pub quantile: QuantileParams,
    /// The joint kNN graph on normalized H (k = 20, self included); UMAP
    /// uses its first `umap.n_neighbors` columns.
    pub knn: KnnParams,
    /// Clustering: algorithm, seed, iterations, starts (its `resolution`
    /// is used only with [`ResolutionRule::Given`]).
    pub cluster: ClusterParams,
    /// How the resolution is set.
    pub resolution: ResolutionRule,
    /// UMAP layout.
    pub umap: UmapParams,
    /// Above this many cells the UMAP layout is fitted on a subsample of
    /// this many (stratified by dataset) and the other cells are placed on
    /// it by umap-learn's transform ([`umap_subsampled`]); 0 = always fit
    /// on every cell. Default 200,000: UMAP resolves a population once it
    /// holds more points than `n_neighbors` = 15, and a subsample of
    /// 200,000 keeps ≈ 20 points of a population of 1 in 10,000 cells, so
    /// every population an atlas can resolve at 10,000 cells per type
    /// still gets its own place, while the fit's cost stops growing with
    /// the atlas (the transform is linear, with 30 epochs instead of 200).
    pub umap_fit_cells: usize,
    /// Alignment score.
    pub alignment: AlignmentParams,
    /// kBET.
    pub kbet: KbetParams,
    /// Cells sampled for the silhouette. Default 4,000.
    pub silhouette_sample: usize,
    /// Query cells for the kNN recall check against exact search
    /// (0 = skip; only run when the graph is approximate). Default 500.
    pub recall_queries: usize,
}

impl AnalysisParams {
    /// Defaults with `seed` for every random choice.
    pub fn new(seed: u64) -> Self {
        let mut p = Self {
            quantile: QuantileParams::default(),
            knn: KnnParams::default(),
            cluster: ClusterParams::default(),
            resolution: ResolutionRule::default(),
            umap: UmapParams::default(),
            umap_fit_cells: 200_000,
            alignment: AlignmentParams::default(),
            kbet: KbetParams::default(),
            silhouette_sample: 4_000,
            recall_queries: 500,
        };
        p.set_seed(seed);
        p
    }

    /// Sets the seed of every step.
    pub fn set_seed(&mut self, seed: u64) {
        self.quantile.seed = seed;
        self.quantile.knn.seed = seed;
        self.knn.seed = seed;
        self.cluster.seed = seed;
        self.umap.seed = seed;
        self.alignment.seed = seed;
        self.kbet.seed = seed;
    }
}

impl Default for AnalysisParams {
    fn default() -> Self {
        Self::new(1)
    }
}

/// How the clustering resolution γ is set.
#[derive(Clone, Debug, PartialEq)]
pub enum ResolutionRule {
    /// Chosen from the data ([`cluster_from_data`]).
    FromData(ScanParams),
    /// `params.cluster.resolution`.
    Given,
    /// The resolution that gives this many clusters
    /// ([`resolution_for_clusters`]).
    Clusters(usize),
}

impl Default for ResolutionRule {
    fn default() -> Self {
        ResolutionRule::FromData(ScanParams::default())
    }
}

/// How the resolution was set, with the evidence.
#[derive(Clone, Debug, PartialEq)]
pub enum ResolutionOutcome {
    /// Chosen from the data: the candidates and their scores.
    FromData(ResolutionChoice),
    /// Given.
    Given,
    /// Searched for a number of clusters.
    Clusters(ClusterCountSearch),
}

/// The clustering of an analysis.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusteringInfo {
    /// Leiden or Louvain.
    pub algorithm: Algorithm,
    /// The resolution γ of the clusters.
    pub resolution: f64,
    /// Modularity of the clusters at γ.
    pub modularity: f64,
    /// How γ was set.
    pub outcome: ResolutionOutcome,
}

impl ClusteringInfo {
    /// One line: the resolution and why.
    pub fn explain(&self) -> String {
        match &self.outcome {
            ResolutionOutcome::FromData(c) => c.explain(),
            ResolutionOutcome::Given => format!("resolution {} (given)", self.resolution),
            ResolutionOutcome::Clusters(s) => s.explain(),
        }
    }
}

/// Cell labels (e.g. simulated cell types): `codes[c]` indexes `names`,
/// [`crate::MISSING`] for an unlabelled cell.
#[derive(Clone, Copy, Debug)]
pub struct Labels<'a> {
    /// One code per cell.
    pub codes: &'a [u32],
    /// Label names.
    pub names: &'a [String],
}

/// What [`analyze`] reads.
#[derive(Clone, Copy, Debug)]
pub struct AnalysisInput<'a> {
    /// H, cells × K (rows of all datasets), in f32: the analysis needs no
    /// more precision and this halves the largest input.
    pub h: ArrayView2<'a, f32>,
    /// Dataset of each cell, indexing `dataset_names`.
    pub datasets: &'a [u32],
    /// Dataset names.
    pub dataset_names: &'a [String],
    /// Known labels, if any (enable ARI, NMI, purity).
    pub labels: Option<Labels<'a>>,
}

/// The integration metrics (docs/algorithms.md §10). `None` where undefined:
/// dataset-mixing scores with a single dataset, label-based scores without
/// labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    /// Alignment (1 = datasets perfectly mixed).
    pub alignment: Option<f64>,
    /// kBET acceptance rate.
    pub kbet_acceptance: Option<f64>,
    /// Mean silhouette width of the joint clusters on normalized H.
    pub silhouette: Option<f64>,
    /// Adjusted Rand index of clusters vs labels.
    pub ari: Option<f64>,
    /// Normalized mutual information of clusters vs labels (arithmetic-mean
    /// normalization, scikit-learn's default).
    pub nmi: Option<f64>,
    /// The same, normalized as rliger's `calcNMI` (geometric mean).
    pub nmi_rliger: Option<f64>,
    /// Purity of clusters w.r.t. labels.
    pub purity: Option<f64>,
    /// Mean silhouette width of the labels on normalized H.
    pub silhouette_labels: Option<f64>,
}

impl Metrics {
    /// `(key, value)` of the defined metrics, in a fixed order; keys are
    /// those of `uns['inmf']['metrics']`.
    pub fn entries(&self) -> Vec<(&'static str, f64)> {
        [
            ("ari", self.ari),
            ("nmi", self.nmi),
            ("nmi_rliger", self.nmi_rliger),
            ("purity", self.purity),
            ("alignment", self.alignment),
            ("kbet_acceptance", self.kbet_acceptance),
            ("silhouette", self.silhouette),
            ("silhouette_labels", self.silhouette_labels),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }

    /// A plain-text table of every metric ("n/a" where undefined, with why).
    pub fn table(&self) -> String {
        let rows: [(&str, Option<f64>, &str, &str); 8] = [
            ("ARI", self.ari, "clusters vs labels; 1 = identical", "no labels"),
            ("NMI", self.nmi, "clusters vs labels; 1 = identical", "no labels"),
            (
                "NMI (rliger)",
                self.nmi_rliger,
                "the same, normalized by √(H·H) as calcNMI",
                "no labels",
            ),
            (
                "purity",
                self.purity,
                "majority label share per cluster",
                "no labels",
            ),
            (
                "alignment",
                self.alignment,
                "dataset mixing; 1 = perfect, 0 = separate",
                "one dataset",
            ),
            (
                "kBET acceptance",
                self.kbet_acceptance,
                "neighbourhoods like the whole",
                "one dataset",
            ),
            (
                "silhouette",
                self.silhouette,
                "cluster separation, -1..1",
                "one cluster",
            ),
            (
                "silhouette (labels)",
                self.silhouette_labels,
                "label separation, -1..1",
                "no labels",
            ),
        ];
        let mut s = String::new();
        for (name, v, what, why) in rows {
            match v {
                Some(v) => s.push_str(&format!("  {name:<20} {v:>7.4}   {what}\n")),
                None => s.push_str(&format!("  {name:<20} {:>7}   ({why})\n", "n/a")),
            }
        }
        s
    }
}

/// Facts about the kNN graph of an analysis.
#[derive(Clone, Debug, PartialEq)]
pub struct KnnInfo {
    /// Neighbours per cell (self included).
    pub k: usize,
    /// True when found by NN-descent.
    pub approximate: bool,
    /// NN-descent iterations.
    pub iterations: usize,
    /// Recall against exact search on a sample (approximate graphs only).
    pub recall: Option<f64>,
}

/// The results of [`analyze`].
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// Quantile-normalized H, cells × K (f32, the copy every neighbour
    /// search read).
    pub h_norm: Array2<f32>,
    /// UMAP layout, cells × 2.
    pub umap: Array2<f32>,
    /// Cells the UMAP layout was fitted on when it was fitted on a
    /// subsample (`None`: on every cell).
    pub umap_fit_cells: Option<usize>,
    /// Joint cluster of each cell (0 = largest).
    pub clusters: Vec<u32>,
    /// Number of clusters.
    pub n_clusters: usize,
    /// Refined arg-max factor of each cell (quantile normalization's labels).
    pub factor_labels: Vec<u32>,
    /// Reference dataset of the quantile normalization.
    pub reference: usize,
    /// The metrics.
    pub metrics: Metrics,
    /// The kNN graph.
    pub knn: KnnInfo,
    /// Alignment facts (neighbourhood size `k`, cells sampled, queries).
    pub alignment: Option<Alignment>,
    /// Edges of the shared-nearest-neighbour graph that was clustered.
    pub snn_edges: usize,
    /// Algorithm, resolution and how it was set.
    pub clustering: ClusteringInfo,
    /// Wall time of each step, seconds, in order.
    pub seconds: Vec<(&'static str, f64)>,
}

/// Runs the whole analysis (module doc of the crate); `progress` is called
/// after each step with its name and wall time in seconds.
pub fn analyze(
    input: &AnalysisInput<'_>,
    params: &AnalysisParams,
    progress: &mut dyn FnMut(&str, f64),
) -> Result<Analysis> {
    let n = input.h.nrows();
    let nd = input.dataset_names.len();
    if input.datasets.len() != n {
        return Err(AnalysisError::InvalidData(format!(
            "H has {n} cells but {} dataset codes were given",
            input.datasets.len()
        )));
    }
    if let Some(l) = &input.labels {
        if l.codes.len() != n {
            return Err(AnalysisError::InvalidData(format!(
                "H has {n} cells but {} labels were given",
                l.codes.len()
            )));
        }
    }
    if n < 3 {
        return Err(AnalysisError::InvalidData(format!(
            "{n} cells are too few to analyse"
        )));
    }
    let mut seconds = Vec::new();
    let mut record = |name: &'static str, s: f64, seconds: &mut Vec<(&'static str, f64)>| {
        progress(name, s);
        seconds.push((name, s));
    };

    let t = Instant::now();
    let qn = quantile_normalize(input.h, input.datasets, nd, &params.quantile)?;
    record("quantile normalization", t.elapsed().as_secs_f64(), &mut seconds);

    let t = Instant::now();
    let points = Points::from_array(qn.h)?;
    let k = params.knn.k.max(params.umap.n_neighbors);
    let graph = knn(
        &points,
        &KnnParams {
            k,
            ..params.knn.clone()
        },
    )?;
    record("kNN graph", t.elapsed().as_secs_f64(), &mut seconds);
    let mut info = KnnInfo {
        k: graph.k(),
        approximate: graph.approximate,
        iterations: graph.iterations,
        recall: None,
    };
    if graph.approximate && params.recall_queries > 0 {
        let t = Instant::now();
        info.recall = Some(recall(&points, &graph, params.recall_queries, params.knn.seed));
        record("kNN recall check", t.elapsed().as_secs_f64(), &mut seconds);
    }

    let t = Instant::now();
    let cg = ClusterGraph::from_knn(
        &graph,
        params.knn.k,
        params.cluster.prune,
        params.cluster.algorithm,
    )?;
    let snn_edges = cg.edge_count();
    let (partition, resolution, outcome) = match &params.resolution {
        ResolutionRule::Given => (
            cg.partition(&params.cluster)?,
            params.cluster.resolution,
            ResolutionOutcome::Given,
        ),
        ResolutionRule::FromData(scan) => {
            let (choice, p) = cluster_from_data(&cg, &points, &params.cluster, scan)?;
            (p, choice.resolution, ResolutionOutcome::FromData(choice))
        }
        ResolutionRule::Clusters(target) => {
            let (search, p) = resolution_for_clusters(&cg, *target, &params.cluster)?;
            (p, search.resolution, ResolutionOutcome::Clusters(search))
        }
    };
    drop(cg);
    let clustering = ClusteringInfo {
        algorithm: params.cluster.algorithm,
        resolution,
        modularity: partition.modularity,
        outcome,
    };
    let (clusters, n_clusters) = (partition.membership, partition.count);
    record("clustering", t.elapsed().as_secs_f64(), &mut seconds);

    let sampled = umap_subsampled(
        &points,
        &graph,
        input.datasets,
        nd,
        params.umap_fit_cells,
        &params.knn,
        &params.umap,
    )?;
    drop(graph);
    for &(name, s) in &sampled.seconds {
        record(name, s, &mut seconds);
    }

    let t = Instant::now();
    let datasets_present = {
        let mut seen = vec![false; nd];
        for &d in input.datasets {
            if let Some(s) = seen.get_mut(d as usize) {
                *s = true;
            }
        }
        seen.iter().filter(|&&x| x).count()
    };
    let (align, kb) = if datasets_present >= 2 {
        let a = alignment(&points, input.datasets, nd, &params.alignment)?;
        let kb = kbet(&points, input.datasets, nd, &params.kbet)?;
        (Some(a), Some(kb))
    } else {
        (None, None)
    };
    let sil = if n_clusters >= 2 {
        Some(silhouette(
            &points,
            &clusters,
            params.silhouette_sample,
            params.cluster.seed,
        )?)
    } else {
        None
    };
    let mut metrics = Metrics {
        alignment: align.as_ref().map(|a| a.score),
        kbet_acceptance: kb.as_ref().map(|k| k.acceptance),
        silhouette: sil,
        ari: None,
        nmi: None,
        nmi_rliger: None,
        purity: None,
        silhouette_labels: None,
    };
    if let Some(l) = &input.labels {
        if l.codes.iter().any(|&c| c != crate::MISSING) {
            metrics.ari = Some(adjusted_rand_index(&clusters, l.codes)?);
            metrics.nmi = Some(normalized_mutual_info(&clusters, l.codes)?);
            metrics.nmi_rliger = Some(normalized_mutual_info_rliger(&clusters, l.codes)?);
            metrics.purity = Some(purity(&clusters, l.codes)?);
            metrics.silhouette_labels =
                silhouette(&points, l.codes, params.silhouette_sample, params.cluster.seed).ok();
        }
    }
    record("metrics", t.elapsed().as_secs_f64(), &mut seconds);

    Ok(Analysis {
        h_norm: points.into_array(),
        umap: sampled.layout,
        umap_fit_cells: sampled.fit_cells,
        clusters,
        n_clusters,
        factor_labels: qn.labels,
        reference: qn.reference,
        metrics,
        knn: info,
        alignment: align,
        snn_edges,
        clustering,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Fast;

    /// Two datasets × three cell groups; group g loads factor g (plus noise),
    /// dataset 1 scaled and shifted (a batch effect quantile normalization removes).
    fn atlas() -> (Array2<f64>, Vec<u32>, Vec<u32>) {
        let mut r = Fast::new(21, &[]);
        let n = 1500;
        let mut h = Array2::zeros((n, 4));
        let (mut ds, mut lab) = (Vec::new(), Vec::new());
        for c in 0..n {
            let (d, g) = ((c >= 800) as usize, c % 3);
            for j in 0..4 {
                h[[c, j]] = 0.4 * r.unit();
            }
            let v = 2.0 + r.unit();
            h[[c, g]] = if d == 0 { v } else { 3.0 * v * v };
            ds.push(d as u32);
            lab.push(g as u32);
        }
        (h, ds, lab)
    }

    #[test]
    fn recovers_groups_mixes_datasets_and_is_thread_independent() {
        let (h, ds, lab) = atlas();
        let h = h.mapv(|v| v as f32);
        let names = vec!["a".to_string(), "b".to_string()];
        let groups = vec!["g0".to_string(), "g1".to_string(), "g2".to_string()];
        let input = AnalysisInput {
            h: h.view(),
            datasets: &ds,
            dataset_names: &names,
            labels: Some(Labels {
                codes: &lab,
                names: &groups,
            }),
        };
        let mut steps = Vec::new();
        // Uniform blobs: modularity splits each in several at resolution 1.
        let mut params = AnalysisParams::new(3);
        params.cluster.resolution = 0.1;
        params.resolution = ResolutionRule::Given;
        let a = analyze(&input, &params, &mut |s, _| steps.push(s.to_string())).unwrap();
        assert!((3..=6).contains(&a.n_clusters), "{:?}", a.metrics);
        assert_eq!(steps.len(), 5, "{steps:?}"); // exact kNN: no recall step
        assert!(a.metrics.ari.unwrap() > 0.7, "{:?}", a.metrics);
        assert!(a.metrics.purity.unwrap() > 0.95);
        assert!(a.metrics.alignment.unwrap() > 0.8, "{:?}", a.metrics);
        assert_eq!(a.umap.dim(), (1500, 2));
        assert_eq!(a.h_norm.dim(), (1500, 4));
        let keys: Vec<&str> = a.metrics.entries().iter().map(|e| e.0).collect();
        assert_eq!(
            keys,
            [
                "ari",
                "nmi",
                "nmi_rliger",
                "purity",
                "alignment",
                "kbet_acceptance",
                "silhouette",
                "silhouette_labels"
            ]
        );
        assert!(a.metrics.table().contains("ARI"));
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| analyze(&input, &params, &mut |_, _| {}).unwrap());
        assert!(a.h_norm == one.h_norm, "h_norm differs");
        assert!(a.clusters == one.clusters, "clusters differ");
        assert!(a.umap == one.umap, "umap differs");
        assert!(a.metrics == one.metrics, "metrics differ");
        // Without labels the label-based metrics are undefined.
        let plain = AnalysisInput {
            labels: None,
            ..input
        };
        let b = analyze(&plain, &AnalysisParams::new(3), &mut |_, _| {}).unwrap();
        assert!(b.metrics.ari.is_none() && b.metrics.table().contains("n/a"));
        assert!(analyze(
            &AnalysisInput {
                datasets: &ds[..5],
                ..plain
            },
            &AnalysisParams::new(3),
            &mut |_, _| {}
        )
        .is_err());
    }
}
