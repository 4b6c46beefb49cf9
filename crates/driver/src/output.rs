//! What the commands write and the checks before they write it:
//! [`model`] (`model.h5`), [`results`] (`result.h5ad`), [`set`] (the
//! output set tying one run's model and result together), [`guard`]
//! (outputs checked against inputs before any work) and [`space`] (free
//! space checked before the work that fills it).

pub(crate) mod guard;
pub(crate) mod model;
pub(crate) mod results;
pub(crate) mod set;
pub(crate) mod space;
