//! The online iteration's kernels (docs/algorithms.md §2–3) at the sizes of one
//! default mini-batch: 5,000 cells × 2,000 genes at ≈10% non-zeros.
//!
//! IDs encode sizes: `project/k20/cells5000` (R = X·(W+V)),
//! `project_f16/…` (R with half-precision factor rows, as the online steps
//! run it), `project_f32/…` and `accumulate_f32/…` (the single-precision
//! products of the final pass and of B += XᵀH),
//! `accumulate/k20/cells5000` (B += XᵀH), `hals/k20/genes2000/datasets3`
//! (one W + V_i sweep), `online_step/k20/cells5000/datasets3` (one whole
//! iteration: H solve, statistics, HALS). FLOP rates: the two sparse
//! products cost 2·nnz·K flops each. Single-core: `RAYON_NUM_THREADS=1`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use inmf_learner::{
    accumulate_xt_h, accumulate_xt_h_f32, project, project_f16, project_f32, CsrMatrix, IterationInfo,
    MiniBatch, OnlineInmf,
};
use ndarray::Array2;

const GENES: usize = 2000;
const CELLS: usize = 5000;
const DENSITY: f64 = 0.1;

/// SplitMix64: a tiny seeded generator, so the bench needs no extra dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

fn cells(rng: &mut SplitMix64, n: usize) -> CsrMatrix {
    let mut x = CsrMatrix::empty(GENES);
    let (mut cols, mut vals) = (Vec::new(), Vec::new());
    for _ in 0..n {
        cols.clear();
        vals.clear();
        for g in 0..GENES {
            if rng.uniform() < DENSITY {
                cols.push(g as u32);
                vals.push((-(1.0 - rng.uniform()).ln()) as f32);
            }
        }
        x.push_row(&cols, &vals);
    }
    x
}

fn dense(rng: &mut SplitMix64, r: usize, c: usize) -> Array2<f64> {
    Array2::from_shape_simple_fn((r, c), || rng.uniform())
}

fn kernels(c: &mut Criterion) {
    let mut rng = SplitMix64(1);
    let x = cells(&mut rng, CELLS);
    let flops = 2 * x.nnz() as u64 * 20;
    let mut g = c.benchmark_group("kernels");
    g.throughput(Throughput::Elements(flops));
    let m = dense(&mut rng, GENES, 20);
    g.bench_function("project/k20/cells5000", |b| {
        b.iter(|| black_box(project(&x, m.view())))
    });
    let h = dense(&mut rng, CELLS, 20);
    let mut acc = Array2::zeros((GENES, 20));
    g.bench_function("accumulate/k20/cells5000", |b| {
        b.iter(|| accumulate_xt_h(&x, h.view(), 1.0 / CELLS as f64, black_box(acc.view_mut())))
    });
    g.bench_function("project_f32/k20/cells5000", |b| {
        b.iter(|| black_box(project_f32(&x, m.view())))
    });
    g.bench_function("project_f16/k20/cells5000", |b| {
        b.iter(|| black_box(project_f16(&x, m.view())))
    });
    g.bench_function("accumulate_f32/k20/cells5000", |b| {
        b.iter(|| accumulate_xt_h_f32(&x, h.view(), 1.0 / CELLS as f64, black_box(acc.view_mut())))
    });
    g.finish();
}

fn model(rng: &mut SplitMix64, datasets: usize) -> OnlineInmf {
    let w = dense(rng, GENES, 20);
    let vs = (0..datasets).map(|_| dense(rng, GENES, 20) * 0.3).collect();
    OnlineInmf::new(w, vs, 5.0).expect("shapes agree")
}

fn iteration(c: &mut Criterion) {
    let mut rng = SplitMix64(2);
    let mut warm = model(&mut rng, 3);
    let batches: Vec<MiniBatch> = (0..3)
        .map(|d| MiniBatch {
            dataset: d,
            cells: std::iter::once(0..CELLS / 3).collect(),
            x: cells(&mut rng, CELLS / 3),
        })
        .collect();
    // Accumulate statistics first so HALS works on realistic A, B.
    for t in 1..=3 {
        warm.step(
            IterationInfo {
                t,
                epoch: 0,
                new_epoch: false,
            },
            &batches,
            1,
        )
        .expect("valid step");
    }
    let mut g = c.benchmark_group("online");
    g.sample_size(20);
    let mut m = warm.clone();
    g.bench_function("hals/k20/genes2000/datasets3", |b| b.iter(|| m.hals_sweep()));
    let mut m = warm.clone();
    g.bench_function("online_step/k20/cells5000/datasets3", |b| {
        b.iter(|| {
            m.step(
                IterationInfo {
                    t: 10,
                    epoch: 0,
                    new_epoch: false,
                },
                black_box(&batches),
                1,
            )
            .expect("valid step")
        })
    });
    g.finish();
}

criterion_group!(benches, kernels, iteration);
criterion_main!(benches);
