"""A torch module backbone as TorchScript: converting it (script, else trace) and
exporting its buffers to the core."""

from __future__ import annotations

import io
import json
import sys
import warnings
from typing import Any

from .._base.exceptions import ConfigError

__all__ = [
    "BUFFERS_METHOD",
    "BUFFER_NAMES_METHOD",
    "SCRIPT_FILE",
    "export_buffers",
    "is_module",
    "to_torchscript",
]

#: The TorchScript program of a module backbone in a saved model's folder.
SCRIPT_FILE = "backbone.pt"


def is_module(x: Any) -> bool:
    """Whether ``x`` is a ``torch.nn.Module`` (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.nn.Module)


def first_line(e: BaseException, limit: int = 160) -> str:
    """``Type: first line of the message`` of ``e``, cut to ``limit`` characters."""
    lines = str(e).strip().splitlines()
    text = lines[0] if lines else ""
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(e).__name__}: {text}"


def to_torchscript(module: Any, shape: tuple[int, ...]) -> Any:
    """``module`` as TorchScript: as it is if it already is a ``torch.jit.ScriptModule``;
    else ``torch.jit.script(module)``; failing that, ``torch.jit.trace`` in eval mode on
    random images ``(2, *shape)`` (with a warning: a traced module keeps the mode it was
    traced in). ``ConfigError`` when it can be neither."""
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        return module
    try:
        return torch.jit.script(module)
    except Exception as e:  # noqa: BLE001 - TorchScript raises many kinds
        script_error = first_line(e)
    param = next(module.parameters(), None)
    example = torch.rand(2, *shape, device=None if param is None else param.device)
    was_training = module.training
    try:
        module.eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(module, example, check_trace=False)
    except Exception as e:  # noqa: BLE001
        trace_error = first_line(e)
        raise ConfigError(
            f"backbone: TorchScript can neither script this {type(module).__name__} "
            f"({script_error}) nor trace it on images {tuple(example.shape)} ({trace_error}); "
            "pass a module that torch.jit.script or torch.jit.trace accepts, or a "
            "torch.jit.ScriptModule"
        ) from None
    finally:
        module.train(was_training)
    warnings.warn(
        f"backbone: torch.jit.script failed ({script_error}); the module was traced in "
        "eval mode instead, and a traced module runs as traced, in training too "
        "(BatchNorm uses its running statistics, dropout is off); script it to train "
        "with train-mode behaviour",
        UserWarning,
        stacklevel=5,
    )
    return traced


#: The exported TorchScript method through which the core reaches a module backbone's
#: buffers (``BUFFERS_METHOD`` in src/nets/script.rs).
BUFFERS_METHOD = "gridmatch_buffers"
#: The exported method that names them (``BUFFER_NAMES_METHOD`` there): how the core
#: finds a module's BatchNorm layers (``freeze_bn``).
BUFFER_NAMES_METHOD = "gridmatch_buffer_names"


def _methods(program: Any) -> list[str]:
    """TorchScript source of each of the two methods ``program`` lacks."""
    names = [name for name, _ in program.named_buffers()]
    out: list[str] = []
    if not hasattr(program, BUFFERS_METHOD):
        lines = [f"def {BUFFERS_METHOD}(self) -> List[Tensor]:", "    out: List[Tensor] = []"]
        for i, name in enumerate(names):
            expr = "self"
            for part in name.split("."):
                expr = f"getattr({expr}, {json.dumps(part)})"
            lines += [f"    b{i} = {expr}", f"    if b{i} is not None:"]
            lines.append(f"        out.append(b{i})")
        lines.append("    return out")
        out.append("\n".join(lines) + "\n")
    if not hasattr(program, BUFFER_NAMES_METHOD):
        out.append(
            f"def {BUFFER_NAMES_METHOD}(self) -> List[str]:\n    return {json.dumps(names)}\n"
        )
    return out


def export_buffers(program: Any, warn: bool) -> Any:
    """A copy of the TorchScript ``program`` (on the CPU) with two more methods:
    ``gridmatch_buffers()``, its buffers (BatchNorm running statistics) in
    ``named_buffers`` order, the module's own tensors (an empty list when it has none),
    so that data-parallel training can broadcast them from rank 0 as it does the
    built-in backbones' statistics; and ``gridmatch_buffer_names()``, their names, by
    which ``freeze_bn`` finds the BatchNorm layers. The caller's module is not changed;
    one that has both methods already is returned as it is. When TorchScript cannot
    compile them (a buffer name that is not an attribute path) it returns ``program``,
    with a warning when ``warn`` (training data-parallel): the statistics then stay each
    rank's own."""
    import torch

    sources = _methods(program)
    if not sources:
        return program
    buf = io.BytesIO()
    torch.jit.save(program, buf)
    buf.seek(0)
    copy = torch.jit.load(buf, map_location="cpu")  # the core loads it on its device
    for source in sources:  # each on its own: the names' method always compiles
        try:
            copy.define(source)
        except Exception as e:  # noqa: BLE001 - TorchScript raises many kinds
            if warn:
                n = len(list(program.named_buffers()))
                warnings.warn(
                    f"backbone: cannot hand its {n} buffers to data-parallel "
                    f"training ({first_line(e)}); each rank keeps its own BatchNorm "
                    "statistics (rank 0's are saved)",
                    UserWarning,
                    stacklevel=5,
                )
    return copy
