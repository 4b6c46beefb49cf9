//! 10x Genomics (Cell Ranger ≥ 3) feature-barcode matrix `.h5` writer.

use std::path::{Path, PathBuf};

use hdf5::types::{FixedAscii, TypeDescriptor};
use hdf5::{File, Group};

use super::h5::{Chunked1D, Ctx, DatasetOptions};
use super::temp::TempFile;
use crate::DriverError;

/// Longest string (bytes) the 10x writer stores; Cell Ranger's barcodes
/// and feature ids are far shorter.
pub const TENX_MAX_STRING: usize = 256;

type Fixed = FixedAscii<TENX_MAX_STRING>;

/// Writes a Cell Ranger ≥ 3 `.h5` matrix, streaming cells in chunks:
///
/// ```text
/// /                 attrs filetype = "matrix", version = 2
/// matrix/barcodes   |S<n>  one per cell
/// matrix/data       int32  counts, cell by cell (CSC of genes × cells)
/// matrix/indices    int64  gene index of each count
/// matrix/indptr     int64  cells + 1 offsets
/// matrix/shape      int32  [genes, cells]
/// matrix/features/{id, name, feature_type, genome, _all_tag_keys}  |S<n>
/// ```
///
/// Strings are fixed-length, NUL-padded ASCII as Cell Ranger (h5py with
/// NumPy `S` dtypes) writes them, sized to the longest value; barcodes are
/// sized by the `barcode_len` given up front because they arrive in
/// chunks. `feature_type` is "Gene Expression" for every feature. Written
/// under a temporary name and renamed by [`finish`](Self::finish); dropped
/// unfinished, nothing appears under the final name.
#[derive(Debug)]
pub struct TenxWriter {
    /// Declared first so the file is closed before the temporary is removed.
    file: Option<File>,
    matrix: Group,
    barcodes: Chunked1D<Fixed>,
    data: Chunked1D<i32>,
    indices: Chunked1D<i64>,
    indptr: Chunked1D<i64>,
    text: Vec<Fixed>,
    idx_buf: Vec<i64>,
    val_buf: Vec<i32>,
    ptr_buf: Vec<i64>,
    n_genes: usize,
    barcode_len: usize,
    cells: usize,
    nnz: u64,
    ctx: Ctx,
    temp: TempFile,
}

fn fixed(ctx: &Ctx, s: &str, what: &str, max: usize) -> Result<Fixed, DriverError> {
    if s.len() > max {
        return Err(ctx.invalid(format!("{what} {s:?} is longer than {max} bytes")));
    }
    Fixed::from_ascii(s.as_bytes()).map_err(|_| {
        ctx.invalid(format!(
            "{what} {s:?} is not ASCII; 10x files store ASCII strings"
        ))
    })
}

/// Writes a whole fixed-length string array sized to its longest value.
fn fixed_array<S: AsRef<str>>(ctx: &Ctx, g: &Group, name: &str, values: &[S]) -> Result<(), DriverError> {
    let len = values.iter().map(|s| s.as_ref().len()).max().unwrap_or(0).max(1);
    let what = format!("{}/{name} entry", g.name());
    let v = values
        .iter()
        .map(|s| fixed(ctx, s.as_ref(), &what, TENX_MAX_STRING))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = DatasetOptions {
        gzip: Some(4),
        chunk: v.len().clamp(1, 1 << 14),
    };
    let mut a = Chunked1D::<Fixed>::create(ctx, g, name, Some(TypeDescriptor::FixedAscii(len)), &opts)?;
    a.extend(&v)?;
    a.finish()?;
    Ok(())
}

impl TenxWriter {
    /// Creates the temporary file next to `path` and writes the features
    /// (`ids` and `names`, one per gene, same length; `genome` for all).
    /// `barcode_len` is the length in bytes of the longest barcode to come
    /// (at most [`TENX_MAX_STRING`]); `opts` sets chunking and compression
    /// of the streamed datasets.
    pub fn create<S: AsRef<str>>(
        path: impl AsRef<Path>,
        ids: &[S],
        names: &[S],
        genome: &str,
        barcode_len: usize,
        opts: DatasetOptions,
    ) -> Result<Self, DriverError> {
        let path = path.as_ref();
        let ctx = Ctx::new(path);
        opts.check(&ctx)?;
        if ids.len() != names.len() {
            return Err(ctx.invalid(format!(
                "{} feature ids but {} feature names; give one of each per gene",
                ids.len(),
                names.len()
            )));
        }
        if barcode_len == 0 || barcode_len > TENX_MAX_STRING {
            return Err(ctx.invalid(format!(
                "barcode length {barcode_len} must be in 1..={TENX_MAX_STRING}"
            )));
        }
        let temp = TempFile::new(path)?;
        let r = File::with_options()
            .with_fapl(|p| p.fclose_degree(hdf5::file::FileCloseDegree::Strong))
            .with_fcpl(|p| p.obj_track_times(false))
            .create(temp.tmp());
        let file = ctx.h5(r, || {
            format!("creating the temporary file {}", temp.tmp().display())
        })?;
        let r = file
            .new_attr::<FixedAscii<6>>()
            .shape(())
            .create("filetype")
            .and_then(|a| {
                a.as_writer()
                    .write_scalar(&FixedAscii::<6>::from_ascii(b"matrix").expect("ascii"))
            })
            .and_then(|_| file.new_attr::<i64>().shape(()).create("version"))
            .and_then(|a| a.as_writer().write_scalar(&2_i64));
        ctx.h5(r, || "writing the root attributes".into())?;
        let matrix = ctx.h5(file.create_group("matrix"), || "creating group matrix".into())?;
        let features = ctx.h5(matrix.create_group("features"), || {
            "creating group matrix/features".into()
        })?;
        fixed_array(&ctx, &features, "id", ids)?;
        fixed_array(&ctx, &features, "name", names)?;
        fixed_array(
            &ctx,
            &features,
            "feature_type",
            &vec!["Gene Expression"; ids.len()],
        )?;
        fixed_array(&ctx, &features, "genome", &vec![genome; ids.len()])?;
        fixed_array(&ctx, &features, "_all_tag_keys", &["genome"])?;
        let barcodes = Chunked1D::create(
            &ctx,
            &matrix,
            "barcodes",
            Some(TypeDescriptor::FixedAscii(barcode_len)),
            &DatasetOptions {
                chunk: (opts.chunk / barcode_len).max(1),
                ..opts
            },
        )?;
        let data = Chunked1D::create(&ctx, &matrix, "data", None, &opts)?;
        let indices = Chunked1D::create(&ctx, &matrix, "indices", None, &opts)?;
        let mut indptr = Chunked1D::create(&ctx, &matrix, "indptr", None, &opts)?;
        indptr.push(0)?;
        Ok(Self {
            file: Some(file),
            matrix,
            barcodes,
            data,
            indices,
            indptr,
            text: Vec::new(),
            idx_buf: Vec::new(),
            val_buf: Vec::new(),
            ptr_buf: Vec::new(),
            n_genes: ids.len(),
            barcode_len,
            cells: 0,
            nnz: 0,
            ctx,
            temp,
        })
    }

    /// Appends a block of cells: `barcodes[c]` (ASCII, at most
    /// `barcode_len` bytes) and its counts `counts[indptr[c]..indptr[c+1]]`
    /// at genes `indices[..]` alike (strictly increasing, `< genes`;
    /// counts `≤ i32::MAX`). A malformed block is rejected before anything
    /// of it is written.
    pub fn append_cells<S: AsRef<str>>(
        &mut self,
        barcodes: &[S],
        indptr: &[usize],
        indices: &[u32],
        counts: &[u32],
    ) -> Result<(), DriverError> {
        let bad = |msg: String| {
            self.ctx
                .invalid(format!("block of cells starting at {}: {msg}", self.cells))
        };
        if indptr.first() != Some(&0) || indptr.len() != barcodes.len() + 1 {
            return Err(bad(format!(
                "indptr must start with 0 and have one entry per barcode plus one ({} barcodes, {} offsets)",
                barcodes.len(),
                indptr.len()
            )));
        }
        let nnz = indptr[indptr.len() - 1];
        if indices.len() != counts.len() || nnz != counts.len() {
            return Err(bad(format!(
                "indptr ends at {nnz} but there are {} indices and {} counts",
                indices.len(),
                counts.len()
            )));
        }
        for (c, w) in indptr.windows(2).enumerate() {
            if w[1] < w[0] {
                return Err(bad(format!("indptr decreases at cell {c}")));
            }
            let genes = &indices[w[0]..w[1]];
            if genes.last().is_some_and(|&g| g as usize >= self.n_genes) {
                return Err(bad(format!(
                    "cell {c} has a gene index beyond the {} genes",
                    self.n_genes
                )));
            }
            if genes.windows(2).any(|p| p[0] >= p[1]) {
                return Err(bad(format!("cell {c}: gene indices are not strictly increasing")));
            }
        }
        if let Some(&v) = counts.iter().find(|&&v| v > i32::MAX as u32) {
            return Err(bad(format!("count {v} does not fit int32")));
        }
        self.text.clear();
        for b in barcodes {
            let f = fixed(&self.ctx, b.as_ref(), "barcode", self.barcode_len)?;
            self.text.push(f);
        }
        self.idx_buf.clear();
        self.idx_buf.extend(indices.iter().map(|&g| g as i64));
        self.val_buf.clear();
        self.val_buf.extend(counts.iter().map(|&v| v as i32));
        let base = self.nnz as i64;
        self.ptr_buf.clear();
        self.ptr_buf.extend(indptr[1..].iter().map(|&p| base + p as i64));
        self.barcodes.extend(&self.text)?;
        self.data.extend(&self.val_buf)?;
        self.indices.extend(&self.idx_buf)?;
        self.indptr.extend(&self.ptr_buf)?;
        self.cells += barcodes.len();
        self.nnz += nnz as u64;
        Ok(())
    }

    /// Cells appended so far.
    pub fn cells(&self) -> usize {
        self.cells
    }

    /// Non-zeros appended so far.
    pub fn nnz(&self) -> u64 {
        self.nnz
    }

    /// Writes what is buffered and `matrix/shape`, closes the file and
    /// renames it to its final name, which is returned.
    pub fn finish(self) -> Result<PathBuf, DriverError> {
        let Self {
            file,
            matrix,
            barcodes,
            data,
            indices,
            indptr,
            n_genes,
            cells,
            ctx,
            temp,
            ..
        } = self;
        if n_genes > i32::MAX as usize || cells > i32::MAX as usize {
            return Err(ctx.invalid(format!("shape [{n_genes}, {cells}] does not fit int32")));
        }
        barcodes.finish()?;
        data.finish()?;
        indices.finish()?;
        indptr.finish()?;
        let shape = [n_genes as i32, cells as i32];
        let r = matrix.new_dataset_builder().with_data(&shape[..]).create("shape");
        ctx.h5(r, || "writing matrix/shape".into())?;
        drop(matrix);
        if let Some(file) = file {
            ctx.h5(file.flush(), || "flushing".into())?;
            ctx.h5(file.close(), || "closing".into())?;
        }
        temp.commit()
    }
}
