"""A training run: its directory, its modes one after another, metrics, plots and resume.

A run directory holds::

    config.toml           the resolved configuration (overrides applied); resume reads it
    metrics.csv           mode,epoch,train_loss,train_accuracy,test_accuracy,seconds
    metrics.jsonl         the same rows as JSON lines
    accuracy.png          test accuracy and training loss against epoch, one line per mode
    checkpoints/<mode>/   one checkpoint per epoch (and one where Ctrl-C stopped the run)
    summary.json          written when every mode has finished
"""

from __future__ import annotations

import functools
import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import tomllib
import torch

from txsim_core.data import DataSplits, load_dataset
from txsim_core.errors import ConfigError
from txsim_core.experiment.checkpoint import latest_checkpoint
from txsim_core.experiment.config import Experiment, parse_experiment
from txsim_core.experiment.metrics import atomic_write_text, mode_summary, write_metrics
from txsim_core.experiment.parallel import STOP_SIGNAL, joined_replicas
from txsim_core.experiment.plots import plot_run
from txsim_core.experiment.toml_writer import dumps
from txsim_core.experiment.trainer import ModeTrainer, build_system, stop_requests


def resolve_device(name: str) -> torch.device:
    """The torch device of ``train.device``; raises :class:`ConfigError` if it is not available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(
            f"Expected `train.device` to be 'cpu', 'cuda', 'cuda:N' or 'auto', but got {name!r}."
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"Expected a CUDA device for `train.device` = {name!r}, but torch sees none; use "
            "'cpu' or 'auto'."
        )
    return device


def load_data(experiment: Experiment) -> DataSplits:
    """The data set of the experiment."""
    data = experiment.data
    return load_dataset(
        data.name,
        path=data.path,
        seed=data.seed,
        test_fraction=data.test_fraction,
        limit_train=data.limit_train,
        limit_test=data.limit_test,
        **data.options,
    )


def check_experiment(experiment: Experiment) -> tuple[DataSplits, torch.device]:
    """Load the data and build every mode's network once, so that an unknown network, model or
    option, or a missing data path, fails before any training starts."""
    device = resolve_device(experiment.train.device)
    splits = load_data(experiment)
    for mode in experiment.train.modes:
        build_system(experiment, mode, splits, torch.device("cpu"))
    return splits, device


def run_is_complete(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` has finished every mode."""
    return (run_dir / "summary.json").is_file()


def train_run(
    experiment: Experiment,
    run_dir: Path,
    *,
    resume: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = click.echo,
    stop_signal: int = signal.SIGINT,
) -> list[dict[str, Any]]:
    """Train every mode of ``experiment`` in ``run_dir`` and write all its artefacts.

    In a process launched as one replica of a data-parallel run (by ``txsim train --nproc``
    or ``torchrun``, see txsim_core.experiment.parallel) every replica calls this function;
    rank 0 prints and writes the files.

    Args:
        experiment: the validated experiment.
        run_dir: the run directory (created if needed).
        resume: continue the checkpoints found in ``run_dir``; otherwise ``run_dir`` must not
            hold a run already.
        progress: show progress bars.
        echo: where the one-line epoch summaries go.
        stop_signal: the signal that asks to stop after the current batch with a checkpoint.

    Returns:
        The metrics rows of every mode and epoch.
    """
    with joined_replicas(experiment.train.device) as replicas:
        main = replicas is None or replicas.is_main

        def prepare() -> None:
            if not resume and (run_dir / "config.toml").exists():
                raise ConfigError(
                    f"Expected a new run directory, but {str(run_dir)!r} already holds a run; "
                    f"continue it with `txsim train --resume {run_dir}` or choose another --out."
                )
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "summary.json").unlink(missing_ok=True)  # a resumed run may train more
            atomic_write_text(run_dir / "config.toml", dumps(experiment.raw))

        splits, device = check_experiment(experiment)
        if replicas is None:
            prepare()
        else:
            replicas.agree(prepare)
            device = replicas.device
        rows: list[dict[str, Any]] = []

        def record(row: dict[str, Any]) -> None:
            rows.append(row)
            if not main:
                return
            write_metrics(run_dir, rows)
            plot_run(run_dir, rows)
            echo(
                f"{row['mode']:>8} epoch {row['epoch']}: train loss {row['train_loss']:.4f}, "
                f"train {100 * row['train_accuracy']:.2f}%, test "
                f"{100 * row['test_accuracy']:.2f}% ({row['seconds']:.1f} s)"
            )

        with stop_requests(stop_signal) as stop_requested:
            for mode in experiment.train.modes:
                trainer = ModeTrainer(
                    experiment,
                    mode,
                    splits,
                    run_dir,
                    device,
                    progress=progress and main,
                    on_epoch=record,
                    replicas=replicas,
                )
                if not resume:
                    state = None
                elif replicas is None:
                    state = latest_checkpoint(run_dir, mode)
                else:
                    state = replicas.agree(functools.partial(latest_checkpoint, run_dir, mode))
                if state is not None:
                    trainer.restore(state)
                    rows.extend(trainer.history)
                trainer.run(stop_requested)
    if main:
        write_metrics(run_dir, rows)
        plot_run(run_dir, rows)
        summary = {
            "status": "complete",
            "modes": [mode_summary(rows, m) for m in experiment.train.modes],
        }
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return rows


def train_replica(experiment: Experiment, run_dir: Path, resume: bool, progress: bool) -> None:
    """One replica of ``txsim train --nproc`` (see :func:`txsim_core.experiment.parallel.launch`):
    :func:`train_run`, stopping on the launcher's signal."""
    train_run(experiment, run_dir, resume=resume, progress=progress, stop_signal=STOP_SIGNAL)


def load_run_experiment(run_dir: Path, epochs: int | None = None) -> Experiment:
    """The experiment of an existing run directory (its ``config.toml``), for ``--resume``."""
    path = run_dir / "config.toml"
    if not path.is_file():
        raise ConfigError(
            f"Expected a run directory with a config.toml to resume, but {str(run_dir)!r} has none."
        )
    raw = tomllib.loads(path.read_text())
    if epochs is not None:
        raw.setdefault("train", {})["epochs"] = epochs
    return parse_experiment(raw, base_dir=run_dir)
