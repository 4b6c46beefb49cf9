//! The plots of `inmf project` (docs/algorithms.md §10.1), written into
//! `OUT/analysis/` as PNG + SVG when the reference has a UMAP:
//!
//! | file stem | content |
//! |---|---|
//! | `mapping_label_<col>` | the query over the greyed reference UMAP, by transferred label, unmatched cells as crosses |
//! | `mapping_confidence_<col>` | the same, by the vote's confidence (0–1 colour bar) |
//! | `mapping_dataset` | the same, by query dataset, unmatched cells counted in the title |
//! | `mapping_confusion` | with `--labels`: query label × transferred label, row-normalized, accuracy and recall |
//!
//! `<col>` is the column name with every character other than a letter,
//! digit, `-` or `_` replaced by `_`.

use std::path::{Path, PathBuf};

use inmf_analysis::{confusion_plot, mapping_plot, AnalysisError, ConfusionPlot, MappingPlot, QueryColors};
use ndarray::ArrayView2;

use crate::error::DriverError;
use crate::mapping::{Mapped, TRANSFER_K};

/// File stems of the mapping plots start with this.
pub(crate) const PREFIX: &str = "mapping_";

fn plot_err(e: AnalysisError) -> DriverError {
    match e {
        AnalysisError::Plot { path, reason } => DriverError::InvalidOutput { path, reason },
        other => DriverError::Internal(other.to_string()),
    }
}

/// A column name made safe as part of a file name.
pub(crate) fn file_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes the plots into `dir` (module doc); returns their paths.
pub(crate) fn write_mapping_plots(
    dir: &Path,
    reference_umap: ArrayView2<'_, f32>,
    query_umap: ArrayView2<'_, f32>,
    m: &Mapped,
    dataset_names: &[String],
    seed: u64,
) -> Result<Vec<PathBuf>, DriverError> {
    let flags = m.scores.as_ref().map(|s| s.1.as_slice());
    let n_flagged = flags.map_or(0, |f| f.iter().filter(|&&x| x).count());
    let nq = query_umap.nrows();
    let base = MappingPlot {
        reference: reference_umap,
        query: query_umap,
        colors: QueryColors::Scale { values: &[] },
        marked: flags,
        marked_name: "unmatched",
        title: "",
        legend_title: "",
        seed,
    };
    let mut files = Vec::new();
    for (name, codes, categories, confidence) in &m.transferred {
        let title = format!("{nq} query cells on the reference UMAP: transferred {name}");
        let legend = format!("{name} (query cells)");
        let p = MappingPlot {
            colors: QueryColors::Groups {
                codes,
                names: categories,
            },
            title: &title,
            legend_title: &legend,
            ..base
        };
        files.extend(
            mapping_plot(&dir.join(format!("{PREFIX}label_{}", file_part(name))), &p).map_err(plot_err)?,
        );
        let mean = confidence.iter().sum::<f64>() / confidence.len().max(1) as f64;
        let low = confidence.iter().filter(|&&c| c < 0.5).count();
        let title = format!("Confidence of the transferred {name}: mean {mean:.3}, {low} cells below 0.5");
        let legend = format!("share of the {TRANSFER_K} votes");
        let p = MappingPlot {
            colors: QueryColors::Scale { values: confidence },
            marked: None,
            title: &title,
            legend_title: &legend,
            ..base
        };
        files.extend(
            mapping_plot(&dir.join(format!("{PREFIX}confidence_{}", file_part(name))), &p)
                .map_err(plot_err)?,
        );
    }
    let title = match flags {
        Some(_) => format!(
            "Query datasets on the reference UMAP: {n_flagged} of {nq} cells unmatched ({:.1} %)",
            100.0 * n_flagged as f64 / nq.max(1) as f64
        ),
        None => format!("Query datasets on the reference UMAP ({nq} cells; unmatched not computed)"),
    };
    let p = MappingPlot {
        colors: QueryColors::Groups {
            codes: &m.query_datasets,
            names: dataset_names,
        },
        title: &title,
        legend_title: "query dataset (cells)",
        ..base
    };
    files.extend(mapping_plot(&dir.join(format!("{PREFIX}dataset")), &p).map_err(plot_err)?);
    if let Some(c) = &m.summary.confusion {
        let title = format!(
            "Transferred {} vs the query's labels: accuracy {:.3} (unmatched count as wrong), labels {:.3}",
            c.column, c.accuracy, c.label_accuracy
        );
        let mut notes = vec!["recall per query label:".to_string()];
        notes.extend(
            c.recall
                .iter()
                .map(|(name, r, n, _)| format!("{:<14} {r:.3} of {n}", truncate(name, 14))),
        );
        let p = ConfusionPlot {
            rows: &c.truth,
            columns: &c.predicted,
            counts: &c.counts,
            title: &title,
            row_title: "query label",
            column_title: &format!("transferred {}", c.column),
            notes: &notes,
        };
        files.extend(confusion_plot(&dir.join(format!("{PREFIX}confusion")), &p).map_err(plot_err)?);
    }
    Ok(files)
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Removes the mapping plots of an earlier projection from `dir` (a new
/// projection without plots must not leave stale ones beside its result).
pub(crate) fn remove_old_plots(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(PREFIX) && (name.ends_with(".png") || name.ends_with(".svg")) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_part_keeps_safe_characters_only() {
        assert_eq!(file_part("cell_type-2"), "cell_type-2");
        assert_eq!(file_part("a b/c.d"), "a_b_c_d");
    }
}
