"""Retrieval quality on photos: a GSN trained from an In-shop-layout folder vs baselines.

No public photo set can be downloaded here, so the benchmark folder is **generated**:
Fashion-MNIST products (the t10k images) rendered as RGB JPEG "photos", laid out as
DeepFashion In-shop lays out its files (``img/<group>/<category>/<sku>/<nn>_<k>_<view>.jpg``
plus ``Eval/list_eval_partition.txt``), with string SKUs such as ``"id_04820193"``. The
numbers exercise the whole pipeline (folder → catalogue → streaming training → embedding →
retrieval metrics); they are **not** In-shop numbers.

Each photo of a product changes (seeded, per photo):

- colour: the product has its own base colour; each photo multiplies it by a random tint
  (±10 % per channel) and a brightness factor (0.85–1.15);
- background: 70 % "studio" (a light grey with a colour cast and a soft gradient), 30 %
  "street" (two random colours as a wrapped linear gradient or as stripes at a random
  angle and period), plus pixel noise;
- pose: rotation (±20°), shear (±0.2) and a horizontal flip (p = 0.5);
- scale and position: the product fills 55–95 % of the frame's side at a random place.

Splits as In-shop: the products are shuffled; the first half are training products (all
their photos ``train``), the others evaluation products with their first ``photos // 2``
photos as ``query`` and the rest as ``gallery`` (so train and query/gallery products are
disjoint).

The job (``python benches/photo_quality.py``): generate the folder (cached in the system
temp folder, reused when present), read it with ``ImageCatalogue.from_inshop`` (the
catalogue's item ids are In-shop's integers; they are turned back into the SKU strings of
the partition file, which are the ids from there on: training, embedding and
``gm.retrieval.evaluate``), train ``GridSearchNetwork`` streaming from the train
catalogue, embed the query and gallery catalogues, and report recall@1/5/10/20 and MAP@R
beside two baselines from the same run: raw downscaled pixels (cosine kNN on mean-centred
16 × 16 RGB pixels) and the same network untrained (its seeded random initialisation,
``epochs=0``). Also images/s of training and of embedding. Writes its section of
BENCHMARKS.md (between the ``photo-quality`` markers); ``--quick`` (a small folder, few
steps, no write) checks it works.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import cpu_name, quiet_label, replace_block, vector_extensions

THREADS = 2
#: Part of the cache folder's name: change it when the generator changes.
GENERATOR = 3

#: Fashion-MNIST class → In-shop-like category folder name.
CATEGORIES = [
    "Tees_Tanks",
    "Pants",
    "Sweaters",
    "Dresses",
    "Jackets_Coats",
    "Sandals",
    "Shirts_Polos",
    "Sneakers",
    "Bags",
    "Boots",
]
VIEWS = ["front", "side", "back", "full", "flat", "additional"]


def _fashion_test(root=None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's t10k images and labels (the package's sample when absent)."""
    import gridmatch as gm

    try:
        return gm.datasets.load("fashion-mnist", "test", root, download=False)
    except gm.DataError:
        return gm.datasets.load_sample("fashion-mnist", "test")


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / float(size)
    a = rng.uniform(0, np.pi)
    u = xx * np.cos(a) + yy * np.sin(a)
    if rng.random() < 0.7:  # studio: a light grey with a colour cast, a soft gradient
        c0 = rng.uniform(150, 250) * rng.uniform(0.9, 1.1, 3)
        c1 = c0 + rng.normal(0, 25, 3)
        t = np.clip(u * rng.uniform(0.5, 1.5) + rng.uniform(-0.5, 0.5), 0, 1)
    else:  # street: two random colours, a wrapped gradient or stripes
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        if rng.random() < 0.5:
            t = (u * rng.uniform(0.5, 1.5) + rng.uniform(0, 1)) % 1.0
        else:
            t = (np.sin(2 * np.pi * u * rng.uniform(3, 12) + rng.uniform(0, 6.3)) > 0) * 1.0
    bg = c0 * (1 - t[..., None]) + c1 * t[..., None]
    return bg + rng.normal(0, 6, (size, size, 3))


def render_photo(item: np.ndarray, colour: np.ndarray, rng: np.random.Generator, size: int):
    """One photo (uint8, ``(size, size, 3)``) of a 28 × 28 grayscale product."""
    from PIL import Image

    side = int(size * rng.uniform(0.55, 0.95))
    im = Image.fromarray(item).resize((side, side), Image.Resampling.BICUBIC)
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    # rotation + shear about the centre (inverse map for PIL's affine transform)
    ang, sh = np.deg2rad(rng.uniform(-20, 20)), rng.uniform(-0.2, 0.2)
    fwd = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]]) @ np.array(
        [[1.0, sh], [0.0, 1.0]]
    )
    inv = np.linalg.inv(fwd)
    c = (side - 1) / 2.0
    off = np.array([c, c]) - inv @ np.array([c, c])
    im = im.transform(
        (side, side),
        Image.Transform.AFFINE,
        (inv[0, 0], inv[0, 1], off[0], inv[1, 0], inv[1, 1], off[1]),
        resample=Image.Resampling.BILINEAR,
    )
    p = np.asarray(im, dtype=np.float64) / 255.0
    alpha = np.clip(p * 2.0, 0.0, 1.0)[..., None]
    tint = colour * rng.uniform(0.9, 1.1, 3) * rng.uniform(0.85, 1.15)
    fg = tint * (0.35 + 0.65 * p[..., None])
    bg = _background(rng, size)
    top, left = rng.integers(0, size + 1 - side, 2)
    patch = bg[top : top + side, left : left + side]
    bg[top : top + side, left : left + side] = patch * (1 - alpha) + fg * alpha
    return np.clip(bg, 0, 255).astype(np.uint8)


def make_inshop(
    root: str | os.PathLike,
    n_products: int = 400,
    photos: int = 5,
    size: int = 144,
    seed: int = 0,
    data_root: str | os.PathLike | None = None,
) -> Path:
    """Write a generated In-shop-layout folder (see the module docs) at ``root``.

    Skipped when ``root`` already holds ``Eval/list_eval_partition.txt`` (the folder is
    written under a temporary name and renamed when complete).

    Parameters
    ----------
    root : path-like
        The folder to create.
    n_products : int, default 400
        Products (SKUs), half for training, half for query / gallery.
    photos : int, default 5
        Photos per product (>= 2).
    size : int, default 144
        Side of the square JPEG photos.
    seed : int, default 0
        Seeds the product choice, SKUs, colours and every photo.
    data_root : path-like, optional
        Where Fashion-MNIST's files are (``gm.datasets.load``'s ``root``).

    Returns
    -------
    Path
        ``root``.
    """
    from PIL import Image

    root = Path(root)
    if (root / "Eval" / "list_eval_partition.txt").is_file():
        return root
    if photos < 2 or n_products < 2:
        raise ValueError("need n_products >= 2 and photos >= 2")
    X, y = _fashion_test(data_root)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(X), size=n_products, replace=False)
    skus = rng.choice(100_000_000, size=n_products, replace=False)
    groups = rng.choice(["WOMEN", "MEN"], size=n_products)
    colours = rng.uniform(40, 230, (n_products, 3))
    n_train = n_products // 2
    tmp = root.with_name(root.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    lines = []
    for k in range(n_products):
        sku = f"id_{skus[k]:08d}"
        folder = Path("img") / str(groups[k]) / CATEGORIES[int(y[pick[k]])] / sku
        (tmp / folder).mkdir(parents=True, exist_ok=True)
        for v in range(photos):
            rel = folder / f"{v + 1:02d}_{v % 3 + 1}_{VIEWS[v % len(VIEWS)]}.jpg"
            px = render_photo(X[pick[k]], colours[k], rng, size)
            Image.fromarray(px).save(tmp / rel, quality=90)
            status = "train" if k < n_train else ("query" if v < photos // 2 else "gallery")
            lines.append(f"{rel.as_posix()} {sku} {status}")
    (tmp / "Eval").mkdir()
    head = f"{len(lines)}\nimage_name item_id evaluation_status\n"
    (tmp / "Eval" / "list_eval_partition.txt").write_text(head + "\n".join(lines) + "\n")
    if root.exists():
        shutil.rmtree(root)
    os.replace(tmp, root)
    return root


def sku_catalogue(root: str | os.PathLike, split: str):
    """A split of the folder as an ImageCatalogue whose ids are the SKU strings.

    ``ImageCatalogue.from_inshop`` gives In-shop's integer item ids (``id_04820193`` →
    4820193); the generator's SKUs are ``id_`` + 8 digits, so the strings are rebuilt
    exactly (and checked against the partition file).
    """
    from gridmatch.datasets import ImageCatalogue

    cat = ImageCatalogue.from_inshop(root, split)
    skus = [f"id_{int(i):08d}" for i in cat.ids]
    part = Path(root) / "Eval" / "list_eval_partition.txt"
    listed = [r.split()[1] for r in part.read_text().splitlines()[2:] if r.split()[2:] == [split]]
    if skus != listed:
        raise RuntimeError(f"{root}: SKUs of split {split!r} do not round-trip")
    return ImageCatalogue(cat.paths, skus, cat.classes, cat.split, root=root)


def raw_pixels(cat, side: int = 16) -> np.ndarray:
    """Downscaled RGB pixels in [0, 1], one row per image (``load``'s resize + centre crop)."""
    X = cat.load(side).reshape(len(cat), -1).astype(np.float32) / 255.0
    return X


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small folder, few steps (no write)")
    ap.add_argument("--products", type=int, default=None, help="number of products")
    ap.add_argument("--photos", type=int, default=5, help="photos per product")
    ap.add_argument("--photo-size", type=int, default=144, help="side of the JPEG photos")
    ap.add_argument("--image-size", type=int, default=64, help="the network's input side")
    ap.add_argument("--backbone", default="convnet", help="convnet or resnet18")
    ap.add_argument("--steps", type=int, default=None, help="training steps")
    ap.add_argument("--batch", type=int, default=64, help="images per step")
    ap.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    ap.add_argument("--augment", type=float, default=0.0, help="GSN augment strength")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=None, help="folder for the generated photos")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = ap.parse_args()
    n_products = args.products or (40 if args.quick else 400)
    steps = args.steps or (4 if args.quick else 300)
    load = os.getloadavg()
    t_start = time.perf_counter()

    import torch

    import gridmatch as gm

    gm.set_num_threads(THREADS)
    torch.set_num_threads(THREADS)
    cache = Path(args.cache or tempfile.gettempdir())
    root = cache / (
        f"gm-photo-quality-g{GENERATOR}-p{n_products}-v{args.photos}-s{args.photo_size}-seed{args.seed}"
    )
    t0 = time.perf_counter()
    fresh = not (root / "Eval" / "list_eval_partition.txt").is_file()
    make_inshop(root, n_products, args.photos, args.photo_size, args.seed)
    t_gen = time.perf_counter() - t0
    print(f"{'generated' if fresh else 'reused'} {root} in {t_gen:.0f} s")
    train, query, gallery = (sku_catalogue(root, s) for s in ("train", "query", "gallery"))
    print(f"train {train}\nquery {query}\ngallery {gallery}")

    ks = (1, 5, 10, 20)
    results = {}

    def score(name: str, Eq, Eg) -> None:
        # evaluate takes str arrays (dtype U), not the catalogue's object arrays
        m = gm.retrieval.evaluate(Eq, query.ids.astype(str), Eg, gallery.ids.astype(str), ks=ks)
        results[name] = m
        cells = " ".join(f"R@{k} {m[f'recall@{k}']:.3f}" for k in ks)
        print(f"{name}: {cells} MAP@R {m['map@r']:.3f}", flush=True)

    both = gm.datasets.ImageCatalogue(
        list(query.paths) + list(gallery.paths), list(query.ids) + list(gallery.ids)
    )
    P = raw_pixels(both)
    P -= P.mean(0)
    score("raw pixels (16 × 16 RGB, mean-centred)", P[: len(query)], P[len(query) :])

    kw = dict(
        backbone=args.backbone,
        image_size=args.image_size,
        batch_size=args.batch,
        dim=128,
        grid=(4, 4),
        negatives="mined",
        loss="grid-softmax",
        lr=args.lr,
        augment=args.augment,
        device="cpu",
        seed=args.seed,
        progress=False,
    )
    untrained = gm.GridSearchNetwork(epochs=0, **kw).fit(train)
    score("untrained network (random init)", untrained.embed(query), untrained.embed(gallery))

    t0 = time.perf_counter()
    gsn = gm.GridSearchNetwork(epochs=1, steps_per_epoch=steps, **kw).fit(train)
    t_fit = time.perf_counter() - t0
    fit_rate = steps * args.batch / t_fit
    t0 = time.perf_counter()
    Eq, Eg = gsn.embed(query), gsn.embed(gallery)
    embed_rate = (len(query) + len(gallery)) / (time.perf_counter() - t0)
    score("trained GSN", Eq, Eg)
    print(f"training {fit_rate:.1f} images/s ({t_fit:.0f} s), embedding {embed_rate:.1f} images/s")
    total = time.perf_counter() - t_start
    print(f"total {total:.0f} s")

    def row(name: str) -> str:
        m = results[name]
        cells = " | ".join(f"{m[f'recall@{k}']:.3f}" for k in ks)
        return f"| {name} | {cells} | {m['map@r']:.3f} |"

    n_eval = len(set(query.ids.tolist()))
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = "\n".join(
        [
            "<!-- BEGIN photo-quality -->",
            "## Retrieval quality on generated photos (In-shop layout; not In-shop numbers)",
            "",
            "**The data is generated, not DeepFashion In-shop** (no public photo set can be "
            "downloaded here): Fashion-MNIST t10k products rendered as "
            f"{args.photo_size}-px RGB JPEG photos in In-shop's on-disk layout "
            "(`img/<group>/<category>/<sku>/…jpg` + `Eval/list_eval_partition.txt`, string "
            "SKUs such as `id_04820193`). Per photo: the product's own colour with a random "
            "tint (±10 % per channel) and brightness (±15 %); a background that is 70 % "
            "studio (light grey, colour cast, soft gradient) and 30 % street (two random "
            "colours as a gradient or stripes), plus noise; rotation ±20°, shear ±0.2, "
            "horizontal flip p = 0.5; the product filling 55–95 % of the frame at a random "
            "place. These numbers exercise the pipeline (folder → `ImageCatalogue.from_inshop`"
            " → streaming `fit` → `embed` → `gm.retrieval.evaluate` with the SKU strings as "
            "ids); they say nothing about In-shop.",
            "",
            f"Machine: {cpu_name()} ({vector_extensions()}); gridmatch and PyTorch "
            f"{THREADS} threads; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
            f"at the start: {quiet_label(load[0])}. One run, seed {args.seed} "
            f"(`python benches/photo_quality.py`, {stamp}, {total:.0f} s in all).",
            f"Sizes: {n_products} products × {args.photos} photos; train {len(train)} photos of "
            f"{len(set(train.ids.tolist()))} products; query {len(query)} and gallery "
            f"{len(gallery)} photos of the other {n_eval} products (the first "
            f"{args.photos // 2} photos of each are queries). Network: `{args.backbone}` at "
            f"{args.image_size} px, dim 128, grid-softmax loss, 4 × 4 grid with mined "
            f"negatives, Adam lr {args.lr:g} (cosine), {steps} steps × {args.batch} photos "
            f"streamed from the JPEGs, augment {args.augment:g} (the photos already differ). "
            f"Baselines from the same run: raw pixels (16 × 16 RGB, mean-centred, cosine kNN) "
            "and the same network untrained (seeded random initialisation, `epochs=0`). "
            f"Chance R@1 ≈ {1 / n_eval:.3f}.",
            "",
            "| method | R@1 | R@5 | R@10 | R@20 | MAP@R |",
            "|---|---:|---:|---:|---:|---:|",
            *[row(name) for name in results],
            "",
            f"Speed: training {fit_rate:.1f} photos/s ({t_fit:.0f} s for {steps} steps, "
            f"decoding and resizing included); embedding {embed_rate:.1f} photos/s "
            f"({len(query) + len(gallery)} photos). Generating the folder took "
            f"{t_gen:.0f} s ({'generated' if fresh else 'reused from the cache'}).",
            "<!-- END photo-quality -->",
        ]
    )
    print(text)
    if not (args.quick or args.no_write):
        replace_block("photo-quality", text)


if __name__ == "__main__":
    main()
