//! Temporaries left by a process that is gone, and their removal.
//!
//! Every temporary inmf writes carries its writer's process id in its name:
//! `.NAME.tmp-PID-N` beside an output file (`NAME` the final name, `N` a
//! counter) and `.tmp-KEY-PID` for a cache entry being built. A killed run
//! leaves them behind; the next run that writes into the same folder calls
//! [`remove_stale_temporaries`], which removes those whose process no longer
//! exists and keeps those of live processes (a concurrent run's files).

use std::path::{Path, PathBuf};

/// The process id in a temporary's file name, or `None` when the name is
/// not one of inmf's temporary names.
///
/// `.NAME.tmp-PID-N` → PID; `.tmp-KEY-PID` → PID.
pub fn temporary_owner(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix('.')?;
    if let Some(tail) = rest.strip_prefix("tmp-") {
        // `.tmp-KEY-PID`: the pid is the last dash-separated field.
        let (key, pid) = tail.rsplit_once('-')?;
        if key.is_empty() {
            return None;
        }
        return digits(pid);
    }
    // `.NAME.tmp-PID-N`: the last `.tmp-` starts the suffix.
    let at = rest.rfind(".tmp-")?;
    if at == 0 {
        return None;
    }
    let (pid, n) = rest[at + 5..].split_once('-')?;
    digits(n)?;
    digits(pid)
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// True while a process with this id exists (Linux: `/proc/PID`). Where
/// `/proc` is not mounted every process counts as alive, so nothing is
/// removed that might still be written.
pub fn process_is_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return true;
    }
    proc_root.join(pid.to_string()).exists()
}

/// A temporary that [`remove_stale_temporaries`] removed.
#[derive(Debug, Clone, PartialEq)]
pub struct RemovedTemporary {
    /// Its path.
    pub path: PathBuf,
    /// Bytes it held (files below it, for a directory).
    pub bytes: u64,
}

/// Removes the temporaries directly in `dir` whose writing process is gone
/// (files and directories). A missing `dir` holds none. Entries that cannot
/// be removed are left as they are: cleaning is a courtesy, never a reason
/// to fail a run.
pub fn remove_stale_temporaries(dir: &Path) -> Vec<RemovedTemporary> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temporary_owner) else {
            continue;
        };
        if process_is_alive(pid) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let (bytes, gone) = if meta.is_dir() {
            let bytes = bytes_below(&path);
            (bytes, std::fs::remove_dir_all(&path).is_ok())
        } else {
            (meta.len(), std::fs::remove_file(&path).is_ok())
        };
        if gone {
            removed.push(RemovedTemporary { path, bytes });
        }
    }
    removed.sort_by(|a, b| a.path.cmp(&b.path));
    removed
}

/// One line for the log naming what [`remove_stale_temporaries`] removed,
/// or `None` when it removed nothing.
pub fn describe_removed(removed: &[RemovedTemporary]) -> Option<String> {
    if removed.is_empty() {
        return None;
    }
    let bytes: u64 = removed.iter().map(|r| r.bytes).sum();
    let names: Vec<String> = removed
        .iter()
        .map(|r| {
            r.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let dir = removed[0]
        .path
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let size = if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{:.1} kB", bytes as f64 / 1e3)
    };
    Some(format!(
        "removed {} temporar{} of interrupted runs from {dir} ({size}): {}",
        removed.len(),
        if removed.len() == 1 { "y" } else { "ies" },
        names.join(", ")
    ))
}

fn bytes_below(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => bytes_below(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_is_read_from_both_temporary_patterns() {
        assert_eq!(temporary_owner(".result.h5ad.tmp-4242-7"), Some(4242));
        assert_eq!(temporary_owner(".checkpoint.h5.tmp-1-0"), Some(1));
        assert_eq!(temporary_owner(".tmp-c40171e2c4e593d3-25989"), Some(25989));
        assert_eq!(temporary_owner(".a.tmp-x.tmp-12-3"), Some(12));
        for not_ours in [
            "result.h5ad",
            ".result.h5ad",
            ".result.h5ad.tmp-12",
            ".result.h5ad.tmp-12-",
            ".result.h5ad.tmp-ab-1",
            ".tmp-",
            ".tmp--12",
            ".tmp-key-12a",
            "tmp-key-12",
            "..tmp-1-2",
        ] {
            assert_eq!(temporary_owner(not_ours), None, "{not_ours}");
        }
    }

    /// A pid that no process has: above the kernel's pid limit.
    fn dead_pid() -> u32 {
        let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4_194_304);
        max + 1
    }

    #[test]
    fn only_temporaries_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let dead = dead_pid();
        let me = std::process::id();
        let stale_file = d.join(format!(".result.h5ad.tmp-{dead}-3"));
        let stale_dir = d.join(format!(".tmp-abc123-{dead}"));
        let live_file = d.join(format!(".model.h5.tmp-{me}-0"));
        let live_dir = d.join(format!(".tmp-abc123-{me}"));
        let user_file = d.join("result.h5ad");
        std::fs::write(&stale_file, vec![0u8; 1000]).unwrap();
        std::fs::create_dir(&stale_dir).unwrap();
        std::fs::write(stale_dir.join("0.data"), vec![0u8; 500]).unwrap();
        std::fs::write(&live_file, b"x").unwrap();
        std::fs::create_dir(&live_dir).unwrap();
        std::fs::write(&user_file, b"keep").unwrap();

        let removed = remove_stale_temporaries(d);
        assert_eq!(
            removed,
            vec![
                RemovedTemporary {
                    path: stale_file.clone(),
                    bytes: 1000
                },
                RemovedTemporary {
                    path: stale_dir.clone(),
                    bytes: 500
                },
            ]
        );
        assert!(!stale_file.exists() && !stale_dir.exists());
        assert!(live_file.exists() && live_dir.exists() && user_file.exists());
        let line = describe_removed(&removed).unwrap();
        assert!(
            line.starts_with("removed 2 temporaries of interrupted runs"),
            "{line}"
        );
        assert!(describe_removed(&[]).is_none());
        assert!(remove_stale_temporaries(&d.join("missing")).is_empty());
    }
}
