"""Fused kernels (``txsim_core.compiled``): bit for bit their eager operations, a switch, a
fallback that warns."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import txsim_core
import txsim_core.builtin.converters
from txsim_core import calibration
from txsim_core.calibration import convert_sign_magnitude_
from txsim_core.compiled import COMPILE_SWITCH, FUSED_MIN_VALUES, FusedKernel, compiler_works
from txsim_core.errors import ConfigError

INT_OF = {torch.float32: torch.int32, torch.float64: torch.int64}


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The same bit patterns (signed zeros included), NaN in the same places."""
    if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(a.isnan(), b.isnan()):
        return False
    a, b = a.masked_fill(a.isnan(), 0.0), b.masked_fill(b.isnan(), 0.0)
    return torch.equal(a.view(INT_OF[a.dtype]), b.view(INT_OF[b.dtype]))


def currents(dtype: torch.dtype, rows: int, units: int, channels: int, lsb: torch.Tensor):
    """Random currents over 1.2x the full scale, with exact half-LSB ties and their neighbours,
    both zeros, tiny values, saturation, infinities and NaN in every unit and channel."""
    gen = torch.Generator().manual_seed(rows * 131 + units * 7 + channels)
    levels = 127
    random = (torch.rand(rows, units, channels, generator=gen, dtype=torch.float64) * 2 - 1) * 1.2
    ties = torch.arange(-levels - 2, levels + 2, dtype=torch.float64) + 0.5
    special = torch.tensor(
        [0.0, -0.0, 1e-30, -1e-30, 1e6, -1e6, torch.inf, -torch.inf, torch.nan], dtype=dtype
    )
    in_lsb = torch.cat(
        (
            ties.to(dtype),
            torch.nextafter(ties.to(dtype), torch.tensor(torch.inf, dtype=dtype)),
            torch.nextafter(ties.to(dtype), torch.tensor(-torch.inf, dtype=dtype)),
        )
    )
    boundary = (in_lsb.view(-1, 1, 1) * lsb.to(dtype)).expand(-1, units, channels)
    scaled = (random * levels).to(dtype) * lsb.to(dtype)
    return torch.cat((scaled, boundary, special.view(-1, 1, 1).expand(-1, units, channels)))


@pytest.fixture
def eager_only(monkeypatch):
    """Run ``convert_sign_magnitude_`` without compiling."""

    def run(current, full_scale, levels):
        with monkeypatch.context() as patch:
            patch.setenv(COMPILE_SWITCH, "0")
            return convert_sign_magnitude_(current, full_scale, levels)

    return run


@pytest.fixture
def fused_only(monkeypatch):
    """Run ``convert_sign_magnitude_`` and fail if it takes the eager path (skips the test where
    ``torch.compile`` cannot build kernels: no C++ compiler)."""
    if not compiler_works():
        pytest.skip("torch.compile cannot build kernels here (no C++ compiler?)")

    def refuse(*args, **kwargs):
        raise AssertionError("the eager path ran where the fused kernel should have")

    def run(current, full_scale, levels):
        with monkeypatch.context() as patch:
            patch.setenv(COMPILE_SWITCH, "1")
            patch.setattr(calibration, "signed_codes_", refuse)
            return convert_sign_magnitude_(current, full_scale, levels)

    return run


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("rows", "units", "channels", "per_unit"),
    [(800, 4, 6, False), (700, 3, 10, True), (20000, 1, 1, False), (9000, 2, 1, True)],
)
def test_fused_sign_magnitude_conversion_is_the_eager_operations_bit_for_bit(
    eager_only, fused_only, dtype, rows, units, channels, per_unit
):
    """Every value, tie, neighbour of a tie, signed zero, saturation, infinity and NaN; one full
    scale or one per unit (one of them 0, which outputs 0); shapes with sizes of 1."""
    if per_unit:
        full_scale = torch.linspace(1e-6, 3e-6, units, dtype=dtype).view(1, units, 1)
        full_scale[0, -1, 0] = 0.0
    else:
        full_scale = torch.tensor([2e-6], dtype=dtype).view(1, 1, 1)
    levels = 127
    current = currents(dtype, rows, units, channels, full_scale / levels)
    assert current.numel() >= FUSED_MIN_VALUES
    expected = eager_only(current.clone(), full_scale, levels)
    given = current.clone()
    got = fused_only(given, full_scale, levels)
    assert got is given  # in place
    assert same_bits(got, expected)
    if per_unit:
        assert bool((got[:, -1][~got[:, -1].isnan()] == 0).all())


@pytest.mark.parametrize("levels", [1, 7, 2047])
def test_fused_conversion_takes_every_resolution(eager_only, fused_only, levels):
    full_scale = torch.tensor([1.0], dtype=torch.float64).view(1, 1, 1)
    current = torch.linspace(-1.3, 1.3, 3 * FUSED_MIN_VALUES, dtype=torch.float64).view(-1, 3, 1)
    expected = eager_only(current.clone(), full_scale, levels)
    assert same_bits(fused_only(current.clone(), full_scale, levels), expected)
    assert torch.unique(expected).numel() == 2 * levels + 1


def test_small_strided_and_gradient_tensors_take_the_eager_path():
    kernel = FusedKernel(lambda x: None, "test kernel")
    big = torch.zeros(FUSED_MIN_VALUES)
    assert kernel.takes(big)
    assert not kernel.takes(big[: FUSED_MIN_VALUES - 1])
    assert not kernel.takes(torch.zeros(2, FUSED_MIN_VALUES).t())
    assert not kernel.takes(big.clone().requires_grad_(True))
    assert not kernel.takes(big.to(torch.float16))


def test_an_active_dispatch_mode_sees_the_operations_one_by_one():
    seen = []

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            seen.append(func.__name__)
            return func(*args, **(kwargs or {}))

    current = torch.linspace(-1.0, 1.0, FUSED_MIN_VALUES).view(-1, 1, 1)
    with Watch():
        convert_sign_magnitude_(current, torch.ones(1, 1, 1), 7)
    assert "floor_.default" in seen and "bitwise_or_.Tensor" in seen


def test_the_compile_switch_turns_compiling_off_and_names_its_values(monkeypatch):
    kernel = FusedKernel(lambda x: None, "test kernel")
    big = torch.zeros(FUSED_MIN_VALUES)
    monkeypatch.setenv(COMPILE_SWITCH, "0")
    assert not kernel.takes(big)
    monkeypatch.setenv(COMPILE_SWITCH, "yes")
    with pytest.raises(ConfigError, match=r"TXSIM_COMPILE to be '0' .* or '1' .* got 'yes'"):
        kernel.takes(big)


def test_a_kernel_that_cannot_compile_warns_once_writes_nothing_and_steps_aside():
    """Fails to compile on any machine: the function branches in Python on the data."""

    def data_dependent(x: torch.Tensor) -> None:  # no whole graph: Python branches on data
        if bool(x.sum() > 0):
            x.add_(1)

    kernel = FusedKernel(data_dependent, "test kernel")
    x = torch.ones(FUSED_MIN_VALUES)
    assert kernel.takes(x)
    with pytest.warns(RuntimeWarning, match=r"could not compile its fused test kernel .*"):
        assert kernel(x) is False
    assert bool((x == 1).all())  # nothing written
    assert not kernel.takes(x)


def test_uniform_adc_converts_through_the_fused_kernel_as_eagerly(
    eager_only, fused_only, monkeypatch
):
    """The layer's call (``convert_in_place``, one full scale per unit calibrated from the
    currents) gives the same values with and without the fused kernel."""
    current = torch.randn(600, 8, 16, generator=torch.Generator().manual_seed(3)) * 1e-6
    results = []
    for convert in (eager_only, fused_only):
        monkeypatch.setattr(txsim_core.builtin.converters, "convert_sign_magnitude_", convert)
        adc = txsim_core.build_model("adc", "uniform", bits=8, calibration_scope="array")
        adc.setup(8, 16, torch.Generator().manual_seed(0))
        results.append(adc.convert_in_place(current.clone()))
    assert same_bits(results[0], results[1])
    assert torch.unique(results[0][:, 0]).numel() > 100  # of 255 codes
