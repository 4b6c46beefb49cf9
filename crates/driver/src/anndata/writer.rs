//! The `.h5ad` file writer: groups, bookkeeping of what was written, and
//! the dataframe column appenders (index, strings, numbers, categoricals).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use hdf5::types::{IntSize, TypeDescriptor, VarLenUnicode};
use hdf5::{File, Group};
use ndarray::ArrayView2;

use super::csr::CsrAppender;
use super::dense::DenseAppender;
use super::h5::{encoding, str_array_attr, str_attr, vlen, Chunked1D, Ctx, DatasetOptions, Element};
use super::temp::TempFile;
use super::uns::{write_uns_value, UnsValue};
use crate::DriverError;

/// Which dataframe (and which `…m` group) a piece belongs to: `obs`
/// (cells, rows of X) or `var` (genes, columns of X).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// Cells: `obs`, `obsm`; rows of `X` and of the layers.
    Obs,
    /// Genes: `var`, `varm`; columns of `X`.
    Var,
}

impl Axis {
    fn frame(self) -> &'static str {
        match self {
            Axis::Obs => "obs",
            Axis::Var => "var",
        }
    }

    fn multi(self) -> &'static str {
        match self {
            Axis::Obs => "obsm",
            Axis::Var => "varm",
        }
    }
}

/// What a registered piece is, for the consistency checks in `finish`.
#[derive(Debug)]
enum Kind {
    /// The dataframe index (`_index`): defines the axis length.
    Index,
    /// A dataframe column, listed in `column-order`.
    Column(String),
    /// A matrix whose rows run along the axis; `n_vars` is checked against
    /// the var index for X and the layers.
    Matrix { n_vars: Option<usize> },
}

#[derive(Debug)]
struct Piece {
    label: String,
    axis: Axis,
    kind: Kind,
    /// Number of rows written; `None` until the appender is finished.
    rows: Option<usize>,
}

type Registry = Arc<Mutex<Vec<Piece>>>;

fn lock(reg: &Registry) -> MutexGuard<'_, Vec<Piece>> {
    reg.lock().unwrap_or_else(|e| e.into_inner())
}

/// An appender's entry in its writer's registry: finishing it records the
/// number of rows written.
#[derive(Debug)]
pub(crate) struct Ticket {
    reg: Registry,
    id: usize,
}

impl Ticket {
    pub(crate) fn done(&self, rows: usize) {
        lock(&self.reg)[self.id].rows = Some(rows);
    }
}

/// Writes an AnnData `.h5ad` file (on-disk format of anndata ≥ 0.8) piece
/// by piece, streaming the large pieces so memory does not grow with the
/// number of cells.
///
/// The file is written to `DIR/.NAME.tmp-PID-N` and renamed to its final
/// name by [`finish`](Self::finish), after checking that every piece was
/// finished and that lengths agree (obs columns, X rows, layers and obsm
/// rows = the obs index length; var columns, X columns and varm rows = the
/// var index length). Dropping the writer without `finish` removes the
/// temporary file: no half-written output ever appears under the final
/// name.
///
/// Pieces are created by methods returning appenders that own their HDF5
/// handles (no borrow of the writer), so several can be filled side by side,
/// chunk of cells by chunk of cells. Each appender must be `finish`ed.
///
/// ```no_run
/// # use inmf_driver::anndata::{AnnDataWriter, Axis, DatasetOptions};
/// # fn main() -> Result<(), inmf_driver::DriverError> {
/// let mut w = AnnDataWriter::create("out.h5ad")?;
/// w.write_index(Axis::Var, &["gene1", "gene2"])?;
/// let mut names = w.index(Axis::Obs)?;
/// let mut kind = w.categorical_column(Axis::Obs, "cell_type", &["B", "T"], false)?;
/// let mut x = w.x_csr::<f32>(2, DatasetOptions::gzip(4))?;
/// names.append(["cell1", "cell2"])?;
/// kind.append(&[0, 1])?;
/// x.append_rows(&[0, 1, 3], &[1, 0, 1], &[5.0, 1.0, 2.0])?;
/// names.finish()?;
/// kind.finish()?;
/// x.finish()?;
/// w.finish()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AnnDataWriter {
    /// Declared before `temp`: released before the temporary is removed on
    /// drop.
    file: ClosedExplicitly,
    temp: TempFile,
    ctx: Ctx,
    reg: Registry,
}

impl AnnDataWriter {
    /// Creates the temporary file next to `path` with the root attributes
    /// (`encoding-type` "anndata", `encoding-version` "0.1.0") and the
    /// groups `obs`, `var` (dataframes; `_index` = "_index"), `obsm`,
    /// `varm`, `obsp`, `varp`, `layers`, `uns` (dicts).
    pub fn create(path: impl AsRef<Path>) -> Result<Self, DriverError> {
        let path = path.as_ref();
        let temp = TempFile::new(path)?;
        let ctx = Ctx::new(path);
        let r = File::with_options()
            .with_fapl(|p| p.fclose_degree(hdf5::file::FileCloseDegree::Strong))
            .with_fcpl(|p| p.obj_track_times(false))
            .create(temp.tmp());
        let file = ctx.h5(r, || {
            format!("creating the temporary file {}", temp.tmp().display())
        })?;
        encoding(&ctx, &file, "anndata", "0.1.0")?;
        for axis in [Axis::Obs, Axis::Var] {
            let g = ctx.h5(file.create_group(axis.frame()), || {
                format!("creating group {}", axis.frame())
            })?;
            encoding(&ctx, &g, "dataframe", "0.2.0")?;
            str_attr(&ctx, &g, "_index", "_index")?;
        }
        for name in ["obsm", "varm", "obsp", "varp", "layers", "uns"] {
            let g = ctx.h5(file.create_group(name), || format!("creating group {name}"))?;
            encoding(&ctx, &g, "dict", "0.1.0")?;
        }
        Ok(Self {
            file: ClosedExplicitly(Some(file)),
            temp,
            ctx,
            reg: Registry::default(),
        })
    }

    /// The final path the file will have after [`finish`](Self::finish).
    pub fn path(&self) -> &Path {
        self.temp.target()
    }

    fn file(&self) -> &File {
        self.file.0.as_ref().expect("file is open until finish")
    }

    fn group(&self, name: &str) -> Result<Group, DriverError> {
        self.ctx
            .h5(self.file().group(name), || format!("opening group {name}"))
    }

    /// Checks that `name` is a usable HDF5 member name not yet taken in `group`.
    fn free_name(&self, group: &Group, name: &str, what: &str) -> Result<(), DriverError> {
        if name.is_empty() || name.contains('/') || name == "." {
            return Err(self.ctx.invalid(format!(
                "{what} name {name:?} is not valid: use a non-empty name without '/'"
            )));
        }
        if group.link_exists(name) {
            return Err(self
                .ctx
                .invalid(format!("{what} {name:?} is written twice; use distinct names")));
        }
        Ok(())
    }

    fn register(&self, label: String, axis: Axis, kind: Kind) -> Ticket {
        let mut reg = lock(&self.reg);
        reg.push(Piece {
            label,
            axis,
            kind,
            rows: None,
        });
        Ticket {
            reg: Arc::clone(&self.reg),
            id: reg.len() - 1,
        }
    }

    /// Streams the index (row names) of `obs` (cell names) or `var` (gene
    /// names): dataset `obs/_index`, a string-array. Required for both axes.
    pub fn index(&mut self, axis: Axis) -> Result<StringAppender, DriverError> {
        let g = self.group(axis.frame())?;
        if g.link_exists("_index") {
            return Err(self
                .ctx
                .invalid(format!("the {} index is written twice", axis.frame())));
        }
        let label = format!("the {} index", axis.frame());
        let ticket = self.register(label.clone(), axis, Kind::Index);
        StringAppender::create(&self.ctx, &g, "_index", label, ticket)
    }

    /// Streams a string column of `obs` or `var` (a string-array).
    pub fn string_column(&mut self, axis: Axis, name: &str) -> Result<StringAppender, DriverError> {
        let g = self.group(axis.frame())?;
        self.column_name(&g, axis, name)?;
        let label = format!("{} column {name:?}", axis.frame());
        let ticket = self.register(label.clone(), axis, Kind::Column(name.into()));
        StringAppender::create(&self.ctx, &g, name, label, ticket)
    }

    fn column_name(&self, g: &Group, axis: Axis, name: &str) -> Result<(), DriverError> {
        if name == "_index" {
            return Err(self.ctx.invalid(format!(
                "{} column name \"_index\" is reserved for the index",
                axis.frame()
            )));
        }
        self.free_name(g, name, &format!("{} column", axis.frame()))
    }

    /// Streams a numeric column of `obs` or `var` (an `array` of `T`).
    pub fn numeric_column<T: Element>(
        &mut self,
        axis: Axis,
        name: &str,
        opts: DatasetOptions,
    ) -> Result<NumericAppender<T>, DriverError> {
        opts.check(&self.ctx)?;
        let g = self.group(axis.frame())?;
        self.column_name(&g, axis, name)?;
        let inner = Chunked1D::create(&self.ctx, &g, name, None, &opts)?;
        encoding(&self.ctx, inner.dataset(), "array", "0.2.0")?;
        let ticket = self.register(
            format!("{} column {name:?}", axis.frame()),
            axis,
            Kind::Column(name.into()),
        );
        Ok(NumericAppender { inner, ticket })
    }

    /// Streams a categorical column of `obs` or `var`: group `NAME` with
    /// `categories` (a string-array, written now; must be unique), `codes`
    /// (int8, int16 or int32, the smallest that holds every category, as
    /// pandas does; −1 = missing) and the attribute `ordered`.
    pub fn categorical_column<S: AsRef<str>>(
        &mut self,
        axis: Axis,
        name: &str,
        categories: &[S],
        ordered: bool,
    ) -> Result<CategoricalAppender, DriverError> {
        let g = self.group(axis.frame())?;
        self.column_name(&g, axis, name)?;
        let label = format!("{} column {name:?}", axis.frame());
        let mut seen = std::collections::HashSet::new();
        for c in categories {
            if !seen.insert(c.as_ref()) {
                return Err(self
                    .ctx
                    .invalid(format!("{label}: category {:?} is listed twice", c.as_ref())));
            }
        }
        let ctx = &self.ctx;
        let cg = ctx.h5(g.create_group(name), || {
            format!("creating group {}/{name}", axis.frame())
        })?;
        encoding(ctx, &cg, "categorical", "0.2.0")?;
        let r = cg
            .new_attr::<bool>()
            .shape(())
            .create("ordered")
            .and_then(|a| a.as_writer().write_scalar(&ordered));
        ctx.h5(r, || format!("writing attribute ordered on {label}"))?;
        let cats = categories
            .iter()
            .map(|c| vlen(ctx, c.as_ref(), &label))
            .collect::<Result<Vec<_>, _>>()?;
        let r = cg.new_dataset_builder().with_data(&cats[..]).create("categories");
        let cds = ctx.h5(r, || format!("writing the categories of {label}"))?;
        encoding(ctx, &cds, "string-array", "0.2.0")?;
        let n = categories.len();
        let size = if n <= i8::MAX as usize {
            IntSize::U1
        } else if n <= i16::MAX as usize {
            IntSize::U2
        } else if n <= i32::MAX as usize {
            IntSize::U4
        } else {
            return Err(ctx.invalid(format!("{label}: {n} categories are too many")));
        };
        let opts = DatasetOptions::default();
        let codes = Chunked1D::create(ctx, &cg, "codes", Some(TypeDescriptor::Integer(size)), &opts)?;
        encoding(ctx, codes.dataset(), "array", "0.2.0")?;
        let ticket = self.register(label.clone(), axis, Kind::Column(name.into()));
        Ok(CategoricalAppender {
            codes,
            n_categories: n,
            label,
            ticket,
            ctx: ctx.clone(),
        })
    }

    /// Streams `X` as a CSR matrix (cells × `n_vars` genes) with values of
    /// type `T`, appended by blocks of rows. See [`CsrAppender`].
    pub fn x_csr<T: Element>(
        &mut self,
        n_vars: usize,
        opts: DatasetOptions,
    ) -> Result<CsrAppender<T>, DriverError> {
        let root: &Group = self.file();
        self.free_name(root, "X", "matrix")?;
        let ticket = self.register("X".into(), Axis::Obs, Kind::Matrix { n_vars: Some(n_vars) });
        CsrAppender::create(&self.ctx, root, "X", n_vars, opts, ticket)
    }

    /// Streams `layers/NAME` as a CSR matrix, like [`x_csr`](Self::x_csr).
    pub fn layer_csr<T: Element>(
        &mut self,
        name: &str,
        n_vars: usize,
        opts: DatasetOptions,
    ) -> Result<CsrAppender<T>, DriverError> {
        let g = self.group("layers")?;
        self.free_name(&g, name, "layer")?;
        let ticket = self.register(
            format!("layers/{name}"),
            Axis::Obs,
            Kind::Matrix { n_vars: Some(n_vars) },
        );
        CsrAppender::create(&self.ctx, &g, name, n_vars, opts, ticket)
    }

    /// Creates the dense matrix `obsm/NAME` (`axis` = Obs; `rows` = number
    /// of cells) or `varm/NAME` (`axis` = Var; `rows` = number of genes) of
    /// shape `rows × cols`, to be filled by blocks of rows in order. See
    /// [`DenseAppender`].
    pub fn dense<T: Element>(
        &mut self,
        axis: Axis,
        name: &str,
        rows: usize,
        cols: usize,
        opts: DatasetOptions,
    ) -> Result<DenseAppender<T>, DriverError> {
        let g = self.group(axis.multi())?;
        self.free_name(&g, name, axis.multi())?;
        let ticket = self.register(
            format!("{}/{name}", axis.multi()),
            axis,
            Kind::Matrix { n_vars: None },
        );
        DenseAppender::create(&self.ctx, &g, name, rows, cols, opts, ticket)
    }

    /// Writes a whole index at once (see [`index`](Self::index)).
    pub fn write_index<S: AsRef<str>>(&mut self, axis: Axis, names: &[S]) -> Result<(), DriverError> {
        let mut a = self.index(axis)?;
        a.append(names)?;
        a.finish()
    }

    /// Writes a whole dense `obsm`/`varm` matrix at once, uncompressed (see
    /// [`dense`](Self::dense)).
    pub fn write_dense<T: Element>(
        &mut self,
        axis: Axis,
        name: &str,
        m: ArrayView2<'_, T>,
    ) -> Result<(), DriverError> {
        let mut a = self.dense::<T>(axis, name, m.nrows(), m.ncols(), DatasetOptions::default())?;
        a.append_rows(m)?;
        a.finish()
    }

    /// Writes `uns/KEY`, where `KEY` is a `/`-separated path such as
    /// `"inmf/params/k"`; missing intermediate groups are created as dicts.
    /// Writing an existing key is an error.
    pub fn write_uns(&mut self, key: &str, value: UnsValue<'_>) -> Result<(), DriverError> {
        let uns = self.group("uns")?;
        write_uns_value(&self.ctx, &uns, key, value)
    }

    /// Checks that every appender was finished and that lengths agree,
    /// writes the dataframes' `column-order`, closes the file and renames
    /// it to its final name, which is returned.
    pub fn finish(self) -> Result<PathBuf, DriverError> {
        let mut columns: [Vec<String>; 2] = [Vec::new(), Vec::new()];
        {
            let reg = lock(&self.reg);
            let open: Vec<&str> = reg
                .iter()
                .filter(|p| p.rows.is_none())
                .map(|p| p.label.as_str())
                .collect();
            if !open.is_empty() {
                return Err(self.ctx.invalid(format!(
                    "{} not finished; call finish() on every appender before AnnDataWriter::finish",
                    open.join(", ")
                )));
            }
            let mut len = [None, None];
            for p in reg.iter() {
                if let Kind::Index = p.kind {
                    len[p.axis as usize] = p.rows;
                }
            }
            for axis in [Axis::Obs, Axis::Var] {
                if len[axis as usize].is_none() {
                    return Err(self.ctx.invalid(format!(
                        "the {0} index was never written; call index(Axis::{1:?}) or write_index(Axis::{1:?}, ..)",
                        axis.frame(),
                        axis
                    )));
                }
            }
            let (n_obs, n_var) = (len[0].unwrap_or(0), len[1].unwrap_or(0));
            for p in reg.iter() {
                let rows = p.rows.unwrap_or(0);
                let n = if p.axis == Axis::Obs { n_obs } else { n_var };
                if rows != n {
                    return Err(self.ctx.invalid(format!(
                        "{} has {rows} rows but the {} index has {n}; write one row per {}",
                        p.label,
                        p.axis.frame(),
                        if p.axis == Axis::Obs { "cell" } else { "gene" }
                    )));
                }
                match &p.kind {
                    Kind::Matrix { n_vars: Some(v) } if *v != n_var => {
                        return Err(self.ctx.invalid(format!(
                            "{} has {v} columns but the var index has {n_var} genes",
                            p.label
                        )));
                    }
                    Kind::Column(name) => columns[p.axis as usize].push(name.clone()),
                    _ => {}
                }
            }
        }
        for axis in [Axis::Obs, Axis::Var] {
            let g = self.group(axis.frame())?;
            str_array_attr(&self.ctx, &g, "column-order", &columns[axis as usize])?;
        }
        let Self {
            mut file, temp, ctx, ..
        } = self;
        if let Some(file) = file.0.take() {
            ctx.h5(file.flush(), || "flushing".into())?;
            ctx.h5(file.close(), || "closing".into())?;
        }
        temp.commit()
    }
}

/// An HDF5 file handle that is only ever closed by an explicit, checked
/// `close` ([`AnnDataWriter::finish`]). Dropped while still open, which
/// happens on an error path just before its temporary file is removed, the
/// handle is released without closing the file: libhdf5 1.10 can crash
/// (SIGSEGV in `H5D_close`) when a file whose write failed, e.g. on a full
/// disk, is closed with datasets still open. The process keeps the deleted
/// file's descriptor until it exits.
#[derive(Debug)]
struct ClosedExplicitly(Option<File>);

impl Drop for ClosedExplicitly {
    fn drop(&mut self) {
        if let Some(file) = self.0.take() {
            std::mem::forget(file);
        }
    }
}

/// Streams a string array: a dataframe index or a string column (variable-
/// length UTF-8, `encoding-type` "string-array").
#[derive(Debug)]
pub struct StringAppender {
    inner: Chunked1D<VarLenUnicode>,
    label: String,
    ticket: Ticket,
    ctx: Ctx,
}

impl StringAppender {
    fn create(ctx: &Ctx, g: &Group, name: &str, label: String, ticket: Ticket) -> Result<Self, DriverError> {
        let opts = DatasetOptions {
            gzip: None,
            chunk: 1 << 14,
        };
        let inner = Chunked1D::create(ctx, g, name, None, &opts)?;
        encoding(ctx, inner.dataset(), "string-array", "0.2.0")?;
        Ok(Self {
            inner,
            label,
            ticket,
            ctx: ctx.clone(),
        })
    }

    /// Appends strings (no NUL bytes).
    pub fn append<I, S>(&mut self, values: I) -> Result<(), DriverError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for v in values {
            let v = vlen(&self.ctx, v.as_ref(), &self.label)?;
            self.inner.push(v)?;
        }
        Ok(())
    }

    /// Number of strings appended so far.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when nothing was appended yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes what is buffered and records the length with the writer.
    pub fn finish(self) -> Result<(), DriverError> {
        let (_, n) = self.inner.finish()?;
        self.ticket.done(n);
        Ok(())
    }
}

/// Streams a numeric dataframe column.
#[derive(Debug)]
pub struct NumericAppender<T: Element> {
    inner: Chunked1D<T>,
    ticket: Ticket,
}

impl<T: Element> NumericAppender<T> {
    /// Appends values.
    pub fn append(&mut self, values: &[T]) -> Result<(), DriverError> {
        self.inner.extend(values)
    }

    /// Writes what is buffered and records the length with the writer.
    pub fn finish(self) -> Result<(), DriverError> {
        let (_, n) = self.inner.finish()?;
        self.ticket.done(n);
        Ok(())
    }
}

/// Streams the codes of a categorical dataframe column.
#[derive(Debug)]
pub struct CategoricalAppender {
    codes: Chunked1D<i32>,
    n_categories: usize,
    label: String,
    ticket: Ticket,
    ctx: Ctx,
}

impl CategoricalAppender {
    /// Appends codes: `0..n_categories` index the categories, −1 marks a
    /// missing value.
    pub fn append(&mut self, codes: &[i32]) -> Result<(), DriverError> {
        if let Some((i, &c)) = codes
            .iter()
            .enumerate()
            .find(|(_, &c)| c < -1 || c as i64 >= self.n_categories as i64)
        {
            return Err(self.ctx.invalid(format!(
                "{}: code {c} at row {} is out of range; use 0..{} or -1 for missing",
                self.label,
                self.codes.len() + i,
                self.n_categories
            )));
        }
        self.codes.extend(codes)
    }

    /// Writes what is buffered and records the length with the writer.
    pub fn finish(self) -> Result<(), DriverError> {
        let (_, n) = self.codes.finish()?;
        self.ticket.done(n);
        Ok(())
    }
}
