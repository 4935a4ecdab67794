"""Hook implementations only: this module is what the entry point names."""

from __future__ import annotations

from collections.abc import Iterator

from txsim_core import ModelSpec, hookimpl


@hookimpl
def txsim_mapping_models() -> Iterator[ModelSpec]:
    from txsim_reram.models import ReRAMMapping, ReRAMMappingParams

    yield ModelSpec(
        name="reram",
        factory=ReRAMMapping,
        params=ReRAMMappingParams,
        summary="Ag/Si ReRAM, 100 kOhm-1 MOhm, 2-bit cells; variation and stuck-at faults",
    )


@hookimpl
def txsim_update_models() -> Iterator[ModelSpec]:
    from txsim_reram.models import ReRAMUpdate, ReRAMUpdateParams

    yield ModelSpec(
        name="reram",
        factory=ReRAMUpdate,
        params=ReRAMUpdateParams,
        summary="TxSim eq. (1): non-linear update (v) with Gaussian write noise (gamma), clipped",
    )
