//! # inmf-reader — HDF5 inputs of inmf
//!
//! Opens single-cell count matrices read-only, preprocesses them in
//! streaming passes and serves preprocessed mini-batches to the learner
//! through its [`inmf_learner::CellSource`] boundary, from a reader thread.
//!
//! - **Formats** ([`open`]), detected by content, all read-only and
//!   streamed: AnnData .h5ad with `X`, `raw/X` or `layers/<name>`
//!   ([`MatrixLocation`]) stored as CSR, CSC (converted once to a temporary
//!   CSR copy by an external bucket sort, ≈ 50 MB of memory) or dense (row
//!   blocks), dataframes of anndata ≥ 0.7 or older compound ones; 10x
//!   Genomics .h5 of Cell Ranger ≥ 3 (`matrix/`, "Gene Expression" features
//!   by default) and 2 (genome groups; [`OpenOptions::genome`]); loom
//!   (`/matrix` genes × cells, column blocks); LIGER .h5 of rliger
//!   (`scaleDataSparse/`, read as prescaled: [`Dataset::is_prescaled`]).
//!   Matrix Market directories are streamed cell by cell ([`open_mtx`]) for
//!   `inmf import`; [`inspect`] describes any input. Any integer or float
//!   storage type; fixed or variable-length, ASCII or UTF-8 names;
//!   categorical and string obs columns ([`Dataset::read_obs_column`]). A
//!   run of CSR cells is one read of `indptr`, then one read each of
//!   `indices` and `data`, validated as it goes (pointers monotone, indices
//!   in range, values finite and ≥ 0).
//! - **Preprocessing** (docs/algorithms.md §9; [`Hdf5Source::preprocess`]), one
//!   streaming pass per dataset: nUMI_c = Σ_g x_gc, x̃ = x / nUMI (all-zero
//!   cells dropped, [`CellMap`] keeps indices in sync), per gene Σ x̃ and
//!   Σ x̃²; genes matched by name or id ([`GeneKey`]) across datasets;
//!   rliger's selectGenes
//!   (α* = α/#genes, upper_g = μ_g + z_{1−α*/2}·sqrt(μ_g ν / n), keep g iff
//!   σ²_g/ν > upper_g and log10 σ²_g > log10(μ_g ν) + thresh) combined by
//!   union or intersection; cells without counts in the model's genes
//!   dropped too (found while the cache entry is built, as the rows that
//!   come out empty, or without a cache by a second, arithmetic-free pass);
//!   scaleNotCenter s_g = sqrt(Σ_c x̃²/(n − 1)). Prescaled datasets pass
//!   through (their genes, scale 1, no normalization).
//! - **Serving**: [`Hdf5Source`] returns x̂ = x̃ / s_g over the model genes;
//!   [`spawn_reader`] streams a plan's mini-batches through a bounded
//!   channel.
//!
//! The source follows the data path: `formats/` opens the inputs,
//! `preprocess/` runs the passes above, `cache/` stores their result (keyed
//! by the inputs' content fingerprints) and removes stale temporaries,
//! `source.rs` serves x̂ to the learner and `stream.rs` is the reader thread
//! in front of its channel; `tests/` holds the crate-level tests.
//!
//! ```no_run
//! use inmf_reader::{open, spawn_reader, BlockPool, Hdf5Source, OpenOptions, PreprocessParams};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let opts = OpenOptions::default();
//! let datasets = vec![open("a.h5ad", &opts)?, open("b.h5", &opts)?];
//! let source = Hdf5Source::preprocess(datasets, &PreprocessParams::default().check()?)?;
//! println!("{}", source.report());
//! let plan = vec![vec![(0, vec![0..100]), (1, vec![0..50])]];
//! let pool = BlockPool::for_reader(2, 2);
//! let reader = spawn_reader(source, plan, 2, &pool)?;
//! for batch in reader.batches.iter() {
//!     let batch = batch?;
//!     for mb in &batch {
//!         println!("dataset {}: {} cells", mb.dataset, mb.n_cells());
//!     }
//!     pool.give_back(batch); // its buffers are refilled next
//! }
//! let _source = reader.thread.join().expect("reader thread panicked");
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod cache;
mod error;
mod formats;
mod preprocess;
mod source;
mod stream;

#[cfg(test)]
mod tests;

pub use cache::fingerprint::{
    fingerprint, fingerprint_datasets, fingerprints, is_legacy as is_legacy_fingerprint, same_content,
    FINGERPRINT_DIGITS,
};
pub use cache::stale::{describe_removed, remove_stale_temporaries, RemovedTemporary};
pub use cache::{stale_entries as stale_cache_entries, EntryProblem, DEFAULT_KEEP_MAPPED_BYTES};
pub use error::ReaderError;
pub use formats::chunks::{decode_rate, DecodeRate};
pub use formats::dataset::{open, Dataset, Format, MatrixLocation, OpenOptions};
pub use formats::inspect::{inspect, Inspection};
pub use formats::mtx::{open_mtx, Barcodes, MtxCells, MtxDir, MtxField, MtxOrder};
pub use formats::obs::{read_obs_kept, ObsColumn, ObsKind, ObsValues};
pub use preprocess::cellmap::CellMap;
pub use preprocess::params::{CheckedPreprocessParams, Combine, GeneKey, GeneSelection, PreprocessParams};
pub use preprocess::report::{DatasetReport, PreprocessReport};
pub use preprocess::PassSeconds;
pub use source::{CacheLookup, Hdf5Source};
pub use stream::{spawn_reader, BatchResult, BlockPool, ReadRequest, ReaderHandles};
