"""Small, real models registered through the hooks, used to exercise the crossbar layers.

They are not stubs: each does what its docstring says, so the layer tests can check the layers
against closed-form expectations.
"""

from __future__ import annotations

import attrs
import torch

from txsim_core import ModelSpec, hookimpl
from txsim_core.builtin.ideal import NoParams
from txsim_core.interfaces import ADC, DAC, ArraySolver, UpdateModel
from txsim_core.manager import PluginManager
from txsim_core.params import parameter
from txsim_core.registry import Registry

QUANTIZED_SMALL_ARRAYS = {
    "rows": 8,
    "cols": 8,
    "weight_bits": 6,
    "input_bits": 5,
    "error_bits": 5,
    "device": {"name": "ideal", "cell_bits": 2},
    "dac": "sign-phase",
    "adc": {"name": "uniform", "bits": 6},
}
"""A crossbar table for layer tests: 8 x 8 arrays (layers span several), two-bit cells, the
two-pass test DAC and a calibrated 6-bit uniform ADC."""


class PassThroughADC(ADC):
    """Exact conversion that does not declare itself exact: forces per-array conversion."""

    def forward(self, current):
        return current


@attrs.frozen(kw_only=True)
class ClipParams:
    full_scale: float = parameter(1e-4, unit="A", low=0.0, low_open=True, help="Clip level.")


class ClipADC(ADC):
    """Exact within +-full_scale, clipped beyond: a non-ideality that vanishes as full_scale grows."""

    def forward(self, current):
        return current.clamp(-self.params.full_scale, self.params.full_scale)


class SignPhaseDAC(DAC):
    """Two passes: the positive part of the input, then the negative part (both at +V)."""

    def num_passes(self, bits):
        return 2

    def forward(self, x, bits):
        volts = torch.stack((x.clamp(min=0), (-x).clamp(min=0)))
        return volts, torch.tensor([1.0, -1.0], dtype=x.dtype, device=x.device)


@attrs.frozen(kw_only=True)
class SeriesParams:
    r_series: float = parameter(1000.0, unit="Ohm", low=0.0, help="Series resistance per cell.")


class SeriesSolver(ArraySolver):
    """Each cell in series with r_series (no wires): g_eff = g / (1 + g r); counts its solves."""

    def __init__(self, params):
        super().__init__(params)
        self.solved_arrays = 0

    def effective_conductance(self, g, direction="forward"):
        self.solved_arrays += g[..., 0, 0].numel()
        r = self.params.r_series if direction == "forward" else 2 * self.params.r_series
        return g / (1 + g * r)


@attrs.frozen(kw_only=True)
class DampedParams:
    g_min: float = parameter(1e-6, unit="S", low=0.0, low_open=True, help="Lowest conductance.")
    g_max: float = parameter(1e-5, unit="S", low=0.0, low_open=True, help="Highest conductance.")
    damping: float = parameter(0.5, low=0.0, high=1.0, help="Fraction of the request not written.")


class DampedUpdate(UpdateModel):
    """Writes (1 - damping) of every requested change, clipped to the range."""

    g_min = property(lambda self: self.params.g_min)
    g_max = property(lambda self: self.params.g_max)

    def step(self, g, dg, generator=None):
        return (g + (1 - self.params.damping) * dg).clamp(self.g_min, self.g_max)


class TestModels:
    @hookimpl
    def txsim_adc_models(self):
        yield ModelSpec(name="pass-through", factory=PassThroughADC, params=NoParams, summary="")
        yield ModelSpec(name="clip", factory=ClipADC, params=ClipParams, summary="")

    @hookimpl
    def txsim_dac_models(self):
        yield ModelSpec(name="sign-phase", factory=SignPhaseDAC, params=NoParams, summary="")

    @hookimpl
    def txsim_solver_models(self):
        yield ModelSpec(name="series", factory=SeriesSolver, params=SeriesParams, summary="")

    @hookimpl
    def txsim_update_models(self):
        yield ModelSpec(name="damped", factory=DampedUpdate, params=DampedParams, summary="")


def registry_with_test_models() -> Registry:
    manager = PluginManager(autoload=False)
    manager.register_plugin(TestModels(), name="test-models", distribution="tests", version="0")
    return Registry(manager)
