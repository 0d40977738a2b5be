"""Running a trained Grid Search Network: ``embed`` and ``features`` one forward batch
at a time, arrays converted per batch, catalogues streamed, unreadable files as NaN rows."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np

from .. import _core
from .._base import params as _params
from .._base.exceptions import DataError, ShapeError
from . import precision as _precision
from .input import DEFAULT_IMAGE_SIZE, Images, is_torch, record_skipped, warn_scale

__all__ = ["forward", "image_size"]

# Pixels per forward batch of embed / features by default: 32 images of 224 x 224.
_BATCH_PIXELS = 32 * 224 * 224


def forward(est: Any, X: Any, batch_size: int | None, run: Callable[..., Any], what: str) -> Any:
    """``run(images, batch_size)`` on ``X`` (an array converted per batch, or a
    catalogue streamed), returned as numpy, or as a torch tensor on ``X``'s device
    when ``X`` is one."""
    skip = _params.choice(est.on_error, "on_error", ("raise", "skip")) == "skip"
    est.model_.precision = _precision.resolve(est.precision, est.model_.device)
    as_torch = is_torch(X)
    images = Images(X, image_size(est))
    if batch_size is None:
        h, w = images.shape[-2:]
        batch = min(256, max(8, _BATCH_PIXELS // (h * w)))
    else:
        batch = _params.integer(batch_size, "batch_size", low=1)
    out = run_batches(est, images, batch, run, skip, what)
    if as_torch:
        import torch

        return torch.from_numpy(out).to(X.device)
    return out


def image_size(est: Any) -> int:
    """Side of catalogue images: ``image_size``, else the training size, else 224."""
    size = _params.integer(est.image_size, "image_size", 4, 16384, optional=True)
    if size is None:
        size = getattr(est, "image_size_", None)
    return DEFAULT_IMAGE_SIZE if size is None else int(size)


def run_batches(
    est: Any, images: Images, batch_size: int, run: Callable[..., Any], skip: bool, what: str
) -> np.ndarray:
    """``run(batch, batch_size)`` (embeddings or features) of ``images``, one forward
    batch at a time, put in order; with ``skip`` the rows of unreadable catalogue
    files are NaN (and recorded in ``skipped_``)."""
    if images.shape[0] != est.n_channels_:
        raise ShapeError(
            f"{images.name} has {images.shape[0]} channels, the network was built for "
            f"{est.n_channels_}"
        )
    skip = skip and images.catalogue is not None
    out: np.ndarray | None = None
    filled = 0
    skipped: list[tuple[int, str]] = []
    lo, hi = np.inf, -np.inf  # the values of an array taken as they are
    # On the CPU, libtorch's freed blocks are kept from one batch to the next for the
    # whole loop (gridmatch._core.CpuCacheWindow): no page faults on every batch's
    # activations, and a peak that does not creep up over a long catalogue.
    window = _core.CpuCacheWindow() if est.model_.device == "cpu" else nullcontext()
    with window:
        for b, idx, left_out in images.indexed_batches(batch_size, skip_errors=skip):
            skipped += left_out
            if b.shape[0] == 0:
                continue
            if images.check_scale:
                lo, hi = min(lo, float(b.min())), max(hi, float(b.max()))
            e = run(b, batch_size)
            if out is None:
                out = np.full((images.n, e.shape[1]), np.nan, np.float32)
            out[idx] = e
            filled += e.shape[0]
    if images.check_scale:
        assert images.array is not None
        warn_scale(images.name, images.array.dtype, lo, hi, est.normalize, what, 4)
    record_skipped(est, images, skipped, f"{what} left out", "(their rows are NaN)", 5)
    if out is None:
        raise DataError(
            f"every one of the {images.n} images of {images.name} is unreadable; "
            f"first: {skipped[0][1] if skipped else '?'}"
        )
    assert filled + len(skipped) == images.n
    return out
