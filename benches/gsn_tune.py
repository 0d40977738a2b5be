"""Validation runs for the GSN losses (never the test benchmark).

Both settings are built from the Fashion-MNIST *train* file only: 8,000 images train,
1,000 disjoint ones validate (instance: one distorted query view + 2 distorted gallery
views per held-out product, as in ``fashion_shop("test")``; category: 200 held-out
queries vs 800 held-out gallery images by class). Each config is given as
``setting:key=value,...`` on the command line and trained with benches/gsn.py's budget
(300 steps × 64 images, convnet, dim 128) unless overridden.

    python benches/gsn_tune.py inst:loss=ntxent inst:loss=double-margin,balance=False
    python benches/gsn_tune.py --seeds 3 inst:loss=grid-softmax,grid=4x4,negatives=mined

Settings: ``inst``, ``cat`` (200 queries) and ``cat2k`` (the category setting validated
on 2000 queries against 8000 gallery images). A loss's own parameters (``hi``, ``lo``,
``balance``, ``temperature``, ``margin``, ...) go to the loss object. ``--seeds N``
trains each config with seeds 0..N-1 and ends with a markdown table of mean ± std.
"""

from __future__ import annotations

import re
import sys
import time

import numpy as np

import gridmatch as gm
from gridmatch.datasets import distort

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from gsn import metrics, raw  # noqa: E402


def val_data(seed=0):
    X, y = gm.datasets.load("fashion-mnist", "train")
    rng = np.random.default_rng(1000 + seed)
    perm = rng.permutation(len(X))
    tr, va = perm[:8000], perm[8000:9000]
    views = distort(np.repeat(X[va], 3, axis=0), 1.0, 1000 + seed, 3).reshape(len(va), 3, 28, 28)
    inst = dict(
        train=(X[tr], np.arange(len(tr)), y[tr]),
        eval=(views[:, 0], va, views[:, 1:].reshape(-1, 28, 28), np.repeat(va, 2)),
    )
    q, g = va[:200], va[200:]
    cat = dict(train=(X[tr], y[tr], y[tr]), eval=(X[q], y[q], X[g], y[g]))
    # the category setting with a larger validation split (2000 queries, 8000 gallery;
    # R@1's standard error ~0.008 instead of ~0.025), still disjoint from the 8000 train
    q2, g2 = perm[9000:11000], perm[11000:19000]
    cat2k = dict(train=cat["train"], eval=(X[q2], y[q2], X[g2], y[g2]))
    return {"inst": inst, "cat": cat, "cat2k": cat2k}


def parse(v):
    for f in (int, float):
        try:
            return f(v)
        except ValueError:
            pass
    if v in ("True", "False"):
        return v == "True"
    if re.fullmatch(r"\d+x\d+", v):
        return tuple(int(a) for a in v.split("x"))
    return v


LOSS_KEYS = ("hi", "lo", "balance", "temperature", "margin", "alpha", "beta", "base", "scale")


def main():
    args = sys.argv[1:]
    seeds = 1
    if args[:1] == ["--seeds"]:
        seeds, args = int(args[1]), args[2:]
    data = val_data()
    table = []
    for spec in args:
        runs = [run(data, spec, seed) for seed in range(seeds)]
        table.append((spec, runs))
    if seeds > 1:
        print(f"\n| config (validation, {seeds} seeds) | R@1 | R@10 | MAP@R |")
        print("|---|---|---|---|")
        for spec, runs in table:
            cells = [
                f"{np.mean([r[k] for r in runs]):.3f} ± {np.std([r[k] for r in runs]):.3f}"
                for k in ("R@1", "R@10", "MAP@R")
            ]
            print(f"| {spec} | " + " | ".join(cells) + " |")


def run(data, spec, seed):
    setting, _, kv = spec.partition(":")
    kw = dict(
        dim=128,
        grid=(3, 3),
        batch_size=64,
        epochs=1,
        steps_per_epoch=300,
        lr=1e-3,
        seed=seed,
        progress=False,
    )
    own = {}
    for item in filter(None, kv.split(",")):
        k, v = item.split("=")
        (own if k in LOSS_KEYS else kw)[k] = parse(v)
    if own:
        kw["loss"] = gm.losses.resolve(kw.get("loss", gm.GridSearchNetwork().loss)).set_params(
            **own
        )
    Xtr, ids, cls = data[setting]["train"]
    Xq, iq, Xg, ig = data[setting]["eval"]
    t0 = time.perf_counter()
    if kw.get("loss") == "raw":
        Eq, Eg = raw(Xq), raw(Xg)
    else:
        net = gm.GridSearchNetwork(**kw).fit(Xtr, ids, cls)
        Eq, Eg = net.embed(Xq), net.embed(Xg)
    m = metrics(Eq, iq, Eg, ig)
    # diagnostics: mean cosine to the query's gallery positives, to its hardest
    # gallery negative, and to all negatives (what the margins act on)
    S = Eq @ Eg.T
    same = iq[:, None] == ig[None, :]
    pos = S[same].mean()
    hard = np.where(same, -2, S).max(1).mean()
    neg = S[~same].mean()
    print(
        f"{spec:60} seed={seed} R@1={m['R@1']:.3f} R@10={m['R@10']:.3f} MAP@R={m['MAP@R']:.3f} "
        f"cos pos={pos:.2f} hardneg={hard:.2f} neg={neg:.2f} "
        f"{time.perf_counter() - t0:.0f}s",
        flush=True,
    )
    return m


if __name__ == "__main__":
    main()
