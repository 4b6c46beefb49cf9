//! Matrix Market directories as Cell Ranger writes them: `matrix.mtx[.gz]`
//! (coordinate entries, 1-based, features × cells — or cells × features,
//! recognised from the sizes), `features.tsv[.gz]` (id, name, feature type)
//! or `genes.tsv[.gz]` (id, name), `barcodes.tsv[.gz]`. Gzip is recognised
//! by its magic bytes.
//!
//! [`MtxDir::cells`] streams the cells in order as CSR blocks, in bounded
//! memory. [`MtxOrder::AsStored`] reads entries as stored and works when
//! they are grouped by cell in increasing order (Cell Ranger's files are);
//! it stops with [`ReaderError::MtxUnsorted`] at the first entry out of
//! order. [`MtxOrder::SortByCell`] first buckets every entry by cell block
//! into an anonymous temporary file (the external sort of
//! [`crate::formats::spill`]) and then assembles the blocks. Both validate every
//! entry: indices within the header's sizes, values finite and ≥ 0, and as
//! many entries as the header announces.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use inmf_learner::CsrMatrix;

use crate::error::ReaderError;
use crate::formats::dataset::RawBlock;
use crate::formats::names::make_unique;
use crate::formats::spill::Buckets;

const NONE: u32 = u32::MAX;

/// The value type of a Matrix Market file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtxField {
    /// Integer counts.
    Integer,
    /// Real numbers.
    Real,
    /// No values: every entry is 1.
    Pattern,
}

/// How [`MtxDir::cells`] orders the entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MtxOrder {
    /// Read as stored; the entries must be grouped by cell, cells
    /// increasing.
    AsStored,
    /// Sort by cell through a temporary file in this directory.
    SortByCell {
        /// Directory of the temporary file.
        temp_dir: PathBuf,
    },
}

/// An opened Matrix Market directory: header, features and barcode count
/// (the entries are read by [`MtxDir::cells`]).
#[derive(Debug, Clone)]
pub struct MtxDir {
    dir: PathBuf,
    matrix: PathBuf,
    features: PathBuf,
    barcodes: PathBuf,
    field: MtxField,
    rows: usize,
    cols: usize,
    entries: u64,
    /// 1-based line of the first entry.
    first_entry_line: u64,
    /// The matrix stores cells × features instead of features × cells.
    transposed: bool,
    n_cells: usize,
    n_features: usize,
    genes: Vec<String>,
    gene_ids: Vec<String>,
    feature_types: Option<Vec<String>>,
    duplicates_renamed: usize,
    /// Feature → kept column, or `NONE`.
    col_map: Vec<u32>,
    features_dropped: Vec<(String, usize)>,
}

/// Opens a text file, decompressing gzip if it starts with the gzip magic.
fn open_text(path: &Path) -> Result<Box<dyn BufRead + Send>, ReaderError> {
    let io = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
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
    let mut f = File::open(path).map_err(io)?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(io)?;
    let f = File::open(path).map_err(io)?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            MultiGzDecoder::new(f),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
    }
}

/// Lines of a text file with their 1-based numbers.
struct Lines {
    path: PathBuf,
    r: Box<dyn BufRead + Send>,
    line: u64,
}

impl Lines {
    fn open(path: &Path) -> Result<Self, ReaderError> {
        Ok(Self {
            path: path.to_owned(),
            r: open_text(path)?,
            line: 0,
        })
    }

    /// Reads the next line into `buf` without its end (`\n` or `\r\n`);
    /// false at the end of the file.
    fn next_line(&mut self, buf: &mut Vec<u8>) -> Result<bool, ReaderError> {
        buf.clear();
        let n = self.r.read_until(b'\n', buf).map_err(|e| ReaderError::BadMtx {
            path: self.path.clone(),
            line: Some(self.line + 1),
            detail: format!("cannot read it: {e} (a truncated or corrupt gzip file?)"),
        })?;
        if n == 0 {
            return Ok(false);
        }
        self.line += 1;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        Ok(true)
    }

    fn bad(&self, detail: String) -> ReaderError {
        ReaderError::BadMtx {
            path: self.path.clone(),
            line: Some(self.line),
            detail,
        }
    }
}

/// The first of `names` that exists in `dir`.
fn find(dir: &Path, names: &[&str]) -> Result<PathBuf, ReaderError> {
    for n in names {
        let p = dir.join(n);
        if p.is_file() {
            return Ok(p);
        }
    }
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    Err(ReaderError::BadMtx {
        path: dir.to_owned(),
        line: None,
        detail: format!(
            "it has no {} (files found: {})",
            names.join(" or "),
            if found.is_empty() {
                "none".into()
            } else {
                found.join(", ")
            }
        ),
    })
}

fn parse_usize(tok: &[u8]) -> Option<usize> {
    std::str::from_utf8(tok).ok()?.parse().ok()
}

/// Opens the Matrix Market directory `dir` and checks its header against
/// the features and barcodes. With `feature_type` (e.g. "Gene
/// Expression"), only features of that type are kept when the features
/// file has a type column; none of that type is an error
/// ([`ReaderError::NoFeatures`]).
pub fn open_mtx(dir: &Path, feature_type: Option<&str>) -> Result<MtxDir, ReaderError> {
    if !dir.is_dir() {
        return Err(if dir.exists() {
            ReaderError::BadMtx {
                path: dir.to_owned(),
                line: None,
                detail: "it is not a directory".into(),
            }
        } else {
            ReaderError::NotFound { path: dir.to_owned() }
        });
    }
    let matrix = find(dir, &["matrix.mtx", "matrix.mtx.gz"])?;
    let features = find(
        dir,
        &["features.tsv", "features.tsv.gz", "genes.tsv", "genes.tsv.gz"],
    )?;
    let barcodes = find(dir, &["barcodes.tsv", "barcodes.tsv.gz"])?;

    // Header.
    let mut lines = Lines::open(&matrix)?;
    let mut buf = Vec::new();
    if !lines.next_line(&mut buf)? {
        return Err(lines.bad("the file is empty".into()));
    }
    let first = &buf;
    let head = String::from_utf8_lossy(first).to_lowercase();
    let tok: Vec<&str> = head.split_whitespace().collect();
    if tok.first() != Some(&"%%matrixmarket") || tok.len() < 5 {
        return Err(lines.bad(format!(
            "the first line is {:?}, not a `%%MatrixMarket matrix coordinate <field> general` header",
            String::from_utf8_lossy(first)
        )));
    }
    if tok[1] != "matrix" || tok[2] != "coordinate" {
        return Err(lines.bad(format!(
            "only `matrix coordinate` files are read, this one is `{} {}`",
            tok[1], tok[2]
        )));
    }
    let field = match tok[3] {
        "integer" => MtxField::Integer,
        "real" | "double" => MtxField::Real,
        "pattern" => MtxField::Pattern,
        other => {
            return Err(lines.bad(format!(
                "the value type `{other}` is not read (integer, real or pattern)"
            )))
        }
    };
    if tok[4] != "general" {
        return Err(lines.bad(format!("the symmetry `{}` is not read (only general)", tok[4])));
    }
    let (rows, cols, entries) = loop {
        if !lines.next_line(&mut buf)? {
            return Err(lines.bad("the file ends before the size line".into()));
        }
        let l = &buf;
        if l.first() == Some(&b'%') || l.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let t: Vec<&[u8]> = l
            .split(u8::is_ascii_whitespace)
            .filter(|t| !t.is_empty())
            .collect();
        let nums: Option<Vec<usize>> = t.iter().map(|x| parse_usize(x)).collect();
        match nums.as_deref() {
            Some([r, c, e]) => break (*r, *c, *e as u64),
            _ => {
                return Err(lines.bad(format!(
                    "the size line is {:?}, expected `rows columns entries`",
                    String::from_utf8_lossy(l)
                )))
            }
        }
    };
    let size_line = lines.line;
    let first_entry_line = size_line + 1;

    // Features.
    let mut ids = Vec::new();
    let mut names = Vec::new();
    let mut types: Vec<String> = Vec::new();
    let mut fl = Lines::open(&features)?;
    while fl.next_line(&mut buf)? {
        if buf.is_empty() {
            continue;
        }
        let s = String::from_utf8_lossy(&buf);
        let cols: Vec<&str> = s.split('\t').collect();
        ids.push(cols[0].to_owned());
        names.push(cols.get(1).unwrap_or(&cols[0]).to_string());
        if let Some(t) = cols.get(2) {
            types.push(t.to_string());
        }
    }
    let feature_types = (types.len() == ids.len() && !types.is_empty()).then_some(types);
    // Barcodes: counted only (streamed again by `barcodes`).
    let mut bl = Lines::open(&barcodes)?;
    let mut n_barcodes = 0usize;
    while bl.next_line(&mut buf)? {
        if !buf.is_empty() {
            n_barcodes += 1;
        }
    }
    let n_features = ids.len();
    let transposed = if rows == n_features && cols == n_barcodes {
        false
    } else if rows == n_barcodes && cols == n_features {
        true
    } else {
        return Err(ReaderError::BadMtx {
            path: matrix.clone(),
            line: Some(size_line),
            detail: format!(
                "the header says {rows} rows x {cols} columns, but {} lists {n_features} features and {} \
                 lists {n_barcodes} barcodes",
                features.display(),
                barcodes.display()
            ),
        });
    };
    if entries > (rows as u64).saturating_mul(cols as u64) {
        return Err(ReaderError::BadMtx {
            path: matrix.clone(),
            line: Some(size_line),
            detail: format!(
                "the header announces {entries} entries, more than {rows} x {cols} cells of the matrix"
            ),
        });
    }

    // Feature-type filter.
    let mut col_map = vec![NONE; n_features];
    let mut dropped: Vec<(String, usize)> = Vec::new();
    let mut next = 0u32;
    for f in 0..n_features {
        let keep = match (&feature_types, feature_type) {
            (Some(t), Some(w)) => t[f] == w,
            _ => true,
        };
        if keep {
            col_map[f] = next;
            next += 1;
        } else if let Some(t) = &feature_types {
            match dropped.iter_mut().find(|(k, _)| *k == t[f]) {
                Some(e) => e.1 += 1,
                None => dropped.push((t[f].clone(), 1)),
            }
        }
    }
    if next == 0 && n_features > 0 {
        let mut found = feature_types.clone().unwrap_or_default();
        found.sort();
        found.dedup();
        return Err(ReaderError::NoFeatures {
            path: features.clone(),
            object: "column 3 (feature type)".into(),
            wanted: feature_type.unwrap_or_default().to_owned(),
            found,
        });
    }
    let keep = |v: &Vec<String>| -> Vec<String> {
        v.iter()
            .zip(&col_map)
            .filter(|(_, &m)| m != NONE)
            .map(|(s, _)| s.clone())
            .collect()
    };
    let mut genes = keep(&names);
    let gene_ids = keep(&ids);
    let kept_types = feature_types.as_ref().map(keep);
    let duplicates_renamed = make_unique(&mut genes);
    Ok(MtxDir {
        dir: dir.to_owned(),
        matrix,
        features,
        barcodes,
        field,
        rows,
        cols,
        entries,
        first_entry_line,
        transposed,
        n_cells: n_barcodes,
        n_features,
        genes,
        gene_ids,
        feature_types: kept_types,
        duplicates_renamed,
        col_map,
        features_dropped: dropped,
    })
}

impl MtxDir {
    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The matrix, features and barcodes files.
    pub fn files(&self) -> [&Path; 3] {
        [&self.matrix, &self.features, &self.barcodes]
    }

    /// The value type.
    pub fn field(&self) -> MtxField {
        self.field
    }

    /// The header's sizes: rows, columns, entries.
    pub fn header(&self) -> (usize, usize, u64) {
        (self.rows, self.cols, self.entries)
    }

    /// Whether the matrix stores cells × features (rows are cells).
    pub fn is_transposed(&self) -> bool {
        self.transposed
    }

    /// Number of cells (barcodes).
    pub fn n_cells(&self) -> usize {
        self.n_cells
    }

    /// Number of features in the features file (before the type filter).
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Names of the kept features, made unique scanpy-style.
    pub fn gene_names(&self) -> &[String] {
        &self.genes
    }

    /// Ids of the kept features (first column of the features file).
    pub fn gene_ids(&self) -> &[String] {
        &self.gene_ids
    }

    /// Types of the kept features, if the features file has them.
    pub fn feature_types(&self) -> Option<&[String]> {
        self.feature_types.as_deref()
    }

    /// How many kept feature names were renamed to make them unique.
    pub fn duplicate_genes_renamed(&self) -> usize {
        self.duplicates_renamed
    }

    /// Feature types left out by the type filter, with counts.
    pub fn features_dropped(&self) -> &[(String, usize)] {
        &self.features_dropped
    }

    /// The barcodes (first column of the barcodes file), streamed.
    pub fn barcodes(&self) -> Result<Barcodes, ReaderError> {
        Ok(Barcodes {
            lines: Lines::open(&self.barcodes)?,
            buf: Vec::new(),
        })
    }

    /// Streams the cells in order as CSR blocks over the kept features of
    /// about `block_cells` cells each (see [`MtxOrder`]).
    pub fn cells(&self, order: MtxOrder, block_cells: usize) -> Result<MtxCells, ReaderError> {
        let mut lines = Lines::open(&self.matrix)?;
        // Skip the header and the size line (checked by `open_mtx`).
        let mut buf = Vec::new();
        while lines.line + 1 < self.first_entry_line {
            if !lines.next_line(&mut buf)? {
                break;
            }
        }
        let parser = EntryParser {
            lines,
            buf,
            dir: self.clone(),
            seen: 0,
        };
        let state = match order {
            MtxOrder::AsStored => State::Stream {
                parser: Box::new(parser),
                cur: 0,
                row: Vec::new(),
                pending: None,
                done: false,
            },
            MtxOrder::SortByCell { temp_dir } => {
                let mut parser = parser;
                let mut buckets = Buckets::new(&temp_dir, self.n_cells, self.entries)?;
                while let Some((cell, col, v)) = parser.next_entry()? {
                    if col != NONE {
                        buckets.push(cell, col, v)?;
                    }
                }
                State::Sorted(buckets.finish()?)
            }
        };
        Ok(MtxCells {
            state,
            n_cells: self.n_cells,
            n_genes: self.genes.len(),
            block_cells: block_cells.max(1),
            emitted: 0,
            block: RawBlock::default(),
        })
    }
}

/// The barcodes of an [`MtxDir`], one per cell, in order.
pub struct Barcodes {
    lines: Lines,
    buf: Vec<u8>,
}

impl Iterator for Barcodes {
    type Item = Result<String, ReaderError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.lines.next_line(&mut self.buf) {
                Ok(true) if self.buf.is_empty() => continue,
                Ok(true) => {
                    let s = String::from_utf8_lossy(&self.buf);
                    return Some(Ok(s.split('\t').next().unwrap_or_default().to_owned()));
                }
                Ok(false) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Parses and validates entries: (cell, kept column or `NONE`, value).
struct EntryParser {
    lines: Lines,
    buf: Vec<u8>,
    dir: MtxDir,
    seen: u64,
}

impl EntryParser {
    fn next_entry(&mut self) -> Result<Option<(usize, u32, f32)>, ReaderError> {
        let d = &self.dir;
        loop {
            if !self.lines.next_line(&mut self.buf)? {
                if self.seen != d.entries {
                    return Err(ReaderError::BadMtx {
                        path: d.matrix.clone(),
                        line: None,
                        detail: format!(
                            "the header announces {} entries but the file has {} (a truncated file, or a header that lies)",
                            d.entries, self.seen
                        ),
                    });
                }
                return Ok(None);
            }
            let l = &self.buf;
            if l.is_empty() || l.first() == Some(&b'%') {
                continue;
            }
            let mut it = l.split(u8::is_ascii_whitespace).filter(|t| !t.is_empty());
            let (Some(a), Some(b)) = (it.next(), it.next()) else {
                let text = String::from_utf8_lossy(l).into_owned();
                return Err(self
                    .lines
                    .bad(format!("{text:?} is not an entry `row column value`")));
            };
            let v = it.next();
            let (Some(i), Some(j)) = (parse_usize(a), parse_usize(b)) else {
                let text = String::from_utf8_lossy(l).into_owned();
                return Err(self
                    .lines
                    .bad(format!("{text:?} does not start with two positive integers")));
            };
            self.seen += 1;
            if self.seen > d.entries {
                return Err(self.lines.bad(format!(
                    "there are more entries than the {} the header announces",
                    d.entries
                )));
            }
            if !(1..=d.rows).contains(&i) || !(1..=d.cols).contains(&j) {
                return Err(self.lines.bad(format!(
                    "entry ({i}, {j}) is outside the {} x {} matrix the header announces",
                    d.rows, d.cols
                )));
            }
            let value = match (d.field, v) {
                (MtxField::Pattern, _) => 1.0,
                (_, None) => return Err(self.lines.bad("the entry has no value".into())),
                (_, Some(t)) => {
                    let x: Option<f64> = std::str::from_utf8(t).ok().and_then(|s| s.parse().ok());
                    match x {
                        Some(x) if x.is_finite() && x >= 0.0 && (x as f32).is_finite() => x,
                        _ => {
                            return Err(self.lines.bad(format!(
                                "the value {:?} is not a finite count >= 0",
                                String::from_utf8_lossy(t)
                            )))
                        }
                    }
                }
            };
            let (cell, feature) = if d.transposed {
                (i - 1, j - 1)
            } else {
                (j - 1, i - 1)
            };
            return Ok(Some((cell, d.col_map[feature], value as f32)));
        }
    }
}

enum State {
    Stream {
        parser: Box<EntryParser>,
        /// The cell whose entries are being gathered.
        cur: usize,
        /// Its (column, value) pairs.
        row: Vec<(u32, f32)>,
        /// An entry read past the end of a block, for the next one.
        pending: Option<(usize, u32, f32)>,
        done: bool,
    },
    Sorted(crate::formats::spill::BucketReader),
}

/// Cells of an [`MtxDir`] in order, as CSR blocks.
pub struct MtxCells {
    state: State,
    n_cells: usize,
    n_genes: usize,
    block_cells: usize,
    emitted: usize,
    block: RawBlock,
}

impl MtxCells {
    /// The next block of consecutive cells (the first starts at cell 0),
    /// or `None` when every cell was returned.
    pub fn next_block(&mut self) -> Result<Option<CsrMatrix>, ReaderError> {
        if self.emitted >= self.n_cells && !matches!(self.state, State::Stream { done: false, .. }) {
            return Ok(None);
        }
        let b = &mut self.block;
        b.indptr.clear();
        b.indices.clear();
        b.data.clear();
        b.indptr.push(0);
        match &mut self.state {
            State::Sorted(reader) => {
                let mut tmp = RawBlock::default();
                // Buckets may be small: gather at least `block_cells` cells.
                while b.n_rows() < self.block_cells {
                    let Some(_) = reader.next_block(&mut tmp)? else {
                        break;
                    };
                    for r in 0..tmp.n_rows() {
                        let (c, v) = tmp.row(r);
                        b.indices.extend_from_slice(c);
                        b.data.extend_from_slice(v);
                        b.indptr.push(b.data.len());
                    }
                }
            }
            State::Stream {
                parser,
                cur,
                row,
                pending,
                done,
            } => {
                let finish_row = |b: &mut RawBlock, row: &mut Vec<(u32, f32)>| {
                    // Stable sort: repeated genes summed in file order.
                    row.sort_by_key(|p| p.0);
                    for &(c, v) in row.iter() {
                        if b.indices.len() > *b.indptr.last().unwrap_or(&0) && b.indices.last() == Some(&c) {
                            *b.data.last_mut().expect("a value per index") += v;
                        } else {
                            b.indices.push(c);
                            b.data.push(v);
                        }
                    }
                    b.indptr.push(b.data.len());
                    row.clear();
                };
                while !*done && b.n_rows() < self.block_cells {
                    let entry = match pending.take() {
                        Some(e) => Some(e),
                        None => parser.next_entry()?,
                    };
                    match entry {
                        None => {
                            // The last cell with entries, then empty cells.
                            if *cur < self.n_cells {
                                finish_row(b, row);
                                for _ in *cur + 1..self.n_cells {
                                    b.indptr.push(b.data.len());
                                }
                                *cur = self.n_cells;
                            }
                            *done = true;
                        }
                        Some((cell, col, v)) => {
                            if cell < *cur {
                                return Err(ReaderError::MtxUnsorted {
                                    path: parser.dir.matrix.clone(),
                                    line: parser.lines.line,
                                    cell,
                                    previous: *cur,
                                });
                            }
                            if cell > *cur {
                                finish_row(b, row);
                                for _ in *cur + 1..cell {
                                    b.indptr.push(b.data.len());
                                }
                                *cur = cell;
                                if b.n_rows() >= self.block_cells {
                                    *pending = Some((cell, col, v));
                                    break;
                                }
                            }
                            if col != NONE {
                                row.push((col, v));
                            }
                        }
                    }
                }
            }
        }
        let n = b.n_rows();
        if n == 0 {
            return Ok(None);
        }
        self.emitted += n;
        let out = CsrMatrix::new(
            self.n_genes,
            std::mem::take(&mut b.indptr),
            std::mem::take(&mut b.indices),
            std::mem::take(&mut b.data),
        )
        .expect("assembled rows satisfy the CSR invariants (a reader bug otherwise)");
        Ok(Some(out))
    }
}
