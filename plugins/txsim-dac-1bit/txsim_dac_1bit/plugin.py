"""Hook implementations only: this module is what the entry point names."""

from __future__ import annotations

from collections.abc import Iterator

from txsim_core import ModelSpec, hookimpl


@hookimpl
def txsim_dac_models() -> Iterator[ModelSpec]:
    from txsim_dac_1bit.models import OneBitDAC, OneBitDACParams

    yield ModelSpec(
        name="1bit",
        factory=OneBitDAC,
        params=OneBitDACParams,
        summary="1-bit DAC: one pass per input bit at 0 V or v_read, shift-and-add after the ADC",
    )
