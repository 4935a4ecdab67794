"""The ReRAM device: its mapping (levels, variation, stuck devices) and its update (TxSim eq. 1).

Both models take the device's range as ``r_min`` and ``r_max`` (ohms), so that a layer can check
that they describe the same device: ``g_min = 1/r_max`` and ``g_max = 1/r_min``.
"""

from __future__ import annotations

import math

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
    cell_bits_parameter,
    check_resistance_range,
    parameter,
    resistance_parameter,
)

R_MIN = 100e3
"""Lowest resistance of the Ag/Si device of the TxSim paper (Sec. V), in ohms."""
R_MAX = 1e6
"""Highest resistance of the same device, in ohms."""


@attrs.frozen(kw_only=True)
class ReRAMMappingParams:
    """Parameters of the ReRAM device as the arrays hold it."""

    r_min: float = resistance_parameter(R_MIN, "min", "fully on")
    r_max: float = resistance_parameter(R_MAX, "max", "fully off")
    cell_bits: int | None = cell_bits_parameter(2, "2: four levels, as in the TxSim paper")
    variation: str = variation_parameter()
    variation_sigma: float = variation_sigma_parameter()
    stuck_min_fraction: float = stuck_parameter("min")
    stuck_max_fraction: float = stuck_parameter("max")

    def __attrs_post_init__(self) -> None:
        check_resistance_range(self)
        check_stuck_fractions(self)


class ReRAMMapping(ResistanceRange, DeviceErrorMapping):
    """ReRAM devices on differential pairs, with variation and stuck devices.

    Weights are encoded by :class:`~txsim_core.interfaces.DifferentialMapping` (sign-magnitude,
    ``2**cell_bits`` levels per device). :meth:`setup` samples each device's variation factor and
    stuck state once; :meth:`realize` applies them: ``G_real = G_ideal * scale`` for a working
    device, exactly ``G_min`` or ``G_max`` for a stuck one (see
    :class:`~txsim_core.device_errors.DeviceErrorMapping`).
    """


@attrs.frozen(kw_only=True)
class ReRAMUpdateParams:
    """Parameters of the ReRAM update (TxSim paper, Sec. IV-C, eq. 1)."""

    r_min: float = resistance_parameter(R_MIN, "min", "fully on")
    r_max: float = resistance_parameter(R_MAX, "max", "fully off")
    nonlinearity: float = parameter(
        0.01,
        low=0.0,
        high=100.0,
        help="Update non-linearity factor v of eq. (1); 0: linear update. The paper uses 0.01 "
        "and finds no accuracy loss up to 0.1, a visible one at 0.5, no convergence at 1.",
    )
    write_noise: float = parameter(
        5.0,
        low=0.0,
        help="Write-noise factor gamma: the noise's standard deviation is gamma * |dG_ideal| "
        "(noise_scaling 'linear') or gamma * sqrt((G_max - G_min) * |dG_ideal|) ('sqrt'). "
        "0: no noise. The paper uses 5.",
    )
    noise_scaling: str = parameter(
        "linear",
        kind=str,
        choices=("linear", "sqrt"),
        help="How the write noise grows with the requested change: 'linear' (the paper's "
        "formula with conductances in units of G_max - G_min) or 'sqrt' (CrossSim v2).",
    )

    def __attrs_post_init__(self) -> None:
        check_resistance_range(self)


class ReRAMUpdate(ResistanceRange, UpdateModel):
    """TxSim's update: the non-linear change of eq. (1), plus Gaussian write noise, clipped.

    With ``span = G_max - G_min``, ``d = |dG_ideal| / span``, ``e = 1 - exp(-v d)`` and
    ``A = span / (1 - exp(-v))``:

    - ``dG_ideal > 0``: ``dG = (A + G_min - G) * e`` (eq. 1, case 1, as printed);
    - ``dG_ideal < 0``: ``dG = -(A - G_max + G) * e`` (case 2 with the sign of the change taken
      out of the exponent, the mirror image of case 1: see the README);
    - ``dG_ideal = 0``: nothing changes.

    Then ``G_new = clip(G + dG + sigma * z, G_min, G_max)`` with ``z ~ N(0, 1)`` and ``sigma`` as
    :meth:`write_noise_std` gives.
    """

    def nonideal_change(self, g: torch.Tensor, dg: torch.Tensor) -> torch.Tensor:
        """``dG_nonideal`` of eq. (1): the change written for a requested one, before noise.

        Args:
            g: present conductances, in siemens.
            dg: requested changes, in siemens, same shape.
        """
        v = float(self.params.nonlinearity)
        if v == 0.0:
            return dg
        span = self.g_max - self.g_min
        e = -torch.expm1(dg.abs() * (-v / span))  # 1 - exp(-v |d|)
        span_f = e * (span / -math.expm1(-v))  # A * e, without forming A (large for small v)
        up = span_f - (g - self.g_min) * e  # (A + G_min - G) * e
        down = (self.g_max - g) * e - span_f  # -(A - G_max + G) * e
        return torch.where(dg > 0, up, down)

    def write_noise_std(self, dg: torch.Tensor) -> torch.Tensor:
        """Standard deviation of the write noise for requested changes ``dg``, in siemens."""
        gamma = float(self.params.write_noise)
        if self.params.noise_scaling == "sqrt":
            return gamma * torch.sqrt(dg.abs() * (self.g_max - self.g_min))
        return gamma * dg.abs()

    def step(
        self, g: torch.Tensor, dg: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Apply one update: eq. (1), write noise, clipping to ``[G_min, G_max]``."""
        change = self.nonideal_change(g, dg)
        if self.params.write_noise > 0:
            z = torch.randn(change.shape, generator=generator, dtype=g.dtype, device=g.device)
            change = change + z * self.write_noise_std(dg)
        new = (g + change).clamp(self.g_min, self.g_max)
        return torch.where(dg == 0, g, new)
