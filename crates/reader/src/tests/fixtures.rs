//! Test-only writer of tiny AnnData / 10x files with chosen storage types,
//! chunk sizes and string kinds, including deliberately broken ones.

use std::path::Path;

use hdf5::types::{FixedAscii, FixedUnicode, FloatSize, IntSize, TypeDescriptor, VarLenAscii, VarLenUnicode};

/// A CSR matrix as raw arrays (may be invalid on purpose).
#[derive(Debug, Clone)]
pub(crate) struct RawCsr {
    pub n_rows: usize,
    pub n_cols: usize,
    pub indptr: Vec<i64>,
    pub indices: Vec<i64>,
    pub data: Vec<f64>,
}

impl RawCsr {
    /// The transposed matrix (CSR of the transpose = CSC of `self`), rows
    /// in increasing column order.
    pub fn transpose(&self) -> Self {
        let mut rows = vec![Vec::new(); self.n_cols];
        for r in 0..self.n_rows {
            for k in self.indptr[r] as usize..self.indptr[r + 1] as usize {
                rows[self.indices[k] as usize].push((r as i64, self.data[k]));
            }
        }
        let mut m = RawCsr {
            n_rows: self.n_cols,
            n_cols: self.n_rows,
            indptr: vec![0],
            indices: vec![],
            data: vec![],
        };
        for row in rows {
            for (c, v) in row {
                m.indices.push(c);
                m.data.push(v);
            }
            m.indptr.push(m.data.len() as i64);
        }
        m
    }

    /// Dense rows.
    pub fn to_dense(&self) -> Vec<Vec<f64>> {
        let mut d = vec![vec![0.0; self.n_cols]; self.n_rows];
        for (r, row) in d.iter_mut().enumerate() {
            for k in self.indptr[r] as usize..self.indptr[r + 1] as usize {
                row[self.indices[k] as usize] += self.data[k];
            }
        }
        d
    }

    pub fn from_dense(rows: &[Vec<f64>]) -> Self {
        let n_cols = rows.first().map_or(0, Vec::len);
        let mut m = RawCsr {
            n_rows: rows.len(),
            n_cols,
            indptr: vec![0],
            indices: vec![],
            data: vec![],
        };
        for r in rows {
            for (c, &v) in r.iter().enumerate() {
                if v != 0.0 {
                    m.indices.push(c as i64);
                    m.data.push(v);
                }
            }
            m.indptr.push(m.data.len() as i64);
        }
        m
    }
}

/// How names are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Str {
    VarUnicode,
    VarAscii,
    FixedAscii,
    FixedUnicode,
}

/// How X is encoded in an .h5ad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Enc {
    Csr,
    /// `h5sparse_format` = "csr" (old anndata), fixed-length attribute.
    OldCsr,
    Csc,
    Dense,
}

/// Storage choices.
#[derive(Debug, Clone)]
pub(crate) struct Opts {
    pub data: TypeDescriptor,
    pub indices: TypeDescriptor,
    pub indptr: TypeDescriptor,
    pub chunk: Option<usize>,
    pub deflate: bool,
    /// LZF-compress the numeric arrays (with `chunk`; instead of `deflate`).
    pub lzf: bool,
    pub strings: Str,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            data: TypeDescriptor::Float(FloatSize::U4),
            indices: TypeDescriptor::Integer(IntSize::U4),
            indptr: TypeDescriptor::Integer(IntSize::U8),
            chunk: None,
            deflate: false,
            lzf: false,
            strings: Str::VarUnicode,
        }
    }
}

pub(crate) fn int(bytes: usize) -> TypeDescriptor {
    TypeDescriptor::Integer(size(bytes))
}
pub(crate) fn uint(bytes: usize) -> TypeDescriptor {
    TypeDescriptor::Unsigned(size(bytes))
}
pub(crate) fn float(bytes: usize) -> TypeDescriptor {
    TypeDescriptor::Float(if bytes == 4 { FloatSize::U4 } else { FloatSize::U8 })
}
fn size(bytes: usize) -> IntSize {
    match bytes {
        1 => IntSize::U1,
        2 => IntSize::U2,
        4 => IntSize::U4,
        _ => IntSize::U8,
    }
}

fn numeric<T: hdf5::H5Type>(g: &hdf5::Group, name: &str, v: &[T], t: &TypeDescriptor, o: &Opts) {
    let mut b = g.new_dataset_builder().with_data_as(v, t);
    if let Some(c) = o.chunk {
        if !v.is_empty() {
            b = b.chunk(c.min(v.len()).max(1));
            if o.lzf {
                b = b.lzf();
            } else if o.deflate {
                b = b.deflate(4);
            }
        }
    }
    b.create(name).unwrap();
}

pub(crate) fn strings(g: &hdf5::Group, name: &str, v: &[String], kind: Str) {
    let max = v.iter().map(|s| s.len()).max().unwrap_or(1).max(1);
    match kind {
        Str::VarUnicode => {
            let a: Vec<VarLenUnicode> = v.iter().map(|s| s.parse().unwrap()).collect();
            g.new_dataset_builder().with_data(&a).create(name).unwrap();
        }
        Str::VarAscii => {
            let a: Vec<VarLenAscii> = v.iter().map(|s| VarLenAscii::from_ascii(s).unwrap()).collect();
            g.new_dataset_builder().with_data(&a).create(name).unwrap();
        }
        Str::FixedAscii => {
            let a: Vec<FixedAscii<64>> = v.iter().map(|s| FixedAscii::from_ascii(s).unwrap()).collect();
            g.new_dataset_builder()
                .with_data_as(&a, &TypeDescriptor::FixedAscii(max))
                .create(name)
                .unwrap();
        }
        Str::FixedUnicode => {
            let a: Vec<FixedUnicode<64>> = v.iter().map(|s| s.parse().unwrap()).collect();
            g.new_dataset_builder()
                .with_data_as(&a, &TypeDescriptor::FixedUnicode(max))
                .create(name)
                .unwrap();
        }
    }
}

fn str_attr(loc: &hdf5::Location, name: &str, value: &str) {
    let v: VarLenUnicode = value.parse().unwrap();
    loc.new_attr::<VarLenUnicode>()
        .shape(())
        .create(name)
        .unwrap()
        .write_scalar(&v)
        .unwrap();
}

fn fixed_str_attr(loc: &hdf5::Location, name: &str, value: &str) {
    let v = FixedAscii::<16>::from_ascii(value).unwrap();
    loc.new_attr::<FixedAscii<16>>()
        .shape(())
        .create(name)
        .unwrap()
        .write_scalar(&v)
        .unwrap();
}

fn dataframe(file: &hdf5::File, name: &str, index: &[String], o: &Opts) {
    let g = file.create_group(name).unwrap();
    str_attr(&g, "_index", "_index");
    str_attr(&g, "encoding-type", "dataframe");
    strings(&g, "_index", index, o.strings);
}

/// Writes the CSR arrays (and attributes) of `m` into group `g`.
pub(crate) fn csr_group(g: &hdf5::Group, m: &RawCsr, o: &Opts, enc: Enc) {
    match enc {
        Enc::Csr | Enc::Csc => {
            str_attr(
                g,
                "encoding-type",
                if enc == Enc::Csr {
                    "csr_matrix"
                } else {
                    "csc_matrix"
                },
            );
            str_attr(g, "encoding-version", "0.1.0");
            g.new_attr_builder()
                .with_data(&[m.n_rows as i64, m.n_cols as i64][..])
                .create("shape")
                .unwrap();
        }
        Enc::OldCsr => {
            fixed_str_attr(g, "h5sparse_format", "csr");
            g.new_attr_builder()
                .with_data(&[m.n_rows as i64, m.n_cols as i64][..])
                .create("h5sparse_shape")
                .unwrap();
        }
        Enc::Dense => unreachable!(),
    }
    let t;
    let arrays = if enc == Enc::Csc {
        t = m.transpose();
        &t
    } else {
        m
    };
    numeric(g, "data", &arrays.data, &o.data, o);
    numeric(g, "indices", &arrays.indices, &o.indices, o);
    numeric(g, "indptr", &arrays.indptr, &o.indptr, o);
}

/// What a test .h5ad holds besides X.
#[derive(Debug, Clone, Default)]
pub(crate) struct H5adExtras {
    /// Write X (else the file has no X).
    pub no_x: bool,
    /// Also write `raw/X` (same matrix) with `raw/var`.
    pub raw: bool,
    /// Also write `layers/<name>` (same matrix).
    pub layer: Option<String>,
    /// Write `obs`/`var` as anndata < 0.7 compound datasets (index field
    /// `index`; `var` also `gene_ids` when given).
    pub legacy_frames: bool,
    /// `var/gene_ids`.
    pub gene_ids: Option<Vec<String>>,
    /// Extra obs columns.
    pub obs: Vec<ObsCol>,
}

/// An obs column of a test .h5ad.
#[derive(Debug, Clone)]
pub(crate) enum ObsCol {
    /// anndata ≥ 0.8 categorical group.
    Categorical {
        name: String,
        categories: Vec<String>,
        codes: Vec<i8>,
        ordered: bool,
    },
    /// anndata 0.7 categorical: codes dataset + `obs/__categories/name`.
    Legacy {
        name: String,
        categories: Vec<String>,
        codes: Vec<i16>,
    },
    /// A string-array column.
    Strings { name: String, values: Vec<String> },
    /// A numeric column (not carried).
    Numbers { name: String, values: Vec<f64> },
}

#[derive(hdf5::H5Type, Clone)]
#[repr(C)]
struct LegacyObs {
    index: VarLenUnicode,
}

#[derive(hdf5::H5Type, Clone)]
#[repr(C)]
struct LegacyVar {
    index: FixedAscii<16>,
    gene_ids: VarLenUnicode,
    n_cells: i64,
}

fn obs_columns(file: &hdf5::File, cols: &[ObsCol]) {
    let g = file.group("obs").unwrap();
    let mut order = Vec::new();
    for c in cols {
        match c {
            ObsCol::Categorical {
                name,
                categories,
                codes,
                ordered,
            } => {
                let cg = g.create_group(name).unwrap();
                str_attr(&cg, "encoding-type", "categorical");
                str_attr(&cg, "encoding-version", "0.2.0");
                cg.new_attr::<bool>()
                    .shape(())
                    .create("ordered")
                    .unwrap()
                    .write_scalar(ordered)
                    .unwrap();
                strings(&cg, "categories", categories, Str::VarUnicode);
                cg.new_dataset_builder().with_data(codes).create("codes").unwrap();
                order.push(name.clone());
            }
            ObsCol::Legacy {
                name,
                categories,
                codes,
            } => {
                g.new_dataset_builder()
                    .with_data(codes)
                    .create(name.as_str())
                    .unwrap();
                let cats = match g.group("__categories") {
                    Ok(c) => c,
                    Err(_) => g.create_group("__categories").unwrap(),
                };
                strings(&cats, name, categories, Str::FixedAscii);
                order.push(name.clone());
            }
            ObsCol::Strings { name, values } => {
                strings(&g, name, values, Str::VarUnicode);
                order.push(name.clone());
            }
            ObsCol::Numbers { name, values } => {
                g.new_dataset_builder()
                    .with_data(values)
                    .create(name.as_str())
                    .unwrap();
                order.push(name.clone());
            }
        }
    }
    let order: Vec<VarLenUnicode> = order.iter().map(|s| s.parse().unwrap()).collect();
    g.new_attr_builder()
        .with_data(&order)
        .create("column-order")
        .unwrap();
}

/// Writes an .h5ad with `m` as X (cells × genes).
pub(crate) fn write_h5ad(
    path: &Path,
    m: &RawCsr,
    genes: &[String],
    cells: &[String],
    o: &Opts,
    enc: Enc,
    extras: &H5adExtras,
) {
    let file = hdf5::File::create(path).unwrap();
    str_attr(&file, "encoding-type", "anndata");
    str_attr(&file, "encoding-version", "0.1.0");
    if !extras.no_x {
        if enc == Enc::Dense {
            let mut dense = vec![0.0f64; m.n_rows * m.n_cols];
            for r in 0..m.n_rows {
                for k in m.indptr[r] as usize..m.indptr[r + 1] as usize {
                    dense[r * m.n_cols + m.indices[k] as usize] = m.data[k];
                }
            }
            let a = ndarray::Array2::from_shape_vec((m.n_rows, m.n_cols), dense).unwrap();
            file.new_dataset_builder().with_data(&a).create("X").unwrap();
        } else {
            let g = file.create_group("X").unwrap();
            csr_group(&g, m, o, enc);
        }
    }
    if extras.legacy_frames {
        let obs: Vec<LegacyObs> = cells
            .iter()
            .map(|c| LegacyObs {
                index: c.parse().unwrap(),
            })
            .collect();
        file.new_dataset_builder().with_data(&obs).create("obs").unwrap();
        let ids = extras.gene_ids.clone().unwrap_or_else(|| genes.to_vec());
        let var: Vec<LegacyVar> = genes
            .iter()
            .zip(&ids)
            .map(|(g, id)| LegacyVar {
                index: FixedAscii::from_ascii(g).unwrap(),
                gene_ids: id.parse().unwrap(),
                n_cells: 1,
            })
            .collect();
        file.new_dataset_builder().with_data(&var).create("var").unwrap();
    } else {
        dataframe(&file, "obs", cells, o);
        dataframe(&file, "var", genes, o);
        if let Some(ids) = &extras.gene_ids {
            strings(&file.group("var").unwrap(), "gene_ids", ids, o.strings);
        }
        obs_columns(&file, &extras.obs);
    }
    if extras.raw {
        let raw = file.create_group("raw").unwrap();
        let g = raw.create_group("X").unwrap();
        csr_group(&g, m, o, Enc::Csr);
        let v = raw.create_group("var").unwrap();
        str_attr(&v, "_index", "_index");
        strings(&v, "_index", genes, o.strings);
    }
    if let Some(name) = &extras.layer {
        let layers = file.create_group("layers").unwrap();
        let g = layers.create_group(name).unwrap();
        csr_group(&g, m, o, Enc::Csr);
    }
}

/// Writes a Cell Ranger 3 .h5 holding `m` (cells × genes) as CSC genes × cells.
pub(crate) fn write_10x_v3(
    path: &Path,
    m: &RawCsr,
    genes: &[String],
    ids: &[String],
    types: &[String],
    barcodes: &[String],
    o: &Opts,
) {
    let file = hdf5::File::create(path).unwrap();
    let g = file.create_group("matrix").unwrap();
    numeric(&g, "data", &m.data, &o.data, o);
    numeric(&g, "indices", &m.indices, &o.indices, o);
    numeric(&g, "indptr", &m.indptr, &o.indptr, o);
    g.new_dataset_builder()
        .with_data(&[m.n_cols as i32, m.n_rows as i32][..])
        .create("shape")
        .unwrap();
    strings(&g, "barcodes", barcodes, o.strings);
    let f = g.create_group("features").unwrap();
    strings(&f, "name", genes, o.strings);
    strings(&f, "id", ids, o.strings);
    strings(&f, "feature_type", types, o.strings);
    let genome = vec!["GRCh38".to_string(); genes.len()];
    strings(&f, "genome", &genome, o.strings);
}

/// Writes a Cell Ranger 2 .h5 (one genome group `genome`).
pub(crate) fn write_10x_v2(
    path: &Path,
    m: &RawCsr,
    genes: &[String],
    ids: &[String],
    barcodes: &[String],
    o: &Opts,
) {
    let file = hdf5::File::create(path).unwrap();
    let g = file.create_group("mm10").unwrap();
    numeric(&g, "data", &m.data, &o.data, o);
    numeric(&g, "indices", &m.indices, &o.indices, o);
    numeric(&g, "indptr", &m.indptr, &o.indptr, o);
    g.new_dataset_builder()
        .with_data(&[m.n_cols as i32, m.n_rows as i32][..])
        .create("shape")
        .unwrap();
    strings(&g, "barcodes", barcodes, o.strings);
    strings(&g, "gene_names", genes, o.strings);
    strings(&g, "genes", ids, o.strings);
}

/// Deterministic pseudo-random numbers (SplitMix64) for fixtures.
#[derive(Debug, Clone)]
pub(crate) struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Poisson(λ) by inversion (small λ only).
    pub fn poisson(&mut self, lambda: f64) -> f64 {
        let (mut k, mut p, l) = (0.0, 1.0, (-lambda).exp());
        loop {
            p *= self.uniform();
            if p <= l {
                return k;
            }
            k += 1.0;
        }
    }
}

pub(crate) fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Writes a loom file holding `m` (cells × genes) as `/matrix` genes ×
/// cells (float32, chunked like loompy's 64 × 64), with `row_attrs/Gene`,
/// `row_attrs/Accession`, `col_attrs/CellID` and extra string col_attrs.
pub(crate) fn write_loom(
    path: &Path,
    m: &RawCsr,
    genes: &[String],
    ids: &[String],
    cells: &[String],
    extra: &[(&str, Vec<String>)],
) {
    let file = hdf5::File::create(path).unwrap();
    let mut dense = vec![0.0f32; m.n_rows * m.n_cols];
    for r in 0..m.n_rows {
        for k in m.indptr[r] as usize..m.indptr[r + 1] as usize {
            dense[m.indices[k] as usize * m.n_rows + r] = m.data[k] as f32;
        }
    }
    let a = ndarray::Array2::from_shape_vec((m.n_cols, m.n_rows), dense).unwrap();
    file.new_dataset_builder()
        .with_data(&a)
        .chunk((m.n_cols.clamp(1, 64), m.n_rows.clamp(1, 64)))
        .deflate(2)
        .create("matrix")
        .unwrap();
    file.create_group("layers").unwrap();
    let rows = file.create_group("row_attrs").unwrap();
    strings(&rows, "Gene", genes, Str::VarUnicode);
    strings(&rows, "Accession", ids, Str::VarUnicode);
    let cols = file.create_group("col_attrs").unwrap();
    strings(&cols, "CellID", cells, Str::VarAscii);
    for (name, v) in extra {
        strings(&cols, name, v, Str::VarUnicode);
    }
    file.create_group("col_graphs").unwrap();
    file.create_group("row_graphs").unwrap();
}

/// Writes an rliger-style LIGER .h5: the raw counts `m` in the 10x v3
/// layout plus `scaleDataSparse/` holding `scaled` (cells × the features
/// at 1-based positions `feature_idx`), double values, int indices.
pub(crate) fn write_liger(
    path: &Path,
    m: &RawCsr,
    genes: &[String],
    barcodes: &[String],
    scaled: &RawCsr,
    feature_idx: &[i32],
) {
    let ids = names("ENSG", genes.len());
    let types = vec!["Gene Expression".to_string(); genes.len()];
    write_10x_v3(path, m, genes, &ids, &types, barcodes, &Opts::default());
    let file = hdf5::File::open_rw(path).unwrap();
    let g = file.create_group("scaleDataSparse").unwrap();
    let o = Opts {
        data: float(8),
        indices: int(4),
        indptr: int(4),
        chunk: Some(2048),
        ..Opts::default()
    };
    numeric(&g, "data", &scaled.data, &o.data, &o);
    numeric(&g, "indices", &scaled.indices, &o.indices, &o);
    numeric(&g, "indptr", &scaled.indptr, &o.indptr, &o);
    g.new_dataset_builder()
        .with_data(feature_idx)
        .create("featureIdx")
        .unwrap();
}

/// How a test Matrix Market directory is written.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MtxOpts {
    /// Gzip every file.
    pub gz: bool,
    /// Shuffle the entries (not ordered by cell).
    pub shuffle: bool,
    /// Store cells × features.
    pub transposed: bool,
    /// Old layout: `genes.tsv` with two columns.
    pub genes_tsv: bool,
    /// Add this to the entry count of the header (a lying header).
    pub header_extra: i64,
}

/// Writes `m` (cells × genes) as a Cell Ranger style Matrix Market
/// directory: `matrix.mtx` (features × cells, integer), `features.tsv`
/// (id, name, type), `barcodes.tsv`.
pub(crate) fn write_mtx(
    dir: &Path,
    m: &RawCsr,
    ids: &[String],
    genes: &[String],
    types: &[String],
    barcodes: &[String],
    o: MtxOpts,
) {
    use std::io::Write;
    std::fs::create_dir_all(dir).unwrap();
    let write = |name: &str, text: String| {
        let p = dir.join(if o.gz {
            format!("{name}.gz")
        } else {
            name.to_owned()
        });
        let f = std::fs::File::create(p).unwrap();
        if o.gz {
            let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            e.write_all(text.as_bytes()).unwrap();
            e.finish().unwrap();
        } else {
            let mut f = f;
            f.write_all(text.as_bytes()).unwrap();
        }
    };
    let mut entries = Vec::new();
    for r in 0..m.n_rows {
        for k in m.indptr[r] as usize..m.indptr[r + 1] as usize {
            let (cell, gene) = (r + 1, m.indices[k] as usize + 1);
            let v = m.data[k];
            entries.push(if o.transposed {
                format!("{cell} {gene} {v}")
            } else {
                format!("{gene} {cell} {v}")
            });
        }
    }
    if o.shuffle {
        let mut rng = Rng(99);
        for i in (1..entries.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            entries.swap(i, j);
        }
    }
    let (rows, cols) = if o.transposed {
        (m.n_rows, m.n_cols)
    } else {
        (m.n_cols, m.n_rows)
    };
    let mut text = String::from("%%MatrixMarket matrix coordinate integer general\n%metadata_json: {}\n");
    text.push_str(&format!(
        "{rows} {cols} {}\n",
        entries.len() as i64 + o.header_extra
    ));
    for e in &entries {
        text.push_str(e);
        text.push('\n');
    }
    write("matrix.mtx", text);
    let mut f = String::new();
    for i in 0..genes.len() {
        if o.genes_tsv {
            f.push_str(&format!("{}\t{}\n", ids[i], genes[i]));
        } else {
            f.push_str(&format!("{}\t{}\t{}\n", ids[i], genes[i], types[i]));
        }
    }
    write(if o.genes_tsv { "genes.tsv" } else { "features.tsv" }, f);
    write(
        "barcodes.tsv",
        barcodes.iter().map(|b| format!("{b}\n")).collect(),
    );
}
