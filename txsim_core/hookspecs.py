"""Hook specifications: what a txsim plugin can provide.

A plugin is a module (named by an entry point in the ``txsim`` group) holding functions marked
with :data:`hookimpl`. Each model hook returns an iterable of :class:`~txsim_core.specs.ModelSpec`;
txsim calls every implementation on its own, to record which plugin provided which model, so
hook wrappers are not supported. Import heavy modules inside the hook, not at module level.

Each specification's docstring ends with a complete example plugin; ``tests/test_hookspecs.py``
runs every one of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from txsim_core.specs import ModelSpec

PROJECT = "txsim"
"""The pluggy project name, which is also the entry-point group plugins register in."""

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def txsim_dac_models() -> Iterable[ModelSpec]:
    """Register digital-to-analog converter models (see :class:`txsim_core.interfaces.DAC`).

    Example::

        import attrs
        import torch

        from txsim_core import ModelSpec, hookimpl
        from txsim_core.interfaces import DAC
        from txsim_core.params import parameter

        @attrs.frozen(kw_only=True)
        class UnipolarParams:
            v_read: float = parameter(0.5, unit="V", low=0.0, low_open=True,
                                      help="Voltage of a full-scale input.")

        class UnipolarDAC(DAC):
            def num_passes(self, bits):
                return 2  # positive inputs first, then negative ones

            def forward(self, x, bits):
                v = self.params.v_read
                volts = torch.stack((x.clamp(min=0), (-x).clamp(min=0))) * v
                return volts, torch.tensor([1 / v, -1 / v])

        @hookimpl
        def txsim_dac_models():
            yield ModelSpec(name="unipolar", factory=UnipolarDAC, params=UnipolarParams,
                            summary="Positive voltages only, two passes")

    Returns:
        Model specs; a name must be unique among all installed DAC models.
    """
    return ()


@hookspec
def txsim_adc_models() -> Iterable[ModelSpec]:
    """Register analog-to-digital converter models (see :class:`txsim_core.interfaces.ADC`).

    Example::

        import attrs
        import torch

        from txsim_core import ModelSpec, hookimpl
        from txsim_core.interfaces import ADC
        from txsim_core.params import parameter

        @attrs.frozen(kw_only=True)
        class ClipParams:
            full_scale: float = parameter(1e-4, unit="A", low=0.0, low_open=True,
                                          help="Largest current converted without clipping.")

        class ClippingADC(ADC):
            def forward(self, current):
                fs = self.params.full_scale
                return current.clamp(-fs, fs)

        @hookimpl
        def txsim_adc_models():
            yield ModelSpec(name="clipping", factory=ClippingADC, params=ClipParams,
                            summary="Exact within +-full_scale, clipped beyond")

    Returns:
        Model specs; a name must be unique among all installed ADC models.
    """
    return ()


@hookspec
def txsim_mapping_models() -> Iterable[ModelSpec]:
    """Register devices: weight-to-conductance mappings (see :class:`txsim_core.interfaces.Mapping`).

    Example::

        import attrs
        import torch

        from txsim_core import ModelSpec, hookimpl
        from txsim_core.interfaces import DifferentialMapping
        from txsim_core.params import parameter

        @attrs.frozen(kw_only=True)
        class MyDeviceParams:
            r_on: float = parameter(5e4, unit="Ohm", low=0.0, low_open=True,
                                    help="Resistance of the fully on device.")
            r_off: float = parameter(5e5, unit="Ohm", low=0.0, low_open=True,
                                     help="Resistance of the fully off device.")
            cell_bits: int = parameter(3, kind=int, low=1, help="Bits per device.")

        class MyDevice(DifferentialMapping):
            g_min = property(lambda self: 1 / self.params.r_off)
            g_max = property(lambda self: 1 / self.params.r_on)

        @hookimpl
        def txsim_mapping_models():
            yield ModelSpec(name="my-device", factory=MyDevice, params=MyDeviceParams,
                            summary="3-bit cells between 50 kOhm and 500 kOhm")

    Returns:
        Model specs; a name must be unique among all installed mapping models.
    """
    return ()


@hookspec
def txsim_solver_models() -> Iterable[ModelSpec]:
    """Register array solvers (see :class:`txsim_core.interfaces.ArraySolver`).

    Example::

        import attrs

        from txsim_core import ModelSpec, hookimpl
        from txsim_core.interfaces import ArraySolver
        from txsim_core.params import parameter

        @attrs.frozen(kw_only=True)
        class SeriesParams:
            r_series: float = parameter(100.0, unit="Ohm", low=0.0,
                                        help="Resistance in series with every cell.")

        class SeriesSolver(ArraySolver):
            def effective_conductance(self, g, direction="forward"):
                return g / (1 + g * self.params.r_series)

        @hookimpl
        def txsim_solver_models():
            yield ModelSpec(name="series", factory=SeriesSolver, params=SeriesParams,
                            summary="A fixed series resistance per cell, no wires")

    Returns:
        Model specs; a name must be unique among all installed solver models.
    """
    return ()


@hookspec
def txsim_update_models() -> Iterable[ModelSpec]:
    """Register conductance update models (see :class:`txsim_core.interfaces.UpdateModel`).

    Example::

        import attrs
        import torch

        from txsim_core import ModelSpec, hookimpl
        from txsim_core.interfaces import UpdateModel
        from txsim_core.params import parameter

        @attrs.frozen(kw_only=True)
        class HalfStepParams:
            g_min: float = parameter(1e-6, unit="S", low=0.0, help="Lowest conductance.")
            g_max: float = parameter(1e-5, unit="S", low=0.0, help="Highest conductance.")

        class HalfStep(UpdateModel):
            g_min = property(lambda self: self.params.g_min)
            g_max = property(lambda self: self.params.g_max)

            def step(self, g, dg, generator=None):
                return (g + 0.5 * dg).clamp(self.g_min, self.g_max)

        @hookimpl
        def txsim_update_models():
            yield ModelSpec(name="half-step", factory=HalfStep, params=HalfStepParams,
                            summary="Devices that move half as far as asked")

    Returns:
        Model specs; a name must be unique among all installed update models.
    """
    return ()


@hookspec
def txsim_register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``txsim`` command.

    Example::

        import click

        from txsim_core import hookimpl

        @hookimpl
        def txsim_register_commands(cli):
            @cli.command(name="hello-device")
            @click.argument("name")
            def hello_device(name):
                "Greet a device."
                click.echo(f"Hello, {name}!")

    Args:
        cli: the ``txsim`` click group; add commands to it with ``@cli.command()``.
    """
