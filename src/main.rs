//! `inmf`: out-of-core online integrative NMF for single-cell atlases.
//!
//! Subcommands: `run` (scenario 1: factorize datasets together), `add`
//! (scenario 2: add datasets to a saved model), `project` (scenario 3:
//! project queries onto W), `analyze` (clusters, embedding, metrics,
//! plots), `factor` (the batch solvers), `simulate` (a Splatter-like
//! multi-batch atlas), `import` (Matrix Market directory to .h5ad) and
//! `inspect` (describe an input). Exit codes: 0 success, 2 bad input or
//! parameters (nothing is written), 1 any other failure.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use inmf_driver::{AddRequest, InputSpec, ProjectRequest, RunConfig, RunRequest};

mod cmd_analyze;
mod cmd_factor;
mod cmd_import;
mod cmd_inspect;
mod cmd_simulate;

/// mimalloc instead of glibc malloc: measured here, glibc kept the memory of
/// the preprocessing passes' large, varying buffers (its dynamic mmap
/// threshold moves them onto a fragmenting heap), so peak RSS grew with the
/// number of cells (208 MB at 50k, 317 MB at 200k cells). Built with
/// `no_thp`: on this project's VMs a fresh transparent huge page costs
/// 2.5–3 ms per MB on first touch (4 KiB pages: 0.55 ms), and the 50k
/// comparison ran with bimodal system time (0.22 or 0.5–0.58 s) and 40 MB
/// more peak RSS with them; the hot arrays are small or streamed, so huge
/// pages bring no TLB gain back. Built with `override` too, so libhdf5's
/// and zlib's C allocations (chunk decompression, variable-length string
/// conversion) use mimalloc instead of glibc's fragmenting heap: peak RSS
/// of a fresh-cache run 189–206 → 173–174 MB at 100k cells and 232–251 →
/// 203–222 MB at 1M (two runs each), same speed.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Add datasets to a saved model (scenario 2): learn them into W without refactorizing.
    ///
    /// W starts from the model; new V_j are sampled; old V_i, A_i, B_i stay
    /// frozen but still shape W. New data are preprocessed with the model's
    /// genes (missing genes read as zeros) and scaling rule. Writes an updated
    /// OUT/model.h5 (arrivals chain) and OUT/result.h5ad with H for the new
    /// cells and, unless --new-only, re-solved H for the old ones.
    Add(AddArgs),
    /// Project query datasets onto a saved model's W (scenario 3).
    ///
    /// H = argmin_{H≥0} ‖X − WH‖² per cell (V treated as 0); the model is not
    /// changed. Cells whose projection is all zeros are reported and flagged
    /// in obs['h_all_zero']. Writes OUT/result.h5ad.
    Project(ProjectArgs),
    /// Simulate a multi-batch single-cell atlas (Splatter-like, with batch × cell-type effects).
    Simulate(cmd_simulate::SimulateArgs),
    /// Convert a Matrix Market directory (matrix.mtx, features.tsv, barcodes.tsv) to .h5ad.
    ///
    /// Streams the entries (sorting them by cell through a temporary file if
    /// needed) into a CSR .h5ad in bounded memory; the output appears only
    /// when complete.
    Import(cmd_import::ImportArgs),
    /// Describe an input: format, shape, dtypes, chunking, compression, and what inmf would read.
    Inspect(cmd_inspect::InspectArgs),
    /// Analyse a run: quantile normalization, Leiden clusters, UMAP, metrics, plots.
    Analyze(cmd_analyze::AnalyzeArgs),
    /// Factorize datasets in memory with a batch solver: NMF (Frobenius, KL), iNMF (ANLS, HALS, MU, KL, γ-coupled), diffusion NMF, ‖MW‖-regularized NMF.
    #[command(long_about = cmd_factor::LONG_ABOUT)]
    Factor(cmd_factor::FactorArgs),
}

/// Options of the online learning phase, shared by `run` and `add`.
#[derive(Args, Debug)]
struct LearnOpts {
    /// Passes over the first (new) dataset [default: 5].
    #[arg(long)]
    epochs: Option<usize>,
    /// Cells per online iteration, over all learned datasets [default:
    /// the reference's 5000, or all cells when there are fewer].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Cells per shuffled block [default: 1000].
    #[arg(long)]
    shuffle_block: Option<usize>,
    /// Seed of all random choices [default: 1].
    #[arg(long)]
    seed: Option<u64>,
    /// Early stop when the epoch objective changes by less than this (relative); 0 = off.
    #[arg(long)]
    tol: Option<f64>,
    /// Write OUT/checkpoint.h5 every N epochs (0 = never) [default: 1].
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<usize>,
    /// …but at most once per S seconds of learning (0 = at every such
    /// epoch) [default: 30].
    #[arg(long, value_name = "S")]
    checkpoint_seconds: Option<f64>,
    /// Continue an interrupted run from OUT/checkpoint.h5 (same inputs and
    /// parameters); the result is bit-identical to an uninterrupted run.
    #[arg(long)]
    resume: bool,
}

/// Options of every command that reads inputs.
#[derive(Args, Debug)]
struct CommonOpts {
    /// TOML configuration (see config/default.toml); flags win over it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Worker threads; 0 = one per core [default: 0].
    #[arg(long)]
    threads: Option<usize>,
    /// Matrix to read from .h5ad files: X, raw (raw/X) or layer:NAME [default: X].
    #[arg(long, value_name = "X|raw|layer:NAME")]
    matrix: Option<String>,
    /// No progress bar or summary.
    #[arg(long, short)]
    quiet: bool,
    /// Print the summary as one JSON object on stdout (for scripts).
    #[arg(long)]
    json: bool,
    /// Match genes across datasets by name or by id (10x features/id,
    /// AnnData var/gene_ids, loom row_attrs/Accession) [default: name].
    #[arg(long, value_name = "name|id")]
    match_genes: Option<String>,
    /// 10x inputs with several genomes: the one to read.
    #[arg(long, value_name = "NAME")]
    genome: Option<String>,
    /// Directory of the preprocessed cache [default: .inmf-cache beside OUT].
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Do not use the preprocessed cache: every epoch decodes the inputs.
    #[arg(long, conflicts_with = "cache")]
    no_cache: bool,
}

macro_rules! set {
    ($dst:expr, $src:expr) => {
        if let Some(v) = $src {
            $dst = v;
        }
    };
}

impl CommonOpts {
    fn config(&self) -> anyhow::Result<RunConfig> {
        let mut c = match &self.config {
            Some(p) => RunConfig::from_file(p)?,
            None => RunConfig::default(),
        };
        set!(c.runtime.threads, self.threads);
        set!(c.preprocess.matrix, self.matrix.clone());
        set!(c.preprocess.match_genes, self.match_genes.clone());
        if self.genome.is_some() {
            c.preprocess.genome = self.genome.clone();
        }
        if self.cache.is_some() {
            c.runtime.cache_dir = self.cache.clone();
        }
        if self.no_cache {
            c.runtime.cache = false;
        }
        Ok(c)
    }
}

impl LearnOpts {
    fn apply(&self, c: &mut RunConfig) {
        let m = &mut c.model;
        set!(m.epochs, self.epochs);
        if self.batch_size.is_some() {
            m.batch_size = self.batch_size;
        }
        set!(m.shuffle_block, self.shuffle_block);
        set!(m.seed, self.seed);
        set!(m.tol, self.tol);
        set!(c.runtime.checkpoint_every, self.checkpoint_every);
        set!(c.runtime.checkpoint_seconds, self.checkpoint_seconds);
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Input datasets: AnnData .h5ad (X as CSR, CSC or dense), 10x Genomics
    /// .h5, loom or LIGER .h5 files (convert Matrix Market directories with
    /// `inmf import`), optionally named as NAME=PATH (default name: the file stem).
    #[arg(required = true, value_name = "[NAME=]PATH")]
    inputs: Vec<InputSpec>,
    /// Output directory (created if missing).
    #[arg(long, short, value_name = "DIR")]
    out: PathBuf,
    /// K, the number of factors [default: 20].
    #[arg(long)]
    k: Option<usize>,
    /// λ, weight of the dataset-specific penalty λ‖V_i H_i‖² [default: 5].
    #[arg(long)]
    lambda: Option<f64>,
    /// Keep only the top N variable genes per dataset (0 = all that pass selectGenes).
    #[arg(long, conflicts_with = "genes")]
    n_genes: Option<usize>,
    /// Use the genes listed in FILE (one per line) instead of selecting them.
    #[arg(long, value_name = "FILE")]
    genes: Option<PathBuf>,
    /// After learning, measure this machine's per-epoch lower bound (read
    /// rate, sparse-product rate) on the run's data and report
    /// "epoch time / bound" (used by scripts/bench-scale).
    #[arg(long, hide = true)]
    measure_bound: bool,
    #[command(flatten)]
    learn: LearnOpts,
    #[command(flatten)]
    common: CommonOpts,
}

impl RunArgs {
    fn request(self) -> anyhow::Result<RunRequest> {
        let mut c = self.common.config()?;
        self.learn.apply(&mut c);
        set!(c.model.k, self.k);
        set!(c.model.lambda, self.lambda);
        set!(c.preprocess.n_genes, self.n_genes);
        if self.genes.is_some() {
            c.preprocess.genes_file = self.genes;
        }
        Ok(RunRequest {
            inputs: self.inputs,
            out_dir: self.out,
            config: c,
            quiet: self.common.quiet || self.common.json,
            resume: self.learn.resume,
            measure_bound: self.measure_bound,
        })
    }
}

#[derive(Args, Debug)]
struct AddArgs {
    /// Directory of the saved model (written by `inmf run` or `inmf add`).
    #[arg(value_name = "MODEL_DIR")]
    model_dir: PathBuf,
    /// New datasets, as for `inmf run`.
    #[arg(required = true, value_name = "[NAME=]PATH")]
    inputs: Vec<InputSpec>,
    /// Output directory (may be MODEL_DIR: its model.h5 and result.h5ad are replaced together).
    #[arg(long, short, value_name = "DIR")]
    out: PathBuf,
    /// Solve H only for the new cells (the old datasets' files are not read again).
    #[arg(long)]
    new_only: bool,
    #[command(flatten)]
    learn: LearnOpts,
    #[command(flatten)]
    common: CommonOpts,
}

#[derive(Args, Debug)]
struct ProjectArgs {
    /// Directory of the saved model.
    #[arg(value_name = "MODEL_DIR")]
    model_dir: PathBuf,
    /// Query datasets, as for `inmf run`.
    #[arg(required = true, value_name = "[NAME=]PATH")]
    inputs: Vec<InputSpec>,
    /// Output directory.
    #[arg(long, short, value_name = "DIR")]
    out: PathBuf,
    /// Reference obs columns whose labels are transferred to the query
    /// (default: every categorical label column of the reference's
    /// result.h5ad that varies within a dataset).
    #[arg(long, value_delimiter = ',', value_name = "COL[,COL...]")]
    transfer: Option<Vec<String>>,
    /// A query obs column with the query's own labels: prints and stores
    /// the accuracy, per-type recall and confusion table of the transfer.
    #[arg(long, value_name = "COL")]
    labels: Option<String>,
    /// Also cluster reference and query together on their normalized H
    /// (as `inmf analyze`, at the reference's resolution) and report ARI,
    /// NMI and purity against the labels of both sides and the alignment
    /// of reference and query; needs an analysed reference.
    #[arg(long)]
    joint: bool,
    #[command(flatten)]
    common: CommonOpts,
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => {
            let (json, quiet) = (args.common.json, args.common.quiet);
            let req = args.request()?;
            let summary = inmf_driver::run_online(&req).context("inmf run failed")?;
            report(&summary, json, quiet);
            Ok(())
        }
        Command::Add(args) => {
            let mut config = args.common.config()?;
            args.learn.apply(&mut config);
            let req = AddRequest {
                model_dir: args.model_dir,
                inputs: args.inputs,
                out_dir: args.out,
                config,
                new_only: args.new_only,
                quiet: args.common.quiet || args.common.json,
                resume: args.learn.resume,
            };
            let summary = inmf_driver::add_datasets(&req).context("inmf add failed")?;
            report(&summary, args.common.json, args.common.quiet);
            Ok(())
        }
        Command::Project(args) => {
            let req = ProjectRequest {
                model_dir: args.model_dir,
                inputs: args.inputs,
                out_dir: args.out,
                config: args.common.config()?,
                quiet: args.common.quiet || args.common.json,
                mapping: inmf_driver::MappingOptions {
                    transfer: args.transfer,
                    labels: args.labels,
                    joint: args.joint,
                },
            };
            let s = inmf_driver::project(&req).context("inmf project failed")?;
            if args.common.json {
                let json = serde_json::json!({
                    "cells": s.datasets.iter().map(|d| d.2).sum::<usize>(),
                    "genes": s.genes,
                    "genes_missing": s.genes_missing,
                    "residual": s.objective.residual,
                    "zero_cells": s.zero_cells,
                    "unmatched": s.mapping.flagged.iter().map(|f| f.2).sum::<usize>(),
                    "accuracy": s.mapping.confusion.as_ref().map(|c| c.accuracy),
                    "label_accuracy": s.mapping.confusion.as_ref().map(|c| c.label_accuracy),
                    "joint": s.mapping.joint.as_ref().map(|j| serde_json::json!({
                        "n_clusters": j.n_clusters,
                        "alignment": j.alignment,
                        "ari": j.all.map(|a| a.ari),
                        "nmi": j.all.map(|a| a.nmi),
                        "purity": j.all.map(|a| a.purity),
                        "query_ari": j.query.map(|a| a.ari),
                        "query_nmi": j.query.map(|a| a.nmi),
                        "query_purity": j.query.map(|a| a.purity),
                        "query_only_clusters": j.query_only_clusters,
                    })),
                    "plots": s.plots,
                    "seconds": s.seconds,
                    "peak_rss_mb": s.peak_rss_bytes.map(|b| b as f64 / 1048576.0),
                    "output": s.output,
                });
                inmf_driver::log::out(&format!("{json}\n"));
            } else if !args.common.quiet {
                inmf_driver::log::out(&s.to_string());
            }
            Ok(())
        }
        Command::Simulate(args) => cmd_simulate::run(args),
        Command::Import(args) => cmd_import::run(args),
        Command::Inspect(args) => cmd_inspect::run(args),
        Command::Analyze(args) => cmd_analyze::run(args),
        Command::Factor(args) => cmd_factor::run(args),
    }
}

fn report(summary: &inmf_driver::RunSummary, json: bool, quiet: bool) {
    if json {
        inmf_driver::log::out(&format!("{}\n", summary_json(summary)));
    } else if !quiet {
        inmf_driver::log::out(&summary.to_string());
    }
}

fn summary_json(s: &inmf_driver::RunSummary) -> serde_json::Value {
    let [pre, epochs, final_h, write] = s.seconds;
    serde_json::json!({
        "cells": s.datasets.iter().map(|d| d.2).sum::<usize>(),
        "datasets": s.datasets.len(),
        "per_dataset": s.datasets.iter().map(|(n, total, used)| serde_json::json!({"name": n, "cells_in_file": total, "cells_used": used})).collect::<Vec<_>>(),
        "genes_in": s.genes_in,
        "genes_selected": s.genes,
        "k": s.k,
        "lambda": s.lambda,
        "iterations": s.iterations,
        "batch_size": s.batch_size,
        "batch_size_chosen": s.batch_size_chosen,
        "epochs": s.epochs,
        "epoch_objective": s.epoch_objective,
        "epoch_seconds": s.epoch_seconds,
        "final_objective": {"total": s.final_objective.total(), "residual": s.final_objective.residual, "penalty": s.final_objective.penalty},
        "seconds": {"preprocess": pre, "epochs": epochs, "final_h": final_h, "write": write, "final_h_and_write": final_h + write, "total": pre + epochs + final_h + write},
        "peak_rss_mb": s.peak_rss_bytes.map(|b| b as f64 / 1048576.0),
        "outputs": s.outputs,
        "preprocess_steps": s.preprocess_steps.iter().map(|(n, t)| serde_json::json!({"step": n, "seconds": t})).collect::<Vec<_>>(),
        "decode": s.decode_rate.map(|d| serde_json::json!({
            "stored_mb": d.stored_bytes as f64 / 1e6,
            "decoded_mb": d.decoded_bytes as f64 / 1e6,
            "seconds": d.seconds,
            "decoded_mb_per_s": d.decoded_bytes as f64 / 1e6 / d.seconds.max(1e-9),
            "preprocess_over_decode": pre / d.seconds.max(1e-9),
        })),
        "bound": s.bound.map(|b| serde_json::json!({
            "epoch_s": b.seconds,
            "epoch_time_over_bound": median(&s.epoch_seconds).unwrap_or(epochs / s.epochs.max(1) as f64) / b.seconds,
            "mean_epoch_time_over_bound": epochs / s.epochs.max(1) as f64 / b.seconds,
            "bytes_per_epoch": b.bytes_per_epoch,
            "nnz_per_epoch": b.nnz_per_epoch,
            "read_gb_per_s": b.read_bytes_per_s / 1e9,
            "sparse_gflop_per_s": b.sparse_flops_per_s / 1e9,
        })),
    })
}

/// Median of `v` (mean of the middle two for an even count); `None` if empty.
fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(s[n / 2]),
        _ => Some(0.5 * (s[n / 2 - 1] + s[n / 2])),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            inmf_driver::log::line(&format!("error: {err:#}"));
            ExitCode::from(inmf_driver::exit_code(err.as_ref()))
        }
    }
}
