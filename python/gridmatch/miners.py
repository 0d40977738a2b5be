"""How the Grid Search Network picks each grid's negatives, as objects.

A miner fills the ``rows·cols − positives`` negative cells of every query's grid from
the other ids of the batch; it is given as ``negatives=`` to
:class:`~gridmatch.GridSearchNetwork`, as an object or by its name::

    gm.GridSearchNetwork(negatives=gm.miners.Mined())      # or negatives="mined"

Miners matter for the grid losses; pair losses see the whole batch and ignore them.
A miner crosses into Rust, and into a saved model's ``config.json``, as its spec
``{"name": ...}``.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator

from . import _core
from ._base.exceptions import ConfigError

__all__ = ["Mined", "Miner", "Random", "SameClass", "SemiHard", "from_spec", "resolve"]


class Miner(BaseEstimator):
    """Base class: a named negative-selection rule (see the subclasses)."""

    #: The miner's name in specs and in ``negatives="..."``.
    name: str = ""

    def spec(self) -> dict[str, Any]:
        """The miner as its core spec, ``{"name": ...}``.

        Returns
        -------
        dict
            JSON-ready spec.
        """
        return {"name": self.name, **self.get_params()}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.get_params() == self.get_params()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.get_params().items()))))


class Random(Miner):
    """Negatives drawn uniformly from the batch's other ids (the paper's grids)."""

    name = "random"


class SameClass(Miner):
    """Negatives of the query's class but another id first, then random ones.

    Needs ``classes`` in :meth:`GridSearchNetwork.fit`; without them it mines (as
    :class:`Mined`). The name ``"hard"`` means this miner.
    """

    name = "hard"


class Mined(Miner):
    """The batch's most similar images of other ids under the current embeddings."""

    name = "mined"


class SemiHard(Miner):
    """Semi-hard negatives: the most similar images of other ids that are still less
    similar to the query than its least similar positive cell (as in FaceNet's
    semi-hard triplet mining); when there are too few, the others from the least
    similar up."""

    name = "semihard"


_CLASSES: dict[str, type[Miner]] = {c.name: c for c in (Random, SameClass, Mined, SemiHard)}
assert set(_CLASSES) == set(_core.MINER_NAMES), "the Python miners must match the core's"

#: The miner names, in the core's order.
NAMES: tuple[str, ...] = tuple(_core.MINER_NAMES)


def resolve(negatives: Any) -> Miner:
    """The miner for ``negatives`` (an object, or a name).

    Parameters
    ----------
    negatives : Miner or str
        A miner or one of :data:`NAMES`.

    Returns
    -------
    Miner

    Raises
    ------
    ConfigError
        An unknown name or type.
    """
    if isinstance(negatives, Miner):
        return negatives
    if isinstance(negatives, str) and negatives in _CLASSES:
        return _CLASSES[negatives]()
    raise ConfigError(
        f"negatives must be one of {NAMES} or a gridmatch.miners object, got {negatives!r}"
    )


def from_spec(spec: dict[str, Any]) -> Miner:
    """The miner a spec describes (the inverse of :meth:`Miner.spec`).

    Parameters
    ----------
    spec : dict
        ``{"name": ...}``.

    Returns
    -------
    Miner

    Raises
    ------
    ValueError
        Not a miner spec.
    """
    if not isinstance(spec, dict) or spec.get("name") not in _CLASSES or len(spec) != 1:
        raise ValueError(f"not a miner spec (one of {NAMES}): {spec!r}")
    return _CLASSES[spec["name"]]()
