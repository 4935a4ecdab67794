"""The template's model: parameters declared once, with units and ranges, and the model class."""

from __future__ import annotations

import attrs

from txsim_core.interfaces import DifferentialMapping
from txsim_core.params import cell_bits_parameter, parameter


@attrs.frozen(kw_only=True)
class TemplateDeviceParams:
    """Parameters of the template device."""

    r_on: float = parameter(
        100e3,
        unit="Ohm",
        low=0.0,
        low_open=True,
        help="Resistance of a fully on device; its highest conductance is 1/r_on.",
    )
    r_off: float = parameter(
        1e6,
        unit="Ohm",
        low=0.0,
        low_open=True,
        help="Resistance of a fully off device; its lowest conductance is 1/r_off.",
    )
    cell_bits: int | None = cell_bits_parameter(None)

    def __attrs_post_init__(self) -> None:
        if self.r_off <= self.r_on:
            raise ValueError(
                "Expected `r_off` to be greater than `r_on`, but got "
                f"r_on={self.r_on!r}, r_off={self.r_off!r}."
            )


class TemplateDevice(DifferentialMapping):
    """A device whose conductance spans [1/r_off, 1/r_on], mapped linearly onto pairs."""

    @property
    def g_min(self) -> float:
        return 1.0 / self.params.r_off

    @property
    def g_max(self) -> float:
        return 1.0 / self.params.r_on
