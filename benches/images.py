"""Benchmark gm.datasets.ImageLoader against torch's DataLoader + torchvision transforms.

Both sides do the same work on the same 256-px JPEG files, 2 threads / 2 worker
processes: decode, ``RandomResizedCrop(224)`` (scale (0.08, 1), ratio (3/4, 4/3)),
horizontal flip (p = 0.5), ``ColorJitter(0.4, 0.4, 0.4)``, ImageNet normalisation, and
batches of 64 as float32 ``(64, 3, 224, 224)`` tensors. The baseline is
``DataLoader(num_workers=2)`` over a ``Dataset`` decoding with PIL and transforming with
``torchvision.transforms.v2`` (on the PIL image, then ``ToImage`` / ``ToDtype`` /
``Normalize``), the usual ImageNet training input. Goal: ImageLoader ≥ 2× the
DataLoader's images/s.

Data (generated): no photo set is shipped, so the files are Fashion-MNIST products
(28 × 28, the full set when found, else the package's sample) rendered as RGB 256 × 256
photos: each product tinted a random colour, scaled to 45–95 % of the frame at a random
place on a random two-colour gradient background with noise, saved as JPEG quality 90
(about 20 kB each) — so the numbers are labelled "generated".

Also: a per-stage profile of the Rust pipeline at one thread (decode, resample with
fast_image_resize, flip + jitter + normalise; and the ``image`` crate's own bilinear
resize of the same crops for comparison), in ms per image.

Writes its section of BENCHMARKS.md (between the ``images`` markers). Run:
``python benches/images.py`` (2,000 files, one warm-up epoch then 2 timed epochs each
side; the DataLoader's workers are persistent); ``--quick`` runs 256 files, 1 epoch, no
warm-up (so the DataLoader's figure includes starting its worker processes), and does
not touch BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import cpu_name, quiet_label, replace_block, vector_extensions

THREADS = 2
BATCH = 64
SIZE = 224


def fashion_images(n: int) -> np.ndarray:
    import gridmatch as gm

    try:
        x, _ = gm.datasets.load("fashion-mnist", "train", download=False)
    except gm.DataError:
        x, _ = gm.datasets.load_sample("fashion-mnist", "train")
    return x[np.arange(n) % len(x)]


def render(products: np.ndarray, folder: Path, seed: int = 0, size: int = 256) -> list[Path]:
    """Fashion-MNIST products as ``size``-px RGB JPEG 'photos' (see the module docs)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / 255.0
    paths = []
    for i, p in enumerate(products):
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        t = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)) % 1.0
        bg = c0 * (1 - t[..., None]) + c1 * t[..., None] + rng.normal(0, 6, (size, size, 3))
        side = int(size * rng.uniform(0.45, 0.95))
        item = np.asarray(Image.fromarray(p).resize((side, side), Image.Resampling.BILINEAR))
        alpha = item[..., None] / 255.0
        tint = rng.uniform(40, 255, 3)
        top, left = rng.integers(0, size + 1 - side, 2)
        patch = bg[top : top + side, left : left + side]
        bg[top : top + side, left : left + side] = patch * (1 - alpha) + tint * alpha
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


class TorchvisionFolder:
    """A map-style dataset: PIL decode + torchvision v2 training transforms."""

    def __init__(self, paths: list[Path]):
        import torch
        from torchvision.transforms import v2

        self.paths = paths
        self.tf = v2.Compose(
            [
                v2.RandomResizedCrop(SIZE, antialias=True),
                v2.RandomHorizontalFlip(),
                v2.ColorJitter(0.4, 0.4, 0.4),
                v2.ToImage(),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            ]
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return self.tf(im.convert("RGB")), i


def images_per_second(loader, epochs: int) -> float:
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for x, _ids in loader:
            n += x.shape[0]
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="256 files, 1 epoch (no write)")
    ap.add_argument("--files", type=int, default=None, help="number of generated files")
    args = ap.parse_args()
    n = args.files or (256 if args.quick else 2000)
    epochs = 1 if args.quick else 2
    load = os.getloadavg()[0]

    import torch

    import gridmatch as gm

    gm.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory(prefix="gm-bench-images-") as tmp:
        t0 = time.perf_counter()
        paths = render(fashion_images(n), Path(tmp))
        kb = sum(p.stat().st_size for p in paths) / len(paths) / 1024
        took = time.perf_counter() - t0
        print(f"generated {n} JPEG files (256 px, {kb:.1f} kB mean) in {took:.0f} s")
        cat = gm.datasets.ImageCatalogue(paths, list(range(n)))

        ours = gm.datasets.ImageLoader(cat, BATCH, SIZE, augment=True, workers=THREADS, seed=0)
        if not args.quick:  # one warm-up epoch each side (page cache, worker start-up)
            images_per_second(ours, 1)
        r_ours = images_per_second(ours, epochs)
        print(f"ImageLoader (workers={THREADS}): {r_ours:.0f} images/s")

        ds = TorchvisionFolder(paths)
        dl = torch.utils.data.DataLoader(
            ds, batch_size=BATCH, shuffle=True, num_workers=THREADS, persistent_workers=True
        )
        if not args.quick:
            images_per_second(dl, 1)
        r_tv = images_per_second(dl, epochs)
        print(f"DataLoader(num_workers={THREADS}) + torchvision v2: {r_tv:.0f} images/s")

        prof_cat = cat.subset(np.arange(min(n, 200)))
        prof = gm.datasets.ImageLoader(prof_cat, BATCH, SIZE, workers=1)._profile()
        per = {k: 1000 * v / len(prof_cat) for k, v in prof.items()}
        print("per image at 1 thread (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in per.items()))

    ratio = r_ours / r_tv
    text = "\n".join(
        [
            "<!-- BEGIN images -->",
            "## Image pipeline: ImageLoader vs DataLoader + torchvision (generated photos)",
            "",
            f"Machine: {cpu_name()} ({vector_extensions()}); {THREADS} threads / worker "
            f"processes each; load average {load:.2f} at the start: {quiet_label(load)}.",
            f"Data (generated): {n} Fashion-MNIST products rendered as 256-px RGB JPEG "
            f"photos ({kb:.1f} kB mean); batches of {BATCH} at {SIZE} px with random resized "
            "crop, flip, colour jitter 0.4 and ImageNet normalisation; "
            f"{epochs} epoch(s) per side (`python benches/images.py`).",
            "",
            "| loader | images/s |",
            "|---|---:|",
            f"| gm.datasets.ImageLoader(workers={THREADS}) | {r_ours:.0f} |",
            f"| DataLoader(num_workers={THREADS}) + torchvision v2 (PIL decode) | {r_tv:.0f} |",
            "",
            f"Speed-up {ratio:.2f}× (goal ≥ 2×: {'met' if ratio >= 2 else 'not met'}).",
            "Rust pipeline per image at one thread (ms): "
            + ", ".join(f"{k} {v:.2f}" for k, v in per.items())
            + " (`image_resize`: the `image` crate's bilinear resize of the same crops, "
            "for comparison with `resample`, fast_image_resize).",
            "<!-- END images -->",
        ]
    )
    print(text)
    if not args.quick and args.files is None:
        replace_block("images", text)


if __name__ == "__main__":
    main()
