"""The contract of a conductance mapping (device) model, and the differential-pair encoding."""

from __future__ import annotations

import abc
import math

import torch

from txsim_core.errors import ConfigError
from txsim_core.interfaces.base import Model
from txsim_core.specs import Kind


class Mapping(Model, abc.ABC):
    """How weights become the conductances of a device, and how those devices really behave.

    A layer keeps its trained state as *ideal* conductances of shape
    ``(arrays_in, arrays_out, slices, 2, rows, cols)``: each weight is a differential pair
    (dimension of size 2: positive, negative device) in each of its slices. The weight a layer
    reads back is linear in the conductances,
    ``w = sum_s significance[s] * (g[..., s, 0, :, :] - g[..., s, 1, :, :])``, which is what
    digital shift-and-add after the ADC computes.
    """

    kind = Kind.MAPPING

    @property
    @abc.abstractmethod
    def g_min(self) -> float:
        """Lowest conductance of a device, in siemens."""

    @property
    @abc.abstractmethod
    def g_max(self) -> float:
        """Highest conductance of a device, in siemens."""

    @abc.abstractmethod
    def num_slices(self, weight_bits: int | None) -> int:
        """How many devices of each polarity store one weight of ``weight_bits`` precision."""

    @abc.abstractmethod
    def encode(self, w: torch.Tensor, weight_bits: int | None) -> torch.Tensor:
        """Target conductances for normalised weights.

        Args:
            w: weights of shape ``(..., N, M)`` normalised to [-1, 1] (values outside are clipped).
            weight_bits: weight precision, sign included, or None for full precision.

        Returns:
            Conductances in siemens of shape ``(..., S, 2, N, M)``, S = :meth:`num_slices`.
        """

    @abc.abstractmethod
    def significance(self, weight_bits: int | None) -> torch.Tensor:
        """Digital weight of each slice, shape ``(S,)``, in 1/S (see the class docstring)."""

    def setup(self, shape: torch.Size, generator: torch.Generator) -> None:
        """Called once when a layer programs its arrays: sample per-device properties here.

        Args:
            shape: the shape of the layer's conductance tensor (see the class docstring).
            generator: the layer's random generator.
        """

    def realize(self, g: torch.Tensor) -> torch.Tensor:
        """The conductances the devices really have when read, given the ideal ones.

        Device-to-device variation, stuck devices or drift belong here. The default is exact.

        Args:
            g: ideal conductances, shape as passed to :meth:`setup`, in siemens.
        """
        return g


class DifferentialMapping(Mapping):
    """Linear sign-magnitude encoding over differential pairs, optionally bit-sliced.

    A weight ``w`` in [-1, 1] of P bits becomes the integer magnitude
    ``m = round(|w| * (2**(P-1) - 1))``. With ``cell_bits = k`` the magnitude is split into
    ``S = ceil((P-1)/k)`` base-``2**k`` digits, least significant first, each stored in one device
    at ``g_min + digit / (2**k - 1) * (g_max - g_min)``; with ``cell_bits = None`` one device holds
    the whole magnitude (continuous levels, or quantized to P bits). The device of the weight's
    sign carries the magnitude; its partner stays at ``g_min``.

    Subclasses provide ``g_min``, ``g_max`` and :attr:`cell_bits`.
    """

    @property
    def cell_bits(self) -> int | None:
        """Bits one device stores, or None for a continuous device."""
        return self.params.cell_bits

    def num_slices(self, weight_bits: int | None) -> int:
        if self.cell_bits is None:
            return 1
        if weight_bits is None:
            raise ConfigError(
                f"Expected `weight_bits` to be set for a device with cell_bits={self.cell_bits} "
                "(a multi-level cell stores a fixed number of bits), but got None."
            )
        return max(1, math.ceil((weight_bits - 1) / self.cell_bits))

    def encode(self, w: torch.Tensor, weight_bits: int | None) -> torch.Tensor:
        span = self.g_max - self.g_min
        if weight_bits is None:  # one analog pair: the same values as below, in fewer passes
            on_positive = w.clamp(0.0, 1.0).mul_(span).add_(self.g_min)
            on_negative = w.neg().clamp_(0.0, 1.0).mul_(span).add_(self.g_min)
            return torch.stack((on_positive, on_negative), dim=-3).unsqueeze(-4)
        magnitude = w.abs().clamp(max=1.0)
        levels = 2 ** (weight_bits - 1) - 1
        code = torch.round(magnitude * levels)
        if self.cell_bits is None:
            digits = [code / levels]
        else:
            base = 2**self.cell_bits
            digits = [
                torch.remainder(torch.floor(code / base**s), base) / (base - 1)
                for s in range(self.num_slices(weight_bits))
            ]
        on = torch.stack(digits, dim=-3) * span + self.g_min  # (..., S, N, M)
        off = torch.full_like(on, self.g_min)
        positive = (w >= 0).unsqueeze(-3)
        return torch.stack((torch.where(positive, on, off), torch.where(positive, off, on)), dim=-3)

    def significance(self, weight_bits: int | None) -> torch.Tensor:
        span = self.g_max - self.g_min
        if weight_bits is None or self.cell_bits is None:
            return torch.tensor([1.0 / span], dtype=torch.float64)
        base = 2**self.cell_bits
        levels = 2 ** (weight_bits - 1) - 1
        return torch.tensor(
            [base**s * (base - 1) / (levels * span) for s in range(self.num_slices(weight_bits))],
            dtype=torch.float64,
        )
