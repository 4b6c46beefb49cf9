//! Every kind of bad input gives a clear error naming the
//! file or parameter, exit code 2, and leaves no output behind.

use std::path::Path;

use crate::common::*;

/// Runs `inmf run` expecting exit code 2, an error mentioning every word of
/// `expect` (case-insensitive), and an output directory without files.
fn assert_refused(args: &[&str], out: &Path, expect: &[&str]) -> String {
    let mut full = vec!["run", "--quiet", "--out", out.to_str().unwrap()];
    full.extend_from_slice(args);
    let o = inmf(&full);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "exit code for {args:?}; stderr:\n{err}");
    assert!(err.starts_with("error:"), "{err}");
    let lower = err.to_lowercase();
    for w in expect {
        assert!(
            lower.contains(&w.to_lowercase()),
            "error for {args:?} should mention {w:?}:\n{err}"
        );
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        files_below(out).is_empty(),
        "files left behind: {:?}",
        files_below(out)
    );
    err
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.h5ad");
    assert_refused(
        &[missing.to_str().unwrap()],
        &dir.path().join("out"),
        &["nope.h5ad"],
    );
}

#[test]
fn not_an_hdf5_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("text.h5ad");
    std::fs::write(&p, "cell,gene,count\n").unwrap();
    assert_refused(
        &[p.to_str().unwrap()],
        &dir.path().join("out"),
        &["text.h5ad", "hdf5"],
    );
}

#[test]
fn h5ad_without_x() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nox.h5ad");
    {
        let f = hdf5::File::create(&p).unwrap();
        f.create_group("obs").unwrap();
        f.create_group("var").unwrap();
    }
    assert_refused(&[p.to_str().unwrap()], &dir.path().join("out"), &["nox.h5ad"]);
}

#[test]
fn unsupported_x_encoding() {
    // CSC and dense X are read; an unknown encoding is not.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("coo.h5ad");
    let counts = two_type_counts(40, 30, 1);
    write_h5ad(&p, &names("c", 40), &names("g", 30), &counts, Encoding::Csc);
    {
        let f = open_rw_unlocked(&p);
        let x = f.group("X").unwrap();
        x.delete_attr("encoding-type").unwrap();
        x.new_attr::<hdf5::types::VarLenUnicode>()
            .shape(())
            .create("encoding-type")
            .unwrap()
            .write_scalar(&"coo_matrix".parse::<hdf5::types::VarLenUnicode>().unwrap())
            .unwrap();
    }
    assert_refused(
        &[p.to_str().unwrap()],
        &dir.path().join("out"),
        &["coo.h5ad", "coo_matrix"],
    );
}

#[test]
fn negative_value() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("neg.h5ad");
    let mut counts = two_type_counts(40, 30, 2);
    counts[5 * 30 + 3] = -2.0;
    write_h5ad(&p, &names("c", 40), &names("g", 30), &counts, Encoding::Csr);
    assert_refused(
        &[p.to_str().unwrap()],
        &dir.path().join("out"),
        &["neg.h5ad", "negative"],
    );
}

#[test]
fn non_finite_value() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nan.h5ad");
    let mut counts = two_type_counts(40, 30, 3);
    counts[7 * 30 + 1] = f32::NAN;
    write_h5ad(&p, &names("c", 40), &names("g", 30), &counts, Encoding::Csr);
    assert_refused(&[p.to_str().unwrap()], &dir.path().join("out"), &["nan.h5ad"]);
}

#[test]
fn datasets_share_no_genes() {
    let dir = tempfile::tempdir().unwrap();
    let a = valid_h5ad(dir.path(), "a", 60, 40, "geneA");
    let b = valid_h5ad(dir.path(), "b", 60, 40, "geneB");
    assert_refused(
        &[a.to_str().unwrap(), b.to_str().unwrap()],
        &dir.path().join("out"),
        &["a.h5ad", "b.h5ad", "genes"],
    );
}

#[test]
fn k_larger_than_selected_genes() {
    let dir = tempfile::tempdir().unwrap();
    let a = valid_h5ad(dir.path(), "a", 200, 30, "g");
    assert_refused(
        &[a.to_str().unwrap(), "--k", "100"],
        &dir.path().join("out"),
        &["K", "genes"],
    );
}

#[test]
fn k_larger_than_a_datasets_cells() {
    let dir = tempfile::tempdir().unwrap();
    let a = valid_h5ad(dir.path(), "a", 200, 60, "g");
    let b = valid_h5ad(dir.path(), "b", 8, 60, "g");
    assert_refused(
        &[a.to_str().unwrap(), b.to_str().unwrap(), "--k", "10"],
        &dir.path().join("out"),
        &["K", "cells"],
    );
}

#[test]
fn mini_batch_gives_a_dataset_no_cells() {
    let dir = tempfile::tempdir().unwrap();
    let a = valid_h5ad(dir.path(), "a", 400, 60, "g");
    let b = valid_h5ad(dir.path(), "b", 12, 60, "g");
    assert_refused(
        &[
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--k",
            "3",
            "--batch-size",
            "10",
        ],
        &dir.path().join("out"),
        &["0 cells", "mini-batch"],
    );
}

#[test]
fn bad_parameter_values() {
    let dir = tempfile::tempdir().unwrap();
    let a = valid_h5ad(dir.path(), "a", 100, 40, "g");
    assert_refused(
        &[a.to_str().unwrap(), "--lambda=-1"],
        &dir.path().join("out"),
        &["lambda"],
    );
    assert_refused(
        &[a.to_str().unwrap(), "--k", "0"],
        &dir.path().join("out"),
        &["K"],
    );
}
