//! Helpers shared by the tests of the online engine and its kernels: small
//! random and planted data, non-zeros in 16-bit shared runs, comparisons.

use ndarray::{Array2, ArrayView2};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::sparse::{Cols, CsrMatrix, SharedNonZeros};

/// Non-zeros with 16-bit column indices, shared as one run per block of
/// rows (what a cache entry of at most 65,536 genes maps).
#[derive(Debug)]
pub(crate) struct NarrowRun(pub(crate) Vec<u16>, pub(crate) Vec<f32>);

impl SharedNonZeros for NarrowRun {
    fn indices(&self) -> Cols<'_> {
        Cols::Narrow(&self.0)
    }
    fn data(&self) -> &[f32] {
        &self.1
    }
}

/// `x` with its non-zeros in shared runs of `rows_per_run` rows with
/// 16-bit column indices (`x` must have at most 65,536 columns).
pub(crate) fn narrow_copy(x: &CsrMatrix, rows_per_run: usize) -> CsrMatrix {
    let n = x.n_rows();
    let runs: Vec<std::sync::Arc<dyn SharedNonZeros>> = (0..n)
        .step_by(rows_per_run.max(1))
        .filter_map(|s| {
            let e = (s + rows_per_run.max(1)).min(n);
            let (mut ix, mut dx) = (Vec::new(), Vec::new());
            for (cols, vals) in x.rows(s..e) {
                ix.extend(
                    cols.iter()
                        .map(|c| u16::try_from(c).expect("at most 65,536 columns")),
                );
                dx.extend_from_slice(vals);
            }
            (!dx.is_empty())
                .then(|| std::sync::Arc::new(NarrowRun(ix, dx)) as std::sync::Arc<dyn SharedNonZeros>)
        })
        .collect();
    CsrMatrix::from_shared_runs(x.n_cols(), x.indptr().to_vec(), runs).expect("valid runs")
}

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

/// max |a − b| / max |b|.
pub(crate) fn max_rel_diff(a: ArrayView2<f64>, b: ArrayView2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    let scale = b
        .iter()
        .fold(0.0f64, |m, &v| m.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}
