"""Tests of the ``pcm`` mapping model (encoding, drift, device-to-device variation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import txsim_core
from txsim_core.registry import Registry

G_MIN, G_MAX = 0.25e-6, 25e-6
SHAPE = torch.Size((2, 1, 1, 2, 64, 32))  # (arrays_in, arrays_out, slices, 2, rows, cols)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry()


def build(registry: Registry, **params):
    return registry.build("mapping", "pcm", **params)


def conductances(generator: torch.Generator, shape=SHAPE, dtype=torch.float64) -> torch.Tensor:
    return G_MIN + (G_MAX - G_MIN) * torch.rand(shape, generator=generator, dtype=dtype)


def test_defaults_and_weight_readback(registry):
    device = build(registry)
    assert (device.g_min, device.g_max) == (G_MIN, G_MAX)
    w = torch.linspace(-1.0, 1.0, 21, dtype=torch.float64).reshape(3, 7)
    g = device.encode(w, None)
    assert g.shape == (1, 2, 3, 7)
    assert g.min() >= G_MIN and g.max() <= G_MAX * (1 + 1e-12)
    sig = device.significance(None).to(g)
    read = (sig[:, None, None] * (g[..., 0, :, :] - g[..., 1, :, :])).sum(0)
    torch.testing.assert_close(read, w)


def test_default_read_is_exact_without_setup(registry):
    device = build(registry)
    g = conductances(torch.Generator().manual_seed(0))
    assert device.realize(g) is g


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_drift_law_reproduced_per_device(registry, dtype):
    """G(t) / G(t0) = (t / t0)^-nu for each device's own nu, at every read time."""
    t0 = 20.0
    g = conductances(torch.Generator().manual_seed(1), dtype=dtype)
    times = [20.0, 60.0, 3600.0, 86400.0, 3.15e7]
    ratios, nus = [], []
    for t in times:
        device = build(registry, t_read=t, drift_t0=t0)
        device.setup(SHAPE, torch.Generator().manual_seed(2))  # same seed: same devices
        nus.append(device.drift_nu.double())
        ratio = (device.realize(g) / g).double()
        expected = (t / t0) ** (-device.drift_nu.double())
        torch.testing.assert_close(
            ratio, expected, rtol=1e-5 if dtype is torch.float32 else 1e-12, atol=0
        )
        ratios.append(ratio.flatten().numpy())
    assert all(torch.equal(nus[0], nu) for nu in nus)
    # the slope of log G against log t is -nu, device by device
    log_t = np.log(np.array(times) / t0)
    slopes = np.polyfit(log_t, np.log(np.stack(ratios)), 1)[0]
    np.testing.assert_allclose(slopes, -nus[0].flatten().numpy(), rtol=1e-4, atol=1e-7)


def test_drift_exponents_follow_the_configured_distribution(registry):
    device = build(registry, drift_nu_mean=0.06, drift_nu_std=0.02, t_read=1000.0)
    shape = torch.Size((4, 2, 1, 2, 128, 128))
    device.setup(shape, torch.Generator().manual_seed(3))
    nu = device.drift_nu.double()
    n = nu.numel()
    assert nu.shape == shape and (nu >= 0).all()
    assert nu.mean().item() == pytest.approx(0.06, abs=5 * 0.02 / math.sqrt(n))
    assert nu.std().item() == pytest.approx(0.02, rel=0.01)


def test_drift_without_spread_needs_no_setup(registry):
    device = build(registry, drift_nu_std=0.0, t_read=2000.0, drift_t0=2.0)
    g = conductances(torch.Generator().manual_seed(4))
    torch.testing.assert_close(device.realize(g), g * 1000.0 ** (-0.05))


def test_device_to_device_variation(registry):
    device = build(registry, d2d_std=0.1)
    device.setup(SHAPE, torch.Generator().manual_seed(5))
    g = conductances(torch.Generator().manual_seed(6))
    gain = (device.realize(g) / g).flatten()
    assert torch.equal(device.realize(g), device.realize(g))  # fixed per device
    n = gain.numel()
    assert gain.mean().item() == pytest.approx(1.0, abs=5 * 0.1 / math.sqrt(n))
    assert gain.std().item() == pytest.approx(0.1, rel=0.03)


def test_setup_is_reproducible_and_saved_in_the_state_dict(registry):
    a = build(registry, d2d_std=0.05, t_read=600.0)
    b = build(registry, d2d_std=0.05, t_read=600.0)
    a.setup(SHAPE, torch.Generator().manual_seed(7))
    b.setup(SHAPE, torch.Generator().manual_seed(7))
    g = conductances(torch.Generator().manual_seed(8))
    assert torch.equal(a.realize(g), b.realize(g))
    c = build(registry, d2d_std=0.05, t_read=600.0)
    c.setup(SHAPE, torch.Generator().manual_seed(99))
    c.load_state_dict(a.state_dict())
    assert torch.equal(c.realize(g), a.realize(g))


def test_realize_checks_setup_and_shape(registry):
    device = build(registry, t_read=100.0)
    g = conductances(torch.Generator().manual_seed(9))
    with pytest.raises(txsim_core.ConfigError, match=r"Expected `setup\(shape, generator\)`"):
        device.realize(g)
    device.setup(SHAPE, torch.Generator().manual_seed(9))
    with pytest.raises(txsim_core.ConfigError, match=r"Expected conductances whose trailing shape"):
        device.realize(g[..., :10])


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"g_min": 3e-5}, "g_max"),
        ({"g_max": 0.0}, "g_max"),
        ({"drift_nu_mean": -0.01}, "drift_nu_mean"),
        ({"drift_nu_std": -0.01}, "drift_nu_std"),
        ({"drift_t0": 0.0}, "drift_t0"),
        ({"t_read": -5.0}, "t_read"),
        ({"t_read": 10.0, "drift_t0": 20.0}, "t_read"),
        ({"d2d_std": 2.0}, "d2d_std"),
        ({"cell_bits": 0}, "cell_bits"),
    ],
)
def test_bad_parameters_name_the_problem(registry, params, name):
    with pytest.raises(txsim_core.ConfigError, match=rf"Expected `{name}`.*but got"):
        build(registry, **params)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_drift_on_cuda(registry):
    cuda = torch.device("cuda")
    device = build(registry, t_read=3600.0, d2d_std=0.02)
    device.setup(SHAPE, torch.Generator(device=cuda).manual_seed(10))
    g = conductances(torch.Generator().manual_seed(11), dtype=torch.float32).to(cuda)
    out = device.realize(g)
    assert out.device.type == "cuda" and out.dtype == torch.float32
    expected = g * device.d2d_gain * (3600.0 / 20.0) ** (-device.drift_nu)
    torch.testing.assert_close(out, expected)
