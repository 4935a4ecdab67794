"""The contract of an analog-to-digital converter model."""

from __future__ import annotations

import abc
from typing import ClassVar

import torch

from txsim_core.interfaces.base import Model
from txsim_core.specs import Kind


class ADC(Model, abc.ABC):
    """Turns the currents sensed on an array's columns (or rows, backward) into digital values.

    A layer converts the differential current (positive minus negative device) of every column of
    every array, slice and input pass. Converters with state, such as a full scale calibrated from
    the data or a mismatch sampled per converter instance, keep it in buffers created in
    :meth:`setup`.
    """

    kind = Kind.ADC

    is_exact: ClassVar[bool] = False
    """True only for a converter whose output equals its input exactly. Layers then combine
    arrays, slices and passes in the analog domain, which is mathematically the same and faster."""

    def setup(self, units: int, channels: int, generator: torch.Generator) -> None:
        """Called once by the layer before the first conversion.

        Args:
            units: how many conversion units the layer has: one per array and weight slice.
            channels: converters per unit: the columns (forward) or rows (backward) of an array.
            generator: the layer's random generator, for sampling per-instance variation.
        """

    @abc.abstractmethod
    def forward(self, current: torch.Tensor) -> torch.Tensor:
        """Convert currents to digital values.

        Args:
            current: shape ``(B, units, channels)`` in amperes; B counts input vectors and passes.

        Returns:
            The digital values, same shape, expressed in amperes (the current each code stands for).
        """

    def convert_in_place(self, current: torch.Tensor) -> torch.Tensor:
        """Convert currents that the caller no longer needs (the layer's call).

        The same values as :meth:`forward`, bit for bit, but a converter may overwrite
        ``current`` and return it: a layer's currents (every array, slice, pass and input vector)
        are its largest tensor, and converting them in place saves a copy of them. The default
        calls :meth:`forward`.

        Args:
            current: as for :meth:`forward`; its contents are undefined after the call.
        """
        return self(current)
