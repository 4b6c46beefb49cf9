//! The 10x Genomics .h5 layouts. Cell Ranger ≥ 3: group `matrix/` with
//! `data`, `indices`, `indptr`, `shape` = [genes, cells], `barcodes`,
//! `features/{id,name,feature_type}`. Cell Ranger 2: one group per genome
//! with the same arrays and `genes`, `gene_names`. Both are CSC genes ×
//! cells, i.e. each cell's non-zeros are contiguous: CSR cells × genes.
//! Several genomes: Cell Ranger 2 keeps one group each (choose with
//! [`OpenOptions::genome`]); Cell Ranger ≥ 3 tags each feature with
//! `features/genome` (the same option filters them). A file of a single
//! genome is read whole whatever the option names.

use std::path::Path;

use crate::error::ReaderError;
use crate::formats::dataset::{Format, Layout, MatrixLocation, NameSource, OpenOptions, Storage};
use crate::formats::h5::{self, Member};
use crate::formats::obs::ObsLayout;

/// Cell Ranger ≥ 3 layout.
pub(crate) fn layout_v3(
    file: &hdf5::File,
    path: &Path,
    options: &OpenOptions,
) -> Result<Layout, ReaderError> {
    only_x(file, path, options)?;
    let (n_genes, n_cells) = shape(file, path, "matrix/shape")?;
    let genes = strings(file, path, "matrix/features/name", "the gene names")?;
    let gene_ids = optional(file, path, "matrix/features/id")?;
    let feature_types = optional(file, path, "matrix/features/feature_type")?;
    let genomes = optional(file, path, "matrix/features/genome")?;
    for (what, v) in [
        ("features/id", &gene_ids),
        ("features/feature_type", &feature_types),
        ("features/genome", &genomes),
    ] {
        if let Some(v) = v {
            if v.len() != genes.len() {
                return Err(ReaderError::BadShape {
                    path: path.to_owned(),
                    object: format!("/matrix/{what}"),
                    expected: format!("{} entries (as many as features/name)", genes.len()),
                    found: format!("{} entries", v.len()),
                });
            }
        }
    }
    require(file, path, "matrix/barcodes", "the cell barcodes")?;
    Ok(Layout {
        format: Format::TenXV3,
        storage: Storage::Csr("matrix".into()),
        shape: Some((n_cells, n_genes)),
        genes,
        genes_object: "/matrix/features/name".into(),
        gene_ids,
        feature_types,
        genomes,
        cell_names: NameSource::Strings("matrix/barcodes".into()),
        prescaled: false,
        obs: ObsLayout::None,
    })
}

/// Cell Ranger 2 layout: one top-level genome group (the only one, or,
/// among several, the one named by [`OpenOptions::genome`]).
pub(crate) fn layout_v2(
    file: &hdf5::File,
    path: &Path,
    options: &OpenOptions,
) -> Result<Layout, ReaderError> {
    let top = h5::member_names(file, path, "/")?;
    let genomes: Vec<String> = top
        .iter()
        .filter(|g| {
            h5::member(file, &format!("{g}/indptr")) == Member::Dataset
                && h5::member(file, &format!("{g}/barcodes")) == Member::Dataset
                && h5::member(file, &format!("{g}/genes")) == Member::Dataset
        })
        .cloned()
        .collect();
    let g = match (genomes.as_slice(), &options.genome) {
        ([], _) => {
            return Err(ReaderError::NoMatrix {
                path: path.to_owned(),
                object: "/X".into(),
                found: top,
            })
        }
        // A single genome is read whatever the option names (see `Dataset::notes`).
        ([only], _) => only,
        (several, Some(w)) => match several.iter().find(|g| *g == w) {
            Some(g) => g,
            None => {
                return Err(ReaderError::NoGenome {
                    path: path.to_owned(),
                    object: "/ (genome groups)".into(),
                    wanted: Some(w.clone()),
                    found: genomes.clone(),
                })
            }
        },
        (_, None) => {
            return Err(ReaderError::NoGenome {
                path: path.to_owned(),
                object: "/ (genome groups)".into(),
                wanted: None,
                found: genomes.clone(),
            })
        }
    };
    only_x(file, path, options)?;
    let (n_genes, n_cells) = shape(file, path, &format!("{g}/shape"))?;
    let ids = strings(file, path, &format!("{g}/genes"), "the gene ids")?;
    let genes = match optional(file, path, &format!("{g}/gene_names"))? {
        Some(n) if n.len() == ids.len() => n,
        _ => ids.clone(),
    };
    Ok(Layout {
        format: Format::TenXV2,
        storage: Storage::Csr(g.clone()),
        shape: Some((n_cells, n_genes)),
        genes,
        genes_object: format!("/{g}/gene_names"),
        gene_ids: Some(ids),
        feature_types: None,
        genomes: None,
        cell_names: NameSource::Strings(format!("{g}/barcodes")),
        prescaled: false,
        obs: ObsLayout::None,
    })
}

fn only_x(file: &hdf5::File, path: &Path, options: &OpenOptions) -> Result<(), ReaderError> {
    let object = match &options.matrix {
        MatrixLocation::X => return Ok(()),
        MatrixLocation::Raw => "/raw/X".to_owned(),
        MatrixLocation::Layer(n) => format!("/layers/{n}"),
    };
    Err(ReaderError::NoMatrix {
        path: path.to_owned(),
        object,
        found: h5::member_names(file, path, "/")?,
    })
}

/// `shape` = [genes, cells].
pub(crate) fn shape(file: &hdf5::File, path: &Path, name: &str) -> Result<(usize, usize), ReaderError> {
    let object = format!("/{name}");
    require(file, path, name, "the matrix shape [genes, cells]")?;
    let ds = h5::dataset(file, name, path, &object)?;
    let s = h5::read_all_ints(&ds, path, &object)?;
    match s.as_slice() {
        [g, c] if *g >= 0 && *c >= 0 => Ok((*g as usize, *c as usize)),
        _ => Err(ReaderError::BadShape {
            path: path.to_owned(),
            object,
            expected: "two non-negative numbers [genes, cells]".into(),
            found: format!("{s:?}"),
        }),
    }
}

pub(crate) fn require(file: &hdf5::File, path: &Path, name: &str, what: &str) -> Result<(), ReaderError> {
    if h5::member(file, name) == Member::Dataset {
        Ok(())
    } else {
        Err(ReaderError::MissingObject {
            path: path.to_owned(),
            object: format!("/{name}"),
            what: what.into(),
        })
    }
}

pub(crate) fn strings(
    file: &hdf5::File,
    path: &Path,
    name: &str,
    what: &str,
) -> Result<Vec<String>, ReaderError> {
    require(file, path, name, what)?;
    let object = format!("/{name}");
    let ds = h5::dataset(file, name, path, &object)?;
    h5::read_strings(&ds, None, path, &object)
}

pub(crate) fn optional(
    file: &hdf5::File,
    path: &Path,
    name: &str,
) -> Result<Option<Vec<String>>, ReaderError> {
    if h5::member(file, name) != Member::Dataset {
        return Ok(None);
    }
    let object = format!("/{name}");
    let ds = h5::dataset(file, name, path, &object)?;
    h5::read_strings(&ds, None, path, &object).map(Some)
}
