"""Shared fixtures: the repository's `inmf` binary, the shared real data
(or a simulated stand-in), and one CLI run on it that the Python calls are
compared with."""

import os
import subprocess
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DATA = REPO.parent / "shared" / "data"

# Small, fast settings used by the CLI run and every Python call compared with it.
K, EPOCHS = 10, 3


def cli_path():
    p = Path(os.environ.get("INMF_CLI", REPO / "target" / "debug" / "inmf"))
    if not p.is_file():
        pytest.fail(
            f"the inmf binary {p} is not there: build it with `cargo build` (scripts/test does) "
            "or set INMF_CLI to it", pytrace=False)
    return p


def cli(*args, check=True):
    """Runs the binary; returns the CompletedProcess."""
    r = subprocess.run([str(cli_path()), *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"inmf {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr}")
    return r


@pytest.fixture(scope="session")
def kang(tmp_path_factory):
    """ctrl.h5ad and stim.h5ad of kang_ifnb_muscat (1556 real cells), or,
    where the shared data folder is absent, two simulated batches under the
    same names (800 and 700 cells, 2,000 genes, 5 cell types; obs `batch`
    and `cell_type` as in the real files), said loudly."""
    d = DATA / "kang_ifnb_muscat"
    if d.is_dir():
        return d / "ctrl.h5ad", d / "stim.h5ad"
    warnings.warn(
        f"*** the real dataset {d} is not there (the shared data folder ../shared/data beside "
        "the repository holds it): the Python tests run on two simulated batches instead ***",
        stacklevel=1,
    )
    import anndata
    import pandas as pd

    out = tmp_path_factory.mktemp("simulated")
    cli("simulate", "--out", out / "raw", "--datasets", 2, "--cells", "800,700", "--genes", 2000,
        "--cell-types", 5, "--seed", 1, "--quiet")
    paths = []
    for src, name in (("batch1", "ctrl"), ("batch2", "stim")):
        a = anndata.read_h5ad(out / "raw" / f"{src}.h5ad")
        a.obs["batch"] = pd.Categorical([name] * a.n_obs)
        a.write_h5ad(out / f"{name}.h5ad")
        paths.append(out / f"{name}.h5ad")
    return tuple(paths)


@pytest.fixture(scope="session")
def cli_run(kang, tmp_path_factory):
    """`inmf run ctrl stim --k K --epochs EPOCHS` and its result AnnData."""
    import anndata

    out = tmp_path_factory.mktemp("cli") / "run"
    ctrl, stim = kang
    cli("run", ctrl, stim, "--out", out, "--k", K, "--epochs", EPOCHS, "--quiet")
    return out, anndata.read_h5ad(out / "result.h5ad")


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Points the temporary directory of the package at an empty folder and
    checks it is empty again afterwards (nothing left behind)."""
    import tempfile

    t = tmp_path / "systemp"
    t.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(t))
    yield t
    left = list(t.iterdir())
    assert not left, f"temporaries left behind: {left}"
