//! Output sets: `model.h5` and `result.h5ad` of one run belong together.
//!
//! Two files cannot be renamed into place in one atomic step, so they are
//! tied instead: `run` and `add` give each output set a fresh id, written
//! into both files before either is renamed (`model.h5` attribute
//! `output_set`, `result.h5ad` `uns['inmf']['output_set']`). A process
//! killed between the two renames leaves a new `result.h5ad` next to the
//! previous `model.h5`; [`check_pair`] finds that the ids differ, and
//! `analyze`, `add` and `project` refuse the pair instead of mixing two
//! runs. Files written before output sets existed carry no id and are
//! accepted as a pair.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hdf5::types::VarLenUnicode;

use crate::error::DriverError;
use crate::output::model::read_output_set;

/// A fresh output-set id: 32 hex digits from the process id, the time and
/// a per-process counter (xxh3-128).
pub(crate) fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(&std::process::id().to_le_bytes());
    bytes.extend_from_slice(&nanos.to_le_bytes());
    bytes.extend_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
}

/// The output-set id stored in a result file: `Some(None)` when it has
/// none, `None` when the file cannot be opened (reading it reports why).
pub(crate) fn result_id(path: &Path) -> Option<Option<String>> {
    let f = hdf5::File::open(path).ok()?;
    let id = f
        .dataset("uns/inmf/output_set")
        .and_then(|d| d.read_scalar::<VarLenUnicode>())
        .ok()
        .map(|s| s.as_str().to_string());
    Some(id)
}

/// Refuses a `model.h5` and `result.h5ad` in `dir` that were not written
/// together (see the module doc). A directory holding only one of them,
/// files without ids, or files that cannot be opened (their readers report
/// the damage) pass.
pub(crate) fn check_pair(dir: &Path) -> Result<(), DriverError> {
    let model = dir.join("model.h5");
    let result = dir.join("result.h5ad");
    if !(model.is_file() && result.is_file()) {
        return Ok(());
    }
    let (Some(m), Some(r)) = (read_output_set(&model), result_id(&result)) else {
        return Ok(());
    };
    if m == r {
        return Ok(());
    }
    Err(DriverError::DamagedFile {
        path: result,
        reason: format!(
            "it and {} were written by different runs (output sets {} and {}): a run that was \
             replacing them was stopped between the two",
            model.display(),
            r.as_deref().unwrap_or("none"),
            m.as_deref().unwrap_or("none"),
        ),
        fix: format!(
            "Run the command that wrote {} again to write both files anew",
            dir.display()
        ),
    })
}
