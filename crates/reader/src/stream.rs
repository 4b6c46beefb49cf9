//! The reader thread: owns the source (every HDF5 handle), reads each
//! iteration's runs of cells in plan order and sends owned mini-batches
//! through a bounded channel. Backpressure (the channel's capacity, 1–4)
//! keeps memory bounded; a dropped receiver stops the thread at its next
//! send; the first error is sent and ends the thread. Consumed blocks go
//! back to a [`BlockPool`] shared by every reader thread of a run and are
//! refilled, so a steady-state run allocates (and page-faults) no new block
//! buffers.

use std::ops::Range;
use std::thread::{self, JoinHandle};

use crossbeam_channel::{bounded, Receiver, Sender};
use inmf_learner::{CellSource, CsrMatrix, MiniBatch};

/// One online iteration's reads: per dataset, the runs of (kept) cells of
/// its mini-batch, in order.
pub type ReadRequest = Vec<(usize, Vec<Range<usize>>)>;

/// What the reader thread sends per request: one [`MiniBatch`] per entry of
/// the request, in order, or the error that stopped the thread.
pub type BatchResult<E> = Result<Vec<MiniBatch>, E>;

/// The ends of a reader thread: mini-batches arrive on `batches`, and
/// `thread` returns the source when the thread ends.
pub struct ReaderHandles<S: CellSource> {
    /// Mini-batches in plan order (or the error that stopped the thread).
    pub batches: Receiver<BatchResult<S::Error>>,
    /// Joins the thread and gives the source back.
    pub thread: JoinHandle<S>,
}

/// Spare CSR blocks the reader threads refill instead of allocating new
/// ones. One pool serves every reader thread of a run (learning, the bound
/// measurement, the final pass), so a block's pages are faulted in once per
/// process, not once per phase: on this project's VMs touching fresh memory
/// costs about 0.55 ms per MB (4 KiB pages), as much as reading it.
///
/// Blocks in flight per reader thread: `datasets per request ×
/// (read-ahead + 2)` (the channel, one being filled, one being consumed);
/// [`BlockPool::for_reader`] sizes the pool for that.
#[derive(Debug, Clone)]
pub struct BlockPool {
    give: Sender<CsrMatrix>,
    take: Receiver<CsrMatrix>,
}

impl BlockPool {
    /// A pool holding at most `capacity` spare blocks (more are dropped).
    pub fn new(capacity: usize) -> Self {
        let (give, take) = bounded(capacity);
        Self { give, take }
    }

    /// A pool for reader threads with `read_ahead` and up to `datasets`
    /// blocks per request: `datasets × (read_ahead + 2)` spares.
    pub fn for_reader(datasets: usize, read_ahead: usize) -> Self {
        Self::new(datasets.max(1) * (read_ahead + 2))
    }

    /// Gives the blocks of `batches` back. Never blocks: blocks beyond the
    /// pool's capacity are dropped. Blocks over memory-mapped runs release
    /// their mappings here ([`CsrMatrix::into_spare`]; keeping them until a
    /// reader took them back was no faster and held more memory).
    pub fn give_back(&self, batches: Vec<MiniBatch>) {
        for b in batches {
            if self.give.try_send(b.x.into_spare()).is_err() {
                break;
            }
        }
    }

    /// A spare block, if one is free.
    fn take(&self) -> Option<CsrMatrix> {
        self.take.try_recv().ok()
    }
}

/// Spawns the reader thread (named `inmf-reader`) over `source`, reading
/// `plan`'s requests in order into blocks taken from `pool` (or new ones
/// when it is empty; consumers give blocks back to the same pool). Returns
/// the receiving end (capacity `capacity`; 1–4 is the intended range, 0
/// makes every send wait for the learner) and a handle that gives the
/// source back when the thread ends: after the plan is exhausted, after an
/// error was sent, or when the receiver was dropped.
pub fn spawn_reader<S, P>(
    mut source: S,
    plan: P,
    capacity: usize,
    pool: &BlockPool,
) -> std::io::Result<ReaderHandles<S>>
where
    S: CellSource + Send + 'static,
    P: IntoIterator<Item = ReadRequest>,
    P::IntoIter: Send + 'static,
{
    let (tx, rx) = bounded(capacity);
    let pool = pool.clone();
    let plan = plan.into_iter();
    let thread = thread::Builder::new().name("inmf-reader".into()).spawn(move || {
        for request in plan {
            let batches: BatchResult<S::Error> = request
                .into_iter()
                .map(|(dataset, cells)| {
                    let x = match pool.take() {
                        Some(spare) => source.read_runs_reusing(dataset, &cells, spare)?,
                        None => source.read_runs(dataset, &cells)?,
                    };
                    // ‖X‖² is kept in the block: known from the cache's
                    // stored cell norms, or computed here, off the
                    // learner's critical path.
                    x.frobenius_sq();
                    Ok(MiniBatch { dataset, cells, x })
                })
                .collect();
            let failed = batches.is_err();
            if tx.send(batches).is_err() || failed {
                break;
            }
        }
        source
    })?;
    Ok(ReaderHandles { batches: rx, thread })
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use inmf_learner::InMemorySource;

    use super::*;

    fn source() -> InMemorySource {
        let dense: Vec<f32> = (0..40).map(|v| (v % 3) as f32).collect();
        InMemorySource::new(vec![CsrMatrix::from_dense(10, 4, &dense)])
    }

    #[test]
    fn one_pool_feeds_successive_reader_threads() {
        let pool = BlockPool::for_reader(1, 1);
        let plan = || {
            vec![
                vec![(0usize, vec![0..4])],
                vec![(0, vec![4..9])],
                vec![(0, vec![9..10])],
            ]
        };
        let first = spawn_reader(source(), plan(), 1, &pool).unwrap();
        for batches in first.batches.iter() {
            pool.give_back(batches.unwrap());
        }
        first.thread.join().unwrap();
        // Three blocks were consumed; the thread may already have refilled
        // one given back early, so two or three are spare now.
        assert!((2..=3).contains(&pool.take.len()), "consumed blocks are kept");
        // The second thread takes the first one's blocks instead of allocating.
        let second = spawn_reader(source(), plan(), 1, &pool).unwrap();
        let got: Vec<_> = second.batches.iter().map(|b| b.unwrap()).collect();
        second.thread.join().unwrap();
        assert_eq!(pool.take.len(), 0);
        assert_eq!(got.iter().map(|b| b[0].n_cells()).collect::<Vec<_>>(), [4, 5, 1]);
    }

    #[test]
    fn a_full_pool_drops_extra_blocks_without_blocking() {
        let pool = BlockPool::new(1);
        let mb = |n| MiniBatch {
            dataset: 0,
            cells: vec![0..n],
            x: source().dataset(0).slice_rows(0..n),
        };
        pool.give_back(vec![mb(2), mb(3), mb(4)]);
        assert_eq!(pool.take().map(|x| x.n_rows()), Some(2));
        assert!(pool.take().is_none());
    }
}
