"""Parameter declaration, validation and the messages users see."""

from __future__ import annotations

import attrs
import pytest

from txsim_core.errors import ConfigError
from txsim_core.params import (
    ResistanceRange,
    check_resistance_range,
    describe_params,
    make_params,
    non_default_params,
    parameter,
    resistance_parameter,
)


@attrs.frozen(kw_only=True)
class Params:
    bits: int = parameter(8, kind=int, low=1, high=24, help="Resolution.")
    r_on: float = parameter(1e5, unit="Ohm", low=0.0, low_open=True, help="On resistance.")
    mode: str = parameter("max", kind=str, choices=("max", "percentile"), help="Calibration.")
    sigma: float | None = parameter(None, low=0.0, optional=True, help="Spread, None for none.")
    enabled: bool = parameter(True, kind=bool, help="A switch.")

    def __attrs_post_init__(self) -> None:
        if self.bits > 16 and self.mode == "percentile":
            raise ValueError(f"Expected `bits` <= 16 with mode 'percentile', but got {self.bits}.")


def build(**values):
    return make_params(Params, values, context="adc model 'test'")


def test_defaults_and_int_to_float():
    p = build(r_on=50000)
    assert p.r_on == 50000.0 and isinstance(p.r_on, float)
    assert non_default_params(p) == {"r_on": 50000.0}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"bits": 0}, "Expected `bits` to be an integer in [1, 24], but got 0."),
        ({"bits": 2.5}, "Expected `bits` to be an integer in [1, 24], but got 2.5."),
        ({"bits": True}, "Expected `bits` to be an integer in [1, 24], but got True."),
        ({"r_on": 0.0}, "Expected `r_on` to be a number > 0, but got 0.0."),
        ({"r_on": "1k"}, "Expected `r_on` to be a number > 0, but got '1k'."),
        ({"r_on": float("nan")}, "Expected `r_on` to be a number > 0, but got nan."),
        ({"mode": "mean"}, "Expected `mode` to be one of 'max', 'percentile', but got 'mean'."),
        ({"sigma": -1.0}, "Expected `sigma` to be a number >= 0 or None, but got -1.0."),
        ({"enabled": 1}, "Expected `enabled` to be true or false, but got 1."),
        ({"bits": 20, "mode": "percentile"}, "Expected `bits` <= 16 with mode 'percentile'"),
    ],
)
def test_invalid_values_name_model_parameter_value_and_allowed(values, expected):
    with pytest.raises(ConfigError) as info:
        build(**values)
    message = str(info.value)
    assert message.startswith("Invalid parameter for adc model 'test': ")
    assert expected in message


def test_unknown_parameter_suggests_and_lists():
    with pytest.raises(
        ConfigError,
        match=r"Unknown parameter 'bitz' for adc model 'test'\. "
        r"Did you mean 'bits'\? Its parameters are: 'bits', 'r_on'",
    ):
        build(bitz=4)


def test_none_allowed_only_where_optional():
    assert build(sigma=None).sigma is None
    with pytest.raises(ConfigError, match="Expected `bits` to be an integer"):
        build(bits=None)


def test_describe_params_reads_declarations():
    infos = {p.name: p for p in describe_params(Params)}
    assert infos["r_on"].unit == "Ohm"
    assert infos["r_on"].allowed == "a number > 0"
    assert infos["sigma"].type == "float | None"
    assert infos["bits"].allowed == "an integer in [1, 24]"
    assert infos["mode"].help == "Calibration."
    assert list(infos) == ["bits", "r_on", "mode", "sigma", "enabled"]


def test_resistance_range_helpers_give_conductances_and_check_the_order():
    @attrs.frozen(kw_only=True)
    class DeviceParams:
        r_min: float = resistance_parameter(1e3, "min", "on")
        r_max: float = resistance_parameter(4e3, "max", "off")

        def __attrs_post_init__(self) -> None:
            check_resistance_range(self)

    class Device(ResistanceRange):
        def __init__(self, params: DeviceParams) -> None:
            self.params = params

    device = Device(DeviceParams())
    assert device.g_min == 1 / 4e3 and device.g_max == 1 / 1e3
    with pytest.raises(ValueError, match=r"`r_max` to be greater than `r_min`.*r_min=5000.0"):
        DeviceParams(r_min=5e3)
    with pytest.raises(ValueError, match="'min' or 'max'"):
        resistance_parameter(1e3, "low", "on")
