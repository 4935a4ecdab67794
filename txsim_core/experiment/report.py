"""``txsim report``: the summary of a run or a sweep directory as text."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from txsim_core.errors import ConfigError
from txsim_core.experiment.metrics import mode_summary, read_metrics
from txsim_core.experiment.plots import MODE_LABELS
from txsim_core.experiment.runner import run_is_complete
from txsim_core.tables import format_table


def _percent(value: object) -> str:
    return "" if value in (None, "") else f"{100 * float(str(value)):.2f}%"


def run_report(run_dir: Path) -> str:
    """Per mode: epochs, final training loss, final and best test accuracy, time."""
    rows = read_metrics(run_dir)
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    table = []
    for mode in modes:
        s = mode_summary(rows, mode)
        table.append(
            (
                MODE_LABELS.get(mode, mode),
                s["epochs"],
                f"{s['final_train_loss']:.4f}",
                _percent(s["final_test_accuracy"]),
                _percent(s["best_test_accuracy"]),
                f"{s['seconds']:.1f}",
            )
        )
    status = "complete" if run_is_complete(run_dir) else "incomplete (resume with --resume)"
    lines = [f"Run {run_dir}: {status}", ""]
    headers = ("Mode", "Epochs", "Final loss", "Final test", "Best test", "Seconds")
    lines.append(format_table(headers, table) if table else "No epoch has finished yet.")
    if (run_dir / "accuracy.png").is_file():
        lines += ["", f"Plot: {run_dir / 'accuracy.png'}"]
    return "\n".join(lines)


def sweep_report(sweep_dir: Path) -> str:
    """One line per trial and mode: the swept values, status and accuracies."""
    keys = json.loads((sweep_dir / "sweep.json").read_text())["keys"]
    summary = sweep_dir / "summary.csv"
    rows = list(csv.DictReader(summary.open(newline=""))) if summary.is_file() else []
    table = [
        (
            *(r[k] for k in keys),
            r["mode"],
            r["status"],
            _percent(r["final_test_accuracy"]),
            _percent(r["best_test_accuracy"]),
            r["error"][:60],
        )
        for r in rows
    ]
    headers = (*keys, "mode", "status", "final test", "best test", "error")
    lines = [f"Sweep {sweep_dir}: {len(rows)} trial rows", "", format_table(headers, table)]
    if (sweep_dir / "sweep.png").is_file():
        lines += ["", f"Plot: {sweep_dir / 'sweep.png'}"]
    return "\n".join(lines)


def report(directory: Path) -> str:
    """The report of a run or sweep directory.

    Raises:
        ConfigError: if ``directory`` is neither.
    """
    if (directory / "sweep.json").is_file():
        return sweep_report(directory)
    if (directory / "config.toml").is_file():
        return run_report(directory)
    raise ConfigError(
        f"Expected a run directory (with config.toml) or a sweep directory (with sweep.json), "
        f"but {str(directory)!r} is neither."
    )
