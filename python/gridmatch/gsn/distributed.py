"""Data-parallel training over ``torch.distributed`` (private).

:meth:`gridmatch.GridSearchNetwork.fit` trains data-parallel when a default process
group is initialised (by ``torchrun``, Ray Train's ``TorchTrainer``, or
``torch.distributed.init_process_group``). The training loop runs in Rust; it calls
the hook made here for its collectives, handing over torch tensors that share the
model's memory (no copy): ``"broadcast"`` (from rank 0) and ``"all_reduce_mean"``.
Gloo works with CPU tensors, NCCL with CUDA tensors; the model's device must match the
group's backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._base.exceptions import ConfigError

__all__ = ["Group", "check", "device_for", "group", "hook"]

#: ``(rank, world_size)`` of the default process group.
Group = tuple[int, int]


def _initialised() -> bool:
    try:
        import torch.distributed as dist
    except ImportError:  # torch without distributed support
        return False
    return bool(dist.is_available() and dist.is_initialized())


def check(setting: Any) -> None:
    """Check the ``distributed`` setting.

    Parameters
    ----------
    setting : object
        The value given.

    Raises
    ------
    ConfigError
        Unless it is ``"auto"``, ``True`` or ``False``.
    """
    if not (setting is True or setting is False or (type(setting) is str and setting == "auto")):
        raise ConfigError(f"distributed must be 'auto', True or False, got {setting!r}")


def active(setting: Any) -> bool:
    """Whether :meth:`GridSearchNetwork.fit` would train data-parallel under the
    ``distributed`` setting (a default process group is initialised and the setting is
    not ``False``); never raises."""
    return setting is not False and _initialised()


def group(setting: Any) -> Group | None:
    """The process group to train in under the ``distributed`` setting, or ``None``.

    Parameters
    ----------
    setting : {"auto", True, False}
        ``"auto"``: the default process group when one is initialised; ``True``: it must
        be; ``False``: train alone.

    Returns
    -------
    tuple of (int, int) or None
        ``(rank, world_size)``.

    Raises
    ------
    ConfigError
        An unknown setting, or ``True`` without an initialised process group.
    """
    check(setting)
    if setting is False or not _initialised():
        if setting is True:
            raise ConfigError(
                "distributed=True needs an initialised torch.distributed process group "
                "(start the script with torchrun, or call "
                "torch.distributed.init_process_group first)"
            )
        return None
    import torch.distributed as dist

    return int(dist.get_rank()), int(dist.get_world_size())


def device_for(device: str) -> str:
    """The device one rank trains on: ``"auto"`` and ``"cuda"`` mean this process's
    current CUDA device (``torch.cuda.set_device(local_rank)``, as torchrun scripts do;
    Ray Train sets it) when torch sees CUDA; other settings are kept.

    Parameters
    ----------
    device : str
        The estimator's ``device`` setting.

    Returns
    -------
    str
    """
    if device not in ("auto", "cuda"):
        return device
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()}"
    return device


def hook(world: int) -> Callable[[str, list[Any]], None]:
    """The collectives of the training loop over the default process group.

    Parameters
    ----------
    world : int
        The world size.

    Returns
    -------
    callable
        ``hook(event, tensors)``: ``"broadcast"`` overwrites each tensor with rank 0's;
        ``"all_reduce_mean"`` replaces each with its mean over the ranks. In place.
    """
    import torch
    import torch.distributed as dist

    def run(event: str, tensors: list[Any]) -> None:
        with torch.no_grad():
            if event == "broadcast":
                for t in tensors:
                    dist.broadcast(t, src=0)
            elif event == "all_reduce_mean":
                for t in tensors:
                    dist.all_reduce(t)
                    t.div_(world)
            else:
                raise ValueError(f"unknown collective {event!r}")

    return run
