//! Validation and initialisation shared by the batch solvers of §4.2–7
//! (the three validation layers of scikit-learn's `_nmf.py`: parameter
//! ranges live in each `check()`, the data-dependent rules here).
//!
//! Default initialisation, all from `ChaCha8Rng::seed_from_u64(seed)`:
//! - iNMF by HALS: W = [`random_w`], then V_i from K distinct random
//!   non-zero cells of dataset i ([`v_from_cells`]), exactly as ANLS (§3
//!   "Initialisation"), so both start from the same W, V_i for a seed; H_i = 0
//!   (the first H step is exact, so H needs no start).
//! - iNMF by multiplicative updates: a multiplicative update can never move
//!   an exact zero, and a cell's vector is mostly zeros, so V_i cannot come
//!   from cells. As rliger 1.x's `optimizeALS`, every factor is random and
//!   positive: W = [`random_w`], then each V_i = [`random_w`] (Uniform(0, 2),
//!   unit columns), then each H_i ~ Uniform(0.01, 1) (the first H update is
//!   invariant to H's scale).
//! - plain NMF: W = [`random_w`], then H ~ Uniform(0.01, 1).

use ndarray::{Array2, ArrayView2};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use inmf_learner::{random_w, shuffled_cells, v_from_cells, CsrMatrix, LearnerError};

use crate::report::{InmfFactors, NmfFactors};

/// Range of the default initial H entries.
const H_INIT: std::ops::Range<f64> = 0.01..1.0;

/// Checks one non-negative data matrix (`what` names it in messages).
pub(crate) fn validate_matrix(x: &CsrMatrix, k: usize, what: &str) -> Result<(), LearnerError> {
    if k > x.n_cols() {
        return Err(LearnerError::InvalidParameter(format!(
            "K = {k} exceeds the number of genes ({}) of {what}",
            x.n_cols()
        )));
    }
    if k > x.n_rows() {
        return Err(LearnerError::InvalidParameter(format!(
            "K = {k} exceeds the number of cells of {what} ({})",
            x.n_rows()
        )));
    }
    if let Some(pos) = x.data().iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
        let cell = x.indptr().partition_point(|&p| p <= pos) - 1;
        return Err(LearnerError::InvalidData(format!(
            "{what}, cell {cell}, gene {}: value {} is negative or not finite",
            x.indices().get(pos),
            x.data()[pos]
        )));
    }
    Ok(())
}

/// Checks a list of datasets sharing genes; returns the number of genes.
pub(crate) fn validate_datasets(datasets: &[CsrMatrix], k: usize) -> Result<usize, LearnerError> {
    let first = datasets
        .first()
        .ok_or_else(|| LearnerError::InvalidData("no datasets were given".into()))?;
    let genes = first.n_cols();
    for (i, x) in datasets.iter().enumerate() {
        if x.n_cols() != genes {
            return Err(LearnerError::InvalidData(format!(
                "dataset {i} has {} genes but dataset 0 has {genes}",
                x.n_cols()
            ))
            .in_dataset(i));
        }
        validate_matrix(x, k, &format!("dataset {i}")).map_err(|e| e.in_dataset(i))?;
    }
    Ok(genes)
}

/// Paired (coupled) solvers: `count` datasets (or at least 2 if `None`)
/// with the same cells in the same order.
pub(crate) fn validate_paired(
    datasets: &[CsrMatrix],
    count: Option<usize>,
    method: &str,
) -> Result<(), LearnerError> {
    match count {
        Some(c) if datasets.len() != c => {
            return Err(LearnerError::InvalidData(format!(
                "{method} couples exactly {c} paired datasets (the same cells measured twice), got {}",
                datasets.len()
            )))
        }
        None if datasets.len() < 2 => {
            return Err(LearnerError::InvalidData(format!(
                "{method} couples paired datasets and needs at least 2, got {}",
                datasets.len()
            )))
        }
        _ => {}
    }
    let n0 = datasets[0].n_rows();
    for (i, x) in datasets.iter().enumerate().skip(1) {
        if x.n_rows() != n0 {
            return Err(LearnerError::InvalidData(format!(
                "{method} needs paired datasets (the same cells, in the same order), but dataset 0 has \
                 {n0} cells and dataset {i} has {}; use the uncoupled method for unpaired data",
                x.n_rows()
            ))
            .in_dataset(i));
        }
    }
    Ok(())
}

/// Entries of a factor must be finite and ≥ 0 and its shape `rows × k`.
pub(crate) fn check_factor(
    a: ArrayView2<f64>,
    name: &str,
    rows: usize,
    k: usize,
) -> Result<(), LearnerError> {
    if a.dim() != (rows, k) {
        return Err(LearnerError::InvalidData(format!(
            "init: {name} is {} × {}, expected {rows} × {k}",
            a.nrows(),
            a.ncols()
        )));
    }
    if let Some(((r, c), v)) = a.indexed_iter().find(|(_, v)| !(v.is_finite() && **v >= 0.0)) {
        return Err(LearnerError::InvalidData(format!(
            "init: {name}[{r}, {c}] = {v} is negative or not finite"
        )));
    }
    Ok(())
}

/// Row-major copy if needed (the kernels write factors in place by rows).
pub(crate) fn standard(a: Array2<f64>) -> Array2<f64> {
    if a.is_standard_layout() {
        a
    } else {
        a.as_standard_layout().into_owned()
    }
}

fn is_nonzero_cell(x: &CsrMatrix, c: usize) -> bool {
    x.row(c).1.iter().any(|&v| v != 0.0)
}

/// W and V_i as ANLS draws them (module docs).
pub(crate) fn default_wv(
    datasets: &[CsrMatrix],
    genes: usize,
    k: usize,
    rng: &mut ChaCha8Rng,
) -> Result<(Array2<f64>, Vec<Array2<f64>>), LearnerError> {
    for (i, x) in datasets.iter().enumerate() {
        let nonzero = (0..x.n_rows()).filter(|&c| is_nonzero_cell(x, c)).count();
        if nonzero < k {
            return Err(LearnerError::InvalidData(format!(
                "dataset {i} has {nonzero} non-zero cells, fewer than K = {k}: V_{i} cannot be initialised"
            )));
        }
    }
    let w = random_w(genes, k, rng);
    let mut v = Vec::with_capacity(datasets.len());
    for x in datasets {
        let mut cells = CsrMatrix::empty(genes);
        for c in shuffled_cells(x.n_rows(), rng)
            .filter(|&c| is_nonzero_cell(x, c))
            .take(k)
        {
            let (cols, vals) = x.row(c);
            cells.push_row_cols(cols, vals);
        }
        v.push(v_from_cells(&cells)?);
    }
    Ok((w, v))
}

/// H (n × K) with i.i.d. Uniform(0.01, 1) entries.
pub(crate) fn random_h(n: usize, k: usize, rng: &mut ChaCha8Rng) -> Array2<f64> {
    Array2::from_shape_simple_fn((n, k), || rng.random_range(H_INIT))
}

/// Checks a user's iNMF start. `need_h`: the solver needs H_i (MU solvers);
/// otherwise an empty `h` is allowed and means "start H from zero".
pub(crate) fn check_inmf_init(
    f: &InmfFactors,
    datasets: &[CsrMatrix],
    genes: usize,
    k: usize,
    need_h: bool,
) -> Result<(), LearnerError> {
    check_factor(f.w.view(), "W", genes, k)?;
    if f.v.len() != datasets.len() {
        return Err(LearnerError::InvalidData(format!(
            "init: {} V matrices for {} datasets",
            f.v.len(),
            datasets.len()
        )));
    }
    for (i, v) in f.v.iter().enumerate() {
        check_factor(v.view(), &format!("V_{i} (dataset {i})"), genes, k)?;
    }
    if f.h.is_empty() && !need_h {
        return Ok(());
    }
    if f.h.len() != datasets.len() {
        return Err(LearnerError::InvalidData(format!(
            "init: {} H matrices for {} datasets (this solver needs one per dataset)",
            f.h.len(),
            datasets.len()
        )));
    }
    for (i, (h, x)) in f.h.iter().zip(datasets).enumerate() {
        check_factor(h.view(), &format!("H_{i} (dataset {i})"), x.n_rows(), k)?;
    }
    Ok(())
}

/// The iNMF start: the user's (checked) or the default one (module docs).
/// `multiplicative`: positive random W, V_i, H_i (and a user's start must
/// include H_i); otherwise W, V_i as ANLS and H_i = 0 unless given.
pub(crate) fn inmf_start(
    datasets: &[CsrMatrix],
    genes: usize,
    k: usize,
    seed: u64,
    init: Option<InmfFactors>,
    multiplicative: bool,
) -> Result<InmfFactors, LearnerError> {
    use rand::SeedableRng;
    match init {
        Some(f) => {
            check_inmf_init(&f, datasets, genes, k, multiplicative)?;
            let h = if f.h.is_empty() {
                datasets.iter().map(|x| Array2::zeros((x.n_rows(), k))).collect()
            } else {
                f.h.into_iter().map(standard).collect()
            };
            Ok(InmfFactors {
                w: standard(f.w),
                v: f.v.into_iter().map(standard).collect(),
                h,
            })
        }
        None if multiplicative => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let w = random_w(genes, k, &mut rng);
            let v = datasets.iter().map(|_| random_w(genes, k, &mut rng)).collect();
            let h = datasets
                .iter()
                .map(|x| random_h(x.n_rows(), k, &mut rng))
                .collect();
            Ok(InmfFactors { w, v, h })
        }
        None => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (w, v) = default_wv(datasets, genes, k, &mut rng)?;
            let h = datasets.iter().map(|x| Array2::zeros((x.n_rows(), k))).collect();
            Ok(InmfFactors { w, v, h })
        }
    }
}

/// The plain-NMF start: the user's (checked) or W = random_w, H ~ U(0.01, 1).
pub(crate) fn nmf_start(
    x: &CsrMatrix,
    k: usize,
    seed: u64,
    init: Option<NmfFactors>,
) -> Result<NmfFactors, LearnerError> {
    use rand::SeedableRng;
    match init {
        Some(f) => {
            check_factor(f.w.view(), "W", x.n_cols(), k)?;
            check_factor(f.h.view(), "H", x.n_rows(), k)?;
            Ok(NmfFactors {
                w: standard(f.w),
                h: standard(f.h),
            })
        }
        None => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let w = random_w(x.n_cols(), k, &mut rng);
            let h = random_h(x.n_rows(), k, &mut rng);
            Ok(NmfFactors { w, h })
        }
    }
}

/// Shared parameter checks.
pub(crate) fn check_k(k: usize) -> Result<(), LearnerError> {
    if k == 0 {
        return Err(LearnerError::InvalidParameter(
            "K (number of factors) must be at least 1".into(),
        ));
    }
    Ok(())
}

/// `name` must be finite and ≥ 0.
pub(crate) fn check_nonneg(value: f64, name: &str) -> Result<(), LearnerError> {
    if !(value.is_finite() && value >= 0.0) {
        return Err(LearnerError::InvalidParameter(format!(
            "{name} must be finite and ≥ 0, got {value}"
        )));
    }
    Ok(())
}

/// `name` must be finite and > 0.
pub(crate) fn check_positive(value: f64, name: &str) -> Result<(), LearnerError> {
    if !(value.is_finite() && value > 0.0) {
        return Err(LearnerError::InvalidParameter(format!(
            "{name} must be finite and > 0, got {value}"
        )));
    }
    Ok(())
}

/// max_iter ≥ 1 and tol finite ≥ 0.
pub(crate) fn check_loop(max_iter: usize, tol: f64) -> Result<(), LearnerError> {
    if max_iter == 0 {
        return Err(LearnerError::InvalidParameter(
            "max_iter must be at least 1".into(),
        ));
    }
    check_nonneg(tol, "tol")
}

/// ε floor must be finite and > 0 (it keeps every denominator positive).
pub(crate) fn check_eps(eps: f64) -> Result<(), LearnerError> {
    if !(eps.is_finite() && eps > 0.0 && eps < 1.0) {
        return Err(LearnerError::InvalidParameter(format!(
            "eps (the denominator floor) must be in (0, 1), got {eps}"
        )));
    }
    Ok(())
}

/// Default ε floor for f64 (docs/algorithms.md, notation).
pub const DEFAULT_EPS: f64 = 1e-16;

/// Concatenates datasets (same genes) into one cells × genes matrix, for the
/// plain-NMF solvers that factorize all cells together.
pub fn concat_rows(datasets: &[CsrMatrix]) -> Result<CsrMatrix, LearnerError> {
    let first = datasets
        .first()
        .ok_or_else(|| LearnerError::InvalidData("no datasets were given".into()))?;
    let mut out = CsrMatrix::empty(first.n_cols());
    for (i, x) in datasets.iter().enumerate() {
        if x.n_cols() != first.n_cols() {
            return Err(LearnerError::InvalidData(format!(
                "dataset {i} has {} genes but dataset 0 has {}",
                x.n_cols(),
                first.n_cols()
            )));
        }
        out.append(x);
    }
    Ok(out)
}
