"""Looking up, building and resolving models; conflicts and bad plugin records."""

from __future__ import annotations

import attrs
import pytest

import txsim_core
from txsim_core import ConfigError, Kind, ModelSpec, PluginError, UnknownModelError, hookimpl
from txsim_core.builtin.ideal import IdealADC, IdealMapping, IdealMappingParams, NoParams
from txsim_core.interfaces import ADC
from txsim_core.manager import PluginManager
from txsim_core.registry import Registry


def fresh_registry(*plugins: tuple[str, object]) -> Registry:
    manager = PluginManager(autoload=False)
    for name, plugin in plugins:
        assert manager.register_plugin(
            plugin, name=name, distribution=f"dist-{name}", version="9.9"
        )
    return Registry(manager)


def test_builtin_ideal_model_of_every_kind():
    specs = [s for s in txsim_core.list_models() if s.name == "ideal"]
    assert [s.kind for s in specs] == list(Kind)
    for spec in specs:
        assert (spec.plugin, spec.distribution) == ("txsim", "txsim")
        assert spec.version == txsim_core.__version__
        model = txsim_core.build_model(spec.kind, "ideal")
        assert isinstance(model, spec.factory)


def test_list_models_by_kind_and_names_normalised():
    assert "ideal" in [s.name for s in txsim_core.list_models("adc")]
    assert {s.kind for s in txsim_core.list_models("adc")} == {Kind.ADC}
    assert txsim_core.get_spec(" ADC ", "IDEAL").factory is IdealADC


def test_unknown_model_error_names_kind_suggests_lists_and_hints_plugin():
    with pytest.raises(UnknownModelError) as info:
        txsim_core.build_model("solver", "idea")
    message = str(info.value)
    assert "Unknown solver model 'idea'." in message
    assert "Did you mean 'ideal'?" in message
    assert "Available solver models: 'ideal'." in message
    assert "a plugin may be missing" in message
    assert isinstance(info.value, KeyError) and info.value.kind == "solver"


def test_unknown_kind_is_a_config_error():
    with pytest.raises(
        ConfigError,
        match=r"Expected a model kind, one of 'dac', 'adc', "
        r"'mapping', 'solver', 'update', but got 'adcs'",
    ):
        txsim_core.list_models("adcs")


class SecondIdealADC:
    @hookimpl
    def txsim_adc_models(self):
        yield ModelSpec(name="Ideal", factory=IdealADC, params=NoParams, summary="again")


def test_duplicate_name_is_an_error_naming_both_providers():
    registry = fresh_registry(("other", SecondIdealADC()))
    with pytest.raises(PluginError) as info:
        registry.specs()
    message = str(info.value)
    assert "The adc model 'ideal' is provided twice" in message
    assert "'txsim' (txsim " in message and "'other' (dist-other 9.9)" in message


class NotASpec:
    @hookimpl
    def txsim_adc_models(self):
        yield {"name": "x"}


class WrongBase:
    @hookimpl
    def txsim_adc_models(self):
        yield ModelSpec(name="wrong", factory=IdealMapping, params=IdealMappingParams, summary="")


class WrongKind:
    @hookimpl
    def txsim_adc_models(self):
        yield ModelSpec(name="w", factory=IdealADC, params=NoParams, summary="", kind=Kind.DAC)


@pytest.mark.parametrize(
    ("plugin", "match"),
    [
        (NotASpec(), r"Expected ModelSpec records from plugin 'bad', hook txsim_adc_models"),
        (
            WrongBase(),
            r"Expected the factory of 'wrong' .* subclass of txsim_core.interfaces.adc.ADC",
        ),
        (WrongKind(), r"Expected a adc model from plugin 'bad'.* declares kind 'dac'"),
    ],
)
def test_malformed_records_are_plugin_errors(plugin, match):
    with pytest.raises(PluginError, match=match):
        fresh_registry(("bad", plugin)).specs()


class RaisingHook:
    @hookimpl
    def txsim_adc_models(self):
        raise RuntimeError("boom")


def test_hook_that_raises_marks_plugin_failed_and_others_work():
    registry = fresh_registry(("raising", RaisingHook()))
    with pytest.warns(txsim_core.PluginLoadWarning, match="raising.*RuntimeError: boom"):
        names = [(s.kind.value, s.name) for s in registry.specs()]
    assert ("adc", "ideal") in names
    assert registry.manager.info("raising").status == "failed"


def test_model_names_must_be_lowercase_words():
    with pytest.raises(PluginError, match="Expected a model name of lower-case letters"):
        ModelSpec(name="my model", factory=IdealADC, params=NoParams, summary="")


@attrs.frozen(kw_only=True)
class GainParams:
    gain: float = txsim_core.params.parameter(1.0, low=0.0, help="Gain.")


class GainADC(ADC):
    def forward(self, current):
        return current * self.params.gain


class GainPlugin:
    @hookimpl
    def txsim_adc_models(self):
        yield ModelSpec(name="gain", factory=GainADC, params=GainParams, summary="Gain")


@pytest.mark.parametrize(
    "slot",
    ["gain", ("gain", {"gain": 2.0}), {"name": "gain", "gain": 2.0}, GainParams(gain=2.0), GainADC],
)
def test_every_slot_form_resolves(slot):
    registry = fresh_registry(("gain", GainPlugin()))
    model = registry.resolve("adc", slot)
    assert isinstance(model, GainADC)
    expected = 1.0 if slot in ("gain", GainADC) else 2.0
    assert model.params.gain == expected
    assert registry.resolve("adc", model) is model


@pytest.mark.parametrize(
    ("slot", "match"),
    [
        ({"bits": 3}, "Expected the adc settings to name a model with the key 'name'"),
        (3.5, "Expected a adc model as a name"),
        (
            ("gain", {"gian": 2}),
            "Unknown parameter 'gian' for adc model 'gain'. Did you mean 'gain'",
        ),
    ],
)
def test_bad_slots_are_config_errors(slot, match):
    with pytest.raises(ConfigError, match=match):
        fresh_registry(("gain", GainPlugin())).resolve("adc", slot)
