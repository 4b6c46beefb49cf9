//! `inmf simulate`: realistic multi-batch single-cell counts with known
//! cell types (`docs/algorithms.md` §11), Splatter-like, with a batch ×
//! cell-type interaction so that integration has real work to do.
//!
//! ```no_run
//! # use inmf_driver::simulate::SimulationParams;
//! # fn main() -> Result<(), inmf_driver::DriverError> {
//! let params = SimulationParams { datasets: 2, cells: vec![5_000, 8_000], ..Default::default() };
//! let summary = params.check()?.run(std::path::Path::new("sim"))?;
//! for d in &summary.datasets {
//!     println!("{}: {} cells, {} non-zeros", d.path.display(), d.cells, d.nnz);
//! }
//! # Ok(()) }
//! ```
//!
//! Output, per dataset `batchB` (B = 1, 2, …): `DIR/batchB.h5ad` (AnnData:
//! X = CSR raw counts as float32, obs index `batchB_cellC`, obs
//! `cell_type` ∈ `type1..typeT` and `dataset`, both categorical; var index
//! `gene1..geneG`; uns `simulation/{seed, dataset, batch_effect, lib_loc}`)
//! or `DIR/batchB.h5` (10x Genomics v3, int32 counts, same barcodes) with
//! `DIR/batchB_labels.tsv` (barcode, cell_type); and `DIR/simulation.toml`,
//! the parameters used. Every file appears complete or not at all.
//!
//! Reproducibility: each cell draws from its own random stream keyed by
//! (seed, dataset, cell), so the same parameters give byte-identical files
//! whatever the number of threads. Memory stays flat: cells are generated
//! and written a chunk at a time.

mod model;
mod params;
mod run;

pub use params::{Compression, OutputFormat, SimulationParams};
pub use run::{DatasetSummary, Progress, Simulation, SimulationSummary};

#[cfg(test)]
mod tests;
