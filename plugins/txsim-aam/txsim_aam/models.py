"""The ``aam`` array solver: the approximate analytical model of TxSim (Section IV-D)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

from txsim_aam.lines import Inverse, line_matrix, solve
from txsim_core.errors import ConfigError, TxsimError
from txsim_core.interfaces import ArraySolver, CircuitParams
from txsim_core.interfaces.solver import Direction
from txsim_core.params import parameter


class AAMError(TxsimError, RuntimeError):
    """The model cannot give a valid result for these conductances.

    Raised when order 1's path series diverges or is less accurate than ``max_radius`` allows,
    and when a result is not finite (resistances far outside any physical range).
    """


@attrs.frozen(kw_only=True)
class AAMParams(CircuitParams):
    """Parameters of the approximate analytical model."""

    order: int = parameter(
        2,
        kind=int,
        low=1,
        high=2,
        help="Which paths are kept. 1: paths that cross one shared resistance (the first-order "
        "IR-drop model, O(N M); raises an error where the path series it truncates diverges). "
        "2: every path along the driven line and each sensed line, with the current lost into "
        "the other lines' cells (exact line solves, O(N M log N)).",
    )
    max_radius: float = parameter(
        0.3,
        low=0.0,
        low_open=True,
        high=1.0,
        help="Order 1 only: largest accepted bound on the wire-coupling spectral radius of an "
        "array; the first-order error is about 1.2 * radius^2 of full scale (measured), and the "
        "series it truncates diverges at radius 1. Arrays above it raise an error.",
    )


def _check(g: torch.Tensor, directions: Sequence[str]) -> None:
    for direction in directions:
        if direction not in ("forward", "backward"):
            raise ConfigError(
                f"Expected `direction` to be 'forward' or 'backward', but got {direction!r}."
            )
    if not isinstance(g, torch.Tensor) or not torch.is_floating_point(g):
        raise ConfigError(
            "Expected the conductances given to solver 'aam' to be a floating-point tensor, "
            f"but got {type(g).__name__} {getattr(g, 'dtype', '')}."
        )
    if g.ndim < 2 or g.shape[-1] == 0 or g.shape[-2] == 0:
        raise ConfigError(
            "Expected conductances of shape (..., N, M) with N, M >= 1 for solver 'aam', "
            f"but got shape {tuple(g.shape)}."
        )
    if g.numel() and not bool((torch.isfinite(g) & (g >= 0)).all()):
        raise ConfigError(
            "Expected finite, non-negative conductances for solver 'aam', but got "
            f"min={g.min().item()!r}, max={g.max().item()!r} (or NaN)."
        )


def _shared(g: torch.Tensor, r_term: float, r_wire: float, dim: int, far: bool) -> torch.Tensor:
    """Voltage that currents ``g`` (any (B, N, M) values) drop across shared line resistance.

    Along ``dim``: node ``p`` sits after ``p + 1`` wire segments counted from the terminal end
    (the start of the line, or the end if ``far``), and each segment carries the current of
    every cell beyond it. So node ``p`` sees ``r_term * sum(c) + r_wire * sum_q (min(p, q) + 1)
    c_q``, computed with two cumulative sums.
    """
    if far:
        g = g.flip(dim)
    beyond = g.sum(dim, keepdim=True) - g.cumsum(dim) + g  # current in segment p: cells >= p
    out = r_term * g.sum(dim, keepdim=True) + r_wire * beyond.cumsum(dim)
    return out.flip(dim) if far else out


def coupling_radius(
    g: torch.Tensor, r_source: float, r_sink: float, r_row: float, r_col: float, steps: int = 8
) -> torch.Tensor:
    """Upper bound on the spectral radius of the wire-coupling operator of each array.

    The first-order model truncates the series ``sum_n (-A)^n`` with ``A c = G * (P c + Q c)``
    (``P`` and ``Q`` the shared row and column resistances); the series converges only if the
    spectral radius of ``A`` is below 1 and its truncation error scales with its square. ``A``
    has non-negative entries, so for any positive ``x`` the Collatz-Wielandt bound
    ``max(A x / x)`` is an upper bound; a few power steps from ``x = 1`` tighten it.

    Returns:
        Shape ``(B,)``.
    """
    x = torch.ones_like(g)
    bound = None
    for _ in range(steps):
        ax = g * (_shared(x, r_source, r_row, -1, False) + _shared(x, r_sink, r_col, -2, True))
        ratio = (ax / x).where(g > 0, torch.zeros_like(g)).amax((-2, -1))
        bound = ratio if bound is None else torch.minimum(bound, ratio)
        x = ax.where(g > 0, torch.ones_like(g))
        x = x / x.amax((-2, -1), keepdim=True)
    assert bound is not None
    return bound


def first_order(
    g: torch.Tensor, r_source: float, r_sink: float, r_row: float, r_col: float
) -> torch.Tensor:
    """Order 1: ``T = G * (1 - G P - Q G)`` for arrays ``g`` (B, N, M), float64.

    For a unit voltage on row k the ideal cell currents are ``G[k, :]``. Each path that crosses
    one shared resistance corrects them once: the currents of row k drop row k's voltage at
    cell j by ``(G P)[k, j]`` (its source and the row segments they share), and cell (k, j)'s
    current lifts column j at every row i by ``Q[i, k] G[k, j]``, which takes
    ``G[i, j] Q[i, k] G[k, j]`` from each cell of the column, ``(Q G)[k, j] G[k, j]`` in all.
    ``P[j, j'] = r_source + r_row (min(j, j') + 1)`` and
    ``Q[i, i'] = r_sink + r_col (N - max(i, i'))`` count the shared resistance.
    """
    row_drop = _shared(g, r_source, r_row, -1, False)  # (G P)[k, j]
    col_rise = _shared(g, r_sink, r_col, -2, True)  # (Q G)[k, j] = sum_i Q[k, i] G[i, j]
    return g * (1.0 - row_drop - col_rise)


def line_paths(
    g: torch.Tensor, r_source: float, r_sink: float, r_row: float, r_col: float
) -> torch.Tensor:
    """Order 2: every path along the driven row and the sensed columns, for ``g`` (B, N, M).

    For a unit voltage on row k with every other row's source at 0 V, each column j is solved
    exactly as a ladder: its wire segments, its sink, and every cell as a conductance to its
    row, the undriven rows held at 0 V. Seen from row k, cell (k, j) in series with that ladder
    is ``G'[k, j] = G[k, j] (1 - G[k, j] d[k, j])`` with ``d`` the ladder's driving-point
    resistance at row k, and a share ``beta[k, j] = G[k, j] q[k, j] / (r_col + r_sink)`` of
    its voltage reaches the sink, ``q`` the ladder's transfer resistance from row k to the
    sink. Row k is then solved exactly with the loads ``G'``, which gives its node voltages
    ``a[k, :]`` and ``T[k, j] = beta[k, j] a[k, j]``.

    Kept: the drop along the driven row (source and row segments), the rise along each column
    (segments and sink) and their interaction, and the current lost through the cells of the
    undriven rows. Left out: the sneak paths that run through the wire or driver of an undriven
    row (the leaked current lifts that row, which then feeds other columns). Every quantity
    comes from tridiagonal solves, so nothing can diverge.
    """
    batch, rows, cols = g.shape
    g_s = 1.0 / (r_source + r_row)  # source resistance in series with the first row segment
    g_k = 1.0 / (r_col + r_sink)  # last column segment in series with the sink resistance
    # Column ladders: node 0 at the top (open), node N-1 to the sink; lines (B, M) of N nodes.
    diag_c, off_c = line_matrix(rows, 1.0 / r_col, 0.0, g_k, g.mT)
    col = Inverse(diag_c, off_c)
    d = col.diagonal().mT  # (B, N, M): driving-point resistance of ladder j at row i
    q = col.last_row().mT  # transfer resistance from row i to the sink node of ladder j
    g_load = g * (1.0 - g * d)
    # Driven rows: node 0 at the source, node M-1 open; lines (B, N) of M nodes.
    diag_r, off_r = line_matrix(cols, 1.0 / r_row, g_s, 0.0, g_load)
    rhs = g.new_zeros((batch, rows, cols, 1))
    rhs[..., 0, 0] = g_s
    a = solve(diag_r, off_r, rhs)[..., 0]
    return g_k * q * g * a


class AAMSolver(ArraySolver):
    """Approximate analytical model: effective conductances from the dominant current paths.

    ``order`` selects the paths (see :func:`first_order` and :func:`line_paths`). Results are
    in ``g``'s dtype (computed in float64 on ``g``'s device); the backward direction is the same
    model applied to its own circuit, the columns driven at their bottom ends and the rows
    sensed at their left ends (the forward circuit of the array transposed and reversed along
    both axes, with the row and column wires swapped).
    """

    def effective_conductance(
        self, g: torch.Tensor, direction: Direction = "forward"
    ) -> torch.Tensor:
        return self.effective_conductances(g, (direction,))[0]

    def effective_conductances(
        self, g: torch.Tensor, directions: Sequence[Direction] = ("forward", "backward")
    ) -> tuple[torch.Tensor, ...]:
        """Effective conductances for several directions (see :meth:`effective_conductance`).

        Args:
            g: cell conductances of shape ``(..., N, M)`` in siemens.
            directions: the directions wanted, in the order they are returned.
        """
        _check(g, directions)
        p = self.params
        *lead, rows, cols = g.shape
        flat = g.reshape(-1, rows, cols).to(torch.float64)
        results = []
        for direction in directions:
            if direction == "forward":
                arrays, r_line, r_sense = flat, p.r_row, p.r_col
            else:
                arrays, r_line, r_sense = flat.mT.flip(-2, -1), p.r_col, p.r_row
            args = (arrays, p.r_source, p.r_sink, r_line, r_sense)
            if p.order == 1:
                radius = coupling_radius(*args)
                worst = float(radius.max()) if radius.numel() else 0.0
                if worst > p.max_radius:
                    state = "diverges" if worst >= 1.0 else "is too inaccurate"
                    raise AAMError(
                        f"solver 'aam': expected a wire-coupling spectral radius of at most "
                        f"max_radius={p.max_radius:g} for order 1, but got a bound of "
                        f"{worst:.3g} ({direction}): the first-order path series {state} for "
                        "these conductances (error about 1.2 * radius^2 of full scale). Use "
                        "order=2 or solver 'fcm'."
                    )
                t = first_order(*args)
            else:
                t = line_paths(*args)
            if direction == "backward":
                t = t.flip(-2, -1).mT
            if not bool(torch.isfinite(t).all()):
                raise AAMError(
                    "solver 'aam': expected finite effective conductances, but the model "
                    "produced NaN or inf; the conductances or resistances are far outside the "
                    "range the model handles (use solver 'fcm')."
                )
            results.append(t.to(g.dtype).reshape(*lead, rows, cols))
        return tuple(results)
