"""``inmf.tl.quantile_norm``: rliger's quantile normalization of H."""

from __future__ import annotations

import numpy as np

from . import _inmf


def _default_batch_key(adata):
    uns = adata.uns.get("inmf", {})
    if "batch_key" in uns:
        return uns["batch_key"]
    if "dataset" in adata.obs.columns:
        return "dataset"
    return "batch"


def quantile_norm(
    adata,
    batch_key=None,
    *,
    use_rep="X_inmf",
    key_added="X_inmf_norm",
    reference=None,
    seed=1,
    threads=None,
):
    """Quantile-normalizes H across batches as ``inmf analyze`` does
    (rliger's ``quantileNorm``; docs/algorithms.md §10) into
    ``adata.obsm[key_added]`` (float64), for
    ``sc.pp.neighbors(adata, use_rep="X_inmf_norm")``. Returns None.

    ``batch_key``: the obs column of the batches (default: the one
    ``inmf.pp.online_inmf`` used, else ``"dataset"`` as in a result of
    ``inmf.run``, else ``"batch"``). ``reference``: the batch the others are
    mapped onto (default: the one with the most cells). H is taken in
    single precision, as ``inmf analyze`` reads it. Rows of cells the
    factorization left out (NaN) stay NaN. Same H and seed give the same
    bits as ``inmf analyze``.
    """
    from ._anndata import batches

    if use_rep not in adata.obsm:
        raise ValueError(
            f"adata.obsm has no {use_rep!r}: run inmf.pp.online_inmf(adata, ...) first, or give use_rep"
        )
    key = _default_batch_key(adata) if batch_key is None else batch_key
    parts = batches(adata, key)
    h = np.asarray(adata.obsm[use_rep], dtype=np.float64)
    ok = ~np.isnan(h).any(axis=1)
    codes = np.full(adata.n_obs, -1, dtype=np.int64)
    for i, (_, rows) in enumerate(parts):
        codes[rows] = i
    names = [n for n, _ in parts]
    ref = None
    if reference is not None:
        if str(reference) not in names:
            raise ValueError(f"reference {reference!r} is not a batch of adata.obs[{key!r}] ({', '.join(names)})")
        ref = names.index(str(reference))
    sel = np.flatnonzero(ok)
    # In single precision, as `inmf analyze` reads H.
    hs = np.ascontiguousarray(h[sel], dtype="<f4")
    cs = np.ascontiguousarray(codes[sel], dtype="<u4")
    raw, used = _inmf.quantile_norm(hs.tobytes(), hs.shape[0], h.shape[1], cs.tobytes(), len(parts),
                                    reference=ref, seed=seed, threads=threads)
    out = np.full(h.shape, np.nan, dtype=np.float64)
    out[sel] = np.frombuffer(raw, dtype="<f4").reshape(hs.shape).astype(np.float64)
    adata.obsm[key_added] = out
    uns = adata.uns.setdefault("inmf", {})
    if isinstance(uns, dict):
        uns["quantile_norm"] = {"batch_key": key, "reference": names[used], "seed": seed, "use_rep": use_rep}
    return None

