"""Backbone weights for ``GridSearchNetwork(weights=...)``.

``weights`` is one of: a path to a ``.safetensors`` file (read by the core) or to a
``.pth`` / ``.pt`` state dict (read with ``torch.load(weights_only=True)``, so the file
runs no code); a mapping name → tensor (torch tensors or numpy arrays); a torch
``nn.Module`` (its ``state_dict()``); or ``"imagenet"``: torchvision's ImageNet weights of
the backbone, through torchvision's own download and cache. The core loads them strictly
(see ``Net::load_backbone`` in ``src/nets/mod.rs``): names follow torchvision, a ``module.``
prefix is stripped, torchvision's classifier ``fc.*`` and BatchNorm's
``num_batches_tracked`` are skipped, and any other name that matches no backbone
variable, a variable left without a tensor, or a shape that differs is a ``DataError``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._base.exceptions import ConfigError, DataError

__all__ = ["IMAGENET", "check", "describe", "load_into"]

#: torchvision's ImageNet weights of each backbone (``weights="imagenet"``).
IMAGENET: dict[str, str] = {
    "resnet18": "ResNet18_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V2",
}
_SUFFIXES = (".safetensors", ".pth", ".pt")


def _is_module(value: Any) -> bool:
    torch = sys.modules.get("torch")  # a torch module exists only once torch is imported
    return torch is not None and isinstance(value, torch.nn.Module)


def check(weights: Any, backbone: str) -> None:
    """Check the kind of ``weights`` (no file is read).

    Parameters
    ----------
    weights : object
        The ``weights`` parameter.
    backbone : str
        The backbone's name.

    Raises
    ------
    ConfigError
        An unsupported type, a file suffix other than ``.safetensors``, ``.pth``, ``.pt``,
        or ``"imagenet"`` for a backbone without ImageNet weights.
    """
    if weights is None or _is_module(weights) or isinstance(weights, Mapping):
        return
    if isinstance(weights, str) and weights == "imagenet":
        if backbone not in IMAGENET:
            raise ConfigError(
                f"weights='imagenet' is available for the backbones {sorted(IMAGENET)}, "
                f"not {backbone!r}"
            )
        return
    if isinstance(weights, (str, os.PathLike)):
        if Path(weights).suffix.lower() not in _SUFFIXES:
            raise ConfigError(
                f"weights file {str(weights)!r} must end in .safetensors, .pth or .pt "
                "(a state dict)"
            )
        return
    raise ConfigError(
        "weights must be a path (.safetensors, .pth, .pt), a mapping name -> tensor, a "
        f"torch nn.Module or 'imagenet', got {type(weights).__name__}"
    )


def describe(weights: Any) -> str | None:
    """What ``weights`` was, for a saved config: the path, ``"imagenet"`` or the type.

    Parameters
    ----------
    weights : object
        The ``weights`` parameter.

    Returns
    -------
    str or None
    """
    if weights is None:
        return None
    if isinstance(weights, (str, os.PathLike)):
        return str(weights)
    return f"<{type(weights).__name__}>"


def _tensors(state: Mapping[Any, Any], source: str) -> dict[str, Any]:
    """``state`` as a dict name → torch tensor or contiguous numpy array."""
    out: dict[str, Any] = {}
    for name, value in state.items():
        if not isinstance(name, str):
            raise DataError(f"{source}: tensor names must be strings, got {name!r}")
        if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
            out[name] = value.detach()
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind in "fiub":
            out[name] = np.ascontiguousarray(value)
            continue
        hint = " (a checkpoint? give its state dict)" if isinstance(value, Mapping) else ""
        raise DataError(
            f"{source}: {name!r} is a {type(value).__name__}, not a tensor or a numeric "
            f"numpy array{hint}"
        )
    return out


def _state_dict_file(path: Path) -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        raise ConfigError(f"reading {str(path)!r} needs torch (pip install torch)") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling raises many types; the file is not a state dict
        raise DataError(
            f"cannot read {str(path)!r} as a state dict ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(state, Mapping):
        raise DataError(
            f"{str(path)!r} holds a {type(state).__name__}, not a state dict (a mapping "
            "name -> tensor)"
        )
    return _tensors(state, str(path))


def _imagenet(backbone: str) -> dict[str, Any]:
    name = IMAGENET[backbone]
    try:
        from torchvision.models import get_weight  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError(
            "weights='imagenet' needs torchvision (pip install torchvision); or give the "
            "weights as a file, a state dict or a torchvision model"
        ) from None
    entry = get_weight(name)
    try:
        state = entry.get_state_dict(progress=False)
    except (OSError, RuntimeError, ValueError) as e:  # URLError is an OSError
        import torch.hub

        file = entry.url.rsplit("/", 1)[-1]
        raise DataError(
            f"cannot get torchvision's {name} weights ({type(e).__name__}: {e}). "
            "torchvision downloads them once into its cache: run once with network "
            f"access, or put {file} (from {entry.url}) into "
            f"{os.path.join(torch.hub.get_dir(), 'checkpoints')} (set TORCH_HOME to move "
            "it), or pass weights=<path to the .pth file>"
        ) from None
    return _tensors(state, name)


def load_into(model: Any, weights: Any, backbone: str) -> int:
    """Load ``weights`` into the backbone of ``model`` (a ``_core.GsnModel``).

    Parameters
    ----------
    model : gridmatch._core.GsnModel
        The model.
    weights : object
        The ``weights`` parameter (see the module's docstring); ``None`` loads nothing.
    backbone : str
        The backbone's name.

    Returns
    -------
    int
        Tensors loaded.

    Raises
    ------
    ConfigError
        An unsupported ``weights``, or ``"imagenet"`` without torchvision.
    DataError
        A missing or unreadable file, a download that failed, or tensors that do not
        fit the backbone.
    """
    check(weights, backbone)
    if weights is None:
        return 0
    if isinstance(weights, str) and weights == "imagenet":
        return int(model.load_backbone_tensors(_imagenet(backbone)))
    if isinstance(weights, (str, os.PathLike)):
        path = Path(weights)
        if not path.is_file():
            raise DataError(f"weights file {str(weights)!r} does not exist")
        if path.suffix.lower() == ".safetensors":
            return int(model.load_backbone(str(path)))
        return int(model.load_backbone_tensors(_state_dict_file(path)))
    if _is_module(weights):
        return int(model.load_backbone_tensors(_tensors(weights.state_dict(), "weights")))
    return int(model.load_backbone_tensors(_tensors(weights, "weights")))
