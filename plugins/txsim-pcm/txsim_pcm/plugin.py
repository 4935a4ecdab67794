"""Hook implementations only: this module is what the entry point names."""

from __future__ import annotations

from collections.abc import Iterator

from txsim_core import ModelSpec, hookimpl


@hookimpl
def txsim_mapping_models() -> Iterator[ModelSpec]:
    from txsim_pcm.models import PCMMapping, PCMMappingParams

    yield ModelSpec(
        name="pcm",
        factory=PCMMapping,
        params=PCMMappingParams,
        summary="PCM on differential pairs: drift G(t) = G(t0) (t/t0)^-nu, d2d variation",
    )


@hookimpl
def txsim_update_models() -> Iterator[ModelSpec]:
    from txsim_pcm.models import PCMUpdate, PCMUpdateParams

    yield ModelSpec(
        name="pcm",
        factory=PCMUpdate,
        params=PCMUpdateParams,
        summary="PCM update: gradual SET only (exp-step law), lognormal write noise, pair refresh",
    )
