//! The iNMF objective (docs/algorithms.md §1), evaluated from sparse data
//! without ever forming the dense product (W+V)H:
//!
//! ‖X − (W+V)H‖² = ‖X‖² − 2⟨X, (W+V)H⟩ + tr((W+V)ᵀ(W+V) · HᵀH),
//! λ‖VH‖² = λ tr(VᵀV · HᵀH),
//!
//! with H stored cells × K and ⟨X, (W+V)H⟩ = Σ_c r_c · h_c where
//! R = X·(W+V) is the right-hand side the H solve already computed.

use ndarray::{Array2, ArrayView2, Zip};

use crate::kernels::double::{gram_of_rows, project};
use crate::sparse::CsrMatrix;

/// The parts of an objective; [`ObjectiveParts::total`] is F.
///
/// For iNMF (§1): residual = Σ ‖X_i − (W+V_i)H_i‖², penalty = λ Σ ‖V_i H_i‖².
/// The batch solvers of §4–7 use the same three slots for their own terms:
/// `residual` is the data-fit term (a squared Frobenius residual, or the
/// KL divergence D(X‖WH) for the KL solvers), `penalty` the λ (or α)
/// regularizer and `coupling` the γ term of the paired solvers (§4.4, §4.6);
/// every solver documents which is which.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ObjectiveParts {
    /// Data-fit term: Σ ‖X_i − (W+V_i)H_i‖² (or the KL divergence).
    pub residual: f64,
    /// Regularizer: λ Σ ‖V_i H_i‖² (or the solver's λ / α term).
    pub penalty: f64,
    /// Coupling of paired datasets: γ‖H_1 − H_2‖² or γ D(H_1‖H_2); 0 elsewhere.
    pub coupling: f64,
}

impl ObjectiveParts {
    /// F = residual + penalty + coupling.
    pub fn total(&self) -> f64 {
        self.residual + self.penalty + self.coupling
    }
}

impl std::ops::AddAssign for ObjectiveParts {
    fn add_assign(&mut self, o: Self) {
        self.residual += o.residual;
        self.penalty += o.penalty;
        self.coupling += o.coupling;
    }
}

/// tr(A·B) for square matrices of the same size = Σ_jk A_jk B_kj.
pub fn trace_of_product(a: ArrayView2<f64>, b: ArrayView2<f64>) -> f64 {
    let mut s = 0.0;
    Zip::from(a).and(b.t()).for_each(|&x, &y| s += x * y);
    s
}

/// Objective of one block of cells from pieces the H solve already has.
///
/// - `x_norm_sq` = ‖X‖² of the block,
/// - `r` = X·(W+V) (cells × K), `h` = H (cells × K),
/// - `wv_gram` = (W+V)ᵀ(W+V), `v_gram` = VᵀV (K × K), `lambda` = λ.
///
/// residual = ‖X‖² − 2 Σ_c r_c·h_c + tr(wv_gram · HᵀH); penalty = λ tr(v_gram · HᵀH).
pub(crate) fn block_objective(
    x_norm_sq: f64,
    r: ArrayView2<f64>,
    h: ArrayView2<f64>,
    wv_gram: ArrayView2<f64>,
    v_gram: ArrayView2<f64>,
    lambda: f64,
) -> ObjectiveParts {
    block_objective_with_gram(x_norm_sq, r, h, gram_of_rows(h).view(), wv_gram, v_gram, lambda)
}

/// [`block_objective`] with HᵀH already computed (`hth`, K × K), for
/// callers that need it anyway (the online step's A_i update).
pub(crate) fn block_objective_with_gram(
    x_norm_sq: f64,
    r: ArrayView2<f64>,
    h: ArrayView2<f64>,
    hth: ArrayView2<f64>,
    wv_gram: ArrayView2<f64>,
    v_gram: ArrayView2<f64>,
    lambda: f64,
) -> ObjectiveParts {
    let mut cross = 0.0;
    Zip::from(r).and(h).for_each(|&a, &b| cross += a * b);
    objective_from_sums(x_norm_sq, cross, hth, wv_gram, v_gram, lambda)
}

/// The objective of a block from its sums: `cross` = Σ_c r_c·h_c and
/// `hth` = HᵀH (with ‖X‖², the Grams and λ as in [`block_objective`]):
/// residual = ‖X‖² − 2·cross + tr(wv_gram · HᵀH) (at least 0, against
/// rounding), penalty = λ tr(v_gram · HᵀH).
pub(crate) fn objective_from_sums(
    x_norm_sq: f64,
    cross: f64,
    hth: ArrayView2<f64>,
    wv_gram: ArrayView2<f64>,
    v_gram: ArrayView2<f64>,
    lambda: f64,
) -> ObjectiveParts {
    ObjectiveParts {
        residual: (x_norm_sq - 2.0 * cross + trace_of_product(wv_gram, hth)).max(0.0),
        penalty: lambda * trace_of_product(v_gram, hth),
        coupling: 0.0,
    }
}

/// F for one dataset with everything in memory (X cells × genes, W and V
/// genes × K, H cells × K). Used by batch solvers and tests.
pub fn dataset_objective(
    x: &CsrMatrix,
    w: ArrayView2<f64>,
    v: ArrayView2<f64>,
    h: ArrayView2<f64>,
    lambda: f64,
) -> ObjectiveParts {
    let wv: Array2<f64> = &w + &v;
    let r = project(x, wv.view());
    block_objective(
        x.frobenius_sq(),
        r.view(),
        h,
        wv.t().dot(&wv).view(),
        v.t().dot(&v).view(),
        lambda,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn sparse_formula_matches_dense_definition() {
        let x = CsrMatrix::from_dense(
            3,
            4,
            &[1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 3.0, 0.0, 1.0],
        );
        let w = array![[0.1, 0.2], [0.3, 0.0], [0.5, 0.6], [0.0, 0.8]];
        let v = array![[0.0, 0.1], [0.2, 0.0], [0.1, 0.1], [0.3, 0.0]];
        let h = array![[1.0, 2.0], [0.0, 0.5], [3.0, 0.0]];
        let got = dataset_objective(&x, w.view(), v.view(), h.view(), 5.0);
        let dense = x.to_dense();
        let fit = h.dot(&(&w + &v).t());
        let residual: f64 = (&dense - &fit).iter().map(|e| e * e).sum();
        let penalty: f64 = 5.0 * h.dot(&v.t()).iter().map(|e| e * e).sum::<f64>();
        assert!((got.residual - residual).abs() < 1e-10 * residual.max(1.0));
        assert!((got.penalty - penalty).abs() < 1e-10 * penalty.max(1.0));
    }
}
