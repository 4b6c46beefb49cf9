//! Seeded random streams. Every random choice draws from a stream named by
//! `(seed, purpose, index…)`, so results do not depend on the order in
//! which threads run.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// SplitMix64 finalizer: a bijective mix of 64 bits.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of a seed and a path of integers (purpose, indices).
#[inline]
pub(crate) fn hash(seed: u64, parts: &[u64]) -> u64 {
    let mut h = mix(seed);
    for &p in parts {
        h = mix(h ^ p);
    }
    h
}

/// A ChaCha8 stream for `(seed, parts…)`: for sampling where quality matters.
pub(crate) fn chacha(seed: u64, parts: &[u64]) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(hash(seed, parts))
}

/// A tiny fast generator (SplitMix64) for hot loops (negative sampling,
/// candidate priorities).
#[derive(Clone, Debug)]
pub(crate) struct Fast(u64);

impl Fast {
    pub(crate) fn new(seed: u64, parts: &[u64]) -> Self {
        Fast(hash(seed, parts))
    }

    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform integer in `0..n` (`n > 0`), by multiply-shift.
    #[inline]
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in [0, 1).
    #[inline]
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// `amount` distinct indices of `0..len`, seeded, in sampling order.
pub(crate) fn sample_indices(seed: u64, parts: &[u64], len: usize, amount: usize) -> Vec<usize> {
    let mut r = chacha(seed, parts);
    rand::seq::index::sample(&mut r, len, amount.min(len)).into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Fast::new(1, &[2, 3]).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Fast::new(1, &[2, 3]).next_u64(), Fast::new(1, &[2, 4]).next_u64());
        let mut f = Fast::new(7, &[]);
        for _ in 0..1000 {
            assert!(f.below(13) < 13);
            let u = f.unit();
            assert!((0.0..1.0).contains(&u));
        }
        let s = sample_indices(3, &[1], 100, 10);
        assert_eq!(s, sample_indices(3, &[1], 100, 10));
        let mut u = s.clone();
        u.sort();
        u.dedup();
        assert_eq!(u.len(), 10);
    }
}
