//! The generative model (docs/algorithms.md §11): gene-level parameters drawn
//! once, then each cell drawn from its own random stream.
//!
//! Random streams. One ChaCha8 key is expanded from the seed
//! (SplitMix64); every quantity draws from its own ChaCha stream id, so a
//! cell's counts depend on (seed, dataset, cell index) only: not on the
//! thread that computes it, the chunking, or the other parameters' draws.
//! Stream ids: cell c of dataset b → `b << 40 | c`; gene means → `1 << 60`;
//! DE of type t → `2 << 60 | t`; batch factors of b → `3 << 60 | b`;
//! interactions of (b, t) → `4 << 60 | b << 16 | t`; gene dispersions →
//! `5 << 60`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{ChiSquared, Distribution, Gamma, Poisson, StandardNormal};

use super::params::SimulationParams;

const STREAM_GENES: u64 = 1 << 60;
const STREAM_DE: u64 = 2 << 60;
const STREAM_BATCH: u64 = 3 << 60;
const STREAM_INTERACTION: u64 = 4 << 60;
const STREAM_DISPERSION: u64 = 5 << 60;

/// Means up to this value are sampled by inverting the negative binomial
/// CDF with one uniform (cost ∝ 1 + count); larger ones by the Gamma then
/// Poisson draws of the model (cost independent of the mean).
const INVERSION_MAX_MEAN: f64 = 8.0;
/// A count this large under inversion is a floating-point dead end (the
/// accumulated CDF stopped growing): redraw by Gamma–Poisson.
const INVERSION_MAX_STEPS: u32 = 100_000;
/// Smallest BCV² used: the variance m + m²·BCV² then differs from
/// Poisson's by at most 1e-8·m², nothing any count can show.
const MIN_BCV2: f64 = 1e-8;

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 256-bit ChaCha key derived from the seed.
pub(crate) fn key_of(seed: u64) -> [u8; 32] {
    let mut state = seed;
    let mut key = [0u8; 32];
    for part in key.chunks_exact_mut(8) {
        part.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    key
}

fn stream(key: &[u8; 32], id: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::from_seed(*key);
    rng.set_stream(id);
    rng
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

/// Gene-level parameters: the expression profile of every (dataset, type).
pub(crate) struct Model {
    key: [u8; 32],
    genes: usize,
    types: usize,
    /// p_btg, normalized over g; index `(b * types + t) * genes + g`.
    profiles: Vec<f64>,
    /// 1/√p_btg, same layout, so that 1/√m_cg = 1/√L_c · 1/√p_btg costs a
    /// multiplication.
    inv_sqrt: Vec<f64>,
    /// Cumulative type proportions per dataset; index `b * types + t`.
    cum_props: Vec<f64>,
    lib_loc: Vec<f64>,
    lib_scale: f64,
    /// BCV_g of every gene (`docs/algorithms.md` §11).
    bcv_gene: Vec<f64>,
    bcv_trend: f64,
    bcv_df: f64,
    chi2: ChiSquared<f64>,
}

/// Consecutive simulated cells of one dataset in CSR form.
#[derive(Default)]
pub(crate) struct CellBlock {
    /// Index (0-based) of the first cell in its dataset.
    pub(crate) start: usize,
    /// Type (0-based) of each cell.
    pub(crate) types: Vec<i32>,
    /// Offsets of each cell's non-zeros: `cells + 1` entries from 0.
    pub(crate) indptr: Vec<usize>,
    /// Gene (0-based) of each non-zero, increasing within a cell.
    pub(crate) genes: Vec<u32>,
    /// Count of each non-zero (≥ 1).
    pub(crate) counts: Vec<u32>,
}

impl Model {
    /// Draws the gene-level parameters. `props[b]` are the (unnormalized)
    /// type weights of dataset b, missing types already zeroed.
    pub(crate) fn new(p: &SimulationParams, props: &[Vec<f64>]) -> Self {
        let key = key_of(p.seed);
        let (g_n, t_n, b_n) = (p.genes, p.cell_types, p.datasets);
        let mut rng = stream(&key, STREAM_GENES);
        let gamma = Gamma::new(p.mean_shape, 1.0 / p.mean_rate).expect("checked shape and rate > 0");
        let mu: Vec<f64> = (0..g_n)
            .map(|_| {
                let m: f64 = gamma.sample(&mut rng);
                let outlier = rng.random::<f64>() < p.outlier_prob;
                if outlier {
                    m * (p.outlier_loc + p.outlier_scale * normal(&mut rng)).exp()
                } else {
                    m
                }
            })
            .collect();
        let de: Vec<Vec<f64>> = (0..t_n)
            .map(|t| {
                let mut rng = stream(&key, STREAM_DE | t as u64);
                (0..g_n)
                    .map(|_| {
                        if rng.random::<f64>() < p.de_prob {
                            let f = (p.de_loc + p.de_scale * normal(&mut rng)).exp();
                            if rng.random::<f64>() < p.de_down_prob {
                                1.0 / f
                            } else {
                                f
                            }
                        } else {
                            1.0
                        }
                    })
                    .collect()
            })
            .collect();
        let batch_sigma = p.batch_factor_sigma * p.batch_effect;
        let inter_sigma = p.interaction_sigma * p.batch_effect;
        let mut profiles = Vec::with_capacity(b_n * t_n * g_n);
        for b in 0..b_n {
            let mut rng = stream(&key, STREAM_BATCH | b as u64);
            let beta: Vec<f64> = (0..g_n).map(|_| (batch_sigma * normal(&mut rng)).exp()).collect();
            for (t, de_t) in de.iter().enumerate() {
                let mut rng = stream(&key, STREAM_INTERACTION | (b as u64) << 16 | t as u64);
                let start = profiles.len();
                for g in 0..g_n {
                    let iota = if rng.random::<f64>() < p.interaction_prob {
                        (inter_sigma * normal(&mut rng)).exp()
                    } else {
                        1.0
                    };
                    profiles.push(mu[g] * de_t[g] * beta[g] * iota);
                }
                let sum: f64 = profiles[start..].iter().sum();
                profiles[start..].iter_mut().for_each(|x| *x /= sum);
            }
        }
        let mut cum_props = Vec::with_capacity(b_n * t_n);
        for w in props {
            let total: f64 = w.iter().sum();
            let mut acc = 0.0;
            for &x in w {
                acc += x / total;
                cum_props.push(acc);
            }
        }
        let lib_loc = (0..b_n).map(|b| p.lib_locs[b % p.lib_locs.len()]).collect();
        let inv_sqrt = profiles.iter().map(|&x| 1.0 / x.sqrt()).collect();
        let bcv_gene = if p.bcv_gene_sd == 0.0 {
            vec![p.bcv_common; g_n]
        } else {
            let mut rng = stream(&key, STREAM_DISPERSION);
            (0..g_n)
                .map(|_| p.bcv_common * (p.bcv_gene_sd * normal(&mut rng)).exp())
                .collect()
        };
        Self {
            key,
            genes: g_n,
            types: t_n,
            profiles,
            inv_sqrt,
            cum_props,
            lib_loc,
            lib_scale: p.lib_scale,
            bcv_gene,
            bcv_trend: p.bcv_trend,
            bcv_df: p.bcv_df,
            chi2: ChiSquared::new(p.bcv_df).expect("checked bcv_df > 0"),
        }
    }

    /// Draws cells `range` (0-based) of dataset `b` (0-based).
    pub(crate) fn cells(&self, b: usize, range: std::ops::Range<usize>) -> CellBlock {
        let mut block = CellBlock {
            start: range.start,
            ..CellBlock::default()
        };
        block.indptr.push(0);
        let mut draws = Draws::default();
        for c in range {
            let t = self.cell_into(b, c, &mut block.genes, &mut block.counts, &mut draws);
            block.types.push(t as i32);
            block.indptr.push(block.genes.len());
        }
        block
    }

    /// Draws cell `c` of dataset `b`: appends its non-zeros to `genes` and
    /// `counts`, returns its type.
    ///
    /// Two passes over the genes. The first draws one uniform u_g per gene
    /// (in bulk) and keeps, without branching, the genes that the bound
    /// P(0) ≥ 1 − m (see [`nb_given_u`]) cannot settle as zero; the second
    /// decides those exactly from the same u_g. Same distribution as one
    /// pass, without a mispredicted branch per gene.
    fn cell_into(
        &self,
        b: usize,
        c: usize,
        genes: &mut Vec<u32>,
        counts: &mut Vec<u32>,
        draws: &mut Draws,
    ) -> usize {
        let mut rng = stream(&self.key, (b as u64) << 40 | c as u64);
        let cum = &self.cum_props[b * self.types..(b + 1) * self.types];
        let u: f64 = rng.random();
        // The first type whose cumulative proportion exceeds u; rounding
        // can leave u ≥ the last value: take the last type with weight.
        let t = cum.iter().position(|&x| u < x).unwrap_or_else(|| {
            let last = cum[self.types - 1];
            cum.iter().position(|&x| x >= last).unwrap_or(self.types - 1)
        });
        let lib = (self.lib_loc[b] + self.lib_scale * normal(&mut rng)).exp();
        let inv_sqrt_lib = 1.0 / lib.sqrt();
        let chi2: f64 = self.chi2.sample(&mut rng);
        let s = (self.bcv_df / chi2).sqrt();
        let start = (b * self.types + t) * self.genes;
        let p = &self.profiles[start..start + self.genes];
        let inv_sqrt = &self.inv_sqrt[start..start + self.genes];
        draws.bits.resize(self.genes, 0);
        rng.fill(&mut draws.bits[..]);
        draws.cand.resize(self.genes, 0);
        let mut n = 0;
        for (g, (&pg, &bits)) in p.iter().zip(&draws.bits).enumerate() {
            draws.cand[n] = g as u32;
            n += (unit(bits) >= 1.0 - lib * pg) as usize;
        }
        for &g in &draws.cand[..n] {
            let g = g as usize;
            let u = unit(draws.bits[g]);
            let k = nb_given_u(
                &mut rng,
                u,
                lib * p[g],
                inv_sqrt_lib * inv_sqrt[g],
                self.bcv_gene[g],
                self.bcv_trend,
                s,
            );
            if k > 0 {
                genes.push(g as u32);
                counts.push(k);
            }
        }
        t
    }
}

/// Per-task buffers of [`Model::cell_into`].
#[derive(Default)]
struct Draws {
    /// One random word per gene.
    bits: Vec<u64>,
    /// Genes the cheap bound could not settle, in increasing order.
    cand: Vec<u32>,
}

/// A uniform in [0, 1) from 53 random bits (as `rand` converts).
#[inline]
fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// 1/(k+1) for the first steps of the CDF inversion (a multiplication
/// instead of a division).
const RECIP: [f64; 64] = {
    let mut t = [0.0; 64];
    let mut k = 0;
    while k < 64 {
        t[k] = 1.0 / (k as f64 + 1.0);
        k += 1;
    }
    t
};

/// [`nb_given_u`] with a fresh uniform (the one-pass form, for tests).
#[cfg(test)]
fn nb_count(rng: &mut ChaCha8Rng, m: f64, inv_sqrt_m: f64, bcv_gene: f64, trend: f64, s: f64) -> u32 {
    let u: f64 = rng.random();
    if u < 1.0 - m {
        return 0;
    }
    nb_given_u(rng, u, m, inv_sqrt_m, bcv_gene, trend, s)
}

/// One count, given the uniform `u` ∈ [0, 1), with mean `m` (`inv_sqrt_m` = 1/√m) and
/// BCV = (`bcv_gene` + `trend`/√m)·`s`: λ ~ Gamma(1/BCV², m·BCV²),
/// count ~ Poisson(λ), which is negative binomial with size r = 1/BCV² and
/// mean m: with x = m/r = m·BCV², P(0) = (1+x)^(−r),
/// P(k+1) = P(k)·(k+r)/(k+1)·x/(1+x). BCV² below [`MIN_BCV2`] is raised to
/// it (BCV = 0 is Poisson, which the formulas reach only in the limit).
///
/// Cost. Most entries of a count matrix are zeros with small means. One
/// uniform u decides them: count = 0 iff u < P(0). Since ln(1+x) ≤ x,
/// P(0) = e^(−r·ln(1+x)) ≥ e^(−m) ≥ 1 − m, so u < 1 − m settles it with one
/// multiplication and no transcendental function. Otherwise,
/// for m ≤ 8 the same u inverts the CDF from P(0) on (exact: the smallest k
/// with CDF(k) > u; one `ln`, one `exp`, one division, then a
/// multiply-add per unit of count); for larger m, Gamma then Poisson draws
/// (as the model reads) cost the same whatever the mean.
#[inline]
fn nb_given_u(
    rng: &mut ChaCha8Rng,
    u: f64,
    m: f64,
    inv_sqrt_m: f64,
    bcv_gene: f64,
    trend: f64,
    s: f64,
) -> u32 {
    if m <= 0.0 || !inv_sqrt_m.is_finite() {
        return 0;
    }
    let bcv = (bcv_gene + trend * inv_sqrt_m) * s;
    let bcv2 = (bcv * bcv).max(MIN_BCV2);
    let x = m * bcv2;
    let d = 1.0 / (bcv2 * (1.0 + x));
    let r = (1.0 + x) * d;
    if m > INVERSION_MAX_MEAN {
        return gamma_poisson(rng, m, r);
    }
    let q = x * bcv2 * d;
    let ln1px = if x < 0.01 { x.ln_1p() } else { (1.0 + x).ln() };
    let mut pk = (-r * ln1px).exp();
    let mut cdf = pk;
    let mut k = 0u32;
    while u >= cdf {
        let step = match RECIP.get(k as usize) {
            Some(&inv) => inv,
            None => 1.0 / (k as f64 + 1.0),
        };
        pk *= (k as f64 + r) * step * q;
        k += 1;
        cdf += pk;
        if k >= INVERSION_MAX_STEPS {
            return gamma_poisson(rng, m, r);
        }
    }
    k
}

fn gamma_poisson(rng: &mut ChaCha8Rng, m: f64, r: f64) -> u32 {
    let lambda = match Gamma::new(r, m / r) {
        Ok(g) => g.sample(rng),
        Err(_) => m,
    };
    match Poisson::new(lambda) {
        Ok(p) => {
            let k: f64 = p.sample(rng);
            k.min(u32::MAX as f64) as u32
        }
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact negative binomial probabilities for a given BCV.
    fn nb_pmf(m: f64, r: f64, kmax: usize) -> Vec<f64> {
        let mut p = vec![(-r * (m / r).ln_1p()).exp()];
        let q = m / (r + m);
        for k in 0..kmax {
            let next = p[k] * (k as f64 + r) / (k as f64 + 1.0) * q;
            p.push(next);
        }
        p
    }

    /// The fast sampler against the exact pmf (chi-square goodness of fit)
    /// and against the slow Gamma–Poisson reference, across regimes:
    /// tiny means (fast zero path), inversion, and Gamma–Poisson.
    #[test]
    fn nb_count_matches_the_model() {
        let n = 200_000;
        let cases: [(f64, f64); 5] = [(0.02, 1.0), (0.7, 1.2), (3.0, 0.9), (7.9, 1.0), (30.0, 1.1)];
        for (i, &(m, s)) in cases.iter().enumerate() {
            let bcv: f64 = (0.1 + 1.0 / m.sqrt()) * s;
            let r = 1.0 / (bcv * bcv);
            let mut rng = stream(&key_of(7), i as u64);
            let mut fast = vec![0usize; 400];
            let mut slow = vec![0usize; 400];
            let (mut sum_f, mut sum_s) = (0.0, 0.0);
            for _ in 0..n {
                let k = nb_count(&mut rng, m, 1.0 / m.sqrt(), 0.1, 1.0, s) as usize;
                fast[k.min(399)] += 1;
                sum_f += k as f64;
                let k = gamma_poisson(&mut rng, m, r) as usize;
                slow[k.min(399)] += 1;
                sum_s += k as f64;
            }
            let pmf = nb_pmf(m, r, 399);
            // Chi-square over bins with expected count >= 20, tail pooled.
            let (mut chi, mut dof, mut tail_e, mut tail_o) = (0.0, 0usize, 0.0, 0.0);
            for k in 0..399 {
                let e = pmf[k] * n as f64;
                if e >= 20.0 {
                    chi += (fast[k] as f64 - e).powi(2) / e;
                    dof += 1;
                } else {
                    tail_e += e;
                    tail_o += fast[k] as f64;
                }
            }
            tail_e += (1.0 - pmf.iter().sum::<f64>()).max(0.0) * n as f64;
            tail_o += fast[399] as f64;
            if tail_e >= 5.0 {
                chi += (tail_o - tail_e).powi(2) / tail_e;
                dof += 1;
            }
            // dof−1 degrees of freedom; mean dof−1, sd sqrt(2(dof−1)): 5 sd.
            let df = (dof - 1) as f64;
            assert!(
                chi < df + 5.0 * (2.0 * df).sqrt() + 10.0,
                "m={m}: chi2 {chi} with {df} dof"
            );
            let (mf, ms) = (sum_f / n as f64, sum_s / n as f64);
            let sd = (m + m * m / r).sqrt() / (n as f64).sqrt();
            assert!((mf - m).abs() < 5.0 * sd, "m={m}: fast mean {mf}");
            assert!((ms - m).abs() < 5.0 * sd, "m={m}: slow mean {ms}");
        }
    }

    /// BCV = 0 is Poisson (the floor on BCV² keeps the formulas finite):
    /// mean and variance m, on the inversion and the Gamma–Poisson paths.
    #[test]
    fn zero_bcv_is_poisson() {
        let n = 200_000;
        for (i, &m) in [0.3, 4.0, 25.0].iter().enumerate() {
            let mut rng = stream(&key_of(11), i as u64);
            let (mut sum, mut sumsq) = (0.0, 0.0);
            for _ in 0..n {
                let k = nb_count(&mut rng, m, 1.0 / m.sqrt(), 0.0, 0.0, 1.0) as f64;
                sum += k;
                sumsq += k * k;
            }
            let mean = sum / n as f64;
            let var = sumsq / n as f64 - mean * mean;
            // sd of the mean √(m/n); of the variance ≈ m·√(2/n) (+ m^1.5 terms).
            assert!(
                (mean - m).abs() < 5.0 * (m / n as f64).sqrt(),
                "m={m}: mean {mean}"
            );
            assert!((var / m - 1.0).abs() < 0.02, "m={m}: variance {var}");
        }
    }

    #[test]
    fn streams_are_distinct_and_reproducible() {
        let key = key_of(1);
        let a: u64 = stream(&key, 5).random();
        let b: u64 = stream(&key, 5).random();
        let c: u64 = stream(&key, 6).random();
        let d: u64 = stream(&key_of(2), 5).random();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }
}
