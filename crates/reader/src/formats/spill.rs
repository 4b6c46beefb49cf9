//! External bucket sort of (cell, gene, value) entries by cell, in bounded
//! memory, and the temporary CSR copy built from it.
//!
//! Used where a matrix is not stored cell by cell: AnnData CSC `X` (genes
//! are the outer dimension) and Matrix Market files not ordered by cell.
//! Entries are pushed in any order; each goes to the bucket of its cell
//! block (`cells_per_bucket` consecutive cells, sized so a bucket holds
//! about [`BUCKET_ENTRIES`] entries on average), buffered in memory and
//! appended to one anonymous temporary file as a segment when the buffer
//! is full. Reading back assembles one bucket at a time: its segments are
//! read, counting-sorted by cell (stable, so repeated genes of a cell are
//! summed in push order) and canonicalized (rows sorted by gene).
//!
//! Memory: the bucket buffers share [`BUFFER_BYTES`] (at least 512 entries
//! each; 12 bytes per entry), plus one assembled bucket (≈ 12 bytes × [`BUCKET_ENTRIES`] for
//! evenly spread cells; a block of unusually dense cells holds more),
//! whatever the size of the matrix. Temporary files are anonymous
//! (unlinked at creation), so they disappear when closed, even after a
//! crash.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::ReaderError;
use crate::formats::dataset::RawBlock;

/// Target entries per bucket (12 bytes each when assembled). Tiny in
/// tests, so small fixtures take every path (many buckets and segments).
pub(crate) const BUCKET_ENTRIES: u64 = if cfg!(test) { 16 } else { 1 << 20 };
/// Memory shared by all bucket buffers.
pub(crate) const BUFFER_BYTES: usize = 16 << 20;
/// Smallest bucket buffer, in entries.
const MIN_BUFFER: usize = if cfg!(test) { 3 } else { 512 };
const ENTRY_BYTES: usize = 12;

/// One entry: cell relative to its bucket's first cell, gene, value.
#[derive(Debug, Clone, Copy)]
struct Entry {
    cell: u32,
    gene: u32,
    value: f32,
}

fn temp_err(dir: &Path) -> impl Fn(std::io::Error) -> ReaderError + '_ {
    move |error| ReaderError::Temp {
        path: dir.to_owned(),
        error,
    }
}

/// Entries being bucketed by cell block.
#[derive(Debug)]
pub(crate) struct Buckets {
    dir: PathBuf,
    file: File,
    end: u64,
    n_cells: usize,
    cells_per_bucket: usize,
    buf_cap: usize,
    bufs: Vec<Vec<Entry>>,
    /// Per bucket, the (offset, entries) of its segments in `file`.
    segments: Vec<Vec<(u64, u32)>>,
    bytes: Vec<u8>,
}

impl Buckets {
    /// Buckets for `n_cells` cells and about `expected_entries` entries,
    /// spilled to an anonymous temporary file in `dir`.
    pub(crate) fn new(dir: &Path, n_cells: usize, expected_entries: u64) -> Result<Self, ReaderError> {
        let file = tempfile::tempfile_in(dir).map_err(temp_err(dir))?;
        let per_cell = expected_entries.max(1) as f64 / n_cells.max(1) as f64;
        let cells_per_bucket = ((BUCKET_ENTRIES as f64 / per_cell) as usize).clamp(1, n_cells.max(1));
        let n_buckets = n_cells.div_ceil(cells_per_bucket).max(1);
        let buf_cap = (BUFFER_BYTES / ENTRY_BYTES / n_buckets).clamp(MIN_BUFFER, 1 << 16);
        Ok(Self {
            dir: dir.to_owned(),
            file,
            end: 0,
            n_cells,
            cells_per_bucket,
            buf_cap,
            bufs: vec![Vec::new(); n_buckets],
            segments: vec![Vec::new(); n_buckets],
            bytes: Vec::new(),
        })
    }

    /// Adds one entry; `cell < n_cells` (checked by the caller).
    #[inline]
    pub(crate) fn push(&mut self, cell: usize, gene: u32, value: f32) -> Result<(), ReaderError> {
        debug_assert!(cell < self.n_cells);
        let b = cell / self.cells_per_bucket;
        let rel = (cell - b * self.cells_per_bucket) as u32;
        self.bufs[b].push(Entry {
            cell: rel,
            gene,
            value,
        });
        if self.bufs[b].len() >= self.buf_cap {
            self.flush(b)?;
        }
        Ok(())
    }

    fn flush(&mut self, b: usize) -> Result<(), ReaderError> {
        let buf = &mut self.bufs[b];
        if buf.is_empty() {
            return Ok(());
        }
        self.bytes.clear();
        for e in buf.iter() {
            self.bytes.extend_from_slice(&e.cell.to_le_bytes());
            self.bytes.extend_from_slice(&e.gene.to_le_bytes());
            self.bytes.extend_from_slice(&e.value.to_le_bytes());
        }
        self.file
            .write_all_at(&self.bytes, self.end)
            .map_err(temp_err(&self.dir))?;
        self.segments[b].push((self.end, buf.len() as u32));
        self.end += self.bytes.len() as u64;
        buf.clear();
        Ok(())
    }

    /// Writes out every buffer and returns the reader of the buckets, in
    /// cell order.
    pub(crate) fn finish(mut self) -> Result<BucketReader, ReaderError> {
        for b in 0..self.bufs.len() {
            self.flush(b)?;
        }
        Ok(BucketReader {
            dir: self.dir,
            file: self.file,
            n_cells: self.n_cells,
            cells_per_bucket: self.cells_per_bucket,
            segments: self.segments,
            next: 0,
            bytes: Vec::new(),
            entries: Vec::new(),
        })
    }
}

/// Reads bucketed entries back as CSR blocks of consecutive cells.
#[derive(Debug)]
pub(crate) struct BucketReader {
    dir: PathBuf,
    file: File,
    n_cells: usize,
    cells_per_bucket: usize,
    segments: Vec<Vec<(u64, u32)>>,
    next: usize,
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

impl BucketReader {
    /// Assembles the next bucket into `out` (canonical rows: genes strictly
    /// increasing, repeated genes summed) and returns its cells, or `None`
    /// after the last bucket.
    pub(crate) fn next_block(&mut self, out: &mut RawBlock) -> Result<Option<Range<usize>>, ReaderError> {
        let b = self.next;
        if b >= self.segments.len() || b * self.cells_per_bucket >= self.n_cells {
            return Ok(None);
        }
        self.next += 1;
        let start = b * self.cells_per_bucket;
        let end = (start + self.cells_per_bucket).min(self.n_cells);
        self.entries.clear();
        for &(offset, n) in &self.segments[b] {
            self.bytes.resize(n as usize * ENTRY_BYTES, 0);
            self.file
                .read_exact_at(&mut self.bytes, offset)
                .map_err(temp_err(&self.dir))?;
            for c in self.bytes.chunks_exact(ENTRY_BYTES) {
                let w = |i: usize| [c[i], c[i + 1], c[i + 2], c[i + 3]];
                self.entries.push(Entry {
                    cell: u32::from_le_bytes(w(0)),
                    gene: u32::from_le_bytes(w(4)),
                    value: f32::from_le_bytes(w(8)),
                });
            }
        }
        // Counting sort by cell (stable: push order kept within a cell).
        let n = end - start;
        out.indptr.clear();
        out.indptr.resize(n + 1, 0);
        for e in &self.entries {
            out.indptr[e.cell as usize + 1] += 1;
        }
        for r in 0..n {
            out.indptr[r + 1] += out.indptr[r];
        }
        let total = self.entries.len();
        out.indices.clear();
        out.indices.resize(total, 0);
        out.data.clear();
        out.data.resize(total, 0.0);
        let mut cursor: Vec<usize> = out.indptr[..n].to_vec();
        for e in &self.entries {
            let k = &mut cursor[e.cell as usize];
            out.indices[*k] = e.gene;
            out.data[*k] = e.value;
            *k += 1;
        }
        out.canonicalize(None);
        Ok(Some(start..end))
    }
}

/// A CSR copy of a matrix in three anonymous temporary files (`indptr` as
/// u64, `indices` as u32, `data` as f32, little-endian), read by
/// positioned reads: a run of cells costs three reads, as in HDF5.
#[derive(Debug)]
pub(crate) struct SpilledCsr {
    dir: PathBuf,
    indptr: File,
    indices: File,
    data: File,
    n_rows: usize,
}

impl SpilledCsr {
    /// Drains `reader` (all its buckets, in order) into a CSR copy in `dir`.
    pub(crate) fn build(mut reader: BucketReader, dir: &Path) -> Result<Self, ReaderError> {
        let err = temp_err(dir);
        let files = [
            tempfile::tempfile_in(dir).map_err(&err)?,
            tempfile::tempfile_in(dir).map_err(&err)?,
            tempfile::tempfile_in(dir).map_err(&err)?,
        ];
        let [indptr, indices, data] = files;
        {
            let mut w_ptr = BufWriter::with_capacity(1 << 20, &indptr);
            let mut w_idx = BufWriter::with_capacity(1 << 20, &indices);
            let mut w_dat = BufWriter::with_capacity(1 << 20, &data);
            w_ptr.write_all(&0u64.to_le_bytes()).map_err(&err)?;
            let mut base = 0u64;
            let mut block = RawBlock::default();
            let mut rows = 0usize;
            while let Some(cells) = reader.next_block(&mut block)? {
                debug_assert_eq!(cells.start, rows);
                rows = cells.end;
                for &p in &block.indptr[1..] {
                    w_ptr.write_all(&(base + p as u64).to_le_bytes()).map_err(&err)?;
                }
                base += block.data.len() as u64;
                for &i in &block.indices {
                    w_idx.write_all(&i.to_le_bytes()).map_err(&err)?;
                }
                for &v in &block.data {
                    w_dat.write_all(&v.to_le_bytes()).map_err(&err)?;
                }
            }
            for w in [&mut w_ptr, &mut w_idx, &mut w_dat] {
                w.flush().map_err(&err)?;
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            indptr,
            indices,
            data,
            n_rows: reader.n_cells,
        })
    }

    /// Reads rows `rows` into `out` (canonical rows).
    pub(crate) fn read(&self, rows: Range<usize>, out: &mut RawBlock) -> Result<(), ReaderError> {
        debug_assert!(rows.end <= self.n_rows);
        let err = temp_err(&self.dir);
        out.indptr.clear();
        out.indices.clear();
        out.data.clear();
        out.indptr.push(0);
        if rows.is_empty() {
            return Ok(());
        }
        let mut bytes = vec![0u8; (rows.len() + 1) * 8];
        self.indptr
            .read_exact_at(&mut bytes, rows.start as u64 * 8)
            .map_err(&err)?;
        let ptr: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let (s, e) = (ptr[0], ptr[rows.len()]);
        out.indptr.extend(ptr[1..].iter().map(|&p| (p - s) as usize));
        let n = (e - s) as usize;
        bytes.resize(n * 4, 0);
        self.indices.read_exact_at(&mut bytes, s * 4).map_err(&err)?;
        out.indices.extend(
            bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))),
        );
        self.data.read_exact_at(&mut bytes, s * 4).map_err(&err)?;
        out.data.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries pushed in a scrambled order with tiny buckets and buffers
    /// come back sorted, summed and identical through the CSR copy.
    #[test]
    fn buckets_sort_and_sum() {
        let dir = tempfile::tempdir().unwrap();
        let n_cells = 37;
        // expected_entries large → one cell per bucket; many segments.
        let mut b = Buckets::new(dir.path(), n_cells, BUCKET_ENTRIES * 40).unwrap();
        assert_eq!(b.cells_per_bucket, 1);
        let mut want = vec![vec![0.0f32; 5]; n_cells];
        let mut k = 0u64;
        for round in 0..3 {
            for c in (0..n_cells).rev() {
                for g in [4u32, 1, 3] {
                    k = k
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    if (k >> 60) % 3 == 0 {
                        continue;
                    }
                    let v = (round + 1) as f32;
                    want[c][g as usize] += v;
                    b.push(c, g, v).unwrap();
                }
            }
        }
        let mut reader = b.finish().unwrap();
        let mut block = RawBlock::default();
        let mut got = vec![vec![0.0f32; 5]; n_cells];
        while let Some(cells) = reader.next_block(&mut block).unwrap() {
            for r in 0..block.n_rows() {
                let (cols, vals) = block.row(r);
                assert!(cols.windows(2).all(|w| w[0] < w[1]));
                for (&g, &v) in cols.iter().zip(vals) {
                    got[cells.start + r][g as usize] = v;
                }
            }
        }
        assert_eq!(got, want);

        let mut b = Buckets::new(dir.path(), n_cells, 10).unwrap();
        for c in (0..n_cells).rev() {
            b.push(c, (c % 5) as u32, c as f32 + 1.0).unwrap();
        }
        let spilled = SpilledCsr::build(b.finish().unwrap(), dir.path()).unwrap();
        spilled.read(3..9, &mut block).unwrap();
        assert_eq!(block.n_rows(), 6);
        for r in 0..6 {
            let c = 3 + r;
            assert_eq!(block.row(r), (&[(c % 5) as u32][..], &[c as f32 + 1.0][..]));
        }
        spilled.read(5..5, &mut block).unwrap();
        assert_eq!(block.n_rows(), 0);
        // Nothing is left in the directory: the files are anonymous.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
