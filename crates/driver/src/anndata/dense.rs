//! Dense `obsm` / `varm` matrices of known shape, written by blocks of rows.

use hdf5::{Dataset, Group};
use ndarray::{s, ArrayView2};

use super::h5::{encoding, Ctx, DatasetOptions, Element};
use super::writer::Ticket;
use crate::DriverError;

/// Fills a dense `rows × cols` matrix (`encoding-type` "array") by blocks
/// of rows, in order. Chunks hold whole rows
/// (`max(1, opts.chunk / cols)` of them); rows are buffered up to a chunk
/// so each chunk is written (and compressed) once. Memory is one chunk.
#[derive(Debug)]
pub struct DenseAppender<T: Element> {
    ds: Dataset,
    rows: usize,
    cols: usize,
    chunk_rows: usize,
    /// Rows written to the file.
    written: usize,
    /// Buffered rows, row-major.
    buf: Vec<T>,
    ctx: Ctx,
    ticket: Ticket,
}

impl<T: Element> DenseAppender<T> {
    pub(crate) fn create(
        ctx: &Ctx,
        parent: &Group,
        name: &str,
        rows: usize,
        cols: usize,
        opts: DatasetOptions,
        ticket: Ticket,
    ) -> Result<Self, DriverError> {
        opts.check(ctx)?;
        let chunk_rows = (opts.chunk / cols.max(1)).clamp(1, rows.max(1));
        let mut b = parent.new_dataset::<T>();
        if rows > 0 && cols > 0 {
            b = b.chunk((chunk_rows, cols));
            if let Some(level) = opts.gzip {
                b = b.deflate(level);
            }
        }
        let r = b.shape((rows, cols)).create(name);
        let ds = ctx.h5(r, || format!("creating dataset {}/{name}", parent.name()))?;
        encoding(ctx, &ds, "array", "0.2.0")?;
        Ok(Self {
            ds,
            rows,
            cols,
            chunk_rows,
            written: 0,
            buf: Vec::new(),
            ctx: ctx.clone(),
            ticket,
        })
    }

    fn buffered_rows(&self) -> usize {
        self.buf.len() / self.cols.max(1)
    }

    /// Appends the next `block.nrows()` rows; `block.ncols()` must equal
    /// the matrix's column count and the total must not exceed its rows.
    pub fn append_rows(&mut self, block: ArrayView2<'_, T>) -> Result<(), DriverError> {
        let done = self.written + self.buffered_rows();
        if block.ncols() != self.cols {
            return Err(self.ctx.invalid(format!(
                "{}: a block has {} columns but the matrix has {}",
                self.ds.name(),
                block.ncols(),
                self.cols
            )));
        }
        if done + block.nrows() > self.rows {
            return Err(self.ctx.invalid(format!(
                "{}: {} rows written and {} more given, but the matrix has {} rows",
                self.ds.name(),
                done,
                block.nrows(),
                self.rows
            )));
        }
        if self.cols == 0 {
            self.written += block.nrows();
            return Ok(());
        }
        for row in block.rows() {
            self.buf.extend(row.iter().copied());
            if self.buffered_rows() == self.chunk_rows {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DriverError> {
        let n = self.buffered_rows();
        if n == 0 {
            return Ok(());
        }
        let (r0, r1) = (self.written, self.written + n);
        let r = ArrayView2::from_shape((n, self.cols), &self.buf)
            .map_err(|e| hdf5::Error::from(e.to_string()))
            .and_then(|v| self.ds.as_writer().write_slice(v, s![r0..r1, ..]));
        self.ctx
            .h5(r, || format!("writing rows {r0}..{r1} of {}", self.ds.name()))?;
        self.written = r1;
        self.buf.clear();
        Ok(())
    }

    /// Writes the buffered rows and checks that every row was written.
    pub fn finish(mut self) -> Result<(), DriverError> {
        self.flush()?;
        if self.written != self.rows {
            return Err(self.ctx.invalid(format!(
                "{}: {} of {} rows were written; append every row before finish",
                self.ds.name(),
                self.written,
                self.rows
            )));
        }
        self.ticket.done(self.rows);
        Ok(())
    }
}
