"""Tests of the 1-bit DAC; they run against the installed distribution."""

from __future__ import annotations

import copy
import random

import pytest
import torch

import txsim_core
from txsim_core.compiled import COMPILE_SWITCH, FUSED_MIN_VALUES, FusedKernel, compiler_works
from txsim_core.registry import Registry

ENCODINGS = ["sign-magnitude", "twos-complement"]


@pytest.fixture
def registry() -> Registry:
    return Registry()  # loads installed plugins through their entry points


def grid_inputs(shape, bits, generator, dtype=torch.float64):
    """Inputs on the layer's signed grid k / (2**(bits-1) - 1), including 0 and +-1."""
    top = 2 ** (bits - 1) - 1
    k = torch.randint(-top, top + 1, shape, generator=generator, dtype=torch.int64)
    k.view(-1)[:3] = torch.tensor([0, top, -top])
    return k.to(dtype) / top, k


def test_registered_through_its_entry_point(registry):
    spec = registry.get("dac", "1bit")
    assert (spec.plugin, spec.distribution) == ("dac-1bit", "txsim-dac-1bit")


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("bits", [2, 3, 5, 8, 16])
def test_passes_with_ideal_adc_reproduce_the_quantized_product_exactly(registry, encoding, bits):
    """sum_p w_p * ADC(V_p @ G) == x_q @ G with the ideal ADC, to float64 precision."""
    gen = torch.Generator().manual_seed(bits)
    dac = registry.build("dac", "1bit", v_read=0.2, encoding=encoding)
    adc = registry.build("adc", "ideal")
    x, _ = grid_inputs((6, 40), bits, gen)
    g = torch.rand(40, 9, generator=gen, dtype=torch.float64) * 9e-6 + 1e-6  # siemens
    volts, weights = dac(x, bits)
    passes = dac.num_passes(bits)
    assert volts.shape == (passes, 6, 40) and weights.shape == (passes,)
    assert passes == (2 * (bits - 1) if encoding == "sign-magnitude" else bits)
    assert set(volts.unique().tolist()) <= {0.0, 0.2}  # every row at 0 V or v_read
    currents = adc(volts @ g)  # (P, 6, 9): one array evaluation per pass
    digital = torch.einsum("p,p...->...", weights, currents)
    assert torch.allclose(digital, x @ g, rtol=1e-12, atol=0)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("bits", [3, 8, 40])
def test_bit_planes_are_the_binary_digits_of_the_codes(registry, encoding, bits):
    """Compared with Python's own integer formatting of each code."""
    dac = registry.build("dac", "1bit", v_read=1.0, encoding=encoding)
    rng = random.Random(bits)
    top = 2 ** (bits - 1) - 1
    codes = [0, 1, -1, top, -top] + [rng.randint(-top, top) for _ in range(200)]
    x = torch.tensor(codes, dtype=torch.float64) / top
    volts, weights = dac(x, bits)
    planes = volts.round().long()
    for column, k in enumerate(codes):
        if encoding == "sign-magnitude":
            digits = format(abs(k), f"0{bits - 1}b")[::-1]  # least significant first
            positive = [int(d) if k > 0 else 0 for d in digits]
            negative = [int(d) if k < 0 else 0 for d in digits]
            assert planes[:, column].tolist() == positive + negative
        else:
            digits = format(k & (2**bits - 1), f"0{bits}b")[::-1]
            assert planes[:, column].tolist() == [int(d) for d in digits]
    if encoding == "twos-complement":
        assert weights[-1] < 0 and (weights[:-1] > 0).all()
    reconstructed = torch.einsum("p,p...->...", weights.double(), volts.double()) * top
    assert reconstructed.round().long().tolist() == codes


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_with_a_uniform_adc_per_pass_the_error_stays_within_the_quantization_bound(
    registry, encoding
):
    """Each pass is quantized to +-LSB/2; shift-and-add bounds the error by sum |w_p| LSB/2."""
    bits, adc_bits, v_read = 8, 6, 0.1
    gen = torch.Generator().manual_seed(3)
    dac = registry.build("dac", "1bit", v_read=v_read, encoding=encoding)
    rows, g_max = 32, 1e-5
    full_scale = v_read * rows * g_max  # no pass can exceed it: no saturation
    adc = registry.build("adc", "uniform", bits=adc_bits, full_scale=full_scale)
    x, _ = grid_inputs((64, rows), bits, gen)
    g = torch.rand(rows, 16, generator=gen, dtype=torch.float64) * (g_max - 1e-6) + 1e-6
    volts, weights = dac(x, bits)
    currents = volts @ g
    digital = torch.einsum("p,p...->...", weights, adc(currents))
    error = (digital - x @ g).abs()
    lsb = full_scale / (2 ** (adc_bits - 1) - 1)
    bound = weights.abs().sum() * lsb / 2
    assert error.max() <= bound * (1 + 1e-9)
    assert error.max() > 0.05 * bound  # the ADC really quantizes


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_off_grid_inputs_are_rounded_and_clipped(registry, encoding):
    dac = registry.build("dac", "1bit", encoding=encoding)
    x = torch.tensor([0.49 / 7, 0.51 / 7, -2.6 / 7, 1.7, -3.0])
    volts, weights = dac(x, 4)
    reconstructed = torch.einsum("p,p...->...", weights, volts) * 7
    assert torch.allclose(reconstructed, torch.tensor([0.0, 1.0, -3.0, 7.0, -7.0]), atol=1e-5)
    assert volts.dtype == torch.float32 and weights.dtype == torch.float32


def test_bad_input_precision_is_a_config_error(registry):
    dac = registry.build("dac", "1bit")
    with pytest.raises(
        txsim_core.ConfigError,
        match="it streams one bit per pass, so it needs a finite precision\\), but got None",
    ):
        dac(torch.zeros(3), None)
    with pytest.raises(
        txsim_core.ConfigError,
        match="Expected the input precision `bits` to be an integer for the 1bit DAC",
    ):
        dac.num_passes(None)
    for bad in (1, 0, 63, 2.5, True):
        with pytest.raises(txsim_core.ConfigError, match=r"an integer in \[2, 62\]"):
            dac(torch.zeros(3), bad)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"v_read": 0.0}, "Expected `v_read` to be a number in (0, 10], but got 0.0"),
        ({"v_read": -0.1}, "Expected `v_read` to be a number in (0, 10], but got -0.1"),
        ({"encoding": "offset"}, "Expected `encoding` to be one of 'sign-magnitude'"),
    ],
)
def test_bad_parameters_name_the_problem(registry, params, message):
    with pytest.raises(txsim_core.ConfigError, match="dac model '1bit'") as info:
        registry.build("dac", "1bit", **params)
    assert message in str(info.value)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_cuda_matches_cpu(registry, encoding):
    dac = registry.build("dac", "1bit", encoding=encoding)
    x, _ = grid_inputs((8, 50), 8, torch.Generator().manual_seed(0), dtype=torch.float32)
    volts, weights = dac(x, 8)
    volts_gpu, weights_gpu = dac(x.cuda(), 8)
    assert volts_gpu.is_cuda and weights_gpu.is_cuda
    assert torch.equal(volts_gpu.cpu(), volts) and torch.equal(weights_gpu.cpu(), weights)


@pytest.mark.parametrize("missing", ["input_bits", "error_bits"])
def test_a_layer_without_the_precision_to_stream_fails_when_it_is_built(missing):
    settings = {"input_bits": 8, "error_bits": 8, "dac": {"name": "1bit"}}
    del settings[missing]
    with pytest.raises(txsim_core.ConfigError, match=f"Layer 'fc', `{missing}`: Expected"):
        txsim_core.CrossbarLinear(4, 3, config={"crossbar": settings}, name="fc")


def test_a_layer_leaves_out_passes_between_driven_ones_with_the_same_results():
    """4-bit inputs: passes 0-2 carry bits 0-2 of the positive phase, 3-5 those of the
    negative one. Inputs of +7/7 and -4/7 drive passes 0, 1, 2 and 5 only; a layer whose ADC
    converts 0 A silently leaves out passes 3 and 4 (``CrossbarArray.drive``) and gives the
    results of its twin that converts all six."""
    torch.manual_seed(5)
    settings = {
        "rows": 4,
        "cols": 4,
        "input_bits": 4,
        "error_bits": 4,
        "dac": {"name": "1bit"},
        "adc": {"name": "uniform", "bits": 6},
    }
    layer = txsim_core.convert(torch.nn.Linear(6, 5), {"crossbar": settings}).double()
    twin = copy.deepcopy(layer)
    for adc in (twin.crossbar.adc, twin.crossbar.adc_backward):
        adc.zero_current_is_silent = lambda: False
    x = torch.tensor([[7.0, -4.0, 0.0, 7.0, -4.0, 0.0], [0.0, 7.0, -4.0, -4.0, 0.0, 7.0]])
    x = x.double()

    x_n = layer.crossbar.quantize(x, "forward", 1)[0]
    volts, weights = layer.crossbar.drive(x_n, "forward")
    every, every_weights = twin.crossbar.drive(x_n, "forward")
    assert every.shape[0] == 6 and volts.shape[0] == 4
    assert torch.equal(volts, every[[0, 1, 2, 5]]) and torch.equal(
        weights, every_weights[[0, 1, 2, 5]]
    )
    assert not every[[3, 4]].any()

    grad = torch.linspace(-1.0, 1.0, 10, dtype=torch.float64).view(2, 5)
    results = []
    for net in (layer, twin):
        inputs = x.clone().requires_grad_()
        y = net(inputs)
        y.backward(grad)
        results.append((y.detach(), inputs.grad, net.crossbar.weight.grad))
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bits", [2, 8, 40])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_the_compiled_passes_are_the_operations_one_by_one(
    registry, monkeypatch, encoding, bits, dtype
):
    """From FUSED_MIN_VALUES inputs on, one compiled loop writes every pass on the CPU
    (``txsim_core.compiled``): the same voltages, bit for bit, as the operations one by one,
    also for half-code ties, inputs beyond [-1, 1] and signed zeros."""
    if not compiler_works():
        pytest.skip("torch.compile cannot build kernels here (no C++ compiler?)")
    dac = registry.build("dac", "1bit", v_read=0.3, encoding=encoding)
    top = 2 ** (bits - 1) - 1
    x, _ = grid_inputs((FUSED_MIN_VALUES // 64 + 1, 64), bits, torch.Generator().manual_seed(1))
    x = x.to(dtype)
    ties = (torch.arange(-5, 5, dtype=torch.float64) + 0.5) / top
    special = torch.tensor([-0.0, 0.0, 1.5, -1.5, 1e-30, -1e-30], dtype=torch.float64)
    x.view(-1)[: ties.numel() + special.numel()] = torch.cat((ties, special)).to(dtype)
    monkeypatch.setenv(COMPILE_SWITCH, "0")
    expected = dac(x, bits)
    monkeypatch.setenv(COMPILE_SWITCH, "1")

    def refuse(self):
        raise AssertionError("the operations ran one by one where the compiled loop should have")

    monkeypatch.setattr(FusedKernel, "function", property(refuse))
    volts, weights = dac(x, bits)
    assert torch.equal(volts, expected[0]) and torch.equal(weights, expected[1])
    assert volts.shape == (dac.num_passes(bits), *x.shape)
