"""A run's metrics: one row per mode and epoch, as ``metrics.csv`` and ``metrics.jsonl``."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

COLUMNS = ("mode", "epoch", "train_loss", "train_accuracy", "test_accuracy", "seconds")
"""The columns of ``metrics.csv``; accuracies are fractions in [0, 1], seconds are wall time of
the epoch (training and evaluation)."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that a reader (or a killed run) never sees it half written."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_metrics(run_dir: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write every row to ``metrics.csv`` and ``metrics.jsonl`` in ``run_dir``."""
    rows = [{c: row[c] for c in COLUMNS} for row in rows]
    lines = [",".join(COLUMNS)]
    lines += [",".join(str(row[c]) for c in COLUMNS) for row in rows]
    atomic_write_text(run_dir / "metrics.csv", "\n".join(lines) + "\n")
    atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in rows))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.csv`` (numbers converted), or an empty list."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [
            {
                "mode": row["mode"],
                "epoch": int(row["epoch"]),
                **{c: float(row[c]) for c in COLUMNS[2:]},
            }
            for row in csv.DictReader(handle)
        ]


def mode_summary(rows: Sequence[Mapping[str, Any]], mode: str) -> dict[str, Any]:
    """Final and best test accuracy, epochs and time of one mode's rows."""
    own = [r for r in rows if r["mode"] == mode]
    if not own:
        return {"mode": mode, "epochs": 0}
    return {
        "mode": mode,
        "epochs": len(own),
        "final_train_loss": own[-1]["train_loss"],
        "final_test_accuracy": own[-1]["test_accuracy"],
        "best_test_accuracy": max(r["test_accuracy"] for r in own),
        "seconds": sum(r["seconds"] for r in own),
    }
