"""The command line."""

from __future__ import annotations

import json
import subprocess
import sys

import matplotlib.image as mpimg
import torch

import gridmatch as gm
import gridmatch.data.datasets
from gridmatch import cli


def test_version_and_info(capsys, data_root, monkeypatch):
    monkeypatch.setenv("GRIDMATCH_DATA", str(data_root))
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"gridmatch {gm.__version__}" in out
    assert str(data_root / "fashion-mnist") in out


def test_console_script_runs(data_root):
    exe = [sys.executable, "-m", "gridmatch.cli", "--version"]
    out = subprocess.run(exe, capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"gridmatch {gm.__version__}"


def test_demo_quick_offline_uses_the_shipped_sample(tmp_path, monkeypatch, capsys):
    # No dataset anywhere and no network: the demo says so and runs on the sample.
    monkeypatch.setenv("GRIDMATCH_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(gridmatch.data.datasets, "_SYSTEM_DIR", tmp_path / "system")
    out = tmp_path / "report"
    assert cli.main(["demo", "--quick", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "sample shipped with gridmatch" in text
    assert "gridmatch demo results (sample data" in text
    for name in ("retrieval (Fashion-MNIST instances)", "transform search", "SVM on MNIST"):
        assert name in text
    results = json.loads((out / "results.json").read_text())
    assert results["data"] == "sample"
    want = "cuda:0" if torch.cuda.is_available() else "cpu"  # what device="auto" resolved to
    assert results["device"] == "auto" and results["trained_on"] == want
    r = results["retrieval"]
    assert set(r) == {"raw pixels", "GSN grid-softmax", "GSN double-margin", "triplet"}
    for m in r.values():
        assert 0.0 <= m["recall@1"] <= m["recall@10"] <= m["recall@20"] <= 1.0
    accs = {k: v["test_accuracy"] for k, v in results["kernel_search"].items()}
    assert accs["rbf (gamma=scale)"] > 0.7  # a real SVM on 500 MNIST digits, not a stub
    for png in (
        "retrieval_panel.png",
        "training_curves.png",
        "embeddings_2d.png",
        "search_curves.png",
        "transform_search.png",
        "confusion_matrix.png",
    ):
        img = mpimg.imread(out / png)
        assert img.shape[0] > 200 and img.shape[1] > 200 and img[..., :3].std() > 0.05, png


def test_search_transform_saves_its_result_with_settings(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    E = rng.normal(size=(30, 6))
    ids = np.arange(30) % 10
    npz = tmp_path / "emb.npz"
    np.savez(npz, E_query=E, ids_query=ids, E_gallery=E + 0.1, ids_gallery=ids)
    out = tmp_path / "search.safetensors"
    argv = ["search-transform", str(npz), "--budget", "8", "--batch-size", "4", "--seed", "3"]
    argv += ["--risk-seeking", "0.5", "--no-progress", "--out", str(out)]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    res = gm.search.SearchResult.load(out)
    assert f"best: {res.best_expr}  (reward {res.best_score:.4f})" in text
    assert f"result saved to {out}" in text
    s = res.settings
    assert (s["kind"], s["controller"], s["budget"], s["batch_size"], s["seed"]) == (
        "transform",
        "rl",
        8,
        4,
        3,
    )
    assert s["risk_seeking"] == 0.5 and "C" not in s
    assert s["space"]["operands"] == list(gm.search.Space.activation().operands)
    # the same settings in Python give the same search
    same = gm.search.TransformSearch(
        budget=8, batch_size=4, seed=3, risk_seeking=0.5, progress=False
    ).fit(E, ids, E + 0.1, ids)

    def drop_time(cs):
        return [{k: v for k, v in c.items() if k != "seconds"} for c in cs]

    assert drop_time(same.result_.candidates) == drop_time(res.candidates)


def test_search_kernel_rescores_its_best_kernels_on_held_out_images(data_root, monkeypatch, capsys):
    import numpy as np

    monkeypatch.setenv("GRIDMATCH_DATA", str(data_root))
    argv = ["search-kernel", "--train", "60", "--val", "30", "--holdout", "50", "--top", "3"]
    argv += ["--controller", "random", "--budget", "6", "--batch-size", "3", "--no-progress"]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    rescored = text.split("re-scored on the 50 held-out images after the validation ones:\n")[1]
    lines = [ln.split(None, 1) for ln in rescored.strip().splitlines()]
    # the same search and re-scoring in Python, on the same images
    X, y = gm.datasets.load("mnist", "train", root=data_root / "mnist")
    X = X[:140].reshape(140, -1).astype(np.float64) / 255.0
    s = gm.search.KernelSearch(controller="random", budget=6, batch_size=3, progress=False)
    s.fit(X[:60], y[:60], X[60:90], y[60:90])
    assert len(lines) == 3
    for (acc, expr), (e, a) in zip(lines, s.rerank(X[:60], y[:60], X[90:], y[90:140], k=3)):
        assert (expr, acc) == (str(e), f"{a:.4f}")
        pred = gm.svm.SVC(kernel=e).fit(X[:60], y[:60]).predict(X[90:])
        assert float(acc) == round(float(np.mean(pred == y[90:140])), 4)


def test_search_kernel_skips_rescoring_after_an_early_stop(data_root, monkeypatch, capsys):
    import pytest

    monkeypatch.setenv("GRIDMATCH_DATA", str(data_root))
    # the search stops after its first step, as on Ctrl-C
    monkeypatch.setattr(gm.search._BaseSearch, "_callback", lambda self: (lambda *a: False, None))
    argv = ["search-kernel", "--train", "60", "--val", "30", "--holdout", "50"]
    argv += ["--controller", "random", "--budget", "6", "--batch-size", "3", "--no-progress"]
    with pytest.warns(gm.InterruptedWarning):
        assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "search stopped early: held-out re-scoring skipped" in text
    assert "re-scored on" not in text
