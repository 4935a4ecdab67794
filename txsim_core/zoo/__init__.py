"""The model zoo: the networks of the TxSim paper and their usual baselines, by name.

::

    from txsim_core.zoo import build_network, list_networks

    torch.manual_seed(0)    # the builders draw initial weights from torch's global generator
    net = build_network("lenet5", input_shape=(1, 28, 28), num_classes=10)
    net = txsim_core.convert(net, "paper")

Every network is a plain ``torch.nn.Module`` built from ``torch.nn.Linear``, ``Conv2d`` and
``LSTM`` layers (the ones :func:`txsim_core.convert` puts on crossbars) with stable module names
for per-layer rules (``features.*``, ``classifier.fc3``, ``layer1.*``, ``fc``); each builder's
docstring lists them. Builders do not seed: seed torch (``torch.manual_seed``) before building
for reproducible initial weights.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from txsim_core.errors import ConfigError
from txsim_core.zoo._checks import check_input_shape, check_num_classes
from txsim_core.zoo.alexnet import build_alexnet
from txsim_core.zoo.lenet import build_lenet5
from txsim_core.zoo.lstm import build_lstm
from txsim_core.zoo.mlp import build_mlp
from txsim_core.zoo.resnet import build_resnet18, build_resnet20, build_resnet56
from txsim_core.zoo.vgg import build_vgg16

_NETWORKS: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "mlp": (build_mlp, "Multi-layer perceptron, Linear + ReLU (Rumelhart et al., Nature 1986)."),
    "lenet5": (build_lenet5, "LeNet-5 with ReLU and max pooling (LeCun et al., Proc. IEEE 1998)."),
    "alexnet": (
        build_alexnet,
        "AlexNet for 32x32 images, 5 conv + 3 fc (Krizhevsky et al., NeurIPS 2012).",
    ),
    "vgg16": (
        build_vgg16,
        "VGG-16 with batch norm for CIFAR, 13 conv + 2 fc (Simonyan and Zisserman, ICLR 2015).",
    ),
    "resnet20": (build_resnet20, "ResNet-20 for CIFAR, 0.27M parameters (He et al., CVPR 2016)."),
    "resnet56": (build_resnet56, "ResNet-56 for CIFAR, 0.85M parameters (He et al., CVPR 2016)."),
    "resnet18": (
        build_resnet18,
        "ResNet-18 with a 3x3 stem for small images (He et al., CVPR 2016).",
    ),
    "lstm": (
        build_lstm,
        "LSTM over image rows + Linear (Hochreiter and Schmidhuber, Neural Comput. 1997).",
    ),
}


def list_networks() -> dict[str, str]:
    """Every network's name and a one-line description with the source it follows."""
    return {name: description for name, (_, description) in _NETWORKS.items()}


def _builder(name: str) -> Callable[..., nn.Module]:
    if not isinstance(name, str) or name not in _NETWORKS:
        close = difflib.get_close_matches(str(name), list(_NETWORKS), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(
            f"Unknown network {name!r}.{hint} Available networks: "
            f"{', '.join(repr(n) for n in _NETWORKS)}."
        )
    return _NETWORKS[name][0]


def network_options(name: str) -> dict[str, Any]:
    """The options that network ``name`` accepts, with their defaults (its builder's docstring
    says what each means)."""
    return {
        option.name: option.default
        for option in inspect.signature(_builder(name)).parameters.values()
        if option.kind is inspect.Parameter.KEYWORD_ONLY
    }


def build_network(name: str, input_shape: Any, num_classes: Any, **options: Any) -> nn.Module:
    """Build the network ``name`` for images of ``input_shape`` and ``num_classes`` classes.

    The initial weights come from torch's global generator: seed it first for reproducibility.

    Args:
        name: one of :func:`list_networks`.
        input_shape: ``(channels, height, width)`` of one input image (three positive integers;
            a list is accepted). Inputs are batches ``(B, channels, height, width)``.
        num_classes: number of output logits (at least 2).
        **options: the network's options (:func:`network_options` lists them).

    Returns:
        A native ``torch.nn.Module`` mapping ``(B, C, H, W)`` inputs to ``(B, num_classes)``
        logits, in training mode.

    Raises:
        ConfigError: for an unknown name or option, or a bad value (shape, number of classes,
            option, or an image too small for the network).
    """
    builder = _builder(name)
    allowed = network_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        accepted = ", ".join(repr(o) for o in allowed) or "none"
        hints = [
            f"{o!r} (did you mean {close[0]!r}?)"
            if (close := difflib.get_close_matches(o, list(allowed), n=1, cutoff=0.6))
            else repr(o)
            for o in unknown
        ]
        raise ConfigError(
            f"Unknown option{'s' if len(unknown) > 1 else ''} {', '.join(hints)} for network "
            f"{name!r}. Options of {name!r}: {accepted}."
        )
    return builder(check_input_shape(input_shape), check_num_classes(num_classes), **options)


__all__ = ["build_network", "list_networks", "network_options"]
