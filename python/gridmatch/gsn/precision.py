"""The arithmetic of the Grid Search Network's forward passes (``precision``).

``"fp32"`` everywhere by default. ``"bf16"`` and ``"fp16"`` run the networks under
libtorch's autocast (convolutions and matrix products in the 16-bit type; embeddings,
similarities and the loss in float32; weights, gradients and optimiser state float32;
``"fp16"`` training scales the loss as PyTorch's ``GradScaler`` does). Fast on CUDA GPUs
(bfloat16 on Ampere and later) and on CPUs with native bfloat16 matrix units (Intel AMX:
2.2x float32 for a ResNet step on a Xeon with ``amx_bf16``); several times slower than
float32 on CPUs without them (AVX2-only). ``"auto"`` picks ``"bf16"`` where it is fast
(a CUDA device with bfloat16 support, a CPU with AMX-BF16) and ``"fp32"`` elsewhere.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from .. import _core
from .._base import params as _params

__all__ = ["PRECISIONS", "check", "cpu_has_amx_bf16", "resolve"]

#: The names ``precision=`` accepts.
PRECISIONS: tuple[str, ...] = (*_core.PRECISION_NAMES, "auto")


def check(precision: Any) -> str:
    """``precision`` checked (``ConfigError`` naming the choices otherwise)."""
    return str(_params.choice(precision, "precision", PRECISIONS))


@cache  # the hardware does not change; embed asks at every call with "auto"
def cpu_has_amx_bf16() -> bool:
    """Whether this CPU has Intel AMX with bfloat16 tiles (and the OS enabled them), as
    PyTorch sees it (it asks Linux for the AMX tile state, as oneDNN does)."""
    import torch

    probe = getattr(torch._C._cpu, "_init_amx", None)  # asks the OS for the AMX tiles
    amx = bool(probe()) if probe is not None else False
    return amx and bool(torch.backends.mkldnn.is_available())


def resolve(precision: Any, device: str) -> str:
    """The precision ``precision`` means on ``device`` (``"cpu"`` or ``"cuda:N"``):
    itself, or for ``"auto"``: ``"bf16"`` on a CUDA device that supports bfloat16 and on
    a CPU with AMX-BF16, ``"fp32"`` elsewhere."""
    name = check(precision)
    if name != "auto":
        return name
    if device.startswith("cuda"):
        import torch

        with torch.cuda.device(int(device.partition(":")[2] or 0)):
            # native bfloat16 only (Ampere and later): not the emulated kind
            return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp32"
    return "bf16" if cpu_has_amx_bf16() else "fp32"
