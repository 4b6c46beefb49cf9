//! Online iNMF state and one iteration (docs/algorithms.md §3; Gao et al. 2021,
//! reference behaviour rliger 2.x → RcppPlanc `onlineinmf.hpp`).
//!
//! Each iteration t, for every learned dataset i with mini-batch X (m_i cells):
//! 1. H = NNLS(G_i, R) with G_i = (W+V_i)ᵀ(W+V_i) + λV_iᵀV_i, R = X·(W+V_i);
//! 2. statistics with the anchor's scaling s_t = 0 (t = 1), 1/m_i (t = 2),
//!    (t−2)/(t−1) (t ≥ 3). At an epoch boundary A ← A − A_old,
//!    A_old ← s_t·A, else A_old ← s_t·A_old (B alike); then
//!    A ← s_t·A + HᵀH/m_i, B ← s_t·B + XᵀH/m_i, zeros on diag(A) → 1e-15.
//!    The t = 2 factor 1/m_i effectively discards the first mini-batch; it is
//!    the anchor's choice, kept for comparability.
//! 3. HALS: W from all datasets (frozen ones included), then each learned V_i.
//!
//! The two sparse products (R in step 1, XᵀH in step 2, and R in the final
//! pass) run in single precision with f64 results (the kernels of
//! [`crate::project_f32`] and [`crate::accumulate_xt_h_f32`]); everything
//! else is f64.
//!
//! Parallel structure: step 1 cuts the cells of all mini-batches into
//! units of 256 that each compute their rows of R, solve their H and add
//! their share of HᵀH and of the objective (one parallel region, rows still
//! in cache); step 2 scatters every dataset's XᵀH chunks in one region and
//! updates B_i, B_old in one pass over gene rows; step 3 sweeps gene blocks
//! of W and every V_i in one region. Every sum has a fixed order, so
//! results do not depend on the number of threads.
//!
//! Because every dataset's statistics are divided by m_i and all share t,
//! the W update weighs datasets equally, not by cell count (batch iNMF
//! weighs by cells). This is the anchor's behaviour.

use ndarray::{Array2, ArrayView2};

use crate::error::LearnerError;
use crate::kernels::packed::Precision;
use crate::online::hals::sweep_w_then_v;
use crate::online::objective::ObjectiveParts;
use crate::online::schedule::IterationInfo;
use crate::online::solve::{recycle, solve_blocks, HSolver};
use crate::online::source::MiniBatch;
use crate::online::statistics::{statistics_scales, update_a, update_b, GeneSums};
use crate::online::system::{HSystem, RESULT_PRODUCTS, STEP_PRODUCTS};
use crate::sparse::CsrMatrix;

/// One dataset's factor and sufficient statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetState {
    /// V_i (genes × K).
    pub v: Array2<f64>,
    /// A_i = running Σ HᵀH/m_i (K × K).
    pub a: Array2<f64>,
    /// B_i = running Σ XᵀH/m_i (genes × K).
    pub b: Array2<f64>,
    /// The part of A_i older than the current epoch, scaled like A_i.
    pub a_old: Array2<f64>,
    /// The part of B_i older than the current epoch, scaled like B_i.
    pub b_old: Array2<f64>,
    /// Frozen datasets (scenario 2: earlier arrivals) keep V, A, B but still
    /// enter the W update.
    pub frozen: bool,
}

impl DatasetState {
    /// A fresh dataset: the given V_i, zero statistics, not frozen.
    pub fn new(v: Array2<f64>) -> Self {
        let (m, k) = v.dim();
        Self {
            v,
            a: Array2::zeros((k, k)),
            b: Array2::zeros((m, k)),
            a_old: Array2::zeros((k, k)),
            b_old: Array2::zeros((m, k)),
            frozen: false,
        }
    }
}

/// What one iteration reports.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepReport {
    /// Objective of the iteration's mini-batches at their fresh H, before the
    /// W/V update (summed over datasets).
    pub objective: ObjectiveParts,
    /// Cells in the iteration.
    pub cells: usize,
}

/// The online iNMF model: shared W, per-dataset state, λ.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineInmf {
    /// W (genes × K), shared metagenes.
    pub w: Array2<f64>,
    /// Per-dataset V_i and statistics, indexed by dataset id.
    pub datasets: Vec<DatasetState>,
    /// λ.
    pub lambda: f64,
}

impl OnlineInmf {
    /// A model from initial W and V_i (all genes × K), zero statistics.
    pub fn new(w: Array2<f64>, vs: Vec<Array2<f64>>, lambda: f64) -> Result<Self, LearnerError> {
        if vs.iter().any(|v| v.dim() != w.dim()) {
            return Err(LearnerError::InvalidData(
                "every V_i must have the shape of W".into(),
            ));
        }
        Ok(Self {
            w,
            datasets: vs.into_iter().map(DatasetState::new).collect(),
            lambda,
        })
    }

    /// K.
    pub fn k(&self) -> usize {
        self.w.ncols()
    }

    /// Number of genes.
    pub fn n_genes(&self) -> usize {
        self.w.nrows()
    }

    /// prepared once for many blocks of cells (the final pass of §3).
    /// The H solve of dataset `dataset` with the current W and V_i (§2),
    /// prepared once for many blocks of cells (the final pass of §3).
    pub fn h_solver(&self, dataset: usize) -> Result<HSolver, LearnerError> {
        if dataset >= self.datasets.len() {
            return Err(LearnerError::InvalidData(format!("unknown dataset {dataset}")));
        }
        Ok(HSolver {
            sys: self.h_system(dataset, None, RESULT_PRODUCTS)?,
            n_genes: self.n_genes(),
        })
    }

    /// Scenario 3 (projection) prepared once: H = NNLS with G = WᵀW,
    /// R = X·W (V treated as 0).
    pub fn projection_solver(&self) -> Result<HSolver, LearnerError> {
        let zeros = Array2::zeros(self.w.dim());
        Ok(HSolver {
            sys: self.h_system(0, Some(zeros.view()), RESULT_PRODUCTS)?,
            n_genes: self.n_genes(),
        })
    }

    /// One online iteration (§3 steps 1–3) on one mini-batch per learned
    /// dataset. `batches` must hold exactly one batch per non-frozen dataset.
    pub fn step(
        &mut self,
        info: IterationInfo,
        batches: &[MiniBatch],
        hals_sweeps: usize,
    ) -> Result<StepReport, LearnerError> {
        self.step_with(info, batches, hals_sweeps, STEP_PRODUCTS)
    }

    /// [`step`](Self::step) that hands the mini-batches to `release` as
    /// soon as steps 1–2 no longer need them, while step 3 (HALS, which
    /// reads only the statistics) runs: releasing a block can take time
    /// (unmapping its pages), and it then overlaps with HALS instead of
    /// following it. Same arithmetic as `step`. On an error the batches are
    /// released before it is returned.
    pub fn step_releasing<F>(
        &mut self,
        info: IterationInfo,
        batches: Vec<MiniBatch>,
        hals_sweeps: usize,
        release: F,
    ) -> Result<StepReport, LearnerError>
    where
        F: FnOnce(Vec<MiniBatch>) + Send,
    {
        let report = match self.solve_and_accumulate(info, &batches, STEP_PRODUCTS) {
            Ok(r) => r,
            Err(e) => {
                release(batches);
                return Err(e);
            }
        };
        rayon::join(
            || {
                for _ in 0..hals_sweeps {
                    self.hals_sweep();
                }
            },
            move || release(batches),
        );
        Ok(report)
    }

    fn step_with(
        &mut self,
        info: IterationInfo,
        batches: &[MiniBatch],
        hals_sweeps: usize,
        products: Precision,
    ) -> Result<StepReport, LearnerError> {
        let report = self.solve_and_accumulate(info, batches, products)?;
        for _ in 0..hals_sweeps {
            self.hals_sweep();
        }
        Ok(report)
    }

    /// Steps 1–2 of an iteration: checks the batches, solves every H,
    /// updates every learned dataset's statistics.
    fn solve_and_accumulate(
        &mut self,
        info: IterationInfo,
        batches: &[MiniBatch],
        products: Precision,
    ) -> Result<StepReport, LearnerError> {
        let mut report = StepReport::default();
        let mut seen = vec![false; self.datasets.len()];
        for mb in batches {
            let i = mb.dataset;
            let Some(state) = self.datasets.get(i) else {
                return Err(LearnerError::InvalidData(format!(
                    "mini-batch for unknown dataset {i}"
                )));
            };
            if state.frozen {
                return Err(
                    LearnerError::InvalidData(format!("mini-batch for frozen dataset {i}")).in_dataset(i),
                );
            }
            if std::mem::replace(&mut seen[i], true) {
                return Err(LearnerError::InvalidData(format!(
                    "two mini-batches for dataset {i} in one iteration"
                ))
                .in_dataset(i));
            }
            if mb.x.n_cols() != self.n_genes() {
                return Err(LearnerError::InvalidData(format!(
                    "mini-batch of dataset {i} has {} genes, the model {}",
                    mb.x.n_cols(),
                    self.n_genes()
                ))
                .in_dataset(i));
            }
            if mb.n_cells() == 0 {
                return Err(
                    LearnerError::InvalidData(format!("empty mini-batch for dataset {i}")).in_dataset(i),
                );
            }
        }
        // Step 1 for every dataset at once (each depends only on W and its
        // own V_i), in units of SOLVE_ROWS cells; every row's arithmetic
        // and every sum's order are fixed, so results do not depend on the
        // number of threads.
        let vs: Vec<ArrayView2<f64>> = batches
            .iter()
            .map(|mb| self.datasets[mb.dataset].v.view())
            .collect();
        let systems = self.h_systems(&vs, products)?;
        let blocks: Vec<(&HSystem, &CsrMatrix)> =
            systems.iter().zip(batches).map(|(s, mb)| (s, &mb.x)).collect();
        let solved = solve_blocks(&blocks)?;
        for (mb, solved) in batches.iter().zip(&solved) {
            report.objective += solved.objective;
            report.cells += mb.n_cells();
        }
        // Step 2, every dataset's statistics at once (disjoint states).
        let sums = {
            let blocks: Vec<(&CsrMatrix, ArrayView2<f64>)> = batches
                .iter()
                .zip(&solved)
                .map(|(mb, s)| (&mb.x, s.h.view()))
                .collect();
            GeneSums::new(&blocks, products)
        };
        let mut slots: Vec<Option<&mut DatasetState>> = self.datasets.iter_mut().map(Some).collect();
        let mut states: Vec<&mut DatasetState> = batches
            .iter()
            .map(|mb| slots[mb.dataset].take().expect("checked above"))
            .collect();
        let scales: Vec<(f64, f64)> = batches
            .iter()
            .map(|mb| statistics_scales(info, mb.x.n_rows()))
            .collect();
        for ((st, s), &(decay, inv_m)) in states.iter_mut().zip(&solved).zip(&scales) {
            update_a(st, info.new_epoch, decay, inv_m, s.hth.view());
        }
        update_b(&mut states, info.new_epoch, &scales, &sums);
        recycle(solved);
        Ok(report)
    }

    /// One Gauss–Seidel HALS sweep: W from all datasets, then each learned
    /// V_i (the column updates of `online::hals`, fused per gene block).
    pub fn hals_sweep(&mut self) {
        let (mut vs, mut a, mut b, mut learned) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for d in &mut self.datasets {
            vs.push(&mut d.v);
            a.push(d.a.view());
            b.push(d.b.view());
            learned.push(!d.frozen);
        }
        sweep_w_then_v(&mut self.w, &mut vs, &a, &b, &learned, self.lambda);
    }

    /// H for cells `x` of `dataset` with the current W and V_i (§2), and the
    /// objective of those cells ([`Self::h_solver`] for many blocks).
    pub fn solve_h(
        &self,
        dataset: usize,
        x: &CsrMatrix,
    ) -> Result<(Array2<f64>, ObjectiveParts), LearnerError> {
        self.h_solver(dataset)?.solve(x)
    }

    /// Scenario 3 (projection): H = NNLS with G = WᵀW, R = X·W (V treated as 0).
    pub fn project_h(&self, x: &CsrMatrix) -> Result<(Array2<f64>, ObjectiveParts), LearnerError> {
        self.projection_solver()?.solve(x)
    }

    /// Σ over datasets of the HALS surrogate S_i = tr((W+V_i)ᵀ(W+V_i)A_i) − 2tr((W+V_i)ᵀB_i) + λtr(V_iᵀV_iA_i).
    pub fn surrogate(&self) -> f64 {
        self.datasets
            .iter()
            .map(|d| {
                crate::online::hals::surrogate(self.w.view(), d.v.view(), d.a.view(), d.b.view(), self.lambda)
            })
            .sum()
    }
}

#[cfg(test)]
mod tests;
