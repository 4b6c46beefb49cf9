//! The model file (`model.h5`): everything scenario 2 and 3 need to continue
//! an online run, and nothing they would have to guess.
//!
//! Layout (format version [`MODEL_FORMAT_VERSION`]):
//! ```text
//! /                      attrs: format ("inmf-model"), format_version, inmf_version,
//!                               k, lambda, batch_size, epochs, shuffle_block,
//!                               hals_sweeps, seed, iterations, epochs_done,
//!                               checkpoint_iterations (checkpoint files only),
//!                               normalization ("library-size"), scaling ("scaleNotCenter")
//! /W                     genes × K, f64
//! /genes                 gene names (variable-length UTF-8)
//! /epoch_objective       mean mini-batch objective per cell, per epoch of the last phase
//! /datasets/<i>/         attrs: name, path (as given), n_cells, fingerprint, frozen
//!          V, A, B, A_old, B_old   f64
//!          scale          per-gene scale factor s_g of scaleNotCenter (f64, genes)
//! ```
//! Written to a temporary name and renamed when complete.

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use inmf_learner::{DatasetState, OnlineInmf, OnlineParams};
use ndarray::{Array1, Array2};

use crate::anndata::temp::TempFile;
use crate::error::DriverError;

/// The model file format this build writes and reads.
pub const MODEL_FORMAT_VERSION: u32 = 1;

/// One dataset as recorded in the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDataset {
    /// Dataset name (unique in the run).
    pub name: String,
    /// Input path as given by the user.
    pub path: PathBuf,
    /// Cells used (after dropping all-zero cells).
    pub n_cells: usize,
    /// Content fingerprint of the input file (see `fingerprint.rs`).
    pub fingerprint: String,
    /// scaleNotCenter factors s_g per model gene.
    pub scale: Vec<f64>,
}

/// A saved online iNMF model with its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedModel {
    /// W, V_i and statistics.
    pub model: OnlineInmf,
    /// Parameters of the run that produced it.
    pub params: OnlineParams,
    /// Model genes, in row order of W.
    pub genes: Vec<String>,
    /// Datasets, in the order of `model.datasets`.
    pub datasets: Vec<ModelDataset>,
    /// Online iterations performed.
    pub iterations: usize,
    /// Epochs completed (of the last learning phase).
    pub epochs_done: usize,
    /// Mean mini-batch objective per cell of each epoch of the last learning phase.
    pub epoch_objective: Vec<f64>,
    /// Set only in checkpoint files: iterations of the current learning
    /// phase already done (the phase resumes at the next one).
    pub checkpoint_iterations: Option<usize>,
}

fn h5err<'a>(path: &'a Path, what: &str) -> impl Fn(hdf5::Error) -> DriverError + 'a {
    let what = what.to_string();
    move |source| DriverError::hdf5(path, what.clone(), source)
}

fn vlu(s: &str) -> VarLenUnicode {
    // Names never contain NUL bytes; replace defensively rather than fail.
    s.replace('\0', " ")
        .parse()
        .expect("a string without NUL is valid VarLenUnicode")
}

fn put_attr_str(loc: &hdf5::Location, name: &str, value: &str) -> hdf5::Result<()> {
    loc.new_attr::<VarLenUnicode>()
        .shape(())
        .create(name)?
        .write_scalar(&vlu(value))
}

fn put_attr<T: hdf5::H5Type>(loc: &hdf5::Location, name: &str, value: T) -> hdf5::Result<()> {
    loc.new_attr::<T>().shape(()).create(name)?.write_scalar(&value)
}

fn get_attr<T: hdf5::H5Type>(loc: &hdf5::Location, name: &str) -> hdf5::Result<T> {
    loc.attr(name)?.read_scalar()
}

/// The model file at `path` cannot be what inmf wrote.
fn damaged(path: &Path, reason: String) -> DriverError {
    DriverError::DamagedFile {
        path: path.to_path_buf(),
        reason,
        fix: "It was not written completely by inmf or was changed since; restore it from a copy, \
              or write it again with `inmf run`"
            .into(),
    }
}

/// The first line of an HDF5 error, without the library's repetitions.
pub(crate) fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or(text);
    // hdf5-metno joins the error stack with ": "; its first two links say enough.
    let parts: Vec<&str> = line.split(": ").take(3).collect();
    parts.join(": ")
}

/// Every value of a stored factor or statistic is finite.
fn check_finite(path: &Path, what: &str, a: &Array2<f64>) -> Result<(), DriverError> {
    match a.indexed_iter().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some(((r, c), v)) => Err(damaged(
            path,
            format!("`{what}` holds the non-finite value {v} at row {r}, column {c}, which no run writes"),
        )),
    }
}

/// The output-set id of the model file at `path` (attribute `output_set`):
/// `Some(None)` when it has none, `None` when the file cannot be opened.
pub(crate) fn read_output_set(path: &Path) -> Option<Option<String>> {
    let f = hdf5::File::open(path).ok()?;
    Some(get_attr_str(&f, "output_set").ok())
}

fn get_attr_str(loc: &hdf5::Location, name: &str) -> hdf5::Result<String> {
    Ok(loc
        .attr(name)?
        .read_scalar::<VarLenUnicode>()?
        .as_str()
        .to_string())
}

impl SavedModel {
    /// Writes the model to `path` (temporary name, renamed when complete).
    pub fn save(&self, path: &Path) -> Result<(), DriverError> {
        self.save_to_temp(path, None)?.commit().map(|_| ())
    }

    /// Writes the model to a temporary sibling of `path`; the caller commits
    /// it (renames it to `path`) when every other output is complete too.
    /// `output_set` ties the model to the result file written with it
    /// (attribute `output_set`; see [`crate::output::set`]).
    pub(crate) fn save_to_temp(
        &self,
        path: &Path,
        output_set: Option<&str>,
    ) -> Result<TempFile, DriverError> {
        let tmp = TempFile::new(path)?;
        let e = h5err(path, "writing the model");
        let f = hdf5::File::create(tmp.tmp()).map_err(&e)?;
        let written = (|| -> Result<(), DriverError> {
            let p = &self.params;
            put_attr_str(&f, "format", "inmf-model").map_err(&e)?;
            put_attr(&f, "format_version", MODEL_FORMAT_VERSION).map_err(&e)?;
            put_attr_str(&f, "inmf_version", env!("CARGO_PKG_VERSION")).map_err(&e)?;
            if let Some(id) = output_set {
                put_attr_str(&f, "output_set", id).map_err(&e)?;
            }
            put_attr(&f, "k", p.k as u64).map_err(&e)?;
            put_attr(&f, "lambda", p.lambda).map_err(&e)?;
            put_attr(&f, "batch_size", p.batch_size as u64).map_err(&e)?;
            put_attr(&f, "epochs", p.epochs as u64).map_err(&e)?;
            put_attr(&f, "shuffle_block", p.shuffle_block as u64).map_err(&e)?;
            put_attr(&f, "hals_sweeps", p.hals_sweeps as u64).map_err(&e)?;
            put_attr(&f, "seed", p.seed).map_err(&e)?;
            put_attr(&f, "iterations", self.iterations as u64).map_err(&e)?;
            put_attr(&f, "epochs_done", self.epochs_done as u64).map_err(&e)?;
            if let Some(t) = self.checkpoint_iterations {
                put_attr(&f, "checkpoint_iterations", t as u64).map_err(&e)?;
            }
            f.new_dataset_builder()
                .with_data(&Array1::from(self.epoch_objective.clone()))
                .create("epoch_objective")
                .map_err(&e)?;
            put_attr_str(&f, "normalization", "library-size").map_err(&e)?;
            put_attr_str(&f, "scaling", "scaleNotCenter").map_err(&e)?;
            f.new_dataset_builder()
                .with_data(&self.model.w)
                .create("W")
                .map_err(&e)?;
            let genes: Array1<VarLenUnicode> = self.genes.iter().map(|g| vlu(g)).collect();
            f.new_dataset_builder()
                .with_data(&genes)
                .create("genes")
                .map_err(&e)?;
            let dg = f.create_group("datasets").map_err(&e)?;
            for (i, (st, meta)) in self.model.datasets.iter().zip(&self.datasets).enumerate() {
                let g = dg.create_group(&i.to_string()).map_err(&e)?;
                put_attr_str(&g, "name", &meta.name).map_err(&e)?;
                put_attr_str(&g, "path", &meta.path.to_string_lossy()).map_err(&e)?;
                put_attr(&g, "n_cells", meta.n_cells as u64).map_err(&e)?;
                put_attr_str(&g, "fingerprint", &meta.fingerprint).map_err(&e)?;
                put_attr(&g, "frozen", u8::from(st.frozen)).map_err(&e)?;
                for (name, arr) in [
                    ("V", &st.v),
                    ("A", &st.a),
                    ("B", &st.b),
                    ("A_old", &st.a_old),
                    ("B_old", &st.b_old),
                ] {
                    g.new_dataset_builder().with_data(arr).create(name).map_err(&e)?;
                }
                g.new_dataset_builder()
                    .with_data(&Array1::from(meta.scale.clone()))
                    .create("scale")
                    .map_err(&e)?;
            }
            Ok(())
        })();
        match written {
            Ok(()) => f.close().map_err(&e)?,
            // Closing a file whose write failed can crash libhdf5 (see
            // anndata::writer::ClosedExplicitly); the temporary is removed.
            Err(err) => {
                std::mem::forget(f);
                return Err(err);
            }
        }
        Ok(tmp)
    }

    /// Reads a model written by [`SavedModel::save`], checking the format
    /// version and that every shape agrees with K and the gene list.
    pub fn load(path: &Path) -> Result<Self, DriverError> {
        let e = |source: hdf5::Error| damaged(path, first_line(&source.to_string()));
        let invalid = |msg: String| DriverError::InvalidModel {
            path: path.to_path_buf(),
            message: msg,
        };
        if !path.exists() {
            return Err(invalid(
                "the file does not exist; give the model.h5 written by `inmf run`".into(),
            ));
        }
        let f = hdf5::File::open(path).map_err(&e)?;
        let format = get_attr_str(&f, "format")
            .map_err(|_| invalid("not an inmf model (no `format` attribute)".into()))?;
        if format != "inmf-model" {
            return Err(invalid(format!("not an inmf model (format is {format:?})")));
        }
        let version: u32 = get_attr(&f, "format_version").map_err(&e)?;
        if version > MODEL_FORMAT_VERSION {
            return Err(invalid(format!(
                "written by a newer inmf (model format {version}, this build reads ≤ {MODEL_FORMAT_VERSION}); upgrade inmf"
            )));
        }
        let params = OnlineParams {
            k: get_attr::<u64>(&f, "k").map_err(&e)? as usize,
            lambda: get_attr(&f, "lambda").map_err(&e)?,
            batch_size: get_attr::<u64>(&f, "batch_size").map_err(&e)? as usize,
            epochs: get_attr::<u64>(&f, "epochs").map_err(&e)? as usize,
            shuffle_block: get_attr::<u64>(&f, "shuffle_block").map_err(&e)? as usize,
            hals_sweeps: get_attr::<u64>(&f, "hals_sweeps").map_err(&e)? as usize,
            seed: get_attr(&f, "seed").map_err(&e)?,
        };
        let w: Array2<f64> = f.dataset("W").map_err(&e)?.read_2d().map_err(&e)?;
        let genes: Vec<String> = f
            .dataset("genes")
            .map_err(&e)?
            .read_raw::<VarLenUnicode>()
            .map_err(&e)?
            .iter()
            .map(|s| s.as_str().to_string())
            .collect();
        let (m, k) = w.dim();
        if k != params.k || m != genes.len() {
            return Err(invalid(format!(
                "W is {m} × {k} but the model claims K = {} and lists {} genes",
                params.k,
                genes.len()
            )));
        }
        let dg = f.group("datasets").map_err(&e)?;
        let n = dg.member_names().map_err(&e)?.len();
        let mut states = Vec::with_capacity(n);
        let mut datasets = Vec::with_capacity(n);
        for i in 0..n {
            let g = dg.group(&i.to_string()).map_err(&e)?;
            let read = |name: &str, shape: (usize, usize)| -> Result<Array2<f64>, DriverError> {
                let a: Array2<f64> = g.dataset(name).map_err(&e)?.read_2d().map_err(&e)?;
                if a.dim() != shape {
                    return Err(invalid(format!(
                        "datasets/{i}/{name} is {:?}, expected {shape:?}",
                        a.dim()
                    )));
                }
                Ok(a)
            };
            let st = DatasetState {
                v: read("V", (m, k))?,
                a: read("A", (k, k))?,
                b: read("B", (m, k))?,
                a_old: read("A_old", (k, k))?,
                b_old: read("B_old", (m, k))?,
                frozen: get_attr::<u8>(&g, "frozen").map_err(&e)? != 0,
            };
            let scale: Vec<f64> = g.dataset("scale").map_err(&e)?.read_raw().map_err(&e)?;
            if scale.len() != m {
                return Err(invalid(format!(
                    "datasets/{i}/scale has {} entries for {m} genes",
                    scale.len()
                )));
            }
            states.push(st);
            datasets.push(ModelDataset {
                name: get_attr_str(&g, "name").map_err(&e)?,
                path: PathBuf::from(get_attr_str(&g, "path").map_err(&e)?),
                n_cells: get_attr::<u64>(&g, "n_cells").map_err(&e)? as usize,
                fingerprint: get_attr_str(&g, "fingerprint").map_err(&e)?,
                scale,
            });
        }
        check_finite(path, "W", &w)?;
        for (i, st) in states.iter().enumerate() {
            for (name, a) in [
                ("V", &st.v),
                ("A", &st.a),
                ("B", &st.b),
                ("A_old", &st.a_old),
                ("B_old", &st.b_old),
            ] {
                check_finite(path, &format!("datasets/{i}/{name}"), a)?;
            }
        }
        Ok(Self {
            model: OnlineInmf {
                w,
                datasets: states,
                lambda: params.lambda,
            },
            params,
            genes,
            datasets,
            iterations: get_attr::<u64>(&f, "iterations").map_err(&e)? as usize,
            epochs_done: get_attr::<u64>(&f, "epochs_done").map_err(&e)? as usize,
            epoch_objective: f.dataset("epoch_objective").map_err(&e)?.read_raw().map_err(&e)?,
            checkpoint_iterations: match f.attr("checkpoint_iterations") {
                Ok(a) => Some(a.read_scalar::<u64>().map_err(&e)? as usize),
                Err(_) => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn example() -> SavedModel {
        let w = Array2::from_shape_fn((4, 2), |(i, j)| (i * 2 + j) as f64 * 0.1 + 1e-17);
        let mut model = OnlineInmf::new(w.clone(), vec![w.clone() * 0.5, w.clone() * 0.25], 5.0).unwrap();
        model.datasets[0].frozen = true;
        model.datasets[1].a[[0, 1]] = std::f64::consts::PI;
        SavedModel {
            model,
            params: OnlineParams {
                k: 2,
                ..Default::default()
            },
            genes: (0..4).map(|g| format!("g{g}")).collect(),
            datasets: (0..2)
                .map(|i| ModelDataset {
                    name: format!("d{i}"),
                    path: PathBuf::from(format!("/data/d{i}.h5ad")),
                    n_cells: 10 + i,
                    fingerprint: format!("{i:016x}"),
                    scale: vec![0.5, 1.0, 2.0, 0.0],
                })
                .collect(),
            iterations: 7,
            epochs_done: 2,
            epoch_objective: vec![3.0, 2.5],
            checkpoint_iterations: Some(5),
        }
    }

    #[test]
    fn round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.h5");
        let m = example();
        m.save(&p).unwrap();
        assert_eq!(SavedModel::load(&p).unwrap(), m);
        let plain = SavedModel {
            checkpoint_iterations: None,
            ..m
        };
        plain.save(&dir.path().join("b.h5")).unwrap();
        assert_eq!(SavedModel::load(&dir.path().join("b.h5")).unwrap(), plain);
        // Only the final file exists: no temporary left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn newer_versions_and_inconsistent_shapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.h5");
        example().save(&p).unwrap();
        {
            let f = hdf5::File::open_rw(&p).unwrap();
            f.attr("format_version")
                .unwrap()
                .write_scalar(&(MODEL_FORMAT_VERSION + 1))
                .unwrap();
        }
        let e = SavedModel::load(&p).unwrap_err().to_string();
        assert!(e.contains("newer"), "{e}");
        let mut bad = example();
        bad.params.k = 3;
        bad.save(&p).unwrap();
        let e = SavedModel::load(&p).unwrap_err().to_string();
        assert!(e.contains("K = 3"), "{e}");
        let e = SavedModel::load(&dir.path().join("nope.h5"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }
}
