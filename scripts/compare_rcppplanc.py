"""inmf against RcppPlanc's engine (pyplanc) on identical scaled matrices.

Steps (each run by scripts/compare-rcppplanc in its own process):
  export   from raw inputs and an `inmf run` on them (its model.h5: the
           selected genes and each dataset's scale factors s_g), writes each
           dataset's scaled matrix x̂_gc = x_gc / nUMI_c / s_g over the model's
           genes (cells with counts in them) as a prescaled 10x-layout file
           NAME_scaleData.h5 (float64) that `inmf run` passes through unchanged.
  planc    loads those files, runs pyplanc.oinmf (genes × cells CSC float64)
           N times and saves every run's factors (pyplanc has no seed: runs
           differ); prints its times and RSS.
  evaluate the iNMF objective Σ‖X_i − (W+V_i)H_i‖² + λΣ‖V_iH_i‖² of both
           engines' factors on the same matrices.
"""

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def read_x(path):
    """Cells × genes CSR counts of an .h5ad (X stored as CSR) and its gene names."""
    with h5py.File(path, "r") as f:
        x = f["X"]
        if x.attrs.get("encoding-type", "") not in ("csr_matrix", b"csr_matrix"):
            raise SystemExit(f"{path}: X is not a CSR matrix")
        n_cells, n_genes = (int(v) for v in x.attrs["shape"])
        m = sp.csr_matrix((x["data"][()], x["indices"][()], x["indptr"][()]), shape=(n_cells, n_genes))
        var = f["var"]
        idx = var.attrs["_index"]
        idx = idx.decode() if isinstance(idx, bytes) else idx
        genes = [g.decode() if isinstance(g, bytes) else g for g in var[idx][()]]
    return m, genes


def write_scaled(path, scaled, genes, cells):
    """A prescaled 10x-layout file: matrix/ holds genes × cells CSC = cells × genes CSR."""
    tmp = Path(str(path) + ".part")
    with h5py.File(tmp, "w") as f:
        g = f.create_group("matrix")
        g["data"] = scaled.data.astype(np.float64)
        g["indices"] = scaled.indices.astype(np.int64)
        g["indptr"] = scaled.indptr.astype(np.int64)
        g["shape"] = np.array([scaled.shape[1], scaled.shape[0]], dtype=np.int64)
        g["barcodes"] = np.array([c.encode() for c in cells])
        feat = g.create_group("features")
        feat["name"] = np.array([n.encode() for n in genes])
        feat["id"] = np.array([n.encode() for n in genes])
        feat["feature_type"] = np.array([b"Gene Expression"] * len(genes))
        feat["genome"] = np.array([b"sim"] * len(genes))
    tmp.rename(path)


def cmd_export(a):
    with h5py.File(Path(a.run) / "model.h5", "r") as f:
        genes = [g.decode() if isinstance(g, bytes) else g for g in f["genes"][()]]
        scales = [f[f"datasets/{i}/scale"][()] for i in range(len(a.inputs))]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, path in enumerate(a.inputs):
        x, names = read_x(path)
        pos = {g: j for j, g in enumerate(names)}
        cols = np.array([pos[g] for g in genes])
        numi = np.asarray(x.sum(axis=1)).ravel()
        sel = x[:, cols].tocsr().astype(np.float64)
        keep = np.flatnonzero((numi > 0) & (np.diff(sel.indptr) > 0))
        sel = sel[keep]
        s = scales[i]
        inv = np.where(s > 0, 1.0 / np.where(s > 0, s, 1.0), 0.0)
        scaled = sp.diags(1.0 / numi[keep]) @ sel @ sp.diags(inv)
        scaled = sp.csr_matrix(scaled)
        scaled.eliminate_zeros()
        scaled.sort_indices()
        dst = out / f"{Path(path).stem}_scaleData.h5"
        write_scaled(dst, scaled, genes, [f"cell{c}" for c in keep])
        written.append(str(dst))
        log(f"{dst}: {scaled.shape[0]} cells × {scaled.shape[1]} genes, {scaled.nnz} non-zeros")
    print(json.dumps({"files": written, "genes": len(genes)}))


def load_scaled(path):
    """Cells × genes CSR float64 of a file written by `export`."""
    with h5py.File(path, "r") as f:
        m = f["matrix"]
        n_genes, n_cells = (int(v) for v in m["shape"][()])
        return sp.csr_matrix((m["data"][()], m["indices"][()], m["indptr"][()]), shape=(n_cells, n_genes))


def cmd_planc(a):
    import pyplanc

    xs = [load_scaled(p) for p in a.files]
    # pyplanc takes genes × cells CSC: the transpose of cells × genes CSR.
    objs = [sp.csc_matrix(x.T) for x in xs]
    rss_before = peak_rss_mb()
    times, saved = [], []
    for r in range(a.repeats):
        t = time.perf_counter()
        out = pyplanc.oinmf(objs, a.k, nCores=a.threads, **{"lambda": a.lam}, maxEpoch=a.epochs,
                            minibatchSize=a.batch_size)
        times.append(time.perf_counter() - t)
        log(f"pyplanc.oinmf: {times[-1]:.2f} s")
        # Every run's factors: pyplanc has no seed, its runs differ.
        w = np.asarray(out.W)
        vs = [np.asarray(v) for v in out.VList]
        hs = [np.asarray(h) for h in out.HList]
        path = f"{a.out}-r{r + 1}.npz"
        np.savez(path, W=w, **{f"V{i}": v for i, v in enumerate(vs)}, **{f"H{i}": h for i, h in enumerate(hs)})
        saved.append(path)
    print(json.dumps({"seconds": times, "peak_rss_mb": peak_rss_mb(), "peak_rss_mb_before_call": rss_before,
                      "factors": saved}))


def objective(xs, w, vs, hs, lam):
    """Σ‖X_i − (W+V_i)H_iᵀ‖² + λΣ‖V_iH_iᵀ‖², X_i cells × genes, W, V_i genes × K, H_i cells × K."""
    total = 0.0
    for x, v, h in zip(xs, vs, hs):
        m = w + v
        xh = np.asarray((x.T @ h))  # genes × K
        fit = (x.multiply(x)).sum() - 2.0 * np.sum(xh * m) + np.sum((m.T @ m) * (h.T @ h))
        pen = np.sum((v.T @ v) * (h.T @ h))
        total += fit + lam * pen
    return float(total)


def orient(h, n_cells, k):
    h = np.asarray(h)
    return h if h.shape == (n_cells, k) else h.T


def cmd_evaluate(a):
    xs = [load_scaled(p) for p in a.files]
    k = a.k
    with h5py.File(Path(a.inmf) / "model.h5", "r") as f:
        w = f["W"][()]
        vs = [f[f"datasets/{i}/V"][()] for i in range(len(xs))]
    with h5py.File(Path(a.inmf) / "result.h5ad", "r") as f:
        h_all = f["obsm/X_inmf"][()]
    hs, at = [], 0
    for x in xs:
        hs.append(h_all[at:at + x.shape[0]])
        at += x.shape[0]
    if at != h_all.shape[0]:
        raise SystemExit(f"inmf's result has {h_all.shape[0]} cells, the scaled files {at}")
    planc = []
    for path in a.planc:
        z = np.load(path)
        pw = z["W"]
        pvs = [z[f"V{i}"] for i in range(len(xs))]
        phs = [orient(z[f"H{i}"], x.shape[0], k) for i, x in enumerate(xs)]
        if pw.shape != w.shape:
            raise SystemExit(f"pyplanc's W is {pw.shape}, inmf's {w.shape}")
        planc.append(objective(xs, pw, pvs, phs, a.lam))
    print(json.dumps({"inmf": objective(xs, w, vs, hs, a.lam), "pyplanc": planc}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("--run", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("inputs", nargs="+")
    for name in ("planc", "evaluate"):
        s = sub.add_parser(name)
        s.add_argument("--k", type=int, default=20)
        s.add_argument("--lam", type=float, default=5.0)
        s.add_argument("files", nargs="+")
        if name == "planc":
            s.add_argument("--epochs", type=int, default=5)
            s.add_argument("--batch-size", type=int, default=5000)
            s.add_argument("--threads", type=int, default=2)
            s.add_argument("--repeats", type=int, default=1)
            s.add_argument("--out", required=True)
        else:
            s.add_argument("--inmf", required=True)
            s.add_argument("--planc", required=True, action="append", help="pyplanc's factors (.npz), repeatable")
    a = p.parse_args()
    {"export": cmd_export, "planc": cmd_planc, "evaluate": cmd_evaluate}[a.cmd](a)


if __name__ == "__main__":
    main()
