"""Tests of the ``pcm`` update model; they run against the installed distribution.

Reference values come from outside this plugin: the SET law is checked against a numerical
integration (scipy) of aihwkit's exponential-step pulse law written in aihwkit's own variables,
the programming noise against the polynomial of aihwkit's PCMLikeNoiseModel, and the write noise
against sample statistics.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad, solve_ivp
from scipy.stats import norm

import txsim_core
from txsim_core.registry import Registry

G_MIN, G_MAX = 0.25e-6, 25e-6
SPAN = G_MAX - G_MIN

# aihwkit PCMPresetDevice (ExpStepDevice): w in [w_min, w_max] = [0, 2], a = -1, b = 0,
# A_up = -27.235, gamma_up = 2.5; a pulse moves w by dw_min * (1 - A_up * exp(gamma_up * z)),
# z = 2 * a * w / (w_max - w_min) + b.
AIHW_A_UP, AIHW_GAMMA_UP, AIHW_A, AIHW_B, AIHW_W_MAX = -27.235, 2.5, -1.0, 0.0, 2.0
# aihwkit PCMPresetDevice cycle-to-cycle noise (w units): dw_min_std * (|dw| + add + slope * |w|).
AIHW_DW_MIN_STD, AIHW_STD_ADD, AIHW_STD_SLOPE = 0.6, 0.042, 0.108


def aihw_rate(w: float) -> float:
    """Relative SET step of aihwkit's PCM preset at weight w (its y_up)."""
    z = 2.0 * AIHW_A * w / AIHW_W_MAX + AIHW_B
    return 1.0 - AIHW_A_UP * math.exp(AIHW_GAMMA_UP * z)


def pulse_scale(pulses_full: float) -> float:
    """dw per pulse (times y_up) such that pulses_full pulses take w from 0 to w_max."""
    return quad(lambda w: 1.0 / aihw_rate(w), 0.0, AIHW_W_MAX)[0] / pulses_full


def ode_state_after(x0: float, pulses: float, pulses_full: float = 73.0) -> float:
    """Normalised state after ``pulses`` SET pulses from x0, integrating aihwkit's pulse law."""
    if pulses == 0:
        return x0
    k = pulse_scale(pulses_full)
    sol = solve_ivp(
        lambda n, w: [k * aihw_rate(w[0])],
        (0.0, pulses),
        [x0 * AIHW_W_MAX],
        rtol=1e-11,
        atol=1e-13,
    )
    return sol.y[0, -1] / AIHW_W_MAX


def prog_sigma(g_target: np.ndarray) -> np.ndarray:
    """aihwkit PCMLikeNoiseModel programming noise (uS polynomial at g_max = 25 uS), in S."""
    q = g_target / 25e-6
    return (0.26348 + 1.9650 * q - 1.1731 * q**2) * 1e-6


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry()


def build(registry: Registry, **params):
    return registry.build("update", "pcm", **params)


def random_state(shape, generator, dtype=torch.float64) -> torch.Tensor:
    return G_MIN + SPAN * torch.rand(shape, generator=generator, dtype=dtype)


def test_registered_through_its_entry_point(registry):
    for kind in ("update", "mapping"):
        spec = registry.get(kind, "pcm")
        assert (spec.plugin, spec.distribution) == ("pcm", "txsim-pcm")


def test_build_model_alone_and_plain_tensor_step():
    update = txsim_core.build_model("update", "pcm")
    g = torch.full((2, 3, 4), G_MIN)
    dg = torch.zeros_like(g)
    dg[0] = 1e-6
    out = update.step(g, dg, torch.Generator().manual_seed(0))
    assert out.shape == g.shape and out.dtype == g.dtype
    assert (out[0] > G_MIN).all() and torch.equal(out[1], g[1])


def test_mapping_and_update_agree_on_the_range(registry):
    mapping = registry.build("mapping", "pcm")
    update = build(registry)
    assert (mapping.g_min, mapping.g_max) == (update.g_min, update.g_max) == (G_MIN, G_MAX)


def test_set_law_matches_aihwkit_pulse_law_integrated_numerically(registry):
    update = build(registry, write_noise=0.0, refresh=False)
    for x0 in (0.0, 0.1, 0.37, 0.8):
        for pulses in (0.2, 1.0, 7.5, 30.0):
            g = torch.zeros(2, 1, 1, dtype=torch.float64)
            g[0] = G_MIN + x0 * SPAN
            g[1] = G_MIN
            dg = torch.zeros_like(g)
            dg[0] = pulses / 73.0 * SPAN
            out = update.step(g, dg)
            expected = min(ode_state_after(x0, pulses), 1.0)
            got = (out[0, 0, 0].item() - G_MIN) / SPAN
            assert got == pytest.approx(expected, rel=1e-7, abs=1e-9), (x0, pulses)


def test_full_span_request_from_g_min_reaches_g_max_and_requests_compose(registry):
    update = build(registry, write_noise=0.0, refresh=False)
    g = torch.full((2, 4, 5), G_MIN, dtype=torch.float64)
    dg = torch.zeros_like(g)
    dg[1] = SPAN  # net request -SPAN: sets the negative device from g_min to g_max
    out = update.step(g, dg)
    assert torch.allclose(out[1], torch.tensor(G_MAX, dtype=torch.float64), rtol=1e-12)
    assert (out[0] == G_MIN).all()
    dg = torch.zeros_like(g)
    dg[0] = torch.linspace(0.0, 0.6, 20, dtype=torch.float64).reshape(4, 5) * SPAN
    once = update.step(g, dg)
    twice = update.step(update.step(g, dg / 2), dg / 2)
    torch.testing.assert_close(once, twice, rtol=1e-10, atol=1e-18)


def test_step_size_falls_with_state_as_in_the_preset(registry):
    update = build(registry, write_noise=0.0, refresh=False)
    g = torch.tensor([[[G_MIN]], [[G_MIN]]], dtype=torch.float64).repeat(1, 1, 2)
    g[0, 0, 1] = G_MAX - 1e-4 * SPAN
    dg = torch.zeros_like(g)
    dg[0] = 1e-6 * SPAN
    inc = (update.step(g, dg) - g)[0, 0]
    # aihwkit's step ratio between w = 0 and w = w_max
    assert (inc[0] / inc[1]).item() == pytest.approx(aihw_rate(0.0) / aihw_rate(2.0), rel=1e-3)


def test_no_device_decreases_without_refresh(registry):
    update = build(registry, refresh=False)
    gen = torch.Generator().manual_seed(1)
    g = random_state((3, 2, 16, 16), gen)
    for _ in range(30):
        dg = 0.05 * SPAN * torch.randn(g.shape, generator=gen, dtype=g.dtype)
        new = update.step(g, dg, gen)
        assert (new >= g).all()
        g = new


def test_decreases_only_by_refresh(registry):
    """With refresh on, the result equals the no-refresh SET except on refreshed pairs."""
    plain = build(registry, refresh=False)
    refreshing = build(registry)
    gen = torch.Generator().manual_seed(2)
    g = random_state((4, 2, 12, 12), gen)
    refreshed_total = 0
    for step in range(25):
        dg = 0.05 * SPAN * torch.randn(g.shape, generator=gen, dtype=g.dtype)
        set_only = plain.step(g, dg, torch.Generator().manual_seed(step))
        new = refreshing.step(g, dg, torch.Generator().manual_seed(step))
        assert (set_only >= g).all()
        mask = refreshing.refresh_mask(set_only[..., 0, :, :], set_only[..., 1, :, :])
        pair_mask = mask.unsqueeze(-3).expand_as(g)
        assert torch.equal(new[~pair_mask], set_only[~pair_mask])
        # every refreshed pair has one device RESET to exactly g_min
        low = torch.minimum(new[..., 0, :, :], new[..., 1, :, :])
        assert (low[mask] == G_MIN).all()
        refreshed_total += int(mask.sum())
        g = new
    assert refreshed_total > 0


def test_the_side_that_moves_matches_the_sign_of_the_net_request(registry):
    update = build(registry, refresh=False)
    gen = torch.Generator().manual_seed(3)
    g = random_state((2, 20, 30), gen)
    g = g.clamp(max=G_MIN + 0.9 * SPAN)  # room to move, so every SET increases G
    dg = 0.02 * SPAN * torch.randn(g.shape, generator=gen, dtype=g.dtype)
    common = 0.01 * SPAN * torch.rand(g.shape[1:], generator=gen, dtype=g.dtype)
    dg[:, :5] = common[:5]  # equal requests on both devices: no net change
    net = dg[0] - dg[1]
    new = update.step(g, dg, gen)
    pos, neg = net > 0, net < 0
    assert pos.any() and neg.any() and (net == 0).sum() == 5 * 30
    assert torch.equal(new[1][pos], g[1][pos]) and (new[0][pos] > g[0][pos]).all()
    assert torch.equal(new[0][neg], g[0][neg]) and (new[1][neg] > g[1][neg]).all()
    zero = net == 0
    assert torch.equal(new[:, zero], g[:, zero])


def _pairs(values, dtype=torch.float64) -> torch.Tensor:
    """Conductances (2, 1, K) from K pairs of normalised states."""
    x = torch.tensor(values, dtype=dtype).T.unsqueeze(1)
    return G_MIN + x * SPAN


def test_refresh_criterion_and_exact_reprogramming(registry):
    update = build(registry, prog_noise_scale=0.0)
    g = _pairs([(0.9, 0.5), (0.9, 0.1), (0.6, 0.5), (0.4, 0.95), (0.3, 0.3)])
    out = update.step(g, torch.zeros_like(g))
    expected = _pairs([(0.4, 0.0), (0.9, 0.1), (0.6, 0.5), (0.0, 0.55), (0.3, 0.3)])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-18)


def test_refresh_when_a_device_saturates(registry):
    update = build(registry, write_noise=0.0, prog_noise_scale=0.0, refresh_upper=1.0)
    g = _pairs([(0.95, 0.4), (0.95, 0.4)])
    dg = torch.zeros_like(g)
    dg[0, 0, 0] = 0.2 * SPAN  # drives the positive device into g_max
    out = update.step(g, dg)
    torch.testing.assert_close(out, _pairs([(0.6, 0.0), (0.95, 0.4)]), rtol=0, atol=1e-18)


def test_refresh_preserves_the_difference_within_programming_noise(registry):
    update = build(registry)
    n = 40000
    g = _pairs([(0.9, 0.5)] * n)
    out = update.step(g, torch.zeros_like(g), torch.Generator().manual_seed(4))
    assert (out[1] == G_MIN).all()
    old_diff = (g[0] - g[1]).numpy().ravel()
    new_diff = (out[0] - out[1]).numpy().ravel()
    z = (new_diff - old_diff) / prog_sigma(G_MIN + old_diff)
    assert abs(z.mean()) < 4.0 / math.sqrt(n)
    assert z.std() == pytest.approx(1.0, abs=0.03)


def expected_write_noise(x0: float, pulses: float) -> tuple[float, float]:
    """Mean and std (S) of a SET of `pulses` pulses at x0, per the README, from the ODE."""
    mean = (ode_state_after(x0, pulses) - x0) * SPAN
    one_pulse = ode_state_after(x0, 1.0) - x0
    sigma_pulse = AIHW_DW_MIN_STD * (one_pulse + AIHW_STD_ADD / 2 + AIHW_STD_SLOPE * x0)
    return mean, math.sqrt(pulses) * sigma_pulse * SPAN


@pytest.mark.parametrize(("x0", "pulses"), [(0.3, 5.0), (0.05, 2.0), (0.6, 1.0)])
def test_write_noise_statistics_match_the_formula(registry, x0, pulses):
    """Increments are lognormal with the documented mean and std, censored at g_max."""
    update = build(registry, refresh=False)
    g = torch.full((2, 400, 500), G_MIN + x0 * SPAN, dtype=torch.float64)
    dg = torch.zeros_like(g)
    dg[0] = pulses / 73.0 * SPAN
    out = update.step(g, dg, torch.Generator().manual_seed(5))
    inc = (out[0] - g[0]).numpy().ravel()
    n = inc.size
    assert inc.min() > 0.0
    mean, sigma = expected_write_noise(x0, pulses)
    s2 = math.log1p((sigma / mean) ** 2)
    s, m = math.sqrt(s2), math.log(mean) - s2 / 2  # parameters of ln(increment)
    cap = G_MAX - g[0, 0, 0].item()  # saturation at g_max censors the lognormal
    p_cap = norm.sf((math.log(cap) - m) / s)
    mean_c = mean * norm.cdf((math.log(cap) - m - s2) / s) + cap * p_cap
    second_c = math.exp(2 * m + 2 * s2) * norm.cdf((math.log(cap) - m - 2 * s2) / s)
    std_c = math.sqrt(second_c + cap**2 * p_cap - mean_c**2)
    assert inc.mean() == pytest.approx(mean_c, abs=5 * std_c / math.sqrt(n))
    assert inc.std() == pytest.approx(std_c, rel=0.05)
    assert (inc >= cap * (1 - 1e-9)).mean() == pytest.approx(p_cap, abs=5 * math.sqrt(p_cap / n))
    for p in (0.05, 0.25, 0.5, 0.75, 0.9):  # the distribution's shape below the cap
        quantile = math.exp(m + s * norm.ppf(p))
        assert (inc <= quantile).mean() == pytest.approx(p, abs=5 * math.sqrt(p * (1 - p) / n))


def test_write_noise_grows_with_state_for_the_same_pulse_count(registry):
    update = build(registry, refresh=False)
    g = torch.tensor([G_MIN + 0.2 * SPAN, G_MIN + 0.7 * SPAN], dtype=torch.float64)
    r = torch.full_like(g, SPAN / 73.0)
    sigma = update.write_noise_std(g, r)
    mean = update.set_mean(g, r)
    assert (sigma / mean)[1] > 3 * (sigma / mean)[0]  # relative noise rises towards g_max


def test_reproducible_under_a_seeded_generator(registry):
    update = build(registry)
    gen = torch.Generator().manual_seed(6)
    g = random_state((2, 2, 8, 8), gen)
    dg = 0.05 * SPAN * torch.randn(g.shape, generator=gen, dtype=g.dtype)
    a = update.step(g, dg, torch.Generator().manual_seed(7))
    b = update.step(g, dg, torch.Generator().manual_seed(7))
    c = update.step(g, dg, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(9)
    d = update.step(g, dg)
    torch.manual_seed(9)
    assert torch.equal(d, update.step(g, dg))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bounds_respected(registry, dtype):
    update = build(registry, refresh_upper=1.0, refresh_lower=0.0)
    gen = torch.Generator().manual_seed(10)
    g = random_state((3, 2, 10, 10), gen, dtype)
    for scale in (1e-9, 1e-3, 0.1, 3.0):
        for _ in range(5):
            dg = scale * SPAN * torch.randn(g.shape, generator=gen, dtype=dtype)
            g = update.step(g, dg, gen)
            assert g.dtype == dtype
            assert torch.isfinite(g).all()
            assert (g >= G_MIN).all() and (g <= G_MAX).all()


def test_tiny_requests_keep_the_mean(registry):
    """Requests far below one pulse: lognormal noise keeps the mean (no rectification bias)."""
    update = build(registry, refresh=False)
    g = torch.full((2, 500, 400), G_MIN + 0.5 * SPAN, dtype=torch.float64)
    dg = torch.zeros_like(g)
    dg[0] = 0.2 / 73.0 * SPAN
    inc = (update.step(g, dg, torch.Generator().manual_seed(11)) - g)[0]
    mean, sigma = expected_write_noise(0.5, 0.2)
    assert sigma > 5 * mean  # a Gaussian clipped at zero would be biased by ~0.4 sigma
    assert inc.mean().item() == pytest.approx(mean, abs=5 * sigma / math.sqrt(inc.numel()))


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"g_min": 2e-5, "g_max": 1e-5}, "g_max"),
        ({"g_min": -1e-6}, "g_min"),
        ({"refresh_lower": 0.8, "refresh_upper": 0.7}, "refresh_lower"),
        ({"refresh_upper": 0.0}, "refresh_upper"),
        ({"set_a": -1.0}, "set_a"),
        ({"set_gamma": -0.5}, "set_gamma"),
        ({"set_pulses": 0.5}, "set_pulses"),
        ({"write_noise": -0.1}, "write_noise"),
        ({"prog_noise_scale": -1.0}, "prog_noise_scale"),
        ({"refresh": "yes"}, "refresh"),
    ],
)
def test_bad_parameters_name_the_problem(registry, params, name):
    with pytest.raises(txsim_core.ConfigError, match=rf"Expected `{name}`.*but got"):
        build(registry, **params)


def test_bad_shapes_are_reported(registry):
    update = build(registry)
    g = torch.full((3, 4, 5), G_MIN)
    with pytest.raises(txsim_core.ConfigError, match=r"Expected conductances of shape"):
        update.step(g, torch.zeros_like(g))
    g = torch.full((2, 4, 5), G_MIN)
    with pytest.raises(txsim_core.ConfigError, match=r"Expected `dg` of the same shape"):
        update.step(g, torch.zeros(2, 4, 4))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda_like_on_cpu(registry):
    update = build(registry)
    gen_cpu = torch.Generator().manual_seed(12)
    g = random_state((2, 2, 64, 64), gen_cpu, torch.float32)
    dg = 0.05 * SPAN * torch.randn(g.shape, generator=gen_cpu)
    cuda = torch.device("cuda")
    out = update.step(g.to(cuda), dg.to(cuda), torch.Generator(device=cuda).manual_seed(1))
    assert out.device.type == "cuda" and out.dtype == torch.float32
    assert (out >= G_MIN).all() and (out <= G_MAX).all()
    quiet = build(registry, write_noise=0.0, prog_noise_scale=0.0)
    torch.testing.assert_close(
        quiet.step(g.to(cuda), dg.to(cuda)).cpu(), quiet.step(g, dg), rtol=1e-5, atol=1e-12
    )
