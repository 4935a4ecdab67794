"""Checkpoints of one training mode: written atomically, read without unpickling code.

A checkpoint holds everything a mode needs to continue exactly where it stopped: the network's
state (conductances, calibrations and the random generators of the crossbar layers included), the
optimizer's state, the global torch random state, the position in the data (epochs and batches
done) and the metrics so far. Files are read with ``torch.load(..., weights_only=True)``, which
refuses anything but tensors and plain containers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs
import torch

from txsim_core.errors import ConfigError

FORMAT_VERSION = 1


@attrs.define
class Position:
    """Where training stands: ``epoch`` epochs done, then ``batch`` batches of the next one.

    Args:
        epoch: completed epochs.
        batch: completed batches of epoch ``epoch + 1``.
        loss_sum: sum of the per-sample training loss over those batches.
        correct: correctly classified training samples in those batches.
        count: training samples in those batches.
        seconds: wall time spent in those batches.
    """

    epoch: int = 0
    batch: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    count: int = 0
    seconds: float = 0.0

    @property
    def key(self) -> tuple[int, int]:
        """The position as a sortable pair."""
        return (self.epoch, self.batch)


def checkpoint_path(run_dir: Path, mode: str, position: Position) -> Path:
    """Where the checkpoint of ``mode`` at ``position`` goes: names sort by position."""
    return run_dir / "checkpoints" / mode / f"e{position.epoch:05d}-b{position.batch:07d}.pt"


def save_checkpoint(
    path: Path,
    *,
    mode: str,
    position: Position,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    history: list[dict[str, Any]],
) -> None:
    """Write a checkpoint atomically (a killed run never leaves a half-written file)."""
    state = {
        "format": FORMAT_VERSION,
        "mode": mode,
        "position": attrs.asdict(position),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "history": history,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint safely; raises :class:`ConfigError` for an unreadable or foreign file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"Expected a txsim checkpoint in {str(path)!r}, but: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise ConfigError(
            f"Expected a txsim checkpoint of format {FORMAT_VERSION} in {str(path)!r}, but got "
            "another file."
        )
    state["position"] = Position(**state["position"])
    return state


def latest_checkpoint(run_dir: Path, mode: str) -> dict[str, Any] | None:
    """The checkpoint of ``mode`` that is furthest along, or None if it has none."""
    paths = sorted((run_dir / "checkpoints" / mode).glob("e*-b*.pt"))
    return load_checkpoint(paths[-1]) if paths else None


def restore_random_state(state: dict[str, Any]) -> None:
    """Set the global torch random generators to the checkpoint's."""
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
