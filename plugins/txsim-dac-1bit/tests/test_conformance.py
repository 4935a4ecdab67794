"""The 1-bit DAC passes txsim's conformance kit."""

from __future__ import annotations

from txsim_core.testing.conformance import DACConformance


class TestOneBitDACConformance(DACConformance):
    name = "1bit"
    bits = (2, 4, 8)
    bad_params = [({"v_read": 0.0}, "v_read"), ({"encoding": "gray"}, "encoding")]


class TestTwosComplementConformance(TestOneBitDACConformance):
    params = {"encoding": "twos-complement"}
