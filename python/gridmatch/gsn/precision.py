"""The arithmetic of the Grid Search Network's forward passes (``precision``).

``"fp32"`` everywhere by default. ``"bf16"`` and ``"fp16"`` run the networks under
libtorch's autocast (convolutions and matrix products in the 16-bit type; embeddings,
similarities and the loss in float32; weights, gradients and optimiser state float32;
``"fp16"`` training scales the loss as PyTorch's ``GradScaler`` does). Meant for CUDA GPUs
(bfloat16 on Ampere and later); on a CPU both run, fast only where it has native 16-bit
arithmetic (AVX-512-BF16, AMX), several times slower than float32 elsewhere.
"""

from __future__ import annotations

from typing import Any

from .. import _core
from .._base import params as _params

__all__ = ["PRECISIONS", "check"]

#: The names ``precision=`` accepts.
PRECISIONS: tuple[str, ...] = tuple(_core.PRECISION_NAMES)


def check(precision: Any) -> str:
    """``precision`` checked (``ConfigError`` naming the choices otherwise)."""
    return str(_params.choice(precision, "precision", PRECISIONS))
