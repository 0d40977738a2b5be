"""Instance-level retrieval datasets: the Fashion-MNIST shop benchmark and DeepFashion
In-shop's on-disk format."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np

from .. import _core

__all__ = ["ShopBenchmark", "ShopSplit", "distort", "fashion_shop"]


@dataclass
class ShopSplit:
    """Images with their product ids and classes.

    Attributes
    ----------
    X : ndarray of uint8, shape (n, h, w) or (n, h, w, 3)
    ids : ndarray of int64, shape (n,)
        Product id of each image.
    classes : ndarray of int64, shape (n,)
        Category of each image (``-1`` when unknown).
    """

    X: np.ndarray
    ids: np.ndarray
    classes: np.ndarray

    def __iter__(self):
        return iter((self.X, self.ids, self.classes))

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass
class ShopBenchmark:
    """A retrieval benchmark: queries and a gallery of other views of the same products.

    Attributes
    ----------
    query : ShopSplit
    gallery : ShopSplit
    """

    query: ShopSplit
    gallery: ShopSplit


def distort(X: np.ndarray, strength: float = 1.0, seed: int = 0, stream: int = 0) -> np.ndarray:
    """Seeded distortions of uint8 images (the Rust augmentations).

    Image ``i`` is distorted by a random affine warp, crop, elastic deformation,
    occlusion, blur, noise and contrast change (each with its own probability) drawn
    from the generator of ``(seed, stream, i)``, so results do not depend on threads.

    Parameters
    ----------
    X : ndarray of uint8, shape (n, h, w)
        Grayscale images.
    strength : float, default 1.0
        Magnitude of the distortions (0 returns a copy).
    seed, stream : int
        Random stream.

    Returns
    -------
    ndarray of uint8, shape (n, h, w)

    Raises
    ------
    gridmatch.ShapeError
        If ``X`` is not ``(n, h, w)`` or does not hold pixel values in [0, 255].
    ValueError
        If ``strength`` is negative or not finite, or ``seed`` / ``stream`` is negative.
    """
    from .._base.exceptions import ShapeError
    from .._base.params import integer
    from .._base.validate import host_array

    X = np.asarray(host_array(X, "X"))
    if X.ndim != 3:
        raise ShapeError(f"X must be (n, h, w) grayscale images, got shape {X.shape}")
    if X.dtype != np.uint8:
        if X.dtype.kind not in "iu":
            raise ShapeError(f"X must hold uint8 pixel values, got dtype {X.dtype}")
        if X.size and (X.min() < 0 or X.max() > 255):
            raise ShapeError("X must hold pixel values in [0, 255]")
    if isinstance(strength, bool) or not isinstance(strength, (int, float, np.number)):
        raise ValueError(f"strength must be a number >= 0, got {strength!r}")
    if not (np.isfinite(strength) and strength >= 0):
        raise ValueError(f"strength must be a finite number >= 0, got {strength!r}")
    seed = integer(seed, "seed", low=0)
    stream = integer(stream, "stream", low=0)
    xf = np.ascontiguousarray(X[:, None], dtype=np.float32) / 255.0
    out = _core.augment_images(xf, float(strength), int(seed), int(stream))
    return np.rint(out[:, 0] * 255.0).astype(np.uint8)


@overload
def fashion_shop(
    split: Literal["train"],
    views: int | None = None,
    seed: int = 0,
    *,
    n_products: int | None = None,
    strength: float = 1.0,
    root: str | os.PathLike | None = None,
) -> ShopSplit: ...
@overload
def fashion_shop(
    split: Literal["test"] = "test",
    views: int | None = None,
    seed: int = 0,
    *,
    n_products: int | None = None,
    strength: float = 1.0,
    root: str | os.PathLike | None = None,
) -> ShopBenchmark: ...
@overload
def fashion_shop(
    split: str = "test",
    views: int | None = None,
    seed: int = 0,
    *,
    n_products: int | None = None,
    strength: float = 1.0,
    root: str | os.PathLike | None = None,
) -> ShopSplit | ShopBenchmark: ...
def fashion_shop(
    split: str = "test",
    views: int | None = None,
    seed: int = 0,
    *,
    n_products: int | None = None,
    strength: float = 1.0,
    root: str | os.PathLike | None = None,
) -> ShopSplit | ShopBenchmark:
    """The instance-level robust-retrieval benchmark built from Fashion-MNIST.

    Every Fashion-MNIST image is a product; its views are seeded distortions
    (:func:`distort`). Train and test products are disjoint (the train and t10k files).

    Parameters
    ----------
    split : {"train", "test"}, default "test"
        ``"train"``: a :class:`ShopSplit` of ``views`` images per product, the first the
        clean catalogue image, the rest distorted (default ``views=1``: the clean
        images; the network's own augmentations make training views).
        ``"test"``: a :class:`ShopBenchmark`: per product ``views`` distorted views
        (default 3), the first a query and the others in the gallery.
    views : int, optional
        Views per product (see ``split``).
    seed : int, default 0
        Seeds the product subset and the distortions.
    n_products : int, optional
        Use a seeded random subset of this many products.
    strength : float, default 1.0
        Distortion magnitude.
    root : path-like, optional
        Where the Fashion-MNIST files are (see :func:`gridmatch.datasets.load`).

    Returns
    -------
    ShopSplit or ShopBenchmark
    """
    from .datasets import load

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    views = (1 if split == "train" else 3) if views is None else int(views)
    if views < (1 if split == "train" else 2):
        raise ValueError(f"views must be >= {1 if split == 'train' else 2} for split {split!r}")
    X, y = load("fashion-mnist", split, root)
    offset = 0 if split == "train" else 60_000
    products = np.arange(X.shape[0])
    if n_products is not None:
        if not 1 <= n_products <= X.shape[0]:
            raise ValueError(f"n_products must be in [1, {X.shape[0]}], got {n_products}")
        rng = np.random.default_rng(seed)
        products = np.sort(rng.choice(X.shape[0], size=n_products, replace=False))
    Xp, yp = X[products], y[products]
    ids = (products + offset).astype(np.int64)
    rep = np.repeat(Xp, views, axis=0)
    stream = 1 if split == "train" else 2
    out = distort(rep, strength, seed, stream).reshape(len(products), views, *X.shape[1:])
    if split == "train":
        out[:, 0] = Xp
        return ShopSplit(out.reshape(-1, *X.shape[1:]), np.repeat(ids, views), np.repeat(yp, views))
    q = ShopSplit(out[:, 0].copy(), ids, yp.astype(np.int64))
    g = ShopSplit(
        out[:, 1:].reshape(-1, *X.shape[1:]).copy(),
        np.repeat(ids, views - 1),
        np.repeat(yp, views - 1).astype(np.int64),
    )
    return ShopBenchmark(q, g)
