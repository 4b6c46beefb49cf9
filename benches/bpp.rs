//! Block principal pivoting NNLS (docs/algorithms.md §2) on the H step of iNMF.
//!
//! IDs `bpp/k{K}/cells{n}`: n right-hand sides R = X·(W+V) with
//! G = (W+V)ᵀ(W+V) + λVᵀV, λ = 5, for 2,000 genes, W i.i.d. Uniform(0, 2)
//! with unit-norm columns and V built from K random cells (the online iNMF
//! initialisation, docs/algorithms.md §3); X holds sparse non-negative cells
//! (≈10% non-zeros, Exp(1) values), like scaled scRNA-seq counts over
//! selected genes. Only the solve is timed (into a preallocated output).
//! Such unstructured cells give dense solutions (few active variables);
//! `bpp/k{K}/cells{n}/mixtures` has cells that mix 3 of the K factors
//! (x = Σ 3 factors + noise), like cell types, so the solver meets
//! active sets of the size seen on simulated atlases (1.6 exchange rounds
//! per row and ≈ 6 active variables at K 20 here; 1.5 and 5.6–7.4 in the
//! online H solves of the 50k-cell comparison data).
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

/// (G, R) of the H step for K factors: R from random cells, or (`mixtures`)
/// from cells mixing 3 factors plus noise.
fn problem(k: usize, mixtures: bool) -> (Array2<f64>, Array2<f64>) {
    let mut rng = SplitMix64(k as u64);
    let w = unit_columns(Array2::from_shape_simple_fn((GENES, k), || 2.0 * rng.uniform()));
    let seeds = random_cells(k, &mut rng).to_dense();
    let v = unit_columns(seeds.t().to_owned());
    let wv = &w + &v;
    let g = wv.t().dot(&wv) + v.t().dot(&v) * LAMBDA;
    if !mixtures {
        let x = random_cells(CELLS, &mut rng);
        return (g.clone(), project(&x, wv.view()));
    }
    // R = X·(W+V) for X = H_true·(W+V)ᵀ + E: R = H_true·G_wv + E·(W+V).
    let g_wv = wv.t().dot(&wv);
    let mut h_true = Array2::<f64>::zeros((CELLS, k));
    for mut row in h_true.rows_mut() {
        for _ in 0..3 {
            row[(rng.next_u64() % k as u64) as usize] += 0.5 + rng.uniform();
        }
    }
    let noise = Array2::from_shape_simple_fn((CELLS, GENES), || NOISE * (rng.uniform() - 0.5));
    let r = h_true.dot(&g_wv) + noise.dot(&wv);
    (g, r)
}

/// Noise amplitude of the mixture cells (per gene, uniform ±NOISE/2).
const NOISE: f64 = 2.5;

fn bench_bpp(c: &mut Criterion) {
    let mut group = c.benchmark_group("bpp");
    for (k, mixtures) in [(20, false), (40, false), (20, true)] {
        let (g, r) = problem(k, mixtures);
        let mut h = Array2::<f64>::zeros(r.raw_dim());
        let stats = nnls_bpp_into(g.view(), r.view(), h.view_mut()).expect("solve");
        let nnz = h.iter().filter(|&&v| v > 0.0).count() as f64 / CELLS as f64;
        let id = format!("k{k}/cells{CELLS}{}", if mixtures { "/mixtures" } else { "" });
        eprintln!("bpp/{id}: {stats:?}, mean non-zeros per h: {nnz:.1}");
        group.bench_function(id, |b| {
            b.iter(|| nnls_bpp_into(black_box(g.view()), black_box(r.view()), h.view_mut()).expect("solve"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_bpp);
criterion_main!(benches);
