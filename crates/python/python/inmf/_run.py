"""``inmf.run``: files in, streamed by the engine's reader."""

from __future__ import annotations

import os

from . import _inmf
from ._anndata import private_dir


def _inputs(files):
    """``[(name, path)]`` from a dict ``{name: path}`` or a list of paths
    (names: the file stems) or ``"NAME=PATH"`` strings."""
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    if isinstance(files, dict):
        return [(str(n), os.fspath(p)) for n, p in files.items()]
    out = []
    for f in files:
        f = os.fspath(f)
        if not os.path.isfile(f) and "=" in f:
            name, path = f.split("=", 1)
        else:
            name, path = os.path.splitext(os.path.basename(f))[0], f
        out.append((name, path))
    if not out:
        raise ValueError("no input dataset given")
    return out


def run(
    files,
    out=None,
    *,
    k=20,
    lam=5.0,
    epochs=5,
    batch_size=None,
    seed=1,
    threads=None,
    matrix="X",
    n_genes=0,
    cache=True,
    quiet=True,
):
    """Online iNMF of datasets in files (``inmf run``), streamed from disk.

    ``files``: paths (dataset names = file stems), ``"NAME=PATH"`` strings,
    or a dict ``{name: path}``; ``.h5ad`` (``matrix="X"``, ``"raw"`` or
    ``"layer:NAME"``), 10x ``.h5``, loom or LIGER ``.h5``. The reader
    streams the cells in mini-batches, so memory does not grow with the
    number of cells; the inputs are only read.

    ``out``: the output directory (``model.h5``, ``result.h5ad``, and the
    preprocessed cache ``.inmf-cache`` beside it unless ``cache=False``
    — the CLI's ``--no-cache`` —, as the command line writes them; ``inmf.Model.load(out)`` continues from it). With
    ``out=None`` the outputs go to a private temporary directory that is
    removed after the result is read.

    Returns the result AnnData (``obsm['X_inmf']`` = H, ``obs['dataset']``,
    ``varm['W']``, ``uns['inmf']``, …), loaded in memory.
    """
    import anndata

    inputs = _inputs(files)
    kw = dict(k=k, lam=lam, epochs=epochs, batch_size=batch_size, seed=seed, threads=threads,
              matrix=matrix, n_genes=n_genes, cache=cache, quiet=quiet)
    if out is not None:
        _inmf.run(inputs, os.fspath(out), **kw)
        return anndata.read_h5ad(os.path.join(os.fspath(out), "result.h5ad"))
    with private_dir() as d:
        o = os.path.join(d, "out")
        _inmf.run(inputs, o, **kw)
        return anndata.read_h5ad(os.path.join(o, "result.h5ad"))
