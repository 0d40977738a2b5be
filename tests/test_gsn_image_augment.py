"""GridSearchNetwork(image_augment=...): the image pipeline's augmentation of catalogue
views when training. Reference: training on an array of the pipeline's own resized
images, blurred by torchvision's ``gaussian_blur`` (the blur the recipe asks for, made
deterministic with a fixed σ and a crop of the whole square image), must follow the same
losses and give the same network as training on the catalogue with that recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _gsn_photos import SIZE, gsn
from PIL import Image
from torchvision.transforms.v2 import functional as F

import gridmatch as gm
from gridmatch.datasets import ImageCatalogue, ImageLoader

#: A deterministic recipe: crop of the whole (square) image, no flip, no jitter.
WHOLE = {"scale": (1.0, 1.0), "ratio": (1.0, 1.0), "flip": 0.0, "jitter": 0.0}


@pytest.fixture(scope="module")
def square_cat(tmp_path_factory):
    """3 square PNG photos of each of 8 products (a coloured block on noise, moved)."""
    folder = tmp_path_factory.mktemp("square")
    rng = np.random.default_rng(5)
    paths, ids = [], []
    for p in range(8):
        colour = rng.uniform(30, 255, 3)
        for v in range(3):
            img = rng.normal(120, 25, (40, 40, 3))
            s = int(rng.integers(12, 20))
            t, left = rng.integers(0, 40 - s, 2)
            img[t : t + s, left : left + s] = colour
            path = folder / f"p{p}_{v}.png"
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
            paths.append(path)
            ids.append(f"sku-{p}")
    return ImageCatalogue(paths, ids)


def resized(cat):
    """The pipeline's resize of each image to SIZE × SIZE, in [0, 1] (float32)."""
    loader = ImageLoader(
        cat, batch_size=len(cat), image_size=SIZE, augment=False, shuffle=False, normalize=None
    )
    (x, _), *rest = list(loader)
    assert not rest
    return x


# The pipeline's blur and torchvision's agree within ~1e-6, not bit for bit; the
# double-margin loss on random negatives carries that into the losses compared below at
# ~1e-5, whereas mined negatives (a near-tie may flip) and grid-softmax's temperature
# (logits x 10) amplify it past the tolerance in two epochs.
KW = dict(
    epochs=2, steps_per_epoch=3, lr=3e-3, batch_size=12, loss="double-margin", negatives="random"
)


def test_blur_recipe_trains_as_torchvision_blurred_arrays(square_cat):
    sigma = 1.5
    recipe = {**WHOLE, "blur": 1.0, "blur_sigma": (sigma, sigma)}
    net = gsn(augment=1.0, image_augment=recipe, **KW).fit(square_cat)
    # kernel 2 * (SIZE // 20) + 1 = 3 (torchvision's GaussianBlur as the pipeline sizes it)
    ref = F.gaussian_blur(resized(square_cat), [3, 3], [sigma, sigma]).numpy()
    codes = square_cat.codes
    by_array = gsn(augment=0.0, **KW).fit(ref, codes)
    np.testing.assert_allclose(
        [h["loss"] for h in net.history_], [h["loss"] for h in by_array.history_], rtol=1e-4
    )
    np.testing.assert_allclose(net.embed(ref), by_array.embed(ref), atol=1e-4)
    # without the blur the same deterministic recipe trains on the plain images
    plain = gsn(augment=1.0, image_augment=WHOLE, **KW).fit(square_cat)
    plain_array = gsn(augment=0.0, **KW).fit(resized(square_cat).numpy(), codes)
    np.testing.assert_allclose(
        [h["loss"] for h in plain.history_], [h["loss"] for h in plain_array.history_], rtol=1e-4
    )
    assert not np.allclose([h["loss"] for h in plain.history_], [h["loss"] for h in net.history_])


def test_default_recipe_is_the_documented_one(square_cat):
    a = gsn(**KW).fit(square_cat)
    explicit = {"scale": (0.35, 1.0), "ratio": (3 / 4, 4 / 3), "flip": 0.5, "jitter": 0.4}
    b = gsn(image_augment=explicit, **KW).fit(square_cat)
    assert [h["loss"] for h in a.history_] == [h["loss"] for h in b.history_]
    np.testing.assert_array_equal(a.embed(square_cat), b.embed(square_cat))
    c = gsn(image_augment={"degrees": 20, "translate": (0.1, 0.1)}, **KW).fit(square_cat)
    assert [h["loss"] for h in c.history_] != [h["loss"] for h in a.history_]


def test_image_augment_is_checked_and_saved(square_cat, tmp_path):
    with pytest.raises(gm.ConfigError, match=r"unknown setting\(s\) \['blurr'\]"):
        gsn(image_augment={"blurr": 0.5}).fit(square_cat)
    with pytest.raises(gm.ConfigError, match="blur"):
        gsn(image_augment={"blur": 1.5}).fit(square_cat)
    with pytest.raises(gm.ConfigError, match="shear"):
        gsn(image_augment={"shear": 95}).fit(square_cat)
    with pytest.raises(gm.ConfigError, match="must be a dict"):
        gsn(image_augment=0.5).fit(square_cat)
    recipe = {"blur": 0.5, "degrees": 10.0}
    net = gsn(image_augment=recipe).fit(square_cat)
    net.save(tmp_path / "m")
    back = gm.GridSearchNetwork.load(tmp_path / "m")
    assert back.image_augment == recipe
    assert torch.equal(
        torch.from_numpy(back.embed(square_cat)), torch.from_numpy(net.embed(square_cat))
    )
