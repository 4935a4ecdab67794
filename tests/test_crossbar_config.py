"""Crossbar configuration: presets, files, rules, and the errors bad configs give at convert()."""

from __future__ import annotations

import pytest
import torch

import txsim_core
from txsim_core import ConfigError, UnknownModelError, convert
from txsim_core.crossbar.config import layer_config, load_config, parse_crossbar


def net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


@pytest.mark.parametrize(
    ("config", "error", "match"),
    [
        (
            {"crossbar": {"weigth_bits": 8}},
            ConfigError,
            r"Unknown key 'weigth_bits' in `crossbar`\. Did you mean 'weight_bits'\?",
        ),
        (
            {"crossbar": {"weight_bits": 0}},
            ConfigError,
            r"Invalid parameter for `crossbar`: Expected `weight_bits` to be an integer in \[2, 32\] or None, but got 0",
        ),
        (
            {"crossbar": {"input_bits": 1}},
            ConfigError,
            r"Expected `input_bits` to be an integer in \[2, 32\]",
        ),
        (
            {"crossbar": {"rows": "64"}},
            ConfigError,
            r"Expected `rows` to be an integer in \[1, 4096\], but got '64'",
        ),
        (
            {"crossbar": {"adc": "sarr"}},
            UnknownModelError,
            r"Layer '0', slot 'adc': Unknown adc model 'sarr'.*a plugin may be missing",
        ),
        (
            {"crossbar": {"adc": {"bits": 8}}},
            ConfigError,
            r"Expected `crossbar.adc` to name a model with the key 'name'",
        ),
        (
            {"crossbar": {"dac": {"name": "ideal", "v_reed": 1.0}}},
            ConfigError,
            r"Layer '0', slot 'dac': Unknown parameter 'v_reed' for dac model 'ideal'\. Did you mean 'v_read'",
        ),
        (
            {"crossbar": {"layers": [{"match": "fc*", "digital": True}]}},
            ConfigError,
            r"crossbar.layers\[0\] \(match 'fc\*'\) matches no layer\. Layers that can run on crossbars: '0', '2'",
        ),
        (
            {"crossbar": {"layers": [{"match": "0", "weight_bits": 1}]}},
            ConfigError,
            r"Invalid parameter for `crossbar.layers\[0\]`: Expected `weight_bits`",
        ),
        (
            {"crossbar": {"layers": [{"match": "0", "colour": "red"}]}},
            ConfigError,
            r"Unknown key 'colour' in `crossbar.layers\[0\]`",
        ),
        (
            {"crossbar": {"layers": [{"digital": True}]}},
            ConfigError,
            r"Expected `crossbar.layers\[0\]` to be a table with a string `match`",
        ),
        (
            {"crossbar": {"backward": {"solver": "ideal"}}},
            ConfigError,
            r"Unknown key 'solver' in `crossbar.backward`\. Allowed keys: 'dac', 'adc'",
        ),
        (
            {"crossbar": {"update": {"name": "ideal", "g_max": 2e-5}}},
            ConfigError,
            r"expected the update model to work on the device's conductance range \[1e-06, 1e-05\] S, "
            r"but it works on \[1e-06, 2e-05\] S",
        ),
        (
            {"crosbar": {}},
            ConfigError,
            r"Unknown key 'crosbar' in the configuration's top level\. Did you mean 'crossbar'",
        ),
        (
            "no-such-preset",
            ConfigError,
            r"Expected a preset name \('ideal', 'paper'\) or the path of a TOML file",
        ),
    ],
)
def test_bad_configs_fail_at_convert_with_clear_messages(config, error, match):
    with pytest.raises(error, match=match):
        convert(net(), config)


def test_paper_preset_names_its_missing_plugins():
    with pytest.raises(
        UnknownModelError, match=r"Unknown mapping model 'reram'.*a plugin may be missing"
    ):
        convert(net(), "paper")


def test_toml_file_with_rules(tmp_path):
    path = tmp_path / "xbar.toml"
    path.write_text(
        """
[crossbar]
rows = 16
weight_bits = 6
[crossbar.device]
name = "ideal"
cell_bits = 2
[[crossbar.layers]]
match = "2"
weight_bits = 4
device = { cell_bits = 1 }
[[crossbar.layers]]
match = "0"
digital = true
"""
    )
    converted = convert(net(), path)
    assert isinstance(converted[0], torch.nn.Linear)
    last = converted[2].crossbar
    assert (
        last.config.settings.weight_bits == 4 and last.slices == 3
    )  # 3 magnitude bits, 1 per cell
    assert last.device_model.params.cell_bits == 1 and last.config.settings.rows == 16
    assert txsim_core.summary(converted).splitlines()[2].split()[:2] == ["2", "8->3"]


def test_malformed_toml_is_a_config_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[crossbar\nrows = 3")
    with pytest.raises(ConfigError, match=r"Expected valid TOML in '.*bad.toml', but got"):
        load_config(path)


def test_update_inherits_device_parameters_of_the_same_name():
    default, rules = parse_crossbar(
        {"crossbar": {"device": {"name": "ideal", "g_min": 2e-6, "g_max": 3e-5}}}
    )
    layer = txsim_core.CrossbarLinear(4, 4, config=layer_config("x", default, rules))
    assert (layer.crossbar.update_model.g_min, layer.crossbar.update_model.g_max) == (2e-6, 3e-5)


def test_rules_apply_in_order_and_merge_parameters():
    default, rules = parse_crossbar(
        {
            "crossbar": {
                "solver": {"name": "ideal", "refresh_every": 4},
                "layers": [
                    {"match": "features.*", "input_bits": 6},
                    {"match": "features.3", "input_bits": 4},
                ],
            }
        }
    )
    assert layer_config("features.3", default, rules).settings.input_bits == 4
    assert layer_config("features.1", default, rules).settings.input_bits == 6
    assert layer_config("classifier", default, rules).settings.input_bits is None
    assert default.settings.refresh_every == 4


def test_directly_built_layer_rejects_rules():
    with pytest.raises(
        ConfigError, match=r"Expected no `crossbar\.layers` rules for a layer built on its own"
    ):
        txsim_core.CrossbarLinear(4, 4, config={"crossbar": {"layers": [{"match": "x"}]}})


@pytest.mark.parametrize(
    ("module", "match"),
    [
        (torch.nn.Conv2d(2, 4, 3, groups=2), "expected a convolution with groups=1"),
        (torch.nn.LSTM(3, 4, bidirectional=True), "expected a unidirectional LSTM"),
    ],
)
def test_unsupported_layers_say_how_to_keep_them_digital(module, match):
    with pytest.raises(ConfigError, match=match):
        convert(torch.nn.Sequential(module), "ideal")
    kept = convert(
        torch.nn.Sequential(module), {"crossbar": {"layers": [{"match": "0", "digital": True}]}}
    )
    assert type(kept[0]) is type(module)
