"""The spintronic update: linear and symmetric on average, stochastic switching between levels."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

import txsim_core
from txsim_core.registry import Registry

G_MIN, G_MAX = 1 / 10e3, 1 / 5e3
SPAN = G_MAX - G_MIN
N = 200_000
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry()


def build(registry: Registry, **params):
    return registry.build("update", "spintronic", **params)


def full(value: float, n: int = N) -> torch.Tensor:
    return torch.full((n,), value, dtype=torch.float64)


def test_registered_through_its_entry_point(registry):
    for kind in ("mapping", "update"):
        spec = registry.get(kind, "spintronic")
        assert (spec.plugin, spec.distribution) == ("spintronic", "txsim-spintronic")


def test_defaults_and_agreement_with_the_mapping(registry):
    update, device = build(registry), registry.build("mapping", "spintronic")
    assert (update.g_min, update.g_max) == (device.g_min, device.g_max)
    assert (update.g_min, update.g_max) == pytest.approx((G_MIN, G_MAX), rel=1e-15)
    assert update.params.cell_bits == device.params.cell_bits == 2
    r = {"r_min": 3e3, "r_max": 7.5e3, "cell_bits": 1}
    update, device = build(registry, **r), registry.build("mapping", "spintronic", **r)
    assert (update.g_min, update.g_max) == (device.g_min, device.g_max)


def test_a_continuous_device_without_noise_makes_the_ideal_update(registry):
    update = build(registry, cell_bits=None)
    g, dg = np.meshgrid(np.linspace(G_MIN, G_MAX, 21), np.linspace(-1.5 * SPAN, 1.5 * SPAN, 31))
    got = update.step(torch.tensor(g), torch.tensor(dg)).numpy()
    np.testing.assert_array_equal(got, np.clip(g + dg, G_MIN, G_MAX))


@pytest.mark.parametrize("fraction", [0.02, 0.1, 0.5, 0.9])
def test_a_binary_mtj_switches_with_probability_proportional_to_the_request(registry, fraction):
    update = build(registry, cell_bits=1)
    gen = torch.Generator().manual_seed(1)
    up = update.step(full(G_MIN), full(fraction * SPAN), gen)
    down = update.step(full(G_MAX), full(-fraction * SPAN), gen)
    assert torch.all((up == G_MIN) | (up == G_MAX)) and torch.all((down == G_MIN) | (down == G_MAX))
    for switched in ((up == G_MAX).sum().item(), (down == G_MIN).sum().item()):
        assert scipy.stats.binomtest(switched, N, fraction).pvalue > 1e-4
    # a device already in the requested state stays there
    assert torch.all(update.step(full(G_MAX, 10), full(fraction * SPAN, 10)) == G_MAX)


@pytest.mark.parametrize(
    ("start", "move"),
    [(0.0, 0.3), (1.0, -0.3), (0.5, 0.2), (0.2, 1.4), (2.7, -2.05), (1.0, 0.999)],
)
def test_multilevel_switching_is_unbiased_with_the_binomial_spread(registry, start, move):
    """Positions in units of the level spacing (3 spacings per span for 2-bit cells)."""
    update = build(registry)  # 2-bit cells, 4 levels
    step = SPAN / 3
    g, dg = full(G_MIN + start * step), full(move * step)
    new = update.step(g, dg, torch.Generator().manual_seed(2))
    target = start + move
    below = np.floor(target)
    p_up = target - below
    position = ((new - G_MIN) / step).numpy()
    np.testing.assert_allclose(position, np.round(position), atol=1e-9)  # on a level
    assert set(np.round(position)) <= {below, below + 1}
    assert (
        scipy.stats.binomtest(int((np.round(position) == below + 1).sum()), N, p_up).pvalue > 1e-4
    )
    change = (new - g).numpy()
    spread = step * np.sqrt(p_up * (1 - p_up))
    assert abs(change.mean() - move * step) < 5 * spread / np.sqrt(N)
    # std of a Bernoulli(p) sample: relative standard error about 1 / (2 sqrt(N p (1 - p)))
    assert change.std() == pytest.approx(spread, rel=2.5 / np.sqrt(N * p_up * (1 - p_up)))


def test_updated_devices_sit_exactly_on_the_levels_the_mapping_encodes(registry):
    update, device = build(registry), registry.build("mapping", "spintronic")
    levels = device.encode(torch.tensor([[0.0, 1 / 3, 2 / 3, 1.0]]), 3)[0, 0, 0]  # 1 slice
    gen = torch.Generator().manual_seed(3)
    g = levels[torch.randint(0, 4, (N,), generator=gen)]
    new = update.step(g, (torch.rand(N, generator=gen) - 0.5) * SPAN, gen)
    assert new.dtype == torch.float32
    assert torch.all(torch.isin(new, levels))


def test_the_mean_update_follows_the_request_in_both_directions(registry):
    update = build(registry, write_noise=0.05)
    gen = torch.Generator().manual_seed(4)
    for request in (0.01 * SPAN, -0.01 * SPAN, 0.2 * SPAN, -0.2 * SPAN):
        g = full(G_MIN + SPAN / 3) if request > 0 else full(G_MIN + 2 * SPAN / 3)
        change = (update.step(g, full(request), gen) - g).numpy()
        assert abs(change.mean() - request) < 5 * change.std() / np.sqrt(N)


@pytest.mark.parametrize("sigma0", [0.01, 0.1])
def test_displacement_noise_statistics(registry, sigma0):
    update = build(registry, cell_bits=None, write_noise=sigma0)
    request = 1e-3 * SPAN
    g = full(G_MIN + SPAN / 2)
    dg = torch.where(torch.arange(N) % 2 == 0, 1.0, -1.0).double() * request
    noise = (update.step(g, dg, torch.Generator().manual_seed(5)) - g - dg).numpy()
    sigma = sigma0 * np.sqrt(SPAN * request)
    np.testing.assert_allclose(update.write_noise_std(dg).numpy(), sigma, rtol=1e-12)
    assert abs(noise.mean()) < 5 * sigma / np.sqrt(N)
    assert noise.std() == pytest.approx(sigma, rel=5 * np.sqrt(0.5 / N))
    assert scipy.stats.kstest(noise / sigma, "norm").pvalue > 1e-4
    # the variance grows linearly with the displacement (independent depinning events)
    big = (update.step(g, 4 * dg, torch.Generator().manual_seed(6)) - g - 4 * dg).numpy()
    assert big.std() / noise.std() == pytest.approx(2.0, rel=0.02)


def test_nearest_rounding_is_deterministic_and_ignores_small_requests(registry):
    update = build(registry, rounding="nearest")
    step = SPAN / 3
    g = full(G_MIN + step, 6)
    dg = torch.tensor([0.49, -0.49, 0.51, -0.51, 1.2, -2.0], dtype=torch.float64) * step
    new = update.step(g, dg, torch.Generator().manual_seed(0))
    expected = G_MIN + step * torch.tensor([1.0, 1.0, 2.0, 0.0, 2.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(new, expected, rtol=0, atol=1e-12 * SPAN)
    assert torch.equal(new, update.step(g, dg))


def test_a_zero_request_changes_nothing_even_off_the_levels(registry):
    update = build(registry, write_noise=0.1)
    g = torch.tensor([G_MIN, 1.234e-4, G_MAX, 1.5e-4], dtype=torch.float64)
    dg = torch.tensor([0.0, -0.0, 0.0, 1e-6], dtype=torch.float64)
    new = update.step(g, dg, torch.Generator().manual_seed(0))
    assert torch.equal(new[:3], g[:3]) and new[3] != g[3]


def test_stays_within_the_range(registry):
    update = build(registry, write_noise=0.3)
    gen = torch.Generator().manual_seed(7)
    g = G_MIN + torch.rand(N, generator=gen, dtype=torch.float64) * SPAN
    new = update.step(g, (torch.rand(N, generator=gen, dtype=torch.float64) - 0.5) * 4 * SPAN, gen)
    assert torch.all((new >= G_MIN) & (new <= G_MAX))


def test_reproducible_under_a_seeded_generator(registry):
    update = build(registry, write_noise=0.05)
    g = full(G_MIN + SPAN / 3, 4096)
    dg = full(0.1 * SPAN, 4096)
    a = update.step(g, dg, torch.Generator().manual_seed(9))
    b = update.step(g, dg, torch.Generator().manual_seed(9))
    c = update.step(g, dg, torch.Generator().manual_seed(10))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_works_as_a_plain_tensor_function_through_build_model():
    update = txsim_core.build_model("update", "spintronic", cell_bits=None, r_min=2e3, r_max=6e3)
    g = torch.tensor([1 / 6e3, 3e-4])
    dg = torch.tensor([1e-4, 1e-3])
    torch.testing.assert_close(update.step(g, dg), torch.tensor([1 / 6e3 + 1e-4, 1 / 2e3]))


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"r_min": 20e3}, "r_max"),
        ({"r_min": -1.0}, "r_min"),
        ({"cell_bits": 0}, "cell_bits"),
        ({"write_noise": -0.1}, "write_noise"),
        ({"rounding": "up"}, "rounding"),
    ],
)
def test_bad_parameters_name_the_problem(registry, params, name):
    with pytest.raises(txsim_core.ConfigError, match=rf"Expected `{name}`.*but got"):
        build(registry, **params)


@CUDA
def test_runs_on_cuda(registry):
    update = build(registry, write_noise=0.05)
    gen = torch.Generator(device="cuda").manual_seed(0)
    g, dg = full(G_MIN).cuda(), full(0.3 * SPAN).cuda()
    new = update.step(g, dg, gen)
    assert new.device.type == "cuda"
    assert abs((new - g).mean().item() - 0.3 * SPAN) < 0.01 * SPAN
