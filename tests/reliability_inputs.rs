//! End to end: compressed inputs (LZF read; other filters named), 10x feature
//! types and genomes, the gene fraction of `add` / `project`, `--genes` with
//! `--n-genes`, and config or gene-list files that cannot be read.

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use ndarray::Array1;

use crate::common::*;

/// Runs `inmf ARGS` expecting exit code 2, one `error:` message naming every
/// word of `expect`, no panic, and no file under `out`. Returns stderr.
fn refused(args: &[&str], out: &Path, expect: &[&str]) -> String {
    let o = inmf(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.starts_with("error:") && !err.contains("panicked"), "{err}");
    for w in expect {
        assert!(err.contains(w), "{args:?} should mention {w:?}: {err}");
    }
    assert!(files_below(out).is_empty(), "left behind: {:?}", files_below(out));
    err
}

/// Runs `inmf ARGS` expecting success; returns the JSON summary on stdout
/// (when `--json` is among the arguments) and stderr.
fn ok(args: &[&str]) -> (serde_json::Value, String) {
    let o = inmf(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
    let json = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (json, err)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Whether every dataset of a fixture is LZF-compressed (chunked, as h5py's
/// `compression="lzf"` writes it) or stored plainly.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Storage {
    Plain,
    Lzf,
}

fn dataset<T: hdf5::H5Type>(g: &hdf5::Group, name: &str, v: &[T], s: Storage) -> hdf5::Dataset {
    let b = g.new_dataset_builder().with_data(v);
    let b = match s {
        Storage::Lzf if !v.is_empty() => b.chunk(v.len().clamp(1, 16)).lzf(),
        _ => b,
    };
    b.create(name).unwrap()
}

fn vlen(v: &[String]) -> Vec<VarLenUnicode> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

fn attr(loc: &hdf5::Location, name: &str, value: &str) {
    loc.new_attr::<VarLenUnicode>()
        .shape(())
        .create(name)
        .unwrap()
        .write_scalar(&value.parse::<VarLenUnicode>().unwrap())
        .unwrap();
}

/// CSR arrays of dense cells × genes counts.
fn csr(counts: &[f32], n_genes: usize) -> (Vec<i64>, Vec<i32>, Vec<f32>) {
    let (mut indptr, mut indices, mut data) = (vec![0i64], Vec::new(), Vec::new());
    for row in counts.chunks(n_genes) {
        for (g, &v) in row.iter().enumerate() {
            if v != 0.0 {
                indices.push(g as i32);
                data.push(v);
            }
        }
        indptr.push(data.len() as i64);
    }
    (indptr, indices, data)
}

/// Writes an AnnData .h5ad (CSR X, obs and var indexes) of dense counts.
fn write_h5ad(path: &Path, cells: &[String], genes: &[String], counts: &[f32], s: Storage) {
    let f = create_unlocked(path);
    attr(&f, "encoding-type", "anndata");
    attr(&f, "encoding-version", "0.1.0");
    for (name, index) in [("obs", cells), ("var", genes)] {
        let g = f.create_group(name).unwrap();
        attr(&g, "encoding-type", "dataframe");
        attr(&g, "encoding-version", "0.2.0");
        attr(&g, "_index", "_index");
        dataset(&g, "_index", &vlen(index), s);
    }
    let (indptr, indices, data) = csr(counts, genes.len());
    let x = f.create_group("X").unwrap();
    attr(&x, "encoding-type", "csr_matrix");
    attr(&x, "encoding-version", "0.1.0");
    x.new_attr::<i64>()
        .shape(2)
        .create("shape")
        .unwrap()
        .write(&Array1::from(vec![cells.len() as i64, genes.len() as i64]))
        .unwrap();
    dataset(&x, "data", &data, s);
    dataset(&x, "indices", &indices, s);
    dataset(&x, "indptr", &indptr, s);
}

/// Writes a Cell Ranger 3 .h5 of dense counts; `features` gives each gene's
/// (feature type, genome).
fn write_10x(
    path: &Path,
    cells: &[String],
    genes: &[String],
    counts: &[f32],
    features: &[(&str, &str)],
    s: Storage,
) {
    let (indptr, indices, data) = csr(counts, genes.len());
    let data: Vec<i32> = data.iter().map(|&v| v as i32).collect();
    let f = create_unlocked(path);
    let m = f.create_group("matrix").unwrap();
    dataset(&m, "data", &data, s);
    dataset(&m, "indices", &indices, s);
    dataset(&m, "indptr", &indptr, s);
    dataset(&m, "shape", &[genes.len() as i32, cells.len() as i32], s);
    dataset(&m, "barcodes", &vlen(cells), s);
    let fe = m.create_group("features").unwrap();
    dataset(&fe, "name", &vlen(genes), s);
    let ids: Vec<String> = (0..genes.len()).map(|i| format!("ENSG{i}")).collect();
    dataset(&fe, "id", &vlen(&ids), s);
    let types: Vec<String> = features.iter().map(|f| f.0.to_string()).collect();
    dataset(&fe, "feature_type", &vlen(&types), s);
    let genomes: Vec<String> = features.iter().map(|f| f.1.to_string()).collect();
    dataset(&fe, "genome", &vlen(&genomes), s);
}

/// Rewrites, in the file's bytes, the id of every LZF entry of a filter
/// pipeline (id 32000, named "lzf") to `id`: the datasets then use a filter
/// this build has no decoder for.
fn relabel_lzf_filter(path: &Path, id: u16) {
    let mut bytes = std::fs::read(path).unwrap();
    let mut n = 0;
    for at in 8..bytes.len().saturating_sub(4) {
        // A pipeline entry: id (u16), name length, flags, value count, name.
        if &bytes[at..at + 4] == b"lzf\0" && bytes[at - 8..at - 6] == 32000u16.to_le_bytes() {
            bytes[at - 8..at - 6].copy_from_slice(&id.to_le_bytes());
            n += 1;
        }
    }
    assert!(n > 0, "no LZF pipeline entry in {}", path.display());
    std::fs::write(path, bytes).unwrap();
}

const CELLS: usize = 120;
const GENES: usize = 60;

/// A .h5ad and a 10x .h5 of the same kind of counts, stored as `s`, in `dir`.
fn pair(dir: &Path, s: Storage) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let genes = names("gene", GENES);
    let a = dir.join("a.h5ad");
    write_h5ad(
        &a,
        &names("a", CELLS),
        &genes,
        &two_type_counts(CELLS, GENES, 1),
        s,
    );
    let b = dir.join("b.h5");
    let features = vec![("Gene Expression", "GRCh38"); GENES];
    write_10x(
        &b,
        &names("b", CELLS),
        &genes,
        &two_type_counts(CELLS, GENES, 2),
        &features,
        s,
    );
    (a, b)
}

const LEARN: [&str; 10] = [
    "--k",
    "3",
    "--epochs",
    "2",
    "--batch-size",
    "100",
    "--seed",
    "3",
    "--no-cache",
    "--json",
];

#[test]
fn lzf_compressed_h5ad_and_10x_are_read_like_uncompressed_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = pair(&d.join("plain"), Storage::Plain);
    let (la, lb) = pair(&d.join("lzf"), Storage::Lzf);
    let run = |a: &Path, b: &Path, out: &str| {
        let (x, y) = (format!("A={}", p(a)), format!("B={}", p(b)));
        let out = d.join(out);
        let mut args = vec!["run", &x, &y, "--out", p(&out)];
        args.extend(LEARN);
        ok(&args).0
    };
    let plain = run(&a, &b, "o1");
    let lzf = run(&la, &lb, "o2");
    assert_eq!(plain["genes_selected"], lzf["genes_selected"]);
    assert_eq!(plain["cells"], lzf["cells"]);
    assert!(plain["final_objective"]["total"].as_f64().unwrap() > 0.0);
    assert_eq!(
        plain["final_objective"], lzf["final_objective"],
        "same data, same result"
    );

    // inspect shows the compression and the same content.
    for (plain, lzf) in [(&a, &la), (&b, &lb)] {
        let o = inmf(&["inspect", p(lzf)]);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(text.contains("lzf"), "{text}");
        let shape = |t: &str| t.lines().find(|l| l.starts_with("shape")).map(str::to_owned);
        let plain_text = String::from_utf8_lossy(&inmf(&["inspect", p(plain)]).stdout).into_owned();
        assert_eq!(shape(&text), shape(&plain_text));
        assert!(
            shape(&text).is_some_and(|s| s.contains("120 cells x 60 genes")),
            "{text}"
        );
    }
}

#[test]
fn a_compression_filter_without_decoder_is_named_not_called_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = pair(&d.join("in"), Storage::Lzf);
    relabel_lzf_filter(&a, 32015);
    relabel_lzf_filter(&b, 32008);
    let out = d.join("out");
    for (file, filter) in [(&a, "filter 32015 (zstd)"), (&b, "filter 32008 (bitshuffle)")] {
        let err = refused(
            &["run", p(file), "--out", p(&out), "--quiet", "--no-cache"],
            &out,
            &[p(file), filter, "cannot decode", "compression='gzip'"],
        );
        assert!(!err.contains("corrupt") && !err.contains("plugins"), "{err}");
        // The HDF5 object is named.
        assert!(
            err.contains("`/var/_index`") || err.contains("`/matrix/"),
            "{err}"
        );
        let err = refused(&["inspect", p(file)], &out, &[filter]);
        assert!(!err.contains("corrupt"), "{err}");
    }
}

#[test]
fn tenx_file_of_antibody_features_only_says_what_inmf_reads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = d.join("onlyab.h5");
    let features = vec![("Antibody Capture", "GRCh38"); GENES];
    write_10x(
        &f,
        &names("c", CELLS),
        &names("CD", GENES),
        &two_type_counts(CELLS, GENES, 4),
        &features,
        Storage::Plain,
    );
    let out = d.join("out");
    let err = refused(
        &["run", p(&f), "--out", p(&out), "--quiet", "--no-cache"],
        &out,
        &[
            "onlyab.h5",
            "`Antibody Capture`",
            "\"Gene Expression\"",
            "antibody-capture",
        ],
    );
    assert!(!err.contains("in the options"), "{err}");
}

#[test]
fn genome_option_chooses_among_several_and_leaves_single_genome_files_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Two genomes: human genes first, then mouse genes named like the other file's.
    let two = d.join("two.h5");
    let mut genes = names("GRCh38_gene", GENES);
    genes.extend(names("gene", GENES));
    let mut features = vec![("Gene Expression", "GRCh38"); GENES];
    features.extend(vec![("Gene Expression", "mm10"); GENES]);
    let counts = two_type_counts(CELLS, 2 * GENES, 5);
    write_10x(
        &two,
        &names("t", CELLS),
        &genes,
        &counts,
        &features,
        Storage::Plain,
    );
    let one = d.join("one.h5");
    let features = vec![("Gene Expression", "simulated"); GENES];
    write_10x(
        &one,
        &names("o", CELLS),
        &names("gene", GENES),
        &two_type_counts(CELLS, GENES, 6),
        &features,
        Storage::Plain,
    );

    let out = d.join("mouse");
    let mut args = vec!["run", p(&two), p(&one), "--out", p(&out), "--genome", "mm10"];
    args.extend(LEARN);
    let (s, err) = ok(&args);
    assert_eq!(s["cells"], 2 * CELLS);
    assert!(
        err.contains("warning:") && err.contains("one.h5") && err.contains("single genome \"simulated\""),
        "{err}"
    );
    // Only the mouse genes are read from the two-genome file; the other is read whole.
    let inspect = |f: &Path| {
        let o = inmf(&["inspect", p(f), "--genome", "mm10"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let text = inspect(&two);
    assert!(
        text.contains("120 cells x 60 genes") && text.contains("60 genome GRCh38"),
        "{text}"
    );
    let text = inspect(&one);
    assert!(
        text.contains("120 cells x 60 genes") && text.contains("read as it is"),
        "{text}"
    );

    let out = d.join("none");
    let err = refused(
        &[
            "run",
            p(&two),
            p(&one),
            "--out",
            p(&out),
            "--quiet",
            "--no-cache",
            "--genome",
            "hg99",
        ],
        &out,
        &[
            "two.h5",
            "`GRCh38`",
            "`mm10`",
            "\"hg99\"",
            "--genome NAME",
            "/matrix/features/genome",
        ],
    );
    assert!(!err.contains("feature_type"), "{err}");
}

/// A model of genes `gene0..gene99` (given as a list), in `dir/model`.
fn model(dir: &Path) -> PathBuf {
    let a = valid_h5ad(dir, "ref", 200, 100, "gene");
    let list = dir.join("genes.txt");
    std::fs::write(&list, names("gene", 100).join("\n")).unwrap();
    let m = dir.join("model");
    let mut args = vec!["run", p(&a), "--out", p(&m), "--genes", p(&list)];
    args.extend(LEARN);
    ok(&args);
    m
}

#[test]
fn gene_fraction_of_add_and_project_is_a_documented_config_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d);
    // 40 of the model's 100 genes, and 60 others.
    let mut genes = names("gene", 40);
    genes.extend(names("other", 60));
    let c = d.join("subset.h5ad");
    common_write(&c, &names("s", 150), &genes, &two_type_counts(150, 100, 9));
    let cs = format!("C={}", p(&c));
    let quick = ["--epochs", "1", "--batch-size", "100", "--quiet", "--no-cache"];

    for cmd in ["add", "project"] {
        let out = d.join(format!("{cmd}-refused"));
        let mut args = vec![cmd, p(&m), &cs, "--out", p(&out)];
        args.extend(if cmd == "add" { &quick[..] } else { &quick[4..] });
        let err = refused(
            &args,
            &out,
            &[
                "subset.h5ad",
                "lacks 60 of the 100",
                "40.0 %",
                "min_genes_present = 0.5",
                "[preprocess]",
                "--config",
            ],
        );
        assert!(!err.contains("allowed fraction"), "{err}");
    }

    // The key lowers the fraction; a value outside [0, 1] is refused.
    let cfg = d.join("low.toml");
    std::fs::write(&cfg, "[preprocess]\nmin_genes_present = 0.2\n").unwrap();
    let bad = d.join("bad.toml");
    std::fs::write(&bad, "[preprocess]\nmin_genes_present = 1.5\n").unwrap();
    for cmd in ["add", "project"] {
        let out = d.join(format!("{cmd}-ok"));
        let mut args = vec![cmd, p(&m), &cs, "--out", p(&out), "--config", p(&cfg)];
        args.extend(if cmd == "add" { &quick[..] } else { &quick[4..] });
        ok(&args);
        assert!(out.join("result.h5ad").exists());
        let out = d.join(format!("{cmd}-bad"));
        args[4] = p(&out);
        args[6] = p(&bad);
        refused(&args, &out, &["min_genes_present = 1.5", "[0, 1]"]);
    }
}

/// The common AnnData writer (plain storage).
fn common_write(path: &Path, cells: &[String], genes: &[String], counts: &[f32]) {
    crate::common::write_h5ad(path, cells, genes, counts, Encoding::Csr);
}

#[test]
fn genes_and_n_genes_exclude_each_other_wherever_they_are_given() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = valid_h5ad(d, "a", 100, 50, "gene");
    let list = d.join("genes.txt");
    std::fs::write(&list, names("gene", 50).join("\n")).unwrap();
    let out = d.join("out");
    let base = ["run", p(&a), "--out", p(&out), "--quiet", "--no-cache"];

    // Both on the command line (also for `factor`).
    let mut args = base.to_vec();
    args.extend(["--genes", p(&list), "--n-genes", "20"]);
    refused(&args, &out, &["--n-genes", "--genes"]);
    let factor = [
        "factor",
        "--method",
        "inmf-hals",
        p(&a),
        "--out",
        p(&out),
        "--quiet",
        "--genes",
        p(&list),
        "--n-genes",
        "20",
    ];
    refused(&factor, &out, &["--n-genes", "--genes"]);

    // One from the configuration, the other from the command line, or both from it.
    let cfg_list = d.join("list.toml");
    std::fs::write(&cfg_list, format!("[preprocess]\ngenes_file = {:?}\n", p(&list))).unwrap();
    let cfg_n = d.join("n.toml");
    std::fs::write(&cfg_n, "[preprocess]\nn_genes = 20\n").unwrap();
    let cfg_both = d.join("both.toml");
    std::fs::write(
        &cfg_both,
        format!("[preprocess]\nn_genes = 20\ngenes_file = {:?}\n", p(&list)),
    )
    .unwrap();
    let cases: [&[&str]; 3] = [
        &["--config", p(&cfg_list), "--n-genes", "20"],
        &["--config", p(&cfg_n), "--genes", p(&list)],
        &["--config", p(&cfg_both)],
    ];
    for extra in cases {
        let mut args = base.to_vec();
        args.extend(extra);
        refused(
            &args,
            &out,
            &["--genes and --n-genes exclude each other", "genes.txt", "n_genes"],
        );
    }
    // Either alone runs.
    let mut args = base.to_vec();
    args.extend([
        "--config",
        p(&cfg_list),
        "--k",
        "2",
        "--epochs",
        "1",
        "--batch-size",
        "50",
    ]);
    ok(&args);
}

#[test]
fn unreadable_config_or_gene_list_is_a_parameter_error_told_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = valid_h5ad(d, "a", 100, 50, "gene");
    let out = d.join("out");
    let base = ["run", p(&a), "--out", p(&out), "--quiet", "--no-cache"];
    let missing = d.join("nope.toml");
    let genes_cfg = d.join("genes.toml");
    std::fs::write(
        &genes_cfg,
        "[preprocess]\ngenes_file = \"/nonexistent/genes.txt\"\n",
    )
    .unwrap();
    let cases: [(Vec<&str>, &str, &str); 4] = [
        (
            vec!["--config", p(&missing)],
            "cannot read the configuration file",
            "No such file or directory",
        ),
        (
            vec!["--config", p(d)],
            "cannot read the configuration file",
            "Is a directory",
        ),
        (
            vec!["--config", p(&genes_cfg)],
            "cannot read the gene list /nonexistent/genes.txt",
            "No such file or directory",
        ),
        (
            vec!["--genes", "/nonexistent/genes.txt"],
            "cannot read the gene list",
            "No such file or directory",
        ),
    ];
    for (extra, what, reason) in cases {
        let mut args = base.to_vec();
        args.extend(extra);
        let err = refused(&args, &out, &[what, reason]);
        assert_eq!(err.matches(reason).count(), 1, "the reason is told once: {err}");
        assert!(!err.contains("os error"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // A failure that is not the input's (the output cannot be created) still
    // tells the operating system's reason once, with exit code 1.
    let blocker = d.join("file");
    std::fs::write(&blocker, "").unwrap();
    let under = blocker.join("out");
    let mut args = vec!["run", p(&a), "--out", p(&under), "--quiet", "--no-cache"];
    args.extend(["--k", "2", "--epochs", "1", "--batch-size", "50"]);
    let o = inmf(&args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("Not a directory").count(), 1, "{err}");
}
