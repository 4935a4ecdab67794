"""The crossbar versions of ``torch.nn.Conv1d`` and ``torch.nn.Conv2d``."""

from __future__ import annotations

from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F

from txsim_core.crossbar.array import CrossbarArray
from txsim_core.crossbar.config import LayerConfig
from txsim_core.crossbar.functions import AnalogConv, ConvGeometry, ExactAdcConv
from txsim_core.errors import ConfigError
from txsim_core.nn.base import ConfigLike, CrossbarLayer, layer_config_from


def _tuple(value: int | tuple[int, ...], dims: int, what: str) -> tuple[int, ...]:
    values = (value,) * dims if isinstance(value, int) else tuple(value)
    if len(values) != dims or not all(isinstance(v, int) and v >= 0 for v in values):
        raise ConfigError(
            f"Expected `{what}` to be a non-negative integer or {dims} of them, but got {value!r}."
        )
    return values


class _CrossbarConvNd(CrossbarLayer):
    """A convolution whose kernels are the columns of crossbar arrays (one row per kernel tap).

    Each input patch of ``in_channels * prod(kernel_size)`` values drives the rows; inputs are
    scaled by the largest magnitude of each sample (the whole input image). Only ``groups=1`` and
    zero padding are supported.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, bias: as in PyTorch
            (padding as integers).
        config: the layer configuration.
        seed: seeds the layer's device variation, write noise and rounding.
        name: the layer's name in messages.
        weight: initial weights ``(out_channels, in_channels, *kernel_size)``; PyTorch's default
            init if None.
    """

    dims: ClassVar[int]
    native: ClassVar[type[torch.nn.Module]]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        bias: bool = True,
        config: ConfigLike = None,
        *,
        seed: int = 0,
        name: str = "",
        weight: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _tuple(kernel_size, self.dims, "kernel_size")
        self.stride = _tuple(stride, self.dims, "stride")
        self.padding = _tuple(padding, self.dims, "padding")
        self.dilation = _tuple(dilation, self.dims, "dilation")
        if weight is None:
            native = self.native(in_channels, out_channels, self.kernel_size, bias=False)
            weight = cast(torch.Tensor, native.weight).detach()
        self.geometry = ConvGeometry(self.dims, self.stride, self.dilation, tuple(weight.shape))
        self.crossbar = CrossbarArray(
            weight.reshape(out_channels, -1), layer_config_from(config), seed=seed, name=name
        )
        self._init_bias(bias, out_channels, weight)

    @classmethod
    def from_native(
        cls, module: torch.nn.Module, config: LayerConfig, *, seed: int, name: str
    ) -> _CrossbarConvNd:
        """A crossbar layer with the weights and bias of a native convolution."""
        if module.groups != 1 or module.padding_mode != "zeros" or isinstance(module.padding, str):
            raise ConfigError(
                f"Layer {name!r}: expected a convolution with groups=1, padding_mode='zeros' and "
                f"integer padding, but got groups={module.groups}, padding_mode="
                f"{module.padding_mode!r}, padding={module.padding!r}. Keep it digital with a "
                "[[crossbar.layers]] rule (digital = true)."
            )
        native: Any = module
        return cls(
            native.in_channels,
            native.out_channels,
            native.kernel_size,
            native.stride,
            native.padding,
            native.dilation,
            native.bias is not None,
            config,
            seed=seed,
            name=name,
            weight=native.weight.detach(),
        ).adopt_bias(native)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = [p for p in reversed(self.padding) for _ in range(2)]
        if any(pad):  # (padding by 0 would copy)
            x = F.pad(x, pad)
        array = self.crossbar
        if array.uses_exact_adc("forward") and array.uses_exact_adc("backward"):
            y = ExactAdcConv.apply(x, array.weight, array, self.geometry)
        else:
            y = AnalogConv.apply(x, array.weight, array, self.geometry)
        if self.bias is not None:
            y = y + self.bias.reshape(-1, *[1] * self.dims)
        return y

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, " + super().extra_repr()
        )


class CrossbarConv1d(_CrossbarConvNd):
    """The crossbar version of ``torch.nn.Conv1d`` (see the base class for the arguments)."""

    dims = 1
    native = torch.nn.Conv1d


class CrossbarConv2d(_CrossbarConvNd):
    """The crossbar version of ``torch.nn.Conv2d`` (see the base class for the arguments)."""

    dims = 2
    native = torch.nn.Conv2d
