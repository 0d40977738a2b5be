"""Thread control shared by the Rust core and libtorch."""

from __future__ import annotations

import operator

from .. import _core

__all__ = ["get_num_threads", "set_num_threads"]

# Same bound as the Rust core's runtime::MAX_THREADS.
_MAX_THREADS = 1024


def set_num_threads(n: int) -> None:
    """Set the number of threads gridmatch uses.

    Covers both the Rust thread pool (SVM, kNN, expression kernels, search) and
    libtorch's intra-op pool (network training and inference).

    Parameters
    ----------
    n : int
        Number of threads, from 1 to 1024; ``0`` means one per available CPU.

    Raises
    ------
    ValueError
        If ``n`` is negative, above 1024 or not an integer.
    """
    try:
        n = operator.index(n)
    except TypeError:
        raise ValueError(f"n must be an integer, got {type(n).__name__}") from None
    if n < 0:
        raise ValueError(f"n must be >= 0 (0 = all CPUs), got {n}")
    if n > _MAX_THREADS:
        raise ValueError(f"n must be at most {_MAX_THREADS}, got {n}")
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
