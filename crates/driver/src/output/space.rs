//! Free space for outputs, checked before the work that will fill them, so
//! a run on a nearly full disk stops at once with the space it needs
//! instead of after its learning phase.

use std::path::{Path, PathBuf};

use crate::error::DriverError;

/// Bytes available to this user on the file system that holds `path` (or
/// its nearest existing ancestor); `None` where that cannot be asked.
pub(crate) fn available_bytes(path: &Path) -> Option<u64> {
    let mut p: PathBuf = crate::output::guard::resolve(path);
    while !p.exists() {
        if !p.pop() {
            return None;
        }
    }
    let s = rustix::fs::statvfs(&p).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Bytes of a `model.h5` + `result.h5ad` pair (and the checkpoint beside
/// them, which has the model's size) for `cells` cells, `genes` genes, `k`
/// factors and `datasets` datasets, with a quarter added for HDF5's
/// metadata and chunk slack:
/// result ≈ cells·(8K + 48) + genes·(8K·(1 + D) + 32),
/// model ≈ genes·8K·(1 + 3D) + 16·K²·D + 32·genes.
pub(crate) fn model_set_bytes(cells: usize, genes: usize, k: usize, datasets: usize) -> u64 {
    let (c, g, k, d) = (cells as u64, genes as u64, k as u64, datasets as u64);
    let result = c * (8 * k + 48) + g * (8 * k * (1 + d) + 32);
    let model = g * 8 * k * (1 + 3 * d) + 16 * k * k * d + 32 * g;
    (result + 2 * model) * 5 / 4
}

/// Bytes of a projection's `result.h5ad` (H, W and the obs columns).
pub(crate) fn projection_bytes(cells: usize, genes: usize, k: usize) -> u64 {
    let (c, g, k) = (cells as u64, genes as u64, k as u64);
    (c * (8 * k + 56) + g * (8 * k + 32)) * 5 / 4
}

/// Refuses to start when the file system of `dir` has less than `needed`
/// bytes free (exit 1: the environment, not the input).
pub(crate) fn ensure_space(dir: &Path, needed: u64) -> Result<(), DriverError> {
    match available_bytes(dir) {
        Some(free) if free < needed => Err(DriverError::NoSpace {
            path: dir.to_path_buf(),
            needed: Some(needed),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_grow_with_every_dimension_and_free_space_is_read() {
        let base = model_set_bytes(1000, 500, 10, 2);
        assert!(model_set_bytes(2000, 500, 10, 2) > base);
        assert!(model_set_bytes(1000, 600, 10, 2) > base);
        assert!(model_set_bytes(1000, 500, 11, 2) > base);
        assert!(model_set_bytes(1000, 500, 10, 3) > base);
        // H alone: 1000 cells × 10 factors × 8 bytes.
        assert!(projection_bytes(1000, 500, 10) > 80_000);
        let dir = tempfile::tempdir().unwrap();
        let free = available_bytes(&dir.path().join("not/yet/made")).expect("statvfs works here");
        assert!(free > 0);
        assert!(ensure_space(dir.path(), 1).is_ok());
        let e = ensure_space(dir.path(), u64::MAX).unwrap_err();
        assert!(e.to_string().contains("MB are needed"), "{e}");
    }
}
