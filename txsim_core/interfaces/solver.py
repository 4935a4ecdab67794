"""The contract of an array solver model."""

from __future__ import annotations

import abc
from typing import ClassVar, Literal

import attrs
import torch

from txsim_core.interfaces.base import Model
from txsim_core.params import parameter
from txsim_core.specs import Kind

Direction = Literal["forward", "backward"]
"""``forward``: rows driven, columns sensed. ``backward``: columns driven, rows sensed."""


def _resistance(default: float, help: str, positive: bool) -> float:
    return parameter(default, unit="Ohm", low=0.0, low_open=positive, high=1e9, help=help)


@attrs.frozen(kw_only=True)
class CircuitParams:
    """The resistances of the circuit convention (``docs/explanation/circuit.md``).

    Solvers of that circuit derive their parameter class from this one, so that every solver
    names, documents and defaults the circuit the same way. The paper gives r_row and r_col;
    r_source and r_sink default to 100 Ohm, the order of the wires themselves (see txsim-fcm's README).
    """

    r_source: float = _resistance(
        100.0,
        "Output resistance of each line driver, between the ideal source and the first wire "
        "segment of the driven line; 0 is an ideal source.",
        positive=False,
    )
    r_sink: float = _resistance(
        100.0,
        "Input resistance of each sense circuit, between the last wire segment of the sensed "
        "line and the virtual ground; 0 is an ideal virtual ground.",
        positive=False,
    )
    r_row: float = _resistance(
        1.0, "Row-wire resistance per cell (one segment per cell).", positive=True
    )
    r_col: float = _resistance(
        4.6, "Column-wire resistance per cell (one segment per cell).", positive=True
    )


class ArraySolver(Model, abc.ABC):
    """Turns the conductances of arrays into the effective conductances the circuit really has.

    Wire resistance, driver and sense resistance and sneak paths make the current sensed on an
    output line differ from ``V @ G``. For ohmic cells the circuit is linear in the inputs, so an
    effective matrix exists for every input; see ``docs/explanation/circuit.md`` for the circuit
    convention every solver follows.
    """

    kind = Kind.SOLVER

    is_exact: ClassVar[bool] = False
    """True only for the ideal solver, whose effective conductances equal the given ones."""

    @abc.abstractmethod
    def effective_conductance(
        self, g: torch.Tensor, direction: Direction = "forward"
    ) -> torch.Tensor:
        """Effective conductances of a batch of arrays.

        Args:
            g: cell conductances of shape ``(..., N, M)`` in siemens: N rows, M columns per array.
            direction: which lines are driven (see :data:`Direction`).

        Returns:
            ``g_eff`` of the same shape, in siemens, such that for any input voltages:
            forward, column currents ``I[..., j] = sum_i V[..., i] * g_eff[..., i, j]``;
            backward, row currents ``I[..., i] = sum_j g_eff[..., i, j] * V[..., j]``.
        """
