"""Conformance tests that a plugin's test suite subclasses: one base class per model kind.

Opt-in: nothing here runs unless a test module subclasses a base under a ``Test`` name (pytest
collects only those), so importing txsim never adds tests to another project's run. A plugin's
tests say which model they check and which parameter values must be refused::

    from txsim_core.testing.conformance import MappingConformance

    class TestMyDeviceConformance(MappingConformance):
        name = "my-device"                        # the registered name
        params = {"cell_bits": 2}                 # parameters for the checks (default: none)
        bad_params = [({"r_on": -1.0}, "r_on")]   # (parameters, text the ConfigError must name)

Every base checks the registration (under its name and kind, from an installed distribution),
that the defaults construct, that the bad parameters raise :class:`~txsim_core.ConfigError`
naming the problem, that every parameter is documented, and the contract of its kind (shapes,
dtypes, no NaN, reproducibility under a seeded generator, and the kind's own law: the DAC's pass
weights recombine its inputs, the solver tends to the ideal one when the wires vanish, ...).
Tests use the models through a fresh :class:`~txsim_core.registry.Registry`, which loads the
installed plugins through their entry points as users get them.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import attrs
import pytest
import torch

from txsim_core.errors import ConfigError
from txsim_core.interfaces import ADC, DAC, ArraySolver, Mapping, UpdateModel
from txsim_core.registry import Registry
from txsim_core.specs import Kind
from txsim_core.testing.parts import SplitCurrents

DTYPES = (torch.float32, torch.float64)


def _generator(seed: int = 1234) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class ModelConformance:
    """Checks every model kind shares. Subclasses set :attr:`kind`; plugins set the rest.

    Attributes:
        kind: the model kind (set by the per-kind bases).
        name: the registered name of the model under test.
        params: parameters used to build the model for the checks.
        bad_params: ``(parameters, text)`` pairs: each must raise ConfigError containing ``text``.
    """

    kind: ClassVar[Kind]
    name: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}
    bad_params: ClassVar[list[tuple[dict[str, Any], str]]] = []

    @pytest.fixture
    def registry(self) -> Registry:
        """A fresh registry with the installed plugins."""
        return Registry()

    @pytest.fixture
    def model(self, registry: Registry) -> Any:
        """The model under test, built with :attr:`params`."""
        return registry.build(self.kind, self.name, **self.params)

    def test_registered_under_its_name_by_an_installed_distribution(
        self, registry: Registry
    ) -> None:
        spec = registry.get(self.kind, self.name)
        assert spec.kind == self.kind and spec.name == self.name
        assert spec.distribution, "the model should come from an installed distribution"

    def test_defaults_construct(self, registry: Registry) -> None:
        model = registry.build(self.kind, self.name)
        assert isinstance(model, torch.nn.Module)

    def test_bad_parameters_raise_config_errors_naming_the_problem(
        self, registry: Registry
    ) -> None:
        assert self.bad_params, "list at least one invalid parameter set in `bad_params`"
        for params, text in self.bad_params:
            with pytest.raises(ConfigError, match=text):
                registry.build(self.kind, self.name, **params)

    def test_every_parameter_is_documented(self, registry: Registry) -> None:
        spec = registry.get(self.kind, self.name)
        for field in attrs.fields(spec.params):
            assert field.metadata.get("help"), f"parameter {field.name!r} has no help text"
            assert "unit" in field.metadata, f"parameter {field.name!r} declares no unit"


class DACConformance(ModelConformance):
    """The DAC contract. ``bits``: the precisions checked (None: full precision, where allowed)."""

    kind = Kind.DAC
    bits: ClassVar[tuple[int | None, ...]] = (4, 8)
    tolerance: ClassVar[float] = 1e-6
    """Largest ``|sum_p w_p V_p - x|`` allowed, relative to full scale (raise it for a DAC with
    a deliberate non-linearity in :attr:`params`)."""

    def test_shapes_dtypes_and_recombination(self, model: DAC) -> None:
        for bits in self.bits:
            for dtype in DTYPES:
                levels = 2 ** ((bits or 24) - 1) - 1
                x = torch.randint(-levels, levels + 1, (3, 5, 7), generator=_generator())
                x = x.to(dtype) / levels
                volts, weights = model(x, bits)
                passes = model.num_passes(bits)
                assert volts.shape == (passes, *x.shape) and weights.shape == (passes,)
                assert volts.dtype == dtype and bool(torch.isfinite(volts).all())
                recombined = torch.tensordot(weights.to(dtype), volts, dims=1)
                assert float((recombined - x).abs().max()) <= self.tolerance

    def test_deterministic(self, model: DAC) -> None:
        x = torch.rand(4, 6, generator=_generator()) * 2 - 1
        bits = self.bits[-1]
        if bits is not None:
            x = torch.round(x * (2 ** (bits - 1) - 1)) / (2 ** (bits - 1) - 1)
        first, second = model(x, bits), model(x, bits)
        assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


class ADCConformance(ModelConformance):
    """The ADC contract: shape and dtype kept, finite codes, monotone on a ramp, seeded,
    ``convert_in_place`` and conversion in parts equal to ``forward``, and a converter that
    calls a zero current silent converts it to 0 without a trace."""

    kind = Kind.ADC
    units: ClassVar[int] = 3
    channels: ClassVar[int] = 5

    def _converted(self, registry: Registry, current: torch.Tensor, seed: int) -> torch.Tensor:
        adc = cast(ADC, registry.build(self.kind, self.name, **self.params))
        adc.setup(self.units, self.channels, _generator(seed))
        return adc(current)

    def _ramp(self, dtype: torch.dtype) -> torch.Tensor:
        ramp = torch.linspace(-1e-5, 1e-5, 401, dtype=dtype)
        return ramp.view(-1, 1, 1).expand(-1, self.units, self.channels).contiguous()

    def _twins(self, registry: Registry) -> list[ADC]:
        """Two converters set up from one seed."""
        adcs = []
        for _ in range(2):
            adc = cast(ADC, registry.build(self.kind, self.name, **self.params))
            adc.setup(self.units, self.channels, _generator(7))
            adcs.append(adc)
        return adcs

    def _growing_batches(self) -> list[torch.Tensor]:
        """Minibatches whose currents grow, then shrink (a calibrated full scale grows, holds)."""
        return [self._ramp(torch.float32) * scale for scale in (1.0, 3.0, 0.5)]

    def test_shape_dtype_and_finite_output(self, registry: Registry) -> None:
        for dtype in DTYPES:
            current = self._ramp(dtype)
            out = self._converted(registry, current, seed=1)
            assert out.shape == current.shape and out.dtype == dtype
            assert bool(torch.isfinite(out).all())

    def test_reproducible_under_a_seeded_generator(self, registry: Registry) -> None:
        current = self._ramp(torch.float64)
        first = self._converted(registry, current, seed=5)
        assert torch.equal(first, self._converted(registry, current, seed=5))

    def test_output_follows_the_input_on_a_ramp(self, registry: Registry) -> None:
        out = self._converted(registry, self._ramp(torch.float64), seed=2)
        assert float(out[-1].min()) > 0 > float(out[0].max())

    def test_conversion_in_place_gives_the_values_of_forward(self, registry: Registry) -> None:
        """Two converters from one seed see the same minibatches, one through ``forward``,
        the other through ``convert_in_place`` (what layers call): bit-identical results."""
        adcs = self._twins(registry)
        for current in self._growing_batches():
            expected = adcs[0](current)
            assert torch.equal(adcs[1].convert_in_place(current.clone()), expected)

    def test_conversion_in_parts_gives_the_values_of_forward(self, registry: Registry) -> None:
        """A layer on the CPU offers each minibatch in parts (``convert_parts``): the values of
        ``forward`` on the whole minibatch, and the same calibration for the next one. (With
        random noise on, parts draw it in another order: run the kit with the noise off.)"""
        adcs = self._twins(registry)
        for current in self._growing_batches():
            expected = adcs[0](current)
            parts = SplitCurrents(current, 97)
            if adcs[1].convert_parts(parts):
                converted = parts.converted()
            else:
                assert parts.result == [None] * len(parts.parts)  # nothing emitted
                converted = adcs[1].convert_in_place(current.clone())
            assert torch.equal(converted, expected)

    def test_a_silent_zero_current_converts_to_zero_and_changes_nothing(
        self, registry: Registry
    ) -> None:
        """Where ``zero_current_is_silent()`` says so, a twin that sees every minibatch with
        rows of 0 A added converts them to 0 and everything else as the other twin does, its
        state following (the layer then leaves out the passes that drive no row)."""
        adcs = self._twins(registry)
        for current in self._growing_batches():
            silent = adcs[1].zero_current_is_silent()
            assert silent == adcs[0].zero_current_is_silent()
            if not silent:
                adcs[0](current)
                adcs[1](current)
                continue
            expected = adcs[0](current)
            padded = torch.cat((current, torch.zeros_like(current[:7])))
            converted = adcs[1](padded)
            assert torch.equal(converted[: len(current)], expected)
            assert bool((converted[len(current) :] == 0).all())


class MappingConformance(ModelConformance):
    """The device mapping contract: encoding within the range, read back, setup and realize."""

    kind = Kind.MAPPING
    weight_bits: ClassVar[tuple[int | None, ...]] = (8,)

    def test_encoding_stays_in_range_and_reads_back_the_weight(self, model: Mapping) -> None:
        for bits in self.weight_bits:
            w = torch.rand(6, 9, generator=_generator(), dtype=torch.float64) * 2 - 1
            g = model.encode(w, bits)
            slices = model.num_slices(bits)
            assert g.shape == (slices, 2, 6, 9)
            assert float(g.min()) >= model.g_min * (1 - 1e-9)
            assert float(g.max()) <= model.g_max * (1 + 1e-9)
            significance = model.significance(bits).to(g.dtype)
            read = torch.einsum("s,srk->rk", significance, g[:, 0] - g[:, 1])
            step = 1.0 / (2 ** (bits - 1) - 1) if bits else 1e-9
            assert float((read - w).abs().max()) <= step / 2 + 1e-9

    def test_realize_keeps_shape_dtype_and_is_reproducible(self, registry: Registry) -> None:
        g = torch.full((2, 1, 1, 2, 8, 8), 1.0, dtype=torch.float64)
        results = []
        for _ in range(2):
            model = cast(Mapping, registry.build(self.kind, self.name, **self.params))
            g_here = model.g_min + g * (model.g_max - model.g_min) / 2
            model.setup(g_here.shape, _generator(9))
            results.append(model.realize(g_here))
        assert results[0].shape == g.shape and results[0].dtype == g.dtype
        assert bool(torch.isfinite(results[0]).all()) and bool((results[0] >= 0).all())
        assert torch.equal(results[0], results[1])


class SolverConformance(ModelConformance):
    """The array solver contract: shapes kept, finite, and the ideal limit without wires."""

    kind = Kind.SOLVER
    vanishing_wires: ClassVar[dict[str, float]] = dict(
        r_source=1e-6, r_sink=1e-6, r_row=1e-6, r_col=1e-6
    )
    ideal_tolerance: ClassVar[float] = 1e-5
    """Relative error allowed against ``V @ G`` when every resistance is 1 uOhm."""

    def _arrays(self, dtype: torch.dtype) -> torch.Tensor:
        g = torch.rand(3, 2, 16, 8, generator=_generator(), dtype=torch.float64)
        return (1e-6 + 9e-6 * g).to(dtype)

    def test_shape_dtype_and_finite(self, model: ArraySolver) -> None:
        for dtype in DTYPES:
            g = self._arrays(dtype)
            for direction in ("forward", "backward"):
                g_eff = model.effective_conductance(g, direction)
                assert g_eff.shape == g.shape and g_eff.dtype == dtype
                assert bool(torch.isfinite(g_eff).all())

    def test_tends_to_the_cell_conductances_when_the_wires_vanish(self, registry: Registry) -> None:
        declared = {field.name for field in attrs.fields(registry.get(self.kind, self.name).params)}
        wires = {k: v for k, v in self.vanishing_wires.items() if k in declared}
        solver = cast(ArraySolver, registry.build(self.kind, self.name, **(self.params | wires)))
        g = self._arrays(torch.float64)
        for direction in ("forward", "backward"):
            g_eff = solver.effective_conductance(g, direction)
            error = float((g_eff - g).abs().max() / g.abs().max())
            assert error <= self.ideal_tolerance, f"{direction}: {error}"

    def test_deterministic(self, model: ArraySolver) -> None:
        g = self._arrays(torch.float64)
        assert torch.equal(model.effective_conductance(g), model.effective_conductance(g.clone()))


class UpdateConformance(ModelConformance):
    """The update model contract: bounds, no change for no request, seeded noise."""

    kind = Kind.UPDATE
    changes_without_request: ClassVar[str] = ""
    """Why the model may change conductances that no update asked for (a PCM pair refresh, a
    drift step); empty: a zero request must leave them exactly unchanged."""

    def _state(self, model: UpdateModel) -> tuple[torch.Tensor, torch.Tensor]:
        gen = _generator()
        span = model.g_max - model.g_min
        g = model.g_min + span * torch.rand(4, 2, 6, 5, generator=gen, dtype=torch.float64)
        dg = span * 0.05 * torch.randn(4, 2, 6, 5, generator=gen, dtype=torch.float64)
        return g, dg

    def test_results_stay_within_the_conductance_range(self, model: UpdateModel) -> None:
        g, dg = self._state(model)
        for scale in (1.0, 100.0):
            out = model.step(g, dg * scale, _generator(3))
            assert out.shape == g.shape and out.dtype == g.dtype
            assert bool(torch.isfinite(out).all())
            assert float(out.min()) >= model.g_min * (1 - 1e-9)
            assert float(out.max()) <= model.g_max * (1 + 1e-9)

    def test_no_request_changes_nothing(self, model: UpdateModel) -> None:
        if self.changes_without_request:
            pytest.skip(self.changes_without_request)
        g, _ = self._state(model)
        assert torch.equal(model.step(g, torch.zeros_like(g), _generator(3)), g)

    def test_reproducible_under_a_seeded_generator(self, model: UpdateModel) -> None:
        g, dg = self._state(model)
        assert torch.equal(model.step(g, dg, _generator(4)), model.step(g, dg, _generator(4)))
