"""A fake installed plugin: one DAC model and one command."""

import attrs
import click
import torch

from txsim_core import ModelSpec, hookimpl
from txsim_core.interfaces import DAC


@attrs.frozen(kw_only=True)
class NoParams:
    """No parameters."""


class DoublingDAC(DAC):
    """Drives twice the ideal voltage (a test double with real behaviour)."""

    def num_passes(self, bits):
        return 1

    def forward(self, x, bits):
        return (2.0 * x).unsqueeze(0), torch.tensor([0.5])


@hookimpl
def txsim_dac_models():
    yield ModelSpec(name="fake-dac", factory=DoublingDAC, params=NoParams, summary="Fake DAC")


@hookimpl
def txsim_register_commands(cli):
    @cli.command(name="fake-hello")
    def fake_hello():
        """Say hello from the fake plugin."""
        click.echo("hello from fake-ok")
