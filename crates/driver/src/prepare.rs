//! From the `[preprocess]` configuration to opened, preprocessed inputs.

use std::path::Path;

use inmf_reader::{open, Combine, GeneSelection, Hdf5Source, MatrixLocation, OpenOptions, PreprocessParams};

use crate::config::PreprocessConfig;
use crate::error::DriverError;
use crate::run::InputSpec;

/// Parses `X`, `raw` or `layer:NAME`.
pub fn matrix_location(s: &str) -> Result<MatrixLocation, DriverError> {
    match s {
        "X" | "x" => Ok(MatrixLocation::X),
        "raw" | "raw/X" => Ok(MatrixLocation::Raw),
        _ => match s.strip_prefix("layer:").or_else(|| s.strip_prefix("layers/")) {
            Some(name) if !name.is_empty() => Ok(MatrixLocation::Layer(name.to_string())),
            _ => Err(DriverError::InvalidParameter(format!(
                "matrix {s:?} is not one of X, raw, layer:NAME"
            ))),
        },
    }
}

/// Reads a gene list: one name per line, blank lines and `#` comments skipped.
pub fn read_gene_list(path: &Path) -> Result<Vec<String>, DriverError> {
    let text = std::fs::read_to_string(path).map_err(|source| DriverError::Io { path: path.to_path_buf(), source })?;
    let genes: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if genes.is_empty() {
        return Err(DriverError::InvalidParameter(format!("gene list {} names no gene", path.display())));
    }
    Ok(genes)
}

/// Opens every input read-only and runs the preprocessing passes (§9).
/// `given_genes` (a model's genes) replaces gene selection; otherwise the
/// configuration's `genes_file`, if set, does.
pub fn open_and_preprocess(
    inputs: &[InputSpec],
    cfg: &PreprocessConfig,
    given_genes: Option<&[String]>,
) -> Result<Hdf5Source, DriverError> {
    let matrix = matrix_location(&cfg.matrix)?;
    let genes = match (given_genes, &cfg.genes_file) {
        (Some(g), _) => Some(g.to_vec()),
        (None, Some(p)) => Some(read_gene_list(p)?),
        (None, None) => None,
    };
    let combine = match cfg.combine.as_str() {
        "union" => Combine::Union,
        "intersection" => Combine::Intersection,
        other => {
            return Err(DriverError::InvalidParameter(format!(
                "combine {other:?} is not \"union\" or \"intersection\""
            )))
        }
    };
    let params = PreprocessParams {
        selection: GeneSelection {
            alpha: cfg.alpha,
            var_thresh: cfg.var_thresh,
            n_genes: (cfg.n_genes > 0).then_some(cfg.n_genes),
            combine,
        },
        genes,
        ..PreprocessParams::default()
    }
    .check()?;
    let datasets = inputs
        .iter()
        .map(|i| {
            let opts = OpenOptions {
                matrix: matrix.clone(),
                name: Some(i.name.clone()),
                ..OpenOptions::default()
            };
            open(&i.path, &opts)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Hdf5Source::preprocess(datasets, &params)?)
}
