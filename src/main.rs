//! `inmf`: out-of-core online integrative NMF for single-cell atlases.
//!
//! Subcommands: `run` (scenario 1: factorize datasets together) and
//! `simulate` (a Splatter-like multi-batch atlas). Exit codes: 0 success,
//! 2 bad input or parameters (nothing is written), 1 any other failure.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use inmf_driver::{DriverError, InputSpec, RunConfig, RunRequest};

mod cmd_simulate;

/// Out-of-core online integrative NMF (LIGER family) for single-cell atlases.
#[derive(Parser, Debug)]
#[command(name = "inmf", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Factorize datasets together with online iNMF (scenario 1).
    ///
    /// X_i ≈ (W + V_i) H_i with penalty λ‖V_i H_i‖²; data are streamed from
    /// the HDF5 inputs in mini-batches, never loaded whole. Writes
    /// OUT/model.h5 (everything needed to continue or project) and
    /// OUT/result.h5ad (obsm['X_inmf'] = H, obs['dataset'], varm['W'], ...).
    Run(RunArgs),
    /// Simulate a multi-batch single-cell atlas (Splatter-like, with batch × cell-type effects).
    Simulate(cmd_simulate::SimulateArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Input datasets: .h5ad (AnnData, CSR X) or 10x Genomics .h5 files,
    /// optionally named as NAME=PATH (default name: the file stem).
    #[arg(required = true, value_name = "[NAME=]PATH")]
    inputs: Vec<InputSpec>,
    /// Output directory (created if missing).
    #[arg(long, short, value_name = "DIR")]
    out: PathBuf,
    /// TOML configuration (see config/default.toml); flags win over it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// K, the number of factors [default: 20].
    #[arg(long)]
    k: Option<usize>,
    /// λ, weight of the dataset-specific penalty λ‖V_i H_i‖² [default: 5].
    #[arg(long)]
    lambda: Option<f64>,
    /// Passes over the first dataset [default: 5].
    #[arg(long)]
    epochs: Option<usize>,
    /// Cells per online iteration, over all datasets [default: 5000].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Cells per shuffled block [default: 1000].
    #[arg(long)]
    shuffle_block: Option<usize>,
    /// Seed of all random choices [default: 1].
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads; 0 = one per core [default: 0].
    #[arg(long)]
    threads: Option<usize>,
    /// Early stop when the epoch objective changes by less than this (relative); 0 = off.
    #[arg(long)]
    tol: Option<f64>,
    /// Matrix to read from .h5ad files: X, raw (raw/X) or layer:NAME [default: X].
    #[arg(long, value_name = "X|raw|layer:NAME")]
    matrix: Option<String>,
    /// Keep only the top N variable genes per dataset (0 = all that pass selectGenes).
    #[arg(long)]
    n_genes: Option<usize>,
    /// No progress bar or summary.
    #[arg(long, short)]
    quiet: bool,
    /// Print the summary as one JSON object on stdout (for scripts).
    #[arg(long)]
    json: bool,
}

impl RunArgs {
    fn request(self) -> anyhow::Result<RunRequest> {
        let mut c = match &self.config {
            Some(p) => RunConfig::from_file(p)?,
            None => RunConfig::default(),
        };
        let m = &mut c.model;
        macro_rules! set {
            ($dst:expr, $src:expr) => {
                if let Some(v) = $src {
                    $dst = v;
                }
            };
        }
        set!(m.k, self.k);
        set!(m.lambda, self.lambda);
        set!(m.epochs, self.epochs);
        set!(m.batch_size, self.batch_size);
        set!(m.shuffle_block, self.shuffle_block);
        set!(m.seed, self.seed);
        set!(m.tol, self.tol);
        set!(c.runtime.threads, self.threads);
        set!(c.preprocess.matrix, self.matrix);
        set!(c.preprocess.n_genes, self.n_genes);
        Ok(RunRequest {
            inputs: self.inputs,
            out_dir: self.out,
            config: c,
            quiet: self.quiet,
        })
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => {
            let json = args.json;
            let req = args.request()?;
            let quiet = req.quiet;
            let summary = inmf_driver::run_online(&req).context("inmf run failed")?;
            if json {
                println!("{}", summary_json(&summary));
            } else if !quiet {
                print!("{summary}");
            }
            Ok(())
        }
        Command::Simulate(args) => cmd_simulate::run(args),
    }
}

fn summary_json(s: &inmf_driver::RunSummary) -> serde_json::Value {
    let [pre, epochs, fin] = s.seconds;
    serde_json::json!({
        "cells": s.datasets.iter().map(|d| d.2).sum::<usize>(),
        "datasets": s.datasets.len(),
        "per_dataset": s.datasets.iter().map(|(n, total, used)| serde_json::json!({"name": n, "cells_in_file": total, "cells_used": used})).collect::<Vec<_>>(),
        "genes_in": s.genes_in,
        "genes_selected": s.genes,
        "k": s.k,
        "lambda": s.lambda,
        "iterations": s.iterations,
        "epochs": s.epochs,
        "epoch_objective": s.epoch_objective,
        "final_objective": {"total": s.final_objective.total(), "residual": s.final_objective.residual, "penalty": s.final_objective.penalty},
        "seconds": {"preprocess": pre, "epochs": epochs, "final_h_and_write": fin, "total": pre + epochs + fin},
        "peak_rss_mb": s.peak_rss_bytes.map(|b| b as f64 / 1048576.0),
        "outputs": s.outputs,
    })
}

/// Exit code 2 for anything the user can fix in the input or parameters.
fn exit_code(err: &anyhow::Error) -> u8 {
    let bad_input = err.chain().any(|e| {
        e.downcast_ref::<DriverError>()
            .is_some_and(DriverError::is_input_error)
            || e.downcast_ref::<inmf_reader::ReaderError>().is_some()
    });
    if bad_input {
        2
    } else {
        1
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}
