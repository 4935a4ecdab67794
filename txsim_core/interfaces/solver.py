"""The contract of an array solver model."""

from __future__ import annotations

import abc
from typing import ClassVar, Literal

import torch

from txsim_core.interfaces.base import Model
from txsim_core.specs import Kind

Direction = Literal["forward", "backward"]
"""``forward``: rows driven, columns sensed. ``backward``: columns driven, rows sensed."""


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
