"""Turning a native PyTorch network into one whose layers run on crossbars."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch

from txsim_core.crossbar.config import layer_config, load_config, parse_crossbar
from txsim_core.errors import ConfigError
from txsim_core.nn.conv import CrossbarConv1d, CrossbarConv2d
from txsim_core.nn.linear import CrossbarLinear
from txsim_core.nn.lstm import CrossbarLSTM

CONVERTIBLE: dict[type[torch.nn.Module], Any] = {
    torch.nn.Linear: CrossbarLinear,
    torch.nn.Conv1d: CrossbarConv1d,
    torch.nn.Conv2d: CrossbarConv2d,
    torch.nn.LSTM: CrossbarLSTM,
}
"""The native layer types that :func:`convert` replaces, and their crossbar versions."""


def layer_seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th converted layer of a network converted with ``seed``."""
    return (seed * 1_000_003 + index * 7_919) % (2**63)


def convert(
    model: torch.nn.Module,
    config: str | Path | Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    inplace: bool = False,
) -> torch.nn.Module:
    """Replace the Linear, Conv1d, Conv2d and LSTM layers of ``model`` by crossbar layers.

    Args:
        model: a native network; other layers (activations, pooling, batch norm) stay digital.
        config: a preset name (``"ideal"``, ``"paper"``), a mapping or a TOML path whose
            ``crossbar`` table holds the layer defaults and per-layer rules.
        seed: seeds every layer's device variation, write noise and rounding.
        inplace: change ``model`` itself instead of a copy.

    Returns:
        The converted network (weights and biases copied from ``model``).

    Raises:
        ConfigError, UnknownModelError: for an invalid configuration, before any layer is built;
            a rule that matches no layer is an error.
    """
    default, rules = parse_crossbar(load_config(config))
    if not inplace:
        model = copy.deepcopy(model)
    targets = [
        (name, module) for name, module in model.named_modules() if type(module) in CONVERTIBLE
    ]
    names = [name or "(the model itself)" for name, _ in targets]
    for rule in rules:
        if not any(rule.matches(name) for name, _ in targets):
            raise ConfigError(
                f"{rule.where} matches no layer. Layers that can run on crossbars: "
                f"{', '.join(repr(n) for n in names) or '(none)'}."
            )
    for index, (name, module) in enumerate(targets):
        config_here = layer_config(name, default, rules)
        if config_here.digital:
            continue
        replacement = CONVERTIBLE[type(module)].from_native(
            module, config_here, seed=layer_seed(seed, index), name=name or type(module).__name__
        )
        if not name:
            return cast(torch.nn.Module, replacement)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, replacement)
    return model
