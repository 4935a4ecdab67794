"""The spintronic device: a domain-wall magnetic tunnel junction (DW-MTJ) synapse.

A DW-MTJ's conductance is set by the position of a domain wall in its free layer: linear in the
position, symmetric for both directions, between the parallel (``r_min``) and antiparallel
(``r_max``) resistance of the junction. Notches pin the wall at ``2**cell_bits`` stable positions
(levels); ``cell_bits = 1`` is a plain binary MTJ. A write moves the wall by a distance
proportional to the requested change; thermally activated depinning makes the final position
random: it lands on one of the two neighbouring notches with the probabilities that make the
expected change equal to the request (stochastic switching).

Both models take the device's range as ``r_min`` and ``r_max`` (ohms), and the update takes the
device's ``cell_bits``, so that a layer can hand the device's values to both.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from txsim_core.device_errors import (
    DeviceErrorMapping,
    check_stuck_fractions,
    stuck_parameter,
    variation_parameter,
    variation_sigma_parameter,
)
from txsim_core.interfaces import UpdateModel
from txsim_core.params import (
    ResistanceRange,
    check_resistance_range,
    parameter,
    resistance_parameter,
)

R_MIN = 5e3
"""Parallel-state resistance of the default junction, in ohms (see the README)."""
R_MAX = 10e3
"""Antiparallel-state resistance of the default junction (TMR = 100 %), in ohms."""


def _cell_bits(what: str) -> Any:
    return parameter(
        2,
        kind=int,
        low=1,
        high=16,
        optional=True,
        help=f"Bits per device: 2**cell_bits stable domain-wall positions (1: a binary MTJ). "
        f"{what} None: a continuous device.",
    )


@attrs.frozen(kw_only=True)
class SpintronicMappingParams:
    """Parameters of the spintronic device as the arrays hold it."""

    r_min: float = resistance_parameter(R_MIN, "min", "parallel MTJ state")
    r_max: float = resistance_parameter(R_MAX, "max", "antiparallel MTJ state")
    cell_bits: int | None = _cell_bits("Weights of more bits are sliced over several devices.")
    variation: str = variation_parameter()
    variation_sigma: float = variation_sigma_parameter()
    stuck_min_fraction: float = stuck_parameter("min")
    stuck_max_fraction: float = stuck_parameter("max")

    def __attrs_post_init__(self) -> None:
        check_resistance_range(self)
        check_stuck_fractions(self)


class SpintronicMapping(ResistanceRange, DeviceErrorMapping):
    """DW-MTJ devices on differential pairs, with variation and stuck devices.

    Encoding as :class:`~txsim_core.interfaces.DifferentialMapping` (``2**cell_bits`` levels per
    device); variation and stuck devices as
    :class:`~txsim_core.device_errors.DeviceErrorMapping`.
    """


@attrs.frozen(kw_only=True)
class SpintronicUpdateParams:
    """Parameters of the spintronic update."""

    r_min: float = resistance_parameter(R_MIN, "min", "parallel MTJ state")
    r_max: float = resistance_parameter(R_MAX, "max", "antiparallel MTJ state")
    cell_bits: int | None = _cell_bits("Updates land on these levels.")
    write_noise: float = parameter(
        0.0,
        low=0.0,
        help="sigma0 of the Gaussian noise of the domain-wall displacement: its standard deviation "
        "is sigma0 * sqrt((G_max - G_min) * |dG|), i.e. sigma0 spans for a full-range write. "
        "0: none (the switching stays stochastic on a device with levels).",
    )
    rounding: str = parameter(
        "stochastic",
        kind=str,
        choices=("stochastic", "nearest"),
        help="How a write lands on a level: 'stochastic' (on a neighbouring level, unbiased: "
        "thermally activated depinning) or 'nearest' (deterministic). Unused when cell_bits "
        "is None.",
    )

    def __attrs_post_init__(self) -> None:
        check_resistance_range(self)


class SpintronicUpdate(ResistanceRange, UpdateModel):
    """A linear, symmetric update with stochastic switching between the device's levels.

    With ``span = G_max - G_min``, a device at ``G`` asked for ``dG``:

    1. the target is ``T = clip(G + dG + sigma * z, G_min, G_max)``, ``z ~ N(0, 1)``,
       ``sigma = write_noise * sqrt(span * |dG|)``;
    2. with ``cell_bits = k``, levels ``L_j = G_min + j / (2**k - 1) * span``: the device lands on
       the level above ``T`` with probability ``(T - L_below) / (L_above - L_below)`` and on the
       level below otherwise (``rounding = "stochastic"``, so ``E[G_new] = T``), or on the nearest
       level (``"nearest"``); with ``cell_bits = None`` it takes ``T``;
    3. ``dG = 0`` changes nothing.

    For a binary MTJ at ``G_min`` this is switching with probability ``dG / span``.
    """

    def write_noise_std(self, dg: torch.Tensor) -> torch.Tensor:
        """Standard deviation of the displacement noise for requested changes ``dg``, in S."""
        return self.params.write_noise * torch.sqrt(dg.abs() * (self.g_max - self.g_min))

    def step(
        self, g: torch.Tensor, dg: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Apply one update: linear target, displacement noise, landing on a level."""
        target = g + dg
        if self.params.write_noise > 0:
            z = torch.randn(target.shape, generator=generator, dtype=g.dtype, device=g.device)
            target = target + z * self.write_noise_std(dg)
        target = target.clamp(self.g_min, self.g_max)
        if self.params.cell_bits is not None:
            levels = 2**self.params.cell_bits - 1
            span = self.g_max - self.g_min
            position = (target - self.g_min) * (levels / span)
            if self.params.rounding == "stochastic":
                below = torch.floor(position)
                u = torch.rand(position.shape, generator=generator, dtype=g.dtype, device=g.device)
                position = below + (u < position - below).to(g.dtype)
            else:
                position = torch.round(position)
            # the same arithmetic as DifferentialMapping.encode, so updated devices sit exactly
            # on the levels that encoding writes
            target = position.clamp(0, levels) / levels * span + self.g_min
        return torch.where(dg == 0, g, target)
