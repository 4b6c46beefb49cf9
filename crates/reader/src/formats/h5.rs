//! Thin helpers over the `hdf5` crate: read-only opening with a clean
//! "not HDF5" check, type inspection, typed slice reads that convert any
//! stored integer/float type, and string reads (fixed or variable length,
//! ASCII or UTF-8).

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;

use hdf5::types::VarLenUnicode;
use hdf5::types::{FixedAscii, FixedUnicode, FloatSize, IntSize, TypeDescriptor, VarLenAscii};
use hdf5::{Container, H5Type};

use crate::formats::chunks::RawChunks;

use crate::error::ReaderError;

/// The 8-byte signature that starts an HDF5 superblock.
const SIGNATURE: [u8; 8] = [0x89, b'H', b'D', b'F', b'\r', b'\n', 0x1a, b'\n'];

/// Bytes of chunk cache per opened dataset (measured: 16 MiB made peak RSS
/// grow to 440 MB at 300k cells; 2 MiB: 259 MB, same speed): enough to keep the chunk that
/// straddles two consecutive reads, so it is decompressed once.
const CHUNK_CACHE_BYTES: usize = 2 << 20;
/// Hash slots of the chunk cache (a prime, ~100× the chunks that fit).
const CHUNK_CACHE_SLOTS: usize = 12_421;

/// Adds file/object context to `hdf5` results.
pub(crate) trait Ctx<T> {
    /// Maps an HDF5 error to [`ReaderError::Hdf5`] naming `path` and `object`.
    fn ctx(self, path: &Path, object: &str) -> Result<T, ReaderError>;
}

impl<T> Ctx<T> for hdf5::Result<T> {
    fn ctx(self, path: &Path, object: &str) -> Result<T, ReaderError> {
        self.map_err(|error| ReaderError::Hdf5 {
            path: path.to_owned(),
            object: object.to_owned(),
            error,
        })
    }
}

/// Checks that `path` exists and carries the HDF5 signature at one of the
/// offsets the format allows (0, 512, 1024, 2048, ...), so non-HDF5 inputs
/// get a clean error instead of a library error stack.
pub(crate) fn check_signature(path: &Path) -> Result<(), ReaderError> {
    let io_err = |source: io::Error| {
        if source.kind() == io::ErrorKind::NotFound {
            ReaderError::NotFound {
                path: path.to_owned(),
            }
        } else {
            ReaderError::Io {
                path: path.to_owned(),
                source,
            }
        }
    };
    let mut f = fs::File::open(path).map_err(io_err)?;
    let len = f.metadata().map_err(io_err)?.len();
    let mut offset = 0u64;
    let mut buf = [0u8; 8];
    while offset + 8 <= len {
        f.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        f.read_exact(&mut buf).map_err(io_err)?;
        if buf == SIGNATURE {
            return Ok(());
        }
        offset = if offset == 0 { 512 } else { offset * 2 };
    }
    Err(ReaderError::NotHdf5 {
        path: path.to_owned(),
    })
}

/// Opens dataset `name` of `loc` (`object` is its HDF5 path, for messages)
/// and checks that this build can decode every filter of its pipeline
/// ([`check_filters`]).
pub(crate) fn dataset(
    loc: &hdf5::Group,
    name: &str,
    path: &Path,
    object: &str,
) -> Result<hdf5::Dataset, ReaderError> {
    let ds = loc.dataset(name).ctx(path, object)?;
    check_filters(&ds, path, object)?;
    Ok(ds)
}

/// Checks that every filter of `ds`'s pipeline can decode here: gzip,
/// shuffle, LZF and the other built-in or registered filters (or an HDF5
/// plugin found on `HDF5_PLUGIN_PATH`). A filter that cannot is a
/// [`ReaderError::UnsupportedFilter`] naming it, instead of a library
/// error at the first read.
pub(crate) fn check_filters(ds: &hdf5::Dataset, path: &Path, object: &str) -> Result<(), ReaderError> {
    for f in ds.filters() {
        let id = f.id();
        if !hdf5::filters::Filter::get_info(id).decode_enabled {
            return Err(ReaderError::UnsupportedFilter {
                path: path.to_owned(),
                object: object.to_owned(),
                id,
                name: filter_name(id).unwrap_or("an unregistered filter").to_owned(),
            });
        }
    }
    Ok(())
}

/// The common name of an HDF5 filter id (from the HDF Group's list of
/// registered filters), if it is a known one.
pub(crate) fn filter_name(id: i32) -> Option<&'static str> {
    Some(match id {
        1 => "gzip",
        2 => "shuffle",
        3 => "fletcher32",
        4 => "szip",
        5 => "nbit",
        6 => "scale-offset",
        305 => "lzo",
        307 => "bzip2",
        32000 => "lzf",
        32001 => "blosc",
        32003 => "snappy",
        32004 => "lz4",
        32008 => "bitshuffle",
        32013 => "zfp",
        32015 => "zstd",
        32017 => "sz",
        32024 => "sz3",
        32026 => "blosc2",
        _ => return None,
    })
}

/// Opens `path` read-only (after the signature check), with a chunk cache
/// sized for streaming reads.
pub(crate) fn open_read_only(path: &Path) -> Result<hdf5::File, ReaderError> {
    check_signature(path)?;
    // The crate silences libhdf5's automatic error printing when it
    // initializes; doing it again is cheap and makes it explicit.
    hdf5::silence_errors(true);
    hdf5::File::with_options()
        .with_fapl(|p| p.chunk_cache(CHUNK_CACHE_SLOTS, CHUNK_CACHE_BYTES, 0.75))
        .open(path)
        .ctx(path, "/")
}

/// The numeric storage types the reader converts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumKind {
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
}

impl NumKind {
    pub(crate) fn is_float(self) -> bool {
        matches!(self, NumKind::F32 | NumKind::F64)
    }
}

/// Describes a datatype for messages.
pub(crate) fn describe(desc: &TypeDescriptor) -> String {
    desc.to_string()
}

/// The numeric kind of `c`, or a [`ReaderError::BadDtype`].
pub(crate) fn num_kind(
    c: &Container,
    path: &Path,
    object: &str,
    allow_float: bool,
) -> Result<NumKind, ReaderError> {
    let desc = c.dtype().and_then(|t| t.to_descriptor()).ctx(path, object)?;
    let kind = match desc {
        TypeDescriptor::Integer(IntSize::U1) => Some(NumKind::I8),
        TypeDescriptor::Integer(IntSize::U2) => Some(NumKind::I16),
        TypeDescriptor::Integer(IntSize::U4) => Some(NumKind::I32),
        TypeDescriptor::Integer(IntSize::U8) => Some(NumKind::I64),
        TypeDescriptor::Unsigned(IntSize::U1) => Some(NumKind::U8),
        TypeDescriptor::Unsigned(IntSize::U2) => Some(NumKind::U16),
        TypeDescriptor::Unsigned(IntSize::U4) => Some(NumKind::U32),
        TypeDescriptor::Unsigned(IntSize::U8) => Some(NumKind::U64),
        TypeDescriptor::Float(FloatSize::U4) => Some(NumKind::F32),
        TypeDescriptor::Float(FloatSize::U8) => Some(NumKind::F64),
        _ => None,
    };
    match kind {
        Some(k) if allow_float || !k.is_float() => Ok(k),
        _ => Err(ReaderError::BadDtype {
            path: path.to_owned(),
            object: object.to_owned(),
            expected: if allow_float {
                "an integer or floating-point number type".into()
            } else {
                "an integer type".into()
            },
            found: describe(&desc),
        }),
    }
}

/// Conversions from every stored numeric type.
pub(crate) trait Num: H5Type + Copy {
    fn as_f64(self) -> f64;
    /// Exact for integers; floats are never asked for this.
    fn as_i128(self) -> i128;
}

macro_rules! impl_num_int {
    ($($t:ty),*) => {$(
        impl Num for $t {
            #[inline]
            fn as_f64(self) -> f64 { self as f64 }
            #[inline]
            fn as_i128(self) -> i128 { self as i128 }
        }
    )*};
}
impl_num_int!(i8, i16, i32, i64, u8, u16, u32, u64);

impl Num for f32 {
    #[inline]
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline]
    fn as_i128(self) -> i128 {
        self as i128
    }
}
impl Num for f64 {
    #[inline]
    fn as_f64(self) -> f64 {
        self
    }
    #[inline]
    fn as_i128(self) -> i128 {
        self as i128
    }
}

/// Reads elements `sel` of a 1-d dataset in its stored type: through its
/// direct chunk reader when it has one, else through the library.
fn read_vec_via<T: H5Type + bytemuck::Pod>(
    c: &Container,
    chunks: Option<&RawChunks>,
    sel: Range<usize>,
) -> hdf5::Result<Vec<T>> {
    match chunks {
        Some(r) => Ok(r.read::<T>(sel)?),
        None => read_vec(c, sel),
    }
}

/// Reads elements `sel` of a 1-d dataset in its stored type.
fn read_vec<T: H5Type>(c: &Container, sel: Range<usize>) -> hdf5::Result<Vec<T>> {
    let a = c.as_reader().read_slice_1d::<T, _>(sel)?;
    let (v, off) = a.into_raw_vec_and_offset();
    debug_assert!(off.unwrap_or(0) == 0);
    Ok(v)
}

/// Dispatches on a [`NumKind`] with the Rust type bound to `$t`.
macro_rules! with_kind {
    ($kind:expr, $t:ident => $body:expr) => {
        match $kind {
            NumKind::I8 => {
                type $t = i8;
                $body
            }
            NumKind::I16 => {
                type $t = i16;
                $body
            }
            NumKind::I32 => {
                type $t = i32;
                $body
            }
            NumKind::I64 => {
                type $t = i64;
                $body
            }
            NumKind::U8 => {
                type $t = u8;
                $body
            }
            NumKind::U16 => {
                type $t = u16;
                $body
            }
            NumKind::U32 => {
                type $t = u32;
                $body
            }
            NumKind::U64 => {
                type $t = u64;
                $body
            }
            NumKind::F32 => {
                type $t = f32;
                $body
            }
            NumKind::F64 => {
                type $t = f64;
                $body
            }
        }
    };
}

/// The direct chunk reader of the 1-d array `ds` of `kind` elements in the
/// file at `path`, when its storage allows one (`formats::chunks`).
pub(crate) fn raw_chunks(ds: &hdf5::Dataset, kind: NumKind, path: &Path) -> Option<RawChunks> {
    with_kind!(kind, T => RawChunks::open::<T>(ds, path))
}

/// A stored element that failed validation: its position in the slice read
/// and its value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BadElement<V> {
    pub(crate) pos: usize,
    pub(crate) value: V,
}

/// A valid count: finite and ≥ 0 (NaN fails both).
#[inline]
fn valid(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

/// Reads count values `sel` as `f32`, checking each is finite and ≥ 0
/// (before and after narrowing to `f32`).
pub(crate) fn read_values(
    c: &Container,
    chunks: Option<&RawChunks>,
    kind: NumKind,
    sel: Range<usize>,
) -> hdf5::Result<Result<Vec<f32>, BadElement<f64>>> {
    if kind == NumKind::F32 {
        // Validate in place: no copy when the file already stores f32.
        let v = read_vec_via::<f32>(c, chunks, sel)?;
        return Ok(match v.iter().position(|&x| !valid(f64::from(x))) {
            Some(pos) => Err(BadElement {
                pos,
                value: f64::from(v[pos]),
            }),
            None => Ok(v),
        });
    }
    with_kind!(kind, T => Ok(checked_f32(read_vec_via::<T>(c, chunks, sel)?)))
}

/// Reads column indices `sel` as `u32`, checking each is in `0..n_cols`.
pub(crate) fn read_indices(
    c: &Container,
    chunks: Option<&RawChunks>,
    kind: NumKind,
    sel: Range<usize>,
    n_cols: usize,
) -> hdf5::Result<Result<Vec<u32>, BadElement<i128>>> {
    fn check<T: Num>(raw: Vec<T>, n_cols: usize) -> Result<Vec<u32>, BadElement<i128>> {
        let n = n_cols as i128;
        let mut out = Vec::with_capacity(raw.len());
        for (pos, &x) in raw.iter().enumerate() {
            let v = x.as_i128();
            if !(0..n).contains(&v) {
                return Err(BadElement { pos, value: v });
            }
            out.push(v as u32);
        }
        Ok(out)
    }
    with_kind!(kind, T => Ok(check(read_vec_via::<T>(c, chunks, sel)?, n_cols)))
}

/// Reads integer elements `sel` as `i128` (exact for every integer type);
/// used for row pointers and shapes, which are short.
pub(crate) fn read_ints(c: &Container, kind: NumKind, sel: Range<usize>) -> hdf5::Result<Vec<i128>> {
    with_kind!(kind, T => Ok(read_vec::<T>(c, sel)?.into_iter().map(Num::as_i128).collect()))
}

/// Reads a whole 1-d integer attribute or dataset (e.g. `shape`) as `i128`.
pub(crate) fn read_all_ints(c: &Container, path: &Path, object: &str) -> Result<Vec<i128>, ReaderError> {
    let kind = num_kind(c, path, object, false)?;
    with_kind!(kind, T => Ok(c.as_reader().read_raw::<T>().ctx(path, object)?.into_iter().map(Num::as_i128).collect()))
}

/// Reads strings (all of `c`, or elements `sel` of a dataset), whatever
/// their storage: variable or fixed length, ASCII or UTF-8. Invalid UTF-8
/// is replaced (U+FFFD) rather than rejected: names are only labels.
pub(crate) fn read_strings(
    c: &Container,
    sel: Option<Range<usize>>,
    path: &Path,
    object: &str,
) -> Result<Vec<String>, ReaderError> {
    fn raw<T: H5Type>(c: &Container, sel: &Option<Range<usize>>) -> hdf5::Result<Vec<T>> {
        match sel {
            Some(r) => read_vec::<T>(c, r.clone()),
            None => c.as_reader().read_raw::<T>(),
        }
    }
    let desc = c.dtype().and_then(|t| t.to_descriptor()).ctx(path, object)?;
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    macro_rules! fixed {
        ($ty:ident, $n:expr, [$($cap:literal),*]) => {{
            let n = $n;
            $(
                if n <= $cap {
                    return Ok(raw::<$ty<$cap>>(c, &sel)
                        .ctx(path, object)?
                        .iter()
                        .map(|s| lossy(s.as_bytes()))
                        .collect());
                }
            )*
        }};
    }
    match desc {
        TypeDescriptor::VarLenUnicode => Ok(raw::<VarLenUnicode>(c, &sel)
            .ctx(path, object)?
            .iter()
            .map(|s| lossy(s.as_bytes()))
            .collect()),
        TypeDescriptor::VarLenAscii => Ok(raw::<VarLenAscii>(c, &sel)
            .ctx(path, object)?
            .iter()
            .map(|s| lossy(s.as_bytes()))
            .collect()),
        TypeDescriptor::FixedAscii(n) => {
            fixed!(FixedAscii, n, [16, 32, 64, 128, 256, 1024, 4096]);
            Err(bad_string(path, object, &desc))
        }
        TypeDescriptor::FixedUnicode(n) => {
            fixed!(FixedUnicode, n, [16, 32, 64, 128, 256, 1024, 4096]);
            Err(bad_string(path, object, &desc))
        }
        _ => Err(bad_string(path, object, &desc)),
    }
}

fn bad_string(path: &Path, object: &str, desc: &TypeDescriptor) -> ReaderError {
    ReaderError::BadDtype {
        path: path.to_owned(),
        object: object.to_owned(),
        expected: "strings (variable length, or fixed length up to 4096 bytes)".into(),
        found: describe(desc),
    }
}

/// Reads a scalar (or one-element) string attribute `name` of `loc`;
/// `None` when the attribute does not exist.
pub(crate) fn string_attr(
    loc: &hdf5::Location,
    name: &str,
    path: &Path,
    object: &str,
) -> Result<Option<String>, ReaderError> {
    if !loc.attr_names().ctx(path, object)?.iter().any(|a| a == name) {
        return Ok(None);
    }
    let obj = format!("{object}@{name}");
    let attr = loc.attr(name).ctx(path, &obj)?;
    Ok(read_strings(&attr, None, path, &obj)?.into_iter().next())
}

/// Reads an integer-array attribute `name` of `loc`; `None` when absent.
pub(crate) fn ints_attr(
    loc: &hdf5::Location,
    name: &str,
    path: &Path,
    object: &str,
) -> Result<Option<Vec<i128>>, ReaderError> {
    if !loc.attr_names().ctx(path, object)?.iter().any(|a| a == name) {
        return Ok(None);
    }
    let obj = format!("{object}@{name}");
    let attr = loc.attr(name).ctx(path, &obj)?;
    read_all_ints(&attr, path, &obj).map(Some)
}

/// What a name inside a group refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Member {
    Missing,
    Group,
    Dataset,
    Other,
}

/// Looks up `name` (a path relative to `g`, components checked one by one
/// so a missing parent is `Missing`, not an error).
pub(crate) fn member(g: &hdf5::Group, name: &str) -> Member {
    let mut prefix = String::new();
    for part in name.split('/') {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        if !g.link_exists(&prefix) {
            return Member::Missing;
        }
    }
    match g.loc_type_by_name(name) {
        Ok(hdf5::LocationType::Group) => Member::Group,
        Ok(hdf5::LocationType::Dataset) => Member::Dataset,
        _ => Member::Other,
    }
}

/// The names of the members of `g` (sorted by HDF5's default order).
pub(crate) fn member_names(g: &hdf5::Group, path: &Path, object: &str) -> Result<Vec<String>, ReaderError> {
    g.member_names().ctx(path, object)
}

/// Converts stored numbers to `f32` counts, checking each is finite and
/// ≥ 0 (before and after narrowing).
fn checked_f32<T: Num>(raw: Vec<T>) -> Result<Vec<f32>, BadElement<f64>> {
    let mut out = Vec::with_capacity(raw.len());
    for (pos, &x) in raw.iter().enumerate() {
        let v = x.as_f64();
        let f = v as f32;
        if !(valid(v) && f.is_finite()) {
            return Err(BadElement { pos, value: v });
        }
        out.push(f);
    }
    Ok(out)
}

/// Reads the block `rows` × `cols` of a 2-d numeric dataset as validated
/// `f32` counts in row-major order (a bad element's `pos` is
/// `row * cols.len() + col`, relative to the block).
pub(crate) fn read_values_2d(
    c: &Container,
    kind: NumKind,
    rows: Range<usize>,
    cols: Range<usize>,
) -> hdf5::Result<Result<Vec<f32>, BadElement<f64>>> {
    fn raw<T: H5Type>(c: &Container, rows: Range<usize>, cols: Range<usize>) -> hdf5::Result<Vec<T>> {
        let a = c.as_reader().read_slice_2d::<T, _>((rows, cols))?;
        // A freshly read array is built row-major from the buffer HDF5 filled.
        debug_assert!(a.is_standard_layout());
        Ok(a.into_raw_vec_and_offset().0)
    }
    if rows.is_empty() || cols.is_empty() {
        return Ok(Ok(Vec::new()));
    }
    with_kind!(kind, T => Ok(checked_f32(raw::<T>(c, rows, cols)?)))
}

/// Reads integer elements `sel` of a 1-d dataset as `i64` (codes of a
/// categorical column; values beyond `i64` saturate, which makes them
/// invalid codes anyway).
pub(crate) fn read_codes(c: &Container, kind: NumKind, sel: Range<usize>) -> hdf5::Result<Vec<i64>> {
    with_kind!(kind, T => Ok(read_vec::<T>(c, sel)?
        .into_iter()
        .map(|x| x.as_i128().clamp(i64::MIN as i128, i64::MAX as i128) as i64)
        .collect()))
}

/// A one-line description of a dataset's storage for `inmf inspect`:
/// type, shape, chunk shape and filters.
pub(crate) fn storage_summary(ds: &hdf5::Dataset) -> String {
    let dtype = ds
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_or_else(|_| "unknown type".to_owned(), |d| describe(&d));
    let shape = ds.shape();
    let layout = match ds.chunk() {
        Some(c) => format!("chunks {c:?}"),
        None => "contiguous".to_owned(),
    };
    let filters: Vec<String> = ds
        .filters()
        .iter()
        .map(|f| match f {
            hdf5::filters::Filter::Deflate(l) => format!("gzip({l})"),
            other => filter_name(other.id()).map_or_else(|| format!("filter #{}", other.id()), str::to_owned),
        })
        .collect();
    let compression = if filters.is_empty() {
        "uncompressed".to_owned()
    } else {
        filters.join("+")
    };
    format!("{dtype} {shape:?}, {layout}, {compression}")
}

/// One string field of a compound dataset, read through HDF5's
/// conversion of a compound to a subset of its fields (matched by name).
/// The derive fixes the field name at compile time, hence one wrapper per
/// name the legacy AnnData layout uses.
macro_rules! field_struct {
    ($name:ident, $field:literal) => {
        #[derive(hdf5::H5Type, Clone)]
        #[repr(C)]
        struct $name<T: H5Type + Clone> {
            #[hdf5(rename = $field)]
            value: T,
        }
    };
}
field_struct!(FieldIndex, "index");
field_struct!(FieldUIndex, "_index");
field_struct!(FieldGeneIds, "gene_ids");

/// The compound field names [`read_compound_strings`] can read.
pub(crate) const COMPOUND_FIELDS: [&str; 3] = ["index", "_index", "gene_ids"];

/// The type of field `field` of compound dataset `c`, if it has one.
pub(crate) fn compound_field_type(c: &Container, field: &str) -> Option<TypeDescriptor> {
    match c.dtype().and_then(|t| t.to_descriptor()) {
        Ok(TypeDescriptor::Compound(ct)) => ct.fields.into_iter().find(|f| f.name == field).map(|f| f.ty),
        _ => None,
    }
}

/// Reads string field `field` (one of [`COMPOUND_FIELDS`]) of the compound
/// dataset `c` (all of it, or elements `sel`), whatever the field's string
/// storage.
pub(crate) fn read_compound_strings(
    c: &Container,
    field: &str,
    sel: Option<Range<usize>>,
    path: &Path,
    object: &str,
) -> Result<Vec<String>, ReaderError> {
    let obj = format!("{object} (field `{field}`)");
    let Some(desc) = compound_field_type(c, field) else {
        return Err(ReaderError::MissingObject {
            path: path.to_owned(),
            object: obj,
            what: "a string field of the legacy (anndata < 0.7) dataframe".into(),
        });
    };
    fn raw<W: H5Type>(c: &Container, sel: &Option<Range<usize>>) -> hdf5::Result<Vec<W>> {
        match sel {
            Some(r) => read_vec::<W>(c, r.clone()),
            None => c.as_reader().read_raw::<W>(),
        }
    }
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    macro_rules! by_field {
        ($ty:ty) => {
            match field {
                "index" => raw::<FieldIndex<$ty>>(c, &sel)
                    .ctx(path, &obj)?
                    .into_iter()
                    .map(|w| lossy(w.value.as_bytes()))
                    .collect::<Vec<String>>(),
                "_index" => raw::<FieldUIndex<$ty>>(c, &sel)
                    .ctx(path, &obj)?
                    .into_iter()
                    .map(|w| lossy(w.value.as_bytes()))
                    .collect(),
                "gene_ids" => raw::<FieldGeneIds<$ty>>(c, &sel)
                    .ctx(path, &obj)?
                    .into_iter()
                    .map(|w| lossy(w.value.as_bytes()))
                    .collect(),
                _ => return Err(bad_string(path, &obj, &desc)),
            }
        };
    }
    macro_rules! fixed {
        ($ty:ident, $n:expr, [$($cap:literal),*]) => {{
            $(
                if $n <= $cap {
                    return Ok(by_field!($ty<$cap>));
                }
            )*
            Err(bad_string(path, &obj, &desc))
        }};
    }
    match desc {
        TypeDescriptor::VarLenUnicode => Ok(by_field!(VarLenUnicode)),
        TypeDescriptor::VarLenAscii => Ok(by_field!(VarLenAscii)),
        TypeDescriptor::FixedAscii(n) => fixed!(FixedAscii, n, [16, 64, 256, 1024]),
        TypeDescriptor::FixedUnicode(n) => fixed!(FixedUnicode, n, [16, 64, 256, 1024]),
        _ => Err(bad_string(path, &obj, &desc)),
    }
}
