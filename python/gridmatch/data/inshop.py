"""DeepFashion In-shop Clothes Retrieval in its on-disk format: :class:`InShop`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._base.exceptions import DataError
from .catalogue import ImageCatalogue
from .inshop_files import SPLITS, catalogue_fields, read_partition

__all__ = ["InShop"]


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

    SPLITS = SPLITS

    def __init__(self, root: str | os.PathLike):
        self._partition = read_partition(root)
        self.root = self._partition.root
        self.items = self._partition.items

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
        return self._partition.rows(split)

    def catalogue(self, split: str | None = None):
        """The images as an :class:`~gridmatch.datasets.ImageCatalogue` (paths, no pixels).

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
        paths, ids, classes, names = catalogue_fields(self._partition, split)
        return ImageCatalogue(paths, ids, classes, names, root=self.root)

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
