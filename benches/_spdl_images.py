"""The SPDL side of benches/images.py: Meta's thread-based data loader (``spdl`` 0.8).

Built the way SPDL's docs recommend for image training input ("best practices" and
"filtering" pages, ``examples/multi_thread_preprocessing.py``): a
``spdl.pipeline.PipelineBuilder`` over a shuffling source
(``embed_shuffle(DistributedRandomSampler)``, ``continuous=True`` so the pipeline and its
threads live across epochs like persistent DataLoader workers), a per-image decode stage,
``aggregate(batch)``, and a batch stage, all on one thread pool of ``threads`` threads.

- **decode** (``spdl.io``, FFmpeg, one thread per call as SPDL sets it): the
  ``RandomResizedCrop`` box (torchvision's algorithm: area fraction in (0.08, 1),
  log-uniform aspect ratio in (3/4, 4/3), 10 tries then the whole image) is drawn from
  the size ``demux_image`` reports, and one FFmpeg filter graph does the crop (exact
  offsets) on the decoded YUV planes, the bilinear resize to 224 × 224 with the YUV → RGB
  conversion (one swscale pass) and ``hflip`` with probability 0.5:
  ``decode_packets(packets, filter_desc="crop=…:exact=1,scale=224:224:flags=bilinear,
  format=pix_fmts=rgb24[,hflip]")``. (hflip after the scale measured faster than before
  it; RGB conversion before the crop was 10× slower.)
- **batch**: ``convert_frames`` copies the 64 frames into one ``(64, 224, 224, 3)`` uint8
  buffer, ``to_torch`` wraps it without a copy. SPDL has no colour-jitter or
  normalisation op (FFmpeg's ``eq`` works on YUV with other formulas, and contrast needs
  the image's mean), so ``ColorJitter(0.4, 0.4, 0.4)`` and the ImageNet normalisation are
  torch ops on the batch in this stage: torchvision's float formulas (per-image factors
  in [0.6, 1.4], each image's own random order of the three, clamping to [0, 1] after
  each, grayscale weights 0.2989 / 0.587 / 0.114), vectorised by putting the images that
  share an order next to each other in the batch (the batch's order is random anyway)
  and running each group's three ops on its slice. Torch runs single-threaded inside the
  pipeline's threads (``torch.set_num_threads(1)`` while the loader runs), so the pool's
  threads are all the compute threads.
"""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import numpy as np

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
GRAY = (0.2989, 0.587, 0.114)
ORDERS = list(itertools.permutations(range(3)))  # 0 brightness, 1 contrast, 2 saturation


def version() -> str:
    from importlib.metadata import version

    return version("spdl")


def require() -> str:
    """SPDL's version and the FFmpeg it loaded, or SystemExit saying what is missing."""
    try:
        import spdl.io.utils

        libs = spdl.io.utils.get_ffmpeg_versions()
    except ImportError as e:
        raise SystemExit(f"the SPDL side needs `pip install spdl==0.8.0` ({e})") from e
    except RuntimeError as e:  # spdl.io found no FFmpeg shared libraries
        raise SystemExit(
            "the SPDL side needs FFmpeg's shared libraries (4 to 9), e.g. on Debian 12 "
            "`apt-get install libavfilter8 libavformat59 libavdevice59`; or leave it out "
            f"with --sides ours,dataloader ({e})"
        ) from e
    return f"spdl {version()}, FFmpeg libavcodec {'.'.join(map(str, libs['libavcodec']))}"


def random_resized_crop(
    rng: random.Random, w: int, h: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)
) -> tuple[int, int, int, int]:
    """torchvision's ``RandomResizedCrop.get_params``: ``(left, top, width, height)``."""
    area = w * h
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        cw = int(round(math.sqrt(target * aspect)))
        ch = int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            return rng.randint(0, w - cw), rng.randint(0, h - ch), cw, ch
    in_ratio = w / h  # fallback: the whole image, clipped to the ratio range (centre crop)
    if in_ratio < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        cw, ch = int(round(h * ratio[1])), h
    else:
        cw, ch = w, h
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def filter_desc(box: tuple[int, int, int, int], flip: bool, out: tuple[int, int]) -> str:
    """The FFmpeg filter graph: exact crop of the YUV planes, bilinear resize + RGB."""
    left, top, cw, ch = box
    flt = f"crop={cw}:{ch}:{left}:{top}:exact=1,scale={out[0]}:{out[1]}:flags=bilinear"
    return flt + ",format=pix_fmts=rgb24" + (",hflip" if flip else "")


def jitter_normalise(u8, factors, orders):
    """``(n, h, w, 3)`` uint8 → ``(n, 3, h, w)`` float32: ColorJitter + normalisation.

    Images sharing an order must be adjacent (``orders`` sorted)."""
    import torch

    n, h, w, _ = u8.shape
    x = torch.empty((n, 3, h, w))
    x.copy_(u8.permute(0, 3, 1, 2))
    x.mul_(1 / 255)
    f = torch.tensor(factors, dtype=torch.float32)
    start = 0
    for order, group in itertools.groupby(orders):
        end = start + len(list(group))
        _jitter(x[start:end], f[start:end], ORDERS[order])
        start = end
    rows = x.view(n * 3, h * w)  # one row per (image, channel)
    rows.sub_(torch.tensor(MEAN).repeat(n)[:, None]).div_(torch.tensor(STD).repeat(n)[:, None])
    return x


def _jitter(x, f, order) -> None:
    """In place on ``x`` (n, 3, h, w) in [0, 1]: torchvision's brightness, contrast and
    saturation blends with per-image factors ``f`` (n, 3), in ``order``."""
    import torch

    n = x.shape[0]
    flat, planes = x.view(n, -1), x.view(n, 3, -1)
    for op in order:
        k = f[:, op : op + 1]  # (n, 1)
        if op == 0:  # brightness: blend with black
            flat.mul_(k).clamp_(max=1.0)
        elif op == 1:  # contrast: blend with the mean of the grayscale image
            mean = planes.mean(2) @ torch.tensor(GRAY)
            flat.mul_(k).add_((1 - k) * mean[:, None]).clamp_(0.0, 1.0)
        else:  # saturation: blend with the grayscale image
            gray = planes[:, 0] * GRAY[0]
            gray.add_(planes[:, 1], alpha=GRAY[1]).add_(planes[:, 2], alpha=GRAY[2])
            gray.mul_(1 - k)
            planes.mul_(k[:, :, None]).add_(gray[:, None]).clamp_(0.0, 1.0)


class SpdlLoader:
    """An SPDL pipeline yielding ``(images, ids)``: float32 ``(batch, 3, size, size)``
    batches and the files' indices, reshuffled every epoch (see the module docs).

    Use as a context manager (starts and stops the pipeline's threads); iterate once
    per epoch."""

    def __init__(self, paths: list[Path], batch: int, size: int, threads: int, seed: int = 0):
        from spdl.pipeline import PipelineBuilder
        from spdl.source import DistributedRandomSampler
        from spdl.source.utils import embed_shuffle

        self.paths = [str(p) for p in paths]
        self.size = size
        self.threads = threads
        self.rng = random.Random(seed)
        sampler = DistributedRandomSampler(len(paths), rank=0, world_size=1, seed=seed)
        self.pipeline = (
            PipelineBuilder()
            .add_source(embed_shuffle(sampler), continuous=True)
            .pipe(self.decode, concurrency=threads)
            .aggregate(batch)
            .pipe(self.collate, concurrency=threads)
            .add_sink(threads)
            .build(num_threads=threads)
        )

    def decode(self, i: int):
        """One file: its frames after the crop / resize / flip filter graph, its index,
        and its colour-jitter draw (factors, order)."""
        import spdl.io

        packets = spdl.io.demux_image(self.paths[i])
        box = random_resized_crop(self.rng, packets.codec.width, packets.codec.height)
        flip = self.rng.random() < 0.5
        frames = spdl.io.decode_packets(
            packets, filter_desc=filter_desc(box, flip, (self.size, self.size))
        )
        factors = tuple(self.rng.uniform(0.6, 1.4) for _ in range(3))
        return frames, int(i), factors, self.rng.randrange(len(ORDERS))

    def collate(self, items):
        import spdl.io
        import torch

        items = sorted(items, key=lambda t: t[3])  # group the images by jitter order
        frames, ids, factors, orders = zip(*items, strict=True)
        u8 = spdl.io.to_torch(spdl.io.convert_frames(list(frames)))
        return jitter_normalise(u8, factors, orders), torch.tensor(ids)

    def __enter__(self) -> SpdlLoader:
        import torch

        self._torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        self.pipeline.start()
        return self

    def __exit__(self, *exc) -> None:
        import torch

        self.pipeline.stop()
        torch.set_num_threads(self._torch_threads)

    def __iter__(self):
        return self.pipeline.get_iterator()


def _abs_diff(path: Path, flt: str, ref: np.ndarray) -> np.ndarray:
    """|SPDL's decode of ``path`` through the filter graph ``flt`` − ``ref``| (int16)."""
    import spdl.io

    ours = spdl.io.to_numpy(spdl.io.load_image(str(path), filter_desc=flt))
    return np.abs(ours.astype(np.int16) - ref)


def check(paths: list[Path], batch: int, size: int, threads: int) -> list[str]:
    """Checks of the SPDL side against PIL and torchvision, as lines to print (a loader
    of its own, so that the timed one starts its epochs clean)."""
    import torch
    from PIL import Image
    from torchvision.transforms.v2 import functional as F

    lines = []
    with SpdlLoader(paths, batch, size, threads, seed=1) as loader:
        x, ids = next(iter(loader))
    lo = [(0 - m) / s for m, s in zip(MEAN, STD, strict=True)]
    hi = [(1 - m) / s for m, s in zip(MEAN, STD, strict=True)]
    mins, maxs = x.amin((0, 2, 3)).tolist(), x.amax((0, 2, 3)).tolist()
    inside = all(lo[c] - 1e-5 <= mins[c] and maxs[c] <= hi[c] + 1e-5 for c in range(3))
    lines.append(
        f"batch {tuple(x.shape)} {x.dtype} contiguous={x.is_contiguous()}, "
        f"ids {tuple(ids.shape)} distinct={len(set(ids.tolist())) == len(ids)}; "
        "per-channel min/max "
        + ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(mins, maxs))
        + f" within the normalised range of [0, 1]: {inside}"
    )
    # Cropping disabled (whole image, native size, no flip): SPDL's decode vs PIL's.
    diffs = []
    for p in paths[:16]:
        with Image.open(p) as im:
            ref = np.asarray(im.convert("RGB"), dtype=np.int16)
        h, w, _ = ref.shape
        diffs.append(_abs_diff(p, filter_desc((0, 0, w, h), False, (w, h)), ref))
    d = np.stack(diffs)
    lines.append(
        f"no crop, 16 files: SPDL (FFmpeg) decode vs PIL: mean |Δ| {d.mean():.2f}, "
        f"99th pct {np.percentile(d, 99):.0f}, max {d.max()} (of 255; chroma upsampling)"
    )
    # A crop + flip through the filter graph vs PIL's crop + bilinear resize + flip.
    rng, diffs = random.Random(1), []
    for p in paths[:16]:
        with Image.open(p) as im:
            im = im.convert("RGB")
            box = random_resized_crop(rng, *im.size)
            left, top, cw, ch = box
            ref_im = im.resize(
                (size, size), Image.Resampling.BILINEAR, (left, top, left + cw, top + ch)
            ).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        ref = np.asarray(ref_im, dtype=np.int16)
        diffs.append(_abs_diff(p, filter_desc(box, True, (size, size)), ref))
    d = np.stack(diffs)
    lines.append(
        f"crop + resize + flip, 16 files: SPDL vs PIL: mean |Δ| {d.mean():.2f}, "
        f"99th pct {np.percentile(d, 99):.0f} (swscale vs Pillow bilinear)"
    )
    # The torch jitter + normalisation vs torchvision's functional ops, image by image.
    gen = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (12, 32, 32, 3), dtype=torch.uint8, generator=gen)
    factors = (0.6 + 0.8 * torch.rand(12, 3, generator=gen)).tolist()
    orders = sorted(i % len(ORDERS) for i in range(12))
    got = jitter_normalise(u8, factors, orders)
    ops = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation)
    worst = 0.0
    for i in range(12):
        ref = u8[i].permute(2, 0, 1).float() / 255
        for op in ORDERS[orders[i]]:
            ref = ops[op](ref, factors[i][op])
        ref = F.normalize(ref, list(MEAN), list(STD))
        worst = max(worst, (got[i] - ref).abs().max().item())
    lines.append(f"jitter + normalise vs torchvision.transforms.v2.functional: max |Δ| {worst:.1e}")
    return lines
