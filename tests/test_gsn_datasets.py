"""Instance-level datasets: the Fashion-MNIST shop benchmark and DeepFashion In-shop."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import gridmatch as gm


def test_distort_is_seeded_and_moderate(data_root):
    X, _ = gm.datasets.load("fashion-mnist", "test", root=data_root)
    X = X[:64]
    np.testing.assert_array_equal(gm.datasets.distort(X, strength=0.0), X)
    a = gm.datasets.distort(X, seed=1)
    np.testing.assert_array_equal(a, gm.datasets.distort(X, seed=1))
    b = gm.datasets.distort(X, seed=2)
    assert a.dtype == np.uint8 and a.shape == X.shape
    assert (a != b).any(axis=(1, 2)).mean() > 0.9
    # a view still resembles its product more than other products
    af, xf = a.reshape(64, -1).astype(float), X.reshape(64, -1).astype(float)
    af -= af.mean(1, keepdims=True)
    xf -= xf.mean(1, keepdims=True)
    corr = (af @ xf.T) / np.outer(np.linalg.norm(af, axis=1), np.linalg.norm(xf, axis=1))
    assert (corr.argmax(1) == np.arange(64)).mean() > 0.3  # chance: 1/64


def test_fashion_shop_benchmark(data_root):
    bench = gm.datasets.fashion_shop("test", views=3, seed=0, n_products=40, root=data_root)
    q, g = bench.query, bench.gallery
    assert q.X.shape == (40, 28, 28) and g.X.shape == (80, 28, 28)
    assert len(set(q.ids.tolist())) == 40 and (q.ids >= 60_000).all()
    np.testing.assert_array_equal(g.ids, np.repeat(q.ids, 2))
    np.testing.assert_array_equal(g.classes, np.repeat(q.classes, 2))
    X, y = gm.datasets.load("fashion-mnist", "test", root=data_root)
    np.testing.assert_array_equal(y[q.ids - 60_000], q.classes)
    again = gm.datasets.fashion_shop("test", views=3, seed=0, n_products=40, root=data_root)
    np.testing.assert_array_equal(again.gallery.X, g.X)
    train = gm.datasets.fashion_shop("train", views=2, n_products=30, root=data_root)
    Xtr, ids, cls = train
    assert Xtr.shape == (60, 28, 28) and (ids < 60_000).all()
    Xfull, _ = gm.datasets.load("fashion-mnist", "train", root=data_root)
    np.testing.assert_array_equal(Xtr[::2], Xfull[ids[::2]])  # view 0 is the clean image
    with pytest.raises(ValueError):
        gm.datasets.fashion_shop("test", views=1, root=data_root)


def make_inshop(root, n_items=3, per_item=3):
    lines = []
    colors = {}
    for item in range(1, n_items + 1):
        for v in range(per_item):
            rel = f"img/WOMEN/Dresses/id_{item:08d}/{v + 1:02d}_1_front.jpg"
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            color = (40 * item, 20 * v, 200 - 30 * item)
            Image.new("RGB", (48, 64), color).save(path, quality=100)
            status = "train" if item == 1 else ("query" if v == 0 else "gallery")
            lines.append(f"{rel} id_{item:08d} {status}")
            colors[rel] = color
    text = f"{len(lines)}\nimage_name item_id evaluation_status\n" + "\n".join(lines) + "\n"
    (root / "list_eval_partition.txt").write_text(text)
    return colors


def test_inshop_reads_its_format(tmp_path):
    colors = make_inshop(tmp_path)
    shop = gm.datasets.InShop(tmp_path)
    np.testing.assert_array_equal(shop.ids("train"), [1, 1, 1])
    np.testing.assert_array_equal(shop.ids("query"), [2, 3])
    np.testing.assert_array_equal(shop.ids("gallery"), [2, 2, 3, 3])
    X, ids = shop.load("gallery", size=(16, 20))
    assert X.shape == (4, 20, 16, 3) and X.dtype == np.uint8
    for img, path in zip(X, shop.paths("gallery")):
        rel = str(path.relative_to(tmp_path))
        np.testing.assert_allclose(img.reshape(-1, 3).mean(0), colors[rel], atol=3)
    with pytest.raises(ValueError):
        shop.ids("val")


def test_inshop_errors(tmp_path):
    with pytest.raises(gm.DataError, match="list_eval_partition"):
        gm.datasets.InShop(tmp_path)
    make_inshop(tmp_path)
    part = tmp_path / "list_eval_partition.txt"
    text = part.read_text()
    part.write_text("99\n" + text.split("\n", 1)[1])
    with pytest.raises(gm.DataError, match="99"):
        gm.datasets.InShop(tmp_path)
    part.write_text(text)
    next(tmp_path.glob("img/**/*.jpg")).unlink()
    shop = gm.datasets.InShop(tmp_path)
    with pytest.raises(gm.DataError, match="cannot read image"):
        for split in shop.SPLITS:
            shop.load(split)
