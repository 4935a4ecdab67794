"""The ``txsim train``, ``txsim sweep`` and ``txsim report`` commands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from txsim_core.errors import ConfigError
from txsim_core.experiment.config import MODES, load_experiment, load_raw, set_key
from txsim_core.experiment.parallel import launch, launched_world_size
from txsim_core.experiment.ray_executor import RayExecutor, TrialResources, parse_resources
from txsim_core.experiment.report import report
from txsim_core.experiment.runner import load_run_experiment, train_replica, train_run
from txsim_core.experiment.sweep import (
    LocalExecutor,
    TrialExecutor,
    make_trials,
    parse_param,
    run_sweep,
)


def _modes(text: str | None) -> list[str] | None:
    if text is None:
        return None
    modes = [m.strip() for m in text.split(",") if m.strip()]
    for mode in modes:
        if mode not in MODES:
            raise click.BadParameter(
                f"Expected modes among {', '.join(MODES)}, but got {mode!r}.", param_hint="--mode"
            )
    return modes


def _new_run_dir(config: Path) -> Path:
    base = Path("runs") / config.stem
    candidate, number = base, 1
    while candidate.exists():
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


@click.command("train")
@click.argument("config", required=False, type=click.Path(path_type=Path))
@click.option(
    "--mode",
    "modes",
    metavar="MODES",
    help="Comma-separated modes to train: native, ideal (Cross-Ideal), nonideal (Cross-NI). "
    "Default: train.modes of the configuration (all three unless set).",
)
@click.option("--epochs", type=click.IntRange(min=1), help="Override train.epochs.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override any configuration key, e.g. --set crossbar.update.nonlinearity=0.5 "
    "(repeatable; the value is read as TOML).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Run directory (default: runs/<config name>, numbered if it exists).",
)
@click.option(
    "--resume",
    type=click.Path(path_type=Path, file_okay=False),
    help="Continue the interrupted run in this directory from its last checkpoint.",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Data-parallel replicas on this machine (torch.distributed: gloo on CPU, nccl with one "
    "GPU each on CUDA); each trains on a share of every minibatch. For several machines, run "
    "this command under torchrun instead.",
)
def train_command(
    config: Path | None,
    modes: str | None,
    epochs: int | None,
    overrides: tuple[str, ...],
    out: Path | None,
    resume: Path | None,
    quiet: bool,
    nproc: int,
) -> None:
    """Train the network of CONFIG (a TOML file) natively, on ideal crossbars and on non-ideal
    crossbars, with the same seed, and write metrics, checkpoints and plots to a run directory."""
    if nproc > 1 and launched_world_size() > 1:
        raise click.UsageError(
            "--nproc launches replicas itself: it cannot be given to a replica that torchrun "
            "launched already."
        )
    if resume is not None:
        if config is not None or modes or overrides or out:
            raise click.UsageError(
                "--resume takes the run's own configuration: give only --epochs."
            )
        experiment = load_run_experiment(resume, epochs)
        run_dir = resume
    else:
        if config is None:
            raise click.UsageError("Give a CONFIG file, or --resume DIR.")
        mode_list = _modes(modes)
        settings = [*overrides, *([f"train.modes={mode_list}"] if mode_list else [])]
        experiment = load_experiment(config, settings, epochs)
        run_dir = out or _new_run_dir(config)
    if launched_world_size() > 1 and os.environ.get("RANK", "0") != "0":  # a torchrun replica
        train_run(experiment, run_dir, resume=resume is not None, progress=False)
        return
    click.echo(f"Run directory: {run_dir}")
    if nproc > 1:
        click.echo(f"Training with {nproc} data-parallel replicas.")
        launch(nproc, train_replica, experiment, run_dir, resume is not None, not quiet)
    else:
        train_run(experiment, run_dir, resume=resume is not None, progress=not quiet)
    click.echo(report(run_dir))


def _resources(
    ctx: click.Context, param: click.Parameter, text: str | None
) -> TrialResources | None:
    if text is None:
        return None
    try:
        return parse_resources(text)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


@click.command("sweep")
@click.argument("config", type=click.Path(path_type=Path))
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=V1,V2,...",
    help="A swept key and its values (repeat for a grid), e.g. "
    "--param crossbar.update.nonlinearity=0.01,0.1,1. Default: the [sweep.params] of CONFIG.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where the trials run: worker processes on this machine, or tasks on a Ray cluster "
    '(pip install "txsim[ray]").',
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    help="Trials run at once by the local executor (default 1).",
)
@click.option(
    "--address",
    metavar="ADDR",
    help="Ray executor: the cluster, 'auto' (the one running on this machine) or HOST:PORT of "
    "its head. Default: $RAY_ADDRESS if set, else a new Ray instance on this machine for the "
    "sweep.",
)
@click.option(
    "--resources-per-trial",
    "resources",
    metavar="cpu=N,gpu=M",
    callback=_resources,
    help="Ray executor: what each trial reserves; cpu (whole, also its torch threads) default 1, "
    "gpu (fractional below 1 to share a GPU) default 0.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    help="Ray executor: times a trial whose worker died is run again before it is recorded as "
    "failed (default 2).",
)
@click.option("--epochs", type=click.IntRange(min=1), help="Override train.epochs.")
@click.option(
    "--mode",
    "modes",
    default="nonideal",
    show_default=True,
    metavar="MODES",
    help="Comma-separated modes each trial trains.",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="As for train.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Sweep directory.")
def sweep_command(
    config: Path,
    params: tuple[str, ...],
    executor: str,
    jobs: int | None,
    address: str | None,
    resources: TrialResources | None,
    retries: int | None,
    epochs: int | None,
    modes: str,
    overrides: tuple[str, ...],
    out: Path,
) -> None:
    """Sensitivity analysis: train CONFIG for every combination of the --param values, in
    parallel worker processes or on a Ray cluster, and summarise final and best test accuracy per
    trial."""
    ray_options: dict[str, Any] = {"address": address, "resources": resources, "retries": retries}
    given = {name: value for name, value in ray_options.items() if value is not None}
    runner: TrialExecutor
    if executor == "ray":
        if jobs is not None:
            raise click.UsageError(
                "--jobs is an option of --executor local; on Ray, --resources-per-trial sets what "
                "each trial reserves and the cluster runs as many at once as fit."
            )
        runner = RayExecutor(**given)
    else:
        if given:
            flags = {"address": "--address", "resources": "--resources-per-trial"}
            names = ", ".join(flags.get(name, f"--{name}") for name in given)
            raise click.UsageError(f"{names}: option(s) of --executor ray, not of local.")
        runner = LocalExecutor(jobs or 1)
    raw = load_raw(config, overrides)
    set_key(raw, "train.modes", _modes(modes))
    if epochs is not None:
        set_key(raw, "train.epochs", epochs)
    swept = [parse_param(p) for p in params] or list(load_experiment(config).sweep.items())
    if not swept:
        raise click.UsageError("Give --param KEY=V1,V2,... or a [sweep.params] table in CONFIG.")
    trials = make_trials(raw, swept, out, base_dir=config.parent.resolve())
    click.echo(f"Sweep of {len(trials)} trials in {out} ({runner.describe()}).")
    rows = run_sweep(trials, [k for k, _ in swept], out, executor=runner, echo=click.echo)
    click.echo(report(out))
    failed = sum(r["status"] == "failed" for r in rows)
    if failed:
        raise click.ClickException(f"{failed} trial row(s) failed; see {out / 'summary.csv'}.")


@click.command("report")
@click.argument("directory", type=click.Path(path_type=Path, exists=True, file_okay=False))
def report_command(directory: Path) -> None:
    """Print the summary of a run or sweep DIRECTORY."""
    click.echo(report(directory))


COMMANDS = (train_command, sweep_command, report_command)
"""The experiment commands that ``txsim`` adds to its group."""
