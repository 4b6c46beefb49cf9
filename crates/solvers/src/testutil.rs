//! Helpers shared by the solver tests: small random and planted data, a
//! KKT measure for multiplicative solvers, comparisons.

use ndarray::{Array2, ArrayView2};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use inmf_learner::CsrMatrix;

/// Random sparse non-negative cells × genes data, density `p`.
pub(crate) fn random_sparse(cells: usize, genes: usize, p: f64, rng: &mut ChaCha8Rng) -> CsrMatrix {
    let dense: Vec<f32> = (0..cells * genes)
        .map(|_| {
            if rng.random_bool(p) {
                rng.random_range(0.1..5.0f32)
            } else {
                0.0
            }
        })
        .collect();
    CsrMatrix::from_dense(cells, genes, &dense)
}

/// Planted gene programs (genes × K) with distinct supports (identifiable).
pub(crate) fn planted_w(genes: usize, k: usize, rng: &mut ChaCha8Rng) -> Array2<f64> {
    Array2::from_shape_fn((genes, k), |(g, j)| {
        if g % k == j || rng.random_bool(0.2) {
            rng.random_range(0.5..2.0)
        } else {
            0.0
        }
    })
}

/// Planted cell loadings (cells × K), about 60 % non-zero.
pub(crate) fn planted_h(cells: usize, k: usize, rng: &mut ChaCha8Rng) -> Array2<f64> {
    Array2::from_shape_fn((cells, k), |_| {
        if rng.random_bool(0.6) {
            rng.random_range(0.0..2.0)
        } else {
            0.0
        }
    })
}

/// X = clean ∘ (1 + σ·N(0,1)), clamped at 0, stored in f32.
pub(crate) fn noisy(clean: &Array2<f64>, sigma: f64, rng: &mut ChaCha8Rng) -> CsrMatrix {
    let dense: Vec<f32> = clean
        .iter()
        .map(|&x| {
            let e: f64 = StandardNormal.sample(rng);
            (x * (1.0 + sigma * e)).max(0.0) as f32
        })
        .collect();
    CsrMatrix::from_dense(clean.nrows(), clean.ncols(), &dense)
}

/// How far a non-negative factor F is from the KKT conditions of its block,
/// given the gradient split ∇ = pos − neg (pos, neg ≥ 0): the scaled KKT
/// residual max_ij |min(F_ij / max F, ∇_ij / max(pos + neg))| (0 at a KKT
/// point: ∇ = 0 where F > 0 and ∇ ≥ 0 where F = 0).
pub(crate) fn kkt_violation(f: ArrayView2<f64>, pos: ArrayView2<f64>, neg: ArrayView2<f64>) -> f64 {
    let fmax = f.iter().fold(0.0f64, |a, &b| a.max(b));
    let gmax = pos.iter().zip(neg).fold(0.0f64, |a, (p, n)| a.max(p + n));
    if fmax == 0.0 || gmax == 0.0 {
        return 0.0;
    }
    let mut worst = 0.0f64;
    for ((&x, &p), &n) in f.iter().zip(pos).zip(neg) {
        worst = worst.max((x / fmax).min((p - n) / gmax).abs());
    }
    worst
}

/// max |a − b| / max |b|.
pub(crate) fn max_rel_diff(a: ArrayView2<f64>, b: ArrayView2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    let scale = b
        .iter()
        .fold(0.0f64, |m, &v| m.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// Asserts F_{t+1} ≤ F_t + rel·F_t + abs for every t.
#[track_caller]
pub(crate) fn assert_monotone(trace: &[f64], rel: f64, abs: f64, what: &str) {
    for (t, p) in trace.windows(2).enumerate() {
        assert!(
            p[1] <= p[0] + rel * p[0].abs() + abs,
            "{what}: F rose from {} to {} at step {}",
            p[0],
            p[1],
            t + 1
        );
    }
}
