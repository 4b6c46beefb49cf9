//! `inmf._inmf`: the Rust side of the `inmf` Python package.
//!
//! Thin wrappers over the entry points the `inmf` binary calls —
//! [`inmf_driver::run_online`], [`inmf_driver::add_datasets`],
//! [`inmf_driver::project`] and [`inmf_analysis::quantile_normalize`] with
//! the parameters of `inmf analyze` — so a Python call and the CLI compute
//! the same bits. The package's Python modules (`python/inmf/`) turn
//! AnnData objects into the files these read and the results back into
//! AnnData objects.
//!
//! Each call runs on a thread of its own with the GIL released; the calling
//! thread waits for it and checks for signals every 50 ms, and on Ctrl-C
//! asks the driver to stop ([`inmf_driver::stop`]), waits for the run to
//! unwind and raises `KeyboardInterrupt`. Driver errors become Python
//! exceptions with the CLI's message ([`to_py_err`]).

use std::path::PathBuf;
use std::time::Duration;

use inmf_driver::{AddRequest, DriverError, InputSpec, ProjectRequest, RunConfig, RunRequest, SavedModel};
use pyo3::exceptions::{PyFileNotFoundError, PyKeyboardInterrupt, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

/// mimalloc for this module's Rust allocations (the binary's allocator;
/// see the Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The error's message followed by its causes, `: `-separated, as the CLI
/// prints them (`{:#}` of its error chain).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// The Python exception of a driver error: `KeyboardInterrupt` for a
/// stopped run; `FileNotFoundError` for a missing input; `OSError` for the
/// file system (reading, writing, space, temporaries, the cache);
/// `ValueError` for what the user can fix in the inputs or parameters (the
/// CLI's exit code 2); `RuntimeError` otherwise.
fn to_py_err(e: DriverError) -> PyErr {
    use inmf_reader_errors::*;
    let text = chain(&e);
    match &e {
        DriverError::Interrupted => PyKeyboardInterrupt::new_err(text),
        DriverError::Reader(r) if is_not_found(r) => PyFileNotFoundError::new_err(text),
        DriverError::Reader(r) if is_file_system(r) => PyOSError::new_err(text),
        DriverError::Io { .. } | DriverError::Hdf5 { .. } | DriverError::NoSpace { .. } => {
            PyOSError::new_err(text)
        }
        DriverError::ParameterFile { .. } => PyOSError::new_err(text),
        DriverError::InvalidModel { path, .. } if !path.exists() => PyFileNotFoundError::new_err(text),
        _ if e.is_input_error() => PyValueError::new_err(text),
        _ => PyRuntimeError::new_err(text),
    }
}

/// Which reader errors are about the file system rather than the content.
mod inmf_reader_errors {
    use inmf_reader::ReaderError;

    pub(crate) fn is_not_found(e: &ReaderError) -> bool {
        matches!(e, ReaderError::NotFound { .. })
    }

    pub(crate) fn is_file_system(e: &ReaderError) -> bool {
        matches!(e, ReaderError::Io { .. } | ReaderError::Temp { .. }) || !e.is_input_error()
    }
}

/// Runs `f` on its own thread with the GIL released; Ctrl-C (a pending
/// signal handler raising) asks the driver to stop and re-raises once the
/// run has unwound.
fn interruptible<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, DriverError> + Send + 'static,
{
    inmf_driver::stop::reset();
    let handle = std::thread::Builder::new()
        .name("inmf".into())
        .spawn(f)
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the inmf thread: {e}")))?;
    let mut interrupted: Option<PyErr> = None;
    while !handle.is_finished() {
        py.detach(|| {
            let mut waited = Duration::ZERO;
            while !handle.is_finished() && waited < Duration::from_millis(50) {
                std::thread::sleep(Duration::from_millis(2));
                waited += Duration::from_millis(2);
            }
        });
        if interrupted.is_none() {
            if let Err(e) = py.check_signals() {
                inmf_driver::stop::request();
                interrupted = Some(e);
            }
        }
    }
    let outcome = handle
        .join()
        .map_err(|_| PyRuntimeError::new_err("internal error: the inmf thread panicked"))?;
    inmf_driver::stop::reset();
    match (interrupted, outcome) {
        // Stopped: KeyboardInterrupt with the driver's word on the outputs.
        (Some(_), Err(e @ DriverError::Interrupted)) => Err(to_py_err(e)),
        // The signal's own exception (the run had finished or failed anyway).
        (Some(e), _) => Err(e),
        (None, outcome) => outcome.map_err(to_py_err),
    }
}

/// The CLI's configuration with the options of a Python call.
#[allow(clippy::too_many_arguments)]
fn config(
    epochs: usize,
    batch_size: Option<usize>,
    seed: u64,
    threads: Option<usize>,
    matrix: String,
    cache: bool,
    cache_dir: Option<PathBuf>,
) -> RunConfig {
    let mut c = RunConfig::default();
    c.model.epochs = epochs;
    c.model.batch_size = batch_size;
    c.model.seed = seed;
    c.runtime.threads = threads.unwrap_or(0);
    c.preprocess.matrix = matrix;
    c.runtime.cache = cache;
    c.runtime.cache_dir = cache_dir;
    c
}

fn specs(inputs: Vec<(String, PathBuf)>) -> Vec<InputSpec> {
    inputs
        .into_iter()
        .map(|(name, path)| InputSpec { name, path })
        .collect()
}

/// What `inmf run` and `inmf add` report, as a dict.
fn run_summary<'py>(py: Python<'py>, s: &inmf_driver::RunSummary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("datasets", s.datasets.clone())?;
    d.set_item("genes", s.genes)?;
    d.set_item("k", s.k)?;
    d.set_item("lambda", s.lambda)?;
    d.set_item("iterations", s.iterations)?;
    d.set_item("batch_size", s.batch_size)?;
    d.set_item("batch_size_chosen", s.batch_size_chosen)?;
    d.set_item("epochs", s.epochs)?;
    d.set_item("objective_per_epoch", s.epoch_objective.clone())?;
    d.set_item("objective", s.final_objective.total())?;
    d.set_item("seconds", s.seconds.to_vec())?;
    d.set_item("peak_rss_bytes", s.peak_rss_bytes)?;
    d.set_item("text", s.to_string())?;
    Ok(d)
}

/// `inmf run`: factorizes the `(name, path)` inputs together and writes
/// `out/model.h5` and `out/result.h5ad`; returns the run's summary.
#[pyfunction]
#[pyo3(signature = (inputs, out, *, k=20, lam=5.0, epochs=5, batch_size=None, seed=1, threads=None,
                    matrix="X".to_string(), n_genes=0, cache=true, cache_dir=None, quiet=true))]
#[allow(clippy::too_many_arguments)]
fn run<'py>(
    py: Python<'py>,
    inputs: Vec<(String, PathBuf)>,
    out: PathBuf,
    k: usize,
    lam: f64,
    epochs: usize,
    batch_size: Option<usize>,
    seed: u64,
    threads: Option<usize>,
    matrix: String,
    n_genes: usize,
    cache: bool,
    cache_dir: Option<PathBuf>,
    quiet: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let mut c = config(epochs, batch_size, seed, threads, matrix, cache, cache_dir);
    c.model.k = k;
    c.model.lambda = lam;
    c.preprocess.n_genes = n_genes;
    let req = RunRequest {
        inputs: specs(inputs),
        out_dir: out,
        config: c,
        quiet,
        resume: false,
        measure_bound: false,
    };
    let s = interruptible(py, move || inmf_driver::run_online(&req))?;
    run_summary(py, &s)
}

/// `inmf add`: learns the `(name, path)` inputs into the model of
/// `model_dir` and writes `out/model.h5` and `out/result.h5ad`.
#[pyfunction]
#[pyo3(signature = (model_dir, inputs, out, *, epochs=5, batch_size=None, seed=1, threads=None,
                    matrix="X".to_string(), new_only=false, cache=true, cache_dir=None, quiet=true))]
#[allow(clippy::too_many_arguments)]
fn add<'py>(
    py: Python<'py>,
    model_dir: PathBuf,
    inputs: Vec<(String, PathBuf)>,
    out: PathBuf,
    epochs: usize,
    batch_size: Option<usize>,
    seed: u64,
    threads: Option<usize>,
    matrix: String,
    new_only: bool,
    cache: bool,
    cache_dir: Option<PathBuf>,
    quiet: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let req = AddRequest {
        model_dir,
        inputs: specs(inputs),
        out_dir: out,
        config: config(epochs, batch_size, seed, threads, matrix, cache, cache_dir),
        new_only,
        quiet,
        resume: false,
    };
    let s = interruptible(py, move || inmf_driver::add_datasets(&req))?;
    run_summary(py, &s)
}

/// `inmf project`: solves H of the `(name, path)` queries on the model of
/// `model_dir` and writes `out/result.h5ad`; returns the summary's text.
#[pyfunction]
#[pyo3(signature = (model_dir, inputs, out, *, threads=None, matrix="X".to_string(), quiet=true))]
fn project(
    py: Python<'_>,
    model_dir: PathBuf,
    inputs: Vec<(String, PathBuf)>,
    out: PathBuf,
    threads: Option<usize>,
    matrix: String,
    quiet: bool,
) -> PyResult<String> {
    let req = ProjectRequest {
        model_dir,
        inputs: specs(inputs),
        out_dir: out,
        config: config(5, None, 1, threads, matrix, false, None),
        quiet,
        mapping: inmf_driver::MappingOptions::default(),
    };
    let s = interruptible(py, move || inmf_driver::project(&req))?;
    Ok(s.to_string())
}

/// What [`load_model`] returns: genes, dataset names, K, λ, and W as
/// little-endian f64 bytes (genes × K).
type ModelParts = (Vec<String>, Vec<String>, usize, f64, Py<PyBytes>);

/// The model file at `path` ([`ModelParts`]).
#[pyfunction]
fn load_model(py: Python<'_>, path: PathBuf) -> PyResult<ModelParts> {
    let saved = py.detach(|| SavedModel::load(&path)).map_err(to_py_err)?;
    let w = &saved.model.w;
    let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    Ok((
        saved.genes.clone(),
        saved.datasets.iter().map(|d| d.name.clone()).collect(),
        saved.params.k,
        saved.params.lambda,
        PyBytes::new(py, &bytes).unbind(),
    ))
}

/// Quantile normalization of H as `inmf analyze` does it (which reads H in
/// single precision): `h` is cells × K little-endian f32 bytes, `datasets` one u32 code per cell (little
/// endian) in `0..n_datasets`; returns the normalized H as f32 bytes and
/// the reference dataset.
#[pyfunction]
#[pyo3(signature = (h, n_cells, k, datasets, n_datasets, *, reference=None, seed=1, threads=None))]
#[allow(clippy::too_many_arguments)]
fn quantile_norm(
    py: Python<'_>,
    h: &[u8],
    n_cells: usize,
    k: usize,
    datasets: &[u8],
    n_datasets: usize,
    reference: Option<usize>,
    seed: u64,
    threads: Option<usize>,
) -> PyResult<(Py<PyBytes>, usize)> {
    if h.len() != n_cells * k * 4 || datasets.len() != n_cells * 4 {
        return Err(PyValueError::new_err(format!(
            "H of {n_cells} cells × {k} factors needs {} bytes and the dataset codes {} bytes; got {} and {}",
            n_cells * k * 4,
            n_cells * 4,
            h.len(),
            datasets.len()
        )));
    }
    let values: Vec<f32> = h
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    let codes: Vec<u32> = datasets
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    let h = ndarray::Array2::from_shape_vec((n_cells, k), values)
        .map_err(|e| PyValueError::new_err(format!("H: {e}")))?;
    let mut params = inmf_analysis::AnalysisParams::new(seed).quantile;
    params.reference = reference;
    let threads = threads.unwrap_or(0);
    let out = py.detach(move || {
        let pool = rayon_pool(threads)?;
        pool.install(|| inmf_analysis::quantile_normalize(h.view(), &codes, n_datasets, &params))
            .map_err(|e| PyValueError::new_err(chain(&e)))
    })?;
    let bytes: Vec<u8> = out.h.iter().flat_map(|v| v.to_le_bytes()).collect();
    Ok((PyBytes::new(py, &bytes).unbind(), out.reference))
}

fn rayon_pool(threads: usize) -> PyResult<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| PyValueError::new_err(format!("cannot start {threads} threads: {e}")))
}

/// The Rust side of the `inmf` package.
#[pymodule]
fn _inmf(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(add, m)?)?;
    m.add_function(wrap_pyfunction!(project, m)?)?;
    m.add_function(wrap_pyfunction!(load_model, m)?)?;
    m.add_function(wrap_pyfunction!(quantile_norm, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
