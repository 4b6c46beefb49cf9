//! Online iNMF state and one iteration (ALGORITHMS.md §3; Gao et al. 2021,
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
//! pass) run in single precision with f64 results ([`crate::project_f32`],
//! [`crate::accumulate_xt_h_f32`]); everything else is f64.
//!
//! Because every dataset's statistics are divided by m_i and all share t,
//! the W update weighs datasets equally, not by cell count (batch iNMF
//! weighs by cells). This is the anchor's behaviour.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use crate::error::LearnerError;
use crate::hals::sweep_w_then_v;
use crate::kernels::gram_of_rows;
use crate::kernels_f32::{accumulate_xt_h_f32, project_f32};
use crate::nnls::nnls_bpp;
use crate::objective::{block_objective, block_objective_with_gram, ObjectiveParts};
use crate::schedule::IterationInfo;
use crate::source::MiniBatch;
use crate::sparse::CsrMatrix;

/// Floor written on a zero diagonal entry of A_i (the anchor's 1e-15).
const A_DIAG_FLOOR: f64 = 1e-15;

/// The two sparse products an iteration runs: R = X·(W+V_i) and
/// B ← B + s·XᵀH.
#[derive(Clone, Copy)]
struct Products {
    project: fn(&CsrMatrix, ArrayView2<f64>) -> Array2<f64>,
    accumulate: fn(&CsrMatrix, ArrayView2<f64>, f64, ArrayViewMut2<f64>),
}

/// What online learning runs: single-precision products (f32 factor rows
/// and sums, f64 results; `kernels_f32`), ≈1.3–1.9× the f64 kernels' speed.
const F32_PRODUCTS: Products = Products {
    project: project_f32,
    accumulate: accumulate_xt_h_f32,
};

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

    /// (W+V_i) and G_i = (W+V_i)ᵀ(W+V_i) + λV_iᵀV_i, with the two Gram parts.
    fn h_system(&self, dataset: usize, v_override: Option<ArrayView2<f64>>) -> HSystem {
        let v = v_override.unwrap_or(self.datasets[dataset].v.view());
        let wv = &self.w + &v;
        let (wv_gram, v_gram) = rayon::join(|| gram_of_rows(wv.view()), || gram_of_rows(v));
        let gram = &wv_gram + &(&v_gram * self.lambda);
        HSystem {
            wv,
            wv_gram,
            v_gram,
            gram,
        }
    }

    /// One online iteration (§3 steps 1–3) on one mini-batch per learned
    /// dataset. `batches` must hold exactly one batch per non-frozen dataset.
    pub fn step(
        &mut self,
        info: IterationInfo,
        batches: &[MiniBatch],
        hals_sweeps: usize,
    ) -> Result<StepReport, LearnerError> {
        self.step_with(info, batches, hals_sweeps, F32_PRODUCTS)
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
        let report = match self.solve_and_accumulate(info, &batches, F32_PRODUCTS) {
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
        products: Products,
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
        products: Products,
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
                return Err(LearnerError::InvalidData(format!(
                    "mini-batch for frozen dataset {i}"
                )));
            }
            if std::mem::replace(&mut seen[i], true) {
                return Err(LearnerError::InvalidData(format!(
                    "two mini-batches for dataset {i} in one iteration"
                )));
            }
            if mb.x.n_cols() != self.n_genes() {
                return Err(LearnerError::InvalidData(format!(
                    "mini-batch of dataset {i} has {} genes, the model {}",
                    mb.x.n_cols(),
                    self.n_genes()
                )));
            }
            if mb.n_cells() == 0 {
                return Err(LearnerError::InvalidData(format!(
                    "empty mini-batch for dataset {i}"
                )));
            }
        }
        // Step 1 for every dataset at once (each depends only on W and its
        // own V_i); every dataset's arithmetic is unchanged, so results do
        // not depend on the number of threads.
        let solved: Vec<(Array2<f64>, Array2<f64>, ObjectiveParts)> = batches
            .par_iter()
            .map(|mb| {
                let sys = self.h_system(mb.dataset, None);
                let r = (products.project)(&mb.x, sys.wv.view());
                let h = nnls_bpp(sys.gram.view(), r.view())?;
                let hth = gram_of_rows(h.view());
                let objective = block_objective_with_gram(
                    mb.x.frobenius_sq(),
                    r.view(),
                    h.view(),
                    hth.view(),
                    sys.wv_gram.view(),
                    sys.v_gram.view(),
                    self.lambda,
                );
                Ok((h, hth, objective))
            })
            .collect::<Result<_, LearnerError>>()?;
        for (mb, (_, _, objective)) in batches.iter().zip(&solved) {
            report.objective += *objective;
            report.cells += mb.n_cells();
        }
        // Step 2, every dataset's statistics at once (disjoint states).
        let mut slots: Vec<Option<&mut DatasetState>> = self.datasets.iter_mut().map(Some).collect();
        let work: Vec<_> = batches
            .iter()
            .zip(solved)
            .map(|(mb, (h, hth, _))| (mb, slots[mb.dataset].take().expect("checked above"), h, hth))
            .collect();
        work.into_par_iter()
            .for_each(|(mb, st, h, hth)| update_statistics(st, info, &mb.x, h.view(), hth.view(), products));
        Ok(report)
    }

    /// One Gauss–Seidel HALS sweep: W from all datasets, then each learned
    /// V_i ([`crate::update_w`], [`crate::update_v`]; fused per gene block).
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
    /// objective of those cells: the final pass of §3 calls it block by block.
    pub fn solve_h(
        &self,
        dataset: usize,
        x: &CsrMatrix,
    ) -> Result<(Array2<f64>, ObjectiveParts), LearnerError> {
        self.solve_h_with(dataset, x, None, F32_PRODUCTS)
    }

    /// Scenario 3 (projection): H = NNLS with G = WᵀW, R = X·W (V treated as 0).
    pub fn project_h(&self, x: &CsrMatrix) -> Result<(Array2<f64>, ObjectiveParts), LearnerError> {
        let zeros = Array2::zeros(self.w.dim());
        self.solve_h_with(0, x, Some(zeros.view()), F32_PRODUCTS)
    }

    fn solve_h_with(
        &self,
        dataset: usize,
        x: &CsrMatrix,
        v: Option<ArrayView2<f64>>,
        products: Products,
    ) -> Result<(Array2<f64>, ObjectiveParts), LearnerError> {
        if v.is_none() && dataset >= self.datasets.len() {
            return Err(LearnerError::InvalidData(format!("unknown dataset {dataset}")));
        }
        if x.n_cols() != self.n_genes() {
            return Err(LearnerError::InvalidData(format!(
                "block has {} genes, the model {}",
                x.n_cols(),
                self.n_genes()
            )));
        }
        let sys = self.h_system(dataset, v);
        let r = (products.project)(x, sys.wv.view());
        let h = nnls_bpp(sys.gram.view(), r.view())?;
        let obj = block_objective(
            x.frobenius_sq(),
            r.view(),
            h.view(),
            sys.wv_gram.view(),
            sys.v_gram.view(),
            self.lambda,
        );
        Ok((h, obj))
    }

    /// Σ over datasets of the HALS surrogate S_i = tr((W+V_i)ᵀ(W+V_i)A_i) − 2tr((W+V_i)ᵀB_i) + λtr(V_iᵀV_iA_i).
    pub fn surrogate(&self) -> f64 {
        self.datasets
            .iter()
            .map(|d| crate::hals::surrogate(self.w.view(), d.v.view(), d.a.view(), d.b.view(), self.lambda))
            .sum()
    }
}

/// §3 step 2 for one dataset: forget statistics older than ~2 epochs at an
/// epoch boundary, then A_i ← s·A_i + HᵀH/m_i, B_i ← s·B_i + XᵀH/m_i with
/// the anchor's s(t).
fn update_statistics(
    st: &mut DatasetState,
    info: IterationInfo,
    x: &CsrMatrix,
    h: ArrayView2<f64>,
    hth: ArrayView2<f64>,
    products: Products,
) {
    let m_i = x.n_rows();
    let s = match info.t {
        0 | 1 => 0.0,
        2 => 1.0 / m_i as f64,
        t => (t - 2) as f64 / (t - 1) as f64,
    };
    if info.new_epoch {
        st.a -= &st.a_old;
        st.b -= &st.b_old;
        st.a_old.assign(&st.a);
        st.a_old *= s;
        st.b_old.assign(&st.b);
        st.b_old *= s;
    } else {
        st.a_old *= s;
        st.b_old *= s;
    }
    let inv_m = 1.0 / m_i as f64;
    st.a *= s;
    st.a.scaled_add(inv_m, &hth);
    st.b *= s;
    (products.accumulate)(x, h, inv_m, st.b.view_mut());
    for j in 0..st.a.nrows() {
        if st.a[[j, j]] == 0.0 {
            st.a[[j, j]] = A_DIAG_FLOOR;
        }
    }
}

struct HSystem {
    wv: Array2<f64>,
    wv_gram: Array2<f64>,
    v_gram: Array2<f64>,
    gram: Array2<f64>,
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::kernels::{accumulate_xt_h, project};
    use crate::testutil::{max_rel_diff, planted_w, random_sparse};

    /// The f64 kernels: the slow, exact reference for the f32 products.
    const F64_PRODUCTS: Products = Products {
        project,
        accumulate: accumulate_xt_h,
    };

    #[test]
    fn releasing_the_batches_during_hals_changes_no_bit_and_releases_once() {
        let (genes, k, cells) = (120, 6, 400);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let w = planted_w(genes, k, &mut rng);
        let vs: Vec<_> = (0..2).map(|_| planted_w(genes, k, &mut rng) * 0.2).collect();
        let mut plain = OnlineInmf::new(w, vs, 5.0).unwrap();
        let mut releasing = plain.clone();
        let data: Vec<CsrMatrix> = (0..2)
            .map(|_| random_sparse(cells, genes, 0.2, &mut rng))
            .collect();
        let batches_at = |lo: usize| -> Vec<MiniBatch> {
            data.iter()
                .enumerate()
                .map(|(d, x)| MiniBatch {
                    dataset: d,
                    cells: std::iter::once(lo..lo + 100).collect(),
                    x: x.slice_rows(lo..lo + 100),
                })
                .collect()
        };
        let released = std::sync::Mutex::new(Vec::new());
        for t in 1..=6 {
            let info = IterationInfo {
                t,
                epoch: t / 4,
                new_epoch: t % 4 == 0,
            };
            let lo = (t - 1) % 4 * 100;
            let a = plain.step(info, &batches_at(lo), 2).unwrap();
            let b = releasing
                .step_releasing(info, batches_at(lo), 2, |b| {
                    released.lock().unwrap().push(b.len())
                })
                .unwrap();
            assert_eq!(a, b);
            assert_eq!(plain, releasing, "iteration {t}");
        }
        assert_eq!(*released.lock().unwrap(), vec![2; 6]);
        // A refused iteration still hands its batches back.
        let mut bad = batches_at(0);
        bad[1].dataset = 0;
        let info = IterationInfo {
            t: 7,
            epoch: 1,
            new_epoch: false,
        };
        let e = releasing
            .step_releasing(info, bad, 1, |b| released.lock().unwrap().push(b.len()))
            .unwrap_err();
        assert!(e.to_string().contains("two mini-batches"), "{e}");
        assert_eq!(released.lock().unwrap().len(), 7);
    }

    #[test]
    fn f32_products_move_the_online_objective_by_less_than_1e_5() {
        let (genes, k, cells) = (300, 20, 1200);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let w = planted_w(genes, k, &mut rng);
        let vs: Vec<_> = (0..2).map(|_| planted_w(genes, k, &mut rng) * 0.2).collect();
        let mut fast = OnlineInmf::new(w, vs, 5.0).unwrap();
        let mut exact = fast.clone();
        let data: Vec<CsrMatrix> = (0..2)
            .map(|_| random_sparse(cells, genes, 0.2, &mut rng))
            .collect();
        let (mut obj_fast, mut obj_exact) = (0.0, 0.0);
        for t in 1..=12 {
            let lo = (t - 1) % 4 * (cells / 4);
            let batches: Vec<MiniBatch> = data
                .iter()
                .enumerate()
                .map(|(d, x)| MiniBatch {
                    dataset: d,
                    cells: std::iter::once(lo..lo + cells / 4).collect(),
                    x: x.slice_rows(lo..lo + cells / 4),
                })
                .collect();
            let info = IterationInfo {
                t,
                epoch: t / 4,
                new_epoch: t % 4 == 0,
            };
            obj_fast = fast.step(info, &batches, 1).unwrap().objective.total();
            obj_exact = exact
                .step_with(info, &batches, 1, F64_PRODUCTS)
                .unwrap()
                .objective
                .total();
        }
        // Different bits (the f32 kernels ran), the same objective to 1e-5.
        assert_ne!(obj_fast, obj_exact);
        assert!(
            ((obj_fast - obj_exact) / obj_exact).abs() < 1e-5,
            "{obj_fast} vs {obj_exact}"
        );
        assert!(max_rel_diff(fast.w.view(), exact.w.view()) < 1e-4);
        let (h_fast, o_fast) = fast.solve_h(1, &data[1]).unwrap();
        let (h_exact, o_exact) = fast.solve_h_with(1, &data[1], None, F64_PRODUCTS).unwrap();
        assert!(((o_fast.total() - o_exact.total()) / o_exact.total()).abs() < 1e-5);
        assert!(max_rel_diff(h_fast.view(), h_exact.view()) < 1e-3);
    }
}
