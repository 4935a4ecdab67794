"""Hook implementations only: this module is what the entry point names."""

from __future__ import annotations

from collections.abc import Iterator

from txsim_core import ModelSpec, hookimpl


@hookimpl
def txsim_mapping_models() -> Iterator[ModelSpec]:
    from txsim_template.models import TemplateDevice, TemplateDeviceParams

    yield ModelSpec(
        name="template",
        factory=TemplateDevice,
        params=TemplateDeviceParams,
        summary="Template device: continuous, between r_on and r_off",
    )
