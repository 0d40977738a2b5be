"""gridmatch: robust fashion retrieval with Grid Search Network embeddings.

Implements *Powering Robust Fashion Retrieval with Information Rich Feature
Embeddings* (Chopra et al., CVPR 2019 workshops) with a Rust core: Grid Search Network
training, an RL controller that searches embedding transforms and SVM kernels, a
kernel SVM, and retrieval evaluation.

Examples
--------
>>> import gridmatch as gm
>>> X, y = gm.datasets.load("fashion-mnist", split="test")  # doctest: +SKIP
"""

from __future__ import annotations

# libtorch must be loaded (through the torch package) before the extension module.
import torch  # noqa: F401

from . import _core, datasets, exceptions, expr, losses, miners, retrieval, search, svm
from ._base.threads import get_num_threads, set_num_threads
from .exceptions import (
    BackendError,
    ConfigError,
    ConvergenceWarning,
    DataError,
    DeviceError,
    ExpressionError,
    GridmatchError,
    InputScaleWarning,
    InterruptedWarning,
    NotFittedError,
    ShapeError,
)
from .gsn import GridSearchNetwork

__version__: str = _core.__version__


def __getattr__(name: str):
    # matplotlib is imported only when plots are asked for.
    if name == "plot":
        import importlib

        return importlib.import_module(".plot", __name__)
    raise AttributeError(f"module 'gridmatch' has no attribute {name!r}")


__all__ = [
    "BackendError",
    "ConfigError",
    "ConvergenceWarning",
    "DataError",
    "DeviceError",
    "ExpressionError",
    "GridSearchNetwork",
    "GridmatchError",
    "InputScaleWarning",
    "InterruptedWarning",
    "NotFittedError",
    "ShapeError",
    "__version__",
    "datasets",
    "exceptions",
    "expr",
    "losses",
    "miners",
    "retrieval",
    "get_num_threads",
    "plot",
    "search",
    "set_num_threads",
    "svm",
]
