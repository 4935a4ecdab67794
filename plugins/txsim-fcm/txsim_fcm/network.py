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

Ports are stored in *ring order* (clockwise: L bottom to top, T left to right, R top to bottom,
B right to left), so that the ports one subdomain keeps in a merge are one cyclic interval and
every block copy is a plain slice. Interfaces have 1 to 4 nodes at the first levels: there the
matrices are stored with the batch dimensions last and the few shared nodes are eliminated one at
a time with vectorised rank-1 updates (a few steps per level, independent of the array size).
Above that, matrices are stored batch-first and the shared nodes are eliminated with a batched
Cholesky factorisation, a triangular solve and one batched matrix product.

The cost is about 80 (N M)^1.5 flops per array, against (N M)^2 for a dense elimination of the
row-by-row structure; most of it is the batched matrix products of the largest levels. Every
Schur complement of this network is symmetric positive definite (each shared node is joined by a
wire to a node that is kept), so no pivoting is needed and, for finite non-negative cells, every
pivot is positive. Non-finite or negative cells, or a failed Cholesky factorisation, raise
:class:`NetworkError` (one check at the end of each group of arrays).
"""

from __future__ import annotations

import functools
import math
import threading

import torch

from txsim_core.errors import TxsimError

Layout = list[tuple[str, int]]
"""Ports of a subdomain in storage order: (side, count) segments, cyclic (ring order)."""

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
_CACHE_LOCK = threading.Lock()


def clear_workspace() -> None:
    """Free the working memory that :func:`port_admittance` keeps between calls."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _normalize(layout: Layout) -> Layout:
    out: Layout = []
    for name, count in layout:
        if count == 0:
            continue
        if out and out[-1][0] == name:
            out[-1] = (name, out[-1][1] + count)
        else:
            out.append((name, count))
    return out


def _run(layout: Layout, names: set[str]) -> tuple[int, int, int, int]:
    """The one cyclic run of segments named in ``names``: first and last segment, start, length."""
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


def _after(layout: Layout, names: set[str]) -> Layout:
    """The segments left when the run ``names`` is removed, in ring order after the run."""
    first, last, _, _ = _run(layout, names)
    n = len(layout)
    kept: Layout = []
    i = (last + 1) % n
    while i != first:
        kept.append(layout[i])
        i = (i + 1) % n
    return _normalize(kept)


def _mat(x: torch.Tensor, rows: slice, cols: slice, batch_last: bool) -> torch.Tensor:
    return x[rows, cols] if batch_last else x[..., rows, cols]


def _pieces(start: int, count: int, period: int) -> list[tuple[int, int, int]]:
    out, src, dst = [], start % period, 0
    while count > 0:
        k = min(count, period - src)
        out.append((src, dst, k))
        dst += k
        count -= k
        src = 0
    return out


def _copy_cyclic(
    dst: torch.Tensor, x: torch.Tensor, r0: int, c0: int, batch_last: bool, add: bool = False
) -> torch.Tensor:
    """``dst[i, j] = x[(r0 + i) % P, (c0 + j) % P]`` over the matrix dimensions (or ``+=``)."""
    period = x.shape[0] if batch_last else x.shape[-1]
    rows = dst.shape[0] if batch_last else dst.shape[-2]
    cols = dst.shape[1] if batch_last else dst.shape[-1]
    for rs, rd, rk in _pieces(r0, rows, period):
        for cs, cd, ck in _pieces(c0, cols, period):
            target = _mat(dst, slice(rd, rd + rk), slice(cd, cd + ck), batch_last)
            source = _mat(x, slice(rs, rs + rk), slice(cs, cs + ck), batch_last)
            if add:
                target.add_(source)
            else:
                target.copy_(source)
    return dst


def _new(arena: _Arena, like: torch.Tensor, rows: int, cols: int, batch_last: bool):
    batch = like.shape[2:] if batch_last else like.shape[:-2]
    shape = (rows, cols, *batch) if batch_last else (*batch, rows, cols)
    return arena.take(tuple(shape))


@functools.lru_cache(maxsize=256)
def _backwards(n: int, device: torch.device) -> torch.Tensor:
    return torch.arange(n - 1, -1, -1, device=device)


def _reversed(arena: _Arena, x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """``x`` flipped along ``dims``, written into the arena."""
    for dim in dims:
        n = x.shape[dim]
        index = _backwards(n, x.device)
        out = arena.take(tuple(x.shape))
        torch.index_select(x, dim, index, out=out)
        x = out
    return x


class _Eliminator:
    """Schur complements of batched symmetric matrices; collects failures for one check."""

    def __init__(self) -> None:
        self.bad: list[torch.Tensor] = []

    def rank1(self, c: torch.Tensor, keep: int) -> torch.Tensor:
        """Batch-last ``c`` (Q, Q, ...): eliminate its trailing nodes one by one (in place)."""
        for p in range(c.shape[0] - 1, keep - 1, -1):
            ratio = c[:p, p] / c[p, p]
            c[:p, :p].addcmul_(ratio[:, None], c[None, p, :p], value=-1.0)
        return c[:keep, :keep]

    def cholesky(
        self, arena: _Arena, ek: torch.Tensor, ee: torch.Tensor, out: torch.Tensor
    ) -> torch.Tensor:
        """Batch-first: ``out = -ek^T ee^-1 ek`` (``out`` contiguous); the caller adds the rest."""
        factor = arena.take(tuple(ee.shape))
        info = torch.empty(ee.shape[:-2], dtype=torch.int32, device=ee.device)
        torch.linalg.cholesky_ex(ee, out=(factor, info))
        self.bad.append((info != 0).any())
        z = arena.take(tuple(ek.shape))
        torch.linalg.solve_triangular(factor, ek, upper=False, out=z)
        k, e = out.shape[-1], ee.shape[-1]
        z3 = z.view(-1, e, k)
        out3 = out.view(-1, k, k)
        torch.baddbmm(out3, z3.mT, z3, beta=0.0, alpha=-1.0, out=out3)
        return out

    def check(self) -> None:
        if self.bad and bool(torch.stack(self.bad).any()):
            raise NetworkError(
                "Expected a positive definite nodal system, but the factorisation failed: the "
                "conductances must be finite and non-negative and the resistances positive."
            )


def _eliminate(
    arena: _Arena,
    y: torch.Tensor,
    layout: Layout,
    names: set[str],
    batch_last: bool,
    elim: _Eliminator,
) -> tuple[torch.Tensor, Layout]:
    """Eliminate the ports of the sides ``names`` (open ends) from every subdomain."""
    period = sum(c for _, c in layout)
    _, _, start, e = _run(layout, names)
    keep = period - e
    k0 = (start + e) % period
    if batch_last:
        c = _copy_cyclic(_new(arena, y, period, period, True), y, k0, k0, True)
        return elim.rank1(c, keep), _after(layout, names)
    ek = _copy_cyclic(_new(arena, y, e, keep, False), y, start, k0, False)
    ee = _copy_cyclic(_new(arena, y, e, e, False), y, start, start, False)
    kk = elim.cholesky(arena, ek, ee, _new(arena, y, keep, keep, False))
    return _copy_cyclic(kk, y, k0, k0, False, add=True), _after(layout, names)


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
    reversed. The result keeps ``a``'s remaining ports, then ``b``'s, each in ring order.
    """
    pa, pb = sum(c for _, c in lay_a), sum(c for _, c in lay_b)
    _, _, sa, e = _run(lay_a, {side_a})
    _, _, sb, eb = _run(lay_b, {side_b})
    if e != eb:
        raise AssertionError(f"shared sides differ in size: {e} and {eb}")
    ka, kb = pa - e, pb - e
    a0, b0 = (sa + e) % pa, (sb + e) % pb
    keep = ka + kb
    layout = _normalize(_after(lay_a, {side_a}) + _after(lay_b, {side_b}))
    rows = (0,) if batch_last else (-2,)
    both = (0, 1) if batch_last else (-2, -1)
    b_ek = _reversed(
        arena, _copy_cyclic(_new(arena, b, e, kb, batch_last), b, sb, b0, batch_last), rows
    )
    b_ee = _reversed(
        arena, _copy_cyclic(_new(arena, b, e, e, batch_last), b, sb, sb, batch_last), both
    )
    if batch_last:
        c = _new(arena, a, keep + e, keep + e, True)
        c[:ka, ka:keep].zero_()
        c[ka:keep, :ka].zero_()
        _copy_cyclic(c[:ka, :ka], a, a0, a0, True)
        _copy_cyclic(c[ka:keep, ka:keep], b, b0, b0, True)
        _copy_cyclic(c[keep:, :ka], a, sa, a0, True)
        c[keep:, ka:keep] = b_ek
        _copy_cyclic(c[keep:, keep:], a, sa, sa, True)
        c[keep:, keep:] += b_ee
        c[:keep, keep:] = c[keep:, :keep].transpose(0, 1)
        return elim.rank1(c, keep), layout
    ek = _new(arena, a, e, keep, False)
    _copy_cyclic(ek[..., :ka], a, sa, a0, False)
    ek[..., ka:] = b_ek
    ee = _copy_cyclic(_new(arena, a, e, e, False), a, sa, sa, False)
    ee += b_ee
    kk = elim.cholesky(arena, ek, ee, _new(arena, a, keep, keep, False))
    _copy_cyclic(kk[..., :ka, :ka], a, a0, a0, False, add=True)
    _copy_cyclic(kk[..., ka:, ka:], b, b0, b0, False, add=True)
    return kk, layout


def _pair(y: torch.Tensor, horizontal: bool, batch_last: bool):
    if batch_last:  # (P, P, B, nr, nc)
        return (y[..., 0::2], y[..., 1::2]) if horizontal else (y[..., 0::2, :], y[..., 1::2, :])
    return (y[:, :, 0::2], y[:, :, 1::2]) if horizontal else (y[:, 0::2], y[:, 1::2])


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
"""Elements per cell that one arena holds; the largest level uses 33 (measured for 1x1 to
256x256 arrays). A level that needs more gets fresh tensors, so this only affects speed."""


def _buffers(like: torch.Tensor, size: int, keep: bool) -> tuple[torch.Tensor, bool]:
    """A flat buffer of at least ``size`` elements: the kept CPU one if free, else a fresh one."""
    if not keep or like.device.type != "cpu" or not _CACHE_LOCK.acquire(blocking=False):
        return like.new_empty(size), False
    key = (like.device.type, like.device.index)
    buf = _CACHE.get(key)
    if buf is None or buf.numel() < size or buf.dtype != like.dtype:
        _CACHE.pop(key, None)
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
        keep_workspace: on the CPU, keep the working memory for the next call (one buffer per
            process, shared by all callers; a concurrent caller gets fresh memory instead).

    Returns:
        ``Y`` of shape ``(B, N + M, N + M)``: ports ``0..N-1`` are the left terminals of rows
        ``0..N-1``, ports ``N..N+M-1`` the bottom terminals of columns ``0..M-1``.
    """
    batch, rows, cols = g.shape
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
        for start in range(0, batch, chunk):
            stop = min(batch, start + chunk)
            _dissect(g[start:stop], r_row, r_col, plan, arenas, out[start:stop])
    finally:
        if locked:
            _CACHE_LOCK.release()
    return out


def _dissect(
    g: torch.Tensor,
    r_row: float,
    r_col: float,
    plan: list[bool],
    arenas: tuple[_Arena, _Arena],
    out: torch.Tensor,
) -> None:
    batch, rows, cols = g.shape
    g_r, g_c = 1.0 / r_row, 1.0 / r_col
    # Leaf ring: L=0 (left terminal), T=1 (column node), R=2 (row node), B=3 (bottom terminal).
    arenas[0].pos = 0
    y = arenas[0].take((4, 4, batch, rows, cols))
    y.zero_()
    y[0, 0] = g_r
    y[0, 2] = y[2, 0] = -g_r
    torch.add(g, g_r, out=y[2, 2])
    torch.neg(g, out=y[2, 1])
    torch.neg(g, out=y[1, 2])
    torch.add(g, g_c, out=y[1, 1])
    y[1, 3] = y[3, 1] = -g_c
    y[3, 3] = g_c
    layout: Layout = [("L", 1), ("T", 1), ("R", 1), ("B", 1)]
    elim = _Eliminator()
    # With finite, non-negative cells every pivot is positive (each node has a wire to a kept
    # node), so the rank-1 steps need no check of their own; the Cholesky steps report theirs.
    elim.bad.append(~(torch.isfinite(g) & (g >= 0)).all())
    batch_last = True
    h = w = 1
    turn = 1

    def next_arena() -> _Arena:
        nonlocal turn
        arena = arenas[turn % 2]
        arena.pos = 0
        turn += 1
        return arena

    def to_batch_first(x: torch.Tensor) -> torch.Tensor:
        out = next_arena().take((*x.shape[2:], *x.shape[:2]))
        return out.copy_(x.permute(2, 3, 4, 0, 1))

    tail = min(TAIL_MERGES, len(plan))
    for horizontal in plan[: len(plan) - tail]:
        shared = h if horizontal else w
        if batch_last and shared > SMALL_INTERFACE:
            y, batch_last = to_batch_first(y), False
        a, b = _pair(y, horizontal, batch_last)
        sides = ("R", "L") if horizontal else ("B", "T")
        y, layout = _join(next_arena(), a, layout, sides[0], b, layout, sides[1], batch_last, elim)
        h, w = (h, 2 * w) if horizontal else (2 * h, w)
    # The last merges, block by block: first the open sides (top row, right column) go. Their
    # interfaces have up to max(rows, cols) nodes.
    if batch_last and max(rows, cols) > SMALL_INTERFACE:
        y, batch_last = to_batch_first(y), False
    nr, nc = rows // h, cols // w
    arena = next_arena()
    blocks: dict[tuple[int, int], tuple[torch.Tensor, Layout]] = {}
    for r in range(nr):
        for c in range(nc):
            x = y[:, :, :, r : r + 1, c : c + 1] if batch_last else y[:, r : r + 1, c : c + 1]
            names = {"T"} if r == 0 else set()
            names |= {"R"} if c == nc - 1 else set()
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
    elim.check()
    if batch_last:
        y = y.permute(2, 3, 4, 0, 1)
    y = y.reshape(batch, rows + cols, rows + cols)
    period = rows + cols
    _, _, start_l, _ = _run(layout, {"L"})
    _, _, start_b, _ = _run(layout, {"B"})
    # Ring order runs bottom-to-top on L and right-to-left on B: reverse both.
    order = [(start_l + rows - 1 - i) % period for i in range(rows)]
    order += [(start_b + cols - 1 - j) % period for j in range(cols)]
    index = torch.tensor(order, device=g.device)
    torch.index_select(y.index_select(-2, index), -1, index, out=out)


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

    which stays well posed for ``r_source = 0`` or ``r_sink = 0``.
    """
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
