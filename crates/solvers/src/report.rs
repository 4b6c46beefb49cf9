//! What every batch solver reports (docs/algorithms.md §8): the objective and its
//! parts after each iteration, the number of iterations, why it stopped and
//! the wall time.
//!
//! iNMF solvers return [`InmfFit`];
//! single-factorization solvers (plain NMF, ‖MW‖-regularized NMF) return
//! [`NmfFit`]; diffusion NMF returns [`DiffusionFit`](crate::DiffusionFit).
//! All implement [`FitReport`], so callers can report any of them the same
//! way.
//!
//! Convergence rule shared by the solvers of §4.2–7: stop after iteration t
//! (t ≥ 2) when the relative change |F_{t−1} − F_t| / F_{t−1} < tol. (ANLS
//! tests the signed decrease; for the monotone solvers the two coincide, and
//! for the γ-KL solver, whose objective may rise, the absolute value keeps an
//! increase from counting as convergence.)

use ndarray::Array2;

use inmf_learner::{LearnerError, ObjectiveParts};

/// iNMF factors: W (genes × K), V_i (genes × K) and H_i (cells × K) per dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct InmfFactors {
    /// Shared gene loadings W, genes × K.
    pub w: Array2<f64>,
    /// Dataset-specific gene loadings V_i, genes × K, in dataset order.
    pub v: Vec<Array2<f64>>,
    /// Cell loadings H_i, cells × K, in dataset order.
    pub h: Vec<Array2<f64>>,
}

/// Why an iterative solver stopped (shared by the batch solvers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The relative decrease of the objective fell below the tolerance.
    Converged,
    /// The iteration (or epoch) budget ran out first.
    MaxIterations,
}

/// Result of an iNMF solver ([`inmf_anls`](crate::inmf_anls),
/// [`inmf_hals`](crate::inmf_hals), [`inmf_mu`](crate::inmf_mu),
/// [`inmf_kl`](crate::inmf_kl)).
#[derive(Debug, Clone)]
pub struct InmfFit {
    /// The final factors.
    pub factors: InmfFactors,
    /// F and its parts after each iteration (`objective[t]` after iteration t + 1).
    pub objective: Vec<ObjectiveParts>,
    /// Iterations run.
    pub iterations: usize,
    /// Why the loop stopped.
    pub stop: StopReason,
    /// Wall time of the whole call, in seconds.
    pub seconds: f64,
}

/// One non-negative factorization X ≈ H Wᵀ (X cells × genes): W genes × K,
/// H cells × K (the transpose of the gene × cell notation V ≈ WH of §5).
#[derive(Debug, Clone, PartialEq)]
pub struct NmfFactors {
    /// Gene loadings W, genes × K.
    pub w: Array2<f64>,
    /// Cell loadings H, cells × K.
    pub h: Array2<f64>,
}

/// Result of a single-factorization solver ([`nmf_mu`](crate::nmf_mu),
/// [`regularized_nmf`](crate::regularized_nmf)).
#[derive(Debug, Clone)]
pub struct NmfFit {
    /// The final factors.
    pub factors: NmfFactors,
    /// F and its parts after each iteration (`objective[t]` after iteration t + 1).
    pub objective: Vec<ObjectiveParts>,
    /// Iterations run.
    pub iterations: usize,
    /// Why the loop stopped.
    pub stop: StopReason,
    /// Wall time of the whole call, in seconds.
    pub seconds: f64,
}

/// The report every solver gives, whatever its factors (docs/algorithms.md §8).
pub trait FitReport {
    /// F and its parts after each iteration (`objective()[t]` after iteration t + 1).
    fn objective(&self) -> &[ObjectiveParts];
    /// Iterations run.
    fn iterations(&self) -> usize;
    /// Why the loop stopped.
    fn stop(&self) -> StopReason;
    /// Wall time in seconds.
    fn seconds(&self) -> f64;
    /// F after the last iteration (all zeros if none ran).
    fn final_objective(&self) -> ObjectiveParts {
        self.objective().last().copied().unwrap_or_default()
    }
    /// The first iteration t (1-based) after which |F_{t−1} − F_t| / F_{t−1} < `tol`,
    /// if any (for tables of iterations to a given relative change).
    fn iterations_to(&self, tol: f64) -> Option<usize> {
        self.objective()
            .windows(2)
            .position(|p| relative_change(p[0].total(), p[1].total()) < tol)
            .map(|t| t + 2)
    }
}

impl FitReport for InmfFit {
    fn objective(&self) -> &[ObjectiveParts] {
        &self.objective
    }
    fn iterations(&self) -> usize {
        self.iterations
    }
    fn stop(&self) -> StopReason {
        self.stop
    }
    fn seconds(&self) -> f64 {
        self.seconds
    }
}

impl FitReport for NmfFit {
    fn objective(&self) -> &[ObjectiveParts] {
        &self.objective
    }
    fn iterations(&self) -> usize {
        self.iterations
    }
    fn stop(&self) -> StopReason {
        self.stop
    }
    fn seconds(&self) -> f64 {
        self.seconds
    }
}

/// |F_{t−1} − F_t| / F_{t−1}; 0 when F_{t−1} = F_t = 0, +∞ when only F_{t−1} = 0.
pub fn relative_change(prev: f64, cur: f64) -> f64 {
    if prev > 0.0 {
        (prev - cur).abs() / prev
    } else if cur == prev {
        0.0
    } else {
        f64::INFINITY
    }
}

/// The objective trace of a running solver and its stopping rule.
#[derive(Debug)]
pub(crate) struct Trace {
    pub(crate) objective: Vec<ObjectiveParts>,
    tol: f64,
    pub(crate) stop: StopReason,
}

impl Trace {
    pub(crate) fn new(max_iter: usize, tol: f64) -> Self {
        Self {
            objective: Vec::with_capacity(max_iter),
            tol,
            stop: StopReason::MaxIterations,
        }
    }

    /// Records F after an iteration; `Ok(true)` when the loop should stop
    /// because the relative change fell below tol. A non-finite F is a
    /// numerical failure (it cannot happen with finite data and ε floors).
    pub(crate) fn record(&mut self, f: ObjectiveParts) -> Result<bool, LearnerError> {
        if !f.total().is_finite() {
            return Err(LearnerError::Numerical(format!(
                "the objective became non-finite at iteration {} ({f:?})",
                self.objective.len() + 1
            )));
        }
        let prev = self.objective.last().map(ObjectiveParts::total);
        self.objective.push(f);
        if let Some(p) = prev {
            if relative_change(p, f.total()) < self.tol {
                self.stop = StopReason::Converged;
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub(crate) fn iterations(&self) -> usize {
        self.objective.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(total: f64) -> ObjectiveParts {
        ObjectiveParts {
            residual: total,
            ..ObjectiveParts::default()
        }
    }

    #[test]
    fn relative_change_edge_cases() {
        assert_eq!(relative_change(2.0, 1.0), 0.5);
        assert_eq!(relative_change(2.0, 3.0), 0.5);
        assert_eq!(relative_change(0.0, 0.0), 0.0);
        assert!(relative_change(0.0, 1.0).is_infinite());
    }

    #[test]
    fn trace_stops_on_small_change_and_rejects_nan() {
        let mut t = Trace::new(10, 1e-3);
        assert!(!t.record(parts(10.0)).unwrap());
        assert!(!t.record(parts(5.0)).unwrap());
        assert!(t.record(parts(4.9999)).unwrap());
        assert_eq!((t.stop, t.iterations()), (StopReason::Converged, 3));
        let mut t = Trace::new(10, 0.0);
        assert!(!t.record(parts(1.0)).unwrap());
        assert!(!t.record(parts(1.0)).unwrap(), "tol 0 never converges");
        assert!(matches!(
            t.record(parts(f64::NAN)),
            Err(LearnerError::Numerical(_))
        ));
    }

    #[test]
    fn iterations_to_finds_the_first_small_change() {
        let fit = NmfFit {
            factors: NmfFactors {
                w: Array2::zeros((1, 1)),
                h: Array2::zeros((1, 1)),
            },
            objective: [10.0, 5.0, 4.0, 3.999, 3.998].map(parts).to_vec(),
            iterations: 5,
            stop: StopReason::MaxIterations,
            seconds: 0.0,
        };
        assert_eq!(fit.iterations_to(1e-3), Some(4));
        assert_eq!(fit.iterations_to(1e-9), None);
        assert_eq!(fit.final_objective().total(), 3.998);
    }
}
