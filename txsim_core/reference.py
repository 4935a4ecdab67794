"""The generated reference pages of the documentation: the CLI, every config key, every model.

The pages are generated from the code (click's help, the parameter declarations), so they cannot
drift from it; ``tests/test_docs.py`` fails when the committed pages differ from what this module
generates. Regenerate them with::

    python -m txsim_core.reference docs/reference
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import attrs
import click

from txsim_core.calibration import FullScaleParams
from txsim_core.crossbar.config import ArraySettings
from txsim_core.experiment.config import DataSettings, ModelSettings, TrainSettings
from txsim_core.params import ParamInfo, describe_params
from txsim_core.registry import Registry
from txsim_core.specs import Kind


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def params_table(infos: Iterable[ParamInfo]) -> str:
    """A Markdown table of parameters: name, type, default, unit, allowed values, meaning."""
    rows = ["| name | type | default | unit | allowed | meaning |", "|---|---|---|---|---|---|"]
    for p in infos:
        default = "" if isinstance(p.default, attrs.Factory) else repr(p.default)  # type: ignore[arg-type]
        cells = (f"`{p.name}`", p.type, default, p.unit, p.allowed, p.help)
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows)


def cli_reference(group: click.Group) -> str:
    """Every command's ``--help``, as one page."""
    parts = ["# Command line", "", "Generated from `txsim <command> --help`.", ""]
    for name in sorted(group.commands):
        command = group.commands[name]
        with click.Context(
            command, info_name=f"txsim {name}", terminal_width=100, max_content_width=100
        ) as ctx:
            parts += [f"## txsim {name}", "", "```text", command.get_help(ctx), "```", ""]
    return "\n".join(parts)


def config_reference() -> str:
    """Every key of an experiment file, table by table."""
    sections = [
        ("[model]", ModelSettings, "Other keys are the network's options (see the model zoo)."),
        ("[data]", DataSettings, "Other keys are the data set's options."),
        ("[train]", TrainSettings, ""),
        (
            "[crossbar]",
            ArraySettings,
            "Plus one table per model slot (`device`, `dac`, `adc`, `solver`, `update`) with the "
            "model's `name` and parameters (see [Models](models.md)), a `backward` table with the "
            "`dac` and `adc` of the backward pass, and `[[crossbar.layers]]` rules: `match` (a "
            "module-name pattern), `digital = true`, or any of the keys above. `refresh_every` is "
            "written in the `solver` table.",
        ),
    ]
    parts = [
        "# Configuration keys",
        "",
        "Generated from the declarations in `txsim_core.experiment.config` and "
        "`txsim_core.crossbar.config`. `[sweep.params]` maps dotted keys to lists of values for "
        "`txsim sweep`.",
        "",
    ]
    for title, cls, note in sections:
        infos = [i for i in describe_params(cls) if i.name != "options"]
        parts += [f"## {title}", "", params_table(infos), ""]
        if note:
            parts += [note, ""]
    parts += [
        "## ADC full scale",
        "",
        "Every ADC that calibrates its full scale (`uniform`, `sar`) takes these parameters:",
        "",
        params_table(describe_params(FullScaleParams)),
        "",
    ]
    return "\n".join(parts)


def models_reference(registry: Registry) -> str:
    """Every registered model with its parameters, kind by kind."""
    parts = [
        "# Models",
        "",
        "Generated from the models registered by the installed plugins (`txsim list-models "
        "--params` prints the same).",
        "",
    ]
    for kind in Kind:
        parts += [f"## {kind.value}", ""]
        for spec in registry.specs(kind):
            parts += [
                f"### {kind.value} `{spec.name}`",
                "",
                f"{spec.summary} ({spec.provider})",
                "",
            ]
            infos = describe_params(spec.params)
            parts += [params_table(infos) if infos else "No parameters.", ""]
    return "\n".join(parts)


def write_reference(folder: Path, registry: Registry | None = None) -> list[Path]:
    """Write ``cli.md``, ``config.md`` and ``models.md`` into ``folder``; returns the paths."""
    from txsim_core.cli import cli

    folder.mkdir(parents=True, exist_ok=True)
    pages = {
        "cli.md": cli_reference(cli),
        "config.md": config_reference(),
        "models.md": models_reference(registry or Registry()),
    }
    paths = []
    for name, text in pages.items():
        path = folder / name
        path.write_text(text)
        paths.append(path)
    return paths


def main(argv: list[str]) -> None:
    """``python -m txsim_core.reference [FOLDER]``: write the pages (default ``docs/reference``)."""
    if len(argv) > 1 or (argv and argv[0].startswith("-")):
        print("usage: python -m txsim_core.reference [FOLDER]  (default: docs/reference)")
        raise SystemExit(0 if argv and argv[0] in ("-h", "--help") else 2)
    for written in write_reference(Path(argv[0] if argv else "docs/reference")):
        print(written)


if __name__ == "__main__":
    main(sys.argv[1:])
