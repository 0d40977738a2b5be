"""``run_demo``: the three parts, their plots and the report folder."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import datasets
from .._base import params as _params
from ..exceptions import DataError
from .config import BEST, FULL, QUICK, RECALL_KS
from .instances import flat, train_and_score
from .report import fmt, machine, ranking_lines, say

__all__ = ["run_demo"]


def _load_all() -> tuple[dict[tuple[str, str], tuple[np.ndarray, np.ndarray]], str]:
    """Fashion-MNIST and MNIST, train and test: the full files or the shipped sample."""
    data: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    try:
        for name in ("fashion-mnist", "mnist"):
            for split in ("train", "test"):
                data[name, split] = datasets.load(name, split)
        return data, "full"
    except DataError as e:
        say(f"note: full datasets unavailable ({str(e).split('.')[0]}).")
        say("note: running on the small sample shipped with gridmatch; numbers are indicative.")
        for name in ("fashion-mnist", "mnist"):
            for split in ("train", "test"):
                data[name, split] = datasets.load_sample(name, split)
        return data, "sample"


def run_demo(
    out: str | os.PathLike = "gridmatch-report",
    *,
    quick: bool = False,
    device: str = "auto",
    seed: int = 0,
    seeds: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the demo and write the report folder.

    Parameters
    ----------
    out : path-like, default "gridmatch-report"
        Report folder (created): PNG plots and ``results.json``.
    quick : bool, default False
        Small sizes (:data:`QUICK`, about a minute on a laptop CPU) instead of the full
        run (:data:`FULL`, minutes).
    device : {"auto", "cpu", "cuda"}, default "auto"
        Where the networks train.
    seed : int, default 0
        Seeds data subsets, distortions, training and searches: the retrieval part
        runs at seeds ``seed, seed + 1, ..., seed + seeds - 1``; the plots of one
        network and the searches use ``seed``.
    seeds : int, optional
        Repeats of the retrieval part (default: 3 with ``quick``, 1 for the full run).
    progress : bool, default True
        Show progress bars.

    Returns
    -------
    dict
        The results (also written to ``results.json``): the sizes, seeds, versions,
        threads and CPU; per network its settings, and each retrieval metric's mean
        over the seeds, ``std`` and ``per_seed`` values; the ranking by mean R@1 and
        each seed's; the searches' and the SVMs' results; the seconds taken.

    Raises
    ------
    ConfigError
        If ``seed`` or ``seeds`` is not an integer in range.
    """
    from .. import plot, retrieval
    from ..search import KernelSearch, TransformSearch
    from ..svm import SVC

    cfg = QUICK if quick else FULL
    if seeds is not None:
        cfg = replace(cfg, seeds=_params.integer(seeds, "seeds", low=1))
    seed = _params.integer(seed, "seed", low=0)
    seed_list = [seed + i for i in range(cfg.seeds)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    data, source = _load_all()
    results: dict[str, Any] = {
        "config": cfg.__dict__,
        "seed": seed,
        "seeds": seed_list,
        "data": source,
        "device": device,
        **machine(),
    }
    seconds: dict[str, float] = {}
    rows: list[tuple[str, str, str]] = []

    # ---- 1. Grid Search Network on the instance benchmark ------------------------------
    n_train = min(cfg.train_products, len(data["fashion-mnist", "train"][0]))
    n_test_images = len(data["fashion-mnist", "test"][0])
    n_test = min(cfg.test_products, n_test_images - min(cfg.val_products, n_test_images // 3))
    plural = "s" if cfg.seeds > 1 else ""
    say(
        f"[1/3] Grid Search Network: {n_train} training products, benchmark of "
        f"{n_test} products x "
        f"{cfg.views} distorted views ({source} data), seed{plural} "
        f"{', '.join(map(str, seed_list))}"
    )
    t0 = time.perf_counter()
    part, first = train_and_score(data, cfg, seed_list, device, progress)
    histories = part.pop("histories")
    results.update(part)
    metrics = results["retrieval"]
    gsn = first["nets"][BEST]
    b = first["bench"]
    results["trained_on"] = gsn.model_.device  # what "auto" resolved to, e.g. "cuda:0"
    for name, m in metrics.items():
        rows.append(
            (
                "retrieval (Fashion-MNIST instances)",
                name,
                f"R@1 {fmt(m, 'recall@1', cfg.seeds)}  R@10 {fmt(m, 'recall@10', cfg.seeds)}"
                f"  R@20 {fmt(m, 'recall@20', cfg.seeds)}"
                f"  MAP@R {fmt(m, 'map@r', cfg.seeds)}",
            )
        )
    budget = (
        f"convnet, dim 64, {cfg.epochs} epochs x {cfg.steps_per_epoch} steps of "
        f"{cfg.batch_size} images, Adam lr 1e-3, cosine"
    )
    over = f"mean ± std over seeds {', '.join(map(str, seed_list))}"
    if cfg.seeds == 1:
        over = f"seed {seed}"
    Eq, Eg = first["embeddings"][BEST]
    _, idx = retrieval.knn(Eq, Eg, k=5)
    plot.save(
        plot.retrieval_panel(
            b["q"],
            b["g"],
            idx,
            b["qid"],
            b["gid"],
            k=5,
            title=f"{BEST} (seed {seed}): queries and top-5 gallery",
        ),
        out / "retrieval_panel.png",
    )
    plot.save(
        plot.recall_at_k(
            {
                n: {k: [r[f"recall@{k}"] for r in m["per_seed"]] for k in RECALL_KS}
                for n, m in metrics.items()
            },
            title=f"Fashion-MNIST instance retrieval, {b['n_test']} queries\n({over})",
        ),
        out / "recall_at_k.png",
    )
    plot.save(
        plot.training_curves(
            histories,
            metrics=("loss / epoch-1 loss", "val_recall@1"),
            title=f"training on Fashion-MNIST products: {budget}\n({over})",
        ),
        out / "training_curves.png",
    )
    plot.save(
        plot.embedding_2d(
            Eq,
            b["qcls"],
            class_names=datasets.CLASS_NAMES["fashion-mnist"],
            title=f"{BEST}: test query embeddings (PCA)",
        ),
        out / "embeddings_2d.png",
    )
    seconds["retrieval"] = time.perf_counter() - t0

    # ---- 2. Transform search on the GSN embeddings -------------------------------------
    t0 = time.perf_counter()
    say(f"[2/3] Transform search: RL controller, budget {cfg.transform_budget}")
    searches = {}
    Evq, Evg = gsn.embed(b["vq"]), gsn.embed(b["vg"])
    ts = TransformSearch(
        budget=cfg.transform_budget, batch_size=cfg.search_batch, seed=seed, progress=progress
    )
    ts.fit(Evq, b["vqid"], Evg, b["vgid"])
    plot.save(
        plot.search_curves(
            {"transform (RL)": ts.history_},
            ylabel="validation R@1",
            ylim=(0.0, 1.0),
            title=f"transform search f(embedding) on {BEST} embeddings (seed {seed})",
        ),
        out / "transform_search.png",
    )
    best_t = ts.best_expr_
    before = metrics[BEST]["per_seed"][0]["recall@1"]
    if best_t is None:  # no valid candidate: the embeddings stay as they are
        after = before
    else:
        Tq, Tg = best_t.apply(Eq), best_t.apply(Eg)
        after = retrieval.evaluate(Tq, b["qid"], Tg, b["gid"], ks=(1,))["recall@1"]
    result = f"test R@1 {before:.3f} -> {after:.3f} (seed {seed})"
    rows.append(("transform search", f"f(x) = {best_t}", result))
    results["transform_search"] = {
        "network": BEST,
        "seed": seed,
        "best_expr": str(best_t),
        "val_recall@1": ts.best_score_,
        "test_recall@1_before": before,
        "test_recall@1_after": after,
    }
    seconds["transform_search"] = time.perf_counter() - t0

    # ---- 3. Kernel search on MNIST -----------------------------------------------------
    t0 = time.perf_counter()
    Xm, ym = data["mnist", "train"]
    Xmt, ymt = data["mnist", "test"]
    a, c = cfg.svm_train, cfg.svm_train + cfg.svm_val
    Xs_tr, ys_tr, Xs_va, ys_va = flat(Xm[:a]), ym[:a], flat(Xm[a:c]), ym[a:c]
    Xs_te, ys_te = flat(Xmt[: cfg.svm_test]), ymt[: cfg.svm_test]
    say(
        f"[3/3] Kernel search on MNIST: train {a}, validation {c - a}, test {len(Xs_te)}; "
        f"RL vs random, budget {cfg.kernel_budget} each"
    )
    best = {}
    for controller in ("rl", "random"):
        ksr = KernelSearch(
            controller=controller,
            budget=cfg.kernel_budget,
            batch_size=cfg.search_batch,
            seed=seed,
            progress=progress,
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
    svm_results: dict[str, dict[str, Any]] = {}
    best_pred, best_acc, best_name = None, -1.0, ""
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
            best_acc, best_pred, best_name = acc, pred, name
    results["kernel_search"] = svm_results
    plot.save(
        plot.search_curves(
            searches,
            ylabel="validation accuracy",
            ylim=(0.0, 1.0),
            title=f"kernel search on MNIST (the paper's space): validation accuracy of an "
            f"SVM (C=1) with each candidate kernel\n{a} training / {c - a} validation digits",
        ),
        out / "search_curves.png",
    )
    kernel_text = svm_results[best_name]["kernel"]
    label = best_name if kernel_text in best_name else f"{best_name}: {kernel_text}"
    plot.save(
        plot.confusion_matrix(
            ys_te, best_pred, title=f"best SVM ({label}), test accuracy {best_acc:.4f}"
        ),
        out / "confusion_matrix.png",
    )
    seconds["kernel_search"] = time.perf_counter() - t0

    # ---- table and report --------------------------------------------------------------
    results["seconds"] = time.perf_counter() - t_start
    results["section_seconds"] = seconds
    w1 = max(len(r[0]) for r in rows)
    w2 = min(60, max(len(r[1]) for r in rows))
    say("")
    say(f"gridmatch demo results ({source} data, {results['seconds']:.0f} s)")
    say("-" * (w1 + w2 + 50))
    for part_name, name, value in rows:
        name = name if len(name) <= w2 else name[: w2 - 1] + "…"
        say(f"{part_name:<{w1}}  {name:<{w2}}  {value}")
    say("")
    for line in ranking_lines(results["ranking"], cfg.seeds):
        say(line)
    with open(out / "results.json", "w") as f:
        json.dump(results, f, indent=2, default=str)
    say(f"\nreport: {out}/ (results.json and PNG plots)")
    return results
