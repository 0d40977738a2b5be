"""GridSearchNetwork on an ImageCatalogue: embed and fit stream photos through the Rust
image pipeline. References: torchvision's resize + centre crop of PIL decodes (the
tolerance of the image-loader tests), the ImageLoader's batches embedded as an array,
uint8 against float32 arrays, and a child process's peak memory against the size of
the catalogue as one float32 array."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from _gsn_photos import SIZE, gsn
from PIL import Image
from torchvision.transforms.v2 import functional as F

import gridmatch as gm
from gridmatch.datasets import ImageCatalogue, ImageLoader


def product_photos(folder, n_products=8, views=3, seed=0, side=48):
    """``views`` photos of each product: one coloured shape on a noisy background, moved
    and scaled a little from view to view (PNG, so decodes are exact)."""
    rng = np.random.default_rng(seed)
    paths, ids = [], []
    for p in range(n_products):
        colour = rng.uniform(30, 255, 3)
        kind = p % 4
        for v in range(views):
            img = rng.normal(120, 20, (side, side + 8 * (v % 2), 3))
            h, w = img.shape[:2]
            s = int(rng.integers(side // 3, side // 2))
            t, left = rng.integers(0, h - s), rng.integers(0, w - s)
            yy, xx = np.mgrid[0:s, 0:s] / s
            mask = {0: yy < 2, 1: yy > xx, 2: (yy - 0.5) ** 2 + (xx - 0.5) ** 2 < 0.25, 3: xx < 0.5}
            img[t : t + s, left : left + s][mask[kind]] = colour
            path = folder / f"p{p:02d}_{v}.png"
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
            paths.append(path)
            ids.append(f"sku-{p}")
    return ImageCatalogue(paths, ids)


@pytest.fixture(scope="module")
def cat(tmp_path_factory):
    return product_photos(tmp_path_factory.mktemp("photos"))


def torchvision_array(cat, size):
    out = []
    for p in cat.paths:
        with Image.open(p) as im:
            t = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
        out.append(F.center_crop(F.resize(t, [size], antialias=True), [size]).float() / 255)
    return torch.stack(out).numpy()


def test_embed_catalogue_equals_embed_of_the_pipelines_images(cat):
    net = gsn().fit(cat)
    assert net.n_channels_ == 3 and net.image_shape_ == (3, SIZE, SIZE)
    E = net.embed(cat, batch_size=5)
    assert E.shape == (len(cat), 16) and E.dtype == np.float32
    # the same pixels, decoded by the loader into an array in catalogue order
    loader = ImageLoader(cat, 7, SIZE, augment=False, shuffle=False, normalize=None)
    X = torch.cat([x for x, _ in loader]).numpy()
    np.testing.assert_array_equal(net.embed(X, batch_size=5), E)
    # independent: PIL decode + torchvision's antialiased resize + centre crop (pixels
    # within one level, see test_image_loader): embeddings agree closely
    ref = net.embed(torchvision_array(cat, SIZE), batch_size=5)
    cos = (ref * E).sum(1)
    assert cos.min() > 0.999, cos.min()
    # order: a reversed catalogue gives the reversed rows
    rev = cat.subset(np.arange(len(cat))[::-1])
    np.testing.assert_allclose(net.embed(rev, batch_size=4), E[::-1], atol=1e-6)  # other batches


def test_features_of_a_catalogue_stream_like_embed(cat):
    net = gsn().fit(cat)
    F = net.features(cat, batch_size=5)
    assert F.shape == (len(cat), 128) and F.dtype == np.float32  # the convnet's channels
    # the same pixels, decoded by the loader into an array in catalogue order
    loader = ImageLoader(cat, 7, SIZE, augment=False, shuffle=False, normalize=None)
    X = torch.cat([x for x, _ in loader]).numpy()
    np.testing.assert_array_equal(net.features(X, batch_size=5), F)
    rev = cat.subset(np.arange(len(cat))[::-1])
    np.testing.assert_allclose(net.features(rev, batch_size=4), F[::-1], atol=1e-5)


def test_embed_arrays_per_batch_uint8_and_float_agree(cat):
    net = gsn().fit(cat)
    X8 = (torchvision_array(cat, SIZE) * 255).round().astype(np.uint8)
    Xf = X8.astype(np.float32) / 255.0
    a, b = net.embed(X8, batch_size=4), net.embed(Xf, batch_size=4)
    np.testing.assert_array_equal(a, b)
    # channels-last uint8 too, and batch size does not change the rows beyond rounding
    np.testing.assert_array_equal(net.embed(X8.transpose(0, 2, 3, 1), batch_size=4), a)
    np.testing.assert_allclose(net.embed(Xf, batch_size=64), a, atol=1e-5)
    bad = Xf.copy()
    bad[-1, 0, 0, 0] = np.nan
    with pytest.raises(gm.ShapeError, match="NaN"):
        net.embed(bad, batch_size=4)


def test_fit_catalogue_trains_and_is_seeded_and_thread_independent(cat):
    kw = dict(epochs=4, steps_per_epoch=4, lr=3e-3, batch_size=12)
    before = gm.get_num_threads()
    try:  # image threads 1 vs 2; libtorch's threads fixed (its sums depend on them)
        gm.set_num_threads(1)
        torch.set_num_threads(1)
        a = gsn(**kw).fit(cat)
        gm.set_num_threads(2)
        torch.set_num_threads(1)
        b = gsn(**kw).fit(cat)
    finally:
        gm.set_num_threads(before["rayon"])
        torch.set_num_threads(before["torch"])
    losses = [h["loss"] for h in a.history_]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
    assert [h["loss"] for h in b.history_] == losses
    np.testing.assert_array_equal(a.embed(cat), b.embed(cat))
    c = gsn(**{**kw, "seed": 4}).fit(cat)
    assert [h["loss"] for h in c.history_] != losses
    assert a.image_size_ == SIZE


def test_fit_catalogue_augment_zero_and_validation_catalogue(cat, tmp_path):
    net = gsn(epochs=1, steps_per_epoch=2, augment=0).fit(cat, X_val=cat)
    h = net.history_[0]
    assert 0 <= h["val_recall@1"] <= 1 and np.isfinite(h["loss"])
    singles = product_photos(tmp_path, n_products=6, views=1, seed=2)
    with pytest.raises(ValueError, match="single image and augment=0"):
        gsn(epochs=1, augment=0).fit(singles)
    # with augmentation, single-image products train (views are random resized crops)
    gsn(epochs=1, steps_per_epoch=1, batch_size=6).fit(singles)
    with pytest.raises(gm.ConfigError, match="image_size"):
        gsn(image_size=2).fit(cat)
    with pytest.raises(gm.ShapeError, match="ids is required"):
        gsn().fit(np.zeros((10, 1, 8, 8), np.float32))
    # an empty catalogue is refused as an empty array is
    empty = cat.subset(np.zeros(len(cat), bool))
    trained = gsn(epochs=0).fit(cat)
    for call in (trained.embed, trained.features, gsn(epochs=1).fit):
        with pytest.raises(gm.ShapeError, match="X must hold at least one image, got an empty"):
            call(empty)
    with pytest.raises(gm.ShapeError, match="at least one image"):
        trained.embed(np.zeros((0, 3, SIZE, SIZE), np.float32))


def test_uint8_arrays_train_exactly_as_their_float32_scaling():
    rng = np.random.default_rng(0)
    X8 = rng.integers(0, 256, (40, 12, 12), dtype=np.uint8)
    ids = np.repeat(np.arange(10), 4)
    kw = dict(epochs=2, steps_per_epoch=3, image_size=None, batch_size=8, augment=0.5)
    a = gsn(**kw).fit(X8, ids)
    b = gsn(**kw).fit(X8.astype(np.float32) / 255.0, ids)
    assert [h["loss"] for h in a.history_] == [h["loss"] for h in b.history_]
    np.testing.assert_array_equal(a.embed(X8), b.embed(X8))


def test_bad_files_raise_data_error_naming_the_file(cat, tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not an image")
    paths = list(cat.paths) + [str(garbage)]
    bad = ImageCatalogue(paths, list(cat.ids) + ["sku-0"])
    net = gsn().fit(cat)
    with pytest.raises(gm.DataError, match=r"garbage\.jpg: not a JPEG, PNG or WebP"):
        net.embed(bad)
    with pytest.raises(gm.DataError, match=r"garbage\.jpg"):
        gsn(epochs=2, steps_per_epoch=8).fit(bad)
    gray = gsn().fit(np.zeros((8, 1, 12, 12), np.float32), np.repeat(np.arange(4), 2))
    with pytest.raises(gm.ShapeError, match="3 channels, the network was built for 1"):
        gray.embed(cat)


def test_save_load_keeps_the_image_size(cat, tmp_path):
    net = gsn(image_size=None).fit(cat)  # default 224 for catalogues
    assert net.image_size_ == 224 and net.image_shape_ == (3, 224, 224)
    small = gsn().fit(cat)
    small.save(tmp_path / "m")
    back = gm.GridSearchNetwork.load(tmp_path / "m")
    assert back.image_size == SIZE
    np.testing.assert_array_equal(back.embed(cat), small.embed(cat))


MEMORY_CHILD = textwrap.dedent(
    """
    import os, resource, sys
    import numpy as np
    import gridmatch as gm
    from gridmatch.datasets import ImageCatalogue
    src, folder, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    paths = []
    for i in range(n):  # hard links: distinct paths, one small file on disk
        p = os.path.join(folder, f"{i:05d}.png")
        os.link(src, p)
        paths.append(p)
    cat = ImageCatalogue(paths, [i // 2 for i in range(n)])
    gm.set_num_threads(2)
    net = gm.GridSearchNetwork(dim=8, grid=(2, 2), batch_size=8, epochs=1, steps_per_epoch=2,
                               image_size=size, device="cpu", progress=False)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    net.fit(cat)
    E = net.embed(cat.subset(np.arange(16)), batch_size=8)
    assert E.shape == (16, 8) and np.isfinite(E).all()
    print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    """
)


def test_memory_does_not_grow_with_the_catalogue(cat, tmp_path):
    """6000 images of 112 px are 903 MB as one float32 array; fit (2 steps of 8) grows
    the peak RSS by far less. (embed over whole catalogues: benches/memory.py --stream.)"""
    n, size = 6000, 112
    full = n * 3 * size * size * 4
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(cat.paths[0]), str(tmp_path), str(n), str(size)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    before, peak = (int(v) for v in out.stdout.split()[-2:])
    assert peak - before < full // 3, (before, peak, full)
