"""The crossbar version of ``torch.nn.Linear``."""

from __future__ import annotations

import torch

from txsim_core.crossbar.array import CrossbarArray
from txsim_core.crossbar.config import LayerConfig
from txsim_core.crossbar.functions import AnalogMatmul
from txsim_core.nn.base import ConfigLike, CrossbarLayer, layer_config_from


class CrossbarLinear(CrossbarLayer):
    """``y = x @ W.T + b`` with ``W`` on crossbar arrays and ``b`` digital.

    Inputs are scaled by the largest magnitude of each input vector before quantization.

    Args:
        in_features: size of each input vector.
        out_features: size of each output vector.
        bias: whether to add a (digital) bias.
        config: the layer configuration (see :data:`~txsim_core.nn.base.ConfigLike`).
        seed: seeds the layer's device variation, write noise and rounding.
        name: the layer's name in messages.
        weight: initial weights ``(out_features, in_features)``; PyTorch's default init if None.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        config: ConfigLike = None,
        *,
        seed: int = 0,
        name: str = "",
        weight: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if weight is None:
            weight = torch.nn.Linear(in_features, out_features, bias=False).weight.detach()
        self.in_features, self.out_features = in_features, out_features
        self.crossbar = CrossbarArray(weight, layer_config_from(config), seed=seed, name=name)
        self._init_bias(bias, out_features, weight)

    @classmethod
    def from_native(
        cls, module: torch.nn.Linear, config: LayerConfig, *, seed: int, name: str
    ) -> CrossbarLinear:
        """A crossbar layer with the weights and bias of a native one."""
        return cls(
            module.in_features,
            module.out_features,
            module.bias is not None,
            config,
            seed=seed,
            name=name,
            weight=module.weight.detach(),
        ).adopt_bias(module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        y = AnalogMatmul.apply(rows, self.crossbar.weight, self.crossbar, 1)
        y = y.reshape(*x.shape[:-1], self.out_features)
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            + super().extra_repr()
        )
