"""Declaring and validating model parameters.

Each model has one frozen, keyword-only attrs class of parameters. Every field is declared with
:func:`parameter`, which records its meaning, unit and allowed values where it is declared; the
same record validates values at construction and feeds ``txsim list-models --params``::

    @attrs.frozen(kw_only=True)
    class SARParams:
        bits: int = parameter(8, kind=int, low=1, high=24, help="Resolution of the converter.")
        sigma_cap: float = parameter(0.0, unit="", low=0.0, help="Relative capacitor mismatch.")

:func:`make_params` is the one place where user values become a parameter object; it turns every
problem into a :class:`~txsim_core.errors.ConfigError` that names the model, the parameter, the value
and what is allowed.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import attrs

from txsim_core.errors import ConfigError

_TYPE_NAMES = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}


@attrs.frozen
class Check:
    """What values one parameter accepts; callable as an attrs validator.

    Args:
        kind: the Python type of the value (float, int, bool or str). Integers are accepted where
            floats are expected; booleans are never accepted as numbers.
        low: smallest allowed value (numbers only), or None for no bound.
        high: largest allowed value (numbers only), or None for no bound.
        low_open: whether ``low`` itself is excluded.
        high_open: whether ``high`` itself is excluded.
        choices: the allowed values, for parameters that pick one of a few options.
        optional: whether None is allowed (it then means "off" or "not set"; the help says which).
    """

    kind: type = float
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] | None = None
    optional: bool = False

    def describe(self) -> str:
        """The allowed values in words, e.g. ``"a number > 0"`` or ``"one of 'max', 'percentile'"``."""
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            text = _TYPE_NAMES.get(self.kind, self.kind.__name__)
            if self.low is not None and self.high is not None:
                left = "(" if self.low_open else "["
                right = ")" if self.high_open else "]"
                text += f" in {left}{self.low:g}, {self.high:g}{right}"
            elif self.low is not None:
                text += f" {'>' if self.low_open else '>='} {self.low:g}"
            elif self.high is not None:
                text += f" {'<' if self.high_open else '<='} {self.high:g}"
        return text + (" or None" if self.optional else "")

    def type_name(self) -> str:
        """The declared type as shown in listings, e.g. ``"int | None"``."""
        return self.kind.__name__ + (" | None" if self.optional else "")

    def convert(self, value: Any) -> Any:
        """Convert an integer to float where a float is declared; leave anything else unchanged."""
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    def is_valid(self, value: Any) -> bool:
        """Whether ``value`` is allowed."""
        if value is None:
            return self.optional
        if self.choices is not None:
            return value in self.choices
        if isinstance(value, bool) and self.kind is not bool:
            return False
        if not isinstance(value, self.kind):
            return False
        if self.kind in (int, float):
            number = float(cast(float, value))
            if math.isnan(number):
                return False
            if self.low is not None and (
                number < self.low or (self.low_open and number == self.low)
            ):
                return False
            if self.high is not None and (
                number > self.high or (self.high_open and number == self.high)
            ):
                return False
        return True

    def __call__(self, instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if not self.is_valid(value):
            raise ValueError(
                f"Expected `{attribute.name}` to be {self.describe()}, but got {value!r}."
            )


def parameter(
    default: Any,
    *,
    help: str,
    unit: str = "",
    kind: type = float,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    choices: Sequence[Any] | None = None,
    optional: bool = False,
    path: bool = False,
) -> Any:
    """Declare one documented, validated model parameter (an attrs field).

    Args:
        default: the value used when the parameter is not given.
        help: what the parameter means, in one or two sentences.
        unit: its SI unit (``"S"``, ``"Ohm"``, ``"V"``, ``"A"``, ``"s"``), or ``""`` if dimensionless.
        kind: the value's type (float, int, bool or str).
        low: smallest allowed number, or None.
        high: largest allowed number, or None.
        low_open: exclude ``low`` itself.
        high_open: exclude ``high`` itself.
        choices: the allowed values, for a parameter that picks one of a few options.
        optional: allow None (the help says what None means).
        path: the value is a file path; in an experiment file a relative path is taken from the
            file's folder (see :func:`path_fields`).
    """
    check = Check(
        kind=kind,
        low=low,
        high=high,
        low_open=low_open,
        high_open=high_open,
        choices=tuple(choices) if choices is not None else None,
        optional=optional,
    )
    return attrs.field(
        default=check.convert(default),
        converter=check.convert,
        validator=check,
        metadata={"help": help, "unit": unit, "check": check, "path": path},
    )


def path_fields(params_class: type) -> list[str]:
    """The names of the parameters of ``params_class`` declared with ``path=True``."""
    return [f.name for f in attrs.fields(params_class) if f.metadata.get("path")]


def conductance_parameter(default: float, help: str) -> Any:
    """A device conductance in siemens, in (0, 1]."""
    return parameter(default, unit="S", low=0.0, low_open=True, high=1.0, help=help)


def cell_bits_parameter(default: int | None = None, note: str = "") -> Any:
    """A device's ``cell_bits``: bits one device stores, or None for a continuous device.

    Args:
        default: the default number of bits (None: continuous).
        note: what the levels are for this device, shown in parentheses in the help.
    """
    return parameter(
        default,
        kind=int,
        low=1,
        high=16,
        optional=True,
        help="Bits stored per device" + (f" ({note})" if note else "") + "; weights of more bits "
        "are sliced over several devices. None: one continuous device per weight.",
    )


def resistance_parameter(default: float, bound: str, state: str) -> Any:
    """A device's ``r_min`` (``bound="min"``) or ``r_max`` (``bound="max"``) in ohms.

    Args:
        default: the default resistance in ohms (> 0).
        bound: ``"min"`` or ``"max"``.
        state: the device state of that resistance, shown in parentheses in the help
            (``"fully on"``).
    """
    if bound not in ("min", "max"):
        raise ValueError(f"Expected `bound` to be 'min' or 'max', but got {bound!r}.")
    extreme, conductance = ("Lowest", "highest") if bound == "min" else ("Highest", "lowest")
    return parameter(
        default,
        unit="Ohm",
        low=0.0,
        low_open=True,
        help=f"{extreme} resistance of a device ({state}); its {conductance} conductance is "
        f"1/r_{bound}.",
    )


def check_resistance_range(params: Any) -> None:
    """Raise ``ValueError`` unless ``params.r_min < params.r_max``; for ``__attrs_post_init__``."""
    if params.r_max <= params.r_min:
        raise ValueError(
            "Expected `r_max` to be greater than `r_min`, but got "
            f"r_min={params.r_min!r}, r_max={params.r_max!r}."
        )


class ResistanceRange:
    """Mixin for a device model (mapping or update) whose parameters give the device's range as
    resistances ``r_min`` and ``r_max`` in ohms: ``g_min = 1 / r_max`` and ``g_max = 1 / r_min``
    in siemens. List it before the model's interface among the bases."""

    params: Any

    @property
    def g_min(self) -> float:
        """Lowest conductance in siemens: ``1 / r_max``."""
        return 1.0 / float(self.params.r_max)

    @property
    def g_max(self) -> float:
        """Highest conductance in siemens: ``1 / r_min``."""
        return 1.0 / float(self.params.r_min)


class ConductanceRange:
    """Mixin for a device model (mapping or update) whose parameters give the device's range as
    conductances ``g_min`` and ``g_max`` in siemens. List it before the model's interface among
    the bases."""

    params: Any

    @property
    def g_min(self) -> float:
        """Lowest conductance in siemens."""
        return float(self.params.g_min)

    @property
    def g_max(self) -> float:
        """Highest conductance in siemens."""
        return float(self.params.g_max)


def check_conductance_range(params: Any) -> None:
    """Raise ``ValueError`` unless ``params.g_min < params.g_max``; for ``__attrs_post_init__``."""
    if params.g_max <= params.g_min:
        raise ValueError(
            "Expected `g_max` to be greater than `g_min`, but got "
            f"g_min={params.g_min!r}, g_max={params.g_max!r}."
        )


@attrs.frozen
class ParamInfo:
    """One parameter of a model, as listings and documentation show it."""

    name: str
    type: str
    default: Any
    unit: str
    allowed: str
    help: str

    def as_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict."""
        return attrs.asdict(self)


def describe_params(params_cls: type) -> list[ParamInfo]:
    """The documented parameters of a parameter class, in declaration order."""
    infos = []
    for field in attrs.fields(params_cls):
        check: Check | None = field.metadata.get("check")
        infos.append(
            ParamInfo(
                name=field.name,
                type=check.type_name() if check else str(field.type),
                default=field.default,
                unit=field.metadata.get("unit", ""),
                allowed=check.describe() if check else "",
                help=field.metadata.get("help", ""),
            )
        )
    return infos


def non_default_params(params: Any) -> dict[str, Any]:
    """The fields of a parameter object whose values differ from their defaults."""
    return {
        f.name: getattr(params, f.name)
        for f in attrs.fields(type(params))
        if getattr(params, f.name) != f.default
    }


def make_params(params_cls: type, values: Mapping[str, Any], *, context: str) -> Any:
    """Build a parameter object from user values, or raise one clear :class:`ConfigError`.

    Args:
        params_cls: the model's attrs parameter class.
        values: parameter names and values as the user gave them.
        context: what the parameters belong to, e.g. ``"adc model 'sar'"``; starts every message.
    """
    known = [f.name for f in attrs.fields(params_cls)]
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            allowed = ", ".join(repr(k) for k in known) or "(none: it takes no parameters)"
            raise ConfigError(
                f"Unknown parameter {key!r} for {context}.{hint} Its parameters are: {allowed}."
            )
    try:
        return params_cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Invalid parameter for {context}: {exc}") from exc
