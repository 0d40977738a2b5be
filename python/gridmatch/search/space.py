"""Search spaces as data: operands, unary and binary operations, units."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import _core
from .._base import params as _params
from .._base.exceptions import ConfigError, ExpressionError
from ..expr import Expr

#: Largest number of units of a :class:`Space`.
MAX_UNITS = 8


@dataclass(frozen=True)
class Space:
    """A search space as data.

    A candidate is ``units`` units of 5 decisions each,
    ``unit = binary(unary1(op1), unary2(op2))``, where ``op1`` and ``op2`` are operands or
    an earlier unit's output; the candidate is ``final(last unit)``.

    Parameters
    ----------
    operands : sequence of str
        Operand expressions in ``x`` (and ``y`` for kernels), or the names of the paper's
        pairwise primitives: ``abs_diff`` (``|x-y|``), ``sum`` (``x+y``),
        ``abs_sq_diff`` (``|x²-y²|``), ``l1dist``, ``l2dist``, ``dot``, ``prod`` (``x∘y``).
    unary : sequence of str
        Unary operation names (``identity, neg, abs, square, cube, sqrt_abs, exp, sin,
        cos, sinh, cosh, tanh, relu, min0, sigmoid, softplus, l1, l2, sign``) or
        templates in ``u`` such as ``"2 * u"``.
    binary : sequence of str
        Binary operation names (``add, mul, sub, div, max, min, dot, expdiff, first,
        second``) or templates in ``a`` and ``b`` such as ``"sigmoid(a) * b"``.
    units : int, default=2
        Number of units (1 to 8: a unit may use the previous one twice, so candidates
        can double in size with every unit).
    final : str, default="norm1"
        Final operation (``norm1`` for kernels, ``identity`` for transforms, or a
        template in ``u``).
    kind : {"kernel", "transform"}, default="kernel"
        Kernels are functions of ``x`` and ``y`` reduced to a scalar; transforms map
        ``x`` to a vector of the same size.
    """

    operands: Sequence[str]
    unary: Sequence[str]
    binary: Sequence[str]
    units: int = 2
    final: str = "norm1"
    kind: str = "kernel"
    _decisions: tuple[int, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("operands", "unary", "binary"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ExpressionError(f"{name} must be a list of strings, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        if (
            isinstance(self.units, bool)
            or not isinstance(self.units, (int, np.integer))
            or not 1 <= self.units <= MAX_UNITS
        ):
            # Units may reuse earlier units twice, so a candidate's tree can double with
            # every unit: the cap keeps the largest candidate small (2**8 copies of a unit).
            raise ExpressionError(
                f"units must be an integer between 1 and {MAX_UNITS}, got {self.units!r}"
            )
        object.__setattr__(self, "_decisions", tuple(_core.space_decisions(self._spec())))

    def _spec(self) -> tuple[str, list[str], list[str], list[str], int, str]:
        return (
            self.kind,
            list(self.operands),
            list(self.unary),
            list(self.binary),
            int(self.units),
            self.final,
        )

    @classmethod
    def paper(cls) -> Space:
        """The authors' kernel space (2 units, 7 operands, 18 unary, 8 binary, norm1).

        Returns
        -------
        Space
            The space.
        """
        return cls._builtin("paper")

    @classmethod
    def activation(cls) -> Space:
        """A transform space in the spirit of *Searching for Activation Functions*.

        Returns
        -------
        Space
            The space (operands ``x`` and ``1``, 2 units, no final reduction).
        """
        return cls._builtin("activation")

    @classmethod
    def _builtin(cls, name: str) -> Space:
        kind, ops, un, bi, units, final = _core.builtin_space(name)
        return cls(ops, un, bi, units=units, final=final, kind=kind)

    @property
    def decisions(self) -> list[int]:
        """Number of choices of every decision, in order."""
        return list(self._decisions)

    @property
    def size(self) -> int:
        """Number of distinct decision sequences."""
        return math.prod(self._decisions)

    def build(self, actions: Sequence[int]) -> Expr:
        """The candidate of a decision sequence.

        Parameters
        ----------
        actions : sequence of int
            One choice per decision.

        Returns
        -------
        Expr
            The candidate.
        """
        if isinstance(actions, (str, bytes)) or not hasattr(actions, "__iter__"):
            raise ExpressionError(f"actions must be a sequence of integers, got {actions!r}")
        acts = [_params.integer(a, "each action", low=0) for a in actions]
        return _core.space_build(self._spec(), acts)

    def sample(self, n: int, seed: int = 0) -> list[Expr]:
        """Uniformly random candidates.

        Parameters
        ----------
        n : int
            How many.
        seed : int, default=0
            Seed.

        Returns
        -------
        list of Expr
            The candidates.
        """
        n = _params.integer(n, "n", low=0)
        seed = _params.integer(seed, "seed", low=0)
        return _core.space_sample(self._spec(), n, seed)


def _resolve_space(space: Space | str, kind: str) -> Space:
    if isinstance(space, Space):
        sp = space
    elif space == "paper":
        sp = Space.paper()
    elif space == "activation":
        sp = Space.activation()
    else:
        raise ConfigError(
            f"space must be a gridmatch.search.Space, 'paper' or 'activation', got {space!r}"
        )
    if sp.kind != kind:
        raise ConfigError(f"this search needs a {kind} space, got a {sp.kind} space")
    return sp
