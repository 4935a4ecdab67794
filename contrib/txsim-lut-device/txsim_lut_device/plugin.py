"""Hook implementations only: this module is what the entry point names."""

from __future__ import annotations

from collections.abc import Iterator

from txsim_core import ModelSpec, hookimpl


@hookimpl
def txsim_mapping_models() -> Iterator[ModelSpec]:
    from txsim_lut_device.models import LUTMapping, LUTMappingParams

    yield ModelSpec(
        name="lut",
        factory=LUTMapping,
        params=LUTMappingParams,
        summary="Measured device (CSV of conductance vs pulse): weights within its measured range",
    )


@hookimpl
def txsim_update_models() -> Iterator[ModelSpec]:
    from txsim_lut_device.models import LUTUpdate, LUTUpdateParams

    yield ModelSpec(
        name="lut",
        factory=LUTUpdate,
        params=LUTUpdateParams,
        summary="Measured device: whole pulses along its mean potentiation/depression curves, "
        "cycle-to-cycle noise estimated from repeated cycles",
    )
