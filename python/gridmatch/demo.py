"""``gridmatch demo``: every part of the package on the bundled datasets.

1. Grid Search Network on the Fashion-MNIST instance benchmark (queries and gallery
   are distorted views of held-out products): the grid-softmax loss on 4×4 grids and
   the double-margin loss on 3×3 grids, both with mined negatives (the settings chosen
   on validation data: see BENCHMARKS.md, section "Grid Search Network", findings), and
   a triplet baseline trained on the same budget; retrieval metrics of raw pixels and
   the three networks.
2. RL transform search on the GSN embeddings (validation products), the best transform
   applied to the test embeddings.
3. RL kernel search on MNIST (paper protocol, small budget) and the standard kernels,
   all scored on the same test images.

It prints one results table and writes a report folder with PNG plots and
``results.json``. Where the full datasets are neither found nor downloadable, it runs on
the small sample shipped in the package and says so.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import datasets
from .exceptions import DataError

__all__ = ["DemoConfig", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of one demo run.

    Attributes
    ----------
    train_products, val_products, test_products : int
        Fashion-MNIST products used to train the networks, to search the transform,
        and in the test benchmark.
    views : int
        Views per test product (one query, the rest in the gallery).
    epochs, steps_per_epoch, batch_size : int
        GSN / triplet training budget (identical for both).
    transform_budget, kernel_budget : int
        Candidates evaluated by the transform and the kernel search.
    svm_train, svm_val, svm_test : int
        MNIST images for the kernel search protocol (train / validation / test).
    """

    train_products: int
    val_products: int
    test_products: int
    views: int
    epochs: int
    steps_per_epoch: int
    batch_size: int
    transform_budget: int
    kernel_budget: int
    svm_train: int
    svm_val: int
    svm_test: int


FULL = DemoConfig(
    train_products=10000,
    val_products=1000,
    test_products=2000,
    views=3,
    epochs=6,
    steps_per_epoch=80,
    batch_size=96,
    transform_budget=100,
    kernel_budget=40,
    svm_train=1000,
    svm_val=500,
    svm_test=10000,
)

QUICK = DemoConfig(
    train_products=1500,
    val_products=300,
    test_products=500,
    views=3,
    epochs=2,
    steps_per_epoch=20,
    batch_size=48,
    transform_budget=20,
    kernel_budget=20,
    svm_train=500,
    svm_val=250,
    svm_test=1000,
)


def _say(msg: str) -> None:
    print(msg, flush=True)


def _load_all() -> tuple[dict[tuple[str, str], tuple[np.ndarray, np.ndarray]], str]:
    """Fashion-MNIST and MNIST, train and test: the full files or the shipped sample."""
    data: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    try:
        for name in ("fashion-mnist", "mnist"):
            for split in ("train", "test"):
                data[name, split] = datasets.load(name, split)
        return data, "full"
    except DataError as e:
        _say(f"note: full datasets unavailable ({str(e).split('.')[0]}).")
        _say("note: running on the small sample shipped with gridmatch; numbers are indicative.")
        for name in ("fashion-mnist", "mnist"):
            for split in ("train", "test"):
                data[name, split] = datasets.load_sample(name, split)
        return data, "sample"


def _views(X: np.ndarray, views: int, seed: int) -> np.ndarray:
    from .datasets import distort

    rep = np.repeat(X, views, axis=0)
    return distort(rep, 1.0, seed, 2).reshape(len(X), views, *X.shape[1:])


def _benchmark(X: np.ndarray, y: np.ndarray, ids: np.ndarray, views: int, seed: int):
    """Queries = first distorted view of each product, gallery = the other views."""
    v = _views(X, views, seed)
    q = v[:, 0]
    g = v[:, 1:].reshape(-1, *X.shape[1:])
    return q, ids, y, g, np.repeat(ids, views - 1), np.repeat(y, views - 1)


def _flat(X: np.ndarray) -> np.ndarray:
    return X.reshape(len(X), -1).astype(np.float32) / 255.0


def run_demo(
    out: str | os.PathLike = "gridmatch-report",
    *,
    quick: bool = False,
    device: str = "auto",
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the demo and write the report folder.

    Parameters
    ----------
    out : path-like, default "gridmatch-report"
        Report folder (created): PNG plots and ``results.json``.
    quick : bool, default False
        Small sizes (about a minute on a laptop CPU) instead of the full run (minutes).
    device : {"auto", "cpu", "cuda"}, default "auto"
        Where the networks train.
    seed : int, default 0
        Seeds data subsets, distortions, training and searches.
    progress : bool, default True
        Show progress bars.

    Returns
    -------
    dict
        The results (also written to ``results.json``).
    """
    from . import plot, retrieval
    from .gsn import GridSearchNetwork
    from .search import KernelSearch, TransformSearch
    from .svm import SVC

    cfg = QUICK if quick else FULL
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    data, source = _load_all()
    rng = np.random.default_rng(seed)
    results: dict[str, Any] = {"config": cfg.__dict__, "data": source, "device": device}
    rows: list[tuple[str, str, str]] = []

    # ---- 1. Grid Search Network on the instance benchmark ------------------------------
    Xtr, ytr = data["fashion-mnist", "train"]
    Xte, yte = data["fashion-mnist", "test"]
    n_train = min(cfg.train_products, len(Xtr))
    train_idx = np.sort(rng.choice(len(Xtr), n_train, replace=False))
    n_val = min(cfg.val_products, len(Xte) // 3)
    n_test = min(cfg.test_products, len(Xte) - n_val)
    perm = rng.permutation(len(Xte))
    val_idx, test_idx = np.sort(perm[:n_val]), np.sort(perm[n_val : n_val + n_test])
    q, qid, qcls, g, gid, gcls = _benchmark(Xte[test_idx], yte[test_idx], test_idx, cfg.views, seed)
    vq, vqid, _, vg, vgid, _ = _benchmark(Xte[val_idx], yte[val_idx], val_idx, cfg.views, seed + 1)
    _say(
        f"[1/3] Grid Search Network: {n_train} training products, benchmark of {n_test} "
        f"products x {cfg.views} distorted views ({source} data)"
    )
    ks = (1, 10, 20)
    metrics = {}
    metrics["raw pixels"] = retrieval.evaluate(_flat(q), qid, _flat(g), gid, ks=ks)
    common: dict[str, Any] = dict(
        backbone="convnet",
        dim=64,
        positives=1,
        negatives="mined",
        epochs=cfg.epochs,
        steps_per_epoch=cfg.steps_per_epoch,
        batch_size=cfg.batch_size,
        device=device,
        seed=seed,
        progress=progress,
    )
    nets = {}
    runs: tuple[tuple[str, dict[str, Any]], ...] = (
        ("GSN grid-softmax", dict(loss="grid-softmax", grid=(4, 4))),
        ("GSN double-margin", dict(loss="double-margin", grid=(3, 3))),
        ("triplet", dict(loss="triplet")),
    )
    for name, extra in runs:
        t0 = time.perf_counter()
        net = GridSearchNetwork(**common, **extra)
        net.fit(Xtr[train_idx], train_idx, ytr[train_idx], X_val=vg, ids_val=vgid)
        nets[name] = net
        Eq, Eg = net.embed(q), net.embed(g)
        metrics[name] = retrieval.evaluate(Eq, qid, Eg, gid, ks=ks)
        metrics[name]["train_seconds"] = time.perf_counter() - t0
    gsn = nets["GSN grid-softmax"]
    results["trained_on"] = gsn.model_.device  # what "auto" resolved to, e.g. "cuda:0"
    Eq, Eg = gsn.embed(q), gsn.embed(g)
    for name, m in metrics.items():
        rows.append(
            (
                "retrieval (Fashion-MNIST instances)",
                name,
                f"R@1 {m['recall@1']:.3f}  R@10 {m['recall@10']:.3f}  R@20 {m['recall@20']:.3f}"
                f"  MAP@R {m['map@r']:.3f}",
            )
        )
    results["retrieval"] = metrics
    _, idx = retrieval.knn(Eq, Eg, k=5)
    plot.save(
        plot.retrieval_panel(q, g, idx, qid, gid, k=5, title="GSN: queries and top-5 gallery"),
        out / "retrieval_panel.png",
    )
    plot.save(
        plot.training_curves(
            {n: net.history_ for n, net in nets.items()}, metrics=("loss", "val_recall@1")
        ),
        out / "training_curves.png",
    )
    plot.save(
        plot.embedding_2d(
            Eq, qcls, class_names=datasets.CLASS_NAMES["fashion-mnist"], title="GSN embeddings"
        ),
        out / "embeddings_2d.png",
    )

    # ---- 2. Transform search on the GSN embeddings -------------------------------------
    _say(f"[2/3] Transform search: RL controller, budget {cfg.transform_budget}")
    searches = {}
    Evq, Evg = gsn.embed(vq), gsn.embed(vg)
    ts = TransformSearch(budget=cfg.transform_budget, seed=seed, progress=progress)
    ts.fit(Evq, vqid, Evg, vgid)
    plot.save(
        plot.search_curves({"transform (RL)": ts.history_}, title="transform search"),
        out / "transform_search.png",
    )
    best_t = ts.best_expr_
    before = metrics["GSN grid-softmax"]["recall@1"]
    if best_t is None:  # no valid candidate: the embeddings stay as they are
        after = before
    else:
        Tq, Tg = best_t.apply(Eq), best_t.apply(Eg)
        after = retrieval.evaluate(Tq, qid, Tg, gid, ks=(1,))["recall@1"]
    rows.append(("transform search", f"f(x) = {best_t}", f"test R@1 {before:.3f} -> {after:.3f}"))
    results["transform_search"] = {
        "best_expr": str(best_t),
        "val_recall@1": ts.best_score_,
        "test_recall@1_before": before,
        "test_recall@1_after": after,
    }

    # ---- 3. Kernel search on MNIST -----------------------------------------------------
    Xm, ym = data["mnist", "train"]
    Xmt, ymt = data["mnist", "test"]
    a, b = cfg.svm_train, cfg.svm_train + cfg.svm_val
    Xs_tr, ys_tr, Xs_va, ys_va = _flat(Xm[:a]), ym[:a], _flat(Xm[a:b]), ym[a:b]
    Xs_te, ys_te = _flat(Xmt[: cfg.svm_test]), ymt[: cfg.svm_test]
    _say(
        f"[3/3] Kernel search on MNIST: train {a}, validation {b - a}, test {len(Xs_te)}; "
        f"RL vs random, budget {cfg.kernel_budget} each"
    )
    best = {}
    for controller in ("rl", "random"):
        ksr = KernelSearch(
            controller=controller, budget=cfg.kernel_budget, seed=seed, progress=progress
        )
        ksr.fit(Xs_tr, ys_tr, Xs_va, ys_va)
        searches[f"kernel ({controller})"] = ksr.history_
        best[controller] = ksr.best_expr_
    kernels: dict[str, Any] = {
        "linear": "linear",
        "rbf (gamma=scale)": "rbf",
        "poly": "poly",
        "sigmoid": "sigmoid",
        "paper kernel": "norm1(min(sin(x * y), sin(dot(x, y))))",
        "searched (RL)": best["rl"],
        "searched (random)": best["random"],
    }
    svm_results = {}
    best_pred, best_acc = None, -1.0
    for name, kernel in kernels.items():
        clf = SVC(kernel=kernel, C=1.0).fit(Xs_tr, ys_tr)
        pred = clf.predict(Xs_te)
        acc = float((pred == ys_te).mean())
        svm_results[name] = {"kernel": str(kernel), "test_accuracy": acc}
        rows.append(
            (
                "SVM on MNIST",
                f"{name}: {kernel}" if "searched" in name else name,
                f"test acc {acc:.4f}",
            )
        )
        if acc > best_acc:
            best_acc, best_pred = acc, pred
    results["kernel_search"] = svm_results
    plot.save(
        plot.search_curves(searches, title="kernel search on MNIST (validation accuracy)"),
        out / "search_curves.png",
    )
    plot.save(
        plot.confusion_matrix(ys_te, best_pred, title=f"best SVM, test accuracy {best_acc:.4f}"),
        out / "confusion_matrix.png",
    )

    # ---- table and report --------------------------------------------------------------
    results["seconds"] = time.perf_counter() - t_start
    w1 = max(len(r[0]) for r in rows)
    w2 = min(60, max(len(r[1]) for r in rows))
    _say("")
    _say(f"gridmatch demo results ({source} data, {results['seconds']:.0f} s)")
    _say("-" * (w1 + w2 + 50))
    for part, name, value in rows:
        name = name if len(name) <= w2 else name[: w2 - 1] + "…"
        _say(f"{part:<{w1}}  {name:<{w2}}  {value}")
    with open(out / "results.json", "w") as f:
        json.dump(results, f, indent=2, default=str)
    _say(f"\nreport: {out}/ (results.json and PNG plots)")
    return results
