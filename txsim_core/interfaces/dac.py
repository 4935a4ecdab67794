"""The contract of a digital-to-analog converter model."""

from __future__ import annotations

import abc
from typing import ClassVar

import torch

from txsim_core.interfaces.base import Model
from txsim_core.specs import Kind


class DAC(Model, abc.ABC):
    """Turns digital inputs into the voltages that drive an array's rows (or columns, backward).

    A converter may need several array evaluations ("passes") per input vector, as a 1-bit
    converter that streams the input bit by bit does; the layer evaluates all passes as one batched
    tensor operation and combines their digital outputs with the pass weights after the ADC.

    Conversion is elementwise: each value is converted on its own, whatever its position, so a
    layer may convert a whole input image before unfolding it into patches.
    """

    kind = Kind.DAC

    is_exact: ClassVar[bool] = False
    """True only for a one-pass converter whose voltages are exactly proportional to its inputs at
    every precision; layers then skip the conversion where it cannot change the result."""

    @abc.abstractmethod
    def num_passes(self, bits: int | None) -> int:
        """How many array evaluations one input vector of ``bits`` precision takes."""

    @abc.abstractmethod
    def forward(self, x: torch.Tensor, bits: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Convert normalised digital inputs to voltages.

        Args:
            x: inputs of shape ``(..., N)``, normalised to [-1, 1]. When ``bits`` is an integer they
                already lie on the signed grid ``k / (2**(bits - 1) - 1)``; None means full precision.
            bits: the input precision, sign included, or None.

        Returns:
            ``voltages`` of shape ``(P, ..., N)`` in volts, P = :meth:`num_passes`, and
            ``pass_weights`` of shape ``(P,)`` in 1/V: the digital weight of each pass. An exact
            converter satisfies ``x == sum_p pass_weights[p] * voltages[p]``; a real one deviates
            from it by its non-linearity.
        """
