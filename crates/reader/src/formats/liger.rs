//! LIGER .h5 files written by rliger, used as already-scaled input.
//!
//! rliger ≥ 2 (`scaleNotCenter` on an H5-backed dataset, its
//! `.scaleH5SpMatrix`) writes the normalized, selected and scaled values
//! into the input file as `scaleDataSparse/` — `data` (double), `indices`
//! (row = position among the selected genes), `indptr` (one column per
//! cell): CSC genes × cells, i.e. CSR cells × selected genes — plus
//! `scaleDataSparse/featureIdx`, the 1-based positions of the selected
//! genes among the file's features. Gene and cell names come from the
//! file's raw layout (10x `matrix/features/name` and `matrix/barcodes`, or
//! a Cell Ranger 2 genome group). A file in the 10x layout whose name ends
//! in `_scaleData.h5` holds scaled values in `matrix/` and is read as
//! prescaled too.
//!
//! How prescaled data enter a run: [`crate::Dataset::is_prescaled`] is
//! true; preprocessing takes the file's genes as given (no selection over
//! this dataset; raw datasets of the same run are normalized and scaled
//! over these genes), uses scale factors 1 and does not normalize by
//! library size, so the learner sees the stored values.

use std::path::Path;

use crate::error::ReaderError;
use crate::formats::dataset::{Format, Layout, OpenOptions, Storage};
use crate::formats::h5::{self, Member};
use crate::formats::obs::ObsLayout;
use crate::formats::tenx;

/// Whether `file` has rliger's scaled data.
pub(crate) fn is_liger(file: &hdf5::File) -> bool {
    h5::member(file, "scaleDataSparse") == Member::Group
        && h5::member(file, "scaleDataSparse/indptr") == Member::Dataset
}

/// Whether a 10x-layout file is named as rliger's scaled export.
pub(crate) fn named_scaled(path: &Path) -> bool {
    path.file_name()
        .map(|n| n.to_string_lossy().to_lowercase().ends_with("_scaledata.h5"))
        .unwrap_or(false)
}

/// The layout of the scaled data and the names of the raw layout.
pub(crate) fn layout(file: &hdf5::File, path: &Path, options: &OpenOptions) -> Result<Layout, ReaderError> {
    let raw = if h5::member(file, "matrix") == Member::Group {
        tenx::layout_v3(file, path, options)?
    } else {
        tenx::layout_v2(file, path, options).map_err(|_| ReaderError::MissingObject {
            path: path.to_owned(),
            object: "/matrix/features/name".into(),
            what: "the gene and cell names of the LIGER file's raw data (10x layout)".into(),
        })?
    };
    let idx_name = "scaleDataSparse/featureIdx";
    tenx::require(
        file,
        path,
        idx_name,
        "the 1-based positions of the scaled genes among the file's features",
    )?;
    let object = format!("/{idx_name}");
    let ds = h5::dataset(file, idx_name, path, &object)?;
    let idx = h5::read_all_ints(&ds, path, &object)?;
    let n = raw.genes.len() as i128;
    let mut genes = Vec::with_capacity(idx.len());
    let mut ids = raw.gene_ids.as_ref().map(|_| Vec::with_capacity(idx.len()));
    for (k, &i) in idx.iter().enumerate() {
        if !(1..=n).contains(&i) {
            return Err(ReaderError::Corrupt {
                path: path.to_owned(),
                object,
                detail: format!("entry {k} is {i}, but positions run from 1 to {n} (the file's features)"),
            });
        }
        let i = (i - 1) as usize;
        genes.push(raw.genes[i].clone());
        if let (Some(ids), Some(all)) = (ids.as_mut(), raw.gene_ids.as_ref()) {
            ids.push(all[i].clone());
        }
    }
    let cells = raw.shape.map(|(c, _)| c);
    Ok(Layout {
        format: Format::Liger,
        storage: Storage::Csr("scaleDataSparse".into()),
        shape: cells.map(|c| (c, genes.len())),
        genes,
        genes_object: format!("{} (subset by /{idx_name})", raw.genes_object),
        gene_ids: ids,
        feature_types: None,
        genomes: None,
        cell_names: raw.cell_names,
        prescaled: true,
        obs: ObsLayout::None,
    })
}
