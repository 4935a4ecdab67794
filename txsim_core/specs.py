"""The records that plugins return: :class:`Kind` and :class:`ModelSpec`."""

from __future__ import annotations

import enum
import re
from typing import Any

import attrs

from txsim_core.errors import PluginError


class Kind(str, enum.Enum):
    """The five kinds of model that make up a crossbar layer."""

    DAC = "dac"
    """Digital-to-analog converters: digital inputs to row (or column) voltages."""
    ADC = "adc"
    """Analog-to-digital converters: column (or row) currents to digital outputs."""
    MAPPING = "mapping"
    """Devices: how weights become conductances (pairs, slices, levels, variation)."""
    SOLVER = "solver"
    """Array solvers: ideal conductances to the effective ones that the wires produce."""
    UPDATE = "update"
    """Update models: the conductance change a device really makes for a requested one."""

    @classmethod
    def parse(cls, value: str | Kind) -> Kind:
        """The kind named by ``value``; a :class:`~txsim_core.errors.ConfigError` if there is none."""
        from txsim_core.errors import ConfigError

        try:
            return cls(str(getattr(value, "value", value)).strip().lower())
        except ValueError:
            allowed = ", ".join(repr(k.value) for k in cls)
            raise ConfigError(
                f"Expected a model kind, one of {allowed}, but got {value!r}."
            ) from None


_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def normalize_name(name: str) -> str:
    """The canonical form of a model name: lower case, ``_`` written as ``-``, no spaces."""
    return str(name).strip().lower().replace("_", "-")


def _check_name(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not _NAME.match(value):
        raise PluginError(
            f"Expected a model name of lower-case letters, digits and '-', but got {value!r}."
        )


@attrs.frozen(kw_only=True)
class ModelSpec:
    """What a plugin declares about one model; returned by the ``txsim_<kind>_models`` hooks.

    Args:
        name: the model's name, unique within its kind (normalised to lower case, ``-``).
        factory: the model class; called with one parameter object to build a model.
        params: the model's frozen attrs parameter class (see :mod:`txsim_core.params`).
        summary: one line that ``txsim list-models`` shows.
        kind: set by txsim from the hook that returned the spec (a plugin need not set it; if it
            does, it must match the hook).
        plugin: set by txsim: the name of the plugin that registered the spec.
        distribution: set by txsim: the installed distribution that provides the plugin.
        version: set by txsim: that distribution's version.
    """

    name: str = attrs.field(converter=normalize_name, validator=_check_name)
    factory: type
    params: type
    summary: str
    kind: Kind | None = None
    plugin: str = ""
    distribution: str = ""
    version: str = ""

    @property
    def provider(self) -> str:
        """Distribution and version, as listings show them."""
        return f"{self.distribution} {self.version}".strip() or self.plugin
