"""The ``txsim`` command.

Every :class:`~txsim_core.errors.TxsimError` is shown as one message (no traceback) with exit
status 1. Plugins add subcommands through the ``txsim_register_commands`` hook.
"""

from __future__ import annotations

import json
from typing import Any

import click

from txsim_core.bench.command import bench_command
from txsim_core.errors import TxsimError
from txsim_core.experiment.commands import COMMANDS
from txsim_core.params import describe_params
from txsim_core.registry import default_registry
from txsim_core.specs import Kind, ModelSpec
from txsim_core.tables import format_table


class TxsimGroup(click.Group):
    """A click group that shows txsim's errors as plain messages."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TxsimError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=TxsimGroup)
@click.version_option(package_name="txsim", prog_name="txsim")
def cli() -> None:
    """txsim: simulate DNN training on resistive-crossbar hardware."""


def _spec_record(spec: ModelSpec) -> dict[str, Any]:
    return {
        "kind": spec.kind.value if spec.kind else "",
        "name": spec.name,
        "plugin": spec.plugin,
        "distribution": spec.distribution,
        "version": spec.version,
        "summary": spec.summary,
        "class": f"{spec.factory.__module__}.{spec.factory.__qualname__}",
        "params": [p.as_dict() for p in describe_params(spec.params)],
    }


@cli.command("list-models")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice([k.value for k in Kind]),
    help="Only models of this kind (repeatable).",
)
@click.option(
    "--params",
    "show_params",
    is_flag=True,
    help="Show each model's parameters: type, default, unit, allowed values, meaning.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_models_command(kinds: tuple[str, ...], show_params: bool, as_json: bool) -> None:
    """List every registered model: kind, name, providing distribution, summary."""
    registry = default_registry()
    specs = [s for s in registry.specs() if not kinds or (s.kind and s.kind.value in kinds)]
    if as_json:
        click.echo(json.dumps([_spec_record(s) for s in specs], indent=2, default=str))
        return
    if not specs:
        click.echo("No models found.")
        return
    rows = [(s.kind.value if s.kind else "", s.name, s.provider, s.summary) for s in specs]
    if not show_params:
        click.echo(format_table(("Kind", "Name", "Provider", "Summary"), rows))
        return
    for spec, row in zip(specs, rows, strict=True):
        click.echo(f"{row[0]} {row[1]}  ({row[2]}): {row[3]}")
        infos = describe_params(spec.params)
        if not infos:
            click.echo("    (no parameters)")
        for p in infos:
            unit = f" [{p.unit}]" if p.unit else ""
            click.echo(f"    {p.name}: {p.type} = {p.default!r}{unit}  allowed: {p.allowed}")
            click.echo(f"        {p.help}")
        click.echo()


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def plugins_command(as_json: bool) -> None:
    """List the plugin distributions: status (loaded, failed, blocked) and what they provide."""
    registry = default_registry()
    registry.specs()  # collecting the models can reveal plugins that fail later
    infos = registry.manager.plugin_infos()
    if as_json:
        click.echo(json.dumps([i.as_dict() for i in infos], indent=2))
        return
    rows = [(i.name, i.distribution, i.version, i.status, ", ".join(i.provides)) for i in infos]
    click.echo(format_table(("Plugin", "Distribution", "Version", "Status", "Provides"), rows))
    for info in infos:
        if info.error:
            click.echo(f"{info.name}: {info.error}")


for _command in (*COMMANDS, bench_command):
    cli.add_command(_command)


def main(args: list[str] | None = None) -> Any:
    """Entry point of the ``txsim`` script: add plugin commands, then run."""
    try:
        default_registry().manager.hook.txsim_register_commands(cli=cli)
    except TxsimError as exc:
        raise SystemExit(f"Error: {exc}") from exc
    return cli.main(args=args, prog_name="txsim")
