"""The ReRAM update against equation (1) of the TxSim paper, written here independently in numpy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.stats
import torch

import txsim_core
from txsim_core.registry import Registry

G_MIN, G_MAX = 1 / 1e6, 1 / 100e3  # the paper's device: R_min = 100 kOhm, R_max = 1 MOhm
SPAN = G_MAX - G_MIN
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry()  # loads installed plugins through their entry points


def build(registry: Registry, **params):
    return registry.build("update", "reram", **params)


def eq1_case1(g, dg, v, g_min=G_MIN, g_max=G_MAX):
    """Eq. (1), case 1 (dG_ideal > 0), exactly as printed in the paper."""
    span = g_max - g_min
    return (span / (1 - np.exp(-v)) + g_min - g) * (1 - np.exp(-v * (dg / span)))


def eq1_case2_printed(g, dg, v, g_min=G_MIN, g_max=G_MAX):
    """Eq. (1), case 2 (dG_ideal < 0), exactly as printed (dG_ideal < 0 in the exponent)."""
    span = g_max - g_min
    return (span / (1 - np.exp(-v)) - g_max + g) * (1 - np.exp(-v * (dg / span)))


def eq1_case2(g, dg, v, g_min=G_MIN, g_max=G_MAX):
    """Case 2 as the README documents it: the printed prefactor, |dG_ideal| in the exponent, and
    the change negative."""
    span = g_max - g_min
    return -(span / (1 - np.exp(-v)) - g_max + g) * (1 - np.exp(-v * (np.abs(dg) / span)))


def eq1(g, dg, v):
    return np.where(dg > 0, eq1_case1(g, dg, v), np.where(dg < 0, eq1_case2(g, dg, v), 0.0))


def grid():
    g = np.linspace(G_MIN, G_MAX, 37)
    small = SPAN * np.array([1e-6, 1e-4, 1e-2])
    dg = np.concatenate([np.linspace(-2 * SPAN, 2 * SPAN, 41), small, -small])
    return np.meshgrid(g, dg, indexing="ij")


def test_registered_through_its_entry_point(registry):
    spec = registry.get("update", "reram")
    assert (spec.plugin, spec.distribution) == ("reram", "txsim-reram")


def test_defaults_are_the_papers(registry):
    update = build(registry)
    assert (update.g_min, update.g_max) == pytest.approx((G_MIN, G_MAX), rel=1e-15)
    assert (update.params.nonlinearity, update.params.write_noise) == (0.01, 5.0)


@pytest.mark.parametrize("v", [0.01, 0.1, 0.5, 1.0, 5.0])
def test_equation_1_reproduced_to_float64_precision(registry, v):
    update = build(registry, nonlinearity=v, write_noise=0.0)
    g, dg = grid()
    got = update.nonideal_change(torch.tensor(g), torch.tensor(dg)).numpy()
    np.testing.assert_allclose(got, eq1(g, dg, v), rtol=1e-11, atol=1e-12 * SPAN)
    stepped = update.step(torch.tensor(g), torch.tensor(dg)).numpy()
    np.testing.assert_allclose(
        stepped, np.clip(g + eq1(g, dg, v), G_MIN, G_MAX), rtol=1e-12, atol=1e-12 * SPAN
    )


def test_equation_1_in_float32(registry):
    update = build(registry, nonlinearity=0.5, write_noise=0.0)
    g, dg = grid()
    got = update.step(torch.tensor(g, dtype=torch.float32), torch.tensor(dg, dtype=torch.float32))
    assert got.dtype == torch.float32
    np.testing.assert_allclose(
        got.numpy(), np.clip(g + eq1(g, dg, 0.5), G_MIN, G_MAX), rtol=0, atol=2e-6 * SPAN
    )


def test_case_2_is_the_mirror_image_of_case_1():
    """Reflecting the range (G -> G_min + G_max - G) turns a decrease into an increase."""
    g, dg = grid()
    d = np.abs(dg)
    for v in (0.01, 1.0, 4.0):
        mirrored = -eq1_case1(G_MIN + G_MAX - g, d, v)
        np.testing.assert_allclose(eq1_case2(g, -d, v), mirrored, rtol=1e-12, atol=1e-15)


def test_case_2_as_printed_does_not_saturate_and_the_corrected_one_does():
    """Why the README changes case 2: printed, a full-range decrease from G_max overshoots G_min
    by a factor e^v; corrected, it lands on G_min, as a full increase from G_min lands on G_max.
    Both tend to the ideal change as v -> 0: they differ by about v * dG^2 / span."""
    v = 1.0
    printed = G_MAX + eq1_case2_printed(G_MAX, -SPAN, v)
    assert printed == pytest.approx(G_MAX - SPAN * np.exp(v), rel=1e-12)
    assert printed < G_MIN
    assert G_MAX + eq1_case2(G_MAX, -SPAN, v) == pytest.approx(G_MIN, rel=1e-12)
    assert G_MIN + eq1_case1(G_MIN, SPAN, v) == pytest.approx(G_MAX, rel=1e-12)
    g, dg = np.meshgrid(np.linspace(G_MIN, G_MAX, 9), -SPAN * np.array([0.1, 0.5, 1.0]))
    for v in (1e-3, 1e-4):
        diff = np.abs(eq1_case2_printed(g, dg, v) - eq1_case2(g, dg, v))
        assert np.all(diff <= 1.01 * v * dg**2 / SPAN)
        assert np.all(diff >= 0.99 * v * dg**2 / SPAN * (1 - v))


@pytest.mark.parametrize("v", [1e-3, 1e-5, 1e-8])
def test_small_nonlinearity_tends_to_the_linear_update(registry, v):
    g, dg = grid()
    got = build(registry, nonlinearity=v, write_noise=0.0).nonideal_change(
        torch.tensor(g), torch.tensor(dg)
    )
    # first-order error: |dG_nonideal - dG| <= v * (|dG| + |dG|^2 / span) for G in range
    bound = v * (np.abs(dg) + dg**2 / SPAN) + 1e-12 * SPAN
    assert np.all(np.abs(got.numpy() - dg) <= bound)
    linear = build(registry, nonlinearity=0.0, write_noise=0.0)
    assert torch.equal(
        linear.step(torch.tensor(g), torch.tensor(dg)), torch.tensor(g + dg).clamp(G_MIN, G_MAX)
    )


def test_error_of_the_linear_limit_is_first_order_in_v(registry):
    g, dg = torch.tensor([3e-6, 8e-6]), torch.tensor([2e-6, -2e-6], dtype=torch.float64)
    g = g.double()
    errors = [
        (build(registry, nonlinearity=v, write_noise=0.0).nonideal_change(g, dg) - dg).abs()
        for v in (1e-3, 1e-4)
    ]
    ratio = (errors[0] / errors[1]).numpy()
    np.testing.assert_allclose(ratio, 10.0, rtol=2e-3)


@pytest.mark.parametrize("v", [0.01, 0.5, 2.0])
def test_saturation_at_the_bounds(registry, v):
    update = build(registry, nonlinearity=v, write_noise=0.0)
    lo = torch.tensor([G_MIN], dtype=torch.float64)
    hi = torch.tensor([G_MAX], dtype=torch.float64)
    span = torch.tensor([SPAN], dtype=torch.float64)
    # a full-range request sweeps the whole range, from either end
    assert update.step(lo, span).item() == pytest.approx(G_MAX, rel=1e-12)
    assert update.step(hi, -span).item() == pytest.approx(G_MIN, rel=1e-12)
    # requests beyond the range, or from the bound outward, stay at the bound
    assert update.step(lo, 10 * span).item() == G_MAX
    assert update.step(hi, -10 * span).item() == G_MIN
    assert update.step(hi, span / 10).item() == G_MAX
    assert update.step(lo, -span / 10).item() == G_MIN
    # repeated equal requests approach the bound monotonically with shrinking steps
    g = lo.clone()
    steps = []
    for _ in range(40):
        new = update.step(g, span / 20)
        steps.append((new - g).item())
        g = new
    assert all(0 <= b <= a for a, b in itertools.pairwise(steps))
    assert g.item() == pytest.approx(G_MAX, rel=1e-12)


def test_step_size_depends_on_the_state_as_the_nonlinearity_says(registry):
    update = build(registry, nonlinearity=1.0, write_noise=0.0)
    g = torch.linspace(G_MIN, G_MAX, 11, dtype=torch.float64)
    up = update.nonideal_change(g, torch.full_like(g, SPAN / 100))
    down = update.nonideal_change(g, torch.full_like(g, -SPAN / 100))
    assert torch.all(up[1:] < up[:-1]) and torch.all(up > 0)  # potentiation slows near G_max
    assert torch.all(down[1:] < down[:-1]) and torch.all(down < 0)  # depression fastest at G_max


def test_a_zero_request_changes_nothing(registry):
    update = build(registry, nonlinearity=0.5, write_noise=10.0)
    g = torch.tensor([G_MIN, 4.2e-6, G_MAX, 7e-6, 7e-6])
    dg = torch.tensor([0.0, 0.0, -0.0, 1e-7, -1e-7])
    gen = torch.Generator().manual_seed(3)
    new = update.step(g, dg, gen)
    assert torch.equal(new[:3], g[:3])
    assert not torch.equal(new[3:], g[3:])


@pytest.mark.parametrize(("scaling", "gamma"), [("linear", 5.0), ("linear", 1.0), ("sqrt", 0.1)])
@pytest.mark.parametrize("v", [0.0, 0.5])
def test_write_noise_mean_and_standard_deviation(registry, scaling, gamma, v):
    n = 200_000
    update = build(registry, nonlinearity=v, write_noise=gamma, noise_scaling=scaling)
    g = torch.full((n,), 5.5e-6, dtype=torch.float64)
    request = 1e-3 * SPAN  # a small update, far from the bounds even with 6 sigma of noise
    dg = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0).double() * request
    new = update.step(g, dg, torch.Generator().manual_seed(11))
    expected_sigma = gamma * (request if scaling == "linear" else np.sqrt(SPAN * request))
    noise = (new - g - update.nonideal_change(g, dg)).numpy()
    np.testing.assert_allclose(update.write_noise_std(dg).numpy(), expected_sigma, rtol=1e-12)
    assert abs(noise.mean()) < 5 * expected_sigma / np.sqrt(n)
    assert noise.std() == pytest.approx(expected_sigma, rel=5 * np.sqrt(0.5 / n))
    assert scipy.stats.kstest(noise / expected_sigma, "norm").pvalue > 1e-4


def test_noise_grows_in_proportion_to_the_request(registry):
    update = build(registry, nonlinearity=0.0, write_noise=5.0)
    n = 100_000
    g = torch.full((2, n), 5.5e-6, dtype=torch.float64)
    dg = torch.tensor([[1e-3 * SPAN], [4e-3 * SPAN]], dtype=torch.float64).expand(2, n)
    noise = update.step(g, dg, torch.Generator().manual_seed(5)) - g - dg
    ratio = (noise[1].std() / noise[0].std()).item()
    assert ratio == pytest.approx(4.0, rel=0.02)


def test_reproducible_under_a_seeded_generator(registry):
    update = build(registry)
    g = torch.rand(64, 64, generator=torch.Generator().manual_seed(0)) * SPAN + G_MIN
    dg = (torch.rand(64, 64, generator=torch.Generator().manual_seed(1)) - 0.5) * 1e-2 * SPAN
    a = update.step(g, dg, torch.Generator().manual_seed(7))
    b = update.step(g, dg, torch.Generator().manual_seed(7))
    c = update.step(g, dg, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.all((a >= np.float32(G_MIN)) & (a <= np.float32(G_MAX)))


def test_without_noise_the_update_is_deterministic_and_uses_no_randomness(registry):
    update = build(registry, write_noise=0.0)
    g = torch.full((8,), 5e-6)
    dg = torch.full((8,), 1e-8)
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    assert torch.equal(update.step(g, dg, gen), update.step(g, dg))
    assert torch.equal(gen.get_state(), state)


def test_works_as_a_plain_tensor_function_through_build_model():
    update = txsim_core.build_model(
        "update", "reram", r_min=50e3, r_max=500e3, nonlinearity=0.2, write_noise=0.0
    )
    g_min, g_max = 1 / 500e3, 1 / 50e3
    g = np.linspace(g_min, g_max, 7)
    dg = np.full(7, 0.3 * (g_max - g_min))
    expected = np.clip(
        g + eq1_case1(g, dg, 0.2, g_min, g_max), g_min, g_max
    )  # independent numpy formula
    np.testing.assert_allclose(update.step(torch.tensor(g), torch.tensor(dg)).numpy(), expected)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"r_min": 1e6, "r_max": 1e5}, "r_max"),
        ({"r_min": 0.0}, "r_min"),
        ({"nonlinearity": -0.1}, "nonlinearity"),
        ({"write_noise": -1.0}, "write_noise"),
        ({"noise_scaling": "cubic"}, "noise_scaling"),
    ],
)
def test_bad_parameters_name_the_problem(registry, params, name):
    with pytest.raises(txsim_core.ConfigError, match=rf"Expected `{name}`.*but got"):
        build(registry, **params)


@CUDA
def test_same_result_on_cuda(registry):
    update = build(registry, nonlinearity=0.5, write_noise=0.0)
    g, dg = (torch.tensor(a) for a in grid())
    np.testing.assert_allclose(
        update.step(g.cuda(), dg.cuda()).cpu().numpy(), update.step(g, dg).numpy(), rtol=1e-12
    )
    gen = torch.Generator(device="cuda").manual_seed(0)
    noisy = build(registry).step(g.cuda(), dg.cuda(), gen)
    assert noisy.device.type == "cuda"
