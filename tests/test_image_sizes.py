"""Photos of any size at any output size: the resize + centre crop, the random resized
crop and the affine path give exactly ``image_size`` squares and never an error.

Real photos of ordinary sizes (400x239, 70x29 at 224 px) once failed with "Size of the
crop box is out of the image boundaries": the centre box, computed in source pixels,
overshot the bottom edge by ~3e-14 px. The references here are the requested output
shape, PIL's own decode (every file is readable, so ``on_error="skip"`` must skip none)
and torchvision's resize + centre crop for the photos that broke."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from gridmatch.datasets import ImageCatalogue, ImageLoader

#: Sizes that failed at 224 px before the fix (real photos, then random draws).
REAL = [(400, 239), (70, 29)]


def random_sizes(n: int, seed: int) -> list[tuple[int, int]]:
    """Sides log-uniform in 1..2000, with extreme aspect ratios and 1x1 among them."""
    rng = np.random.default_rng(seed)
    sides = np.exp(rng.uniform(0, np.log(2000), size=(n, 2))).round().astype(int)
    extremes = [(1, 1), (1, 2000), (2000, 1), (2, 1999), (1999, 3), (2000, 2000)]
    return REAL + extremes + [(int(w), int(h)) for w, h in np.clip(sides, 1, 2000)]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sizes")
    paths = []
    for k, (w, h) in enumerate(random_sizes(40, seed=7)):
        # a flat colour with a bright corner: cheap to write at 2000 px, still a photo
        a = np.full((h, w, 3), (40 + 5 * k) % 256, np.uint8)
        a[: max(h // 3, 1), : max(w // 3, 1)] = 250
        path = folder / f"img{k:03d}_{w}x{h}.png"
        Image.fromarray(a).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("size", [16, 28, 97, 224, 299, 512])
@pytest.mark.parametrize("augment", [False, True])
def test_every_size_gives_the_exact_output(photos, size, augment):
    cat = ImageCatalogue(photos, list(range(len(photos))))
    loader = ImageLoader(
        cat,
        batch_size=16,
        image_size=size,
        augment=augment,
        shuffle=False,
        normalize=None,
        on_error="skip",
        degrees=15.0 if augment else 0.0,
    )
    n = 0
    ids = []
    for x, i in loader:
        assert tuple(x.shape[1:]) == (3, size, size)
        assert torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
        n += x.shape[0]
        ids += list(i.tolist() if torch.is_tensor(i) else i)
    # every file is readable: none skipped
    assert n == len(photos) and ids == list(range(len(photos)))


def test_the_photos_that_broke_match_torchvision(tmp_path):
    rng = np.random.default_rng(3)
    paths = []
    for w, h in REAL:
        path = tmp_path / f"{w}x{h}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    for size in (224, 299):
        loader = ImageLoader(
            ImageCatalogue(paths, [0, 1]), 2, size, augment=False, shuffle=False, normalize=None
        )
        ((x, _),) = list(loader)
        for k, p in enumerate(paths):
            with Image.open(p) as im:
                t = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
            ref = F.center_crop(F.resize(t, [size], antialias=True), [size]).float()
            diff = (x[k] * 255 - ref).abs()
            # the same rounding tolerance as test_image_loader's centre-crop test
            # (upsampled random noise: a level or two here and there)
            assert diff.mean() < 0.6, (p, size, diff.mean())
