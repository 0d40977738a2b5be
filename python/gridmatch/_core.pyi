# Type stubs for the Rust extension module gridmatch._core.
# Kept in step with src/python/ by tests/test_stub.py.

from collections.abc import Callable
from typing import Any, overload

import numpy as np
import numpy.typing as npt

__version__: str
#: The names of the GSN losses (the core's spec names).
LOSS_NAMES: list[str]
#: The names of the GSN's negative-selection rules (the miners' spec names).
MINER_NAMES: list[str]
#: The names of the SVM's kernels (an expression kernel is given by its text).
KERNEL_NAMES: list[str]
#: The names of the GSN's built-in backbones.
BACKBONE_NAMES: list[str]
#: The names of the GSN's precisions ("fp32", "bf16", "fp16").
PRECISION_NAMES: list[str]
#: The names of the search controllers.
CONTROLLER_NAMES: list[str]
#: The names of the retrieval metrics.
METRIC_NAMES: list[str]

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
def augment_images(
    x: npt.NDArray[np.float32], strength: float, seed: int, stream: int = 0
) -> npt.NDArray[np.float32]: ...
@overload
def _loss_and_grad(loss: str, a: Any, b: Any, proxies: None = None) -> tuple[float, Any]: ...
@overload
def _loss_and_grad(loss: str, a: Any, b: Any, proxies: Any) -> tuple[float, Any, Any]: ...
def _arcface_proxies(num_classes: int, dim: int, seed: int) -> Any: ...

class CpuCacheWindow:
    def __init__(self) -> None: ...
    def __enter__(self) -> CpuCacheWindow: ...
    def __exit__(self, *args: object) -> bool: ...

def cpu_cache_stats() -> dict[str, int]: ...

class GsnModel:
    def __init__(
        self, spec: str, device: str, script: tuple[str, int, int] | None = None
    ) -> None: ...
    @property
    def device(self) -> str: ...
    @property
    def input_normalization(self) -> tuple[list[float], list[float]]: ...
    @property
    def parameter_count(self) -> int: ...
    @property
    def precision(self) -> str: ...
    @precision.setter
    def precision(self, name: str) -> None: ...
    def fit(
        self,
        train: tuple[
            npt.NDArray[np.float32] | npt.NDArray[np.uint8] | tuple[list[str], str],
            npt.NDArray[np.int64],
            npt.NDArray[np.int64] | None,
        ],
        run: str,
        val: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]] | None = None,
        callback: Callable[[int, int | None, dict[str, float]], Any] | None = None,
        parallel: tuple[int, int, Callable[[str, list[Any]], Any]] | None = None,
    ) -> tuple[list[list[tuple[str, float]]], bool, list[tuple[int, str]]]: ...
    def embed(
        self, x: npt.NDArray[np.float32], batch_size: int = 256
    ) -> npt.NDArray[np.float32]: ...
    def features(
        self, x: npt.NDArray[np.float32], batch_size: int = 256
    ) -> npt.NDArray[np.float32]: ...
    def save(self, dir: str, config_json: str) -> None: ...
    def load_weights(self, path: str) -> None: ...
    def load_backbone(self, path: str) -> int: ...
    def load_backbone_tensors(self, tensors: dict[str, Any]) -> int: ...

def knn(queries: Any, gallery: Any, k: int, spec: str = "{}") -> tuple[Any, Any]: ...
def evaluate(
    queries: Any,
    ids_q: npt.NDArray[np.int64],
    gallery: Any,
    ids_g: npt.NDArray[np.int64],
    ks: list[int],
    spec: str = "{}",
) -> list[tuple[str, float]]: ...

# --- expression language (src/python/expr.rs) ---
class Expr:
    def __init__(self, text: str) -> None: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    @property
    def value_type(self) -> str: ...
    @property
    def uses_y(self) -> bool: ...
    @property
    def size(self) -> int: ...
    def gram(
        self, X: Any, Y: Any | None = None, check_finite: bool = True
    ) -> npt.NDArray[np.float64]: ...
    def apply(self, X: Any, check_finite: bool = True) -> npt.NDArray[np.float64]: ...

def parse_expr(text: str) -> Expr: ...
def expr_functions() -> list[tuple[str, int]]: ...

# --- search (src/python/search.rs) ---
SpaceSpec = tuple[str, list[str], list[str], list[str], int, str]

def builtin_space(name: str) -> SpaceSpec: ...
def space_decisions(space: SpaceSpec) -> list[int]: ...
def space_build(space: SpaceSpec, actions: list[int]) -> Expr: ...
def space_sample(space: SpaceSpec, n: int, seed: int) -> list[Expr]: ...
def transform_search(
    spec: str,
    E_query: Any,
    ids_query: Any,
    E_gallery: Any,
    ids_gallery: Any,
    callback: Callable[[int, int | None, dict[str, float]], Any] | None = None,
) -> dict[str, Any]: ...

#: A canonical CSR matrix as the SVM bindings take it: (data, indices, indptr, n_columns).
CsrArrays = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64], int]

def svm_fit(
    x: npt.NDArray[Any] | CsrArrays,
    y: npt.NDArray[np.int64],
    sample_c: npt.NDArray[np.float64],
    spec: str,
    callback: Callable[[int, int | None, dict[str, float]], Any] | None = None,
    shift: npt.NDArray[np.float64] | None = None,
) -> dict[str, Any]: ...
def svm_decision(
    x: npt.NDArray[Any] | CsrArrays,
    sv: npt.NDArray[Any] | CsrArrays | None,
    model: dict[str, npt.NDArray[Any]],
    spec: str,
    shift: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]: ...
def svm_proba(
    dec: npt.NDArray[np.float64],
    prob_a: npt.NDArray[np.float64],
    prob_b: npt.NDArray[np.float64],
    n_classes: int,
    n_jobs: int = 0,
) -> npt.NDArray[np.float64]: ...
def svm_sigmoid_train(
    dec: npt.NDArray[np.float64], positive: npt.NDArray[np.bool_]
) -> tuple[float, float]: ...
def kernel_search(
    spec: str,
    X_train: Any,
    y_train: Any,
    X_val: Any,
    y_val: Any,
    callback: Callable[[int, int | None, dict[str, float]], Any] | None = None,
) -> dict[str, Any]: ...

# --- search driver and per-candidate rewards (src/python/search_driver.rs, search_reward.rs) ---
ScoredCandidate = tuple[float | None, str | None, float]

class SearchDriver:
    """A search whose candidates are evaluated elsewhere (the controller's sample / update).

    Parameters
    ----------
    spec : str
        The search spec (JSON: what ``SearchResult.settings`` holds).
    """

    def __init__(self, spec: str) -> None: ...
    def propose(self) -> list[str] | None:
        """Sample the next batch: canonical texts of its new distinct candidates (None:
        the budget is spent)."""
    def record(self, results: list[ScoredCandidate]) -> dict[str, Any]:
        """Finish the step with one ``(reward, error, seconds)`` per proposed text; the
        step's history record."""
    def outcome(self, interrupted: bool) -> dict[str, Any]:
        """The result so far, as ``kernel_search`` returns it."""
    @property
    def total_steps(self) -> int: ...
    @property
    def steps_done(self) -> int: ...

def kernel_reward(
    spec: str,
    text: str,
    train: tuple[Any, Any],
    val: tuple[Any, Any],
    threads: int = 1,
    timeout: float | None = None,
) -> ScoredCandidate: ...
def transform_reward(
    spec: str,
    text: str,
    query: tuple[Any, Any],
    gallery: tuple[Any, Any],
    threads: int = 1,
    timeout: float | None = None,
) -> ScoredCandidate: ...

# --- model files (src/python/store.rs) ---
StoreArray = tuple[str, str, list[int], bytes]

def store_dumps(arrays: list[StoreArray], metadata: dict[str, str]) -> bytes: ...
def store_loads(data: bytes) -> tuple[list[StoreArray], dict[str, str]]: ...
def store_save(path: str, arrays: list[StoreArray], metadata: dict[str, str]) -> None: ...
def store_load(path: str) -> tuple[list[StoreArray], dict[str, str]]: ...

# --- image pipeline (src/python/images.rs) ---
class ImagePipeline:
    def __init__(self, paths: list[str], config: str) -> None: ...
    def epoch(self, epoch: int) -> ImageEpoch: ...
    def plan(self, epoch: int, index: int, width: int, height: int) -> dict[str, Any]: ...
    def profile(self) -> list[tuple[str, float]]: ...

class ImageEpoch:
    def __len__(self) -> int: ...
    def __iter__(self) -> ImageEpoch: ...
    def __next__(
        self,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], list[tuple[int, str]]]: ...
    def close(self) -> None: ...

def decode_image(path: str, max_pixels: int) -> npt.NDArray[np.uint8]: ...
