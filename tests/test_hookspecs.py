"""Every hook spec is documented with an example plugin, and every example really works."""

from __future__ import annotations

import inspect
import textwrap
import types

import click
import pytest
import torch

from txsim_core import hookspecs
from txsim_core.manager import PluginManager
from txsim_core.registry import Registry
from txsim_core.specs import Kind

HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("txsim_"))


def example_plugin(hook_name: str) -> types.ModuleType:
    doc = inspect.getdoc(getattr(hookspecs, hook_name)) or ""
    assert "Example::" in doc, f"{hook_name} has no example"
    block = doc.split("Example::", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith("    "):
            break
        lines.append(line)
    module = types.ModuleType(f"example_{hook_name}")
    exec(textwrap.dedent("\n".join(lines)), module.__dict__)
    return module


def test_every_hook_is_a_spec_of_the_txsim_project():
    assert HOOKS == [
        "txsim_adc_models",
        "txsim_dac_models",
        "txsim_mapping_models",
        "txsim_register_commands",
        "txsim_solver_models",
        "txsim_update_models",
    ]
    for name in HOOKS:
        assert getattr(hookspecs, name).txsim_spec is not None


@pytest.mark.parametrize("kind", list(Kind))
def test_model_hook_example_registers_and_builds(kind):
    plugin = example_plugin(f"txsim_{kind.value}_models")
    manager = PluginManager(autoload=False)
    assert manager.register_plugin(plugin, name="example")
    registry = Registry(manager)
    specs = [s for s in registry.specs(kind) if s.plugin == "example"]
    assert len(specs) == 1
    model = registry.build(kind, specs[0].name)
    g = torch.full((3, 4), 5e-6)
    if kind is Kind.DAC:
        x = torch.tensor([[0.5, -0.25, 1.0]])
        volts, weights = model(x, None)
        assert torch.allclose(torch.einsum("p,p...->...", weights, volts), x)
    elif kind is Kind.ADC:
        assert model(torch.tensor([[[5e-5, 2e-4]]])).max() == pytest.approx(1e-4)
    elif kind is Kind.MAPPING:
        w = torch.tensor([[0.5, -1.0], [0.0, 3 / 7]])
        encoded = model.encode(w, 4)
        decoded = torch.einsum(
            "s,s...->...",
            model.significance(4).float(),
            encoded[..., 0, :, :] - encoded[..., 1, :, :],
        )
        assert torch.allclose(decoded, torch.round(w * 7) / 7, atol=1e-6)
    elif kind is Kind.SOLVER:
        assert (model.effective_conductance(g) < g).all()
    else:
        assert torch.allclose(model.step(g, torch.full_like(g, 2e-6)), g + 1e-6)


def test_command_hook_example_adds_a_command():
    plugin = example_plugin("txsim_register_commands")
    group = click.Group()
    manager = PluginManager(autoload=False)
    manager.register_plugin(plugin, name="example")
    manager.hook.txsim_register_commands(cli=group)
    from click.testing import CliRunner

    assert CliRunner().invoke(group, ["hello-device", "reram"]).output == "Hello, reram!\n"


def test_every_hook_is_in_the_hook_reference():
    from pathlib import Path

    reference = (Path(__file__).parents[1] / "docs" / "plugins" / "hooks.md").read_text()
    for name in HOOKS:
        assert f"## {name}\n" in reference
        assert f"`{name}(" in reference
