//! The AnnData .h5ad layout. The matrix (`X`, `raw/X` or `layers/<name>`)
//! is a CSR group (`encoding-type` = "csr_matrix", or the older
//! `h5sparse_format` = "csr"), a CSC group ("csc_matrix" / "csc") or a
//! dense 2-d dataset (cells × genes). Gene names come from `var`
//! (`raw/var`), cell names from `obs`: groups whose index dataset is named
//! by the `_index` attribute (anndata ≥ 0.7), or compound datasets whose
//! `index` field holds the names (anndata < 0.7).

use std::path::Path;

use crate::error::ReaderError;
use crate::formats::dataset::{Format, Layout, MatrixLocation, NameSource, Storage};
use crate::formats::h5::{self, Ctx, Member};
use crate::formats::obs::ObsLayout;

/// Locates the chosen matrix and its names.
pub(crate) fn layout(file: &hdf5::File, path: &Path, loc: &MatrixLocation) -> Result<Layout, ReaderError> {
    let (matrix, var) = match loc {
        MatrixLocation::X => ("X".to_owned(), "var"),
        MatrixLocation::Raw => ("raw/X".to_owned(), "raw/var"),
        MatrixLocation::Layer(name) => (format!("layers/{name}"), "var"),
    };
    let object = format!("/{matrix}");
    let (storage, shape) = match h5::member(file, &matrix) {
        Member::Group => sparse_storage(file, path, &matrix)?,
        Member::Dataset => {
            let ds = h5::dataset(file, &matrix, path, &object)?;
            let s = ds.shape();
            if s.len() != 2 {
                return Err(ReaderError::BadShape {
                    path: path.to_owned(),
                    object,
                    expected: "2 dimensions (cells × genes)".into(),
                    found: format!("{} dimensions {s:?}", s.len()),
                });
            }
            (
                Storage::Dense {
                    name: matrix.clone(),
                    genes_first: false,
                },
                Some((s[0], s[1])),
            )
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
    };
    let frame = |df: &str| Frame::locate(file, path, df);
    let var_frame = frame(var)?;
    let genes = var_frame.read_index(file, path)?;
    let gene_ids = var_frame.read_gene_ids(file, path, genes.len())?;
    let obs_frame = frame("obs")?;
    let obs = match &obs_frame {
        Frame::Group { .. } => ObsLayout::AnnData("obs".into()),
        Frame::Compound { .. } => ObsLayout::None,
    };
    Ok(Layout {
        format: Format::AnnData,
        storage,
        shape,
        genes,
        genes_object: var_frame.index_object(),
        gene_ids,
        feature_types: None,
        genomes: None,
        cell_names: obs_frame.names(),
        prescaled: false,
        obs,
    })
}

/// The storage and shape (cells, genes) of a sparse matrix group.
#[allow(clippy::type_complexity)]
fn sparse_storage(
    file: &hdf5::File,
    path: &Path,
    matrix: &str,
) -> Result<(Storage, Option<(usize, usize)>), ReaderError> {
    let object = format!("/{matrix}");
    let g = file.group(matrix).ctx(path, &object)?;
    let encoding = match h5::string_attr(&g, "encoding-type", path, &object)? {
        Some(e) => Some(e),
        None => h5::string_attr(&g, "h5sparse_format", path, &object)?,
    };
    let storage = match encoding.as_deref() {
        Some("csr_matrix") | Some("csr") => Storage::Csr(matrix.to_owned()),
        Some("csc_matrix") | Some("csc") => Storage::Csc(matrix.to_owned()),
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
    };
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
    Ok((storage, shape))
}

/// A dataframe (`obs`, `var`, `raw/var`) and where its index is.
#[derive(Debug)]
enum Frame {
    /// anndata ≥ 0.7: a group; `index` is the path of the index dataset.
    Group { df: String, index: String },
    /// anndata < 0.7: a compound dataset; `field` holds the index.
    Compound { df: String, field: String },
}

impl Frame {
    fn locate(file: &hdf5::File, path: &Path, df: &str) -> Result<Self, ReaderError> {
        let object = format!("/{df}");
        match h5::member(file, df) {
            Member::Group => {}
            Member::Dataset => {
                let ds = h5::dataset(file, df, path, &object)?;
                let Some(field) = h5::COMPOUND_FIELDS[..2]
                    .iter()
                    .find(|f| h5::compound_field_type(&ds, f).is_some())
                else {
                    let found = ds
                        .dtype()
                        .and_then(|t| t.to_descriptor())
                        .map_or_else(|_| "an unknown type".to_owned(), |d| h5::describe(&d));
                    return Err(ReaderError::UnsupportedEncoding {
                        path: path.to_owned(),
                        object,
                        found: format!(
                            "a dataset of {found} without an `index` field (a legacy dataframe \
                             must name its index field `index`)"
                        ),
                    });
                };
                return Ok(Frame::Compound {
                    df: df.to_owned(),
                    field: (*field).to_owned(),
                });
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
        Ok(Frame::Group {
            df: df.to_owned(),
            index: name,
        })
    }

    fn names(&self) -> NameSource {
        match self {
            Frame::Group { index, .. } => NameSource::Strings(index.clone()),
            Frame::Compound { df, field } => NameSource::Compound {
                dataset: df.clone(),
                field: field.clone(),
            },
        }
    }

    fn index_object(&self) -> String {
        match self {
            Frame::Group { index, .. } => format!("/{index}"),
            Frame::Compound { df, field } => format!("/{df} (field `{field}`)"),
        }
    }

    /// Reads the whole index (names).
    fn read_index(&self, file: &hdf5::File, path: &Path) -> Result<Vec<String>, ReaderError> {
        match self {
            Frame::Group { index, .. } => {
                let object = format!("/{index}");
                let ds = h5::dataset(file, index, path, &object)?;
                h5::read_strings(&ds, None, path, &object)
            }
            Frame::Compound { df, field } => {
                let object = format!("/{df}");
                let ds = h5::dataset(file, df, path, &object)?;
                h5::read_compound_strings(&ds, field, None, path, &object)
            }
        }
    }

    /// Reads the `gene_ids` column if it exists, is a plain string column
    /// and has `len` entries; `None` otherwise (an optional extra).
    fn read_gene_ids(
        &self,
        file: &hdf5::File,
        path: &Path,
        len: usize,
    ) -> Result<Option<Vec<String>>, ReaderError> {
        let optional = |r: Result<Vec<String>, ReaderError>| match r {
            Ok(v) if v.len() == len => Ok(Some(v)),
            Ok(_) | Err(ReaderError::BadDtype { .. }) => Ok(None),
            Err(e) => Err(e),
        };
        match self {
            Frame::Group { df, .. } => {
                let name = format!("{df}/gene_ids");
                if h5::member(file, &name) != Member::Dataset {
                    return Ok(None);
                }
                let object = format!("/{name}");
                let ds = h5::dataset(file, &name, path, &object)?;
                if ds.ndim() != 1 {
                    return Ok(None);
                }
                optional(h5::read_strings(&ds, None, path, &object))
            }
            Frame::Compound { df, .. } => {
                let object = format!("/{df}");
                let ds = h5::dataset(file, df, path, &object)?;
                if h5::compound_field_type(&ds, "gene_ids").is_none() {
                    return Ok(None);
                }
                optional(h5::read_compound_strings(&ds, "gene_ids", None, path, &object))
            }
        }
    }
}

fn what(df: &str) -> &'static str {
    if df.ends_with("obs") {
        "cells"
    } else {
        "genes"
    }
}
