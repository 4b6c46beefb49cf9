//! Zero-copy reads of a cache entry: the non-zeros of a run of cells are
//! memory-mapped read-only and handed to the learner as a shared run of a
//! [`CsrMatrix`](inmf_learner::CsrMatrix), instead of copied (`pread`) into
//! the block's own buffers.
//!
//! Why: on the 2-core machines this project is measured on, the copy out
//! of the page cache and the zeroing of fresh buffer pages took a quarter
//! of all CPU time of a 50k-cell run and about a sixth of a 1M-cell epoch,
//! on the same cores as the numerics. A mapping costs a system call and
//! the page-table entries (filled at once, `MAP_POPULATE`, on the reader
//! thread); the pages are the page cache's own.
//!
//! Two lifetimes, chosen per entry by the reader:
//! - one mapping per run, living as long as its block: memory stays
//!   bounded by the blocks in flight at any entry size, but every epoch
//!   fills and tears down the page tables of the whole entry again (about
//!   0.6 µs per 4 KiB page here, map and unmap, on the reader and the
//!   learner thread: 20–25 % of a 50k-cell epoch);
//! - the entry's files mapped whole, once ([`MappedFiles`]), runs being
//!   views into them: page tables are filled once per run of the program,
//!   but the mapped pages count in the resident set for the rest of it
//!   (they are the page cache's, clean, and reclaimable), so the reader
//!   does this only for entries below a size limit.

use std::fs::File;
use std::io;
use std::sync::Arc;

use inmf_learner::{Cols, SharedNonZeros};
use memmap2::{Mmap, MmapOptions};

/// Column indices and values of `len` consecutive non-zeros of a cache
/// entry, read-only views of its `indices` and `data` files: either a
/// mapping of just this run or a window of the whole files' mappings.
#[derive(Debug)]
pub(crate) struct MappedRun {
    indices: Arc<Mmap>,
    data: Arc<Mmap>,
    /// Column indices are 2 bytes each (else 4).
    narrow: bool,
    /// First non-zero of the run within the two mappings.
    first: usize,
    len: usize,
    /// The reader checked these rows before (in an earlier block).
    checked: bool,
}

impl MappedRun {
    /// Maps non-zeros `first..first + len` of the two files (little-endian
    /// entries: `index_bytes` = 2 or 4 per column index, 4 per value).
    /// `len` must be at least 1. `checked`: these rows passed the block
    /// checks before (see `SharedNonZeros::rows_checked`).
    pub(crate) fn map(
        indices: &File,
        data: &File,
        index_bytes: u8,
        first: u64,
        len: usize,
        checked: bool,
    ) -> io::Result<Self> {
        debug_assert!(len > 0, "an empty run has nothing to map");
        let ib = usize::from(index_bytes);
        Ok(Self {
            indices: Arc::new(map_range(indices, first * ib as u64, len * ib)?),
            data: Arc::new(map_range(data, first * 4, len * 4)?),
            narrow: index_bytes == 2,
            first: 0,
            len,
            checked,
        })
    }

    /// Non-zeros `first..first + len` of files mapped whole. Panics if the
    /// run does not lie within them (callers check row pointers against
    /// the files' lengths first).
    #[track_caller]
    pub(crate) fn within(files: &MappedFiles, first: usize, len: usize, checked: bool) -> Self {
        assert!(first + len <= files.nnz, "run beyond the mapped files");
        Self {
            indices: Arc::clone(&files.indices),
            data: Arc::clone(&files.data),
            narrow: files.narrow,
            first,
            len,
            checked,
        }
    }
}

/// The `indices` and `data` files of one dataset of an entry, mapped whole
/// (their first `nnz` entries), shared by every run read from them.
#[derive(Debug, Clone)]
pub(crate) struct MappedFiles {
    indices: Arc<Mmap>,
    data: Arc<Mmap>,
    /// Column indices are 2 bytes each (else 4).
    narrow: bool,
    nnz: usize,
}

impl MappedFiles {
    /// Maps the first `nnz` (at least 1) entries of both files
    /// (`index_bytes` = 2 or 4 per column index).
    pub(crate) fn map(indices: &File, data: &File, index_bytes: u8, nnz: usize) -> io::Result<Self> {
        debug_assert!(nnz > 0, "nothing to map");
        Ok(Self {
            indices: Arc::new(map_range(indices, 0, nnz * usize::from(index_bytes))?),
            data: Arc::new(map_range(data, 0, nnz * 4)?),
            narrow: index_bytes == 2,
            nnz,
        })
    }
}

/// Bytes `offset..offset + len` of `file`, mapped read-only with the page
/// tables filled.
#[allow(unsafe_code)]
fn map_range(file: &File, offset: u64, len: usize) -> io::Result<Mmap> {
    // SAFETY: a mapping is sound while nobody changes the file under it.
    // The files mapped here are cache-entry files: written once under a
    // temporary directory name, then renamed into place, and never opened
    // for writing again by inmf (a rebuilt entry is a new file, and
    // replacing or deleting an entry leaves a mapped file's contents
    // intact). Only a foreign process truncating or rewriting an entry
    // while a run reads it could break this; the cache directory is inmf's
    // own and the README says not to edit it.
    let map = unsafe { MmapOptions::new().offset(offset).len(len).populate().map(file)? };
    if map.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("mapped {} of {len} bytes", map.len()),
        ));
    }
    Ok(map)
}

impl SharedNonZeros for MappedRun {
    fn indices(&self) -> Cols<'_> {
        // A mapping starts at a multiple of the index size past a page
        // boundary, so the cast is aligned; the entry is little-endian (the
        // caller maps only on little-endian targets).
        let run = self.first..self.first + self.len;
        if self.narrow {
            Cols::Narrow(&bytemuck::cast_slice(&self.indices[..])[run])
        } else {
            Cols::Wide(&bytemuck::cast_slice(&self.indices[..])[run])
        }
    }

    fn data(&self) -> &[f32] {
        &bytemuck::cast_slice(&self.data[..])[self.first..self.first + self.len]
    }

    fn rows_checked(&self) -> bool {
        self.checked
    }
}
