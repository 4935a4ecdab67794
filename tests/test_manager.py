"""Entry-point discovery with committed fake distributions (real importlib.metadata lookups)."""

from __future__ import annotations

import pytest

import txsim_core
from txsim_core import PluginError, PluginLoadWarning
from txsim_core.manager import ENV_DISABLE_PLUGINS, PluginManager


def test_installed_plugin_is_found_with_provenance(fake_plugins):
    fake_plugins("ok")
    txsim_core.reset_registry()
    spec = txsim_core.get_spec("dac", "fake-dac")
    assert (spec.plugin, spec.distribution, spec.version) == ("fake-ok", "txsim-fake-ok", "1.0")
    model = txsim_core.build_model("dac", "fake-dac")
    import torch

    volts, weights = model(torch.tensor([0.5]), None)
    assert float(volts[0, 0] * weights[0]) == pytest.approx(0.5)


def test_autoload_switch_turns_discovery_off(fake_plugins, monkeypatch):
    fake_plugins("ok")
    monkeypatch.setenv("TXSIM_DISABLE_PLUGIN_AUTOLOAD", "1")
    manager = PluginManager()
    assert [i.name for i in manager.plugin_infos()] == ["txsim"]
    assert PluginManager(autoload=True).info("fake-ok").status == "loaded"


def test_broken_plugin_warns_is_failed_and_others_keep_working(fake_plugins):
    fake_plugins("ok", "broken")
    with pytest.warns(
        PluginLoadWarning,
        match=r"'fake-broken' \(txsim-fake-broken\) failed to "
        r"load and is skipped: ModuleNotFoundError",
    ):
        manager = PluginManager()
    info = manager.info("fake-broken")
    assert (info.status, info.version) == ("failed", "2.0")
    assert "txsim_nonexistent_dependency" in info.error
    assert manager.info("fake-ok").status == "loaded"


def test_misspelt_hook_is_rejected(fake_plugins):
    fake_plugins("typo")
    with pytest.warns(PluginLoadWarning, match="fake-typo.*unknown hook 'txsim_dac_model'"):
        manager = PluginManager()
    assert manager.info("fake-typo").status == "failed"
    assert manager.get_plugin("fake-typo") is None


def test_blocked_plugin_is_not_loaded(fake_plugins, monkeypatch):
    fake_plugins("ok")
    monkeypatch.setenv(ENV_DISABLE_PLUGINS, "fake-ok, other")
    manager = PluginManager()
    assert manager.info("fake-ok").status == "blocked"
    assert manager.get_plugin("fake-ok") is None


def test_two_installed_plugins_with_one_name_conflict(fake_plugins):
    fake_plugins("ok", "clash")
    registry = txsim_core.reset_registry()
    with pytest.raises(
        PluginError,
        match=r"'fake-dac' is provided twice: by 'fake-(ok|clash)' "
        r"\(txsim-fake-(ok|clash) (1\.0|0\.9)\) and by 'fake-(ok|clash)'",
    ):
        registry.specs()


def test_plugin_info_lists_what_each_plugin_provides(fake_plugins):
    fake_plugins("ok")
    manager = PluginManager()
    assert manager.info("fake-ok").provides == ("commands", "dac")
    assert manager.info("txsim").provides == ("adc", "dac", "mapping", "solver", "update")
