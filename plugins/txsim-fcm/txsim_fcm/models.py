"""The ``fcm`` array solver: exact effective conductances of crossbar arrays with wire parasitics."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

from txsim_core.errors import ConfigError
from txsim_core.interfaces import ArraySolver, CircuitParams
from txsim_core.interfaces.solver import Direction
from txsim_core.params import parameter
from txsim_fcm.network import NetworkError, port_admittance, terminate

BYTES_PER_SITE = 800
"""Working memory per cell of a (padded) array, in bytes: the two arenas of
:func:`~txsim_fcm.network.port_admittance` (640) plus inputs and outputs."""


@attrs.frozen(kw_only=True)
class FCMParams(CircuitParams):
    """Parameters of the fast crossbar model (exact circuit solve)."""

    workspace_bytes: int = parameter(
        2**31,
        kind=int,
        unit="B",
        low=2**20,
        help="Largest working memory of one batched solve (about 800 bytes per cell); a batch "
        "that needs more is solved in chunks of arrays, one chunk after another.",
    )
    reuse_last: bool = parameter(
        True,
        kind=bool,
        help="When called again with the very same, unmodified tensor (for example forward, "
        "then backward), reuse the network solve of the last call, and its terminations, "
        "instead of repeating them.",
    )
    keep_workspace: bool = parameter(
        True,
        kind=bool,
        help="On the CPU, keep the working memory and the recorded solves between calls (one "
        "buffer per process, shared by all fcm solvers): later calls skip the cost of fresh "
        "memory pages and replay the solve of arrays of the same shape. False frees both after "
        "each call.",
    )


def check_conductances(g: torch.Tensor, model: str) -> None:
    """Raise :class:`ConfigError` unless ``g`` is a float tensor of finite, non-negative arrays."""
    if not isinstance(g, torch.Tensor) or not torch.is_floating_point(g):
        raise ConfigError(
            f"Expected the conductances given to {model} to be a floating-point tensor, "
            f"but got {type(g).__name__} {getattr(g, 'dtype', '')}."
        )
    if g.ndim < 2 or g.shape[-1] == 0 or g.shape[-2] == 0:
        raise ConfigError(
            f"Expected conductances of shape (..., N, M) with N, M >= 1 for {model}, "
            f"but got shape {tuple(g.shape)}."
        )
    if g.numel() and not bool((torch.isfinite(g) & (g >= 0)).all()):
        raise ConfigError(
            f"Expected finite, non-negative conductances for {model}, but got "
            f"min={g.min().item()!r}, max={g.max().item()!r} (or NaN)."
        )


def check_direction(direction: str) -> None:
    """Raise :class:`ConfigError` unless ``direction`` is ``"forward"`` or ``"backward"``."""
    if direction not in ("forward", "backward"):
        raise ConfigError(
            f"Expected `direction` to be 'forward' or 'backward', but got {direction!r}."
        )


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


class FCMSolver(ArraySolver):
    """Exact effective conductances of crossbar arrays (fast crossbar model).

    Solves the linear circuit of ``docs/explanation/circuit.md`` exactly for every array of a
    batch: wire segments, driver and sense resistances and all sneak paths. The result is the
    exact transfer matrix, so ``V @ G_eff`` equals the circuit's column currents for every input
    ``V``, not only for a reference input. The terminal admittance of each array's wire-and-cell
    network is computed by batched nested dissection (:mod:`txsim_fcm.network`); the forward and
    backward directions are two terminations of that one network.

    Computation is in float64 on the device of ``g``; results come back in ``g``'s dtype.
    Arrays whose sides are not powers of two are padded with open cells (conductance 0) above
    the first row and right of the last column, which changes nothing in the circuit.
    """

    def __init__(self, params: FCMParams) -> None:
        super().__init__(params)
        self._last: tuple[torch.Tensor, int, _Solve] | None = None

    @staticmethod
    def _tensor_version(g: torch.Tensor) -> int | None:
        try:
            return int(g._version)
        except RuntimeError:  # inference tensors have no version counter
            return None

    def _reused(self, g: torch.Tensor) -> _Solve | None:
        """The last solve, if it was of this very tensor, unmodified since."""
        if not self.params.reuse_last or self._last is None:
            return None
        tensor, version, solve = self._last
        return solve if tensor is g and self._tensor_version(g) == version else None

    def effective_conductance(
        self, g: torch.Tensor, direction: Direction = "forward"
    ) -> torch.Tensor:
        check_direction(direction)
        return self.effective_conductances(g, (direction,))[0]

    def effective_conductances(
        self, g: torch.Tensor, directions: Sequence[Direction] = ("forward", "backward")
    ) -> tuple[torch.Tensor, ...]:
        """Effective conductances for several directions from one solve of the network.

        Args:
            g: cell conductances of shape ``(..., N, M)`` in siemens.
            directions: the directions wanted, in the order they are returned.

        Returns:
            One new tensor of ``g``'s shape and dtype per direction (see
            :meth:`effective_conductance`).
        """
        for direction in directions:
            check_direction(direction)
        check_conductances(g, "solver 'fcm'")
        solve = self._reused(g)
        kept = solve is not None
        if solve is None:
            solve = _Solve(self._port_admittances(g))
            version = self._tensor_version(g)
            if self.params.reuse_last and version is not None:
                self._last, kept = (g, version, solve), True
        # Reciprocity: with r_source == r_sink the backward matrix is the forward one (the
        # current at column j from a unit source on row i equals the current at row i from a
        # unit source on column j), so one termination serves both directions.
        reciprocal = self.params.r_source == self.params.r_sink
        results = []
        for direction in directions:
            key = "forward" if reciprocal else direction
            reused = key in solve.terminated
            if not reused:
                solve.terminated[key] = self._terminate(g, solve.ports, key)
            # A kept (or repeated) result is handed out as a copy: the caller may change it.
            result = solve.terminated[key]
            results.append(result.clone() if kept or reused else result)
        return tuple(results)

    def _port_admittances(self, g: torch.Tensor) -> list[torch.Tensor]:
        """The terminal admittances of the arrays of ``g``, padded to powers of two, in chunks
        of at most ``workspace_bytes``."""
        p = self.params
        rows, cols = g.shape[-2:]
        flat = g.reshape(-1, rows, cols)
        n_pad, m_pad = _pow2(rows), _pow2(cols)
        per_chunk = max(1, p.workspace_bytes // (BYTES_PER_SITE * n_pad * m_pad))
        ports = []
        for start in range(0, flat.shape[0], per_chunk):
            chunk = flat[start : start + per_chunk].to(torch.float64)
            padded = chunk.new_zeros((chunk.shape[0], n_pad, m_pad))
            padded[:, n_pad - rows :, :cols] = chunk
            try:
                ports.append(port_admittance(padded, p.r_row, p.r_col, p.keep_workspace))
            except NetworkError as exc:
                raise NetworkError(f"solver 'fcm': {exc}") from None
        return ports

    def _terminate(self, g: torch.Tensor, ports: list[torch.Tensor], key: str) -> torch.Tensor:
        """The effective conductances of one direction, in ``g``'s shape and dtype."""
        p = self.params
        *lead, rows, cols = g.shape
        n_pad = _pow2(rows)
        try:
            parts = [terminate(y, n_pad, p.r_source, p.r_sink, key) for y in ports]
        except NetworkError as exc:
            raise NetworkError(f"solver 'fcm': {exc}") from None
        parts = [part[:, n_pad - rows :, :cols] for part in parts]
        t = torch.cat(parts) if parts else g.new_zeros((0, rows, cols), dtype=torch.float64)
        if not bool(torch.isfinite(t).all()):
            raise NetworkError(
                "solver 'fcm': expected finite effective conductances, but the solve "
                "produced NaN or inf; check that the resistances are in a physical range."
            )
        return t.to(g.dtype).reshape(*lead, rows, cols)


@attrs.define
class _Solve:
    """One network solve of :class:`FCMSolver`: the terminal admittances of every chunk of
    arrays, and the terminations made of them so far, by direction."""

    ports: list[torch.Tensor]
    terminated: dict[str, torch.Tensor] = attrs.field(factory=dict)
