//! Orchestration of ALGORITHMS.md §9 over opened datasets: match genes by
//! name (fail fast, before any pass), one statistics pass per dataset,
//! selectGenes and its combination (or given genes), scaleNotCenter's
//! factors, and the report.

use crate::cellmap::CellMap;
use crate::dataset::Dataset;
use crate::error::ReaderError;
use crate::params::{CheckedPreprocessParams, Combine};
use crate::report::{DatasetReport, PreprocessReport};
use crate::select::{combine, find_genes, match_genes, select_dataset};
use crate::stats::gene_stats;

/// One dataset's preprocessing result.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// Kept cells.
    pub(crate) cells: CellMap,
    /// Presented column of each model gene.
    pub(crate) model_cols: Vec<Option<usize>>,
    /// s_g per model gene.
    pub(crate) scale: Vec<f64>,
}

/// Runs the passes; `names` are the datasets' unique names (for the report).
pub(crate) fn preprocess(
    datasets: &[Dataset],
    names: &[String],
    params: &CheckedPreprocessParams,
) -> Result<(Vec<String>, Vec<Prepared>, PreprocessReport), ReaderError> {
    let p = params.params();
    if datasets.is_empty() {
        return Err(ReaderError::InvalidParameter {
            name: "datasets",
            value: "none".into(),
            expected: "at least one input file".into(),
        });
    }
    let paths = || datasets.iter().map(|d| d.path().to_owned()).collect::<Vec<_>>();
    let lists: Vec<&[String]> = datasets.iter().map(Dataset::gene_names).collect();
    let matching = match_genes(&lists);

    // Fail fast on gene sets, before the (long) passes.
    let given_cols = match &p.genes {
        Some(wanted) => {
            let mut cols = Vec::with_capacity(datasets.len());
            for d in datasets {
                let (c, missing) = find_genes(d.gene_names(), wanted);
                let present = (wanted.len() - missing.len()) as f64 / wanted.len() as f64;
                if present < p.min_genes_present || missing.len() == wanted.len() {
                    return Err(ReaderError::MissingGenes {
                        path: d.path().to_owned(),
                        missing: missing.len(),
                        requested: wanted.len(),
                        examples: missing.into_iter().take(10).collect(),
                    });
                }
                cols.push(c);
            }
            Some(cols)
        }
        None if matching.shared.is_empty() => return Err(ReaderError::NoSharedGenes { paths: paths() }),
        None => None,
    };

    let mut stats = Vec::with_capacity(datasets.len());
    for d in datasets {
        let s = gene_stats(d, p.chunk_cells)?;
        if s.n() < 2 {
            return Err(ReaderError::TooFewCells {
                path: d.path().to_owned(),
                kept: s.n(),
                dropped: s.cells.dropped().len(),
            });
        }
        stats.push(s);
    }

    let (genes, model_cols, per_dataset_selected) = match (given_cols, &p.genes) {
        (Some(cols), Some(wanted)) => (wanted.clone(), cols, vec![None; datasets.len()]),
        _ => {
            let sel = &p.selection;
            let decisions: Vec<Vec<bool>> = datasets
                .iter()
                .zip(&stats)
                .zip(&matching.cols)
                .map(|((d, s), cols)| select_dataset(s, d.n_genes(), cols, sel))
                .collect();
            let counts: Vec<usize> = decisions
                .iter()
                .map(|d| d.iter().filter(|&&k| k).count())
                .collect();
            let chosen = combine(&decisions, sel.combine);
            if chosen.is_empty() {
                let per: Vec<String> = names
                    .iter()
                    .zip(&counts)
                    .map(|(n, c)| format!("{n}: {c}"))
                    .collect();
                return Err(ReaderError::NoGenesSelected {
                    paths: paths(),
                    detail: format!(
                        "alpha {}, var_thresh {}, n_genes {}, combine {}; genes selected per dataset: {}",
                        sel.alpha,
                        sel.var_thresh,
                        sel.n_genes.map_or("unset".into(), |n| n.to_string()),
                        match sel.combine {
                            Combine::Union => "union",
                            Combine::Intersection => "intersection",
                        },
                        per.join(", ")
                    ),
                });
            }
            let genes = chosen.iter().map(|&i| matching.shared[i].clone()).collect();
            let cols = matching
                .cols
                .iter()
                .map(|c| chosen.iter().map(|&i| Some(c[i])).collect())
                .collect();
            (genes, cols, counts.into_iter().map(Some).collect())
        }
    };

    let mut prepared = Vec::with_capacity(datasets.len());
    let mut reports = Vec::with_capacity(datasets.len());
    for (i, (d, (s, cols))) in datasets.iter().zip(stats.into_iter().zip(model_cols)).enumerate() {
        let scale = cols.iter().map(|c| c.map_or(0.0, |c| s.scale(c))).collect();
        let genes_missing = cols.iter().filter(|c| c.is_none()).count();
        reports.push(DatasetReport {
            name: names[i].clone(),
            path: d.path().to_owned(),
            cells_total: s.cells.n_total(),
            cells_kept: s.cells.n_kept(),
            cells_dropped: s.cells.dropped().len(),
            genes: d.n_genes(),
            genes_not_shared: matching.not_shared[i],
            genes_missing,
            duplicate_genes_renamed: d.duplicate_genes_renamed(),
            genes_selected: per_dataset_selected[i],
        });
        prepared.push(Prepared {
            cells: s.cells,
            model_cols: cols,
            scale,
        });
    }
    let report = PreprocessReport {
        datasets: reports,
        genes_shared: matching.shared.len(),
        genes_selected: genes.len(),
    };
    Ok((genes, prepared, report))
}
