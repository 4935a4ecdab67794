"""Building the models of one crossbar layer from its configuration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from txsim_core.crossbar.config import SLOT_KINDS, LayerConfig
from txsim_core.errors import TxsimError
from txsim_core.interfaces import ADC, DAC, ArraySolver, UpdateModel
from txsim_core.interfaces import Mapping as DeviceMapping
from txsim_core.registry import default_registry


@attrs.frozen
class LayerModels:
    """The model instances of one crossbar layer (each layer has its own)."""

    device: DeviceMapping
    update: UpdateModel
    solver: ArraySolver
    dac: DAC
    adc: ADC
    dac_backward: DAC
    adc_backward: ADC


def _update_slot(update: Any, device: Any) -> Any:
    """The update slot with the device's parameters of the same name filled in."""
    if not (isinstance(update, Mapping) and isinstance(device, Mapping) and "name" in update):
        return update
    spec = default_registry().get(SLOT_KINDS["update"], update["name"])
    shared = {f.name for f in attrs.fields(spec.params)} & set(device) - {"name"}
    return {**{k: device[k] for k in shared}, **update}


def build_layer_models(config: LayerConfig, layer: str) -> LayerModels:
    """Build (and cross-check) every model of a layer.

    Args:
        config: the layer's configuration.
        layer: the layer's name, which every error message starts with.

    Raises:
        ConfigError, UnknownModelError: naming the layer and the slot.
    """
    registry = default_registry()

    def build(slot: str, value: Any) -> Any:
        try:
            return registry.resolve(SLOT_KINDS[slot], value)
        except TxsimError as exc:
            exc.args = (f"Layer {layer!r}, slot {slot!r}: {exc}",)
            raise

    device = build("device", config.slot("device"))
    models = LayerModels(
        device=device,
        update=build("update", _update_slot(config.slot("update"), config.slot("device"))),
        solver=build("solver", config.slot("solver")),
        dac=build("dac", config.slot("dac")),
        adc=build("adc", config.slot("adc")),
        dac_backward=build("dac", config.slot("dac", "backward")),
        adc_backward=build("adc", config.slot("adc", "backward")),
    )
    update = models.update
    if not (_close(update.g_min, device.g_min) and _close(update.g_max, device.g_max)):
        from txsim_core.errors import ConfigError

        raise ConfigError(
            f"Layer {layer!r}: expected the update model to work on the device's conductance range "
            f"[{device.g_min:.6g}, {device.g_max:.6g}] S, but it works on "
            f"[{update.g_min:.6g}, {update.g_max:.6g}] S. Set the same range in both slots."
        )
    return models


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b))
