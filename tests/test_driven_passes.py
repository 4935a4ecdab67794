"""DAC passes that drive no row are left out where the ADC converts 0 A silently: the same
results without their products and conversions (``CrossbarArray.drive``)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from tests.crossbar_models import QUANTIZED_SMALL_ARRAYS
from tests.test_crossbar_parts import LAYERS, _train_steps
from txsim_core import convert

SILENT = {"name": "uniform", "bits": 6}
NOT_SILENT = {"name": "uniform", "bits": 6, "inl": [0.7]}  # 0 A converts to code 1


def _layer(layer_name: str, adc: dict[str, Any]) -> torch.nn.Module:
    factory, _ = LAYERS[layer_name]
    torch.manual_seed(5)
    return convert(factory(), {"crossbar": {**QUANTIZED_SMALL_ARRAYS, "adc": adc}}).double()


def _record_passes(layer: torch.nn.Module) -> list[tuple[str, int]]:
    """The passes each call of the layer's ``drive`` returned, with the direction."""
    array = layer.crossbar
    drive = array.drive
    driven: list[tuple[str, int]] = []

    def recording(x_n: torch.Tensor, direction: str) -> Any:
        volts, weights = drive(x_n, direction)
        assert weights.shape == volts.shape[:1]
        driven.append((direction, volts.shape[0]))
        return volts, weights

    array.drive = recording
    return driven


def _never_silent(layer: torch.nn.Module) -> None:
    for adc in (layer.crossbar.adc, layer.crossbar.adc_backward):
        adc.zero_current_is_silent = lambda: False


@pytest.mark.parametrize("layer_name", ["conv2d", "conv1d", "linear"])
def test_the_negative_phase_of_non_negative_inputs_is_left_out_with_the_same_results(
    test_models, layer_name
):
    layer = _layer(layer_name, SILENT)
    twin = copy.deepcopy(layer)
    _never_silent(twin)
    shape = LAYERS[layer_name][1]
    inputs = [torch.randn(shape, dtype=torch.float64).relu() * scale for scale in (1.0, 3.0)]
    driven, every = _record_passes(layer), _record_passes(twin)

    results, expected = _train_steps(layer, inputs), _train_steps(twin, inputs)

    for got, want in zip(results, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)
    for name in ("adc", "adc_backward"):
        ours = getattr(layer.crossbar, name).state_dict()
        for key, value in getattr(twin.crossbar, name).state_dict().items():
            assert torch.equal(ours[key], value), (name, key)
    # the sign-phase DAC has a positive and a negative pass; the errors are signed
    assert driven == [("forward", 1), ("backward", 2)] * 2
    assert every == [("forward", 2), ("backward", 2)] * 2


def test_every_pass_is_converted_where_zero_current_is_not_silent(test_models):
    layer = _layer("linear", NOT_SILENT)
    assert not layer.crossbar.adc.zero_current_is_silent()
    driven = _record_passes(layer)
    _train_steps(layer, [torch.randn(LAYERS["linear"][1], dtype=torch.float64).relu()])
    assert driven == [("forward", 2), ("backward", 2)]


def test_an_input_that_drives_no_row_keeps_one_pass_for_the_adc(test_models):
    layer = _layer("linear", SILENT)
    driven = _record_passes(layer)
    seen_before = int(layer.crossbar.adc.scale.batches)
    y = layer(torch.zeros(LAYERS["linear"][1], dtype=torch.float64))
    assert driven == [("forward", 1)]
    assert int(layer.crossbar.adc.scale.batches) == seen_before + 1  # the minibatch was seen
    assert torch.equal(y, layer.bias.detach().expand_as(y))


def test_a_pass_is_driven_by_any_voltage_but_zero_negative_and_nan_included(test_models):
    layer = _layer("linear", SILENT)
    array = layer.crossbar
    volts = torch.zeros(5, 3, 4, dtype=torch.float64)
    volts[1, 0, 0] = -0.0  # zero: not driven
    volts[2, 2, 3] = -0.3
    volts[4, 1, 1] = float("nan")
    weights = torch.arange(5.0, dtype=torch.float64)
    array._dac = lambda direction: lambda x, bits: (volts, weights)
    kept, kept_weights = array.drive(torch.zeros(3, 4, dtype=torch.float64), "forward")
    assert kept_weights.tolist() == [2.0, 4.0]
    assert torch.equal(kept[0], volts[2])
    assert bool(kept[1].isnan().any())
