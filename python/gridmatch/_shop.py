"""Instance-level retrieval datasets: the Fashion-MNIST shop benchmark and DeepFashion
In-shop's on-disk format."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

import numpy as np

from . import _core
from .exceptions import DataError

__all__ = ["InShop", "ShopBenchmark", "ShopSplit", "distort", "fashion_shop"]


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
    from ._params import integer
    from ._validate import host_array
    from .exceptions import ShapeError

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


class InShop:
    """DeepFashion In-shop Clothes Retrieval in its on-disk format.

    Reads ``list_eval_partition.txt`` (a count line, a header line, then
    ``image_name item_id evaluation_status`` rows with status ``train``, ``query`` or
    ``gallery``) and the images under the same root (``img/...``).

    Parameters
    ----------
    root : path-like
        The folder holding ``list_eval_partition.txt`` (``Eval/`` is also searched)
        and ``img/``.

    Attributes
    ----------
    root : Path
    items : dict of str to list of (str, int)
        Per split, ``(relative image path, item id)`` rows.

    Raises
    ------
    DataError
        Missing or malformed partition file.
    """

    SPLITS = ("train", "query", "gallery")

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        part = None
        for cand in (
            self.root / "list_eval_partition.txt",
            self.root / "Eval" / "list_eval_partition.txt",
        ):
            if cand.is_file():
                part = cand
                break
        if part is None:
            raise DataError(
                f"{self.root}: no list_eval_partition.txt (DeepFashion In-shop's Eval file); "
                "put it in the root folder beside img/"
            )
        lines = part.read_text().splitlines()
        if len(lines) < 2:
            raise DataError(f"{part}: too short")
        try:
            count = int(lines[0].strip())
        except ValueError:
            raise DataError(f"{part}: first line must be the image count") from None
        rows = [ln.split() for ln in lines[2:] if ln.strip()]
        if len(rows) != count:
            raise DataError(f"{part}: header says {count} images, found {len(rows)} rows")
        self.items: dict[str, list[tuple[str, int]]] = {s: [] for s in self.SPLITS}
        self._order: list[str] = []  # the split of each row, in the file's order
        for i, r in enumerate(rows, start=3):
            if len(r) != 3 or r[2] not in self.items or not r[1].startswith("id_"):
                raise DataError(f"{part}:{i}: expected 'img/... id_NNNNNNNN train|query|gallery'")
            try:
                item = int(r[1][3:])
            except ValueError:
                raise DataError(f"{part}:{i}: bad item id {r[1]!r}") from None
            self.items[r[2]].append((r[0], item))
            self._order.append(r[2])

    def ids(self, split: str) -> np.ndarray:
        """Item ids of a split.

        Parameters
        ----------
        split : {"train", "query", "gallery"}

        Returns
        -------
        ndarray of int64
        """
        return np.array([i for _, i in self._rows(split)], dtype=np.int64)

    def paths(self, split: str) -> list[Path]:
        """Image paths of a split.

        Parameters
        ----------
        split : {"train", "query", "gallery"}

        Returns
        -------
        list of Path
        """
        return [self.root / p for p, _ in self._rows(split)]

    def _rows(self, split: str) -> list[tuple[str, int]]:
        if split not in self.items:
            raise ValueError(f"split must be one of {self.SPLITS}, got {split!r}")
        return self.items[split]

    def catalogue(self, split: str | None = None):
        """The images as an :class:`~gridmatch.catalogue.ImageCatalogue` (paths, no pixels).

        Ids are the integer item ids (``id_00000042`` → 42); split names are
        ``"train"``, ``"query"``, ``"gallery"``; classes are ``"<group>/<category>"``
        read from paths of the form ``img/<group>/<category>/id_…/<file>`` (such as
        ``"WOMEN/Dresses"``), or ``None`` when a path has another form. Every image
        must exist and lie inside ``root`` (checked now).

        Parameters
        ----------
        split : {"train", "query", "gallery"}, optional
            One split; default every image, in the partition file's order.

        Returns
        -------
        ImageCatalogue

        Raises
        ------
        DataError
            A listed image is missing, listed twice or outside ``root``.
        ValueError
            Unknown ``split``.
        """
        from .catalogue import ImageCatalogue

        if split is None:
            cursor = {s: iter(self.items[s]) for s in self.SPLITS}
            rows = [(*next(cursor[s]), s) for s in self._order]
        else:
            rows = [(p, i, split) for p, i in self._rows(split)]
        if not rows:
            raise DataError(f"{self.root}: the partition file lists no images for {split!r}")
        parts = [Path(p).parts for p, _, _ in rows]
        classes = None
        if all(len(q) == 5 and q[0] == "img" for q in parts):
            classes = [f"{q[1]}/{q[2]}" for q in parts]
        paths, ids, names = zip(*rows)
        return ImageCatalogue(
            [self.root / p for p in paths], list(ids), classes, list(names), root=self.root
        )

    def load(self, split: str, size: tuple[int, int] = (128, 128)) -> tuple[np.ndarray, np.ndarray]:
        """Load a split's images, resized.

        Parameters
        ----------
        split : {"train", "query", "gallery"}
        size : (width, height), default (128, 128)

        Returns
        -------
        X : ndarray of uint8, shape (n, height, width, 3)
        ids : ndarray of int64, shape (n,)

        Raises
        ------
        DataError
            A listed image is missing or unreadable.
        """
        from PIL import Image

        paths = self.paths(split)
        X = np.empty((len(paths), size[1], size[0], 3), dtype=np.uint8)
        for k, p in enumerate(paths):
            try:
                with Image.open(p) as im:
                    X[k] = np.asarray(im.convert("RGB").resize(size, Image.Resampling.BILINEAR))
            except (OSError, ValueError) as e:
                raise DataError(f"cannot read image {p}: {e}") from None
        return X, self.ids(split)
