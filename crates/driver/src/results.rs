//! `result.h5ad`: the run's answer in a file scanpy opens directly.
//!
//! obs = every used cell, named as in its input (obs names), with
//! `obs['dataset']` (categorical) and `obs['cell_index']` (the row of the
//! cell in its input file, so dropped all-zero cells can never shift
//! anything); var = the selected genes; `obsm['X_inmf']` = H (cells × K,
//! streamed as the final pass solves it); `varm['W']`, `varm['V_<dataset>']`;
//! `uns['inmf']` = parameters, objective per epoch, final objective.

use std::path::Path;

use inmf_learner::{CellSource, ObjectiveParts, OnlineInmf, OnlineParams};
use inmf_reader::Hdf5Source;
use ndarray::ArrayView2;

use crate::anndata::{AnnDataWriter, Axis, DatasetOptions, DenseAppender, UnsValue};
use crate::error::DriverError;

/// Cells per chunk when copying names from the inputs.
const NAME_CHUNK: usize = 50_000;

/// Streams the result file; see the module doc for its content.
pub struct ResultWriter {
    file: AnnDataWriter,
    h: DenseAppender<f64>,
    /// Row offset of each dataset's first cell in obs.
    offsets: Vec<usize>,
    /// Rows of H written so far.
    written: usize,
}

impl ResultWriter {
    /// Creates the (temporary) file and writes everything but H: obs (names,
    /// dataset, cell index, streamed from the source), var, W and V_i, and
    /// the parameters and epoch objectives in `uns['inmf']`.
    pub fn create(
        path: &Path,
        source: &Hdf5Source,
        model: &OnlineInmf,
        params: &OnlineParams,
        epoch_objective: &[f64],
    ) -> Result<Self, DriverError> {
        let mut file = AnnDataWriter::create(path)?;
        let names = source.dataset_names().to_vec();
        let mut index = file.index(Axis::Obs)?;
        let mut dataset = file.categorical_column(Axis::Obs, "dataset", &names, false)?;
        let mut cell_index =
            file.numeric_column::<i64>(Axis::Obs, "cell_index", DatasetOptions::default())?;
        let mut offsets = Vec::with_capacity(names.len());
        let mut total = 0;
        for d in 0..source.n_datasets() {
            offsets.push(total);
            let n = source.n_cells(d);
            let map = source.cell_map(d);
            let mut s = 0;
            while s < n {
                let e = (s + NAME_CHUNK).min(n);
                index.append(source.cell_names(d, s..e)?)?;
                dataset.append(&vec![d as i32; e - s])?;
                let orig: Vec<i64> = (s..e).map(|c| map.original(c) as i64).collect();
                cell_index.append(&orig)?;
                s = e;
            }
            total += n;
        }
        index.finish()?;
        dataset.finish()?;
        cell_index.finish()?;
        file.write_index(Axis::Var, source.genes())?;
        file.write_dense(Axis::Var, "W", model.w.view())?;
        for (d, name) in names.iter().enumerate() {
            file.write_dense(Axis::Var, &format!("V_{name}"), model.datasets[d].v.view())?;
        }
        file.write_uns("inmf/method", UnsValue::Str("online iNMF (scenario 1)"))?;
        file.write_uns("inmf/version", UnsValue::Str(env!("CARGO_PKG_VERSION")))?;
        file.write_uns("inmf/params/k", UnsValue::I64(params.k as i64))?;
        file.write_uns("inmf/params/lambda", UnsValue::F64(params.lambda))?;
        file.write_uns("inmf/params/epochs", UnsValue::I64(params.epochs as i64))?;
        file.write_uns("inmf/params/batch_size", UnsValue::I64(params.batch_size as i64))?;
        file.write_uns(
            "inmf/params/shuffle_block",
            UnsValue::I64(params.shuffle_block as i64),
        )?;
        file.write_uns(
            "inmf/params/hals_sweeps",
            UnsValue::I64(params.hals_sweeps as i64),
        )?;
        file.write_uns("inmf/params/seed", UnsValue::I64(params.seed as i64))?;
        file.write_uns("inmf/objective_per_epoch", UnsValue::F64s(epoch_objective))?;
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        file.write_uns("inmf/datasets", UnsValue::Strs(&name_refs))?;
        let h = file.dense::<f64>(Axis::Obs, "X_inmf", total, params.k, DatasetOptions::default())?;
        Ok(Self {
            file,
            h,
            offsets,
            written: 0,
        })
    }

    /// Writes H for cells `cells` (kept-cell numbering) of `dataset`; blocks
    /// must arrive in obs order.
    pub fn write_h(
        &mut self,
        dataset: usize,
        cells: std::ops::Range<usize>,
        h: ArrayView2<f64>,
    ) -> Result<(), DriverError> {
        let row = self.offsets[dataset] + cells.start;
        if row != self.written || h.nrows() != cells.len() {
            return Err(DriverError::InvalidParameter(format!(
                "internal: H block for dataset {dataset} cells {cells:?} arrived out of order"
            )));
        }
        self.h.append_rows(h)?;
        self.written += cells.len();
        Ok(())
    }

    /// Records the objective of the final pass, completes and renames the file.
    pub fn finish(mut self, objective: ObjectiveParts) -> Result<(), DriverError> {
        self.file
            .write_uns("inmf/objective/total", UnsValue::F64(objective.total()))?;
        self.file
            .write_uns("inmf/objective/residual", UnsValue::F64(objective.residual))?;
        self.file
            .write_uns("inmf/objective/penalty", UnsValue::F64(objective.penalty))?;
        self.h.finish()?;
        self.file.finish()?;
        Ok(())
    }
}
