//! Parameters of online iNMF (docs/algorithms.md §3) and their ranges.

use crate::error::LearnerError;

/// Parameters of online iNMF, with the anchor's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineParams {
    /// K, number of factors. Default 20.
    pub k: usize,
    /// λ, weight of the dataset-specific penalty λ‖V_iH_i‖². Default 5.
    pub lambda: f64,
    /// Cells per iteration over all learned datasets. Default 5000.
    pub batch_size: usize,
    /// Passes over the first dataset. Default 5.
    pub epochs: usize,
    /// Cells per shuffled block (reads stay contiguous inside a block). Default 1000.
    pub shuffle_block: usize,
    /// HALS sweeps per iteration. Default 1.
    pub hals_sweeps: usize,
    /// Seed of every random choice. Default 1.
    pub seed: u64,
}

impl Default for OnlineParams {
    fn default() -> Self {
        Self {
            k: 20,
            lambda: 5.0,
            batch_size: 5000,
            epochs: 5,
            shuffle_block: 1000,
            hals_sweeps: 1,
            seed: 1,
        }
    }
}

impl OnlineParams {
    /// Checks every parameter's range (data-dependent rules are checked at fit time).
    pub fn check(&self) -> Result<(), LearnerError> {
        let bad = |s: String| Err(LearnerError::InvalidParameter(s));
        if self.k == 0 {
            return bad("K (number of factors) must be at least 1".into());
        }
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return bad(format!("lambda must be finite and ≥ 0, got {}", self.lambda));
        }
        if self.lambda > MAX_LAMBDA {
            return bad(format!(
                "lambda = {} is above {MAX_LAMBDA:e}: far beyond the point where every V_i is 0 \
                 (the usual range is 1 to 50), and (1 + λ)·HᵀH could overflow; choose a smaller lambda",
                self.lambda
            ));
        }
        if self.batch_size == 0 {
            return bad("the mini-batch size must be at least 1 cell".into());
        }
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if self.shuffle_block == 0 {
            return bad("the shuffle block must be at least 1 cell".into());
        }
        if self.hals_sweeps == 0 {
            return bad("HALS sweeps per iteration must be at least 1".into());
        }
        Ok(())
    }
}

/// The largest λ accepted: past it V_i is 0 to machine precision, and
/// (1 + λ) times a Gram entry could leave the f64 range.
pub const MAX_LAMBDA: f64 = 1e12;
