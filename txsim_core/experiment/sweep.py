"""Sensitivity sweeps: a grid of trials over configuration keys, run by an executor.

A sweep directory holds::

    sweep.json            the swept keys and their values
    summary.csv           one row per trial and mode: the swept keys, mode, status,
                          final_test_accuracy, best_test_accuracy, error
    sweep.png             final test accuracy against the first swept key
    trials/<name>/        each trial's own run directory (see txsim_core.experiment.runner)

Running the same sweep again skips finished trials and resumes unfinished ones from their last
checkpoint; a trial that fails is recorded with its error and the others go on.

An executor decides where the trials run: :class:`LocalExecutor` (the default) runs them in
worker processes on this machine; :class:`txsim_core.experiment.ray_executor.RayExecutor` sends
them to a Ray cluster. Both write the same directory.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

import attrs
import torch

from txsim_core.errors import ConfigError
from txsim_core.experiment.config import Experiment, parse_experiment, parse_value, set_key
from txsim_core.experiment.metrics import atomic_write_text, mode_summary, read_metrics
from txsim_core.experiment.plots import plot_sweep
from txsim_core.experiment.runner import run_is_complete, train_run

SUMMARY_COLUMNS = ("mode", "status", "final_test_accuracy", "best_test_accuracy", "error")


def split_values(text: str) -> list[str]:
    """Split ``V1,V2,...`` at the commas that are outside brackets, braces and quotes."""
    parts, depth, quote, current = [], 0, "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    parts.append(current)
    return [p.strip() for p in parts]


def parse_param(text: str) -> tuple[str, list[Any]]:
    """``KEY=V1,V2,...`` -> the key and its values (each read as a TOML value)."""
    key, sep, values = text.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise ConfigError(f"Expected a swept parameter as KEY=V1,V2,..., but got {text!r}.")
    parsed = [parse_value(v) for v in split_values(values) if v]
    if len({json.dumps(v, sort_keys=True) for v in parsed}) != len(parsed):
        raise ConfigError(f"Expected distinct values for {key.strip()!r}, but got {text!r}.")
    return key.strip(), parsed


def trial_name(assignment: Mapping[str, Any]) -> str:
    """A readable, file-system-safe folder name for one trial, e.g. ``update.nonlinearity=0.1``."""
    parts = []
    for key, value in assignment.items():
        short = ".".join(key.split(".")[-2:])
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        parts.append(f"{short}={text}")
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", "__".join(parts))[:200]


@attrs.frozen
class Trial:
    """One point of the grid: its key values, its experiment and its run directory."""

    assignment: Mapping[str, Any]
    experiment: Experiment
    run_dir: Path


def make_trials(
    raw: Mapping[str, Any],
    params: Sequence[tuple[str, list[Any]]],
    out_dir: Path,
    base_dir: Path | None,
) -> list[Trial]:
    """Every trial of the grid, each validated (a bad key or value fails before any training)."""
    keys = [key for key, _ in params]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"Expected each swept key once, but got {keys}.")
    trials = []
    for values in itertools.product(*(values for _, values in params)):
        assignment = dict(zip(keys, values, strict=True))
        trial_raw = copy.deepcopy(dict(raw))
        for key, value in assignment.items():
            set_key(trial_raw, key, value)
        try:
            experiment = parse_experiment(trial_raw, base_dir=base_dir)
        except ConfigError as exc:
            raise ConfigError(f"In the trial {trial_name(assignment)}: {exc}") from exc
        trials.append(Trial(assignment, experiment, out_dir / "trials" / trial_name(assignment)))
    return trials


def trial_result(trial: Trial, status: str, error: str = "") -> dict[str, Any]:
    """The result of one trial from the metrics in its run directory.

    Args:
        trial: the trial.
        status: ``"complete"`` or ``"failed"``.
        error: why the trial failed (empty when it did not).

    Returns:
        ``{"rows": summary rows (one per mode), "name": run directory name, "status", "error"}``.
    """
    rows = read_metrics(trial.run_dir)
    results = []
    for mode in trial.experiment.train.modes:
        summary = mode_summary(rows, mode)
        results.append(
            {
                **trial.assignment,
                "mode": mode,
                "status": status,
                "final_test_accuracy": summary.get("final_test_accuracy"),
                "best_test_accuracy": summary.get("best_test_accuracy"),
                "error": error,
            }
        )
    return {"rows": results, "name": trial.run_dir.name, "status": status, "error": error}


def run_trial(trial: Trial, threads: int = 0) -> dict[str, Any]:
    """Run (or finish, or skip) one trial; never raises: a failure is returned as its error.

    Args:
        trial: the trial; a run directory that holds a ``config.toml`` is resumed from its last
            checkpoint, one that holds a finished run is only read.
        threads: torch threads to train with (0: leave torch's setting as it is).

    Returns:
        The :func:`trial_result`.
    """
    if threads:
        torch.set_num_threads(threads)
    status, error = "complete", ""
    if not run_is_complete(trial.run_dir):
        try:
            train_run(
                trial.experiment,
                trial.run_dir,
                resume=(trial.run_dir / "config.toml").exists(),
                progress=False,
                echo=lambda text: None,
            )
        except Exception as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
    return trial_result(trial, status, error)


class TrialExecutor(Protocol):
    """Runs the trials of a sweep and reports each result as it finishes."""

    def describe(self) -> str:
        """Where and how the trials run, for the sweep's first line (e.g. ``2 at a time``)."""
        ...

    def run(self, trials: Sequence[Trial]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Run every trial (as :func:`run_trial` does: finish, resume or skip it).

        Args:
            trials: the trials, in grid order.

        Yields:
            ``(index in trials, result)`` as each trial finishes, in any order; a trial that
            could not run yields a ``"failed"`` :func:`trial_result` with the reason.
        """
        ...


@attrs.frozen
class LocalExecutor:
    """Runs the trials on this machine: one after another in this process (``jobs`` = 1), or
    ``jobs`` at a time in spawned worker processes that share the CPU cores' torch threads.

    Args:
        jobs: trials run at once (at least 1).
    """

    jobs: int = 1

    def __attrs_post_init__(self) -> None:
        if self.jobs < 1:
            raise ConfigError(f"Expected at least 1 job, but got {self.jobs}.")

    def describe(self) -> str:
        """``N at a time``."""
        return f"{self.jobs} at a time"

    def run(self, trials: Sequence[Trial]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Run every trial; see :meth:`TrialExecutor.run`."""
        if self.jobs == 1:
            for index, trial in enumerate(trials):
                yield index, run_trial(trial)
            return
        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        with ProcessPoolExecutor(max_workers=self.jobs, mp_context=get_context("spawn")) as pool:
            futures: dict[Future[dict[str, Any]], int] = {
                pool.submit(run_trial, trial, threads): index for index, trial in enumerate(trials)
            }
            for future in as_completed(futures):
                yield futures[future], future.result()


def write_summary(out_dir: Path, keys: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Write ``summary.csv`` (trials in grid order)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*keys, *SUMMARY_COLUMNS], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    atomic_write_text(out_dir / "summary.csv", buffer.getvalue())


def run_sweep(
    trials: Sequence[Trial],
    keys: Sequence[str],
    out_dir: Path,
    *,
    executor: TrialExecutor | None = None,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run every trial with ``executor`` and write ``sweep.json``, ``summary.csv`` (after each
    trial) and ``sweep.png``.

    Args:
        trials: the trials, from :func:`make_trials`.
        keys: the swept keys (the first columns of the summary).
        out_dir: the sweep directory.
        executor: where the trials run (default: :class:`LocalExecutor`, one at a time).
        echo: where the ``[i/n] trial: accuracies`` progress lines go.

    Returns:
        The summary rows, one per trial and mode, in grid order.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    sweep_record = {"keys": list(keys), "trials": [dict(t.assignment) for t in trials]}
    atomic_write_text(out_dir / "sweep.json", json.dumps(sweep_record, indent=2) + "\n")
    results: dict[int, dict[str, Any]] = {}

    def finished(index: int, result: dict[str, Any]) -> None:
        results[index] = result
        outcome = result["status"] if not result["error"] else f"failed: {result['error']}"
        accuracies = ", ".join(
            f"{r['mode']} {100 * r['final_test_accuracy']:.2f}%"
            for r in result["rows"]
            if r["final_test_accuracy"] is not None
        )
        echo(f"[{len(results)}/{len(trials)}] {result['name']}: {accuracies or outcome}")
        if result["error"]:
            echo(f"    {outcome}")
        ordered = [row for i in sorted(results) for row in results[i]["rows"]]
        write_summary(out_dir, keys, ordered)

    for index, result in (executor or LocalExecutor()).run(trials):
        finished(index, result)
    rows = [row for i in sorted(results) for row in results[i]["rows"]]
    plot_keys = [*keys, "mode"] if len(trials[0].experiment.train.modes) > 1 else list(keys)
    plot_sweep(out_dir, plot_keys, rows)
    return rows
