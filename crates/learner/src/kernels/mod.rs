//! The sparse × dense products and the other hot loops' building blocks:
//! the f64 products every solver is built on (`double`), their single-
//! (`single`) and half-precision (`half`) versions that online learning
//! runs, a factor packed once for many row blocks (`packed`), buffers
//! kept between calls (`pool`), and the
//! run-time choice between baseline and AVX2 builds (`simd`).

pub(crate) mod double;
pub(crate) mod half;
pub(crate) mod packed;
pub(crate) mod pool;
pub(crate) mod simd;
pub(crate) mod single;

pub use double::{accumulate_xt_h, gram_of_rows, project, project_into, CELL_BLOCK};
pub use half::project_f16;
pub use single::{accumulate_xt_h_f32, project_f32};
