//! `inmf inspect`: what a file is and what inmf would read from it,
//! without reading the matrix (opening only checks the structure).

use std::fmt;
use std::path::Path;

use crate::error::ReaderError;
use crate::formats::dataset::{open, OpenOptions};
use crate::formats::mtx::{open_mtx, MtxField};
use crate::formats::obs::ObsKind;

/// The report of [`inspect`]: labelled lines, printed by `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// (label, text) pairs, in print order.
    pub lines: Vec<(String, String)>,
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        for (label, text) in &self.lines {
            if label.is_empty() {
                writeln!(f, "{:w$}  {text}", "")?;
            } else {
                writeln!(f, "{label:w$}  {text}")?;
            }
        }
        Ok(())
    }
}

fn plural(n: usize, one: &str) -> String {
    match (n, one.strip_suffix('y')) {
        (1, _) => format!("1 {one}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        _ => format!("{n} {one}s"),
    }
}

/// Describes `path` (an HDF5 input, or a Matrix Market directory) as inmf
/// would open it with `options`: the detected format, shape, the arrays
/// read with their types, chunking and compression, where the gene and
/// cell names come from, the features kept, obs columns, and whether the
/// values are passed through as prescaled.
pub fn inspect(path: &Path, options: &OpenOptions) -> Result<Inspection, ReaderError> {
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut push = |l: &str, t: String| lines.push((l.to_owned(), t));
    push("file", path.display().to_string());
    if path.is_dir() {
        let m = open_mtx(path, options.feature_type.as_deref())?;
        let (rows, cols, entries) = m.header();
        push("format", "Matrix Market directory".into());
        for f in m.files() {
            let gz = std::fs::File::open(f)
                .and_then(|mut h| {
                    let mut b = [0u8; 2];
                    std::io::Read::read(&mut h, &mut b).map(|n| n == 2 && b == [0x1f, 0x8b])
                })
                .unwrap_or(false);
            push(
                "",
                format!("{} ({})", f.display(), if gz { "gzip" } else { "plain text" }),
            );
        }
        push(
            "header",
            format!(
                "{rows} x {cols}, {entries} entries, {} values, {}",
                match m.field() {
                    MtxField::Integer => "integer",
                    MtxField::Real => "real",
                    MtxField::Pattern => "pattern (all 1)",
                },
                if m.is_transposed() {
                    "cells x features"
                } else {
                    "features x cells"
                }
            ),
        );
        push(
            "shape",
            format!(
                "{} x {} kept of {} features",
                plural(m.n_cells(), "cell"),
                m.gene_names().len(),
                m.n_features()
            ),
        );
        features_line(&mut push, m.features_dropped(), options);
        if m.duplicate_genes_renamed() > 0 {
            push(
                "genes",
                format!(
                    "{} duplicate names made unique (name-1, ...)",
                    m.duplicate_genes_renamed()
                ),
            );
        }
        push(
            "inmf reads",
            "nothing directly: convert with `inmf import DIR --out FILE.h5ad` (streamed; sorted by cell \
             through a temporary file if needed)"
                .into(),
        );
        return Ok(Inspection { lines });
    }
    let d = open(path, options)?;
    push("format", d.format().to_string());
    push(
        "shape",
        format!(
            "{} x {} genes, {} stored values",
            plural(d.n_cells(), "cell"),
            d.n_genes(),
            d.nnz()
        ),
    );
    push("matrix", format!("{}: {}", d.matrix_object(), d.storage_words()));
    for (obj, summary) in d.storage_summaries() {
        push("", format!("{obj}: {summary}"));
    }
    let (genes, cells) = d.name_objects();
    let mut g = format!("{genes} ({} names", d.n_genes());
    if d.duplicate_genes_renamed() > 0 {
        g.push_str(&format!(
            ", {} duplicates made unique",
            d.duplicate_genes_renamed()
        ));
    }
    g.push(')');
    push("genes", g);
    push(
        "gene ids",
        if d.gene_ids().is_some() {
            "present (usable with --match-genes id)".into()
        } else {
            "none".into()
        },
    );
    push("cells", cells);
    features_line(&mut push, d.features_dropped(), options);
    for note in d.notes() {
        push("note", note.clone());
    }
    let cols = d.obs_columns();
    if !cols.is_empty() {
        let list: Vec<String> = cols
            .iter()
            .map(|c| match &c.kind {
                ObsKind::Strings => format!("{} (strings)", c.name),
                ObsKind::Categorical { categories, .. } => {
                    format!(
                        "{} (categorical, {})",
                        c.name,
                        plural(categories.len(), "category")
                    )
                }
            })
            .collect();
        push("obs columns", list.join(", "));
    }
    push(
        "inmf reads",
        if d.is_prescaled() {
            "the stored values as already normalized and scaled (no normalization, no gene selection, \
             scale factors 1)"
                .into()
        } else {
            "raw counts: normalized by library size, genes selected, scaled (docs/algorithms.md §9)".into()
        },
    );
    Ok(Inspection { lines })
}

fn features_line(push: &mut impl FnMut(&str, String), dropped: &[(String, usize)], options: &OpenOptions) {
    if dropped.is_empty() {
        return;
    }
    let what: Vec<String> = dropped.iter().map(|(t, n)| format!("{n} {t}")).collect();
    push(
        "features",
        format!(
            "kept {}; left out {}",
            options
                .feature_type
                .as_deref()
                .map_or_else(|| "all types".to_owned(), |t| format!("\"{t}\"")),
            what.join(", ")
        ),
    );
}
