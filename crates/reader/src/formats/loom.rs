//! The loom layout (loompy ≥ 2): `/matrix` is a dense genes × cells
//! dataset (other matrices under `/layers/<name>`), gene names in
//! `row_attrs/Gene` (or `row_attrs/var_names`, as scanpy writes them),
//! gene ids in `row_attrs/Accession`, cell names in `col_attrs/CellID` (or
//! `col_attrs/obs_names`). String `col_attrs` are carried as obs columns.

use std::path::Path;

use crate::error::ReaderError;
use crate::formats::dataset::{Format, Layout, MatrixLocation, NameSource, Storage};
use crate::formats::h5::{self, Ctx, Member};
use crate::formats::obs::ObsLayout;

/// Gene-name attributes, in order of preference.
const GENE_ATTRS: [&str; 3] = ["Gene", "var_names", "gene_names"];
/// Cell-name attributes, in order of preference.
const CELL_ATTRS: [&str; 3] = ["CellID", "obs_names", "cell_names"];

/// Whether `file` looks like a loom file.
pub(crate) fn is_loom(file: &hdf5::File) -> bool {
    h5::member(file, "matrix") == Member::Dataset
        && h5::member(file, "row_attrs") == Member::Group
        && h5::member(file, "col_attrs") == Member::Group
}

/// Locates the chosen matrix and the names.
pub(crate) fn layout(file: &hdf5::File, path: &Path, loc: &MatrixLocation) -> Result<Layout, ReaderError> {
    let matrix = match loc {
        MatrixLocation::X => "matrix".to_owned(),
        MatrixLocation::Layer(n) => format!("layers/{n}"),
        MatrixLocation::Raw => {
            return Err(ReaderError::NoMatrix {
                path: path.to_owned(),
                object: "/raw/X".into(),
                found: h5::member_names(file, path, "/")?,
            })
        }
    };
    if h5::member(file, &matrix) != Member::Dataset {
        let found = match h5::member(file, "layers") {
            Member::Group => {
                let g = file.group("layers").ctx(path, "/layers")?;
                h5::member_names(&g, path, "/layers")?
                    .into_iter()
                    .map(|n| format!("layers/{n}"))
                    .collect()
            }
            _ => h5::member_names(file, path, "/")?,
        };
        return Err(ReaderError::NoMatrix {
            path: path.to_owned(),
            object: format!("/{matrix}"),
            found,
        });
    }
    let first = |group: &str, names: &[&str]| {
        names
            .iter()
            .map(|n| format!("{group}/{n}"))
            .find(|p| h5::member(file, p) == Member::Dataset)
    };
    let Some(genes_at) = first("row_attrs", &GENE_ATTRS) else {
        return Err(ReaderError::MissingObject {
            path: path.to_owned(),
            object: "/row_attrs/Gene".into(),
            what: "the gene names (also looked for row_attrs/var_names)".into(),
        });
    };
    let Some(cells_at) = first("col_attrs", &CELL_ATTRS) else {
        return Err(ReaderError::MissingObject {
            path: path.to_owned(),
            object: "/col_attrs/CellID".into(),
            what: "the cell names (also looked for col_attrs/obs_names)".into(),
        });
    };
    let genes_object = format!("/{genes_at}");
    let ds = h5::dataset(file, &genes_at, path, &genes_object)?;
    let genes = h5::read_strings(&ds, None, path, &genes_object)?;
    let gene_ids = match h5::member(file, "row_attrs/Accession") {
        Member::Dataset => {
            let ds = file
                .dataset("row_attrs/Accession")
                .ctx(path, "/row_attrs/Accession")?;
            match h5::read_strings(&ds, None, path, "/row_attrs/Accession") {
                Ok(v) if v.len() == genes.len() => Some(v),
                _ => None,
            }
        }
        _ => None,
    };
    Ok(Layout {
        format: Format::Loom,
        storage: Storage::Dense {
            name: matrix,
            genes_first: true,
        },
        shape: None,
        genes,
        genes_object,
        gene_ids,
        feature_types: None,
        genomes: None,
        cell_names: NameSource::Strings(cells_at.clone()),
        prescaled: false,
        obs: ObsLayout::Loom { names: cells_at },
    })
}
