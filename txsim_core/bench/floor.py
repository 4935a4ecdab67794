"""The matmul floor of a configuration: the matrix products a training step cannot avoid.

The floor of one training step (forward, loss, backward, optimizer step) is the sum, over every
layer that holds a weight matrix (crossbar or native ``Linear`` / ``Conv1d`` / ``Conv2d``), of
the times of plain PyTorch products of exactly the shapes that layer computes, on random data of
the layer's dtype and device:

* a crossbar direction whose ADC is not exact (the analog path of
  :meth:`~txsim_core.crossbar.array.CrossbarArray._analog_matmul`): one ``torch.bmm`` over every
  array, slice and DAC pass at once. Forward ``(T_r, P_f * N, r) @ (T_r, r, T_c * S * c)``;
  backward ``(T_c, P_b * N, c) @ (T_c, c, T_r * S * r)``, with ``T_r x T_c`` arrays of which
  ``r`` rows and ``c`` columns are used, ``S`` weight slices, ``P_f`` / ``P_b`` the DAC passes of
  the forward inputs and backward errors that drove a row in the recorded step (a layer leaves
  out the others where its ADC allows, see :meth:`~txsim_core.crossbar.array.CrossbarArray.
  drive`), and ``N`` the rows of the layer's input matrix (the
  batch for a linear layer, batch times output positions for an unfolded convolution);
* a crossbar direction whose ADC is exact (arrays, slices and passes summed before conversion):
  one ``torch.mm`` ``(N, K) @ (K, M)`` forward, ``(N, M) @ (M, K)`` backward;
* a convolution that takes the exact path in both directions (and every native convolution): the
  native convolution, its input gradient and its weight gradient
  (:class:`~txsim_core.crossbar.functions.ConvGeometry`), on the zero-padded input;
* the weight gradient of every crossbar layer that is not such a convolution: ``torch.mm``
  ``(M, N) @ (N, K)``, the outer product of errors and inputs;
* a native linear layer: its three ``torch.mm`` (forward, input gradient, weight gradient).

The backward product is left out for a layer whose input needs no gradient (the first layer),
as txsim and PyTorch leave it out. Everything else is not in the floor: DAC and ADC conversion,
quantization and scaling, unfolding, the recombination of passes and slices, the circuit solve,
the weight update and its write model, activations, pooling, normalization, the loss and the
optimizer. Products run one after another, each on freshly allocated random inputs, and a
matrix product into an output of its own computed once before (allocating and filling are not
timed: a fresh tensor of hundreds of megabytes costs more in page faults than the product, and
txsim, which computes its analog products in cache-sized parts, does not pay them either).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import torch

from txsim_core.crossbar.functions import ConvGeometry
from txsim_core.nn.conv import CrossbarConv1d, CrossbarConv2d
from txsim_core.nn.linear import CrossbarLinear

CONV_TYPES = (CrossbarConv1d, CrossbarConv2d, torch.nn.Conv1d, torch.nn.Conv2d)
MATRIX_LAYERS: tuple[type[torch.nn.Module], ...] = (
    CrossbarLinear,
    *CONV_TYPES,
    torch.nn.Linear,
)
"""The layer types whose products the floor knows; any other layer with weights (an LSTM) makes
the floor unknown."""


@attrs.frozen
class LayerCall:
    """What one layer saw in a training step.

    Args:
        name: the module's qualified name.
        module: the layer.
        input_shape: the shape of its input; for a convolution, after zero padding.
        output_shape: the shape of its output.
        needs_input_grad: whether the input needed a gradient (not so for the first layer).
        passes: for a crossbar layer, the DAC passes it drove per direction (``"forward"``,
            ``"backward"``); a direction missing here counts every pass of its DAC.
    """

    name: str
    module: torch.nn.Module
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    needs_input_grad: bool
    passes: dict[str, int] = attrs.field(factory=dict)


@attrs.frozen
class Product:
    """One matrix product of the floor.

    Args:
        op: ``"bmm"``, ``"mm"``, ``"conv"``, ``"conv_input"`` or ``"conv_weight"``.
        a: first operand's shape (for convolutions: the padded input).
        b: second operand's shape (for convolutions: the weight).
        out: for convolutions, the output's shape; else ``()``.
        geometry: for convolutions, the stride and dilation.
        layer: the layer's name.
        role: ``"forward"``, ``"backward"`` or ``"weight_grad"``.
    """

    op: str
    a: tuple[int, ...]
    b: tuple[int, ...]
    layer: str
    role: str
    out: tuple[int, ...] = ()
    geometry: ConvGeometry | None = None

    @property
    def flops(self) -> int:
        """Multiply-adds times two."""
        if self.op == "bmm":
            return 2 * self.a[0] * self.a[1] * self.a[2] * self.b[2]
        if self.op == "mm":
            return 2 * self.a[0] * self.a[1] * self.b[1]
        return 2 * math.prod(self.out) * math.prod(self.b[1:])

    def describe(self) -> str:
        """E.g. ``classifier.fc1 forward bmm (1, 1792, 64) @ (1, 64, 480)``."""
        shapes = f"{self.a} @ {self.b}" if self.op in ("bmm", "mm") else f"{self.a} * {self.b}"
        return f"{self.layer} {self.role} {self.op} {shapes}".replace(",)", ")")

    def prepare(
        self, device: torch.device, dtype: torch.dtype, generator: torch.Generator
    ) -> Callable[[], torch.Tensor]:
        """Allocate random operands (and a matrix product's output); returns the product to
        time."""

        def rand(shape: tuple[int, ...]) -> torch.Tensor:
            return torch.rand(shape, device=device, dtype=dtype, generator=generator) - 0.5

        if self.op in ("bmm", "mm"):  # into an output allocated and touched beforehand
            a, b = rand(self.a), rand(self.b)
            product = torch.bmm if self.op == "bmm" else torch.mm
            out = product(a, b)
            return lambda: product(a, b, out=out)
        geometry = self.geometry
        assert geometry is not None
        if self.op == "conv":
            x, w = rand(self.a), rand(self.b)
            return lambda: geometry.apply(x, w)
        if self.op == "conv_input":
            w, grad_y = rand(self.b), rand(self.out)
            return lambda: geometry.grad_input(torch.Size(self.a), w, grad_y)
        x, grad_y = rand(self.a), rand(self.out)
        return lambda: geometry.grad_weight(x, torch.Size(self.b), grad_y)


def _conv_geometry(module: Any) -> ConvGeometry | None:
    if isinstance(module, (CrossbarConv1d, CrossbarConv2d)):
        return module.geometry
    if module.groups != 1 or isinstance(module.padding, str):
        return None
    dims = 1 if isinstance(module, torch.nn.Conv1d) else 2
    return ConvGeometry(
        dims, tuple(module.stride), tuple(module.dilation), tuple(module.weight.shape)
    )


def _conv_products(call: LayerCall, geometry: ConvGeometry) -> list[Product]:
    kw: dict[str, Any] = dict(layer=call.name, out=call.output_shape, geometry=geometry)
    x, w = call.input_shape, geometry.weight_shape
    products = [Product("conv", x, w, role="forward", **kw)]
    if call.needs_input_grad:
        products.append(Product("conv_input", x, w, role="backward", **kw))
    products.append(Product("conv_weight", x, w, role="weight_grad", **kw))
    return products


def _crossbar_products(call: LayerCall) -> list[Product]:
    module: Any = call.module
    array = module.crossbar
    settings = array.config.settings
    k, m = array.in_features, array.out_features
    if isinstance(module, CrossbarLinear):
        n = math.prod(call.output_shape[:-1])
    else:
        n = call.output_shape[0] * math.prod(call.output_shape[2:])
    t_r, t_c, s, r, c = (
        array.tiles_in,
        array.tiles_out,
        array.slices,
        array.used_rows,
        array.used_cols,
    )
    products = []
    for role in ("forward", "backward"):
        if role == "backward" and not call.needs_input_grad:
            continue
        if array.uses_exact_adc(role):
            a, b = ((n, k), (k, m)) if role == "forward" else ((n, m), (m, k))
            products.append(Product("mm", a, b, layer=call.name, role=role))
        elif role == "forward":
            p = call.passes.get(role) or array.dac.num_passes(settings.input_bits)
            products.append(
                Product("bmm", (t_r, p * n, r), (t_r, r, t_c * s * c), layer=call.name, role=role)
            )
        else:
            p = call.passes.get(role) or array.dac_backward.num_passes(settings.error_bits)
            products.append(
                Product("bmm", (t_c, p * n, c), (t_c, c, t_r * s * r), layer=call.name, role=role)
            )
    if isinstance(module, CrossbarLinear):
        products.append(Product("mm", (m, n), (n, k), layer=call.name, role="weight_grad"))
    else:  # the correlation of the inputs (zero padded) and the errors
        products.append(
            Product(
                "conv_weight",
                call.input_shape,
                module.geometry.weight_shape,
                layer=call.name,
                role="weight_grad",
                out=call.output_shape,
                geometry=module.geometry,
            )
        )
    return products


def layer_products(call: LayerCall) -> list[Product] | None:
    """The floor's products of one layer in one training step; None for a layer it does not know."""
    module: Any = call.module
    if isinstance(module, (CrossbarConv1d, CrossbarConv2d)):
        array = module.crossbar
        if array.uses_exact_adc("forward") and array.uses_exact_adc("backward"):
            return _conv_products(call, module.geometry)
        return _crossbar_products(call)
    if isinstance(module, CrossbarLinear):
        return _crossbar_products(call)
    if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)):
        geometry = _conv_geometry(module)
        return None if geometry is None else _conv_products(call, geometry)
    if isinstance(module, torch.nn.Linear):
        n = math.prod(call.output_shape[:-1])
        k, m = module.in_features, module.out_features
        products = [Product("mm", (n, k), (k, m), layer=call.name, role="forward")]
        if call.needs_input_grad:
            products.append(Product("mm", (n, m), (m, k), layer=call.name, role="backward"))
        products.append(Product("mm", (m, n), (n, k), layer=call.name, role="weight_grad"))
        return products
    return None


def floor_is_known(net: torch.nn.Module) -> bool:
    """Whether every weight matrix of ``net`` belongs to a layer the floor knows.

    A module other than those of :data:`MATRIX_LAYERS` with a parameter of two or more
    dimensions (a native LSTM), or crossbar arrays that no known layer owns (a crossbar LSTM),
    make the floor unknown.
    """
    from txsim_core.crossbar.array import CrossbarArray

    owned = {
        id(m.crossbar) for m in net.modules() if isinstance(m, (CrossbarLinear, *CONV_TYPES[:2]))
    }
    for module in net.modules():
        if isinstance(module, CrossbarArray):
            if id(module) not in owned:
                return False
        elif not isinstance(module, MATRIX_LAYERS) and any(
            p.dim() >= 2 for p in module.parameters(recurse=False)
        ):
            return False
    return True


def record_layer_calls(net: torch.nn.Module, step: Callable[[], Any]) -> list[LayerCall] | None:
    """Run ``step`` once and record the input and output of every weight layer of ``net``, and
    the DAC passes that each crossbar layer drove in each direction.

    Returns:
        The calls in execution order, or None if ``net`` has a weight layer that the floor does
        not know (see :func:`floor_is_known`) or a layer called more than once per step.
    """
    calls: list[LayerCall] = []
    names: dict[torch.nn.Module, str] = {}

    def hook(module: torch.nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
        x = args[0]
        shape = tuple(x.shape)
        padding: Any = getattr(module, "padding", None)
        if isinstance(module, CONV_TYPES) and not isinstance(padding, str):
            shape = shape[:2] + tuple(
                size + 2 * pad for size, pad in zip(shape[2:], padding, strict=True)
            )
        passes = driven.setdefault(module, {})
        calls.append(
            LayerCall(names[module], module, shape, tuple(output.shape), x.requires_grad, passes)
        )

    def recording(module: torch.nn.Module, drive: Callable[..., Any]) -> Callable[..., Any]:
        def drive_and_record(x_n: torch.Tensor, direction: str) -> Any:
            volts, weights = drive(x_n, direction)
            driven.setdefault(module, {})[direction] = volts.shape[0]
            return volts, weights

        return drive_and_record

    driven: dict[torch.nn.Module, dict[str, int]] = {}
    handles, arrays = [], []
    for name, module in net.named_modules():
        if isinstance(module, MATRIX_LAYERS):
            names[module] = name
            handles.append(module.register_forward_hook(hook))
            array = getattr(module, "crossbar", None)
            if array is not None:
                array.drive = recording(module, array.drive)  # an instance attribute, removed below
                arrays.append(array)
    try:
        step()
    finally:
        for handle in handles:
            handle.remove()
        for array in arrays:
            del array.drive
    if not floor_is_known(net) or len({c.name for c in calls}) != len(calls):
        return None
    return calls


def step_products(calls: Iterable[LayerCall]) -> list[Product] | None:
    """Every product of a training step, layer by layer; None if one layer is not known."""
    products: list[Product] = []
    for call in calls:
        layer = layer_products(call)
        if layer is None:
            return None
        products.extend(layer)
    return products


def time_products(
    products: list[Product], device: torch.device, dtype: torch.dtype, seed: int = 0
) -> float:
    """Seconds the products take, one after another (operands prepared outside the timing)."""
    generator = torch.Generator(device=device).manual_seed(seed)
    total = 0.0
    for product in products:
        run = product.prepare(device, dtype, generator)
        _sync(device)
        start = time.perf_counter()
        run()
        _sync(device)
        total += time.perf_counter() - start
        del run
    return total


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
