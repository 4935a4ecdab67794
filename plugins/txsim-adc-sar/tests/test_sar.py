"""Tests of the SAR ADC; they run against the installed distribution.

The statistics of the errors are compared with the analytic first-order results for a
binary-weighted capacitor DAC whose unit capacitors mismatch independently (Pelgrom area scaling),
and with the normal distribution for the comparator.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from txsim_adc_sar import SARADC

import txsim_core
from txsim_core.calibration import FullScale, calibrating
from txsim_core.registry import Registry


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry()  # loads installed plugins through their entry points


def sar(registry, units, channels, seed=0, **params) -> SARADC:
    adc = registry.build("adc", "sar", **params)
    assert isinstance(adc, SARADC)
    adc.setup(units, channels, torch.Generator().manual_seed(seed))
    return adc


def codes_of(adc, current):
    out = adc(current)
    lsb = adc.full_scale.view(1, -1, 1).to(out) / adc.levels
    return (out / lsb).round().long()


def test_registered_through_its_entry_point(registry):
    spec = registry.get("adc", "sar")
    assert (spec.plugin, spec.distribution) == ("adc-sar", "txsim-adc-sar")
    assert issubclass(spec.params, txsim_core.calibration.FullScaleParams)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "scale",
    [
        {"full_scale": 31.0},
        {"full_scale": 2.7e-5},
        {"calibration": "max"},
        {"calibration": "percentile", "percentile": 97.0, "calibration_scope": "array"},
    ],
)
@pytest.mark.parametrize("bits", [2, 6, 10])
def test_without_errors_it_is_the_ideal_uniform_quantizer_exactly(registry, dtype, scale, bits):
    gen = torch.Generator().manual_seed(bits)
    units, channels = 3, 40
    fs = scale.get("full_scale", 1.0)
    current = torch.randn(300, units, channels, generator=gen, dtype=dtype) * fs * 0.7
    ties = (torch.arange(-40, 40, dtype=dtype) + 0.5) * 1.0  # exact half-LSB ties for LSB = 1
    current[:80, 0, 0] = ties * (fs / 31.0 if "full_scale" in scale else 1.0)
    adc = sar(registry, units, channels, bits=bits, **scale)
    reference = registry.build("adc", "uniform", bits=bits, **scale)
    reference.setup(units, channels, gen)
    for module in (adc, reference):
        module.train()
    for _ in range(2):  # calibrating batches, then converting
        assert torch.equal(adc(current), reference(current))
    assert torch.equal(adc.full_scale, reference.full_scale)


def test_capacitor_mismatch_gives_the_analytic_dnl_and_inl_statistics(registry):
    """Slow ramp over 2048 converter instances, transitions measured on a 1/64-LSB grid.

    For unit capacitors of relative sigma s, M magnitude bits and K = 2**M units in all:
    var(INL_m) = s**2 m (1 - m/K) and var(DNL_m) = s**2 (2**(t+1) - 1 - 1/K), t = trailing ones
    of m; the ramp grid adds step**2/12 per transition.
    """
    bits, sigma = 6, 0.02
    m_bits, top = bits - 1, 2 ** (bits - 1) - 1
    units, channels, step = 32, 64, 1 / 64
    adc = sar(registry, units, channels, seed=1, bits=bits, sigma_cap=sigma, full_scale=float(top))
    ramp = (torch.arange(int((top + 1) / step)) + 0.5) * step  # LSB = 1 A
    current = ramp.view(-1, 1, 1).expand(-1, units, channels).contiguous()
    codes = codes_of(adc, current)
    assert (codes.diff(dim=0) >= 0).all()  # monotonic transfer
    counts = torch.zeros(top + 1, units, channels).scatter_add_(0, codes, torch.ones(codes.shape))
    below = counts.cumsum(0)[:-1].double()  # points with code < m, m = 1 .. top
    transitions = below * step  # midpoint between the last point below and the first at/above m
    m = torch.arange(1, top + 1, dtype=torch.float64).view(-1, 1, 1)
    inl = (transitions - (m - 0.5)).reshape(top, -1).numpy()
    dnl = (transitions[1:] - transitions[:-1] - 1).reshape(top - 1, -1).numpy()
    n = inl.shape[1]
    grid = step**2 / 12
    k = 2**m_bits
    mm = np.arange(1, top + 1)
    inl_var = sigma**2 * mm * (1 - mm / k) + grid
    trailing = np.array([(v ^ (v + 1)).bit_length() - 1 for v in range(1, top)])
    dnl_var = sigma**2 * (2.0 ** (trailing + 1) - 1 - 1 / k) + 2 * grid
    ratio_inl = inl.var(axis=1) / inl_var
    ratio_dnl = dnl.var(axis=1) / dnl_var
    tolerance = 5 * math.sqrt(2 / n)  # relative standard error of a variance: sqrt(2/n)
    assert np.abs(ratio_inl - 1).max() < tolerance, ratio_inl
    assert np.abs(ratio_dnl - 1).max() < tolerance, ratio_dnl
    assert np.abs(inl.mean(axis=1)).max() < 5 * np.sqrt(inl_var / n).max()
    assert np.abs(dnl.mean(axis=1)).max() < 5 * np.sqrt(dnl_var / n).max()
    # the classic rules: mid-scale INL sigma = s * 2**(M/2 - 1), DNL sigma ~ s * 2**(M/2)
    assert inl[k // 2 - 1].std() == pytest.approx(sigma * 2 ** (m_bits / 2 - 1), rel=tolerance)
    assert dnl[k // 2 - 2].std() == pytest.approx(sigma * 2 ** (m_bits / 2), rel=0.1)
    # negative inputs use the same capacitors: the transfer curve is odd
    assert torch.equal(codes_of(adc, -current), -codes)


def test_comparator_offset_shifts_every_transition_by_the_sampled_offset(registry):
    sigma, units, channels, step = 0.3, 64, 64, 1 / 256
    adc = sar(registry, units, channels, seed=2, bits=8, sigma_offset=sigma, full_scale=127.0)
    ramp = -2 + (torch.arange(int(4 / step)) + 0.5) * step  # LSB = 1 A
    current = ramp.view(-1, 1, 1).expand(-1, units, channels).contiguous()
    codes = codes_of(adc, current)
    t_plus = -2 + (codes < 1).sum(0).double() * step  # code 0 -> +1
    t_minus = -2 + (codes <= -1).sum(0).double() * step  # code -1 -> 0
    offset = (-(t_plus + t_minus) / 2).flatten().numpy()  # transitions at +-1/2 - o
    n = offset.size
    assert torch.allclose(t_plus - t_minus, torch.ones_like(t_plus), atol=step * 1.01)
    assert offset.std() == pytest.approx(sigma, rel=5 / math.sqrt(2 * n))
    assert abs(offset.mean()) < 5 * sigma / math.sqrt(n)
    # each instance keeps its own offset between conversions (and its buffer says which)
    assert np.abs(offset - adc.offset.double().flatten().numpy()).max() <= step
    assert torch.equal(codes_of(adc, current), codes)


def test_comparator_noise_gives_a_gaussian_transition(registry):
    """Around the mid-scale transition P(code >= 64) = Phi(delta / sigma) for each conversion."""
    sigma, units, channels, repeats = 0.1, 32, 64, 8
    adc = sar(registry, units, channels, seed=3, bits=8, sigma_noise=sigma, full_scale=127.0)
    deltas = torch.tensor([-0.15, -0.05, 0.0, 0.05, 0.1, 0.2], dtype=torch.float64)
    x = (63.5 + deltas).repeat_interleave(repeats)
    codes = codes_of(adc, x.view(-1, 1, 1).expand(-1, units, channels).contiguous())
    assert set(codes.unique().tolist()) == {63, 64}  # other decisions are >= 8 sigma away
    above = (codes == 64).reshape(len(deltas), -1).double().mean(1)
    expected = 0.5 * (1 + torch.erf(deltas / sigma / math.sqrt(2)))
    n = repeats * units * channels
    se = torch.sqrt(expected * (1 - expected) / n).clamp(min=1 / n)
    assert ((above - expected).abs() <= 5 * se).all(), (above, expected)
    # noise is drawn anew for every conversion: converting again gives other codes
    again = codes_of(adc, x.view(-1, 1, 1).expand(-1, units, channels).contiguous())
    assert not torch.equal(again, codes)


def test_same_generator_seed_same_converters_and_noise(registry):
    params = dict(bits=6, sigma_cap=0.05, sigma_offset=0.5, sigma_noise=0.3, full_scale=1e-5)
    current = torch.rand(20, 2, 5, generator=torch.Generator().manual_seed(9)) * 2e-5 - 1e-5
    a, b, c = (sar(registry, 2, 5, seed=s, **params) for s in (4, 4, 5))
    assert torch.equal(a(current), b(current)) and torch.equal(a.cap_weights, b.cap_weights)
    assert not torch.equal(a.cap_weights, c.cap_weights)


def test_mismatch_and_calibration_are_saved_and_restored(registry):
    params = dict(bits=7, sigma_cap=0.03, sigma_offset=0.4, calibration_scope="array")
    adc = sar(registry, 3, 8, seed=6, **params)
    adc.train()
    current = torch.randn(50, 3, 8, generator=torch.Generator().manual_seed(1)) * 1e-5
    adc(current)
    fresh = registry.build("adc", "sar", **params)
    fresh.load_state_dict(adc.state_dict())  # before setup: buffers take the stored shapes
    fresh.setup(3, 8, torch.Generator().manual_seed(99))  # keeps what was loaded
    assert torch.equal(fresh.cap_weights, adc.cap_weights) and torch.equal(fresh.offset, adc.offset)
    assert torch.equal(fresh.full_scale, adc.full_scale)
    assert torch.equal(fresh.eval()(current), adc.eval()(current))


def test_calibration_is_the_core_one(registry):
    adc = sar(registry, 2, 4, bits=6, calibration_batches=0)
    assert isinstance(adc.scale, FullScale)
    adc.eval()
    first = torch.full((3, 2, 4), 2e-6)
    adc(first)
    adc(first * 10)
    assert adc.full_scale.item() == pytest.approx(2e-6)  # the first call calibrated, then frozen
    with torch.no_grad(), calibrating(adc):
        adc(first * 5)
    assert adc.full_scale.item() == pytest.approx(1e-5)


def test_saturates_at_full_scale_with_mismatch(registry):
    adc = sar(registry, 4, 16, bits=5, sigma_cap=0.05, full_scale=1.5e-5)
    out = adc(torch.tensor([-1.0, 1.0]).view(2, 1, 1).expand(2, 4, 16).contiguous())
    assert torch.equal(out[0], torch.full((4, 16), -1.5e-5))
    assert torch.equal(out[1], torch.full((4, 16), 1.5e-5))


def test_conversion_needs_setup_and_matching_shape(registry):
    adc = registry.build("adc", "sar")
    with pytest.raises(
        txsim_core.ConfigError, match=r"Expected setup\(units, channels, generator\)"
    ):
        adc(torch.zeros(2, 3, 4))
    adc.setup(3, 4, torch.Generator())
    with pytest.raises(txsim_core.ConfigError, match=r"Expected currents of shape \(B, 3, 4\)"):
        adc(torch.zeros(2, 3, 5))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bits": 1}, "Expected `bits` to be an integer in [2, 24], but got 1"),
        ({"bits": 0}, "Expected `bits` to be an integer in [2, 24], but got 0"),
        ({"sigma_cap": -0.01}, "Expected `sigma_cap` to be a number in [0, 0.2], but got -0.01"),
        ({"sigma_cap": 0.5}, "Expected `sigma_cap` to be a number in [0, 0.2], but got 0.5"),
        ({"sigma_offset": -1}, "Expected `sigma_offset` to be a number >= 0, but got -1.0"),
        ({"sigma_noise": -0.5}, "Expected `sigma_noise` to be a number >= 0, but got -0.5"),
        ({"full_scale": 0}, "Expected `full_scale` to be a number > 0 or None, but got 0.0"),
    ],
)
def test_bad_parameters_name_the_problem(registry, params, message):
    with pytest.raises(txsim_core.ConfigError, match="adc model 'sar'") as info:
        registry.build("adc", "sar", **params)
    assert message in str(info.value)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_and_draws_noise_on_the_device(registry):
    params = dict(bits=8, sigma_cap=0.02, sigma_offset=0.3, full_scale=1e-5)
    cpu = sar(registry, 4, 32, seed=7, **params)
    gpu = sar(registry, 4, 32, seed=7, **params).cuda()
    current = torch.randn(64, 4, 32, generator=torch.Generator().manual_seed(2)) * 1e-5
    assert torch.equal(gpu(current.cuda()).cpu(), cpu(current))
    noisy = sar(registry, 4, 32, seed=7, sigma_noise=0.5, **params).cuda()
    out = noisy(current.cuda())
    assert out.is_cuda and (out.cpu() - cpu(current)).abs().max() > 0


def test_zero_current_is_silent_only_for_an_exact_noiseless_converter(registry):
    """A layer leaves out the passes that drive no row only where 0 A converts to 0 without a
    trace: not with mismatch (0 A can be code 1), offset, noise, or a percentile calibrating."""
    assert sar(registry, 2, 3).zero_current_is_silent()
    for params in ({"sigma_cap": 0.01}, {"sigma_offset": 0.1}, {"sigma_noise": 0.1}):
        assert not sar(registry, 2, 3, **params).zero_current_is_silent(), params
    adc = sar(registry, 2, 3, calibration="percentile", calibration_batches=1)
    assert not adc.zero_current_is_silent()
    adc(torch.randn(4, 2, 3))
    assert adc.zero_current_is_silent()  # frozen after its one calibration minibatch
