"""Hook implementations only: this module is what the entry point names."""

from __future__ import annotations

from collections.abc import Iterator

from txsim_core import ModelSpec, hookimpl


@hookimpl
def txsim_adc_models() -> Iterator[ModelSpec]:
    from txsim_adc_sar.models import SARADC, SARADCParams

    yield ModelSpec(
        name="sar",
        factory=SARADC,
        params=SARADCParams,
        summary="N-bit SAR ADC: capacitor mismatch (DNL/INL), comparator offset and noise",
    )
