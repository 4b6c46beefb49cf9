//! Non-negative least squares in normal-equation form (docs/algorithms.md §2).
//!
//! Every H, V and W step of ANLS and every H solve of online iNMF is a set
//! of independent problems sharing one K × K Gram matrix G:
//!
//!   for each row r of R (n × K):  min_{h ≥ 0} ½ hᵀGh − rᵀh,
//!
//! which is NNLS min_{h≥0} ‖Ch − d‖ with G = CᵀC and r = Cᵀd, C never
//! formed. [`nnls_bpp_into`] solves them by block principal pivoting (`bpp.rs`);
//! [`kkt_residual`] measures how well a candidate satisfies the optimality
//! conditions, for tests anywhere in the crate.

mod bpp;
mod cholesky;
mod complement;
#[cfg(test)]
mod tests;

use ndarray::ArrayView2;

#[cfg(test)]
pub(crate) use bpp::nnls_bpp;
pub use bpp::{nnls_bpp_into, nnls_bpp_warm_into, BppStats};
pub(crate) use bpp::{NnlsWorkspace, PreparedGram, Start};

/// Largest relative violation of the KKT conditions of
/// min_{h≥0} ½hᵀGh − rᵀh over all rows of `h` (n × K) and `rhs` (n × K),
/// `gram` G (K × K).
///
/// For each row, with y = Gh − r, s = max_i (|r_i| + Σ_j |G_ij|·|h_j|) (the
/// magnitude of the terms whose difference is y, so rounding in y is
/// ≈ ε·K·s) and h_max = max_i |h_i|, the violation is the largest of
/// - primal: max(0, −h_i) / h_max,
/// - dual: max(0, −y_i) / s,
/// - complementarity: |h_i·y_i| / (h_max·s),
///
/// with a term whose denominator is 0 counted as 0 (then its numerator is 0
/// too). Returns +∞ if anything is non-finite. An exact solution gives 0;
/// [`nnls_bpp_into`] reaches rounding level (≈ 1e-16 on the
/// test problems, κ(G) up to 1e8).
#[track_caller]
pub fn kkt_residual(gram: ArrayView2<f64>, rhs: ArrayView2<f64>, h: ArrayView2<f64>) -> f64 {
    let (n, k) = rhs.dim();
    assert_eq!(gram.dim(), (k, k), "gram must be K × K");
    assert_eq!(h.dim(), (n, k), "h must have the shape of rhs");
    if gram.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let ratio = |num: f64, den: f64| if den > 0.0 { num / den } else { 0.0 };
    let mut worst = 0.0f64;
    for (r, hr) in rhs.rows().into_iter().zip(h.rows()) {
        if r.iter().chain(hr.iter()).any(|v| !v.is_finite()) {
            return f64::INFINITY;
        }
        let hmax = hr.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut s = 0.0f64;
        for i in 0..k {
            let mag = r[i].abs()
                + gram
                    .row(i)
                    .iter()
                    .zip(hr.iter())
                    .map(|(g, h)| g.abs() * h.abs())
                    .sum::<f64>();
            s = s.max(mag);
        }
        for i in 0..k {
            let y = gram.row(i).dot(&hr) - r[i];
            let v = ratio((-hr[i]).max(0.0), hmax)
                .max(ratio((-y).max(0.0), s))
                .max(ratio((hr[i] * y).abs(), hmax * s));
            worst = worst.max(v);
        }
    }
    if worst.is_finite() {
        worst
    } else {
        f64::INFINITY
    }
}
