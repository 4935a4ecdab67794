"""Batched solves of the wire lines of a crossbar: symmetric tridiagonal systems.

Every row and every column of an array is a chain of wire segments, loaded by the cells: its
nodal matrix is symmetric tridiagonal, positive definite and diagonally dominant. Two tools:

* :func:`solve` runs parallel cyclic reduction (PCR): ``ceil(log2 n)`` steps of elementwise
  tensor operations, each eliminating the neighbours at distance 1, 2, 4, ... of every
  equation. No loop runs along the line; PCR needs no pivoting on diagonally dominant systems.
* :class:`Inverse` keeps the two end solutions ``x = A^-1 e_0`` and ``y = A^-1 e_{n-1}``: the
  inverse of an irreducible symmetric tridiagonal matrix is semiseparable,
  ``(A^-1)[i, l] = y[min(i, l)] * x[max(i, l)] / y[0]``, so its diagonal and last row cost
  O(n) per line.
"""

from __future__ import annotations

import torch


def line_matrix(
    n: int,
    g_wire: float,
    g_first: float,
    g_last: float,
    shunt: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Diagonal and off-diagonal of the nodal matrix of wire lines.

    Args:
        n: nodes per line.
        g_wire: conductance of each segment between consecutive nodes, in siemens.
        g_first: conductance from node 0 to ground (a source or sink terminal), or 0.
        g_last: conductance from node n-1 to ground, or 0.
        shunt: conductance from every node to ground (or to a node held at a known potential),
            shape ``(..., n)``.

    Returns:
        ``diag`` of shape ``(..., n)`` and ``off`` of shape ``(n - 1,)`` (all ``-g_wire``).
    """
    base = torch.full((n,), 2.0 * g_wire, dtype=shunt.dtype, device=shunt.device)
    base[0] = g_wire
    base[-1] = g_wire
    if n == 1:
        base[0] = 0.0
    base[0] += g_first
    base[-1] += g_last
    off = torch.full((max(n - 1, 0),), -g_wire, dtype=shunt.dtype, device=shunt.device)
    return base + shunt, off


def solve(diag: torch.Tensor, off: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve symmetric tridiagonal systems by parallel cyclic reduction.

    Args:
        diag: diagonals, shape ``(..., n)``.
        off: off-diagonals, shape ``(..., n - 1)`` (broadcast against ``diag``'s batch).
        rhs: right-hand sides, shape ``(..., n, r)``.

    Returns:
        Solutions of shape ``(..., n, r)``.

    Equation i reads ``lower[i] x[i-1] + b[i] x[i] + upper[i] x[i+1] = d[i]``. A step of stride
    s adds ``-lower[i] / b[i-s]`` times equation i-s and ``-upper[i] / b[i+s]`` times equation
    i+s to equation i, which removes x[i-s] and x[i+s] and couples x[i] to x[i-2s] and x[i+2s].
    After ``ceil(log2 n)`` steps every equation holds a single unknown.
    """
    n = diag.shape[-1]
    lower = diag.new_zeros(diag.shape)
    upper = diag.new_zeros(diag.shape)
    lower[..., 1:] = off
    upper[..., :-1] = off
    b, d = diag.clone(), rhs.clone()
    step = 1
    while step < n:
        alpha = -lower[..., step:] / b[..., :-step]  # for equations step..n-1
        gamma = -upper[..., :-step] / b[..., step:]  # for equations 0..n-1-step
        d_new = d.clone()
        d_new[..., step:, :].addcmul_(alpha[..., None], d[..., :-step, :])
        d_new[..., :-step, :].addcmul_(gamma[..., None], d[..., step:, :])
        b[..., step:].addcmul_(alpha, upper[..., :-step])
        b[..., :-step].addcmul_(gamma, lower[..., step:])
        new_lower = torch.zeros_like(lower)
        new_upper = torch.zeros_like(upper)
        new_lower[..., step:] = alpha * lower[..., :-step]
        new_upper[..., :-step] = gamma * upper[..., step:]
        lower, upper, d = new_lower, new_upper, d_new
        step *= 2
    return d / b[..., None]


class Inverse:
    """The inverses of a batch of symmetric tridiagonal matrices, kept in semiseparable form.

    Args:
        diag: diagonals, shape ``(..., n)``.
        off: off-diagonals, shape ``(n - 1,)`` or broadcastable ``(..., n - 1)``.
    """

    def __init__(self, diag: torch.Tensor, off: torch.Tensor) -> None:
        n = diag.shape[-1]
        rhs = diag.new_zeros((*diag.shape, 2))
        rhs[..., 0, 0] = 1.0
        rhs[..., n - 1, 1] = 1.0
        ends = solve(diag, off, rhs)
        self.x = ends[..., 0]  # A^-1 e_0: column 0 of the inverse
        self.y = ends[..., 1]  # A^-1 e_{n-1}: column n-1 of the inverse
        self.y0 = self.y[..., :1]

    def diagonal(self) -> torch.Tensor:
        """``(A^-1)[i, i]``, shape ``(..., n)``."""
        return self.y * self.x / self.y0

    def last_row(self) -> torch.Tensor:
        """``(A^-1)[n-1, i]``, shape ``(..., n)``."""
        return self.y
