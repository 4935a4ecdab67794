"""Hook implementations only: this module is what the entry point names."""

from __future__ import annotations

from collections.abc import Iterator

from txsim_core import ModelSpec, hookimpl


@hookimpl
def txsim_mapping_models() -> Iterator[ModelSpec]:
    from txsim_spintronic.models import SpintronicMapping, SpintronicMappingParams

    yield ModelSpec(
        name="spintronic",
        factory=SpintronicMapping,
        params=SpintronicMappingParams,
        summary="Domain-wall MTJ, 5-10 kOhm, 2-bit cells; variation and stuck-at faults",
    )


@hookimpl
def txsim_update_models() -> Iterator[ModelSpec]:
    from txsim_spintronic.models import SpintronicUpdate, SpintronicUpdateParams

    yield ModelSpec(
        name="spintronic",
        factory=SpintronicUpdate,
        params=SpintronicUpdateParams,
        summary="Linear, symmetric update; stochastic switching between levels, Gaussian noise",
    )
