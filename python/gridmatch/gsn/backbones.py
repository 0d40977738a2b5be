"""The core model of a Grid Search Network, from a built-in backbone's name or a torch
module backbone (converted to TorchScript), with its initial weights."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from .. import _core
from . import distributed as _distributed
from . import weights as _weights
from .torchscript import SCRIPT_FILE, export_buffers, to_torchscript

__all__ = ["new_model"]


def new_model(
    est: Any,
    p: dict[str, Any],
    n_channels: int,
    device: str | None = None,
    image_hw: tuple[int, int] = (224, 224),
    script_file: Path | None = None,
) -> Any:
    """The core model (``gridmatch._core.GsnModel``) of the estimator ``est`` with the
    checked parameters ``p``; a module ``backbone`` is converted to TorchScript (or read
    from ``script_file``), its probe pass run on ``image_hw`` images. ``device`` overrides
    ``est.device`` (data-parallel training picks the process's device)."""
    dev = est.device if device is None else device
    spec = {
        "backbone": est.backbone if isinstance(est.backbone, str) else "torchscript",
        "in_channels": n_channels,
        "dim": p["dim"],
        "stitched": est.mode == "stitched",
        "seed": p["seed"],
        "normalize": "none" if est.normalize is None else est.normalize,
    }
    if isinstance(est.backbone, str):
        model = _core.GsnModel(json.dumps(spec), dev)
    elif script_file is not None:
        model = _core.GsnModel(json.dumps(spec), dev, (str(script_file), *image_hw))
    else:
        import torch

        program = export_buffers(
            to_torchscript(est.backbone, (n_channels, *image_hw)),
            warn=_distributed.active(est.distributed),
        )
        with tempfile.TemporaryDirectory(prefix="gridmatch-gsn-") as d:
            path = Path(d) / SCRIPT_FILE
            torch.jit.save(program, str(path))
            model = _core.GsnModel(json.dumps(spec), dev, (str(path), *image_hw))
    _weights.load_into(model, est.weights, est.backbone)
    return model
