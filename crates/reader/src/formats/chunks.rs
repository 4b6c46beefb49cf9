//! Direct reads of the chunks of a compressed 1-d array, without the HDF5
//! library on the hot path.
//!
//! The library decodes gzip chunks on one thread at a time (its global
//! lock) with zlib. For the arrays that carry a matrix's values and
//! indices this module instead reads each chunk's stored bytes at the file
//! address the library reports (`H5Dget_chunk_info`, asked once when the
//! array is opened), inflates them with libdeflate and undoes HDF5's
//! byte shuffle, on all worker threads at once. The result is the same
//! bytes the library would return: HDF5 stores every chunk whole (edge
//! chunks padded), the deflate filter writes a zlib stream, and the
//! shuffle filter stores byte j of element e of an n-element chunk at
//! `j·n + e`.
//!
//! Only storage this module understands exactly is read this way: a
//! chunked 1-d dataset whose filters are none, deflate, or shuffle then
//! deflate, every chunk allocated with all filters applied, a
//! little-endian element type, and a first chunk that decodes to what the
//! library reads. Anything else (other filters such as LZF or Fletcher-32,
//! big-endian types, missing chunks) keeps the library's path.

use std::cell::RefCell;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytemuck::Pod;
use hdf5::filters::Filter;
use hdf5::H5Type;
use rayon::prelude::*;

use crate::error::ReaderError;
use crate::formats::dataset::Dataset;

/// How a chunk's stored bytes become its elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pipeline {
    /// Stored as is.
    Plain,
    /// A zlib stream.
    Deflate,
    /// Byte-shuffled, then a zlib stream.
    ShuffleDeflate,
}

/// One stored chunk: its file address and stored size in bytes.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    addr: u64,
    size: usize,
}

/// A 1-d array whose chunks are read and decoded here.
#[derive(Debug)]
pub(crate) struct RawChunks {
    file: File,
    /// Bytes per element.
    elem: usize,
    /// Elements per chunk.
    chunk_len: usize,
    /// Elements in the array.
    len: usize,
    pipeline: Pipeline,
    /// Chunk i holds elements `i·chunk_len..`.
    chunks: Vec<Chunk>,
}

/// Why a direct read failed (the file changed or is damaged).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChunkError {
    #[error("reading the chunk at byte {addr}: {source}")]
    Io { addr: u64, source: std::io::Error },
    #[error("the chunk at byte {addr} does not inflate to {expected} bytes (damaged data)")]
    Inflate { addr: u64, expected: usize },
}

impl From<ChunkError> for hdf5::Error {
    fn from(e: ChunkError) -> Self {
        hdf5::Error::Internal(e.to_string())
    }
}

thread_local! {
    /// A worker's stored bytes, inflated bytes and decompressor.
    static SCRATCH: RefCell<(Vec<u8>, Vec<u8>, Option<libdeflater::Decompressor>)> =
        const { RefCell::new((Vec::new(), Vec::new(), None)) };
    /// A worker's decoded chunk when only the rate is measured.
    static PIECE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl RawChunks {
    /// The direct reader of `ds` (elements of type `T`) in the file at
    /// `path`, or `None` when its storage is not one this module reads
    /// exactly (see the module docs).
    pub(crate) fn open<T: H5Type + Pod + PartialEq>(ds: &hdf5::Dataset, path: &Path) -> Option<Self> {
        if ds.ndim() != 1 || !ds.is_chunked() || cfg!(target_endian = "big") {
            return None;
        }
        let chunk_len = *ds.chunk()?.first()?;
        let len = ds.size();
        let dtype = ds.dtype().ok()?;
        let elem = dtype.size();
        if chunk_len == 0 || elem != std::mem::size_of::<T>() {
            return None;
        }
        if elem > 1 && dtype.byte_order() != hdf5::datatype::ByteOrder::LittleEndian {
            return None;
        }
        let pipeline = match ds.filters().as_slice() {
            [] => Pipeline::Plain,
            [Filter::Deflate(_)] => Pipeline::Deflate,
            [Filter::Shuffle, Filter::Deflate(_)] => Pipeline::ShuffleDeflate,
            _ => return None,
        };
        let n_chunks = len.div_ceil(chunk_len);
        if ds.num_chunks()? != n_chunks {
            return None;
        }
        let mut chunks = vec![None; n_chunks];
        for i in 0..n_chunks {
            let info = ds.chunk_info(i)?;
            let first = usize::try_from(*info.offset.first()?).ok()?;
            if info.filter_mask != 0 || first % chunk_len != 0 || first >= len {
                return None;
            }
            chunks[first / chunk_len] = Some(Chunk {
                addr: info.addr,
                size: usize::try_from(info.size).ok()?,
            });
        }
        let chunks: Vec<Chunk> = chunks.into_iter().collect::<Option<_>>()?;
        let this = Self {
            file: File::open(path).ok()?,
            elem,
            chunk_len,
            len,
            pipeline,
            chunks,
        };
        // The first chunk must decode to what the library reads.
        let probe = 0..chunk_len.min(len);
        let ours = this.read::<T>(probe.clone()).ok()?;
        let theirs = ds.read_slice_1d::<T, _>(probe).ok()?;
        (theirs.as_slice()? == ours.as_slice()).then_some(this)
    }

    /// Elements `sel` (within the array), decoding the chunks they span in
    /// parallel.
    pub(crate) fn read<T: Pod>(&self, sel: Range<usize>) -> Result<Vec<T>, ChunkError> {
        assert_eq!(std::mem::size_of::<T>(), self.elem, "element type of the array");
        assert!(
            sel.start <= sel.end && sel.end <= self.len,
            "selection within the array"
        );
        let mut out = vec![T::zeroed(); sel.len()];
        if sel.is_empty() {
            return Ok(out);
        }
        // Split the output into one piece per chunk.
        let mut pieces = Vec::new();
        let mut rest: &mut [u8] = bytemuck::cast_slice_mut(&mut out);
        let mut at = sel.start;
        while at < sel.end {
            let i = at / self.chunk_len;
            let end = ((i + 1) * self.chunk_len).min(sel.end);
            let (piece, tail) = rest.split_at_mut((end - at) * self.elem);
            pieces.push((i, at - i * self.chunk_len, piece));
            rest = tail;
            at = end;
        }
        pieces
            .into_par_iter()
            .try_for_each(|(i, first, piece)| self.decode_into(i, first, piece))?;
        Ok(out)
    }

    /// Number of stored chunks.
    pub(crate) fn n_chunks(&self) -> usize {
        self.chunks.len()
    }

    /// Decodes chunk `i` whole into this thread's scratch, as a read of
    /// its elements does (read, inflate, unshuffle), and gives its stored
    /// and decoded sizes in bytes; for measuring the decoding rate.
    pub(crate) fn decode_chunk(&self, i: usize) -> Result<(usize, usize), ChunkError> {
        let n = (self.len - i * self.chunk_len).min(self.chunk_len) * self.elem;
        PIECE.with_borrow_mut(|piece| {
            piece.resize(n, 0);
            self.decode_into(i, 0, piece)
        })?;
        Ok((self.chunks[i].size, n))
    }

    /// Elements `first..` of chunk `i` into `piece` (as bytes).
    fn decode_into(&self, i: usize, first: usize, piece: &mut [u8]) -> Result<(), ChunkError> {
        let Chunk { addr, size } = self.chunks[i];
        let whole = self.chunk_len * self.elem;
        SCRATCH.with_borrow_mut(|(stored, inflated, decompressor)| {
            stored.resize(size, 0);
            self.file
                .read_exact_at(stored, addr)
                .map_err(|source| ChunkError::Io { addr, source })?;
            let bytes: &[u8] = match self.pipeline {
                Pipeline::Plain => stored,
                Pipeline::Deflate | Pipeline::ShuffleDeflate => {
                    inflated.resize(whole, 0);
                    let d = decompressor.get_or_insert_with(libdeflater::Decompressor::new);
                    match d.zlib_decompress(stored, inflated) {
                        Ok(n) if n == whole => inflated,
                        _ => {
                            return Err(ChunkError::Inflate {
                                addr,
                                expected: whole,
                            })
                        }
                    }
                }
            };
            if bytes.len() < whole {
                return Err(ChunkError::Inflate {
                    addr,
                    expected: whole,
                });
            }
            let n = piece.len() / self.elem;
            if self.pipeline == Pipeline::ShuffleDeflate {
                // Byte j of element e sits at j·chunk_len + e.
                for (e, dst) in piece.chunks_exact_mut(self.elem).enumerate() {
                    for (j, b) in dst.iter_mut().enumerate() {
                        *b = bytes[j * self.chunk_len + first + e];
                    }
                }
            } else {
                piece.copy_from_slice(&bytes[first * self.elem..(first + n) * self.elem]);
            }
            Ok(())
        })
    }
}

/// How fast this machine decodes the inputs' stored matrix: the lower
/// bound of any pass that reads them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeRate {
    /// Stored (compressed) bytes of every input's `indices` and `data`.
    pub stored_bytes: u64,
    /// The same arrays decoded.
    pub decoded_bytes: u64,
    /// Wall seconds to read and decode them once, every chunk of every
    /// input on all worker threads at once.
    pub seconds: f64,
}

/// Reads and decodes every chunk of every input's `indices` and `data`
/// once, on all worker threads (rayon's pool), and times it. `None` when
/// an input's matrix is not stored in chunks this module decodes (dense,
/// CSC, other filters): then no bound is known. The files are read through
/// the page cache like any pass, so right after a pass over the same files
/// this measures decoding, not the disk.
pub fn decode_rate<'a>(
    datasets: impl IntoIterator<Item = &'a Dataset>,
) -> Result<Option<DecodeRate>, ReaderError> {
    let datasets: Vec<&Dataset> = datasets.into_iter().collect();
    let mut work: Vec<(usize, &RawChunks, usize)> = Vec::new();
    for (d, ds) in datasets.iter().enumerate() {
        let Some(arrays) = ds.raw_chunks() else {
            return Ok(None);
        };
        for a in arrays {
            work.extend((0..a.n_chunks()).map(|i| (d, a, i)));
        }
    }
    let t = std::time::Instant::now();
    let sizes = work
        .par_iter()
        .map(|&(d, a, i)| {
            a.decode_chunk(i).map_err(|e| ReaderError::Corrupt {
                path: datasets[d].path().to_owned(),
                object: "the sparse matrix's stored chunks".into(),
                detail: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let seconds = t.elapsed().as_secs_f64();
    let (stored, decoded) = sizes
        .iter()
        .fold((0u64, 0u64), |(s, d), &(a, b)| (s + a as u64, d + b as u64));
    Ok(Some(DecodeRate {
        stored_bytes: stored,
        decoded_bytes: decoded,
        seconds,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `v` as dataset "x" of a new file with the given storage and
    /// returns the file's path and the opened dataset.
    fn stored<T: H5Type + Copy>(
        dir: &Path,
        name: &str,
        v: &[T],
        chunk: Option<usize>,
        filters: &str,
    ) -> (std::path::PathBuf, hdf5::Dataset) {
        let path = dir.join(name);
        {
            let f = hdf5::File::create(&path).unwrap();
            let mut b = f.new_dataset_builder().with_data(v);
            if let Some(c) = chunk {
                b = b.chunk(c);
            }
            for filter in filters.split(',').filter(|s| !s.is_empty()) {
                b = match filter {
                    "shuffle" => b.shuffle(),
                    "deflate" => b.deflate(6),
                    "lzf" => b.lzf(),
                    "fletcher32" => b.fletcher32(),
                    other => panic!("unknown filter {other}"),
                };
            }
            b.create("x").unwrap();
        }
        let ds = hdf5::File::open(&path).unwrap().dataset("x").unwrap();
        (path, ds)
    }

    /// Deterministic count-like values: mostly small, some large.
    fn values(n: usize) -> Vec<f32> {
        let mut s = 17u64;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (s >> 33) as u32;
                if u % 7 == 0 {
                    (u % 5000) as f32
                } else {
                    (u % 4) as f32 + 1.0
                }
            })
            .collect()
    }

    /// Every selection `a..b` over a grid of starts and ends around chunk
    /// boundaries gives the library's elements.
    fn agrees_with_library<T: H5Type + Pod + PartialEq + std::fmt::Debug>(ds: &hdf5::Dataset, r: &RawChunks) {
        let n = ds.size();
        let c = r.chunk_len;
        let mut points: Vec<usize> = vec![0, 1, n / 2, n.saturating_sub(1), n];
        for k in (0..=n / c).take(12) {
            points.extend([k * c, (k * c).saturating_sub(1), k * c + 1]);
        }
        points.retain(|&p| p <= n);
        for &a in &points {
            for &b in &points {
                if a <= b {
                    let want = ds.read_slice_1d::<T, _>(a..b).unwrap().to_vec();
                    assert_eq!(r.read::<T>(a..b).unwrap(), want, "elements {a}..{b}");
                }
            }
        }
    }

    #[test]
    fn every_supported_storage_reads_the_library_s_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let v = values(10_007);
        let idx: Vec<i32> = (0..10_007).map(|i| i * 37 % 30_000).collect();
        let ptr: Vec<i64> = (0..3_001).map(|i| i * 1_000_003).collect();
        let small: Vec<u8> = (0..999).map(|i| (i % 251) as u8).collect();
        for (chunk, filters) in [
            (1000, "deflate"),
            (1000, "shuffle,deflate"),
            (1000, ""),
            (10_007, "shuffle,deflate"),
            (4096, "deflate"),
            (3, "deflate"),
        ] {
            let tag = format!("{chunk}-{}", filters.replace(',', "+"));
            let (p, ds) = stored(dir.path(), &format!("f32-{tag}.h5"), &v, Some(chunk), filters);
            let r = RawChunks::open::<f32>(&ds, &p).expect("supported storage");
            agrees_with_library::<f32>(&ds, &r);
            let (p, ds) = stored(dir.path(), &format!("i32-{tag}.h5"), &idx, Some(chunk), filters);
            agrees_with_library::<i32>(&ds, &RawChunks::open::<i32>(&ds, &p).expect("supported"));
            let (p, ds) = stored(
                dir.path(),
                &format!("i64-{tag}.h5"),
                &ptr,
                Some(chunk.min(3001)),
                filters,
            );
            agrees_with_library::<i64>(&ds, &RawChunks::open::<i64>(&ds, &p).expect("supported"));
            let (p, ds) = stored(
                dir.path(),
                &format!("u8-{tag}.h5"),
                &small,
                Some(chunk.min(999)),
                filters,
            );
            agrees_with_library::<u8>(&ds, &RawChunks::open::<u8>(&ds, &p).expect("supported"));
        }
    }

    #[test]
    fn other_storage_keeps_the_library_s_path() {
        let dir = tempfile::tempdir().unwrap();
        let v = values(5_000);
        let (p, ds) = stored(dir.path(), "contiguous.h5", &v, None, "");
        assert!(RawChunks::open::<f32>(&ds, &p).is_none(), "contiguous");
        let (p, ds) = stored(dir.path(), "lzf.h5", &v, Some(1000), "lzf");
        assert!(RawChunks::open::<f32>(&ds, &p).is_none(), "LZF");
        let (p, ds) = stored(dir.path(), "fletcher.h5", &v, Some(1000), "deflate,fletcher32");
        assert!(RawChunks::open::<f32>(&ds, &p).is_none(), "Fletcher-32");
        let (p, ds) = stored(dir.path(), "f32.h5", &v, Some(1000), "deflate");
        assert!(
            RawChunks::open::<i32>(&ds, &p).is_none(),
            "a different element size"
        );
    }

    #[test]
    fn a_damaged_chunk_is_an_error_not_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let v = values(5_000);
        let (p, ds) = stored(dir.path(), "damaged.h5", &v, Some(1000), "shuffle,deflate");
        let r = RawChunks::open::<f32>(&ds, &p).expect("supported");
        drop(ds);
        // Overwrite the middle of chunk 3's stored stream.
        let Chunk { addr, size } = r.chunks[3];
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(&vec![0xA5; size / 2], addr + size as u64 / 4)
            .unwrap();
        drop(f);
        assert_eq!(r.read::<f32>(0..3000).unwrap(), v[..3000], "chunks 0–2 intact");
        let err = r.read::<f32>(2500..3500).unwrap_err();
        assert!(err.to_string().contains("does not inflate"), "{err}");
    }
}
