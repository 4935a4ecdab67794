"""The PCM models pass txsim's conformance kit."""

from __future__ import annotations

from txsim_core.testing.conformance import MappingConformance, UpdateConformance


class TestPCMMappingConformance(MappingConformance):
    name = "pcm"
    weight_bits = (8,)
    bad_params = [({"drift_nu_mean": 2.0}, "drift_nu_mean"), ({"cell_bits": 0}, "cell_bits")]


class TestPCMUpdateConformance(UpdateConformance):
    name = "pcm"
    bad_params = [({"write_noise": -1.0}, "write_noise"), ({"set_gamma": 1e3}, "set_gamma")]
    changes_without_request = "every pair is checked for a refresh after each update"


class TestPCMUpdateWithoutRefreshConformance(TestPCMUpdateConformance):
    params = {"refresh": False}
    changes_without_request = ""
