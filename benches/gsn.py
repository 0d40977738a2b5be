"""Grid Search Network benchmarks: retrieval quality of the losses, and training speed.

Quality: on the Fashion-MNIST instance benchmark (gm.datasets.fashion_shop) and on
category-level Fashion-MNIST retrieval, recall@{1,10,20} and MAP@R of raw pixels, the
untrained network, and the convnet trained with triplet, contrastive, NT-Xent and the
two GSN losses — same backbone, steps, batch and augmentations for every loss.

Speed: a GSN training step (Rust + libtorch via tch) against an equivalent PyTorch
eager loop (same network, batch, grid, loss and grid sampling, no augmentation on
either side), side by side in one process, for 1 and 2 libtorch threads.

Writes its section of BENCHMARKS.md (between the gsn markers).

    python benches/gsn.py [--steps 300] [--seeds 1] [--speed-steps 30] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _common import ROOT, cpu_name, replace_block, vector_extensions

import gridmatch as gm

KS = (1, 10, 20)


# --- metrics ----------------------------------------------------------------------------
def metrics(Eq, iq, Eg, ig):
    """recall@k and MAP@R (Musgrave et al. 2020) by gm.retrieval.evaluate (exact, cosine)."""
    ev = gm.retrieval.evaluate(Eq, iq, Eg, ig, ks=KS)
    out = {f"R@{k}": float(ev[f"recall@{k}"]) for k in KS}
    out["MAP@R"] = float(ev["map@r"])
    return out


def raw(X):
    E = X.reshape(len(X), -1).astype(np.float32)
    E -= E.mean(1, keepdims=True)
    return E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)


# --- data ---------------------------------------------------------------------------
def load_settings(n_train, n_query, seed, cat_augment=0.0):
    shop_train = gm.datasets.fashion_shop("train", n_products=n_train, seed=seed)
    bench = gm.datasets.fashion_shop("test", views=3, n_products=n_query, seed=seed)
    X, y = gm.datasets.load("fashion-mnist", "train")
    Xt, yt = gm.datasets.load("fashion-mnist", "test")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(X), size=n_train, replace=False))
    perm = rng.permutation(len(Xt))
    q, g = perm[:n_query], perm[n_query : n_query + 4 * n_query]
    return {
        "instance (fashion_shop)": dict(
            train=(shop_train.X, shop_train.ids, shop_train.classes),
            eval=(bench.query.X, bench.query.ids, bench.gallery.X, bench.gallery.ids),
            augment=1.0,
        ),
        "category (Fashion-MNIST classes)": dict(
            train=(X[pick], y[pick], y[pick]),
            eval=(Xt[q], yt[q], Xt[g], yt[g]),
            augment=cat_augment,
        ),
    }


METHODS = [
    ("raw pixels", None),
    ("untrained convnet", dict(epochs=0)),
    ("triplet (semi-hard)", dict(loss="triplet")),
    ("contrastive", dict(loss="contrastive")),
    ("NT-Xent", dict(loss="ntxent")),
    ("multi-similarity (Wang et al. 2019)", dict(loss=gm.losses.MultiSimilarity())),
    (
        "GSN double-margin (paper: sum, random negatives)",
        dict(loss=gm.losses.DoubleMargin(balance=False)),
    ),
    ("GSN grid-softmax (random negatives)", dict(loss="grid-softmax")),
    (
        "GSN double-margin balanced, mined negatives",
        dict(loss=gm.losses.DoubleMargin(balance=True), negatives="mined"),
    ),
    (
        "GSN grid-softmax 4×4, mined negatives",
        dict(loss="grid-softmax", negatives="mined", grid=(4, 4)),
    ),
]


def quality(args):
    rows = {}
    t_start = time.perf_counter()
    methods = [
        (name, kw)
        for name, kw in METHODS
        if not args.methods or any(m.lower() in name.lower() for m in args.methods)
    ]
    for seed in range(args.seeds):
        settings = load_settings(args.n_train, args.n_query, seed, args.cat_augment)
        for setting, d in settings.items():
            Xtr, ids, cls = d["train"]
            Xq, iq, Xg, ig = d["eval"]
            for name, kw in methods:
                t0 = time.perf_counter()
                if kw is None:
                    Eq, Eg = raw(Xq), raw(Xg)
                else:
                    params = dict(
                        dim=128,
                        grid=(3, 3),
                        batch_size=args.batch,
                        epochs=1,
                        steps_per_epoch=args.steps,
                        lr=1e-3,
                        augment=d["augment"],
                        seed=seed,
                        device=args.device,
                        progress=False,
                    )
                    params.update(kw)
                    gsn = gm.GridSearchNetwork(**params).fit(Xtr, ids, cls)
                    Eq, Eg = gsn.embed(Xq), gsn.embed(Xg)
                m = metrics(Eq, iq, Eg, ig)
                m["s"] = time.perf_counter() - t0
                rows.setdefault((setting, name), []).append(m)
                if args.json:  # after every run: a run cut short keeps what it measured
                    doc = {
                        "machine": machine(),
                        "args": vars(args),
                        "rows": [
                            {"setting": k[0], "method": k[1], "runs": v} for k, v in rows.items()
                        ],
                    }
                    Path(args.json).write_text(json.dumps(doc, indent=1))
                print(
                    f"seed {seed} {setting:32} {name:46} "
                    + " ".join(f"{k}={v:.3f}" for k, v in m.items()),
                    flush=True,
                )
    return rows, time.perf_counter() - t_start


# --- speed ----------------------------------------------------------------------------
class ConvNet(torch.nn.Module):
    """The same network as gridmatch's "convnet" (3 conv+BN, 2 pools, avg-pool, linear)."""

    def __init__(self, dim):
        super().__init__()
        self.c1 = torch.nn.Conv2d(1, 32, 3, padding=1, bias=False)
        self.b1 = torch.nn.BatchNorm2d(32)
        self.c2 = torch.nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.b2 = torch.nn.BatchNorm2d(64)
        self.c3 = torch.nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.b3 = torch.nn.BatchNorm2d(128)
        self.head = torch.nn.Linear(128, dim)

    def forward(self, x):
        x = (x - 0.5) / 0.25
        x = F.max_pool2d(F.relu(self.b1(self.c1(x))), 2)
        x = F.max_pool2d(F.relu(self.b2(self.c2(x))), 2)
        x = F.relu(self.b3(self.c3(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return F.normalize(self.head(x), dim=1)


def grid_targets(lab, cells, gen):
    """The grid of each query of a batch with ids ``lab``: 1 positive + ``cells`` - 1
    random negatives from the batch, in shuffled cells; ``(cell indices, targets)``, on
    ``lab``'s device (``gen`` a generator there)."""
    device = lab.device
    b = len(lab)
    same = lab[:, None] == lab[None, :]
    eye = torch.eye(b, dtype=torch.bool, device=device)
    pos_score = torch.rand(b, b, generator=gen, device=device).masked_fill(~same | eye, -1)
    pos = pos_score.argmax(1, keepdim=True)
    neg_score = torch.rand(b, b, generator=gen, device=device).masked_fill(same, -1)
    neg = neg_score.topk(cells - 1, dim=1).indices
    idx = torch.cat([pos, neg], 1)
    target = torch.zeros(b, cells, device=device)
    target[:, 0] = 1
    order = torch.rand(b, cells, generator=gen, device=device).argsort(1)
    return idx.gather(1, order), target.gather(1, order)


def eager_steps(X, ids, steps, batch, cells, seed, device="cpu", channels_last=False):
    """The PyTorch eager GSN loop: same sampling scheme (pairs of views of batch/2 ids,
    every image a query, 1 positive + cells-1 random negatives from the batch, shuffled
    cells), double-margin loss, Adam."""
    torch.manual_seed(seed)
    net = ConvNet(128).to(device)
    if channels_last:  # the hand-tuned variant: NHWC weights and inputs
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    Xt = torch.from_numpy(X[:, None].astype(np.float32) / 255).to(device)
    uniq = np.unique(ids)
    by_id = {k: np.flatnonzero(ids == k) for k in uniq}
    rng = np.random.default_rng(seed)
    g = torch.Generator(device=device).manual_seed(seed)
    groups = batch // 2
    t0 = time.perf_counter()
    for _ in range(steps):
        chosen = rng.choice(uniq, size=groups, replace=False)
        idx = np.concatenate([rng.choice(by_id[k], 2, replace=len(by_id[k]) < 2) for k in chosen])
        lab = torch.from_numpy(np.repeat(chosen, 2)).to(device)
        xb = Xt[torch.from_numpy(idx).to(device)]
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        e = net(xb)
        full = e @ e.T
        cells_idx, target = grid_targets(lab, cells, g)
        s = full.gather(1, cells_idx)
        loss = (target * F.relu(0.9 - s) ** 2 + (1 - target) * F.relu(s) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device != "cpu":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def gsn_steps(X, ids, steps, batch, grid, seed, device="cpu", augment=0.0):
    gsn = gm.GridSearchNetwork(
        dim=128,
        grid=grid,
        batch_size=batch,
        epochs=1,
        steps_per_epoch=steps,
        lr=1e-3,
        seed=seed,
        augment=augment,
        schedule="constant",
        progress=False,
        device=device,
    )
    t0 = time.perf_counter()
    gsn.fit(X, ids)
    return time.perf_counter() - t0


def speed(args):
    X, _ = gm.datasets.load("fashion-mnist", "train")
    X = X[:5000]
    # Two images per id: with augment=0 a single image per id is refused (its positive
    # would be the query itself); the step's cost does not depend on the ids.
    ids = np.arange(len(X)) // 2
    out = []
    for threads in (1, 2):
        gm.set_num_threads(threads)
        for batch in (32, 128):
            res = {"gsn": [], "gsn+aug": [], "eager": [], "eager-cl": []}
            gsn_steps(X, ids, 3, batch, (3, 3), 0)  # warm-up
            eager_steps(X, ids, 3, batch, 9, 0)
            for rep in range(args.repeats):
                res["gsn"].append(gsn_steps(X, ids, args.speed_steps, batch, (3, 3), rep))
                res["eager"].append(eager_steps(X, ids, args.speed_steps, batch, 9, rep))
                res["eager-cl"].append(
                    eager_steps(X, ids, args.speed_steps, batch, 9, rep, channels_last=True)
                )
                res["gsn+aug"].append(
                    gsn_steps(X, ids, args.speed_steps, batch, (3, 3), rep, augment=1.0)
                )
            med = {k: statistics.median(v) / args.speed_steps * 1000 for k, v in res.items()}
            out.append((threads, batch, med))
            print(
                f"threads {threads} batch {batch}: "
                + " ".join(f"{k}={v:.1f}ms" for k, v in med.items())
                + f" ratio eager/gsn={med['eager'] / med['gsn']:.2f}",
                flush=True,
            )
    gm.set_num_threads(0)
    return out


# --- report -----------------------------------------------------------------------------
def machine():
    load = os.getloadavg()
    return (
        f"{cpu_name()} ({vector_extensions()}), {os.cpu_count()} logical CPUs, "
        f"torch {torch.__version__}, "
        f"load average at start {load[0]:.1f}"
    )


def write_section(text):
    replace_block("gsn", f"<!-- BEGIN gsn -->\n{text.strip()}\n<!-- END gsn -->")


def old_subsection(title: str, until: str) -> str | None:
    """The previous run's `### {title}` subsection of the gsn section (up to `### {until}`)."""
    path = ROOT / "BENCHMARKS.md"
    old = path.read_text() if path.exists() else ""
    stop = rf"(?=\n### {re.escape(until)}|<!-- END gsn -->)"
    m = re.search(rf"<!-- BEGIN gsn -->.*?(### {re.escape(title)}.*?){stop}", old, flags=re.S)
    return m.group(1).strip() if m else None


def report(args, mach, rows, q_seconds, speed_rows):
    lines = ["## Grid Search Network", "", f"Machine: {mach}.", ""]
    findings = old_subsection("Findings", "GPU")  # written by hand: always kept
    if not rows:  # --skip-quality: keep the previous run's quality tables
        kept = old_subsection("Retrieval quality", "Training speed")
        if kept:
            kept = kept.replace("(Quality tables kept from the previous run.)", "").strip()
            lines += [kept, "", "(Quality tables kept from the previous run.)", ""]
    if rows:
        lines += [
            f"### Retrieval quality ({args.seeds} seed{'s' if args.seeds > 1 else ''}, "
            f"mean ± std over seeds)",
            "",
            f"Every trained row: convnet backbone, dim 128, {args.steps} steps of "
            f"{args.batch} images (pairs of views of {args.batch // 2} ids), Adam lr 1e-3 "
            "with cosine decay, the same seeded augmentations (strength 1.0 in the "
            f"instance setting, {args.cat_augment:g} in the category setting) for every "
            "row. GSN rows: mode=batch, 1 positive per grid, every image of the batch a "
            "query; grid and negatives as named (3×3 = 8 negatives per query, 4×4 = 15; "
            "'mined' = the most similar other-id images of the batch under the current "
            "embeddings). NT-Xent sees all 62 other-id images of the batch per anchor, "
            "triplet mines semi-hard negatives among them. Instance setting: "
            f"{args.n_train} Fashion-MNIST train images as products; queries = one "
            f"distorted view of each of {args.n_query} held-out test products, gallery = "
            f"2 other views of each. Category setting: {args.n_train} train images with "
            "their class as id (every method is trained on the class labels; positives "
            "are other images of the class), queries and gallery clean: "
            f"{args.n_query} test queries against a gallery of "
            f"{4 * args.n_query} other test images. GSN variants, the category setting's "
            "augmentation strength and balance=True were chosen on a validation split of "
            "the Fashion-MNIST train file (`benches/gsn_tune.py`), never on these test "
            f"sets. Total time {q_seconds / 60:.1f} min.",
            "",
        ]
        for setting in dict.fromkeys(s for s, _ in rows):
            lines += [
                f"**{setting}**",
                "",
                "| method | R@1 | R@10 | R@20 | MAP@R | s/run |",
                "|---|---|---|---|---|---|",
            ]
            best = max(
                statistics.mean(m["R@1"] for m in v) for (s, _), v in rows.items() if s == setting
            )
            for (s, name), v in rows.items():
                if s != setting:
                    continue
                cells = []
                for k in ("R@1", "R@10", "R@20", "MAP@R"):
                    vals = [m[k] for m in v]
                    txt = f"{statistics.mean(vals):.3f}"
                    if len(vals) > 1:
                        txt += f" ± {statistics.stdev(vals):.3f}"
                    if k == "R@1" and statistics.mean(vals) == best:
                        txt = f"**{txt}**"
                    cells.append(txt)
                t = statistics.mean(m["s"] for m in v)
                lines.append(f"| {name} | " + " | ".join(cells) + f" | {t:.0f} |")
            lines.append("")
    if speed_rows:
        lines += [
            "### Training speed: GSN step vs PyTorch eager (CPU)",
            "",
            f"Same convnet, dim 128, 3×3 grid, double-margin loss, Adam, same sampling "
            f"scheme; {args.speed_steps} steps, median of {args.repeats} runs, ms/step. "
            "`gsn` and `eager` without augmentation; `gsn+aug` adds gridmatch's Rust "
            "augmentations (the PyTorch loop has none). Ratio = eager / gsn (>1: gridmatch "
            "faster). Threads = gm.set_num_threads (rayon + libtorch intra-op), applied "
            "to both. gridmatch runs its convolutions in channels-last layout; `eager` is "
            "the default (NCHW) PyTorch loop a user writes, `eager CL` the same loop "
            "hand-converted to channels-last (`net.to(memory_format=torch.channels_last)`), "
            "for reference.",
            "",
            "| threads | batch | gsn ms/step | eager ms/step | ratio | eager CL ms/step "
            "| ratio vs eager CL | gsn+aug ms/step |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for threads, batch, med in speed_rows:
            lines.append(
                f"| {threads} | {batch} | {med['gsn']:.1f} | {med['eager']:.1f} | "
                f"{med['eager'] / med['gsn']:.2f} | {med['eager-cl']:.1f} | "
                f"{med['eager-cl'] / med['gsn']:.2f} | {med['gsn+aug']:.1f} |"
            )
        lines.append("")
    else:
        # --skip-speed: keep the speed table of the previous run rather than dropping it
        path = ROOT / "BENCHMARKS.md"
        old = path.read_text() if path.exists() else ""
        m = re.search(r"(### Training speed.*?)(?=\n### )", old, flags=re.S)
        if m:
            lines += [m.group(1).strip(), "", "(Speed table kept from the previous run.)", ""]
    if findings:
        lines += [findings, ""]
    # the GPU part is measured by benches/gpu.sh on a CUDA host and written by hand: kept
    gpu = old_subsection("GPU", "(end)")
    lines += [
        gpu or "### GPU\n\n`benches/gpu.sh` (run on a CUDA host) has not been run; no GPU numbers."
    ]
    write_section("\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--n-train", type=int, default=10_000)
    ap.add_argument("--n-query", type=int, default=1000)
    ap.add_argument(
        "--cat-augment",
        type=float,
        default=0.0,
        help="augmentation strength in the category setting (clean test images)",
    )
    ap.add_argument("--speed-steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--device", default="auto", help="training device of the quality runs")
    ap.add_argument(
        "--methods", nargs="*", default=[], help="quality rows whose name contains one of these"
    )
    ap.add_argument(
        "--json",
        help="write the quality runs to this JSON file (after every run) instead of "
        "BENCHMARKS.md; no speed part",
    )
    args = ap.parse_args()
    mach = machine()
    if args.json:
        quality(args)
        return
    rows, q_seconds = ({}, 0.0) if args.skip_quality else quality(args)
    speed_rows = [] if args.skip_speed else speed(args)
    report(args, mach, rows, q_seconds, speed_rows)


if __name__ == "__main__":
    main()
