"""The command line."""

from __future__ import annotations

import json
import subprocess
import sys

import matplotlib.image as mpimg
import torch

import gridmatch as gm
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
    monkeypatch.setattr(gm.datasets, "_SYSTEM_DIR", tmp_path / "system")
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
