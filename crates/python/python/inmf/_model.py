"""``inmf.Model``: scenarios 2 (add) and 3 (project) on a saved model."""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

from . import _inmf
from ._anndata import batches, check_var_names, counts_matrix, private_dir, read_h, uns_of, write_batches


class Model:
    """A model saved by ``inmf run``/``inmf add`` or ``inmf.run(out=...)``:
    the folder holding its ``model.h5`` (and ``result.h5ad``).

    ``Model.load(run_dir)`` reads it; ``add`` learns new batches into W
    (``inmf add --new-only``), keeping the updated model in a private
    temporary folder until ``save``; ``project`` solves H of a query on W
    (``inmf project``); ``save(dir)`` writes ``dir/model.h5`` (and its
    ``result.h5ad``), which the command line reads.

    Attributes: ``genes`` (the model's genes), ``datasets`` (names), ``k``,
    ``lam``, ``W`` (genes × k, float64).
    """

    def __init__(self, directory, _owned=None):
        self._dir = os.fspath(directory)
        self._owned = _owned  # a TemporaryDirectory holding an unsaved model
        genes, datasets, k, lam, w = _inmf.load_model(os.path.join(self._dir, "model.h5"))
        self.genes = list(genes)
        self.datasets = list(datasets)
        self.k = k
        self.lam = lam
        self.W = np.frombuffer(w, dtype="<f8").reshape(len(self.genes), k).copy()

    @classmethod
    def load(cls, run_dir):
        """The model of ``run_dir`` (a folder with ``model.h5``)."""
        run_dir = os.fspath(run_dir)
        if not os.path.isdir(run_dir):
            raise FileNotFoundError(f"no model folder {run_dir} (give the --out folder of inmf run or inmf add)")
        return cls(run_dir)

    @property
    def path(self):
        """The folder the model is read from (a private temporary one after ``add``)."""
        return self._dir

    def __repr__(self):
        return f"inmf.Model(k={self.k}, genes={len(self.genes)}, datasets={self.datasets})"

    def _prepared(self, adata, batch_key, layer, d):
        x = counts_matrix(adata, layer)
        check_var_names(adata)
        parts = batches(adata, batch_key)
        return parts, write_batches(adata, parts, x, d)

    def add(
        self,
        adata,
        batch_key="batch",
        *,
        layer=None,
        key_added="X_inmf",
        epochs=5,
        batch_size=None,
        seed=1,
        threads=None,
        quiet=True,
    ):
        """Learns the batches of ``adata`` into the model (``inmf add
        --new-only``: W updated, the old datasets' statistics kept, their
        files not read again). Writes H of the new cells into
        ``adata.obsm[key_added]`` and ``adata.uns['inmf']``; the model then
        holds the new datasets too (``save`` to keep it). Returns None."""
        parts_dir = tempfile.TemporaryDirectory(prefix="inmf-")
        try:
            d = parts_dir.name
            parts, inputs = self._prepared(adata, batch_key, layer, d)
            out = os.path.join(d, "model")
            _inmf.add(self._dir, inputs, out, epochs=epochs, batch_size=batch_size, seed=seed,
                      threads=threads, new_only=True, quiet=quiet)
            h, res = read_h(os.path.join(out, "result.h5ad"), parts, adata.n_obs)
            # Keep only the new model: the batch copies and the cache go.
            shutil.rmtree(os.path.join(d, ".inmf-cache"), ignore_errors=True)
            for f in os.listdir(d):
                if f.endswith(".h5ad"):
                    os.remove(os.path.join(d, f))
        except BaseException:
            parts_dir.cleanup()
            raise
        adata.obsm[key_added] = h
        uns = uns_of(res)
        uns["batch_key"] = batch_key
        uns["key_added"] = key_added
        adata.uns["inmf"] = uns
        old = self._owned
        self.__init__(out, _owned=parts_dir)
        if old is not None:
            old.cleanup()
        return None

    def project(self, adata, batch_key=None, *, layer=None, key_added="X_inmf", threads=None, quiet=True):
        """Solves H of the cells of ``adata`` on the model's W (``inmf
        project``; the model is not changed) into ``adata.obsm[key_added]``.
        ``batch_key=None`` treats all cells as one query dataset. Returns None."""
        with private_dir() as d:
            parts, inputs = self._prepared(adata, batch_key, layer, d)
            out = os.path.join(d, "out")
            _inmf.project(self._dir, inputs, out, threads=threads, quiet=quiet)
            h, res = read_h(os.path.join(out, "result.h5ad"), parts, adata.n_obs)
        adata.obsm[key_added] = h
        uns = uns_of(res)
        uns["key_added"] = key_added
        adata.uns["inmf_projection"] = uns
        return None

    def save(self, directory):
        """Writes ``directory/model.h5`` (and the ``result.h5ad`` of the same
        run, when there is one), creating the folder; each file appears
        complete or not at all. ``inmf add directory …`` and ``inmf project
        directory …`` read it."""
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        for name in ("model.h5", "result.h5ad"):
            src = os.path.join(self._dir, name)
            if not os.path.isfile(src):
                continue
            dst = os.path.join(directory, name)
            if os.path.exists(dst) and os.path.samefile(src, dst):
                continue
            tmp = os.path.join(directory, f".{name}.tmp-inmf-{os.getpid()}")
            try:
                shutil.copyfile(src, tmp)
                os.replace(tmp, dst)
            except BaseException:
                if os.path.exists(tmp):
                    os.remove(tmp)
                raise
        return None
