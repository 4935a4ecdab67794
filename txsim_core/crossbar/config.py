"""Crossbar configuration: presets, TOML files and dicts, and per-layer rules.

A configuration is a nested mapping (a TOML file has the same shape). Its ``crossbar`` table holds
the defaults of every crossbar layer: the array settings of :class:`ArraySettings`, one table per
model slot (``device``, ``dac``, ``adc``, ``solver``, ``update``) with the model's ``name`` and
parameters, an optional ``backward`` table with the ``dac`` and ``adc`` of the backward pass, and a
list of per-layer rules ``[[crossbar.layers]]``::

    [crossbar]
    rows = 64
    weight_bits = 8
    [crossbar.device]
    name = "reram"
    cell_bits = 2
    [crossbar.solver]
    name = "fcm"
    refresh_every = 10      # solve every 10 updates; reuse the distortion in between
    [[crossbar.layers]]
    match = "features.*"    # module-name pattern (fnmatch)
    adc = { bits = 6 }      # same model, other parameters: merged into the default's
    [[crossbar.layers]]
    match = "fc3"
    digital = true          # keep this layer a native PyTorch layer

A slot that is not given is ``ideal``. In a rule, a slot table without ``name`` changes parameters
of the default model; one with another ``name`` replaces the model. Parameters that the ``update``
model shares by name with the ``device`` model (``r_min``, ``g_max``, ``cell_bits``, ...) are taken
from the device when the update slot does not set them.
"""

from __future__ import annotations

import copy
import difflib
import fnmatch
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import tomllib

from txsim_core.errors import ConfigError
from txsim_core.params import make_params, parameter
from txsim_core.specs import Kind

SLOT_KINDS: dict[str, Kind] = {
    "device": Kind.MAPPING,
    "dac": Kind.DAC,
    "adc": Kind.ADC,
    "solver": Kind.SOLVER,
    "update": Kind.UPDATE,
}
"""Each model slot of a crossbar layer and the kind of model it holds."""

BACKWARD_SLOTS = ("dac", "adc")
"""Slots that the backward pass may set on its own (in the ``backward`` table)."""

SECTIONS = ("crossbar", "model", "data", "train", "sweep")
"""Top-level tables of a configuration; only ``crossbar`` concerns the layers (``sweep`` is read
by ``txsim sweep``)."""


def _bits(default: int | None, what: str, low: int = 1) -> Any:
    return parameter(
        default,
        kind=int,
        low=low,
        high=32,
        optional=True,
        help=f"Precision of {what} in bits, sign included; omit (None) for full precision.",
    )


@attrs.frozen(kw_only=True)
class ArraySettings:
    """The settings of a crossbar layer other than its models."""

    rows: int = parameter(64, kind=int, low=1, high=4096, help="Rows (inputs) per array.")
    cols: int = parameter(64, kind=int, low=1, high=4096, help="Columns (outputs) per array.")
    weight_bits: int | None = _bits(None, "the weights", low=2)
    input_bits: int | None = _bits(None, "the inputs of the forward pass", low=2)
    error_bits: int | None = _bits(None, "the errors of the backward pass", low=2)
    w_max: float | None = parameter(
        None,
        low=0.0,
        low_open=True,
        optional=True,
        help="Weight that a full-scale conductance difference stands for (Scale_Layer-k of the "
        "paper: g_max - g_min <-> w_max). None: w_max_headroom times the largest |weight| "
        "when the layer is programmed.",
    )
    w_max_headroom: float = parameter(
        2.0, low=1.0, help="Room for weights to grow beyond their initial largest magnitude."
    )
    dw_max: float | None = parameter(
        None,
        low=0.0,
        low_open=True,
        optional=True,
        help="Largest weight change one update can request (the paper's dW_max of "
        "Scale_Layer-k, in weight units, learning rate included); larger requests are clipped to "
        "it, and with update_bits it is the full scale of the update's precision. None: no clip; "
        "the full scale is each update's largest |dW| in the layer.",
    )
    update_bits: int | None = _bits(
        None, "a requested weight change, over [-dw_max, dw_max] (stochastically rounded)"
    )
    update_rounding: str = parameter(
        "stochastic",
        kind=str,
        choices=("stochastic", "nearest"),
        help="How an updated weight is rounded to the weight_bits grid before it is written: "
        "stochastic rounding keeps updates smaller than one step in expectation.",
    )
    sliced_update: str = parameter(
        "weight",
        kind=str,
        choices=("weight", "cells"),
        help="How the update model sees a weight that is bit-sliced over several cells. "
        "'weight' (the paper's model): it updates one analog differential pair per weight (the "
        "weight's ideal conductance, Scale_Layer-k * dW requested), and the result, rounded to "
        "weight_bits, is written exactly into the slices (write-verify). 'cells': every slice "
        "device is asked for its own change towards the re-encoded rounded weight, so its "
        "non-linearity and noise act per cell (a carry moves a high-significance cell by whole "
        "levels). Unsliced weights always update their own devices.",
    )
    refresh_every: int = parameter(
        1,
        kind=int,
        low=1,
        help="Solve the array circuit every this many updates (set in the solver table); in "
        "between, reuse the stored distortion (G - G_eff) / G (interpolated FCM).",
    )


@attrs.frozen(kw_only=True)
class LayerConfig:
    """Everything one crossbar layer is built from.

    Args:
        settings: the array settings.
        slots: the model of each slot of :data:`SLOT_KINDS`, in any form
            :func:`txsim_core.resolve_model` accepts.
        backward: the ``dac`` and ``adc`` of the backward pass where they differ from the forward.
        digital: keep the layer a native PyTorch layer.
    """

    settings: ArraySettings = attrs.field(factory=ArraySettings)
    slots: Mapping[str, Any] = attrs.field(
        factory=lambda: {s: {"name": "ideal"} for s in SLOT_KINDS}
    )
    backward: Mapping[str, Any] = attrs.field(factory=dict)
    digital: bool = False

    def slot(self, name: str, direction: str = "forward") -> Any:
        """The model of a slot; for the backward pass, its own dac/adc if set."""
        if direction == "backward" and name in self.backward:
            return self.backward[name]
        return self.slots[name]


@attrs.frozen
class LayerRule:
    """A ``[[crossbar.layers]]`` entry: overrides for the layers whose names match ``pattern``."""

    pattern: str
    index: int
    overrides: Mapping[str, Any]

    def matches(self, name: str) -> bool:
        """Whether the rule applies to the module of this qualified name."""
        return fnmatch.fnmatchcase(name, self.pattern)

    @property
    def where(self) -> str:
        """How messages refer to the rule."""
        return f"crossbar.layers[{self.index}] (match {self.pattern!r})"


PRESETS: dict[str, dict[str, Any]] = {
    "ideal": {"crossbar": {"w_max_headroom": 100.0}},
    "paper": {
        "crossbar": {
            "rows": 64,
            "cols": 64,
            "weight_bits": 8,
            "input_bits": 8,
            "error_bits": 8,
            "device": {"name": "reram", "r_min": 100e3, "r_max": 1e6, "cell_bits": 2},
            "dac": {"name": "1bit"},
            "adc": {"name": "sar", "bits": 8},
            "solver": {"name": "fcm"},
            "update": {"name": "reram", "nonlinearity": 0.01, "write_noise": 5.0},
        }
    },
}
"""``ideal``: every model ideal, full precision, one device per weight, and a weight range
(``w_max_headroom = 100``) that ordinary training never reaches: the crossbar limit of native
training. ``paper``: the Cross-NI system of the TxSim paper (64x64 arrays, ReRAM 100 kOhm
to 1 MOhm with 2-bit cells, 1-bit input streaming, SAR ADC, FCM, update non-linearity 0.01 and
write noise 5), at 8-bit weights, inputs and errors."""


def load_config(config: str | Path | Mapping[str, Any] | None) -> dict[str, Any]:
    """The configuration as a nested dict, from a preset name, a TOML path or a mapping.

    Raises:
        ConfigError: for an unknown preset, a missing or malformed file, or unknown top-level tables.
    """
    if config is None:
        loaded: Any = copy.deepcopy(PRESETS["ideal"])
    elif isinstance(config, Mapping):
        loaded = copy.deepcopy(dict(config))
    elif isinstance(config, str) and config in PRESETS:
        loaded = copy.deepcopy(PRESETS[config])
    elif isinstance(config, (str, Path)):
        path = Path(config)
        if not path.is_file():
            presets = ", ".join(repr(p) for p in PRESETS)
            raise ConfigError(
                f"Expected a preset name ({presets}) or the path of a TOML file, but got "
                f"{str(config)!r}, which is neither."
            )
        try:
            loaded = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"Expected valid TOML in {str(path)!r}, but got: {exc}") from exc
    else:
        raise ConfigError(
            "Expected a configuration as a preset name, a TOML path or a mapping, "
            f"but got {config!r}."
        )
    _check_keys(loaded, SECTIONS, "the configuration's top level")
    crossbar = loaded.setdefault("crossbar", {})
    if not isinstance(crossbar, Mapping):
        raise ConfigError(f"Expected `crossbar` to be a table, but got {crossbar!r}.")
    return loaded


def _check_keys(table: Mapping[str, Any], allowed: tuple[str, ...] | list[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            names = ", ".join(repr(a) for a in allowed)
            raise ConfigError(f"Unknown key {key!r} in {where}.{hint} Allowed keys: {names}.")


_SETTING_KEYS = [f.name for f in attrs.fields(ArraySettings) if f.name != "refresh_every"]
_LAYER_KEYS = [*_SETTING_KEYS, *SLOT_KINDS, "backward"]


def _slot_value(value: Any, where: str, need_name: bool) -> Any:
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, Mapping):
        if need_name and "name" not in value:
            raise ConfigError(
                f"Expected {where} to name a model with the key 'name', but got {dict(value)!r}."
            )
        return dict(value)
    return value


def _merge_slot(base: Any, override: Any, where: str) -> Any:
    if not isinstance(override, Mapping) or (
        "name" in override
        and not (isinstance(base, Mapping) and override["name"] == base.get("name"))
    ):
        return override
    if not isinstance(base, Mapping):
        raise ConfigError(
            f"Expected {where} to name its model with the key 'name' (the default model is given "
            f"as {base!r}, whose parameters a table cannot change), but got {dict(override)!r}."
        )
    return {**base, **override}


def _apply(
    base: LayerConfig, table: Mapping[str, Any], where: str, *, is_rule: bool
) -> LayerConfig:
    """``base`` with the keys of one table (the crossbar defaults or a rule) applied."""
    settings = attrs.asdict(base.settings)
    slots = dict(base.slots)
    backward = dict(base.backward)
    for key, value in table.items():
        if key in SLOT_KINDS:
            value = _slot_value(value, f"`{where}.{key}`", need_name=not is_rule)
            if key == "solver" and isinstance(value, Mapping) and "refresh_every" in value:
                value = dict(value)
                settings["refresh_every"] = value.pop("refresh_every")
            slots[key] = _merge_slot(slots[key], value, f"`{where}.{key}`")
        elif key == "backward":
            if not isinstance(value, Mapping):
                raise ConfigError(f"Expected `{where}.backward` to be a table, but got {value!r}.")
            _check_keys(value, BACKWARD_SLOTS, f"`{where}.backward`")
            for name, slot in value.items():
                slot = _slot_value(slot, f"`{where}.backward.{name}`", need_name=False)
                backward[name] = _merge_slot(
                    backward.get(name, slots[name]), slot, f"`{where}.backward.{name}`"
                )
        elif key not in ("match", "digital"):
            settings[key] = value
    return LayerConfig(
        settings=make_params(ArraySettings, settings, context=f"`{where}`"),
        slots=slots,
        backward=backward,
        digital=bool(table.get("digital", base.digital)),
    )


def parse_crossbar(config: Mapping[str, Any]) -> tuple[LayerConfig, list[LayerRule]]:
    """The default layer configuration and the per-layer rules of a loaded configuration."""
    table = dict(config.get("crossbar", {}))
    rules_table = table.pop("layers", [])
    _check_keys(table, _LAYER_KEYS, "`crossbar`")
    default = _apply(LayerConfig(), table, "crossbar", is_rule=False)
    if not isinstance(rules_table, list):
        raise ConfigError(
            f"Expected `crossbar.layers` to be a list of tables, but got {rules_table!r}."
        )
    rules = []
    for index, rule in enumerate(rules_table):
        where = f"crossbar.layers[{index}]"
        if not isinstance(rule, Mapping) or not isinstance(rule.get("match"), str):
            raise ConfigError(
                f"Expected `{where}` to be a table with a string `match`, but got {rule!r}."
            )
        _check_keys(rule, [*_LAYER_KEYS, "match", "digital"], f"`{where}`")
        if "digital" in rule and not isinstance(rule["digital"], bool):
            raise ConfigError(
                f"Expected `{where}.digital` to be true or false, but got {rule['digital']!r}."
            )
        _apply(default, rule, where, is_rule=True)  # validates the rule on its own
        rules.append(LayerRule(pattern=rule["match"], index=index, overrides=dict(rule)))
    return default, rules


def layer_config(name: str, default: LayerConfig, rules: list[LayerRule]) -> LayerConfig:
    """The configuration of the layer called ``name``: the defaults with matching rules applied."""
    result = default
    for rule in rules:
        if rule.matches(name):
            result = _apply(result, rule.overrides, rule.where, is_rule=True)
    return result
