//! `result.h5ad`: the run's answer in a file scanpy opens directly.
//!
//! obs = every used cell, named as in its input (obs names), with
//! `obs['dataset']` (categorical) and `obs['cell_index']` (the row of the
//! cell in its input file, so dropped all-zero cells can never shift
//! anything), and the categorical and string obs columns of the inputs
//! (`obs[...]` of .h5ad, `col_attrs` of loom), categories merged by name
//! across datasets, missing where a dataset lacks the column; var = the selected genes; `obsm['X_inmf']` = H (cells × K,
//! streamed as the final pass solves it); `varm['W']`, `varm['V_<dataset>']`;
//! `uns['inmf']` = parameters, objective per epoch, final objective.

use std::ops::Range;
use std::path::Path;

use inmf_learner::{CellSource, CsrMatrix, LearnerError, ObjectiveParts, OnlineParams};
use inmf_reader::{read_obs_kept, spawn_reader, BlockPool, Hdf5Source, ObsKind, ObsValues};
use ndarray::{Array2, ArrayView2};

use crate::scenarios::learn::{progress_bar, thread_err};

use crate::anndata::{AnnDataWriter, Axis, DatasetOptions, DenseAppender, UnsValue};
use crate::error::DriverError;

/// Cells per chunk when copying names from the inputs.
const NAME_CHUNK: usize = 50_000;

/// obs columns the result writer owns; an input column of one of these
/// names is not carried.
const OWN_COLUMNS: [&str; 3] = ["dataset", "cell_index", "h_all_zero"];

/// One input obs column as carried into the result: categorical (merged
/// categories) when every dataset holding it stores it as categorical,
/// else strings.
struct Carried {
    name: String,
    /// Merged categories and `ordered`, for a categorical result column.
    categories: Option<(Vec<String>, bool)>,
    /// Per dataset: its kind (`None`: it lacks the column) and, when
    /// categorical, its codes' positions in the merged categories.
    per: Vec<Option<(ObsKind, Vec<i32>)>>,
}

fn carried_columns(source: &Hdf5Source) -> Vec<Carried> {
    let n = source.n_datasets();
    let mut out: Vec<Carried> = Vec::new();
    for d in 0..n {
        for col in source.dataset(d).obs_columns() {
            if OWN_COLUMNS.contains(&col.name.as_str()) {
                continue;
            }
            let i = match out.iter().position(|c| c.name == col.name) {
                Some(i) => i,
                None => {
                    let ordered = matches!(col.kind, ObsKind::Categorical { ordered: true, .. });
                    out.push(Carried {
                        name: col.name.clone(),
                        categories: Some((Vec::new(), ordered)),
                        per: vec![None; n],
                    });
                    out.len() - 1
                }
            };
            let c = &mut out[i];
            let map = match (&col.kind, &mut c.categories) {
                (ObsKind::Categorical { categories, .. }, Some((merged, ordered))) => {
                    let before = merged.len();
                    let map = categories
                        .iter()
                        .map(|cat| match merged.iter().position(|m| m == cat) {
                            Some(p) => p as i32,
                            None => {
                                merged.push(cat.clone());
                                (merged.len() - 1) as i32
                            }
                        })
                        .collect();
                    // An order only survives if no dataset adds categories.
                    if before > 0 && merged.len() > before {
                        *ordered = false;
                    }
                    map
                }
                (ObsKind::Strings, cats) => {
                    *cats = None;
                    Vec::new()
                }
                (ObsKind::Categorical { .. }, None) => Vec::new(),
            };
            c.per[d] = Some((col.kind.clone(), map));
        }
    }
    out
}

/// Writes the carried obs columns, streamed by chunks of kept cells in the
/// order of the obs index.
fn carry_obs_columns(file: &mut AnnDataWriter, source: &Hdf5Source) -> Result<(), DriverError> {
    let chunks = |d: usize| {
        let n = source.n_cells(d);
        (0..n)
            .step_by(NAME_CHUNK)
            .map(move |s| s..(s + NAME_CHUNK).min(n))
    };
    for c in carried_columns(source) {
        let read =
            |d: usize, r: Range<usize>| read_obs_kept(source.dataset(d), source.cell_map(d), &c.name, r);
        match &c.categories {
            Some((cats, ordered)) => {
                let mut a = file.categorical_column(Axis::Obs, &c.name, cats, *ordered)?;
                for d in 0..source.n_datasets() {
                    for r in chunks(d) {
                        let codes: Vec<i32> = match (&c.per[d], read(d, r.clone())) {
                            (Some((_, map)), Ok(ObsValues::Codes(v))) => v
                                .into_iter()
                                .map(|x| if x < 0 { -1 } else { map[x as usize] })
                                .collect(),
                            (None, _) | (_, Ok(ObsValues::Strings(_))) => vec![-1; r.len()],
                            (_, Err(e)) => return Err(e.into()),
                        };
                        a.append(&codes)?;
                    }
                }
                a.finish()?;
            }
            None => {
                let mut a = file.string_column(Axis::Obs, &c.name)?;
                for d in 0..source.n_datasets() {
                    for r in chunks(d) {
                        let values: Vec<String> = match &c.per[d] {
                            None => vec![String::new(); r.len()],
                            Some((kind, _)) => match (read(d, r)?, kind) {
                                (ObsValues::Strings(v), _) => v,
                                (ObsValues::Codes(v), ObsKind::Categorical { categories, .. }) => v
                                    .into_iter()
                                    .map(|x| {
                                        usize::try_from(x)
                                            .map_or_else(|_| String::new(), |i| categories[i].clone())
                                    })
                                    .collect(),
                                (ObsValues::Codes(v), ObsKind::Strings) => vec![String::new(); v.len()],
                            },
                        };
                        a.append(values)?;
                    }
                }
                a.finish()?;
            }
        }
    }
    Ok(())
}

/// What the result file says besides H.
pub(crate) struct ResultContent<'a> {
    /// `uns['inmf']['method']`.
    pub method: &'a str,
    /// W (genes × K).
    pub w: ArrayView2<'a, f64>,
    /// `varm['V_<name>']` per output dataset (empty for a projection).
    pub v: Vec<(String, ArrayView2<'a, f64>)>,
    /// Parameters of the learning phase, if any.
    pub params: Option<&'a OnlineParams>,
    /// Mean mini-batch objective per cell of each epoch.
    pub epoch_objective: &'a [f64],
}

/// Streams the result file; see the module doc for its content.
pub(crate) struct ResultWriter {
    h: DenseAppender<f64>,
    file: AnnDataWriter,
    /// Row offset of each dataset's first cell in obs.
    offsets: Vec<usize>,
    /// Rows of H written so far.
    written: usize,
    /// Cells whose H row is all zeros (scenario 3 reports them), flagged per cell.
    zero_rows: Vec<i64>,
    zero_flags: Option<crate::anndata::NumericAppender<i8>>,
}

impl ResultWriter {
    /// Creates the (temporary) file and writes everything but H: obs (names,
    /// dataset, cell index, streamed from the source), var, W and V_i, and
    /// the parameters and epoch objectives in `uns['inmf']`. With
    /// `flag_zero_rows`, obs gets a column `h_all_zero` (1 where a cell's H
    /// is all zeros).
    pub fn create(
        path: &Path,
        source: &Hdf5Source,
        content: ResultContent<'_>,
        flag_zero_rows: bool,
    ) -> Result<Self, DriverError> {
        let k = content.w.ncols();
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
            for s in (0..n).step_by(NAME_CHUNK) {
                let e = (s + NAME_CHUNK).min(n);
                index.append(source.cell_names(d, s..e)?)?;
                dataset.append(&vec![d as i32; e - s])?;
                let orig: Vec<i64> = (s..e).map(|c| map.original(c) as i64).collect();
                cell_index.append(&orig)?;
            }
            total += n;
        }
        index.finish()?;
        dataset.finish()?;
        cell_index.finish()?;
        carry_obs_columns(&mut file, source)?;
        let zero_flags = if flag_zero_rows {
            Some(file.numeric_column::<i8>(Axis::Obs, "h_all_zero", DatasetOptions::default())?)
        } else {
            None
        };
        file.write_index(Axis::Var, source.genes())?;
        file.write_dense(Axis::Var, "W", content.w)?;
        for (name, v) in &content.v {
            file.write_dense(Axis::Var, &format!("V_{name}"), *v)?;
        }
        file.write_uns("inmf/method", UnsValue::Str(content.method))?;
        file.write_uns("inmf/version", UnsValue::Str(env!("CARGO_PKG_VERSION")))?;
        file.write_uns("inmf/k", UnsValue::I64(k as i64))?;
        if let Some(params) = content.params {
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
        }
        file.write_uns(
            "inmf/objective_per_epoch",
            UnsValue::F64s(content.epoch_objective),
        )?;
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        file.write_uns("inmf/datasets", UnsValue::Strs(&name_refs))?;
        let h = file.dense::<f64>(Axis::Obs, "X_inmf", total, k, DatasetOptions::default())?;
        Ok(Self {
            file,
            h,
            offsets,
            written: 0,
            zero_rows: Vec::new(),
            zero_flags,
        })
    }

    /// Writes H for cells `cells` (kept-cell numbering) of source dataset
    /// `dataset`; blocks must arrive in obs order.
    pub fn write_h(
        &mut self,
        dataset: usize,
        cells: Range<usize>,
        h: ArrayView2<f64>,
    ) -> Result<(), DriverError> {
        let row = self.offsets[dataset] + cells.start;
        if row != self.written || h.nrows() != cells.len() {
            return Err(DriverError::Internal(format!(
                "H block for dataset {dataset} cells {cells:?} arrived out of order"
            )));
        }
        self.h.append_rows(h)?;
        if let Some(flags) = &mut self.zero_flags {
            let z: Vec<i8> = h
                .rows()
                .into_iter()
                .map(|r| i8::from(r.iter().all(|&v| v == 0.0)))
                .collect();
            for (i, &f) in z.iter().enumerate() {
                if f == 1 && self.zero_rows.len() < 20 {
                    self.zero_rows.push((row + i) as i64);
                }
            }
            flags.append(&z)?;
        }
        self.written += cells.len();
        Ok(())
    }

    /// Writes `uns/KEY` (a `/`-separated path below `uns`; see
    /// [`AnnDataWriter::write_uns`]), for results with more to say.
    pub fn write_uns(&mut self, key: &str, value: UnsValue<'_>) -> Result<(), DriverError> {
        self.file.write_uns(key, value)
    }

    /// The file, for results with more obs columns (reference mapping).
    pub fn file_mut(&mut self) -> &mut AnnDataWriter {
        &mut self.file
    }

    /// Writes another whole cells × columns matrix `obsm/NAME`.
    pub fn write_obsm(&mut self, name: &str, m: ArrayView2<f64>) -> Result<(), DriverError> {
        self.file.write_dense(Axis::Obs, name, m)
    }

    /// Records the objective of the final pass, completes and renames the file.
    pub fn finish(mut self, objective: ObjectiveParts, zero_cells: usize) -> Result<(), DriverError> {
        self.file
            .write_uns("inmf/objective/total", UnsValue::F64(objective.total()))?;
        self.file
            .write_uns("inmf/objective/residual", UnsValue::F64(objective.residual))?;
        self.file
            .write_uns("inmf/objective/penalty", UnsValue::F64(objective.penalty))?;
        self.file
            .write_uns("inmf/cells_with_zero_h", UnsValue::I64(zero_cells as i64))?;
        if let Some(flags) = self.zero_flags.take() {
            flags.finish()?;
        }
        self.h.finish()?;
        self.file.finish()?;
        Ok(())
    }
}

/// What the final pass found.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FinalPass {
    /// Objective of all cells at their solved H.
    pub objective: ObjectiveParts,
    /// Cells whose H is all zeros.
    pub zero_cells: usize,
}

/// Solves H for every cell of every source dataset in blocks of `block`
/// cells read ahead by the reader thread (into spare blocks of `pool`),
/// writes each block as it is solved and sums the objective. `solve(d, x)`
/// solves source dataset d's block.
///
/// Three stages overlap: the reader thread reads block t+1 while the
/// solver works on block t and a writer thread writes block t−1 (HDF5
/// writes are single-threaded; they would otherwise leave the worker
/// threads idle). Blocks are written in order.
pub(crate) fn solve_and_write<F>(
    source: Hdf5Source,
    writer: &mut ResultWriter,
    solve: F,
    block: usize,
    read_ahead: usize,
    pool: &BlockPool,
    quiet: bool,
) -> Result<FinalPass, DriverError>
where
    F: Fn(usize, &CsrMatrix) -> Result<(Array2<f64>, ObjectiveParts), LearnerError>,
{
    let mut requests = Vec::new();
    for d in 0..source.n_datasets() {
        let n = source.n_cells(d);
        for s in (0..n).step_by(block) {
            let run = s..(s + block).min(n);
            requests.push(vec![(d, std::iter::once(run).collect())]);
        }
    }
    let total: usize = (0..source.n_datasets()).map(|d| source.n_cells(d)).sum();
    let pb = progress_bar(quiet, total as u64, "final H");
    let n_requests = requests.len();
    let reader = spawn_reader(source, requests, read_ahead, pool).map_err(thread_err)?;
    let rx = reader.batches;
    let mut pass = FinalPass::default();
    let mut received = 0;
    let mut outcome: Result<(), DriverError> = Ok(());
    let (to_writer, blocks) = std::sync::mpsc::sync_channel::<(usize, Range<usize>, Array2<f64>)>(2);
    let written = std::thread::scope(|scope| {
        let writing = scope.spawn(move || -> Result<(), DriverError> {
            for (dataset, cells, h) in blocks.iter() {
                writer.write_h(dataset, cells, h.view())?;
            }
            Ok(())
        });
        'blocks: for msg in rx.iter() {
            let batches = match msg {
                Ok(b) => b,
                Err(e) => {
                    outcome = Err(e.into());
                    break;
                }
            };
            for mb in &batches {
                if let Err(e) = crate::stop::check() {
                    outcome = Err(e);
                    break 'blocks;
                }
                let (h, obj) = match solve(mb.dataset, &mb.x) {
                    Ok(v) => v,
                    Err(e) => {
                        outcome = Err(e.into());
                        break 'blocks;
                    }
                };
                pass.objective += obj;
                pass.zero_cells += h
                    .rows()
                    .into_iter()
                    .filter(|r| r.iter().all(|&v| v == 0.0))
                    .count();
                // A send fails only when the writer stopped on an error (reported below).
                if to_writer.send((mb.dataset, mb.cells[0].clone(), h)).is_err() {
                    break 'blocks;
                }
                pb.inc(mb.n_cells() as u64);
            }
            pool.give_back(batches);
            received += 1;
        }
        drop(to_writer);
        writing
            .join()
            .unwrap_or_else(|_| Err(DriverError::Internal("the writer thread panicked".into())))
    });
    drop(rx);
    pb.finish_and_clear();
    reader
        .thread
        .join()
        .map_err(|_| DriverError::Internal("the reader thread panicked".into()))?;
    outcome?;
    written?;
    if received != n_requests {
        return Err(DriverError::Internal(
            "the reader stopped before all cells were read".into(),
        ));
    }
    Ok(pass)
}
