"""Hook implementations only: this module is what the entry point names."""

from __future__ import annotations

from collections.abc import Iterator

from txsim_core import ModelSpec, hookimpl


@hookimpl
def txsim_solver_models() -> Iterator[ModelSpec]:
    from txsim_aam.models import AAMParams, AAMSolver

    yield ModelSpec(
        name="aam",
        factory=AAMSolver,
        params=AAMParams,
        summary="Approximate analytical model: dominant current paths, order trades accuracy for speed",
    )
