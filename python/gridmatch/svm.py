"""Kernel support vector classification with a Rust core.

:class:`SVC` is a drop-in replacement for :class:`sklearn.svm.SVC` (C-SVC, one-vs-one
multiclass): the same parameters, the same fitted attributes (same layout and signs),
the same predictions. The solver is libsvm's algorithm (SMO with second-order
working-set selection, shrinking, a kernel-row cache) in Rust: kernel rows are computed
with SIMD in single precision, the one-vs-one problems run in parallel, and prediction
is a matrix product against the support vectors.

Examples
--------
>>> import numpy as np
>>> import gridmatch as gm
>>> X = np.array([[0.0, 0.0], [0.0, 1.0], [3.0, 3.0], [3.0, 4.0]])
>>> clf = gm.svm.SVC(kernel="linear").fit(X, [0, 0, 1, 1])
>>> clf.predict([[0.5, 0.5], [3.5, 3.5]]).tolist()
[0, 1]
"""

from __future__ import annotations

import json
import numbers
import os
import warnings
from typing import Any, Callable

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError as _SkNotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from . import _core
from ._validate import host_array
from .exceptions import ConvergenceWarning, DataError, InterruptedWarning, NotFittedError
from .expr import Expr as _Expr

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def _validate_data(estimator, X="no_validation", y="no_validation", **kw):
        return estimator._validate_data(X, y, **kw)


__all__ = ["SVC"]

BUILTIN_KERNELS = ("linear", "poly", "rbf", "sigmoid", "precomputed")


def _resolve_kernel(kernel: Any) -> str | Callable[[np.ndarray, np.ndarray], Any]:
    """Map the ``kernel`` parameter to a built-in kernel name or a Gram callable.

    Expression kernels (``gridmatch.expr``): an ``Expr`` object or an expression string
    (``"norm1(min(sin(x * y), sin(dot(x, y))))"``) becomes its ``gram`` method, evaluated
    in Rust.

    Parameters
    ----------
    kernel : str or callable or object
        The ``kernel`` parameter of :class:`SVC`.

    Returns
    -------
    str or callable
        A built-in kernel name, or a callable computing Gram matrices.

    Raises
    ------
    ValueError
        If ``kernel`` is neither a built-in name, a callable, nor a supported
        expression.
    """
    if isinstance(kernel, str) and kernel in BUILTIN_KERNELS:
        return kernel
    if callable(kernel):
        return kernel
    from .exceptions import ExpressionError
    from .expr import Expr, parse

    if isinstance(kernel, str):
        try:
            kernel = parse(kernel)
        except ExpressionError as e:
            raise ExpressionError(
                f"kernel={kernel!r} is neither one of {BUILTIN_KERNELS} nor a valid kernel "
                f"expression: {e}"
            ) from None
    if isinstance(kernel, Expr) and kernel.value_type != "scalar":
        raise ExpressionError(
            f"kernel expression {str(kernel)!r} is vector-valued; a kernel must reduce to a "
            "scalar, e.g. norm1(...)"
        )
    gram = getattr(kernel, "gram", None)
    if callable(gram):  # an object computing Gram matrices (e.g. a parsed expression)
        return gram
    raise ValueError(
        f"kernel must be one of {BUILTIN_KERNELS}, a callable or an expression, "
        f"got {type(kernel).__name__}"
    )


def _ovr_decision_function(predictions, confidences, n_classes):
    """One-vs-rest scores from one-vs-one votes and confidences (scikit-learn's rule).

    Votes plus the summed confidences squashed into (-1/3, 1/3), so that confidences
    only break ties between equal vote counts.
    """
    n = predictions.shape[0]
    votes = np.zeros((n, n_classes))
    conf = np.zeros((n, n_classes))
    k = 0
    for i in range(n_classes):
        for j in range(i + 1, n_classes):
            conf[:, i] -= confidences[:, k]
            conf[:, j] += confidences[:, k]
            votes[predictions[:, k] == 0, i] += 1
            votes[predictions[:, k] == 1, j] += 1
            k += 1
    return votes + conf / (3 * (np.abs(conf) + 1))


_SVC_FORMAT = "gridmatch.svm.SVC"
_SVC_VERSION = 1
#: Saved arrays: name -> (dtype, ndim).
_SVC_ARRAYS = {
    "support": ("i32", 1),
    "support_vectors": ("f64", 2),
    "n_support": ("i32", 1),
    "dual_coef": ("f64", 2),
    "intercept": ("f64", 1),
    "class_weight": ("f64", 1),
    "n_iter": ("i32", 1),
}
#: Saved array -> estimator attribute.
_SVC_ATTRS = {
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
_SVC_OPTIONAL_ARRAYS = {"prob_a": ("f64", 1), "prob_b": ("f64", 1)}
_SVC_OPTIONAL_ATTRS = {"prob_a": "_probA", "prob_b": "_probB"}
_NP_DTYPES = {"f64": "<f8", "f32": "<f4", "i64": "<i8", "i32": "<i4"}


def _as_expression(kernel):
    from .expr import parse

    return parse(kernel)


def _storable_kernel(kernel) -> bool:
    from .expr import Expr

    return isinstance(kernel, (str, Expr))


def _storable_random_state(random_state) -> bool:
    """Whether ``random_state`` fits in the JSON config (None or an integer)."""
    return random_state is None or (
        isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)
    )


def _check_fitted(estimator) -> None:
    """scikit-learn's check, raising :class:`gridmatch.NotFittedError` (a subclass)."""
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise
    except _SkNotFittedError as e:
        raise NotFittedError(str(e)) from None


def _n_jobs(n_jobs: int | None) -> int:
    if n_jobs is None:
        return 0
    if not isinstance(n_jobs, numbers.Integral) or n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs must be None, -1 or a positive integer, got {n_jobs!r}")
    return (os.cpu_count() or 1) if n_jobs == -1 else int(n_jobs)


class SVC(ClassifierMixin, BaseEstimator):
    """C-support vector classifier (libsvm's algorithm, Rust core).

    Same model as :class:`sklearn.svm.SVC`: one-vs-one multiclass, ``dual_coef_``,
    ``intercept_`` and ``support_`` with scikit-learn's layout and signs.

    Parameters
    ----------
    C : float, default=1.0
        Regularisation: the box bound of the dual coefficients. Must be > 0.
    kernel : {"linear", "poly", "rbf", "sigmoid", "precomputed"} or callable, default="rbf"
        Kernel. A callable ``k(X, Y)`` must return the Gram matrix
        ``(len(X), len(Y))``. Expression kernels of ``gridmatch.expr`` plug in through
        the same route once available.
    degree : int, default=3
        Degree of the ``"poly"`` kernel.
    gamma : {"scale", "auto"} or float, default="scale"
        Kernel coefficient of ``"rbf"``, ``"poly"`` and ``"sigmoid"``: ``"scale"`` is
        ``1 / (n_features * X.var())``, ``"auto"`` is ``1 / n_features``. Must be > 0.
    coef0 : float, default=0.0
        Constant term of ``"poly"`` and ``"sigmoid"``.
    tol : float, default=1e-3
        Stopping tolerance (maximal KKT violation).
    cache_size : float, default=200
        Kernel cache in MB, for all binary problems together (libsvm: per problem).
        When the within-class kernel blocks fit, they are computed once (a matrix
        product) and shared by the one-vs-one problems; otherwise kernel rows are
        computed on demand into an LRU cache of this size.
    class_weight : dict or "balanced", default=None
        Multiply ``C`` of class ``k`` by ``class_weight[k]``; ``"balanced"`` uses
        ``n_samples / (n_classes * count_k)``.
    max_iter : int, default=-1
        Iteration limit per binary problem; ``-1`` means none (libsvm's safety cap of
        ``max(10**7, 100 n)`` still applies). Hitting it warns
        :class:`gridmatch.ConvergenceWarning`.
    decision_function_shape : {"ovr", "ovo"}, default="ovr"
        Shape of :meth:`decision_function` for more than two classes.
    n_jobs : int, default=None
        Threads for this estimator; ``None`` uses gridmatch's pool
        (:func:`gridmatch.set_num_threads`), ``-1`` all CPUs.
    probability : bool, default=False
        Also fit libsvm's probability model, for :meth:`predict_proba`: for each
        one-vs-one pair, Platt scaling of decision values from an internal 5-fold
        cross-validation (so ``fit`` does about 5 more binary fits per pair), combined
        at prediction by pairwise coupling. As in scikit-learn, :meth:`predict` still
        votes on the decision values, so it can disagree with the argmax of
        :meth:`predict_proba`.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffle of the probability model's cross-validation (ignored when
        ``probability=False``). The seed is drawn as scikit-learn draws it and the folds
        are libsvm's, so the same ``random_state`` gives scikit-learn's folds.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    class_weight_ : ndarray of shape (n_classes,)
        Multipliers of ``C`` per class.
    support_ : ndarray of shape (n_SV,)
        Indices of the support vectors in the training set, grouped by class.
    support_vectors_ : ndarray of shape (n_SV, n_features)
        Support vectors (empty for ``kernel="precomputed"``).
    n_support_ : ndarray of shape (n_classes,)
        Number of support vectors of each class.
    dual_coef_ : ndarray of shape (n_classes - 1, n_SV)
        Dual coefficients ``y_i alpha_i`` (libsvm's one-vs-one layout).
    intercept_ : ndarray of shape (n_classes * (n_classes - 1) / 2,)
        Constants of the decision functions.
    n_features_in_ : int
        Number of features seen during fit.
    fit_status_ : int
        0 if every binary problem converged, 1 if one stopped at ``max_iter``.
    n_iter_ : ndarray of shape (n_classes * (n_classes - 1) / 2,)
        SMO iterations of each binary problem.
    shape_fit_ : tuple
        Shape of the training ``X``.
    probA_, probB_ : ndarray of shape (n_classes * (n_classes - 1) / 2,)
        Platt sigmoid parameters of each pair, ``P(first class of the pair) =
        1 / (1 + exp(probA_ * d + probB_))`` for the pair's libsvm decision value ``d``
        (empty when fitted with ``probability=False``).

    See Also
    --------
    sklearn.svm.SVC : the reference implementation (libsvm).
    """

    def __init__(
        self,
        C=1.0,
        kernel="rbf",
        degree=3,
        gamma="scale",
        coef0=0.0,
        tol=1e-3,
        cache_size=200,
        class_weight=None,
        max_iter=-1,
        decision_function_shape="ovr",
        n_jobs=None,
        probability=False,
        random_state=None,
    ):
        self.C = C
        self.kernel = kernel
        self.degree = degree
        self.gamma = gamma
        self.coef0 = coef0
        self.tol = tol
        self.cache_size = cache_size
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.decision_function_shape = decision_function_shape
        self.n_jobs = n_jobs
        self.probability = probability
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = isinstance(self.kernel, str) and self.kernel == "precomputed"
        return tags

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        def positive(name, v):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v > 0:
                raise ValueError(f"{name} must be a float > 0, got {v!r}")
            if not np.isfinite(v):
                raise ValueError(f"{name} must be finite, got {v!r}")

        positive("C", self.C)
        positive("tol", self.tol)
        positive("cache_size", self.cache_size)
        if isinstance(self.degree, bool) or not isinstance(self.degree, numbers.Integral):
            raise ValueError(f"degree must be an integer >= 0, got {self.degree!r}")
        if self.degree < 0:
            raise ValueError(f"degree must be an integer >= 0, got {self.degree!r}")
        if (
            isinstance(self.coef0, bool)
            or not isinstance(self.coef0, numbers.Real)
            or not np.isfinite(self.coef0)
        ):
            raise ValueError(f"coef0 must be a finite float, got {self.coef0!r}")
        if isinstance(self.gamma, str):
            if self.gamma not in ("scale", "auto"):
                raise ValueError(
                    f"gamma must be 'scale', 'auto' or a float > 0, got {self.gamma!r}"
                )
        else:
            positive("gamma", self.gamma)
        if (
            isinstance(self.max_iter, bool)
            or not isinstance(self.max_iter, numbers.Integral)
            or (self.max_iter < 1 and self.max_iter != -1)
        ):
            raise ValueError(f"max_iter must be -1 or a positive integer, got {self.max_iter!r}")
        if self.decision_function_shape not in ("ovr", "ovo"):
            raise ValueError(
                "decision_function_shape must be 'ovr' or 'ovo', got "
                f"{self.decision_function_shape!r}"
            )
        if not (
            self.class_weight is None
            or self.class_weight == "balanced"
            or isinstance(self.class_weight, dict)
        ):
            raise ValueError(
                f"class_weight must be None, 'balanced' or a dict, got {self.class_weight!r}"
            )
        _n_jobs(self.n_jobs)
        if not isinstance(self.probability, (bool, np.bool_)):
            raise ValueError(f"probability must be a bool, got {self.probability!r}")

    # --------------------------------------------------------------------- fit
    def fit(self, X, y, sample_weight=None):
        """Fit the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, n_samples)
            Training vectors; the Gram matrix for ``kernel="precomputed"``.
        y : array-like of shape (n_samples,)
            Class labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample multipliers of ``C``; samples with weight <= 0 are left out.

        Returns
        -------
        self : SVC
            The fitted estimator.

        Raises
        ------
        ValueError
            On invalid parameters, NaN/inf or badly shaped inputs, fewer than two
            classes, or a non-square precomputed matrix.
        """
        self._check_params()
        # Drawn as scikit-learn draws it (always, also without a probability model).
        seed = int(check_random_state(self.random_state).randint(np.iinfo("i").max))
        kernel = _resolve_kernel(self.kernel)
        X, y = host_array(X, "X"), host_array(y, "y")
        X, y = _validate_data(self, X, y, dtype=np.float64, order="C", accept_sparse=False)
        y_ = column_or_1d(y, warn=True)
        check_classification_targets(y_)
        classes, y_enc = np.unique(y_, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"The number of classes has to be greater than one; got {len(classes)} class"
            )
        self.class_weight_ = compute_class_weight(self.class_weight, classes=classes, y=y_)
        n = X.shape[0]
        if sample_weight is None:
            sw = np.ones(n)
        else:
            sw = np.asarray(host_array(sample_weight, "sample_weight"), dtype=np.float64)
            if sw.ndim == 0:
                sw = np.full(n, float(sw))
            if sw.shape != (n,):
                raise ValueError(
                    f"sample_weight and X have incompatible shapes: {sw.shape} vs {X.shape}"
                )
            if not np.isfinite(sw).all():
                raise ValueError("sample_weight contains NaN or infinity")
        sample_c = float(self.C) * self.class_weight_[y_enc] * sw
        if not (sample_c > 0).any():
            raise ValueError("Invalid input - all samples have zero or negative weights.")
        present = np.unique(y_enc[sample_c > 0])
        if len(present) < 2:
            raise ValueError(
                "Invalid input - all samples with positive weights belong to the same class."
            )
        if len(present) < len(classes):
            raise ValueError(
                "every class needs at least one sample with a positive weight (class "
                f"{classes[np.setdiff1d(np.arange(len(classes)), present)[0]]!r} has none)"
            )

        gamma = 0.0
        expr = None
        if callable(kernel) and isinstance(getattr(kernel, "__self__", None), _Expr):
            # An expression kernel: rows are evaluated in Rust on demand and kept in the
            # solver's row cache, so memory stays within cache_size (no n x n matrix).
            expr, data, kname = kernel.__self__, X, "expression"
        elif callable(kernel):
            gram = np.asarray(kernel(X, X), dtype=np.float64)
            if gram.shape != (n, n):
                raise ValueError(
                    f"the kernel callable returned shape {gram.shape}, expected {(n, n)}"
                )
            if not np.isfinite(gram).all():
                raise ValueError("the kernel callable returned NaN or infinity")
            data, kname = np.ascontiguousarray(gram), "precomputed"
        elif kernel == "precomputed":
            if X.shape[0] != X.shape[1]:
                raise ValueError(
                    "Precomputed matrix must be a square matrix."
                    f" Input is a {X.shape[0]}x{X.shape[1]} matrix."
                )
            data, kname = X, "precomputed"
        else:
            if isinstance(self.gamma, str):
                if self.gamma == "scale":
                    with np.errstate(over="ignore"):
                        var = X.var()
                    gamma = 1.0 / (X.shape[1] * var) if var != 0 else 1.0
                else:
                    gamma = 1.0 / X.shape[1]
            else:
                gamma = float(self.gamma)
            if X.size and np.abs(X).max() > np.finfo(np.float32).max:
                raise ValueError(
                    "X has values too large for single precision (kernels are computed in "
                    "float32); scale the data first"
                )
            data, kname = np.ascontiguousarray(X, dtype=np.float32), kernel
        self._gamma = gamma
        self._kernel_name = "precomputed" if kname == "expression" else kname

        out = _core.svm_fit(
            data,
            np.ascontiguousarray(y_enc, dtype=np.int64),
            len(classes),
            np.ascontiguousarray(sample_c),
            kname,
            gamma,
            float(self.coef0),
            int(self.degree),
            float(self.tol),
            float(self.cache_size),
            int(self.max_iter),
            _n_jobs(self.n_jobs),
            expr=expr,
            probability_seed=seed if self.probability else None,
        )
        finite = [np.isfinite(out[k]).all() for k in ("dual_coef", "rho", "prob_a", "prob_b")]
        if not all(finite):
            raise ValueError(
                "The dual coefficients or intercepts are not finite. The input data may "
                "contain large values and need to be preprocessed."
            )
        if out["interrupted"]:  # pragma: no cover - only on a stopping callback
            warnings.warn("SVC fit was interrupted", InterruptedWarning, stacklevel=2)
        self.classes_ = classes
        self.support_ = out["support"].astype(np.int32)
        self._n_support = out["n_support"].astype(np.int32)
        self.dual_coef_ = out["dual_coef"]
        self.intercept_ = -out["rho"]
        self.n_iter_ = out["iterations"].astype(np.int32)
        self._probA = np.asarray(out["prob_a"], dtype=np.float64)
        self._probB = np.asarray(out["prob_b"], dtype=np.float64)
        self.fit_status_ = 0 if out["converged"] else 1
        self.shape_fit_ = X.shape
        if kname == "precomputed" and not callable(kernel):
            self.support_vectors_ = np.empty((0, 0))
        else:
            self.support_vectors_ = X[self.support_]
        # scikit-learn flips the binary model so that positive scores mean classes_[1].
        if len(classes) == 2:
            self.intercept_ = -self.intercept_
            self.dual_coef_ = -self.dual_coef_
        if self.fit_status_ == 1:
            warnings.warn(
                f"Solver terminated early (max_iter={self.max_iter}).  Consider "
                "pre-processing your data with StandardScaler or MinMaxScaler.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    @property
    def n_support_(self):
        """Number of support vectors of each class, ndarray of shape (n_classes,)."""
        _check_fitted(self)
        return self._n_support

    @property
    def probA_(self):
        """Platt sigmoid slopes of the pairs, ndarray of shape (n_pairs,) (empty without
        a probability model)."""
        _check_fitted(self)
        return self._probA

    @property
    def probB_(self):
        """Platt sigmoid offsets of the pairs, ndarray of shape (n_pairs,) (empty without
        a probability model)."""
        _check_fitted(self)
        return self._probB

    # ------------------------------------------------------------- persistence
    def _to_arrays(self) -> tuple[list[tuple[str, str, list[int], bytes]], dict[str, str]]:
        """The fitted model as named arrays and a JSON config (see :meth:`save`)."""
        _check_fitted(self)
        from .expr import Expr

        kernel = self.kernel
        if isinstance(kernel, str) and kernel in BUILTIN_KERNELS:
            kernel_spec = {"type": "builtin", "name": kernel}
        elif isinstance(kernel, (str, Expr)):
            kernel_spec = {
                "type": "expression",
                "text": str(_as_expression(kernel)),
                # the parameter as given (an expression string stays that string)
                "param": kernel if isinstance(kernel, str) else None,
            }
        else:
            raise TypeError(
                f"an SVC with kernel={kernel!r} cannot be saved: a Python callable would need "
                "pickle; use a built-in kernel or a gridmatch.expr expression"
            )
        classes = np.asarray(self.classes_)
        if classes.dtype.kind not in "biufU":
            raise TypeError(
                f"classes of dtype {classes.dtype} cannot be saved; use integer, float, bool "
                "or string labels"
            )
        params = self.get_params(deep=False)
        params.pop("kernel")
        if not _storable_random_state(params["random_state"]):
            # A generator object has no JSON form; the fitted model does not need it.
            params["random_state"] = None
        elif params["random_state"] is not None:
            params["random_state"] = int(params["random_state"])
        cw = params["class_weight"]
        if isinstance(cw, dict):
            params["class_weight"] = [[np.asarray(k).tolist(), float(v)] for k, v in cw.items()]
        config = {
            "format": _SVC_FORMAT,
            "version": _SVC_VERSION,
            "gridmatch_version": _core.__version__,
            "params": params,
            "kernel": kernel_spec,
            "classes": classes.tolist(),
            "classes_dtype": classes.dtype.str,
            "shape_fit": [int(v) for v in self.shape_fit_],
            "fit_status": int(self.fit_status_),
            "n_features_in": int(self.n_features_in_),
            "feature_names_in": (
                np.asarray(self.feature_names_in_).tolist()
                if hasattr(self, "feature_names_in_")
                else None
            ),
            "gamma": float(self._gamma),
            "kernel_name": self._kernel_name,
        }
        arrays = []
        for name, (dtype, _) in _SVC_ARRAYS.items():
            a = np.ascontiguousarray(getattr(self, _SVC_ATTRS[name]), dtype=_NP_DTYPES[dtype])
            arrays.append((name, dtype, [int(d) for d in a.shape], a.tobytes()))
        if np.size(getattr(self, "_probA", ())) and np.size(getattr(self, "_probB", ())):
            for name, (dtype, _) in _SVC_OPTIONAL_ARRAYS.items():
                attr = _SVC_OPTIONAL_ATTRS[name]
                a = np.ascontiguousarray(getattr(self, attr), dtype=_NP_DTYPES[dtype])
                arrays.append((name, dtype, [int(d) for d in a.shape], a.tobytes()))
        return arrays, {"gridmatch": json.dumps(config)}

    @classmethod
    def _from_arrays(cls, arrays: list, metadata: dict[str, str], where: str) -> SVC:
        """Rebuild a fitted SVC from :meth:`_to_arrays` output; ``DataError`` if invalid."""

        def bad(msg: str) -> DataError:
            return DataError(f"{where}: {msg}")

        try:
            config = json.loads(metadata["gridmatch"])
        except KeyError:
            raise bad("not a saved gridmatch SVC (no 'gridmatch' metadata)") from None
        except ValueError as e:
            raise bad(f"the model config is not valid JSON ({e})") from None
        if not isinstance(config, dict) or config.get("format") != _SVC_FORMAT:
            raise bad("not a saved gridmatch SVC (wrong 'format')")
        version = config.get("version")
        if version != _SVC_VERSION:
            raise bad(
                f"format version {version!r} is not supported (this gridmatch reads version "
                f"{_SVC_VERSION}); save the model again with this version"
            )
        got = {name: (dtype, shape, data) for name, dtype, shape, data in arrays}
        optional = set(_SVC_OPTIONAL_ARRAYS) & set(got)
        missing = sorted(set(_SVC_ARRAYS) - set(got))
        if optional and optional != set(_SVC_OPTIONAL_ARRAYS):
            missing += sorted(set(_SVC_OPTIONAL_ARRAYS) - optional)
        extra = sorted(set(got) - set(_SVC_ARRAYS) - set(_SVC_OPTIONAL_ARRAYS))
        if missing or extra:
            raise bad(f"wrong arrays (missing {missing}, unexpected {extra})")
        values = {}
        expected = dict(_SVC_ARRAYS)
        expected.update({k: v for k, v in _SVC_OPTIONAL_ARRAYS.items() if k in optional})
        for name, (dtype, ndim) in expected.items():
            d, shape, data = got[name]
            if d != dtype or len(shape) != ndim:
                raise bad(f"array {name!r} is {d} {len(shape)}-D, expected {dtype} {ndim}-D")
            values[name] = np.frombuffer(data, dtype=_NP_DTYPES[dtype]).reshape(shape).copy()
        try:
            params = dict(config["params"])
            kernel_spec = config["kernel"]
            if kernel_spec["type"] == "builtin":
                kernel = str(kernel_spec["name"])
            elif kernel_spec["type"] == "expression":
                kernel = _as_expression(str(kernel_spec["text"]))
                param = kernel_spec.get("param")
                if param is not None:
                    if _as_expression(str(param)) != kernel:
                        raise ValueError("the kernel text and its canonical form differ")
                    kernel = str(param)
            else:
                raise ValueError(f"unknown kernel type {kernel_spec['type']!r}")
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
        for name in _SVC_OPTIONAL_ARRAYS:
            values.setdefault(name, np.empty(0))
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
                all(
                    values[k].shape in ((0,), values["intercept"].shape)
                    for k in _SVC_OPTIONAL_ARRAYS
                ),
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
                    if kernel_name == "precomputed" and kernel_spec["type"] == "builtin"
                    else (n_sv, n_features)
                ),
                "support_vectors has the wrong shape",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise bad(msg)
        for name in (
            "dual_coef",
            "intercept",
            "support_vectors",
            "class_weight",
            "prob_a",
            "prob_b",
        ):
            if not np.isfinite(values[name]).all():
                raise bad(f"{name} holds NaN or infinite values")
        for name, attr in {**_SVC_ATTRS, **_SVC_OPTIONAL_ATTRS}.items():
            setattr(est, attr, values[name])
        est.classes_ = classes
        est.shape_fit_ = shape_fit
        est.fit_status_ = fit_status
        est.n_features_in_ = n_features
        if names is not None:
            est.feature_names_in_ = np.asarray(names, dtype=object)
        est._gamma = gamma
        est._kernel_name = kernel_name
        return est

    def save(self, path: str | os.PathLike) -> str:
        """Save the fitted model to a file (safetensors arrays + JSON config).

        The file is a safetensors file: the arrays of the model plus, in its metadata, a
        JSON config (parameters, classes, kernel — an expression kernel as its canonical
        text) with a format version and a SHA-256 checksum of everything. Nothing is
        pickled and nothing is executed on loading. The write is atomic: the file is
        written to a temporary file in the same folder and renamed, so an error or a
        crash mid-way leaves any previous file at ``path`` intact. A probability model
        (``probA_``, ``probB_``) is saved with the model; a ``random_state`` given as a
        generator object is saved as ``None`` (JSON has no form for it, and the fitted
        model does not use it).

        Parameters
        ----------
        path : path-like
            Destination file (conventionally ``*.safetensors``).

        Returns
        -------
        str
            The path written.

        Raises
        ------
        NotFittedError
            If the model is not fitted.
        TypeError
            If the kernel is a Python callable (it cannot be stored without pickle).
        DataError
            If the file cannot be written.
        """
        arrays, meta = self._to_arrays()
        path = os.fspath(path)
        _core.store_save(path, arrays, meta)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SVC:
        """Load a model written by :meth:`save`.

        Parameters
        ----------
        path : path-like
            The file.

        Returns
        -------
        SVC
            The fitted estimator; it predicts exactly as the saved one.

        Raises
        ------
        DataError
            If the file is missing, truncated, modified (checksum mismatch), malformed
            (wrong arrays, shapes, dtypes or config) or of another format version.
        """
        path = os.fspath(path)
        arrays, meta = _core.store_load(path)
        return cls._from_arrays(arrays, meta, path)

    def __getstate__(self):
        # Pickling (joblib, multiprocessing, copy) uses the same safetensors bytes as
        # save() for a fitted model, so the pickle holds no model object graph and its
        # unpickling goes through load()'s validation. (Pickle files as such are never
        # safe to load from untrusted sources: use save()/load() for model files.)
        state = super().__getstate__()
        if (
            hasattr(self, "support_")
            and _storable_kernel(self.kernel)
            and _storable_random_state(getattr(self, "random_state", None))
        ):
            arrays, meta = self._to_arrays()
            return {
                "_gridmatch_svc": bytes(_core.store_dumps(arrays, meta)),
                "_sklearn_version": state.get("_sklearn_version"),
            }
        return state

    def __setstate__(self, state):
        if isinstance(state, dict) and "_gridmatch_svc" in state:
            arrays, meta = _core.store_loads(state["_gridmatch_svc"])
            other = type(self)._from_arrays(arrays, meta, "pickled SVC")
            self.__dict__.update(other.__dict__)
            return
        super().__setstate__(state)

    # ----------------------------------------------------------------- predict
    def _ovo_decision(self, X) -> np.ndarray:
        """Pairwise decision values in libsvm's convention (positive: first class)."""
        _check_fitted(self)
        kernel = _resolve_kernel(self.kernel)
        X = _validate_data(
            self, host_array(X, "X"), dtype=np.float64, order="C", accept_sparse=False, reset=False
        )
        binary = len(self.classes_) == 2
        dual = -self.dual_coef_ if binary else self.dual_coef_
        rho = self.intercept_ if binary else -self.intercept_
        n_support = np.asarray(self._n_support, dtype=np.int64)
        if n_support.sum() != len(self.support_) or dual.shape[1] != len(self.support_):
            raise ValueError("The internal representation of SVC was altered")
        if callable(kernel):
            k = np.asarray(kernel(X, self.support_vectors_), dtype=np.float64)
            if k.shape != (X.shape[0], len(self.support_)):
                raise ValueError(
                    f"the kernel callable returned shape {k.shape}, "
                    f"expected {(X.shape[0], len(self.support_))}"
                )
            data, sv, support, kname = k, None, np.arange(len(self.support_)), "precomputed"
        elif self._kernel_name == "precomputed":
            if X.shape[1] != self.shape_fit_[0]:
                raise ValueError(
                    f"X.shape[1] = {X.shape[1]} should be equal to {self.shape_fit_[0]}, "
                    "the number of samples at training time"
                )
            data, sv, support, kname = X, None, self.support_, "precomputed"
        else:
            data = np.ascontiguousarray(X, dtype=np.float32)
            sv = np.ascontiguousarray(self.support_vectors_, dtype=np.float32)
            support, kname = self.support_, self._kernel_name
        return _core.svm_decision(
            data,
            sv,
            np.asarray(support, dtype=np.int64),
            n_support,
            np.ascontiguousarray(dual, dtype=np.float64),
            np.ascontiguousarray(rho, dtype=np.float64),
            kname,
            float(self._gamma),
            float(self.coef0),
            int(self.degree),
            _n_jobs(self.n_jobs),
        )

    def decision_function(self, X):
        """Evaluate the decision function.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, n_train)
            Samples; kernel values against the training set for ``"precomputed"``.

        Returns
        -------
        ndarray
            ``(n_samples,)`` for two classes (positive means ``classes_[1]``);
            otherwise ``(n_samples, n_classes)`` for ``"ovr"`` or
            ``(n_samples, n_classes * (n_classes - 1) / 2)`` for ``"ovo"``.

        Raises
        ------
        NotFittedError
            If called before :meth:`fit`.
        """
        dec = self._ovo_decision(X)
        n_classes = len(self.classes_)
        if n_classes == 2:
            return -dec.ravel()
        if self.decision_function_shape == "ovr":
            return _ovr_decision_function(dec < 0, -dec, n_classes)
        return dec

    def predict(self, X):
        """Predict class labels by one-vs-one voting (ties go to the lowest class).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, n_train)
            Samples; kernel values against the training set for ``"precomputed"``.

        Returns
        -------
        ndarray of shape (n_samples,)
            Predicted labels.

        Raises
        ------
        NotFittedError
            If called before :meth:`fit`.
        """
        dec = self._ovo_decision(X)
        n_classes = len(self.classes_)
        votes = np.zeros((dec.shape[0], n_classes), dtype=np.int64)
        k = 0
        for i in range(n_classes):
            for j in range(i + 1, n_classes):
                pos = dec[:, k] > 0
                votes[pos, i] += 1
                votes[~pos, j] += 1
                k += 1
        return self.classes_[np.argmax(votes, axis=1)]

    # ----------------------------------------------------------- probabilities
    def _check_proba(self):
        if not self.probability:
            raise AttributeError("predict_proba is not available when probability=False")
        return True

    @available_if(_check_proba)
    def predict_proba(self, X):
        """Class probabilities (libsvm's probability model).

        Each pair's decision value goes through its Platt sigmoid (``probA_``,
        ``probB_``), is clipped to ``[1e-7, 1 - 1e-7]``, and the pair probabilities are
        coupled into class probabilities (Wu, Lin and Weng 2004, method 2), as
        scikit-learn's ``SVC(probability=True)`` does. Only available when
        ``probability=True``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, n_train)
            Samples; kernel values against the training set for ``"precomputed"``.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probabilities of the classes in the order of ``classes_``; rows sum to 1.

        Raises
        ------
        AttributeError
            If ``probability=False``.
        NotFittedError
            If called before :meth:`fit`, or when the model was fitted with
            ``probability=False``.
        """
        dec = self._ovo_decision(X)
        if self._probA.size == 0 or self._probB.size == 0:
            raise NotFittedError(
                "predict_proba is not available when fitted with probability=False"
            )
        return _core.svm_proba(
            np.ascontiguousarray(dec, dtype=np.float64),
            np.ascontiguousarray(self._probA, dtype=np.float64),
            np.ascontiguousarray(self._probB, dtype=np.float64),
            len(self.classes_),
            _n_jobs(self.n_jobs),
        )

    @available_if(_check_proba)
    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, n_train)
            Samples; kernel values against the training set for ``"precomputed"``.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Log-probabilities of the classes in the order of ``classes_``.

        Raises
        ------
        AttributeError
            If ``probability=False``.
        NotFittedError
            If called before :meth:`fit`, or when the model was fitted with
            ``probability=False``.
        """
        return np.log(self.predict_proba(X))
