//! UMAP (McInnes, Healy & Melville 2018) in 2-D on a precomputed kNN graph,
//! following umap-learn's `fuzzy_simplicial_set` and
//! `optimize_layout_euclidean`.
//!
//! 1. **Fuzzy simplicial set.** For each point `i` with neighbour distances
//!    `d_i1 ≤ … ≤ d_ik` (itself excluded), `ρ_i` = the smallest non-zero
//!    distance and `σ_i` solves `Σ_j exp(−max(0, d_ij − ρ_i)/σ_i) = log2(k)`
//!    (bisection, 64 steps, tolerance 1e-5; `σ_i ≥ 1e-3 ×` the mean
//!    distance). Memberships `v_ij = exp(−max(0, d_ij − ρ_i)/σ_i)` are
//!    symmetrized by the fuzzy union `w = v + vᵀ − v∘vᵀ`.
//! 2. **Curve.** `a`, `b` fit `1/(1 + a·x^{2b})` to `1` for `x < min_dist`
//!    and `exp(−(x − min_dist)/spread)` beyond, on 300 points of `[0, 3·spread]`
//!    (least squares, Levenberg–Marquardt, like `scipy.optimize.curve_fit`).
//! 3. **Initialization.** The first two principal components of the input
//!    (as uwot's `init = "pca"`; umap-learn's spectral init needs an
//!    eigensolver on the graph, and PCA keeps well-separated groups apart just
//!    as well), each scaled to `[0, 10]`, plus 1e-4 seeded noise.
//! 4. **Optimization.** `n_epochs` (200 above 10,000 points, else 500);
//!    edges with `w < max(w)/n_epochs` dropped; edge `e` is sampled every
//!    `max(w)/w_e` epochs; when sampled, its head moves along the clipped
//!    (±4) attractive gradient `−2ab·d^{2(b−1)}/(1 + a·d^{2b})·(y_i − y_j)`
//!    and, per sample, `negative_sample_rate` uniformly drawn points repel it
//!    with `2γb/((0.001 + d²)(1 + a·d^{2b}))·(y_i − y_k)` (clipped); the
//!    learning rate decays linearly from `learning_rate` to 0.
//!
//! **Determinism** (one difference from umap-learn's Hogwild threads):
//! within an epoch every point reads the *other* points' positions from the
//! start of the epoch and updates only itself, in parallel; because the
//! graph is symmetric, the tail of each edge moves when its own copy of the
//! edge is processed, and the head takes the attractive step twice, which
//! is what umap-learn's `move_other` does (both copies `(i,j)`, `(j,i)` move
//! both ends). Random draws come from streams named by (seed, epoch,
//! point), so the layout is identical for a seed whatever the thread count
//! (uwot's `batch = TRUE` makes the same trade).
//!
//! Memory: the symmetric graph (≈ 2k entries per point, 12 bytes each) and
//! two copies of the layout: about 0.7 GB per million points at k = 15
//! (0.5 GB more while the fuzzy union is sorted).

use ndarray::Array2;
use rayon::prelude::*;

use crate::error::{AnalysisError, Result};
use crate::knn::KnnGraph;
use crate::points::Points;
use crate::rng::Fast;

/// Parameters of [`umap`] (umap-learn's names and defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct UmapParams {
    /// Neighbours per point, itself included (umap-learn's `n_neighbors`).
    /// The kNN graph must have at least this many. Default 15.
    pub n_neighbors: usize,
    /// Minimum distance between embedded points. Default 0.1.
    pub min_dist: f64,
    /// Scale of the embedded neighbourhoods. Default 1.0.
    pub spread: f64,
    /// Optimization epochs; 0 = 200 above 10,000 points, else 500. Default 0.
    pub n_epochs: usize,
    /// Initial learning rate. Default 1.0.
    pub learning_rate: f64,
    /// Negative samples per positive sample. Default 5.
    pub negative_sample_rate: usize,
    /// Weight γ of the repulsion. Default 1.0.
    pub repulsion_strength: f64,
    /// Seed of the noise of the initial layout and the negative samples. Default 1.
    pub seed: u64,
}

impl Default for UmapParams {
    fn default() -> Self {
        Self {
            n_neighbors: 15,
            min_dist: 0.1,
            spread: 1.0,
            n_epochs: 0,
            learning_rate: 1.0,
            negative_sample_rate: 5,
            repulsion_strength: 1.0,
            seed: 1,
        }
    }
}

impl UmapParams {
    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(AnalysisError::InvalidParameter(m));
        if self.n_neighbors < 2 {
            return bad(format!("UMAP n_neighbors = {}; use ≥ 2", self.n_neighbors));
        }
        if !(self.spread > 0.0 && self.spread.is_finite()) {
            return bad(format!("UMAP spread = {}; use a positive number", self.spread));
        }
        if !(self.min_dist >= 0.0 && self.min_dist <= self.spread) {
            return bad(format!(
                "UMAP min_dist = {}; use a value in [0, spread = {}]",
                self.min_dist, self.spread
            ));
        }
        let rate_ok = self.learning_rate > 0.0 && self.learning_rate.is_finite();
        let repulsion_ok = self.repulsion_strength >= 0.0 && self.repulsion_strength.is_finite();
        if !rate_ok || !repulsion_ok {
            return bad("UMAP learning_rate must be > 0 and repulsion_strength ≥ 0".into());
        }
        Ok(())
    }
}

/// `a`, `b` of the embedding curve `1/(1 + a·x^{2b})` for `spread` and
/// `min_dist` (umap-learn's `find_ab_params`).
pub fn find_ab(spread: f64, min_dist: f64) -> (f64, f64) {
    let xs: Vec<f64> = (0..300).map(|i| 3.0 * spread * i as f64 / 299.0).collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if x < min_dist {
                1.0
            } else {
                (-(x - min_dist) / spread).exp()
            }
        })
        .collect();
    let residual = |a: f64, b: f64| -> f64 {
        xs.iter()
            .zip(&ys)
            .map(|(&x, &y)| {
                let f = 1.0 / (1.0 + a * x.powf(2.0 * b));
                (f - y).powi(2)
            })
            .sum()
    };
    let (mut a, mut b) = (1.0f64, 1.0f64);
    let mut lambda = 1e-3;
    let mut cost = residual(a, b);
    for _ in 0..500 {
        // Normal equations J'J δ = −J'r of the 2-parameter problem.
        let (mut jaa, mut jab, mut jbb, mut ga, mut gb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&x, &y) in xs.iter().zip(&ys) {
            if x == 0.0 {
                continue;
            }
            let p = x.powf(2.0 * b);
            let den = 1.0 + a * p;
            let f = 1.0 / den;
            let r = f - y;
            let da = -p / (den * den);
            let db = -a * p * 2.0 * x.ln() / (den * den);
            jaa += da * da;
            jab += da * db;
            jbb += db * db;
            ga += da * r;
            gb += db * r;
        }
        let mut improved = false;
        for _ in 0..30 {
            let (m11, m22) = (jaa * (1.0 + lambda), jbb * (1.0 + lambda));
            let det = m11 * m22 - jab * jab;
            if det.abs() < 1e-300 {
                break;
            }
            let sa = -(m22 * ga - jab * gb) / det;
            let sb = -(m11 * gb - jab * ga) / det;
            let (na, nb) = (a + sa, b + sb);
            if na > 0.0 && nb > 0.0 {
                let c = residual(na, nb);
                if c < cost {
                    let done = (cost - c) < 1e-15 * cost.max(1e-300);
                    a = na;
                    b = nb;
                    cost = c;
                    lambda = (lambda / 10.0).max(1e-12);
                    improved = !done;
                    break;
                }
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    (a, b)
}

/// The symmetric fuzzy graph in CSR form (both directions stored).
#[derive(Clone, Debug, PartialEq)]
pub struct FuzzyGraph {
    /// Row offsets (`n + 1`).
    pub offsets: Vec<usize>,
    /// Column of each entry.
    pub targets: Vec<u32>,
    /// Membership strength of each entry, in (0, 1].
    pub weights: Vec<f32>,
}

/// The fuzzy simplicial set of the first `n_neighbors` columns of `knn`
/// (step 1 of the module doc).
pub fn fuzzy_graph(knn: &KnnGraph, n_neighbors: usize) -> FuzzyGraph {
    let n = knn.len();
    let k = n_neighbors.min(knn.k());
    let target = (k as f64).log2();
    let mean_all = {
        let rows: Vec<f64> = (0..n)
            .into_par_iter()
            .map(|i| knn.distances(i)[..k].iter().map(|&d| d as f64).sum::<f64>())
            .collect();
        let s: f64 = rows.iter().sum(); // in order: thread-count independent
        s / (n * k).max(1) as f64
    };
    let directed: Vec<(u32, u32, f32)> = (0..n)
        .into_par_iter()
        .flat_map_iter(|i| {
            let d = &knn.distances(i)[..k];
            let idx = &knn.neighbors(i)[..k];
            let rho = d.iter().copied().find(|&x| x > 0.0).unwrap_or(0.0) as f64;
            let mid = smooth_knn_sigma(d, rho, target);
            let mean_i = d.iter().map(|&x| x as f64).sum::<f64>() / k as f64;
            let floor = 1e-3 * if rho > 0.0 { mean_i } else { mean_all };
            let sigma = mid.max(floor);
            let mut out = Vec::with_capacity(k);
            for (s, &j) in idx.iter().enumerate() {
                if j as usize == i {
                    continue;
                }
                let e = d[s] as f64 - rho;
                let w = if e <= 0.0 || sigma == 0.0 {
                    1.0
                } else {
                    (-e / sigma).exp()
                };
                if w > 0.0 {
                    out.push((i as u32, j, w as f32));
                }
            }
            out.into_iter()
        })
        .collect();
    // Fuzzy union: entries of v (flag 0) and of vᵀ (flag 1), merged per (i, j).
    let mut all: Vec<(u32, u32, f32, bool)> = Vec::with_capacity(2 * directed.len());
    for &(i, j, w) in &directed {
        all.push((i, j, w, false));
        all.push((j, i, w, true));
    }
    drop(directed);
    all.par_sort_unstable_by(|x, y| (x.0, x.1, x.3).cmp(&(y.0, y.1, y.3)));
    let mut offsets = vec![0usize; n + 1];
    let mut targets = Vec::with_capacity(all.len());
    let mut weights = Vec::with_capacity(all.len());
    let mut e = 0;
    while e < all.len() {
        let (i, j) = (all[e].0, all[e].1);
        let (mut v, mut vt) = (0f32, 0f32);
        while e < all.len() && all[e].0 == i && all[e].1 == j {
            if all[e].3 {
                vt = all[e].2;
            } else {
                v = all[e].2;
            }
            e += 1;
        }
        targets.push(j);
        weights.push(v + vt - v * vt);
        offsets[i as usize + 1] += 1;
    }
    for i in 0..n {
        offsets[i + 1] += offsets[i];
    }
    FuzzyGraph {
        offsets,
        targets,
        weights,
    }
}

/// Eigen-decomposition of a small symmetric matrix (cyclic Jacobi):
/// returns eigenvalues and eigenvectors (columns), by decreasing eigenvalue.
fn sym_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _ in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&x, &y| a[y * n + y].total_cmp(&a[x * n + x]));
    let vals = order.iter().map(|&i| a[i * n + i]).collect();
    let mut vecs = vec![0.0; n * n];
    for (c, &o) in order.iter().enumerate() {
        for r in 0..n {
            vecs[r * n + c] = v[r * n + o];
        }
    }
    (vals, vecs)
}

/// First two principal components of `points`, each scaled to `[0, 10]`,
/// plus seeded noise of scale 1e-4 (row-major `n × 2`).
fn pca_init(points: &Points, seed: u64) -> Vec<f32> {
    let (n, d) = (points.len(), points.dim());
    const CH: usize = 4096;
    let parts: Vec<(Vec<f64>, Vec<f64>)> = (0..n.div_ceil(CH))
        .into_par_iter()
        .map(|c| {
            let mut s = vec![0.0; d];
            let mut ss = vec![0.0; d * d];
            for i in c * CH..((c + 1) * CH).min(n) {
                let r = points.row(i);
                for a in 0..d {
                    s[a] += r[a] as f64;
                    for b in 0..d {
                        ss[a * d + b] += r[a] as f64 * r[b] as f64;
                    }
                }
            }
            (s, ss)
        })
        .collect();
    let mut mean = vec![0.0; d];
    let mut cov = vec![0.0; d * d];
    for (s, ss) in &parts {
        for a in 0..d {
            mean[a] += s[a];
        }
        for x in 0..d * d {
            cov[x] += ss[x];
        }
    }
    let nf = n.max(1) as f64;
    for m in &mut mean {
        *m /= nf;
    }
    for a in 0..d {
        for b in 0..d {
            cov[a * d + b] = cov[a * d + b] / nf - mean[a] * mean[b];
        }
    }
    let (_, vecs) = sym_eigen(cov, d);
    let mut out = vec![0f32; n * 2];
    let mut noise = Fast::new(seed, &[0x1417]);
    for c in 0..2 {
        let proj: Vec<f64> = (0..n)
            .map(|i| {
                if c < d {
                    let r = points.row(i);
                    (0..d).map(|a| (r[a] as f64 - mean[a]) * vecs[a * d + c]).sum()
                } else {
                    noise.unit()
                }
            })
            .collect();
        let (lo, hi) = proj
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| {
                (l.min(x), h.max(x))
            });
        let span = if hi > lo { hi - lo } else { 1.0 };
        for i in 0..n {
            out[i * 2 + c] = (10.0 * (proj[i] - lo) / span + 1e-4 * (noise.unit() - 0.5)) as f32;
        }
    }
    out
}

#[inline]
fn clip(x: f32) -> f32 {
    x.clamp(-4.0, 4.0)
}

/// 2-D UMAP layout of `points` from their kNN graph (see the module doc);
/// returns `n × 2`.
pub fn umap(points: &Points, knn: &KnnGraph, params: &UmapParams) -> Result<Array2<f32>> {
    params.check()?;
    let n = points.len();
    if knn.len() != n {
        return Err(AnalysisError::InvalidData(format!(
            "the kNN graph has {} points but there are {n}",
            knn.len()
        )));
    }
    if n == 0 {
        return Ok(Array2::zeros((0, 2)));
    }
    let n_epochs = match params.n_epochs {
        0 if n > 10_000 => 200,
        0 => 500,
        e => e,
    };
    let (a, b) = find_ab(params.spread, params.min_dist);
    let g = fuzzy_graph(knn, params.n_neighbors);
    let wmax = g.weights.iter().copied().fold(0f32, f32::max) as f64;
    // Epochs per sample (∞ for pruned edges).
    // Per-edge schedule in f32 (exact enough for ≤ thousands of epochs; halves its memory).
    let eps: Vec<f32> = g
        .weights
        .iter()
        .map(|&w| {
            let w = w as f64;
            if wmax > 0.0 && w >= wmax / n_epochs as f64 {
                (wmax / w) as f32
            } else {
                f32::INFINITY
            }
        })
        .collect();
    let neg_rate = params.negative_sample_rate as f32;
    let mut next_sample: Vec<f32> = eps.clone();
    let mut next_neg: Vec<f32> = eps.iter().map(|&e| e / neg_rate.max(1e-30)).collect();
    let mut emb = pca_init(points, params.seed);
    let mut prev = emb.clone();
    // Fixed row blocks, each with its own slice of the per-edge state.
    const ROWS: usize = 1024;
    let blocks: Vec<(usize, usize)> = (0..n).step_by(ROWS).map(|s| (s, (s + ROWS).min(n))).collect();
    // The inner loop runs in f32, as umap-learn's does.
    let (af, bf) = (a as f32, b as f32);
    let (two_ab, two_gb) = (2.0 * af * bf, (2.0 * params.repulsion_strength * b) as f32);
    for epoch in 0..n_epochs {
        let ep = epoch as f32;
        let alpha = (params.learning_rate * (1.0 - epoch as f64 / n_epochs as f64)) as f32;
        prev.copy_from_slice(&emb);
        let mut rest_s: &mut [f32] = &mut next_sample;
        let mut rest_n: &mut [f32] = &mut next_neg;
        let mut rest_e: &mut [f32] = &mut emb;
        let mut tasks = Vec::with_capacity(blocks.len());
        for &(s, e) in &blocks {
            let len = g.offsets[e] - g.offsets[s];
            let (hs, ts) = std::mem::take(&mut rest_s).split_at_mut(len);
            let (hn, tn) = std::mem::take(&mut rest_n).split_at_mut(len);
            let (he, te) = std::mem::take(&mut rest_e).split_at_mut(2 * (e - s));
            rest_s = ts;
            rest_n = tn;
            rest_e = te;
            tasks.push((s, e, hs, hn, he));
        }
        let prev_ref = &prev;
        tasks.into_par_iter().for_each(|(s, e, ns, nn, out)| {
            let base = g.offsets[s];
            for i in s..e {
                let mut rng = Fast::new(params.seed, &[0x5AD, epoch as u64, i as u64]);
                let mut cur = [prev_ref[2 * i], prev_ref[2 * i + 1]];
                #[allow(clippy::needless_range_loop)] // `ed` indexes four arrays
                for ed in g.offsets[i]..g.offsets[i + 1] {
                    let le = ed - base;
                    if ns[le] > ep {
                        continue;
                    }
                    let j = g.targets[ed] as usize;
                    let other = [prev_ref[2 * j], prev_ref[2 * j + 1]];
                    // Attraction, twice: umap-learn's move_other on both copies of the edge.
                    for _ in 0..2 {
                        let dx = [cur[0] - other[0], cur[1] - other[1]];
                        let d2 = dx[0] * dx[0] + dx[1] * dx[1];
                        if d2 > 0.0 {
                            let pb = (bf * d2.ln()).exp(); // d²ᵇ
                            let coef = -two_ab * (pb / d2) / (af * pb + 1.0);
                            cur[0] += clip(coef * dx[0]) * alpha;
                            cur[1] += clip(coef * dx[1]) * alpha;
                        }
                    }
                    ns[le] += eps[ed];
                    let epn = eps[ed] / neg_rate;
                    let n_neg = if neg_rate > 0.0 {
                        ((ep - nn[le]) / epn).floor().max(0.0) as usize
                    } else {
                        0
                    };
                    for _ in 0..n_neg {
                        let kk = rng.below(n);
                        if kk == i {
                            continue;
                        }
                        let o = [prev_ref[2 * kk], prev_ref[2 * kk + 1]];
                        let dx = [cur[0] - o[0], cur[1] - o[1]];
                        let d2 = dx[0] * dx[0] + dx[1] * dx[1];
                        if d2 > 0.0 {
                            let pb = (bf * d2.ln()).exp();
                            let coef = two_gb / ((0.001 + d2) * (af * pb + 1.0));
                            cur[0] += clip(coef * dx[0]) * alpha;
                            cur[1] += clip(coef * dx[1]) * alpha;
                        }
                    }
                    nn[le] += n_neg as f32 * epn;
                }
                let o = 2 * (i - s);
                out[o] = cur[0];
                out[o + 1] = cur[1];
            }
        });
    }
    Array2::from_shape_vec((n, 2), emb).map_err(|e| AnalysisError::InvalidData(e.to_string()))
}

/// UMAP's σ for one point's neighbour distances `d` (nearest first, the
/// point itself at `d[0]`): the bisection (64 steps, tolerance 1e-5) for
/// `Σ_{j≥1} exp(−max(0, d_j − ρ)/σ) = target` (umap-learn's
/// `smooth_knn_dist`), before its floor.
pub(crate) fn smooth_knn_sigma(d: &[f32], rho: f64, target: f64) -> f64 {
    let (mut lo, mut hi, mut mid) = (0.0f64, f64::INFINITY, 1.0f64);
    for _ in 0..64 {
        let psum: f64 = d[1..]
            .iter()
            .map(|&x| {
                let e = x as f64 - rho;
                if e > 0.0 {
                    (-e / mid).exp()
                } else {
                    1.0
                }
            })
            .sum();
        if (psum - target).abs() < 1e-5 {
            break;
        }
        if psum > target {
            hi = mid;
            mid = (lo + hi) / 2.0;
        } else {
            lo = mid;
            mid = if hi.is_infinite() {
                mid * 2.0
            } else {
                (lo + hi) / 2.0
            };
        }
    }
    mid
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knn::exact_knn;

    #[test]
    fn ab_matches_umap_learn() {
        // umap-learn: find_ab_params(1.0, 0.1) = (1.5769, 0.8951);
        // (1.0, 0.5) = (0.5830, 1.3342).
        let (a, b) = find_ab(1.0, 0.1);
        assert!((a - 1.577).abs() < 0.01 && (b - 0.8951).abs() < 0.005, "{a} {b}");
        let (a, b) = find_ab(1.0, 0.5);
        assert!((a - 0.583).abs() < 0.01 && (b - 1.334).abs() < 0.005, "{a} {b}");
    }

    #[test]
    fn fuzzy_graph_is_symmetric_with_unit_nearest() {
        let mut r = Fast::new(4, &[]);
        let data: Vec<f32> = (0..200 * 3).map(|_| r.unit() as f32).collect();
        let p = Points::from_vec(data, 200, 3).unwrap();
        let g = fuzzy_graph(&exact_knn(&p, 10), 10);
        let w = |i: usize, j: u32| -> Option<f32> {
            (g.offsets[i]..g.offsets[i + 1])
                .find(|&e| g.targets[e] == j)
                .map(|e| g.weights[e])
        };
        for i in 0..200 {
            for e in g.offsets[i]..g.offsets[i + 1] {
                let j = g.targets[e];
                assert_ne!(j as usize, i);
                assert_eq!(w(j as usize, i as u32), Some(g.weights[e]));
                assert!(g.weights[e] > 0.0 && g.weights[e] <= 1.0);
            }
            // The nearest neighbour has membership 1.
            assert!((g.offsets[i]..g.offsets[i + 1]).any(|e| g.weights[e] > 0.9999));
        }
    }

    #[test]
    fn eigen_of_small_symmetric_matrix() {
        let (vals, vecs) = sym_eigen(vec![2.0, 1.0, 1.0, 2.0], 2);
        assert!((vals[0] - 3.0).abs() < 1e-12 && (vals[1] - 1.0).abs() < 1e-12);
        assert!((vecs[0].abs() - 0.5f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn separated_clusters_stay_separated() {
        // Four tight 8-D clouds far apart.
        let mut r = Fast::new(8, &[]);
        let mut data = Vec::new();
        for c in 0..4 {
            for _ in 0..250 {
                for dim in 0..8 {
                    let centre = if dim == c { 50.0 } else { 0.0 };
                    data.push(centre + r.unit() as f32);
                }
            }
        }
        let p = Points::from_vec(data, 1000, 8).unwrap();
        let g = exact_knn(&p, 15);
        let params = UmapParams {
            n_epochs: 200,
            ..Default::default()
        };
        let y = umap(&p, &g, &params).unwrap();
        assert!(y.iter().all(|v| v.is_finite()));
        // Centroids and spreads in 2-D: every cloud is far from the others
        // relative to its own size.
        let mut cent = [[0f64; 2]; 4];
        for i in 0..1000 {
            cent[i / 250][0] += y[[i, 0]] as f64 / 250.0;
            cent[i / 250][1] += y[[i, 1]] as f64 / 250.0;
        }
        let mut radius = [0f64; 4];
        for i in 0..1000 {
            let c = i / 250;
            let d =
                ((y[[i, 0]] as f64 - cent[c][0]).powi(2) + (y[[i, 1]] as f64 - cent[c][1]).powi(2)).sqrt();
            radius[c] = radius[c].max(d);
        }
        for c in 0..4 {
            for e in c + 1..4 {
                let d = ((cent[c][0] - cent[e][0]).powi(2) + (cent[c][1] - cent[e][1]).powi(2)).sqrt();
                assert!(
                    d > radius[c] + radius[e],
                    "clouds {c} and {e} overlap: {d} vs {radius:?}"
                );
            }
        }
        // Deterministic whatever the thread count.
        let y1 = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| umap(&p, &g, &params).unwrap());
        assert_eq!(y, y1);
    }
}
