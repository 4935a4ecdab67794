"""Crossbar layers against native PyTorch: the ideal limit, quantization, tiling, slicing, passes."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch

import txsim_core
from tests.crossbar_models import QUANTIZED_SMALL_ARRAYS
from txsim_core import CrossbarSGD, convert


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm())


def mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(30, 70), torch.nn.Tanh(), torch.nn.Linear(70, 5))


def cnn() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 6, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 8, 3, stride=2, dilation=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 4),
    )


def cnn1d() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv1d(3, 5, 4, padding=2, dilation=2),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(5 * 10, 3),
    )


class LSTMNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(6, 9, num_layers=2, batch_first=True)
        self.fc = torch.nn.Linear(9, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


NETS = {
    "mlp": (mlp, (16, 30)),
    "cnn": (cnn, (4, 2, 10, 10)),
    "cnn1d": (cnn1d, (4, 3, 12)),
    "lstm": (LSTMNet, (4, 7, 6)),
}


def native_weight_grads(net: torch.nn.Module) -> list[torch.Tensor]:
    """Weight gradients in the crossbar layers' layout (LSTM: [W_ih | W_hh] per layer)."""
    grads = []
    for module in net.modules():
        if isinstance(module, torch.nn.LSTM):
            for layer in range(module.num_layers):
                ih, hh = (getattr(module, f"weight_{k}_l{layer}").grad for k in ("ih", "hh"))
                grads.append(torch.cat([ih, hh], dim=1))
        elif isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)):
            grads.append(module.weight.grad.reshape(module.weight.shape[0], -1))
    return grads


def crossbar_weight_grads(net: torch.nn.Module) -> list[torch.Tensor]:
    return [
        m.weight.grad
        for m in net.modules()
        if isinstance(m, txsim_core.crossbar.array.CrossbarArray)
    ]


@pytest.mark.parametrize("net_name", list(NETS))
def test_ideal_preset_matches_native_forward_and_backward(net_name):
    factory, shape = NETS[net_name]
    torch.manual_seed(0)
    native = factory()
    crossbar = convert(native, "ideal")
    x = torch.randn(shape)
    x_native, x_crossbar = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_native, y_crossbar = native(x_native), crossbar(x_crossbar)
    assert rel(y_crossbar, y_native) < 1e-5
    target = torch.randn_like(y_native)
    ((y_native - target) ** 2).sum().backward()
    ((y_crossbar - target) ** 2).sum().backward()
    assert rel(x_crossbar.grad, x_native.grad) < 1e-5
    for g_crossbar, g_native in zip(
        crossbar_weight_grads(crossbar), native_weight_grads(native), strict=True
    ):
        assert rel(g_crossbar, g_native) < 1e-5


@pytest.mark.parametrize("net_name", ["mlp", "cnn", "lstm"])
def test_ideal_preset_trains_like_native(net_name):
    factory, shape = NETS[net_name]
    torch.manual_seed(1)
    native = factory()
    crossbar = convert(native, "ideal")
    opt_native = torch.optim.SGD(native.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    opt_crossbar = CrossbarSGD(crossbar.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    data = [(torch.randn(shape), torch.randint(0, 3, (shape[0],))) for _ in range(8)]
    for x, y in data:
        losses = []
        for net, opt in ((native, opt_native), (crossbar, opt_crossbar)):
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    assert losses[0] != pytest.approx(torch.nn.functional.cross_entropy(factory()(x), y).item())


def quantized_reference(x, weight, w_max, weight_bits, input_bits):
    """Native computation on the quantized inputs and weights."""
    x_levels, w_levels = 2 ** (input_bits - 1) - 1, 2 ** (weight_bits - 1) - 1
    x_scale = x.abs().amax(dim=1, keepdim=True)
    x_q = torch.round(x / x_scale * x_levels) / x_levels * x_scale
    w_q = torch.round((weight / w_max).clamp(-1, 1) * w_levels) / w_levels * w_max
    return x_q.double() @ w_q.double().t()


@pytest.mark.parametrize("adc", ["ideal", "pass-through"])
@pytest.mark.parametrize(
    ("rows", "cols", "cell_bits"), [(64, 64, None), (8, 16, 2), (7, 5, 3), (16, 4, 1)]
)
def test_tiling_and_slicing_are_exact_up_to_quantization(test_models, adc, rows, cols, cell_bits):
    torch.manual_seed(2)
    weight = torch.randn(21, 37)
    config = {
        "crossbar": {
            "rows": rows,
            "cols": cols,
            "weight_bits": 7,
            "input_bits": 6,
            "w_max": 2.0,
            "adc": adc,
            "device": {"name": "ideal", "cell_bits": cell_bits},
        }
    }
    layer = txsim_core.CrossbarLinear(37, 21, bias=False, config=config, weight=weight)
    x = torch.randn(9, 37)
    expected = quantized_reference(x, weight, 2.0, 7, 6)
    assert rel(layer(x).double(), expected) < 1e-5


LAYERS = {
    "linear": (lambda: torch.nn.Linear(37, 21), (5, 37)),
    "conv2d": (lambda: torch.nn.Conv2d(3, 6, 3, padding=1, stride=2), (4, 3, 9, 9)),
    "conv1d": (lambda: torch.nn.Conv1d(3, 20, 5, padding=2, dilation=2), (4, 3, 17)),
}


@pytest.mark.parametrize("layer_name", list(LAYERS))
def test_per_array_conversion_equals_analog_summation_in_both_directions(test_models, layer_name):
    """With an exact ADC, converting every array, slice and pass must not change anything."""
    factory, shape = LAYERS[layer_name]
    torch.manual_seed(3)
    base = {
        "rows": 8,
        "cols": 8,
        "weight_bits": 6,
        "input_bits": 5,
        "error_bits": 5,
        "w_max": 3.0,
        "device": {"name": "ideal", "cell_bits": 2},
        "dac": "sign-phase",
    }
    native = factory()
    fast = convert(native, {"crossbar": base})
    analog = convert(native, {"crossbar": {**base, "adc": "pass-through"}})
    x = torch.randn(shape)
    x_fast, x_analog = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_fast, y_analog = fast(x_fast), analog(x_analog)
    assert rel(y_analog, y_fast) < 1e-5
    grad_y = torch.randn_like(y_fast)
    y_fast.backward(grad_y)
    y_analog.backward(grad_y)
    assert rel(x_analog.grad, x_fast.grad) < 1e-5
    assert rel(analog.weight.grad, fast.weight.grad) < 1e-5


@pytest.mark.parametrize(
    ("factory", "shape"),
    [
        (lambda: torch.nn.Conv2d(3, 6, 3, padding=1, stride=2), (4, 3, 9, 9)),
        (lambda: torch.nn.Conv1d(3, 20, 5, padding=4, dilation=2), (4, 3, 17)),
    ],
)
def test_converting_each_input_once_equals_converting_every_patch(test_models, factory, shape):
    """A conv layer with a quantizing ADC converts each input value once and then unfolds the
    voltages; the reference unfolds the inputs and converts every patch (AnalogMatmul)."""
    from txsim_core.crossbar.functions import AnalogMatmul

    torch.manual_seed(5)
    crossbar = QUANTIZED_SMALL_ARRAYS
    native = factory()
    layer = convert(native, {"crossbar": crossbar})
    reference = copy.deepcopy(layer)
    x = torch.randn(shape)
    x_layer, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    y = layer(x_layer)

    dims = x.dim() - 2  # every input value lies in some patch: both scale by the sample's max
    padded = torch.nn.functional.pad(x_ref, [p for p in reversed(layer.padding) for _ in range(2)])
    geometry = reference.geometry
    if dims == 1:  # F.unfold takes images: a 1-d input is an image of height 1
        patches = torch.nn.functional.unfold(
            padded.unsqueeze(2),
            (1, *layer.kernel_size),
            dilation=(1, *geometry.dilation),
            stride=(1, *geometry.stride),
        )
    else:
        patches = torch.nn.functional.unfold(
            padded, layer.kernel_size, dilation=geometry.dilation, stride=geometry.stride
        )
    positions = patches.shape[-1]
    rows = patches.transpose(1, 2).reshape(shape[0] * positions, -1)
    y_rows = AnalogMatmul.apply(rows, reference.crossbar.weight, reference.crossbar, positions)
    y_ref = y_rows.reshape(shape[0], positions, -1).transpose(1, 2).reshape(y.shape)
    y_ref = y_ref + reference.bias.reshape(-1, *[1] * dims)
    torch.testing.assert_close(y, y_ref, rtol=1e-6, atol=1e-7)

    grad_y = torch.randn_like(y)
    y.backward(grad_y)
    y_ref.backward(grad_y)
    torch.testing.assert_close(x_layer.grad, x_ref.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(
        layer.crossbar.weight.grad, reference.crossbar.weight.grad, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    ("slot", "values"),
    [
        ("solver", [{"name": "series", "r_series": r} for r in (3e4, 3e3, 300.0, 30.0)]),
        ("adc", [{"name": "clip", "full_scale": fs} for fs in (1e-5, 3e-5, 1e-4, 1e-3)]),
        ("input_bits", [3, 5, 8, 12]),
    ],
)
def test_non_ideality_differs_from_ideal_and_shrinks_to_zero(test_models, slot, values):
    torch.manual_seed(4)
    native = mlp()
    ideal = convert(native, "ideal")
    x = torch.randn(32, 30)
    y_ideal = ideal(x)
    errors = [rel(convert(native, {"crossbar": {slot: v}})(x), y_ideal) for v in values]
    assert errors[0] > 1e-2
    assert all(later <= earlier for earlier, later in itertools.pairwise(errors))
    assert errors[-1] < errors[0] / 20


def test_layers_of_one_network_mix_models_and_train(test_models):
    torch.manual_seed(5)
    config = {
        "crossbar": {
            "rows": 16,
            "cols": 16,
            "weight_bits": 8,
            "input_bits": 8,
            "error_bits": 8,
            "layers": [
                {
                    "match": "0",
                    "device": {"name": "ideal", "cell_bits": 2},
                    "solver": "series",
                    "adc": {"name": "clip", "full_scale": 2e-4},
                    "dac": "sign-phase",
                },
                {"match": "2", "update": "damped", "backward": {"adc": "pass-through"}},
            ],
        }
    }
    net = convert(mlp(), config)
    assert "series" in txsim_core.summary(net) and "damped" in txsim_core.summary(net)
    opt = CrossbarSGD(net.parameters(), lr=0.1)
    torch.manual_seed(6)
    teacher = torch.nn.Linear(30, 5)
    x = torch.randn(256, 30)
    y = teacher(x).argmax(1)
    first = None
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.7 * first


def test_same_seed_same_run_and_other_seed_differs(test_models):
    config = {"crossbar": {"weight_bits": 6, "update": "damped"}}

    def run(seed):
        torch.manual_seed(7)
        net = convert(mlp(), config, seed=seed)
        opt = CrossbarSGD(net.parameters(), lr=0.05)
        x, y = torch.randn(16, 30), torch.randint(0, 5, (16,))
        for _ in range(5):
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return [p.detach().clone() for p in net.parameters()]

    first, again, other = run(0), run(0), run(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_checkpoint_restores_state_and_random_stream(test_models):
    torch.manual_seed(8)
    net = convert(mlp(), {"crossbar": {"weight_bits": 6}}, seed=3)
    opt = CrossbarSGD(net.parameters(), lr=0.05)
    x, y = torch.randn(16, 30), torch.randint(0, 5, (16,))

    def step(model, optimizer):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step(net, opt)
    saved = copy.deepcopy(net.state_dict())
    twin = convert(mlp(), {"crossbar": {"weight_bits": 6}}, seed=99)
    twin.load_state_dict(saved)
    assert torch.equal(twin(x), net(x))
    step(net, opt)
    step(twin, CrossbarSGD(twin.parameters(), lr=0.05))
    assert all(
        torch.equal(a, b)
        for a, b in zip(net.state_dict().values(), twin.state_dict().values(), strict=True)
        if isinstance(a, torch.Tensor)
    )
