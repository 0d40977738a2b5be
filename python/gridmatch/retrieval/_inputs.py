"""The checks and conversions of the retrieval functions' inputs, and the settings
spec the core reads."""

from __future__ import annotations

import json
import operator
from typing import Any

import numpy as np

from .. import _core
from .._base.exceptions import ConfigError, DeviceError, ShapeError
from .._base.validate import host_array

#: Names accepted by ``metric=``.
METRICS: tuple[str, ...] = tuple(_core.METRIC_NAMES)


def _is_tensor(x: Any) -> bool:
    import torch

    return isinstance(x, torch.Tensor)


def _check_metric(metric: Any) -> str:
    if not isinstance(metric, str) or metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}: expected one of {', '.join(METRICS)}")
    return metric


def _check_device(device: Any) -> str:
    name = str(device)
    if name == "cpu" or name == "cuda" or name.startswith("cuda:"):
        return name
    raise ConfigError(f"unknown device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be >= 1, got {value}")
    return value


def _check_blocks(block_size: Any) -> tuple[int, int] | None:
    if block_size is None:
        return None
    if isinstance(block_size, (tuple, list)):
        if len(block_size) != 2:
            raise ConfigError(
                f"block_size must be an int or a (queries, gallery) pair, got {block_size!r}"
            )
        q, g = block_size
        return _check_positive_int(q, "block_size"), _check_positive_int(g, "block_size")
    b = _check_positive_int(block_size, "block_size")
    return b, b


def _as_matrix(x: Any, name: str) -> np.ndarray:
    """A C-contiguous float32 (rows, dim) numpy array of ``x``."""
    x = host_array(x, name)
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise ShapeError(f"{name} must be a 2-D array of numbers: {e}") from None
    if a.dtype.kind not in "fiub":
        raise ShapeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ShapeError(f"{name} must be 2-D (rows, dim), got {a.ndim}-D with shape {a.shape}")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow -> inf, reported by Rust
        return np.ascontiguousarray(a, dtype=np.float32)


def _as_device_input(x: Any, name: str) -> Any:
    """A 2-D float tensor or array for the torch backend (moved to the device in Rust)."""
    if _is_tensor(x):
        if x.device.type == "meta":
            raise DeviceError(f"{name} is a torch tensor on the 'meta' device, which holds no data")
        if x.ndim != 2:
            raise ShapeError(f"{name} must be 2-D (rows, dim), got shape {tuple(x.shape)}")
        if x.is_complex():
            raise ShapeError(f"{name} must hold real numbers, got dtype {x.dtype}")
        return x.detach().float().contiguous()
    return _as_matrix(x, name)


def _as_ids(ids: Any, name: str, rows: int) -> np.ndarray:
    ids = host_array(ids, name)
    a = np.asarray(ids)
    if a.size == 0:
        a = a.astype(np.int64)
    if a.ndim != 1:
        raise ShapeError(f"{name} must be 1-D (one id per row), got shape {a.shape}")
    if a.dtype.kind == "O":
        # Python objects (e.g. an ImageCatalogue's string SKUs): all str or all int.
        if all(isinstance(v, str) for v in a):
            a = a.astype(str)
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in a):
            a = np.array(a.tolist())
    if a.dtype.kind not in "iuUS" and not (a.dtype.kind == "b"):
        raise ShapeError(
            f"{name} must hold integer ids or string ids (all of one kind), got dtype {a.dtype}"
        )
    if len(a) != rows:
        raise ShapeError(f"{name} has {len(a)} ids but its embeddings have {rows} rows")
    return a


def _to_output(scores: Any, indices: Any, like: Any) -> tuple[Any, Any]:
    """Results as torch tensors on the device of ``like`` when it is a tensor, else numpy."""
    import torch

    if like is not None:
        s = scores if _is_tensor(scores) else torch.from_numpy(scores)
        i = indices if _is_tensor(indices) else torch.from_numpy(indices)
        return s.to(like.device), i.to(like.device)
    if _is_tensor(scores):
        return scores.cpu().numpy(), indices.cpu().numpy()
    return scores, indices


def _spec(metric: str, exclude_self: Any, device: str, blocks: Any) -> str:
    """The settings as the one JSON spec the Rust side reads (``RetrievalSpec``)."""
    return json.dumps(
        {
            "metric": metric,
            "exclude_self": bool(exclude_self),
            "device": device,
            "block_size": None if blocks is None else [int(b) for b in blocks],
        }
    )
