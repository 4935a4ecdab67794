"""The built-in models pass the conformance kit that plugins use (txsim_core.testing.conformance)."""

from __future__ import annotations

from txsim_core.testing.conformance import (
    ADCConformance,
    DACConformance,
    MappingConformance,
    SolverConformance,
    UpdateConformance,
)

UNKNOWN = ({"bogus": 1}, "Unknown parameter 'bogus'")


class TestIdealDAC(DACConformance):
    name = "ideal"
    bits = (None, 4, 8)
    bad_params = [UNKNOWN, ({"v_read": 0.0}, "v_read")]


class TestMultibitDAC(DACConformance):
    name = "multibit"
    bad_params = [({"v_max": -1.0}, "v_max"), ({"bits": 0}, "bits")]


class TestIdealADC(ADCConformance):
    name = "ideal"
    bad_params = [UNKNOWN]


class TestUniformADC(ADCConformance):
    name = "uniform"
    params = {"bits": 8}
    bad_params = [({"bits": 0}, "bits"), ({"percentile": 0.0}, "percentile")]


class TestUniformPercentileADC(TestUniformADC):
    params = {"bits": 6, "calibration": "percentile", "calibration_batches": 2}


class TestIdealMapping(MappingConformance):
    name = "ideal"
    weight_bits = (4, 8)
    params = {"cell_bits": 2}
    bad_params = [({"g_min": 1e-4, "g_max": 1e-5}, "g_max")]


class TestIdealSolver(SolverConformance):
    name = "ideal"
    bad_params = [UNKNOWN]


class TestIdealUpdate(UpdateConformance):
    name = "ideal"
    bad_params = [({"g_min": 0.0}, "g_min")]


def test_the_kit_is_opt_in():
    """Nothing in the kit is collected unless a test module subclasses it under a Test name, and
    txsim registers no pytest plugin that would load it into other projects' runs."""
    import importlib.metadata

    import txsim_core.testing.conformance as kit

    assert not [name for name in vars(kit) if name.startswith("Test")]
    pytest_plugins = importlib.metadata.entry_points(group="pytest11")
    assert not [ep for ep in pytest_plugins if ep.dist and ep.dist.name == "txsim"]
