"""Thread control shared by the Rust core and libtorch."""

from __future__ import annotations

import operator

from . import _core

__all__ = ["get_num_threads", "set_num_threads"]


def set_num_threads(n: int) -> None:
    """Set the number of threads gridmatch uses.

    Covers both the Rust thread pool (SVM, kNN, expression kernels, search) and
    libtorch's intra-op pool (network training and inference).

    Parameters
    ----------
    n : int
        Number of threads, at least 1; ``0`` means one per available CPU.

    Raises
    ------
    ValueError
        If ``n`` is negative or not an integer.
    """
    try:
        n = operator.index(n)
    except TypeError:
        raise ValueError(f"n must be an integer, got {type(n).__name__}") from None
    if n < 0:
        raise ValueError(f"n must be >= 0 (0 = all CPUs), got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> dict[str, int]:
    """Return the current thread counts.

    Returns
    -------
    dict
        ``{"rayon": ..., "torch": ...}``: threads of the Rust pool and of libtorch.
    """
    rayon, torch = _core.get_num_threads()
    return {"rayon": rayon, "torch": torch}
