"""Element-wise kernels that ``torch.compile`` fuses into one loop on the CPU.

A chain of element-wise PyTorch operations reads and writes its tensor once per operation; on the
CPU, converting the currents of a training step (divide by the LSB, round, saturate, restore the
sign, multiply by the LSB) is such a chain, and the passes over memory, not the arithmetic, set
its time. :class:`FusedKernel` compiles a function of such operations with ``torch.compile``
(TorchInductor's C++ backend, vectorized), so that each value is read once and written once.

The compiled kernel computes what its eager operations compute, operation for operation in the
same dtype, so the results are bit-identical (the tests check each kernel against its eager
twin). Where a kernel cannot be compiled (no C++ compiler, an unsupported platform), it warns once
and its callers take their eager path: the same results, slower.

Environment:
    ``TXSIM_COMPILE``: ``1`` (default) compiles the fused kernels on the CPU; ``0`` never
    compiles (eager operations only, e.g. while debugging, or to skip the few seconds the first
    compilation of a process takes; Inductor caches compiled kernels on disk, so later processes
    load them in about a second). The same switch governs the C kernel of the ``fcm`` solver
    (``txsim_fcm.native``).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import Any

import torch

from txsim_core.errors import ConfigError

__all__ = [
    "COMPILE_SWITCH",
    "FUSED_DTYPES",
    "FUSED_MIN_VALUES",
    "FusedKernel",
    "compiler_works",
    "compiling_enabled",
    "flat_alias",
]

COMPILE_SWITCH = "TXSIM_COMPILE"
"""The environment variable that turns the fused kernels on (``1``, default) or off (``0``)."""

FUSED_DTYPES = (torch.float32, torch.float64)
"""The dtypes the fused kernels take; other dtypes take the eager path."""

FUSED_MIN_VALUES = 1 << 14
"""The fewest values a fused kernel takes: below, the eager operations cost no more than the call
of a compiled kernel, and a process that converts only a few values never compiles."""


def compiling_enabled() -> bool:
    """Whether :data:`COMPILE_SWITCH` allows compiled kernels (read on every call)."""
    value = os.environ.get(COMPILE_SWITCH, "1").strip()
    if value not in ("0", "1"):
        raise ConfigError(
            f"Expected the environment variable {COMPILE_SWITCH} to be '0' (never compile the "
            f"fused kernels) or '1' (compile them on the CPU), but got {value!r}."
        )
    return value == "1"


def flat_alias(tensor: torch.Tensor) -> torch.Tensor:
    """The memory of a contiguous tensor as a flat tensor that shares it but is not a view.

    ``torch.compile`` guards on the sizes of a view's base and compiles anew for each pattern
    of sizes equal to 1 in it; a flat alias without a base keeps one compilation for every
    shape. Writes through the alias change ``tensor``.
    """
    if not tensor.is_contiguous():
        raise ValueError(f"Expected a contiguous tensor, but got strides {tensor.stride()}.")
    alias = torch.empty(0, dtype=tensor.dtype, device=tensor.device)
    with torch.no_grad():
        return alias.set_(
            tensor.untyped_storage(), tensor.storage_offset(), (tensor.numel(),), (1,)
        )


class FusedKernel:
    """An element-wise function, compiled on first use into one fused loop for CPU tensors.

    The function writes its result into its first argument (in place) and returns nothing. It is
    compiled with ``fullgraph=True``, so a function that cannot be compiled whole fails before it
    writes anything, and with dynamic shapes: one compilation per dtype serves every size, as
    long as the caller passes the same kind of arguments (e.g. flat tensors from
    :func:`flat_alias`: ``torch.compile`` specializes sizes of 0 and 1, and at most 8
    compilations of a function are kept).

    Args:
        function: the element-wise function, built from PyTorch operations only.
        what: what it computes, for the warning when it cannot be compiled.
    """

    def __init__(self, function: Callable[..., None], what: str) -> None:
        self._function = function
        self._what = what
        self._compiled: Callable[..., None] | None = None
        self._failure: str | None = None

    @property
    def function(self) -> Callable[..., None]:
        """The function itself, to run its operations one by one (the eager path)."""
        return self._function

    def takes(self, tensor: torch.Tensor) -> bool:
        """Whether the compiled kernel should process ``tensor``: a contiguous CPU tensor of
        float32 or float64 with at least :data:`FUSED_MIN_VALUES` values and no autograd
        history, compiling allowed, no earlier compilation failed, and no
        ``TorchDispatchMode`` active (one that watches the operations, as a profiler or a test
        does, sees them one by one)."""
        return (
            tensor.device.type == "cpu"
            and tensor.dtype in FUSED_DTYPES
            and tensor.numel() >= FUSED_MIN_VALUES
            and tensor.is_contiguous()
            and not tensor.requires_grad
            and self._failure is None
            and torch._C._len_torch_dispatch_stack() == 0
            and compiling_enabled()
        )

    def __call__(self, *args: Any) -> bool:
        """Run the compiled kernel (compiling it first where these arguments' dtypes or kinds of
        shape are new).

        Returns:
            True when it ran. False when it could not be compiled (nothing has been written
            then): a warning says why, and from then on :meth:`takes` is False, so the caller
            takes its eager path.
        """
        if self._compiled is None:
            self._compiled = torch.compile(self._function, fullgraph=True, dynamic=True)
        try:
            with torch.no_grad():
                self._compiled(*args)
        except Exception as exc:  # a missing C++ compiler, an unsupported platform, ...
            message = str(exc).strip()
            reason = message.splitlines()[0] if message else ""
            self._failure = f"{type(exc).__name__}: {reason}"[:300]
            warnings.warn(
                f"txsim could not compile its fused {self._what} with torch.compile "
                f"({self._failure}); it runs the unfused PyTorch operations instead (the same "
                f"results, slower). Set {COMPILE_SWITCH}=0 to skip the attempt.",
                RuntimeWarning,
                stacklevel=2,
            )
            return False
        return True


def _add_one(x: torch.Tensor) -> None:
    """The kernel :func:`compiler_works` tries."""
    x.add_(1)


@functools.lru_cache(maxsize=1)
def compiler_works() -> bool:
    """Whether ``torch.compile`` builds fused kernels on this machine (tried once per process on
    a tiny kernel, quietly; needs a C++ compiler and Python's headers). For tests and
    diagnostics: the kernels themselves fall back on their own."""
    kernel = FusedKernel(_add_one, "probe")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return kernel(torch.zeros(FUSED_MIN_VALUES))
