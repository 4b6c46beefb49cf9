//! Which cells each online iteration reads (docs/algorithms.md §3, "Mini-batches").
//!
//! Every iteration takes m_i = round(n_i / Σ_j n_j × batch_size) cells from
//! every dataset being learned. Each dataset's cells are cut into
//! consecutive blocks of `shuffle_block` cells; the block order is permuted
//! at every pass over the dataset (cells stay in order inside a block), so
//! reads stay contiguous. An epoch is one pass over the first dataset: the
//! epoch after iteration t is E(t) = ⌊t·m_1 / n_1⌋, and the run ends after
//! T = ⌈epochs·n_1 / m_1⌉ iterations.

use std::ops::Range;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::LearnerError;

/// What one iteration needs besides its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IterationInfo {
    /// 1-based iteration counter t (restarts at 1 for each learning phase).
    pub t: usize,
    /// E(t): epochs of the first dataset completed once this iteration is done.
    pub epoch: usize,
    /// E(t) > E(t−1): this iteration crosses an epoch boundary, so statistics
    /// older than ~2 epochs are forgotten (§3 step 2).
    pub new_epoch: bool,
}

/// One iteration's reads: for each learned dataset, its id and the runs of
/// cells (source cell numbering) that form its mini-batch, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IterationPlan {
    /// Counters of the iteration.
    pub info: IterationInfo,
    /// `(dataset id, runs of cells)` for every learned dataset, in plan order.
    pub batches: Vec<(usize, Vec<Range<usize>>)>,
}

/// The most iterations a plan may have (2⁴⁰: centuries of learning at any
/// speed, far below where iteration counters overflow).
pub const MAX_ITERATIONS: usize = 1 << 40;

/// The deterministic schedule of an online run: mini-batch sizes, number of
/// iterations and the cells of every iteration, derived from the seed.
#[derive(Debug, Clone)]
pub struct MiniBatchPlan {
    datasets: Vec<(usize, usize)>,
    sizes: Vec<usize>,
    shuffle_block: usize,
    epochs: usize,
    seed: u64,
    n_iterations: usize,
}

impl MiniBatchPlan {
    /// Plans `epochs` epochs over `datasets` = `(dataset id, number of cells)`
    /// (the first entry defines the epoch), `batch_size` cells per iteration
    /// in total, blocks of `shuffle_block` cells, permutations seeded by `seed`.
    ///
    /// Errors when a dataset would get m_i < 1 or m_i > n_i cells, with advice.
    pub fn new(
        datasets: &[(usize, usize)],
        batch_size: usize,
        shuffle_block: usize,
        epochs: usize,
        seed: u64,
    ) -> Result<Self, LearnerError> {
        if datasets.is_empty() {
            return Err(LearnerError::InvalidParameter("no dataset to learn from".into()));
        }
        if batch_size == 0 || shuffle_block == 0 || epochs == 0 {
            return Err(LearnerError::InvalidParameter(
                "batch size, shuffle block and epochs must all be at least 1".into(),
            ));
        }
        let total: usize = datasets.iter().map(|d| d.1).sum();
        let mut sizes = Vec::with_capacity(datasets.len());
        for &(id, n) in datasets {
            let m = (n as f64 / total as f64 * batch_size as f64).round() as usize;
            if m < 1 {
                return Err(LearnerError::InvalidParameter(format!(
                    "dataset {id} has {n} of {total} cells, so a mini-batch of {batch_size} cells \
                     gives it 0 cells per iteration; increase the mini-batch size to at least {} \
                     or leave this dataset out",
                    (total as f64 / n.max(1) as f64 * 0.5).ceil() as usize
                ))
                .in_dataset(id));
            }
            if m > n {
                return Err(LearnerError::InvalidParameter(format!(
                    "dataset {id} has {n} cells but a mini-batch of {batch_size} cells would take \
                     {m} of them per iteration; decrease the mini-batch size to at most {total}"
                ))
                .in_dataset(id));
            }
            sizes.push(m);
        }
        let (n1, m1) = (datasets[0].1, sizes[0]);
        let n_iterations = epochs
            .checked_mul(n1)
            .map(|cells| cells.div_ceil(m1))
            .filter(|&t| t <= MAX_ITERATIONS)
            .ok_or_else(|| {
                LearnerError::InvalidParameter(format!(
                    "{epochs} epochs over {n1} cells in mini-batches of {m1} would be more than \
                     {MAX_ITERATIONS} iterations; choose fewer epochs"
                ))
            })?;
        Ok(Self {
            datasets: datasets.to_vec(),
            sizes,
            shuffle_block,
            epochs,
            seed,
            n_iterations,
        })
    }

    /// m_i, in plan order.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// T = ⌈epochs·n_1/m_1⌉.
    pub fn n_iterations(&self) -> usize {
        self.n_iterations
    }

    /// Number of epochs planned.
    pub fn epochs(&self) -> usize {
        self.epochs
    }

    /// Counters of iteration `t` (1-based).
    pub fn info(&self, t: usize) -> IterationInfo {
        let (n1, m1) = (self.datasets[0].1, self.sizes[0]);
        let e = |t: usize| t * m1 / n1;
        IterationInfo {
            t,
            epoch: e(t),
            new_epoch: t >= 1 && e(t) > e(t - 1),
        }
    }

    /// The iterations in order (a fresh, identical sequence on every call).
    pub fn iter(&self) -> impl Iterator<Item = IterationPlan> + Send + 'static {
        let mut cursors: Vec<BlockCursor> = self
            .datasets
            .iter()
            .map(|&(id, n)| BlockCursor::new(n, self.shuffle_block, self.seed, id))
            .collect();
        let sizes = self.sizes.clone();
        let ids: Vec<usize> = self.datasets.iter().map(|d| d.0).collect();
        let this = self.clone();
        (1..=self.n_iterations).map(move |t| IterationPlan {
            info: this.info(t),
            batches: ids
                .iter()
                .zip(&sizes)
                .zip(cursors.iter_mut())
                .map(|((&id, &m), cur)| (id, cur.take(m)))
                .collect(),
        })
    }
}

/// Walks one dataset's cells in shuffled block order, pass after pass.
#[derive(Debug, Clone)]
struct BlockCursor {
    n_cells: usize,
    block: usize,
    order: Vec<usize>,
    /// Position in cells along the current pass's block order.
    pos: usize,
    rng: ChaCha8Rng,
}

impl BlockCursor {
    fn new(n_cells: usize, block: usize, seed: u64, dataset: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Stream 0 is initialisation; dataset d permutes on stream d + 1.
        rng.set_stream(dataset as u64 + 1);
        let mut c = Self {
            n_cells,
            block,
            order: (0..n_cells.div_ceil(block)).collect(),
            pos: 0,
            rng,
        };
        c.order.shuffle(&mut c.rng);
        c
    }

    /// Start and length of the `i`-th block of the current order.
    fn block_range(&self, i: usize) -> Range<usize> {
        let b = self.order[i];
        b * self.block..((b + 1) * self.block).min(self.n_cells)
    }

    /// The next `m` cells as contiguous runs (merging adjacent blocks).
    fn take(&mut self, mut m: usize) -> Vec<Range<usize>> {
        let mut runs: Vec<Range<usize>> = Vec::new();
        while m > 0 {
            if self.pos == self.n_cells {
                self.order.shuffle(&mut self.rng);
                self.pos = 0;
            }
            // Locate the block holding position `pos` of this pass.
            let (mut i, mut start) = (0, 0);
            loop {
                let len = self.block_range(i).len();
                if self.pos < start + len {
                    break;
                }
                start += len;
                i += 1;
            }
            let r = self.block_range(i);
            let from = r.start + (self.pos - start);
            let n = m.min(r.end - from);
            let run = from..from + n;
            match runs.last_mut() {
                Some(last) if last.end == run.start => last.end = run.end,
                _ => runs.push(run),
            }
            self.pos += n;
            m -= n;
        }
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_whose_iterations_overflow_are_refused() {
        for epochs in [
            usize::MAX,
            usize::MAX / 3000 + 1,
            (MAX_ITERATIONS + 1) * 400 / 3000 + 1,
        ] {
            let e = MiniBatchPlan::new(&[(0, 3000)], 400, 1000, epochs, 1).unwrap_err();
            assert!(e.to_string().contains("choose fewer epochs"), "{e}");
        }
        assert!(MiniBatchPlan::new(&[(0, 3000)], 400, 1000, 100, 1).is_ok());
    }

    #[test]
    fn sizes_follow_proportions_and_iterations_cover_epochs() {
        let p = MiniBatchPlan::new(&[(0, 3000), (1, 1000)], 400, 1000, 2, 1).unwrap();
        assert_eq!(p.sizes(), &[300, 100]);
        assert_eq!(p.n_iterations(), 20);
        let its: Vec<_> = p.iter().collect();
        assert_eq!(its.len(), 20);
        assert!(its[9].info.new_epoch && its[9].info.epoch == 1);
        assert!(!its[8].info.new_epoch);
        assert!(its[19].info.new_epoch && its[19].info.epoch == 2);
    }

    #[test]
    fn each_pass_visits_every_cell_once_in_contiguous_blocks() {
        let p = MiniBatchPlan::new(&[(0, 2500), (1, 1300)], 380, 1000, 3, 7).unwrap();
        let mut seen0 = Vec::new();
        for it in p.iter() {
            for (id, runs) in &it.batches {
                let n: usize = runs.iter().map(|r| r.len()).sum();
                assert_eq!(n, p.sizes()[*id]);
                if *id == 0 {
                    seen0.extend(runs.iter().flat_map(|r| r.clone()));
                }
            }
        }
        // 3 epochs of dataset 0 exactly.
        assert_eq!(seen0.len(), 3 * 2500);
        for pass in seen0.chunks(2500) {
            let mut s = pass.to_vec();
            s.sort();
            assert_eq!(s, (0..2500).collect::<Vec<_>>());
        }
    }

    #[test]
    fn same_seed_same_plan_other_seed_other_plan() {
        let a: Vec<_> = MiniBatchPlan::new(&[(0, 5000)], 500, 1000, 2, 1)
            .unwrap()
            .iter()
            .collect();
        let b: Vec<_> = MiniBatchPlan::new(&[(0, 5000)], 500, 1000, 2, 1)
            .unwrap()
            .iter()
            .collect();
        let c: Vec<_> = MiniBatchPlan::new(&[(0, 5000)], 500, 1000, 2, 2)
            .unwrap()
            .iter()
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn refuses_sizes_that_starve_or_overflow_a_dataset() {
        let e = MiniBatchPlan::new(&[(0, 100000), (1, 10)], 100, 1000, 1, 1).unwrap_err();
        assert!(e.to_string().contains("0 cells"), "{e}");
        assert!(MiniBatchPlan::new(&[(0, 10)], 100, 1000, 1, 1).is_err());
    }
}
