"""GridSearchNetwork(on_error=...) on catalogues with unreadable files (a truncated JPEG,
a file deleted after the catalogue was made, every file of a product bad).

References: with ``"raise"`` the DataError names the file; with ``"skip"`` the rows of
``embed`` / ``features`` for the readable images equal (exactly, one image per batch) the
rows of a catalogue without the bad files, and ``fit`` trains exactly as it does on a
catalogue where each bad file is replaced by a copy of the image that stands in for it
(the next readable image of its product, wrapping around), since a stand-in is
rendered with the drawn cell's own random draw."""

from __future__ import annotations

import io
import json
import shutil
import warnings

import numpy as np
import pytest
from _gsn_photos import gsn
from PIL import Image

import gridmatch as gm
from gridmatch.datasets import ImageCatalogue


def photo(path, rng, colour):
    img = rng.normal(120, 20, (40, 48, 3))
    t, left = rng.integers(0, 20, 2)
    img[t : t + 16, left : left + 16] = colour
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)


def truncated_jpeg(path, rng):
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(buf, "JPEG")
    data = buf.getvalue()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def photos(tmp_path):
    """8 products; product 0 = [good, truncated JPEG], product 1 = [deleted, good], the
    others 3 good PNGs each. Returns (catalogue, good positions, bad positions, the
    position standing in for each bad one, paths, ids)."""
    rng = np.random.default_rng(0)
    paths, ids = [], []
    for p in range(8):
        colour = rng.uniform(30, 255, 3)
        for v in range(2 if p < 2 else 3):
            path = tmp_path / f"p{p}_{v}.png"
            photo(path, rng, colour)
            paths.append(path)
            ids.append(f"sku-{p}")
    paths[1] = tmp_path / "p0_1_truncated.jpg"
    truncated_jpeg(paths[1], rng)
    cat = ImageCatalogue(paths, ids)
    paths[2].unlink()  # deleted after the catalogue was made
    bad = [1, 2]
    good = [i for i in range(len(paths)) if i not in bad]
    stand_in = {1: 0, 2: 3}  # next readable image of the same product (wrapping around)
    return cat, good, bad, stand_in, paths, ids


def test_unreadable_files_raise_naming_the_file_by_default(photos):
    cat, *_ = photos
    net = gsn().fit(cat)  # epochs=0 reads no image
    assert net.on_error == "raise"
    with pytest.raises(gm.DataError, match=r"p0_1_truncated\.jpg"):
        net.embed(cat.subset(np.array([0, 1, 3])), batch_size=2)
    with pytest.raises(gm.DataError, match=r"p1_0\.png"):
        net.features(cat.subset(np.array([0, 2, 3])), batch_size=2)
    # 2 steps of 6 products draw all 8 (both images of the 2-image products)
    with pytest.raises(gm.DataError, match=r"p0_1_truncated\.jpg|p1_0\.png"):
        gsn(epochs=1, steps_per_epoch=2).fit(cat)


def test_embed_and_features_skip_leave_nan_rows(photos):
    cat, good, bad, *_ = photos
    net = gsn(on_error="skip").fit(cat)
    clean = cat.subset(np.array(good))
    for run in (net.embed, net.features):
        with pytest.warns(RuntimeWarning, match=r"left out 2 unreadable .*p0_1_truncated\.jpg"):
            E = run(cat, batch_size=1)
        skipped = net.skipped_
        assert [i for i, _ in skipped] == ["sku-0", "sku-1"]
        assert "p0_1_truncated.jpg" in skipped[0][1] and "p1_0.png" in skipped[1][1]
        assert np.isnan(E[bad]).all()
        assert not np.isnan(E[good]).any()
        # one image per forward pass: the rows are exactly those of the clean catalogue
        np.testing.assert_array_equal(E[good], run(clean, batch_size=1))
        # other batch sizes: the bad images' batches are smaller, rows equal to rounding
        with pytest.warns(RuntimeWarning):
            E5 = run(cat, batch_size=5)
        assert np.isnan(E5[bad]).all()
        np.testing.assert_allclose(E5[good], E[good], atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped: no warning, skipped_ reset
        net.embed(clean)
    assert net.skipped_ == []
    with pytest.raises(gm.DataError, match="every one of the 1 images"):
        with pytest.warns(RuntimeWarning):
            net.embed(cat.subset(np.array([1])))


def test_fit_skip_trains_as_with_the_stand_ins_in_place(photos, tmp_path):
    cat, _good, bad, stand_in, paths, ids = photos
    kw = dict(epochs=2, steps_per_epoch=2, lr=3e-3)
    with pytest.warns(RuntimeWarning, match=r"fit left out 2 unreadable image file\(s\)"):
        net = gsn(on_error="skip", **kw).fit(cat)
    assert [h["skipped"] for h in net.history_] == [2, 2]  # all 8 products drawn in epoch 1
    assert [i for i, _ in net.skipped_] == ["sku-0", "sku-1"]
    # reference: each bad file replaced by a copy of its stand-in, trained with "raise"
    ref_paths = list(paths)
    for i in bad:
        ref_paths[i] = tmp_path / f"copy_of_{i}.png"
        shutil.copy(paths[stand_in[i]], ref_paths[i])
    ref = gsn(**kw).fit(ImageCatalogue(ref_paths, ids))
    assert "skipped" not in ref.history_[0]
    losses = [h["loss"] for h in net.history_]
    assert np.isfinite(losses).all()
    assert losses == [h["loss"] for h in ref.history_]
    clean = cat.subset(np.array(_good))
    np.testing.assert_array_equal(net.embed(clean), ref.embed(clean))


def test_fit_skip_fails_when_every_image_of_a_product_is_unreadable(photos, tmp_path):
    cat, _good, _bad, _s, paths, ids = photos
    paths = list(paths)
    paths[0] = tmp_path / "p0_0_garbage.png"
    paths[0].write_bytes(b"not an image")
    both_bad = ImageCatalogue(paths[:2] + paths[3:], ids[:2] + ids[3:])
    msg = r"p0_0_garbage\.png: every image of this file's id \(2 files\) is unreadable"
    with pytest.raises(gm.DataError, match=msg):
        gsn(on_error="skip", epochs=1, steps_per_epoch=2).fit(both_bad)


def test_on_error_is_checked_and_saved(photos, tmp_path):
    cat, good, *_ = photos
    clean = cat.subset(np.array(good))
    with pytest.raises(gm.ConfigError, match="on_error"):
        gsn(on_error="ignore").fit(clean)
    net = gsn(on_error="skip").fit(clean)
    assert net.get_params()["on_error"] == "skip"
    net.save(tmp_path / "m")
    assert gm.GridSearchNetwork.load(tmp_path / "m").on_error == "skip"
    # a model saved before on_error existed loads as "raise"
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["params"]["on_error"]
    cfg_path.write_text(json.dumps(cfg))
    assert gm.GridSearchNetwork.load(tmp_path / "m").on_error == "raise"
    net.on_error = "bogus"
    with pytest.raises(gm.ConfigError, match="on_error"):
        net.embed(clean)
