"""The ReRAM models pass txsim's conformance kit."""

from __future__ import annotations

from txsim_core.testing.conformance import MappingConformance, UpdateConformance


class TestReRAMMappingConformance(MappingConformance):
    name = "reram"
    weight_bits = (4, 8)
    params = {"variation_sigma": 0.1, "stuck_min_fraction": 0.01}
    bad_params = [({"r_min": 1e6, "r_max": 1e5}, "r_max"), ({"variation": "uniform"}, "variation")]


class TestReRAMUpdateConformance(UpdateConformance):
    name = "reram"
    bad_params = [({"nonlinearity": -1.0}, "nonlinearity"), ({"write_noise": -1.0}, "write_noise")]
