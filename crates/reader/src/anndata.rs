//! The AnnData .h5ad layout (anndata ≥ 0.7): `X`, `raw/X` or
//! `layers/<name>` as a CSR group (`encoding-type` = "csr_matrix", or the
//! older `h5sparse_format` = "csr"), gene names from `var` (`raw/var`),
//! cell names from `obs`, each index dataset named by the group's `_index`
//! attribute.

use std::path::Path;

use crate::dataset::{Format, Layout, MatrixLocation};
use crate::error::ReaderError;
use crate::h5::{self, Ctx, Member};

/// Locates the chosen matrix and its names, refusing layouts not read yet.
pub(crate) fn layout(file: &hdf5::File, path: &Path, loc: &MatrixLocation) -> Result<Layout, ReaderError> {
    let (matrix, var) = match loc {
        MatrixLocation::X => ("X".to_owned(), "var"),
        MatrixLocation::Raw => ("raw/X".to_owned(), "raw/var"),
        MatrixLocation::Layer(name) => (format!("layers/{name}"), "var"),
    };
    let object = format!("/{matrix}");
    match h5::member(file, &matrix) {
        Member::Group => {}
        Member::Dataset => {
            let ds = file.dataset(&matrix).ctx(path, &object)?;
            return Err(ReaderError::UnsupportedEncoding {
                path: path.to_owned(),
                object,
                found: format!("a dense array of shape {:?}", ds.shape()),
            });
        }
        Member::Missing | Member::Other => {
            // List what exists at the level where the matrix was expected.
            let parent = matrix.rsplit_once('/').map(|(p, _)| p);
            let found = match parent {
                Some(p) if h5::member(file, p) == Member::Group => {
                    let g = file.group(p).ctx(path, p)?;
                    h5::member_names(&g, path, p)?
                        .into_iter()
                        .map(|n| format!("{p}/{n}"))
                        .collect()
                }
                _ => h5::member_names(file, path, "/")?,
            };
            return Err(ReaderError::NoMatrix {
                path: path.to_owned(),
                object,
                found,
            });
        }
    }
    let g = file.group(&matrix).ctx(path, &object)?;
    let encoding = match h5::string_attr(&g, "encoding-type", path, &object)? {
        Some(e) => Some(e),
        None => h5::string_attr(&g, "h5sparse_format", path, &object)?,
    };
    match encoding.as_deref() {
        Some("csr_matrix") | Some("csr") => {}
        Some(other) => {
            return Err(ReaderError::UnsupportedEncoding {
                path: path.to_owned(),
                object,
                found: format!("\"{other}\""),
            })
        }
        None => {
            return Err(ReaderError::UnsupportedEncoding {
                path: path.to_owned(),
                object,
                found: "a group without an `encoding-type` attribute".into(),
            })
        }
    }
    let shape = match h5::ints_attr(&g, "shape", path, &object)? {
        Some(s) => Some(s),
        None => h5::ints_attr(&g, "h5sparse_shape", path, &object)?,
    };
    let shape = match shape {
        None => None,
        Some(s) if s.len() == 2 && s.iter().all(|&x| x >= 0 && x <= usize::MAX as i128) => {
            Some((s[0] as usize, s[1] as usize))
        }
        Some(s) => {
            return Err(ReaderError::BadShape {
                path: path.to_owned(),
                object: format!("{object}@shape"),
                expected: "two non-negative numbers (cells, genes)".into(),
                found: format!("{s:?}"),
            })
        }
    };
    let genes = read_index(file, path, var)?;
    let gene_ids = read_optional_strings(file, path, &format!("{var}/gene_ids"), genes.len())?;
    let cell_names = index_dataset(file, path, "obs")?;
    Ok(Layout {
        format: Format::AnnData,
        matrix,
        shape,
        genes,
        gene_ids,
        feature_types: None,
        cell_names,
    })
}

/// The HDF5 path of the index dataset of dataframe group `df` (`obs`, `var`,
/// `raw/var`), named by its `_index` attribute (default `_index`).
fn index_dataset(file: &hdf5::File, path: &Path, df: &str) -> Result<String, ReaderError> {
    let object = format!("/{df}");
    match h5::member(file, df) {
        Member::Group => {}
        Member::Dataset => {
            return Err(ReaderError::UnsupportedEncoding {
                path: path.to_owned(),
                object,
                found: "a compound dataset (the layout of anndata < 0.7)".into(),
            })
        }
        _ => {
            return Err(ReaderError::MissingObject {
                path: path.to_owned(),
                object,
                what: format!("the {df} dataframe with the names of the matrix's {}", what(df)),
            })
        }
    }
    let g = file.group(df).ctx(path, &object)?;
    let index = h5::string_attr(&g, "_index", path, &object)?.unwrap_or_else(|| "_index".into());
    let name = format!("{df}/{index}");
    if h5::member(file, &name) != Member::Dataset {
        return Err(ReaderError::MissingObject {
            path: path.to_owned(),
            object: format!("/{name}"),
            what: format!("the index (names) of the {}", what(df)),
        });
    }
    Ok(name)
}

fn what(df: &str) -> &'static str {
    if df.ends_with("obs") {
        "cells"
    } else {
        "genes"
    }
}

/// Reads the index (names) of dataframe group `df`.
fn read_index(file: &hdf5::File, path: &Path, df: &str) -> Result<Vec<String>, ReaderError> {
    let name = index_dataset(file, path, df)?;
    let object = format!("/{name}");
    let ds = file.dataset(&name).ctx(path, &object)?;
    h5::read_strings(&ds, None, path, &object)
}

/// Reads a string column if it exists, is a plain string dataset and has
/// `len` entries; `None` otherwise (such columns are optional extras).
fn read_optional_strings(
    file: &hdf5::File,
    path: &Path,
    name: &str,
    len: usize,
) -> Result<Option<Vec<String>>, ReaderError> {
    if h5::member(file, name) != Member::Dataset {
        return Ok(None);
    }
    let object = format!("/{name}");
    let ds = file.dataset(name).ctx(path, &object)?;
    if ds.ndim() != 1 || ds.size() != len {
        return Ok(None);
    }
    match h5::read_strings(&ds, None, path, &object) {
        Ok(v) => Ok(Some(v)),
        Err(ReaderError::BadDtype { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
