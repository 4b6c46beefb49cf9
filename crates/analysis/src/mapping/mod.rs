//! Reference mapping (docs/algorithms.md §10.1): what a query's cells are
//! and where they sit in a reference atlas, given the query's H projected
//! onto the reference's W.
//!
//! | concern | module |
//! |---|---|
//! | neighbours in the reference, label vote and confidence | [`transfer`](crate::transfer_labels) |
//! | cells that match nothing in the reference | [`novelty`](crate::smoothed_residuals) |
//! | placement on the reference's UMAP | [`umap_transform`](crate::umap_transform) |
//! | reference and query clustered together, scored | [`joint`](crate::joint_analysis) |
//! | plots of the mapping | [`plots`](crate::mapping_plot) |

pub(crate) mod joint;
pub(crate) mod novelty;
pub(crate) mod plots;
pub(crate) mod transfer;
pub(crate) mod umap_transform;
