"""Experiment configuration: the ``[model]``, ``[data]``, ``[train]`` and ``[crossbar]`` tables.

An experiment file is a TOML file::

    [model]
    name = "lenet5"          # a network of txsim_core.zoo; other keys are its options

    [data]
    name = "mnist-5k"        # a data set of txsim_core.data; path = "..." for local sets

    [train]
    epochs = 5
    batch_size = 64
    lr = 0.05
    seed = 0
    modes = ["native", "ideal", "nonideal"]

    [crossbar]               # the Cross-NI system, as for txsim_core.convert
    rows = 64
    ...

:func:`parse_experiment` checks the shape and types of every key without touching the disk;
:func:`txsim_core.experiment.runner.check_experiment` then builds the network and data once so
that an unknown model or a missing data path fails before any training starts.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import tomllib

from txsim_core.crossbar.config import (
    BACKWARD_SLOTS,
    PRESETS,
    SECTIONS,
    SLOT_KINDS,
    load_config,
    parse_crossbar,
)
from txsim_core.errors import ConfigError, UnknownModelError
from txsim_core.params import make_params, parameter, path_fields
from txsim_core.registry import default_registry

MODES = ("native", "ideal", "nonideal")
"""What ``txsim train`` can train: the native network, the Cross-Ideal system (every crossbar
model ideal, full precision) and the Cross-NI system (the configured non-idealities)."""


def _check_modes(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if (
        not isinstance(value, tuple)
        or not value
        or any(m not in MODES for m in value)
        or len(set(value)) != len(value)
    ):
        raise ValueError(
            f"Expected `modes` to be a non-empty list of distinct values among "
            f"{', '.join(repr(m) for m in MODES)}, but got {value!r}."
        )


def _as_modes(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(m.strip() for m in value.split(",") if m.strip())
    if isinstance(value, list):
        return tuple(value)
    return value


@attrs.frozen(kw_only=True)
class TrainSettings:
    """The ``[train]`` table: how each mode is trained."""

    epochs: int = parameter(5, kind=int, low=1, high=100_000, help="Training epochs per mode.")
    batch_size: int = parameter(
        64, kind=int, low=1, high=1_000_000, help="Training minibatch size."
    )
    eval_batch_size: int = parameter(
        1000, kind=int, low=1, high=1_000_000, help="Minibatch size of the test evaluation."
    )
    lr: float = parameter(0.05, low=0.0, low_open=True, high=100.0, help="Learning rate.")
    momentum: float = parameter(0.0, low=0.0, high=1.0, high_open=True, help="SGD momentum.")
    weight_decay: float = parameter(0.0, low=0.0, high=1.0, help="L2 penalty of SGD.")
    seed: int = parameter(
        0,
        kind=int,
        low=0,
        high=2**62,
        help="Seeds the initial weights, the data order, device variation and noise; the same "
        "seed gives the same run.",
    )
    modes: tuple[str, ...] = attrs.field(
        default=MODES,
        converter=_as_modes,
        validator=_check_modes,
        metadata={
            "help": "Which systems to train, in order: 'native', 'ideal' (Cross-Ideal), "
            "'nonideal' (Cross-NI).",
            "unit": "",
        },
    )
    device: str = parameter(
        "cpu",
        kind=str,
        help="Torch device to train on: 'cpu', 'cuda', 'cuda:N', or 'auto' (CUDA when present).",
    )


@attrs.frozen(kw_only=True)
class DataSettings:
    """The ``[data]`` table: which data set, from where, and how it is split."""

    name: str = parameter(
        "mnist-5k", kind=str, help="Data set name; `txsim_core.data.list_datasets()` lists them."
    )
    path: str | None = parameter(
        None,
        kind=str,
        optional=True,
        help="Local folder of the data set (needed for all but the bundled sets); relative "
        "paths are taken from the configuration file's folder.",
    )
    seed: int = parameter(
        0, kind=int, low=0, high=2**62, help="Seeds the train/test split of unsplit data sets."
    )
    test_fraction: float = parameter(
        0.2,
        low=0.0,
        high=1.0,
        low_open=True,
        high_open=True,
        help="Share of an unsplit data set held out for testing.",
    )
    limit_train: int | None = parameter(
        None, kind=int, low=1, optional=True, help="Keep only this many training samples."
    )
    limit_test: int | None = parameter(
        None, kind=int, low=1, optional=True, help="Keep only this many test samples."
    )
    options: Mapping[str, Any] = attrs.field(
        factory=dict,
        metadata={"help": "Options of the data set itself (other keys of the table).", "unit": ""},
    )


@attrs.frozen(kw_only=True)
class ModelSettings:
    """The ``[model]`` table: the network to build and its options."""

    name: str = parameter(
        "mlp", kind=str, help="Network name; `txsim_core.zoo.list_networks()` lists them."
    )
    options: Mapping[str, Any] = attrs.field(
        factory=dict, metadata={"help": "The network's options (other keys).", "unit": ""}
    )


@attrs.frozen(kw_only=True)
class Experiment:
    """A validated experiment: every table of the configuration.

    Args:
        model: the network.
        data: the data set.
        train: the training settings.
        crossbar: the configuration of the Cross-NI system (a mapping with a ``crossbar`` table).
        raw: the whole configuration with every default filled in, as a run's ``config.toml``
            (without the ``sweep`` table: a run is one point).
        sweep: the ``[sweep.params]`` of the file: swept key -> values, for ``txsim sweep``.
    """

    model: ModelSettings
    data: DataSettings
    train: TrainSettings
    crossbar: Mapping[str, Any]
    raw: Mapping[str, Any]
    sweep: Mapping[str, list[Any]] = attrs.field(factory=dict)

    def crossbar_config(self, mode: str) -> Mapping[str, Any] | None:
        """The ``convert`` configuration of a mode: None for native, preset ``ideal`` (keeping the
        layers that the configuration keeps digital) for Cross-Ideal, the configuration itself for
        Cross-NI."""
        if mode == "native":
            return None
        if mode == "nonideal":
            return self.crossbar
        ideal = copy.deepcopy(PRESETS["ideal"])
        digital_rules = [
            {"match": rule["match"], "digital": True}
            for rule in self.crossbar["crossbar"].get("layers", [])
            if rule.get("digital")
        ]
        if digital_rules:
            ideal["crossbar"]["layers"] = digital_rules
        return ideal


def _table(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"Expected `{key}` to be a table, but got {value!r}.")
    return dict(value)


def _split_options(table: dict[str, Any], cls: type, where: str) -> dict[str, Any]:
    known = [f.name for f in attrs.fields(cls) if f.name != "options"]
    if "options" in table:
        raise ConfigError(
            f"Unknown key 'options' in `{where}`: write the options as keys of `{where}` itself."
        )
    fixed = {k: v for k, v in table.items() if k in known}
    fixed["options"] = {str(k): v for k, v in table.items() if k not in known}
    return fixed


def parse_experiment(raw: Mapping[str, Any], base_dir: Path | None = None) -> Experiment:
    """Check every table of an experiment configuration; only :class:`ConfigError` escapes.

    Args:
        raw: the configuration (as loaded from TOML, overrides applied).
        base_dir: the folder that a relative ``data.path``, and a relative path parameter of a
            crossbar model (declared with ``parameter(path=True)``), are taken from (the file's
            folder).
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"Expected the configuration to be a table, but got {raw!r}.")
    for key in raw:
        if key not in SECTIONS:
            close = difflib.get_close_matches(str(key), SECTIONS, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"Unknown table {key!r} in the configuration.{hint} Allowed tables: "
                f"{', '.join(repr(s) for s in SECTIONS)}."
            )
    train = make_params(TrainSettings, _table(raw, "train"), context="`train`")
    data_table = _table(raw, "data")
    if isinstance(data_table.get("path"), str) and base_dir is not None:
        data_table["path"] = str((base_dir / data_table["path"]).resolve())
    data = make_params(
        DataSettings, _split_options(data_table, DataSettings, "data"), context="`data`"
    )
    model = make_params(
        ModelSettings,
        _split_options(_table(raw, "model"), ModelSettings, "model"),
        context="`model`",
    )
    sweep = _sweep_params(_table(raw, "sweep"))
    crossbar = {"crossbar": _table(raw, "crossbar")}
    if base_dir is not None:
        crossbar["crossbar"] = _resolve_model_paths(crossbar["crossbar"], base_dir)
    try:
        parse_crossbar(load_config(crossbar))
    except RecursionError as exc:  # pathological nesting from a generated file
        raise ConfigError("Expected a configuration of reasonable depth.") from exc
    resolved = {
        "model": {"name": model.name, **model.options},
        "data": {k: v for k, v in attrs.asdict(data).items() if k != "options"} | data.options,
        "train": attrs.asdict(train) | {"modes": list(train.modes)},
        **copy.deepcopy(crossbar),
    }
    return Experiment(
        model=model, data=data, train=train, crossbar=crossbar, raw=resolved, sweep=sweep
    )


def _resolve_model_paths(table: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """A copy of the ``crossbar`` table whose model parameters declared as paths
    (``parameter(path=True)``), where relative, are taken from ``base_dir``: in the slots of the
    table, of its ``backward`` table and of every ``[[crossbar.layers]]`` rule. Anything
    malformed is left as it is, for :func:`parse_crossbar` to report."""
    table = copy.deepcopy(table)
    rules = table.get("layers")
    scopes = (
        [table, *(r for r in rules if isinstance(r, dict))] if isinstance(rules, list) else [table]
    )
    for scope in scopes:
        slots = [(slot, scope.get(slot)) for slot in SLOT_KINDS]
        backward = scope.get("backward")
        if isinstance(backward, dict):
            slots += [(slot, backward.get(slot)) for slot in BACKWARD_SLOTS]
        for slot, model in slots:
            if not isinstance(model, dict) or not isinstance(model.get("name"), str):
                continue
            try:
                spec = default_registry().get(SLOT_KINDS[slot], model["name"])
            except UnknownModelError:
                continue
            for name in path_fields(spec.params):
                value = model.get(name)
                if isinstance(value, str) and not Path(value).is_absolute():
                    model[name] = str((base_dir / value).resolve())
    return table


def _sweep_params(table: dict[str, Any]) -> dict[str, list[Any]]:
    """The ``[sweep]`` table: ``params = {"crossbar.update.write_noise" = [1, 5, 10], ...}``."""
    unknown = [k for k in table if k != "params"]
    if unknown:
        raise ConfigError(f"Unknown key {unknown[0]!r} in `sweep`. Allowed keys: 'params'.")
    params = table.get("params", {})
    if not isinstance(params, Mapping):
        raise ConfigError(f"Expected `sweep.params` to be a table of lists, but got {params!r}.")
    for key, values in params.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"Expected `sweep.params.{key}` to be a non-empty list of values, but got "
                f"{values!r}."
            )
    return {str(k): list(v) for k, v in params.items()}


def parse_value(text: str) -> Any:
    """A command-line value read as TOML (``0.5``, ``true``, ``[1, 2]``), else as a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one ``KEY=VALUE`` override in place, e.g. ``crossbar.update.nonlinearity=0.5``.

    The value is read as a TOML value (``0.5``, ``true``, ``"fcm"``, ``[1, 2]``, ``{name="sar"}``),
    or taken as a plain string when it is not one. Dotted keys create missing tables; a number
    indexes a list (``crossbar.layers.0.adc.bits=6``).
    """
    key, sep, text = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"Expected an override as KEY=VALUE, but got {assignment!r}.")
    set_key(raw, key.strip(), parse_value(text.strip()))


def set_key(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted ``key`` of ``raw`` to ``value`` (see :func:`apply_override`)."""
    parts = key.split(".")
    node: Any = raw
    for depth, part in enumerate(parts):
        where = ".".join(parts[: depth + 1])
        index: Any = part
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(
                    f"Expected a list index below {len(node)} at `{where}`, but got {part!r}."
                )
            index = int(part)
        if depth == len(parts) - 1:
            node[index] = value
            return
        child = node[index] if isinstance(node, list) else node.get(index)
        if child is None:
            node[index] = {}
        elif isinstance(child, str):  # a model slot given by name: `device = "reram"`
            node[index] = {"name": child}
        elif not isinstance(child, (dict, list)):
            raise ConfigError(
                f"Expected `{where}` to be a table to set `{key}` in, but it is {child!r}."
            )
        node = node[index]


def load_raw(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """An experiment TOML file as a dict, with ``--set`` overrides applied (not yet checked).

    Raises:
        ConfigError: for a missing or malformed file or a malformed override.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Expected an experiment TOML file, but {str(path)!r} is not a file.")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Expected valid TOML in {str(path)!r}, but got: {exc}") from exc
    for assignment in overrides:
        apply_override(raw, assignment)
    return raw


def load_experiment(
    path: str | Path, overrides: Sequence[str] = (), epochs: int | None = None
) -> Experiment:
    """Load and check an experiment TOML file, with ``--set`` overrides and an epoch override.

    Raises:
        ConfigError: for a missing or malformed file or any invalid key.
    """
    raw = load_raw(path, overrides)
    if epochs is not None:
        set_key(raw, "train.epochs", epochs)
    return parse_experiment(raw, base_dir=Path(path).parent.resolve())
