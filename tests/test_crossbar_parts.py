"""The analog product in parts (txsim_core.crossbar.rows): the same results as all at once."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import txsim_core
from tests.crossbar_models import QUANTIZED_SMALL_ARRAYS
from txsim_core import convert
from txsim_core.calibration import percentile, percentile_of_parts
from txsim_core.crossbar import rows as rows_module
from txsim_core.crossbar.functions import ConvGeometry
from txsim_core.interfaces import CurrentParts
from txsim_core.testing.parts import SplitCurrents

ADCS = {
    "max": {"name": "uniform", "bits": 6},
    "max-per-array": {"name": "uniform", "bits": 6, "calibration_scope": "array"},
    "percentile": {"name": "uniform", "bits": 6, "calibration": "percentile", "percentile": 95.0},
    "no-parts": {"name": "clip", "full_scale": 2e-6},
}

LAYERS = {
    "conv2d": (lambda: torch.nn.Conv2d(3, 10, 3, padding=1, stride=2), (4, 3, 9, 9)),
    "conv1d": (lambda: torch.nn.Conv1d(3, 12, 5, padding=4, dilation=2), (3, 3, 17)),
    "linear": (lambda: torch.nn.Linear(20, 11), (6, 20)),
}


def _train_steps(layer: torch.nn.Module, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Outputs and gradients of two training-mode minibatches (each one calibrates the ADCs)."""
    results = []
    for x in inputs:
        x = x.clone().requires_grad_()
        y = layer(x)
        y.backward(torch.sin(torch.arange(y.numel(), dtype=y.dtype)).reshape(y.shape))
        weight = layer.crossbar.weight
        results += [y.detach(), x.grad, weight.grad.clone()]
        weight.grad = None
    return results


@pytest.mark.parametrize("adc", list(ADCS))
@pytest.mark.parametrize("layer_name", list(LAYERS))
def test_parts_give_the_results_of_one_product(test_models, monkeypatch, adc, layer_name):
    factory, shape = LAYERS[layer_name]
    torch.manual_seed(3)
    # float64: inputs and conductances on grids put many currents exactly on a decision level
    # of the ADC, where float32 products summed in another order round to the other code
    layer = convert(factory(), {"crossbar": {**QUANTIZED_SMALL_ARRAYS, "adc": ADCS[adc]}}).double()
    one_part = copy.deepcopy(layer)
    inputs = [torch.randn(shape, dtype=torch.float64), 3 * torch.randn(shape, dtype=torch.float64)]

    crossbar = layer.crossbar
    in_parts = []
    for converter in (crossbar.adc, crossbar.adc_backward):
        original = converter.convert_parts
        converter.convert_parts = lambda p, original=original: (
            in_parts.append(original(p)) or in_parts[-1]
        )
    monkeypatch.setattr(rows_module, "PART_CURRENTS", 1)  # a part per step
    parted = _train_steps(layer, inputs)
    monkeypatch.setattr(rows_module, "PART_CURRENTS", 1 << 40)
    whole = _train_steps(one_part, inputs)

    for got, expected in zip(parted, whole, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-15)
    for name in ("adc", "adc_backward"):
        ours, theirs = getattr(crossbar, name), getattr(one_part.crossbar, name)
        for key, value in theirs.state_dict().items():
            torch.testing.assert_close(ours.state_dict()[key], value, rtol=1e-12, atol=0)
    # the parts path is taken where the converter can take it
    assert any(in_parts) == (adc != "no-parts")


def test_a_converter_without_parts_gets_all_currents_at_once(test_models, monkeypatch):
    factory, shape = LAYERS["linear"]
    layer = convert(factory(), {"crossbar": {**QUANTIZED_SMALL_ARRAYS, "adc": ADCS["no-parts"]}})
    seen = []
    adc = layer.crossbar.adc
    original = adc.convert_in_place
    adc.convert_in_place = lambda c: seen.append(c.shape) or original(c)
    monkeypatch.setattr(rows_module, "PART_CURRENTS", 1)
    layer(torch.randn(shape))
    tiles_in, tiles_out = 3, 2  # 20 inputs and 11 outputs on 8 x 8 arrays
    assert seen == [torch.Size((2 * shape[0], tiles_in * tiles_out * 3, 8))]  # 2 passes, 3 slices


@pytest.mark.parametrize("scope", ["layer", "array"])
def test_conversion_in_parts_calibrates_as_the_whole_minibatch(scope):
    whole, parted = (
        txsim_core.build_model("adc", "uniform", bits=5, calibration_scope=scope) for _ in range(2)
    )
    for adc in (whole, parted):
        adc.setup(4, 6, torch.Generator())
    gen = torch.Generator().manual_seed(1)
    currents = torch.randn(10, 4, 6, generator=gen)
    for batch, passes in ((currents, 2), (2 * currents[:7], 2), (0.5 * currents, 1)):
        # first minibatch: observe, then convert; then a larger one: converted with the old full
        # scale and again with the new; then a smaller one: converted once
        expected = whole(batch)
        parts = SplitCurrents(batch, 3)
        assert parted.convert_parts(parts)
        assert torch.equal(parts.converted(), expected)
        assert parts.drawn == passes * len(parts.parts)
        assert torch.equal(parted.full_scale, whole.full_scale)
        assert parted.scale.seen_batches == whole.scale.seen_batches  # a minibatch counts once
    assert isinstance(parts, CurrentParts)


def test_conversion_in_parts_without_calibration_takes_one_pass():
    fixed = txsim_core.build_model("adc", "uniform", bits=5, full_scale=1.0)
    parts = SplitCurrents(torch.linspace(-2, 2, 24).view(6, 2, 2), 2)
    assert fixed.convert_parts(parts) and parts.drawn == 3
    assert torch.equal(parts.converted(), fixed(torch.linspace(-2, 2, 24).view(6, 2, 2)))
    frozen = txsim_core.build_model("adc", "uniform", bits=5, calibration_batches=1)
    frozen(torch.ones(2, 1, 2))  # its one calibrating minibatch
    parts = SplitCurrents(torch.ones(6, 1, 2), 2)
    assert frozen.convert_parts(parts) and parts.drawn == 3


@pytest.mark.parametrize("scope", ["layer", "array"])
def test_a_percentile_from_parts_is_that_of_the_whole_minibatch(scope):
    whole, parted = (
        txsim_core.build_model(
            "adc",
            "uniform",
            bits=6,
            calibration="percentile",
            percentile=q,
            calibration_scope=scope,
        )
        for q in (99.0, 99.0)
    )
    gen = torch.Generator().manual_seed(4)
    skewed = torch.randn(40, 3, 5, generator=gen) ** 3  # heavy tails, most values near 0
    ties = torch.randint(-3, 4, (40, 3, 5), generator=gen).float()  # many equal values
    for batch in (skewed, ties, 5 * skewed):
        expected = whole(batch)
        parts = SplitCurrents(batch, 7)
        assert parted.convert_parts(parts)
        assert parts.drawn == 4 * len(parts.parts)  # largest, histogram, selection, conversion
        assert torch.equal(parts.converted(), expected)
        assert torch.equal(parted.full_scale, whole.full_scale)
    parted.eval()  # frozen in evaluation: one pass
    parts = SplitCurrents(skewed, 7)
    assert parted.convert_parts(parts) and parts.drawn == len(parts.parts)


@pytest.mark.parametrize("q", [0.0, 0.1, 50.0, 99.9, 100.0])
@pytest.mark.parametrize("per_unit", [False, True])
def test_percentile_of_parts_equals_percentile_of_everything(q, per_unit):
    gen = torch.Generator().manual_seed(int(q * 10))
    current = torch.randn(33, 4, 6, generator=gen, dtype=torch.float64).exp() - 1.0
    current[5:9] = 0.0  # repeated values, and a bin holding many of them
    magnitude = current.abs()
    flat = magnitude.transpose(0, 1).reshape(4, -1) if per_unit else magnitude.reshape(1, -1)
    stat, rows = percentile_of_parts(list(current.split(5)), q, per_unit)
    assert rows == 33 and torch.equal(stat, percentile(flat, q))


def test_percentile_of_parts_leaves_non_finite_currents_to_the_caller():
    current = torch.randn(10, 2, 3)
    current[3, 1, 2] = torch.inf
    assert percentile_of_parts(list(current.split(4)), 90.0, False) is None
    assert percentile_of_parts([current[:0]], 90.0, False) is None  # no currents
    adc, reference = (
        txsim_core.build_model("adc", "uniform", bits=6, calibration="percentile", percentile=90.0)
        for _ in range(2)
    )
    parts = SplitCurrents(current, 4)
    assert adc.convert_parts(parts)  # the currents gathered, observed whole
    assert torch.equal(parts.converted(), reference(current))
    assert torch.equal(adc.full_scale, reference.full_scale)


@pytest.mark.parametrize(
    ("dims", "stride", "dilation", "size"),
    [(2, (2, 1), (1, 2), (9, 8)), (2, (1, 1), (1, 1), (5, 5)), (1, (3,), (2,), (20,))],
)
def test_patch_view_holds_the_patches_of_unfold(dims, stride, dilation, size):
    kernel = (3,) * dims
    geometry = ConvGeometry(dims, stride, dilation, (7, 4, *kernel))
    x = torch.randn(2, 3, 4, *size)  # a leading dimension (passes) before the batch
    view = geometry.patch_view(x)
    out_size = geometry.output_size(size)
    assert view.shape == (2, 3, *out_size, 4, *kernel)
    images = x.reshape(6, 4, *size) if dims == 2 else x.reshape(6, 4, 1, *size)
    patches = F.unfold(
        images,
        kernel if dims == 2 else (1, *kernel),
        dilation=dilation if dims == 2 else (1, *dilation),
        stride=stride if dims == 2 else (1, *stride),
    )  # (6, 4 * prod(kernel), L)
    assert torch.equal(view.reshape(6, -1, patches.shape[1]).transpose(1, 2), patches)
