"""A fitted :class:`~gridmatch.svm.SVC` as a safetensors file: arrays plus a JSON config.

The same bytes serve :meth:`SVC.save` / :meth:`SVC.load` and pickling. Nothing is
pickled and nothing is executed on loading; every array and the config are checked
before a model is rebuilt, so a malformed file raises :class:`~gridmatch.DataError`.
"""

from __future__ import annotations

import json
import numbers
import os
from typing import Any

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]

from .. import _core
from .._base.exceptions import DataError
from .._base.validate import check_fitted
from ._checks import hard_margin
from ._kernel import BUILTIN_KERNELS, kernel_from_spec, kernel_spec, storable
from ._sparse import csr_parts
from ._spec import svm_spec

FORMAT = "gridmatch.svm.SVC"
VERSION = 1
#: Saved arrays: name -> (dtype, ndim).
ARRAYS = {
    "support": ("i32", 1),
    "support_vectors": ("f64", 2),
    "n_support": ("i32", 1),
    "dual_coef": ("f64", 2),
    "intercept": ("f64", 1),
    "class_weight": ("f64", 1),
    "n_iter": ("i32", 1),
}
#: Saved array -> estimator attribute.
ATTRS = {
    "support": "support_",
    "support_vectors": "support_vectors_",
    "n_support": "_n_support",
    "dual_coef": "dual_coef_",
    "intercept": "intercept_",
    "class_weight": "class_weight_",
    "n_iter": "n_iter_",
}
#: Saved only for a model with a probability model (files without them load with
#: empty ``probA_`` / ``probB_``, as written before probabilities existed).
OPTIONAL_ARRAYS = {"prob_a": ("f64", 1), "prob_b": ("f64", 1)}
OPTIONAL_ATTRS = {"prob_a": "_probA", "prob_b": "_probB"}
#: A model fitted on sparse input keeps its support vectors as these CSR arrays (and
#: ``support_vectors`` is empty); files without them hold dense support vectors.
SPARSE_ARRAYS = {"sv_data": ("f64", 1), "sv_indices": ("i64", 1), "sv_indptr": ("i64", 1)}
_NP_DTYPES = {"f64": "<f8", "f32": "<f4", "i64": "<i8", "i32": "<i4"}

Arrays = list[tuple[str, str, list[int], bytes]]


def storable_random_state(random_state: Any) -> bool:
    """Whether ``random_state`` fits in the JSON config (None or an integer)."""
    return random_state is None or (
        isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)
    )


def picklable_as_file(est: Any) -> bool:
    """Whether pickling ``est`` can use the file's bytes (fitted, storable parameters)."""
    return (
        hasattr(est, "support_")
        and storable(est.kernel)
        and storable_random_state(getattr(est, "random_state", None))
    )


def to_arrays(est: Any) -> tuple[Arrays, dict[str, str]]:
    """The fitted model as named arrays and the safetensors metadata (its JSON config).

    Parameters
    ----------
    est : SVC
        A fitted estimator.

    Returns
    -------
    arrays : list of (name, dtype, shape, bytes)
    metadata : dict
        ``{"gridmatch": config JSON}``.

    Raises
    ------
    NotFittedError
        If ``est`` is not fitted.
    TypeError
        If the kernel is a Python callable or the classes cannot be stored.
    """
    check_fitted(est)
    spec = kernel_spec(est.kernel)
    classes = np.asarray(est.classes_)
    if classes.dtype.kind not in "biufU":
        raise TypeError(
            f"classes of dtype {classes.dtype} cannot be saved; use integer, float, bool "
            "or string labels"
        )
    params = est.get_params(deep=False)
    params.pop("kernel")
    if not storable_random_state(params["random_state"]):
        # A generator object has no JSON form; the fitted model does not need it.
        params["random_state"] = None
    elif params["random_state"] is not None:
        params["random_state"] = int(params["random_state"])
    if hard_margin(params["C"]):  # standard JSON has no infinity: C=inf as "inf"
        params["C"] = "inf"
    cw = params["class_weight"]
    if isinstance(cw, dict):
        params["class_weight"] = [[np.asarray(k).tolist(), float(v)] for k, v in cw.items()]
    config = {
        "format": FORMAT,
        "version": VERSION,
        "gridmatch_version": _core.__version__,
        "params": params,
        "kernel": spec,
        "classes": classes.tolist(),
        "classes_dtype": classes.dtype.str,
        "shape_fit": [int(v) for v in est.shape_fit_],
        "fit_status": int(est.fit_status_),
        "n_features_in": int(est.n_features_in_),
        "feature_names_in": (
            np.asarray(est.feature_names_in_).tolist()
            if hasattr(est, "feature_names_in_")
            else None
        ),
        "gamma": float(est._gamma),
        "kernel_name": est._kernel_name,
        # the spec that crosses into Rust for prediction (SvmSpec)
        "spec": svm_spec(est),
    }
    names = dict(ARRAYS)
    if np.size(getattr(est, "_probA", ())) and np.size(getattr(est, "_probB", ())):
        names.update(OPTIONAL_ARRAYS)
    values = {name: getattr(est, attr) for name, attr in {**ATTRS, **OPTIONAL_ATTRS}.items()}
    if getattr(est, "_sparse", False):
        data, indices, indptr, _ = csr_parts(est.support_vectors_)
        values.update(support_vectors=np.empty((0, 0)), sv_data=data)
        values.update(sv_indices=indices, sv_indptr=indptr)
        names.update(SPARSE_ARRAYS)
        config["sparse"] = True
    arrays = []
    for name, (dtype, _) in names.items():
        a = np.ascontiguousarray(values[name], dtype=_NP_DTYPES[dtype])
        arrays.append((name, dtype, [int(d) for d in a.shape], a.tobytes()))
    return arrays, {"gridmatch": json.dumps(config)}


def _read_config(metadata: dict[str, str], bad: Any) -> dict[str, Any]:
    try:
        config = json.loads(metadata["gridmatch"])
    except KeyError:
        raise bad("not a saved gridmatch SVC (no 'gridmatch' metadata)") from None
    except ValueError as e:
        raise bad(f"the model config is not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise bad("not a saved gridmatch SVC (wrong 'format')")
    version = config.get("version")
    if version != VERSION:
        raise bad(
            f"format version {version!r} is not supported (this gridmatch reads version "
            f"{VERSION}); save the model again with this version"
        )
    return config


def _read_arrays(arrays: Arrays, bad: Any) -> dict[str, np.ndarray]:
    got = {name: (dtype, shape, data) for name, dtype, shape, data in arrays}
    missing = sorted(set(ARRAYS) - set(got))
    expected = dict(ARRAYS)
    for group in (OPTIONAL_ARRAYS, SPARSE_ARRAYS):  # each all or none
        present = set(group) & set(got)
        if present and present != set(group):
            missing += sorted(set(group) - present)
        expected.update({k: v for k, v in group.items() if k in present})
    extra = sorted(set(got) - set(ARRAYS) - set(OPTIONAL_ARRAYS) - set(SPARSE_ARRAYS))
    if missing or extra:
        raise bad(f"wrong arrays (missing {missing}, unexpected {extra})")
    values = {}
    for name, (dtype, ndim) in expected.items():
        d, shape, data = got[name]
        if d != dtype or len(shape) != ndim:
            raise bad(f"array {name!r} is {d} {len(shape)}-D, expected {dtype} {ndim}-D")
        values[name] = np.frombuffer(data, dtype=_NP_DTYPES[dtype]).reshape(shape).copy()
    for name in OPTIONAL_ARRAYS:
        values.setdefault(name, np.empty(0))
    return values


def from_arrays(cls: type, arrays: Arrays, metadata: dict[str, str], where: str) -> Any:
    """Rebuild a fitted estimator from :func:`to_arrays` output.

    Parameters
    ----------
    cls : type
        :class:`SVC` (or a subclass).
    arrays : list of (name, dtype, shape, bytes)
        The saved arrays.
    metadata : dict
        The safetensors metadata.
    where : str
        The file (or ``"pickled SVC"``), for messages.

    Returns
    -------
    SVC
        The fitted estimator.

    Raises
    ------
    DataError
        If anything is missing, malformed or inconsistent.
    """

    def bad(msg: str) -> DataError:
        return DataError(f"{where}: {msg}")

    config = _read_config(metadata, bad)
    values = _read_arrays(arrays, bad)
    try:
        params = dict(config["params"])
        if params.get("C") == "inf":
            params["C"] = float("inf")
        spec = config["kernel"]
        kernel = kernel_from_spec(spec)
        if isinstance(params.get("class_weight"), list):
            params["class_weight"] = {
                (tuple(k) if isinstance(k, list) else k): float(v)
                for k, v in params["class_weight"]
            }
        est = cls(kernel=kernel, **params)
        est._check_params()
        classes = np.array(config["classes"], dtype=np.dtype(config["classes_dtype"]))
        shape_fit = tuple(int(v) for v in config["shape_fit"])
        fit_status = int(config["fit_status"])
        n_features = int(config["n_features_in"])
        gamma = float(config["gamma"])
        kernel_name = str(config["kernel_name"])
        names = config.get("feature_names_in")
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"invalid model config ({type(e).__name__}: {e})") from None
    n_classes, n_sv = len(classes), len(values["support"])
    sparse = bool(config.get("sparse", False))
    if sparse != ("sv_data" in values):
        raise bad("the sparse support vector arrays do not match the config")
    if sparse:
        values["support_vectors"] = _sparse_support_vectors(values, n_sv, n_features, bad)
    sv, dual = values["support_vectors"], values["dual_coef"]
    checks = [
        (n_classes >= 2, "fewer than 2 classes"),
        (values["n_support"].shape == (n_classes,), "n_support does not match the classes"),
        (int(values["n_support"].sum()) == n_sv, "n_support does not add up to the support"),
        (bool((values["n_support"] >= 0).all()), "negative n_support"),
        (dual.shape == (n_classes - 1, n_sv), "dual_coef has the wrong shape"),
        (
            values["intercept"].shape == (n_classes * (n_classes - 1) // 2,),
            "intercept has the wrong shape",
        ),
        (values["class_weight"].shape == (n_classes,), "class_weight has the wrong shape"),
        (values["n_iter"].shape == values["intercept"].shape, "n_iter has the wrong shape"),
        (
            all(values[k].shape in ((0,), values["intercept"].shape) for k in OPTIONAL_ARRAYS),
            "prob_a / prob_b have the wrong shape",
        ),
        (len(shape_fit) == 2 and shape_fit[1] == n_features, "inconsistent shape_fit"),
        (kernel_name in BUILTIN_KERNELS, f"unknown kernel_name {kernel_name!r}"),
        (np.isfinite(gamma) and gamma >= 0, "invalid gamma"),
        (
            bool(((values["support"] >= 0) & (values["support"] < shape_fit[0])).all())
            if n_sv and len(shape_fit) == 2
            else True,
            "support indices out of range",
        ),
        (
            sv.shape
            == (
                (0, 0)
                if kernel_name == "precomputed" and spec["type"] == "builtin"
                else (n_sv, n_features)
            ),
            "support_vectors has the wrong shape",
        ),
    ]
    for ok, msg in checks:
        if not ok:
            raise bad(msg)
    for name in ("dual_coef", "intercept", "class_weight", "prob_a", "prob_b"):
        if not np.isfinite(values[name]).all():
            raise bad(f"{name} holds NaN or infinite values")
    if not np.isfinite(sv.data if sparse else sv).all():
        raise bad("support_vectors holds NaN or infinite values")
    for name, attr in {**ATTRS, **OPTIONAL_ATTRS}.items():
        setattr(est, attr, values[name])
    est.classes_ = classes
    est.shape_fit_ = shape_fit
    est.fit_status_ = fit_status
    est.n_features_in_ = n_features
    if names is not None:
        est.feature_names_in_ = np.asarray(names, dtype=object)
    est._gamma = gamma
    est._kernel_name = kernel_name
    est._sparse = sparse
    return est


def _sparse_support_vectors(values: dict, n_sv: int, n_features: int, bad: Any) -> Any:
    """The saved CSR arrays as a checked ``(n_sv, n_features)`` CSR matrix."""
    data, indices, indptr = values.pop("sv_data"), values.pop("sv_indices"), values.pop("sv_indptr")
    shape = (n_sv, n_features)
    try:
        sv = sp.csr_matrix((data, indices, indptr), shape=shape)
        sv.check_format(full_check=True)
    except ValueError as e:
        raise bad(f"malformed sparse support vectors ({e})") from None
    return sv


def save(est: Any, path: str | os.PathLike) -> str:
    """Write ``est`` to ``path`` atomically (see :meth:`SVC.save`); the path written."""
    arrays, meta = to_arrays(est)
    path = os.fspath(path)
    _core.store_save(path, arrays, meta)
    return path


def load(cls: type, path: str | os.PathLike) -> Any:
    """Read a model written by :func:`save` (see :meth:`SVC.load`)."""
    path = os.fspath(path)
    arrays, meta = _core.store_load(path)
    return from_arrays(cls, arrays, meta, path)


def dumps(est: Any) -> bytes:
    """The bytes :func:`save` would write (pickling uses them)."""
    arrays, meta = to_arrays(est)
    return bytes(_core.store_dumps(arrays, meta))


def loads(cls: type, data: bytes) -> Any:
    """The estimator :func:`dumps` wrote."""
    arrays, meta = _core.store_loads(data)
    return from_arrays(cls, arrays, meta, "pickled SVC")
