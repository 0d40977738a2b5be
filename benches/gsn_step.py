"""Benchmark a GSN training step against the strongest PyTorch loops on the CPU.

Issue 38's goal: ``GridSearchNetwork.fit``'s step ≥ 1.1× the fastest PyTorch loop a
performance-minded user writes, in float32 and bfloat16, for

- ``convnet``: gridmatch's convnet on 28 × 28 Fashion-MNIST arrays, 128 images a step;
- ``resnet18``: ResNet-18 at 224 px, 16 images a step, from ``uint8`` arrays (photos
  decoded once, no augmentation) and from JPEG files (decode + random resized crop +
  flip + colour jitter every step: gridmatch's Rust pipeline against
  ``DataLoader(num_workers=2)`` with torchvision transforms v2).

The PyTorch sides, each the same network (torchvision's ResNet-18 / ``benches/gsn.py``'s
copy of the convnet, the same ``512 → 128`` / ``128 → 128`` head and input
normalisation), the same sampling (pairs of views of batch/2 ids, every image a query,
1 positive + 8 random negatives from the batch, a 3 × 3 grid) and the same loss (the
paper's double-margin loss; gridmatch is run with ``loss="double-margin",
negatives="random", grid=(3, 3)`` to match), Adam with ``fused=True`` (PyTorch's fastest
CPU Adam: one pass per tensor):

- ``eager-cl``: eager mode in channels-last (weights and inputs);
- ``compile``: the same with the network and loss under ``torch.compile`` (inductor,
  default mode); ``compile-max``: ``mode="max-autotune-no-cudagraphs"``.

bfloat16 is ``torch.autocast("cpu", torch.bfloat16)`` around network and loss on the
PyTorch sides and ``precision="bf16"`` (libtorch's autocast) for gridmatch.

Every run is a fresh process (``--child``), sides alternating, ``--repeats`` runs each;
a run times ``steps`` steps after its warm-up steps (compilation happens there: its time is
reported separately); medians are reported. Threads: 2 (``gm.set_num_threads``,
``torch.set_num_threads``; the DataLoader adds 2 worker processes).

Writes its section of BENCHMARKS.md (``gsn-step`` markers). Run
``python benches/gsn_step.py``; ``--quick`` checks that every side runs (no write);
``--work``, ``--precisions``, ``--sides`` select parts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import cpu_name, quiet_label, replace_block, vector_extensions

THREADS = 2
DIM = 128
CELLS = 9
# work → (batch, timed steps, warm-up steps)
WORK = {
    "convnet": (128, 40, 3),
    "resnet18": (16, 8, 2),
    "resnet18-jpeg": (16, 8, 2),
}
SIDES = ("gridmatch", "eager-cl", "compile", "compile-max")
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


# --- data ---------------------------------------------------------------------------------
def photos(folder: Path, n: int) -> tuple[list[Path], np.ndarray]:
    """``n`` generated 256-px JPEG photos, two renderings of each of n/2 products."""
    from images import fashion_images, render

    paths = sorted(folder.glob("*.jpg"))
    if len(paths) < n:
        products = fashion_images(n // 2)
        paths = render(np.concatenate([products, products]), folder)
    ids = np.concatenate([np.arange(n // 2), np.arange(n // 2)])
    return paths[:n], ids


def arrays(work: str, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The training arrays: Fashion-MNIST (n, 28, 28) or decoded photos (n, 224, 224, 3)."""
    import gridmatch as gm

    if work == "convnet":
        x, _ = gm.datasets.load("fashion-mnist", "train")
        return x[:5000], np.arange(5000) // 2
    from PIL import Image

    paths, ids = photos(folder, 400)
    x = np.stack([np.asarray(Image.open(p).convert("RGB").resize((224, 224))) for p in paths])
    return x, ids


# --- the PyTorch loops ----------------------------------------------------------------------
def torch_net(work: str):
    import torch

    if work == "convnet":
        from gsn import ConvNet

        return ConvNet(DIM)

    import torchvision

    class ResNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torchvision.models.resnet18()
            self.body.fc = torch.nn.Linear(512, DIM)
            self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

        def forward(self, x):
            e = self.body((x - self.mean) / self.std)
            return torch.nn.functional.normalize(e, dim=1)

    return ResNet()


def pair_batches(ids: np.ndarray, batch: int, seed: int):
    """Endless index batches: batch/2 random ids, two images of each."""
    rng = np.random.default_rng(seed)
    uniq = np.unique(ids)
    by_id = {k: np.flatnonzero(ids == k) for k in uniq}
    while True:
        chosen = rng.choice(uniq, size=batch // 2, replace=False)
        yield np.concatenate([rng.choice(by_id[k], 2, replace=len(by_id[k]) < 2) for k in chosen])


def torch_run(work: str, side: str, prec: str, folder: Path) -> dict:
    """One PyTorch run: ms/step over the timed steps, and the warm-up's seconds."""
    import torch
    import torch.nn.functional as F
    from gsn import grid_targets

    batch, steps, warm = WORK[work]
    torch.manual_seed(0)
    net = torch_net(work).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, fused=True)
    gen = torch.Generator().manual_seed(0)

    def loss_of(x, cells, target):
        e = net(x)
        s = (e @ e.T).gather(1, cells)
        return (target * F.relu(0.9 - s) ** 2 + (1 - target) * F.relu(s) ** 2).sum(1).mean()

    if side == "compile":
        loss_of = torch.compile(loss_of)
    elif side == "compile-max":
        loss_of = torch.compile(loss_of, mode="max-autotune-no-cudagraphs")

    if work == "resnet18-jpeg":
        from gsn_disk import Folder

        paths, ids = photos(folder, 400)
        sampler = pair_batches(ids, batch, 0)
        dl = torch.utils.data.DataLoader(
            Folder(paths, ids, train=True, normalize=False),
            batch_sampler=(next(sampler) for _ in range(warm + steps)),
            num_workers=THREADS,
        )
        batches = ((x.contiguous(memory_format=torch.channels_last), y) for x, y in dl)
    else:
        X, ids = arrays(work, folder)
        Xt = torch.from_numpy(X if X.ndim == 4 else X[..., None])  # (n, h, w, c) uint8
        sampler = pair_batches(ids, batch, 0)

        def gather():
            while True:
                idx = next(sampler)
                # NHWC uint8 → a channels-last float NCHW batch in [0, 1] (what gridmatch
                # gathers); no copy for the layout
                x = Xt[torch.from_numpy(idx)].permute(0, 3, 1, 2).float().div_(255)
                yield x, torch.from_numpy(ids[idx])

        batches = gather()

    def step():
        x, lab = next(batches)
        cells, target = grid_targets(lab, CELLS, gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec == "bf16"):
            loss = loss_of(x, cells, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    t0 = time.perf_counter()
    for _ in range(warm):
        step()
    t1 = time.perf_counter()
    for _ in range(steps):
        last = step()
    t2 = time.perf_counter()
    return {"ms": (t2 - t1) / steps * 1000, "warmup_s": t1 - t0, "loss": last}


# --- gridmatch ------------------------------------------------------------------------------
def gm_run(work: str, prec: str, folder: Path) -> dict:
    """One gridmatch run: ``warm + steps`` one-step epochs, timed by the fit callback
    from the end of the last warm-up step to the end of the last step."""
    import gridmatch as gm

    batch, steps, warm = WORK[work]
    kw = dict(
        dim=DIM,
        grid=(3, 3),
        loss="double-margin",
        negatives="random",
        batch_size=batch,
        lr=1e-4,
        schedule="constant",
        precision=prec,
        epochs=warm + steps,
        steps_per_epoch=1,
        progress=False,
        seed=0,
    )
    if work == "convnet":
        data = arrays(work, folder)
        kw.update(augment=0.0)
    elif work == "resnet18":
        data = arrays(work, folder)
        kw.update(backbone="resnet18", image_size=224, augment=0.0)
    else:
        paths, ids = photos(folder, 400)
        data = (gm.datasets.ImageCatalogue(paths, [f"sku-{i}" for i in ids]),)
        kw.update(backbone="resnet18", image_size=224, augment=1.0)
    ends: list[float] = []
    t0 = time.perf_counter()
    gsn = gm.GridSearchNetwork(**kw).fit(
        *data, callback=lambda *_: ends.append(time.perf_counter())
    )
    return {
        "ms": (ends[-1] - ends[warm - 1]) / steps * 1000,
        "warmup_s": ends[warm - 1] - t0,
        "loss": gsn.history_[-1]["loss"],
    }


# --- driver ---------------------------------------------------------------------------------
def child(work: str, side: str, prec: str, folder: str) -> None:
    import torch

    import gridmatch as gm

    gm.set_num_threads(THREADS)
    torch.set_num_threads(THREADS)
    out = gm_run(work, prec, Path(folder)) if side == "gridmatch" else None
    if out is None:
        out = torch_run(work, side, prec, Path(folder))
    print(json.dumps(out))


def run(work: str, side: str, prec: str, folder: Path) -> dict:
    """One run in a fresh Python process."""
    cmd = [sys.executable, __file__, "--child", work, side, prec, str(folder)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"{work} {side} {prec} failed:\n{out.stdout}\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one run each, 2 steps (no write)")
    ap.add_argument("--work", default=",".join(WORK))
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--sides", default=",".join(SIDES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--bf16-work",
        default=None,
        help="the work run in bf16 (default: all where the CPU has AMX or AVX-512-BF16; "
        "else convnet only: a ResNet-18 bf16 step takes ~20 s without them)",
    )
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.quick:
        for w, (b, _, _) in WORK.items():
            WORK[w] = (b, 2, 1)
    load = os.getloadavg()[0]
    works, precs, sides = args.work.split(","), args.precisions.split(","), args.sides.split(",")
    repeats = 1 if args.quick else args.repeats
    native_bf16 = any(f in vector_extensions() for f in ("amx_bf16", "avx512_bf16"))
    bf16_work = (args.bf16_work or (args.work if native_bf16 else "convnet")).split(",")
    results: dict[tuple[str, str, str], list[dict]] = {}
    folder = Path(tempfile.gettempdir()) / "gm-bench-gsn-step"
    folder.mkdir(exist_ok=True)
    photos(folder, 400)  # generated once, reused by every run
    for work in works:
        for prec in precs:
            if prec == "bf16" and work not in bf16_work:
                continue
            for r in range(repeats):
                for side in sides:
                    res = run(work, side, prec, folder)
                    results.setdefault((work, prec, side), []).append(res)
                    print(
                        f"{work} {prec} {side} run {r}: {res['ms']:.1f} ms/step "
                        f"(warm-up {res['warmup_s']:.1f} s, loss {res['loss']:.3f})",
                        flush=True,
                    )
    text = report(results, works, precs, sides, load, repeats)
    print(text)
    if not args.quick:
        replace_block("gsn-step", text)


def report(results, works, precs, sides, load, repeats) -> str:
    med = {k: statistics.median(r["ms"] for r in v) for k, v in results.items()}
    warm = {k: statistics.median(r["warmup_s"] for r in v) for k, v in results.items()}
    head = "| work | precision | " + " | ".join(f"{s} ms/step" for s in sides)
    lines = [
        "<!-- BEGIN gsn-step -->",
        "## GSN training step vs the strongest PyTorch loops (CPU, `benches/gsn_step.py`)",
        "",
        f"Machine: {cpu_name()} ({vector_extensions()}); {THREADS} threads on every side; "
        f"load average {load:.2f} at the start: {quiet_label(load)}. {repeats} runs per "
        "side, alternating, each in a fresh process; medians. ms per step after the warm-up "
        "steps (compilation included there, reported below). `eager-cl`: PyTorch eager in "
        "channels-last; `compile`: `torch.compile` (inductor) of network + loss; "
        "`compile-max`: mode `max-autotune-no-cudagraphs`; all with Adam(fused=True). "
        "Same network, sampling, 3 × 3 grid and double-margin loss on every side.",
        "Work: `convnet` 28 × 28 Fashion-MNIST arrays, 128 images/step; `resnet18` 224-px "
        "uint8 arrays (decoded generated photos), 16 images/step; `resnet18-jpeg` the same "
        "from 400 generated JPEG files (not a real fashion set) with random resized crop + "
        "flip + colour jitter 0.4 (gridmatch's Rust pipeline vs DataLoader(num_workers=2) + "
        "torchvision v2).",
        "",
        head + " | ratio vs fastest PyTorch | goal ≥ 1.1× |",
        "|---|---|" + "---:|" * len(sides) + "---:|---|",
    ]
    for work in works:
        for prec in precs:
            if not any((work, prec, s) in med for s in sides):
                continue
            row = [med.get((work, prec, s)) for s in sides]
            cells = " | ".join("—" if v is None else f"{v:.1f}" for v in row)
            peers = [
                med[(work, prec, s)] for s in sides if s != "gridmatch" and (work, prec, s) in med
            ]
            ours = med.get((work, prec, "gridmatch"))
            if ours and peers:
                ratio = min(peers) / ours
                verdict = "met" if ratio >= 1.1 else "not met"
                lines.append(f"| {work} | {prec} | {cells} | {ratio:.2f}× | {verdict} |")
            else:
                lines.append(f"| {work} | {prec} | {cells} | — | — |")
    lines += ["", "Warm-up seconds (median; compilation for the compiled sides):", ""]
    for work in works:
        for prec in precs:
            parts = [f"{s} {warm[(work, prec, s)]:.1f}" for s in sides if (work, prec, s) in warm]
            if parts:
                lines.append(f"- {work} {prec}: " + ", ".join(parts))
    lines.append("<!-- END gsn-step -->")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
