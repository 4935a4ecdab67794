"""The model zoo: shapes, published parameter counts, module names, conversion, errors."""

from __future__ import annotations

import functools
import math

import pytest
import torch

import txsim_core
from txsim_core.nn.convert import CONVERTIBLE
from txsim_core.zoo import build_network, list_networks, network_options

NETWORKS = ("mlp", "lenet5", "alexnet", "vgg16", "resnet20", "resnet56", "resnet18", "lstm")
SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "cifar": (3, 32, 32), "tiny": (3, 64, 64)}


@functools.cache
def _network(name: str, shape: tuple[int, int, int], classes: int) -> torch.nn.Module:
    """A seeded build shared between tests: they leave its weights and mode as they found them
    (convert copies it; forward passes only move the batch-norm running statistics)."""
    torch.manual_seed(0)
    return build_network(name, input_shape=shape, num_classes=classes)


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def convertible_names(net: torch.nn.Module) -> list[str]:
    return [name for name, module in net.named_modules() if type(module) in CONVERTIBLE]


def conv_params(c_in: int, c_out: int, k: int, bias: bool = True) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def test_every_network_is_listed_with_a_source():
    networks = list_networks()
    assert tuple(networks) == NETWORKS
    for name, description in networks.items():
        assert "(" in description and any(c.isdigit() for c in description), name


@pytest.mark.parametrize("name", NETWORKS)
def test_every_network_gives_logits_for_natural_shapes_and_trains_every_parameter(name):
    for shape in SHAPES.values():
        net = _network(name, shape, 7).eval()
        with torch.no_grad():
            logits = net(torch.randn(1, *shape))
        net.train()
        assert logits.shape == (1, 7)
        assert torch.isfinite(logits).all()
    # On 8x8 digits, every parameter takes part in the output.
    net = _network(name, SHAPES["digits"], 7)
    net(torch.randn(2, *SHAPES["digits"])).square().sum().backward()
    unused = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    net.zero_grad(set_to_none=True)
    assert unused == []


def test_builders_use_the_callers_seed_and_do_not_seed_themselves():
    torch.manual_seed(3)
    a = build_network("lenet5", (1, 28, 28), 10)
    torch.manual_seed(3)
    b = build_network("lenet5", (1, 28, 28), 10)
    c = build_network("lenet5", (1, 28, 28), 10)  # torch's generator went on
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.features.conv1.weight, c.features.conv1.weight)


# Published figures -----------------------------------------------------------------------------


def test_lenet5_matches_the_paper_on_mnist():
    # LeCun et al. (1998), Sec. II.B: C1 is 6@28x28 for 32x32 inputs (MNIST's 28x28 in a 32x32
    # field, here by padding), S4 is 16@5x5, and the network has "60,000 trainable parameters".
    net = _network("lenet5", (1, 28, 28), 10)
    x = torch.randn(2, 1, 28, 28)
    assert net.features.conv1(x).shape == (2, 6, 28, 28)
    assert net.features(x).shape == (2, 16, 5, 5)
    expected = (
        conv_params(1, 6, 5) + conv_params(6, 16, 5) + 401 * 120 + 121 * 84 + 85 * 10
    )  # C3 fully connected, no trainable subsampling
    assert n_params(net) == expected == 61_706
    assert n_params(net) == pytest.approx(60_000, rel=0.03)


def test_lenet5_cifar_has_no_padding_and_tiny_images_still_pool_twice():
    cifar = _network("lenet5", (3, 32, 32), 10)
    assert cifar.features.conv1.padding == (0, 0)
    assert cifar.features(torch.randn(1, 3, 32, 32)).shape == (1, 16, 5, 5)
    assert n_params(cifar) == conv_params(3, 6, 5) + 2_416 + 48_120 + 10_164 + 850  # 62,006
    digits = _network("lenet5", (1, 8, 8), 10)
    assert digits.features(torch.randn(1, 1, 8, 8)).shape == (1, 16, 2, 2)
    wide = build_network("lenet5", (1, 4, 40), 3)  # each dimension on its own
    assert wide.features(torch.randn(1, 1, 4, 40)).shape == (1, 16, 1, 7)  # 40-36-18-14-7


@pytest.mark.parametrize(("name", "published"), [("resnet20", 0.27e6), ("resnet56", 0.85e6)])
def test_cifar_resnets_match_he_et_al_table_6(name, published):
    # He et al. (CVPR 2016), Table 6: 0.27M and 0.85M parameters (option A shortcuts); the 1x1
    # projections of option B add 16*32 + 32*64 weights and two batch norms (2*(32+64)).
    net = _network(name, (3, 32, 32), 10)
    assert n_params(net) == pytest.approx(published, rel=0.02)
    n = {"resnet20": 3, "resnet56": 9}[name]
    option_a = (
        conv_params(3, 16, 3, False)
        + 32
        + 2 * n * conv_params(16, 16, 3, False)
        + conv_params(16, 32, 3, False)
        + (2 * n - 1) * conv_params(32, 32, 3, False)
        + conv_params(32, 64, 3, False)
        + (2 * n - 1) * conv_params(64, 64, 3, False)
        + 2 * 2 * n * (16 + 32 + 64)
        + 64 * 10
        + 10
    )
    assert n_params(net) == option_a + 16 * 32 + 32 * 64 + 2 * (32 + 64)
    assert len(convertible_names(net)) == 6 * n + 2 + 2  # 6n+2 weighted layers + 2 projections


def test_cifar_resnet_stages_have_the_papers_map_sizes():
    # He et al. (2016), Sec. 4.2: feature maps of 32x32, 16x16 and 8x8 with 16, 32, 64 filters.
    net = _network("resnet20", (3, 32, 32), 10)
    x = net.relu(net.stem_bn(net.stem(torch.randn(1, 3, 32, 32))))
    for stage, size, width in ((1, 32, 16), (2, 16, 32), (3, 8, 64)):
        x = getattr(net, f"layer{stage}")(x)
        assert x.shape == (1, width, size, size)


def test_vgg16_matches_li_et_al_table_1():
    # Li et al., "Pruning Filters for Efficient ConvNets" (ICLR 2017), Table 1: VGG-16 on
    # CIFAR-10 (13 conv + 2 fc, batch norm) has 1.5e7 parameters.
    net = _network("vgg16", (3, 32, 32), 10)
    assert n_params(net) == pytest.approx(1.5e7, rel=0.01)
    assert len(convertible_names(net)) == 15


def test_resnet18_matches_the_imagenet_network_but_for_its_stem():
    # torchvision's resnet18 (He et al. 2016, Table 1) has 11,689,512 parameters for 1000
    # classes; its 7x7x3x64 stem becomes 3x3x3x64 here.
    net = build_network("resnet18", (3, 64, 64), 1000)
    assert n_params(net) == 11_689_512 - (7 * 7 - 3 * 3) * 3 * 64
    assert n_params(net) == pytest.approx(11.7e6, rel=0.01)


def test_alexnet_and_mlp_and_lstm_counts_follow_their_layers():
    alexnet = _network("alexnet", (3, 32, 32), 10)
    convs = [(3, 64), (64, 192), (192, 384), (384, 256), (256, 256)]
    fcs = [(1024, 4096), (4096, 4096), (4096, 10)]
    assert n_params(alexnet) == sum(conv_params(i, o, 3) for i, o in convs) + sum(
        i * o + o for i, o in fcs
    )
    assert alexnet.features(torch.randn(1, 3, 32, 32)).shape == (1, 256, 2, 2)
    mlp = _network("mlp", (1, 28, 28), 10)
    assert n_params(mlp) == 785 * 256 + 257 * 128 + 129 * 10
    lstm = _network("lstm", (1, 28, 28), 10)  # four gates, two biases each (PyTorch)
    assert n_params(lstm) == 4 * 128 * (28 + 128 + 2) + 129 * 10


# Module names ----------------------------------------------------------------------------------


def test_module_names_are_the_documented_ones():
    assert convertible_names(_network("lenet5", (1, 28, 28), 10)) == [
        "features.conv1",
        "features.conv2",
        "classifier.fc1",
        "classifier.fc2",
        "classifier.fc3",
    ]
    assert convertible_names(_network("mlp", (1, 28, 28), 10)) == ["fc1", "fc2", "fc3"]
    assert convertible_names(build_network("mlp", (1, 8, 8), 10, hidden=[])) == ["fc1"]
    assert convertible_names(_network("alexnet", (3, 32, 32), 10)) == [
        *(f"features.conv{i}" for i in range(1, 6)),
        *(f"classifier.fc{i}" for i in range(1, 4)),
    ]
    vgg = convertible_names(_network("vgg16", (3, 32, 32), 10))
    assert vgg[:3] == ["features.conv1_1", "features.conv1_2", "features.conv2_1"]
    assert vgg[-3:] == ["features.conv5_3", "classifier.fc1", "classifier.fc2"]
    resnet = convertible_names(_network("resnet20", (3, 32, 32), 10))
    assert resnet[:3] == ["stem", "layer1.0.conv1", "layer1.0.conv2"]
    assert "layer2.0.shortcut.conv" in resnet and "layer3.0.shortcut.conv" in resnet
    assert "layer1.0.shortcut.conv" not in resnet and resnet[-2:] == ["layer3.2.conv2", "fc"]
    resnet18 = convertible_names(_network("resnet18", (3, 32, 32), 10))
    assert resnet18[-3:] == ["layer4.1.conv1", "layer4.1.conv2", "fc"]
    assert len(resnet18) == 1 + 16 + 3 + 1
    assert convertible_names(_network("lstm", (1, 28, 28), 10)) == ["lstm", "fc"]
    named = dict(_network("resnet56", (3, 32, 32), 10).named_modules())
    assert isinstance(named["layer3.8.bn2"], torch.nn.BatchNorm2d)
    assert isinstance(named["layer2.0.shortcut.bn"], torch.nn.BatchNorm2d)


def test_per_layer_rules_address_the_zoo_names():
    net = _network("lenet5", (1, 28, 28), 10)
    config = {"crossbar": {"layers": [{"match": "classifier.*", "digital": True}]}}
    converted = txsim_core.convert(net, config)
    assert isinstance(converted.features.conv1, txsim_core.CrossbarConv2d)
    assert type(converted.classifier.fc3) is torch.nn.Linear
    config = {"crossbar": {"layers": [{"match": "layer*.shortcut.conv", "digital": True}]}}
    converted = txsim_core.convert(_network("resnet20", (3, 32, 32), 10), config)
    assert type(converted.layer2[0].shortcut.conv) is torch.nn.Conv2d
    assert isinstance(converted.layer2[0].conv1, txsim_core.CrossbarConv2d)


# Conversion ------------------------------------------------------------------------------------

CONVERSION_SHAPES = {
    "mlp": (1, 28, 28),
    "lenet5": (1, 28, 28),
    "alexnet": (3, 16, 16),
    "vgg16": (3, 8, 8),
    "resnet20": (3, 16, 16),
    "resnet56": (3, 8, 8),
    "resnet18": (3, 8, 8),
    "lstm": (1, 28, 28),
}


@pytest.mark.parametrize("name", NETWORKS)
def test_every_network_converts_and_the_ideal_crossbars_reproduce_it(name):
    shape = CONVERSION_SHAPES[name]
    native = _network(name, shape, 10)
    converted = txsim_core.convert(native, "ideal", seed=1)
    assert convertible_names(converted) == []
    modules = dict(converted.named_modules())
    for name_here, module in native.named_modules():
        if type(module) in CONVERTIBLE:
            assert type(modules[name_here]) is CONVERTIBLE[type(module)]
    native.eval()
    converted.eval()
    torch.manual_seed(2)
    x = torch.randn(3, *shape)
    with torch.no_grad():
        expected, got = native(x), converted(x)
    native.train()
    assert got.shape == (3, 10)
    assert float((got - expected).norm() / expected.norm()) < 1e-4


@pytest.mark.parametrize(
    ("name", "shape"), [("lenet5", (1, 28, 28)), ("resnet20", (3, 8, 8)), ("lstm", (1, 8, 8))]
)
def test_converted_networks_train_with_the_native_gradients(name, shape):
    # Training mode (batch norm on batch statistics): the ideal crossbars give the same gradient
    # for every parameter, up to float32 rounding (which batch norm amplifies a little).
    native = _network(name, shape, 10)
    converted = txsim_core.convert(native, "ideal")
    torch.manual_seed(4)
    x, y = torch.randn(4, *shape), torch.randint(0, 10, (4,))
    grads = []
    for net in (native, converted):
        torch.nn.functional.cross_entropy(net(x), y).backward()
        grads.append(
            {n.replace(".crossbar", ""): p.grad.reshape(-1) for n, p in net.named_parameters()}
        )
        net.zero_grad(set_to_none=True)
    if name == "lstm":  # CrossbarLSTM stacks W_ih and W_hh of a layer into one array
        w = grads[0]
        w["lstm.cells.0.weight"] = torch.cat(
            [
                w.pop("lstm.weight_ih_l0").reshape(512, -1),
                w.pop("lstm.weight_hh_l0").reshape(512, -1),
            ],
            dim=1,
        ).reshape(-1)
    assert grads[0].keys() == grads[1].keys()
    expected = torch.cat([grads[0][k] for k in sorted(grads[0])])
    got = torch.cat([grads[1][k] for k in sorted(grads[0])])
    assert float((got - expected).norm() / expected.norm()) < 1e-3


# Errors ----------------------------------------------------------------------------------------


def test_unknown_network_lists_the_names_and_close_matches():
    with pytest.raises(txsim_core.ConfigError, match="Unknown network 'lenet'") as info:
        build_network("lenet", (1, 28, 28), 10)
    assert "Did you mean 'lenet5'" in str(info.value)
    assert all(repr(name) in str(info.value) for name in NETWORKS)
    with pytest.raises(txsim_core.ConfigError, match="Did you mean 'resnet") as info:
        build_network("resnet", (3, 32, 32), 10)
    hint = str(info.value).split("?")[0]
    assert all(repr(name) in hint for name in ("resnet18", "resnet20", "resnet56"))


def test_unknown_option_names_it_and_the_allowed_ones():
    with pytest.raises(txsim_core.ConfigError) as info:
        build_network("mlp", (1, 28, 28), 10, hiden=(10,))
    message = str(info.value)
    assert "'hiden' (did you mean 'hidden'?)" in message and "Options of 'mlp': 'hidden'" in message
    with pytest.raises(txsim_core.ConfigError, match="Unknown network \\['mlp'\\]"):
        build_network(["mlp"], (1, 28, 28), 10)
    with pytest.raises(txsim_core.ConfigError, match="Options of 'lenet5': none"):
        build_network("lenet5", (1, 28, 28), 10, dropout=0.1)
    with pytest.raises(txsim_core.ConfigError, match="'hidden_size', 'num_layers'"):
        build_network("lstm", (1, 28, 28), 10, bidirectional=True)
    assert network_options("lstm") == {"hidden_size": 128, "num_layers": 1}
    assert network_options("resnet18") == {}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_shape": (28, 28)}, "Expected `input_shape` to be three positive integers"),
        ({"input_shape": (1, 0, 28)}, r"but got \(1, 0, 28\)"),
        ({"input_shape": (1.0, 28, 28)}, "three positive integers"),
        ({"input_shape": "1x28x28"}, "three positive integers"),
        ({"input_shape": (True, 28, 28)}, "three positive integers"),
        ({"num_classes": 1}, "Expected `num_classes` to be an integer >= 2, but got 1."),
        ({"num_classes": 2.0}, "but got 2.0"),
        ({"name": "lenet5", "input_shape": (1, 3, 28)}, "at least 4x4 pixels.*but got 3x28"),
        ({"hidden": (256, 0)}, r"Expected `hidden` to be a list of positive integers.*\[256, 0\]"),
        ({"hidden": 256}, "`hidden`.*but got 256"),
        ({"name": "alexnet", "dropout": 1.0}, r"Expected `dropout` to be a number in \[0, 1\)"),
        ({"name": "vgg16", "dropout": -0.1}, "but got -0.1"),
        ({"name": "lstm", "hidden_size": 0}, "`hidden_size` to be a positive integer"),
        ({"name": "lstm", "num_layers": 1.5}, "`num_layers`.*but got 1.5"),
    ],
)
def test_bad_values_say_what_was_expected(kwargs, message):
    arguments = {"name": "mlp", "input_shape": (1, 28, 28), "num_classes": 10, **kwargs}
    with pytest.raises(txsim_core.ConfigError, match=message):
        build_network(**arguments)


def test_lists_are_accepted_where_toml_gives_them():
    net = build_network("mlp", [1, 8, 8], 3, hidden=[5])
    assert net(torch.randn(4, 1, 8, 8)).shape == (4, 3)
    assert n_params(net) == math.prod((1, 8, 8)) * 5 + 5 + 5 * 3 + 3
