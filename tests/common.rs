//! Helpers shared by the end-to-end tests: run the binary, write tiny
//! AnnData fixtures (valid and deliberately broken) with the hdf5 crate.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hdf5::types::VarLenUnicode;
use ndarray::Array1;

/// Runs `inmf ARGS`, returning its output.
pub fn inmf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inmf"))
        .args(args)
        .output()
        .expect("the inmf binary runs")
}

/// Starts `inmf ARGS` (a run that writes `OUT/checkpoint.h5`), kills it
/// once its first checkpoint exists (and `settle` later), and returns the
/// killed process's id. Fails if no checkpoint appeared or the run ended
/// before the kill.
pub fn kill_after_first_checkpoint(args: &[&str], out: &Path, settle: Duration) -> u32 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_inmf"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the inmf binary runs");
    let ck = out.join("checkpoint.h5");
    let start = Instant::now();
    while !ck.exists() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(settle);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ck.exists(), "no checkpoint was written");
    assert!(!out.join("model.h5").exists(), "the run ended before the kill");
    child.id()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every file below `dir` (recursively), sorted.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_below(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn strings(v: &[String]) -> Array1<VarLenUnicode> {
    v.iter().map(|s| s.parse::<VarLenUnicode>().unwrap()).collect()
}

fn attr_str(loc: &hdf5::Location, name: &str, value: &str) {
    loc.new_attr::<VarLenUnicode>()
        .shape(())
        .create(name)
        .unwrap()
        .write_scalar(&value.parse::<VarLenUnicode>().unwrap())
        .unwrap();
}

fn dataframe(f: &hdf5::File, group: &str, index: &[String]) {
    let g = f.create_group(group).unwrap();
    attr_str(&g, "encoding-type", "dataframe");
    attr_str(&g, "encoding-version", "0.2.0");
    attr_str(&g, "_index", "_index");
    g.new_attr::<VarLenUnicode>()
        .shape(0)
        .create("column-order")
        .unwrap();
    let d = g
        .new_dataset_builder()
        .with_data(&strings(index))
        .create("_index")
        .unwrap();
    attr_str(&d, "encoding-type", "string-array");
    attr_str(&d, "encoding-version", "0.2.0");
}

/// Creates an HDF5 file without HDF5's file lock. Tests run in threads
/// that also spawn `inmf` processes; a child forked while a fixture is
/// being written inherits its descriptor and, with it, the writer's
/// exclusive lock, so later opens of the finished fixture would fail with
/// "unable to lock file" while that child runs.
pub fn create_unlocked(path: &Path) -> hdf5::File {
    hdf5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .create(path)
        .unwrap()
}

/// Opens an HDF5 file read-write without the lock (see [`create_unlocked`]).
pub fn open_rw_unlocked(path: &Path) -> hdf5::File {
    hdf5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .open_rw(path)
        .unwrap()
}

/// How the X of a fixture is laid out.
pub enum Encoding {
    /// CSR cells × genes (supported).
    Csr,
    /// CSC (not supported by `inmf run` yet).
    Csc,
}

/// Writes a small .h5ad with the given dense cells × genes counts.
pub fn write_h5ad(path: &Path, cells: &[String], genes: &[String], dense: &[f32], enc: Encoding) {
    let (n, m) = (cells.len(), genes.len());
    assert_eq!(dense.len(), n * m);
    let f = create_unlocked(path);
    attr_str(&f, "encoding-type", "anndata");
    attr_str(&f, "encoding-version", "0.1.0");
    dataframe(&f, "obs", cells);
    dataframe(&f, "var", genes);
    let (outer, inner, enc_name) = match enc {
        Encoding::Csr => (n, m, "csr_matrix"),
        Encoding::Csc => (m, n, "csc_matrix"),
    };
    let (mut indptr, mut indices, mut data) = (vec![0i64], Vec::<i32>::new(), Vec::<f32>::new());
    for o in 0..outer {
        for i in 0..inner {
            let v = match enc {
                Encoding::Csr => dense[o * m + i],
                Encoding::Csc => dense[i * m + o],
            };
            if v != 0.0 {
                indices.push(i as i32);
                data.push(v);
            }
        }
        indptr.push(data.len() as i64);
    }
    let x = f.create_group("X").unwrap();
    attr_str(&x, "encoding-type", enc_name);
    attr_str(&x, "encoding-version", "0.1.0");
    x.new_attr::<i64>()
        .shape(2)
        .create("shape")
        .unwrap()
        .write(&[n as i64, m as i64])
        .unwrap();
    x.new_dataset_builder()
        .with_data(&Array1::from(data))
        .create("data")
        .unwrap();
    x.new_dataset_builder()
        .with_data(&Array1::from(indices))
        .create("indices")
        .unwrap();
    x.new_dataset_builder()
        .with_data(&Array1::from(indptr))
        .create("indptr")
        .unwrap();
}

/// Names `prefix0..prefix{n-1}`.
pub fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Deterministic counts (cells × genes) with two cell types whose gene
/// means differ strongly, so selectGenes keeps many genes.
pub fn two_type_counts(n_cells: usize, n_genes: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f64) / (1u64 << 31) as f64
    };
    let mut out = Vec::with_capacity(n_cells * n_genes);
    for c in 0..n_cells {
        let t = c % 2;
        for g in 0..n_genes {
            let mean = if (g + t) % 2 == 0 { 6.0 } else { 0.3 };
            // A cheap overdispersed count: floor(mean × Exp(1)).
            let u: f64 = next();
            out.push((mean * -(1.0 - u).ln()).floor() as f32);
        }
    }
    out
}

/// Writes a valid two-type .h5ad of `n_cells` × `n_genes` into `dir/name.h5ad`.
pub fn valid_h5ad(dir: &Path, name: &str, n_cells: usize, n_genes: usize, gene_prefix: &str) -> PathBuf {
    let p = dir.join(format!("{name}.h5ad"));
    let counts = two_type_counts(n_cells, n_genes, n_cells as u64);
    write_h5ad(
        &p,
        &names(&format!("{name}_c"), n_cells),
        &names(gene_prefix, n_genes),
        &counts,
        Encoding::Csr,
    );
    p
}
