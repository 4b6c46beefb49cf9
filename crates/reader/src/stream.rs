//! The reader thread: owns the source (every HDF5 handle), reads each
//! iteration's runs of cells in plan order and sends owned mini-batches
//! through a bounded channel. Backpressure (the channel's capacity, 2–4)
//! keeps memory bounded; a dropped receiver stops the thread at its next
//! send; the first error is sent and ends the thread. Consumed blocks go
//! back through a [`BatchRecycler`] and are refilled, so a steady-state run
//! allocates (and page-faults) no new block buffers.

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

/// The ends of a reader thread: mini-batches arrive on `batches`, consumed
/// ones go back through `recycler`, and `thread` returns the source when
/// the thread ends.
pub struct ReaderHandles<S: CellSource> {
    /// Mini-batches in plan order (or the error that stopped the thread).
    pub batches: Receiver<BatchResult<S::Error>>,
    /// Returns consumed blocks for reuse.
    pub recycler: BatchRecycler,
    /// Joins the thread and gives the source back.
    pub thread: JoinHandle<S>,
}

/// Hands consumed mini-batches back to the reader thread, which refills
/// their buffers instead of allocating new ones.
#[derive(Debug, Clone)]
pub struct BatchRecycler(Sender<CsrMatrix>);

impl BatchRecycler {
    /// Gives the blocks of `batches` back. Never blocks: blocks beyond the
    /// reader's spare capacity, or sent after it ended, are dropped.
    pub fn give_back(&self, batches: Vec<MiniBatch>) {
        for b in batches {
            if self.0.try_send(b.x).is_err() {
                break;
            }
        }
    }
}

/// Spawns the reader thread (named `inmf-reader`) over `source`, reading
/// `plan`'s requests in order. Returns the receiving end (capacity
/// `capacity`; 2–4 is the intended range, 0 makes every send wait for the
/// learner), the recycler, and a handle that gives the source back when the
/// thread ends: after the plan is exhausted, after an error was sent, or
/// when the receiver was dropped.
pub fn spawn_reader<S, P>(mut source: S, plan: P, capacity: usize) -> std::io::Result<ReaderHandles<S>>
where
    S: CellSource + Send + 'static,
    P: IntoIterator<Item = ReadRequest>,
    P::IntoIter: Send + 'static,
{
    let (tx, rx) = bounded(capacity);
    // Spares: every block in flight (channel + one being consumed + one being
    // filled) per dataset of a request, with room to spare.
    let (spare_tx, spare_rx) = bounded::<CsrMatrix>(4 * (capacity + 2));
    let plan = plan.into_iter();
    let thread = thread::Builder::new().name("inmf-reader".into()).spawn(move || {
        for request in plan {
            let batches: BatchResult<S::Error> = request
                .into_iter()
                .map(|(dataset, cells)| {
                    let x = match spare_rx.try_recv() {
                        Ok(spare) => source.read_runs_reusing(dataset, &cells, spare)?,
                        Err(_) => source.read_runs(dataset, &cells)?,
                    };
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
    Ok(ReaderHandles {
        batches: rx,
        recycler: BatchRecycler(spare_tx),
        thread,
    })
}
