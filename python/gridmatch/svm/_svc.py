"""The :class:`SVC` estimator: parameters, fit, decision function, prediction, probabilities."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import _safe_indexing
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _num_samples, check_consistent_length, column_or_1d

from .. import _core
from .._base import params as _params
from .._base.exceptions import ConvergenceWarning, InterruptedWarning
from .._base.validate import check_fitted, host_array, validate_data
from . import _persistence
from ._centring import bias_shift, centred_f32, shift_of, slope
from ._checks import check_params
from ._coef import linear_coef
from ._decision import ovo_decision
from ._kernel import callable_gram, check_sparse_kernel, expression_of, resolve_kernel
from ._multiclass import ovo_votes, ovr_decision_function
from ._proba import ProbabilityMixin
from ._report import fit_summary
from ._sparse import csr_parts, gamma_scale_variance, is_sparse
from ._spec import svm_spec
from ._weights import sample_bounds

__all__ = ["SVC"]


class SVC(ProbabilityMixin, ClassifierMixin, BaseEstimator):
    """C-support vector classifier (libsvm's algorithm, Rust core).

    Same model as :class:`sklearn.svm.SVC`: one-vs-one multiclass, ``dual_coef_``,
    ``intercept_`` and ``support_`` with scikit-learn's layout and signs.

    Parameters
    ----------
    C : float, default=1.0
        Regularisation: the box bound of the dual coefficients. Must be > 0;
        ``float("inf")`` fits a hard margin (as scikit-learn; on data that is not
        separable in the kernel's space the solver then runs to its iteration limit).
    kernel : {"linear", "poly", "rbf", "sigmoid", "precomputed"} or callable, default="rbf"
        Kernel. A callable ``k(X, Y)`` must return the Gram matrix
        ``(len(X), len(Y))``; it gets ``X`` as given to ``fit`` / ``predict`` (lists of
        strings, object arrays...: only the lengths are checked, as in scikit-learn),
        and at prediction ``Y`` is the training ``X``. Expression kernels of
        ``gridmatch.expr`` plug in through the same route once available.
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
    shrinking : bool, default=True
        libsvm's shrinking heuristic: samples that stay at a bound leave the active
        set for a while (the solution is the same within ``tol``; ``False`` keeps
        every sample active).
    verbose : bool or int, default=False
        Print a summary after ``fit``: for each one-vs-one pair, its iterations and
        whether it converged (not libsvm's progress output).
    break_ties : bool, default=False
        With ``decision_function_shape="ovr"`` and more than two classes,
        :meth:`predict` returns the argmax of :meth:`decision_function` instead of the
        one-vs-one vote (whose ties go to the lowest class). ``True`` with ``"ovo"``
        makes :meth:`predict` raise ``ValueError``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    class_weight_ : ndarray of shape (n_classes,)
        Multipliers of ``C`` per class.
    support_ : ndarray of shape (n_SV,)
        Indices of the support vectors in the training set, grouped by class.
    support_vectors_ : ndarray of shape (n_SV, n_features)
        Support vectors (empty for ``kernel="precomputed"``; for a callable kernel, the
        training samples as given, indexed like ``X``: a list stays a list).
    coef_ : ndarray of shape (n_classes * (n_classes - 1) / 2, n_features)
        Primal weights, ``kernel="linear"`` only (``AttributeError`` otherwise); read-only.
        scikit-learn's layout: one row per one-vs-one pair, and for two classes the
        row for which positive scores mean ``classes_[1]``.
    n_support_ : ndarray of shape (n_classes,)
        Number of support vectors of each class.
    dual_coef_ : ndarray of shape (n_classes - 1, n_SV)
        Dual coefficients ``y_i alpha_i`` (libsvm's one-vs-one layout).
    intercept_ : ndarray of shape (n_classes * (n_classes - 1) / 2,)
        Constants of the decision functions.
    n_features_in_ : int
        Number of features seen during fit (not set for a callable kernel).
    fit_status_ : int
        0 if every binary problem converged, 1 if one stopped at ``max_iter``.
    n_iter_ : ndarray of shape (n_classes * (n_classes - 1) / 2,)
        SMO iterations of each binary problem.
    shape_fit_ : tuple
        Shape of the training ``X`` (``(n_samples,)`` for a callable kernel's ``X``
        without a shape).
    probA_, probB_ : ndarray of shape (n_classes * (n_classes - 1) / 2,)
        Platt sigmoid parameters of each pair, ``P(first class of the pair) =
        1 / (1 + exp(probA_ * d + probB_))`` for the pair's libsvm decision value ``d``
        (empty when fitted with ``probability=False``).

    See Also
    --------
    sklearn.svm.SVC : the reference implementation (libsvm).

    Notes
    -----
    The built-in kernels compute in float32, on the data centred in float64 first:
    ``fit`` subtracts the training mean, prediction the mean of the support vectors
    (the model's public attributes stay in scikit-learn's raw-data convention, and
    models saved before are evaluated the same way). ``rbf`` does not depend on the
    shift; for ``linear``, ``poly`` and ``sigmoid``, functions ``F(a.b)``, the kernel
    used is ``F(a.b) - F(m.m) - F'(m.m) (p_a + p_b)`` with ``p_a = m.(a - m)`` kept in
    float64: terms of that form change neither the dual coefficients nor the decision
    function, and the intercept is converted back exactly. So an offset of the
    features costs no precision: against scikit-learn (``tol=1e-6``) at offsets 0 to
    1e4, feature scales 1e-3 to 1e3 and ``gamma`` up to 1e4, on well-posed problems
    (tests/test_svm_offset.py), the largest decision-value differences measured are
    1.3e-4 (rbf), 5.8e-5 (linear), 5.3e-5 (poly) and 2.3e-6 (sigmoid), with decision
    values of order 1 to 10, and the predictions agree everywhere. What remains is
    float32's relative precision of about 6e-8 on the centred features, their
    products and the kernel values: squared
    distances carry an absolute error of about ``1e-7 (|a - m|^2 + |b - m|^2)`` on the
    matrix-product path, which matters only when ``gamma`` makes such a difference
    count (``gamma |a - m|^2 >~ 1e5``), or for data made of clusters far apart from
    each other relative to their spread. (scikit-learn's own float64 kernels are less
    precise on such data: at offset / scale = 1e7 its RBF decision values move by
    0.4, its linear kernel at offset 1e3 by 4.5, its poly and sigmoid kernels at
    offset 1e3 by 0.80 and 0.40.)

    Sparse input (any ``scipy.sparse`` matrix or array: CSR as it is, other formats
    converted to CSR) is computed sparse, as libsvm does: the built-in kernels take
    float64 dot products of the stored values in Rust (one row scattered into a dense
    scratch row per thread), never densifying ``X``; the data are not centred (that
    would make them dense). A model fitted on sparse input keeps ``support_vectors_`` as
    a CSR matrix and takes dense or sparse ``X`` at prediction; a model fitted on dense
    input refuses sparse ``X`` (``ValueError``, as scikit-learn). ``kernel="precomputed"``
    and expression kernels take dense arrays only (``TypeError``); a Python callable
    gets the sparse matrix.
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
        shrinking=True,
        verbose=False,
        break_ties=False,
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
        self.shrinking = shrinking
        self.verbose = verbose
        self.break_ties = break_ties

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = isinstance(self.kernel, str) and self.kernel == "precomputed"
        # sparse X: the built-in kernels and Python callables (see Notes)
        builtin = isinstance(self.kernel, str) and self.kernel in (
            "linear",
            "poly",
            "rbf",
            "sigmoid",
        )
        tags.input_tags.sparse = builtin or (
            callable(self.kernel) and expression_of(self.kernel) is None
        )
        return tags

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        """Check the parameters (``ConfigError`` naming the first bad one)."""
        check_params(self)

    # --------------------------------------------------------------------- fit
    def fit(self, X, y, sample_weight=None):
        """Fit the model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features) or (n_samples, n_samples)
            Training vectors (dense or ``scipy.sparse``, see Notes); the Gram matrix for
            ``kernel="precomputed"``.
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
        ConfigError
            On an invalid parameter (the message names it).
        ExpressionError
            If ``kernel`` is a string that is neither a built-in kernel nor a valid
            scalar expression.
        ValueError
            On NaN/inf or badly shaped inputs, fewer than two classes, or a non-square
            precomputed matrix.
        """
        self._check_params()
        # Drawn as scikit-learn draws it (always, also without a probability model).
        seed = int(_params.random_state(self.random_state).randint(np.iinfo("i").max))
        kernel = resolve_kernel(self.kernel)
        python_callable = callable(kernel) and expression_of(kernel) is None
        sparse = False  # built-in kernels on scipy.sparse X (a callable gets X as given)
        if python_callable:
            # As scikit-learn: X reaches the callable as given (strings, objects...).
            check_consistent_length(X, y)
            y = host_array(y, "y")
            self.__dict__.pop("n_features_in_", None)
            self.__dict__.pop("feature_names_in_", None)
        else:
            X, y = host_array(X, "X"), host_array(y, "y")
            sparse = is_sparse(X)
            if sparse:
                check_sparse_kernel(self.kernel, kernel)
            X, y = validate_data(
                self, X, y, dtype=np.float64, order="C", accept_sparse="csr" if sparse else False
            )
        y_ = column_or_1d(y, warn=True)
        check_classification_targets(y_)
        classes, y_enc = np.unique(y_, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"The number of classes has to be greater than one; got {len(classes)} class"
            )
        self.class_weight_ = compute_class_weight(self.class_weight, classes=classes, y=y_)
        n = _num_samples(X)
        sample_c = sample_bounds(float(self.C), self.class_weight_, y_enc, sample_weight, classes)

        gamma = 0.0
        shift = None
        if expression_of(kernel) is not None:
            # An expression kernel: rows are evaluated in Rust on demand and kept in the
            # solver's row cache, so memory stays within cache_size (no n x n matrix).
            data, kname = X, "expression"
        elif python_callable:
            data, kname = callable_gram(kernel, X, X, (n, n)), "precomputed"
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
                        var = gamma_scale_variance(X) if sparse else X.var()
                    gamma = 1.0 / (X.shape[1] * var) if var != 0 else 1.0
                else:
                    gamma = 1.0 / X.shape[1]
            else:
                gamma = float(self.gamma)
            if sparse:
                # Sparse rows: float64 sparse dot products in Rust, never densified.
                data, kname = csr_parts(X), kernel
            else:
                # Centred in float64 before the float32 cast (see Notes): the kernels
                # see X - shift, and the Rust core keeps the shift in float64.
                shift = shift_of(X)
                try:
                    data, kname = centred_f32(X, shift), kernel
                except ValueError as e:  # scikit-learn's message, then what happened
                    raise ValueError(
                        f"The dual coefficients or intercepts are not finite: {e}"
                    ) from None
        self._gamma = gamma
        self._kernel_name = "precomputed" if kname == "expression" else kname

        spec = svm_spec(self, probability_seed=seed if self.probability else None)
        builtin = shift is not None
        out = _core.svm_fit(
            data,
            np.ascontiguousarray(y_enc, dtype=np.int64),
            np.ascontiguousarray(sample_c),
            json.dumps(spec),
            shift=shift,
        )
        finite = [np.isfinite(out[k]).all() for k in ("dual_coef", "rho", "prob_a", "prob_b")]
        if builtin and all(finite):
            # the slope F'(m.m) of poly / sigmoid can overflow where the kernel does
            finite.append(np.isfinite(slope(shift, spec)))
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
        rho = np.asarray(out["rho"], dtype=np.float64)
        if builtin and np.isfinite(rho).all() and np.isfinite(self.dual_coef_).all():
            # The shifted kernel's bias back to the raw kernel's (scikit-learn's).
            rho = rho + bias_shift(self.dual_coef_, self._n_support, X, shift, spec, self.support_)
            if not np.isfinite(rho).all():
                raise ValueError(
                    "The intercepts are not finite. The input data may contain large "
                    "values and need to be preprocessed."
                )
        self.intercept_ = -rho
        self.n_iter_ = out["iterations"].astype(np.int32)
        self._probA = np.asarray(out["prob_a"], dtype=np.float64)
        self._probB = np.asarray(out["prob_b"], dtype=np.float64)
        self.fit_status_ = 0 if out["converged"] else 1
        self.shape_fit_ = X.shape if hasattr(X, "shape") else (n,)
        self._sparse = sparse
        if kname == "precomputed" and not callable(kernel):
            self.support_vectors_ = np.empty((0, 0))
        else:  # a callable's samples as given (a list stays a list)
            self.support_vectors_ = _safe_indexing(X, self.support_)
        # prediction evaluates a callable against the training X, as scikit-learn does
        self.__dict__.pop("_X_fit", None)
        if python_callable:
            self._X_fit = X
        # scikit-learn flips the binary model so that positive scores mean classes_[1].
        if len(classes) == 2:
            self.intercept_ = -self.intercept_
            self.dual_coef_ = -self.dual_coef_
        if self.verbose:  # after the fit (libsvm prints its progress during it)
            print(fit_summary(classes, y_enc, sample_c, self.n_iter_, int(self.max_iter)))
        if self.fit_status_ == 1:
            warnings.warn(
                f"Solver terminated early (max_iter={self.max_iter}).  Consider "
                "pre-processing your data with StandardScaler or MinMaxScaler.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    @property
    def coef_(self):
        """Primal weights for ``kernel="linear"`` (read-only; see Attributes)."""
        if isinstance(self.kernel, str) and self.kernel == "linear":
            check_fitted(self)
        return linear_coef(self)

    @property
    def n_support_(self):
        """Number of support vectors of each class, ndarray of shape (n_classes,)."""
        check_fitted(self)
        return self._n_support

    @property
    def probA_(self):
        """Platt sigmoid slopes of the pairs, ndarray of shape (n_pairs,) (empty without
        a probability model)."""
        check_fitted(self)
        return self._probA

    @property
    def probB_(self):
        """Platt sigmoid offsets of the pairs, ndarray of shape (n_pairs,) (empty without
        a probability model)."""
        check_fitted(self)
        return self._probB

    # ------------------------------------------------------------- persistence
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
        return _persistence.save(self, path)

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
        return _persistence.load(cls, path)

    def __getstate__(self):
        # Pickling (joblib, multiprocessing, copy) uses the same safetensors bytes as
        # save() for a fitted model, so the pickle holds no model object graph and its
        # unpickling goes through load()'s validation. (Pickle files as such are never
        # safe to load from untrusted sources: use save()/load() for model files.)
        state = super().__getstate__()
        if _persistence.picklable_as_file(self):
            return {
                "_gridmatch_svc": _persistence.dumps(self),
                "_sklearn_version": state.get("_sklearn_version"),
            }
        return state

    def __setstate__(self, state):
        if isinstance(state, dict) and "_gridmatch_svc" in state:
            other = _persistence.loads(type(self), state["_gridmatch_svc"])
            self.__dict__.update(other.__dict__)
            return
        super().__setstate__(state)

    # ----------------------------------------------------------------- predict
    def decision_function(self, X):
        """Evaluate the decision function.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features) or (n_samples, n_train)
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
        dec = ovo_decision(self, X)
        n_classes = len(self.classes_)
        if n_classes == 2:
            return -dec.ravel()
        if self.decision_function_shape == "ovr":
            return ovr_decision_function(dec < 0, -dec, n_classes)
        return dec

    def predict(self, X):
        """Predict class labels by one-vs-one voting (ties go to the lowest class).

        With ``break_ties=True``, ``decision_function_shape="ovr"`` and more than two
        classes: the argmax of :meth:`decision_function` instead.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features) or (n_samples, n_train)
            Samples; kernel values against the training set for ``"precomputed"``.

        Returns
        -------
        ndarray of shape (n_samples,)
            Predicted labels.

        Raises
        ------
        NotFittedError
            If called before :meth:`fit`.
        ValueError
            If ``break_ties=True`` with ``decision_function_shape="ovo"``.
        """
        check_fitted(self)
        if self.break_ties and self.decision_function_shape == "ovo":
            raise ValueError("break_ties must be False when decision_function_shape is 'ovo'")
        if self.break_ties and self.decision_function_shape == "ovr" and len(self.classes_) > 2:
            return self.classes_[np.argmax(self.decision_function(X), axis=1)]
        dec = ovo_decision(self, X)
        return self.classes_[np.argmax(ovo_votes(dec, len(self.classes_)), axis=1)]
