"""The C kernels of the merges (``merge.c``), built on first use on the CPU.

:func:`txsim_fcm.network.port_admittance` merges subdomains level by level. In PyTorch each
merge is a dozen batched calls (block copies that gather the shared and kept blocks of both
subdomains, a Cholesky factorisation, a triangular solve, a matrix product, additions of the
kept blocks), each of which reads and writes every system of the level again. Two kernels do
the merges while the systems sit in the cache instead, and a third the terminations:

* :func:`leaves_`: the first levels (at most :data:`LEAF_INTERFACE` shared nodes), block by
  block, 4 blocks per vector, from the cells to the blocks' port admittances;
* :func:`merge_`: every later merge, one system at a time, vectorised and blocked in registers,
  with only one half of the symmetric product computed;
* :func:`terminate_`: :func:`txsim_fcm.network.terminate`, array by array, by Cholesky
  factorisations.

All three share a call's work among torch's threads with OpenMP where the compiler has it. The
kernels are compiled by the system's C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``)
into a temporary directory, once per process (about 0.8 s), and loaded with :mod:`ctypes`;
they are built for the machine they run on (``-march=native``, else without). Where no compiler
works, or ``TXSIM_COMPILE=0`` (:data:`txsim_core.compiled.COMPILE_SWITCH`), the solver warns
once (only where compiling failed) and uses the PyTorch operations: the same results to
rounding, 2 to 3x slower.
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import subprocess
import tempfile
import warnings
from importlib import resources
from typing import NamedTuple

import torch

from txsim_core.compiled import compiling_enabled

SOURCE = "merge.c"
"""The kernels' C source, shipped inside the package."""

LEAF_INTERFACE = 8
"""The first merges, while the shared sides have at most this many nodes, are done block by
block by :func:`leaves_` (blocks of up to 8 x 16 cells: at 64 x 64, 4 and 16 were slower)."""

FLAGS = (
    ["-O3", "-march=native", "-funroll-loops", "-fopenmp"],
    ["-O3", "-march=native", "-funroll-loops"],
    ["-O3"],
)
"""Compiler flags, tried in this order (not every compiler has OpenMP, which shares a call's
systems among torch's threads, nor takes -march=native; unrolled loops measured 8 % faster)."""


def _compilers() -> list[str]:
    names = [os.environ["CC"]] if os.environ.get("CC") else []
    names += ["cc", "gcc", "clang"]
    found = [shutil.which(name) for name in names]
    return list(dict.fromkeys(path for path in found if path))


@functools.cache
def _library() -> ctypes.CDLL | None:
    """Compile and load ``merge.c``; None, after one warning, where that fails."""
    source = resources.files("txsim_fcm").joinpath(SOURCE).read_text()
    errors = []
    with tempfile.TemporaryDirectory(prefix="txsim-fcm-", ignore_cleanup_errors=True) as tmp:
        src = os.path.join(tmp, SOURCE)
        lib = os.path.join(tmp, "merge.so")
        with open(src, "w") as f:
            f.write(source)
        for compiler in _compilers():
            for flags in FLAGS:
                cmd = [compiler, *flags, "-shared", "-fPIC", "-o", lib, src, "-lm"]
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if done.returncode == 0:
                    loaded = ctypes.CDLL(lib)
                    pointer, integer, real = ctypes.c_void_p, ctypes.c_long, ctypes.c_double
                    side = [pointer, pointer, integer, integer, integer, integer]
                    merge = loaded.txsim_merge
                    merge.restype = ctypes.c_int
                    merge.argtypes = [*side, *side, integer, pointer, pointer, integer, integer]
                    leaves = loaded.txsim_leaves
                    leaves.restype = ctypes.c_int
                    leaves.argtypes = [
                        *[pointer, *[integer] * 5],
                        *[pointer, integer, real, real, pointer, integer],
                    ]
                    terminate = loaded.txsim_terminate
                    terminate.restype = ctypes.c_int
                    terminate.argtypes = [
                        *[pointer, integer, integer, integer, real, real, integer],
                        *[pointer, pointer, integer],
                    ]
                    return loaded
                errors.append(f"{' '.join(cmd)}: {done.stderr.strip()[-300:]}")
    reason = "; ".join(errors) if errors else "no C compiler found (tried $CC, cc, gcc, clang)"
    warnings.warn(
        f"txsim-fcm could not build its C kernels ({reason}); solving with PyTorch operations "
        "instead: the same results to rounding, 2 to 3x slower. Install a C compiler (e.g. gcc) "
        "to use the kernels, or set TXSIM_COMPILE=0 to skip them without this warning.",
        RuntimeWarning,
        stacklevel=3,
    )
    return None


def available() -> bool:
    """Whether the kernels are on (:data:`~txsim_core.compiled.COMPILE_SWITCH`) and build here."""
    return compiling_enabled() and _library() is not None


def takes(x: torch.Tensor) -> bool:
    """Whether the kernels take tensors like ``x``: float64 on the CPU, and :func:`available`."""
    return x.device.type == "cpu" and x.dtype == torch.float64 and available()


def _check(status: int) -> None:
    """Raise for a kernel's failure status: -1 no memory, -2 a merge too wide for the leaves."""
    if status == -2:
        raise AssertionError("txsim-fcm: the C kernel takes merges of at most 8 shared nodes")
    if status:
        raise MemoryError("txsim-fcm: the C kernel could not allocate its working buffer")


class Side(NamedTuple):
    """One subdomain of a merge: its matrices and where its ports lie on its ring.

    ``matrices`` has shape ``(..., P, P)`` with the last two dimensions contiguous (any strides
    before them); ``offsets`` holds the element offset of each system's matrix from the first.
    The shared side starts at port ``shared`` (mod P); the kept ports are the ``kept`` ports
    from ``kept_start`` (mod P).
    """

    matrices: torch.Tensor
    offsets: torch.Tensor
    shared: int
    kept_start: int
    kept: int


def side(matrices: torch.Tensor, shared: int, kept_start: int, kept: int) -> Side:
    """A :class:`Side` of ``matrices``, with the element offset of each system's matrix."""
    *batch, rows, cols = matrices.shape
    if rows != cols or matrices.stride()[-2:] != (cols, 1):
        raise AssertionError(f"expected contiguous square matrices, got {matrices.shape}")
    offsets = torch.zeros((), dtype=torch.int64)
    for size, stride in zip(batch, matrices.stride()[:-2], strict=True):
        offsets = offsets[..., None] + torch.arange(size, dtype=torch.int64) * stride
    return Side(matrices, offsets.reshape(-1).contiguous(), shared, kept_start, kept)


def merge_(a: Side, b: Side | None, count: int, out: torch.Tensor, info: torch.Tensor) -> None:
    """Merge the subdomains ``a`` and ``b`` along ``count`` shared ports, by the C kernel.

    ``b``'s shared side runs the other way round (its ports ``b.shared + count - 1`` down to
    ``b.shared`` are ``a``'s ``a.shared`` up). With ``K = a.kept + b.kept`` and ``ek`` the
    ``count x K`` shared-to-kept block of both, ``ee`` the sum of their shared blocks::

        out = blockdiag(a's kept block, b's kept block) - ek^T ee^-1 ek

    for every system (see :func:`takes`). Without ``b``, the ``count`` ports from
    ``a.shared`` are eliminated from ``a`` alone (an open side).

    Args:
        a: the first subdomain (its kept ports come first in ``out``).
        b: the second subdomain, or None to eliminate an open side of ``a``.
        count: the number of shared ports.
        out: ``(..., K, K)``, contiguous; written.
        info: int32, one per system: 0, or 1 where the factorisation failed.

    The kernel runs without the GIL, on torch's number of threads where it was built with
    OpenMP and the systems are enough to share.
    """
    kernel = _library().txsim_merge  # type: ignore[union-attr]
    size_a = a.matrices.shape[-1]
    b_args: tuple[int | None, ...] = (None, None, 0, 0, 0, 0)
    if b is not None:
        size_b = b.matrices.shape[-1]
        b_args = (b.matrices.data_ptr(), b.offsets.data_ptr(), size_b, *b[2:])
    a_args = (a.matrices.data_ptr(), a.offsets.data_ptr(), size_a, *a[2:])
    threads = torch.get_num_threads()
    _check(kernel(*a_args, *b_args, count, out.data_ptr(), info.data_ptr(), info.numel(), threads))


def leaves_(
    cells: torch.Tensor,
    block: tuple[int, int],
    program: torch.Tensor,
    g_row: float,
    g_col: float,
    out: torch.Tensor,
) -> None:
    """The port admittances of every ``h x w`` block of cells, by the C kernel.

    Args:
        cells: conductances ``(B, N, M)`` in siemens, float64, contiguous; ``h`` divides N and
            ``w`` divides M.
        block: ``(h, w)``.
        program: int64 ``(merges, 9)``: the merges that grow single cells to blocks (see
            :func:`txsim_fcm.network._small_merges`).
        g_row: conductance of a row-wire segment, in siemens.
        g_col: conductance of a column-wire segment, in siemens.
        out: ``(B, N / h, M / w, P, P)``, contiguous; written in the ring order that the
            merges leave.

    The kernel runs without the GIL, on torch's number of threads where it was built with
    OpenMP and the blocks are enough to share.
    """
    kernel = _library().txsim_leaves  # type: ignore[union-attr]
    batch, rows, cols = cells.shape
    args = (cells.data_ptr(), batch, rows, cols, *block, program.data_ptr(), program.shape[0])
    _check(kernel(*args, g_row, g_col, out.data_ptr(), torch.get_num_threads()))


def terminate_(
    y: torch.Tensor, rows: int, r_source: float, r_sink: float, forward: bool
) -> torch.Tensor:
    """:func:`txsim_fcm.network.terminate` by the C kernel, for contiguous ``y`` (see
    :func:`takes`); raises ``ValueError`` where a system is not positive definite (the caller
    turns it into :class:`~txsim_fcm.network.NetworkError`).

    Args:
        y: terminal admittances ``(B, N + M, N + M)``, float64, contiguous.
        rows: N.
        r_source: driver resistance in ohms (>= 0).
        r_sink: sense resistance in ohms (>= 0).
        forward: rows driven and columns sensed (else the other way round).

    Returns:
        ``(B, N, M)``: forward ``I_col = V @ G``, backward ``I_row = G @ V``.

    The kernel runs without the GIL, on torch's number of threads where it was built with
    OpenMP and the arrays are enough to share.
    """
    kernel = _library().txsim_terminate  # type: ignore[union-attr]
    batch, size = y.shape[0], y.shape[-1]
    out = y.new_empty((batch, rows, size - rows))
    info = torch.empty(batch, dtype=torch.int32)
    args = (y.data_ptr(), batch, rows, size - rows, r_source, r_sink, int(forward))
    _check(kernel(*args, out.data_ptr(), info.data_ptr(), torch.get_num_threads()))
    if bool(info.any()):
        raise ValueError("a terminated system is not positive definite")
    return out
