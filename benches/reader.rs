//! Reader throughput: preprocessed blocks served to the learner per second,
//! from the cache and from the gzip-compressed AnnData inputs.
//!
//! Data: a simulated atlas (3 datasets × 10,000 cells × 2,000 genes,
//! ≈10 % non-zeros, gzip level 4, the `inmf simulate` format), generated
//! once into a temporary directory. Each measurement reads every cell of
//! the first dataset in runs of 5,000 (the default mini-batch), through the
//! same `CellSource` the reader thread uses. Throughput is counted in bytes
//! of the decoded block (4-byte index + 4-byte value per non-zero, 8-byte
//! row pointer per cell), so "MiB/s" compares the two paths directly.
//!
//! IDs: `reader/cache/cells10000`, `reader/h5ad_gzip/cells10000`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use inmf_driver::simulate::SimulationParams;
use inmf_learner::CellSource;
use inmf_reader::{open, Hdf5Source, OpenOptions, PreprocessParams};

const CELLS: usize = 10_000;
const RUN: usize = 5_000;

/// Reads every cell of dataset 0 in runs of [`RUN`]; returns the decoded bytes.
fn read_all(src: &mut Hdf5Source) -> u64 {
    let n = src.n_cells(0);
    let mut bytes = 0u64;
    for s in (0..n).step_by(RUN) {
        let x = src.read_cells(0, s..(s + RUN).min(n)).expect("read");
        bytes += 8 * (x.nnz() + x.n_rows()) as u64;
        black_box(&x);
    }
    bytes
}

fn reader(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = SimulationParams {
        datasets: 3,
        cells: vec![CELLS],
        lib_locs: vec![6.5, 6.9, 7.3],
        ..SimulationParams::splatter()
    }
    .check()
    .expect("simulation parameters");
    let summary = sim.run(&dir.path().join("data")).expect("simulate");
    let paths: Vec<_> = summary.datasets.iter().map(|d| d.path.clone()).collect();
    let params = PreprocessParams::default().check().expect("params");
    let open_all = || -> Vec<_> {
        paths
            .iter()
            .map(|p| open(p, &OpenOptions::default()).expect("open"))
            .collect()
    };

    let mut decoded = Hdf5Source::preprocess(open_all(), &params).expect("preprocess");
    let mut cached = Hdf5Source::preprocess(open_all(), &params).expect("preprocess");
    cached
        .build_cache(&params, &dir.path().join("cache"))
        .expect("build cache");
    let bytes = read_all(&mut cached);

    let mut g = c.benchmark_group("reader");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(20);
    g.bench_function(format!("cache/cells{CELLS}"), |b| {
        b.iter(|| read_all(&mut cached))
    });
    g.bench_function(format!("h5ad_gzip/cells{CELLS}"), |b| {
        b.iter(|| read_all(&mut decoded))
    });
    g.finish();
}

criterion_group!(benches, reader);
criterion_main!(benches);
