"""Hook implementations that register the built-in models (plugin name ``txsim``).

The ``ideal`` model of every kind, the ``multibit`` DAC and the ``uniform`` ADC.
"""

from __future__ import annotations

from collections.abc import Iterator

from txsim_core.hookspecs import hookimpl
from txsim_core.specs import ModelSpec


@hookimpl
def txsim_dac_models() -> Iterator[ModelSpec]:
    from txsim_core.builtin.ideal import IdealDAC, IdealDACParams

    yield ModelSpec(
        name="ideal",
        factory=IdealDAC,
        params=IdealDACParams,
        summary="Exact bipolar DAC, one pass: V = x * v_read",
    )
    from txsim_core.builtin.converters import MultiBitDAC, MultiBitDACParams

    yield ModelSpec(
        name="multibit",
        factory=MultiBitDAC,
        params=MultiBitDACParams,
        summary="b-bit DAC, unipolar (2 passes) or bipolar, INL polynomial or CSV curve",
    )


@hookimpl
def txsim_adc_models() -> Iterator[ModelSpec]:
    from txsim_core.builtin.ideal import IdealADC, NoParams

    yield ModelSpec(
        name="ideal",
        factory=IdealADC,
        params=NoParams,
        summary="Exact ADC: infinite resolution and range",
    )
    from txsim_core.builtin.converters import UniformADC, UniformADCParams

    yield ModelSpec(
        name="uniform",
        factory=UniformADC,
        params=UniformADCParams,
        summary="N-bit uniform quantizer, INL, saturation, fixed or calibrated full scale",
    )


@hookimpl
def txsim_mapping_models() -> Iterator[ModelSpec]:
    from txsim_core.builtin.ideal import IdealMapping, IdealMappingParams

    yield ModelSpec(
        name="ideal",
        factory=IdealMapping,
        params=IdealMappingParams,
        summary="Linear mapping onto differential pairs in [g_min, g_max], no errors",
    )


@hookimpl
def txsim_solver_models() -> Iterator[ModelSpec]:
    from txsim_core.builtin.ideal import IdealSolver, NoParams

    yield ModelSpec(
        name="ideal",
        factory=IdealSolver,
        params=NoParams,
        summary="Zero-resistance wires: I = V @ G",
    )


@hookimpl
def txsim_update_models() -> Iterator[ModelSpec]:
    from txsim_core.builtin.ideal import IdealUpdate, IdealUpdateParams

    yield ModelSpec(
        name="ideal",
        factory=IdealUpdate,
        params=IdealUpdateParams,
        summary="Exact update: the requested change, clipped to [g_min, g_max]",
    )
