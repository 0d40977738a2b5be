"""The command line."""

from __future__ import annotations

import json
import subprocess
import sys

import matplotlib.image as mpimg
import pytest
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


def _cpu_model():
    """The CPU's model name, read independently of gridmatch."""
    try:
        lines = open("/proc/cpuinfo").read().splitlines()
    except OSError:
        return None
    names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
    return names[0] if names else None


def test_demo_quick_offline_uses_the_shipped_sample(tmp_path, monkeypatch, capsys):
    import dataclasses
    from pathlib import Path

    import numpy as np

    from gridmatch import demo
    from gridmatch.demo import run as demo_run

    # No dataset anywhere and no network: the demo says so and runs on the sample.
    monkeypatch.setenv("GRIDMATCH_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(gridmatch.data.datasets, "_SYSTEM_DIR", tmp_path / "system")
    # the quick run's code path and epochs, with fewer images and steps (a fast test)
    q = demo.QUICK
    assert q.epochs >= 5 and q.seeds >= 3  # curves and means worth reading
    assert q.kernel_budget // q.search_batch >= 5 and q.transform_budget // q.search_batch >= 5
    small = dataclasses.replace(
        q, train_products=600, val_products=100, val_curve_products=50, test_products=200,
        steps_per_epoch=3,
        transform_budget=8, kernel_budget=8,
    )  # fmt: skip
    monkeypatch.setattr(demo_run, "QUICK", small)
    figs = {}
    save = gm.plot.save

    def keep(fig, path, **kw):
        figs[Path(path).name] = fig
        return save(fig, path, **kw)

    monkeypatch.setattr(gm.plot, "save", keep)
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
    # what the numbers were measured with
    assert results["seed"] == 0 and results["seeds"] == [0, 1, 2]
    assert results["gridmatch_version"] == gm.__version__
    assert results["torch_version"] == torch.__version__
    assert results["threads"] == gm.get_num_threads()
    assert results["threads"]["torch"] == torch.get_num_threads()
    if _cpu_model() is not None:
        assert results["cpu"] == _cpu_model()
    # the networks' settings are named, not the estimator's defaults
    cfgs = results["methods"]
    best, paper, triplet = demo.config.BEST, demo.config.PAPER, demo.config.TRIPLET
    assert set(cfgs) == {best, paper, triplet}
    assert cfgs[best]["loss"] == {"name": "grid-softmax", "temperature": 0.1}
    assert (cfgs[best]["grid"], cfgs[best]["negatives"]) == ([4, 4], "mined")
    assert cfgs[paper]["loss"] == {"name": "double-margin", "hi": 0.9, "lo": 0.0, "balance": False}
    assert (cfgs[paper]["grid"], cfgs[paper]["negatives"]) == ([3, 3], "random")
    assert cfgs[triplet]["loss"] == {"name": "triplet", "margin": 0.2}
    for c in cfgs.values():
        assert (c["epochs"], c["steps_per_epoch"], c["batch_size"]) == (
            small.epochs,
            3,
            small.batch_size,
        )
        assert (c["lr"], c["optimizer"], c["schedule"], c["dim"]) == (1e-3, "adam", "cosine", 64)
    # every seed's numbers, and their mean and std
    r = results["retrieval"]
    assert set(r) == {"raw pixels", best, paper, triplet}
    for m in r.values():
        assert [s["seed"] for s in m["per_seed"]] == [0, 1, 2]
        for key in ("recall@1", "recall@10", "map@r"):
            vals = [s[key] for s in m["per_seed"]]
            assert m[key] == pytest.approx(np.mean(vals)) and m["std"][key] == pytest.approx(
                np.std(vals)
            )
        for s in m["per_seed"]:
            rec = [s[f"recall@{k}"] for k in (1, 2, 5, 10, 20, 50)]
            assert 0.0 <= rec[0] and rec == sorted(rec) and rec[-1] <= 1.0
    assert len(set(m["per_seed"][0]["recall@1"] for m in r.values())) > 1  # not one stub value
    # the ranking agrees with the numbers; ">" only where every seed agrees and the lead
    # exceeds twice the binomial standard error of R@1 over all the seeds' queries
    rank = results["ranking"]
    assert rank["by_mean_recall@1"] == sorted(r, key=lambda n: -r[n]["recall@1"])
    for i, s in enumerate(("0", "1", "2")):
        assert rank["per_seed"][s] == sorted(r, key=lambda n: -r[n]["per_seed"][i]["recall@1"])
    n_queries = sum(s["n_queries"] for s in r["raw pixels"]["per_seed"])
    assert n_queries == 3 * 200
    shown = text.split("retrieval ranking by mean R@1 over 3 seeds: ")[1].splitlines()[0]
    for p in rank["pairs"]:
        a = [s["recall@1"] for s in r[p["ahead"]]["per_seed"]]
        b = [s["recall@1"] for s in r[p["of"]]["per_seed"]]
        assert p["seeds_ahead"] == sum(x > y for x, y in zip(a, b))
        pa, pb = np.mean(a), np.mean(b)
        se = np.sqrt((pa * (1 - pa) + pb * (1 - pb)) / n_queries)
        assert p["lead"] == pytest.approx(pa - pb) and p["lead_se"] == pytest.approx(se)
        assert p["separated"] == (p["seeds_ahead"] == 3 and pa - pb > 2 * se)
        assert f"{'>' if p['separated'] else '≈'} {p['of']}" in shown
    accs = {k: v["test_accuracy"] for k, v in results["kernel_search"].items()}
    assert accs["rbf (gamma=scale)"] > 0.7  # a real SVM on 500 MNIST digits, not a stub
    # plots: enough points, axes not zoomed on noise, titles naming what was trained
    tc = figs["training_curves.png"]
    tc_title = " ".join(tc._suptitle.get_text().split())  # titles are wrapped to fit
    assert "convnet" in tc_title and f"{small.epochs} epochs" in tc_title
    assert "seeds 0, 1, 2" in tc_title
    for ax in tc.axes:
        assert len(ax.lines) == 3 and all(len(ln.get_xdata()) == small.epochs for ln in ax.lines)
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [best, paper, triplet]
        assert ax.get_ylim()[0] == 0.0
    assert tc.axes[1].get_ylim() == (0.0, 1.0)  # validation recall
    ax = figs["recall_at_k.png"].axes[0]
    ax_title = " ".join(ax.get_title().split())
    assert ax.get_ylim() == (0.0, 1.0) and "seeds 0, 1, 2" in ax_title
    curves = [c.lines[0] for c in ax.containers]  # one error-bar line per row
    assert [len(ln.get_xdata()) for ln in curves] == [6, 6, 6, 6]
    np.testing.assert_allclose(
        curves[1].get_ydata(), [r[best][f"recall@{k}"] for k in (1, 2, 5, 10, 20, 50)]
    )
    for name, budget in (("search_curves.png", 8), ("transform_search.png", 8)):
        fig = figs[name]
        for ax in fig.axes:
            assert ax.get_ylim() == (0.0, 1.0)
            assert all(len(ln.get_xdata()) == budget // small.search_batch for ln in ax.lines)

    def title(name, fig_title=True):
        fig = figs[name]
        text = fig._suptitle.get_text() if fig_title else fig.axes[0].get_title()
        return " ".join(text.split())

    assert "SVM (C=1)" in title("search_curves.png")
    assert best in title("transform_search.png")
    best_svm = max(accs, key=accs.get)
    cm_title = title("confusion_matrix.png", fig_title=False)
    assert best_svm in cm_title and f"{accs[best_svm]:.4f}" in cm_title
    assert best in title("retrieval_panel.png")
    assert best in title("embeddings_2d.png", fig_title=False)
    for png in (
        "retrieval_panel.png",
        "recall_at_k.png",
        "training_curves.png",
        "embeddings_2d.png",
        "search_curves.png",
        "transform_search.png",
        "confusion_matrix.png",
    ):
        img = mpimg.imread(out / png)
        assert img.shape[0] > 200 and img.shape[1] > 200 and img[..., :3].std() > 0.05, png


def test_demo_refuses_bad_seeds_before_any_work(tmp_path, capsys):
    out = tmp_path / "report"
    assert cli.main(["demo", "--quick", "--seeds", "0", "--out", str(out)]) == 2
    assert "seeds" in capsys.readouterr().err
    assert cli.main(["demo", "--quick", "--seed", "-1", "--out", str(out)]) == 2
    assert "seed" in capsys.readouterr().err
    assert not out.exists()


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
