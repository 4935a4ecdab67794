"""The ReRAM mapping: range, levels, device-to-device variation and stuck-at faults."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

import txsim_core
from txsim_core.registry import Registry

G_MIN, G_MAX = 1 / 1e6, 1 / 100e3
SHAPE = (2, 3, 4, 2, 64, 64)  # (arrays_in, arrays_out, slices, 2, rows, cols): 196,608 devices
N = int(np.prod(SHAPE))
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry()


def build(registry: Registry, **params):
    return registry.build("mapping", "reram", **params)


def programmed(registry: Registry, seed: int = 0, **params):
    device = build(registry, **params)
    device.setup(torch.Size(SHAPE), torch.Generator().manual_seed(seed))
    return device


def ideal(seed: int = 1) -> torch.Tensor:
    u = torch.rand(SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return G_MIN + u * (G_MAX - G_MIN)


def test_registered_through_its_entry_point(registry):
    spec = registry.get("mapping", "reram")
    assert (spec.plugin, spec.distribution) == ("reram", "txsim-reram")


@pytest.mark.parametrize("r", [{}, {"r_min": 20e3, "r_max": 2e6}])
def test_mapping_and_update_agree_on_the_range(registry, r):
    device, update = build(registry, **r), registry.build("update", "reram", **r)
    assert (device.g_min, device.g_max) == (update.g_min, update.g_max)
    r_min, r_max = r.get("r_min", 100e3), r.get("r_max", 1e6)
    assert (device.g_min, device.g_max) == pytest.approx((1 / r_max, 1 / r_min), rel=1e-15)


def test_two_bit_cells_hold_four_levels_and_read_back_the_weight(registry):
    device = build(registry)  # cell_bits = 2, the paper's device
    assert device.num_slices(8) == 4 and device.num_slices(3) == 1
    w = torch.linspace(-1, 1, 255, dtype=torch.float64).reshape(15, 17)
    g = device.encode(w, 8)
    span = G_MAX - G_MIN
    levels = (g - G_MIN) / span * 3
    assert torch.allclose(levels, levels.round(), atol=1e-9)
    assert levels.min() == 0 and levels.max() == 3
    sig = device.significance(8).to(g.dtype)
    back = torch.einsum("s,s...->...", sig, g[:, 0] - g[:, 1])
    expected = torch.round(w.abs() * 127) / 127 * torch.sign(w)
    assert torch.allclose(back, expected, atol=1e-12)


def test_continuous_cells(registry):
    device = build(registry, cell_bits=None)
    assert device.num_slices(None) == 1
    g = device.encode(torch.tensor([[0.25, -0.5]], dtype=torch.float64), None)
    assert g[0, 0, 0, 0].item() == pytest.approx(G_MIN + 0.25 * (G_MAX - G_MIN))
    assert g[0, 1, 0, 1].item() == pytest.approx(G_MIN + 0.5 * (G_MAX - G_MIN))


def test_without_device_errors_realize_is_exact_and_needs_no_setup(registry):
    device = build(registry)
    g = ideal()
    assert device.realize(g) is g
    device.setup(torch.Size(SHAPE), torch.Generator().manual_seed(0))
    assert device.realize(g) is g
    assert dict(device.state_dict()) == {}


@pytest.mark.parametrize("sigma", [0.05, 0.3, 1.0])
def test_lognormal_variation_statistics(registry, sigma):
    device = programmed(registry, variation="lognormal", variation_sigma=sigma)
    g = ideal()
    log_ratio = torch.log(device.realize(g) / g).numpy().ravel()
    assert abs(log_ratio.mean()) < 5 * sigma / np.sqrt(N)  # the median is the ideal value
    assert log_ratio.std() == pytest.approx(sigma, rel=5 * np.sqrt(0.5 / N))
    assert scipy.stats.kstest(log_ratio / sigma, "norm").pvalue > 1e-4


@pytest.mark.parametrize("sigma", [0.1, 0.6])
def test_gaussian_variation_statistics_and_positivity(registry, sigma):
    device = programmed(registry, variation="gaussian", variation_sigma=sigma)
    g = ideal()
    real = device.realize(g)
    assert torch.all(real > 0)
    ratio = (real / g).numpy().ravel()
    # independent oracle: scipy's normal truncated at the point where G would reach 0
    truth = scipy.stats.truncnorm(a=-1 / sigma, b=np.inf, loc=1.0, scale=sigma)
    assert ratio.mean() == pytest.approx(truth.mean(), abs=5 * truth.std() / np.sqrt(N))
    assert ratio.std() == pytest.approx(truth.std(), rel=0.01)
    assert scipy.stats.kstest(ratio, truth.cdf).pvalue > 1e-4


def test_stuck_at_fractions_are_recovered(registry):
    p_min, p_max = 0.05, 0.12
    device = programmed(registry, stuck_min_fraction=p_min, stuck_max_fraction=p_max)
    g = ideal()
    real = device.realize(g)
    at_min = (real == torch.tensor(G_MIN, dtype=real.dtype)) & (g != G_MIN)
    at_max = (real == torch.tensor(G_MAX, dtype=real.dtype)) & (g != G_MAX)
    for count, p in ((at_min.sum().item(), p_min), (at_max.sum().item(), p_max)):
        assert abs(count - p * N) < 5 * np.sqrt(N * p * (1 - p))
    working = ~(at_min | at_max)
    assert torch.equal(real[working], g[working])
    # a stuck device reads its stuck value whatever is programmed
    other = device.realize(torch.full(SHAPE, 5e-6, dtype=torch.float64))
    assert torch.all(other[at_min] == G_MIN) and torch.all(other[at_max] == G_MAX)


def test_all_devices_stuck(registry):
    device = programmed(registry, stuck_min_fraction=0.25, stuck_max_fraction=0.75)
    real = device.realize(ideal())
    assert torch.all((real == G_MIN) | (real == G_MAX))


def test_variation_and_stuck_devices_together(registry):
    device = programmed(registry, variation_sigma=0.2, stuck_max_fraction=0.1)
    g = ideal()
    real = device.realize(g)
    stuck = device.device_stuck != 0
    assert abs(stuck.sum().item() - 0.1 * N) < 5 * np.sqrt(N * 0.09)
    assert torch.all(real[stuck] == G_MAX)
    log_ratio = torch.log(real[~stuck] / g[~stuck])
    assert log_ratio.std().item() == pytest.approx(0.2, rel=0.01)


def test_reproducible_from_the_generator(registry):
    params = {"variation_sigma": 0.1, "stuck_min_fraction": 0.01, "stuck_max_fraction": 0.02}
    a, b = programmed(registry, 4, **params), programmed(registry, 4, **params)
    c = programmed(registry, 5, **params)
    g = ideal()
    assert torch.equal(a.realize(g), b.realize(g))
    assert not torch.equal(a.realize(g), c.realize(g))
    a.setup(torch.Size(SHAPE), torch.Generator().manual_seed(5))  # re-programming resamples
    assert torch.equal(a.realize(g), c.realize(g))


def test_samples_are_buffers_that_follow_the_module_and_its_checkpoints(registry):
    params = {"variation_sigma": 0.1, "stuck_min_fraction": 0.05}
    device = programmed(registry, 2, **params)
    state = device.state_dict()
    assert set(state) == {"device_scale", "device_stuck"}
    copy = programmed(registry, 99, **params)  # a layer programs, then loads its checkpoint
    copy.load_state_dict(state)
    g = ideal()
    assert torch.equal(copy.realize(g), device.realize(g))
    device.to(torch.float64)
    assert device.device_scale.dtype == torch.float64
    assert device.device_stuck.dtype == torch.int8
    assert device.realize(g.float()).dtype == torch.float32


def test_realize_checks_its_input(registry):
    device = build(registry, variation_sigma=0.1)
    with pytest.raises(txsim_core.ConfigError, match="Expected setup"):
        device.realize(ideal())
    device.setup(torch.Size(SHAPE), torch.Generator().manual_seed(0))
    with pytest.raises(txsim_core.ConfigError, match="Expected conductances of the shape"):
        device.realize(torch.ones(3, 3))


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"r_min": 2e6}, "r_max"),
        ({"r_max": -1.0}, "r_max"),
        ({"cell_bits": 0}, "cell_bits"),
        ({"variation": "uniform"}, "variation"),
        ({"variation_sigma": -0.1}, "variation_sigma"),
        ({"stuck_min_fraction": 1.5}, "stuck_min_fraction"),
        ({"stuck_max_fraction": -0.1}, "stuck_max_fraction"),
        ({"stuck_min_fraction": 0.6, "stuck_max_fraction": 0.5}, "stuck_min_fraction"),
    ],
)
def test_bad_parameters_name_the_problem(registry, params, name):
    with pytest.raises(txsim_core.ConfigError, match=rf"Expected `{name}`.*but got"):
        build(registry, **params)


@CUDA
def test_samples_live_on_the_generators_device(registry):
    device = build(registry, variation_sigma=0.1, stuck_min_fraction=0.1)
    device.setup(torch.Size(SHAPE), torch.Generator(device="cuda").manual_seed(0))
    assert device.device_scale.device.type == "cuda"
    g = ideal().cuda()
    assert device.realize(g).device.type == "cuda"
    assert device.to("cpu").realize(g.cpu()).device.type == "cpu"
