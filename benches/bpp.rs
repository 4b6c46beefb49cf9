//! Block principal pivoting NNLS (ALGORITHMS.md §2) on the H step of iNMF.
//!
//! IDs `bpp/k{K}/cells{n}`: n right-hand sides R = X·(W+V) with
//! G = (W+V)ᵀ(W+V) + λVᵀV, λ = 5, for 2,000 genes, W i.i.d. Uniform(0, 2)
//! with unit-norm columns and V built from K random cells (the online iNMF
//! initialisation, ALGORITHMS.md §3); X holds sparse non-negative cells
//! (≈10% non-zeros, Exp(1) values), like scaled scRNA-seq counts over
//! selected genes. Only the solve is timed (into a preallocated output).
//!
//! The solver is parallel over fixed blocks of 256 rows; for single-core
//! numbers run `RAYON_NUM_THREADS=1 cargo bench --bench bpp`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use inmf_learner::{nnls_bpp_into, project, CsrMatrix};
use ndarray::Array2;

const GENES: usize = 2000;
const CELLS: usize = 5000;
const DENSITY: f64 = 0.1;
const LAMBDA: f64 = 5.0;

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

    /// Uniform on [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Sparse non-negative cells × genes with ≈`DENSITY` non-zeros per cell.
fn random_cells(n: usize, rng: &mut SplitMix64) -> CsrMatrix {
    let mut x = CsrMatrix::empty(GENES);
    let (mut cols, mut vals) = (Vec::new(), Vec::new());
    for _ in 0..n {
        cols.clear();
        vals.clear();
        for g in 0..GENES as u32 {
            if rng.uniform() < DENSITY {
                cols.push(g);
                vals.push(-(1.0 - rng.uniform()).ln() as f32);
            }
        }
        x.push_row(&cols, &vals);
    }
    x
}

fn unit_columns(mut m: Array2<f64>) -> Array2<f64> {
    for mut c in m.columns_mut() {
        let norm = c.dot(&c).sqrt();
        if norm > 0.0 {
            c /= norm;
        }
    }
    m
}

/// (G, R) of the H step for K factors.
fn problem(k: usize) -> (Array2<f64>, Array2<f64>) {
    let mut rng = SplitMix64(k as u64);
    let w = unit_columns(Array2::from_shape_simple_fn((GENES, k), || 2.0 * rng.uniform()));
    let seeds = random_cells(k, &mut rng).to_dense();
    let v = unit_columns(seeds.t().to_owned());
    let wv = &w + &v;
    let g = wv.t().dot(&wv) + v.t().dot(&v) * LAMBDA;
    let x = random_cells(CELLS, &mut rng);
    let r = project(&x, wv.view());
    (g, r)
}

fn bench_bpp(c: &mut Criterion) {
    let mut group = c.benchmark_group("bpp");
    for k in [20, 40] {
        let (g, r) = problem(k);
        let mut h = Array2::<f64>::zeros(r.raw_dim());
        let stats = nnls_bpp_into(g.view(), r.view(), h.view_mut()).expect("solve");
        let nnz = h.iter().filter(|&&v| v > 0.0).count() as f64 / CELLS as f64;
        eprintln!("bpp/k{k}/cells{CELLS}: {stats:?}, mean non-zeros per h: {nnz:.1}");
        group.bench_function(format!("k{k}/cells{CELLS}"), |b| {
            b.iter(|| nnls_bpp_into(black_box(g.view()), black_box(r.view()), h.view_mut()).expect("solve"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_bpp);
criterion_main!(benches);
