# Type stubs for the Rust extension module gridmatch._core.
# Kept in step with src/python/ by tests/test_stub.py.

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str

def read_idx_dataset(
    images: str, labels: str
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> tuple[int, int]: ...
def _busy(
    steps: int,
    step_ms: int,
    callback: Callable[[int, int | None, dict[str, float]], Any] | None = None,
    strict: bool = False,
) -> tuple[int, bool]: ...
def _tensor_scale(obj: Any, factor: float = 1.0, as_numpy: bool = False) -> Any: ...
def _raise(kind: str, message: str) -> None: ...
def knn(
    queries: Any,
    gallery: Any,
    k: int,
    metric: str = "cosine",
    device: str = "cpu",
    block_size: tuple[int, int] | None = None,
    exclude_self: bool = False,
    backend: str = "auto",
) -> tuple[Any, Any]: ...
def evaluate(
    queries: Any,
    ids_q: npt.NDArray[np.int64],
    gallery: Any,
    ids_g: npt.NDArray[np.int64],
    ks: list[int],
    metric: str = "cosine",
    exclude_self: bool = False,
    device: str = "cpu",
    block_size: tuple[int, int] | None = None,
    backend: str = "auto",
) -> list[tuple[str, float]]: ...
def svm_fit(
    x: npt.NDArray[Any],
    y: npt.NDArray[np.int64],
    n_classes: int,
    sample_c: npt.NDArray[np.float64],
    kernel: str,
    gamma: float,
    coef0: float,
    degree: int,
    tol: float,
    cache_size: float,
    max_iter: int,
    n_jobs: int = 0,
    callback: Callable[[int, int | None, dict[str, float]], Any] | None = None,
) -> dict[str, Any]: ...
def svm_decision(
    x: npt.NDArray[Any],
    sv: npt.NDArray[np.float32] | None,
    support: npt.NDArray[np.int64],
    n_support: npt.NDArray[np.int64],
    dual_coef: npt.NDArray[np.float64],
    rho: npt.NDArray[np.float64],
    kernel: str,
    gamma: float,
    coef0: float,
    degree: int,
    n_jobs: int = 0,
) -> npt.NDArray[np.float64]: ...
