"""AlexNet for 32x32 images."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from txsim_core.zoo._checks import check_dropout

_CONVS = ((64, 2), (192, 1), (384, 1), (256, 1), (256, 1))
"""Output channels and stride of the five 3x3 convolutions."""

_POOLED = (1, 2, 5)
"""The convolutions followed by a 2x2 max pooling."""


def build_alexnet(
    input_shape: tuple[int, int, int], num_classes: int, *, dropout: float = 0.5
) -> nn.Sequential:
    """AlexNet (Krizhevsky, Sutskever and Hinton, NeurIPS 2012) in its common CIFAR-10 form.

    Five convolutions and three fully connected layers as in the paper, sized for 32x32 inputs:
    every convolution is 3x3 with padding 1 (64, 192, 384, 256, 256 filters; the first has stride
    2), 2x2 max pooling after conv1, conv2 and conv5 (ceil mode, so odd and small maps keep a
    pixel), ReLU after every layer, then ``dropout -> fc 4096 -> ReLU -> dropout -> fc 4096 ->
    ReLU -> fc classes`` (no local response normalization). A 32x32 image leaves a 256x2x2 map;
    an adaptive average pooling brings other sizes to 2x2 (a smaller map is repeated), so the
    classifier is the same for every input size. Parameters: 23,272,266 for CIFAR-10.

    Module names: ``features.conv1`` ... ``features.conv5`` (each followed by
    ``features.relu{i}``), ``features.pool1``, ``features.pool2``, ``features.pool5``, ``pool``
    (the adaptive pooling), ``flatten``, ``classifier.drop1``, ``classifier.fc1``,
    ``classifier.relu1``, ``classifier.drop2``, ``classifier.fc2``, ``classifier.relu2``,
    ``classifier.fc3``.

    Args:
        input_shape: ``(channels, height, width)`` of one image.
        num_classes: number of outputs (logits).
        dropout: probability of the two dropout layers of the classifier, in [0, 1).
    """
    rate = check_dropout(dropout)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    in_channels = input_shape[0]
    for index, (out_channels, stride) in enumerate(_CONVS, start=1):
        layers[f"conv{index}"] = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1)
        layers[f"relu{index}"] = nn.ReLU()
        if index in _POOLED:
            layers[f"pool{index}"] = nn.MaxPool2d(2, ceil_mode=True)
        in_channels = out_channels
    classifier = nn.Sequential(
        OrderedDict(
            drop1=nn.Dropout(rate),
            fc1=nn.Linear(256 * 2 * 2, 4096),
            relu1=nn.ReLU(),
            drop2=nn.Dropout(rate),
            fc2=nn.Linear(4096, 4096),
            relu2=nn.ReLU(),
            fc3=nn.Linear(4096, num_classes),
        )
    )
    return nn.Sequential(
        OrderedDict(
            features=nn.Sequential(layers),
            pool=nn.AdaptiveAvgPool2d(2),
            flatten=nn.Flatten(),
            classifier=classifier,
        )
    )
