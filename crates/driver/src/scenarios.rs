//! The three scenarios of online iNMF (docs/algorithms.md §3) and what they
//! share: [`run`] (scenario 1, all datasets at once), [`add`] (scenario 2,
//! new datasets into a saved model) and [`project`] (scenario 3, queries
//! onto a saved model's W); [`prepare`] opens and preprocesses their inputs,
//! [`learn`] is the online learning loop of scenarios 1 and 2, [`minibatch`]
//! chooses their mini-batch size when none is given, and [`bound`] is the
//! per-epoch lower bound of the performance report.

pub(crate) mod add;
pub(crate) mod bound;
pub(crate) mod learn;
pub(crate) mod minibatch;
pub(crate) mod prepare;
pub(crate) mod project;
pub(crate) mod run;
