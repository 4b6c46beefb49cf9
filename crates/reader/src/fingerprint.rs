//! A cheap content fingerprint of an input file, recorded in the model so a
//! later `inmf add` can tell that an old dataset moved or changed.
//!
//! Hashing a multi-gigabyte input in full would cost as much as an epoch,
//! so the fingerprint is xxh3-64 over the file size and 17 windows of
//! 64 KiB: 16 evenly spaced ones and the last one. Any change of size, and
//! any rewrite of an HDF5 file (which moves its superblock, B-trees and
//! chunks), changes it with overwhelming probability; an in-place edit of a
//! few bytes between windows would not be seen, and that is the accepted
//! trade-off.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use xxhash_rust::xxh3::Xxh3;

use crate::error::ReaderError;

const WINDOW: u64 = 64 * 1024;
const WINDOWS: u64 = 16;

/// Fingerprint of the file at `path` as 16 hex digits.
pub fn fingerprint(path: &Path) -> Result<String, ReaderError> {
    let io = |source| ReaderError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    let mut h = Xxh3::new();
    h.update(&size.to_le_bytes());
    let mut buf = vec![0u8; WINDOW as usize];
    let mut offsets: Vec<u64> = (0..WINDOWS)
        .map(|i| size.saturating_sub(WINDOW) * i / WINDOWS)
        .collect();
    offsets.push(size.saturating_sub(WINDOW));
    for off in offsets {
        f.seek(SeekFrom::Start(off)).map_err(io)?;
        let n = (size - off).min(WINDOW) as usize;
        f.read_exact(&mut buf[..n]).map_err(io)?;
        h.update(&buf[..n]);
    }
    Ok(format!("{:016x}", h.digest()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_with_content_and_size_and_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![7u8; 300_000]).unwrap();
        let a = fingerprint(&p).unwrap();
        assert_eq!(a, fingerprint(&p).unwrap());
        let mut bytes = vec![7u8; 300_000];
        bytes[299_999] = 8;
        std::fs::write(&p, &bytes).unwrap();
        assert_ne!(a, fingerprint(&p).unwrap());
        std::fs::write(&p, vec![7u8; 300_001]).unwrap();
        assert_ne!(a, fingerprint(&p).unwrap());
        std::fs::write(&p, b"tiny").unwrap();
        assert_eq!(fingerprint(&p).unwrap().len(), 16);
        assert!(fingerprint(&dir.path().join("missing")).is_err());
    }
}
