//! Outputs are safe: no command replaces its inputs or another command's
//! results, a full disk or a closed pipe never crashes a run, damaged
//! model/checkpoint/result files are named with a fix, temporaries of killed
//! runs are cleaned, and a model and a result written by different runs are
//! never used as a pair. Exit codes: 2 for what the user can fix (nothing
//! written), 1 for the environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::*;

/// Two simulated datasets and a finished run on them, made once.
struct Fixture {
    _dir: tempfile::TempDir,
    data: PathBuf,
    run: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let o = inmf(&[
            "simulate",
            "-q",
            "--out",
            s(&data),
            "--datasets",
            "2",
            "--cells",
            "1500",
            "--genes",
            "400",
            "--cell-types",
            "4",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let run = dir.path().join("run");
        let o = inmf_owned(&run_args(&data, &run, &["--cache", s(&dir.path().join("cache"))]));
        assert!(o.status.success(), "{}", stderr(&o));
        Fixture { _dir: dir, data, run }
    })
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `inmf run` of the two datasets in `data` (batch1.h5ad, batch2.h5ad) into
/// `out`: K 5, 2 epochs, mini-batches of 300, quiet, then `extra`.
fn run_args(data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let (d1, d2) = (data.join("batch1.h5ad"), data.join("batch2.h5ad"));
    let mut a = vec![
        "run",
        s(&d1),
        s(&d2),
        "--out",
        s(out),
        "--batch-size",
        "300",
        "-q",
    ];
    for (flag, default) in [("--k", "5"), ("--epochs", "2")] {
        if !extra.contains(&flag) {
            a.extend([flag, default]);
        }
    }
    a.extend_from_slice(extra);
    a.into_iter().map(String::from).collect()
}

/// Runs `inmf ARGS` given as owned strings.
fn inmf_owned(args: &[String]) -> Output {
    inmf(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Exit code 2, the message contains every `needles`.
fn refused(o: &Output, needles: &[&str]) {
    let e = stderr(o);
    assert_eq!(code(o), 2, "expected exit 2, got {:?}: {e}", o.status);
    for n in needles {
        assert!(e.contains(n), "{n:?} not in: {e}");
    }
    assert!(!e.contains("panicked"), "{e}");
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A process id no process has (above the kernel's limit).
fn dead_pid() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(4_194_304)
        + 1
}

#[test]
fn an_output_that_is_an_existing_file_or_an_input_is_refused_before_any_work() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = f.data.join("batch1.h5ad");
    let before = bytes(&input);
    let file = d.join("outfile");
    std::fs::write(&file, b"keep").unwrap();
    let link = d.join("link.h5ad");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    for (out, needle) in [
        (&file, "existing file, not a directory"),
        (&input, "existing file, not a directory"),
        (&link, "existing file, not a directory"),
        (&f.data, "contains the input"),
    ] {
        let cache = d.join("cache");
        let o = inmf_owned(&run_args(&f.data, out, &["--cache", s(&cache)]));
        refused(&o, &[needle, &out.display().to_string()]);
        assert!(!cache.exists(), "work started before the output was checked");
    }
    assert_eq!(bytes(&file), b"keep");
    assert_eq!(bytes(&input), before);
}

#[test]
fn project_never_replaces_a_runs_result() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    copy_dir(&f.run, &run);
    let before = bytes(&run.join("result.h5ad"));
    let q = f.data.join("batch2.h5ad");
    let o = inmf(&[
        "project",
        s(&run),
        &format!("Q={}", s(&q)),
        "--out",
        s(&run),
        "-q",
    ]);
    refused(&o, &["would replace that run's", "projection"]);
    assert_eq!(bytes(&run.join("result.h5ad")), before);
    // The suggested folder works.
    let o = inmf(&[
        "project",
        s(&run),
        &format!("Q={}", s(&q)),
        "--out",
        s(&run.join("projection")),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(bytes(&run.join("result.h5ad")), before);
    // And a run is not written over a projection.
    let o = inmf_owned(&run_args(&f.data, &run.join("projection"), &[]));
    refused(&o, &["without a model.h5"]);
}

#[test]
fn import_never_overwrites_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let mtx = dir.path().join("mtx");
    std::fs::create_dir(&mtx).unwrap();
    std::fs::write(
        mtx.join("matrix.mtx"),
        "%%MatrixMarket matrix coordinate integer general\n3 2 3\n1 1 5\n2 1 1\n3 2 2\n",
    )
    .unwrap();
    std::fs::write(
        mtx.join("features.tsv"),
        "g1\tG1\tGene Expression\ng2\tG2\tGene Expression\ng3\tG3\tGene Expression\n",
    )
    .unwrap();
    std::fs::write(mtx.join("barcodes.tsv"), "c1\nc2\n").unwrap();
    let before = bytes(&mtx.join("matrix.mtx"));
    for (out, needle) in [
        (mtx.join("matrix.mtx"), "would destroy it"),
        (mtx.join("features.tsv"), "would destroy it"),
        (
            dir.path().join("nodir").join("out.h5ad"),
            "does not exist; create it first",
        ),
        (dir.path().to_path_buf(), "existing directory"),
    ] {
        let o = inmf(&["import", s(&mtx), "--out", s(&out)]);
        refused(&o, &[needle]);
    }
    assert_eq!(bytes(&mtx.join("matrix.mtx")), before);
    assert!(!dir.path().join("nodir").exists());
    // Beside the inputs is fine.
    let o = inmf(&["import", s(&mtx), "--out", s(&mtx.join("out.h5ad")), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn analyze_and_simulate_refuse_an_existing_file_as_output_folder() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("afile");
    std::fs::write(&file, b"keep").unwrap();
    let t = Instant::now();
    let o = inmf(&["analyze", s(&f.run), "--out", s(&file), "-q"]);
    refused(&o, &["existing file, not a directory"]);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "refused only after the analysis"
    );
    let o = inmf(&[
        "simulate",
        "--out",
        s(&file),
        "-q",
        "--datasets",
        "2",
        "--cells",
        "100",
        "--genes",
        "50",
    ]);
    refused(&o, &["existing file, not a directory"]);
    assert_eq!(bytes(&file), b"keep");
}

#[test]
fn dataset_names_are_parsed_with_clear_errors() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let b2 = f.data.join("batch2.h5ad");
    // A file whose name holds '=' is a path when it exists.
    let odd = d.join("a=b.h5ad");
    std::fs::copy(f.data.join("batch1.h5ad"), &odd).unwrap();
    let out = d.join("odd");
    let o = inmf(&[
        "run",
        s(&odd),
        s(&b2),
        "--out",
        s(&out),
        "--k",
        "4",
        "--epochs",
        "1",
        "--batch-size",
        "300",
        "-q",
        "--no-cache",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Unicode and spaces in names are kept.
    let out = d.join("uni");
    let o = inmf(&[
        "run",
        &format!("Δ ü={}", s(&f.data.join("batch1.h5ad"))),
        &format!("Y={}", s(&b2)),
        "--out",
        s(&out),
        "--k",
        "4",
        "--epochs",
        "1",
        "--batch-size",
        "300",
        "-q",
        "--no-cache",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = hdf5::File::open(out.join("result.h5ad")).unwrap();
    assert!(r.dataset("varm/V_Δ ü").is_ok());
    for (arg, needle) in [
        (format!("={}", s(&b2)), "empty dataset name"),
        (format!("a/b={}", s(&b2)), "contains '/'"),
        (format!("a/b c={}", s(&b2)), "contains '/'"),
    ] {
        let o = inmf(&["run", &arg, s(&b2), "--out", s(&d.join("x")), "-q"]);
        refused(&o, &[needle]);
    }
}

#[test]
fn absurd_parameters_are_clear_errors_before_any_work() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["--k", "1099511627776"], "choose --k ≤"),
        (&["--k", "4611686018427387904"], "choose --k ≤"),
        (&["--k", "100000"], "choose --k ≤"),
        (&["--epochs", "4611686018427387904"], "choose fewer epochs"),
        (&["--lambda", "1e308"], "choose a smaller lambda"),
        (&["--threads", "1000000000"], "choose at most"),
    ];
    for (i, (extra, needle)) in cases.iter().enumerate() {
        let out = dir.path().join(i.to_string());
        let t = Instant::now();
        let o = inmf_owned(&run_args(&f.data, &out, &[extra, &["--no-cache"][..]].concat()));
        refused(&o, &[needle]);
        assert!(!out.exists());
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{extra:?} took {:?}",
            t.elapsed()
        );
    }
}

/// Runs `inmf ARGS` with stdout and stderr pipes whose reading ends are
/// closed at once: every write to them fails with a broken pipe.
fn with_closed_pipes(args: &[&str]) -> std::process::ExitStatus {
    let mut child = Command::new(env!("CARGO_BIN_EXE_inmf"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    child.wait().unwrap()
}

#[test]
fn a_closed_stdout_or_stderr_never_kills_a_run() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut a = run_args(&f.data, &out, &["--no-cache"]);
    a.retain(|x| x != "-q");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let status = with_closed_pipes(&a);
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(out.join("result.h5ad").exists() && out.join("model.h5").exists());
    let status = with_closed_pipes(&["analyze", s(&out)]);
    assert_eq!(status.code(), Some(0), "{status:?}");
    // An error message to a closed stderr still gives the exit code.
    let status = with_closed_pipes(&[
        "run",
        s(&f.data.join("batch1.h5ad")),
        "--out",
        s(&f.data),
        "--k",
        "3",
    ]);
    assert_eq!(status.code(), Some(2), "{status:?}");
}

#[test]
fn temporaries_of_killed_runs_are_cleaned_by_the_next_run() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let dead = dead_pid();
    let stale = [
        format!(".checkpoint.h5.tmp-{dead}-0"),
        format!(".result.h5ad.tmp-{dead}-29"),
        format!(".model.h5.tmp-{dead}-30"),
    ];
    for n in &stale {
        std::fs::write(out.join(n), vec![0u8; 4096]).unwrap();
    }
    std::fs::create_dir(out.join(format!(".plots.tmp-{dead}-0"))).unwrap();
    // A live process's temporary (this test's) is kept.
    let live = format!(".result.h5ad.tmp-{}-0", std::process::id());
    std::fs::write(out.join(&live), b"x").unwrap();
    let mut a = run_args(&f.data, &out, &["--no-cache"]);
    a.retain(|x| x != "-q");
    let o = inmf_owned(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("removed 4 temporaries of interrupted runs"),
        "{}",
        stderr(&o)
    );
    let mut left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        vec![live, "model.h5".to_string(), "result.h5ad".to_string()]
    );
}

#[test]
fn a_model_and_result_of_different_runs_are_refused_as_a_pair() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    copy_dir(&f.run, &run);
    let other = dir.path().join("other");
    let o = inmf_owned(&run_args(&f.data, &other, &["--k", "4", "--no-cache"]));
    assert!(o.status.success(), "{}", stderr(&o));
    // What a kill between the two renames leaves: the new result, the old model.
    std::fs::copy(other.join("result.h5ad"), run.join("result.h5ad")).unwrap();
    let q = format!("Q={}", s(&f.data.join("batch2.h5ad")));
    for args in [
        vec!["analyze", s(&run), "-q"],
        vec!["project", s(&run), &q, "--out", s(&dir.path().join("p")), "-q"],
        vec![
            "add",
            s(&run),
            &q,
            "--out",
            s(&dir.path().join("a")),
            "-q",
            "--no-cache",
        ],
    ] {
        let o = inmf(&args);
        refused(&o, &["written by different runs", "again"]);
    }
    assert!(!dir.path().join("p").exists() && !dir.path().join("a").exists());
    // Two files of one run pass.
    let o = inmf(&["analyze", s(&other), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Writes a checkpoint by killing a long run once its first checkpoint
/// exists; returns the killed process's id.
fn interrupted_run(data: &Path, out: &Path) -> u32 {
    let d1 = data.join("batch1.h5ad");
    let d2 = data.join("batch2.h5ad");
    kill_after_first_checkpoint(
        &[
            "run",
            s(&d1),
            s(&d2),
            "--out",
            s(out),
            "--k",
            "5",
            "--epochs",
            "5000",
            "--batch-size",
            "300",
            "--checkpoint-seconds",
            "0",
            "-q",
            "--no-cache",
        ],
        out,
        Duration::from_millis(30),
    )
}

#[test]
fn a_killed_run_leaves_nothing_behind_after_the_next_run() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let pid = interrupted_run(&f.data, &out);
    // Whatever the kill left (a checkpoint being replaced, say), plus what a
    // kill while writing the outputs leaves.
    for n in [".result.h5ad.tmp", ".model.h5.tmp"] {
        std::fs::write(out.join(format!("{n}-{pid}-7")), vec![1u8; 1000]).unwrap();
    }
    let (d1, d2) = (f.data.join("batch1.h5ad"), f.data.join("batch2.h5ad"));
    // A plain rerun (not --resume) replaces the interrupted run.
    let o = inmf(&[
        "run",
        s(&d1),
        s(&d2),
        "--out",
        s(&out),
        "--k",
        "5",
        "--epochs",
        "2",
        "--batch-size",
        "300",
        "--no-cache",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("temporaries of interrupted runs"),
        "{}",
        stderr(&o)
    );
    let mut left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["model.h5", "result.h5ad"]);
}

#[test]
fn resume_says_which_parameter_differs_and_names_a_damaged_checkpoint() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    interrupted_run(&f.data, &out);
    let ck = out.join("checkpoint.h5");
    let (d1, d2) = (f.data.join("batch1.h5ad"), f.data.join("batch2.h5ad"));
    let resume = |extra: &[&str]| {
        let mut a = vec![
            "run",
            s(&d1),
            s(&d2),
            "--out",
            s(&out),
            "--batch-size",
            "300",
            "--checkpoint-seconds",
            "0",
            "-q",
            "--no-cache",
            "--resume",
        ];
        a.extend_from_slice(extra);
        inmf(&a)
    };
    let o = resume(&["--k", "7", "--epochs", "5000"]);
    refused(&o, &["--k 7 (checkpoint: 5)"]);
    assert!(!stderr(&o).contains("OnlineParams"), "{}", stderr(&o));
    let o = resume(&["--k", "5", "--epochs", "5000", "--seed", "2", "--lambda", "3"]);
    refused(&o, &["--seed 2 (checkpoint: 1)", "--lambda 3 (checkpoint: 5)"]);
    let o = resume(&["--k", "5", "--epochs", "40"]);
    refused(&o, &["--epochs 40 (checkpoint: 5000)"]);
    let o = resume(&["--k", "5", "--epochs", "5000", "--shuffle-block", "77"]);
    refused(&o, &["--shuffle-block 77 (checkpoint: 1000)"]);
    assert!(ck.exists(), "a refused resume keeps the checkpoint");

    let good = bytes(&ck);
    let damaged = [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("empty", Vec::new()),
    ];
    for (what, content) in damaged {
        std::fs::write(&ck, &content).unwrap();
        let o = resume(&["--k", "5", "--epochs", "5000"]);
        refused(&o, &["checkpoint.h5 is damaged", "run without --resume"]);
        let e = stderr(&o);
        assert_eq!(
            e.matches("unable to open file").count(),
            1,
            "{what}: the cause printed twice: {e}"
        );
    }
    // Values no run writes (an edit flipped W's bytes to NaN).
    std::fs::write(&ck, &good).unwrap();
    {
        let h = open_rw_unlocked(&ck);
        let w = h.dataset("W").unwrap();
        let mut a: ndarray::Array2<f64> = w.read_2d().unwrap();
        a[[0, 3]] = f64::NAN;
        w.write(&a).unwrap();
    }
    let o = resume(&["--k", "5", "--epochs", "5000"]);
    refused(
        &o,
        &["checkpoint.h5 is damaged", "`W` holds the non-finite value NaN"],
    );
}

#[test]
fn damaged_models_and_results_are_named_with_exit_2() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let q = format!("C={}", s(&f.data.join("batch2.h5ad")));
    let model_case = |name: &str, edit: &dyn Fn(&Path)| {
        let run = dir.path().join(name);
        copy_dir(&f.run, &run);
        std::fs::remove_file(run.join("result.h5ad")).unwrap();
        edit(&run.join("model.h5"));
        run
    };
    let truncated = model_case("truncated", &|p| {
        let b = bytes(p);
        std::fs::write(p, &b[..b.len() / 2]).unwrap();
    });
    let nan_w = model_case("nan", &|p| {
        let h = open_rw_unlocked(p);
        let w = h.dataset("W").unwrap();
        let mut a: ndarray::Array2<f64> = w.read_2d().unwrap();
        a[[2, 1]] = f64::NAN;
        w.write(&a).unwrap();
    });
    let no_a = model_case("no_a", &|p| {
        let h = open_rw_unlocked(p);
        h.unlink("datasets/1/A").unwrap();
    });
    for (run, needle) in [
        (&truncated, "truncated"),
        (&nan_w, "`W` holds the non-finite value NaN at row 2, column 1"),
        (&no_a, "'A'"),
    ] {
        let model = run.join("model.h5").display().to_string();
        let out = dir.path().join("out");
        let o = inmf(&["add", s(run), &q, "--out", s(&out), "-q", "--no-cache"]);
        refused(&o, &[&format!("{model} is damaged"), needle, "restore it"]);
        let o = inmf(&["project", s(run), &q, "--out", s(&out), "-q"]);
        refused(&o, &[&format!("{model} is damaged"), needle]);
        assert!(!out.exists(), "an output was started for a damaged model");
    }
    // A truncated result.h5ad.
    let run = dir.path().join("result");
    copy_dir(&f.run, &run);
    let r = run.join("result.h5ad");
    let b = bytes(&r);
    std::fs::write(&r, &b[..b.len() / 2]).unwrap();
    let o = inmf(&["analyze", s(&run), "-q"]);
    refused(&o, &["result.h5ad is damaged", "truncated"]);
}

/// A tmpfs of `kib` KiB mounted at `dir`, unmounted on drop; `None` (with
/// the reason printed) where this process may not mount.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, kib: usize) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs", s(dir)])
            .output();
        match o {
            Ok(o) if o.status.success() => Some(Self(dir.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "NOT TESTED: a full disk, because mounting a tmpfs failed here ({}); run the tests as root",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("NOT TESTED: a full disk, because `mount` cannot run here ({e})");
                None
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_exit_1_with_the_space_needed_and_leaves_nothing() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("full"), 300) else {
        return;
    };
    let full = &disk.0;
    // An earlier run's outputs in OUT survive a run that does not fit.
    let out = full.join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("model.h5"), b"earlier model").unwrap();
    std::fs::write(out.join("result.h5ad"), b"earlier result").unwrap();
    let o = inmf_owned(&run_args(
        &f.data,
        &out,
        &["--k", "20", "--cache", s(&dir.path().join("cache"))],
    ));
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no space left on the device holding"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("MB are needed"), "{}", stderr(&o));
    assert_eq!(bytes(&out.join("model.h5")), b"earlier model");
    assert_eq!(bytes(&out.join("result.h5ad")), b"earlier result");
    assert_eq!(files_below(full).len(), 2, "{:?}", files_below(full));

    // The same for add and project.
    let q = format!("C={}", s(&f.data.join("batch2.h5ad")));
    let o = inmf(&[
        "add",
        s(&f.run),
        &q,
        "--out",
        s(&full.join("add")),
        "-q",
        "--no-cache",
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("MB are needed"), "{}", stderr(&o));
    let o = inmf(&["project", s(&f.run), &q, "--out", s(&full.join("proj")), "-q"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_eq!(files_below(full).len(), 2, "{:?}", files_below(full));

    // Writers without an estimate fail mid-file: exit 1, no crash, no partial file.
    let o = inmf(&[
        "simulate",
        "-q",
        "--out",
        s(&full.join("sim")),
        "--datasets",
        "2",
        "--cells",
        "3000",
        "--genes",
        "500",
    ]);
    assert_eq!(code(&o), 1, "{:?} {}", o.status, stderr(&o));
    assert!(
        stderr(&o).contains("no space left on the device"),
        "{}",
        stderr(&o)
    );
    let left: Vec<PathBuf> = files_below(&full.join("sim"));
    assert!(
        left.iter()
            .all(|p| !p.file_name().unwrap().to_string_lossy().contains(".tmp-")),
        "{left:?}"
    );

    // analyze: plots appear complete or not at all.
    let run = dir.path().join("run");
    copy_dir(&f.run, &run);
    let plots = full.join("plots");
    let o = inmf(&["analyze", s(&run), "--out", s(&plots), "-q"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("No space left on device"), "{}", stderr(&o));
    assert!(!stderr(&o).contains(".tmp-"), "{}", stderr(&o));
    assert!(files_below(&plots).is_empty(), "{:?}", files_below(&plots));
}
