//! `inmf simulate`: write a simulated multi-batch atlas (docs/algorithms.md §11).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use inmf_driver::simulate::{Compression, OutputFormat, SimulationParams};

/// Output format of `inmf simulate`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    /// AnnData .h5ad (CSR float32 counts, cell types in obs).
    H5ad,
    /// 10x Genomics v3 .h5 (int32 counts) plus a NAME_labels.tsv of cell types.
    #[value(name = "10x")]
    TenX,
}

/// The generative model's gene-level defaults.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModelArg {
    /// Shaped like 10x UMI counts: most genes near Poisson within a cell
    /// type, so gene selection keeps a few percent of 30,000 genes.
    #[value(name = "10x")]
    TenX,
    /// Splatter's gene means and dispersion trend (every gene over-dispersed,
    /// so gene selection keeps most genes) with library sizes 7.6,8.0,8.4.
    Splatter,
}

/// Compression of the count matrix.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CompressionArg {
    /// gzip level 4.
    Gzip,
    /// None: larger files, fastest to write and read.
    None,
}

/// Simulate datasets `batch1..batchN` with cell types `type1..typeT`:
/// Splatter-like counts, per-batch library sizes and gene factors, and a
/// batch × cell-type interaction. Writes DIR/batchB.h5ad (or .h5 with
/// DIR/batchB_labels.tsv) and DIR/simulation.toml. The same parameters give
/// identical files, whatever the number of threads (RAYON_NUM_THREADS sets
/// how many generate cells; default one per core).
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Output directory (created if missing).
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of datasets (batches).
    #[arg(long, default_value_t = 3)]
    pub datasets: usize,
    /// Cells per dataset; a comma list gives each dataset its own count (e.g. 5000,8000,3000).
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    pub cells: Vec<usize>,
    /// Number of genes.
    #[arg(long, default_value_t = 2000)]
    pub genes: usize,
    /// Number of cell types.
    #[arg(long, default_value_t = 8)]
    pub cell_types: usize,
    /// Scale of the batch effects (gene factors and batch × type interactions); 0 = none.
    #[arg(long, default_value_t = 1.0)]
    pub batch_effect: f64,
    /// Gene means, dispersion, differential expression and library sizes
    /// (docs/algorithms.md §11).
    #[arg(long, value_enum, default_value = "10x")]
    pub model: ModelArg,
    /// Log-normal locations of library sizes (log counts per cell), cycled
    /// over datasets; lower values give sparser data. Default 8.0,8.3,8.6
    /// (median library sizes of about 3,000, 4,000 and 5,400 counts) with
    /// `--model 10x`, 7.6,8.0,8.4 with `--model splatter`.
    #[arg(long, value_delimiter = ',', value_name = "LOG_SIZES")]
    pub library_locs: Option<Vec<f64>>,
    /// A cell type absent from a dataset, as DATASET:TYPE (1-based); repeatable.
    #[arg(long, value_name = "DATASET:TYPE", value_parser = parse_missing)]
    pub missing: Vec<(usize, usize)>,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value = "h5ad")]
    pub format: FormatArg,
    /// Compression of the count matrix.
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: CompressionArg,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_missing(s: &str) -> Result<(usize, usize), String> {
    let err = || format!("{s:?} is not DATASET:TYPE (two 1-based numbers, e.g. 2:5)");
    let (d, t) = s.split_once(':').ok_or_else(err)?;
    Ok((
        d.trim().parse().map_err(|_| err())?,
        t.trim().parse().map_err(|_| err())?,
    ))
}

impl SimulateArgs {
    /// The simulator's parameters: these flags over the documented defaults.
    pub fn params(&self) -> SimulationParams {
        let base = match self.model {
            ModelArg::TenX => SimulationParams::default(),
            ModelArg::Splatter => SimulationParams::splatter(),
        };
        SimulationParams {
            datasets: self.datasets,
            cells: self.cells.clone(),
            genes: self.genes,
            cell_types: self.cell_types,
            batch_effect: self.batch_effect,
            missing_types: self.missing.clone(),
            lib_locs: self.library_locs.clone().unwrap_or(base.lib_locs.clone()),
            seed: self.seed,
            format: match self.format {
                FormatArg::H5ad => OutputFormat::H5ad,
                FormatArg::TenX => OutputFormat::TenX,
            },
            compression: match self.compression {
                CompressionArg::Gzip => Compression::Gzip(4),
                CompressionArg::None => Compression::None,
            },
            ..base
        }
    }
}

/// Runs `inmf simulate`: checks the parameters, writes the files, prints a
/// short summary (files, cells, non-zeros, time) unless `--quiet`.
pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let sim = args.params().check()?;
    let started = Instant::now();
    let quiet = args.quiet;
    let mut last = Instant::now();
    let summary = sim
        .run_with_progress(&args.out, &mut |p| {
            if !quiet && (p.cells_done == p.cells_total || last.elapsed().as_secs_f64() >= 2.0) {
                inmf_driver::log::line(&format!(
                    "  {}: {}/{} cells",
                    p.dataset, p.cells_done, p.cells_total
                ));
                last = Instant::now();
            }
        })
        .with_context(|| format!("simulation into {} failed", args.out.display()))?;
    if !quiet {
        let secs = started.elapsed().as_secs_f64();
        let cells: usize = summary.datasets.iter().map(|d| d.cells).sum();
        for d in &summary.datasets {
            let types: Vec<String> = d.type_counts.iter().map(|n| n.to_string()).collect();
            inmf_driver::log::out(&format!(
                "{}: {} cells, {} non-zeros ({:.1}%), cells per type [{}]{}\n",
                d.path.display(),
                d.cells,
                d.nnz,
                100.0 * d.nnz as f64 / (d.cells as f64 * sim.params().genes as f64),
                types.join(", "),
                d.labels
                    .as_ref()
                    .map(|l| format!(", labels {}", l.display()))
                    .unwrap_or_default()
            ));
        }
        inmf_driver::log::out(&format!(
            "{}: parameters. {cells} cells in {secs:.1} s ({:.0} cells/s)\n",
            summary.params_file.display(),
            cells as f64 / secs.max(1e-9)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    fn parse(args: &[&str]) -> Result<SimulateArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("simulate").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn defaults_are_the_simulator_defaults() {
        let p = parse(&["--out", "d"]).unwrap().params();
        assert_eq!(p, SimulationParams::default());
    }

    #[test]
    fn splatter_model_takes_its_library_sizes_unless_given() {
        let p = parse(&["--out", "d", "--model", "splatter"]).unwrap().params();
        assert_eq!(p, SimulationParams::splatter());
        let p = parse(&["--out", "d", "--model", "splatter", "--library-locs", "6.5,7"])
            .unwrap()
            .params();
        assert_eq!(
            p,
            SimulationParams {
                lib_locs: vec![6.5, 7.0],
                ..SimulationParams::splatter()
            }
        );
        assert!(parse(&["--out", "d", "--model", "bulk"]).is_err());
    }

    #[test]
    fn flags_map_to_params() {
        let flags = "--out d --datasets 2 --cells 5,7 --genes 30 --cell-types 4 --batch-effect 0.5 \
                     --missing 1:2 --missing 2:4 --seed 9 --format 10x --compression none -q";
        let a = parse(&flags.split_whitespace().collect::<Vec<_>>()).unwrap();
        assert!(a.quiet);
        let p = a.params();
        assert_eq!(
            (p.datasets, p.cells.clone(), p.genes, p.cell_types),
            (2, vec![5, 7], 30, 4)
        );
        assert_eq!(
            (p.batch_effect, p.missing_types.clone(), p.seed),
            (0.5, vec![(1, 2), (2, 4)], 9)
        );
        assert_eq!((p.format, p.compression), (OutputFormat::TenX, Compression::None));
    }

    #[test]
    fn bad_flags_are_rejected() {
        assert!(parse(&[]).is_err());
        for bad in ["2", "a:b", "1:", ":2", "1:2:3"] {
            let e = parse(&["--out", "d", "--missing", bad])
                .expect_err(bad)
                .to_string();
            assert!(e.contains("DATASET:TYPE"), "{e}");
        }
        assert!(parse(&["--out", "d", "--format", "loom"]).is_err());
        assert!(parse(&["--out", "d", "--cells", "5,x"]).is_err());
    }

    #[test]
    fn runs_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sim");
        let a = parse(&[
            "--out",
            out.to_str().unwrap(),
            "--datasets",
            "2",
            "--cells",
            "20",
            "--genes",
            "10",
            "-q",
        ]);
        run(a.unwrap()).unwrap();
        assert!(out.join("batch1.h5ad").exists() && out.join("batch2.h5ad").exists());
        let a = parse(&["--out", out.to_str().unwrap(), "--cells", "0", "-q"]).unwrap();
        let e = run(a).unwrap_err();
        assert!(e.downcast_ref::<inmf_driver::DriverError>().is_some(), "{e:#}");
        assert!(format!("{e:#}").contains("cells = 0"), "{e:#}");
    }
}
