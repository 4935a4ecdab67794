"""The configurations and networks that ``txsim bench`` measures.

Every configuration is a crossbar dict as :func:`txsim_core.convert` takes it (``None``: the native
network, plain PyTorch). The paper's system is :data:`~txsim_core.crossbar.config.PRESETS`
``["paper"]`` (64x64 arrays, ReRAM with 2-bit cells, 8-bit weights, a 1-bit DAC streaming 8-bit
inputs and errors, 8-bit SAR ADCs, the update of the paper's equation (1)); the configurations
named ``paper-*`` differ from it only where their description says.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import attrs

from txsim_core.crossbar.config import PRESETS
from txsim_core.errors import ConfigError


def _paper(**changes: Any) -> dict[str, Any]:
    """The paper preset with some keys of its ``crossbar`` table replaced."""
    config = copy.deepcopy(PRESETS["paper"])
    config["crossbar"].update(changes)
    return config


@attrs.frozen
class BenchConfig:
    """One measured configuration.

    Args:
        name: the name on the command line and in the output.
        crossbar: the configuration for :func:`txsim_core.convert`; None for native PyTorch.
        description: what it is, one line.
        slow: whether the network's default for slow configurations (the analog path of
            every array, slice and pass) applies: fewer batches on ResNet-20.
        framework: ``"txsim"``, or ``"aihwkit"`` for IBM's simulator.
    """

    name: str
    crossbar: dict[str, Any] | None
    description: str
    slow: bool = False
    framework: str = "txsim"


CONFIGS: dict[str, BenchConfig] = {
    c.name: c
    for c in (
        BenchConfig("native", None, "plain PyTorch (torch.optim.SGD)"),
        BenchConfig("ideal", copy.deepcopy(PRESETS["ideal"]), "preset 'ideal' (CrossbarSGD)"),
        BenchConfig(
            "paper-ideal-converters",
            _paper(
                dac={"name": "ideal"},
                adc={"name": "ideal"},
                input_bits=None,
                error_bits=None,
            ),
            "paper system, ideal DAC and ADC, full-precision inputs and errors (fcm)",
            slow=True,
        ),
        BenchConfig(
            "paper-ideal-solver",
            _paper(solver={"name": "ideal"}),
            "paper system with the ideal solver (no circuit model)",
            slow=True,
        ),
        BenchConfig(
            "paper-aam", _paper(solver={"name": "aam"}), "paper system, aam every minibatch", True
        ),
        BenchConfig(
            "paper-fcm-l10",
            _paper(solver={"name": "fcm", "refresh_every": 10}),
            "paper system, fcm every 10 minibatches (interpolated in between)",
            slow=True,
        ),
        BenchConfig(
            "paper-fcm", _paper(), "paper system, fcm every minibatch (preset 'paper')", True
        ),
        BenchConfig(
            "aihwkit",
            None,
            "IBM aihwkit: SingleRPUConfig(device=SoftBoundsDevice()) + AnalogSGD",
            slow=True,
            framework="aihwkit",
        ),
        BenchConfig(
            "aihwkit-equivalent",
            {
                "crossbar": {
                    "rows": 512,
                    "cols": 512,
                    "weight_bits": None,
                    "input_bits": 7,
                    "error_bits": 7,
                    "device": {"name": "reram", "cell_bits": None},
                    "dac": {"name": "multibit", "bits": 7, "polarity": "bipolar"},
                    "adc": {"name": "uniform", "bits": 9},
                    "update": {"name": "reram", "nonlinearity": 0.5, "write_noise": 1.0},
                }
            },
            "txsim closest to 'aihwkit': one device per weight in tiles of 512x512 (aihwkit's "
            "default largest tile), 7-bit bipolar DAC, 9-bit ADC, non-linear noisy update",
            slow=True,
        ),
    )
}
"""Every configuration, in the order they are measured and reported."""


@attrs.frozen
class BenchNetwork:
    """A network and the data it is trained on.

    Args:
        name: the zoo name (:func:`txsim_core.zoo.build_network`).
        data: ``"mnist-5k"`` (the bundled digits) or ``"random"`` (normal inputs, uniform labels).
        input_shape: ``(channels, height, width)``.
        num_classes: classes.
        train_size: training samples of one epoch (for random data, the data set it stands for).
        description: the data in words.
        batches: timed batches of each configuration by default: ``(fast, slow)``; None: an epoch.
        warmup: untimed batches before the timed ones.
    """

    name: str
    data: str
    input_shape: tuple[int, int, int]
    num_classes: int
    train_size: int
    description: str
    batches: tuple[int | None, int | None]
    warmup: int

    def batches_per_epoch(self, batch_size: int) -> int:
        """Minibatches in one epoch (the last one may be partial)."""
        return math.ceil(self.train_size / batch_size)


NETWORKS: dict[str, BenchNetwork] = {
    "lenet5": BenchNetwork(
        "lenet5",
        "mnist-5k",
        (1, 28, 28),
        10,
        4000,
        "LeNet-5 on the bundled MNIST subset (4,000 training digits)",
        batches=(None, None),
        warmup=2,
    ),
    "resnet20": BenchNetwork(
        "resnet20",
        "random",
        (3, 32, 32),
        10,
        50000,
        "ResNet-20 on random CIFAR-sized inputs (3x32x32, 10 classes; an epoch of CIFAR-10's "
        "50,000 images)",
        batches=(8, 2),
        warmup=1,
    ),
}
"""The networks: LeNet-5 always, ResNet-20 unless ``--quick``."""


def _check_names(names: list[str] | tuple[str, ...], known: dict[str, Any], what: str) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"Expected {what} among {', '.join(repr(k) for k in known)}, but got "
            f"{', '.join(repr(u) for u in unknown)}."
        )


def select_configs(names: list[str] | tuple[str, ...] | None) -> list[BenchConfig]:
    """The configurations of ``names`` in reporting order (all of them for None).

    Raises:
        ConfigError: for an unknown name, listing the valid ones.
    """
    if names is None:
        return list(CONFIGS.values())
    _check_names(names, CONFIGS, "benchmark configurations")
    return [c for c in CONFIGS.values() if c.name in names]


def select_networks(names: list[str] | tuple[str, ...]) -> list[BenchNetwork]:
    """The networks of ``names`` in reporting order.

    Raises:
        ConfigError: for an unknown name, listing the valid ones.
    """
    _check_names(names, NETWORKS, "benchmark networks")
    return [n for n in NETWORKS.values() if n.name in names]
