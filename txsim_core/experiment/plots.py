"""PNG plots of runs and sweeps (matplotlib, an optional dependency: ``pip install "txsim[plot]"``)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MODE_LABELS = {"native": "Native", "ideal": "Cross-Ideal", "nonideal": "Cross-NI"}


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn(
            "matplotlib is not installed, so no plot was written; install it with "
            '`pip install "txsim[plot]"`.',
            stacklevel=3,
        )
        return None
    return plt


def plot_run(run_dir: Path, rows: Sequence[Mapping[str, Any]]) -> Path | None:
    """Write ``accuracy.png``: test accuracy (left) and training loss (right) against epoch, one
    line per mode. Returns the path, or None without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return None
    figure, (accuracy_axes, loss_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for mode in dict.fromkeys(r["mode"] for r in rows):
        own = [r for r in rows if r["mode"] == mode]
        epochs = [r["epoch"] for r in own]
        label = MODE_LABELS.get(mode, mode)
        accuracy_axes.plot(epochs, [100 * r["test_accuracy"] for r in own], "o-", label=label)
        loss_axes.plot(epochs, [r["train_loss"] for r in own], "o-", label=label)
    accuracy_axes.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy")
    loss_axes.set(xlabel="epoch", ylabel="training loss", title="Training loss")
    for axes in (accuracy_axes, loss_axes):
        axes.xaxis.get_major_locator().set_params(integer=True)  # whole epochs
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    path = run_dir / "accuracy.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def plot_sweep(
    out_dir: Path, keys: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> Path | None:
    """Write ``sweep.png``: final test accuracy against the first swept key, one line per value
    of the other keys (as the paper's sensitivity figures). Returns the path, or None."""
    plt = _pyplot()
    if plt is None:
        return None
    finished = [r for r in rows if r.get("final_test_accuracy") is not None]
    figure, axes = plt.subplots(figsize=(6, 4))
    x_key, other_keys = keys[0], keys[1:]
    numeric = all(_is_number(r[x_key]) for r in finished)
    positions = {v: i for i, v in enumerate(dict.fromkeys(str(r[x_key]) for r in finished))}
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in finished:
        groups.setdefault(tuple(f"{k}={row[k]}" for k in other_keys), []).append(row)
    for group, members in groups.items():
        members = sorted(members, key=lambda r: r[x_key] if numeric else positions[str(r[x_key])])
        xs = [r[x_key] if numeric else positions[str(r[x_key])] for r in members]
        ys = [100 * r["final_test_accuracy"] for r in members]
        axes.plot(xs, ys, "o-", label=", ".join(group) or None)
    if not numeric:
        axes.set_xticks(list(positions.values()), list(positions))
    axes.set(xlabel=x_key, ylabel="final test accuracy (%)", title="Sensitivity")
    axes.grid(alpha=0.3)
    if other_keys:
        axes.legend(fontsize="small")
    figure.tight_layout()
    path = out_dir / "sweep.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
