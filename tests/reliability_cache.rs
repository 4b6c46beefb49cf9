//! The preprocessed cache end to end: entries keyed by content and
//! parameters only (an input edited in place is never served from a stale
//! entry; renamed or moved inputs reuse theirs under the run's own names),
//! damaged entries named, removed and rebuilt, environment failures of the
//! cache (full disk, read-only directory) exiting 1 with nothing left
//! behind, temporaries of killed runs removed, and `--resume` refusing an
//! input changed since the checkpoint.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use hdf5::types::{FloatSize, TypeDescriptor, VarLenUnicode};
use ndarray::Array2;

use crate::common::*;
use crate::run::simulate;

/// Small learning settings: one short epoch.
const LEARN: [&str; 7] = ["--k", "4", "--batch-size", "300", "--epochs", "1", "--seed"];

/// Two simulated datasets of `cells` cells × `genes` genes in `dir`.
fn data(dir: &Path, cells: usize, genes: usize) -> Vec<PathBuf> {
    let (cells, genes) = (cells.to_string(), genes.to_string());
    simulate(
        dir,
        &[
            "--datasets",
            "2",
            "--cells",
            &cells,
            "--genes",
            &genes,
            "--cell-types",
            "3",
        ],
    )
}

/// `inmf run INPUTS --out OUT` with the small settings and `extra`.
fn run_with(inputs: &[String], out: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<String> = vec!["run".into(), "--out".into(), out.display().to_string()];
    args.extend(inputs.iter().cloned());
    args.extend(LEARN.iter().map(|s| s.to_string()));
    args.push("1".into());
    args.extend(extra.iter().map(|s| s.to_string()));
    inmf(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "inmf failed: {}", stderr(&o));
    o
}

fn paths(inputs: &[PathBuf]) -> Vec<String> {
    inputs.iter().map(|p| p.display().to_string()).collect()
}

fn h_of(out: &Path) -> Array2<f64> {
    hdf5::File::open(out.join("result.h5ad"))
        .unwrap()
        .dataset("obsm/X_inmf")
        .unwrap()
        .read_2d()
        .unwrap()
}

fn strings(f: &hdf5::File, ds: &str) -> Vec<String> {
    f.dataset(ds)
        .unwrap()
        .read_raw::<VarLenUnicode>()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Dataset names a run's outputs carry: obs['dataset'] of every cell (as
/// the distinct values in order), the `varm['V_*']` keys, and the model's
/// dataset names.
fn names_in_outputs(out: &Path) -> (Vec<String>, Vec<String>, Vec<String>) {
    let r = hdf5::File::open(out.join("result.h5ad")).unwrap();
    let categories = strings(&r, "obs/dataset/categories");
    let codes: Vec<i32> = r.dataset("obs/dataset/codes").unwrap().read_raw().unwrap();
    let mut per_cell: Vec<String> = Vec::new();
    for c in codes {
        let name = &categories[c as usize];
        if per_cell.last() != Some(name) {
            per_cell.push(name.clone());
        }
    }
    let mut varm: Vec<String> = r
        .group("varm")
        .unwrap()
        .member_names()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with("V_"))
        .collect();
    varm.sort();
    let m = hdf5::File::open(out.join("model.h5")).unwrap();
    let n = m.group("datasets").unwrap().member_names().unwrap().len();
    let model = (0..n)
        .map(|i| {
            m.group(&format!("datasets/{i}"))
                .unwrap()
                .attr("name")
                .unwrap()
                .read_scalar::<VarLenUnicode>()
                .unwrap()
                .to_string()
        })
        .collect();
    (per_cell, varm, model)
}

/// The complete entries under a cache root (not temporaries).
fn entries(root: &Path) -> Vec<PathBuf> {
    let mut e: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    e.sort();
    e
}

/// Two datasets of 3000 cells × 200 genes written with contiguous,
/// uncompressed arrays (about 2 MB each), in `dir`.
fn contiguous_inputs(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    vec![
        valid_h5ad(dir, "left", 3000, 200, "g"),
        valid_h5ad(dir, "right", 2900, 200, "g"),
    ]
}

/// Adds 1 to one stored count of `X/data` (contiguous f32) by rewriting
/// its 4 bytes in place, choosing a count that lies between the 64 KiB
/// windows an input fingerprint used to sample (16 evenly spaced ones and
/// the last one), so that only a hash of the whole content can see the
/// edit. The file keeps its size and stays a valid input.
fn edit_count_between_samples(path: &Path) {
    use std::os::unix::fs::FileExt;
    let (offset, n) = {
        let f = hdf5::File::open(path).unwrap();
        let ds = f.dataset("X/data").unwrap();
        assert_eq!(
            ds.dtype().unwrap().to_descriptor().unwrap(),
            TypeDescriptor::Float(FloatSize::U4)
        );
        (ds.offset().expect("X/data is contiguous"), ds.size() as u64)
    };
    let size = std::fs::metadata(path).unwrap().len();
    const WINDOW: u64 = 64 * 1024;
    let windows: Vec<u64> = (0..16)
        .map(|i| (size - WINDOW) * i / 16)
        .chain([size - WINDOW])
        .collect();
    let unsampled = |at: u64| windows.iter().all(|&w| at + 4 <= w || at >= w + WINDOW);
    let at = (0..n)
        .map(|k| offset + 4 * k)
        .rev()
        .find(|&at| unsampled(at))
        .expect("a count between the sampled windows");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut bytes = [0u8; 4];
    f.read_exact_at(&mut bytes, at).unwrap();
    let count = f32::from_le_bytes(bytes);
    assert!(count >= 1.0, "a stored count: {count}");
    f.write_all_at(&(count + 1.0).to_le_bytes(), at).unwrap();
    drop(f);
    assert_eq!(std::fs::metadata(path).unwrap().len(), size, "edited in place");
}

#[test]
fn edited_input_makes_a_new_cache_entry() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = paths(&contiguous_inputs(&d.join("data")));
    let cache = d.join("cache");
    let cache_args = ["--cache", cache.to_str().unwrap()];
    ok(run_with(&inputs, &d.join("before"), &cache_args));
    assert_eq!(entries(&cache).len(), 1);
    edit_count_between_samples(Path::new(&inputs[0]));
    let o = ok(run_with(&inputs, &d.join("after"), &cache_args));
    let err = stderr(&o);
    assert!(err.contains("preprocessed cache: built"), "{err}");
    assert!(
        !err.contains("reused"),
        "the old entry must not serve the edited input: {err}"
    );
    assert_eq!(entries(&cache).len(), 2, "a new entry for the new content");
    ok(run_with(&inputs, &d.join("decoded"), &["--no-cache"]));
    assert_eq!(h_of(&d.join("after")), h_of(&d.join("decoded")));
    assert_ne!(h_of(&d.join("after")), h_of(&d.join("before")));
    let hashed = err
        .lines()
        .find(|l| l.starts_with("input fingerprints: 2 files,"));
    assert!(
        hashed.is_some_and(|l| l.contains(" MB hashed in ") && l.ends_with(" GB/s)")),
        "{err}"
    );
}

#[test]
fn renamed_or_moved_inputs_reuse_the_entry_under_the_runs_own_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = data(&d.join("data"), 500, 150);
    let cache = d.join("cache");
    let cache_args = ["--cache", cache.to_str().unwrap()];
    let named = |a: &str, b: &str| {
        vec![
            format!("{a}={}", files[0].display()),
            format!("{b}={}", files[1].display()),
        ]
    };
    ok(run_with(&named("A", "B"), &d.join("ab"), &cache_args));
    let first = entries(&cache);
    assert_eq!(first.len(), 1);
    assert_eq!(
        names_in_outputs(&d.join("ab")),
        (
            vec!["A".into(), "B".into()],
            vec!["V_A".into(), "V_B".into()],
            vec!["A".into(), "B".into()]
        )
    );

    let o = ok(run_with(&named("X", "Y"), &d.join("xy"), &cache_args));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("preprocessed cache: reused {}", first[0].display())),
        "{err}"
    );
    assert_eq!(entries(&cache), first, "renaming reuses the entry");
    assert_eq!(
        names_in_outputs(&d.join("xy")),
        (
            vec!["X".into(), "Y".into()],
            vec!["V_X".into(), "V_Y".into()],
            vec!["X".into(), "Y".into()]
        )
    );
    assert!(
        err.contains("X: ") && !err.contains("A: "),
        "the report names X and Y: {err}"
    );
    assert_eq!(h_of(&d.join("xy")), h_of(&d.join("ab")), "the same bits");

    // Copies at other paths with default names (the file stems).
    let copies = [d.join("donor1.h5ad"), d.join("donor2.h5ad")];
    for (f, c) in files.iter().zip(&copies) {
        std::fs::copy(f, c).unwrap();
    }
    let o = ok(run_with(&paths(&copies), &d.join("donors"), &cache_args));
    assert!(
        stderr(&o).contains("preprocessed cache: reused"),
        "{}",
        stderr(&o)
    );
    assert_eq!(entries(&cache), first);
    let (obs, varm, model) = names_in_outputs(&d.join("donors"));
    assert_eq!(obs, ["donor1", "donor2"]);
    assert_eq!(varm, ["V_donor1", "V_donor2"]);
    assert_eq!(model, ["donor1", "donor2"]);
    let m = hdf5::File::open(d.join("donors/model.h5")).unwrap();
    let path0 = m
        .group("datasets/0")
        .unwrap()
        .attr("path")
        .unwrap()
        .read_scalar::<VarLenUnicode>()
        .unwrap()
        .to_string();
    assert_eq!(
        path0,
        copies[0].display().to_string(),
        "the model records this run's paths"
    );
    assert_eq!(h_of(&d.join("donors")), h_of(&d.join("ab")));
}

#[test]
fn damaged_incomplete_or_foreign_entries_are_named_removed_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = paths(&data(&d.join("data"), 400, 120));
    let cache = d.join("cache");
    let cache_args = ["--cache", cache.to_str().unwrap()];
    ok(run_with(&inputs, &d.join("decoded"), &["--no-cache"]));
    let want = h_of(&d.join("decoded"));
    ok(run_with(&inputs, &d.join("first"), &cache_args));
    let [entry] = &entries(&cache)[..] else {
        panic!("one entry");
    };
    let entry = entry.clone();
    type Damage = fn(&Path);
    let cases: [(Damage, &str); 5] = [
        (
            |e| {
                let p = e.join("0.data");
                let mut bytes = std::fs::read(&p).unwrap();
                for b in &mut bytes[1000..1256] {
                    *b ^= 0x5a;
                }
                std::fs::write(&p, bytes).unwrap();
            },
            "is damaged (0.data: checksum mismatch)",
        ),
        (
            |e| std::fs::remove_file(e.join("meta.json")).unwrap(),
            "is incomplete (it has no meta.json)",
        ),
        (
            |e| {
                std::fs::remove_dir_all(e).unwrap();
                std::fs::write(e, b"x").unwrap();
            },
            "is damaged (not a directory)",
        ),
        (
            |e| {
                for f in std::fs::read_dir(e).unwrap() {
                    std::fs::remove_file(f.unwrap().path()).unwrap();
                }
            },
            "is incomplete (it has no meta.json)",
        ),
        (
            |e| {
                let p = e.join("meta.json");
                let mut meta: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                meta["version"] = 99.into();
                std::fs::write(&p, meta.to_string()).unwrap();
            },
            "was written by cache format version 99",
        ),
    ];
    for (i, (damage, problem)) in cases.iter().enumerate() {
        damage(&entry);
        let out = d.join(format!("case{i}"));
        let o = run_with(&inputs, &out, &cache_args);
        let err = stderr(&o);
        assert!(o.status.success(), "{problem}: {err}");
        let line = format!("preprocessed cache: entry {} {problem}", entry.display());
        assert!(
            err.contains(&line) && err.contains("; rebuilding it"),
            "{problem}: {err}"
        );
        assert!(!err.contains("just built"), "{err}");
        assert!(
            err.contains("preprocessed cache: built"),
            "{problem}: rebuilt: {err}"
        );
        assert_eq!(h_of(&out), want, "{problem}: the same bits as without a cache");
        let again = ok(run_with(&inputs, &d.join(format!("again{i}")), &cache_args));
        assert!(
            stderr(&again).contains("preprocessed cache: reused"),
            "{problem}: the rebuilt entry is reused: {}",
            stderr(&again)
        );
    }
}

/// A tmpfs mounted at a directory for the life of the value.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "2m") at `dir`, or says loudly why
    /// it cannot (not root, no mount permission) and returns None.
    fn mount(dir: &Path, size: &str, test: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match o {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "\n*** {test}: NOT RUN: cannot mount a tmpfs at {} ({}); this test needs root with \
                     permission to mount ***\n",
                    dir.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("\n*** {test}: NOT RUN: cannot run mount ({e}) ***\n");
                None
            }
        }
    }

    fn remount_read_only(&self) {
        let o = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "remount ro: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

#[test]
fn full_disk_while_building_the_cache_exits_1_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = paths(&data(&d.join("data"), 3000, 400));
    let full = d.join("full");
    let Some(_mounted) = Tmpfs::mount(&full, "2m", "full_disk_while_building_the_cache_exits_1") else {
        return;
    };
    // The cache on the small disk, the output elsewhere.
    let cache = full.join("cache");
    let o = run_with(&inputs, &d.join("out"), &["--cache", cache.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "preprocessed cache {}: the disk is full",
            cache.display()
        )),
        "{err}"
    );
    assert!(err.contains("that needs about") && err.contains(" MB"), "{err}");
    assert!(err.contains("--no-cache"), "{err}");
    assert!(!cache.exists(), "the cache directory the run created is removed");
    assert!(!d.join("out").exists(), "no output");
    assert_eq!(
        std::fs::read_dir(&full).unwrap().count(),
        0,
        "nothing left on the disk"
    );

    // The output on the small disk: the default cache beside it fills it.
    let out = full.join("out");
    let o = run_with(&inputs, &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let default_cache = full.join(".inmf-cache");
    assert!(
        err.contains(&format!(
            "preprocessed cache {}: the disk is full",
            default_cache.display()
        )),
        "{err}"
    );
    assert!(!default_cache.exists() && !out.exists(), "{err}");
    assert_eq!(
        std::fs::read_dir(&full).unwrap().count(),
        0,
        "nothing left on the disk"
    );
}

#[test]
fn read_only_cache_directory_exits_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = paths(&data(&d.join("data"), 300, 100));
    let ro = d.join("ro");
    let existing = ro.join("cache");
    let mounted = if is_root() {
        // Root ignores permission bits: a read-only file system instead.
        let Some(m) = Tmpfs::mount(&ro, "4m", "read_only_cache_directory_exits_1_naming_it") else {
            return;
        };
        std::fs::create_dir(&existing).unwrap();
        m.remount_read_only();
        Some(m)
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&existing).unwrap();
        for p in [&existing, &ro] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        None
    };
    // A cache directory to create, and one that exists but cannot be written.
    for cache in [ro.join("new").join("cache"), existing.clone()] {
        let o = run_with(&inputs, &d.join("out"), &["--cache", cache.to_str().unwrap()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("preprocessed cache {}: ", cache.display())),
            "the message names the cache directory: {err}"
        );
        assert!(err.contains("--cache DIR") && err.contains("--no-cache"), "{err}");
        assert!(!d.join("out").exists(), "no output");
    }
    if mounted.is_none() {
        use std::os::unix::fs::PermissionsExt;
        for p in [&ro, &existing] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    drop(mounted);
}

#[test]
fn damaged_entry_that_cannot_be_removed_exits_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = paths(&data(&d.join("data"), 300, 100));
    let cache = d.join("cache");
    let Some(mounted) = Tmpfs::mount(&cache, "16m", "damaged_entry_that_cannot_be_removed_exits_1") else {
        return;
    };
    ok(run_with(
        &inputs,
        &d.join("first"),
        &["--cache", cache.to_str().unwrap()],
    ));
    let [entry] = &entries(&cache)[..] else {
        panic!("one entry");
    };
    std::fs::remove_file(entry.join("0.norms")).unwrap();
    mounted.remount_read_only();
    let o = run_with(&inputs, &d.join("out"), &["--cache", cache.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "preprocessed cache: entry {} is damaged (0.norms: missing) and cannot be removed",
            entry.display()
        )),
        "{err}"
    );
    assert!(err.contains(&format!("rm -r {}", entry.display())), "{err}");
    assert!(!d.join("out").exists());
}

#[test]
fn temporaries_of_killed_runs_are_removed_from_the_cache_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inputs = paths(&data(&d.join("data"), 300, 100));
    let cache = d.join("cache");
    std::fs::create_dir(&cache).unwrap();
    // A pid no process has: above the kernel's limit.
    let dead: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4_194_304)
        + 1;
    let key = "0123456789abcdef0123456789abcdef";
    let stale = cache.join(format!(".tmp-{key}-{dead}"));
    let live = cache.join(format!(".tmp-{key}-{}", std::process::id()));
    for t in [&stale, &live] {
        std::fs::create_dir(t).unwrap();
        std::fs::write(t.join("0.data"), vec![0u8; 2_500_000]).unwrap();
    }
    let o = ok(run_with(
        &inputs,
        &d.join("out"),
        &["--cache", cache.to_str().unwrap()],
    ));
    let err = stderr(&o);
    let line = format!(
        "preprocessed cache: removed 1 temporary of interrupted runs from {} (2.5 MB): .tmp-{key}-{dead}",
        cache.display()
    );
    assert!(err.contains(&line), "{err}");
    assert!(!stale.exists(), "the dead run's temporary is gone");
    assert!(live.join("0.data").exists(), "a live run's temporary is kept");
    // Quiet runs clean up too, silently.
    std::fs::create_dir(&stale).unwrap();
    let o = ok(run_with(
        &inputs,
        &d.join("quiet"),
        &["--cache", cache.to_str().unwrap(), "--quiet"],
    ));
    assert!(!stderr(&o).contains("removed"), "{}", stderr(&o));
    assert!(!stale.exists() && live.exists());
}

#[test]
fn resume_refuses_an_input_edited_since_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = contiguous_inputs(&d.join("data"));
    let out = d.join("out");
    let mut args: Vec<String> = vec![
        "run".into(),
        "--quiet".into(),
        "--out".into(),
        out.display().to_string(),
    ];
    args.extend(paths(&files));
    for a in [
        "--k",
        "4",
        "--batch-size",
        "200",
        "--epochs",
        "400",
        "--checkpoint-every",
        "1",
        "--checkpoint-seconds",
        "0",
        "--no-cache",
    ] {
        args.push(a.into());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    kill_after_first_checkpoint(&refs, &out, Duration::from_millis(100));
    edit_count_between_samples(&files[1]);
    args.push("--resume".into());
    let o = inmf(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "input \"right\" ({}) changed since the checkpoint was written",
            files[1].display()
        )),
        "{err}"
    );
    assert!(err.contains("run without --resume"), "{err}");
    assert!(out.join("checkpoint.h5").exists(), "the checkpoint is kept");
}

/// The fingerprint format of model files written before whole-content
/// hashing: xxh3-64 over the file size and 17 windows of 64 KiB (16 evenly
/// spaced ones and the last one), as 16 hex digits.
fn legacy_fingerprint(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let size = bytes.len() as u64;
    const WINDOW: u64 = 64 * 1024;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&size.to_le_bytes());
    for off in (0..16)
        .map(|i| size.saturating_sub(WINDOW) * i / 16)
        .chain([size.saturating_sub(WINDOW)])
    {
        h.update(&bytes[off as usize..(off + WINDOW).min(size) as usize]);
    }
    format!("{:016x}", h.digest())
}

#[test]
fn models_with_old_sampled_fingerprints_still_check_their_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = simulate(
        &d.join("data"),
        &[
            "--datasets",
            "3",
            "--cells",
            "400",
            "--genes",
            "120",
            "--cell-types",
            "3",
        ],
    );
    let model = d.join("model");
    ok(run_with(&paths(&files[..1]), &model, &["--no-cache"]));
    // As an older inmf wrote it.
    {
        let f = open_rw_unlocked(&model.join("model.h5"));
        let legacy: VarLenUnicode = legacy_fingerprint(&files[0]).parse().unwrap();
        f.group("datasets/0")
            .unwrap()
            .attr("fingerprint")
            .unwrap()
            .write_scalar(&legacy)
            .unwrap();
    }
    let add = |out: &Path| {
        let m = model.display().to_string();
        let o = out.display().to_string();
        let new = files[1].display().to_string();
        inmf(&[
            "add",
            &m,
            &new,
            "--out",
            &o,
            "--quiet",
            "--no-cache",
            "--epochs",
            "1",
            "--batch-size",
            "200",
        ])
    };
    let added = d.join("added");
    ok(add(&added));
    let fingerprint = |model: &Path, i: usize| {
        hdf5::File::open(model.join("model.h5"))
            .unwrap()
            .group(&format!("datasets/{i}"))
            .unwrap()
            .attr("fingerprint")
            .unwrap()
            .read_scalar::<VarLenUnicode>()
            .unwrap()
            .to_string()
    };
    let upgraded = fingerprint(&added, 0);
    assert_eq!(
        upgraded.len(),
        32,
        "the checked old dataset is recorded in the current format: {upgraded}"
    );
    assert_eq!(fingerprint(&added, 1).len(), 32);
    // A change the old format sees (the size) is still refused.
    let mut f = std::fs::OpenOptions::new().append(true).open(&files[0]).unwrap();
    std::io::Write::write_all(&mut f, &[0u8; 100]).unwrap();
    drop(f);
    let o = add(&d.join("refused"));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("changed since the model was made"), "{err}");
}
