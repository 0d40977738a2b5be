"""A trained Grid Search Network's query network as a standalone file: ONNX or TorchScript.

The core's network (src/nets) is rebuilt in PyTorch from the model's saved files: the
input normalisation (the per-channel mean and std the core applies, read from the
model), the backbone, the average pool of its feature map,
the head and the L2 normalisation. The built-in backbones are mirrored with the core's
variable names (``"convnet"``: :class:`ConvNet`; the ResNets: torchvision's, which the
core's follow); a module backbone is its trained TorchScript program (``backbone.pt``).
BatchNorm runs in eval mode with epsilon 1e-5, as the core's eval-mode folding does.
The rebuilt network is scripted (``torch.jit.script``); the TorchScript file is that
program, and the ONNX file is exported from it by torch's TorchScript-based exporter
(``dynamo=False``: it takes a TorchScript module backbone, which the ``torch.export``
exporter does not), opset :data:`OPSET`, batch dimension dynamic.
"""

from __future__ import annotations

import json
import os
import secrets
import struct
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .._base import params as _params
from .._base.exceptions import ConfigError, DataError
from .input import DEFAULT_IMAGE_SIZE
from .torchscript import SCRIPT_FILE

__all__ = ["FORMATS", "INSTALL", "OPSET", "ConvNet", "QueryNetwork", "export", "query_network"]

#: The formats :func:`export` writes.
FORMATS = ("onnx", "torchscript")
#: How to install what the ONNX export needs.
INSTALL = "pip install 'gridmatch[export]'"
#: The ONNX opset of exported files.
OPSET = 17
#: The dtypes of the safetensors files the core writes.
_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64}


def read_safetensors(file: Path) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors ``file`` (the model's ``weights.safetensors``)."""
    data = file.read_bytes()
    try:
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + n])
        out = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            lo, hi = entry["data_offsets"]
            raw = np.frombuffer(
                data,
                _DTYPES[entry["dtype"]],
                offset=8 + n + lo,
                count=(hi - lo) // np.dtype(_DTYPES[entry["dtype"]]).itemsize,
            )
            out[name] = torch.from_numpy(raw.reshape(entry["shape"]).copy())
    except (struct.error, ValueError, KeyError, TypeError) as e:
        raise DataError(f"cannot read {file} ({type(e).__name__}: {e})") from None
    return out


class ConvNet(nn.Module):
    """The core's ``"convnet"`` backbone (src/nets/convnet.rs) with its variable names:
    three 3×3 convolutions (32, 64, 128 channels, no bias) each with BatchNorm and ReLU,
    a 2×2 max-pool after the first two; returns the feature map."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, 32, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32, eps=1e-5)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64, eps=1e-5)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(128, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return F.relu(self.bn3(self.conv3(x)))


class QueryNetwork(nn.Module):
    """Images ``(n, c, h, w)`` in ``[0, 1]`` → L2-normalised embeddings ``(n, dim)``:
    ``(x − mean) / std``, the backbone, the average of its feature map over the positions
    (when ``spatial``; else its ``(n, c)`` output as it is), the head, L2 normalisation."""

    __constants__ = ["spatial"]  # a constant: scripting compiles only one branch

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Linear,
        mean: list[float],
        std: list[float],
        spatial: bool,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.spatial = spatial

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # the buffers are Tensors (mypy's Module.__getattr__ says Tensor | Module; a
        # class annotation would be a string TorchScript cannot read, under the
        # postponed annotations of this file)
        f = self.backbone((images - self.mean) / self.std)  # type: ignore[operator]
        if self.spatial:
            f = f.mean(dim=(2, 3))
        return F.normalize(self.head(f), p=2.0, dim=1, eps=1e-12)


def _load(module: nn.Module, tensors: dict[str, torch.Tensor], what: str) -> None:
    """Load ``tensors`` into ``module``, strictly but for BatchNorm's batch counters
    (``DataError`` naming a tensor that is missing, left over or misshapen)."""
    own = {k for k in module.state_dict() if not k.endswith("num_batches_tracked")}
    missing, extra = sorted(own - tensors.keys()), sorted(tensors.keys() - own)
    if missing or extra:
        raise DataError(f"the {what} weights do not fit: missing {missing}, unexpected {extra}")
    try:
        module.load_state_dict(tensors, strict=False)
    except RuntimeError as e:  # a shape that differs
        raise DataError(f"the {what} weights do not fit ({e})") from None


def _builtin(name: str, cin: int, tensors: dict[str, torch.Tensor]) -> tuple[nn.Module, bool]:
    """The built-in backbone ``name`` with its weights, and whether it returns a map."""
    if name == "convnet":
        net: nn.Module = ConvNet(cin)
        spatial = True
    else:
        try:
            import torchvision  # type: ignore[import-untyped]
        except ImportError:
            raise ImportError(f"exporting a {name} needs torchvision: {INSTALL}") from None
        net = getattr(torchvision.models, name)(weights=None)
        if cin != 3:
            net.conv1 = nn.Conv2d(cin, 64, 7, stride=2, padding=3, bias=False)
        net.fc = nn.Identity()  # torchvision's pooled features, as Net::features
        spatial = False
    _load(net, tensors, name)
    return net, spatial


def query_network(est: Any) -> tuple[QueryNetwork, tuple[int, int, int]]:
    """The fitted estimator's query network as a PyTorch module in eval mode (on the
    CPU, float32), and the ``(c, h, w)`` of the images it was trained on (``image_size``
    when set, else the training images' size, else 224)."""
    c = int(est.n_channels_)
    shape = getattr(est, "image_shape_", None)
    size = _params.integer(est.image_size, "image_size", 4, 16384, optional=True)
    if size is not None:
        hw = (size, size)
    elif shape is not None:
        hw = (int(shape[1]), int(shape[2]))
    else:
        hw = (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
    with tempfile.TemporaryDirectory(prefix="gridmatch-export-") as d:
        est.save(d)
        tensors = read_safetensors(Path(d) / "weights.safetensors")
        head_w, head_b = tensors["query.head.weight"], tensors["query.head.bias"]
        if isinstance(est.backbone, str):
            prefix = "query.backbone."
            own = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            backbone, spatial = _builtin(est.backbone, c, own)
        else:
            backbone = torch.jit.load(str(Path(d) / SCRIPT_FILE), map_location="cpu")
            backbone.eval()
            with torch.no_grad():
                out = backbone(torch.zeros(2, c, *hw))
            spatial = out.dim() == 4
    head = nn.Linear(head_w.shape[1], head_w.shape[0])
    _load(head, {"weight": head_w, "bias": head_b}, "head")
    mean, std = est.model_.input_normalization  # the core's own, as embed applies it
    net = QueryNetwork(backbone, head, mean, std, spatial)
    return net.eval(), (c, *hw)


def _import_onnx() -> Any:
    """The onnx module; ``ImportError`` saying how to install it when it is missing."""
    try:
        import onnx
    except ImportError as e:
        raise ImportError(f"format='onnx' needs the onnx package: {INSTALL} ({e})") from e
    return onnx


def export(est: Any, path: str | os.PathLike, format: str) -> Path:
    """``GridSearchNetwork.export`` (which documents it): write the query network of the
    fitted ``est`` to ``path`` in ``format``, atomically; returns the path."""
    fmt = _params.choice(format, "format", FORMATS)
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"path {str(path)!r} is a directory; give the name of the file to write")
    onnx = _import_onnx() if fmt == "onnx" else None
    net, shape = query_network(est)
    path.parent.mkdir(parents=True, exist_ok=True)
    # as the core's store writes files: a temporary file beside the destination, created
    # with the usual permissions, flushed to disk, then renamed over it
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    try:
        with warnings.catch_warnings():
            # torch marks TorchScript and its ONNX exporter deprecated; they are what
            # takes a TorchScript module backbone
            warnings.simplefilter("ignore", DeprecationWarning)
            program = torch.jit.script(net)
            if onnx is None:
                torch.jit.save(program, str(tmp))
            else:
                torch.onnx.export(
                    program,
                    (torch.rand(2, *shape),),
                    str(tmp),
                    input_names=["images"],
                    output_names=["embeddings"],
                    dynamic_axes={"images": {0: "n"}, "embeddings": {0: "n"}},
                    opset_version=OPSET,
                    dynamo=False,
                )
                onnx.checker.check_model(str(tmp))
        with open(tmp, "r+b") as f:  # writable: Windows' fsync needs it
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _fsync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries (the rename) to disk, where the OS lets a folder be
    opened for that (POSIX; not Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
