"""Paired, leave-one-out comparison of losses on category-level Fashion-MNIST retrieval.

The 3-seed table of ``benches/gsn.py`` cannot separate losses whose R@1 differ by less
than about 0.01. Here every method is trained with the same seed on the same images (so
seed effects pair up), and every evaluation image queries all the others (leave-one-out
over 10,000 images instead of 1,000 queries). Prints mean R@1 / MAP@R per method and the
paired R@1 difference to a reference method with its standard error.

``--split test``: train on 10,000 random training images per seed (as ``gsn.py``),
evaluate on the 10,000 test images. ``--split val``: train file only — train on 10,000 of
the first 40,000 images of a fixed permutation, evaluate on images 40,000–49,999 (for
choosing configurations without touching the test set).

    python benches/gsn_paired.py --split test --seeds 8 triplet ntxent dm-mined gs-mined-4x4
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import gridmatch as gm

CONFIGS = {
    "triplet": dict(loss="triplet"),
    "ntxent": dict(loss="ntxent"),
    "contrastive": dict(loss="contrastive"),
    "ms": dict(loss=gm.losses.MultiSimilarity()),
    "dm-mined": dict(loss="double-margin", negatives="mined"),
    "dm-mined-2pos": dict(loss="double-margin", negatives="mined", positives=2),
    "dm-mined-2x2": dict(loss="double-margin", negatives="mined", grid=(2, 2)),
    "dm-mined-hi1": dict(loss=gm.losses.DoubleMargin(hi=1.0), negatives="mined"),
    "dm-mined-3pos-4x4": dict(loss="double-margin", negatives="mined", positives=3, grid=(4, 4)),
    "dm-mined-2pos-2x3": dict(loss="double-margin", negatives="mined", positives=2, grid=(2, 3)),
    "dm-mined-hi.6": dict(loss=gm.losses.DoubleMargin(hi=0.6), negatives="mined"),
    "dm-mined-2pos-hi.6": dict(loss=gm.losses.DoubleMargin(hi=0.6), negatives="mined", positives=2),
    "dm-mined-hi.6-lo.2": dict(loss=gm.losses.DoubleMargin(hi=0.6, lo=0.2), negatives="mined"),
    "gs-mined-2pos-4x4-t.05": dict(
        loss=gm.losses.GridSoftmax(temperature=0.05), negatives="mined", positives=2, grid=(4, 4)
    ),
    "dm-semi": dict(loss="double-margin", negatives="semihard"),
    "gs-mined-4x4": dict(loss="grid-softmax", negatives="mined", grid=(4, 4)),
    "gs-mined-2pos-4x4": dict(loss="grid-softmax", negatives="mined", positives=2, grid=(4, 4)),
    "gs-mined-2pos-4x4-t2": dict(
        loss=gm.losses.GridSoftmax(temperature=0.2), negatives="mined", positives=2, grid=(4, 4)
    ),
    "gs-all-5pos": dict(loss="grid-softmax", negatives="mined", positives=5, grid=(6, 9)),
    "gs-semi": dict(loss="grid-softmax", negatives="semihard"),
    "gs-semi-4x4": dict(loss="grid-softmax", negatives="semihard", grid=(4, 4)),
}


def data(split: str, seed: int):
    X, y = gm.datasets.load("fashion-mnist", "train")
    if split == "test":
        pick = np.sort(np.random.default_rng(seed).choice(len(X), size=10_000, replace=False))
        Xe, ye = gm.datasets.load("fashion-mnist", "test")
        return X[pick], y[pick], Xe, ye
    perm = np.random.default_rng(1000).permutation(len(X))
    pick = np.sort(np.random.default_rng(seed).choice(perm[:40_000], size=10_000, replace=False))
    ev = perm[40_000:50_000]
    return X[pick], y[pick], X[ev], y[ev]


def summary(res: dict, ref: str) -> list[str]:
    base = np.array([r["R@1"] for r in res.get(ref, [])])
    lines = []
    for name, runs in res.items():
        a = np.array([r["R@1"] for r in runs])
        m = np.array([r["MAP@R"] for r in runs])
        line = f"{name:22} n={len(a)} R@1 {a.mean():.4f} ± {a.std(ddof=1) if len(a) > 1 else 0:.4f}"
        line += f"  MAP@R {m.mean():.4f}"
        n = min(len(a), len(base))
        if name != ref and n > 1:
            d = a[:n] - base[:n]
            line += (
                f"  vs {ref}: {d.mean():+.4f} (SE {d.std(ddof=1) / np.sqrt(n):.4f}),"
                f" ahead in {int((d > 0).sum())}/{n}"
            )
        lines.append(line)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("methods", nargs="+", choices=sorted(CONFIGS))
    ap.add_argument("--split", choices=("test", "val"), default="val")
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--ref", default="triplet", help="method the paired differences refer to")
    ap.add_argument("--json", help="keep every run here (and resume from it)")
    args = ap.parse_args()
    setup = {"split": args.split, "steps": args.steps}
    doc = {"setup": setup, "runs": {}}
    if args.json and Path(args.json).exists():
        doc = json.loads(Path(args.json).read_text())
        if doc.get("setup") != setup:
            raise SystemExit(
                f"{args.json} holds runs of {doc.get('setup')}, not {setup}: "
                "give another --json file"
            )
    res = doc["runs"]
    for seed in range(args.seeds):
        Xtr, ytr, Xe, ye = data(args.split, seed)
        for name in args.methods:
            if len(res.get(name, [])) > seed:
                continue
            t0 = time.perf_counter()
            params = dict(
                dim=128,
                grid=(3, 3),
                batch_size=64,
                epochs=1,
                steps_per_epoch=args.steps,
                lr=1e-3,
                augment=0.0,
                seed=seed,
                device="cpu",
                progress=False,
            )
            params.update(CONFIGS[name])
            E = gm.GridSearchNetwork(**params).fit(Xtr, ytr, ytr).embed(Xe)
            ev = gm.retrieval.evaluate(E, ye, E, ye, ks=[1], exclude_self=True)
            run = {"R@1": float(ev["recall@1"]), "MAP@R": float(ev["map@r"])}
            res.setdefault(name, []).append(run)
            print(f"seed {seed} {name:22} {run} {time.perf_counter() - t0:.0f}s", flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(doc, indent=1))
    print("\n".join(summary(res, args.ref)))


if __name__ == "__main__":
    main()
