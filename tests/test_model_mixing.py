"""One network whose layers use different registered plugin models, trained together."""

from __future__ import annotations

import pytest

from txsim_core.manager import ENV_DISABLE_AUTOLOAD
from txsim_core.registry import list_models, reset_registry
from txsim_core.testing.training import digits_accuracy

pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")

NEEDED = {
    "mapping": {"pcm", "reram", "spintronic"},
    "update": {"pcm", "reram", "spintronic"},
    "dac": {"1bit", "multibit"},
    "adc": {"sar", "uniform"},
    "solver": {"fcm", "aam"},
}


@pytest.fixture
def installed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test uses the plugins of this repository, installed (requirements-dev.txt)."""
    monkeypatch.delenv(ENV_DISABLE_AUTOLOAD)
    reset_registry()
    for kind, names in NEEDED.items():
        missing = names - {spec.name for spec in list_models(kind)}
        if missing:
            pytest.skip(f"plugins not installed: {kind} {sorted(missing)}")


@pytest.mark.slow
@pytest.mark.usefixtures("installed_plugins")
def test_pcm_for_one_layer_and_reram_for_the_rest_train_together() -> None:
    crossbar = {
        "weight_bits": 8,
        "device": {"name": "reram"},
        "update": {"name": "reram"},
        "layers": [{"match": "fc1", "device": {"name": "pcm"}, "update": {"name": "pcm"}}],
    }
    assert digits_accuracy(crossbar) > 0.75


@pytest.mark.slow
@pytest.mark.usefixtures("installed_plugins")
def test_every_slot_mixed_per_layer_trains() -> None:
    """fc1: PCM, 1-bit DAC, SAR ADC, FCM; fc2: spintronic, multi-bit DAC, uniform ADC, AAM."""
    crossbar = {
        "rows": 32,
        "cols": 32,
        "weight_bits": 8,
        "input_bits": 8,
        "error_bits": 8,
        "layers": [
            {
                "match": "fc1",
                "device": {"name": "pcm"},
                "update": {"name": "pcm"},
                "dac": {"name": "1bit"},
                "adc": {"name": "sar", "bits": 8},
                "solver": {"name": "fcm", "refresh_every": 5},
            },
            {
                "match": "fc2",
                "device": {"name": "spintronic"},
                "update": {"name": "spintronic"},
                "dac": {"name": "multibit"},
                "adc": {"name": "uniform", "bits": 8},
                "solver": {"name": "aam"},
            },
        ],
    }
    assert digits_accuracy(crossbar, epochs=2) > 0.6
