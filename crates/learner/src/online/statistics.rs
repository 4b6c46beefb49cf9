//! §3 step 2: the sufficient statistics A_i = Σ HᵀH/m_i and
//! B_i = Σ XᵀH/m_i with the anchor's decay and epoch bookkeeping.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::kernels::double::accumulate_xt_h;
use crate::kernels::packed::Precision;
use crate::kernels::single::{scatter_partials_f32, ScatteredPartials};
use crate::online::schedule::IterationInfo;
use crate::online::state::DatasetState;
use crate::sparse::CsrMatrix;

/// Floor written on a zero diagonal entry of A_i (the anchor's 1e-15).
pub(super) const A_DIAG_FLOOR: f64 = 1e-15;
/// §3 step 2's scales for a mini-batch of m_i cells at iteration t: the
/// anchor's decay s(t) (0 at t ≤ 1, 1/m_i at t = 2, (t−2)/(t−1) after)
/// and 1/m_i.
pub(super) fn statistics_scales(info: IterationInfo, m_i: usize) -> (f64, f64) {
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
pub(super) fn update_a(st: &mut DatasetState, new_epoch: bool, s: f64, inv_m: f64, hth: ArrayView2<f64>) {
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
pub(super) fn update_b(
    states: &mut [&mut DatasetState],
    new_epoch: bool,
    scales: &[(f64, f64)],
    sums: &GeneSums,
) {
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
pub(super) enum GeneSums {
    Single(ScatteredPartials),
    Double(Vec<Array2<f64>>),
}

impl GeneSums {
    pub(super) fn new(blocks: &[(&CsrMatrix, ArrayView2<f64>)], precision: Precision) -> Self {
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
    pub(super) fn gene_row(&self, j: usize, g: usize, out: &mut [f64]) {
        match self {
            Self::Single(p) => p.gene_sums(j, g, out),
            Self::Double(m) => out.copy_from_slice(m[j].row(g).as_slice().expect("standard layout")),
        }
    }
}
