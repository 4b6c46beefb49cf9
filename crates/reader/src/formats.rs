//! The input formats, opened read-only and detected by content
//! ([`dataset::open`]), and the pieces they share.
//!
//! - [`dataset`]: one opened input — format detection, gene and cell names,
//!   validated contiguous reads of raw counts — over the layouts
//!   [`anndata`] (.h5ad), [`tenx`] (10x Genomics .h5), [`loom`] and
//!   [`liger`] (rliger's scaled .h5).
//! - Matrix storage: [`arrays`] (CSR arrays in one HDF5 group), [`csc`]
//!   (CSC converted once to a temporary CSR copy), [`dense`] (2-d
//!   datasets) and [`spill`], the external bucket sort behind the CSC
//!   copy and unsorted Matrix Market files.
//! - [`mtx`]: Matrix Market directories, streamed cell by cell for
//!   `inmf import`.
//! - [`h5`] (typed and string reads over the `hdf5` crate; [`chunks`],
//!   direct parallel reads of deflate chunks), [`names`]
//!   (unique gene names), [`obs`] (categorical and string cell columns)
//!   and [`inspect`] (`inmf inspect`).

mod anndata;
mod arrays;
pub(crate) mod chunks;
mod csc;
pub(crate) mod dataset;
mod dense;
mod h5;
pub(crate) mod inspect;
mod liger;
mod loom;
pub(crate) mod mtx;
pub(crate) mod names;
pub(crate) mod obs;
mod spill;
mod tenx;
