//! `inmf inspect`: what a file is and what inmf would read from it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use inmf_driver::{inspect, OpenOptions};

/// Options of `inmf inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// An input file (.h5ad, 10x .h5, loom, LIGER .h5) or a Matrix Market directory.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Matrix to describe: X, raw (raw/X) or layer:NAME [default: X].
    #[arg(long, value_name = "X|raw|layer:NAME")]
    matrix: Option<String>,
    /// 10x files with several genomes: the one to read.
    #[arg(long, value_name = "NAME")]
    genome: Option<String>,
    /// Keep every 10x feature type, not only "Gene Expression".
    #[arg(long)]
    all_features: bool,
}

/// Runs `inmf inspect`.
pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let mut opts = OpenOptions {
        genome: args.genome,
        ..OpenOptions::default()
    };
    if let Some(m) = &args.matrix {
        opts.matrix = inmf_driver::matrix_location(m)?;
    }
    if args.all_features {
        opts.feature_type = None;
    }
    let report =
        inspect(&args.file, &opts).with_context(|| format!("inmf inspect {}", args.file.display()))?;
    inmf_driver::log::out(&report.to_string());
    Ok(())
}
