//! HDF5 plumbing shared by the writers: error context, string attributes,
//! dataset options, numeric element types and a buffered appender for
//! resizable 1-D datasets.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hdf5::types::{TypeDescriptor, VarLenUnicode};
use hdf5::{Dataset, Group, H5Type, Location};

use crate::DriverError;

/// The final output path, shared by a writer and its appenders so that
/// every error names the file the user asked for.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    path: Arc<PathBuf>,
}

impl Ctx {
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            path: Arc::new(path.to_path_buf()),
        }
    }

    /// Wraps an HDF5 error with the file and what was being done.
    pub(crate) fn h5<T>(&self, r: hdf5::Result<T>, what: impl FnOnce() -> String) -> Result<T, DriverError> {
        r.map_err(|source| DriverError::hdf5(&self.path, what(), source))
    }

    /// An [`DriverError::InvalidOutput`] for this file.
    pub(crate) fn invalid(&self, reason: impl Into<String>) -> DriverError {
        DriverError::InvalidOutput {
            path: self.path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// How a streamed dataset is laid out on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatasetOptions {
    /// gzip (deflate) level 0–9, or `None` for no compression.
    /// Default: `None`.
    pub gzip: Option<u8>,
    /// Elements per HDF5 chunk. For 1-D datasets this is the chunk length;
    /// for 2-D datasets (rows × columns) a chunk holds
    /// `max(1, chunk / columns)` whole rows. Default: 65,536 (256 KiB of
    /// `f32`), large enough for fast sequential reads, small enough for
    /// cheap partial reads.
    pub chunk: usize,
}

impl Default for DatasetOptions {
    fn default() -> Self {
        Self {
            gzip: None,
            chunk: 1 << 16,
        }
    }
}

impl DatasetOptions {
    /// Default chunking with gzip at `level` (0–9).
    pub fn gzip(level: u8) -> Self {
        Self {
            gzip: Some(level),
            ..Self::default()
        }
    }

    pub(crate) fn check(&self, ctx: &Ctx) -> Result<(), DriverError> {
        if let Some(level) = self.gzip {
            if level > 9 {
                return Err(ctx.invalid(format!("gzip level {level} is out of range; use 0 to 9")));
            }
        }
        if self.chunk == 0 {
            return Err(ctx.invalid("chunk size 0; use a positive number of elements"));
        }
        Ok(())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A numeric element type the writers store: `i8`–`i64`, `u8`–`u64`,
/// `f32`, `f64` (HDF5 native little-endian types, which h5py maps to the
/// same NumPy dtypes).
pub trait Element: H5Type + Copy + Send + Sync + 'static + sealed::Sealed {}

macro_rules! element {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {}
    )*};
}
element!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

/// A variable-length UTF-8 string, refusing interior NUL bytes (which
/// HDF5 would silently truncate at).
pub(crate) fn vlen(ctx: &Ctx, s: &str, what: &str) -> Result<VarLenUnicode, DriverError> {
    s.parse::<VarLenUnicode>().map_err(|_| {
        ctx.invalid(format!(
            "{what}: the string {s:?} contains a NUL byte, which HDF5 cannot store"
        ))
    })
}

/// Writes a scalar variable-length UTF-8 string attribute.
pub(crate) fn str_attr(ctx: &Ctx, loc: &Location, name: &str, value: &str) -> Result<(), DriverError> {
    let v = vlen(ctx, value, name)?;
    let r = loc
        .new_attr::<VarLenUnicode>()
        .shape(())
        .create(name)
        .and_then(|a| a.as_writer().write_scalar(&v));
    ctx.h5(r, || {
        format!("writing attribute {name}={value:?} on {}", loc.name())
    })
}

/// Writes the AnnData `encoding-type` / `encoding-version` attributes.
pub(crate) fn encoding(ctx: &Ctx, loc: &Location, ty: &str, version: &str) -> Result<(), DriverError> {
    str_attr(ctx, loc, "encoding-type", ty)?;
    str_attr(ctx, loc, "encoding-version", version)
}

/// Writes a 1-D variable-length UTF-8 string array attribute (possibly empty).
pub(crate) fn str_array_attr(
    ctx: &Ctx,
    loc: &Location,
    name: &str,
    values: &[String],
) -> Result<(), DriverError> {
    let v = values
        .iter()
        .map(|s| vlen(ctx, s, name))
        .collect::<Result<Vec<_>, _>>()?;
    let r = loc
        .new_attr::<VarLenUnicode>()
        .shape(v.len())
        .create(name)
        .and_then(|a| {
            if v.is_empty() {
                Ok(())
            } else {
                a.as_writer().write_raw(&v)
            }
        });
    ctx.h5(r, || format!("writing attribute {name} on {}", loc.name()))
}

/// Appends to a resizable, chunked 1-D dataset. Values are buffered up to
/// whole chunks so that every chunk is written (and compressed) exactly
/// once; memory is one chunk whatever the dataset's final length.
pub(crate) struct Chunked1D<T: H5Type + Clone> {
    ds: Dataset,
    buf: Vec<T>,
    written: usize,
    chunk: usize,
    ctx: Ctx,
}

impl<T: H5Type + Clone> std::fmt::Debug for Chunked1D<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunked1D")
            .field("dataset", &self.ds.name())
            .field("len", &self.len())
            .finish()
    }
}

impl<T: H5Type + Clone> Chunked1D<T> {
    /// Creates `group/name` with elements stored as `file_type` (default:
    /// `T`'s own type; HDF5 converts on write).
    pub(crate) fn create(
        ctx: &Ctx,
        group: &Group,
        name: &str,
        file_type: Option<TypeDescriptor>,
        opts: &DatasetOptions,
    ) -> Result<Self, DriverError> {
        let desc = file_type.unwrap_or_else(T::type_descriptor);
        let mut b = group.new_dataset_builder().chunk(opts.chunk);
        if let Some(level) = opts.gzip {
            b = b.deflate(level);
        }
        let r = b.empty_as(&desc).shape(0..).create(name);
        let ds = ctx.h5(r, || format!("creating dataset {}/{name}", group.name()))?;
        Ok(Self {
            ds,
            buf: Vec::with_capacity(opts.chunk.min(1 << 20)),
            written: 0,
            chunk: opts.chunk,
            ctx: ctx.clone(),
        })
    }

    /// The dataset being written.
    pub(crate) fn dataset(&self) -> &Dataset {
        &self.ds
    }

    /// Number of elements appended so far.
    pub(crate) fn len(&self) -> usize {
        self.written + self.buf.len()
    }

    /// Appends one value.
    pub(crate) fn push(&mut self, v: T) -> Result<(), DriverError> {
        self.buf.push(v);
        if self.buf.len() >= self.chunk {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// Appends a slice: tops up the buffered chunk, writes whole chunks
    /// straight from `values`, buffers the rest.
    pub(crate) fn extend(&mut self, mut values: &[T]) -> Result<(), DriverError> {
        if !self.buf.is_empty() {
            let take = (self.chunk - self.buf.len()).min(values.len());
            self.buf.extend_from_slice(&values[..take]);
            values = &values[take..];
            if self.buf.len() < self.chunk {
                return Ok(());
            }
            self.flush_buf()?;
        }
        let whole = values.len() / self.chunk * self.chunk;
        if whole > 0 {
            self.write(&values[..whole])?;
        }
        self.buf.extend_from_slice(&values[whole..]);
        Ok(())
    }

    fn flush_buf(&mut self) -> Result<(), DriverError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        self.write(&buf)?;
        self.buf = buf;
        self.buf.clear();
        Ok(())
    }

    fn write(&mut self, values: &[T]) -> Result<(), DriverError> {
        let (start, end) = (self.written, self.written + values.len());
        let r = self
            .ds
            .resize(end)
            .and_then(|_| self.ds.as_writer().write_slice(values, start..end));
        self.ctx.h5(r, || {
            format!("writing elements {start}..{end} of {}", self.ds.name())
        })?;
        self.written = end;
        Ok(())
    }

    /// Writes what is buffered and returns the dataset and its length.
    pub(crate) fn finish(mut self) -> Result<(Dataset, usize), DriverError> {
        self.flush_buf()?;
        Ok((self.ds, self.written))
    }
}
