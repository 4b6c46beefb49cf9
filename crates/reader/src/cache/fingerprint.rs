//! Content fingerprints of input files: the preprocessed cache's key is
//! built from them, and the model records them so that `inmf add` and
//! `--resume` can tell that an input changed.
//!
//! A fingerprint is xxh3-128 of the whole content of the file, written as
//! 32 hex digits: any edit, even one count rewritten in place at the same
//! size, gives another fingerprint (up to a 2⁻¹²⁸ collision). The file is
//! streamed through an 8 MiB buffer; several inputs are hashed in parallel
//! (one file per thread of the caller's rayon pool), and the time counts
//! in the run's preprocessing time.
//!
//! Cost, measured on this project's 2-core machine while other builds ran
//! on it (`scripts/bench-fingerprint`: `inmf simulate` of 3 datasets ×
//! 2,000 genes, then `inmf run`): at 1M cells the inputs are 489 MB
//! (gzip-compressed .h5ad), hashed in 0.10–0.15 s from the page cache
//! (3.3–4.8 GB/s; 0.5 % of the 29 s preprocessing of a fresh cache entry,
//! a third of the 0.33 s of a run that reuses one) and in 0.24–1.1 s after
//! `drop_caches` (0.4–2.0 GB/s; under 4 % of a fresh preprocessing, whose
//! passes then read the inputs from the page cache); at 50k cells (26 MB)
//! in 0.03–0.05 s either way. A reused cache entry still costs this
//! hashing: it is what keeps a reused entry from ever being a stale one.
//!
//! Model files written before whole-content hashing hold 16-hex-digit
//! fingerprints of an older, sampled format; [`same_content`] still
//! compares them (see [`legacy_sampled`]).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use xxhash_rust::xxh3::Xxh3;

use crate::error::ReaderError;
use crate::formats::dataset::Dataset;

/// Bytes read per call while hashing a file.
const READ_BUFFER: usize = 8 << 20;

/// Hex digits of a fingerprint ([`fingerprint`]).
pub const FINGERPRINT_DIGITS: usize = 32;

/// Bytes and xxh3-128 of the whole content of the file at `path`.
pub(crate) fn hash_file(path: &Path) -> std::io::Result<(u64, u128)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Xxh3::new();
    let mut buf = vec![0u8; READ_BUFFER];
    let mut bytes = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((bytes, h.digest128()))
}

/// Fingerprint of the file at `path`: xxh3-128 of its whole content, as
/// [`FINGERPRINT_DIGITS`] hex digits.
pub fn fingerprint(path: &Path) -> Result<String, ReaderError> {
    let (_, digest) = hash_file(path).map_err(|source| ReaderError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(format!("{digest:032x}"))
}

/// Fingerprints of `paths`, in order, hashed in parallel (one file per
/// thread of the current rayon pool).
pub fn fingerprints(paths: &[&Path]) -> Result<Vec<String>, ReaderError> {
    paths.par_iter().map(|p| fingerprint(p)).collect()
}

impl Dataset {
    /// The fingerprint of this dataset's file ([`fingerprint`]), computed
    /// on first use (hashing the whole file) and remembered.
    pub fn fingerprint(&self) -> Result<&str, ReaderError> {
        if let Some(f) = self.fingerprint.get() {
            return Ok(f);
        }
        let f = fingerprint(self.path())?;
        Ok(self.fingerprint.get_or_init(|| f))
    }
}

/// Computes the fingerprints of `datasets` not computed yet, in parallel
/// ([`fingerprints`]), and returns all of them in order.
pub fn fingerprint_datasets(datasets: &[&Dataset]) -> Result<Vec<String>, ReaderError> {
    let missing: Vec<(usize, PathBuf)> = datasets
        .iter()
        .enumerate()
        .filter(|(_, d)| d.fingerprint.get().is_none())
        .map(|(i, d)| (i, d.path().to_path_buf()))
        .collect();
    let paths: Vec<&Path> = missing.iter().map(|(_, p)| p.as_path()).collect();
    for ((i, _), f) in missing.iter().zip(fingerprints(&paths)?) {
        let _ = datasets[*i].fingerprint.set(f);
    }
    datasets
        .iter()
        .map(|d| d.fingerprint().map(str::to_owned))
        .collect()
}

/// Whether `dataset`'s file still has the content a model recorded as
/// `recorded`: a [`fingerprint`] is compared with the file's; a fingerprint
/// of the older sampled format ([`is_legacy`]) with that function of the
/// file (which sees any change of size or rewrite of the file, but may miss
/// an in-place edit between its samples). Anything else never matches.
pub fn same_content(recorded: &str, dataset: &Dataset) -> Result<bool, ReaderError> {
    if is_legacy(recorded) {
        return Ok(legacy_sampled(dataset.path())? == recorded);
    }
    Ok(is_hex(recorded, FINGERPRINT_DIGITS) && dataset.fingerprint()? == recorded)
}

/// True for a fingerprint of the older sampled format: 16 hex digits.
pub fn is_legacy(recorded: &str) -> bool {
    is_hex(recorded, LEGACY_DIGITS)
}

fn is_hex(s: &str, digits: usize) -> bool {
    s.len() == digits && s.bytes().all(|b| b.is_ascii_hexdigit())
}

const LEGACY_DIGITS: usize = 16;
const LEGACY_WINDOW: u64 = 64 * 1024;
const LEGACY_WINDOWS: u64 = 16;

/// The legacy fingerprint format, kept only to compare the fingerprints of
/// model files written before whole-content hashing: xxh3-64 over the file
/// size and 17 windows of 64 KiB (16 evenly spaced ones and the last one),
/// as 16 hex digits. It misses an in-place edit between its windows, which
/// is why it is no longer written.
fn legacy_sampled(path: &Path) -> Result<String, ReaderError> {
    let io = |source| ReaderError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    let mut h = Xxh3::new();
    h.update(&size.to_le_bytes());
    let mut buf = vec![0u8; LEGACY_WINDOW as usize];
    let mut offsets: Vec<u64> = (0..LEGACY_WINDOWS)
        .map(|i| size.saturating_sub(LEGACY_WINDOW) * i / LEGACY_WINDOWS)
        .collect();
    offsets.push(size.saturating_sub(LEGACY_WINDOW));
    for off in offsets {
        f.seek(SeekFrom::Start(off)).map_err(io)?;
        let n = (size - off).min(LEGACY_WINDOW) as usize;
        f.read_exact(&mut buf[..n]).map_err(io)?;
        h.update(&buf[..n]);
    }
    Ok(format!("{:016x}", h.digest()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_changed_in_place_changes_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        // Larger than the read buffer, so the edit lands in a later read.
        let mut bytes: Vec<u8> = (0..READ_BUFFER + 300_000).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        let a = fingerprint(&p).unwrap();
        assert_eq!(a.len(), FINGERPRINT_DIGITS);
        assert!(!is_legacy(&a));
        assert_eq!(a, fingerprint(&p).unwrap(), "stable");
        // Between the sampled windows of the legacy format: it cannot see this.
        let at = READ_BUFFER + 100_000;
        let legacy_before = legacy_sampled(&p).unwrap();
        bytes[at] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(
            legacy_sampled(&p).unwrap(),
            legacy_before,
            "the legacy format misses it"
        );
        assert_ne!(fingerprint(&p).unwrap(), a, "the whole-content hash sees it");
        bytes.push(0);
        std::fs::write(&p, &bytes).unwrap();
        assert_ne!(fingerprint(&p).unwrap(), a);
        std::fs::write(&p, b"").unwrap();
        assert_eq!(fingerprint(&p).unwrap().len(), FINGERPRINT_DIGITS);
        let missing = fingerprint(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(missing, ReaderError::Io { .. }), "{missing}");
    }

    #[test]
    fn parallel_fingerprints_equal_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..5)
            .map(|i| {
                let p = dir.path().join(format!("f{i}"));
                std::fs::write(&p, vec![i as u8; 1000 * (i + 1)]).unwrap();
                p
            })
            .collect();
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let all = fingerprints(&refs).unwrap();
        for (p, f) in paths.iter().zip(&all) {
            assert_eq!(&fingerprint(p).unwrap(), f);
        }
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), 5);
        let mut with_missing = refs.clone();
        let gone = dir.path().join("gone");
        with_missing.push(&gone);
        assert!(fingerprints(&with_missing).is_err());
    }

    #[test]
    fn legacy_fingerprints_are_told_apart_and_still_compared() {
        assert!(is_legacy("0123456789abcdef"));
        assert!(!is_legacy("0123456789abcdeg"));
        assert!(!is_legacy(&"0".repeat(FINGERPRINT_DIGITS)));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![7u8; 300_000]).unwrap();
        let old = legacy_sampled(&p).unwrap();
        assert_eq!(old.len(), 16);
        assert_eq!(old, legacy_sampled(&p).unwrap());
        let mut bytes = vec![7u8; 300_000];
        bytes[299_999] = 8;
        std::fs::write(&p, &bytes).unwrap();
        assert_ne!(old, legacy_sampled(&p).unwrap());
    }
}
