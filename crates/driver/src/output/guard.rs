//! The output guard: every command that writes checks its outputs against
//! its inputs before any work, so no output can replace what it reads or
//! another command's results.
//!
//! An output is refused (exit 2, nothing touched) when
//! - it **is** one of the command's input files (also through a symlink or
//!   a hard link: files are compared by device and inode);
//! - it **contains** an input: an output directory with an input file
//!   somewhere below it (the directory a command would write its files into
//!   must not hold what it reads), except the files a command updates by
//!   design (`inmf add --out MODEL_DIR` replaces `model.h5`, `inmf analyze`
//!   adds to `result.h5ad`);
//! - it **lies inside** an input file (a path below a regular file);
//! - it has the wrong kind: an output directory that is an existing file,
//!   an output file that is an existing directory, an output file whose
//!   directory does not exist;
//! - it would replace another kind of output set: a projection or a batch
//!   factorization written into a model directory (it would pair the model
//!   with a result it did not make), or a run written over such a result.

use std::path::{Component, Path, PathBuf};

use crate::error::DriverError;

/// What a directory output will hold, for the check against what is
/// already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputSet {
    /// `model.h5` + `result.h5ad` (`inmf run`, `inmf add`).
    Model,
    /// `result.h5ad` alone (`inmf project`, `inmf factor`).
    ResultOnly,
    /// Files of their own (`inmf analyze` plots, `inmf simulate` datasets).
    Other,
}

/// Refuses an output directory `out` that is, contains or lies inside one
/// of `inputs`, is an existing non-directory, or holds an output set of
/// another kind. `in_place` are inputs the command updates by design, which
/// may lie inside `out`.
pub(crate) fn check_output_dir(
    out: &Path,
    inputs: &[PathBuf],
    set: OutputSet,
    in_place: &[PathBuf],
) -> Result<(), DriverError> {
    let refuse = |reason: String| DriverError::UnsafeOutput {
        path: out.to_path_buf(),
        reason,
    };
    if let Ok(meta) = std::fs::metadata(out) {
        if !meta.is_dir() {
            return Err(refuse(
                "it is an existing file, not a directory; give a directory (it is created if missing)".into(),
            ));
        }
    }
    let has = |name: &str| out.join(name).exists();
    match set {
        OutputSet::ResultOnly if has("model.h5") => Err(refuse(format!(
            "it holds a model (model.h5) and the result of the run that made it; this command's \
             result.h5ad would replace that run's. Choose another directory, e.g. --out {}",
            out.join("projection").display()
        ))),
        OutputSet::Model if has("result.h5ad") && !has("model.h5") => Err(refuse(
            "it holds a result.h5ad without a model.h5 (a projection, or another tool's file), which \
             this run would replace; choose another directory"
                .into(),
        )),
        _ => Ok(()),
    }?;
    let out_abs = resolve(out);
    let in_place: Vec<PathBuf> = in_place.iter().map(|p| resolve(p)).collect();
    for input in inputs {
        if same_file(out, input) {
            return Err(refuse(format!(
                "it is the input {}; choose an output directory of its own",
                input.display()
            )));
        }
        let in_abs = resolve(input);
        if out_abs.starts_with(&in_abs) && in_abs.is_file() {
            return Err(refuse(format!(
                "it lies inside the input file {}; choose another directory",
                input.display()
            )));
        }
        if in_abs.starts_with(&out_abs) && !in_place.contains(&in_abs) {
            return Err(refuse(format!(
                "it contains the input {}; outputs never go where inputs are, choose a new directory \
                 (e.g. {})",
                input.display(),
                suggestion(out).display()
            )));
        }
    }
    Ok(())
}

/// Refuses an output file `out` that is one of `inputs` (also through a
/// link), lies inside an input file, is an existing directory, or whose
/// directory does not exist.
pub(crate) fn check_output_file(out: &Path, inputs: &[PathBuf]) -> Result<(), DriverError> {
    let refuse = |reason: String| DriverError::UnsafeOutput {
        path: out.to_path_buf(),
        reason,
    };
    if out.is_dir() {
        return Err(refuse(
            "it is an existing directory; give a file name, e.g. DIR/NAME.h5ad".into(),
        ));
    }
    if out.file_name().is_none() {
        return Err(refuse(
            "it has no file name; give a path like DIR/NAME.h5ad".into(),
        ));
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(refuse(format!(
            "its directory {} does not exist; create it first (mkdir -p {})",
            parent.display(),
            parent.display()
        )));
    }
    let out_abs = resolve(out);
    for input in inputs {
        if same_file(out, input) || out_abs == resolve(input) {
            return Err(refuse(format!(
                "it is the input {}; writing there would destroy it. Choose another file name",
                input.display()
            )));
        }
    }
    Ok(())
}

/// A sibling of `out` to suggest instead.
fn suggestion(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| format!("{}-inmf", n.to_string_lossy()))
        .unwrap_or_else(|| "inmf-out".into());
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(name),
        _ => PathBuf::from(name),
    }
}

/// True when both paths exist and are the same file (device and inode).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// An absolute path with symlinks resolved as far as the path exists and
/// `.`/`..` applied in order (after resolving what precedes them, as the
/// kernel does).
pub(crate) fn resolve(p: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => {
                out.push(other);
                if let Ok(real) = std::fs::canonicalize(&out) {
                    out = real;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(e: DriverError) -> String {
        e.to_string()
    }

    #[test]
    fn directory_outputs_are_checked_against_inputs_and_sets() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let input = d.join("in").join("a.h5ad");
        std::fs::create_dir(d.join("in")).unwrap();
        std::fs::write(&input, b"x").unwrap();
        let inputs = vec![input.clone()];
        let ok = |out: &Path| check_output_dir(out, &inputs, OutputSet::Model, &[]);

        assert!(ok(&d.join("out")).is_ok());
        assert!(msg(ok(&input).unwrap_err()).contains("existing file"));
        assert!(msg(ok(&d.join("in")).unwrap_err()).contains("contains the input"));
        assert!(msg(ok(d).unwrap_err()).contains("contains the input"));
        assert!(msg(ok(&input.join("sub")).unwrap_err()).contains("inside the input file"));
        std::os::unix::fs::symlink(&input, d.join("link")).unwrap();
        assert!(ok(&d.join("link")).is_err());
        // The same directory through `..` is still the input's directory.
        assert!(ok(&d.join("out").join("..").join("in")).is_err());

        let run = d.join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::write(run.join("model.h5"), b"m").unwrap();
        std::fs::write(run.join("result.h5ad"), b"r").unwrap();
        let e = check_output_dir(&run, &inputs, OutputSet::ResultOnly, &[]).unwrap_err();
        assert!(msg(e).contains("would replace that run's"));
        assert!(check_output_dir(&run, &inputs, OutputSet::Model, &[]).is_ok());

        let proj = d.join("proj");
        std::fs::create_dir(&proj).unwrap();
        std::fs::write(proj.join("result.h5ad"), b"r").unwrap();
        assert!(check_output_dir(&proj, &inputs, OutputSet::Model, &[]).is_err());
        assert!(check_output_dir(&proj, &inputs, OutputSet::ResultOnly, &[]).is_ok());

        // `inmf add` may update its model directory in place, not hold new inputs there.
        let model_inputs = vec![run.join("model.h5")];
        assert!(check_output_dir(&run, &model_inputs, OutputSet::Model, &[]).is_err());
        assert!(check_output_dir(&run, &model_inputs, OutputSet::Model, &model_inputs).is_ok());
        std::fs::write(run.join("new.h5ad"), b"n").unwrap();
        let with_new = vec![run.join("model.h5"), run.join("new.h5ad")];
        let e = check_output_dir(&run, &with_new, OutputSet::Model, &model_inputs).unwrap_err();
        assert!(msg(e).contains("contains the input"));
    }

    #[test]
    fn file_outputs_are_checked_against_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let input = d.join("matrix.mtx");
        std::fs::write(&input, b"x").unwrap();
        let inputs = vec![input.clone()];
        assert!(check_output_file(&d.join("out.h5ad"), &inputs).is_ok());
        assert!(msg(check_output_file(&input, &inputs).unwrap_err()).contains("destroy"));
        std::fs::hard_link(&input, d.join("hard")).unwrap();
        assert!(check_output_file(&d.join("hard"), &inputs).is_err());
        assert!(msg(check_output_file(d, &inputs).unwrap_err()).contains("existing directory"));
        let e = check_output_file(&d.join("no").join("out.h5ad"), &inputs).unwrap_err();
        assert!(msg(e).contains("does not exist; create it first"));
    }

    #[test]
    fn resolve_folds_missing_components() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(resolve(&dir.path().join("a/../b/./c")), base.join("b/c"));
    }
}
