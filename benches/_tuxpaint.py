"""Real photos for the fine-tuning benchmark: the cut-out photos of Debian's
``tuxpaint-stamps-default``, and strongly distorted views of them.

The package's stamps (PNG with alpha) mix real photo cut-outs (animals, fruit, tools,
vehicles …) with drawings (cartoons, letters, signs, clip-art). :func:`photo_files`
keeps the photos:

- not a mirrored copy (``*_mirror.png``), not under a ``cartoon`` folder (Tux Paint's
  own convention for drawings), not under ``symbols/`` (letters, digits, coins, chess);
- at least ``MIN_OPAQUE`` opaque pixels (tiny stamps are mostly clip-art);
- flat fills: the share of horizontally adjacent opaque pixels of exactly the same
  colour is below ``MAX_FLAT`` (drawings are filled with flat colours; photos have
  sensor noise and texture). The threshold was set by eye on contact sheets of all the
  stamps sorted by this share: below 0.08 nearly all are photos, above it drawings take
  over (photos with large saturated areas, e.g. flowers and moons, are lost too);
- not one of the few drawings the colour test lets through (``DRAWINGS``, found on the
  same contact sheets: smoothly shaded clip-art and road signs).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

PACKAGE = "tuxpaint-stamps-default"
STAMPS = "usr/share/tuxpaint/stamps"
MIN_OPAQUE = 48 * 48
MAX_FLAT = 0.08
#: Drawings that pass the colour test (seen on the contact sheets).
DRAWINGS = {
    "seasonal/easter/bunny.png",
    "seasonal/easter/bluebird.png",
    "seasonal/easter/butterfly.png",
    "seasonal/easter/daffodil.png",
    "seasonal/newyears/party-hat.png",
    "clothes/button.png",
    "vehicles/ship/chineseJunk.png",
    "vehicles/flight/balloon360.png",
    "town/roadsigns/toilets.png",
    "town/roadsigns/no_uturn.png",
    "town/roadsigns/school_sign.png",
    "town/roadsigns/no_entry_sign.png",
    "plants/trees/holly_leaves.png",
}


def fetch_stamps(cache: Path) -> Path:
    """The stamps folder, from ``apt-get download`` + ``dpkg -x`` into ``cache`` (once)."""
    root = cache / "tuxpaint" / STAMPS
    if root.is_dir():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    debs = sorted(cache.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        print(f"fetching the photos: apt-get download {PACKAGE}", flush=True)
        subprocess.run(["apt-get", "download", PACKAGE], cwd=cache, check=True)
        debs = sorted(cache.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        raise RuntimeError(f"apt-get download {PACKAGE} left no .deb in {cache}")
    tmp = cache / "tuxpaint.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(tmp)], check=True)
    shutil.rmtree(cache / "tuxpaint", ignore_errors=True)
    tmp.rename(cache / "tuxpaint")
    return root


def flat_share(rgba: np.ndarray) -> tuple[float, int]:
    """(share of horizontally adjacent opaque pixel pairs of exactly equal colour,
    number of opaque pixels) of an ``(h, w, 4)`` uint8 image."""
    opaque = rgba[..., 3] >= 250
    pairs = opaque[:, 1:] & opaque[:, :-1]
    if pairs.sum() == 0:
        return 1.0, int(opaque.sum())
    c = rgba[..., :3].astype(np.int32)
    same = (np.abs(c[:, 1:] - c[:, :-1]).sum(-1) == 0) & pairs
    return float(same.sum() / pairs.sum()), int(opaque.sum())


def photo_files(root: Path) -> tuple[list[Path], dict[str, int]]:
    """The photo stamps under ``root`` (sorted) and counts of what was left out why."""
    from PIL import Image

    keep, why = [], {"mirror": 0, "cartoon/symbols folder": 0, "small": 0, "flat colours": 0}
    why["listed drawing"] = 0
    for p in sorted(root.rglob("*.png")):
        rel = p.relative_to(root).as_posix()
        if p.stem.endswith("_mirror"):
            why["mirror"] += 1
            continue
        if "cartoon" in rel.split("/") or rel.startswith("symbols/"):
            why["cartoon/symbols folder"] += 1
            continue
        flat, opaque = flat_share(np.asarray(Image.open(p).convert("RGBA")))
        if opaque < MIN_OPAQUE:
            why["small"] += 1
        elif flat >= MAX_FLAT:
            why["flat colours"] += 1
        elif rel in DRAWINGS:
            why["listed drawing"] += 1
        else:
            keep.append(p)
    return keep, why


def load_rgba(path: Path, side: int = 256) -> np.ndarray:
    """The stamp cropped to its opaque pixels, longer side at most ``side`` (RGBA uint8)."""
    from PIL import Image

    im = Image.open(path).convert("RGBA")
    box = im.getchannel("A").point(lambda a: 255 if a >= 128 else 0).getbbox()
    if box:
        im = im.crop(box)
    im.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(im)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random background: a gradient, stripes, blotchy noise or a flat colour."""
    yy, xx = np.mgrid[0:size, 0:size] / float(size)
    a = rng.uniform(0, np.pi)
    u = xx * np.cos(a) + yy * np.sin(a)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    kind = rng.integers(4)
    if kind == 0:
        t = np.clip(u * rng.uniform(0.5, 1.5) + rng.uniform(-0.5, 0.5), 0, 1)
    elif kind == 1:
        t = (np.sin(2 * np.pi * u * rng.uniform(2, 10) + rng.uniform(0, 6.3)) > 0) * 1.0
    elif kind == 2:
        from PIL import Image

        small = rng.uniform(0, 1, (rng.integers(3, 9),) * 2)
        t = np.asarray(
            Image.fromarray((small * 255).astype(np.uint8)).resize(
                (size, size), Image.Resampling.BICUBIC
            ),
            dtype=np.float64,
        )
        t = t / 255.0
    else:
        t = np.zeros((size, size))
    bg = c0 * (1 - t[..., None]) + c1 * t[..., None]
    return bg + rng.normal(0, rng.uniform(0, 12), (size, size, 3))


def render_view(rgba: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """One strongly distorted view (uint8 ``(size, size, 3)``) of a cut-out: random crop
    of the object (45–100 % of its area), flip, rotation ±35°, scale 40–95 % of the frame
    at a random place on a random background, colour jitter (brightness, contrast,
    saturation ±40 %, channel gains ±15 %), an occlusion patch (p 0.5), low resolution
    (p 0.3: down to 16–40 px and back up) and grayscale (p 0.2)."""
    from PIL import Image

    h, w = rgba.shape[:2]
    area = rng.uniform(0.45, 1.0)
    ch = int(np.clip(h * np.sqrt(area) * rng.uniform(0.85, 1.15), 4, h))
    cw = int(np.clip(w * np.sqrt(area) * rng.uniform(0.85, 1.15), 4, w))
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    im = Image.fromarray(rgba[top : top + ch, left : left + cw])
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    im = im.rotate(rng.uniform(-35, 35), Image.Resampling.BILINEAR, expand=True)
    side = max(int(size * rng.uniform(0.4, 0.95)), 8)
    im.thumbnail((side, side), Image.Resampling.BILINEAR)
    if min(im.size) < 4:
        im = im.resize((max(im.size[0], 4), max(im.size[1], 4)))
    obj = np.asarray(im, dtype=np.float64)
    fg, alpha = obj[..., :3], obj[..., 3:] / 255.0
    grey = fg.mean(-1, keepdims=True)
    fg = grey + (fg - grey) * rng.uniform(0.6, 1.4)  # saturation
    fg = (fg - 128) * rng.uniform(0.6, 1.4) + 128  # contrast
    fg = fg * rng.uniform(0.6, 1.4) * rng.uniform(0.85, 1.15, 3)  # brightness, tint
    bg = _background(rng, size)
    oh, ow = fg.shape[:2]
    y0, x0 = rng.integers(0, size - oh + 1), rng.integers(0, size - ow + 1)
    patch = bg[y0 : y0 + oh, x0 : x0 + ow]
    bg[y0 : y0 + oh, x0 : x0 + ow] = patch * (1 - alpha) + fg * alpha
    if rng.random() < 0.5:  # occlusion: a patch of 10-30 % of the object's box
        frac = rng.uniform(0.1, 0.3)
        ph, pw = max(int(oh * np.sqrt(frac)), 2), max(int(ow * np.sqrt(frac)), 2)
        py, px = y0 + rng.integers(0, oh - ph + 1), x0 + rng.integers(0, ow - pw + 1)
        bg[py : py + ph, px : px + pw] = rng.uniform(0, 255, 3)
    out = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        low = int(rng.integers(16, 41))
        out = out.resize((low, low), Image.Resampling.BILINEAR).resize(
            (size, size), Image.Resampling.BILINEAR
        )
    if rng.random() < 0.2:
        out = out.convert("L").convert("RGB")
    return np.asarray(out)


def views(
    objects: list[np.ndarray], n_views: int, size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n_views`` views of each object: uint8 ``(n·n_views, size, size, 3)`` and the
    object index of each (object-major order), seeded per (seed, object)."""
    X = np.empty((len(objects) * n_views, size, size, 3), np.uint8)
    for i, rgba in enumerate(objects):
        rng = np.random.default_rng([seed, i])
        for v in range(n_views):
            X[i * n_views + v] = render_view(rgba, rng, size)
    return X, np.repeat(np.arange(len(objects)), n_views)
