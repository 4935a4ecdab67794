"""A minibatch of currents offered to an ADC in parts, as a layer on the CPU offers it."""

from __future__ import annotations

from collections.abc import Iterator

import torch


class SplitCurrents:
    """A :class:`~txsim_core.interfaces.CurrentParts` over a tensor, split along its rows, that
    records what the converter did.

    Args:
        current: the minibatch ``(B, units, channels)``.
        size: rows per part (the last part may hold fewer).

    Attributes:
        drawn: how many parts the converter has drawn (a pass over all of them draws each once).
        result: the values emitted last for each part (None where none was emitted).
    """

    def __init__(self, current: torch.Tensor, size: int) -> None:
        self.parts = list(current.split(size))
        self.drawn = 0
        self.result: list[torch.Tensor | None] = [None] * len(self.parts)
        self._last = 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        for i, part in enumerate(self.parts):
            self.drawn += 1
            self._last = i
            yield part.clone()  # the converter may overwrite it

    def emit(self, digital: torch.Tensor) -> None:
        self.result[self._last] = digital.clone()

    def converted(self) -> torch.Tensor:
        """The emitted values of every part, concatenated (all parts must have been emitted)."""
        missing = [i for i, part in enumerate(self.result) if part is None]
        if missing:
            raise AssertionError(
                f"Expected every part to be emitted, but parts {missing} were not."
            )
        return torch.cat([part for part in self.result if part is not None])
