"""The LUT device in training: a network learns the digits through the measured device's pulses."""

from __future__ import annotations

import pytest

from txsim_core.testing.training import digits_accuracy

pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")


@pytest.mark.slow
def test_the_example_device_trains_the_digits_well_above_chance() -> None:
    accuracy = digits_accuracy(
        {"weight_bits": 8, "device": {"name": "lut"}, "update": {"name": "lut"}}
    )
    assert accuracy > 0.7  # chance is 0.1; native training reaches about 0.95
