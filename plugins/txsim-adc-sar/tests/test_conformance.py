"""The SAR ADC passes txsim's conformance kit: exact and mismatched, both calibrations."""

from __future__ import annotations

from txsim_core.testing.conformance import ADCConformance


class TestSARConformance(ADCConformance):
    name = "sar"
    params = {"bits": 8}
    bad_params = [({"bits": 1}, "bits"), ({"sigma_cap": -0.1}, "sigma_cap")]


class TestMismatchedPercentileSARConformance(TestSARConformance):
    params = {"bits": 6, "sigma_cap": 0.05, "sigma_offset": 0.3, "calibration": "percentile"}
