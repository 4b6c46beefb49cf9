"""Python side of scripts/compare-pyliger (run inside its pyliger virtualenv).

Two steps, each its own process so that peak memory is attributed correctly:

  factorize  pyliger's preprocessing (create_liger, normalize, select_genes,
             scale_not_center) then pyliger.online_iNMF, timed on its own.
             Writes the selected genes (fed to `inmf run --genes`), the
             factors W, V_i, H_i and the timings. Run under /usr/bin/time -v
             by the bash script, so its peak RSS is pyliger's alone, like
             `inmf run`'s (clustering is not part of it, as `inmf analyze`
             is not part of `inmf run`).

  evaluate   redoes pyliger's (deterministic) preprocessing to get its scaled
             matrices, evaluates BOTH tools' factors on them with the same
             objective, runs pyliger's quantile_norm + Leiden (or Louvain)
             clustering on pyliger's H (timed), reads inmf's clusters and
             ARI, and prints the comparison table (and/or JSON).

Objective (docs/algorithms.md §1), on pyliger's scaled matrices X_i (cells × genes):
    Σ_i ‖X_i − H_i (W + V_i)ᵀ‖²_F + λ Σ_i ‖H_i V_iᵀ‖²_F
computed without densifying X_i:
    ‖X − H Mᵀ‖² = ‖X‖² − 2 Σ (X M) ∘ H + Σ (HᵀH) ∘ (MᵀM),  M = W + V_i.
"""

import argparse
import contextlib
import json
import os
import re
import resource
import sys
import time
import warnings
from pathlib import Path

# pyliger's import pulls in numba, plotting stacks, ...: silence their warnings.
warnings.filterwarnings("ignore")
os.environ.setdefault("TQDM_DISABLE", "1")  # online_iNMF always shows a tqdm bar

import numpy as np  # noqa: E402


def log(msg):
    print(f"[compare_pyliger] {msg}", file=sys.stderr, flush=True)


def peak_rss_mb():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------
# pyliger preprocessing (shared by both steps; deterministic)
# --------------------------------------------------------------------------
def preprocess(files):
    """Load the .h5ad files in memory and run pyliger's standard preprocessing.

    Returns the liger object and the preprocessing wall time. pyliger's
    in-memory mode is used (its on-disk mode needs backed AnnData objects and
    writes ./results/*.hdf5 into the current directory).
    """
    import anndata
    import pyliger

    t0 = time.perf_counter()
    adatas = []
    for f in files:
        a = anndata.read_h5ad(f)
        # pyliger quirks: create_liger refuses AnnData whose obs/var index has
        # no name, and reads the dataset name from uns['sample_name'].
        a.obs.index.name = "cell"
        a.var.index.name = "gene"
        a.uns["sample_name"] = Path(f).stem
        adatas.append(a)
    lig = pyliger.create_liger(adatas)  # copies X to an int64 CSR (raw counts)
    pyliger.normalize(lig)  # library size (l1 per cell), no log, no scale factor
    pyliger.select_genes(lig)  # var_thresh 0.1, alpha 0.99, union: rliger's defaults
    pyliger.scale_not_center(lig)  # divide each gene by its root mean square per dataset
    return lig, time.perf_counter() - t0


def scaled_matrices(lig):
    """Per dataset: (name, genes, cell names, scaled CSR cells × genes, cell_type labels)."""
    out = []
    for a in lig.adata_list:
        x = a.layers["scale_data"].tocsr().astype(np.float64)
        out.append((a.uns["sample_name"], np.asarray(a.var.index), np.asarray(a.obs.index), x,
                    np.asarray(a.obs["cell_type"]).astype(str)))
    return out


def objective(xs, w, vs, hs, lam):
    """(residual, penalty) of the iNMF objective; xs cells × genes CSR, w/v genes × K, h cells × K."""
    residual = penalty = 0.0
    for x, v, h in zip(xs, vs, hs):
        m = w + v
        hth = h.T @ h
        residual += float(x.data @ x.data) - 2.0 * float(np.sum(np.asarray(x @ m) * h)) \
            + float(np.sum(hth * (m.T @ m)))
        penalty += lam * float(np.sum(hth * (v.T @ v)))
    return residual, penalty


# --------------------------------------------------------------------------
# step 1: factorize with pyliger
# --------------------------------------------------------------------------
def cmd_factorize(args):
    import pyliger

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lig, t_pre = preprocess(args.files)
    rss_pre = peak_rss_mb()
    genes = np.asarray(lig.var_genes)
    log(f"pyliger preprocessing {t_pre:.1f} s, {len(genes)} genes selected, "
        f"{sum(a.shape[0] for a in lig.adata_list)} cells")

    # The only timed call: online_iNMF (scenario 1): init, epochs, final H
    # pass; `--repeats` times with the same seed (the same factors: checked),
    # the median compared.
    runs, first_w = [], None
    for r in range(args.repeats):
        t0 = time.perf_counter()
        pyliger.online_iNMF(lig, k=args.k, value_lambda=args.lam, max_epochs=args.epochs,
                            miniBatch_size=args.batch_size, rand_seed=args.seed, verbose=False)
        runs.append(time.perf_counter() - t0)
        log(f"pyliger online_iNMF run {r + 1}: {runs[-1]:.1f} s")
        if first_w is None:
            first_w = np.array(lig.W, copy=True)
        elif not np.array_equal(first_w, lig.W):
            log("WARNING: pyliger's repeated online_iNMF gave a different W")
    t_fact = float(np.median(runs))

    # pyliger stores W, V as genes × K in varm of every dataset (W is the same
    # in all), H as cells × K in obsm['H'], over the selected genes in the
    # datasets' original gene order (not var_genes' sorted order).
    factors = {"W": lig.W, "genes": np.asarray(lig.adata_list[0].var.index).astype("U")}
    for i, a in enumerate(lig.adata_list):
        assert np.array_equal(np.asarray(a.var.index), factors["genes"]), "gene order differs between datasets"
        factors[f"V{i}"] = a.varm["V"]
        factors[f"H{i}"] = a.obsm["H"]
        factors[f"cells{i}"] = np.asarray(a.obs.index).astype("U")
        factors[f"name{i}"] = np.asarray(a.uns["sample_name"])
    np.savez(out / "factors.npz", **factors)
    (out / "genes.txt").write_text("".join(f"{g}\n" for g in genes))
    info = {
        "preprocess_seconds": t_pre,
        "factorization_seconds": t_fact,
        "factorization_seconds_runs": runs,
        "genes_selected": int(len(genes)),
        "cells": int(sum(a.shape[0] for a in lig.adata_list)),
        "peak_rss_mb_after_preprocess": rss_pre,
        "peak_rss_mb_in_process": peak_rss_mb(),
        "versions": versions(),
    }
    (out / "factorize.json").write_text(json.dumps(info, indent=1))


def versions():
    import importlib.metadata as md
    v = {"python": sys.version.split()[0]}
    for p in ["pyliger", "numpy", "scipy", "pandas", "anndata", "scikit-learn", "leidenalg", "louvain", "igraph"]:
        try:
            v[p] = md.version(p)
        except md.PackageNotFoundError:
            pass
    try:
        import threadpoolctl
        v["blas"] = [f"{i['internal_api']} {i.get('version')} {i.get('architecture')} x{i['num_threads']}"
                     for i in threadpoolctl.threadpool_info()]
    except Exception:  # informational only
        pass
    return v


# --------------------------------------------------------------------------
# step 2: evaluate both, cluster pyliger, print the table
# --------------------------------------------------------------------------
def gnu_time_rss(path):
    """Peak RSS (MB) from a `/usr/bin/time -v` report, or None."""
    if not path or not Path(path).exists():
        return None
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", Path(path).read_text(errors="replace"))
    return int(rss.group(1)) / 1024.0 if rss else None


def read_inmf(result_path):
    """inmf's genes, W, {dataset: V}, H (cells × K), obs names, obs dataset, clusters, metrics."""
    import h5py

    def strings(ds):
        return np.asarray([s.decode() if isinstance(s, bytes) else str(s) for s in ds[()]])

    def categorical(g):
        cats, codes = strings(g["categories"]), g["codes"][()]
        return np.where(codes >= 0, cats[np.maximum(codes, 0)], "")

    with h5py.File(result_path, "r") as h:
        r = {
            "genes": strings(h["var/_index"]),
            "W": h["varm/W"][()],
            "V": {k[2:]: h["varm"][k][()] for k in h["varm"] if k.startswith("V_")},
            "H": h["obsm/X_inmf"][()],
            "cells": strings(h["obs/_index"]),
            "dataset": categorical(h["obs/dataset"]),
            "objective": {k: float(h["uns/inmf/objective"][k][()]) for k in h["uns/inmf/objective"]},
        }
        r["cluster"] = (categorical(h["obs/cluster"]) if isinstance(h["obs/cluster"], h5py.Group)
                        else h["obs/cluster"][()]) if "cluster" in h["obs"] else None
        r["metrics"] = ({k: float(h["uns/inmf/metrics"][k][()]) for k in h["uns/inmf/metrics"]}
                        if "uns/inmf/metrics" in h else {})
    return r


def align_inmf(inmf, data, k):
    """inmf's W, V_i, H_i re-indexed onto pyliger's genes and cells (missing → 0)."""
    genes = data[0][1]
    gidx = {g: j for j, g in enumerate(inmf["genes"])}
    rows = np.array([gidx.get(g, -1) for g in genes])

    def take_genes(m):
        out = np.zeros((len(genes), k))
        out[rows >= 0] = m[rows[rows >= 0]]
        return out

    w = take_genes(inmf["W"])
    vs, hs, dropped = [], [], 0
    for name, _, cells, _, _ in data:
        vs.append(take_genes(inmf["V"][name]))
        sel = np.flatnonzero(inmf["dataset"] == name)
        cidx = {c: j for j, c in enumerate(inmf["cells"][sel])}
        h = np.zeros((len(cells), k))
        pos = np.array([cidx.get(c, -1) for c in cells])
        h[pos >= 0] = inmf["H"][sel[pos[pos >= 0]]]
        dropped += int(np.sum(pos < 0))
        hs.append(h)
    return w, vs, hs, int(np.sum(rows < 0)), len(set(inmf["genes"]) - set(genes)), dropped


def compare_scaling(model_path, lig):
    """Largest relative difference between inmf's per-dataset gene scale factors
    (model.h5 datasets/<i>/scale) and pyliger's scale_not_center divisors, or None."""
    import h5py

    worst = 0.0
    try:
        with h5py.File(model_path, "r") as h:
            genes = np.asarray([g.decode() if isinstance(g, bytes) else str(g) for g in h["genes"][()]])
            gidx = {g: j for j, g in enumerate(genes)}
            for key in h["datasets"]:
                d = h["datasets"][key]
                name = d.attrs["name"]
                name = name.decode() if isinstance(name, bytes) else str(name)
                a = next(a for a in lig.adata_list if a.uns["sample_name"] == name)
                # Both divide each gene by its root mean square over the
                # dataset's cells, sqrt(Σx²/(n−1)) of the library-size
                # normalized values; inmf stores that divisor.
                ours = np.sqrt(a.var["norm_sum_sq"].to_numpy() / (a.shape[0] - 1))
                theirs = d["scale"][()][[gidx[g] for g in a.var.index]]
                worst = max(worst, float(np.max(np.abs(theirs - ours) / ours)))
    except Exception as e:  # informational only
        log(f"could not compare scale factors: {e}")
        return None
    return worst


def cmd_evaluate(args):
    # pyliger prints progress ("Removing N genes ...") on stdout: keep stdout
    # for the table or JSON alone.
    with contextlib.redirect_stdout(sys.stderr):
        result = evaluate(args)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_table(result)


def evaluate(args):
    import anndata
    import pandas as pd
    import pyliger
    from sklearn.metrics import adjusted_rand_score

    out = Path(args.out)
    fact = json.loads((Path(args.pyliger) / "factorize.json").read_text())
    inmf_summary = json.loads(Path(args.inmf_json).read_text())
    k, lam = args.k, args.lam

    # pyliger's scaled matrices again (not timed: deterministic, same as step 1).
    lig, _ = preprocess(args.files)
    data = scaled_matrices(lig)
    xs = [d[3] for d in data]
    genes = data[0][1]

    # pyliger's factors, checked to be on the same genes and cells.
    f = np.load(Path(args.pyliger) / "factors.npz")
    assert np.array_equal(f["genes"], genes.astype("U")), "pyliger genes differ between steps"
    p_w = f["W"]
    p_vs = [f[f"V{i}"] for i in range(len(data))]
    p_hs = [f[f"H{i}"] for i in range(len(data))]
    p_res, p_pen = objective(xs, p_w, p_vs, p_hs, lam)

    # inmf's factors from result.h5ad, on pyliger's gene and cell order.
    inmf = read_inmf(Path(args.inmf) / "result.h5ad")
    i_w, i_vs, i_hs, genes_missing, genes_extra, cells_missing = align_inmf(inmf, data, k)
    i_res, i_pen = objective(xs, i_w, i_vs, i_hs, lam)
    scale_diff = compare_scaling(Path(args.inmf) / "model.h5", lig)
    log(f"objectives: pyliger {p_res + p_pen:.6g}, inmf {i_res + i_pen:.6g}")

    # pyliger's own clustering: quantile_norm (max-factor assignment refined by
    # kNN, quantile alignment to the largest dataset) then Leiden/Louvain on
    # the SNN graph of the normalized H, resolution 1: inmf analyze's defaults.
    qlig = pyliger.Liger([anndata.AnnData(obs=pd.DataFrame(index=d[2]), obsm={"H": h},
                                          uns={"sample_name": d[0]}) for d, h in zip(data, p_hs)])
    t0 = time.perf_counter()
    pyliger.quantile_norm(qlig, rand_seed=args.seed)
    t_qn = time.perf_counter() - t0
    log(f"pyliger quantile_norm {t_qn:.1f} s; {args.clustering} clustering ...")
    t0 = time.perf_counter()
    if args.clustering == "louvain":
        pyliger.louvain_cluster(qlig, resolution=1.0, random_seed=args.seed, n_starts=args.starts)
    else:
        pyliger.leiden_cluster(qlig, resolution=1.0, random_seed=args.seed, n_starts=args.starts)
    t_cl = time.perf_counter() - t0
    log(f"pyliger {args.clustering} {t_cl:.1f} s")
    p_clusters = np.concatenate([np.asarray(a.obs["cluster"]) for a in qlig.adata_list])
    labels = np.concatenate([d[4] for d in data])
    p_ari = float(adjusted_rand_score(labels, p_clusters))

    # inmf's clustering: `inmf analyze` stored obs['cluster'] and uns/inmf/metrics/ari.
    i_ari = inmf["metrics"].get("ari")
    i_ari_check = None
    if inmf["cluster"] is not None:
        lab = dict(zip(np.concatenate([d[2] for d in data]), labels))
        i_ari_check = float(adjusted_rand_score([lab.get(c, "") for c in inmf["cells"]],
                                                [str(c) for c in inmf["cluster"]]))

    p_rss_time = gnu_time_rss(args.pyliger_time)
    i_rss_time = gnu_time_rss(args.inmf_time)
    secs = inmf_summary["seconds"]
    # pyliger's timed call keeps H in memory and writes nothing; inmf's
    # factorization is its epochs and final H pass, its file writing is
    # reported apart (older inmf summaries only have the sum).
    i_final_h = secs.get("final_h", secs["final_h_and_write"])
    i_write = secs.get("write", 0.0 if "final_h" in secs else None)
    i_fact_first = secs["epochs"] + i_final_h
    # Repeated runs (cache reused): the median over all runs is compared.
    i_runs = [i_fact_first]
    for path in args.inmf_repeat_json or []:
        rs = json.loads(Path(path).read_text())["seconds"]
        i_runs.append(rs["epochs"] + rs.get("final_h", rs["final_h_and_write"]))
    i_fact = float(np.median(i_runs))
    result = {
        "cells": fact["cells"],
        "datasets": len(data),
        "genes": int(len(genes)),
        "k": k, "lambda": lam, "epochs": args.epochs, "batch_size": args.batch_size,
        "pyliger": {
            "preprocess_seconds": fact["preprocess_seconds"],
            "factorization_seconds": fact["factorization_seconds"],
            "factorization_seconds_runs": fact.get("factorization_seconds_runs", [fact["factorization_seconds"]]),
            "peak_rss_mb": p_rss_time if p_rss_time is not None else fact["peak_rss_mb_in_process"],
            "peak_rss_mb_after_preprocess": fact["peak_rss_mb_after_preprocess"],
            "objective": p_res + p_pen, "residual": p_res, "penalty": p_pen,
            "self_reported_objective": None,  # online_iNMF reports none
            "quantile_norm_seconds": t_qn, "clustering_seconds": t_cl, "clustering": args.clustering,
            "clustering_starts": args.starts,
            "n_clusters": int(len(np.unique(p_clusters))),
            "ari": p_ari,
            "versions": fact["versions"],
        },
        "inmf": {
            "preprocess_seconds": secs["preprocess"],
            "factorization_seconds": i_fact,
            "factorization_seconds_runs": i_runs,
            "epochs_seconds": secs["epochs"], "final_h_seconds": i_final_h, "write_seconds": i_write,
            "total_seconds": secs["total"],
            "iterations": inmf_summary.get("iterations"),
            "peak_rss_mb": i_rss_time if i_rss_time is not None else inmf_summary.get("peak_rss_mb"),
            "self_reported_peak_rss_mb": inmf_summary.get("peak_rss_mb"),
            "objective": i_res + i_pen, "residual": i_res, "penalty": i_pen,
            "self_reported_objective": inmf["objective"].get("total"),
            "ari": i_ari, "ari_recomputed": i_ari_check,
            "n_clusters": int(len(np.unique(inmf["cluster"]))) if inmf["cluster"] is not None else None,
            "genes_missing_vs_pyliger": genes_missing, "genes_extra_vs_pyliger": genes_extra,
            "cells_missing_vs_pyliger": cells_missing,
            "scale_factor_max_rel_diff": scale_diff,
        },
    }
    result["speed_ratio_pyliger_over_inmf"] = fact["factorization_seconds"] / i_fact
    (out / "compare.json").write_text(json.dumps(result, indent=1))
    return result


def print_table(r):
    p, i = r["pyliger"], r["inmf"]
    fmt = lambda v, f: "n/a" if v is None else format(v, f)  # noqa: E731
    print(f"{r['cells']} cells in {r['datasets']} datasets, {r['genes']} genes (pyliger's selection, "
          f"used by both), K {r['k']}, λ {r['lambda']:g}, {r['epochs']} epochs, mini-batch {r['batch_size']}")
    print()
    print(f"| {'tool':<16} | {'preprocess s':>12} | {'factorization s':>15} | {'peak RSS MB':>11} "
          f"| {'objective':>14} | {'ARI':>6} |")
    print(f"|{'-' * 18}|{'-' * 13}:|{'-' * 16}:|{'-' * 12}:|{'-' * 15}:|{'-' * 7}:|")
    for name, t in [(f"pyliger {p['versions'].get('pyliger', '')}", p), ("inmf", i)]:
        print(f"| {name:<16} | {t['preprocess_seconds']:>12.2f} | {t['factorization_seconds']:>15.2f} "
              f"| {fmt(t['peak_rss_mb'], '11.0f')} | {t['objective']:>14.6g} | {fmt(t['ari'], '6.4f')} |")
    print()
    runs = lambda t: ", ".join(f"{x:.2f}" for x in t["factorization_seconds_runs"])  # noqa: E731
    print(f"speed ratio (pyliger / inmf, factorization): {r['speed_ratio_pyliger_over_inmf']:.1f}×  "
          f"(medians of {len(p['factorization_seconds_runs'])} and {len(i['factorization_seconds_runs'])} runs: "
          f"pyliger {runs(p)} s; inmf {runs(i)} s)")
    print(f"objective ratio (inmf / pyliger): {i['objective'] / p['objective']:.4f}  "
          f"(residual {p['residual']:.6g} vs {i['residual']:.6g}; penalty {p['penalty']:.6g} vs {i['penalty']:.6g})")
    print()
    print("notes:")
    write = "included" if i["write_seconds"] is None else f"{i['write_seconds']:.2f} s, not included"
    print("  factorization = pyliger.online_iNMF (init + epochs + final H, kept in memory) vs inmf's epochs + "
          f"final H pass (first run {i['epochs_seconds']:.2f} + {i['final_h_seconds']:.2f} s; "
          f"{i['iterations']} iterations; "
          f"writing result.h5ad and model.h5: {write})")
    print("  peak RSS = whole process: pyliger's preprocessing in memory + online_iNMF "
          f"(after preprocessing alone: {p['peak_rss_mb_after_preprocess']:.0f} MB); `inmf run` "
          f"(self-reported {fmt(i['self_reported_peak_rss_mb'], '.0f')} MB)")
    print("  objective = Σ‖X_i − (W+V_i)H_i‖² + λΣ‖V_iH_i‖² on pyliger's scaled matrices for both tools; "
          f"inmf's self-reported objective {fmt(i['self_reported_objective'], '.6g')}, pyliger reports none")
    sd = i["scale_factor_max_rel_diff"]
    if sd is None or sd > 1e-6:
        print(f"  WARNING: inmf's gene scale factors differ from pyliger's (max relative difference "
              f"{fmt(sd, '.2e')}): the two preprocessings are not identical, so inmf's factors are evaluated "
              "on data slightly different from the data it was fitted to")
    else:
        print(f"  scaling: inmf's gene scale factors match pyliger's scaleNotCenter (max rel. diff {sd:.1e})")
    if i["genes_missing_vs_pyliger"] or i["genes_extra_vs_pyliger"] or i["cells_missing_vs_pyliger"]:
        print(f"  WARNING: inmf lacks {i['genes_missing_vs_pyliger']} of pyliger's genes (zero rows), has "
              f"{i['genes_extra_vs_pyliger']} extra, lacks {i['cells_missing_vs_pyliger']} cells (H = 0)")
    print(f"  ARI vs obs['cell_type']: pyliger quantile_norm ({p['quantile_norm_seconds']:.1f} s) + "
          f"{p['clustering']} ×{p['clustering_starts']} starts ({p['clustering_seconds']:.1f} s), "
          f"{p['n_clusters']} clusters; "
          f"inmf analyze (quantile norm + Leiden), {fmt(i['n_clusters'], 'd')} clusters"
          + (f" (sklearn recomputes {i['ari_recomputed']:.4f})" if i["ari_recomputed"] is not None else ""))
    v = p["versions"]
    print("  pyliger env: " + ", ".join(f"{k} {v[k]}" for k in v if k != "blas")
          + ("; BLAS " + "; ".join(v["blas"]) if v.get("blas") else ""))


# --------------------------------------------------------------------------
# crossed: both factorizations through both analyses, on real data
# --------------------------------------------------------------------------
def pyliger_labels(lig, hs, resolution, starts):
    """pyliger's quantile_norm + Louvain on the factors `hs` (per dataset,
    cells × K): (clusters, argmax of H_norm, H_norm per dataset)."""
    import pyliger

    for a, h in zip(lig.adata_list, hs):
        a.obsm["H"] = np.array(h, copy=True)
    pyliger.quantile_norm(lig)
    pyliger.louvain_cluster(lig, resolution=resolution, n_starts=starts)
    clusters = np.concatenate([np.asarray(a.obs["cluster"]) for a in lig.adata_list])
    hn = [np.array(a.obsm["H_norm"]) for a in lig.adata_list]
    return clusters, np.vstack(hn).argmax(1), hn


def inmf_analyze_labels(inmf_bin, run_dir, labels, resolution, seed):
    """`inmf analyze RUN --labels LABELS --resolution R --seed S`'s ARI and NMI."""
    import subprocess

    out = subprocess.run([inmf_bin, "analyze", str(run_dir), "--labels", labels, "--resolution",
                          str(resolution), "--seed", str(seed), "--json"],
                         check=True, capture_output=True, text=True).stdout
    m = json.loads(out)["metrics"]
    return m["ari"], m["nmi"]


def cmd_crossed(args):
    """For each seed: pyliger's online_iNMF and `inmf run` on the same files
    (inmf on pyliger's genes), then each H through pyliger's quantile_norm +
    Louvain and through `inmf analyze` (same resolution): ARI and NMI of the
    four combinations, and how far inmf's normalized H is from pyliger's
    on inmf's H."""
    import subprocess

    import h5py
    import pyliger
    from sklearn.metrics import adjusted_rand_score as ari, normalized_mutual_info_score as nmi

    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        with contextlib.redirect_stdout(sys.stderr):
            lig, _ = preprocess(args.files)
            pyliger.online_iNMF(lig, k=args.k, value_lambda=args.lam, max_epochs=args.epochs,
                                miniBatch_size=args.pyliger_batch_size, rand_seed=seed, verbose=False)
        hs_py = [np.array(a.obsm["H"]) for a in lig.adata_list]
        genes = work / "genes.txt"
        genes.write_text("".join(f"{g}\n" for g in lig.var_genes))
        run = work / f"inmf-seed{seed}"
        cmd = [args.inmf_bin, "run", *args.files, "--out", str(run), "--k", str(args.k), "--lambda",
               str(args.lam), "--epochs", str(args.epochs), "--seed", str(seed), "--genes", str(genes),
               "--quiet"]
        if args.batch_size:
            cmd += ["--batch-size", str(args.batch_size)]
        subprocess.run(cmd, check=True, capture_output=True)
        data = scaled_matrices(lig)
        inmf = read_inmf(run / "result.h5ad")
        _, _, hs_inmf, *_ = align_inmf(inmf, data, args.k)
        labels = np.concatenate([d[4] for d in data])
        row = {"seed": seed}
        with contextlib.redirect_stdout(sys.stderr):
            for name, hs in [("pyliger_H", hs_py), ("inmf_H", hs_inmf)]:
                cl, _, hn = pyliger_labels(lig, hs, args.resolution, args.starts)
                row[f"{name}/pyliger"] = (ari(labels, cl), nmi(labels, cl))
                if name == "inmf_H":
                    hn_py = hn
        row["inmf_H/inmf"] = inmf_analyze_labels(args.inmf_bin, run, "cell_type", args.resolution, seed)
        # pyliger's H through inmf analyze: the same run folder with H replaced.
        swapped = work / f"pyliger-in-inmf-seed{seed}"
        swapped.mkdir(exist_ok=True)
        for f in ["model.h5", "result.h5ad"]:
            (swapped / f).write_bytes((run / f).read_bytes())
        with h5py.File(swapped / "result.h5ad", "r+") as h:
            H = h["obsm/X_inmf"][()]
            for (name, _, cells, _, _), hp in zip(data, hs_py):
                sel = np.flatnonzero(inmf["dataset"] == name)
                where = {c: j for j, c in enumerate(cells)}
                H[sel] = hp[[where[c] for c in inmf["cells"][sel]]]
            h["obsm/X_inmf"][...] = H
        row["pyliger_H/inmf"] = inmf_analyze_labels(args.inmf_bin, swapped, "cell_type", args.resolution, seed)
        # inmf's normalized H against pyliger's on inmf's H.
        with h5py.File(run / "result.h5ad", "r") as h:
            hn_all = h["obsm/X_inmf_norm"][()]
        diffs = []
        for (name, _, cells, _, _), theirs in zip(data, hn_py):
            sel = np.flatnonzero(inmf["dataset"] == name)
            where = {c: j for j, c in enumerate(inmf["cells"][sel])}
            ours = hn_all[sel[[where[c] for c in cells]]]
            diffs.append(float(np.abs(ours - theirs).sum() / max(np.abs(theirs).sum(), 1e-300)))
        row["qn_rel_l1"] = diffs
        rows.append(row)
        log(f"seed {seed}: {row}")
    combos = ["pyliger_H/pyliger", "inmf_H/pyliger", "pyliger_H/inmf", "inmf_H/inmf"]
    print(f"ARI / NMI at resolution {args.resolution} (factors / analysis), seeds {args.seeds}:")
    print("| seed | " + " | ".join(combos) + " | normalized H, inmf vs pyliger (rel. L1 per dataset) |")
    print("|---" * (len(combos) + 2) + "|")
    for r in rows:
        cells = " | ".join(f"{r[c][0]:.3f} / {r[c][1]:.3f}" for c in combos)
        print(f"| {r['seed']} | {cells} | {', '.join(f'{d:.3f}' for d in r['qn_rel_l1'])} |")
    means = " | ".join(f"{np.mean([r[c][0] for r in rows]):.3f} / {np.mean([r[c][1] for r in rows]):.3f}"
                       for c in combos)
    print(f"| mean | {means} | |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ["factorize", "evaluate"]:
        s = sub.add_parser(name)
        s.add_argument("files", nargs="+", help="the .h5ad inputs, in the order given to inmf run")
        s.add_argument("--k", type=int, default=20)
        s.add_argument("--lambda", dest="lam", type=float, default=5.0)
        s.add_argument("--epochs", type=int, default=5)
        s.add_argument("--batch-size", type=int, default=5000)
        s.add_argument("--seed", type=int, default=1)
        s.add_argument("--out", required=True)
    sub.choices["factorize"].add_argument("--repeats", type=int, default=1,
                                          help="time online_iNMF this many times; the median is reported")
    ev = sub.choices["evaluate"]
    ev.add_argument("--pyliger", required=True, help="output directory of the factorize step")
    ev.add_argument("--inmf", required=True, help="output directory of inmf run (+ analyze)")
    ev.add_argument("--inmf-json", required=True, help="`inmf run --json` summary")
    ev.add_argument("--inmf-repeat-json", nargs="*", help="summaries of further runs (timing only)")
    ev.add_argument("--pyliger-time", help="/usr/bin/time -v report of the factorize step")
    ev.add_argument("--inmf-time", help="/usr/bin/time -v report of inmf run")
    ev.add_argument("--clustering", choices=["leiden", "louvain"], default="leiden")
    ev.add_argument("--starts", type=int, default=10, help="random starts of pyliger's clustering (its default 10)")
    ev.add_argument("--json", action="store_true")
    cr = sub.add_parser("crossed", help=cmd_crossed.__doc__)
    cr.add_argument("files", nargs="+", help="the .h5ad batches of one labelled dataset (obs cell_type)")
    cr.add_argument("--k", type=int, default=20)
    cr.add_argument("--lambda", dest="lam", type=float, default=5.0)
    cr.add_argument("--epochs", type=int, default=5)
    cr.add_argument("--batch-size", type=int, help="inmf's mini-batch (default: inmf's own choice)")
    cr.add_argument("--pyliger-batch-size", type=int, default=5000, help="pyliger's miniBatch_size (its default 5000)")
    cr.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",")], default=[1, 2, 3])
    cr.add_argument("--resolution", type=float, default=0.25)
    cr.add_argument("--starts", type=int, default=10)
    cr.add_argument("--inmf-bin", required=True, help="the inmf binary")
    cr.add_argument("--out", required=True, help="throwaway working directory")
    args = ap.parse_args()
    if args.cmd == "crossed":
        cmd_crossed(args)
    elif args.cmd == "factorize":
        cmd_factorize(args)
    else:
        cmd_evaluate(args)


if __name__ == "__main__":
    main()
