"""Residual networks: the CIFAR ResNets (ResNet-20, ResNet-56) and ResNet-18 for small images."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a shortcut: ``relu(bn2(conv2(relu(bn1(conv1(x)))))
    + shortcut(x))`` (He et al., CVPR 2016, Fig. 2).

    The shortcut is the identity when the shape is kept, otherwise a 1x1 convolution with the
    block's stride followed by batch norm (the paper's option B), so every weight of the block is
    in a convertible ``Conv2d``.

    Module names: ``conv1``, ``bn1``, ``conv2``, ``bn2``, ``relu``, and ``shortcut`` (an
    ``Identity``, or ``shortcut.conv`` and ``shortcut.bn``).

    Args:
        in_channels: channels of the block's input.
        out_channels: channels of its output (and of both convolutions).
        stride: stride of ``conv1`` and of the projection (2 halves the map).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                    bn=nn.BatchNorm2d(out_channels),
                )
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class ResNet(nn.Module):
    """A ResNet of basic blocks on a 3x3 stem, without an initial max pooling.

    ``stem (3x3 conv) -> stem_bn -> relu -> layer1 ... layerN -> global average pool -> fc``;
    stage 1 keeps the map size and every later stage halves it in its first block. Convolutions
    are initialized as in He et al. (ICCV 2015, "Delving deep into rectifiers"; fan-out mode, as
    torchvision does), batch norms with weight 1 and bias 0, ``fc`` with PyTorch's default.

    Module names: ``stem``, ``stem_bn``, ``relu``, ``layer{s}.{b}.conv1`` / ``bn1`` / ``conv2`` /
    ``bn2`` / ``shortcut[.conv|.bn]`` for stage ``s`` (from 1) and block ``b`` (from 0), ``pool``,
    ``flatten``, ``fc``.

    Args:
        in_channels: channels of the input image.
        num_classes: number of outputs (logits).
        widths: channels of each stage (the stem has the first stage's width).
        blocks: number of basic blocks in each stage.
    """

    def __init__(
        self, in_channels: int, num_classes: int, widths: Sequence[int], blocks: Sequence[int]
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        channels = widths[0]
        for stage, (width, count) in enumerate(zip(widths, blocks, strict=True), start=1):
            layers = []
            for block in range(count):
                stride = 2 if stage > 1 and block == 0 else 1
                layers.append(BasicBlock(channels, width, stride))
                channels = width
            self.add_module(f"layer{stage}", nn.Sequential(*layers))
        self.num_stages = len(widths)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.stem_bn(self.stem(x)))
        for stage in range(1, self.num_stages + 1):
            x = self.get_submodule(f"layer{stage}")(x)
        return self.fc(self.flatten(self.pool(x)))


def _cifar_resnet(input_shape: tuple[int, int, int], num_classes: int, n: int) -> ResNet:
    return ResNet(input_shape[0], num_classes, (16, 32, 64), (n, n, n))


def build_resnet20(input_shape: tuple[int, int, int], num_classes: int) -> ResNet:
    """ResNet-20 for CIFAR (He, Zhang, Ren and Sun, CVPR 2016, Sec. 4.2, n = 3).

    A 3x3 convolution of 16 filters, then three stages of n = 3 basic blocks with 16, 32 and 64
    filters (maps 32x32, 16x16, 8x8 for CIFAR), global average pooling and a linear classifier:
    6n + 2 = 20 weighted layers. The shortcuts that change shape are 1x1 projections (option B)
    instead of the paper's zero padding (option A), which adds 2,752 parameters: 272,474 for
    CIFAR-10 against the paper's "0.27M" (Table 6). Any image size works (global pooling).

    Module names: see :class:`ResNet`; stages ``layer1`` to ``layer3`` of blocks ``0`` to ``2``
    (e.g. ``layer2.0.conv1``, ``layer2.0.shortcut.conv``), ``fc``.

    Args:
        input_shape: ``(channels, height, width)`` of one image.
        num_classes: number of outputs (logits).
    """
    return _cifar_resnet(input_shape, num_classes, 3)


def build_resnet56(input_shape: tuple[int, int, int], num_classes: int) -> ResNet:
    """ResNet-56 for CIFAR (He, Zhang, Ren and Sun, CVPR 2016, Sec. 4.2, n = 9).

    As :func:`build_resnet20` with nine basic blocks per stage (6n + 2 = 56 weighted layers);
    the TxSim paper trains it on CIFAR-100. Parameters with option-B projections: 855,770 for
    CIFAR-10 against the paper's "0.85M" (Table 6), 861,620 for CIFAR-100.

    Module names: see :class:`ResNet`; stages ``layer1`` to ``layer3`` of blocks ``0`` to ``8``,
    ``fc``.

    Args:
        input_shape: ``(channels, height, width)`` of one image.
        num_classes: number of outputs (logits).
    """
    return _cifar_resnet(input_shape, num_classes, 9)


def build_resnet18(input_shape: tuple[int, int, int], num_classes: int) -> ResNet:
    """ResNet-18 (He, Zhang, Ren and Sun, CVPR 2016, Table 1) adapted to small images.

    The ImageNet network's four stages of two basic blocks (64, 128, 256, 512 filters, 1x1
    projection shortcuts where the shape changes, as in the paper and torchvision) with the 7x7
    stride-2 stem and its 3x3 max pooling replaced by a 3x3 stride-1 convolution, as usual for
    CIFAR and Tiny-ImageNet (the TxSim paper trains it on Tiny-ImageNet, 200 classes); global
    average pooling makes any image size work. Parameters: 11,173,962 for 10 classes,
    11,271,432 for 200 classes and 11,681,832 for 1000 classes (the ImageNet network's
    11,689,512 less the 7,680 weights that the smaller stem saves).

    Module names: see :class:`ResNet`; stages ``layer1`` to ``layer4`` of blocks ``0`` and ``1``,
    ``fc``.

    Args:
        input_shape: ``(channels, height, width)`` of one image.
        num_classes: number of outputs (logits).
    """
    return ResNet(input_shape[0], num_classes, (64, 128, 256, 512), (2, 2, 2, 2))
