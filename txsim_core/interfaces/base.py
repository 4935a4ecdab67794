"""The base class of every txsim model."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from txsim_core.params import non_default_params
from txsim_core.specs import Kind


class Model(torch.nn.Module):
    """A model of one kind, built from one parameter object.

    Models are :class:`torch.nn.Module` objects so that any state they keep (sampled device
    variation, calibrated ADC full scales) moves with the layer between devices and is saved in
    its checkpoints. Each crossbar layer builds its own instances; models are never shared
    between layers.

    Args:
        params: the model's validated parameter object (an instance of its attrs class).
    """

    kind: ClassVar[Kind]

    def __init__(self, params: Any) -> None:
        super().__init__()
        self.params = params

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in non_default_params(self.params).items())
