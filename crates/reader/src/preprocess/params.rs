//! Preprocessing parameters (docs/algorithms.md §9), linfa style: an unchecked
//! struct with documented defaults, validated once by
//! [`PreprocessParams::check`]; the preprocessing accepts only the checked
//! type.

use crate::error::ReaderError;

/// How the per-dataset gene selections are combined into the model's genes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Combine {
    /// Genes selected in at least one dataset (default, as rliger 2.x).
    #[default]
    Union,
    /// Genes selected in every dataset.
    Intersection,
}

/// What identifies a gene across datasets (and against given genes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GeneKey {
    /// Gene names (made unique scanpy-style within each file). Default.
    #[default]
    Name,
    /// Gene ids (10x `features/id`, Cell Ranger 2 `genes`, AnnData
    /// `var/gene_ids`, loom `row_attrs/Accession`), made unique the same
    /// way; every file must have them. The model's genes are then ids.
    Id,
}

/// rliger's `selectGenes` (docs/algorithms.md §9), per dataset on x̃ = x / nUMI,
/// with μ_g, σ²_g (n − 1) over the kept cells and ν = mean_c(1/nUMI_c):
/// α* = `alpha` / #genes of the dataset,
/// upper_g = μ_g + z_{1−α*/2} · sqrt(μ_g ν / n);
/// keep g iff σ²_g / ν > upper_g and log10 σ²_g > log10(μ_g ν) + `var_thresh`.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneSelection {
    /// Significance level of the Poisson-excess test before the Bonferroni
    /// division by the number of genes; in (0, 1]. Default 0.99 (rliger's
    /// `alpha.thresh`).
    pub alpha: f64,
    /// Minimum log10 ratio of the variance to the Poisson expectation
    /// μ_g ν; finite. Default 0.1 (rliger's `var.thresh`).
    pub var_thresh: f64,
    /// If set, each dataset keeps instead the `n_genes` genes with the
    /// largest log10 σ²_g − log10(μ_g ν) among those passing the
    /// Poisson-excess test (the `var_thresh` test is replaced by the
    /// ranking, which is what tuning `var.thresh` for a gene count does in
    /// rliger 1.x). Default `None`.
    pub n_genes: Option<usize>,
    /// How datasets' selections combine. Default [`Combine::Union`].
    pub combine: Combine,
}

impl Default for GeneSelection {
    fn default() -> Self {
        Self {
            alpha: 0.99,
            var_thresh: 0.1,
            n_genes: None,
            combine: Combine::Union,
        }
    }
}

/// Everything the preprocessing passes need (docs/algorithms.md §9: normalize,
/// selectGenes, scaleNotCenter).
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessParams {
    /// How genes are selected (ignored when `genes` is set).
    pub selection: GeneSelection,
    /// Use exactly these genes, in this order, instead of selecting them
    /// (scenarios 2 and 3: a saved model's genes). A gene a dataset lacks
    /// is a column of zeros there (counted in the report). Default `None`.
    pub genes: Option<Vec<String>>,
    /// With `genes`: the smallest fraction of them each dataset must
    /// measure; fewer is an error ([`crate::ReaderError::MissingGenes`]).
    /// In [0, 1]. Default 0.5.
    pub min_genes_present: f64,
    /// Cells read per chunk in the statistics pass; memory is about
    /// `chunk_cells` × (non-zeros per cell) × 8 bytes. Default 4096.
    pub chunk_cells: usize,
    /// How genes are matched across datasets and against `genes`.
    /// Default [`GeneKey::Name`].
    pub match_genes: GeneKey,
}

impl Default for PreprocessParams {
    fn default() -> Self {
        Self {
            selection: GeneSelection::default(),
            genes: None,
            min_genes_present: 0.5,
            chunk_cells: 4096,
            match_genes: GeneKey::Name,
        }
    }
}

/// [`PreprocessParams`] that passed [`PreprocessParams::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedPreprocessParams(PreprocessParams);

impl CheckedPreprocessParams {
    /// The validated parameters.
    pub fn params(&self) -> &PreprocessParams {
        &self.0
    }
}

impl PreprocessParams {
    /// Checks each parameter's range: 0 < alpha ≤ 1, var_thresh finite,
    /// n_genes ≥ 1, chunk_cells ≥ 1, given genes non-empty and unique.
    pub fn check(self) -> Result<CheckedPreprocessParams, ReaderError> {
        let bad = |name: &'static str, value: String, expected: &str| {
            Err(ReaderError::InvalidParameter {
                name,
                value,
                expected: expected.into(),
            })
        };
        let s = &self.selection;
        if !(s.alpha > 0.0 && s.alpha <= 1.0) {
            return bad("alpha", s.alpha.to_string(), "a number in (0, 1], e.g. 0.99");
        }
        if !s.var_thresh.is_finite() {
            return bad(
                "var_thresh",
                s.var_thresh.to_string(),
                "a finite number, e.g. 0.1",
            );
        }
        if s.n_genes == Some(0) {
            return bad("n_genes", "0".into(), "at least 1 (or unset to use var_thresh)");
        }
        if self.chunk_cells == 0 {
            return bad("chunk_cells", "0".into(), "at least 1, e.g. 4096");
        }
        if !(0.0..=1.0).contains(&self.min_genes_present) {
            return bad(
                "min_genes_present",
                self.min_genes_present.to_string(),
                "a fraction in [0, 1]",
            );
        }
        if let Some(g) = &self.genes {
            if g.is_empty() {
                return bad("genes", "an empty list".into(), "at least one gene name");
            }
            let mut seen = std::collections::HashSet::new();
            if let Some(d) = g.iter().find(|n| !seen.insert(n.as_str())) {
                return bad("genes", format!("a list naming {d:?} twice"), "unique gene names");
            }
        }
        Ok(CheckedPreprocessParams(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_each_rule_fails() {
        assert!(PreprocessParams::default().check().is_ok());
        let with = |f: &dyn Fn(&mut PreprocessParams)| {
            let mut p = PreprocessParams::default();
            f(&mut p);
            p.check()
        };
        let name = |r: Result<CheckedPreprocessParams, ReaderError>| match r {
            Err(ReaderError::InvalidParameter { name, .. }) => name,
            other => panic!("expected InvalidParameter, got {other:?}"),
        };
        assert_eq!(name(with(&|p| p.selection.alpha = 0.0)), "alpha");
        assert_eq!(name(with(&|p| p.selection.alpha = f64::NAN)), "alpha");
        assert_eq!(name(with(&|p| p.selection.alpha = 1.5)), "alpha");
        assert_eq!(
            name(with(&|p| p.selection.var_thresh = f64::INFINITY)),
            "var_thresh"
        );
        assert_eq!(name(with(&|p| p.selection.n_genes = Some(0))), "n_genes");
        assert_eq!(name(with(&|p| p.chunk_cells = 0)), "chunk_cells");
        assert_eq!(name(with(&|p| p.genes = Some(vec![]))), "genes");
        assert_eq!(
            name(with(&|p| p.genes = Some(vec!["a".into(), "a".into()]))),
            "genes"
        );
        assert!(with(&|p| p.selection.alpha = 1.0).is_ok());
        assert!(with(&|p| p.selection.var_thresh = -1.0).is_ok());
    }
}
