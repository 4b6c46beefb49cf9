//! Agreement between two labellings of the same cells: ARI, NMI, purity.
//!
//! All three read the contingency table `n_ij` = number of cells in cluster
//! `i` with label `j`, with row sums `a_i`, column sums `b_j` and total `n`.
//! Cells whose cluster or label is [`MISSING`] are not considered (and do
//! not count in `n`).

use crate::error::{AnalysisError, Result};

/// Code of a missing label (e.g. a cell without a `cell_type`).
pub const MISSING: u32 = u32::MAX;

/// The contingency table of two labellings (dense: clusters × labels).
#[derive(Clone, Debug, PartialEq)]
pub struct Contingency {
    rows: usize,
    cols: usize,
    table: Vec<u64>,
    /// Cells considered (both codes present).
    pub n: u64,
}

impl Contingency {
    /// Counts `(a[c], b[c])` pairs; cells with a [`MISSING`] code are skipped.
    pub fn new(a: &[u32], b: &[u32]) -> Result<Self> {
        if a.len() != b.len() {
            return Err(AnalysisError::InvalidData(format!(
                "the two labellings have {} and {} cells; they must label the same cells",
                a.len(),
                b.len()
            )));
        }
        let max = |v: &[u32]| {
            v.iter()
                .filter(|&&x| x != MISSING)
                .max()
                .map_or(0, |&m| m as usize + 1)
        };
        let (rows, cols) = (max(a), max(b));
        if rows.saturating_mul(cols) > 50_000_000 {
            return Err(AnalysisError::InvalidData(format!(
                "{rows} clusters × {cols} labels is too large a table; are the labels per-cell identifiers?"
            )));
        }
        let mut table = vec![0u64; rows * cols];
        let mut n = 0;
        for (&x, &y) in a.iter().zip(b) {
            if x != MISSING && y != MISSING {
                table[x as usize * cols + y as usize] += 1;
                n += 1;
            }
        }
        Ok(Self { rows, cols, table, n })
    }

    /// `n_ij`.
    pub fn get(&self, i: usize, j: usize) -> u64 {
        self.table[i * self.cols + j]
    }

    /// Row sums `a_i`.
    pub fn row_sums(&self) -> Vec<u64> {
        (0..self.rows)
            .map(|i| (0..self.cols).map(|j| self.get(i, j)).sum())
            .collect()
    }

    /// Column sums `b_j`.
    pub fn col_sums(&self) -> Vec<u64> {
        (0..self.cols)
            .map(|j| (0..self.rows).map(|i| self.get(i, j)).sum())
            .collect()
    }

    /// Number of rows (clusters) and columns (labels).
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
}

fn choose2(x: u64) -> f64 {
    let x = x as f64;
    x * (x - 1.0) / 2.0
}

/// Adjusted Rand index (Hubert & Arabie 1985; rliger's `calcARI`, copied
/// from mclust, and scikit-learn's `adjusted_rand_score` are the same):
/// `ARI = (Σ_ij C(n_ij,2) − E) / (½[Σ_i C(a_i,2) + Σ_j C(b_j,2)] − E)`,
/// `E = Σ_i C(a_i,2)·Σ_j C(b_j,2) / C(n,2)`. 1 for identical partitions,
/// ≈ 0 for independent ones; 1 when both partitions are trivial in the same
/// way (the denominator vanishes), as in scikit-learn.
pub fn adjusted_rand_index(clusters: &[u32], labels: &[u32]) -> Result<f64> {
    let t = Contingency::new(clusters, labels)?;
    let index: f64 = t.table.iter().map(|&x| choose2(x)).sum();
    let sa: f64 = t.row_sums().into_iter().map(choose2).sum();
    let sb: f64 = t.col_sums().into_iter().map(choose2).sum();
    let total = choose2(t.n);
    if total == 0.0 {
        return Ok(1.0);
    }
    let expected = sa * sb / total;
    let max = 0.5 * (sa + sb);
    if (max - expected).abs() < 1e-12 * max.max(1.0) {
        return Ok(1.0);
    }
    Ok((index - expected) / (max - expected))
}

/// Mutual information `I(U;V) = Σ_ij (n_ij/n) ln(n·n_ij/(a_i b_j))` and
/// the entropies `H(U) = −Σ_i (a_i/n) ln(a_i/n)`, `H(V)` of a table.
fn information(t: &Contingency) -> (f64, f64, f64) {
    let n = t.n as f64;
    let (a, b) = (t.row_sums(), t.col_sums());
    let entropy = |s: &[u64]| -> f64 {
        s.iter()
            .filter(|&&x| x > 0)
            .map(|&x| {
                let p = x as f64 / n;
                -p * p.ln()
            })
            .sum()
    };
    let mut mi = 0.0;
    for (i, &ai) in a.iter().enumerate() {
        for (j, &bj) in b.iter().enumerate() {
            let x = t.get(i, j);
            if x > 0 {
                let x = x as f64;
                mi += x / n * (n * x / (ai as f64 * bj as f64)).ln();
            }
        }
    }
    (mi, entropy(&a), entropy(&b))
}

/// Normalized mutual information with the arithmetic-mean normalization
/// (scikit-learn's default, `normalized_mutual_info_score`):
/// `NMI = I(U;V) / ((H(U) + H(V))/2)`, `I = Σ_ij (n_ij/n) ln(n·n_ij/(a_i b_j))`,
/// `H(U) = −Σ_i (a_i/n) ln(a_i/n)`. 1 when both
/// labellings have a single class each.
pub fn normalized_mutual_info(clusters: &[u32], labels: &[u32]) -> Result<f64> {
    let t = Contingency::new(clusters, labels)?;
    if t.n == 0 {
        return Ok(1.0);
    }
    let (mi, ha, hb) = information(&t);
    let denom = 0.5 * (ha + hb);
    if denom <= 0.0 {
        return Ok(1.0);
    }
    Ok((mi / denom).clamp(0.0, 1.0))
}

/// Normalized mutual information as rliger's `calcNMI` defines it, with the
/// geometric-mean normalization: `NMI = I(U;V) / √(H(U)·H(V))` (rliger
/// uses log₂, which cancels). Never below [`normalized_mutual_info`]. 1 when
/// both labellings have a single class each; 0 when only one of them does
/// (rliger divides by zero there).
pub fn normalized_mutual_info_rliger(clusters: &[u32], labels: &[u32]) -> Result<f64> {
    let t = Contingency::new(clusters, labels)?;
    if t.n == 0 {
        return Ok(1.0);
    }
    let (mi, ha, hb) = information(&t);
    if ha <= 0.0 && hb <= 0.0 {
        return Ok(1.0);
    }
    let denom = (ha * hb).sqrt();
    if denom <= 0.0 {
        return Ok(0.0);
    }
    Ok((mi / denom).clamp(0.0, 1.0))
}

/// Purity (rliger's `calcPurity`): `Σ_i max_j n_ij / n`, the fraction of
/// cells whose label is the majority label of their cluster. `n` counts only
/// the cells considered (both codes present); rliger 2.x divides by all
/// cells, labelled or not, so the two agree when every cell has a label.
pub fn purity(clusters: &[u32], labels: &[u32]) -> Result<f64> {
    let t = Contingency::new(clusters, labels)?;
    if t.n == 0 {
        return Err(AnalysisError::InvalidData(
            "purity: no cell has both a cluster and a label".into(),
        ));
    }
    let s: u64 = (0..t.rows)
        .map(|i| (0..t.cols).map(|j| t.get(i, j)).max().unwrap_or(0))
        .sum();
    Ok(s as f64 / t.n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Hand-computed table (clusters × labels):
    //        l0 l1 l2
    //   c0 [  5  1  0 ]  a = 6
    //   c1 [  1  4  1 ]  a = 6
    //   c2 [  0  0  3 ]  a = 3
    //   b  =  6  5  4    n = 15
    fn example() -> (Vec<u32>, Vec<u32>) {
        let table = [[5, 1, 0], [1, 4, 1], [0, 0, 3]];
        let (mut c, mut l) = (Vec::new(), Vec::new());
        for (i, row) in table.iter().enumerate() {
            for (j, &x) in row.iter().enumerate() {
                for _ in 0..x {
                    c.push(i as u32);
                    l.push(j as u32);
                }
            }
        }
        (c, l)
    }

    #[test]
    fn ari_matches_hand_computation() {
        let (c, l) = example();
        // Σ C(n_ij,2) = 10+0+0+0+6+0+0+0+3 = 19; Σ C(a,2) = 15+15+3 = 33;
        // Σ C(b,2) = 15+10+6 = 31; C(15,2) = 105; E = 33·31/105 = 9.742857;
        // max = 32; ARI = (19 − 9.742857)/(32 − 9.742857) = 0.415918.
        let ari = adjusted_rand_index(&c, &l).unwrap();
        assert!((ari - 0.4159178).abs() < 1e-6, "{ari}");
        assert_eq!(adjusted_rand_index(&c, &c).unwrap(), 1.0);
        // Relabelling does not matter.
        let perm: Vec<u32> = c.iter().map(|&x| (x + 1) % 3).collect();
        assert!((adjusted_rand_index(&perm, &l).unwrap() - ari).abs() < 1e-12);
    }

    #[test]
    fn nmi_matches_hand_computation() {
        let (c, l) = example();
        let n = 15.0f64;
        let t = [[5.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 0.0, 3.0]];
        let a = [6.0, 6.0, 3.0];
        let b = [6.0, 5.0, 4.0];
        let mut mi = 0.0;
        for i in 0..3 {
            for j in 0..3 {
                let x: f64 = t[i][j];
                if x > 0.0 {
                    mi += x / n * (n * x / (a[i] * b[j])).ln();
                }
            }
        }
        let h = |s: &[f64]| -> f64 { s.iter().map(|x| -(x / n) * (x / n).ln()).sum() };
        let expect = mi / ((h(&a) + h(&b)) / 2.0);
        let nmi = normalized_mutual_info(&c, &l).unwrap();
        assert!((nmi - expect).abs() < 1e-12);
        // The same formula evaluated independently (Python): 0.5214117.
        assert!((nmi - 0.5214117).abs() < 1e-6, "{nmi}");
        assert!((normalized_mutual_info(&c, &c).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn purity_counts_only_labelled_cells() {
        let (c, mut l) = example();
        // (5 + 4 + 3) / 15
        assert!((purity(&c, &l).unwrap() - 12.0 / 15.0).abs() < 1e-12);
        // Two cells lose their label: they are not considered.
        l[0] = MISSING; // a (c0, l0) cell
        l[6] = MISSING; // the (c1, l0) cell
        assert_eq!(c[6], 1);
        assert!((purity(&c, &l).unwrap() - 11.0 / 13.0).abs() < 1e-12);
        assert!(purity(&[MISSING], &[0]).is_err());
        assert!(adjusted_rand_index(&[0, 1], &[0]).is_err());
    }

    /// Random labellings of `n` cells with `k` clusters and `l` labels,
    /// some labels missing.
    fn random_pair(n: usize, k: u64, l: u64, seed: u64) -> (Vec<u32>, Vec<u32>) {
        let mut r = crate::rng::Fast::new(seed, &[]);
        let c: Vec<u32> = (0..n).map(|_| r.below(k as usize) as u32).collect();
        let lab: Vec<u32> = c
            .iter()
            .map(|&x| {
                if r.unit() < 0.05 {
                    MISSING
                } else if r.unit() < 0.7 {
                    x % l as u32
                } else {
                    r.below(l as usize) as u32
                }
            })
            .collect();
        (c, lab)
    }

    /// ARI by counting every pair of cells (mclust's form, which rliger's
    /// calcARI copies): a = pairs together in both, b = together in the
    /// clusters only, c = in the labels only, d = in neither.
    fn ari_by_pairs(c: &[u32], l: &[u32]) -> f64 {
        let keep: Vec<usize> = (0..c.len())
            .filter(|&i| l[i] != MISSING && c[i] != MISSING)
            .collect();
        let (mut a, mut b, mut cc, mut d) = (0f64, 0f64, 0f64, 0f64);
        for (x, &i) in keep.iter().enumerate() {
            for &j in &keep[x + 1..] {
                match (c[i] == c[j], l[i] == l[j]) {
                    (true, true) => a += 1.0,
                    (true, false) => b += 1.0,
                    (false, true) => cc += 1.0,
                    (false, false) => d += 1.0,
                }
            }
        }
        let t = a + b + cc + d;
        (a - (a + b) * (a + cc) / t) / ((a + b + a + cc) / 2.0 - (a + b) * (a + cc) / t)
    }

    /// Entropies and mutual information the way rliger's calcNMI computes
    /// them (log₂, `I = H(X) − H(X|Y)`), from hash maps of counts.
    fn nmi_by_rliger_steps(c: &[u32], l: &[u32]) -> (f64, f64) {
        use std::collections::HashMap;
        let keep: Vec<usize> = (0..c.len()).filter(|&i| l[i] != MISSING).collect();
        let n = keep.len() as f64;
        let count = |v: &mut dyn Iterator<Item = u32>| {
            let mut m: HashMap<u32, f64> = HashMap::new();
            for x in v {
                *m.entry(x).or_insert(0.0) += 1.0;
            }
            m
        };
        let h = |m: &HashMap<u32, f64>| -> f64 { m.values().map(|&x| -(x / n) * (x / n).log2()).sum() };
        let hx = h(&count(&mut keep.iter().map(|&i| c[i])));
        let ly = count(&mut keep.iter().map(|&i| l[i]));
        let hy = h(&ly);
        let mut h_x_given_y = 0.0;
        for (&y, &ny) in &ly {
            let within = count(&mut keep.iter().filter(|&&i| l[i] == y).map(|&i| c[i]));
            let hy_x: f64 = within.values().map(|&x| -(x / ny) * (x / ny).log2()).sum();
            h_x_given_y += ny / n * hy_x;
        }
        let i = hx - h_x_given_y;
        (i / ((hx + hy) / 2.0), i / (hx * hy).sqrt())
    }

    #[test]
    fn ari_nmi_purity_match_slow_references() {
        for seed in 0..6 {
            let (c, l) = random_pair(300, 2 + seed % 5, 3 + seed % 3, seed);
            let ari = adjusted_rand_index(&c, &l).unwrap();
            assert!((ari - ari_by_pairs(&c, &l)).abs() < 1e-12, "seed {seed}");
            let (arith, geo) = nmi_by_rliger_steps(&c, &l);
            assert!((normalized_mutual_info(&c, &l).unwrap() - arith).abs() < 1e-12);
            let rl = normalized_mutual_info_rliger(&c, &l).unwrap();
            assert!((rl - geo).abs() < 1e-12, "seed {seed}: {rl} vs {geo}");
            assert!(rl >= normalized_mutual_info(&c, &l).unwrap() - 1e-15);
            // Purity: majority label of each cluster, over the labelled cells.
            let keep: Vec<usize> = (0..c.len()).filter(|&i| l[i] != MISSING).collect();
            let mut majority = 0;
            for k in 0..=*c.iter().max().unwrap() {
                let counts = (0..=*l.iter().filter(|&&x| x != MISSING).max().unwrap())
                    .map(|y| keep.iter().filter(|&&i| c[i] == k && l[i] == y).count());
                majority += counts.max().unwrap();
            }
            let p = purity(&c, &l).unwrap();
            assert!((p - majority as f64 / keep.len() as f64).abs() < 1e-12);
        }
        // rliger's NMI: 0 when only one side has a single class, 1 when both.
        assert_eq!(
            normalized_mutual_info_rliger(&[0, 0, 0], &[0, 1, 2]).unwrap(),
            0.0
        );
        assert_eq!(normalized_mutual_info_rliger(&[1, 1], &[0, 0]).unwrap(), 1.0);
    }
}
