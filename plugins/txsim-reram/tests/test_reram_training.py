"""The ReRAM device in training: bit-sliced weights update as the paper says, and networks learn."""

from __future__ import annotations

import pytest
import torch

from txsim_core import CrossbarLinear
from txsim_core.testing.training import digits_accuracy

pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn")

LEVELS = 127  # 8-bit weights: magnitudes 0..127 in steps of w_max / 127


def sliced_layer(sliced_update: str, write_noise: float) -> CrossbarLinear:
    config = {
        "crossbar": {
            "weight_bits": 8,
            "w_max": 1.0,
            "update_rounding": "nearest",
            "sliced_update": sliced_update,
            "device": {"name": "reram", "cell_bits": 2},
            "update": {"name": "reram", "nonlinearity": 1e-6, "write_noise": write_noise},
        }
    }
    # every weight sits just below a carry of its base-4 digits: 15, 31, 47 or 63 LSB
    codes = torch.tensor([15.0, 31.0, 47.0, 63.0]).repeat(64 * 64 // 4).view(64, 64)
    return CrossbarLinear(64, 64, bias=False, config=config, seed=1, weight=codes / LEVELS)


@pytest.mark.parametrize("gamma", [1.0, 5.0])
def test_write_noise_of_a_sliced_weight_scales_with_the_weight_update(gamma: float) -> None:
    """Section IV-C: the noise is proportional to the size of the gradient step. With
    sliced_update='weight' a two-LSB step moves the weight by 2 LSB +- gamma * 2 LSB (then
    rounded); updating each cell on its own ('cells') turns the carry into whole-level jumps of
    the high digits, each with gamma times that jump of noise."""
    step = 2.0 / LEVELS
    errors = {}
    for mode in ("weight", "cells"):
        layer = sliced_layer(mode, gamma)
        before = layer.weight.detach().clone()
        layer.crossbar.apply_update(torch.full_like(before, step))
        errors[mode] = (layer.weight.detach() - before - step) * LEVELS  # in LSB
    rms_weight = errors["weight"].pow(2).mean().sqrt().item()
    # gamma * |step| of Gaussian noise, plus at most half an LSB of rounding
    assert rms_weight == pytest.approx(gamma * 2.0, rel=0.15, abs=0.5)
    assert errors["cells"].pow(2).mean().sqrt().item() > 3 * rms_weight


def test_without_noise_both_sliced_updates_write_the_rounded_weight() -> None:
    for mode in ("weight", "cells"):
        layer = sliced_layer(mode, 0.0)
        before = layer.weight.detach().clone()
        layer.crossbar.apply_update(torch.full_like(before, 2.0 / LEVELS))
        assert torch.allclose(layer.weight.detach(), before + 2.0 / LEVELS, atol=1e-5)


@pytest.mark.slow
def test_reram_trains_the_digits_well_above_chance() -> None:
    accuracy = digits_accuracy(
        {"weight_bits": 8, "device": {"name": "reram"}, "update": {"name": "reram"}}
    )
    assert accuracy > 0.75  # chance is 0.1; native training reaches about 0.95


def test_data_parallel_replicas_keep_one_state_with_variation_and_write_noise() -> None:
    """Two replicas, each with half of every minibatch, end with bit-identical conductances and
    random streams: the ReRAM update draws the same write noise on both."""
    from txsim_core.testing.replicas import differing_entries, replica_states

    states = replica_states(
        {
            "rows": 32,
            "cols": 32,
            "weight_bits": 8,
            "device": {"name": "reram", "variation": "lognormal", "variation_sigma": 0.1},
            "update": {"name": "reram", "nonlinearity": 0.5, "write_noise": 5.0},
        },
        limit_train=256,
    )
    assert differing_entries(states) == []
