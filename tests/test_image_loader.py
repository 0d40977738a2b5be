"""gm.datasets.ImageLoader: the Rust photo pipeline against independent references —
PIL's decoders, torchvision's resize / centre crop / resized crop / flip / colour
jitter, numpy's normalisation — plus epochs, seeding, thread independence and bad
files. Files are written by the tests with PIL."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import torch
from _subproc import Child
from PIL import Image
from test_catalogue import EXIF_VIEW, bomb_png, noise, with_orientation, write
from torchvision.transforms.v2 import functional as F

import gridmatch as gm
from gridmatch import _core
from gridmatch.datasets import ImageCatalogue, ImageLoader

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def folder(tmp_path, sizes, ext=".png", seed=0, **kw):
    paths = []
    for i, (w, h) in enumerate(sizes):
        paths.append(write(tmp_path / f"img{i:03d}{ext}", noise(w, h, seed=seed + i), **kw))
    return paths


def catalogue(paths, ids=None):
    return ImageCatalogue(paths, list(range(len(paths))) if ids is None else ids)


def pil_tensor(path):
    """uint8 (3, h, w) tensor of PIL's RGB decode."""
    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB"))
    return torch.from_numpy(a.copy()).permute(2, 0, 1)


def collect(loader):
    xs, ids = [], []
    for x, i in loader:
        xs.append(x)
        ids += list(i.tolist() if torch.is_tensor(i) else i)
    return torch.cat(xs), ids


# ---------------------------------------------------------------------- decode


def test_png_decode_is_exact_and_jpeg_is_close(tmp_path):
    png = write(tmp_path / "a.png", noise(37, 23, seed=1))
    np.testing.assert_array_equal(_core.decode_image(str(png), 10**8), np.asarray(Image.open(png)))
    jpg = write(tmp_path / "a.jpg", noise(64, 48, seed=2), quality=90)
    ours = _core.decode_image(str(jpg), 10**8).astype(float)
    ref = np.asarray(Image.open(jpg).convert("RGB")).astype(float)
    assert ours.shape == ref.shape
    # zune-jpeg and libjpeg use different IDCTs / chroma upsampling: close, not equal.
    assert np.abs(ours - ref).mean() < 2.0, np.abs(ours - ref).mean()


def test_decode_modes_alpha_gray_one_pixel(tmp_path):
    rgba = noise(20, 10, seed=3, mode="RGBA")
    a = np.asarray(rgba).copy()
    a[..., 3] = np.linspace(0, 255, 20).astype(np.uint8)[None, :]
    p = write(tmp_path / "alpha.png", Image.fromarray(a, "RGBA"))
    white = Image.new("RGBA", (20, 10), (255, 255, 255, 255))
    ref = np.asarray(Image.alpha_composite(white, Image.open(p)).convert("RGB")).astype(int)
    ours = _core.decode_image(str(p), 10**8).astype(int)
    assert np.abs(ours - ref).max() <= 1  # PIL's composite rounds in fixed point
    g = write(tmp_path / "gray.jpg", noise(16, 16, seed=4, mode="L"))
    d = _core.decode_image(str(g), 10**8)
    assert (
        d.shape == (16, 16, 3) and (d[..., 0] == d[..., 1]).all() and (d[..., 1] == d[..., 2]).all()
    )
    ref = np.asarray(Image.open(g)).astype(float)
    assert np.abs(d[..., 0] - ref).mean() < 2.0
    one = write(tmp_path / "one.png", Image.new("RGB", (1, 1), (10, 200, 30)))
    x, _ = collect(ImageLoader(catalogue([one]), 4, 8, augment=False, normalize=None))
    assert x.shape == (1, 3, 8, 8)
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), np.array([10, 200, 30]) / 255, atol=1e-7)
    assert (x[0] == x[0, :, :1, :1]).all()
    x, _ = collect(ImageLoader(catalogue([one]), 4, 8, augment=True, normalize=None))
    assert x.shape == (1, 3, 8, 8)  # a 1×1 crop, enlarged


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_decode_applies_the_exif_orientation(tmp_path, ext):
    for orientation in sorted(EXIF_VIEW):
        a = np.asarray(noise(16, 12, seed=orientation))
        im = Image.fromarray(a)
        p = write(
            tmp_path / f"o{orientation}{ext}", im, quality=95, **with_orientation(im, orientation)
        )
        ours = _core.decode_image(str(p), 10**8).astype(float)
        stored = np.asarray(Image.open(p).convert("RGB")).astype(float)  # PIL: not rotated
        ref = EXIF_VIEW[orientation](stored)
        assert ours.shape == ref.shape, orientation
        assert np.abs(ours - ref).mean() < (0 if ext == ".png" else 2.0) + 1e-9, orientation


def test_decode_webp_16_bit_and_palette(tmp_path):
    a = np.asarray(noise(30, 20, seed=6))
    webp = write(tmp_path / "a.webp", Image.fromarray(a), lossless=True)
    np.testing.assert_array_equal(_core.decode_image(str(webp), 10**8), a)
    g16 = (np.arange(64 * 8, dtype=np.uint32).reshape(8, 64) * 127).astype(np.uint16)
    p16 = write(tmp_path / "g16.png", Image.fromarray(g16))
    with Image.open(p16) as check:
        assert check.mode.startswith("I;16")
    ref = (g16.astype(np.uint32) * 255 + 32767) // 65535  # the PIL path's scaling
    d = _core.decode_image(str(p16), 10**8).astype(int)
    assert np.abs(d - ref[..., None]).max() <= 1
    pal = Image.new("P", (6, 4), 0)
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    pal.putpixel((0, 0), 1)
    pp = write(tmp_path / "pal.png", pal, transparency=0)  # colour 0 fully transparent
    d = _core.decode_image(str(pp), 10**8)
    assert (d[0, 0] == (200, 100, 50)).all() and (d[1:] == 255).all()


# ---------------------------------------------------------------------- geometry


def test_centre_crop_matches_torchvision(tmp_path):
    sizes = [(256, 256), (300, 200), (181, 257), (64, 90), (20, 30)]
    paths = folder(tmp_path, sizes)
    loader = ImageLoader(
        catalogue(paths),
        batch_size=2,
        image_size=48,
        augment=False,
        shuffle=False,
        normalize=None,
    )
    x, ids = collect(loader)
    assert ids == [0, 1, 2, 3, 4] and x.dtype == torch.float32 and x.shape == (5, 3, 48, 48)
    for k, p in enumerate(paths):
        t = F.center_crop(F.resize(pil_tensor(p), [48], antialias=True), [48])
        diff = (x[k] * 255 - t.float()).abs()
        # torch's antialiased bilinear (uint8 path) and fast_image_resize / Pillow's
        # fixed-point filter round differently: at most one level here and then rarely.
        assert diff.max() <= 1.0 + 1e-4, (p, diff.max())
        assert diff.mean() < 0.35, (p, diff.mean())


def test_jpeg_centre_crop_is_close_to_pil_decode(tmp_path):
    paths = folder(tmp_path, [(96, 80), (80, 96)], ext=".jpg", quality=92)
    x, _ = collect(
        ImageLoader(catalogue(paths), 2, 40, augment=False, shuffle=False, normalize=None)
    )
    for k, p in enumerate(paths):
        t = F.center_crop(F.resize(pil_tensor(p), [40], antialias=True), [40]).float()
        # Different JPEG IDCTs (zune-jpeg vs libjpeg) plus resize rounding.
        assert (x[k] * 255 - t).abs().mean() < 2.0


def test_normalisation_is_exact(tmp_path):
    paths = folder(tmp_path, [(40, 30), (30, 40), (33, 33)])
    kw = dict(batch_size=3, image_size=24, shuffle=False, seed=5)
    raw, _ = collect(ImageLoader(catalogue(paths), normalize=None, **kw))
    norm, _ = collect(ImageLoader(catalogue(paths), normalize="imagenet", **kw))
    assert torch.equal(norm, (raw - MEAN) / STD)
    assert raw.min() >= 0 and raw.max() <= 1
    # the [0, 1] values are pixel / 255 exactly (no augmentation: a 1:1 resample)
    p = write(tmp_path / "same.png", noise(24, 24, seed=9))
    x, _ = collect(ImageLoader(catalogue([p]), 1, 24, augment=False, normalize=None))
    assert torch.equal(x[0], pil_tensor(p).float() / 255)


# ---------------------------------------------------------------------- epochs, seeds


def test_epochs_cover_every_image_once(tmp_path):
    paths = folder(tmp_path, [(12, 10)] * 11)
    loader = ImageLoader(catalogue(paths), batch_size=4, image_size=8, seed=1)
    assert len(loader) == 3
    orders = []
    for _ in range(3):
        batches = [ids.tolist() for _, ids in loader]
        assert [len(b) for b in batches] == [4, 4, 3]
        order = sum(batches, [])
        assert sorted(order) == list(range(11))
        orders.append(order)
    assert orders[0] != orders[1] != orders[2]  # reshuffled each epoch
    loader.set_epoch(1)
    assert sum((ids.tolist() for _, ids in loader), []) == orders[1]
    dl = ImageLoader(catalogue(paths), batch_size=4, image_size=8, drop_last=True)
    assert len(dl) == 2 and [len(ids) for _, ids in dl] == [4, 4]
    fixed = ImageLoader(catalogue(paths), batch_size=5, image_size=8, shuffle=False)
    assert sum((ids.tolist() for _, ids in fixed), []) == list(range(11))


def test_seeded_and_independent_of_workers(tmp_path):
    paths = folder(tmp_path, [(30 + i, 40 - i) for i in range(9)])
    kw = dict(batch_size=2, image_size=16, seed=7)
    a, ia = collect(ImageLoader(catalogue(paths), workers=1, **kw))
    b, ib = collect(ImageLoader(catalogue(paths), workers=3, **kw))
    c, ic = collect(ImageLoader(catalogue(paths), workers=3, prefetch=1, **kw))
    assert ia == ib == ic and torch.equal(a, b) and torch.equal(a, c)
    d, _ = collect(ImageLoader(catalogue(paths), workers=2, **{**kw, "seed": 8}))
    assert not torch.equal(a, d)


def test_ids_are_the_callers(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    paths = [
        write(tmp_path / f"{i}.png", Image.new("RGB", (9, 7), c)) for i, c in enumerate(colours)
    ]
    skus = ["SKU-e", "SKU-a", "SKU-c", "SKU-b", "SKU-d"]
    by_sku = dict(zip(skus, colours))
    loader = ImageLoader(
        catalogue(paths, skus), batch_size=2, image_size=4, augment=False, normalize=None
    )
    for x, ids in loader:
        assert isinstance(ids, list) and all(isinstance(i, str) for i in ids)
        for img, sku in zip(x, ids):
            np.testing.assert_allclose(img[:, 0, 0].numpy() * 255, by_sku[sku], atol=1e-3)
    ints = [50, 10, 40, 20, 30]
    x, ids = next(iter(ImageLoader(catalogue(paths, ints), 5, 4, False, normalize=None, seed=3)))
    assert ids.dtype == torch.int64
    for img, i in zip(x, ids.tolist()):
        np.testing.assert_allclose(img[:, 0, 0].numpy() * 255, colours[ints.index(i)], atol=1e-3)


# ---------------------------------------------------------------------- augmentation


def test_augment_statistics(tmp_path):
    loader = ImageLoader(catalogue(folder(tmp_path, [(8, 8)])), 1, 8, seed=11)
    plans = [loader._plan(0, i, 256, 200) for i in range(4000)]
    flips = np.mean([p["flip"] for p in plans])
    assert abs(flips - 0.5) < 4 * np.sqrt(0.25 / 4000)  # 4 sigma
    area = np.array([p["crop"][2] * p["crop"][3] / (256 * 200) for p in plans])
    aspect = np.array([p["crop"][2] / p["crop"][3] for p in plans])
    assert area.min() >= 0.08 * 0.9 and area.max() <= 1.0  # rounding to whole pixels
    assert aspect.min() >= 0.75 * 0.9 and aspect.max() <= 4 / 3 / 0.9
    # the whole ranges are used (large crops of extreme aspect are redrawn, so the
    # distribution is not exactly uniform)
    assert area.min() < 0.1 and area.max() > 0.95 and aspect.min() < 0.8 and aspect.max() > 1.25
    for p in plans[:50]:
        left, top, w, h = p["crop"]
        assert left >= 0 and top >= 0 and left + w <= 256 and top + h <= 200
    factors = np.array([p["factors"] for p in plans])
    assert factors.min() >= 0.6 and factors.max() <= 1.4 and abs(factors.mean() - 1) < 0.02
    assert len({tuple(p["order"]) for p in plans}) == 6


def test_augment_matches_torchvision_given_the_plan(tmp_path):
    sizes = [(64, 48), (50, 70), (33, 33), (90, 40)]
    paths = folder(tmp_path, sizes)
    kw = dict(batch_size=4, image_size=32, shuffle=False, seed=3, normalize=None)
    plain, _ = collect(ImageLoader(catalogue(paths), jitter=0.0, **kw))
    loader = ImageLoader(catalogue(paths), jitter=0.4, **kw)
    jittered, _ = collect(loader)
    assert not torch.equal(plain, jittered)  # jitter changes pixels
    for k, (p, (w, h)) in enumerate(zip(paths, sizes)):
        plan = loader._plan(0, k, w, h)
        left, top, cw, ch = (int(v) for v in plan["crop"])
        t = F.resized_crop(pil_tensor(p), top, left, ch, cw, [32, 32], antialias=True)
        if plan["flip"]:
            t = F.horizontal_flip(t)
        diff = (plain[k] * 255 - t.float()).abs()
        assert diff.max() <= 1.0 + 1e-4 and diff.mean() < 0.35, (k, diff.max(), diff.mean())
        # the jitter: torchvision's float formulas, in the plan's order, on our crop
        ops = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation]
        ref = plain[k]
        for op in plan["order"]:
            ref = ops[op](ref, plan["factors"][op])
        torch.testing.assert_close(jittered[k], ref, atol=2e-6, rtol=0)


def test_zero_strength_augment_equals_plain_resized_crop(tmp_path):
    paths = folder(tmp_path, [(50, 40)])
    kw = dict(batch_size=1, image_size=20, seed=2, normalize=None)
    a, _ = collect(ImageLoader(catalogue(paths), jitter=0.0, flip=0.0, **kw))
    loader = ImageLoader(catalogue(paths), jitter=0.0, flip=0.0, **kw)
    plan = loader._plan(0, 0, 50, 40)
    assert plan["factors"] == [1.0, 1.0, 1.0] and not plan["flip"]
    b, _ = collect(
        ImageLoader(
            catalogue(paths), jitter=0.0, flip=0.0, scale=(1.0, 1.0), ratio=(1.25, 1.25), **kw
        )
    )
    # full-area crop of ratio 1.25 of a 50×40 image = the whole image, resized
    full = F.resize(pil_tensor(paths[0]), [20, 20], antialias=True).float()
    assert ((b[0] * 255 - full).abs().max()) <= 1.0 + 1e-4
    assert a.shape == b.shape


def test_occlusion_zeroes_torchvisions_random_erasing_box(tmp_path):
    paths = folder(tmp_path, [(40, 36)] * 6)
    kw = dict(batch_size=6, image_size=24, shuffle=False, seed=4)
    plain, _ = collect(ImageLoader(catalogue(paths), **kw))
    loader = ImageLoader(catalogue(paths), occlusion=1.0, **kw)
    occluded, _ = collect(loader)
    erased = 0
    for k in range(6):
        box = loader._plan(0, k, 40, 36)["erase"]
        ref = plain[k].clone()
        if box is not None:
            left, top, w, h = box
            ref[:, top : top + h, left : left + w] = 0
            erased += 1
        assert torch.equal(occluded[k], ref)  # the same crop / flip / jitter, plus the box
    assert erased >= 5
    assert ImageLoader(catalogue(paths), **kw)._plan(0, 0, 40, 36)["erase"] is None
    big = ImageLoader(catalogue(paths), 1, 224, occlusion=0.5, seed=1)
    boxes = [big._plan(0, i, 300, 300)["erase"] for i in range(2000)]
    drawn = [b for b in boxes if b is not None]
    assert abs(len(drawn) / 2000 - 0.5) < 4 * np.sqrt(0.25 / 2000)
    area = np.array([b[2] * b[3] for b in drawn]) / 224**2
    aspect = np.array([b[3] / b[2] for b in drawn])
    assert area.min() >= 0.019 and area.max() <= 0.34
    assert aspect.min() >= 0.3 * 0.9 and aspect.max() <= 3.3 / 0.9
    assert all(b[0] + b[2] <= 224 and b[1] + b[3] <= 224 for b in drawn)


def test_blur_is_torchvisions_gaussian_blur(tmp_path):
    """blur=1 with a fixed σ: the unblurred batch (same crop / flip / jitter: the σ is
    drawn after them) through torchvision's gaussian_blur. Both blur the same float32
    pixels with the same float32 kernel; torchvision sums k² products of its 2-D kernel,
    the pipeline k + k of the separable one, so they differ by float32 rounding only
    (values <= 1, sums of <= 49 terms: a few 1e-7)."""
    paths = folder(tmp_path, [(70, 66)] * 4)
    kw = dict(batch_size=4, image_size=64, shuffle=False, seed=2)
    sigma = 1.7
    k = 2 * (64 // 20) + 1  # 7, the documented rule
    plain, _ = collect(ImageLoader(catalogue(paths), normalize=None, **kw))
    ref = F.gaussian_blur(plain, [k, k], [sigma, sigma])
    for normalize in (None, "imagenet"):
        loader = ImageLoader(
            catalogue(paths), normalize=normalize, blur=1.0, blur_sigma=(sigma, sigma), **kw
        )
        blurred, _ = collect(loader)
        if normalize is None:
            assert (blurred - ref).abs().max() < 2e-6
            assert (blurred - plain).abs().max() > 0.05  # it does blur the noise
        else:
            assert (blurred - (ref - MEAN) / STD).abs().max() < 1e-5
    # with probability 0.5 about half the images are blurred, each by a σ of its range:
    # the nearest of the blurs with σ on a grid of step 0.005 over (0.6, 0.9) is within
    # rounding of it, and one of σ = 0.3 or 1.5 is far
    many = folder(tmp_path, [(30, 28)] * 60, seed=100)
    kw = dict(batch_size=60, image_size=24, shuffle=False, seed=1, normalize=None)
    base, _ = collect(ImageLoader(catalogue(many), **kw))
    half, _ = collect(ImageLoader(catalogue(many), blur=0.5, blur_sigma=(0.6, 0.9), **kw))
    k = 2 * (24 // 20) + 1
    changed = (half - base).flatten(1).abs().amax(1) > 0
    assert abs(changed.float().mean().item() - 0.5) < 4 * np.sqrt(0.25 / 60)

    def gap(sigmas):
        errs = [
            (half - F.gaussian_blur(base, [k, k], [s, s])).flatten(1).abs().amax(1) for s in sigmas
        ]
        return torch.stack(errs).amin(0)[changed]

    assert gap(np.linspace(0.6, 0.9, 61)).max() < 5e-3
    assert gap([0.3, 1.5]).min() > 1e-2


def test_affine_is_torchvisions_affine(tmp_path):
    """RandomAffine with ranges of one value (rotation, scale, x and y shear fixed):
    torchvision's affine (bilinear, fill 0) of the unwarped batch (same crop and flip:
    the affine draw comes after them; no jitter, so the warp's place before it does not
    matter). Both sample the same float32 pixels with float32 grids; torchvision
    rescales its matrix before the product, so the sampling points differ by float32
    rounding: a few 1e-6 on values <= 1. A random translation is matched against every
    whole-pixel shift in range."""
    paths = folder(tmp_path, [(60, 52)] * 6)
    kw = dict(batch_size=6, image_size=40, shuffle=False, seed=5, jitter=0.0, normalize=None)
    plain, _ = collect(ImageLoader(catalogue(paths), **kw))
    bilinear = F.InterpolationMode.BILINEAR
    for angle, scale, shx, shy in [(30.0, 1.2, 10.0, -5.0), (-75.0, 0.7, -20.0, 12.0)]:
        loader = ImageLoader(
            catalogue(paths),
            degrees=(angle, angle),
            affine_scale=(scale, scale),
            shear=(shx, shx, shy, shy),
            **kw,
        )
        warped, _ = collect(loader)
        ref = F.affine(
            plain,
            angle=angle,
            translate=[0, 0],
            scale=scale,
            shear=[shx, shy],
            interpolation=bilinear,
            fill=0,
        )
        assert (warped - ref).abs().max() < 2e-5
        assert (warped - plain).abs().max() > 0.1
    shifted, _ = collect(ImageLoader(catalogue(paths), translate=(0.1, 0.2), **kw))
    found = set()
    for k in range(6):
        hits = [
            (tx, ty)
            for tx in range(-4, 5)
            for ty in range(-8, 9)
            if (shifted[k] - F.affine(plain[k], 0.0, [tx, ty], 1.0, [0.0, 0.0], bilinear, fill=0))
            .abs()
            .max()
            < 2e-5
        ]
        assert len(hits) == 1, hits  # a whole-pixel shift within 10 % / 20 % of the side
        found.add(hits[0])
    assert len(found) > 1
    # off by default: the same pixels
    again, _ = collect(ImageLoader(catalogue(paths), degrees=0, **kw))
    assert torch.equal(again, plain)


# ---------------------------------------------------------------------- bad input


def test_bad_files_raise_data_error_naming_the_file(tmp_path):
    good = folder(tmp_path, [(20, 20)] * 3)
    jpg = write(tmp_path / "trunc.jpg", noise(64, 64, seed=5), quality=90)
    jpg.write_bytes(jpg.read_bytes()[: os.path.getsize(jpg) // 2])
    head = tmp_path / "head.jpg"  # cut inside its header (2 %)
    head.write_bytes(jpg.read_bytes()[: os.path.getsize(jpg) // 25])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not an image at all")
    bomb = bomb_png(tmp_path / "bomb.png")
    gone = write(tmp_path / "gone.png", noise(8, 8))
    cases = [
        (jpg, r"trunc\.jpg: .*truncated"),
        (head, r"head\.jpg: cannot read image: truncated JPEG \("),
        (garbage, r"garbage\.jpg: not a JPEG, PNG or WebP"),
        (bomb, r"bomb\.png: header says 50000×50000 = 2500000000 pixels, over max_pixels"),
        (gone, r"gone\.png: no such image file"),
    ]
    cat = catalogue(good + [c[0] for c in cases])
    os.remove(gone)
    for k, (_, msg) in enumerate(cases):
        one = cat.subset([0, 3 + k])
        with pytest.raises(gm.DataError, match=msg):
            collect(ImageLoader(one, 2, 16, shuffle=False))
    small = ImageLoader(catalogue(good[:1]), 1, 8, max_pixels=399)
    with pytest.raises(gm.DataError, match=r"20×20 = 400 pixels, over max_pixels=399"):
        collect(small)
    assert collect(ImageLoader(catalogue(good[:1]), 1, 8, max_pixels=400))[0].shape[0] == 1
    # skip: the bad ones are left out and counted, with a warning
    loader = ImageLoader(cat, batch_size=3, image_size=16, on_error="skip", seed=4)
    with pytest.warns(RuntimeWarning, match="skipped 5 unreadable"):
        x, ids = collect(loader)
    assert sorted(ids) == [0, 1, 2] and x.shape == (3, 3, 16, 16)
    assert sorted(i for i, _ in loader.skipped) == [3, 4, 5, 6, 7]
    assert any("bomb.png" in m for _, m in loader.skipped)


def test_batches_larger_than_the_memory_are_refused_up_front(tmp_path):
    cat = catalogue(folder(tmp_path, [(8, 8)] * 2))
    # 2 images at 16384 px are 6 GiB a batch; 65 of them cannot be held on any test host
    with pytest.raises(gm.ConfigError, match=r"a batch of 2 images at 16384 px is 6\.0 GiB"):
        ImageLoader(cat, batch_size=64, image_size=16384, prefetch=64)
    # the batch counted is at most the catalogue: a large batch_size alone is fine
    x, _ = collect(ImageLoader(cat, batch_size=10**9, image_size=8, shuffle=False))
    assert x.shape == (2, 3, 8, 8)


def test_bad_settings_and_empty_catalogue(tmp_path):
    cat = catalogue(folder(tmp_path, [(8, 8)]))
    with pytest.raises(gm.ShapeError, match="empty"):
        ImageLoader(cat.subset(np.zeros(1, bool)))
    bad = [
        dict(batch_size=0),
        dict(image_size=0),
        dict(workers=0),
        dict(augment=1),
        dict(normalize="coco"),
        dict(on_error="ignore"),
        dict(scale=(0.5, 0.1)),
        dict(scale=(0.0, 1.0)),
        dict(ratio=(1.0,)),
        dict(flip=1.5),
        dict(jitter=(0.1, 0.2)),
        dict(jitter=-0.1),
        dict(occlusion=2.0),
        dict(blur=1.5),
        dict(degrees=-1),
        dict(degrees=(10, -10)),
        dict(translate=(0.5, 1.5)),
        dict(affine_scale=(0.0, 1.0)),
        dict(shear=(0, 95)),
        dict(shear=(1, 2, 3)),
        dict(blur_sigma=(0.0, 1.0)),
        dict(blur_sigma=(2.0, 1.0)),
        dict(blur_sigma=(1.0, float("inf"))),
        dict(seed=-1),
        dict(max_pixels=0),
        dict(prefetch=0),
    ]
    for kw in bad:
        with pytest.raises(gm.ConfigError):
            ImageLoader(cat, **kw)
    with pytest.raises(gm.ConfigError, match="ImageCatalogue"):
        ImageLoader(["a.png"])


def test_breaking_out_stops_the_workers(tmp_path):
    paths = folder(tmp_path, [(16, 16)] * 20)
    loader = ImageLoader(catalogue(paths), batch_size=2, image_size=8, workers=2)
    it = iter(loader)
    next(it)
    it.close()  # joins the workers; a second epoch runs normally
    assert len(collect(loader)[1]) == 20


CTRL_C = """
import os, pathlib, signal
signal.signal(signal.SIGINT, signal.default_int_handler)
import numpy as np
from PIL import Image
import gridmatch as gm
root = pathlib.Path(ROOT)
a = (np.add.outer(np.arange(2500), np.arange(2500)) % 256).astype(np.uint8)
Image.fromarray(np.stack([a, a.T, a], -1)).save(root / "big.png", compress_level=1)
paths = []
for i in range(1500):
    os.link(root / "big.png", root / f"l{i}.png")
    paths.append(root / f"l{i}.png")
cat = gm.datasets.ImageCatalogue(paths, list(range(1500)))
loader = gm.datasets.ImageLoader(cat, batch_size=1500, image_size=64, workers=1)
print("ready", flush=True)
try:
    next(iter(loader))
    print("finished", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_ctrl_c_stops_a_waiting_loader(tmp_path):
    # one batch of 1500 decodes of a 2500 x 2500 PNG: ~10 s of work here; Ctrl-C while the
    # consumer waits raises KeyboardInterrupt and stops the worker at its next image.
    code = CTRL_C.replace("ROOT", repr(str(tmp_path)))
    with Child(code) as child:
        assert child.line(timeout=120) == "ready"
        time.sleep(1.5)
        sent = time.perf_counter()
        child.proc.send_signal(signal.SIGINT)
        line = child.line(timeout=30)
        elapsed = time.perf_counter() - sent
        rc, err = child.finish(timeout=60)
    assert rc == 0, err
    assert line == "interrupted" and elapsed < 2.0, (line, elapsed)
