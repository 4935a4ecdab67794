"""Device-to-device variation and stuck devices, against scipy's distributions."""

from __future__ import annotations

import math

import pytest
import scipy.stats
import torch

from txsim_core.device_errors import apply_device_errors, sample_device_errors

SHAPE = (40_000,)


def sample(**kwargs):
    options = {"variation": "lognormal", "sigma": 0.0, "stuck_min": 0.0, "stuck_max": 0.0}
    generator = torch.Generator().manual_seed(7)
    return sample_device_errors(SHAPE, generator, **(options | kwargs))


@pytest.mark.parametrize("sigma", [0.05, 0.3, 1.0])
def test_lognormal_variation_follows_the_lognormal_law(sigma: float) -> None:
    scale, stuck = sample(variation="lognormal", sigma=sigma)
    assert stuck is None
    result = scipy.stats.kstest(scale.double().numpy(), scipy.stats.lognorm(s=sigma).cdf)
    assert result.pvalue > 1e-3


@pytest.mark.parametrize("sigma", [0.1, 0.5, 2.0])
def test_gaussian_variation_is_the_normal_law_truncated_to_positive_conductances(
    sigma: float,
) -> None:
    scale, _ = sample(variation="gaussian", sigma=sigma)
    assert bool((scale > 0).all())
    law = scipy.stats.truncnorm(a=-1.0 / sigma, b=math.inf, loc=1.0, scale=sigma)
    assert scipy.stats.kstest(scale.double().numpy(), law.cdf).pvalue > 1e-3


def test_stuck_fractions_are_binomial() -> None:
    _, stuck = sample(stuck_min=0.1, stuck_max=0.05)
    for code, fraction in ((1, 0.1), (2, 0.05)):
        count = int((stuck == code).sum())
        low, high = scipy.stats.binom(SHAPE[0], fraction).interval(1 - 1e-6)
        assert low <= count <= high


def test_nothing_is_sampled_where_the_device_is_exact() -> None:
    assert sample() == (None, None)


def test_applied_errors_scale_working_devices_and_pin_stuck_ones_exactly() -> None:
    g = torch.rand(SHAPE, dtype=torch.float64) * 9e-6 + 1e-6
    scale, stuck = sample(sigma=0.2, stuck_min=0.2, stuck_max=0.2)
    real = apply_device_errors(g, scale, stuck, 1e-6, 1e-5)
    works = stuck == 0
    assert torch.equal(real[works], g[works] * scale[works].double())
    assert bool((real[stuck == 1] == 1e-6).all()) and bool((real[stuck == 2] == 1e-5).all())
    assert apply_device_errors(g, None, None, 1e-6, 1e-5) is g


def test_the_same_generator_state_gives_the_same_devices() -> None:
    first = sample(sigma=0.3, stuck_min=0.1)
    second = sample(sigma=0.3, stuck_min=0.1)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
