"""The contract of an analog-to-digital converter model."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import ClassVar, Protocol, runtime_checkable

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

    def convert_parts(self, parts: CurrentParts) -> bool:
        """Convert one minibatch of currents that the layer computes part by part (its CPU path).

        A layer on the CPU computes its currents in parts of about a million, so that they stay
        in cache, and offers the minibatch here first (see :class:`CurrentParts`). The converter
        converts each part in place and hands the result to :meth:`CurrentParts.emit`. It may
        go through the parts more than once: a converter that calibrates from the data must fold
        the whole minibatch into its statistic, exactly as one call of :meth:`forward` with all
        of it would, and convert every current with the result (first a pass that only
        observes, or a pass that converts with the present calibration and a second one where
        the minibatch changed it). The values emitted last for each part are the result.

        Returns:
            Whether the minibatch was converted, the last pass having emitted every part. False
            (the default) makes the layer convert the whole minibatch in one call of
            :meth:`convert_in_place`; nothing may be emitted then. Converted parts together
            equal :meth:`forward` of the whole minibatch (bit for bit without random noise;
            with noise, the same distribution).
        """
        return False

    def zero_current_is_silent(self) -> bool:
        """Whether a current of exactly 0 A converts to 0 on the next call and leaves no trace.

        True promises, for the next minibatch: every 0 A input converts to a zero value,
        whatever else the minibatch holds, and adding or removing 0 A inputs changes nothing
        else: not the other conversions, not the converter's state (a calibration statistic
        that zeros would move, such as a percentile), not the random numbers drawn (comparator
        noise). A layer may then leave out the DAC passes that drive no row (their currents are
        0 A exactly; on a ReLU network, the negative phase of a sign-magnitude DAC): the same
        result, without their products and conversions. Default False: every pass is converted.
        """
        return False


@runtime_checkable
class CurrentParts(Protocol):
    """One minibatch of currents as a layer computes them: part after part.

    Iterating computes the parts anew, in order, each ``(B_i, units, channels)`` in amperes
    (rows of the minibatch: together, the whole minibatch, as :meth:`ADC.forward` takes it).
    A part is valid until the next one is drawn, and may be converted in place.
    """

    def __iter__(self) -> Iterator[torch.Tensor]: ...

    def emit(self, digital: torch.Tensor) -> None:
        """The converted values of the part drawn last (same shape; may be its memory)."""
