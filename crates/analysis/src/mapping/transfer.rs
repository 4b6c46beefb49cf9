//! Label transfer by a k-nearest-neighbour vote.
//!
//! Rows of H are compared by direction: each is scaled to unit L2 norm
//! (`ĥ = h/‖h‖`, an all-zero row stays zero), so a cell's depth does not
//! decide its neighbours. Every query cell gets its `k` nearest reference
//! cells (exact Euclidean search on `ĥ`, ties by index), and each label
//! column is transferred by majority: the label with the most votes among
//! the neighbours that carry a label, ties to the label of the nearest
//! tied neighbour. The confidence is the winner's share of those votes,
//! `count(winner) / #labelled neighbours` (1 = unanimous); a cell with no
//! labelled neighbour gets no label and confidence 0.
//!
//! Cost: `O(n_query · n_reference · K)` distance evaluations.

use ndarray::{s, ArrayView2};
use rayon::prelude::*;

use crate::error::{AnalysisError, Result};
use crate::partition::MISSING;
use crate::points::{sq_dist, Points};

/// Each query point's `k` nearest reference points.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbors {
    /// Neighbours per query point.
    pub k: usize,
    /// Reference indices, `k` per query point, nearest first.
    pub indices: Vec<u32>,
    /// Euclidean distances matching `indices`.
    pub distances: Vec<f32>,
}

impl Neighbors {
    /// Number of query points.
    pub fn len(&self) -> usize {
        self.indices.len().checked_div(self.k).unwrap_or(0)
    }

    /// True when there is no query point.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Neighbours of query point `i`, nearest first.
    pub fn of(&self, i: usize) -> &[u32] {
        &self.indices[i * self.k..(i + 1) * self.k]
    }

    /// Distances of query point `i`'s neighbours.
    pub fn distances_of(&self, i: usize) -> &[f32] {
        &self.distances[i * self.k..(i + 1) * self.k]
    }
}

/// The rows of `h` scaled to unit L2 norm (zero rows stay zero).
pub fn unit_rows<T: Copy + Into<f64>>(h: ArrayView2<'_, T>) -> Result<Points> {
    let (n, dim) = h.dim();
    let mut data = Vec::with_capacity(n * dim);
    for (i, row) in h.outer_iter().enumerate() {
        let v: Vec<f64> = row.iter().map(|&x| x.into()).collect();
        if v.iter().any(|x| !x.is_finite()) {
            return Err(AnalysisError::InvalidData(format!(
                "row {i} of H has a value that is not finite"
            )));
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let s = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        data.extend(v.iter().map(|x| (x * s) as f32));
    }
    Points::from_vec(data, n, dim)
}

/// 4·2⁻²⁴: with `dim + 4`, the factor of the bound on the rounding error
/// of ‖q‖² + ‖r‖² − 2 q·r in f32 (twice the usual `(dim + 2)·u` bound).
const ROUNDING: f32 = 4.0 / (1u32 << 24) as f32;
/// Query rows per block of the search (one dot-product block each).
const QUERY_BLOCK: usize = 64;
/// Reference rows per block of the search.
const REFERENCE_BLOCK: usize = 2048;

/// The `k` nearest points of `reference` to every point of `query`
/// (exact; ties by index); `k` is capped at the reference's size.
///
/// The dot products of a block of 64 query rows against 2,048 reference
/// rows at a time come from one matrix product; ‖q‖² + ‖r‖² − 2 q·r then
/// bounds each squared distance within its rounding error
/// `e = 4(dim + 4)·2⁻²⁴·(‖q‖² + ‖r‖²)`, and only a candidate whose bound
/// minus e does not exceed the query row's k-th exact distance so far has
/// its exact squared distance computed (term by term, as the distances
/// reported) and enters the row's k best (distance, index) pairs. Blocks
/// of query rows run in parallel, each alone, so the result does not
/// depend on the thread count.
pub fn nearest_in(reference: &Points, query: &Points, k: usize) -> Result<Neighbors> {
    if reference.dim() != query.dim() {
        return Err(AnalysisError::InvalidData(format!(
            "the reference has {} dimensions and the query {}",
            reference.dim(),
            query.dim()
        )));
    }
    let k = k.min(reference.len());
    if k == 0 {
        return Err(AnalysisError::InvalidData(
            "the reference has no cells or k = 0".into(),
        ));
    }
    let (nq, nr, dim) = (query.len(), reference.len(), reference.dim());
    let rv = ArrayView2::from_shape((nr, dim), reference.as_slice()).expect("points are rows × dim");
    let qv = ArrayView2::from_shape((nq, dim), query.as_slice()).expect("points are rows × dim");
    let r_norm: Vec<f32> = rv.outer_iter().map(|r| r.dot(&r)).collect();
    let mut indices = vec![0u32; nq * k];
    let mut distances = vec![0f32; nq * k];
    indices
        .par_chunks_mut(k * QUERY_BLOCK)
        .zip(distances.par_chunks_mut(k * QUERY_BLOCK))
        .enumerate()
        .for_each(|(b, (idx, dst))| {
            let q0 = b * QUERY_BLOCK;
            let qb = qv.slice(s![q0..(q0 + QUERY_BLOCK).min(nq), ..]);
            let q_norm: Vec<f32> = qb.outer_iter().map(|q| q.dot(&q)).collect();
            let mut best: Vec<Vec<(f32, u32)>> = vec![Vec::with_capacity(k + 1); qb.nrows()];
            for r0 in (0..nr).step_by(REFERENCE_BLOCK) {
                let rb = rv.slice(s![r0..(r0 + REFERENCE_BLOCK).min(nr), ..]);
                let dots = qb.dot(&rb.t());
                for (i, row) in dots.outer_iter().enumerate() {
                    let list = &mut best[i];
                    // The k-th distance so far: most candidates stop at one comparison.
                    let mut bound = if list.len() == k {
                        list[k - 1].0
                    } else {
                        f32::INFINITY
                    };
                    let q = qb.row(i);
                    let q = q.as_slice().expect("points are contiguous rows");
                    for (jj, (&g, &rn)) in row.iter().zip(&r_norm[r0..]).enumerate() {
                        let approx = q_norm[i] + rn - 2.0 * g;
                        if approx - ROUNDING * (dim as f32 + 4.0) * (q_norm[i] + rn) > bound {
                            continue;
                        }
                        let j = (r0 + jj) as u32;
                        let d = sq_dist(q, reference.row(j as usize));
                        if d > bound {
                            continue;
                        }
                        if list.len() == k {
                            let worst = list[k - 1];
                            if d.total_cmp(&worst.0).then(j.cmp(&worst.1)).is_ge() {
                                continue;
                            }
                            list.pop();
                        }
                        let at = list.partition_point(|&(e, ej)| e.total_cmp(&d).then(ej.cmp(&j)).is_lt());
                        list.insert(at, (d, j));
                        if list.len() == k {
                            bound = list[k - 1].0;
                        }
                    }
                }
            }
            for (i, list) in best.iter().enumerate() {
                for (s, &(d, j)) in list.iter().enumerate() {
                    idx[i * k + s] = j;
                    dst[i * k + s] = d.sqrt();
                }
            }
        });
    Ok(Neighbors {
        k,
        indices,
        distances,
    })
}

/// One transferred label column.
#[derive(Clone, Debug, PartialEq)]
pub struct Transferred {
    /// Winning label per query cell ([`MISSING`] when no neighbour is labelled).
    pub codes: Vec<u32>,
    /// The winner's share of the labelled neighbours' votes, in `[0, 1]`.
    pub confidence: Vec<f64>,
}

/// Majority vote of `labels` (one code per reference cell, [`MISSING`] for
/// none) over each query cell's neighbours; see the module doc.
pub fn transfer_labels(neighbors: &Neighbors, labels: &[u32]) -> Result<Transferred> {
    let n_labels = labels
        .iter()
        .filter(|&&c| c != MISSING)
        .map(|&c| c as usize + 1)
        .max()
        .unwrap_or(0);
    if let Some(&j) = neighbors.indices.iter().find(|&&j| j as usize >= labels.len()) {
        return Err(AnalysisError::InvalidData(format!(
            "neighbour {j} is outside the {} labelled reference cells",
            labels.len()
        )));
    }
    let (codes, confidence) = (0..neighbors.len())
        .into_par_iter()
        .map_init(
            || vec![0u32; n_labels],
            |counts, i| {
                let nb = neighbors.of(i);
                let mut total = 0u32;
                for &j in nb {
                    let c = labels[j as usize];
                    if c != MISSING {
                        counts[c as usize] += 1;
                        total += 1;
                    }
                }
                // Nearest first: the first label reaching the top count wins ties.
                let mut best = MISSING;
                for &j in nb {
                    let c = labels[j as usize];
                    if c != MISSING && (best == MISSING || counts[c as usize] > counts[best as usize]) {
                        best = c;
                    }
                }
                let conf = if total > 0 {
                    f64::from(counts[best as usize]) / f64::from(total)
                } else {
                    0.0
                };
                for &j in nb {
                    let c = labels[j as usize];
                    if c != MISSING {
                        counts[c as usize] = 0;
                    }
                }
                (best, conf)
            },
        )
        .unzip();
    Ok(Transferred { codes, confidence })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Fast;
    use ndarray::Array2;

    #[test]
    fn nearest_matches_a_full_sort() {
        let mut r = Fast::new(5, &[]);
        let refs = Array2::from_shape_fn((60, 3), |_| r.unit());
        let qs = Array2::from_shape_fn((9, 3), |_| r.unit());
        let (rp, qp) = (
            Points::from_view(refs.view()).unwrap(),
            Points::from_view(qs.view()).unwrap(),
        );
        let nb = nearest_in(&rp, &qp, 7).unwrap();
        for i in 0..9 {
            let mut all: Vec<(f64, u32)> = (0..60)
                .map(|j| {
                    let d: f64 = (0..3).map(|c| (qs[[i, c]] - refs[[j, c]]).powi(2)).sum();
                    (d, j as u32)
                })
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0));
            let want: Vec<u32> = all[..7].iter().map(|x| x.1).collect();
            assert_eq!(nb.of(i), &want[..], "query {i}");
            assert!((nb.distances_of(i)[0] as f64 - all[0].0.sqrt()).abs() < 1e-5);
        }
    }

    /// Several blocks on both sides: the same neighbours as a full sort in
    /// f64, distances within f32 rounding, the same at 1 and 2 threads.
    #[test]
    fn nearest_matches_a_full_sort_across_blocks() {
        // Around the origin, and far from it (norms ≫ distances: the dot
        // products lose the digits the distances need).
        for offset in [0.0, 100.0] {
            nearest_across_blocks(offset);
        }
    }

    fn nearest_across_blocks(offset: f64) {
        let mut r = Fast::new(11, &[]);
        let (nr, nq, dim, k) = (5000, 150, 20, 30);
        let refs = Array2::from_shape_fn((nr, dim), |_| offset + r.unit());
        let qs = Array2::from_shape_fn((nq, dim), |_| offset + r.unit());
        let (rp, qp) = (
            Points::from_view(refs.view()).unwrap(),
            Points::from_view(qs.view()).unwrap(),
        );
        let nb = nearest_in(&rp, &qp, k).unwrap();
        for i in 0..nq {
            let mut all: Vec<(f64, u32)> = (0..nr)
                .map(|j| {
                    let d: f64 = (0..dim)
                        .map(|c| (f64::from(rp.row(j)[c]) - f64::from(qp.row(i)[c])).powi(2))
                        .sum();
                    (d, j as u32)
                })
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let want: Vec<u32> = all[..k].iter().map(|x| x.1).collect();
            assert_eq!(nb.of(i), &want[..], "query {i}");
            for (got, w) in nb.distances_of(i).iter().zip(&all[..k]) {
                assert!((f64::from(*got) - w.0.sqrt()).abs() < 1e-4, "query {i}");
                // Exactly the term-by-term distance.
                assert_eq!(*got, sq_dist(qp.row(i), rp.row(w.1 as usize)).sqrt());
            }
        }
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let nb1 = one.install(|| nearest_in(&rp, &qp, k).unwrap());
        assert_eq!(nb1.indices, nb.indices);
        assert_eq!(nb1.distances, nb.distances);
    }

    #[test]
    fn vote_counts_labelled_neighbours_and_breaks_ties_by_nearest() {
        // Query 0: neighbours labelled 1, 0, 0, 1, missing → tie 2–2, nearest is 1.
        // Query 1: 2, 2, 2, 0, 2 → 2 with 4/5. Query 2: all missing.
        let labels = vec![0, 1, 2, MISSING];
        let nb = Neighbors {
            k: 5,
            indices: vec![1, 0, 0, 1, 3, 2, 2, 2, 0, 2, 3, 3, 3, 3, 3],
            distances: vec![0.0; 15],
        };
        let t = transfer_labels(&nb, &labels).unwrap();
        assert_eq!(t.codes, vec![1, 2, MISSING]);
        assert_eq!(t.confidence, vec![0.5, 0.8, 0.0]);
    }

    #[test]
    fn unit_rows_scale_directions() {
        let h = ndarray::arr2(&[[3.0f64, 4.0], [0.0, 0.0]]);
        let p = unit_rows(h.view()).unwrap();
        assert_eq!(p.row(0), &[0.6f32, 0.8]);
        assert_eq!(p.row(1), &[0.0f32, 0.0]);
    }
}
