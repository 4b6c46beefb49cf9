//! The reader thread: owns the source (every HDF5 handle), reads each
//! iteration's runs of cells in plan order and sends owned mini-batches
//! through a bounded channel. Backpressure (the channel's capacity, 2–4)
//! keeps memory bounded; a dropped receiver stops the thread at its next
//! send; the first error is sent and ends the thread.

use std::ops::Range;
use std::thread::{self, JoinHandle};

use crossbeam_channel::{bounded, Receiver};
use inmf_learner::{CellSource, MiniBatch};

/// One online iteration's reads: per dataset, the runs of (kept) cells of
/// its mini-batch, in order.
pub type ReadRequest = Vec<(usize, Vec<Range<usize>>)>;

/// What the reader thread sends per request: one [`MiniBatch`] per entry of
/// the request, in order, or the error that stopped the thread.
pub type BatchResult<E> = Result<Vec<MiniBatch>, E>;

/// The receiving end of the reader thread and the handle that returns the
/// source when the thread ends.
pub type ReaderHandles<S> = (Receiver<BatchResult<<S as CellSource>::Error>>, JoinHandle<S>);

/// Spawns the reader thread (named `inmf-reader`) over `source`, reading
/// `plan`'s requests in order. Returns the receiving end (capacity
/// `capacity`; 2–4 is the intended range, 0 makes every send wait for the
/// learner) and a handle that gives the source back when the thread ends:
/// after the plan is exhausted, after an error was sent, or when the
/// receiver was dropped.
pub fn spawn_reader<S, P>(mut source: S, plan: P, capacity: usize) -> std::io::Result<ReaderHandles<S>>
where
    S: CellSource + Send + 'static,
    P: IntoIterator<Item = ReadRequest>,
    P::IntoIter: Send + 'static,
{
    let (tx, rx) = bounded(capacity);
    let plan = plan.into_iter();
    let handle = thread::Builder::new().name("inmf-reader".into()).spawn(move || {
        for request in plan {
            let batches: BatchResult<S::Error> = request
                .into_iter()
                .map(|(dataset, cells)| {
                    let x = source.read_runs(dataset, &cells)?;
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
    Ok((rx, handle))
}
