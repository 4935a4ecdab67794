"""Hook implementations only: this module is what the entry point names."""

from __future__ import annotations

from collections.abc import Iterator

from txsim_core import ModelSpec, hookimpl


@hookimpl
def txsim_solver_models() -> Iterator[ModelSpec]:
    from txsim_fcm.models import FCMParams, FCMSolver

    yield ModelSpec(
        name="fcm",
        factory=FCMSolver,
        params=FCMParams,
        summary="Exact circuit solve: wire, driver and sense resistances, sneak paths",
    )
