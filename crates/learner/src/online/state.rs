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
use rayon::prelude::*;

use crate::error::LearnerError;
use crate::kernels::double::{accumulate_xt_h, add_gram_of_rows, gram_of_rows, CELL_BLOCK};
use crate::kernels::half::HalfRows;
use crate::kernels::packed::{PackedFactor, Precision};
use crate::kernels::single::{padded, scatter_partials_f32, ScatteredPartials};
use crate::nnls::{NnlsWorkspace, PreparedGram, Start};
use crate::online::hals::sweep_w_then_v;
use crate::online::objective::{objective_from_sums, ObjectiveParts};
use crate::online::schedule::IterationInfo;
use crate::online::source::MiniBatch;
use crate::sparse::CsrMatrix;

/// W+V_i packed for R, (W+V_i)ᵀ(W+V_i) and V_iᵀV_i: the parts of an
/// [`HSystem`] before G_i is prepared.
type SystemParts = (PackedFactor, Array2<f64>, Array2<f64>);

/// Floor written on a zero diagonal entry of A_i (the anchor's 1e-15).
const A_DIAG_FLOOR: f64 = 1e-15;

/// Precision of the two sparse products an iteration runs, R = X·(W+V_i)
/// and XᵀH: half (binary16 rows of W+V_i for R, `kernels::half`; f32 rows of
/// H for XᵀH, `kernels::single`; f32 sums, f64 results). R only steers each
/// mini-batch's H; the run's objective moves by < 1e-5 relative against
/// the f64 kernels (tested; 2e-7 against f32 on a 50k-cell run).
const STEP_PRODUCTS: Precision = Precision::Half;

/// Precision of R = X·(W+V_i) in the H solves whose H is a result (the
/// final pass, projection): single (f32 rows and sums, `kernels::single`).
const RESULT_PRODUCTS: Precision = Precision::Single;

/// Cells per work unit of an H solve: a unit computes its cells' rows of
/// R, solves their H and adds their share of HᵀH and of the objective,
/// while its rows of X and R are in cache. Fixed, so results do not
/// depend on the number of threads.
const SOLVE_ROWS: usize = 256;

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

    /// The H system of dataset `dataset` (or of V = `v_override`):
    /// (W+V_i) packed for R = X·(W+V_i), G_i = (W+V_i)ᵀ(W+V_i) + λV_iᵀV_i
    /// prepared for NNLS, and the two Gram parts for the objective
    /// ([`Self::h_systems`] of one V).
    fn h_system(
        &self,
        dataset: usize,
        v_override: Option<ArrayView2<f64>>,
        precision: Precision,
    ) -> Result<HSystem, LearnerError> {
        let v = v_override.unwrap_or(self.datasets[dataset].v.view());
        let mut one = self.h_systems(&[v], precision)?;
        Ok(one.pop().expect("one system per V"))
    }

    /// The H systems of W with each of `vs` (see [`Self::h_system`]). In
    /// single and half precision, one parallel pass over blocks of
    /// [`CELL_BLOCK`] gene rows of every V forms the block's rows of W+V
    /// (packed to f32 in place), its column maxima and its shares of
    /// (W+V)ᵀ(W+V) and VᵀV, added in block order (the bits of
    /// [`gram_of_rows`] and `pack_rows` on the whole W+V); in half
    /// precision the f32 rows are then scaled and rounded to binary16
    /// (`kernels::half`); then each G is prepared.
    fn h_systems(&self, vs: &[ArrayView2<f64>], precision: Precision) -> Result<Vec<HSystem>, LearnerError> {
        let (genes, k) = self.w.dim();
        let parts: Vec<SystemParts> = match precision {
            Precision::Double => vs
                .iter()
                .map(|v| {
                    let wv = &self.w + v;
                    let grams = (gram_of_rows(wv.view()), gram_of_rows(*v));
                    (PackedFactor::new(wv.view(), precision), grams.0, grams.1)
                })
                .collect(),
            Precision::Single | Precision::Half => self.reduced_precision_parts(vs, genes, k, precision)?,
        };
        parts
            .into_par_iter()
            .map(|(wv, wv_gram, v_gram)| {
                let gram = &wv_gram + &(&v_gram * self.lambda);
                Ok(HSystem {
                    wv,
                    nnls: PreparedGram::new(gram.view())?,
                    wv_gram,
                    v_gram,
                    lambda: self.lambda,
                })
            })
            .collect()
    }

    /// The single- and half-precision pass of [`Self::h_systems`]: per V,
    /// W+V packed (f32 rows, or binary16 rows made from them),
    /// (W+V)ᵀ(W+V) and VᵀV.
    fn reduced_precision_parts(
        &self,
        vs: &[ArrayView2<f64>],
        genes: usize,
        k: usize,
        precision: Precision,
    ) -> Result<Vec<SystemParts>, LearnerError> {
        let kp = padded(k);
        let w = self.w.as_standard_layout();
        let w = w.as_slice().expect("standard layout");
        let vs: Vec<_> = vs.iter().map(|v| v.as_standard_layout()).collect();
        let mut packed: Vec<Vec<f32>> = vs.iter().map(|_| vec![0.0f32; genes * kp]).collect();
        let units: Vec<(usize, usize, &mut [f32])> = packed
            .iter_mut()
            .enumerate()
            .flat_map(|(j, rows)| {
                rows.chunks_mut(CELL_BLOCK * kp.max(1))
                    .enumerate()
                    .map(move |(b, out)| (j, b * CELL_BLOCK, out))
            })
            .collect();
        // Per unit: dataset, its shares of (W+V)ᵀ(W+V) and VᵀV, its column maxima.
        type UnitParts = (usize, Vec<f64>, Vec<f64>, Vec<f64>);
        let parts: Vec<UnitParts> = units
            .into_par_iter()
            .map(|(j, g0, out)| {
                let n = out.len() / kp.max(1);
                let span = g0 * k..(g0 + n) * k;
                let v = &vs[j].as_slice().expect("standard layout")[span.clone()];
                let wv: Vec<f64> = w[span].iter().zip(v).map(|(a, b)| a + b).collect();
                let (mut wv_gram, mut v_gram) = (vec![0.0; k * k], vec![0.0; k * k]);
                add_gram_of_rows(&wv, k, &mut wv_gram);
                add_gram_of_rows(v, k, &mut v_gram);
                let mut col_max = vec![0.0f64; k];
                for (dst, src) in out.chunks_exact_mut(kp.max(1)).zip(wv.chunks_exact(k.max(1))) {
                    for ((d, &x), mx) in dst.iter_mut().zip(src).zip(col_max.iter_mut()) {
                        *d = x as f32;
                        // NaN propagates (f64::max would drop it).
                        *mx = if x > *mx || x.is_nan() { x } else { *mx };
                    }
                }
                (j, wv_gram, v_gram, col_max)
            })
            .collect();
        let mut grams = vec![(Array2::<f64>::zeros((k, k)), Array2::<f64>::zeros((k, k))); vs.len()];
        let mut col_max = vec![vec![0.0f64; k]; vs.len()];
        for (j, wv_part, v_part, max_part) in parts {
            let (wv_gram, v_gram) = &mut grams[j];
            for ((o, &a), (q, &b)) in wv_gram
                .iter_mut()
                .zip(&wv_part)
                .zip(v_gram.iter_mut().zip(&v_part))
            {
                *o += a;
                *q += b;
            }
            for (m, &p) in col_max[j].iter_mut().zip(&max_part) {
                *m = if p > *m || p.is_nan() { p } else { *m };
            }
        }
        packed
            .into_iter()
            .zip(grams)
            .zip(col_max)
            .map(|((rows, (wv_gram, v_gram)), col_max)| {
                let wv = match precision {
                    Precision::Half => {
                        // Binary16 would saturate an infinite or NaN entry
                        // into a finite one; f32 carries it into R, where the
                        // H solve reports it. Report it here instead.
                        if let Some(j) = col_max.iter().position(|m| !m.is_finite()) {
                            return Err(LearnerError::Numerical(format!(
                                "W + V has a non-finite entry in factor {j} (the factors diverged)"
                            )));
                        }
                        PackedFactor::from_half_rows(k, HalfRows::from_f32_rows(k, &rows, &col_max))
                    }
                    _ => PackedFactor::from_single_rows(k, rows),
                };
                Ok((wv, wv_gram, v_gram))
            })
            .collect()
    }

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

/// §3 step 2's scales for a mini-batch of m_i cells at iteration t: the
/// anchor's decay s(t) (0 at t ≤ 1, 1/m_i at t = 2, (t−2)/(t−1) after)
/// and 1/m_i.
fn statistics_scales(info: IterationInfo, m_i: usize) -> (f64, f64) {
    let s = match info.t {
        0 | 1 => 0.0,
        2 => 1.0 / m_i as f64,
        t => (t - 2) as f64 / (t - 1) as f64,
    };
    (s, 1.0 / m_i as f64)
}

/// §3 step 2 for A_i: at an epoch boundary A ← A − A_old, A_old ← s·A,
/// else A_old ← s·A_old; then A ← s·A + HᵀH/m_i, zeros on the diagonal
/// → 1e-15.
fn update_a(st: &mut DatasetState, new_epoch: bool, s: f64, inv_m: f64, hth: ArrayView2<f64>) {
    if new_epoch {
        st.a -= &st.a_old;
        st.a_old.assign(&st.a);
        st.a_old *= s;
    } else {
        st.a_old *= s;
    }
    st.a *= s;
    st.a.scaled_add(inv_m, &hth);
    for j in 0..st.a.nrows() {
        if st.a[[j, j]] == 0.0 {
            st.a[[j, j]] = A_DIAG_FLOOR;
        }
    }
}

/// Genes per work unit of [`update_b`].
const B_ROWS: usize = 256;

/// §3 step 2 for every B_i, gene rows in parallel: at an epoch boundary
/// B ← B − B_old, B_old ← s·B, else B_old ← s·B_old; then
/// B ← s·B + (XᵀH)/m_i, with (XᵀH)_g· from `sums` (state j ↔ block j of
/// `sums`, `scales[j]` = (s, 1/m_i)). One pass over each row.
fn update_b(states: &mut [&mut DatasetState], new_epoch: bool, scales: &[(f64, f64)], sums: &GeneSums) {
    let mut units = Vec::new();
    for (j, st) in states.iter_mut().enumerate() {
        let k = st.b.ncols().max(1);
        let DatasetState { b, b_old, .. } = &mut **st;
        let (b, b_old) = (
            b.as_slice_mut().expect("B is in standard layout"),
            b_old.as_slice_mut().expect("B_old is in standard layout"),
        );
        for (u, (rows, old)) in b
            .chunks_mut(B_ROWS * k)
            .zip(b_old.chunks_mut(B_ROWS * k))
            .enumerate()
        {
            units.push((j, u * B_ROWS, k, rows, old));
        }
    }
    units
        .into_par_iter()
        .for_each_init(Vec::new, |xth, (j, g0, k, rows, old)| {
            let (s, inv_m) = scales[j];
            xth.resize(k, 0.0);
            for (i, (row, old)) in rows.chunks_exact_mut(k).zip(old.chunks_exact_mut(k)).enumerate() {
                sums.gene_row(j, g0 + i, xth);
                for ((b, o), &x) in row.iter_mut().zip(old.iter_mut()).zip(xth.iter()) {
                    if new_epoch {
                        *b -= *o;
                        *o = *b * s;
                    } else {
                        *o *= s;
                    }
                    *b = *b * s + inv_m * x;
                }
            }
        });
}

/// (X_jᵀH_j)_g·, the gene rows of each mini-batch's XᵀH, in the products'
/// precision: f32 partial sums per fixed chunk of cells added in f64
/// (`kernels::single`), or the f64 product.
enum GeneSums {
    Single(ScatteredPartials),
    Double(Vec<Array2<f64>>),
}

impl GeneSums {
    fn new(blocks: &[(&CsrMatrix, ArrayView2<f64>)], precision: Precision) -> Self {
        match precision {
            Precision::Single | Precision::Half => Self::Single(scatter_partials_f32(blocks)),
            Precision::Double => Self::Double(
                blocks
                    .iter()
                    .map(|(x, h)| {
                        let mut xth = Array2::zeros((x.n_cols(), h.ncols()));
                        accumulate_xt_h(x, *h, 1.0, xth.view_mut());
                        xth
                    })
                    .collect(),
            ),
        }
    }

    /// Row g of block j's XᵀH into `out` (K).
    fn gene_row(&self, j: usize, g: usize, out: &mut [f64]) {
        match self {
            Self::Single(p) => p.gene_sums(j, g, out),
            Self::Double(m) => out.copy_from_slice(m[j].row(g).as_slice().expect("standard layout")),
        }
    }
}

/// Everything an H solve of one dataset needs from W, V_i and λ.
struct HSystem {
    /// W+V_i, packed for R = X·(W+V_i).
    wv: PackedFactor,
    /// G_i = (W+V_i)ᵀ(W+V_i) + λV_iᵀV_i, prepared for NNLS.
    nnls: PreparedGram,
    /// (W+V_i)ᵀ(W+V_i).
    wv_gram: Array2<f64>,
    /// V_iᵀV_i.
    v_gram: Array2<f64>,
    lambda: f64,
}

/// The H solve of one dataset (or the projection onto W) with the factors
/// it was made from, prepared once ([`OnlineInmf::h_solver`],
/// [`OnlineInmf::projection_solver`]).
pub struct HSolver {
    sys: HSystem,
    n_genes: usize,
}

impl HSolver {
    /// H for cells `x` (cells × genes): row c = argmin_{h ≥ 0}
    /// ‖x_c − (W+V)h‖² + λ‖Vh‖² (§2, with R = X·(W+V) in single
    /// precision), and the objective of those cells.
    pub fn solve(&self, x: &CsrMatrix) -> Result<(Array2<f64>, ObjectiveParts), LearnerError> {
        if x.n_cols() != self.n_genes {
            return Err(LearnerError::InvalidData(format!(
                "block has {} genes, the model {}",
                x.n_cols(),
                self.n_genes
            )));
        }
        let mut solved = solve_blocks(&[(&self.sys, x)])?;
        let s = solved.pop().expect("one block");
        Ok((s.h, s.objective))
    }
}

/// H of one block of cells, with HᵀH and the block's objective.
struct SolvedBlock {
    h: Array2<f64>,
    hth: Array2<f64>,
    objective: ObjectiveParts,
}

/// What one unit of [`solve_blocks`] adds to its block's sums.
struct UnitSums {
    /// Σ_c r_c·h_c over the unit's cells.
    cross: f64,
    /// Σ_c h_c h_cᵀ over the unit's cells (K × K).
    hth: Array2<f64>,
}

/// Solves H for every block `(system, X)` at once: the cells of all blocks
/// are cut into units of [`SOLVE_ROWS`], and each unit computes its rows
/// of R = X·(W+V), solves their H (BPP) and its share of
/// Σ_c r_c·h_c and HᵀH; a block's sums add its units in order. The
/// objective is (§1, `online::objective`) residual = ‖X‖² − 2Σ_c r_c·h_c +
/// tr((W+V)ᵀ(W+V)·HᵀH), penalty = λ tr(VᵀV·HᵀH).
fn solve_blocks(blocks: &[(&HSystem, &CsrMatrix)]) -> Result<Vec<SolvedBlock>, LearnerError> {
    let mut hs: Vec<Array2<f64>> = blocks
        .iter()
        .map(|(sys, x)| Array2::zeros((x.n_rows(), sys.nnls.k())))
        .collect();
    let mut units = Vec::new();
    for (b, h) in hs.iter_mut().enumerate() {
        let k = h.ncols().max(1);
        let rows = h.as_slice_mut().expect("fresh array");
        for (u, out) in rows.chunks_mut(SOLVE_ROWS * k).enumerate() {
            units.push((b, u * SOLVE_ROWS, out));
        }
    }
    let sums: Vec<(usize, Result<UnitSums, LearnerError>)> = units
        .into_par_iter()
        .map_init(
            || (Vec::new(), NnlsWorkspace::default()),
            |(r, ws), (b, first, out)| {
                let (sys, x) = blocks[b];
                (b, solve_unit(sys, x, first, out, r, ws))
            },
        )
        .collect();
    let mut parts: Vec<(f64, Option<Array2<f64>>)> = vec![(0.0, None); blocks.len()];
    for (b, unit) in sums {
        let unit = unit?;
        let (cross, hth) = &mut parts[b];
        *cross += unit.cross;
        match hth {
            Some(acc) => *acc += &unit.hth,
            None => *hth = Some(unit.hth),
        }
    }
    Ok(blocks
        .iter()
        .zip(hs)
        .zip(parts)
        .map(|(((sys, x), h), (cross, hth))| {
            let hth = hth.unwrap_or_else(|| Array2::zeros((h.ncols(), h.ncols())));
            let objective = objective_from_sums(
                x.frobenius_sq(),
                cross,
                hth.view(),
                sys.wv_gram.view(),
                sys.v_gram.view(),
                sys.lambda,
            );
            SolvedBlock { h, hth, objective }
        })
        .collect())
}

/// One unit of [`solve_blocks`]: rows `first..first + out.len() / K` of X.
fn solve_unit(
    sys: &HSystem,
    x: &CsrMatrix,
    first: usize,
    out: &mut [f64],
    r: &mut Vec<f64>,
    ws: &mut NnlsWorkspace,
) -> Result<UnitSums, LearnerError> {
    let k = sys.nnls.k();
    r.clear();
    r.resize(out.len(), 0.0);
    sys.wv.project_rows(x, first, r);
    sys.nnls.solve_rows(r, out, Start::Cold, ws, first)?;
    let mut cross = 0.0;
    for (&a, &h) in r.iter().zip(out.iter()) {
        cross += a * h;
    }
    let mut hth = Array2::zeros((k, k));
    add_gram_of_rows(out, k, hth.as_slice_mut().expect("fresh array"));
    Ok(UnitSums { cross, hth })
}

#[cfg(test)]
mod tests;
