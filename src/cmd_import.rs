//! `inmf import`: a Matrix Market directory to an AnnData `.h5ad`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use inmf_driver::{import_mtx, ImportRequest};

/// Options of `inmf import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Matrix Market directory: matrix.mtx[.gz], features.tsv[.gz] (or
    /// genes.tsv[.gz]) and barcodes.tsv[.gz], as Cell Ranger writes them.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The .h5ad to write (its directory must exist; replaced atomically).
    #[arg(long, short, value_name = "FILE.h5ad")]
    out: PathBuf,
    /// Keep only features of this type [default: "Gene Expression"].
    #[arg(long, value_name = "TYPE", conflicts_with = "all_features")]
    feature_type: Option<String>,
    /// Keep every feature (antibody capture, CRISPR guides, ...).
    #[arg(long)]
    all_features: bool,
    /// Directory for the temporary file of the sort by cell, needed when
    /// the entries are not ordered by cell [default: the output's directory].
    #[arg(long, value_name = "DIR")]
    temp_dir: Option<PathBuf>,
    /// Compress the output's datasets with gzip at this level (0-9)
    /// [default: uncompressed, faster to read].
    #[arg(long, value_name = "LEVEL")]
    gzip: Option<u8>,
    /// No summary.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `inmf import`.
pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    let mut req = ImportRequest::new(&args.dir, &args.out);
    if args.all_features {
        req.feature_type = None;
    } else if let Some(t) = args.feature_type {
        req.feature_type = Some(t);
    }
    req.temp_dir = args.temp_dir;
    req.gzip = args.gzip;
    let summary = import_mtx(&req).context("inmf import failed")?;
    if !args.quiet {
        inmf_driver::log::out(&summary.to_string());
    }
    Ok(())
}
