"""The voltages a layer drives into its arrays, and the analog product, part by part.

A layer direction drives ``count`` input vectors ("rows": samples, or a convolution's patches)
in ``P`` DAC passes through every array and weight slice. Its currents, ``P x count x`` all the
columns of all arrays and slices, are by far the largest tensor of a training step. On the CPU
the layer therefore computes them in parts of about a million currents: each part's
voltages, product, conversion and recombination stay in the processor's cache, and no tensor of
the size of all currents is ever written to memory (or allocated: a fresh allocation of that
size costs a page fault per 4 KiB, more than the product itself).

:class:`VoltageRows` serves the rows of a voltage tensor, :class:`PatchRows` the patches of a
convolution's input voltages (gathered part by part, never unfolded as a whole);
:class:`PartProduct` computes the currents part after part for the ADC.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from txsim_core.crossbar.functions import ConvGeometry

PART_CURRENTS = 1 << 20
"""Currents per part on the CPU (4 MiB of float32, within the last-level cache; the fastest of
2**16 to 2**23 on a LeNet-5 paper step). A part always holds whole steps
(:attr:`DriveRows.step`), so it is larger where one step holds more."""


class DriveRows(abc.ABC):
    """The voltages of ``passes`` DAC passes on ``count`` rows of ``width`` inputs each."""

    passes: int
    count: int
    width: int
    step: int = 1
    """Parts start and end at multiples of this many rows."""
    dtype: torch.dtype
    device: torch.device

    @abc.abstractmethod
    def write(self, target: torch.Tensor, start: int, stop: int) -> None:
        """Write the voltages of rows ``start:stop`` into ``target`` ``(passes, stop - start,
        width)`` (a view with a row stride of its own)."""

    def parts(self, currents_per_row: int) -> list[tuple[int, int]]:
        """Row bounds of the parts whose currents stay near :data:`PART_CURRENTS` (one part
        off the CPU, where one large product is fastest)."""
        if self.device.type != "cpu" or self.count == 0:
            return [(0, self.count)]
        per_step = max(1, currents_per_row * self.step)
        size = max(1, PART_CURRENTS // per_step) * self.step
        return [(start, min(start + size, self.count)) for start in range(0, self.count, size)]


class VoltageRows(DriveRows):
    """The rows of a voltage tensor ``(passes, count, width)``, as the DAC returns it."""

    def __init__(self, volts: torch.Tensor) -> None:
        self.volts = volts
        self.passes, self.count, self.width = volts.shape
        self.dtype, self.device = volts.dtype, volts.device

    def write(self, target: torch.Tensor, start: int, stop: int) -> None:
        target.copy_(self.volts[:, start:stop])


class PatchRows(DriveRows):
    """The patches of a convolution's input voltages ``(passes, batch, channels, *size)``.

    Row ``b * L + l`` is patch ``l`` (of ``L``, PyTorch's order) of sample ``b``, its inputs in
    the order of ``weight.reshape(out_channels, -1)`` (channel, then kernel position). Parts
    hold whole samples.

    A part is gathered through one index of the input positions of every patch (``(L,
    width)``, shared by all samples and passes): a copy from the strided patch view runs its
    innermost loop over one kernel row only, and costs about 2.5 times as much.
    """

    def __init__(self, volts: torch.Tensor, geometry: ConvGeometry) -> None:
        self.passes, batch, channels = volts.shape[:3]
        size = tuple(volts.shape[3:])
        self.out_size = geometry.output_size(size)
        self.step = math.prod(self.out_size)
        self.count = batch * self.step
        self.width = channels * math.prod(geometry.weight_shape[2:])
        self.dtype, self.device = volts.dtype, volts.device
        self.volts = volts.reshape(self.passes, batch, -1)  # a view for the DAC's own output
        positions = torch.arange(self.volts.shape[-1], device=volts.device)
        patches = geometry.patch_view(positions.view(channels, *size))
        self.positions = patches.reshape(self.step, self.width)

    def write(self, target: torch.Tensor, start: int, stop: int) -> None:
        first, last = start // self.step, stop // self.step
        samples = last - first
        shape = (self.passes, samples, self.step, self.width)
        source = self.volts[:, first:last].unsqueeze(2).expand(*shape[:3], -1)
        torch.gather(source, 3, self.positions.expand(shape), out=target.view(shape))


class PartProduct:
    """The currents of a layer direction, part after part: every pass through every array and
    slice (a :class:`~txsim_core.interfaces.CurrentParts` for the ADC).

    Args:
        rows: the voltages.
        matrix: ``(tiles, width, lines)``: for each array along the input, its differential
            effective conductances (S), ``lines`` = the arrays along the output x slices x
            channels.
        channels: the channels (columns forward, rows backward) of one array.
        bounds: the row bounds ``(start, stop)`` of the parts, in order.
        take: called with the converted values of a part and its bounds (the layer recombines
            them into its result).

    Each part is the currents ``(passes * n, units, channels)`` of rows ``start:stop`` (``n`` of
    them, pass-major), ``units`` = tiles x the arrays along the output x slices: what
    :meth:`~txsim_core.interfaces.ADC.convert_in_place` takes. Its buffers are sized for the
    largest part and reused, so a part lives until the next one is drawn.
    """

    def __init__(
        self,
        rows: DriveRows,
        matrix: torch.Tensor,
        channels: int,
        bounds: list[tuple[int, int]],
        take: Callable[[torch.Tensor, int, int], None],
    ) -> None:
        self.rows, self.matrix, self.channels = rows, matrix, channels
        self.bounds, self.take = bounds, take
        self._drawn = bounds[0]
        tiles, width, lines = matrix.shape
        largest = rows.passes * max(stop - start for start, stop in bounds)
        # inputs of the tiles side by side; the padding beyond `rows.width` stays 0
        self.inputs = torch.zeros(largest, tiles * width, dtype=rows.dtype, device=rows.device)
        # in the ADC's layout (P * n, tiles, lines); the product writes it through a transposed
        # view, so that no copy reorders the tiles
        self.currents = torch.empty(largest, tiles, lines, dtype=rows.dtype, device=rows.device)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for start, stop in self.bounds:
            self._drawn = (start, stop)
            yield self._compute(start, stop)

    def emit(self, digital: torch.Tensor) -> None:
        self.take(digital, *self._drawn)

    def _compute(self, start: int, stop: int) -> torch.Tensor:
        tiles, width = self.matrix.shape[:2]
        batch = self.rows.passes * (stop - start)
        inputs = self.inputs[:batch]
        self.rows.write(
            inputs.view(self.rows.passes, stop - start, tiles * width)[..., : self.rows.width],
            start,
            stop,
        )
        currents = self.currents[:batch]
        torch.bmm(
            inputs.view(batch, tiles, width).transpose(0, 1),
            self.matrix,
            out=currents.transpose(0, 1),
        )
        return currents.view(batch, -1, self.channels)
