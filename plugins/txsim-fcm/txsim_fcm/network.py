"""Exact port admittance of a crossbar's wire-and-cell network, by nested dissection.

The network of one array (see ``docs/explanation/circuit.md``): row wires of ``r_row`` per
segment, column wires of ``r_col`` per segment, and cell (i, j) as a conductance ``g[i, j]``
between row node (i, j) and column node (i, j). Its terminals are the N *left terminals* (the
node between ``r_source`` and the first row segment of each row) and the M *bottom terminals*
(the node between the last column segment and ``r_sink``); the far ends of the rows and the top
ends of the columns are open. :func:`port_admittance` returns the exact (N + M) x (N + M)
admittance matrix ``Y`` of that network on its terminals: the currents flowing *into* the network
at the terminals are ``Y @ x`` for terminal voltages ``x``. Both directions of use (rows driven,
or columns driven) are terminations of this one matrix.

Algorithm (nested dissection on the 2-D grid, all arrays and all blocks of a level batched):

* Every cell is a leaf subdomain with four ports: its left terminal (L), its row node (R), its
  column node (T) and its bottom terminal (B); its 4 x 4 admittance holds the row segment on its
  left, the cell and the column segment below it.
* Neighbouring subdomains share the nodes on their common side. Merging two of them adds their
  admittance matrices and eliminates the shared nodes (a Schur complement). Merges alternate
  between horizontal and vertical, so a level of s x s blocks becomes s x 2s, then 2s x 2s.
* The last two merges (the four quadrants of the array) are done block by block: first each
  quadrant on the top or right edge eliminates its open sides (top ends of the columns, right
  ends of the rows), so the largest merges carry only the ports still needed, and the last one
  keeps only the terminals.
* On the CPU the batch is solved in groups of arrays small enough that a level's matrices stay
  in the processor's caches (:data:`CPU_CHUNK_SITES`); on other devices in one group.
* The solve of a group is recorded while it runs (:class:`_Program`, :class:`_Tape`): the
  other groups of the call, and later calls with the same group shape on the kept working
  memory, replay the recorded tensor operations without rebuilding them in Python.
* On the CPU in float64 the merges run in C (:mod:`txsim_fcm.native`, where a C compiler
  builds it): the first levels block by block, the later ones system by system, each while it
  is in the cache; the PyTorch operations described below are the path elsewhere.

Ports are stored in *ring order* (clockwise: L bottom to top, T left to right, R top to bottom,
B right to left), so that the ports one subdomain keeps in a merge are one cyclic interval and
every block copy is a plain slice; the shared side runs the other way round in the second
subdomain, whose copy is reversed on the way. Interfaces have 1 to 4 nodes at the first levels:
there the matrices are stored with the batch dimensions last (the cells ordered so that the two
subdomains of every merge are the two contiguous halves of the batch, :func:`_leaf_order`) and
the few shared nodes are eliminated one at a time, each step one rank-1 update of the kept part,
the first of which writes it from the two subdomains directly (:meth:`_Eliminator.pivots`).
Above that, matrices are stored batch-first and the shared nodes are eliminated with a batched
Cholesky factorisation, a triangular solve and one batched matrix product.

The cost is about 80 (N M)^1.5 flops per array, against (N M)^2 for a dense elimination of the
row-by-row structure; most of it is the batched matrix products of the largest levels. Every
Schur complement of this network is symmetric positive definite (each shared node is joined by a
wire to a node that is kept), so no pivoting is needed and, for finite non-negative cells, every
pivot is positive. Non-finite or negative cells (checked first), or a failed Cholesky
factorisation (checked at the end of each group of arrays), raise :class:`NetworkError`.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable

import torch

from txsim_core.errors import TxsimError
from txsim_fcm import native

Layout = tuple[tuple[str, int], ...]
"""Ports of a subdomain in storage order: (side, count) segments, cyclic (ring order). The
functions of layouts and index ranges below are cached, for the recording of solves."""

SMALL_INTERFACE = 4
"""Interfaces of at most this many nodes are eliminated batch-last with rank-1 updates."""


class NetworkError(TxsimError, RuntimeError):
    """The nodal system could not be factorised (non-finite or negative conductances)."""


class _Arena:
    """Bump allocator over one flat buffer; hands out fresh tensors once the buffer is full.

    Fresh CPU tensors of tens of megabytes cost more in page faults than the arithmetic done on
    them, so every level writes into one of two reused buffers (ping-pong: a level reads the
    other buffer, written by the level before).
    """

    def __init__(self, buf: torch.Tensor) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, shape: tuple[int, ...]) -> torch.Tensor:
        n = math.prod(shape)
        if self.pos + n <= self.buf.numel():
            out = self.buf[self.pos : self.pos + n].view(shape)
            self.pos += n
            return out
        return self.buf.new_empty(shape)


_CACHE: dict[tuple[str, int | None], torch.Tensor] = {}
_PROGRAMS: dict[tuple, _Program] = {}
"""Solves recorded on the kept buffer (see :class:`_Program`), by group shape, dtype and wires."""
_CACHE_LOCK = threading.Lock()

MAX_PROGRAMS = 64
"""Recorded solves kept between calls; the oldest is forgotten first."""


def clear_workspace() -> None:
    """Free the working memory and the recorded solves that :func:`port_admittance` keeps."""
    with _CACHE_LOCK:
        _CACHE.clear()
        _PROGRAMS.clear()


class _Tape:
    """Runs tensor operations and records them, to run them again on the same memory.

    The solve of a group of arrays is a fixed sequence of operations on fixed memory (the two
    arenas), whatever the values. Replaying the recorded calls (functions bound to their tensor
    views) skips the Python work that builds them (layouts, cyclic slices, views), which costs
    about as much as the arithmetic of a group of small arrays. Every recorded operation writes
    into memory that exists before it (``out=`` or in place), so a replay updates the same
    tensors.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., object], tuple, dict]] = []

    def __call__(self, fn: Callable[..., object], *args: object, **kwargs: object) -> None:
        self.calls.append((fn, args, kwargs))
        fn(*args, **kwargs)

    def replay(self) -> None:
        for fn, args, kwargs in self.calls:
            fn(*args, **kwargs)


def _fail() -> None:
    raise NetworkError(
        "Expected a positive definite nodal system, but the factorisation failed: the "
        "conductances must be finite and non-negative and the resistances positive."
    )


def _normalize(layout: Layout) -> Layout:
    out: list[tuple[str, int]] = []
    for name, count in layout:
        if count == 0:
            continue
        if out and out[-1][0] == name:
            out[-1] = (name, out[-1][1] + count)
        else:
            out.append((name, count))
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def _run(layout: Layout, names: str) -> tuple[int, int, int, int]:
    """The one cyclic run of the sides in ``names`` (letters): first and last segment, start,
    length."""
    flags = [name in names for name, _ in layout]
    n = len(layout)
    starts = [sum(c for _, c in layout[:i]) for i in range(n)]
    heads = [i for i in range(n) if flags[i] and not flags[i - 1]]
    if all(flags):
        return 0, n - 1, 0, sum(c for _, c in layout)
    if len(heads) != 1:
        raise AssertionError(f"sides {sorted(names)} are not contiguous in {layout}")
    first = heads[0]
    last, length = first, 0
    while flags[last % n]:
        length += layout[last % n][1]
        last += 1
    return first, (last - 1) % n, starts[first], length


@functools.lru_cache(maxsize=4096)
def _after(layout: Layout, names: str) -> Layout:
    """The segments left when the run ``names`` is removed, in ring order after the run."""
    first, last, _, _ = _run(layout, names)
    n = len(layout)
    kept = []
    i = (last + 1) % n
    while i != first:
        kept.append(layout[i])
        i = (i + 1) % n
    return _normalize(tuple(kept))


@functools.lru_cache(maxsize=4096)
def _pieces(
    start: int, count: int, period: int, flip: bool = False, offset: int = 0
) -> tuple[tuple[slice, slice], ...]:
    """``count`` cyclic indices from ``start`` as (source, destination) slice pairs.

    The destination starts at ``offset``; with ``flip`` it is reversed: destination ``i`` holds
    source ``start + count - 1 - i`` (each piece is then copied flipped).
    """
    out, src, dst = [], start % period, 0
    while dst < count:
        k = min(count - dst, period - src)
        at = offset + (count - dst - k if flip else dst)
        out.append((slice(src, src + k), slice(at, at + k)))
        dst += k
        src = 0
    return tuple(out)


def _cyclic(
    do: _Tape,
    dst: torch.Tensor,
    x: torch.Tensor,
    r0: int,
    c0: int,
    batch_last: bool,
    add: bool = False,
    reverse_rows: bool = False,
) -> torch.Tensor:
    """``dst[i, j] = x[(r0 + i) % P, (c0 + j) % P]`` over the matrix dimensions (or ``+=``).

    With ``reverse_rows`` (a copy, not ``+=``), row ``i`` of ``dst`` takes row
    ``r0 + rows - 1 - i`` instead (a shared side as the subdomain on its other side orders it),
    gathered straight into ``dst``.
    """
    dims = (0, 1) if batch_last else (-2, -1)
    period = x.shape[dims[1]]
    for rs, rd in _pieces(r0, dst.shape[dims[0]], period, reverse_rows):
        for cs, cd in _pieces(c0, dst.shape[dims[1]], period):
            target = dst[rd, cd] if batch_last else dst[..., rd, cd]
            source = x[rs, cs] if batch_last else x[..., rs, cs]
            if reverse_rows:
                index = _backwards(rs.stop - rs.start, x.device)
                do(torch.index_select, source, dims[0], index, out=target)
            else:
                do(torch.Tensor.add_ if add else torch.Tensor.copy_, target, source)
    return dst


def _add_flipped(target: torch.Tensor, source: torch.Tensor, dims: tuple[int, int]) -> None:
    target.add_(torch.flip(source, dims))


def _add_reversed(do: _Tape, dst: torch.Tensor, x: torch.Tensor, r0: int, batch_last: bool) -> None:
    """``dst += J X J``: the cyclic square block ``X`` of ``x`` from ``(r0, r0)``, reversed.

    One flip of both dimensions per piece (2-4x faster than two index_selects for these
    small blocks).
    """
    dims = (0, 1) if batch_last else (-2, -1)
    pieces = _pieces(r0, dst.shape[dims[0]], x.shape[dims[0]], flip=True)
    for rs, rd in pieces:
        for cs, cd in pieces:
            target = dst[rd, cd] if batch_last else dst[..., rd, cd]
            source = x[rs, cs] if batch_last else x[..., rs, cs]
            do(_add_flipped, target, source, dims)


@functools.lru_cache(maxsize=256)
def _backwards(n: int, device: torch.device) -> torch.Tensor:
    return torch.arange(n - 1, -1, -1, device=device)


def _new(arena: _Arena, like: torch.Tensor, rows: int, cols: int, batch_last: bool):
    batch = like.shape[2:] if batch_last else like.shape[:-2]
    shape = (rows, cols, *batch) if batch_last else (*batch, rows, cols)
    return arena.take(tuple(shape))


Diagonal = list[tuple[torch.Tensor, int, int]]
"""Blocks on the diagonal of a kept part: ``(x, r0, size)`` is the cyclic ``size`` x ``size``
block of ``x`` from ``(r0, r0)``; the kept part is zero off these blocks before elimination."""


class _Eliminator:
    """Schur complements of batched symmetric matrices, run through a tape; keeps the status
    of every factorisation for one check per solve."""

    def __init__(self, do: _Tape) -> None:
        self.do = do
        self.infos: list[torch.Tensor] = []

    def pivots(
        self,
        arena: _Arena,
        out: torch.Tensor,
        ek: torch.Tensor,
        ee: torch.Tensor,
        diagonal: Diagonal,
    ) -> torch.Tensor:
        """Batch-last: ``out = diag(blocks) - ek^T ee^-1 ek``, one shared node at a time.

        ``ek`` (E, K, ...) and ``ee`` (E, E, ...) are overwritten. The shared nodes go last
        first; each step updates the remaining shared rows (E x K, small) and then the K x K
        kept part once, as a rank-1 update. The first step writes the kept part from the
        diagonal blocks (``out = block - u v^T``), so the kept part is never assembled.
        """
        do, e = self.do, ee.shape[0]
        for q in range(e - 1, -1, -1):
            pivot = ee[q, q]
            if q:
                ratio = arena.take(tuple(ee[:q, q].shape))
                do(torch.div, ee[:q, q], pivot, out=ratio)
                do(torch.Tensor.addcmul_, ee[:q, :q], ratio[:, None], ee[None, q, :q], value=-1.0)
                do(torch.Tensor.addcmul_, ek[:q], ratio[:, None], ek[None, q], value=-1.0)
            row = ek[q]
            minus = arena.take(tuple(row.shape))
            do(torch.div, row, pivot, out=minus)
            do(torch.Tensor.neg_, minus)
            if q < e - 1:
                do(torch.Tensor.addcmul_, out, minus[:, None], row[None, :])
                continue
            spans, at = [], 0
            for _, _, size in diagonal:
                spans.append(slice(at, at + size))
                at += size
            for (x, r0, size), span in zip(diagonal, spans, strict=True):
                pieces = _pieces(r0, size, x.shape[0], offset=span.start)
                for rs, rd in pieces:
                    for cs, cd in pieces:
                        target = out[rd, cd]
                        do(torch.addcmul, x[rs, cs], minus[rd, None], row[None, cd], out=target)
                for other in spans:
                    if other != span:
                        target = out[span, other]
                        do(torch.mul, minus[span, None], row[None, other], out=target)
        return out

    def cholesky(
        self, arena: _Arena, ek: torch.Tensor, ee: torch.Tensor, out: torch.Tensor
    ) -> torch.Tensor:
        """Batch-first: ``out = -ek^T ee^-1 ek`` (``out`` contiguous); the caller adds the rest."""
        do = self.do
        factor = arena.take(tuple(ee.shape))
        info = torch.empty(ee.shape[:-2], dtype=torch.int32, device=ee.device)
        do(torch.linalg.cholesky_ex, ee, out=(factor, info))
        self.infos.append(info.view(-1))
        z = arena.take(tuple(ek.shape))
        do(torch.linalg.solve_triangular, factor, ek, upper=False, out=z)
        k, e = out.shape[-1], ee.shape[-1]
        z3 = z.view(-1, e, k)
        out3 = out.view(-1, k, k)
        do(torch.baddbmm, out3, z3.mT, z3, beta=0.0, alpha=-1.0, out=out3)
        return out

    def merge(
        self, a: native.Side, b: native.Side | None, count: int, out: torch.Tensor
    ) -> torch.Tensor:
        """Batch-first, by the C kernel (:func:`txsim_fcm.native.merge_`): the whole merge of
        ``a`` and ``b`` (or the elimination of an open side of ``a``) into ``out``."""
        info = torch.empty(out.shape[:-2], dtype=torch.int32).view(-1)
        self.do(native.merge_, a, b, count, out, info)
        self.infos.append(info)
        return out

    def check(self) -> None:
        """Raise :class:`NetworkError` if a factorisation of the last solve failed."""
        if self.infos and bool(torch.cat(self.infos).any()):
            _fail()


def _eliminate(
    arena: _Arena,
    y: torch.Tensor,
    layout: Layout,
    names: str,
    batch_last: bool,
    elim: _Eliminator,
) -> tuple[torch.Tensor, Layout]:
    """Eliminate the ports of the sides ``names`` (open ends) from every subdomain."""
    period = sum(c for _, c in layout)
    _, _, start, e = _run(layout, names)
    keep = period - e
    k0 = (start + e) % period
    if not batch_last and native.takes(y):
        kk = _new(arena, y, keep, keep, False)
        return elim.merge(native.side(y, start, k0, keep), None, e, kk), _after(layout, names)
    do = elim.do
    ek = _cyclic(do, _new(arena, y, e, keep, batch_last), y, start, k0, batch_last)
    ee = _cyclic(do, _new(arena, y, e, e, batch_last), y, start, start, batch_last)
    kk = _new(arena, y, keep, keep, batch_last)
    if batch_last:
        return elim.pivots(arena, kk, ek, ee, [(y, k0, keep)]), _after(layout, names)
    elim.cholesky(arena, ek, ee, kk)
    return _cyclic(do, kk, y, k0, k0, False, add=True), _after(layout, names)


def _join(
    arena: _Arena,
    a: torch.Tensor,
    lay_a: Layout,
    side_a: str,
    b: torch.Tensor,
    lay_b: Layout,
    side_b: str,
    batch_last: bool,
    elim: _Eliminator,
) -> tuple[torch.Tensor, Layout]:
    """Merge subdomains ``a`` and ``b`` along their shared sides and eliminate the shared nodes.

    The shared side runs in opposite ring directions in ``a`` and ``b``, so ``b``'s copy is
    flipped. The result keeps ``a``'s remaining ports, then ``b``'s, each in ring order.
    """
    pa, pb = sum(c for _, c in lay_a), sum(c for _, c in lay_b)
    _, _, sa, e = _run(lay_a, side_a)
    _, _, sb, eb = _run(lay_b, side_b)
    if e != eb:
        raise AssertionError(f"shared sides differ in size: {e} and {eb}")
    ka, kb = pa - e, pb - e
    a0, b0 = (sa + e) % pa, (sb + e) % pb
    keep = ka + kb
    layout = _normalize(_after(lay_a, side_a) + _after(lay_b, side_b))
    if not batch_last and native.takes(a):
        kk = _new(arena, a, keep, keep, False)
        sides = native.side(a, sa, a0, ka), native.side(b, sb, b0, kb)
        return elim.merge(*sides, e, kk), layout
    do = elim.do
    ek = _new(arena, a, e, keep, batch_last)
    ek_a, ek_b = (ek[:, :ka], ek[:, ka:]) if batch_last else (ek[..., :ka], ek[..., ka:])
    _cyclic(do, ek_a, a, sa, a0, batch_last)
    _cyclic(do, ek_b, b, sb, b0, batch_last, reverse_rows=True)
    ee = _cyclic(do, _new(arena, a, e, e, batch_last), a, sa, sa, batch_last)
    _add_reversed(do, ee, b, sb, batch_last)
    kk = _new(arena, a, keep, keep, batch_last)
    if batch_last:
        return elim.pivots(arena, kk, ek, ee, [(a, a0, ka), (b, b0, kb)]), layout
    elim.cholesky(arena, ek, ee, kk)
    _cyclic(do, kk[..., :ka, :ka], a, a0, a0, False, add=True)
    _cyclic(do, kk[..., ka:, ka:], b, b0, b0, False, add=True)
    return kk, layout


LEAF_LAYOUT: Layout = (("L", 1), ("T", 1), ("R", 1), ("B", 1))
"""The ring of a cell: its left terminal, column node, row node and bottom terminal. Its 4 x 4
admittance holds the row segment on its left, the cell and the column segment below it."""


@functools.lru_cache(maxsize=64)
def _small_merges(merges: tuple[bool, ...]) -> tuple[torch.Tensor, Layout]:
    """The merges that grow cells to blocks, as the rows of the C kernel's program, and the
    layout of the blocks (see :func:`txsim_fcm.native.leaves_`): each row holds horizontal,
    shared nodes and ports of either subdomain, then where the shared and kept ports of the
    first and of the second subdomain lie on their rings, as :func:`_join` places them."""
    rows, layout = [], LEAF_LAYOUT
    for horizontal in merges:
        side_a, side_b = ("R", "L") if horizontal else ("B", "T")
        ports = sum(count for _, count in layout)
        _, _, sa, e = _run(layout, side_a)
        _, _, sb, _ = _run(layout, side_b)
        kept = ports - e
        rows.append(
            (int(horizontal), e, ports, sa, (sa + e) % ports, kept, sb, (sb + e) % ports, kept)
        )
        layout = _normalize(_after(layout, side_a) + _after(layout, side_b))
    return torch.tensor(rows, dtype=torch.int64), layout


def merge_plan(rows: int, cols: int) -> list[bool]:
    """Merge directions (True: horizontal) that grow 1 x 1 blocks to ``rows`` x ``cols``.

    Both sizes must be powers of two; the blocks are kept as square as possible.
    """
    plan, h, w = [], 1, 1
    while h < rows or w < cols:
        horizontal = w < cols and (w <= h or h >= rows)
        plan.append(horizontal)
        if horizontal:
            w *= 2
        else:
            h *= 2
    return plan


TAIL_MERGES = 2
"""The last merges are done block by block, after the open sides of each block are eliminated
(fewer ports in the largest merges than eliminating them just before the last merge)."""

CPU_CHUNK_SITES = 2**14
"""On the CPU, arrays are solved in groups of about this many cells per torch thread, so that the
matrices of a level stay in the processor's caches (a level holds about 17 numbers per cell;
measured 1.4x faster than whole batches of 64x64 arrays on an AMD EPYC with 1 MiB L2 per core)."""

ARENA_ELEMENTS_PER_SITE = 40
"""Elements per cell that one arena holds; the largest level uses 27 for square arrays and 33
for 32x16 (measured for 1x1 to 256x256; thin arrays such as 4x64 need more). A level that needs
more gets fresh tensors, so this only affects speed."""


def _buffers(like: torch.Tensor, size: int, keep: bool) -> tuple[torch.Tensor, bool]:
    """A flat buffer of at least ``size`` elements: the kept CPU one if free, else a fresh one.

    Replacing the kept buffer forgets the programs recorded on it.
    """
    if not keep or like.device.type != "cpu" or not _CACHE_LOCK.acquire(blocking=False):
        return like.new_empty(size), False
    key = (like.device.type, like.device.index)
    buf = _CACHE.get(key)
    if buf is None or buf.numel() < size or buf.dtype != like.dtype:
        _CACHE.pop(key, None)
        _PROGRAMS.clear()
        buf = like.new_empty(size)
        _CACHE[key] = buf
    return buf, True


def port_admittance(
    g: torch.Tensor, r_row: float, r_col: float, keep_workspace: bool = True
) -> torch.Tensor:
    """Terminal admittance matrix of a batch of arrays.

    Args:
        g: conductances of shape ``(B, N, M)`` in siemens, float64; N and M powers of two.
        r_row: row-wire resistance per segment in ohms (> 0).
        r_col: column-wire resistance per segment in ohms (> 0).
        keep_workspace: on the CPU, keep the working memory and the recorded solves for the
            next call (one buffer per process, shared by all callers; a concurrent caller gets
            fresh memory instead).

    Returns:
        ``Y`` of shape ``(B, N + M, N + M)``: ports ``0..N-1`` are the left terminals of rows
        ``0..N-1``, ports ``N..N+M-1`` the bottom terminals of columns ``0..M-1``.
    """
    batch, rows, cols = g.shape
    # With finite, non-negative cells every pivot is positive (each node has a wire to a kept
    # node), so the rank-1 steps need no check of their own; the Cholesky steps report theirs.
    if g.numel():
        low, high = torch.aminmax(g)  # NaN propagates to both
        if not (bool(low >= 0) and bool(high < math.inf)):
            _fail()
    plan = merge_plan(rows, cols)
    chunk = max(1, batch)
    if g.device.type == "cpu":
        sites = CPU_CHUNK_SITES * torch.get_num_threads()
        chunk = min(chunk, max(1, sites // (rows * cols)))
    size = ARENA_ELEMENTS_PER_SITE * chunk * rows * cols
    out = g.new_empty((batch, rows + cols, rows + cols))
    buf, locked = _buffers(g, 2 * size, keep_workspace)
    try:
        arenas = (_Arena(buf[:size]), _Arena(buf[size:]))
        programs = _PROGRAMS if locked else {}
        for start in range(0, batch, chunk):
            group = g[start : start + chunk]
            key = (tuple(group.shape), g.dtype, r_row, r_col, native.takes(group))
            program = programs.get(key)
            if program is None:
                program = _Program(group, r_row, r_col, plan, arenas)
                if len(programs) >= MAX_PROGRAMS:
                    programs.pop(next(iter(programs)))
                programs[key] = program
            else:
                program.run(group)
            program.write(out[start : start + chunk])
    finally:
        if locked:
            _CACHE_LOCK.release()
    return out


def _pair(y: torch.Tensor, horizontal: bool, batch_last: bool):
    if batch_last:  # (P, P, 2 * n): the pairs are the two halves, see _leaf_order
        halves = y.view(*y.shape[:2], 2, -1)
        return halves[:, :, 0], halves[:, :, 1]
    return (y[:, :, 0::2], y[:, :, 1::2]) if horizontal else (y[:, 0::2], y[:, 1::2])


def _leaf_order(g: torch.Tensor, merges: list[bool]) -> torch.Tensor:
    """``g`` (B, N, M) with its cells reordered for the batch-last ``merges``.

    The cells are ordered by (bit of the first merge, bit of the second, ..., array, row block,
    column block), where a horizontal merge's bit is the next lowest bit of the column index
    and a vertical merge's the next lowest of the row index. So at every batch-last level the
    two subdomains of each pair lie in the two contiguous halves of the blocks (the innermost
    dimension is read with stride 1, twice as fast as interleaved pairs), and after the last
    batch-last merge the blocks are in plain (array, row, column) order.
    """
    batch, rows, cols = g.shape
    kc = sum(merges)
    kr = len(merges) - kc
    # (array, row block, row bits high to low, column block, column bits high to low)
    bits = g.view(batch, rows >> kr, *[2] * kr, cols >> kc, *[2] * kc)
    order, nh, nv = [], 0, 0
    for horizontal in merges:
        if horizontal:
            order.append(3 + kr + (kc - 1 - nh))
            nh += 1
        else:
            order.append(2 + (kr - 1 - nv))
            nv += 1
    return bits.permute(*order, 0, 1, 2 + kr)


class _Program:
    """The solve of one group of arrays, recorded on a :class:`_Tape` while it runs.

    Building it solves the group ``g``; :meth:`run` solves another group of the same shape by
    replaying the tape, and :meth:`write` puts the last result into the caller's tensor. A
    program only reads memory that it wrote earlier in the same solve, so it stays valid
    whatever other programs do on the same arenas in between.
    """

    def __init__(
        self,
        g: torch.Tensor,
        r_row: float,
        r_col: float,
        plan: list[bool],
        arenas: tuple[_Arena, _Arena],
    ) -> None:
        batch, rows, cols = g.shape
        tail = min(TAIL_MERGES, len(plan))
        # The first merges, while the shared sides are small, grow the cells to blocks: on the
        # CPU in float64 the C kernel does them block by block up to native.LEAF_INTERFACE
        # shared nodes (where the merges after them run batch-first), otherwise PyTorch does
        # them with the batch dimensions last up to SMALL_INTERFACE. The others run batch-first.
        native_leaves = max(rows, cols) > SMALL_INTERFACE and native.takes(g)
        limit = native.LEAF_INTERFACE if native_leaves else SMALL_INTERFACE
        small, h, w = 0, 1, 1
        for horizontal in plan[: len(plan) - tail]:
            if (h if horizontal else w) > limit:
                break
            small += 1
            h, w = (h, 2 * w) if horizontal else (2 * h, w)
        native_leaves = native_leaves and small > 0
        self.batch_last_merges = [] if native_leaves else plan[:small]
        self.tape = do = _Tape()
        elim = self.elim = _Eliminator(do)
        arenas[0].pos = 0
        ordered = _leaf_order(g, self.batch_last_merges)
        self.cells = arenas[0].take(tuple(ordered.shape)).copy_(ordered)
        turn = 1

        def next_arena() -> _Arena:
            nonlocal turn
            arena = arenas[turn % 2]
            arena.pos = 0
            turn += 1
            return arena

        g_r, g_c = 1.0 / r_row, 1.0 / r_col
        if native_leaves:
            program, layout = _small_merges(tuple(plan[:small]))
            ports = sum(count for _, count in layout)
            y = next_arena().take((batch, rows // h, cols // w, ports, ports))
            do(native.leaves_, self.cells, (h, w), program, g_r, g_c, y)
            batch_last = False
            merges = plan[small : len(plan) - tail]
        else:
            y, layout = self._leaves(do, arenas[0], g_r, g_c), LEAF_LAYOUT
            batch_last = True
            h = w = 1
            merges = plan[: len(plan) - tail]

        def to_batch_first(x: torch.Tensor) -> torch.Tensor:
            # One 2-D transpose of the contiguous (ports^2, blocks) matrix: torch copies those
            # in cache-sized tiles, about 4x faster than the same permutation as a 5-D view.
            ports = x.shape[0]
            out = next_arena().take((batch, rows // h, cols // w, ports, ports))
            do(torch.Tensor.copy_, out.view(-1, ports * ports), x.view(ports * ports, -1).t())
            return out

        for horizontal in merges:
            if batch_last and (h if horizontal else w) > SMALL_INTERFACE:
                y, batch_last = to_batch_first(y), False
            a, b = _pair(y, horizontal, batch_last)
            sides = ("R", "L") if horizontal else ("B", "T")
            arena = next_arena()
            y, layout = _join(arena, a, layout, sides[0], b, layout, sides[1], batch_last, elim)
            h, w = (h, 2 * w) if horizontal else (2 * h, w)
        # The last merges, block by block: first the open sides (top row, right column) go.
        # Their interfaces have up to max(rows, cols) nodes.
        if batch_last and max(rows, cols) > SMALL_INTERFACE:
            y, batch_last = to_batch_first(y), False
        nr, nc = rows // h, cols // w
        if batch_last:
            y = y.view(*y.shape[:2], batch, nr, nc)
        arena = next_arena()
        blocks: dict[tuple[int, int], tuple[torch.Tensor, Layout]] = {}
        for r in range(nr):
            for c in range(nc):
                x = y[:, :, :, r : r + 1, c : c + 1] if batch_last else y[:, r : r + 1, c : c + 1]
                names = ("T" if r == 0 else "") + ("R" if c == nc - 1 else "")
                blocks[r, c] = (
                    _eliminate(arena, x, layout, names, batch_last, elim) if names else (x, layout)
                )
        for step, horizontal in enumerate(plan[len(plan) - tail :]):
            if step:
                arena = next_arena()
            sides = ("R", "L") if horizontal else ("B", "T")
            nr, nc = (nr, nc // 2) if horizontal else (nr // 2, nc)
            merged = {}
            for r in range(nr):
                for c in range(nc):
                    x, lay_x = blocks[(r, 2 * c) if horizontal else (2 * r, c)]
                    z, lay_z = blocks[(r, 2 * c + 1) if horizontal else (2 * r + 1, c)]
                    merged[r, c] = _join(
                        arena, x, lay_x, sides[0], z, lay_z, sides[1], batch_last, elim
                    )
            blocks = merged
        y, layout = blocks[0, 0]
        self.result = y.permute(2, 3, 4, 0, 1) if batch_last else y
        # The ring now holds L (bottom to top) and B (right to left), nothing else: read
        # backwards from the port just before B's first, it gives L top to bottom, then B left
        # to right. So out[i, j] = y[(c - i) % P, (c - j) % P]: the ring, cut after port c.
        if {name for name, _ in layout} != {"L", "B"}:
            raise AssertionError(f"expected only terminals left, but got {layout}")
        self.cut = _run(layout, "B")[2] or rows + cols
        elim.check()

    def _leaves(self, do: _Tape, arena: _Arena, g_r: float, g_c: float) -> torch.Tensor:
        """The 4 x 4 admittances of the cells (ring :data:`LEAF_LAYOUT`), batch-last."""
        cells = self.cells.view(-1)
        y = arena.take((4, 4, cells.numel()))
        do(torch.Tensor.zero_, y)
        wires = ((0, 0, g_r), (0, 2, -g_r), (2, 0, -g_r), (3, 3, g_c), (1, 3, -g_c), (3, 1, -g_c))
        for i, j, value in wires:
            do(torch.Tensor.fill_, y[i, j], value)
        do(torch.add, cells, g_r, out=y[2, 2])
        do(torch.neg, cells, out=y[2, 1])
        do(torch.neg, cells, out=y[1, 2])
        do(torch.add, cells, g_c, out=y[1, 1])
        return y

    def run(self, g: torch.Tensor) -> None:
        """Solve the group ``g`` (the shape the program was built for)."""
        self.cells.copy_(_leaf_order(g, self.batch_last_merges))
        self.tape.replay()
        self.elim.check()

    def write(self, out: torch.Tensor) -> None:
        """The last solve's admittance matrices, terminals in order, into ``out`` (B, P, P).

        The ring cut after port c, flipped piece by piece (a flip costs about a copy; an
        index_select along the last dimension ten times more).
        """
        period = out.shape[-1]
        y = self.result.reshape(out.shape)
        spans = [span for span in ((0, self.cut), (self.cut, period)) if span[0] < span[1]]
        for r0, r1 in spans:
            for c0, c1 in spans:
                out[:, r0:r1, c0:c1] = torch.flip(y[:, r0:r1, c0:c1], (-2, -1))


def terminate(
    y: torch.Tensor, rows: int, r_source: float, r_sink: float, direction: str
) -> torch.Tensor:
    """Effective conductances of terminated arrays, from their terminal admittance.

    Forward: row terminals driven by ``V`` through ``r_source``, column terminals sensed through
    ``r_sink``; returns ``G`` with ``I_col = V @ G``. Backward: column terminals driven, row
    terminals sensed; returns ``G`` with ``I_row = G @ V``. With ``x`` the driven terminals'
    voltages and ``I`` the sensed currents, KCL at the terminals gives::

        (1 + r_source Y_dd) x + r_source r_sink Y_ds I = V
        Y_sd x + (1 + r_sink Y_ss) I = 0

    which stays well posed for ``r_source = 0`` or ``r_sink = 0``. Both systems are symmetric
    positive definite; on the CPU in float64 the C kernel of :mod:`txsim_fcm.native` solves
    them by Cholesky factorisations, array by array in the cache, elsewhere two batched LU
    solves do.
    """
    if native.takes(y) and y.is_contiguous():
        try:
            return native.terminate_(y, rows, r_source, r_sink, direction == "forward")
        except ValueError:
            _fail()
    y_ll, y_lb = y[..., :rows, :rows], y[..., :rows, rows:]
    y_bl, y_bb = y[..., rows:, :rows], y[..., rows:, rows:]
    if direction == "forward":
        y_dd, y_ds, y_sd, y_ss = y_ll, y_lb, y_bl, y_bb
    else:
        y_dd, y_ds, y_sd, y_ss = y_bb, y_bl, y_lb, y_ll
    eye_s = torch.eye(y_ss.shape[-1], dtype=y.dtype, device=y.device)
    eye_d = torch.eye(y_dd.shape[-1], dtype=y.dtype, device=y.device)
    h = torch.linalg.solve(eye_s + r_sink * y_ss, y_sd)  # sensed currents per driven voltage
    m = eye_d + r_source * (y_dd - r_sink * (y_ds @ h))
    t = -torch.linalg.solve(m.mT, h.mT)  # (driven, sensed): I_s = t^T V
    return t if direction == "forward" else t.mT
