"""Benchmark gm.datasets.ImageLoader against DataLoader + torchvision and against SPDL.

All sides do the same work on the same 256-px JPEG files with 2 threads / 2 worker
processes: decode, ``RandomResizedCrop(224)`` (scale (0.08, 1), ratio (3/4, 4/3)),
horizontal flip (p = 0.5), ``ColorJitter(0.4, 0.4, 0.4)``, ImageNet normalisation, and
batches of 64 as float32 ``(64, 3, 224, 224)`` tensors. The baseline is
``DataLoader(num_workers=2)`` over a ``Dataset`` decoding with PIL and transforming with
``torchvision.transforms.v2`` (on the PIL image, then ``ToImage`` / ``ToDtype`` /
``Normalize``), the usual ImageNet training input. Goal: ImageLoader ≥ 2× the
DataLoader's images/s.

The third side is Meta's SPDL 0.8 (``spdl``; ``spdl.io`` needs FFmpeg's shared libraries,
4 to 9, from the system: Debian's ``libavfilter8`` / ``libavformat59`` / ``libavdevice59``):
a ``spdl.pipeline`` of 2 threads as its docs recommend (``benches/_spdl_images.py``
has the details): per image, FFmpeg decodes and does the random crop, the bilinear
resize with the RGB conversion and the flip in one filter graph; per batch,
``convert_frames`` + ``to_torch`` make the uint8 batch, and colour jitter and
normalisation, which SPDL has no op for, are torch ops on the batch (torchvision's
formulas, per-image factors and order) in the pipeline's threads. Goal: ImageLoader
≥ 1.5× SPDL. Before timing, the SPDL side's output is checked and the check printed
(shape, dtype, value range; its decode without cropping against PIL's; its crop + resize
+ flip against Pillow's; the torch jitter against torchvision's functional ops).

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
side; the DataLoader's workers and the SPDL pipeline's threads are persistent);
``--quick`` runs 256 files, 1 epoch, no warm-up (so the DataLoader's figure includes
starting its worker processes), and does not touch BENCHMARKS.md; ``--sides ours,spdl``
reruns some sides only (``ours``, ``dataloader``, ``spdl``; nothing written unless all).
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


SIDES = ("ours", "dataloader", "spdl")


def parse_sides(text: str) -> list[str]:
    sides = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in sides if t not in SIDES]
    if bad or not sides:
        raise argparse.ArgumentTypeError(f"--sides: {bad or text!r}; choose from {SIDES}")
    return sides


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="256 files, 1 epoch (no write)")
    ap.add_argument("--files", type=int, default=None, help="number of generated files")
    ap.add_argument(
        "--sides",
        type=parse_sides,
        default=list(SIDES),
        help="comma-separated sides to run: ours, dataloader, spdl (default: all; "
        "BENCHMARKS.md is written only with all)",
    )
    args = ap.parse_args()
    n = args.files or (256 if args.quick else 2000)
    epochs = 1 if args.quick else 2
    load = os.getloadavg()[0]

    import torch

    import gridmatch as gm

    if "spdl" in args.sides:  # fail before the other sides run, not after
        import _spdl_images as sp

        print(sp.require())
    gm.set_num_threads(THREADS)
    rates: dict[str, float] = {}
    per: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="gm-bench-images-") as tmp:
        t0 = time.perf_counter()
        paths = render(fashion_images(n), Path(tmp))
        kb = sum(p.stat().st_size for p in paths) / len(paths) / 1024
        took = time.perf_counter() - t0
        print(f"generated {n} JPEG files (256 px, {kb:.1f} kB mean) in {took:.0f} s")
        cat = gm.datasets.ImageCatalogue(paths, list(range(n)))

        if "ours" in args.sides:
            ours = gm.datasets.ImageLoader(cat, BATCH, SIZE, augment=True, workers=THREADS, seed=0)
            if not args.quick:  # one warm-up epoch each side (page cache, worker start-up)
                images_per_second(ours, 1)
            rates["ours"] = images_per_second(ours, epochs)
            print(f"ImageLoader (workers={THREADS}): {rates['ours']:.0f} images/s")

        if "dataloader" in args.sides:
            ds = TorchvisionFolder(paths)
            dl = torch.utils.data.DataLoader(
                ds, batch_size=BATCH, shuffle=True, num_workers=THREADS, persistent_workers=True
            )
            if not args.quick:
                images_per_second(dl, 1)
            rates["dataloader"] = images_per_second(dl, epochs)
            print(
                f"DataLoader(num_workers={THREADS}) + torchvision v2: "
                f"{rates['dataloader']:.0f} images/s"
            )

        if "spdl" in args.sides:
            for line in sp.check(paths, BATCH, SIZE, THREADS):
                print("SPDL check: " + line)
            with sp.SpdlLoader(paths, BATCH, SIZE, THREADS, seed=0) as spdl_loader:
                if not args.quick:
                    images_per_second(spdl_loader, 1)
                rates["spdl"] = images_per_second(spdl_loader, epochs)
            print(f"SPDL {sp.version()} pipeline ({THREADS} threads): {rates['spdl']:.0f} images/s")

        if "ours" in args.sides:
            prof_cat = cat.subset(np.arange(min(n, 200)))
            prof = gm.datasets.ImageLoader(prof_cat, BATCH, SIZE, workers=1)._profile()
            per = {k: 1000 * v / len(prof_cat) for k, v in prof.items()}
            print(
                "per image at 1 thread (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in per.items())
            )

    text = report(rates, per, n, kb, epochs, load)
    print(text)
    if not args.quick and args.files is None and set(args.sides) == set(SIDES):
        replace_block("images", text)


def report(
    rates: dict[str, float], per: dict[str, float], n: int, kb: float, epochs: int, load: float
) -> str:
    """The BENCHMARKS.md section (rows and ratios for the sides that ran)."""
    rows = []
    if "ours" in rates:
        rows.append(f"| gm.datasets.ImageLoader(workers={THREADS}) | {rates['ours']:.0f} |")
    if "dataloader" in rates:
        rows.append(
            f"| DataLoader(num_workers={THREADS}) + torchvision v2 (PIL decode) "
            f"| {rates['dataloader']:.0f} |"
        )
    if "spdl" in rates:
        import _spdl_images as sp

        rows.append(
            f"| SPDL {sp.version()} pipeline ({THREADS} threads): FFmpeg decode + crop / "
            "resize / flip filter graph; colour jitter + normalisation as torch ops on the "
            f"batch (SPDL has no op for them) | {rates['spdl']:.0f} |"
        )
    ratios = []
    if "ours" in rates and "dataloader" in rates:
        r = rates["ours"] / rates["dataloader"]
        ratios.append(
            f"Speed-up vs DataLoader: {r:.2f}× (goal ≥ 2×: {'met' if r >= 2 else 'not met'})."
        )
    if "ours" in rates and "spdl" in rates:
        r = rates["ours"] / rates["spdl"]
        met = "met" if r >= 1.5 else "not met"
        ratios.append(f"vs SPDL: {r:.2f}× (goal ≥ 1.5×: {met}).")
    lines = [
        "<!-- BEGIN images -->",
        "## Image pipeline: ImageLoader vs DataLoader + torchvision vs SPDL (generated photos)",
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
        *rows,
        "",
        *ratios,
    ]
    if per:
        lines.append(
            "Rust pipeline per image at one thread (ms): "
            + ", ".join(f"{k} {v:.2f}" for k, v in per.items())
            + " (`image_resize`: the `image` crate's bilinear resize of the same crops, "
            "for comparison with `resample`, fast_image_resize)."
        )
    lines.append("<!-- END images -->")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
