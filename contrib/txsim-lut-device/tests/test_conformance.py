"""The LUT models pass txsim's conformance kit."""

from __future__ import annotations

from txsim_core.testing.conformance import MappingConformance, UpdateConformance


class TestLUTMappingConformance(MappingConformance):
    name = "lut"
    weight_bits = (None, 8)
    bad_params = [
        ({"data": "/nonexistent/device.csv"}, "no such file"),
        ({"cell_bits": 0}, "cell_bits"),
    ]


class TestLUTMappingSlicedConformance(MappingConformance):
    name = "lut"
    params = {"cell_bits": 2}
    weight_bits = (4, 8)
    bad_params = [({"cell_bits": 17}, "cell_bits")]


class TestLUTUpdateConformance(UpdateConformance):
    name = "lut"
    bad_params = [
        ({"rounding": "floor"}, "rounding"),
        ({"noise_scale": -1.0}, "noise_scale"),
        ({"sigma_step": -1e-9}, "sigma_step"),
        ({"data": "/nonexistent/device.csv"}, "no such file"),
    ]


class TestLUTUpdateNearestConformance(UpdateConformance):
    name = "lut"
    params = {"rounding": "nearest", "noise_scale": 2.0}
    bad_params = [({"rounding": "Nearest"}, "rounding")]
