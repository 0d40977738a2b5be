"""Losses of the Grid Search Network and its metric-learning baselines, as objects.

Each loss is a small estimator-style object holding its own parameters (clonable by
scikit-learn: :func:`sklearn.base.clone` and ``get_params`` see them), composed into
:class:`~gridmatch.GridSearchNetwork` the way pytorch-metric-learning composes losses::

    gm.GridSearchNetwork(loss=gm.losses.DoubleMargin(hi=0.9, lo=0.0, balance=True))
    gm.GridSearchNetwork(loss=gm.losses.MultiSimilarity(alpha=2, beta=50, base=0.5))

``loss="double-margin"`` (a name) still works and means the class with its defaults.
What crosses into Rust is the loss's *spec*, ``{"name": ..., **parameters}`` as JSON,
checked there again; it is also what a saved model's ``config.json`` stores.

Grid losses (:class:`DoubleMargin`, :class:`GridSoftmax`) act on a query's similarity
map over its grid; pair losses (:class:`Triplet`, :class:`Contrastive`, :class:`NTXent`,
:class:`MultiSimilarity`) on the batch's embeddings and ids; the proxy loss
:class:`ArcFace` on the embeddings and one learned vector per training id.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator

from . import _core
from ._base import params as _params
from ._base.exceptions import ConfigError

__all__ = [
    "ArcFace",
    "Contrastive",
    "DoubleMargin",
    "GridSoftmax",
    "Loss",
    "MultiSimilarity",
    "NTXent",
    "Triplet",
    "from_spec",
    "resolve",
]


class Loss(BaseEstimator):
    """Base class: a named loss with parameters (see the subclasses)."""

    #: The loss's name in specs and in ``loss="..."``.
    name: str = ""
    #: Whether the loss acts on grids (``True``) or on pairs of the batch.
    is_grid: bool = False
    #: Whether the loss learns a proxy (a vector) per training id.
    needs_proxies: bool = False

    def spec(self) -> dict[str, Any]:
        """The loss as its core spec: ``{"name": ..., **parameters}`` (checked).

        Returns
        -------
        dict
            JSON-ready spec.

        Raises
        ------
        ConfigError
            A parameter is out of range (the message names it).
        """
        params = {k: self._check(k, v) for k, v in self.get_params().items()}
        return {"name": self.name, **params}

    def _check(self, key: str, value: Any) -> Any:
        return _params.real(value, key)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.get_params() == self.get_params()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.get_params().items()))))


class DoubleMargin(Loss):
    """The paper's double-margin contrastive loss on the grid's similarity map.

    ``Σ_cells y·max(hi − s, 0)² + (1 − y)·max(s − lo, 0)²`` per query; balanced, the mean
    over the positive cells plus the mean over the negative cells.

    Parameters
    ----------
    hi : float, default=0.9
        Positives are pushed above this cosine similarity.
    lo : float, default=0.0
        Negatives are pushed below it (``hi > lo``).
    balance : bool, default=True
        ``False`` is the paper's sum over cells (negatives outweigh the positives).
    """

    name = "double-margin"
    is_grid = True

    def __init__(self, hi: float = 0.9, lo: float = 0.0, balance: bool = True):
        self.hi = hi
        self.lo = lo
        self.balance = balance

    def _check(self, key: str, value: Any) -> Any:
        if key == "balance":
            return _params.flag(value, key)
        return super()._check(key, value)

    def spec(self) -> dict[str, Any]:
        """The loss as its core spec (see :meth:`Loss.spec`); checks ``hi > lo``."""
        s = super().spec()
        if not s["hi"] > s["lo"]:
            raise ConfigError(
                f"hi must be greater than lo for the double-margin loss, got {s['hi']} <= {s['lo']}"
            )
        return s


class GridSoftmax(Loss):
    """Softmax over the grid's cells, cross-entropy towards its positive cells.

    Parameters
    ----------
    temperature : float, default=0.1
        Softmax temperature (> 0).
    """

    name = "grid-softmax"
    is_grid = True

    def __init__(self, temperature: float = 0.1):
        self.temperature = temperature

    def _check(self, key: str, value: Any) -> Any:
        return _params.real(value, key, low=0, low_open=True)


class NTXent(GridSoftmax):
    """NT-Xent (multi-positive supervised contrastive loss) over the batch.

    Parameters
    ----------
    temperature : float, default=0.1
        Softmax temperature (> 0).
    """

    name = "ntxent"
    is_grid = False


class Triplet(Loss):
    """Triplet loss with semi-hard negatives (FaceNet) on squared Euclidean distances.

    Parameters
    ----------
    margin : float, default=0.2
        Margin (>= 0).
    """

    name = "triplet"

    def __init__(self, margin: float = 0.2):
        self.margin = margin

    def _check(self, key: str, value: Any) -> Any:
        return _params.real(value, key, low=0)


class Contrastive(Triplet):
    """Contrastive loss over all pairs of the batch (Hadsell et al.).

    Parameters
    ----------
    margin : float, default=1.0
        Negatives are pushed beyond this Euclidean distance (>= 0).
    """

    name = "contrastive"

    def __init__(self, margin: float = 1.0):
        self.margin = margin


class MultiSimilarity(Loss):
    """Multi-similarity loss (Wang et al., CVPR 2019) over all pairs of the batch.

    Per anchor, ``1/α log(1 + Σ_pos exp(−α (s − base))) + 1/β log(1 + Σ_neg exp(β (s −
    base)))`` on cosine similarities ``s``, averaged over the batch (as
    pytorch-metric-learning's ``MultiSimilarityLoss`` without a miner).

    Parameters
    ----------
    alpha : float, default=2.0
        Weight of the positive pairs (> 0).
    beta : float, default=50.0
        Weight of the negative pairs (> 0).
    base : float, default=0.5
        The similarity both sides are centred on.

    References
    ----------
    X. Wang, X. Han, W. Huang, D. Dong, M. R. Scott. *Multi-Similarity Loss with General
    Pair Weighting for Deep Metric Learning*. CVPR 2019.
    """

    name = "multi-similarity"

    def __init__(self, alpha: float = 2.0, beta: float = 50.0, base: float = 0.5):
        self.alpha = alpha
        self.beta = beta
        self.base = base

    def _check(self, key: str, value: Any) -> Any:
        if key in ("alpha", "beta"):
            return _params.real(value, key, low=0, low_open=True)
        return super()._check(key, value)


class ArcFace(Loss):
    """ArcFace: additive angular margin over learned class proxies (Deng et al.).

    A proxy loss: each training id has a learned vector, its *proxy*, trained with the
    head's learning rate. With ``θ`` the angle between an L2-normalised embedding and its
    id's normalised proxy, the logits are ``scale·cos(θ + margin)`` for its own id and
    ``scale·cos θ_j`` for every other id ``j``, and the loss is their cross-entropy,
    averaged over the batch: pytorch-metric-learning's ``ArcFaceLoss`` (past ``θ = 180° −
    margin`` the own logit is ``scale·(cos θ − margin·sin margin)``, as there; the proxies
    start as its ``W``, standard normal).

    Parameters
    ----------
    margin : float, default=28.6
        Additive angular margin in **degrees** (``[0, 180)``; 28.6° ≈ 0.5 rad, the paper's).
    scale : float, default=64.0
        Scale of the logits (> 0).

    References
    ----------
    J. Deng, J. Guo, N. Xue, S. Zafeiriou. *ArcFace: Additive Angular Margin Loss for Deep
    Face Recognition*. CVPR 2019.
    """

    name = "arcface"
    needs_proxies = True

    def __init__(self, margin: float = 28.6, scale: float = 64.0):
        self.margin = margin
        self.scale = scale

    def _check(self, key: str, value: Any) -> Any:
        if key == "margin":
            return _params.real(value, key, low=0, high=180, high_open=True)
        return _params.real(value, key, low=0, low_open=True)


_CLASSES: dict[str, type[Loss]] = {
    c.name: c
    for c in (DoubleMargin, GridSoftmax, Triplet, Contrastive, NTXent, MultiSimilarity, ArcFace)
}
assert set(_CLASSES) == set(_core.LOSS_NAMES), "the Python losses must match the core's"

#: The loss names, in the core's order.
NAMES: tuple[str, ...] = tuple(_core.LOSS_NAMES)


def resolve(loss: Any) -> Loss:
    """The loss object for ``loss`` (an object, or a name meaning its defaults).

    Parameters
    ----------
    loss : Loss or str
        A loss object or one of :data:`NAMES`.

    Returns
    -------
    Loss
        ``loss`` itself, or a new object of the named class.

    Raises
    ------
    ConfigError
        An unknown name or type.
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in _CLASSES:
        return _CLASSES[loss]()
    raise ConfigError(f"loss must be one of {NAMES} or a gridmatch.losses object, got {loss!r}")


def from_spec(spec: dict[str, Any]) -> Loss:
    """The loss object a spec describes (the inverse of :meth:`Loss.spec`).

    Parameters
    ----------
    spec : dict
        ``{"name": ..., **parameters}``.

    Returns
    -------
    Loss

    Raises
    ------
    ValueError
        Not a spec, an unknown name or unknown parameters.
    """
    if not isinstance(spec, dict) or spec.get("name") not in _CLASSES:
        raise ValueError(f"not a loss spec (one of {NAMES}): {spec!r}")
    params = {k: v for k, v in spec.items() if k != "name"}
    cls = _CLASSES[spec["name"]]
    try:
        return cls(**params)
    except TypeError as e:
        raise ValueError(f"invalid {spec['name']!r} loss spec {spec!r}: {e}") from None
