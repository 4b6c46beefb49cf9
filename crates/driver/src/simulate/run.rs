//! Running a checked simulation: cells generated chunk by chunk in
//! parallel (rayon, order preserved) on the calling thread while a writer
//! thread owns every HDF5 handle and writes the previous chunk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rayon::prelude::*;

use super::model::{Cell, Model};
use super::params::{Compression, OutputFormat, SimulationParams};
use crate::anndata::temp::TempFile;
use crate::anndata::{AnnDataWriter, Axis, CategoricalAppender, CsrAppender, DatasetOptions, StringAppender};
use crate::anndata::{TenxWriter, UnsValue};
use crate::DriverError;

/// A checked simulation, ready to [`run`](Self::run). Built by
/// [`SimulationParams::check`].
#[derive(Clone, Debug)]
pub struct Simulation {
    params: SimulationParams,
    /// Type weights per dataset, missing types zeroed.
    props: Vec<Vec<f64>>,
}

/// Where a running simulation stands, passed to the progress callback
/// after every chunk of cells written.
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    /// Name of the dataset being written (`batch1`, …).
    pub dataset: &'a str,
    /// 0-based index of that dataset.
    pub index: usize,
    /// Cells of that dataset generated so far.
    pub cells_done: usize,
    /// Cells of that dataset in total.
    pub cells_total: usize,
}

/// What was written for one dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetSummary {
    /// Dataset name (`batch1`, …).
    pub name: String,
    /// The data file (`DIR/<name>.h5ad` or `DIR/<name>.h5`).
    pub path: PathBuf,
    /// The labels sidecar (`DIR/<name>_labels.tsv`, 10x format only).
    pub labels: Option<PathBuf>,
    /// Number of cells.
    pub cells: usize,
    /// Number of non-zero counts.
    pub nnz: u64,
    /// Sum of all counts.
    pub total_counts: u64,
    /// Cells of each type (index 0 = `type1`).
    pub type_counts: Vec<usize>,
}

/// What a simulation wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulationSummary {
    /// One entry per dataset, in order.
    pub datasets: Vec<DatasetSummary>,
    /// `DIR/simulation.toml`, the parameters used.
    pub params_file: PathBuf,
}

/// A generated chunk: consecutive cells of one dataset, starting at `start`.
struct Chunk {
    start: usize,
    cells: Vec<Cell>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DriverError + '_ {
    move |source| DriverError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Simulation {
    pub(crate) fn new(params: SimulationParams, props: Vec<Vec<f64>>) -> Self {
        Self { params, props }
    }

    /// The checked parameters.
    pub fn params(&self) -> &SimulationParams {
        &self.params
    }

    /// Name of dataset `b` (0-based): `batch{b+1}`.
    pub fn dataset_name(b: usize) -> String {
        format!("batch{}", b + 1)
    }

    /// Writes every dataset and `simulation.toml` into `out_dir` (created
    /// if missing). See [`run_with_progress`](Self::run_with_progress).
    pub fn run(&self, out_dir: &Path) -> Result<SimulationSummary, DriverError> {
        self.run_with_progress(out_dir, &mut |_| {})
    }

    /// Writes every dataset and `simulation.toml` into `out_dir`, calling
    /// `progress` after each chunk of cells. Cells are generated in
    /// parallel on the current rayon pool (install a pool to choose the
    /// number of threads); the output does not depend on it. Every file is
    /// written under a temporary name and renamed when complete.
    pub fn run_with_progress(
        &self,
        out_dir: &Path,
        progress: &mut dyn FnMut(&Progress<'_>),
    ) -> Result<SimulationSummary, DriverError> {
        std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
        let model = Model::new(&self.params, &self.props);
        let cells = self.params.cells_per_dataset();
        let mut datasets = Vec::with_capacity(cells.len());
        for (b, &n) in cells.iter().enumerate() {
            datasets.push(self.dataset(&model, out_dir, b, n, progress)?);
        }
        let params_file = out_dir.join("simulation.toml");
        let text = toml::to_string_pretty(&self.params).map_err(|e| {
            DriverError::InvalidParameter(format!("simulation: cannot write the parameters as TOML: {e}"))
        })?;
        let temp = TempFile::new(&params_file)?;
        let header =
            "# Parameters of `inmf simulate` (read back with SimulationParams's serde Deserialize).\n";
        std::fs::write(temp.tmp(), format!("{header}{text}")).map_err(io_err(&params_file))?;
        temp.commit()?;
        Ok(SimulationSummary {
            datasets,
            params_file,
        })
    }

    fn dataset(
        &self,
        model: &Model,
        out_dir: &Path,
        b: usize,
        n: usize,
        progress: &mut dyn FnMut(&Progress<'_>),
    ) -> Result<DatasetSummary, DriverError> {
        let name = Self::dataset_name(b);
        let chunk = self.params.chunk_cells;
        std::thread::scope(|scope| {
            // Capacity 1: one chunk queued while one is written and the next
            // generated, so memory is about three chunks of cells.
            let (tx, rx) = mpsc::sync_channel::<Chunk>(1);
            let writer = scope.spawn(|| self.write_dataset(out_dir, b, n, rx));
            let mut start = 0;
            while start < n {
                let end = (start + chunk).min(n);
                let cells: Vec<Cell> = (start..end)
                    .into_par_iter()
                    .with_min_len(32)
                    .map(|c| model.cell(b, c))
                    .collect();
                if tx.send(Chunk { start, cells }).is_err() {
                    break; // the writer failed; its error is returned below
                }
                start = end;
                progress(&Progress {
                    dataset: &name,
                    index: b,
                    cells_done: end,
                    cells_total: n,
                });
            }
            drop(tx);
            writer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Receives the chunks of dataset `b` and writes them.
    fn write_dataset(
        &self,
        out_dir: &Path,
        b: usize,
        n: usize,
        rx: mpsc::Receiver<Chunk>,
    ) -> Result<DatasetSummary, DriverError> {
        let p = &self.params;
        let name = Self::dataset_name(b);
        let opts = DatasetOptions {
            gzip: match p.compression {
                Compression::None => None,
                Compression::Gzip(level) => Some(level),
            },
            ..DatasetOptions::default()
        };
        let genes: Vec<String> = (1..=p.genes).map(|g| format!("gene{g}")).collect();
        let mut sink = match p.format {
            OutputFormat::H5ad => Sink::h5ad(self, &out_dir.join(format!("{name}.h5ad")), b, &genes, opts)?,
            OutputFormat::TenX => Sink::tenx(
                &out_dir.join(format!("{name}.h5")),
                &name,
                n,
                p.cell_types,
                &genes,
                opts,
            )?,
        };
        let mut summary = DatasetSummary {
            name: name.clone(),
            path: PathBuf::new(),
            labels: None,
            cells: 0,
            nnz: 0,
            total_counts: 0,
            type_counts: vec![0; p.cell_types],
        };
        let mut block = Block::default();
        for chunk in rx {
            block.fill(&name, &chunk);
            for cell in &chunk.cells {
                summary.type_counts[cell.cell_type as usize] += 1;
                summary.total_counts += cell.counts.iter().map(|&k| k as u64).sum::<u64>();
            }
            summary.cells += chunk.cells.len();
            summary.nnz += block.genes.len() as u64;
            sink.append(&block)?;
        }
        if summary.cells != n {
            return Err(DriverError::InvalidOutput {
                path: out_dir.join(&name),
                reason: format!("only {} of {n} cells were generated", summary.cells),
            });
        }
        let (path, labels) = sink.finish()?;
        summary.path = path;
        summary.labels = labels;
        Ok(summary)
    }
}

/// A chunk laid out for the writers.
#[derive(Default)]
struct Block {
    names: Vec<String>,
    types: Vec<i32>,
    indptr: Vec<usize>,
    genes: Vec<u32>,
    counts: Vec<u32>,
    values: Vec<f32>,
}

impl Block {
    fn fill(&mut self, dataset: &str, chunk: &Chunk) {
        self.names.clear();
        self.types.clear();
        self.indptr.clear();
        self.genes.clear();
        self.counts.clear();
        self.values.clear();
        self.indptr.push(0);
        for (i, cell) in chunk.cells.iter().enumerate() {
            self.names.push(format!("{dataset}_cell{}", chunk.start + i + 1));
            self.types.push(cell.cell_type as i32);
            self.genes.extend_from_slice(&cell.genes);
            self.counts.extend_from_slice(&cell.counts);
            self.values.extend(cell.counts.iter().map(|&k| k as f32));
            self.indptr.push(self.genes.len());
        }
    }
}

/// The open output of one dataset.
enum Sink {
    H5ad {
        writer: AnnDataWriter,
        names: StringAppender,
        cell_type: CategoricalAppender,
        dataset: CategoricalAppender,
        dataset_code: i32,
        x: CsrAppender<f32>,
    },
    TenX {
        writer: TenxWriter,
        labels: std::io::BufWriter<std::fs::File>,
        labels_temp: TempFile,
        types: Vec<String>,
    },
}

fn type_names(t: usize) -> Vec<String> {
    (1..=t).map(|i| format!("type{i}")).collect()
}

impl Sink {
    fn h5ad(
        sim: &Simulation,
        path: &Path,
        b: usize,
        genes: &[String],
        opts: DatasetOptions,
    ) -> Result<Self, DriverError> {
        let p = &sim.params;
        let mut writer = AnnDataWriter::create(path)?;
        writer.write_index(Axis::Var, genes)?;
        let names = writer.index(Axis::Obs)?;
        let cell_type =
            writer.categorical_column(Axis::Obs, "cell_type", &type_names(p.cell_types), false)?;
        let all: Vec<String> = (0..p.datasets).map(Simulation::dataset_name).collect();
        let dataset = writer.categorical_column(Axis::Obs, "dataset", &all, false)?;
        let x = writer.x_csr::<f32>(p.genes, opts)?;
        writer.write_uns("simulation/seed", UnsValue::I64(p.seed as i64))?;
        writer.write_uns("simulation/dataset", UnsValue::Str(&all[b]))?;
        writer.write_uns("simulation/batch_effect", UnsValue::F64(p.batch_effect))?;
        writer.write_uns(
            "simulation/lib_loc",
            UnsValue::F64(p.lib_locs[b % p.lib_locs.len()]),
        )?;
        Ok(Sink::H5ad {
            writer,
            names,
            cell_type,
            dataset,
            dataset_code: b as i32,
            x,
        })
    }

    fn tenx(
        path: &Path,
        name: &str,
        n: usize,
        n_types: usize,
        genes: &[String],
        opts: DatasetOptions,
    ) -> Result<Self, DriverError> {
        let barcode_len = format!("{name}_cell{n}").len();
        let writer = TenxWriter::create(path, genes, genes, "simulated", barcode_len, opts)?;
        let labels_path = path.with_file_name(format!("{name}_labels.tsv"));
        let labels_temp = TempFile::new(&labels_path)?;
        let file = std::fs::File::create(labels_temp.tmp()).map_err(io_err(&labels_path))?;
        let mut labels = std::io::BufWriter::new(file);
        writeln!(labels, "barcode\tcell_type").map_err(io_err(&labels_path))?;
        Ok(Sink::TenX {
            writer,
            labels,
            labels_temp,
            types: type_names(n_types),
        })
    }

    fn append(&mut self, block: &Block) -> Result<(), DriverError> {
        match self {
            Sink::H5ad {
                names,
                cell_type,
                dataset,
                dataset_code,
                x,
                ..
            } => {
                names.append(&block.names)?;
                cell_type.append(&block.types)?;
                dataset.append(&vec![*dataset_code; block.names.len()])?;
                x.append_rows(&block.indptr, &block.genes, &block.values)
            }
            Sink::TenX {
                writer,
                labels,
                labels_temp,
                types,
            } => {
                writer.append_cells(&block.names, &block.indptr, &block.genes, &block.counts)?;
                for (bc, &t) in block.names.iter().zip(&block.types) {
                    writeln!(labels, "{bc}\t{}", types[t as usize]).map_err(io_err(labels_temp.target()))?;
                }
                Ok(())
            }
        }
    }

    /// Finishes the files; returns the data file and the labels file.
    fn finish(self) -> Result<(PathBuf, Option<PathBuf>), DriverError> {
        match self {
            Sink::H5ad {
                writer,
                names,
                cell_type,
                dataset,
                x,
                ..
            } => {
                names.finish()?;
                cell_type.finish()?;
                dataset.finish()?;
                x.finish()?;
                Ok((writer.finish()?, None))
            }
            Sink::TenX {
                writer,
                labels,
                labels_temp,
                ..
            } => {
                let path = writer.finish()?;
                let target = labels_temp.target().to_path_buf();
                labels.into_inner().map_err(|e| io_err(&target)(e.into_error()))?;
                Ok((path, Some(labels_temp.commit()?)))
            }
        }
    }
}
