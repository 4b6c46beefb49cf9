//! Every input a user brings. `inmf import` of Matrix Market
//! directories (sorted or not, gzip), `inmf inspect`, runs over loom / CSC
//! / imported inputs, `--match-genes id`, and bad inputs: exit code 2, a
//! clear message, nothing written, inputs unchanged (checksums).

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use inmf_learner::CellSource;

use crate::common::*;

const CELLS: usize = 60;
const GENES: usize = 24;

fn checksum(p: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::fs::read(p).unwrap().hash(&mut h);
    h.finish()
}

/// Checksums of every file below `dir`.
fn checksums(dir: &Path) -> Vec<(PathBuf, u64)> {
    files_below(dir)
        .into_iter()
        .map(|p| (p.clone(), checksum(&p)))
        .collect()
}

fn vlen(v: &[String]) -> Vec<VarLenUnicode> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

/// Writes `counts` (cells × genes, row-major) as a Cell Ranger style
/// Matrix Market directory, optionally shuffled and gzipped.
fn write_mtx(dir: &Path, counts: &[f32], genes: &[String], cells: &[String], shuffle: bool, gz: bool) {
    use std::io::Write;
    std::fs::create_dir_all(dir).unwrap();
    let mut entries = Vec::new();
    for c in 0..cells.len() {
        for g in 0..genes.len() {
            let v = counts[c * genes.len() + g];
            if v != 0.0 {
                entries.push(format!("{} {} {}", g + 1, c + 1, v as i64));
            }
        }
    }
    if shuffle {
        let n = entries.len();
        for i in 0..n {
            entries.swap(i, (i * 7919 + 13) % n);
        }
    }
    let mut m = format!(
        "%%MatrixMarket matrix coordinate integer general\n{} {} {}\n",
        genes.len(),
        cells.len(),
        entries.len()
    );
    for e in entries {
        m.push_str(&e);
        m.push('\n');
    }
    let f: String = genes
        .iter()
        .enumerate()
        .map(|(i, g)| format!("ENSG{i}\t{g}\tGene Expression\n"))
        .collect();
    let b: String = cells.iter().map(|c| format!("{c}\n")).collect();
    for (name, text) in [("matrix.mtx", m), ("features.tsv", f), ("barcodes.tsv", b)] {
        if gz {
            let file = std::fs::File::create(dir.join(format!("{name}.gz"))).unwrap();
            let mut e = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
            e.write_all(text.as_bytes()).unwrap();
            e.finish().unwrap();
        } else {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
}

/// Writes a loom file of `counts` (cells × genes, row-major).
fn write_loom(path: &Path, counts: &[f32], genes: &[String], cells: &[String]) {
    let (n, m) = (cells.len(), genes.len());
    let mut t = vec![0.0f32; n * m];
    for c in 0..n {
        for g in 0..m {
            t[g * n + c] = counts[c * m + g];
        }
    }
    let f = create_unlocked(path);
    let a = ndarray::Array2::from_shape_vec((m, n), t).unwrap();
    f.new_dataset_builder()
        .with_data(&a)
        .chunk((m.min(64), n.min(64)))
        .deflate(2)
        .create("matrix")
        .unwrap();
    let r = f.create_group("row_attrs").unwrap();
    r.new_dataset_builder()
        .with_data(&vlen(genes))
        .create("Gene")
        .unwrap();
    let c = f.create_group("col_attrs").unwrap();
    c.new_dataset_builder()
        .with_data(&vlen(cells))
        .create("CellID")
        .unwrap();
}

/// Writes a Cell Ranger 3 .h5 of `counts` with the given feature types.
fn write_10x(path: &Path, counts: &[f32], genes: &[String], cells: &[String], types: &[&str]) {
    let (n, m) = (cells.len(), genes.len());
    let (mut indptr, mut indices, mut data) = (vec![0i64], Vec::<i32>::new(), Vec::<i32>::new());
    for c in 0..n {
        for g in 0..m {
            let v = counts[c * m + g];
            if v != 0.0 {
                indices.push(g as i32);
                data.push(v as i32);
            }
        }
        indptr.push(data.len() as i64);
    }
    let f = create_unlocked(path);
    let g = f.create_group("matrix").unwrap();
    g.new_dataset_builder().with_data(&data).create("data").unwrap();
    g.new_dataset_builder()
        .with_data(&indices)
        .create("indices")
        .unwrap();
    g.new_dataset_builder()
        .with_data(&indptr)
        .create("indptr")
        .unwrap();
    g.new_dataset_builder()
        .with_data(&[m as i32, n as i32])
        .create("shape")
        .unwrap();
    g.new_dataset_builder()
        .with_data(&vlen(cells))
        .create("barcodes")
        .unwrap();
    let fe = g.create_group("features").unwrap();
    fe.new_dataset_builder()
        .with_data(&vlen(genes))
        .create("name")
        .unwrap();
    let ids: Vec<String> = (0..m).map(|i| format!("ENSG{i}")).collect();
    fe.new_dataset_builder()
        .with_data(&vlen(&ids))
        .create("id")
        .unwrap();
    let types: Vec<String> = types.iter().map(|s| s.to_string()).collect();
    fe.new_dataset_builder()
        .with_data(&vlen(&types))
        .create("feature_type")
        .unwrap();
}

/// Mini-batches of `path` under fixed genes, for comparison across formats.
fn minibatches(path: &Path, genes: &[String]) -> (Vec<String>, inmf_learner::CsrMatrix) {
    let ds = inmf_reader::open(path, &inmf_reader::OpenOptions::default()).unwrap();
    let params = inmf_reader::PreprocessParams {
        genes: Some(genes.to_vec()),
        ..Default::default()
    };
    let mut src = inmf_reader::Hdf5Source::preprocess(vec![ds], &params.check().unwrap()).unwrap();
    let n = src.n_cells(0);
    let names = src.cell_names(0, 0..n).unwrap();
    let x = src.read_runs(0, &[0..n / 3, n / 2..n]).unwrap();
    (names, x)
}

#[test]
fn import_gives_the_same_minibatches_as_h5ad() {
    let dir = tempfile::tempdir().unwrap();
    let counts = two_type_counts(CELLS, GENES, 3);
    let genes = names("gene", GENES);
    let cells = names("bc", CELLS);
    let h5ad = dir.path().join("direct.h5ad");
    write_h5ad(&h5ad, &cells, &genes, &counts, Encoding::Csr);
    let model_genes: Vec<String> = genes[..10].to_vec();
    let want = minibatches(&h5ad, &model_genes);
    for (shuffle, gz) in [(false, false), (true, true)] {
        let mtx = dir.path().join(format!("mtx-{shuffle}-{gz}"));
        write_mtx(&mtx, &counts, &genes, &cells, shuffle, gz);
        let before = checksums(&mtx);
        let out = dir.path().join(format!("imported-{shuffle}.h5ad"));
        let o = inmf(&["import", mtx.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let said = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(said.contains(&format!("{CELLS} cells x {GENES} genes")), "{said}");
        assert_eq!(said.contains("sorted by cell"), shuffle, "{said}");
        assert_eq!(checksums(&mtx), before, "the input directory changed");
        assert_eq!(minibatches(&out, &model_genes), want, "shuffle {shuffle} gz {gz}");
        let o = inmf(&["inspect", out.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(text.contains("AnnData") && text.contains("/X/indptr"), "{text}");
        // Only the output: the sort's temporary file is gone.
        let leftovers: Vec<_> = files_below(dir.path())
            .into_iter()
            .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
    let mtx = dir.path().join("mtx-false-false");
    let o = inmf(&["inspect", mtx.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.contains("Matrix Market") && text.contains("features x cells"),
        "{text}"
    );
}

#[test]
fn run_reads_loom_csc_and_10x_together() {
    let dir = tempfile::tempdir().unwrap();
    let genes = names("gene", GENES);
    let a = dir.path().join("a.loom");
    write_loom(&a, &two_type_counts(CELLS, GENES, 1), &genes, &names("a", CELLS));
    let b = dir.path().join("b.h5ad");
    write_h5ad(
        &b,
        &names("b", CELLS),
        &genes,
        &two_type_counts(CELLS, GENES, 2),
        Encoding::Csc,
    );
    let c = dir.path().join("c.h5");
    // Two antibody features the default filter leaves out.
    let mut g3 = genes.clone();
    g3.extend(["CD3".to_string(), "CD4".to_string()]);
    let mut c3 = two_type_counts(CELLS, GENES + 2, 3);
    for v in c3.iter_mut() {
        *v = v.max(0.0);
    }
    let mut types = vec!["Gene Expression"; GENES];
    types.extend(["Antibody Capture", "Antibody Capture"]);
    write_10x(&c, &c3, &g3, &names("c", CELLS), &types);
    let out = dir.path().join("out");
    let o = inmf(&[
        "run",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        c.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--k",
        "3",
        "--epochs",
        "1",
        "--batch-size",
        "60",
        "--no-cache",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(s["cells"].as_u64().unwrap() > 150, "{s}");
    for p in [&a, &b, &c] {
        let o = inmf(&["inspect", p.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let o = inmf(&["inspect", c.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.contains("int32") && text.contains("2 Antibody Capture"),
        "{text}"
    );
}

#[test]
fn match_genes_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, prefix) in ["SYM", "sym"].iter().enumerate() {
        let p = dir.path().join(format!("d{i}.h5ad"));
        let genes = names(prefix, GENES);
        write_h5ad(
            &p,
            &names(&format!("c{i}_"), CELLS),
            &genes,
            &two_type_counts(CELLS, GENES, i as u64),
            Encoding::Csr,
        );
        let f = open_rw_unlocked(&p);
        let ids: Vec<String> = (0..GENES).map(|g| format!("ENSG{g}")).collect();
        f.group("var")
            .unwrap()
            .new_dataset_builder()
            .with_data(&vlen(&ids))
            .create("gene_ids")
            .unwrap();
        paths.push(p);
    }
    let out = dir.path().join("by-name");
    let by_name = inmf(&[
        "run",
        paths[0].to_str().unwrap(),
        paths[1].to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--no-cache",
    ]);
    assert_eq!(by_name.status.code(), Some(2));
    assert!(stderr(&by_name).contains("--match-genes"), "{}", stderr(&by_name));
    let out = dir.path().join("by-id");
    let o = inmf(&[
        "run",
        paths[0].to_str().unwrap(),
        paths[1].to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--match-genes",
        "id",
        "--batch-size",
        "60",
        "--k",
        "2",
        "--epochs",
        "1",
        "--no-cache",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Runs `inmf ARGS`, expecting exit code 2, an error naming every word of
/// `expect`, no file under `out`, and the `inputs` unchanged.
fn refused(args: &[&str], out: &Path, inputs: &[&Path], expect: &[&str]) {
    let before: Vec<u64> = inputs.iter().map(|p| checksum(p)).collect();
    let o = inmf(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.starts_with("error:") && !err.contains("panicked"), "{err}");
    for w in expect {
        assert!(err.contains(w), "{args:?} should mention {w:?}: {err}");
    }
    assert!(files_below(out).is_empty(), "left behind: {:?}", files_below(out));
    let after: Vec<u64> = inputs.iter().map(|p| checksum(p)).collect();
    assert_eq!(before, after, "an input changed");
}

#[test]
fn bad_inputs_exit_2_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let outs = out.to_str().unwrap();
    let genes = names("gene", GENES);
    let counts = two_type_counts(CELLS, GENES, 5);
    let good = dir.path().join("good.h5ad");
    write_h5ad(&good, &names("c", CELLS), &genes, &counts, Encoding::Csr);
    let run = |p: &Path, expect: &[&str]| {
        refused(
            &["run", p.to_str().unwrap(), "--out", outs, "--quiet", "--no-cache"],
            &out,
            &[p],
            expect,
        )
    };

    // Truncated HDF5.
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.h5ad");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    run(&cut, &["cut.h5ad"]);

    // A dataset with the wrong rank, and one with the wrong type.
    let edit = |name: &str, f: &dyn Fn(&hdf5::File)| {
        let p = dir.path().join(name);
        std::fs::copy(&good, &p).unwrap();
        f(&open_rw_unlocked(&p));
        p
    };
    let nnz = counts.iter().filter(|&&v| v != 0.0).count();
    let p = edit("rank.h5ad", &|f| {
        f.unlink("X/indices").unwrap();
        let a = ndarray::Array2::<i32>::zeros((nnz, 1));
        f.group("X")
            .unwrap()
            .new_dataset_builder()
            .with_data(&a)
            .create("indices")
            .unwrap();
    });
    run(&p, &["rank.h5ad", "/X/indices", "dimensions"]);
    let p = edit("dtype.h5ad", &|f| {
        f.unlink("X/indptr").unwrap();
        f.group("X")
            .unwrap()
            .new_dataset_builder()
            .with_data(&vec![0.5f64; CELLS + 1])
            .create("indptr")
            .unwrap();
    });
    run(&p, &["dtype.h5ad", "/X/indptr", "data type"]);

    // indptr not ending at nnz; not monotone; an index out of range.
    let ptr: Vec<i64> = hdf5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .open(&good)
        .unwrap()
        .dataset("X/indptr")
        .unwrap()
        .read_raw()
        .unwrap();
    let p = edit("end.h5ad", &|f| {
        let mut v = ptr.clone();
        *v.last_mut().unwrap() -= 2;
        f.dataset("X/indptr").unwrap().write_raw(&v).unwrap();
    });
    run(&p, &["end.h5ad", "/X/indptr"]);
    let p = edit("mono.h5ad", &|f| {
        let mut v = ptr.clone();
        v[10] = v[12] + 1;
        f.dataset("X/indptr").unwrap().write_raw(&v).unwrap();
    });
    run(&p, &["mono.h5ad", "/X/indptr", "cell 1"]);
    let p = edit("index.h5ad", &|f| {
        let mut v: Vec<i32> = f.dataset("X/indices").unwrap().read_raw().unwrap();
        v[5] = GENES as i32 + 3;
        f.dataset("X/indices").unwrap().write_raw(&v).unwrap();
    });
    run(&p, &["index.h5ad", "/X/indices", "gene index 27"]);

    // A 10x file with only antibody features.
    let p = dir.path().join("adt.h5");
    write_10x(
        &p,
        &counts,
        &genes,
        &names("c", CELLS),
        &vec!["Antibody Capture"; GENES],
    );
    run(&p, &["adt.h5", "Antibody Capture", "Gene Expression"]);

    // An MTX whose header lies about its size: no output, inputs intact.
    let mtx = dir.path().join("mtx");
    write_mtx(&mtx, &counts, &genes, &names("c", CELLS), false, false);
    let m = mtx.join("matrix.mtx");
    let text = std::fs::read_to_string(&m).unwrap();
    let text = text.replacen(
        &format!("{GENES} {CELLS} {nnz}"),
        &format!("{GENES} {CELLS} {}", nnz + 4),
        1,
    );
    std::fs::write(&m, text).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let target = out.join("x.h5ad");
    let files: Vec<PathBuf> = files_below(&mtx);
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    refused(
        &["import", mtx.to_str().unwrap(), "--out", target.to_str().unwrap()],
        &out,
        &refs,
        &["matrix.mtx", "header"],
    );
    // Sizes that disagree with the barcodes: named with the line.
    let text = std::fs::read_to_string(&m).unwrap().replacen(
        &format!("{GENES} {CELLS} "),
        &format!("{GENES} {} ", CELLS + 1),
        1,
    );
    std::fs::write(&m, text).unwrap();
    refused(
        &["import", mtx.to_str().unwrap(), "--out", target.to_str().unwrap()],
        &out,
        &refs,
        &["matrix.mtx line 2", "barcodes"],
    );
}

/// Adds a categorical obs column (anndata ≥ 0.8 layout) to an .h5ad.
fn add_categorical(path: &Path, name: &str, categories: &[&str], codes: &[i8]) {
    let f = open_rw_unlocked(path);
    let g = f.group("obs").unwrap().create_group(name).unwrap();
    let attr = |loc: &hdf5::Location, k: &str, v: &str| {
        loc.new_attr::<VarLenUnicode>()
            .shape(())
            .create(k)
            .unwrap()
            .write_scalar(&v.parse::<VarLenUnicode>().unwrap())
            .unwrap();
    };
    attr(&g, "encoding-type", "categorical");
    attr(&g, "encoding-version", "0.2.0");
    g.new_attr::<bool>()
        .shape(())
        .create("ordered")
        .unwrap()
        .write_scalar(&false)
        .unwrap();
    let cats: Vec<String> = categories.iter().map(|s| s.to_string()).collect();
    g.new_dataset_builder()
        .with_data(&vlen(&cats))
        .create("categories")
        .unwrap();
    g.new_dataset_builder().with_data(codes).create("codes").unwrap();
    let obs = f.group("obs").unwrap();
    obs.delete_attr("column-order").unwrap();
    obs.new_attr_builder()
        .with_data(&vlen(&[name.to_string()]))
        .create("column-order")
        .unwrap();
}

#[test]
fn obs_columns_are_carried_to_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let genes = names("gene", GENES);
    let a = dir.path().join("a.h5ad");
    let mut ca = two_type_counts(CELLS, GENES, 11);
    for v in &mut ca[7 * GENES..8 * GENES] {
        *v = 0.0; // cell 7 has no counts: dropped, labels must stay in sync
    }
    write_h5ad(&a, &names("a", CELLS), &genes, &ca, Encoding::Csr);
    let codes_a: Vec<i8> = (0..CELLS).map(|c| (c % 2) as i8).collect();
    add_categorical(&a, "cell_type", &["B", "T"], &codes_a);
    let b = dir.path().join("b.h5ad");
    write_h5ad(
        &b,
        &names("b", CELLS),
        &genes,
        &two_type_counts(CELLS, GENES, 12),
        Encoding::Csc,
    );
    let codes_b: Vec<i8> = (0..CELLS).map(|c| if c % 3 == 0 { 0 } else { 1 }).collect();
    add_categorical(&b, "cell_type", &["NK", "T"], &codes_b);
    let c = dir.path().join("c.loom");
    write_loom(&c, &two_type_counts(CELLS, GENES, 13), &genes, &names("c", CELLS));
    {
        let f = open_rw_unlocked(&c);
        f.group("col_attrs")
            .unwrap()
            .new_dataset_builder()
            .with_data(&vlen(&names("donor", CELLS)))
            .create("donor")
            .unwrap();
    }
    let out = dir.path().join("out");
    let o = inmf(&[
        "run",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        c.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--k",
        "2",
        "--epochs",
        "1",
        "--batch-size",
        "60",
        "--no-cache",
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = hdf5::File::open(out.join("result.h5ad")).unwrap();
    let strings = |p: &str| -> Vec<String> {
        r.dataset(p)
            .unwrap()
            .read_raw::<VarLenUnicode>()
            .unwrap()
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect()
    };
    assert_eq!(strings("obs/cell_type/categories"), ["B", "T", "NK"]);
    let codes: Vec<i32> = r
        .dataset("obs/cell_type/codes")
        .unwrap()
        .read_raw::<i8>()
        .unwrap()
        .into_iter()
        .map(i32::from)
        .collect();
    let dataset: Vec<i8> = r.dataset("obs/dataset/codes").unwrap().read_raw().unwrap();
    let cell_index: Vec<i64> = r.dataset("obs/cell_index").unwrap().read_raw().unwrap();
    let donor = strings("obs/donor");
    let obs_names = strings("obs/_index");
    assert_eq!(codes.len(), obs_names.len());
    assert!(
        !obs_names.contains(&"a7".to_string()),
        "the empty cell is dropped"
    );
    for i in 0..codes.len() {
        let row = cell_index[i] as usize;
        let (want_code, want_donor) = match dataset[i] {
            0 => (codes_a[row] as i32, String::new()),
            1 => (if codes_b[row] == 0 { 2 } else { 1 }, String::new()),
            _ => (-1, format!("donor{row}")),
        };
        assert_eq!(
            (codes[i], &donor[i]),
            (want_code, &want_donor),
            "obs row {i} ({})",
            obs_names[i]
        );
    }
}
