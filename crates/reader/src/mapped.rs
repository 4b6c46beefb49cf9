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
//! thread); the pages are the page cache's own. Mappings live as long as
//! their block: memory stays bounded by the blocks in flight, as before.

use std::fs::File;
use std::io;

use inmf_learner::SharedNonZeros;
use memmap2::{Mmap, MmapOptions};

/// Column indices and values of `len` consecutive non-zeros of a cache
/// entry, mapped read-only from its `indices` and `data` files.
#[derive(Debug)]
pub(crate) struct MappedRun {
    indices: Mmap,
    data: Mmap,
    /// The reader checked these rows before (in an earlier block).
    checked: bool,
}

impl MappedRun {
    /// Maps non-zeros `first..first + len` (4-byte little-endian entries)
    /// of the two files. `len` must be at least 1. `checked`: these rows
    /// passed the block checks before (see `SharedNonZeros::rows_checked`).
    pub(crate) fn map(
        indices: &File,
        data: &File,
        first: u64,
        len: usize,
        checked: bool,
    ) -> io::Result<Self> {
        debug_assert!(len > 0, "an empty run has nothing to map");
        Ok(Self {
            indices: map_range(indices, first * 4, len * 4)?,
            data: map_range(data, first * 4, len * 4)?,
            checked,
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
    fn indices(&self) -> &[u32] {
        // The mapping starts at a multiple of 4 bytes past a page boundary,
        // so the cast is aligned; the entry is little-endian (the caller
        // maps only on little-endian targets).
        bytemuck::cast_slice(&self.indices[..])
    }

    fn data(&self) -> &[f32] {
        bytemuck::cast_slice(&self.data[..])
    }

    fn rows_checked(&self) -> bool {
        self.checked
    }
}
