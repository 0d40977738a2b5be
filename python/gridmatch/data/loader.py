"""Batches of photos for training and embedding, decoded and augmented in Rust.

:class:`ImageLoader` streams an :class:`~gridmatch.datasets.ImageCatalogue` as
``(torch.Tensor (n, 3, h, w) float32, ids)`` batches: a drop-in for a
``torch.utils.data.DataLoader`` over a folder of photos with torchvision transforms.
Decoding (JPEG, PNG, WebP), cropping, resampling, augmentation and normalisation run on
Rust worker threads (no Python, no GIL) that assemble whole batches ahead of the
consumer; the tensors wrap the Rust buffers without a copy.
"""

from __future__ import annotations

import json
import operator
import os
import warnings
from collections.abc import Iterator
from typing import Any

from .. import _core
from .._base.exceptions import ConfigError, ShapeError
from .._base.params import choice, flag, integer
from .augment import settings as augment_settings
from .catalogue import MAX_IMAGE_PIXELS, ImageCatalogue

__all__ = ["ImageLoader"]


class ImageLoader:
    """Batches ``(pixels, ids)`` of a photo catalogue, decoded and augmented in Rust.

    Each ``iter(loader)`` is one epoch: the images are (re)shuffled with a seed derived
    from ``(seed, epoch)``, cut into batches, and each batch is decoded and transformed by
    one of ``workers`` threads, at most ``prefetch`` batches ahead of the consumer.
    Every random draw for image ``i`` comes from a generator of ``(seed, epoch, i)``, so
    the batches are the same for any number of workers.

    ``augment=True`` is torchvision's standard training recipe: ``RandomResizedCrop``
    (area fraction ``scale``, aspect ratio ``ratio`` drawn log-uniformly, 10 tries then a
    centre crop), ``RandomHorizontalFlip(flip)`` and ``ColorJitter`` (brightness, contrast,
    saturation ``jitter``, applied in a random order on ``[0, 1]`` floats).
    ``augment=False`` resizes the shorter side to ``image_size`` and cuts the centre
    ``image_size × image_size`` (torchvision's ``Resize`` + ``CenterCrop``). Resampling
    is Pillow's antialiased bilinear filter (``fast_image_resize``, SIMD).

    Parameters
    ----------
    catalogue : ImageCatalogue
        The photos and their ids.
    batch_size : int, default=64
        Images per batch.
    image_size : int, default=224
        Side of the square output images.
    augment : bool, default=True
        Random resized crop + flip + colour jitter; ``False``: resize + centre crop.
    shuffle : bool, default=True
        Reshuffle the order every epoch (``False``: catalogue order).
    seed : int, default=0
        Seed of shuffling and augmentation (a non-negative integer).
    workers : int, optional
        Worker threads; default: :func:`gridmatch.get_num_threads`'s Rust pool size.
    normalize : {"imagenet", None}, default="imagenet"
        ``"imagenet"``: ``(x − mean) / std`` per channel with ImageNet's mean
        ``(0.485, 0.456, 0.406)`` and std ``(0.229, 0.224, 0.225)`` of ``x`` in
        ``[0, 1]``; ``None``: ``x = pixel / 255`` in ``[0, 1]``.
    on_error : {"raise", "skip"}, default="raise"
        A missing, truncated, undecodable or too large file raises ``DataError`` naming
        it, or (``"skip"``) is left out of its batch and recorded in :attr:`skipped`
        (a warning at the end of the epoch gives the count).
    drop_last : bool, default=False
        Drop the last batch when it is smaller than ``batch_size``.
    max_pixels : int, default :data:`~gridmatch.datasets.MAX_IMAGE_PIXELS`
        Refuse images whose header claims more pixels (checked before decoding).
    scale : (float, float), default=(0.08, 1.0)
        Area range of the random resized crop (fractions of the image, in (0, 1]).
    ratio : (float, float), default=(3/4, 4/3)
        Aspect-ratio range (width / height) of the random resized crop.
    flip : float, default=0.5
        Probability of a horizontal flip.
    jitter : float or (float, float, float), default=0.4
        Colour jitter strength (brightness, contrast, saturation; each in [0, 1]; the
        factor is drawn in ``[1 − s, 1 + s]``; 0 leaves the colours exactly unchanged).
    occlusion : float, default=0.0
        Probability of occluding a random rectangle (torchvision's ``RandomErasing``
        after normalisation: area 2–33 % of the output, aspect 0.3–3.3, value 0); off by
        default (not part of the standard recipe).
    blur : float, default=0.0
        Probability of a Gaussian blur (torchvision's ``GaussianBlur`` on the ``[0, 1]``
        pixels after the colour jitter, before normalisation and occlusion: σ drawn
        uniformly in ``blur_sigma``, kernel side ``2 · (image_size // 20) + 1`` — 23 at
        224 px as in SimCLR's recipe, 1 (no blur) below 20 px — reflect padding); off
        by default.
    blur_sigma : (float, float), default=(0.1, 2.0)
        Range of the blur's σ in output pixels (``0 < low <= high``).
    degrees, translate, affine_scale, shear : default 0, None, None, None
        torchvision's ``RandomAffine(degrees, translate, scale, shear)`` (bilinear, fill
        0), applied to the cropped and flipped image before the colour jitter: rotation
        uniform in ``(-degrees, degrees)`` (or a ``(low, high)`` pair), translation a
        whole number of pixels up to ``translate = (fx, fy)`` of the side, scale uniform
        in ``affine_scale = (low, high)``, shear in degrees (a number ``s``: x shear in
        ``(-s, s)``; 2 numbers: an x range; 4: x and y ranges). Off by default.
    prefetch : int, optional
        Batches the workers may run ahead of the consumer (default ``2 · workers``).

    Attributes
    ----------
    epoch : int
        The epoch the next ``iter()`` runs (starts at 0; see :meth:`set_epoch`).
    skipped : list of (id, str)
        With ``on_error="skip"``: the id and message of each image left out in the
        current (or last) epoch.

    Raises
    ------
    ConfigError
        A setting is out of range or of the wrong type, or the batches the loader may
        hold at once (``prefetch`` + 1 of ``batch_size`` images at ``image_size``, as
        float32) would take more than half of the machine's physical memory.
    ShapeError
        The catalogue is empty (e.g. an empty subset).

    Notes
    -----
    Each batch is a tuple ``(x, ids)``: ``x`` a ``torch.float32`` tensor
    ``(n, 3, image_size, image_size)`` (CPU, contiguous), ``ids`` the catalogue's ids
    of those images: a ``torch.int64`` tensor for integer ids, a list of ``str`` for
    string ids (as ``DataLoader``'s default collation). ``n`` is ``batch_size`` except
    for the last batch and for batches that lost images with ``on_error="skip"``.
    Breaking out of the loop stops the workers.

    Examples
    --------
    >>> cat = gm.datasets.ImageCatalogue.from_folder("photos/")  # doctest: +SKIP
    >>> loader = gm.datasets.ImageLoader(cat, batch_size=64, seed=0)  # doctest: +SKIP
    >>> for x, ids in loader:  # doctest: +SKIP
    ...     loss = model(x)
    """

    def __init__(
        self,
        catalogue,
        batch_size=64,
        image_size=224,
        augment=True,
        shuffle=True,
        seed=0,
        workers=None,
        *,
        normalize="imagenet",
        on_error="raise",
        drop_last=False,
        max_pixels=MAX_IMAGE_PIXELS,
        scale=(0.08, 1.0),
        ratio=(3.0 / 4.0, 4.0 / 3.0),
        flip=0.5,
        jitter=0.4,
        occlusion=0.0,
        blur=0.0,
        blur_sigma=(0.1, 2.0),
        degrees=0.0,
        translate=None,
        affine_scale=None,
        shear=None,
        prefetch=None,
    ) -> None:
        self.catalogue = catalogue
        self.batch_size = batch_size
        self.image_size = image_size
        self.augment = augment
        self.shuffle = shuffle
        self.seed = seed
        self.workers = workers
        self.normalize = normalize
        self.on_error = on_error
        self.drop_last = drop_last
        self.max_pixels = max_pixels
        self.scale = scale
        self.ratio = ratio
        self.flip = flip
        self.jitter = jitter
        self.occlusion = occlusion
        self.blur = blur
        self.blur_sigma = blur_sigma
        self.degrees = degrees
        self.translate = translate
        self.affine_scale = affine_scale
        self.shear = shear
        self.prefetch = prefetch
        self.epoch = 0
        self.skipped: list[tuple[Any, str]] = []
        self._pipeline = self._build()

    def _build(self) -> Any:
        if not isinstance(self.catalogue, ImageCatalogue):
            raise ConfigError(
                f"catalogue must be a gridmatch.datasets.ImageCatalogue, got "
                f"{type(self.catalogue).__name__}"
            )
        if len(self.catalogue) == 0:
            raise ShapeError("the catalogue is empty; ImageLoader needs at least one image")
        workers = integer(self.workers, "workers", 1, 1024, optional=True)
        if workers is None:
            workers = max(1, _core.get_num_threads()[0])
        prefetch = integer(self.prefetch, "prefetch", 1, optional=True)
        augment = flag(self.augment, "augment")
        config = {
            "size": integer(self.image_size, "image_size", 1, 16384),
            "batch_size": integer(self.batch_size, "batch_size", 1),
            "augment": augment_settings(
                scale=self.scale,
                ratio=self.ratio,
                flip=self.flip,
                jitter=self.jitter,
                occlusion=self.occlusion,
                blur=self.blur,
                blur_sigma=self.blur_sigma,
                degrees=self.degrees,
                translate=self.translate,
                affine_scale=self.affine_scale,
                shear=self.shear,
            )
            if augment
            else None,
            "normalize": choice(self.normalize, "normalize", ("imagenet",), optional=True)
            == "imagenet",
            "max_pixels": integer(self.max_pixels, "max_pixels", 1, 2**63 - 1),
            "skip_errors": choice(self.on_error, "on_error", ("raise", "skip")) == "skip",
            "drop_last": flag(self.drop_last, "drop_last"),
            "shuffle": flag(self.shuffle, "shuffle"),
            "seed": integer(self.seed, "seed", 0, 2**64 - 1),
            "workers": workers,
            "prefetch": 2 * workers if prefetch is None else prefetch,
        }
        _check_memory(
            min(config["batch_size"], len(self.catalogue)), config["size"], config["prefetch"]
        )
        return _core.ImagePipeline(list(self.catalogue.paths), json.dumps(config))

    def __len__(self) -> int:
        """Batches per epoch."""
        n, b = len(self.catalogue), operator.index(self.batch_size)
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter()`` run epoch ``epoch`` (its shuffle and augmentation).

        Parameters
        ----------
        epoch : int
            A non-negative integer.
        """
        self.epoch = integer(epoch, "epoch", 0, 2**64 - 1)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        epoch = self.epoch
        self.epoch += 1
        return self._run(self._pipeline.epoch(epoch))

    def _run(self, batches: Any) -> Iterator[tuple[Any, Any]]:
        import torch

        ids = self.catalogue.ids
        string_ids = ids.dtype == object
        self.skipped = []
        try:
            for pixels, idx, skipped in batches:
                self.skipped += [(ids[i], msg) for i, msg in skipped]
                if idx.shape[0] == 0:
                    continue
                batch_ids = ids[idx]
                out_ids = batch_ids.tolist() if string_ids else torch.from_numpy(batch_ids)
                yield torch.from_numpy(pixels), out_ids
        finally:
            batches.close()
        if self.skipped:
            first = self.skipped[0][1]
            warnings.warn(
                f"ImageLoader skipped {len(self.skipped)} unreadable image(s) this epoch "
                f"(see loader.skipped); first: {first}",
                RuntimeWarning,
                stacklevel=2,
            )

    def _plan(self, epoch: int, index: int, width: int, height: int) -> dict:
        """The crop / flip / jitter plan of image ``index`` in ``epoch`` (tests)."""
        return dict(self._pipeline.plan(epoch, index, width, height))

    def _profile(self) -> dict[str, float]:
        """Seconds per stage (decode, resample, finish, image_resize) at one thread."""
        return dict(self._pipeline.profile())

    def __repr__(self) -> str:
        return (
            f"ImageLoader({len(self.catalogue)} images, batch_size={self.batch_size!r}, "
            f"image_size={self.image_size!r}, augment={self.augment!r}, seed={self.seed!r})"
        )


def _check_memory(batch: int, size: int, prefetch: int) -> None:
    """``ConfigError`` when ``prefetch + 1`` float32 batches of ``batch`` RGB images of
    ``size`` px would take more than half of the physical memory (the process would be
    killed for memory instead of failing with a message)."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not known on this platform
        return
    one = batch * 3 * size * size * 4
    held = one * (prefetch + 1)
    if physical > 0 and held > physical // 2:
        gib = 2.0**30
        raise ConfigError(
            f"a batch of {batch} images at {size} px is {one / gib:.1f} GiB and the loader "
            f"may hold prefetch + 1 = {prefetch + 1} of them ({held / gib:.1f} GiB): more "
            f"than half of this machine's {physical / gib:.1f} GiB of memory; lower "
            "batch_size, image_size or prefetch"
        )
