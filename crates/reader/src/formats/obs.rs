//! Categorical and string columns of the cells' dataframe, read by runs of
//! cells: AnnData `obs` (anndata ≥ 0.8 categoricals: a group with
//! `categories`, `codes` and the `ordered` attribute; anndata 0.7
//! categoricals: integer codes with the categories in
//! `obs/__categories/<name>`; string-arrays) and loom `col_attrs` (string
//! datasets). Numeric columns are not carried.
//!
//! Columns are discovered when a file is opened (categories are read then;
//! they are short); a column that does not have one entry per cell or has
//! an unusable type is skipped, never an error, since the run does not
//! need it.

use std::ops::Range;
use std::path::Path;

use crate::error::ReaderError;
use crate::formats::h5::{self, Ctx, Member, NumKind};

/// What kind of values an obs column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObsKind {
    /// Free strings, one per cell.
    Strings,
    /// Codes into a list of categories.
    Categorical {
        /// The categories, in code order.
        categories: Vec<String>,
        /// Whether the categories are ordered (pandas' `ordered`).
        ordered: bool,
    },
}

/// One carried column of the cells' dataframe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObsColumn {
    /// The column's name.
    pub name: String,
    /// Its kind (and categories).
    pub kind: ObsKind,
}

/// Values of an obs column for a run of cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObsValues {
    /// One string per cell.
    Strings(Vec<String>),
    /// One code per cell into the column's categories; −1 = missing.
    Codes(Vec<i32>),
}

/// Where a file keeps its cells' columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ObsLayout {
    /// No columns (10x, LIGER, anndata < 0.7 compound dataframes).
    None,
    /// An AnnData dataframe group (`obs`).
    AnnData(String),
    /// loom `col_attrs`, except `names` (the dataset of cell names).
    Loom { names: String },
}

/// How one column is read.
#[derive(Debug)]
pub(crate) enum ObsStore {
    Strings {
        ds: hdf5::Dataset,
        object: String,
    },
    Codes {
        ds: hdf5::Dataset,
        object: String,
        kind: NumKind,
    },
}

impl ObsStore {
    /// Reads `cells` (already checked against the cell count).
    pub(crate) fn read(
        &self,
        path: &Path,
        col: &ObsColumn,
        cells: Range<usize>,
    ) -> Result<ObsValues, ReaderError> {
        if cells.is_empty() {
            return Ok(match self {
                ObsStore::Strings { .. } => ObsValues::Strings(Vec::new()),
                ObsStore::Codes { .. } => ObsValues::Codes(Vec::new()),
            });
        }
        match self {
            ObsStore::Strings { ds, object } => {
                h5::read_strings(ds, Some(cells), path, object).map(ObsValues::Strings)
            }
            ObsStore::Codes { ds, object, kind } => {
                let n = match &col.kind {
                    ObsKind::Categorical { categories, .. } => categories.len() as i64,
                    ObsKind::Strings => 0,
                };
                let start = cells.start;
                let raw = h5::read_codes(ds, *kind, cells).ctx(path, object)?;
                let mut out = Vec::with_capacity(raw.len());
                for (i, c) in raw.into_iter().enumerate() {
                    if c < -1 || c >= n {
                        return Err(ReaderError::Corrupt {
                            path: path.to_owned(),
                            object: object.clone(),
                            detail: format!(
                                "cell {} has category code {c}, but there are {n} categories (codes 0..{n}, -1 = missing)",
                                start + i
                            ),
                        });
                    }
                    out.push(c as i32);
                }
                Ok(ObsValues::Codes(out))
            }
        }
    }
}

/// Finds the usable columns of `layout` (see the module doc).
pub(crate) fn discover(
    file: &hdf5::File,
    path: &Path,
    layout: &ObsLayout,
    n_cells: usize,
) -> Vec<(ObsColumn, ObsStore)> {
    match layout {
        ObsLayout::None => Vec::new(),
        ObsLayout::AnnData(group) => anndata_columns(file, path, group, n_cells),
        ObsLayout::Loom { names } => {
            let Ok(g) = file.group("col_attrs") else {
                return Vec::new();
            };
            let skip = names.rsplit('/').next().unwrap_or_default().to_owned();
            let mut out = Vec::new();
            for name in g.member_names().unwrap_or_default() {
                if name == skip {
                    continue;
                }
                if let Some(c) = string_column(file, path, &format!("col_attrs/{name}"), &name, n_cells) {
                    out.push(c);
                }
            }
            out
        }
    }
}

fn anndata_columns(
    file: &hdf5::File,
    path: &Path,
    group: &str,
    n_cells: usize,
) -> Vec<(ObsColumn, ObsStore)> {
    let Ok(g) = file.group(group) else {
        return Vec::new();
    };
    let object = format!("/{group}");
    let index = h5::string_attr(&g, "_index", path, &object)
        .ok()
        .flatten()
        .unwrap_or_else(|| "_index".into());
    let order = g
        .attr("column-order")
        .ok()
        .and_then(|a| h5::read_strings(&a, None, path, &format!("{object}@column-order")).ok());
    let names: Vec<String> = match order {
        Some(o) => o,
        None => g
            .member_names()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| *n != index && n != "__categories")
            .collect(),
    };
    let mut out = Vec::new();
    for name in names {
        let member = format!("{group}/{name}");
        let col = match h5::member(file, &member) {
            Member::Group => categorical_group(file, path, &member, &name, n_cells),
            Member::Dataset => {
                let legacy = format!("{group}/__categories/{name}");
                if h5::member(file, &legacy) == Member::Dataset {
                    legacy_categorical(file, path, &member, &legacy, &name, n_cells)
                } else {
                    string_column(file, path, &member, &name, n_cells)
                }
            }
            _ => None,
        };
        out.extend(col);
    }
    out
}

/// A 1-d string dataset of one entry per cell, if `member` is one.
fn string_column(
    file: &hdf5::File,
    path: &Path,
    member: &str,
    name: &str,
    n_cells: usize,
) -> Option<(ObsColumn, ObsStore)> {
    let object = format!("/{member}");
    let ds = file.dataset(member).ok()?;
    if ds.ndim() != 1 || ds.size() != n_cells {
        return None;
    }
    // Probe the type with a one-element read (or none when there are no cells).
    if n_cells > 0 {
        h5::read_strings(&ds, Some(0..1), path, &object).ok()?;
    }
    Some((
        ObsColumn {
            name: name.to_owned(),
            kind: ObsKind::Strings,
        },
        ObsStore::Strings { ds, object },
    ))
}

/// The categories of a categorical column, if `ds` is a string dataset.
fn categories(ds: &hdf5::Dataset, path: &Path, object: &str) -> Option<Vec<String>> {
    h5::read_strings(ds, None, path, object).ok()
}

fn codes_store(file: &hdf5::File, path: &Path, member: &str, n_cells: usize) -> Option<ObsStore> {
    let object = format!("/{member}");
    let ds = file.dataset(member).ok()?;
    if ds.ndim() != 1 || ds.size() != n_cells {
        return None;
    }
    // Codes are read only later: a filter this build cannot decode skips the column now.
    h5::check_filters(&ds, path, &object).ok()?;
    let kind = h5::num_kind(&ds, path, &object, false).ok()?;
    Some(ObsStore::Codes { ds, object, kind })
}

/// anndata ≥ 0.8: group with `categories`, `codes`, attribute `ordered`.
fn categorical_group(
    file: &hdf5::File,
    path: &Path,
    member: &str,
    name: &str,
    n_cells: usize,
) -> Option<(ObsColumn, ObsStore)> {
    let g = file.group(member).ok()?;
    let enc = h5::string_attr(&g, "encoding-type", path, member).ok()??;
    if enc != "categorical" {
        return None;
    }
    let cat_obj = format!("/{member}/categories");
    let cats = categories(&g.dataset("categories").ok()?, path, &cat_obj)?;
    let ordered = g
        .attr("ordered")
        .ok()
        .and_then(|a| a.read_scalar::<bool>().ok())
        .unwrap_or(false);
    let store = codes_store(file, path, &format!("{member}/codes"), n_cells)?;
    Some((
        ObsColumn {
            name: name.to_owned(),
            kind: ObsKind::Categorical {
                categories: cats,
                ordered,
            },
        },
        store,
    ))
}

/// anndata 0.7: integer codes in `member`, categories in `legacy`.
fn legacy_categorical(
    file: &hdf5::File,
    path: &Path,
    member: &str,
    legacy: &str,
    name: &str,
    n_cells: usize,
) -> Option<(ObsColumn, ObsStore)> {
    let cats = categories(&file.dataset(legacy).ok()?, path, &format!("/{legacy}"))?;
    let store = codes_store(file, path, member, n_cells)?;
    let ordered = file
        .dataset(member)
        .ok()
        .and_then(|d| d.attr("ordered").ok())
        .and_then(|a| a.read_scalar::<bool>().ok())
        .unwrap_or(false);
    Some((
        ObsColumn {
            name: name.to_owned(),
            kind: ObsKind::Categorical {
                categories: cats,
                ordered,
            },
        },
        store,
    ))
}

/// Values of obs column `name` of `ds` for kept cells `kept` of `cells`
/// (the numbering a source presents, e.g. [`crate::Hdf5Source::cell_map`]):
/// one read of the file cells spanning them, dropped cells left out, so
/// the values stay in sync with the cells' names and H rows.
pub fn read_obs_kept(
    ds: &crate::Dataset,
    cells: &crate::CellMap,
    name: &str,
    kept: Range<usize>,
) -> Result<ObsValues, ReaderError> {
    if kept.start > kept.end || kept.end > cells.n_kept() || cells.n_total() != ds.n_cells() {
        return Err(ReaderError::BadRequest {
            path: ds.path().to_owned(),
            range: kept,
            n_cells: cells.n_kept(),
        });
    }
    let span = cells.original_span(kept);
    let start = span.start;
    let keep = |i: usize| !cells.is_dropped(start + i);
    Ok(match ds.read_obs_column(name, span)? {
        ObsValues::Strings(v) => ObsValues::Strings(
            v.into_iter()
                .enumerate()
                .filter(|(i, _)| keep(*i))
                .map(|(_, s)| s)
                .collect(),
        ),
        ObsValues::Codes(v) => ObsValues::Codes(
            v.into_iter()
                .enumerate()
                .filter(|(i, _)| keep(*i))
                .map(|(_, c)| c)
                .collect(),
        ),
    })
}
