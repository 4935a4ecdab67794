"""The spintronic models pass txsim's conformance kit."""

from __future__ import annotations

from txsim_core.testing.conformance import MappingConformance, UpdateConformance


class TestSpintronicMappingConformance(MappingConformance):
    name = "spintronic"
    weight_bits = (4, 8)
    bad_params = [({"r_min": 1e4, "r_max": 1e3}, "r_max"), ({"cell_bits": 0}, "cell_bits")]


class TestSpintronicUpdateConformance(UpdateConformance):
    name = "spintronic"
    bad_params = [({"write_noise": -1.0}, "write_noise")]
