"""Autograd functions: the forward and backward passes of crossbar layers.

The gradient of the layer's input is what the backward pass through the arrays produces (errors
quantized, converted, driven into the columns, sensed on the rows); the gradient of the weight is
the outer product of the quantized inputs and errors, as the update circuit sees them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import torch
import torch.nn.functional as F
import torch.nn.grad

from txsim_core.crossbar.array import CrossbarArray
from txsim_core.crossbar.rows import PatchRows


class AnalogMatmul(torch.autograd.Function):
    """``y = x @ W.T`` on crossbars, for 2-D inputs ``(N, in_features)``.

    Inputs are scaled per sample: ``rows_per_sample`` consecutive rows form one sample (1 for a
    linear layer, the number of patches for an unfolded convolution).
    """

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, array: CrossbarArray, rows_per_sample: int
    ) -> torch.Tensor:
        x_n, x_scale = array.quantize(x, "forward", rows_per_sample)
        ctx.array, ctx.rows_per_sample = array, rows_per_sample
        ctx.save_for_backward(x_n, x_scale)
        return array.matmul(x_n, "forward") * (x_scale * array.w_max)

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        array: CrossbarArray = ctx.array
        x_n, x_scale = ctx.saved_tensors
        e_n, e_scale = array.quantize(grad_y.contiguous(), "backward", ctx.rows_per_sample)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = array.matmul(e_n, "backward") * (e_scale * array.w_max)
        if ctx.needs_input_grad[1]:
            grad_w = (e_n * e_scale).t() @ (x_n * x_scale)
        return grad_x, grad_w, None, None


@attrs.frozen
class ConvGeometry:
    """The operation of an N-d convolution (zero padding already applied to the input).

    Args:
        dims: 1 or 2 spatial dimensions.
        stride: stride per spatial dimension.
        dilation: dilation per spatial dimension.
        weight_shape: ``(out_channels, in_channels, *kernel_size)``.
    """

    dims: int
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    weight_shape: tuple[int, ...]

    @property
    def _conv(self) -> Callable[..., torch.Tensor]:
        return F.conv1d if self.dims == 1 else F.conv2d

    def apply(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return self._conv(x, weight, stride=self.stride, dilation=self.dilation)

    def grad_input(
        self, shape: torch.Size, weight: torch.Tensor, grad_y: torch.Tensor
    ) -> torch.Tensor:
        grad = torch.nn.grad.conv1d_input if self.dims == 1 else torch.nn.grad.conv2d_input
        return grad(shape, weight, grad_y, stride=self.stride, dilation=self.dilation)

    def grad_weight(self, x: torch.Tensor, shape: torch.Size, grad_y: torch.Tensor) -> torch.Tensor:
        grad = torch.nn.grad.conv1d_weight if self.dims == 1 else torch.nn.grad.conv2d_weight
        return grad(x, shape, grad_y, stride=self.stride, dilation=self.dilation)

    @property
    def _kernel(self) -> tuple[int, ...]:
        return tuple(self.weight_shape[2:])

    def patch_view(self, x: torch.Tensor) -> torch.Tensor:
        """The patches of ``x`` ``(*lead, C, *size)`` as a strided view (no copy):
        ``(*lead, *output_size, C, *kernel)``, the inputs of each patch in the order of
        ``weight.reshape(out_channels, -1)``; what ``F.unfold`` gives, rearranged."""
        dims = self.dims
        lead = x.dim() - dims - 1
        strides = x.stride()
        spatial = strides[lead + 1 :]
        shape = (*x.shape[:lead], *self.output_size(tuple(x.shape[lead + 1 :])), x.shape[lead])
        view_strides = (
            *strides[:lead],
            *(s * step for s, step in zip(spatial, self.stride, strict=True)),
            strides[lead],
            *(s * d for s, d in zip(spatial, self.dilation, strict=True)),
        )
        return x.as_strided((*shape, *self._kernel), view_strides, x.storage_offset())

    def fold(self, patches: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
        """The adjoint of ``F.unfold``: patches ``(B, K, L)`` summed into ``(B, C, *size)``."""
        if self.dims == 1:
            folded = F.fold(
                patches,
                (1, *size),
                (1, *self._kernel),
                dilation=(1, *self.dilation),
                stride=(1, *self.stride),
            )
            return folded.squeeze(2)
        return F.fold(patches, size, self._kernel, dilation=self.dilation, stride=self.stride)

    def output_size(self, size: tuple[int, ...]) -> list[int]:
        """The output's spatial size for an input of spatial size ``size``."""
        return [
            (n - d * (k - 1) - 1) // s + 1
            for n, k, s, d in zip(size, self._kernel, self.stride, self.dilation, strict=True)
        ]

    def grad_both(
        self, x: torch.Tensor, weight: torch.Tensor, grad_y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Input and weight gradients of one ``grad_y`` in one call (as native autograd does)."""
        grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
            grad_y,
            x,
            weight,
            None,
            self.stride,
            [0] * self.dims,
            self.dilation,
            False,
            [0] * self.dims,
            1,
            [True, True, False],
        )
        return grad_x, grad_w


def _collapsed_conv(
    array: CrossbarArray, geometry: ConvGeometry, x_n: torch.Tensor, x_shape: torch.Size
) -> torch.Tensor:
    """The normalized forward convolution through an exact ADC: the inputs as the DAC converts
    them, summed over arrays, slices and passes in the analog domain (a native convolution)."""
    x_eff = array.convert_collapsed(x_n, "forward").reshape(x_shape)
    w_eff = array.effective_weight("forward").t().reshape(geometry.weight_shape)
    return geometry.apply(x_eff, w_eff)


def _weight_grad(ctx: Any, x_digital: torch.Tensor, e_digital: torch.Tensor) -> torch.Tensor:
    """The weight gradient of a crossbar convolution (layout of ``ctx.array.weight``): the
    correlation of the quantized inputs ``(B, C, *size)`` and errors ``(B, M, *out_size)``."""
    geometry: ConvGeometry = ctx.geometry
    shape = torch.Size(geometry.weight_shape)
    return geometry.grad_weight(x_digital, shape, e_digital).reshape(ctx.array.weight.shape)


def _quantize_input(
    ctx: Any, x: torch.Tensor, array: CrossbarArray, geometry: ConvGeometry
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale a convolution's input per sample and quantize it, keeping what backward needs:
    returns ``x_n`` ``(B, C * prod(size))`` and the scales ``(B, 1)``."""
    x_n, x_scale = array.quantize(x.reshape(x.shape[0], -1), "forward", 1)
    ctx.array, ctx.geometry, ctx.x_shape = array, geometry, x.shape
    ctx.save_for_backward(x_n, x_scale)
    return x_n, x_scale


def _rescale(y_n: torch.Tensor, scale: torch.Tensor, array: CrossbarArray) -> torch.Tensor:
    """A normalized convolution output or input gradient ``(B, C, *size)`` times each sample's
    scale ``(B, 1)`` and ``w_max``."""
    return y_n * (scale * array.w_max).reshape(y_n.shape[0], *[1] * (y_n.dim() - 1))


class ExactAdcConv(torch.autograd.Function):
    """A convolution on crossbars whose ADCs are exact in both directions.

    With exact ADCs every array, slice and pass can be summed in the analog domain, so the layer is
    a native convolution with the effective weights of each direction, applied to the inputs and
    errors as the DAC converts them: the same result as unfolding, much faster.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        array: CrossbarArray,
        geometry: ConvGeometry,
    ) -> torch.Tensor:
        x_n, x_scale = _quantize_input(ctx, x, array, geometry)
        return _rescale(_collapsed_conv(array, geometry, x_n, x.shape), x_scale, array)

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        array: CrossbarArray = ctx.array
        geometry: ConvGeometry = ctx.geometry
        x_n, x_scale = ctx.saved_tensors
        batch = grad_y.shape[0]
        e_n, e_scale = array.quantize(grad_y.reshape(batch, -1), "backward", 1)
        grad_x = grad_w = None
        if all(ctx.needs_input_grad[:2]) and array.skips_conversion("backward"):
            # errors enter the arrays as they are: both gradients from one digital error tensor
            e_digital = (e_n * e_scale).reshape(grad_y.shape)
            w_eff = array.effective_weight("backward").t().reshape(geometry.weight_shape)
            grad_x, grad_w = geometry.grad_both(
                (x_n * x_scale).reshape(ctx.x_shape), w_eff * array.w_max, e_digital
            )
            return grad_x, grad_w.reshape(array.weight.shape), None, None
        if ctx.needs_input_grad[0]:
            e_eff = array.convert_collapsed(e_n, "backward").reshape(grad_y.shape)
            w_eff = array.effective_weight("backward").t().reshape(geometry.weight_shape)
            grad_x = geometry.grad_input(ctx.x_shape, w_eff, e_eff)
            grad_x = _rescale(grad_x, e_scale, array)
        if ctx.needs_input_grad[1]:
            x_digital = (x_n * x_scale).reshape(ctx.x_shape)
            grad_w = _weight_grad(ctx, x_digital, (e_n * e_scale).reshape(grad_y.shape))
        return grad_x, grad_w, None, None


class AnalogConv(torch.autograd.Function):
    """A convolution on crossbars whose ADC is not exact in some direction: every patch through
    the arrays and ADCs.

    Inputs are scaled per sample (the largest magnitude of the whole input, as
    :class:`ExactAdcConv` scales them), quantized and converted by the DAC once per input value
    (conversion is elementwise), and only then unfolded into patches: the same voltages as
    converting every patch, without converting each value once per patch that holds it. Errors
    are scaled per sample, driven into the columns, sensed on the rows and summed back into the
    input positions; the weight gradient is the correlation of the quantized inputs and errors.
    A direction whose ADC is exact is computed collapsed, as :meth:`CrossbarArray.matmul` does.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        array: CrossbarArray,
        geometry: ConvGeometry,
    ) -> torch.Tensor:
        x_n, x_scale = _quantize_input(ctx, x, array, geometry)
        if array.uses_exact_adc("forward"):
            return _rescale(_collapsed_conv(array, geometry, x_n, x.shape), x_scale, array)
        volts, pass_weights = array.drive(x_n.reshape(x.shape), "forward")
        rows = PatchRows(volts, geometry)
        y_n = array.sense(rows, pass_weights, "forward")  # (B * positions, M)
        batch = x.shape[0]
        y_n = y_n.reshape(batch, rows.step, -1).transpose(1, 2).reshape(batch, -1, *rows.out_size)
        return _rescale(y_n, x_scale, array)

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        array: CrossbarArray = ctx.array
        geometry: ConvGeometry = ctx.geometry
        x_n, x_scale = ctx.saved_tensors
        batch, channels = grad_y.shape[:2]
        e_n, e_scale = array.quantize(grad_y.reshape(batch, -1), "backward", 1)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            rows = e_n.reshape(batch, channels, -1).transpose(1, 2).reshape(-1, channels)
            back = array.matmul(rows, "backward")  # (B * L, K)
            patches = back.reshape(batch, -1, back.shape[-1]).transpose(1, 2)
            grad_x = geometry.fold(patches, tuple(ctx.x_shape[2:]))
            grad_x = _rescale(grad_x, e_scale, array)
        if ctx.needs_input_grad[1]:
            x_digital = (x_n * x_scale).reshape(ctx.x_shape)
            grad_w = _weight_grad(ctx, x_digital, (e_n * e_scale).reshape(grad_y.shape))
        return grad_x, grad_w, None, None
