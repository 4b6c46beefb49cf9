//! Initial factors of online iNMF (docs/algorithms.md §3, "Initialisation").

use ndarray::Array2;
use rand::Rng;

use crate::error::LearnerError;
use crate::sparse::CsrMatrix;

/// W (genes × K): i.i.d. Uniform(0, 2), each column scaled to unit L2 norm.
pub fn random_w<R: Rng + ?Sized>(n_genes: usize, k: usize, rng: &mut R) -> Array2<f64> {
    let mut w: Array2<f64> = Array2::from_shape_simple_fn((n_genes, k), || rng.random_range(0.0..2.0));
    for mut col in w.columns_mut() {
        let norm = col.dot(&col).sqrt();
        if norm > 0.0 {
            col /= norm;
        }
    }
    w
}

/// V_i (genes × K) from K chosen cells of dataset i (rows of `cells`,
/// preprocessed): column j is cell j's vector scaled to unit L2 norm.
///
/// All-zero cells must have been skipped by the caller (the anchor does not
/// and produces NaN); one here is an error.
pub fn v_from_cells(cells: &CsrMatrix) -> Result<Array2<f64>, LearnerError> {
    let mut v = Array2::zeros((cells.n_cols(), cells.n_rows()));
    for j in 0..cells.n_rows() {
        let (cols, vals) = cells.row(j);
        let norm = vals.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return Err(LearnerError::InvalidData(format!(
                "initial cell {j} for V is all zeros or not finite"
            )));
        }
        for (g, &x) in cols.iter().zip(vals) {
            v[[g as usize, j]] = f64::from(x) / norm;
        }
    }
    Ok(v)
}

/// Candidate cells for V's initialisation, in random order without
/// repetition (a lazy Fisher–Yates over `0..n_cells`). The caller takes
/// candidates until it has K non-zero cells.
pub fn shuffled_cells<R: Rng + ?Sized>(n_cells: usize, rng: &mut R) -> impl Iterator<Item = usize> + '_ {
    let mut swapped = std::collections::HashMap::<usize, usize>::new();
    (0..n_cells).map(move |i| {
        let j = rng.random_range(i..n_cells);
        let at_j = *swapped.get(&j).unwrap_or(&j);
        let at_i = *swapped.get(&i).unwrap_or(&i);
        swapped.insert(j, at_i);
        at_j
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn w_columns_have_unit_norm_and_are_seeded() {
        let w = random_w(50, 4, &mut ChaCha8Rng::seed_from_u64(1));
        for c in w.columns() {
            assert!((c.dot(&c) - 1.0).abs() < 1e-12);
            assert!(c.iter().all(|&x| x >= 0.0));
        }
        assert_eq!(w, random_w(50, 4, &mut ChaCha8Rng::seed_from_u64(1)));
    }

    #[test]
    fn shuffled_cells_is_a_permutation() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut p: Vec<usize> = shuffled_cells(100, &mut rng).collect();
        p.sort();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn v_from_cells_normalizes_and_rejects_zero_cells() {
        let cells = CsrMatrix::from_dense(2, 3, &[3.0, 4.0, 0.0, 0.0, 0.0, 2.0]);
        let v = v_from_cells(&cells).unwrap();
        assert!((v[[0, 0]] - 0.6).abs() < 1e-7 && (v[[2, 1]] - 1.0).abs() < 1e-12);
        let zero = CsrMatrix::from_dense(1, 3, &[0.0, 0.0, 0.0]);
        assert!(v_from_cells(&zero).is_err());
    }
}
