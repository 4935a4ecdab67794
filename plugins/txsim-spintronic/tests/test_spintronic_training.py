"""The spintronic device in training: a network learns the digits with few, noisy levels."""

from __future__ import annotations

import pytest

from txsim_core.testing.training import digits_accuracy

pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")


@pytest.mark.slow
def test_spintronic_trains_the_digits_well_above_chance() -> None:
    accuracy = digits_accuracy(
        {"weight_bits": 8, "device": {"name": "spintronic"}, "update": {"name": "spintronic"}}
    )
    assert accuracy > 0.75  # chance is 0.1; native training reaches about 0.95
