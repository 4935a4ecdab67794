"""Multi-layer perceptron."""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from txsim_core.zoo._checks import check_widths


def build_mlp(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    hidden: Sequence[int] = (256, 128),
) -> nn.Sequential:
    """A fully connected classifier: flatten, then ``Linear + ReLU`` per hidden layer, then Linear.

    The plain multi-layer perceptron of the crossbar-training literature (the 3-layer MNIST
    network of CrossSim and of TxSim's Table I, Roy et al.). With the default ``hidden`` on MNIST
    (784-256-128-10) it has 235,146 parameters.

    Module names: ``flatten``, then ``fc1``, ``relu1``, ..., ``fc{k}``, ``relu{k}`` for the ``k``
    hidden layers, then the output layer ``fc{k+1}`` (``fc3`` by default).

    Args:
        input_shape: ``(channels, height, width)`` of one sample, flattened to
            ``channels * height * width`` inputs.
        num_classes: number of outputs (logits).
        hidden: the width of each hidden layer, in order; empty for a single linear layer
            (multinomial logistic regression).
    """
    widths = (math.prod(input_shape), *check_widths(hidden, "hidden"), num_classes)
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(widths), start=1):
        layers[f"fc{index}"] = nn.Linear(fan_in, fan_out)
        if index < len(widths) - 1:
            layers[f"relu{index}"] = nn.ReLU()
    return nn.Sequential(layers)
