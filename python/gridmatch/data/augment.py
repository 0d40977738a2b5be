"""Augmentation settings of the Rust image pipeline, checked and put as it reads them.

One place for the random resized crop, flip, colour jitter, occlusion, blur and affine
settings that :class:`~gridmatch.datasets.ImageLoader` takes as keyword arguments and
:class:`~gridmatch.GridSearchNetwork` as ``image_augment`` (a mapping of the same names):
:func:`settings` checks them and returns the ``augment`` object of the pipeline's JSON
config (``src/images/transform.rs``'s ``Augment``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .._base.exceptions import ConfigError
from .._base.params import real

__all__ = ["LOADER_DEFAULTS", "TRAIN_DEFAULTS", "from_mapping", "settings"]

#: ``ImageLoader``'s defaults: torchvision's standard recipe (``RandomResizedCrop``
#: area 8–100 %, aspect 3/4–4/3; flip p = 0.5; colour jitter 0.4); no occlusion, blur
#: or affine warp.
LOADER_DEFAULTS: dict[str, Any] = {
    "scale": (0.08, 1.0),
    "ratio": (3.0 / 4.0, 4.0 / 3.0),
    "flip": 0.5,
    "jitter": 0.4,
    "occlusion": 0.0,
    "blur": 0.0,
    "blur_sigma": (0.1, 2.0),
    "degrees": 0.0,
    "translate": None,
    "affine_scale": None,
    "shear": None,
}

#: A ``GridSearchNetwork``'s views of catalogue photos with ``augment > 0``: the
#: standard recipe with crops of 35–100 % of the area (a crop of 8 % would often lose
#: the product a grid cell must be matched by).
TRAIN_DEFAULTS: dict[str, Any] = {**LOADER_DEFAULTS, "scale": (0.35, 1.0)}


def _pair(value: Any, name: str, low: float, high: float | None) -> tuple[float, float]:
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a pair (low, high), got {value!r}") from None
    a = real(a, f"{name}[0]", low, high, low_open=True)
    b = real(b, f"{name}[1]", low, high, low_open=True)
    if a > b:
        raise ConfigError(f"{name} must satisfy low <= high, got {value!r}")
    return float(a), float(b)


def _jitter(value: Any) -> list[float]:
    if isinstance(value, (tuple, list)):
        if len(value) != 3:
            raise ConfigError(
                f"jitter must be a strength or (brightness, contrast, saturation), got {value!r}"
            )
        names = ("brightness", "contrast", "saturation")
        return [float(real(v, f"jitter {n}", 0.0, 1.0)) for v, n in zip(value, names)]
    return [float(real(value, "jitter", 0.0, 1.0))] * 3


def _signed_range(value: Any, name: str, n: int) -> list[float]:
    """A number ``v >= 0`` as ``(-v, v)``, or a sequence of ``n`` (2 or 4) finite
    numbers given as ``low, high`` pairs."""
    if isinstance(value, (tuple, list)):
        if len(value) != n and not (n == 4 and len(value) == 2):
            raise ConfigError(f"{name} must be a number or {n} numbers, got {value!r}")
        out = [float(real(v, f"{name}[{i}]")) for i, v in enumerate(value)]
    else:
        v = float(real(value, name, 0.0))
        out = [-v, v]
    if not all(math.isfinite(v) for v in out):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    out += [0.0] * (n - len(out))
    if any(out[i] > out[i + 1] for i in range(0, n, 2)):
        raise ConfigError(f"{name} ranges must satisfy low <= high, got {value!r}")
    return out


def _affine(degrees: Any, translate: Any, affine_scale: Any, shear: Any) -> dict[str, Any]:
    """The pipeline's ``RandomAffine`` settings, as torchvision's arguments read."""
    d0, d1 = _signed_range(degrees, "degrees", 2)
    t = (0.0, 0.0) if translate is None else _pair(translate, "translate", -1.0, 1.0)
    if min(t) < 0:
        raise ConfigError(f"translate must lie in [0, 1], got {translate!r}")
    sc = (1.0, 1.0) if affine_scale is None else _pair(affine_scale, "affine_scale", 0.0, None)
    if not math.isfinite(sc[1]):
        raise ConfigError(f"affine_scale must be finite, got {affine_scale!r}")
    sh = [0.0] * 4 if shear is None else _signed_range(shear, "shear", 4)
    if any(not -90.0 < v < 90.0 for v in sh):
        raise ConfigError(f"shear must lie in (-90, 90) degrees, got {shear!r}")
    return {"degrees": (d0, d1), "translate": t, "affine_scale": sc, "shear": sh}


def settings(
    *,
    scale: Any,
    ratio: Any,
    flip: Any,
    jitter: Any,
    occlusion: Any,
    blur: Any,
    blur_sigma: Any,
    degrees: Any,
    translate: Any,
    affine_scale: Any,
    shear: Any,
) -> dict[str, Any]:
    """The pipeline's ``augment`` object of these settings (``ConfigError`` naming the
    first one that is out of range or of the wrong type)."""
    ratios = _pair(ratio, "ratio", 0.0, None)
    if not (math.isfinite(ratios[0]) and math.isfinite(ratios[1])):
        raise ConfigError(f"ratio must be finite, got {ratio!r}")
    sigma = _pair(blur_sigma, "blur_sigma", 0.0, None)
    if not math.isfinite(sigma[1]):
        raise ConfigError(f"blur_sigma must be finite, got {blur_sigma!r}")
    return {
        "scale": _pair(scale, "scale", 0.0, 1.0),
        "ratio": ratios,
        "flip": float(real(flip, "flip", 0.0, 1.0)),
        "jitter": _jitter(jitter),
        "erase": float(real(occlusion, "occlusion", 0.0, 1.0)),
        "blur": float(real(blur, "blur", 0.0, 1.0)),
        "blur_sigma": sigma,
        **_affine(degrees, translate, affine_scale, shear),
    }


def from_mapping(value: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    """The pipeline's ``augment`` object of ``TRAIN_DEFAULTS`` updated by ``value`` (a
    mapping of :data:`LOADER_DEFAULTS`'s names; ``None``: the defaults alone)."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{name} must be a dict of augmentation settings, got {type(value).__name__}"
        )
    unknown = sorted(str(k) for k in value if k not in LOADER_DEFAULTS)
    if unknown:
        raise ConfigError(
            f"{name} has unknown setting(s) {unknown}; known: {sorted(LOADER_DEFAULTS)}"
        )
    return settings(**{**TRAIN_DEFAULTS, **value})
