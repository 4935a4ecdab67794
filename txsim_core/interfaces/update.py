"""The contract of a conductance update model."""

from __future__ import annotations

import abc

import torch

from txsim_core.interfaces.base import Model
from txsim_core.specs import Kind


class UpdateModel(Model, abc.ABC):
    """The conductance change that devices really make when a change is requested.

    Layers turn a weight gradient into a requested change of every device's conductance (the
    learning rate is applied before, so that the request is what the update circuit is asked to
    write) and call :meth:`step`. Non-linearity, write noise, bounds and one-directional devices
    are the model's business.
    """

    kind = Kind.UPDATE

    @property
    @abc.abstractmethod
    def g_min(self) -> float:
        """Lowest conductance the model writes, in siemens (must match the layer's device)."""

    @property
    @abc.abstractmethod
    def g_max(self) -> float:
        """Highest conductance the model writes, in siemens (must match the layer's device)."""

    @abc.abstractmethod
    def step(
        self, g: torch.Tensor, dg: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Apply one update.

        Args:
            g: present conductances in siemens, shape ``(..., 2, N, M)``; dimension -3 holds the
                positive and negative device of each differential pair (element-wise models may
                ignore it).
            dg: requested signed change in siemens, same shape, learning rate already applied.
            generator: random generator for write noise; None uses torch's global one.

        Returns:
            The new conductances, same shape, within the device's range.
        """
