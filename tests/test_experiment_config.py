"""The experiment configuration: tables, overrides, validation messages, and a fuzzed loader."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
import tomllib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from txsim_core.errors import ConfigError
from txsim_core.experiment.config import (
    MODES,
    apply_override,
    load_experiment,
    parse_experiment,
)
from txsim_core.experiment.runner import check_experiment
from txsim_core.experiment.toml_writer import dumps


def test_defaults_fill_every_table() -> None:
    experiment = parse_experiment({})
    assert experiment.model.name == "mlp"
    assert experiment.data.name == "mnist-5k"
    assert experiment.train.modes == MODES
    assert experiment.crossbar == {"crossbar": {}}


def test_extra_keys_of_model_and_data_are_their_options() -> None:
    experiment = parse_experiment(
        {"model": {"name": "mlp", "hidden": [32]}, "data": {"name": "cifar100", "label_mode": "x"}}
    )
    assert dict(experiment.model.options) == {"hidden": [32]}
    assert dict(experiment.data.options) == {"label_mode": "x"}


def test_relative_data_path_is_taken_from_the_config_folder(tmp_path: Path) -> None:
    experiment = parse_experiment({"data": {"path": "sets/mnist"}}, base_dir=tmp_path)
    assert experiment.data.path == str(tmp_path / "sets" / "mnist")


def test_relative_model_file_paths_are_taken_from_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model parameter declared as a path (the multibit DAC's transfer-curve table) is read
    from the experiment file's folder, whatever the working directory, in every slot."""
    folder = tmp_path / "study"
    (folder / "curves").mkdir(parents=True)
    (folder / "curves" / "dac.csv").write_text("code,voltage\n-1,-0.98\n0,0.01\n1,1.02\n")
    (folder / "experiment.toml").write_text(
        """
[model]
name = "mlp"
hidden = [8]

[data]
name = "digits"
limit_train = 40
limit_test = 20

[crossbar]
dac = {name = "multibit", bits = 2, polarity = "bipolar", table = "curves/dac.csv"}

[[crossbar.layers]]
match = "fc2"
backward = {dac = {name = "multibit", bits = 2, polarity = "bipolar", table = "curves/dac.csv"}}
"""
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    experiment = load_experiment(folder / "experiment.toml")
    expected = str((folder / "curves" / "dac.csv").resolve())
    table = experiment.raw["crossbar"]
    assert table["dac"]["table"] == expected
    assert table["layers"][0]["backward"]["dac"]["table"] == expected
    check_experiment(experiment)  # the network builds: the files are found from here


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"trian": {}}, "Unknown table 'trian' in the configuration. Did you mean 'train'?"),
        ({"train": {"epoch": 3}}, "Unknown parameter 'epoch' for `train`. Did you mean 'epochs'?"),
        ({"train": {"epochs": "five"}}, "Expected `epochs` to be an integer"),
        ({"train": {"lr": -1}}, "Expected `lr` to be a number in (0, 100]"),
        ({"train": {"modes": ["native", "cross"]}}, "Expected `modes` to be a non-empty list"),
        ({"train": []}, "Expected `train` to be a table"),
        ({"data": {"test_fraction": 1.5}}, "Expected `test_fraction` to be a number in (0, 1)"),
        ({"crossbar": {"rowz": 64}}, "Unknown key 'rowz' in `crossbar`. Did you mean 'rows'?"),
        ({"crossbar": {"weight_bits": 0}}, "Expected `weight_bits` to be an integer in [2, 32]"),
        ({"model": {"options": {}}}, "write the options as keys of `model` itself"),
        ({"sweep": {"param": {}}}, "Unknown key 'param' in `sweep`. Allowed keys: 'params'."),
        ({"sweep": {"params": {"train.lr": []}}}, "Expected `sweep.params.train.lr` to be a"),
    ],
)
def test_invalid_configurations_name_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_experiment(raw)
    assert message in str(info.value)


def test_modes_accept_a_comma_separated_string() -> None:
    assert parse_experiment({"train": {"modes": "ideal, nonideal"}}).train.modes == (
        "ideal",
        "nonideal",
    )


def test_overrides_set_nested_keys_and_parse_toml_values() -> None:
    raw: dict = {"crossbar": {"layers": [{"match": "fc1", "adc": {"bits": 8}}]}}
    apply_override(raw, "crossbar.update.nonlinearity=0.5")
    apply_override(raw, "crossbar.solver={name='fcm', refresh_every=10}")
    apply_override(raw, "crossbar.layers.0.adc.bits=6")
    apply_override(raw, "data.name=digits")
    assert raw["crossbar"]["update"] == {"nonlinearity": 0.5}
    assert raw["crossbar"]["solver"] == {"name": "fcm", "refresh_every": 10}
    assert raw["crossbar"]["layers"][0]["adc"]["bits"] == 6
    assert raw["data"]["name"] == "digits"


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("train.epochs", "Expected an override as KEY=VALUE"),
        ("=3", "Expected an override as KEY=VALUE"),
        ("crossbar.layers.5.adc=1", "Expected a list index below 0"),
        ("train.epochs.x=1", "Expected `train.epochs` to be a table"),
    ],
)
def test_malformed_overrides_fail_clearly(assignment: str, message: str) -> None:
    raw: dict = {"train": {"epochs": 3}, "crossbar": {"layers": []}}
    with pytest.raises(ConfigError, match=re.escape(message)):
        apply_override(raw, assignment)


def test_load_experiment_reads_the_file_and_applies_overrides(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[model]\nname = "lenet5"\n[train]\nepochs = 9\n')
    experiment = load_experiment(path, ["train.lr=0.2"], epochs=2)
    assert (experiment.model.name, experiment.train.epochs, experiment.train.lr) == (
        "lenet5",
        2,
        0.2,
    )


def test_load_experiment_rejects_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a file"):
        load_experiment(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\n")
    with pytest.raises(ConfigError, match="Expected valid TOML"):
        load_experiment(bad)


def test_resolved_config_round_trips_through_toml() -> None:
    raw = {
        "model": {"name": "lenet5"},
        "data": {"name": "digits", "limit_train": 100},
        "train": {"epochs": 2, "modes": ["ideal", "nonideal"]},
        "crossbar": {
            "rows": 32,
            "device": {"name": "ideal", "g_min": 1e-6},
            "layers": [
                {"match": "features.*", "adc": {"bits": 6}},
                {"match": "classifier.fc3", "digital": True},
            ],
        },
    }
    experiment = parse_experiment(raw)
    again = parse_experiment(tomllib.loads(dumps(experiment.raw)))
    assert again == experiment


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True),
    st.text(max_size=8),
)
_keys = st.sampled_from(
    [
        "model",
        "data",
        "train",
        "crossbar",
        "name",
        "epochs",
        "lr",
        "modes",
        "rows",
        "weight_bits",
        "device",
        "adc",
        "layers",
        "match",
        "digital",
        "bits",
        "path",
        "seed",
        "refresh_every",
        "solver",
        "backward",
        "x",
    ]
)
_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_keys, children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _values, max_size=5))
def test_fuzzed_configurations_fail_only_with_config_errors(raw: dict) -> None:
    with contextlib.suppress(ConfigError):
        parse_experiment(raw)
