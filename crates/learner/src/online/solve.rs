//! §3 step 1 and the final pass: H of blocks of cells by NNLS against a
//! prepared [`HSystem`], with HᵀH and the objective of those cells.

use std::cell::RefCell;

use ndarray::Array2;
use rayon::prelude::*;

use crate::error::LearnerError;
use crate::kernels::double::add_gram_of_rows;
use crate::kernels::pool::BufferPool;
use crate::nnls::{NnlsWorkspace, Start};
use crate::online::objective::{objective_from_sums, ObjectiveParts};
use crate::online::system::HSystem;
use crate::sparse::CsrMatrix;

/// Cells per work unit of an H solve: a unit computes its cells' rows of
/// R, solves their H and adds their share of HᵀH and of the objective,
/// while its rows of X and R are in cache. Fixed, so results do not
/// depend on the number of threads.
pub(super) const SOLVE_ROWS: usize = 256;

/// The H solve of one dataset (or the projection onto W) with the factors
/// it was made from, prepared once ([`OnlineInmf::h_solver`](crate::OnlineInmf::h_solver),
/// [`OnlineInmf::projection_solver`](crate::OnlineInmf::projection_solver)).
pub struct HSolver {
    pub(super) sys: HSystem,
    pub(super) n_genes: usize,
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
pub(super) struct SolvedBlock {
    pub(super) h: Array2<f64>,
    pub(super) hth: Array2<f64>,
    pub(super) objective: ObjectiveParts,
}

/// Solves H for every block `(system, X)` at once: the cells of all blocks
/// are cut into units of [`SOLVE_ROWS`], and each unit computes its rows
/// of R = X·(W+V), solves their H (BPP) and its share of
/// Σ_c r_c·h_c and HᵀH; a block's sums add its units in order. The
/// objective is (§1, `online::objective`) residual = ‖X‖² − 2Σ_c r_c·h_c +
/// tr((W+V)ᵀ(W+V)·HᵀH), penalty = λ tr(VᵀV·HᵀH).
pub(super) fn solve_blocks(blocks: &[(&HSystem, &CsrMatrix)]) -> Result<Vec<SolvedBlock>, LearnerError> {
    let k = blocks.first().map_or(0, |(sys, _)| sys.nnls.k());
    let mut hs: Vec<Array2<f64>> = blocks
        .iter()
        .map(|(sys, x)| {
            assert_eq!(sys.nnls.k(), k, "every system has the same K");
            let rows = H_ROWS.take_one(x.n_rows() * k);
            Array2::from_shape_vec((x.n_rows(), k), rows).expect("rows × K values")
        })
        .collect();
    let mut units = Vec::new();
    for (b, h) in hs.iter_mut().enumerate() {
        let rows = h.as_slice_mut().expect("fresh array");
        for (u, out) in rows.chunks_mut(SOLVE_ROWS * k.max(1)).enumerate() {
            units.push((b, u * SOLVE_ROWS, out));
        }
    }
    let unit_block: Vec<usize> = units.iter().map(|u| u.0).collect();
    // Each unit's HᵀH, zeroed, in one buffer.
    let mut unit_hth = UNIT_GRAMS.take_one(units.len() * k * k);
    let crosses: Vec<Result<f64, LearnerError>> = units
        .into_par_iter()
        .zip(unit_hth.par_chunks_mut((k * k).max(1)))
        .map(|((b, first, out), hth)| {
            let (sys, x) = blocks[b];
            SOLVE_SCRATCH.with_borrow_mut(|(r, ws)| solve_unit(sys, x, first, out, hth, r, ws))
        })
        .collect();
    let mut parts: Vec<(f64, Array2<f64>)> = vec![(0.0, Array2::zeros((k, k))); blocks.len()];
    for ((&b, unit_cross), hth) in unit_block
        .iter()
        .zip(crosses)
        .zip(unit_hth.chunks_exact((k * k).max(1)))
    {
        let (cross, acc) = &mut parts[b];
        *cross += unit_cross?;
        for (a, &v) in acc.iter_mut().zip(hth) {
            *a += v;
        }
    }
    UNIT_GRAMS.give_back_one(unit_hth);
    Ok(blocks
        .iter()
        .zip(hs)
        .zip(parts)
        .map(|(((sys, x), h), (cross, hth))| {
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

/// Returns the H of a step's solved blocks to the pool [`solve_blocks`]
/// takes them from, once the statistics are updated.
pub(super) fn recycle(solved: Vec<SolvedBlock>) {
    H_ROWS.give_back(
        solved
            .into_iter()
            .map(|s| s.h.into_raw_vec_and_offset().0)
            .collect(),
    );
}

/// One unit of [`solve_blocks`]: rows `first..first + out.len() / K` of
/// X; adds the unit's HᵀH into `hth` (K × K, zeroed) and returns
/// Σ_c r_c·h_c.
fn solve_unit(
    sys: &HSystem,
    x: &CsrMatrix,
    first: usize,
    out: &mut [f64],
    hth: &mut [f64],
    r: &mut Vec<f64>,
    ws: &mut NnlsWorkspace,
) -> Result<f64, LearnerError> {
    let k = sys.nnls.k();
    r.clear();
    r.resize(out.len(), 0.0);
    sys.wv.project_rows(x, first, r);
    sys.nnls.solve_rows(r, out, Start::Cold, ws, first)?;
    let mut cross = 0.0;
    for (&a, &h) in r.iter().zip(out.iter()) {
        cross += a * h;
    }
    add_gram_of_rows(out, k, hth);
    Ok(cross)
}

/// H of the blocks of [`solve_blocks`] (cells × K); a step's return here.
static H_ROWS: BufferPool<f64> = BufferPool::new();

/// The units' HᵀH of [`solve_blocks`].
static UNIT_GRAMS: BufferPool<f64> = BufferPool::new();

thread_local! {
    /// A unit's rows of R and its NNLS workspace, one per worker thread.
    static SOLVE_SCRATCH: RefCell<(Vec<f64>, NnlsWorkspace)> = RefCell::default();
}
