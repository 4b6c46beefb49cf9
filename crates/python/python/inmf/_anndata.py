"""In-memory AnnData in, results back into it.

The engine reads its inputs from files (the reader the command line uses),
so an in-memory AnnData is handed to it as one ``.h5ad`` file per batch in a
private temporary directory (``tempfile``: the system's, never next to the
user's files), holding the counts as they are (CSR or dense, same dtype) and
the cell and gene names. The run's outputs go to the same directory, H is
read back into the AnnData, and the directory is removed — also on error
or Ctrl-C. The temporary copy takes about as much disk as the counts'
``.h5ad`` would.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import _inmf


@contextmanager
def private_dir():
    """A private temporary directory (mode 0700), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="inmf-") as d:
        yield d


def counts_matrix(adata, layer):
    """The counts matrix of ``adata`` (``X`` or ``layers[layer]``), checked."""
    if getattr(adata, "isbacked", False):
        raise ValueError(
            "the AnnData is backed (opened with backed='r'): give its file to inmf.run([...]), "
            "which streams it from disk, or load it into memory with adata.to_memory()"
        )
    if layer is None:
        x, where = adata.X, "adata.X"
    else:
        if layer not in adata.layers:
            raise ValueError(
                f"layer {layer!r} is not in adata.layers (it has: {', '.join(adata.layers.keys()) or 'none'})"
            )
        x, where = adata.layers[layer], f"adata.layers[{layer!r}]"
    if x is None:
        raise ValueError(f"{where} is empty: inmf needs raw counts there")
    if sp.issparse(x):
        x = sp.csr_matrix(x) if not isinstance(x, (sp.csr_matrix, sp.csr_array)) else x
        values = x.data
    else:
        x = np.asarray(x)
        values = x
    if values.dtype.kind not in "iuf":
        raise ValueError(f"{where} has dtype {values.dtype}; inmf needs numeric raw counts")
    if values.size and not np.all(np.isfinite(values)):
        raise ValueError(f"{where} holds NaN or infinite values; inmf needs raw counts (finite, >= 0)")
    if values.size and values.min() < 0:
        raise ValueError(
            f"{where} holds negative values ({values.min()}); inmf needs raw counts, not "
            "log-normalized or scaled data (give the counts layer with layer=...)"
        )
    if x.ndim != 2 or x.shape != (adata.n_obs, adata.n_vars):
        raise ValueError(f"{where} has shape {x.shape}, not (n_obs, n_vars) = {(adata.n_obs, adata.n_vars)}")
    return x


def batches(adata, batch_key):
    """``[(name, row indices)]`` of the batches in ``adata.obs[batch_key]``:
    categories in their order, other values in order of first appearance.
    Batches need not be contiguous."""
    if batch_key is None:
        return [("query", np.arange(adata.n_obs))]
    if batch_key not in adata.obs.columns:
        raise ValueError(
            f"batch_key {batch_key!r} is not a column of adata.obs (columns: {', '.join(map(str, adata.obs.columns)) or 'none'})"
        )
    col = adata.obs[batch_key]
    if col.isna().any():
        raise ValueError(f"adata.obs[{batch_key!r}] is missing for {int(col.isna().sum())} cells; every cell needs a batch")
    if isinstance(col.dtype, pd.CategoricalDtype):
        names = [c for c in col.cat.categories if (col == c).any()]
    else:
        names = list(pd.unique(col))
    out = []
    for n in names:
        s = str(n)
        if not s or "/" in s:
            raise ValueError(f"batch name {s!r} cannot name a dataset (it must be non-empty and hold no '/')")
        out.append((s, np.flatnonzero((col == n).to_numpy())))
    return out


def check_var_names(adata):
    if not adata.var_names.is_unique:
        raise ValueError(
            "adata.var_names are not unique; genes are matched by name: call adata.var_names_make_unique() first"
        )


def write_batches(adata, parts, x, directory):
    """Writes each batch as ``<directory>/<i>.h5ad``; returns ``[(name, path)]``."""
    import anndata

    var = pd.DataFrame(index=pd.Index(adata.var_names.astype(str), name=None))
    inputs = []
    for i, (name, rows) in enumerate(parts):
        sub = x[rows]
        obs = pd.DataFrame(index=pd.Index(adata.obs_names[rows].astype(str), name=None))
        path = os.path.join(directory, f"{i}.h5ad")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            anndata.AnnData(X=sub, obs=obs, var=var).write_h5ad(path)
        inputs.append((name, path))
    return inputs


def read_h(result_path, parts, n_obs, key="X_inmf"):
    """H of ``result.h5ad`` in the rows of the in-memory AnnData (cells the
    run dropped, having no counts, are NaN), and the result's ``uns['inmf']``."""
    import anndata

    res = anndata.read_h5ad(result_path)
    h_res = np.asarray(res.obsm[key])
    h = np.full((n_obs, h_res.shape[1]), np.nan, dtype=h_res.dtype)
    order = {name: rows for name, rows in parts}
    dataset = res.obs["dataset"].astype(str).to_numpy()
    cell = res.obs["cell_index"].to_numpy().astype(np.int64)
    for name, rows in order.items():
        m = dataset == name
        h[rows[cell[m]]] = h_res[m]
    return h, res


def uns_of(res):
    uns = dict(res.uns.get("inmf", {}))
    uns["genes"] = list(map(str, res.var_names))
    return uns


def w_in_var(adata, res):
    """W (genes of the model × K) spread over ``adata.var_names``; genes the
    model did not use get 0."""
    w = np.zeros((adata.n_vars, res.varm["W"].shape[1]), dtype=np.float64)
    pos = adata.var_names.get_indexer(res.var_names)
    ok = pos >= 0
    w[pos[ok]] = np.asarray(res.varm["W"])[ok]
    return w


def online_inmf(
    adata,
    batch_key="batch",
    *,
    k=20,
    lam=5.0,
    epochs=5,
    batch_size=None,
    layer=None,
    key_added="X_inmf",
    seed=1,
    threads=None,
    quiet=True,
):
    """Online iNMF of the batches of an in-memory AnnData (``inmf run``).

    ``adata.X`` (or ``adata.layers[layer]``) holds raw counts, CSR or dense;
    ``adata.obs[batch_key]`` names each cell's batch (batches need not be
    contiguous; categories keep their order, other values the order of
    first appearance — the order in which ``inmf run`` would be given the
    batch files). Writes, and returns None:

    - ``adata.obsm[key_added]``: H, cells × k (float64); cells without
      counts in the selected genes are dropped by the run and get NaN rows
      (a warning says how many);
    - ``adata.varm["W"]``: the shared metagenes W, genes × k; genes the
      model does not use (not selected) are 0; ``uns['inmf']['genes']``
      lists those it uses;
    - ``adata.uns["inmf"]``: parameters, objective per epoch, final
      objective, datasets, ``batch_key`` and ``key_added``.

    ``batch_size=None`` chooses the mini-batch as the command line does
    (5000 cells, or all when there are fewer). Same data and seed give the
    same H as ``inmf run`` on the batch files, bit for bit, at any
    ``threads``. The counts are passed to the engine through a private
    temporary directory (see the module doc).
    """
    x = counts_matrix(adata, layer)
    check_var_names(adata)
    parts = batches(adata, batch_key)
    with private_dir() as d:
        inputs = write_batches(adata, parts, x, d)
        out = os.path.join(d, "out")
        summary = _inmf.run(
            inputs,
            out,
            k=k,
            lam=lam,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            threads=threads,
            quiet=quiet,
        )
        h, res = read_h(os.path.join(out, "result.h5ad"), parts, adata.n_obs)
        res = res.to_memory() if getattr(res, "isbacked", False) else res
    missing = int(np.isnan(h[:, 0]).sum()) if h.shape[1] else 0
    if missing:
        warnings.warn(
            f"{missing} cells have no counts in the selected genes and were left out: their "
            f"obsm[{key_added!r}] rows are NaN (filter them first, e.g. sc.pp.filter_cells(adata, min_counts=1))",
            stacklevel=2,
        )
    adata.obsm[key_added] = h
    adata.varm["W"] = w_in_var(adata, res)
    uns = uns_of(res)
    uns["batch_key"] = batch_key
    uns["key_added"] = key_added
    uns["cells_left_out"] = missing
    uns["batch_size"] = summary["batch_size"]
    adata.uns["inmf"] = uns
    return None
