"""The SAR ADC in data-parallel training: replicas share one calibration and one device state."""

from __future__ import annotations

import pytest

from txsim_core.testing.replicas import differing_entries, replica_states

pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")


def test_data_parallel_replicas_keep_one_state_with_comparator_noise_and_mismatch() -> None:
    """Each replica draws its own comparator noise for its share of a minibatch, yet both end
    with the same calibrated full scales, capacitor mismatch, conductances and random stream."""
    states = replica_states(
        {
            "rows": 32,
            "cols": 32,
            "input_bits": 6,
            "error_bits": 6,
            "weight_bits": 6,
            "adc": {"name": "sar", "bits": 6, "sigma_cap": 0.02, "sigma_noise": 0.5},
        },
        limit_train=256,
    )
    assert "fc1.crossbar.adc.scale.value" in states[0]
    assert "fc1.crossbar.adc_backward.cap_weights" in states[0]
    assert differing_entries(states) == []
