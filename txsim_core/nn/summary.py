"""A table of what each crossbar layer of a network is made of."""

from __future__ import annotations

import torch

from txsim_core.crossbar.array import CrossbarArray
from txsim_core.tables import format_table

_COLUMNS = {
    "arrays": "Arrays",
    "slices": "Slices",
    "passes": "Passes f/b",
    "bits": "Bits w/x/e",
    "device": "Device",
    "dac": "DAC",
    "adc": "ADC",
    "solver": "Solver",
    "update": "Update",
    "backward": "Backward DAC/ADC",
}


def summary(model: torch.nn.Module) -> str:
    """Per crossbar layer: shape, arrays, slices, DAC passes, precisions and the models used.

    ``Passes f/b`` counts array evaluations per input vector forward / backward; ``Bits w/x/e``
    gives the weight / input / error precision (``fp``: full precision).
    """
    rows = []
    for name, module in model.named_modules():
        if isinstance(module, CrossbarArray):
            info = module.describe()
            layer = name.removesuffix(".crossbar").removesuffix("crossbar") or "(model)"
            shape = f"{module.in_features}->{module.out_features}"
            rows.append([layer, shape, *(info[key] for key in _COLUMNS)])
    if not rows:
        return "No crossbar layers."
    return format_table(("Layer", "Shape", *_COLUMNS.values()), rows)
