//! # inmf-reader — HDF5 inputs of inmf
//!
//! Opens single-cell count matrices read-only, preprocesses them in
//! streaming passes and serves preprocessed mini-batches to the learner
//! through its [`inmf_learner::CellSource`] boundary, from a reader thread.
//!
//! - **Formats** ([`open`]), detected by content: AnnData .h5ad with a CSR
//!   `X`, `raw/X` or `layers/<name>` ([`MatrixLocation`]); 10x Genomics .h5
//!   of Cell Ranger ≥ 3 (`matrix/`, "Gene Expression" features by default)
//!   and 2 (one genome group). Any integer or float storage type; fixed or
//!   variable-length, ASCII or UTF-8 names. A run of cells is one read of
//!   `indptr`, then one read each of `indices` and `data`, validated as it
//!   goes (pointers monotone, indices in range, values finite and ≥ 0).
//! - **Preprocessing** (ALGORITHMS.md §9; [`Hdf5Source::preprocess`]), one
//!   streaming pass per dataset: nUMI_c = Σ_g x_gc, x̃ = x / nUMI (all-zero
//!   cells dropped, [`CellMap`] keeps indices in sync), per gene Σ x̃ and
//!   Σ x̃²; genes matched by name across datasets; rliger's selectGenes
//!   (α* = α/#genes, upper_g = μ_g + z_{1−α*/2}·sqrt(μ_g ν / n), keep g iff
//!   σ²_g/ν > upper_g and log10 σ²_g > log10(μ_g ν) + thresh) combined by
//!   union or intersection; scaleNotCenter s_g = sqrt(Σ_c x̃²/(n − 1)).
//! - **Serving**: [`Hdf5Source`] returns x̂ = x̃ / s_g over the model genes;
//!   [`spawn_reader`] streams a plan's mini-batches through a bounded
//!   channel.
//!
//! ```no_run
//! use inmf_reader::{open, spawn_reader, Hdf5Source, OpenOptions, PreprocessParams};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let opts = OpenOptions::default();
//! let datasets = vec![open("a.h5ad", &opts)?, open("b.h5", &opts)?];
//! let source = Hdf5Source::preprocess(datasets, &PreprocessParams::default().check()?)?;
//! println!("{}", source.report());
//! let plan = vec![vec![(0, vec![0..100]), (1, vec![0..50])]];
//! let (batches, reader) = spawn_reader(source, plan, 2)?;
//! for batch in batches {
//!     for mb in batch? {
//!         println!("dataset {}: {} cells", mb.dataset, mb.n_cells());
//!     }
//! }
//! let _source = reader.join().expect("reader thread panicked");
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod anndata;
mod cellmap;
mod dataset;
mod error;
mod h5;
mod names;
mod params;
mod preprocess;
mod quantile;
mod report;
mod select;
mod source;
mod stats;
mod stream;
mod tenx;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

pub use cellmap::CellMap;
pub use dataset::{open, Dataset, Format, MatrixLocation, OpenOptions};
pub use error::ReaderError;
pub use params::{CheckedPreprocessParams, Combine, GeneSelection, PreprocessParams};
pub use report::{DatasetReport, PreprocessReport};
pub use source::Hdf5Source;
pub use stream::{spawn_reader, BatchResult, ReadRequest, ReaderHandles};
