"""Validation of network arguments and the feature-map arithmetic the builders share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from txsim_core.errors import ConfigError


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_input_shape(value: Any) -> tuple[int, int, int]:
    """``value`` as a ``(channels, height, width)`` tuple of three positive integers."""
    if (
        isinstance(value, str)
        or not isinstance(value, Sequence)
        or len(value) != 3
        or not all(_is_int(v) and v > 0 for v in value)
    ):
        raise ConfigError(
            "Expected `input_shape` to be three positive integers (channels, height, width), "
            f"but got {value!r}."
        )
    return (int(value[0]), int(value[1]), int(value[2]))


def check_num_classes(value: Any) -> int:
    """``value`` as a number of classes (an integer >= 2)."""
    if not _is_int(value) or value < 2:
        raise ConfigError(f"Expected `num_classes` to be an integer >= 2, but got {value!r}.")
    return int(value)


def check_positive_int(value: Any, what: str) -> int:
    """``value`` as a positive integer; ``what`` names it in the message."""
    if not _is_int(value) or value < 1:
        raise ConfigError(f"Expected `{what}` to be a positive integer, but got {value!r}.")
    return int(value)


def check_widths(value: Any, what: str) -> tuple[int, ...]:
    """``value`` (a list or tuple, possibly empty) as a tuple of positive integers."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(
            f"Expected `{what}` to be a list of positive integers, but got {value!r}."
        )
    if not all(_is_int(v) and v > 0 for v in value):
        raise ConfigError(
            f"Expected `{what}` to be a list of positive integers, but got {list(value)!r}."
        )
    return tuple(int(v) for v in value)


def check_dropout(value: Any, what: str = "dropout") -> float:
    """``value`` as a dropout probability in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ConfigError(f"Expected `{what}` to be a number in [0, 1), but got {value!r}.")
    return float(value)


def conv_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """The output length of a convolution (or floor-mode pooling) along one dimension."""
    return (size + 2 * padding - kernel) // stride + 1
