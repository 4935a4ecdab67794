"""The fast conversion paths give the reference loop's result bit for bit.

``SARADC.forward`` picks a closed form (exact DAC), a table lookup (mismatched DAC) or the
decisions bit by bit with reused buffers (comparator noise, large tables); ``_convert(current,
"loop")`` runs the reference loop, the algorithm as written in the module docstring. Every test
compares the two on the same converters with ``bit_identical`` (the same bit patterns, so also
the sign of zero, and NaN in the same places), on inputs aimed at the decision boundaries: exact transition levels
and their neighbouring floats, half-LSB ties, zeros of both signs, saturation, infinities and
NaN.
"""

from __future__ import annotations

import pytest
import torch
from txsim_adc_sar import SARADC
from txsim_adc_sar.models import _magnitude_thresholds, _Table, _transition_levels

import txsim_core.calibration
from txsim_core.compiled import FUSED_MIN_VALUES, compiler_works
from txsim_core.registry import Registry
from txsim_core.testing.parts import SplitCurrents

INT_OF = {
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
    torch.float32: torch.int32,
    torch.float64: torch.int64,
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry()


def sar(registry, units, channels, seed=0, **params) -> SARADC:
    adc = registry.build("adc", "sar", **params)
    assert isinstance(adc, SARADC)
    adc.setup(units, channels, torch.Generator().manual_seed(seed))
    return adc


def bit_identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The same bit patterns, signed zeros included; NaN in the same places (of any payload)."""
    if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(a.isnan(), b.isnan()):
        return False
    a, b = a.masked_fill(a.isnan(), 0.0), b.masked_fill(b.isnan(), 0.0)
    return torch.equal(a.view(INT_OF[a.dtype]), b.view(INT_OF[b.dtype]))


def specials(dtype) -> torch.Tensor:
    values = [0.0, -0.0, 0.5, -0.5, 1e-40, -1e-40, 1e30, -1e30, torch.inf, -torch.inf, torch.nan]
    return torch.tensor(values, dtype=dtype)


def random_shape(gen) -> tuple[int, int]:
    return int(torch.randint(1, 5, (1,), generator=gen)), int(
        torch.randint(1, 9, (1,), generator=gen)
    )


def neighbours(values: torch.Tensor) -> torch.Tensor:
    """The values and the two floats next to each."""
    down = torch.nextafter(values, torch.full_like(values, -torch.inf))
    up = torch.nextafter(values, torch.full_like(values, torch.inf))
    return torch.cat((values, down, up), dim=-1)


def boundary_currents(adc: SARADC, dtype, gen, batch: int) -> torch.Tensor:
    """Currents (full scale = L, so LSB = 1 A) at every instance's decision boundaries.

    Per instance, its transitions in the comparator's units (``E``, after the half-LSB shift)
    and in magnitudes (``T``, before it), their neighbours, with both signs and minus the
    instance's offset (and the floats next to that, so that ``x + offset`` lands on the
    boundary), then random values over twice the range and the special values.
    """
    units, channels, magnitude_bits = adc.cap_weights.shape
    n = units * channels
    if magnitude_bits <= 12:
        levels = _transition_levels(adc.cap_weights.to(dtype).reshape(n, magnitude_bits))
    else:  # an exact DAC (asserted): its transitions are the integers; some, and the top
        assert adc._dac_state(dtype, torch.device("cpu")).binary
        top = 2**magnitude_bits - 1
        picked = torch.randint(1, top + 1, (n, 2000), generator=gen)
        near_top = torch.arange(top - 99, top + 1).expand(n, -1)
        levels = torch.cat((picked, near_top), dim=1).to(dtype)
    magnitudes = torch.cat((levels, _magnitude_thresholds(levels), levels - 0.5), dim=1)
    if magnitudes.shape[1] > 400:  # keep the test short: the ends and a random sample
        count = magnitudes.shape[1]
        picked = torch.randint(0, count, (300,), generator=gen)
        ends = torch.cat((torch.arange(20), torch.arange(count - 20, count)))
        magnitudes = magnitudes[:, torch.cat((picked, ends))]
    signed = torch.cat((neighbours(magnitudes), -neighbours(magnitudes)), dim=1)
    offset = adc.offset.to(dtype).reshape(n, 1)
    shifted = neighbours(signed - offset) if bool((offset != 0).any()) else signed
    limit = 2.0**magnitude_bits
    noise = (torch.rand(n, batch, generator=gen, dtype=dtype) * 2 - 1) * limit * 1.2
    columns = torch.cat((shifted, noise, specials(dtype).expand(n, -1)), dim=1)
    return columns.t().reshape(-1, units, channels).contiguous()


def check_paths(adc: SARADC, current: torch.Tensor) -> None:
    before = current.clone()
    expected = adc._convert(current, "loop")
    got = adc(current)
    assert bit_identical(got, expected)
    assert bit_identical(current, before)  # the input is never written
    assert not got.requires_grad
    strided = current.detach().transpose(1, 2).contiguous().transpose(1, 2)  # same values
    assert bit_identical(adc(strided).contiguous(), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sigma_offset", [0.0, 0.4])
@pytest.mark.parametrize("bits", [2, 3, 8, 12, 24])
def test_exact_dac_closed_form_is_the_loop_bit_for_bit(registry, bits, sigma_offset, dtype):
    gen = torch.Generator().manual_seed(bits)
    units, channels = random_shape(gen)
    top = 2 ** (bits - 1) - 1
    adc = sar(registry, units, channels, bits=bits, sigma_offset=sigma_offset, full_scale=top)
    state = adc._dac_state(dtype, torch.device("cpu"))
    assert state.binary and state.closed_form and state.table is None
    current = boundary_currents(adc, dtype, gen, batch=400)
    ties = torch.arange(-min(top, 300) - 2, min(top, 300) + 2, dtype=dtype) + 0.5  # half LSB
    current = torch.cat((current, neighbours(ties).view(-1, 1, 1).expand(-1, units, channels)))
    check_paths(adc, current.requires_grad_(True))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exact_converter_fused_on_the_cpu_is_the_loop_bit_for_bit(registry, monkeypatch, dtype):
    """From FUSED_MIN_VALUES currents on, the exact converter runs as one compiled loop
    (``txsim_core.compiled``): still the loop's bits, with one full scale (at the decision
    boundaries) and with one full scale per unit (calibrated)."""

    if not compiler_works():
        pytest.skip("torch.compile cannot build kernels here (no C++ compiler?)")

    def refuse(*args, **kwargs):
        raise AssertionError("the eager path ran where the fused kernel should have")

    gen = torch.Generator().manual_seed(11)
    one = sar(registry, 3, 8, bits=8, full_scale=127.0)
    boundary = boundary_currents(one, dtype, gen, batch=FUSED_MIN_VALUES // 24)
    per_unit = sar(registry, 3, 8, bits=8, calibration_scope="array")
    scale = torch.tensor([1e-6, 3e-6, 2e-5], dtype=dtype).view(1, 3, 1)
    random = torch.randn(FUSED_MIN_VALUES // 24 + 1, 3, 8, generator=gen, dtype=dtype) * scale
    per_unit(random)  # calibrates one full scale per unit
    for adc, current in ((one, boundary), (per_unit, random)):
        assert current.numel() >= FUSED_MIN_VALUES
        expected = adc._convert(current, "loop", calibrate=False)
        with monkeypatch.context() as patch:
            patch.setattr(txsim_core.calibration, "signed_codes_", refuse)
            assert bit_identical(adc(current), expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_exact_dac_closed_form_in_half_precision_is_the_loop_bit_for_bit(registry, dtype):
    adc = sar(registry, 2, 3, bits=6, full_scale=31.0)
    assert adc._dac_state(dtype, torch.device("cpu")).closed_form
    gen = torch.Generator().manual_seed(5)
    current = boundary_currents(adc, torch.float32, gen, batch=200).to(dtype)
    check_paths(adc, torch.cat((current, specials(dtype).view(-1, 1, 1).expand(-1, 2, 3))))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("bits", "sigma_cap"),
    [(2, 0.2), (3, 0.05), (6, 0.2), (8, 0.01), (8, 0.2), (12, 0.01), (12, 0.05)],
)
@pytest.mark.parametrize("sigma_offset", [0.0, 0.5])
def test_mismatch_table_lookup_is_the_loop_bit_for_bit(
    registry, bits, sigma_cap, sigma_offset, dtype
):
    gen = torch.Generator().manual_seed(bits * 100 + int(sigma_cap * 100))
    units, channels = random_shape(gen)
    params = dict(bits=bits, sigma_cap=sigma_cap, sigma_offset=sigma_offset)
    adc = sar(registry, units, channels, seed=bits, full_scale=2 ** (bits - 1) - 1, **params)
    state = adc._dac_state(dtype, torch.device("cpu"))
    assert not state.binary and state.table is not None
    check_paths(adc, boundary_currents(adc, dtype, gen, batch=300))


def test_missing_codes_of_a_non_monotonic_dac_are_reproduced(registry):
    """Where a bit weighs less than the bits below it, the SAR skips codes.

    Weights (bit 0, 1, 2): (1, 2, 2.5): code 3 (DAC level 3) lies above code 4 (2.5), so ``v``
    in [2.5, 3) already keeps the MSB and code 3 is never reached. (1, 1.5, 4): not binary but
    monotonic, every code is reached. (1.5, 1, 4): codes 1 and 5 are skipped. (0.25, 2, 4):
    the first transition lies below the half-LSB shift, so 0 A converts to code 1 (and NaN,
    which fails every comparison, still to -0).
    """
    adc = sar(registry, 1, 4, bits=4, full_scale=7.0)
    weights = torch.tensor([[[1.0, 2.0, 2.5], [1.0, 1.5, 4.0], [1.5, 1.0, 4.0], [0.25, 2.0, 4.0]]])
    adc.cap_weights = weights  # replacing the buffer invalidates the cached tables
    ramp = torch.arange(-9 * 256, 9 * 256 + 1, dtype=torch.float32) / 256
    current = ramp.view(-1, 1, 1).expand(-1, 1, 4).contiguous()
    gen = torch.Generator().manual_seed(0)
    check_paths(adc, torch.cat((current, boundary_currents(adc, torch.float32, gen, 10))))
    codes = adc(current).round().long()
    assert (codes.diff(dim=0) >= 0).all()  # monotonic anyway
    every = set(range(-7, 8))
    assert set(codes[:, 0, 0].tolist()) == every - {3, -3}
    assert set(codes[:, 0, 1].tolist()) == every
    assert set(codes[:, 0, 2].tolist()) == every - {1, -1, 5, -5}
    assert set(codes[:, 0, 3].tolist()) == every - {0}
    special = adc(torch.tensor([0.0, -0.0, torch.nan]).view(3, 1, 1).expand(3, 1, 4))[:, 0, 3]
    assert bit_identical(special, torch.tensor([1.0, -1.0, torch.nan]))  # -0.0 is negative
    levels = _transition_levels(weights[0])  # coinciding transitions: the skipped codes
    assert levels[0].tolist() == [1.0, 2.0, 2.5, 2.5, 3.5, 4.5, 5.5]
    assert levels[2].tolist() == [1.0, 1.0, 2.5, 4.0, 5.0, 5.0, 6.5]


@pytest.mark.parametrize("sigma_cap", [0.0, 0.05])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bits", [3, 8])
def test_noisy_decisions_step_by_step_are_the_loop_bit_for_bit(registry, bits, dtype, sigma_cap):
    params = dict(bits=bits, sigma_cap=sigma_cap, sigma_offset=0.3, sigma_noise=0.4)
    top = 2 ** (bits - 1) - 1
    reference, fast = (sar(registry, 3, 5, seed=7, full_scale=top, **params) for _ in range(2))
    gen = torch.Generator().manual_seed(bits)
    current = boundary_currents(reference, dtype, gen, batch=200)
    for _ in range(2):  # the generators advance alike: the same noise on the next call too
        expected = reference._convert(current, "loop")
        assert bit_identical(fast(current), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_without_a_table_the_noiseless_steps_are_the_loop_bit_for_bit(registry, dtype):
    """Past the table limit, and in dtypes without a table, the mismatched DAC runs by steps."""
    adc = sar(registry, 2, 3, bits=6, sigma_cap=0.03, sigma_offset=0.2, full_scale=31.0)
    adc.table_limit = 100
    assert adc._dac_state(dtype, torch.device("cpu")).table is None
    gen = torch.Generator().manual_seed(3)
    current = boundary_currents(adc, torch.float32, gen, batch=300).to(dtype)
    check_paths(adc, current)
    exact = sar(registry, 2, 3, bits=6, full_scale=31.0)
    check_paths(exact, current)


def test_with_many_transitions_per_lsb_the_steps_are_the_loop_bit_for_bit(registry):
    """More candidates per bucket than bits: the table is dropped for the steps."""
    adc = sar(registry, 1, 4, seed=0, bits=12, sigma_cap=0.2, full_scale=2047.0)
    assert adc._dac_state(torch.float32, torch.device("cpu")).table is None
    table = _Table.build(adc.cap_weights.reshape(4, 11), 1, 4)
    assert len(table.candidates) > 11 and table.entries < adc.table_limit
    gen = torch.Generator().manual_seed(12)
    check_paths(adc, boundary_currents(adc, torch.float32, gen, batch=100))


def test_tables_follow_the_weights(registry):
    """Loading, changing in place and converting the buffers all rebuild what is cached."""
    params = dict(bits=8, sigma_cap=0.05, full_scale=127.0)
    adc, other = sar(registry, 2, 4, seed=1, **params), sar(registry, 2, 4, seed=2, **params)
    gen = torch.Generator().manual_seed(0)
    current = boundary_currents(other, torch.float32, gen, batch=100)
    before = adc(current)
    adc.load_state_dict(other.state_dict())  # copies into the same buffer
    assert bit_identical(adc(current), other(current))
    assert not torch.equal(adc(current), before)
    with torch.no_grad():
        adc.cap_weights[0, 0].mul_(1.1)
    check_paths(adc, current)
    assert not torch.equal(adc(current), other(current))
    adc.double()  # float64 buffers
    check_paths(adc, current.double())
    binary = 2.0 ** torch.arange(7, dtype=torch.float64)
    with torch.no_grad():
        adc.cap_weights.copy_(binary.expand_as(adc.cap_weights))
    assert adc._dac_state(torch.float64, torch.device("cpu")).binary
    check_paths(adc, current.double())


def test_non_finite_weights_use_the_loop(registry):
    adc = sar(registry, 1, 2, bits=4, sigma_cap=0.05, full_scale=7.0)
    adc.cap_weights = torch.tensor([[[1.0, 2.0, torch.inf], [1.0, torch.nan, 4.0]]])
    assert not adc._dac_state(torch.float32, torch.device("cpu")).finite
    current = torch.linspace(-9, 9, 301).view(-1, 1, 1).expand(-1, 1, 2).contiguous()
    check_paths(adc, current)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("params", [{}, {"sigma_cap": 0.05, "sigma_offset": 0.3}])
def test_cuda_fast_paths_are_the_loop_bit_for_bit(registry, params):
    adc = sar(registry, 3, 7, seed=4, bits=8, full_scale=127.0, **params)
    gen = torch.Generator().manual_seed(5)
    current = boundary_currents(adc, torch.float32, gen, batch=300)
    cpu = adc(current)
    adc.cuda()
    gpu = adc(current.cuda())
    assert bit_identical(gpu, adc._convert(current.cuda(), "loop"))
    assert bit_identical(gpu.cpu(), cpu)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"sigma_cap": 0.05, "sigma_offset": 0.3},  # the table path
        {"sigma_cap": 0.05, "calibration_scope": "array"},
    ],
)
def test_conversion_in_parts_is_the_conversion_of_the_whole_minibatch(registry, params):
    """What a layer on the CPU does: the minibatch in parts, calibrating as from all of it."""
    whole, parted = (sar(registry, 3, 7, seed=4, bits=6, **params) for _ in range(2))
    gen = torch.Generator().manual_seed(8)
    for scale in (1.0, 2.5, 0.3):  # the calibrated full scale grows, then holds
        current = scale * torch.randn(50, 3, 7, generator=gen, dtype=torch.float64)
        expected = whole(current)
        parts = SplitCurrents(current, 8)
        assert parted.convert_parts(parts)
        assert bit_identical(parts.converted(), expected)
        assert torch.equal(parted.full_scale, whole.full_scale)
