"""The `inmf` Python package against the `inmf` binary, with real anndata
and scanpy: same H bit for bit, scanpy's follow-up steps, errors, the
model's scenarios, no files beside the user's, Ctrl-C."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

import inmf
from conftest import EPOCHS, K, cli, cli_path


def rows_of(result, files_rows):
    """Rows of a CLI result in the order of `files_rows`: {dataset: rows of
    the in-memory object, by cell index in the file}."""
    ds = result.obs["dataset"].astype(str).to_numpy()
    ci = result.obs["cell_index"].to_numpy()
    return ds, ci


def in_memory_order(result, positions):
    """H of a CLI result placed at `positions[dataset][cell_index]`."""
    h = np.asarray(result.obsm["X_inmf"])
    out = np.full((sum(len(p) for p in positions.values()), h.shape[1]), np.nan)
    ds, ci = rows_of(result, positions)
    for name, pos in positions.items():
        m = ds == name
        out[pos[ci[m]]] = h[m]
    return out


def shuffled_concat(kang, seed=0):
    """ctrl and stim concatenated and interleaved at random (batches not
    contiguous; each batch's cells keep their order in its file, as the
    run reads them); returns the AnnData and where each file's cells went."""
    ctrl, stim = (ad.read_h5ad(p) for p in kang)
    both = ad.concat({"ctrl": ctrl, "stim": stim}, label="sample_batch")
    slots = np.random.default_rng(seed).permutation(both.n_obs)
    is_ctrl = np.zeros(both.n_obs, dtype=bool)
    is_ctrl[slots[: ctrl.n_obs]] = True
    positions = {"ctrl": np.flatnonzero(is_ctrl), "stim": np.flatnonzero(~is_ctrl)}
    order = np.empty(both.n_obs, dtype=np.int64)
    order[positions["ctrl"]] = np.arange(ctrl.n_obs)
    order[positions["stim"]] = ctrl.n_obs + np.arange(stim.n_obs)
    return both[order].copy(), positions


@pytest.mark.parametrize("threads", [None, 1])
def test_in_memory_h_is_the_cli_h_bit_for_bit(kang, cli_run, private_tmp, threads):
    _, res = cli_run
    adata, positions = shuffled_concat(kang)
    assert not adata.obs["sample_batch"].is_monotonic_increasing
    x_before = adata.X.copy()
    assert inmf.pp.online_inmf(adata, batch_key="sample_batch", k=K, epochs=EPOCHS, threads=threads) is None
    h = adata.obsm["X_inmf"]
    expected = in_memory_order(res, positions)
    assert h.shape == (adata.n_obs, K) and h.dtype == np.float64
    assert np.array_equal(h, expected), f"max |diff| {np.nanmax(np.abs(h - expected))}"
    # The input is not modified; W and uns are filled.
    assert (adata.X != x_before).nnz == 0
    w = adata.varm["W"]
    used = adata.var_names.isin(res.var_names)
    assert np.array_equal(w[used], np.asarray(res.varm["W"])[res.var_names.get_indexer(adata.var_names[used])])
    assert np.all(w[~used] == 0)
    uns = adata.uns["inmf"]
    assert uns["genes"] == list(res.var_names) and uns["batch_key"] == "sample_batch"
    assert uns["params"]["k"] == K and len(uns["objective_per_epoch"]) == EPOCHS


def test_dense_counts_and_a_layer_give_the_same_h(kang, cli_run, private_tmp):
    _, res = cli_run
    adata, positions = shuffled_concat(kang, seed=3)
    adata.layers["counts"] = adata.X.toarray()
    adata.X = sp.csr_matrix(np.log1p(adata.X.toarray()))
    inmf.pp.online_inmf(adata, "sample_batch", k=K, epochs=EPOCHS, layer="counts", key_added="H")
    assert np.array_equal(adata.obsm["H"], in_memory_order(res, positions))


def test_streamed_files_give_the_cli_h_and_write_nothing_beside_them(kang, cli_run, tmp_path, private_tmp):
    _, res = cli_run
    data = tmp_path / "data"
    data.mkdir()
    for p in kang:
        shutil.copy(p, data / p.name)
    before = sorted(os.listdir(data))
    got = inmf.run([data / "ctrl.h5ad", data / "stim.h5ad"], k=K, epochs=EPOCHS)
    assert sorted(os.listdir(data)) == before
    assert np.array_equal(np.asarray(got.obsm["X_inmf"]), np.asarray(res.obsm["X_inmf"]))
    assert list(got.obs["dataset"].cat.categories) == ["ctrl", "stim"]
    # With an output folder: the CLI's files, which the CLI and Model read.
    out = tmp_path / "run"
    got = inmf.run({"ctrl": data / "ctrl.h5ad", "stim": data / "stim.h5ad"}, out=out, k=K, epochs=EPOCHS, threads=1)
    assert np.array_equal(np.asarray(got.obsm["X_inmf"]), np.asarray(res.obsm["X_inmf"]))
    assert (out / "model.h5").is_file() and (out / "result.h5ad").is_file()
    assert sorted(os.listdir(data)) == before


def test_quantile_norm_is_inmf_analyze_and_scanpy_runs_on_it(kang, cli_run, tmp_path, private_tmp):
    import scanpy as sc
    from sklearn.metrics import adjusted_rand_score

    run_dir, _ = cli_run
    # `inmf analyze` on a copy of the CLI run writes obsm['X_inmf_norm'].
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    cli("analyze", copy, "--quiet")
    analyzed = ad.read_h5ad(copy / "result.h5ad")
    res = ad.read_h5ad(run_dir / "result.h5ad")
    inmf.tl.quantile_norm(res)
    assert np.array_equal(res.obsm["X_inmf_norm"], np.asarray(analyzed.obsm["X_inmf_norm"]))

    adata, _ = shuffled_concat(kang)
    inmf.pp.online_inmf(adata, batch_key="sample_batch", k=K, epochs=EPOCHS)
    inmf.tl.quantile_norm(adata)
    assert adata.uns["inmf"]["quantile_norm"]["batch_key"] == "sample_batch"
    sc.pp.neighbors(adata, use_rep="X_inmf_norm")
    sc.tl.leiden(adata, flavor="igraph", n_iterations=2, resolution=0.5)
    sc.tl.umap(adata)
    assert adata.obsm["X_umap"].shape == (adata.n_obs, 2)
    ari = adjusted_rand_score(adata.obs["cell_type"], adata.obs["leiden"])
    assert adata.obs["leiden"].nunique() > 1 and ari > 0.4, ari


def test_bad_inputs_raise_the_cli_messages(kang, tmp_path, private_tmp):
    ctrl, stim = (ad.read_h5ad(p) for p in kang)
    adata = ad.concat([ctrl, stim])
    with pytest.raises(ValueError, match="batch_key 'nope' is not a column"):
        inmf.pp.online_inmf(adata, batch_key="nope")
    neg = adata.copy()
    neg.X.data[0] = -1.0
    with pytest.raises(ValueError, match="negative values"):
        inmf.pp.online_inmf(neg)
    with pytest.raises(ValueError, match="layer 'counts' is not in adata.layers"):
        inmf.pp.online_inmf(adata, layer="counts")
    # Parameters: the same message as `inmf run`.
    with pytest.raises(ValueError) as e:
        inmf.pp.online_inmf(adata, k=0)
    r = cli("run", *kang, "--out", tmp_path / "o", "--k", 0, check=False)
    assert r.returncode == 2 and str(e.value) in r.stderr, (str(e.value), r.stderr)
    with pytest.raises(ValueError) as e:
        inmf.run(list(kang), lam=-1.0)
    r = cli("run", *kang, "--out", tmp_path / "o", "--lambda=-1", check=False)
    assert r.returncode == 2 and str(e.value) in r.stderr
    # Files: OSError (FileNotFoundError), the CLI's message.
    missing = tmp_path / "missing.h5ad"
    with pytest.raises(FileNotFoundError) as e:
        inmf.run([missing, kang[1]], out=tmp_path / "o2")
    r = cli("run", missing, kang[1], "--out", tmp_path / "o2", check=False)
    assert r.returncode == 2 and str(e.value) in r.stderr
    assert not (tmp_path / "o2" / "result.h5ad").exists()
    not_h5 = tmp_path / "text.h5ad"
    not_h5.write_text("not hdf5")
    with pytest.raises(ValueError) as e:
        inmf.run([not_h5, kang[1]])
    assert "text.h5ad" in str(e.value)
    with pytest.raises(FileNotFoundError):
        inmf.Model.load(tmp_path / "no-model")
    with pytest.raises(FileNotFoundError):
        inmf.Model(tmp_path)


def test_model_add_project_save_match_the_cli(kang, tmp_path, private_tmp):
    ctrl_path, stim_path = kang
    ref = tmp_path / "ref"
    cli("run", ctrl_path, "--out", ref, "--k", K, "--epochs", EPOCHS, "--quiet")
    m = inmf.Model.load(ref)
    assert m.k == K and m.datasets == ["ctrl"] and m.W.shape == (len(m.genes), K)

    # Scenario 3: project.
    stim = ad.read_h5ad(stim_path)
    m.project(stim)
    cli("project", ref, f"query={stim_path}", "--out", tmp_path / "proj", "--quiet")
    proj = ad.read_h5ad(tmp_path / "proj" / "result.h5ad")
    assert np.array_equal(stim.obsm["X_inmf"], in_memory_order(proj, {"query": np.arange(stim.n_obs)}))

    # Scenario 2: add (inmf add --new-only), then save and use with the CLI.
    stim2 = ad.read_h5ad(stim_path)
    m.add(stim2, batch_key="batch", epochs=EPOCHS)
    cli("add", ref, stim_path, "--new-only", "--out", tmp_path / "added", "--epochs", EPOCHS, "--quiet")
    added = ad.read_h5ad(tmp_path / "added" / "result.h5ad")
    assert np.array_equal(stim2.obsm["X_inmf"], in_memory_order(added, {"stim": np.arange(stim2.n_obs)}))
    assert m.datasets == ["ctrl", "stim"]
    saved = tmp_path / "saved"
    m.save(saved)
    r = cli("project", saved, f"q={ctrl_path}", "--out", tmp_path / "proj2", "--quiet")
    assert r.returncode == 0
    m2 = inmf.Model.load(saved)
    assert np.array_equal(m2.W, m.W) and m2.datasets == m.datasets
    assert np.array_equal(m.W, inmf.Model.load(tmp_path / "added").W)


def test_ctrl_c_stops_a_run_cleanly_and_the_gil_is_released(tmp_path):
    """A run of minutes in a child process: another Python thread keeps
    running meanwhile, SIGINT raises KeyboardInterrupt within seconds, and
    no result is left in the output folder."""
    data = tmp_path / "sim"
    cli("simulate", "--out", data, "--datasets", 2, "--cells", 20000, "--genes", 2000)
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import sys, threading, time, inmf
        ticks = [0]
        def tick():
            while True:
                ticks[0] += 1
                time.sleep(0.01)
        threading.Thread(target=tick, daemon=True).start()
        print("start", flush=True)
        t = time.time()
        try:
            inmf.run([{str(data / 'batch1.h5ad')!r}, {str(data / 'batch2.h5ad')!r}], out={str(out)!r},
                     epochs=5000, batch_size=2000, threads=1)
        except KeyboardInterrupt as e:
            print("interrupted", ticks[0], round(time.time() - t, 2), e, flush=True)
            sys.exit(0)
        print("finished", flush=True)
        sys.exit(1)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "start"
        time.sleep(4)
        child.send_signal(signal.SIGINT)
        t = time.time()
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, (stdout, stderr)
    assert stdout.startswith("interrupted"), stdout
    ticks = int(stdout.split()[1])
    assert ticks > 100, f"only {ticks} ticks of the other thread: the GIL was held"
    assert time.time() - t < 10
    assert "nothing was written under a final name" in stdout
    assert not (out / "result.h5ad").exists() and not (out / "model.h5").exists()
    assert cli_path().is_file()
