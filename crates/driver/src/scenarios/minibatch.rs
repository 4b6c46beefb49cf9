//! The mini-batch size of a learning phase (`inmf run`, `inmf add`) when
//! none is given: chosen from the cells of the datasets being learned
//! (docs/algorithms.md §3, "Mini-batch size").
//!
//! With N = Σ n_i cells learned and n_min the smallest dataset:
//!
//! 1. b = ⌈N / 10⌉, about [`ITERATIONS_PER_EPOCH`] iterations per epoch;
//! 2. raised to ⌈10·N / n_min⌉ if that is larger, so that every dataset
//!    contributes at least [`MIN_SHARE`] cells per iteration;
//! 3. at most [`MAX_CHOSEN`] = 5000 (the reference's default), which
//!    bounds the memory of a mini-batch; so data of 50,000 cells or more
//!    get the reference's 5000;
//! 4. but at least ⌈N / n_min⌉, so that no dataset gets 0 cells (only very
//!    unbalanced data reach this above 5000);
//! 5. at most N.
//!
//! A size given with `--batch-size` or `batch_size` is used as it is (and
//! refused with advice by the schedule when it does not fit the data).

use std::fmt::Write;

/// Iterations per epoch the chosen mini-batch aims at. The statistics A_i,
/// B_i are running means over mini-batches, the first mini-batch's are
/// effectively discarded, and at every epoch boundary the statistics older
/// than the previous boundary are subtracted (§3 step 2): with 10
/// mini-batches per epoch the discarded batch is a tenth of the first
/// epoch, the statistics are means over 10–20 mini-batches rather than one
/// or two, and the default 5 epochs make 50 updates of W and V_i — more
/// than the 30 alternating iterations of rliger's batch `optimizeALS`.
pub const ITERATIONS_PER_EPOCH: usize = 10;

/// Cells per iteration the chosen mini-batch gives at least to every
/// dataset (when the data allow it). A dataset's share m_i is
/// n_i/N × batch, rounded; with at least 10 cells the rounding moves how
/// often it is passed over, relative to the first dataset that defines
/// the epoch, by at most 5 %.
pub const MIN_SHARE: usize = 10;

/// The largest mini-batch chosen from the data: the reference's default
/// (rliger, RcppPlanc), reached by data of 50,000 cells or more.
pub const MAX_CHOSEN: usize = 5000;

/// Where the mini-batch size came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `--batch-size` or `batch_size` in the configuration.
    Given,
    /// ⌈N / 10⌉: about 10 iterations per epoch.
    Iterations,
    /// ⌈10·N / n_min⌉: the smallest dataset gets 10 cells per iteration.
    SmallestShare,
    /// The cap, 5000.
    Cap,
    /// ⌈N / n_min⌉ above the cap: the smallest dataset gets 1 cell.
    OneCell,
    /// Every cell: the data have fewer cells than the rule asks for.
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
    let for_iterations = total.div_ceil(ITERATIONS_PER_EPOCH);
    let for_share = MIN_SHARE.saturating_mul(total).div_ceil(smallest);
    let (mut size, mut source) = if for_share > for_iterations {
        (for_share, Source::SmallestShare)
    } else {
        (for_iterations, Source::Iterations)
    };
    if size > MAX_CHOSEN {
        (size, source) = (MAX_CHOSEN, Source::Cap);
    }
    let for_one_cell = total.div_ceil(smallest);
    if size < for_one_cell {
        (size, source) = (for_one_cell, Source::OneCell);
    }
    if size >= total {
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
            Source::Iterations => format!(
                "chosen from the data: ⌈cells / {ITERATIONS_PER_EPOCH}⌉ for about \
                 {ITERATIONS_PER_EPOCH} iterations per epoch"
            ),
            Source::SmallestShare => format!(
                "chosen from the data: large enough to give the smallest dataset {MIN_SHARE} cells \
                 per iteration"
            ),
            Source::Cap => format!(
                "chosen from the data: the reference's {MAX_CHOSEN}, since ⌈cells / \
                 {ITERATIONS_PER_EPOCH}⌉ is more"
            ),
            Source::OneCell => format!(
                "chosen from the data: above the usual {MAX_CHOSEN} so that the smallest dataset \
                 gets a cell per iteration"
            ),
            Source::AllCells => format!("chosen from the data: all {cells} cells, the data are that small"),
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

    /// The plan the learner makes of a chosen size: its shares and
    /// iterations per epoch.
    fn plan(cells: &[usize]) -> (Vec<usize>, f64) {
        let ds: Vec<(usize, usize)> = cells.iter().copied().enumerate().collect();
        let b = chosen(cells).size;
        let p = MiniBatchPlan::new(&ds, b, 1000, 5, 1)
            .unwrap_or_else(|e| panic!("{cells:?} with a chosen mini-batch of {b}: {e}"));
        (p.sizes().to_vec(), p.n_iterations() as f64 / 5.0)
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
    fn large_data_get_the_reference_default() {
        for cells in [
            vec![60_000],
            vec![30_000, 20_001],
            vec![400_000, 300_000, 300_000],
        ] {
            assert_eq!(
                chosen(&cells),
                MiniBatchSize {
                    size: 5000,
                    source: Source::Cap
                },
                "{cells:?}"
            );
        }
        // At 50,000 cells the iteration target meets the cap, below it binds.
        assert_eq!(chosen(&[30_000, 20_000]).size, 5000);
        assert_eq!(chosen(&[25_000, 24_990]).size, 4999);
    }

    #[test]
    fn small_balanced_data_get_about_ten_iterations_per_epoch() {
        for cells in [
            vec![750, 806],
            vec![300, 300],
            vec![290, 480, 430],
            vec![3813],
            vec![1000, 1000],
            vec![12_000, 10_000, 8_000],
        ] {
            let b = chosen(&cells);
            let n: usize = cells.iter().sum();
            assert_eq!(b.source, Source::Iterations, "{cells:?}");
            assert_eq!(b.size, n.div_ceil(10), "{cells:?}");
            let (shares, per_epoch) = plan(&cells);
            assert!((9.0..=11.0).contains(&per_epoch), "{cells:?}: {per_epoch}");
            assert!(shares.iter().all(|&m| m >= MIN_SHARE), "{cells:?}: {shares:?}");
        }
        assert_eq!(chosen(&[750, 806]).size, 156);
    }

    #[test]
    fn a_small_dataset_among_large_ones_still_gets_ten_cells() {
        let b = chosen(&[1000, 20]);
        assert_eq!(
            b,
            MiniBatchSize {
                size: 510,
                source: Source::SmallestShare
            }
        );
        assert_eq!(plan(&[1000, 20]).0, [500, 10]);
        assert_eq!(chosen(&[100, 100]).size, 20);
        assert_eq!(plan(&[100, 100]).0, [10, 10]);
        // One dataset of 30 cells: 10 cells per iteration, not 3.
        assert_eq!(
            chosen(&[30]),
            MiniBatchSize {
                size: 10,
                source: Source::SmallestShare
            }
        );
    }

    #[test]
    fn tiny_data_learn_from_all_cells() {
        for cells in [vec![5, 5], vec![8], vec![1], vec![40, 3]] {
            let n: usize = cells.iter().sum();
            assert_eq!(
                chosen(&cells),
                MiniBatchSize {
                    size: n,
                    source: Source::AllCells
                },
                "{cells:?}"
            );
            assert_eq!(plan(&cells).0, cells);
        }
    }

    #[test]
    fn the_cap_yields_only_so_that_every_dataset_gets_a_cell() {
        // 5000 gives the 300-cell dataset 1.5 → 1 cell: the cap holds.
        assert_eq!(chosen(&[1_000_000, 300]).source, Source::Cap);
        assert_eq!(plan(&[1_000_000, 300]).0[1], 1);
        // 5000 would give the 50-cell dataset 0.25 → 0 cells.
        let b = chosen(&[1_000_000, 50]);
        assert_eq!(
            b,
            MiniBatchSize {
                size: 20_001,
                source: Source::OneCell
            }
        );
        assert_eq!(plan(&[1_000_000, 50]).0, [20_000, 1]);
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
                    let (shares, _) = plan(&cells);
                    if c.source != Source::Cap && c.source != Source::OneCell {
                        for (&m, &ni) in shares.iter().zip(&cells) {
                            assert!(m >= MIN_SHARE.min(ni), "{cells:?}: {shares:?}");
                        }
                    }
                    // Above the cap only as far as a cell for the smallest dataset needs.
                    let smallest = *cells.iter().min().unwrap();
                    assert!(c.size <= MAX_CHOSEN.max(n.div_ceil(smallest)), "{cells:?}: {c:?}");
                }
            }
        }
    }

    #[test]
    fn the_log_line_names_the_size_the_shares_and_the_reason() {
        let b = chosen(&[750, 806]);
        let line = b.describe(&["ctrl".into(), "stim".into()], &[75, 81], 50, 5);
        assert_eq!(
            line,
            "mini-batch: 156 cells per iteration (ctrl 75, stim 81), 50 iterations in 5 epochs; \
             chosen from the data: ⌈cells / 10⌉ for about 10 iterations per epoch (--batch-size sets it)"
        );
        let given = choose(Some(300), &[750, 806]).describe(&["a".into()], &[300], 13, 5);
        assert!(given.ends_with("as given (--batch-size or batch_size in the configuration)"));
        for cells in [vec![1_000_000], vec![1000, 20], vec![1_000_000, 50], vec![5, 5]] {
            let line = chosen(&cells).describe(&["a".into()], &[1], 1, 1);
            assert!(line.contains("chosen from the data"), "{line}");
        }
    }
}
