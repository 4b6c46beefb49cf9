use super::*;
use crate::testutil::NarrowRun;

#[test]
fn frobenius_sq_matches_the_plain_sum_for_any_length() {
    // Lengths around the 8-lane blocking, values exactly representable.
    for n in [0usize, 1, 7, 8, 9, 17, 100] {
        let dense: Vec<f32> = (0..n).map(|i| (i % 5) as f32 * 0.5 + 0.25).collect();
        let x = CsrMatrix::from_dense(1, n.max(1), &if n == 0 { vec![0.0] } else { dense.clone() });
        let plain: f64 = dense.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        assert_eq!(x.frobenius_sq(), plain, "n = {n}");
    }
}

#[test]
fn rejects_each_broken_invariant() {
    assert!(CsrMatrix::new(3, vec![], vec![], vec![]).is_err());
    assert!(CsrMatrix::new(3, vec![1, 1], vec![0], vec![1.0]).is_err());
    assert!(CsrMatrix::new(3, vec![0, 1], vec![0, 1], vec![1.0]).is_err());
    assert!(CsrMatrix::new(3, vec![0, 2], vec![0], vec![1.0]).is_err());
    assert!(CsrMatrix::new(3, vec![0, 2, 1], vec![0, 1], vec![1.0, 1.0]).is_err());
    assert!(CsrMatrix::new(3, vec![0, 1], vec![3], vec![1.0]).is_err());
    assert!(CsrMatrix::new(3, vec![0, 2], vec![1, 1], vec![1.0, 1.0]).is_err());
    assert!(CsrMatrix::new(3, vec![0, 2, 3], vec![0, 2, 1], vec![1.0, 2.0, 3.0]).is_ok());
}

#[test]
fn dense_round_trip_and_slicing() {
    let dense = [1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 4.0];
    let m = CsrMatrix::from_dense(3, 3, &dense);
    assert_eq!(m.nnz(), 4);
    assert_eq!(m.row(1).0.len(), 0);
    let s = m.slice_rows(1..3);
    assert_eq!(s.n_rows(), 2);
    assert_eq!(s.row(1), (Cols::Wide(&[1, 2]), &[3.0f32, 4.0][..]));
    let mut a = m.slice_rows(0..1);
    a.append(&s);
    assert_eq!(a, m);
    assert_eq!(m.frobenius_sq(), 30.0);
    assert_eq!(m.to_dense()[[2, 2]], 4.0);
}

/// Non-zeros in plain vectors, shared as a run (what a memory map is
/// to the reader).
#[derive(Debug)]
struct VecRun(Vec<u32>, Vec<f32>);

impl SharedNonZeros for VecRun {
    fn indices(&self) -> Cols<'_> {
        Cols::Wide(&self.0)
    }
    fn data(&self) -> &[f32] {
        &self.1
    }
}

/// `x` with its non-zeros moved to shared runs cut at rows `cuts`
/// (increasing, may repeat; 0 and n_rows implied).
fn shared(x: &CsrMatrix, cuts: &[usize]) -> CsrMatrix {
    shared_as(x, cuts, false)
}

/// [`shared`] with 16-bit indices when `narrow`.
fn shared_as(x: &CsrMatrix, cuts: &[usize], narrow: bool) -> CsrMatrix {
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(x.n_rows());
    let runs: Vec<Arc<dyn SharedNonZeros>> = bounds
        .windows(2)
        .map(|w| {
            let (s, e) = (x.indptr()[w[0]], x.indptr()[w[1]]);
            let (ix, dx) = (x.indices().slice(s..e), x.data()[s..e].to_vec());
            if narrow {
                let ix = ix.iter().map(|c| u16::try_from(c).unwrap()).collect();
                Arc::new(NarrowRun(ix, dx)) as Arc<dyn SharedNonZeros>
            } else {
                Arc::new(VecRun(ix.to_vec(), dx)) as Arc<dyn SharedNonZeros>
            }
        })
        .collect();
    CsrMatrix::from_shared_runs(x.n_cols(), x.indptr().to_vec(), runs).unwrap()
}

/// 9 × 7 with empty rows (1, 4, 5) and rows of 1–5 non-zeros.
fn sample() -> CsrMatrix {
    let dense: Vec<f32> = (0..63)
        .map(|i| {
            let (r, c) = (i / 7, i % 7);
            if [1, 4, 5].contains(&r) || (r * 3 + c * 5) % 4 == 0 {
                0.0
            } else {
                (i % 11) as f32 * 0.3 + 0.1
            }
        })
        .collect();
    CsrMatrix::from_dense(9, 7, &dense)
}

#[test]
fn shared_runs_read_like_owned_buffers() {
    for narrow in [false, true] {
        shared_runs_of_one_width_read_like_owned_buffers(narrow);
    }
}

fn shared_runs_of_one_width_read_like_owned_buffers(narrow: bool) {
    let shared = |x: &CsrMatrix, cuts: &[usize]| shared_as(x, cuts, narrow);
    let x = sample();
    // Runs of rows 0..2, 2..4 (rows 2, 3), 4..6 (empty rows only: no run), 6..9.
    let y = shared(&x, &[2, 4, 6]);
    assert_eq!(y.row(0).0.is_narrow(), narrow);
    assert_eq!(y.runs().count(), 3);
    assert_eq!(y, x);
    assert_eq!(y.nnz(), x.nnz());
    for i in 0..9 {
        assert_eq!(y.row(i), x.row(i), "row {i}");
    }
    // Iteration from any row, into and across runs.
    for start in 0..=9 {
        for end in start..=9 {
            assert!(y.rows(start..end).eq(x.rows(start..end)), "{start}..{end}");
            assert_eq!(y.rows(start..end).len(), end - start);
        }
    }
    assert_eq!(y.frobenius_sq().to_bits(), x.frobenius_sq().to_bits());
    assert_eq!(y.to_dense(), x.to_dense());
    assert_eq!(y.slice_rows(3..8), x.slice_rows(3..8));
    // Appending copies shared runs into owned buffers, on either side.
    let mut a = x.slice_rows(0..2);
    a.append(&y.slice_rows(2..9));
    assert_eq!(a, x);
    let mut b = shared(&x.slice_rows(0..5), &[3]);
    b.append(&shared(&x.slice_rows(5..9), &[2]));
    assert_eq!(b, x);
    assert_eq!(b.runs().count(), 1);
    assert_eq!(b.frobenius_sq().to_bits(), x.frobenius_sq().to_bits());
    let mut c = shared(&x.slice_rows(0..8), &[4]);
    let (cols, vals) = y.row(8);
    c.push_row_cols(cols, vals);
    assert_eq!(c, x);
    // One run reads as contiguous arrays.
    let one = shared(&x, &[]);
    assert_eq!((one.indices(), one.data()), (x.indices(), x.data()));
    // Spares: a shared block keeps only its row pointers.
    let spare = y.clone().into_spare();
    assert_eq!((spare.n_rows(), spare.nnz()), (0, 0));
    let (ip, ix, dx) = y.into_parts();
    assert_eq!((ip.len(), ix.len(), dx.len()), (10, 0, 0));
    assert_eq!(x.clone().into_spare(), x, "an owned block is its own spare");
}

#[test]
fn the_norm_is_kept_until_the_non_zeros_change() {
    let mut x = sample();
    let before = x.frobenius_sq();
    x.push_row(&[0, 6], &[2.0, 3.0]);
    assert_eq!(x.frobenius_sq(), before + 13.0);
    let extra = CsrMatrix::from_dense(1, 7, &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    x.append(&extra);
    assert_eq!(x.frobenius_sq(), before + 14.0);
}

#[test]
#[should_panic(expected = "several runs")]
fn whole_array_views_of_several_runs_panic() {
    let _ = shared(&sample(), &[3]).indices();
}

#[test]
fn shared_runs_are_checked_like_owned_buffers() {
    let run = |ix: &[u32], dx: &[f32]| Arc::new(VecRun(ix.to_vec(), dx.to_vec())) as Arc<dyn SharedNonZeros>;
    let ok = CsrMatrix::from_shared_runs(
        3,
        vec![0, 1, 3],
        vec![run(&[2], &[1.0]), run(&[0, 1], &[1.0, 2.0])],
    );
    assert!(ok.is_ok());
    let err = |indptr: Vec<usize>, runs: Vec<Arc<dyn SharedNonZeros>>| {
        CsrMatrix::from_shared_runs(3, indptr, runs)
            .unwrap_err()
            .to_string()
    };
    assert!(err(vec![1, 3], vec![run(&[0, 1], &[1.0, 2.0])]).contains("start with 0"));
    assert!(err(vec![0, 2], vec![run(&[0, 1], &[1.0])]).contains("differ in length"));
    assert!(err(vec![0, 2], vec![run(&[0], &[1.0]), run(&[1], &[1.0])]).contains("row boundary"));
    assert!(err(vec![0, 1, 3], vec![run(&[2], &[1.0])]).contains("hold 1 non-zeros"));
    assert!(
        err(vec![0, 1, 3], vec![run(&[2], &[1.0]), run(&[0, 3], &[1.0, 2.0])]).contains("row 1: column 3")
    );
    assert!(
        err(vec![0, 1, 3], vec![run(&[2], &[1.0]), run(&[1, 1], &[1.0, 2.0])])
            .contains("row 1: column indices")
    );
    assert!(err(vec![0, 2, 1, 2], vec![run(&[0, 1], &[1.0, 2.0])]).contains("decreases at row 1"));
    // 16-bit runs get the same checks.
    let narrow =
        |ix: &[u16], dx: &[f32]| Arc::new(NarrowRun(ix.to_vec(), dx.to_vec())) as Arc<dyn SharedNonZeros>;
    assert!(CsrMatrix::from_shared_runs(
        3,
        vec![0, 1, 3],
        vec![narrow(&[2], &[1.0]), narrow(&[0, 1], &[1.0, 2.0])]
    )
    .is_ok());
    assert!(err(
        vec![0, 1, 3],
        vec![narrow(&[2], &[1.0]), narrow(&[0, 3], &[1.0, 2.0])]
    )
    .contains("row 1: column 3"));
    assert!(err(
        vec![0, 1, 3],
        vec![run(&[2], &[1.0]), narrow(&[1, 1], &[1.0, 2.0])]
    )
    .contains("row 1: column indices"));
}

/// A run that says its rows were checked before.
#[derive(Debug)]
struct CheckedRun(Vec<u32>, Vec<f32>);

impl SharedNonZeros for CheckedRun {
    fn indices(&self) -> Cols<'_> {
        Cols::Wide(&self.0)
    }
    fn data(&self) -> &[f32] {
        &self.1
    }
    fn rows_checked(&self) -> bool {
        true
    }
}

#[test]
fn runs_checked_before_are_trusted_and_the_rest_still_checked_at_the_right_rows() {
    let run = |ix: &[u32], dx: &[f32]| Arc::new(VecRun(ix.to_vec(), dx.to_vec())) as Arc<dyn SharedNonZeros>;
    let trusted =
        |ix: &[u32], dx: &[f32]| Arc::new(CheckedRun(ix.to_vec(), dx.to_vec())) as Arc<dyn SharedNonZeros>;
    // Rows: 0 = [2], 1 = [] (empty, at the boundary), 2 = [0, 1], 3 = [], 4 = [1, 2].
    let indptr = vec![0, 1, 1, 3, 3, 5];
    let build = |runs| CsrMatrix::from_shared_runs(3, indptr.clone(), runs);
    // A trusted run is not checked again (its bad column passes)...
    let x = build(vec![
        trusted(&[7], &[1.0]),
        run(&[0, 1], &[1.0, 2.0]),
        run(&[1, 2], &[3.0, 4.0]),
    ])
    .unwrap();
    assert_eq!(x.row(0), (Cols::Wide(&[7]), &[1.0f32][..]));
    // ...and rows after it are still checked and named by their row.
    let e = build(vec![
        trusted(&[2], &[1.0]),
        run(&[1, 0], &[1.0, 2.0]),
        run(&[1, 2], &[3.0, 4.0]),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("row 2: column indices"), "{e}");
    let e = build(vec![
        trusted(&[2], &[1.0]),
        trusted(&[0, 1], &[1.0, 2.0]),
        run(&[1, 3], &[3.0, 4.0]),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("row 4: column 3"), "{e}");
    let e = build(vec![
        run(&[2], &[1.0]),
        trusted(&[0, 1], &[1.0, 2.0]),
        run(&[2, 2], &[3.0, 4.0]),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("row 4: column indices"), "{e}");
    // Row boundaries and the row-pointer checks are never skipped.
    let e = CsrMatrix::from_shared_runs(3, vec![0, 2], vec![trusted(&[0], &[1.0]), trusted(&[1], &[1.0])]);
    assert!(e.unwrap_err().to_string().contains("row boundary"));
    let e = CsrMatrix::from_shared_runs(3, vec![0, 2, 1, 2], vec![trusted(&[0, 1], &[1.0, 2.0])]);
    assert!(e.unwrap_err().to_string().contains("decreases at row 1"));
}

#[test]
fn the_norm_is_the_row_norms_added_in_row_order_and_can_be_remembered() {
    let x = sample();
    let rows: Vec<f64> = x.rows(0..x.n_rows()).map(|(_, v)| row_norm_sq(v)).collect();
    let plain: f64 = x.data().iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    assert!((x.frobenius_sq() - plain).abs() <= 1e-12 * plain);
    assert_eq!(
        x.frobenius_sq().to_bits(),
        rows.iter().fold(0.0, |t, v| t + v).to_bits()
    );
    // Remembered from stored row norms: the same bits, no pass needed.
    let y = shared(&x, &[2]);
    y.remember_row_norms_sq(&rows);
    assert_eq!(y.frobenius_sq().to_bits(), x.frobenius_sq().to_bits());
    // Once known, later calls change nothing.
    y.remember_row_norms_sq(&rows);
    assert_eq!(y.frobenius_sq().to_bits(), x.frobenius_sq().to_bits());
    // A row of 8+ values uses all lanes: same as the plain sum on exact values.
    let long: Vec<f32> = (0..19).map(|i| (i % 4) as f32 * 0.5).collect();
    assert_eq!(
        row_norm_sq(&long),
        long.iter().map(|&v| f64::from(v * v)).sum::<f64>()
    );
    assert_eq!(row_norm_sq(&[]), 0.0);
}

#[test]
#[should_panic(expected = "one norm per row")]
fn remembering_norms_of_the_wrong_length_panics() {
    sample().remember_row_norms_sq(&[1.0]);
}

proptest::proptest! {
    /// Any row-aligned cut into shared runs, with 32- or 16-bit column
    /// indices, reads, sums and multiplies to the same bits as the
    /// owned matrix.
    #[test]
    fn any_cut_into_shared_runs_gives_the_same_bits(
        narrow in proptest::bool::ANY,
        rows in 1usize..40,
        cols in 1usize..12,
        k in 1usize..25,
        density in 0.0f64..1.0,
        seed in 0u64..1000,
        cut_seeds in proptest::collection::vec(0usize..1000, 0..6),
    ) {
        let dense: Vec<f32> = (0..rows * cols)
            .map(|i| {
                let h = (i as u64 + 1).wrapping_mul(6364136223846793005).wrapping_add(seed.wrapping_mul(1442695040888963407));
                let u = (h >> 11) as f64 / (1u64 << 53) as f64;
                if u < density { (u * 7.0 + 0.1) as f32 } else { 0.0 }
            })
            .collect();
        let x = CsrMatrix::from_dense(rows, cols, &dense);
        let mut cuts: Vec<usize> = cut_seeds.iter().map(|c| c % (rows + 1)).collect();
        cuts.sort_unstable();
        let y = shared_as(&x, &cuts, narrow);
        proptest::prop_assert_eq!(&y, &x);
        proptest::prop_assert_eq!(y.frobenius_sq().to_bits(), x.frobenius_sq().to_bits());
        let m = ndarray::Array2::from_shape_fn((cols, k), |(g, j)| ((g * 5 + j * 3) % 7) as f64 * 0.31 + 0.02);
        let h = ndarray::Array2::from_shape_fn((rows, k), |(c, j)| ((c * 3 + j) % 5) as f64 * 0.17);
        let same = |a: &ndarray::Array2<f64>, b: &ndarray::Array2<f64>| a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
        proptest::prop_assert!(same(&crate::project_f32(&y, m.view()), &crate::project_f32(&x, m.view())));
        proptest::prop_assert!(same(&crate::project(&y, m.view()), &crate::project(&x, m.view())));
        proptest::prop_assert!(same(&crate::project_f16(&y, m.view()), &crate::project_f16(&x, m.view())));
        let (mut by, mut bx) = (ndarray::Array2::<f64>::zeros((cols, k)), ndarray::Array2::<f64>::zeros((cols, k)));
        crate::accumulate_xt_h_f32(&y, h.view(), 0.5, by.view_mut());
        crate::accumulate_xt_h_f32(&x, h.view(), 0.5, bx.view_mut());
        proptest::prop_assert!(same(&by, &bx));
        crate::accumulate_xt_h(&y, h.view(), 0.5, by.view_mut());
        crate::accumulate_xt_h(&x, h.view(), 0.5, bx.view_mut());
        proptest::prop_assert!(same(&by, &bx));
    }
}
