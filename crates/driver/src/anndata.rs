//! Writers for the files scanpy and Cell Ranger users open directly:
//! AnnData `.h5ad` ([`AnnDataWriter`]) and 10x Genomics v3 `.h5`
//! ([`TenxWriter`]).
//!
//! Both stream: the pieces that grow with the number of cells (obs names
//! and columns, the count matrix, `obsm` embeddings, barcodes) are appended
//! chunk by chunk into resizable chunked datasets, each chunk written and
//! compressed once, so memory stays flat however many cells are written.
//! Both write to a temporary sibling (`DIR/.NAME.tmp-PID-N`) and rename it
//! when complete; dropped unfinished, they remove it.
//!
//! The `.h5ad` layout follows the AnnData on-disk specification read by
//! anndata ≥ 0.8. Every group and dataset carries `encoding-type` and
//! `encoding-version` (variable-length UTF-8 scalar attributes):
//!
//! | element | encoding | notes |
//! |---|---|---|
//! | `/` | anndata 0.1.0 | |
//! | `obs`, `var` | dataframe 0.2.0 | attrs `_index` = "_index", `column-order` (string array, maybe empty) |
//! | `obs/_index`, string columns | string-array 0.2.0 | variable-length UTF-8 |
//! | categorical columns | categorical 0.2.0 | attr `ordered` (bool); `categories` (string-array), `codes` (int8/16/32, −1 = missing) |
//! | numeric columns, dense `obsm`/`varm`, uns arrays | array 0.2.0 | |
//! | `X`, `layers/*` | csr_matrix 0.1.0 | attr `shape` int64 `[n_obs, n_vars]`; `data`, `indices` (int32), `indptr` (int64) |
//! | `obsm`, `varm`, `obsp`, `varp`, `layers`, `uns`, nested uns groups | dict 0.1.0 | |
//! | uns scalars | numeric-scalar 0.2.0 / string 0.2.0 | |

mod csr;
mod dense;
mod h5;
pub(crate) mod temp;
mod tenx;
mod uns;
mod writer;

pub use csr::CsrAppender;
pub use dense::DenseAppender;
pub use h5::{DatasetOptions, Element};
pub use tenx::{TenxWriter, TENX_MAX_STRING};
pub use uns::UnsValue;
pub use writer::{AnnDataWriter, Axis, CategoricalAppender, NumericAppender, StringAppender};

#[cfg(test)]
mod tests;
