"""inmf: online integrative NMF (LIGER family) for single-cell data, scanpy-style.

- ``inmf.pp.online_inmf(adata, batch_key="batch")``: factorize the batches of
  an in-memory AnnData; H into ``adata.obsm["X_inmf"]``.
- ``inmf.run(files, out=...)``: the same from ``.h5ad``/10x/loom files,
  streamed from disk (memory flat in the number of cells); returns the
  result AnnData.
- ``inmf.tl.quantile_norm(adata)``: quantile-normalized H into
  ``adata.obsm["X_inmf_norm"]`` for ``sc.pp.neighbors(use_rep=...)``.
- ``inmf.Model``: a saved model (``model.h5`` of ``inmf run``/``add``):
  ``load``, ``add`` new batches, ``project`` queries, ``save``.

The computations are the ``inmf`` command line's (same seed, same bits);
errors are raised with its messages: ``ValueError`` for bad input or
parameters, ``OSError`` (``FileNotFoundError``) for files,
``KeyboardInterrupt`` after Ctrl-C stopped a run.
"""

from . import pp, tl
from ._inmf import __version__
from ._model import Model
from ._run import run

__all__ = ["pp", "tl", "run", "Model", "__version__"]
