//! Orchestration of docs/algorithms.md §9 over opened datasets: match genes by
//! name or id (fail fast, before any pass), one statistics pass per
//! dataset, selectGenes and its combination (or given genes), a second
//! pass dropping cells without counts in the selected genes, scaleNotCenter's
//! factors, and the report.
//!
//! Prescaled datasets ([`Dataset::is_prescaled`]) are passed through: their
//! genes (shared among the prescaled datasets, by the chosen key) become
//! the model's genes unless genes are given, no selection runs, their scale
//! factors are 1, and raw datasets of the same run are normalized and
//! scaled over those genes as if they had been given. Their statistics
//! pass only finds empty cells.
//!
//! The steps: [`stats`] (the streaming pass), [`select`] (gene matching and
//! selectGenes, with [`normal_quantile`]), [`params`], [`report`] and
//! [`cellmap`] (kept cells ↔ file cells).

pub(crate) mod cellmap;
pub(crate) mod normal_quantile;
pub(crate) mod params;
pub(crate) mod report;
mod select;
pub(crate) mod stats;

use crate::error::ReaderError;
use crate::formats::dataset::Dataset;
use crate::formats::names::make_unique;
use cellmap::CellMap;
use params::{CheckedPreprocessParams, Combine, GeneKey};
use report::{DatasetReport, PreprocessReport};
use select::{combine, find_genes, match_genes, select_dataset};
use stats::{cells_without, gene_stats, GeneStats};

/// One dataset's preprocessing result.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// Kept cells: non-zero counts, some in the model's genes.
    pub(crate) cells: CellMap,
    /// Presented column of each model gene.
    pub(crate) model_cols: Vec<Option<usize>>,
    /// s_g per model gene (1 for a prescaled dataset).
    pub(crate) scale: Vec<f64>,
}

/// Wall seconds of the preprocessing passes over the inputs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PassSeconds {
    /// The statistics pass (library sizes, gene statistics, empty cells).
    pub statistics: f64,
    /// The pass finding cells without counts in the selected genes (none
    /// when the genes were given).
    pub cells: Option<f64>,
}

/// Per dataset, the keys genes are matched by and how many were renamed.
fn gene_keys(datasets: &[Dataset], key: GeneKey) -> Result<(Vec<Vec<String>>, Vec<usize>), ReaderError> {
    let mut keys = Vec::with_capacity(datasets.len());
    let mut renamed = Vec::with_capacity(datasets.len());
    for d in datasets {
        match key {
            GeneKey::Name => {
                keys.push(d.gene_names().to_vec());
                renamed.push(d.duplicate_genes_renamed());
            }
            GeneKey::Id => {
                let Some(ids) = d.gene_ids() else {
                    return Err(ReaderError::NoGeneIds {
                        path: d.path().to_owned(),
                    });
                };
                let mut k = ids.to_vec();
                renamed.push(make_unique(&mut k));
                keys.push(k);
            }
        }
    }
    Ok((keys, renamed))
}

/// `pass(i, dataset i)` for every dataset, on as many scoped threads as
/// the machine has cores (each pass holds one block in memory); the
/// results in dataset order, so the first error reported is the first
/// dataset's, as in a sequential loop.
fn per_dataset_in_parallel<T, F>(datasets: &[Dataset], pass: F) -> Vec<Result<T, ReaderError>>
where
    T: Send,
    F: Fn(usize, &Dataset) -> Result<T, ReaderError> + Sync,
{
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let workers = cores.min(datasets.len()).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<Result<T, ReaderError>>> = datasets.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let (pass, next) = (&pass, &next);
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(d) = datasets.get(i) else { break done };
                        done.push((i, pass(i, d)));
                    }
                })
            })
            .collect();
        for h in handles {
            for (i, r) in h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)) {
                results[i] = Some(r);
            }
        }
    });
    results
        .into_iter()
        .map(|r| r.expect("every dataset is taken by a worker"))
        .collect()
}

/// One flag per presented column of a dataset: is it a model gene?
fn model_mask(n_cols: usize, model_cols: &[Option<usize>]) -> Vec<bool> {
    let mut m = vec![false; n_cols];
    for &c in model_cols.iter().flatten() {
        m[c] = true;
    }
    m
}

/// Merges two increasing lists of file cells.
pub(crate) fn merge(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if j == b.len() || (i < a.len() && a[i] < b[j]) {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out
}

/// Runs the passes; `names` are the datasets' unique names (for the report).
/// With `cells_pass` false, cells with counts but none in the selected
/// genes are not looked for (no second pass): the caller drops them later,
/// as the rows that come out empty (a cache build does).
pub(crate) fn preprocess(
    datasets: &[Dataset],
    names: &[String],
    params: &CheckedPreprocessParams,
    cells_pass: bool,
) -> Result<(Vec<String>, Vec<Prepared>, PreprocessReport, PassSeconds), ReaderError> {
    let p = params.params();
    let mut seconds = PassSeconds::default();
    if datasets.is_empty() {
        return Err(ReaderError::InvalidParameter {
            name: "datasets",
            value: "none".into(),
            expected: "at least one input file".into(),
        });
    }
    let paths = |only: &dyn Fn(&Dataset) -> bool| {
        datasets
            .iter()
            .filter(|d| only(d))
            .map(|d| d.path().to_owned())
            .collect::<Vec<_>>()
    };
    let (keys, renamed) = gene_keys(datasets, p.match_genes)?;
    let lists: Vec<&[String]> = keys.iter().map(Vec::as_slice).collect();
    let matching = match_genes(&lists);

    // Genes known before the passes: given, else the prescaled datasets'.
    let fixed: Option<Vec<String>> = match &p.genes {
        Some(g) => Some(g.clone()),
        None if datasets.iter().any(Dataset::is_prescaled) => {
            let pre: Vec<&[String]> = datasets
                .iter()
                .zip(&lists)
                .filter(|(d, _)| d.is_prescaled())
                .map(|(_, l)| *l)
                .collect();
            let shared = match_genes(&pre).shared;
            if shared.is_empty() {
                return Err(ReaderError::NoSharedGenes {
                    paths: paths(&Dataset::is_prescaled),
                });
            }
            Some(shared)
        }
        None if matching.shared.is_empty() => {
            return Err(ReaderError::NoSharedGenes {
                paths: paths(&|_| true),
            })
        }
        None => None,
    };

    // Fail fast on gene sets, before the (long) passes.
    let fixed_cols = match &fixed {
        Some(wanted) => {
            let mut cols = Vec::with_capacity(datasets.len());
            for (d, list) in datasets.iter().zip(&lists) {
                let (c, missing) = find_genes(list, wanted);
                let present = (wanted.len() - missing.len()) as f64 / wanted.len() as f64;
                if present < p.min_genes_present || missing.len() == wanted.len() {
                    return Err(ReaderError::MissingGenes {
                        path: d.path().to_owned(),
                        missing: missing.len(),
                        requested: wanted.len(),
                        examples: missing.into_iter().take(10).collect(),
                        min_present: p.min_genes_present,
                    });
                }
                cols.push(c);
            }
            Some(cols)
        }
        None => None,
    };

    // One statistics pass per dataset, the datasets on threads of their own:
    // libhdf5 decodes one chunk at a time (a global lock), so what runs in
    // parallel is the rest of each pass (conversion, statistics).
    let t = std::time::Instant::now();
    let passes = per_dataset_in_parallel(datasets, |i, d| {
        let mask = fixed_cols.as_ref().map(|c| model_mask(d.n_genes(), &c[i]));
        gene_stats(d, p.chunk_cells, mask.as_deref())
    });
    seconds.statistics = t.elapsed().as_secs_f64();
    let mut stats: Vec<GeneStats> = Vec::with_capacity(datasets.len());
    for (d, s) in datasets.iter().zip(passes) {
        let s = s?;
        // Variances need n ≥ 2; prescaled values need no statistics.
        let min = if d.is_prescaled() { 1 } else { 2 };
        if s.n() < min {
            return Err(ReaderError::TooFewCells {
                path: d.path().to_owned(),
                kept: s.n(),
                dropped: s.cells.dropped().len(),
            });
        }
        stats.push(s);
    }

    let (genes, model_cols, per_dataset_selected) = match (fixed_cols, fixed) {
        (Some(cols), Some(wanted)) => (wanted, cols, vec![None; datasets.len()]),
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
                    paths: paths(&|_| true),
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
            let genes: Vec<String> = chosen.iter().map(|&i| matching.shared[i].clone()).collect();
            let cols: Vec<Vec<Option<usize>>> = matching
                .cols
                .iter()
                .map(|c| chosen.iter().map(|&i| Some(c[i])).collect())
                .collect();
            // The second pass: cells without counts in the selected genes.
            if !cells_pass {
                let counts = counts.into_iter().map(Some).collect();
                return finish(
                    datasets, names, &matching, renamed, stats, genes, cols, counts, seconds,
                );
            }
            let t = std::time::Instant::now();
            let passes = per_dataset_in_parallel(datasets, |i, d| {
                let mask = model_mask(d.n_genes(), &cols[i]);
                cells_without(d, &stats[i].cells, &mask, p.chunk_cells)
            });
            seconds.cells = Some(t.elapsed().as_secs_f64());
            for (s, no_model) in stats.iter_mut().zip(passes) {
                s.no_model = no_model?;
            }
            (genes, cols, counts.into_iter().map(Some).collect())
        }
    };
    finish(
        datasets,
        names,
        &matching,
        renamed,
        stats,
        genes,
        model_cols,
        per_dataset_selected,
        seconds,
    )
}

/// Scale factors, cell maps and the report from the passes' statistics.
#[allow(clippy::too_many_arguments)]
fn finish(
    datasets: &[Dataset],
    names: &[String],
    matching: &select::Matching,
    renamed: Vec<usize>,
    stats: Vec<GeneStats>,
    genes: Vec<String>,
    model_cols: Vec<Vec<Option<usize>>>,
    per_dataset_selected: Vec<Option<usize>>,
    seconds: PassSeconds,
) -> Result<(Vec<String>, Vec<Prepared>, PreprocessReport, PassSeconds), ReaderError> {
    let mut prepared = Vec::with_capacity(datasets.len());
    let mut reports = Vec::with_capacity(datasets.len());
    for (i, (d, (s, cols))) in datasets.iter().zip(stats.into_iter().zip(model_cols)).enumerate() {
        let scale: Vec<f64> = if d.is_prescaled() {
            cols.iter().map(|c| if c.is_some() { 1.0 } else { 0.0 }).collect()
        } else {
            cols.iter().map(|c| c.map_or(0.0, |c| s.scale(c))).collect()
        };
        let genes_missing = cols.iter().filter(|c| c.is_none()).count();
        let all_zero = s.cells.dropped().len();
        let cells = CellMap::new(s.cells.n_total(), merge(s.cells.dropped(), &s.no_model));
        if cells.n_kept() == 0 {
            return Err(ReaderError::TooFewCells {
                path: d.path().to_owned(),
                kept: 0,
                dropped: cells.dropped().len(),
            });
        }
        reports.push(DatasetReport {
            name: names[i].clone(),
            path: d.path().to_owned(),
            cells_total: cells.n_total(),
            cells_kept: cells.n_kept(),
            cells_dropped: all_zero,
            cells_no_model_counts: s.no_model.len(),
            prescaled: d.is_prescaled(),
            genes: d.n_genes(),
            genes_not_shared: matching.not_shared[i],
            genes_missing,
            duplicate_genes_renamed: renamed[i],
            genes_selected: per_dataset_selected[i],
        });
        prepared.push(Prepared {
            cells,
            model_cols: cols,
            scale,
        });
    }
    let report = PreprocessReport {
        datasets: reports,
        genes_shared: matching.shared.len(),
        genes_selected: genes.len(),
    };
    Ok((genes, prepared, report, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_interleaves() {
        assert_eq!(merge(&[1, 4, 9], &[0, 5, 10, 11]), vec![0, 1, 4, 5, 9, 10, 11]);
        assert_eq!(merge(&[], &[2]), vec![2]);
        assert_eq!(merge(&[3], &[]), vec![3]);
    }
}
