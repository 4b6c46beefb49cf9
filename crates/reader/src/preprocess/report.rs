//! What preprocessing did, per dataset and overall, for logs and outputs.

use std::fmt;
use std::path::PathBuf;

/// One dataset's preprocessing summary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DatasetReport {
    /// Dataset name (unique within the run).
    pub name: String,
    /// Input file.
    pub path: PathBuf,
    /// Cells in the file.
    pub cells_total: usize,
    /// Cells presented to the learner: non-zero counts, some of them in
    /// the model's genes.
    pub cells_kept: usize,
    /// All-zero cells dropped (rliger issues #175/#237: indices stay in sync
    /// through [`crate::CellMap`]).
    pub cells_dropped: usize,
    /// Cells with counts, but none in the model's genes, dropped too (they
    /// would get H = 0); also kept in sync through [`crate::CellMap`].
    #[serde(default)]
    pub cells_no_model_counts: usize,
    /// Whether the file held already normalized and scaled values (passed
    /// through: no normalization, no selection, scale factors 1).
    #[serde(default)]
    pub prescaled: bool,
    /// Genes presented by the file (after the 10x feature-type filter).
    pub genes: usize,
    /// Of those, genes absent from at least one other dataset.
    pub genes_not_shared: usize,
    /// Gene names renamed to make them unique (`name-1`, ...).
    pub duplicate_genes_renamed: usize,
    /// Given (model) genes this dataset lacks: read as zeros.
    pub genes_missing: usize,
    /// Genes this dataset's selectGenes kept (before combining); `None`
    /// when the genes were given.
    pub genes_selected: Option<usize>,
}

/// The whole run's preprocessing summary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PreprocessReport {
    /// Per dataset, in input order.
    pub datasets: Vec<DatasetReport>,
    /// Genes present in every dataset (the candidates).
    pub genes_shared: usize,
    /// Genes of the model (selected, or given).
    pub genes_selected: usize,
}

impl fmt::Display for PreprocessReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.datasets {
            write!(
                f,
                "{}: {} cells ({} kept, {} all-zero dropped",
                d.name, d.cells_total, d.cells_kept, d.cells_dropped
            )?;
            if d.cells_no_model_counts > 0 {
                write!(
                    f,
                    ", {} without counts in the model genes dropped",
                    d.cells_no_model_counts
                )?;
            }
            write!(f, "), {} genes ({} not shared", d.genes, d.genes_not_shared)?;
            if d.duplicate_genes_renamed > 0 {
                write!(f, ", {} duplicate names renamed", d.duplicate_genes_renamed)?;
            }
            if d.genes_missing > 0 {
                write!(f, ", {} model genes missing (read as zeros)", d.genes_missing)?;
            }
            write!(f, ")")?;
            if d.prescaled {
                write!(f, ", prescaled (passed through)")?;
            }
            if let Some(s) = d.genes_selected {
                write!(f, ", {s} selected")?;
            }
            writeln!(f)?;
        }
        write!(
            f,
            "{} genes shared, {} genes in the model",
            self.genes_shared, self.genes_selected
        )
    }
}
