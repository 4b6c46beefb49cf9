//! Write files, read them back with the hdf5 crate, check every attribute,
//! dtype, shape and value.

use std::path::Path;

use hdf5::types::{FloatSize, IntSize, TypeDescriptor as TD, VarLenUnicode};
use hdf5::{File, Location};
use ndarray::{array, Array2};

use super::*;
use crate::DriverError;

fn attr_str(loc: &Location, name: &str) -> String {
    let a = loc
        .attr(name)
        .unwrap_or_else(|_| panic!("attribute {name} missing on {}", loc.name()));
    assert_eq!(
        a.dtype().unwrap().to_descriptor().unwrap(),
        TD::VarLenUnicode,
        "{name} dtype"
    );
    assert!(a.is_scalar(), "{name} is scalar");
    a.read_scalar::<VarLenUnicode>().unwrap().as_str().to_string()
}

fn enc(loc: &Location) -> (String, String) {
    (attr_str(loc, "encoding-type"), attr_str(loc, "encoding-version"))
}

fn assert_enc(loc: &Location, ty: &str, ver: &str) {
    assert_eq!(
        enc(loc),
        (ty.to_string(), ver.to_string()),
        "encoding of {}",
        loc.name()
    );
}

fn strings(ds: &hdf5::Dataset) -> Vec<String> {
    assert_eq!(
        ds.dtype().unwrap().to_descriptor().unwrap(),
        TD::VarLenUnicode,
        "{}",
        ds.name()
    );
    ds.read_raw::<VarLenUnicode>()
        .unwrap()
        .iter()
        .map(|s| s.as_str().to_string())
        .collect()
}

fn str_array_attr(loc: &Location, name: &str) -> Vec<String> {
    let a = loc.attr(name).unwrap();
    assert_eq!(a.dtype().unwrap().to_descriptor().unwrap(), TD::VarLenUnicode);
    assert_eq!(a.ndim(), 1);
    if a.size() == 0 {
        return Vec::new();
    }
    a.read_raw::<VarLenUnicode>()
        .unwrap()
        .iter()
        .map(|s| s.as_str().to_string())
        .collect()
}

fn dtype(ds: &hdf5::Dataset) -> TD {
    ds.dtype().unwrap().to_descriptor().unwrap()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

/// Rows of a small dense matrix as CSR (indptr, indices, data).
fn to_csr(m: &Array2<f32>) -> (Vec<usize>, Vec<u32>, Vec<f32>) {
    let (mut p, mut i, mut d) = (vec![0], vec![], vec![]);
    for row in m.rows() {
        for (c, &v) in row.iter().enumerate() {
            if v != 0.0 {
                i.push(c as u32);
                d.push(v);
            }
        }
        p.push(i.len());
    }
    (p, i, d)
}

#[test]
fn full_h5ad_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.h5ad");
    let x = array![
        [0.0f32, 1.0, 0.0, 2.0],
        [0.0, 0.0, 0.0, 0.0],
        [3.0, 0.0, 4.0, 0.0],
        [5.0, 6.0, 7.0, 8.0],
        [0.0, 0.0, 9.0, 0.0]
    ];
    let h = Array2::from_shape_fn((5, 3), |(r, c)| (r * 3 + c) as f32 * 0.5);
    let w = Array2::from_shape_fn((4, 3), |(r, c)| (r + 10 * c) as f64);
    let small = DatasetOptions {
        gzip: Some(4),
        chunk: 3,
    };

    let mut wr = AnnDataWriter::create(&path).unwrap();
    assert_eq!(wr.path(), path);
    wr.write_index(Axis::Var, &["g1", "g2", "g3", "g4"]).unwrap();
    let mut sym = wr.string_column(Axis::Var, "symbol").unwrap();
    sym.append(["A", "B", "Ç", "D"]).unwrap();
    sym.finish().unwrap();
    wr.write_dense(Axis::Var, "W", w.view()).unwrap();

    let mut names = wr.index(Axis::Obs).unwrap();
    let mut kind = wr
        .categorical_column(Axis::Obs, "cell_type", &["T", "B", "NK"], false)
        .unwrap();
    let mut num = wr.numeric_column::<f64>(Axis::Obs, "n_counts", small).unwrap();
    let mut xw = wr.x_csr::<f32>(4, small).unwrap();
    let mut layer = wr
        .layer_csr::<i32>("counts", 4, DatasetOptions::default())
        .unwrap();
    let mut hw = wr
        .dense::<f32>(Axis::Obs, "X_inmf", 5, 3, DatasetOptions { gzip: None, chunk: 6 })
        .unwrap();
    // Three uneven blocks of cells: 2, 0, 3.
    for (r0, r1) in [(0, 2), (2, 2), (2, 5)] {
        names.append((r0..r1).map(|r| format!("cell{r}"))).unwrap();
        kind.append(&[0, -1, 2, 1, 0][r0..r1]).unwrap();
        let block = x.slice(ndarray::s![r0..r1, ..]).to_owned();
        num.append(&block.sum_axis(ndarray::Axis(1)).mapv(f64::from).to_vec())
            .unwrap();
        let (p, i, d) = to_csr(&block);
        xw.append_rows(&p, &i, &d).unwrap();
        let di: Vec<i32> = d.iter().map(|&v| v as i32).collect();
        layer.append_rows(&p, &i, &di).unwrap();
        hw.append_rows(h.slice(ndarray::s![r0..r1, ..])).unwrap();
    }
    assert_eq!(names.len(), 5);
    assert_eq!((xw.rows(), xw.nnz()), (5, 9));
    names.finish().unwrap();
    kind.finish().unwrap();
    num.finish().unwrap();
    xw.finish().unwrap();
    layer.finish().unwrap();
    hw.finish().unwrap();
    wr.write_uns("inmf/params/k", UnsValue::I64(20)).unwrap();
    wr.write_uns("inmf/params/lambda", UnsValue::F64(5.0)).unwrap();
    wr.write_uns("inmf/params/solver", UnsValue::Str("hals")).unwrap();
    wr.write_uns("inmf/params/shuffle", UnsValue::Bool(true)).unwrap();
    wr.write_uns("inmf/objective", UnsValue::F64s(&[3.0, 2.0, 1.5]))
        .unwrap();
    wr.write_uns("inmf/iters", UnsValue::I64s(&[1, 2, 3])).unwrap();
    wr.write_uns("inmf/datasets", UnsValue::Strs(&["a", "b"]))
        .unwrap();
    wr.write_uns("inmf/m", UnsValue::F64Matrix(w.t())).unwrap();
    wr.write_uns("empty", UnsValue::Dict).unwrap();
    // Not visible under the final name before finish.
    assert!(!path.exists());
    assert_eq!(leftovers(dir.path()).len(), 1);
    assert_eq!(wr.finish().unwrap(), path);
    assert!(leftovers(dir.path()).is_empty());

    let f = File::open(&path).unwrap();
    assert_enc(&f, "anndata", "0.1.0");
    for g in ["obsm", "varm", "obsp", "varp", "layers", "uns"] {
        assert_enc(&f.group(g).unwrap(), "dict", "0.1.0");
    }
    // obs dataframe
    let obs = f.group("obs").unwrap();
    assert_enc(&obs, "dataframe", "0.2.0");
    assert_eq!(attr_str(&obs, "_index"), "_index");
    assert_eq!(str_array_attr(&obs, "column-order"), ["cell_type", "n_counts"]);
    let idx = obs.dataset("_index").unwrap();
    assert_enc(&idx, "string-array", "0.2.0");
    assert_eq!(strings(&idx), ["cell0", "cell1", "cell2", "cell3", "cell4"]);
    let ct = obs.group("cell_type").unwrap();
    assert_enc(&ct, "categorical", "0.2.0");
    let ordered = ct.attr("ordered").unwrap();
    assert_eq!(ordered.dtype().unwrap().to_descriptor().unwrap(), TD::Boolean);
    assert!(!ordered.read_scalar::<bool>().unwrap());
    let cats = ct.dataset("categories").unwrap();
    assert_enc(&cats, "string-array", "0.2.0");
    assert_eq!(strings(&cats), ["T", "B", "NK"]);
    let codes = ct.dataset("codes").unwrap();
    assert_enc(&codes, "array", "0.2.0");
    assert_eq!(dtype(&codes), TD::Integer(IntSize::U1));
    assert_eq!(codes.read_raw::<i8>().unwrap(), [0, -1, 2, 1, 0]);
    let n = obs.dataset("n_counts").unwrap();
    assert_enc(&n, "array", "0.2.0");
    assert_eq!(dtype(&n), TD::Float(FloatSize::U8));
    assert_eq!(n.read_raw::<f64>().unwrap(), [3.0, 0.0, 7.0, 26.0, 9.0]);
    assert_eq!(n.chunk(), Some(vec![3]));
    // var dataframe
    let var = f.group("var").unwrap();
    assert_enc(&var, "dataframe", "0.2.0");
    assert_eq!(attr_str(&var, "_index"), "_index");
    assert_eq!(str_array_attr(&var, "column-order"), ["symbol"]);
    assert_eq!(strings(&var.dataset("_index").unwrap()), ["g1", "g2", "g3", "g4"]);
    assert_eq!(strings(&var.dataset("symbol").unwrap()), ["A", "B", "Ç", "D"]);
    // X
    let xg = f.group("X").unwrap();
    assert_enc(&xg, "csr_matrix", "0.1.0");
    let shape = xg.attr("shape").unwrap();
    assert_eq!(
        shape.dtype().unwrap().to_descriptor().unwrap(),
        TD::Integer(IntSize::U8)
    );
    assert_eq!(shape.read_raw::<i64>().unwrap(), [5, 4]);
    let (p, i, d) = to_csr(&x);
    let data = xg.dataset("data").unwrap();
    assert_eq!(dtype(&data), TD::Float(FloatSize::U4));
    assert_eq!(data.read_raw::<f32>().unwrap(), d);
    assert!(data
        .filters()
        .iter()
        .any(|f| matches!(f, hdf5::filters::Filter::Deflate(4))));
    let ind = xg.dataset("indices").unwrap();
    assert_eq!(dtype(&ind), TD::Integer(IntSize::U4));
    assert_eq!(
        ind.read_raw::<i32>().unwrap(),
        i.iter().map(|&v| v as i32).collect::<Vec<_>>()
    );
    let ptr = xg.dataset("indptr").unwrap();
    assert_eq!(dtype(&ptr), TD::Integer(IntSize::U8));
    assert_eq!(
        ptr.read_raw::<i64>().unwrap(),
        p.iter().map(|&v| v as i64).collect::<Vec<_>>()
    );
    // layer
    let lg = f.group("layers/counts").unwrap();
    assert_enc(&lg, "csr_matrix", "0.1.0");
    assert_eq!(dtype(&lg.dataset("data").unwrap()), TD::Integer(IntSize::U4));
    assert_eq!(
        lg.dataset("data").unwrap().read_raw::<i32>().unwrap(),
        d.iter().map(|&v| v as i32).collect::<Vec<_>>()
    );
    assert!(lg.dataset("data").unwrap().filters().is_empty());
    // obsm / varm
    let hd = f.dataset("obsm/X_inmf").unwrap();
    assert_enc(&hd, "array", "0.2.0");
    assert_eq!(dtype(&hd), TD::Float(FloatSize::U4));
    assert_eq!(hd.chunk(), Some(vec![2, 3]));
    assert_eq!(hd.read_2d::<f32>().unwrap(), h);
    let wd = f.dataset("varm/W").unwrap();
    assert_enc(&wd, "array", "0.2.0");
    assert_eq!(dtype(&wd), TD::Float(FloatSize::U8));
    assert_eq!(wd.read_2d::<f64>().unwrap(), w);
    // uns
    assert_enc(&f.group("uns/inmf").unwrap(), "dict", "0.1.0");
    assert_enc(&f.group("uns/inmf/params").unwrap(), "dict", "0.1.0");
    assert_enc(&f.group("uns/empty").unwrap(), "dict", "0.1.0");
    let k = f.dataset("uns/inmf/params/k").unwrap();
    assert_enc(&k, "numeric-scalar", "0.2.0");
    assert!(k.is_scalar());
    assert_eq!(k.read_scalar::<i64>().unwrap(), 20);
    let l = f.dataset("uns/inmf/params/lambda").unwrap();
    assert_enc(&l, "numeric-scalar", "0.2.0");
    assert_eq!(l.read_scalar::<f64>().unwrap(), 5.0);
    let s = f.dataset("uns/inmf/params/solver").unwrap();
    assert_enc(&s, "string", "0.2.0");
    assert_eq!(s.read_scalar::<VarLenUnicode>().unwrap().as_str(), "hals");
    let b = f.dataset("uns/inmf/params/shuffle").unwrap();
    assert_enc(&b, "numeric-scalar", "0.2.0");
    assert_eq!(dtype(&b), TD::Boolean);
    assert!(b.read_scalar::<bool>().unwrap());
    let o = f.dataset("uns/inmf/objective").unwrap();
    assert_enc(&o, "array", "0.2.0");
    assert_eq!(o.read_raw::<f64>().unwrap(), [3.0, 2.0, 1.5]);
    assert_eq!(
        f.dataset("uns/inmf/iters").unwrap().read_raw::<i64>().unwrap(),
        [1, 2, 3]
    );
    let ds = f.dataset("uns/inmf/datasets").unwrap();
    assert_enc(&ds, "string-array", "0.2.0");
    assert_eq!(strings(&ds), ["a", "b"]);
    let m = f.dataset("uns/inmf/m").unwrap();
    assert_enc(&m, "array", "0.2.0");
    assert_eq!(m.read_2d::<f64>().unwrap(), w.t());
}

#[test]
fn empty_column_order_and_no_x() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.h5ad");
    let mut w = AnnDataWriter::create(&path).unwrap();
    w.write_index(Axis::Obs, &["c1", "c2"]).unwrap();
    w.write_index(Axis::Var, &Vec::<String>::new()).unwrap();
    w.finish().unwrap();
    let f = File::open(&path).unwrap();
    assert!(str_array_attr(&f.group("obs").unwrap(), "column-order").is_empty());
    assert!(str_array_attr(&f.group("var").unwrap(), "column-order").is_empty());
    assert!(!f.link_exists("X"));
    assert_eq!(strings(&f.dataset("var/_index").unwrap()), Vec::<String>::new());
}

#[test]
fn dropped_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.h5ad");
    let mut w = AnnDataWriter::create(&path).unwrap();
    let mut names = w.index(Axis::Obs).unwrap();
    names.append(["a"]).unwrap();
    assert_eq!(leftovers(dir.path()).len(), 1);
    drop(w);
    drop(names);
    assert!(leftovers(dir.path()).is_empty());
    assert!(!path.exists());

    // A failed finish leaves nothing either.
    let w = AnnDataWriter::create(&path).unwrap();
    assert!(w.finish().is_err());
    assert!(leftovers(dir.path()).is_empty());
    assert!(!path.exists());
}

#[test]
fn finish_replaces_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.h5ad");
    std::fs::write(&path, b"old").unwrap();
    let mut w = AnnDataWriter::create(&path).unwrap();
    w.write_index(Axis::Obs, &["c"]).unwrap();
    w.write_index(Axis::Var, &["g"]).unwrap();
    w.finish().unwrap();
    assert!(File::open(&path).is_ok());
}

fn err_of(r: Result<impl std::fmt::Debug, DriverError>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn finish_checks_consistency() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.h5ad");

    let mut w = AnnDataWriter::create(&path).unwrap();
    w.write_index(Axis::Var, &["g"]).unwrap();
    let e = err_of(w.finish());
    assert!(e.contains("the obs index was never written"), "{e}");
    assert!(e.contains("c.h5ad"), "{e}");

    let mut w = AnnDataWriter::create(&path).unwrap();
    w.write_index(Axis::Obs, &["c1", "c2"]).unwrap();
    w.write_index(Axis::Var, &["g"]).unwrap();
    let _unfinished = w
        .numeric_column::<f32>(Axis::Obs, "x", DatasetOptions::default())
        .unwrap();
    let e = err_of(w.finish());
    assert!(e.contains("obs column \"x\" not finished"), "{e}");

    let mut w = AnnDataWriter::create(&path).unwrap();
    w.write_index(Axis::Obs, &["c1", "c2"]).unwrap();
    w.write_index(Axis::Var, &["g"]).unwrap();
    let mut c = w.categorical_column(Axis::Obs, "t", &["a"], true).unwrap();
    c.append(&[0]).unwrap();
    c.finish().unwrap();
    let e = err_of(w.finish());
    assert!(
        e.contains("obs column \"t\" has 1 rows but the obs index has 2"),
        "{e}"
    );

    let mut w = AnnDataWriter::create(&path).unwrap();
    w.write_index(Axis::Obs, &["c1"]).unwrap();
    w.write_index(Axis::Var, &["g"]).unwrap();
    let mut x = w.x_csr::<f32>(3, DatasetOptions::default()).unwrap();
    x.append_rows(&[0, 1], &[2], &[1.0]).unwrap();
    x.finish().unwrap();
    let e = err_of(w.finish());
    assert!(e.contains("X has 3 columns but the var index has 1"), "{e}");

    let mut w = AnnDataWriter::create(&path).unwrap();
    w.write_index(Axis::Obs, &["c1"]).unwrap();
    w.write_index(Axis::Var, &["g"]).unwrap();
    let mut d = w
        .dense::<f32>(Axis::Obs, "h", 1, 2, DatasetOptions::default())
        .unwrap();
    let e = err_of(d.append_rows(Array2::zeros((2, 2)).view()));
    assert!(e.contains("matrix has 1 rows"), "{e}");
    let e = err_of(d.append_rows(Array2::zeros((1, 3)).view()));
    assert!(e.contains("3 columns"), "{e}");
    let e = err_of(d.finish());
    assert!(e.contains("0 of 1 rows"), "{e}");
    assert!(leftovers(dir.path()).len() <= 1);
    drop(w);
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn bad_inputs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = AnnDataWriter::create(dir.path().join("b.h5ad")).unwrap();
    let mut x = w.x_csr::<f32>(3, DatasetOptions::default()).unwrap();
    assert!(err_of(x.append_rows(&[1, 1], &[], &[])).contains("start with 0"));
    assert!(err_of(x.append_rows(&[0, 2], &[0], &[1.0])).contains("indptr ends at 2"));
    assert!(err_of(x.append_rows(&[0, 1], &[3], &[1.0])).contains("column 3"));
    assert!(err_of(x.append_rows(&[0, 2], &[1, 1], &[1.0, 1.0])).contains("strictly increasing"));
    assert!(err_of(x.append_rows(&[0, 1, 0, 1], &[1], &[1.0])).contains("decreases"));
    assert_eq!(x.rows(), 0);
    let mut c = w.categorical_column(Axis::Obs, "t", &["a", "b"], false).unwrap();
    assert!(err_of(c.append(&[0, 2])).contains("code 2 at row 1"));
    assert!(err_of(c.append(&[-2])).contains("code -2"));
    let e = err_of(w.categorical_column(Axis::Obs, "u", &["a", "a"], false));
    assert!(e.contains("listed twice"), "{e}");
    let e = err_of(w.categorical_column(Axis::Obs, "t", &["a"], false));
    assert!(e.contains("written twice"), "{e}");
    let e = err_of(w.numeric_column::<f32>(Axis::Obs, "a/b", DatasetOptions::default()));
    assert!(e.contains("without '/'"), "{e}");
    let e = err_of(w.string_column(Axis::Var, "_index"));
    assert!(e.contains("reserved"), "{e}");
    let e = err_of(w.numeric_column::<f32>(
        Axis::Obs,
        "z",
        DatasetOptions {
            gzip: Some(10),
            chunk: 1,
        },
    ));
    assert!(e.contains("gzip level 10"), "{e}");
    let e = err_of(w.numeric_column::<f32>(Axis::Obs, "z", DatasetOptions { gzip: None, chunk: 0 }));
    assert!(e.contains("chunk size 0"), "{e}");
    let mut s = w.index(Axis::Obs).unwrap();
    assert!(err_of(s.append(["a\0b"])).contains("NUL"));
    assert!(err_of(w.index(Axis::Obs)).contains("index is written twice"));
    w.write_uns("a/b", UnsValue::F64(1.0)).unwrap();
    assert!(err_of(w.write_uns("a/b", UnsValue::F64(1.0))).contains("written twice"));
    assert!(err_of(w.write_uns("a//b", UnsValue::F64(1.0))).contains("not valid"));
}

#[test]
fn tenx_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.h5");
    let ids = ["ENSG1", "ENSG2", "ENSG3"];
    let names = ["A", "BB", "CCC"];
    let opts = DatasetOptions {
        gzip: Some(4),
        chunk: 2,
    };
    let mut w = TenxWriter::create(&path, &ids, &names, "GRCh38", 10, opts).unwrap();
    w.append_cells(&["AAAC-1", "GG-1"], &[0, 2, 3], &[0, 2, 1], &[5, 1, 7])
        .unwrap();
    w.append_cells::<&str>(&[], &[0], &[], &[]).unwrap();
    w.append_cells(&["TTTTTTTT-1"], &[0, 0], &[], &[]).unwrap();
    assert!(err_of(w.append_cells(&["TOOLONGBARCODE"], &[0, 0], &[], &[])).contains("longer than 10"));
    assert!(err_of(w.append_cells(&["é"], &[0, 0], &[], &[])).contains("not ASCII"));
    assert!(err_of(w.append_cells(&["x"], &[0, 1], &[3], &[1])).contains("beyond the 3 genes"));
    assert!(err_of(w.append_cells(&["x", "y"], &[0, 1], &[0], &[1])).contains("one entry per barcode"));
    assert_eq!((w.cells(), w.nnz()), (3, 3));
    assert!(!path.exists());
    assert_eq!(w.finish().unwrap(), path);
    assert!(leftovers(dir.path()).is_empty());

    let f = File::open(&path).unwrap();
    let ft = f.attr("filetype").unwrap();
    assert_eq!(ft.dtype().unwrap().to_descriptor().unwrap(), TD::FixedAscii(6));
    assert_eq!(f.attr("version").unwrap().read_scalar::<i64>().unwrap(), 2);
    let fixed = |p: &str, len: usize| -> Vec<String> {
        let d = f.dataset(p).unwrap();
        assert_eq!(dtype(&d), TD::FixedAscii(len), "{p}");
        d.read_raw::<hdf5::types::FixedAscii<64>>()
            .unwrap()
            .iter()
            .map(|s| s.as_str().to_string())
            .collect()
    };
    assert_eq!(fixed("matrix/barcodes", 10), ["AAAC-1", "GG-1", "TTTTTTTT-1"]);
    assert_eq!(fixed("matrix/features/id", 5), ids);
    assert_eq!(fixed("matrix/features/name", 3), names);
    assert_eq!(fixed("matrix/features/feature_type", 15), ["Gene Expression"; 3]);
    assert_eq!(fixed("matrix/features/genome", 6), ["GRCh38"; 3]);
    assert_eq!(fixed("matrix/features/_all_tag_keys", 6), ["genome"]);
    let data = f.dataset("matrix/data").unwrap();
    assert_eq!(dtype(&data), TD::Integer(IntSize::U4));
    assert_eq!(data.read_raw::<i32>().unwrap(), [5, 1, 7]);
    assert!(data
        .filters()
        .iter()
        .any(|f| matches!(f, hdf5::filters::Filter::Deflate(4))));
    let ind = f.dataset("matrix/indices").unwrap();
    assert_eq!(dtype(&ind), TD::Integer(IntSize::U8));
    assert_eq!(ind.read_raw::<i64>().unwrap(), [0, 2, 1]);
    let ptr = f.dataset("matrix/indptr").unwrap();
    assert_eq!(dtype(&ptr), TD::Integer(IntSize::U8));
    assert_eq!(ptr.read_raw::<i64>().unwrap(), [0, 2, 3, 3]);
    let shape = f.dataset("matrix/shape").unwrap();
    assert_eq!(dtype(&shape), TD::Integer(IntSize::U4));
    assert_eq!(shape.read_raw::<i32>().unwrap(), [3, 3]);
}

#[test]
fn tenx_dropped_leaves_nothing_and_checks_features() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.h5");
    let e = err_of(TenxWriter::create(
        &path,
        &["a"],
        &["a", "b"],
        "g",
        4,
        DatasetOptions::default(),
    ));
    assert!(e.contains("1 feature ids but 2 feature names"), "{e}");
    let e = err_of(TenxWriter::create(
        &path,
        &["a"],
        &["a"],
        "g",
        0,
        DatasetOptions::default(),
    ));
    assert!(e.contains("barcode length 0"), "{e}");
    let mut w = TenxWriter::create(&path, &["a"], &["a"], "g", 4, DatasetOptions::default()).unwrap();
    w.append_cells(&["c"], &[0, 1], &[0], &[3]).unwrap();
    drop(w);
    assert!(leftovers(dir.path()).is_empty());
    assert!(!path.exists());
}

#[test]
fn identical_content_gives_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str| {
        let path = dir.path().join(name);
        let mut w = AnnDataWriter::create(&path).unwrap();
        w.write_index(Axis::Obs, &["c1", "c2"]).unwrap();
        w.write_index(Axis::Var, &["g1"]).unwrap();
        let mut x = w.x_csr::<f32>(1, DatasetOptions::gzip(4)).unwrap();
        x.append_rows(&[0, 1, 1], &[0], &[2.0]).unwrap();
        x.finish().unwrap();
        w.write_dense(Axis::Obs, "h", Array2::<f32>::ones((2, 2)).view())
            .unwrap();
        w.write_uns("a/b", UnsValue::F64(1.0)).unwrap();
        w.finish().unwrap();
        let mut t = TenxWriter::create(
            dir.path().join(format!("{name}.h5")),
            &["g"],
            &["g"],
            "x",
            2,
            DatasetOptions::default(),
        )
        .unwrap();
        t.append_cells(&["c1"], &[0, 1], &[0], &[1]).unwrap();
        t.finish().unwrap();
        (
            std::fs::read(path).unwrap(),
            std::fs::read(dir.path().join(format!("{name}.h5"))).unwrap(),
        )
    };
    let a = write("a.h5ad");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = write("b.h5ad");
    assert!(a.0 == b.0, "h5ad bytes differ");
    assert!(a.1 == b.1, "10x bytes differ");
}
