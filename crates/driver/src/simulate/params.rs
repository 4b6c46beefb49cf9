//! The simulator's parameters: every default documented, checked once.

use serde::{Deserialize, Serialize};

use crate::DriverError;

/// File format of the simulated datasets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// AnnData `DIR/<name>.h5ad`: X = CSR raw counts stored as float32 (as
    /// most public `.h5ad` files store counts; exact up to 2²⁴), obs index
    /// `<name>_cellC`, obs `cell_type` (categories `type1..typeT`, all of
    /// them even when some are missing) and `dataset` (categories: every
    /// dataset name, so files concatenate cleanly), var index `geneG`.
    H5ad,
    /// 10x Genomics v3 `DIR/<name>.h5` (int32 counts) plus
    /// `DIR/<name>_labels.tsv` (barcode, cell_type, with a header line).
    #[serde(rename = "10x")]
    TenX,
}

/// Compression of the count matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression: largest files, fastest to write and read.
    None,
    /// gzip (deflate) at the given level 0–9, readable everywhere.
    Gzip(u8),
}

/// One value for every dataset or one per dataset (TOML: `cells = 5000`
/// or `cells = [5000, 8000, 3000]`).
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(usize),
    Many(Vec<usize>),
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<usize>, D::Error> {
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(n) => vec![n],
        OneOrMany::Many(v) => v,
    })
}

/// Parameters of the Splatter-like multi-batch simulation
/// (`docs/algorithms.md` §11). Unchecked: [`check`](Self::check) turns
/// them into a runnable [`Simulation`](super::Simulation).
///
/// Model, for cell c of dataset (batch) b and cell type t, gene g:
///
/// - gene base mean μ_g ~ Gamma(shape `mean_shape`, rate `mean_rate`);
///   with probability `outlier_prob` multiplied by
///   LogNormal(`outlier_loc`, `outlier_scale`);
/// - differential expression DE_tg: with probability `de_prob` a factor
///   LogNormal(`de_loc`, `de_scale`), inverted with probability
///   `de_down_prob`; otherwise 1;
/// - batch factor β_bg ~ LogNormal(0, `batch_factor_sigma`·`batch_effect`);
/// - batch × type interaction ι_btg: with probability `interaction_prob`
///   LogNormal(0, `interaction_sigma`·`batch_effect`); otherwise 1;
/// - proportions p_btg = μ_g·DE_tg·β_bg·ι_btg / Σ_g′(μ_g′·DE_tg′·β_bg′·ι_btg′);
/// - library size L_c ~ LogNormal(`lib_locs[b mod len]`, `lib_scale`);
///   mean m_cg = L_c·p_btg;
/// - gene dispersion: BCV_g = `bcv_common`·exp(`bcv_gene_sd`·z_g),
///   z_g ~ N(0, 1);
/// - BCV_cg = (BCV_g + `bcv_trend`/√m_cg)·√(`bcv_df`/χ²_c), χ²_c ~ χ²(`bcv_df`)
///   drawn once per cell;
/// - λ_cg ~ Gamma(shape 1/BCV², scale m_cg·BCV²); count ~ Poisson(λ_cg),
///   i.e. negative binomial with mean m_cg and size 1/BCV².
///
/// The type of each cell is drawn from `type_proportions` (renormalized
/// per dataset after removing `missing_types`). Dataset indices and type
/// indices are 1-based, as in the names `batch1`, `type1`.
///
/// The defaults reproduce the shape of 10x UMI counts (`docs/algorithms.md`
/// §11); [`splatter`](Self::splatter) gives Splatter's own model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulationParams {
    /// Number of datasets (batches), named `batch1`, `batch2`, …
    /// Default: 3.
    pub datasets: usize,
    /// Cells per dataset: one value for all datasets or one per dataset.
    /// Default: `[10000]`.
    #[serde(deserialize_with = "one_or_many")]
    pub cells: Vec<usize>,
    /// Number of genes, named `gene1`, `gene2`, … Default: 2,000.
    pub genes: usize,
    /// Number of cell types, named `type1`, `type2`, … Default: 8.
    pub cell_types: usize,
    /// Relative abundance of each cell type (any non-negative weights, one
    /// per type, not all zero). Default: `None` = uniform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub type_proportions: Option<Vec<f64>>,
    /// (dataset, type) pairs, both 1-based, that get no cells; the other
    /// types' proportions are renormalized. Default: none.
    pub missing_types: Vec<(usize, usize)>,
    /// Scale of the batch effects: multiplies the log-normal σ of the
    /// per-batch gene factor and of the batch × type interaction; 0 turns
    /// batch effects off (library sizes still differ by batch).
    /// Default: 1.0.
    pub batch_effect: f64,
    /// σ of the per-batch, per-gene log-normal factor (Splatter's
    /// `batch.facScale`). Default: 0.1.
    pub batch_factor_sigma: f64,
    /// Probability that a (batch, type, gene) gets an interaction factor.
    /// Default: 0.2.
    pub interaction_prob: f64,
    /// σ of the log-normal interaction factor. Default: 0.5.
    pub interaction_sigma: f64,
    /// Probability that a gene is differentially expressed in a type.
    /// Default: 0.1.
    pub de_prob: f64,
    /// Probability that a DE factor is inverted (down-regulation).
    /// Default: 0.5.
    pub de_down_prob: f64,
    /// Location (log scale) of the DE factor. Default: 1.0.
    pub de_loc: f64,
    /// Scale (log scale) of the DE factor. Default: 0.8.
    pub de_scale: f64,
    /// Shape of the Gamma distribution of gene base means: small shapes
    /// give the long tail of rarely detected genes of real data.
    /// Default: 0.12.
    pub mean_shape: f64,
    /// Rate of the Gamma distribution of gene base means; it only scales
    /// them, and the profiles are normalized. Default: 0.3.
    pub mean_rate: f64,
    /// Probability that a gene is an expression outlier. Default: 0.05.
    pub outlier_prob: f64,
    /// Location (log scale) of the outlier factor. Default: 4.0.
    pub outlier_loc: f64,
    /// Scale (log scale) of the outlier factor. Default: 0.5.
    pub outlier_scale: f64,
    /// Log-normal location of library sizes, cycled over datasets
    /// (dataset b uses `lib_locs[(b−1) mod len]`). Default:
    /// `[8.0, 8.3, 8.6]` (medians of about 3,000, 4,000 and 5,400 counts per
    /// cell).
    pub lib_locs: Vec<f64>,
    /// Log-normal scale of library sizes. Default: 0.4.
    pub lib_scale: f64,
    /// Median over genes of the biological coefficient of variation
    /// (BCV² is the negative binomial dispersion). Default: 0.3.
    pub bcv_common: f64,
    /// σ of the per-gene log BCV around `bcv_common`. Default: 0.5.
    pub bcv_gene_sd: f64,
    /// Weight of Splatter's mean trend 1/√m_cg added to the BCV. 1 is
    /// Splatter's model, which makes every gene over-dispersed (variance ≈
    /// 2× Poisson even for the rarest genes, unlike UMI counts); 0 keeps
    /// low-count genes near Poisson. Default: 0.
    pub bcv_trend: f64,
    /// Degrees of freedom of the per-cell χ² scaling of the BCV.
    /// Default: 60.
    pub bcv_df: f64,
    /// Random seed (at most 2⁶³ − 1, a TOML integer). The output depends on
    /// the seed and parameters only, not on the number of threads or on
    /// `chunk_cells`. Default: 1.
    pub seed: u64,
    /// Output format. Default: `h5ad`.
    pub format: OutputFormat,
    /// Compression of the count matrix. Default: gzip level 4.
    pub compression: Compression,
    /// Cells generated in parallel and written at once; memory is a few
    /// chunks of cells. Default: 10,000.
    pub chunk_cells: usize,
}

impl Default for SimulationParams {
    fn default() -> Self {
        Self {
            datasets: 3,
            cells: vec![10_000],
            genes: 2_000,
            cell_types: 8,
            type_proportions: None,
            missing_types: Vec::new(),
            batch_effect: 1.0,
            batch_factor_sigma: 0.1,
            interaction_prob: 0.2,
            interaction_sigma: 0.5,
            de_prob: 0.1,
            de_down_prob: 0.5,
            de_loc: 1.0,
            de_scale: 0.8,
            mean_shape: 0.12,
            mean_rate: 0.3,
            outlier_prob: 0.05,
            outlier_loc: 4.0,
            outlier_scale: 0.5,
            lib_locs: vec![8.0, 8.3, 8.6],
            lib_scale: 0.4,
            bcv_common: 0.3,
            bcv_gene_sd: 0.5,
            bcv_trend: 0.0,
            bcv_df: 60.0,
            seed: 1,
            format: OutputFormat::H5ad,
            compression: Compression::Gzip(4),
            chunk_cells: 10_000,
        }
    }
}

/// Largest number of datasets or cell types (they index RNG streams).
pub(crate) const MAX_GROUPS: usize = u16::MAX as usize;
/// Largest number of cells per dataset (cell indices use 40 bits of the
/// RNG stream id).
pub(crate) const MAX_CELLS: usize = 1 << 40;

fn bad(msg: String) -> DriverError {
    DriverError::InvalidParameter(format!("simulation: {msg}"))
}

fn finite(name: &str, v: f64, min: f64, max: f64) -> Result<(), DriverError> {
    if !v.is_finite() || v < min || v > max {
        let range = match (min.is_finite(), max.is_finite()) {
            (true, true) => format!("between {min} and {max}"),
            (true, false) => format!("at least {min}"),
            _ => "a finite number".to_string(),
        };
        return Err(bad(format!("{name} = {v} must be {range}")));
    }
    Ok(())
}

fn positive(name: &str, v: f64) -> Result<(), DriverError> {
    if !v.is_finite() || v <= 0.0 {
        return Err(bad(format!("{name} = {v} must be a finite number > 0")));
    }
    Ok(())
}

impl SimulationParams {
    /// Splatter's gene means, dispersion trend and DE factors (the model of
    /// the online iNMF paper's simulations), with Splatter-like library
    /// sizes; everything else as in [`Default`]. Every gene is
    /// over-dispersed (BCV ≥ 1/√m), so selectGenes keeps most genes:
    /// `docs/algorithms.md` §11.
    pub fn splatter() -> Self {
        Self {
            de_loc: 0.8,
            de_scale: 0.4,
            mean_shape: 0.6,
            lib_locs: vec![7.6, 8.0, 8.4],
            lib_scale: 0.3,
            bcv_common: 0.1,
            bcv_gene_sd: 0.0,
            bcv_trend: 1.0,
            ..Self::default()
        }
    }

    /// Cells of each dataset (the single value repeated, or the list).
    pub fn cells_per_dataset(&self) -> Vec<usize> {
        if self.cells.len() == 1 {
            vec![self.cells[0]; self.datasets]
        } else {
            self.cells.clone()
        }
    }

    /// Validates every parameter (ranges first, then rules across
    /// parameters) and returns the runnable simulation. Messages name the
    /// parameter and say what is allowed.
    pub fn check(self) -> Result<super::Simulation, DriverError> {
        let p = &self;
        if p.datasets == 0 || p.datasets > MAX_GROUPS {
            return Err(bad(format!(
                "datasets = {} must be between 1 and {MAX_GROUPS}",
                p.datasets
            )));
        }
        if p.genes == 0 || p.genes > i32::MAX as usize {
            return Err(bad(format!(
                "genes = {} must be between 1 and {}",
                p.genes,
                i32::MAX
            )));
        }
        if p.cell_types == 0 || p.cell_types > MAX_GROUPS {
            return Err(bad(format!(
                "cell_types = {} must be between 1 and {MAX_GROUPS}",
                p.cell_types
            )));
        }
        if p.cells.len() != 1 && p.cells.len() != p.datasets {
            return Err(bad(format!(
                "cells has {} values for {} datasets; give one value for all or one per dataset",
                p.cells.len(),
                p.datasets
            )));
        }
        if let Some(&n) = p
            .cells
            .iter()
            .find(|&&n| n == 0 || n >= MAX_CELLS.min(i32::MAX as usize))
        {
            return Err(bad(format!(
                "cells = {n} must be between 1 and {}",
                MAX_CELLS.min(i32::MAX as usize) - 1
            )));
        }
        finite("batch_effect", p.batch_effect, 0.0, f64::INFINITY)?;
        finite("batch_factor_sigma", p.batch_factor_sigma, 0.0, f64::INFINITY)?;
        finite("interaction_prob", p.interaction_prob, 0.0, 1.0)?;
        finite("interaction_sigma", p.interaction_sigma, 0.0, f64::INFINITY)?;
        finite("de_prob", p.de_prob, 0.0, 1.0)?;
        finite("de_down_prob", p.de_down_prob, 0.0, 1.0)?;
        finite("de_loc", p.de_loc, f64::NEG_INFINITY, f64::INFINITY)?;
        finite("de_scale", p.de_scale, 0.0, f64::INFINITY)?;
        positive("mean_shape", p.mean_shape)?;
        positive("mean_rate", p.mean_rate)?;
        finite("outlier_prob", p.outlier_prob, 0.0, 1.0)?;
        finite("outlier_loc", p.outlier_loc, f64::NEG_INFINITY, f64::INFINITY)?;
        finite("outlier_scale", p.outlier_scale, 0.0, f64::INFINITY)?;
        if p.lib_locs.is_empty() {
            return Err(bad(
                "lib_locs is empty; give at least one log library size, e.g. [8.0]".into(),
            ));
        }
        for &l in &p.lib_locs {
            finite("lib_locs entry", l, -50.0, 50.0)?;
        }
        finite("lib_scale", p.lib_scale, 0.0, f64::INFINITY)?;
        finite("bcv_common", p.bcv_common, 0.0, f64::INFINITY)?;
        finite("bcv_gene_sd", p.bcv_gene_sd, 0.0, f64::INFINITY)?;
        finite("bcv_trend", p.bcv_trend, 0.0, f64::INFINITY)?;
        positive("bcv_df", p.bcv_df)?;
        if p.seed > i64::MAX as u64 {
            return Err(bad(format!(
                "seed = {} must be at most {} (a TOML integer)",
                p.seed,
                i64::MAX
            )));
        }
        if p.chunk_cells == 0 {
            return Err(bad("chunk_cells = 0 must be at least 1".into()));
        }
        if let Compression::Gzip(level) = p.compression {
            if level > 9 {
                return Err(bad(format!("gzip level {level} must be between 0 and 9")));
            }
        }
        let weights = match &p.type_proportions {
            None => vec![1.0; p.cell_types],
            Some(w) => {
                if w.len() != p.cell_types {
                    return Err(bad(format!(
                        "type_proportions has {} values for {} cell types; give one per type",
                        w.len(),
                        p.cell_types
                    )));
                }
                for &x in w {
                    finite("type_proportions entry", x, 0.0, f64::INFINITY)?;
                }
                w.clone()
            }
        };
        let mut per_dataset = vec![weights; p.datasets];
        for &(d, t) in &p.missing_types {
            if d == 0 || d > p.datasets || t == 0 || t > p.cell_types {
                return Err(bad(format!(
                    "missing type ({d}, {t}) is out of range; datasets are 1..={} and types 1..={} (1-based)",
                    p.datasets, p.cell_types
                )));
            }
            per_dataset[d - 1][t - 1] = 0.0;
        }
        for (b, w) in per_dataset.iter().enumerate() {
            if w.iter().sum::<f64>() <= 0.0 {
                return Err(bad(format!(
                    "dataset {} has no cell type left (all missing or zero proportion); keep at least one",
                    b + 1
                )));
            }
        }
        Ok(super::Simulation::new(self, per_dataset))
    }
}
