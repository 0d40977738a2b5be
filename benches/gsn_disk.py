"""Benchmark GSN training and embedding from JPEG files against PyTorch fed by a DataLoader.

Two goals of issue 16, side by side in one run on the same generated JPEG files:

- **Training**: ``GridSearchNetwork(backbone="resnet18", image_size=224).fit(catalogue)``
  (the Rust loop reading the files through the Rust image pipeline: decode, random
  resized crop 224, flip, colour jitter 0.4; ImageNet normalisation in the network) vs a
  PyTorch eager loop: torchvision ``resnet18`` (``fc`` replaced by the same 512 → 128
  linear head, then L2 normalisation), Adam, fed by ``DataLoader(num_workers=2)`` with
  torchvision transforms v2 doing the same work. Both take ``BATCH`` images per step; the
  eager loop's loss is a cheap batch-similarity loss (log-sum-exp of the scaled cosine
  similarities) — the network's forward / backward and the optimiser dominate both sides.
  Goal ≥ 1.2× steps/s.
- **Embedding** a 2,000-image folder at 224 px: ``gsn.embed(catalogue)`` vs the same
  ResNet-18 + head in eval mode under ``torch.no_grad()`` fed by
  ``DataLoader(num_workers=2)`` (resize 224 + centre crop + normalise). Goal ≥ 1.2×
  images/s. Both sides load the same weights (gridmatch through ``weights=<module>``); the
  pooled features of the first images are compared as a sanity check (cosine; the two
  resize filters differ slightly).

Data (generated): Fashion-MNIST products rendered as 256-px RGB JPEG "photos" by
``benches/images.py``'s ``render`` (two renderings per product, so each id has two photos),
labelled "generated" beside the numbers.

Threads: gridmatch 2 threads; PyTorch 2 intra-op threads in the main process plus 2
DataLoader worker processes (the configuration the issue names). One warm-up step / batch
per side before timing; training is timed on both sides from the end of the first step to
the end of the last (the eager loop after its warm-up step; gridmatch as one-step epochs,
by the fit callback), three runs per side, alternating, medians reported. Every training
run is a fresh Python process (``--child``), so neither side runs in a process the other
has already used (its heap, its thread pools, its oneDNN primitive cache).

Writes its section of BENCHMARKS.md (between the ``gsn-disk`` markers). Run:
``python benches/gsn_disk.py``; ``--quick`` (200 files, 3 steps, no write) checks it works.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import cpu_name, quiet_label, replace_block, vector_extensions

from images import fashion_images, render

THREADS = 2
SIZE = 224
BATCH = 16
EMBED_BATCH = 32  # gridmatch's default at 224 px; the same for the eager side
DIM = 128
TRAIN_REPEATS = 3  # training runs per side (medians reported)
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class Folder:
    """A map-style dataset: PIL decode + a torchvision v2 transform, with the image's id."""

    def __init__(self, paths: list[Path], ids: np.ndarray, train: bool, normalize: bool = True):
        import torch
        from torchvision.transforms import v2

        self.paths, self.ids = paths, ids
        first = (
            [v2.RandomResizedCrop(SIZE, antialias=True), v2.RandomHorizontalFlip()]
            + [v2.ColorJitter(0.4, 0.4, 0.4)]
            if train
            else [v2.Resize(SIZE, antialias=True), v2.CenterCrop(SIZE)]
        )
        tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
        tail += [v2.Normalize(MEAN, STD)] if normalize else []  # else the network does
        self.tf = v2.Compose(first + tail)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return self.tf(im.convert("RGB")), int(self.ids[i])


def eager_model(seed: int):
    """torchvision ResNet-18 with the GSN's head: features → linear 512 → DIM."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    m = torchvision.models.resnet18()
    m.fc = torch.nn.Linear(512, DIM)
    return m


def eager_train(paths, ids, steps: int) -> float:
    """Steps/s of the eager loop (after one warm-up step)."""
    import torch
    import torch.nn.functional as F

    model = eager_model(0).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    dl = torch.utils.data.DataLoader(
        Folder(paths, ids, train=True),
        batch_size=BATCH,
        shuffle=True,
        num_workers=THREADS,
        drop_last=True,
        persistent_workers=True,
    )
    done, t0 = -1, 0.0
    while done < steps:
        for x, _ in dl:
            e = F.normalize(model(x), dim=1)
            sim = e @ e.T / 0.1
            loss = (sim.logsumexp(1) - sim.diagonal()).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done == 0:
                t0 = time.perf_counter()  # after the warm-up step
            if done == steps:
                break
    return steps / (time.perf_counter() - t0)


def gsn_train(cat, steps: int) -> float:
    """Steps/s of GridSearchNetwork.fit over the catalogue after its first step, as the
    eager loop is timed: one fit of ``steps + 1`` one-step epochs, timed from the end of
    the first epoch (its callback) to the end of the last (after a warm-up fit)."""
    import gridmatch as gm

    kw = dict(
        backbone="resnet18",
        image_size=SIZE,
        batch_size=BATCH,
        dim=DIM,
        lr=1e-4,
        steps_per_epoch=1,
        device="cpu",
        progress=False,
    )
    gm.GridSearchNetwork(epochs=1, **kw).fit(cat)  # warm-up (oneDNN kernels)
    ends: list[float] = []
    gm.GridSearchNetwork(epochs=steps + 1, **kw).fit(
        cat, callback=lambda *_: ends.append(time.perf_counter())
    )
    return steps / (ends[-1] - ends[0])


def eager_embed(paths, ids, model) -> tuple[float, np.ndarray]:
    """Images/s of eval-mode inference fed by the DataLoader, and the first batch's features."""
    import torch

    model = model.eval()
    dl = torch.utils.data.DataLoader(
        Folder(paths, ids, train=False), batch_size=EMBED_BATCH, num_workers=THREADS
    )
    fc, model.fc = model.fc, torch.nn.Identity()
    out, first, n = [], None, 0
    with torch.no_grad():
        t0 = time.perf_counter()
        for x, _ in dl:
            f = model(x)
            if first is None:
                first = f.numpy().copy()
            out.append(torch.nn.functional.normalize(fc(f), dim=1))
            n += x.shape[0]
        rate = n / (time.perf_counter() - t0)
    model.fc = fc
    return rate, first


def train_child(side: str, folder: Path, n: int, steps: int) -> float:
    """One training run in this (fresh) process: steps/s of ``side`` over the first ``n``
    files of ``folder`` (``render``'s names, ids as in ``main``)."""
    import torch

    import gridmatch as gm

    gm.set_num_threads(THREADS)
    torch.set_num_threads(THREADS)
    paths = [folder / f"{i:05d}.jpg" for i in range(n)]
    ids = np.concatenate([np.arange(n // 2), np.arange(n // 2)])
    if side == "gridmatch":
        return gsn_train(gm.datasets.ImageCatalogue(paths, [f"sku-{i}" for i in ids]), steps)
    return eager_train(paths, ids, steps)


def train_run(side: str, folder: Path, n: int, steps: int) -> float:
    """Steps/s of one training run of ``side`` in a fresh Python process."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", side, str(folder), str(n), str(steps)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if out.returncode != 0:
        raise SystemExit(f"{side} training run failed:\n{out.stdout}\n{out.stderr}")
    return float(out.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 files, 3 steps (no write)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        side, folder, n_files, n_steps = args.child
        print(train_child(side, Path(folder), int(n_files), int(n_steps)))
        return
    n = 200 if args.quick else 2000
    steps = 3 if args.quick else 20
    load = os.getloadavg()[0]

    import torch

    import gridmatch as gm

    gm.set_num_threads(THREADS)
    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory(prefix="gm-bench-gsn-disk-") as tmp:
        t0 = time.perf_counter()
        products = fashion_images(n // 2)
        paths = render(np.concatenate([products, products]), Path(tmp))
        ids = np.concatenate([np.arange(n // 2), np.arange(n // 2)])
        print(f"generated {n} JPEG files (256 px) in {time.perf_counter() - t0:.0f} s")
        cat = gm.datasets.ImageCatalogue(paths, [f"sku-{i}" for i in ids])

        gsn_runs, eager_runs = [], []
        for _ in range(1 if args.quick else TRAIN_REPEATS):  # alternating sides
            gsn_runs.append(train_run("gridmatch", Path(tmp), n, steps))
            print(f"GSN fit from disk: {gsn_runs[-1]:.3f} steps/s", flush=True)
            eager_runs.append(train_run("eager", Path(tmp), n, steps))
            print(f"eager loop + DataLoader: {eager_runs[-1]:.3f} steps/s", flush=True)
        r_gsn, r_eager = float(np.median(gsn_runs)), float(np.median(eager_runs))

        model = eager_model(1)
        gsn = gm.GridSearchNetwork(
            backbone="resnet18",
            weights=model,
            image_size=SIZE,
            dim=DIM,
            epochs=0,
            device="cpu",
            progress=False,
        ).fit(cat.subset(np.arange(BATCH)))
        gsn.embed(cat.subset(np.arange(64)))  # warm-up
        t0 = time.perf_counter()
        E = gsn.embed(cat, batch_size=EMBED_BATCH)
        e_gsn = len(cat) / (time.perf_counter() - t0)
        print(f"GSN embed from disk: {e_gsn:.1f} images/s ({E.shape})")
        e_eager, first = eager_embed(paths, ids, model)
        print(f"eager inference + DataLoader: {e_eager:.1f} images/s")
        F = gsn.features(cat.subset(np.arange(first.shape[0])))
        cos = (F * first).sum(1) / np.linalg.norm(F, axis=1) / np.linalg.norm(first, axis=1)
        print(f"features cosine, gridmatch vs torchvision (same weights): min {cos.min():.4f}")

    tr, em = r_gsn / r_eager, e_gsn / e_eager
    text = "\n".join(
        [
            "<!-- BEGIN gsn-disk -->",
            "## GSN from JPEG files: training and embedding vs PyTorch + DataLoader "
            "(generated photos)",
            "",
            f"Machine: {cpu_name()} ({vector_extensions()}); gridmatch {THREADS} threads; "
            f"PyTorch {THREADS} threads + DataLoader(num_workers={THREADS}); load average "
            f"{load:.2f} at the start: {quiet_label(load)}. Training: "
            f"{len(gsn_runs)} runs per side, alternating, each in a fresh process, medians "
            "reported (each run: "
            f"gridmatch {', '.join(f'{r:.3f}' for r in gsn_runs)}; eager "
            f"{', '.join(f'{r:.3f}' for r in eager_runs)} steps/s); embedding: one run.",
            f"Data (generated): {n} 256-px RGB JPEG photos of {n // 2} Fashion-MNIST products "
            "(two renderings each; `benches/images.py`'s generator), not In-shop. ResNet-18 "
            f"at {SIZE} px, head 512 → {DIM}; training: {BATCH} images per step, random "
            "resized crop + flip + colour jitter 0.4 on both sides, Adam, "
            f"{steps} steps timed from the end of each side's first step (gridmatch: "
            f"{steps + 1} one-step epochs, timed by the fit callback), after a warm-up; "
            "embedding: resize + centre crop, eval mode, "
            f"{EMBED_BATCH} images per batch on both sides "
            "(`python benches/gsn_disk.py`).",
            "",
            "| job | gridmatch | PyTorch eager + DataLoader | ratio | goal |",
            "|---|---:|---:|---:|---|",
            f"| training, steps/s | {r_gsn:.3f} | {r_eager:.3f} | {tr:.2f}× | ≥ 1.2×: "
            f"{'met' if tr >= 1.2 else 'not met'} |",
            f"| embedding {n} images, images/s | {e_gsn:.1f} | {e_eager:.1f} | {em:.2f}× | "
            f"≥ 1.2×: {'met' if em >= 1.2 else 'not met'} |",
            "",
            "Sanity check: pooled features of the same weights agree (cosine ≥ "
            f"{cos.min():.4f} over {first.shape[0]} images; the resize filters differ "
            "slightly). The eager loop's loss is a batch-similarity loss, the GSN's its grid "
            "loss; both are negligible next to the network.",
            "<!-- END gsn-disk -->",
        ]
    )
    print(text)
    if not args.quick:
        replace_block("gsn-disk", text)


if __name__ == "__main__":
    main()
