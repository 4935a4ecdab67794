"""The ``ideal`` model of every kind: the exact limit that non-ideal models are compared with."""

from __future__ import annotations

import attrs
import torch

from txsim_core.errors import ConfigError
from txsim_core.interfaces import ADC, DAC, ArraySolver, DifferentialMapping, UpdateModel
from txsim_core.interfaces.solver import Direction
from txsim_core.params import (
    ConductanceRange,
    cell_bits_parameter,
    check_conductance_range,
    conductance_parameter,
    parameter,
)


@attrs.frozen(kw_only=True)
class IdealDACParams:
    """Parameters of the exact DAC."""

    v_read: float = parameter(
        1.0,
        unit="V",
        low=0.0,
        low_open=True,
        high=10.0,
        help="Voltage of a full-scale input (|x| = 1); inputs map linearly onto [-v_read, v_read].",
    )


class IdealDAC(DAC):
    """Exact, bipolar DAC: one pass, ``V = x * v_read``."""

    is_exact = True

    def num_passes(self, bits: int | None) -> int:
        return 1

    def forward(self, x: torch.Tensor, bits: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        v_read = self.params.v_read
        weights = torch.tensor([1.0 / v_read], dtype=x.dtype, device=x.device)
        return (x * v_read).unsqueeze(0), weights


@attrs.frozen(kw_only=True)
class NoParams:
    """This model takes no parameters."""


class IdealADC(ADC):
    """Exact ADC: the digital value is the current itself (infinite resolution and range)."""

    is_exact = True

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return current


@attrs.frozen(kw_only=True)
class IdealMappingParams:
    """Parameters of the ideal device."""

    g_min: float = conductance_parameter(1e-6, "Lowest conductance of a device.")
    g_max: float = conductance_parameter(1e-5, "Highest conductance of a device.")
    cell_bits: int | None = cell_bits_parameter(None)

    def __attrs_post_init__(self) -> None:
        check_conductance_range(self)


class IdealMapping(ConductanceRange, DifferentialMapping):
    """Linear weight-to-conductance mapping on differential pairs, with no device errors."""


class IdealSolver(ArraySolver):
    """Wires of zero resistance: the effective conductances are the cell conductances."""

    is_exact = True

    def effective_conductance(
        self, g: torch.Tensor, direction: Direction = "forward"
    ) -> torch.Tensor:
        if direction not in ("forward", "backward"):
            raise ConfigError(
                f"Expected `direction` to be 'forward' or 'backward', but got {direction!r}."
            )
        return g


@attrs.frozen(kw_only=True)
class IdealUpdateParams:
    """Parameters of the exact update."""

    g_min: float = conductance_parameter(1e-6, "Lowest conductance of a device.")
    g_max: float = conductance_parameter(1e-5, "Highest conductance of a device.")

    def __attrs_post_init__(self) -> None:
        check_conductance_range(self)


class IdealUpdate(ConductanceRange, UpdateModel):
    """Writes exactly the requested change, clipped to ``[g_min, g_max]``."""

    def step(
        self, g: torch.Tensor, dg: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return (g + dg).clamp(self.g_min, self.g_max)
