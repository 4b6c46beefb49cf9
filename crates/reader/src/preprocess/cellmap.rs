//! The map between the cells a source presents (non-zero cells) and the
//! cells of the file, stored as the sorted list of dropped cells only, so it
//! costs memory per dropped cell rather than per cell.

use std::ops::Range;

/// Which cells of a file are kept (non-zero counts) and how kept indices map
/// back to file indices.
///
/// With d_0 < d_1 < ... the dropped file indices and e_j = d_j − j (the
/// number of kept cells before d_j, non-decreasing), kept cell k is file
/// cell `k + #{j : e_j ≤ k}`: one binary search, O(log dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellMap {
    n_total: usize,
    dropped: Vec<usize>,
}

impl CellMap {
    /// A map of `n_total` file cells of which `dropped` (strictly increasing,
    /// each `< n_total`) are left out. Panics otherwise (a caller's bug).
    #[track_caller]
    pub(crate) fn new(n_total: usize, dropped: Vec<usize>) -> Self {
        assert!(
            dropped.windows(2).all(|w| w[0] < w[1]),
            "dropped cells must increase"
        );
        assert!(
            dropped.last().is_none_or(|&d| d < n_total),
            "dropped cell out of range"
        );
        Self { n_total, dropped }
    }

    /// Cells in the file.
    pub fn n_total(&self) -> usize {
        self.n_total
    }

    /// Cells presented (kept).
    pub fn n_kept(&self) -> usize {
        self.n_total - self.dropped.len()
    }

    /// File indices of the dropped cells, increasing.
    pub fn dropped(&self) -> &[usize] {
        &self.dropped
    }

    /// File index of kept cell `kept`. Panics if `kept >= n_kept()`.
    #[track_caller]
    pub fn original(&self, kept: usize) -> usize {
        assert!(
            kept < self.n_kept(),
            "kept cell {kept} out of range ({})",
            self.n_kept()
        );
        // Binary search for #{j : d_j − j ≤ kept} (the predicate is monotone in j).
        let (mut lo, mut hi) = (0, self.dropped.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.dropped[mid] - mid <= kept {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        kept + lo
    }

    /// The file cells spanning kept cells `kept` (first to last kept cell
    /// inclusive; dropped cells inside the span are included). Empty for an
    /// empty range. Panics if `kept.end > n_kept()`.
    #[track_caller]
    pub fn original_span(&self, kept: Range<usize>) -> Range<usize> {
        assert!(
            kept.end <= self.n_kept(),
            "kept cells {kept:?} out of range ({})",
            self.n_kept()
        );
        if kept.is_empty() {
            let s = if kept.start < self.n_kept() {
                self.original(kept.start)
            } else {
                self.n_total
            };
            return s..s;
        }
        self.original(kept.start)..self.original(kept.end - 1) + 1
    }

    /// Kept index of file cell `cell` (the inverse of [`CellMap::original`]),
    /// `None` when it is dropped.
    pub fn kept(&self, cell: usize) -> Option<usize> {
        (!self.is_dropped(cell)).then(|| cell - self.dropped.partition_point(|&d| d < cell))
    }

    /// Whether file cell `cell` is dropped.
    pub fn is_dropped(&self, cell: usize) -> bool {
        self.dropped.binary_search(&cell).is_ok()
    }

    /// Position of the first dropped cell `>= cell` in [`CellMap::dropped`].
    pub(crate) fn first_dropped_from(&self, cell: usize) -> usize {
        self.dropped.partition_point(|&d| d < cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_kept_to_original() {
        // cells 0..10, dropped 0, 3, 4, 9
        let m = CellMap::new(10, vec![0, 3, 4, 9]);
        let kept: Vec<usize> = (0..10).filter(|c| ![0, 3, 4, 9].contains(c)).collect();
        assert_eq!(m.n_kept(), kept.len());
        for (k, &o) in kept.iter().enumerate() {
            assert_eq!(m.original(k), o, "kept {k}");
            assert!(!m.is_dropped(o));
            assert_eq!(m.kept(o), Some(k));
        }
        assert!([0, 3, 4, 9].iter().all(|&d| m.kept(d).is_none()));
        assert_eq!(m.original_span(0..2), 1..3);
        assert_eq!(m.original_span(1..3), 2..6);
        assert_eq!(m.original_span(5..6), 8..9);
        assert_eq!(m.original_span(6..6), 10..10);
        assert_eq!(m.first_dropped_from(2), 1);
    }

    #[test]
    fn no_dropped_is_identity() {
        let m = CellMap::new(5, vec![]);
        assert_eq!(
            (0..5).map(|k| m.original(k)).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(m.original_span(1..4), 1..4);
    }
}
