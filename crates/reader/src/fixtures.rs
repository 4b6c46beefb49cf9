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
            if o.deflate {
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
    numeric(g, "data", &m.data, &o.data, o);
    numeric(g, "indices", &m.indices, &o.indices, o);
    numeric(g, "indptr", &m.indptr, &o.indptr, o);
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
    dataframe(&file, "obs", cells, o);
    dataframe(&file, "var", genes, o);
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
