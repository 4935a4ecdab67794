"""VGG-16 with batch normalization for 32x32 images."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from txsim_core.zoo._checks import check_dropout

_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
"""Filters and number of 3x3 convolutions of each of the five blocks (configuration D)."""


def build_vgg16(
    input_shape: tuple[int, int, int], num_classes: int, *, dropout: float = 0.5
) -> nn.Sequential:
    """VGG-16 (Simonyan and Zisserman, ICLR 2015, configuration D) for CIFAR, with batch norm.

    The 13 convolutions of configuration D (3x3, padding 1, each followed by batch normalization
    and ReLU; five blocks of 64, 128, 256, 512, 512 filters, each ending in a 2x2 max pooling) and
    the small CIFAR classifier of Zagoruyko's "92.45% on CIFAR-10 in Torch" (2015), the network
    whose 1.5e7 parameters Li et al. report ("Pruning Filters for Efficient ConvNets", ICLR 2017,
    Table 1): ``dropout -> fc 512 -> BN -> ReLU -> dropout -> fc classes`` (without Zagoruyko's
    dropout between convolutions). Poolings use ceil mode, so images that are not multiples of
    32 (28x28 MNIST, 8x8 digits) keep at least one pixel; a global average pooling turns the
    final 512-channel map (1x1 for 32x32) into 512 features. Parameters: 14,991,946 for CIFAR-10.

    Module names: ``features.conv{b}_{i}``, ``features.bn{b}_{i}``, ``features.relu{b}_{i}`` for
    block ``b`` (1-5) and convolution ``i`` in it, ``features.pool{b}``; ``pool``, ``flatten``;
    ``classifier.drop1``, ``classifier.fc1``, ``classifier.bn1``, ``classifier.relu1``,
    ``classifier.drop2``, ``classifier.fc2``.

    Args:
        input_shape: ``(channels, height, width)`` of one image.
        num_classes: number of outputs (logits).
        dropout: probability of the two dropout layers of the classifier, in [0, 1).
    """
    rate = check_dropout(dropout)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    in_channels = input_shape[0]
    for block, (filters, count) in enumerate(_BLOCKS, start=1):
        for index in range(1, count + 1):
            layers[f"conv{block}_{index}"] = nn.Conv2d(in_channels, filters, 3, padding=1)
            layers[f"bn{block}_{index}"] = nn.BatchNorm2d(filters)
            layers[f"relu{block}_{index}"] = nn.ReLU()
            in_channels = filters
        layers[f"pool{block}"] = nn.MaxPool2d(2, ceil_mode=True)
    classifier = nn.Sequential(
        OrderedDict(
            drop1=nn.Dropout(rate),
            fc1=nn.Linear(512, 512),
            bn1=nn.BatchNorm1d(512),
            relu1=nn.ReLU(),
            drop2=nn.Dropout(rate),
            fc2=nn.Linear(512, num_classes),
        )
    )
    return nn.Sequential(
        OrderedDict(
            features=nn.Sequential(layers),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            classifier=classifier,
        )
    )
