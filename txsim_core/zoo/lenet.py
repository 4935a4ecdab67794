"""LeNet-5."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from txsim_core.errors import ConfigError
from txsim_core.zoo._checks import conv_size


def _paddings(size: int) -> tuple[int, int, int]:
    """Padding of conv1, padding of conv2 and the final map length for an image ``size`` long."""
    pad1 = 2 if size < 32 else 0
    pooled1 = conv_size(size, 5, padding=pad1) // 2
    pad2 = 2 if pooled1 < 6 else 0
    return pad1, pad2, conv_size(pooled1, 5, padding=pad2) // 2


def build_lenet5(input_shape: tuple[int, int, int], num_classes: int) -> nn.Sequential:
    """LeNet-5 (LeCun, Bottou, Bengio and Haffner, Proc. IEEE 86(11), 1998), as commonly trained.

    ``conv 6@5x5 -> max pool 2 -> conv 16@5x5 -> max pool 2 -> fc 120 -> fc 84 -> fc classes``
    with ReLU activations (the paper has scaled tanh units, trainable subsampling and a
    partially connected C3; here C3 is fully connected and the output is a plain linear layer).
    The paper feeds 32x32 images (MNIST's 28x28 digits centred in a 32x32 field), so:

    * conv1 pads images smaller than 32 pixels by 2 (MNIST then gives the paper's 28x28 C1 maps),
      and images of 32 pixels or more are not padded (CIFAR then gives 28x28 as well);
    * conv2 pads by 2 when its input is smaller than 6 pixels (tiny images such as 8x8 digits),
      so that the second pooling still has a 2x2 window;
    * fc1's inputs are ``16 * h * w`` for the final ``h x w`` map (5x5 for 28x28 and 32x32).

    Each dimension is treated on its own; images must be at least 4x4. Parameters: 61,706 for
    MNIST (1x28x28, 10 classes), 62,006 for CIFAR-10 (3x32x32).

    Module names: ``features.conv1``, ``features.relu1``, ``features.pool1``, ``features.conv2``,
    ``features.relu2``, ``features.pool2``, ``flatten``, ``classifier.fc1``, ``classifier.relu1``,
    ``classifier.fc2``, ``classifier.relu2``, ``classifier.fc3``.

    Args:
        input_shape: ``(channels, height, width)`` of one image.
        num_classes: number of outputs (logits).
    """
    channels, height, width = input_shape
    if min(height, width) < 4:
        raise ConfigError(
            "Expected an image of at least 4x4 pixels for 'lenet5' (two 2x2 poolings after "
            f"5x5 convolutions), but got {height}x{width}."
        )
    (pad1_h, pad2_h, out_h), (pad1_w, pad2_w, out_w) = _paddings(height), _paddings(width)
    features = nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(channels, 6, 5, padding=(pad1_h, pad1_w)),
            relu1=nn.ReLU(),
            pool1=nn.MaxPool2d(2),
            conv2=nn.Conv2d(6, 16, 5, padding=(pad2_h, pad2_w)),
            relu2=nn.ReLU(),
            pool2=nn.MaxPool2d(2),
        )
    )
    classifier = nn.Sequential(
        OrderedDict(
            fc1=nn.Linear(16 * out_h * out_w, 120),
            relu1=nn.ReLU(),
            fc2=nn.Linear(120, 84),
            relu2=nn.ReLU(),
            fc3=nn.Linear(84, num_classes),
        )
    )
    return nn.Sequential(
        OrderedDict(features=features, flatten=nn.Flatten(), classifier=classifier)
    )
