"""The ``txsim bench`` command."""

from __future__ import annotations

import json
import sys

import click

from txsim_core.bench.configs import CONFIGS, NETWORKS
from txsim_core.bench.runner import BenchSettings, format_report, run_benchmark
from txsim_core.errors import TxsimError


@click.command("bench")
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON list of rows instead of a table."
)
@click.option(
    "--quick", is_flag=True, help="LeNet-5 only (without it, ResNet-20 on CIFAR-sized inputs too)."
)
@click.option(
    "--config",
    "configs",
    multiple=True,
    type=click.Choice(list(CONFIGS)),
    help="Measure only this configuration (repeatable). Default: all.",
)
@click.option(
    "--network",
    "networks",
    multiple=True,
    type=click.Choice(list(NETWORKS)),
    help="Measure only this network (repeatable); overrides --quick.",
)
@click.option(
    "--batches",
    type=click.IntRange(min=1),
    help="Timed minibatches per configuration. Default: a whole epoch of LeNet-5 for every "
    "configuration; on ResNet-20, 8 for native and ideal and 2 for the others.",
)
@click.option("--warmup", type=click.IntRange(min=1), help="Untimed minibatches first.")
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=1))
@click.option("--threads", type=click.IntRange(min=1), help="Torch threads (default: torch's).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option(
    "--memory-limit-gb",
    type=click.FloatRange(min=0),
    help="Address-space cap of each CPU worker (default: 80% of the available memory; 0: none).",
)
def bench_command(
    as_json: bool,
    quick: bool,
    configs: tuple[str, ...],
    networks: tuple[str, ...],
    batches: int | None,
    warmup: int | None,
    batch_size: int,
    threads: int | None,
    device: str,
    seed: int,
    memory_limit_gb: float | None,
) -> None:
    """Training speed and memory of native PyTorch, the ideal crossbar and the paper's system
    (with each circuit solver), as ratios measured in one run."""
    if not networks:
        networks = ("lenet5",) if quick else tuple(NETWORKS)
    try:
        settings = BenchSettings(
            networks=networks,
            configs=configs or None,
            batch_size=batch_size,
            batches=batches,
            warmup=warmup,
            threads=threads,
            device=device,
            seed=seed,
            memory_limit_gb=memory_limit_gb,
        )
    except TxsimError as exc:  # shown as a message also when run outside the txsim group
        raise click.ClickException(str(exc)) from exc
    rows = run_benchmark(settings, progress=lambda line: click.echo(line, file=sys.stderr))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(format_report(rows))
