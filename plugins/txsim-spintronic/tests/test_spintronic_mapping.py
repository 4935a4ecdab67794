"""The spintronic mapping: range, levels, device-to-device variation and stuck-at faults."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

import txsim_core
from txsim_core.registry import Registry

G_MIN, G_MAX = 1 / 10e3, 1 / 5e3
SHAPE = (3, 2, 4, 2, 64, 64)  # (arrays_in, arrays_out, slices, 2, rows, cols): 196,608 devices
N = int(np.prod(SHAPE))
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry()


def programmed(registry: Registry, seed: int = 0, **params):
    device = registry.build("mapping", "spintronic", **params)
    device.setup(torch.Size(SHAPE), torch.Generator().manual_seed(seed))
    return device


def ideal() -> torch.Tensor:
    u = torch.rand(SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return G_MIN + u * (G_MAX - G_MIN)


def test_small_on_off_ratio_and_few_levels(registry):
    device = registry.build("mapping", "spintronic")
    assert device.g_max / device.g_min == pytest.approx(2.0)  # TMR 100 %
    assert device.num_slices(8) == 4  # 7 magnitude bits over 2-bit cells
    g = device.encode(torch.linspace(-1, 1, 101, dtype=torch.float64).reshape(1, 101), 8)
    levels = (g - G_MIN) / (G_MAX - G_MIN) * 3
    torch.testing.assert_close(levels, levels.round(), rtol=0, atol=1e-9)
    binary = registry.build("mapping", "spintronic", cell_bits=1)
    assert binary.num_slices(8) == 7
    g = binary.encode(torch.tensor([[0.3, -0.7]]), 8)
    assert torch.all((g == np.float32(G_MIN)) | (g == np.float32(G_MAX)))


def test_exact_without_device_errors(registry):
    g = ideal()
    assert programmed(registry).realize(g) is g


@pytest.mark.parametrize("sigma", [0.05, 0.5])
def test_lognormal_variation_statistics(registry, sigma):
    g = ideal()
    log_ratio = torch.log(programmed(registry, variation_sigma=sigma).realize(g) / g).numpy()
    log_ratio = log_ratio.ravel()
    assert abs(log_ratio.mean()) < 5 * sigma / np.sqrt(N)
    assert log_ratio.std() == pytest.approx(sigma, rel=5 * np.sqrt(0.5 / N))
    assert scipy.stats.kstest(log_ratio / sigma, "norm").pvalue > 1e-4


@pytest.mark.parametrize("sigma", [0.1, 0.8])
def test_gaussian_variation_statistics_and_positivity(registry, sigma):
    g = ideal()
    real = programmed(registry, variation="gaussian", variation_sigma=sigma).realize(g)
    assert torch.all(real > 0)
    ratio = (real / g).numpy().ravel()
    truth = scipy.stats.truncnorm(a=-1 / sigma, b=np.inf, loc=1.0, scale=sigma)
    assert ratio.mean() == pytest.approx(truth.mean(), abs=5 * truth.std() / np.sqrt(N))
    assert ratio.std() == pytest.approx(truth.std(), rel=0.01)
    assert scipy.stats.kstest(ratio, truth.cdf).pvalue > 1e-4


def test_stuck_at_fractions_and_values(registry):
    p_min, p_max = 0.03, 0.07
    device = programmed(
        registry, variation_sigma=0.1, stuck_min_fraction=p_min, stuck_max_fraction=p_max
    )
    g = ideal()
    real = device.realize(g)
    for code, p, value in ((1, p_min, G_MIN), (2, p_max, G_MAX)):
        stuck = device.device_stuck == code
        assert abs(stuck.sum().item() - p * N) < 5 * np.sqrt(N * p * (1 - p))
        assert torch.all(real[stuck] == value)
    working = device.device_stuck == 0
    assert torch.log(real[working] / g[working]).std().item() == pytest.approx(0.1, rel=0.01)


def test_reproducible_and_saved_with_the_layer(registry):
    params = {"variation_sigma": 0.2, "stuck_max_fraction": 0.05}
    a, b, c = (programmed(registry, s, **params) for s in (3, 3, 4))
    g = ideal()
    assert torch.equal(a.realize(g), b.realize(g)) and not torch.equal(a.realize(g), c.realize(g))
    c.load_state_dict(a.state_dict())
    assert torch.equal(c.realize(g), a.realize(g))
    assert c.to(torch.float64).device_scale.dtype == torch.float64


def test_realize_checks_its_input(registry):
    device = registry.build("mapping", "spintronic", stuck_min_fraction=0.1)
    with pytest.raises(txsim_core.ConfigError, match="Expected setup"):
        device.realize(ideal())
    device.setup(torch.Size(SHAPE), torch.Generator().manual_seed(0))
    with pytest.raises(txsim_core.ConfigError, match="Expected conductances of the shape"):
        device.realize(torch.ones(2, 2))


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"r_max": 4e3}, "r_max"),
        ({"cell_bits": 17}, "cell_bits"),
        ({"variation": "weibull"}, "variation"),
        ({"variation_sigma": -1.0}, "variation_sigma"),
        ({"stuck_max_fraction": 2.0}, "stuck_max_fraction"),
        ({"stuck_min_fraction": 0.7, "stuck_max_fraction": 0.7}, "stuck_min_fraction"),
    ],
)
def test_bad_parameters_name_the_problem(registry, params, name):
    with pytest.raises(txsim_core.ConfigError, match=rf"Expected `{name}`.*but got"):
        registry.build("mapping", "spintronic", **params)


@CUDA
def test_samples_live_on_the_generators_device(registry):
    device = registry.build("mapping", "spintronic", variation_sigma=0.1)
    device.setup(torch.Size(SHAPE), torch.Generator(device="cuda").manual_seed(0))
    assert device.device_scale.device.type == "cuda"
    assert device.realize(ideal().cuda()).device.type == "cuda"
