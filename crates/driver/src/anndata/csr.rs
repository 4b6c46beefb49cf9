//! Streaming CSR matrices (`X`, `layers/*`), appended by blocks of rows.

use hdf5::Group;

use super::h5::{encoding, Chunked1D, Ctx, DatasetOptions, Element};
use super::writer::Ticket;
use crate::DriverError;

/// Streams a CSR matrix (`encoding-type` "csr_matrix", "0.1.0") of rows
/// (cells) × `n_vars` columns (genes): datasets `data` (`T`), `indices`
/// (int32, as SciPy writes them when they fit, which they always do here)
/// and `indptr` (int64), each resizable, chunked and optionally
/// gzip-compressed; the `shape` attribute (int64 `[n_rows, n_vars]`) is
/// written by [`finish`](Self::finish).
///
/// Memory is one chunk per dataset plus the caller's block, whatever the
/// number of rows.
#[derive(Debug)]
pub struct CsrAppender<T: Element> {
    group: Group,
    data: Chunked1D<T>,
    indices: Chunked1D<i32>,
    indptr: Chunked1D<i64>,
    /// Reused buffers for the converted indices and offsets.
    idx_buf: Vec<i32>,
    ptr_buf: Vec<i64>,
    n_vars: usize,
    rows: usize,
    nnz: u64,
    ctx: Ctx,
    ticket: Ticket,
}

impl<T: Element> CsrAppender<T> {
    pub(crate) fn create(
        ctx: &Ctx,
        parent: &Group,
        name: &str,
        n_vars: usize,
        opts: DatasetOptions,
        ticket: Ticket,
    ) -> Result<Self, DriverError> {
        opts.check(ctx)?;
        if n_vars > i32::MAX as usize {
            return Err(ctx.invalid(format!("{name}: {n_vars} columns do not fit int32 indices")));
        }
        let group = ctx.h5(parent.create_group(name), || format!("creating group {name}"))?;
        encoding(ctx, &group, "csr_matrix", "0.1.0")?;
        let data = Chunked1D::create(ctx, &group, "data", None, &opts)?;
        let indices = Chunked1D::create(ctx, &group, "indices", None, &opts)?;
        let mut indptr = Chunked1D::create(ctx, &group, "indptr", None, &opts)?;
        indptr.push(0)?;
        Ok(Self {
            group,
            data,
            indices,
            indptr,
            idx_buf: Vec::new(),
            ptr_buf: Vec::new(),
            n_vars,
            rows: 0,
            nnz: 0,
            ctx: ctx.clone(),
            ticket,
        })
    }

    /// Appends a block of rows in CSR form: row `r` has columns
    /// `indices[indptr[r]..indptr[r+1]]` with values `data[..]` alike.
    ///
    /// Checked: `indptr` starts at 0, does not decrease and ends at
    /// `indices.len() == data.len()`; column indices are `< n_vars` and
    /// strictly increasing within each row (canonical CSR, which every
    /// reader may assume). A malformed block is rejected before anything of
    /// it is written.
    pub fn append_rows(&mut self, indptr: &[usize], indices: &[u32], data: &[T]) -> Result<(), DriverError> {
        let name = self.group.name();
        let bad = |msg: String| {
            self.ctx
                .invalid(format!("{name}, block starting at row {}: {msg}", self.rows))
        };
        if indptr.first() != Some(&0) {
            return Err(bad("indptr must start with 0 (one entry per row plus one)".into()));
        }
        let nnz = indptr[indptr.len() - 1];
        if indices.len() != data.len() || nnz != data.len() {
            return Err(bad(format!(
                "indptr ends at {nnz} but there are {} indices and {} values",
                indices.len(),
                data.len()
            )));
        }
        for (r, w) in indptr.windows(2).enumerate() {
            if w[1] < w[0] {
                return Err(bad(format!("indptr decreases at row {r}")));
            }
            let cols = &indices[w[0]..w[1]];
            if let Some(&last) = cols.last() {
                if last as usize >= self.n_vars {
                    return Err(bad(format!(
                        "row {r} has column {last} but there are {} columns",
                        self.n_vars
                    )));
                }
            }
            if cols.windows(2).any(|p| p[0] >= p[1]) {
                return Err(bad(format!(
                    "row {r}: column indices are not strictly increasing"
                )));
            }
        }
        self.idx_buf.clear();
        self.idx_buf.extend(indices.iter().map(|&i| i as i32));
        let base = self.nnz as i64;
        self.ptr_buf.clear();
        self.ptr_buf.extend(indptr[1..].iter().map(|&p| base + p as i64));
        self.data.extend(data)?;
        self.indices.extend(&self.idx_buf)?;
        self.indptr.extend(&self.ptr_buf)?;
        self.rows += indptr.len() - 1;
        self.nnz += nnz as u64;
        Ok(())
    }

    /// Rows appended so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Non-zeros appended so far.
    pub fn nnz(&self) -> u64 {
        self.nnz
    }

    /// Writes what is buffered and the `shape` attribute, and records the
    /// number of rows with the writer.
    pub fn finish(self) -> Result<(), DriverError> {
        self.data.finish()?;
        self.indices.finish()?;
        self.indptr.finish()?;
        let shape = [self.rows as i64, self.n_vars as i64];
        let r = self
            .group
            .new_attr::<i64>()
            .shape(2)
            .create("shape")
            .and_then(|a| a.as_writer().write_raw(&shape));
        self.ctx
            .h5(r, || format!("writing the shape of {}", self.group.name()))?;
        self.ticket.done(self.rows);
        Ok(())
    }
}
