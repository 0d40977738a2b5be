"""Images given to a Grid Search Network, read a batch at a time.

:class:`Images` takes an array (numpy, torch, array-like) or an
:class:`~gridmatch.datasets.ImageCatalogue` and hands out float32 ``(b, c, h, w)``
batches in ``[0, 1]``, in order. Arrays are checked once, then converted batch by
batch (never the whole array at once); catalogues are decoded by the Rust image
pipeline (resize of the shorter side + centre crop, no augmentation, no
normalisation) on worker threads that run a bounded number of batches ahead, so at
most ``batch_size · (prefetch + 1)`` decoded images are held at any time.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import _core
from .._base.exceptions import InputScaleWarning, ShapeError
from .._base.validate import host_array
from ..data.catalogue import MAX_IMAGE_PIXELS, ImageCatalogue

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "SCALE_RANGE",
    "Images",
    "as_images",
    "catalogue_settings",
    "is_torch",
    "labels",
    "record_skipped",
    "warn_scale",
]

#: Side of the images read from a catalogue when ``image_size`` is not set.
DEFAULT_IMAGE_SIZE = 224

#: Values of images given as floats (any dtype but ``uint8``) that are taken for the
#: expected ``[0, 1]`` scale, with room for resampling overshoot and added noise. Beyond
#: it lie the 0-255 scale (values up to 255) and images normalised already (ImageNet's
#: mean and std give [-2.12, 2.64]).
SCALE_RANGE = (-1.0, 2.0)


def scale_problem(lo: float, hi: float, normalize: str | None) -> str | None:
    """What is wrong with images whose values span ``[lo, hi]`` (``None``: nothing).

    With a ``normalize`` setting the network normalises the images itself, so their
    values must be on the ``[0, 1]`` scale: a value outside :data:`SCALE_RANGE` is a
    problem. With ``normalize=None`` the values reach the backbone as they are and the
    caller may have normalised them (they then go below 0): only non-negative values
    beyond ``SCALE_RANGE[1]`` (a 0-255 scale) are a problem.
    """
    low, high = SCALE_RANGE
    if normalize is None:
        if lo >= 0 and hi > high:
            return (
                "normalize=None passes the values to the backbone as they are, and these "
                "look like a 0-255 scale: divide them by 255 or pass them as uint8"
            )
        return None
    if lo >= low and hi <= high:
        return None
    if lo >= low:
        fix = "divide them by 255 or pass them as uint8"
    else:
        fix = "for images normalised already, set normalize=None"
    return f"the network normalises the images itself (normalize={normalize!r}): {fix}"


def warn_scale(
    name: str,
    dtype: np.dtype,
    lo: float,
    hi: float,
    normalize: str | None,
    what: str,
    stacklevel: int,
) -> None:
    """An :class:`InputScaleWarning` when images of ``dtype`` spanning ``[lo, hi]`` are
    not on the scale that ``GridSearchNetwork.{what}`` expects (see :func:`scale_problem`)."""
    problem = scale_problem(lo, hi, normalize)
    if problem is None:
        return
    warnings.warn(
        f"{name} holds {dtype} values in [{lo:.4g}, {hi:.4g}], but GridSearchNetwork.{what} "
        f"expects float images in [0, 1] or uint8 in [0, 255]; {problem}",
        InputScaleWarning,
        stacklevel=stacklevel + 1,
    )


def catalogue_settings(size: int, augment: dict[str, Any], skip_errors: bool = False) -> str:
    """The settings of training from a catalogue's files (JSON for ``GsnModel.fit``):
    ``augment`` the pipeline's augmentation (see ``_augment.from_mapping``);
    ``skip_errors``: unreadable files are left out (see ``GridSearchNetwork.on_error``)."""
    return json.dumps(
        {
            "size": size,
            "augment": augment,
            "max_pixels": MAX_IMAGE_PIXELS,
            "skip_errors": skip_errors,
        }
    )


def _layout(X: Any, name: str) -> np.ndarray:
    """``X`` as an ``(n, c, h, w)`` view (no conversion of the values), checked."""
    X = np.asarray(host_array(X, name))
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise ShapeError(f"{name} must hold numbers, got dtype {X.dtype}")
    if X.ndim == 3:
        X = X[:, None]
    elif X.ndim == 4:
        if X.shape[1] not in (1, 3) and X.shape[-1] in (1, 3):
            X = X.transpose(0, 3, 1, 2)
        elif X.shape[1] not in (1, 3):
            raise ShapeError(f"{name} must have 1 or 3 channels, got shape {X.shape}")
    else:
        raise ShapeError(
            f"{name} must be (n, h, w), (n, c, h, w) or (n, h, w, c), got {X.ndim} dimensions"
        )
    if X.shape[0] == 0 or X.shape[2] < 4 or X.shape[3] < 4:
        raise ShapeError(f"{name} must hold at least one image of at least 4x4, got {X.shape}")
    return X


def _to_float(chunk: np.ndarray, name: str) -> np.ndarray:
    """One ``(b, c, h, w)`` slice as C-contiguous float32 (``uint8`` scaled by 1/255)."""
    if chunk.dtype == np.uint8:
        out = chunk.astype(np.float32) / 255.0
    else:
        out = chunk.astype(np.float32, copy=False)
    if not np.isfinite(out).all():
        raise ShapeError(f"{name} contains NaN or infinite values")
    return np.ascontiguousarray(out)


class Images:
    """Images to embed or train on: an array or a catalogue, read batch by batch.

    Parameters
    ----------
    X : array-like, torch.Tensor or ImageCatalogue
        ``(n, h, w)``, ``(n, c, h, w)`` or ``(n, h, w, c)`` images (``uint8`` scaled to
        ``[0, 1]``, floating values taken as they are), or a catalogue of photos.
    image_size : int
        Side of the square images read from a catalogue (arrays keep their own size).
    name : str, default "X"
        Name used in error messages.

    Attributes
    ----------
    n : int
        Number of images.
    shape : tuple of int
        ``(c, h, w)`` of one image as the batches give it.
    catalogue : ImageCatalogue or None
        The catalogue, when ``X`` is one.
    array : ndarray or None
        The ``(n, c, h, w)`` view of an array (values not converted), when ``X`` is one.
    check_scale : bool
        Whether the values are taken as they are, on the caller's scale (an array of
        any dtype but ``uint8``; ``uint8`` and catalogues give ``[0, 1]``): see
        :func:`warn_scale`.

    Raises
    ------
    ShapeError
        Badly shaped arrays, an unsupported dtype, or no images (an empty array or
        catalogue).
    """

    def __init__(self, X: Any, image_size: int, name: str = "X") -> None:
        self.name = name
        self.image_size = image_size
        if isinstance(X, ImageCatalogue):
            if len(X) == 0:  # as an empty array
                raise ShapeError(f"{name} must hold at least one image, got an empty catalogue")
            self.catalogue: ImageCatalogue | None = X
            self.array: np.ndarray | None = None
            self.n = len(X)
            self.shape: tuple[int, ...] = (3, image_size, image_size)
            self.check_scale = False
        else:
            self.catalogue = None
            self.array = _layout(X, name)
            self.n = int(self.array.shape[0])
            self.shape = tuple(int(s) for s in self.array.shape[1:])
            self.check_scale = self.array.dtype != np.uint8

    def batches(self, batch_size: int, workers: int | None = None) -> Iterator[np.ndarray]:
        """Float32 ``(b, c, h, w)`` batches in order (the last one may be smaller).

        Raises ``DataError`` for an unreadable catalogue file (see :meth:`indexed_batches`
        to skip them).
        """
        for pixels, _idx, _skipped in self.indexed_batches(batch_size, workers):
            yield pixels

    def indexed_batches(
        self, batch_size: int, workers: int | None = None, skip_errors: bool = False
    ) -> Iterator[tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]]:
        """Float32 ``(b, c, h, w)`` batches in order, with the positions of their images
        and the images left out.

        Parameters
        ----------
        batch_size : int
            Images per batch.
        workers : int, optional
            Decoding threads for a catalogue (default: the Rust pool's size); at most
            ``2 · workers`` batches are decoded ahead.
        skip_errors : bool, default False
            Leave out catalogue files that cannot be read (the batch holding one is
            smaller, possibly empty) instead of raising.

        Yields
        ------
        pixels : ndarray of float32, shape (b, c, h, w)
        positions : ndarray of int64, shape (b,)
            The images' positions in ``X``.
        skipped : list of (int, str)
            Position and message (naming the file) of each image of the batch left out.

        Raises
        ------
        ShapeError
            NaN or infinite values in an array.
        DataError
            An image file that is missing, truncated, undecodable or too large (named),
            unless ``skip_errors``.
        """
        if self.array is not None:
            for i in range(0, self.n, batch_size):
                chunk = _to_float(self.array[i : i + batch_size], self.name)
                yield chunk, np.arange(i, i + chunk.shape[0], dtype=np.int64), []
            return
        assert self.catalogue is not None
        if workers is None:
            workers = max(1, _core.get_num_threads()[0])
        config = {
            "size": self.image_size,
            "batch_size": batch_size,
            "augment": None,
            "normalize": False,
            "max_pixels": MAX_IMAGE_PIXELS,
            "skip_errors": bool(skip_errors),
            "drop_last": False,
            "shuffle": False,
            "seed": 0,
            "workers": workers,
            "prefetch": 2 * workers,
        }
        pipeline = _core.ImagePipeline(list(self.catalogue.paths), json.dumps(config))
        epoch = pipeline.epoch(0)
        try:
            for pixels, idx, skipped in epoch:
                yield pixels, idx, list(skipped)
        finally:
            epoch.close()

    def gather_all(self, batch_size: int = 256) -> np.ndarray:
        """Every image as one float32 ``(n, c, h, w)`` array (for small sets)."""
        out = np.empty((self.n, *self.shape), np.float32)
        i = 0
        for b in self.batches(batch_size):
            out[i : i + b.shape[0]] = b
            i += b.shape[0]
        return out

    def training_images(self, augment: dict[str, Any], skip_errors: bool = False) -> Any:
        """What ``GsnModel.fit`` reads: a uint8 or float32 C-contiguous ``(n, c, h, w)``
        array (``uint8`` kept as it is: converted per gathered image in Rust), or
        ``(paths, settings)`` of a catalogue, its views augmented by ``augment`` (the
        pipeline's settings) and ``skip_errors``: unreadable files are left out."""
        if self.catalogue is not None:
            settings = catalogue_settings(self.image_size, augment, skip_errors)
            return (list(self.catalogue.paths), settings)
        assert self.array is not None
        if self.array.dtype == np.uint8:
            return np.ascontiguousarray(self.array)
        return _to_float(self.array, self.name)


def is_torch(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch)."""
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def as_images(X: Any, name: str = "X") -> np.ndarray:
    """Convert images to a C-contiguous float32 array ``(n, channels, height, width)``.

    Parameters
    ----------
    X : array-like or torch.Tensor
        ``(n, h, w)`` grayscale, ``(n, c, h, w)`` or ``(n, h, w, c)`` with ``c`` in
        {1, 3}. ``uint8`` values are scaled to ``[0, 1]``; floating values are taken as
        they are (expected in ``[0, 1]``).
    name : str, default "X"
        Name used in error messages.

    Returns
    -------
    ndarray of float32, shape (n, c, h, w)

    Raises
    ------
    ShapeError
        Wrong number of dimensions, no images, an unsupported dtype, or NaN/inf values.
    """
    return _to_float(_layout(X, name), name)


def labels(y: Any, n: int, name: str) -> np.ndarray:
    """``y`` (ids or classes, one per image) as int64: integers and booleans as they are,
    other values by their rank among the distinct values; ``ShapeError`` otherwise."""
    y = np.asarray(host_array(y, name))
    if y.ndim != 1 or y.shape[0] != n:
        raise ShapeError(f"{name} must be 1-D with one value per image ({n}), got {y.shape}")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)):
        _, y = np.unique(y, return_inverse=True)
    return np.ascontiguousarray(y, dtype=np.int64)


def record_skipped(
    est: Any,
    images: Images,
    skipped: list[tuple[int, str]],
    done: str,
    effect: str,
    stacklevel: int,
) -> None:
    """``skipped_`` from the ``(position, message)`` of the images left out, and a
    ``RuntimeWarning`` giving their count and the first message."""
    skipped = sorted(skipped)
    ids = None if images.catalogue is None else images.catalogue.ids
    est.skipped_ = [(i if ids is None else ids[i], msg) for i, msg in skipped]
    if skipped:
        warnings.warn(
            f"GridSearchNetwork.{done} {len(skipped)} unreadable image file(s) {effect} "
            f"(see skipped_); first: {skipped[0][1]}",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
