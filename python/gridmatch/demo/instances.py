"""Part 1 of the demo: the networks trained and scored on the instance benchmark at
every seed; the mean and spread of each metric and the ranking of each seed."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .config import RECALL_KS, DemoConfig, methods

__all__ = ["benchmark", "flat", "train_and_score"]


def _views(X: np.ndarray, views: int, seed: int) -> np.ndarray:
    from ..datasets import distort

    rep = np.repeat(X, views, axis=0)
    return distort(rep, 1.0, seed, 2).reshape(len(X), views, *X.shape[1:])


def benchmark(X: np.ndarray, y: np.ndarray, ids: np.ndarray, views: int, seed: int):
    """Queries = first distorted view of each product, gallery = the other views."""
    v = _views(X, views, seed)
    q = v[:, 0]
    g = v[:, 1:].reshape(-1, *X.shape[1:])
    return q, ids, y, g, np.repeat(ids, views - 1), np.repeat(y, views - 1)


def flat(X: np.ndarray) -> np.ndarray:
    return X.reshape(len(X), -1).astype(np.float32) / 255.0


def _split(data: dict, cfg: DemoConfig, seed: int) -> dict[str, Any]:
    """One seed's training products, validation products and test benchmark."""
    Xtr, ytr = data["fashion-mnist", "train"]
    Xte, yte = data["fashion-mnist", "test"]
    rng = np.random.default_rng(seed)
    train_idx = np.sort(rng.choice(len(Xtr), min(cfg.train_products, len(Xtr)), replace=False))
    n_val = min(cfg.val_products, len(Xte) // 3)
    n_test = min(cfg.test_products, len(Xte) - n_val)
    perm = rng.permutation(len(Xte))
    val_idx, test_idx = np.sort(perm[:n_val]), np.sort(perm[n_val : n_val + n_test])
    q, qid, qcls, g, gid, _ = benchmark(Xte[test_idx], yte[test_idx], test_idx, cfg.views, seed)
    vq, vqid, _, vg, vgid, _ = benchmark(Xte[val_idx], yte[val_idx], val_idx, cfg.views, seed + 1)
    return dict(
        X=Xtr[train_idx],
        ids=train_idx,
        classes=ytr[train_idx],
        q=q,
        qid=qid,
        qcls=qcls,
        g=g,
        gid=gid,
        vq=vq,
        vqid=vqid,
        vg=vg,
        vgid=vgid,
        n_test=n_test,
    )


def _settings(net: Any) -> dict[str, Any]:
    """A network's training settings as JSON-safe values (the loss as its spec)."""
    from ..losses import resolve
    from ..miners import resolve as resolve_miner

    keep = (
        "backbone",
        "dim",
        "grid",
        "positives",
        "negatives",
        "loss",
        "mode",
        "epochs",
        "batch_size",
        "steps_per_epoch",
        "lr",
        "optimizer",
        "schedule",
        "weight_decay",
        "augment",
    )
    p = net.get_params(deep=False)
    out = {k: p[k] for k in keep}
    out["loss"] = resolve(p["loss"]).spec()
    out["negatives"] = resolve_miner(p["negatives"]).name
    out["grid"] = list(p["grid"])
    return out


def _relative_loss(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each epoch's loss divided by the first epoch's (losses differ in scale)."""
    first = history[0]["loss"] if history else 0.0
    return [{**h, "loss / epoch-1 loss": h["loss"] / first if first else None} for h in history]


def _summary(per_seed: list[dict[str, float]]) -> dict[str, Any]:
    """Mean of every metric over the seeds, their standard deviations, and the seeds'."""
    keys = [k for k in per_seed[0] if k != "seed"]
    out: dict[str, Any] = {k: float(np.mean([m[k] for m in per_seed])) for k in keys}
    out["std"] = {k: float(np.std([m[k] for m in per_seed])) for k in keys}
    out["per_seed"] = per_seed
    return out


def _pair(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """How far row ``a`` (the higher mean R@1) is ahead of row ``b``.

    ``separated``: every seed puts ``a`` ahead, and the mean lead exceeds twice its
    standard error from the sampling of the queries (binomial, the rows taken as
    independent, which overstates it for paired rows): the order holds across training
    seeds and is not a few queries' luck.
    """
    ra = [m["recall@1"] for m in a["per_seed"]]
    rb = [m["recall@1"] for m in b["per_seed"]]
    n = sum(m["n_queries"] - m["n_queries_without_match"] for m in a["per_seed"])
    pa, pb = a["recall@1"], b["recall@1"]
    lead = pa - pb
    se = float(np.sqrt((pa * (1 - pa) + pb * (1 - pb)) / max(n, 1)))
    ahead = int(sum(x > y for x, y in zip(ra, rb)))
    return {
        "seeds_ahead": ahead,
        "lead": lead,
        "lead_se": se,
        "separated": bool(ahead == len(ra) and lead > 2 * se),
    }


def _ranking(retrieval: dict[str, dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """Order by mean R@1, each seed's order, and for each row and the next: in how many
    seeds it is ahead, by how much, and whether that separates them (:func:`_pair`)."""
    by_mean = sorted(retrieval, key=lambda n: -retrieval[n]["recall@1"])
    per_seed = {
        str(s): sorted(retrieval, key=lambda n: -retrieval[n]["per_seed"][i]["recall@1"])
        for i, s in enumerate(seeds)
    }
    pairs = [
        {"ahead": a, "of": b, **_pair(retrieval[a], retrieval[b])}
        for a, b in zip(by_mean, by_mean[1:])
    ]
    return {
        "by_mean_recall@1": by_mean,
        "pairs": pairs,
        "per_seed": per_seed,
        "same_order_every_seed": all(o == by_mean for o in per_seed.values()),
    }


def train_and_score(
    data: dict, cfg: DemoConfig, seeds: list[int], device: str, progress: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Part 1 at every seed: the results, and the first seed's networks, their test
    embeddings (query, gallery) and benchmark."""
    from .. import retrieval
    from ..gsn import GridSearchNetwork

    common: dict[str, Any] = dict(
        backbone="convnet",
        dim=64,
        positives=1,
        mode="batch",
        epochs=cfg.epochs,
        steps_per_epoch=cfg.steps_per_epoch,
        batch_size=cfg.batch_size,
        lr=1e-3,
        optimizer="adam",
        schedule="cosine",
        weight_decay=0.0,
        augment=1.0,
        device=device,
        progress=progress,
    )
    runs = methods()
    per_seed: dict[str, list[dict[str, float]]] = {n: [] for n in ("raw pixels", *runs)}
    histories: dict[str, list[list[dict[str, Any]]]] = {n: [] for n in runs}
    first: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    for s in seeds:
        b = _split(data, cfg, s)
        if not first:
            first = {"bench": b, "nets": {}, "embeddings": {}}
        # the validation curve: the gallery views of the first val_curve_products products
        n_curve = cfg.val_curve_products * (cfg.views - 1)
        vg, vgid = b["vg"][:n_curve], b["vgid"][:n_curve]
        m = retrieval.evaluate(flat(b["q"]), b["qid"], flat(b["g"]), b["gid"], ks=RECALL_KS)
        per_seed["raw pixels"].append({"seed": s, **m})
        for name, extra in runs.items():
            t0 = time.perf_counter()
            net = GridSearchNetwork(**common, **extra, seed=s)
            net.fit(b["X"], b["ids"], b["classes"], X_val=vg, ids_val=vgid)
            Eq, Eg = net.embed(b["q"]), net.embed(b["g"])
            m = retrieval.evaluate(Eq, b["qid"], Eg, b["gid"], ks=RECALL_KS)
            m["train_seconds"] = time.perf_counter() - t0
            per_seed[name].append({"seed": s, **m})
            histories[name].append(_relative_loss(net.history_))
            settings[name] = _settings(net)
            if s == seeds[0]:
                first["nets"][name] = net
                first["embeddings"][name] = (Eq, Eg)
    results = {
        "methods": settings,
        "retrieval": {n: _summary(v) for n, v in per_seed.items()},
        "histories": histories,
    }
    results["ranking"] = _ranking(results["retrieval"], seeds)
    return results, first
