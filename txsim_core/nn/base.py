"""What every crossbar layer shares."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

from txsim_core.crossbar.array import CrossbarArray
from txsim_core.crossbar.config import LayerConfig, load_config, parse_crossbar
from txsim_core.errors import ConfigError

ConfigLike = LayerConfig | str | Path | Mapping[str, Any] | None
"""A layer configuration: a :class:`LayerConfig`, a preset name, a TOML path, a mapping, or None
(the ``ideal`` preset)."""


def layer_config_from(config: ConfigLike) -> LayerConfig:
    """The layer configuration a directly built layer uses (the ``crossbar`` defaults)."""
    if isinstance(config, LayerConfig):
        return config
    default, rules = parse_crossbar(load_config(config))
    if rules:
        raise ConfigError(
            "Expected no `crossbar.layers` rules for a layer built on its own (rules select layers "
            "by name in txsim_core.convert), but got "
            f"{len(rules)}."
        )
    return default


_Layer = TypeVar("_Layer", bound="CrossbarLayer")


class CrossbarLayer(torch.nn.Module):
    """Base of the crossbar layers: the weight lives on ``self.crossbar``, the bias stays digital."""

    crossbar: CrossbarArray

    bias: torch.nn.Parameter | None

    def _init_bias(self, enabled: bool, size: int, like: torch.Tensor) -> None:
        """Set :attr:`bias`: ``size`` zeros in the dtype and on the device of ``like``, or None."""
        self.bias = (
            torch.nn.Parameter(torch.zeros(size, dtype=like.dtype, device=like.device))
            if enabled
            else None
        )

    def adopt_bias(self: _Layer, module: torch.nn.Module) -> _Layer:
        """Copy the bias of the native ``module`` this layer replaces (if both have one)."""
        native = getattr(module, "bias", None)
        if native is not None and self.bias is not None:
            self.bias.data.copy_(native.detach())
        return self

    @property
    def weight(self) -> torch.nn.Parameter:
        """The weights the ideal conductances stand for (update them with a txsim optimizer)."""
        return self.crossbar.weight

    def extra_repr(self) -> str:
        info = self.crossbar.describe()
        parts = [f"arrays={info['arrays']}", f"slices={info['slices']}", f"passes={info['passes']}"]
        parts += [f"bits(w/x/e)={info['bits']}"]
        parts += [f"{slot}={info[slot]}" for slot in ("device", "dac", "adc", "solver", "update")]
        return ", ".join(parts)
