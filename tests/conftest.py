"""Core tests run against the built-in models only, whatever plugins are installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from txsim_core.manager import ENV_DISABLE_AUTOLOAD, ENV_DISABLE_PLUGINS
from txsim_core.registry import reset_registry

FAKE_PLUGINS = Path(__file__).parent / "plugins" / "data"


@pytest.fixture(autouse=True)
def builtin_models_only(monkeypatch: pytest.MonkeyPatch):
    """Turn plugin autoload off and give every test a fresh process-wide registry."""
    monkeypatch.setenv(ENV_DISABLE_AUTOLOAD, "1")
    monkeypatch.delenv(ENV_DISABLE_PLUGINS, raising=False)
    reset_registry()
    yield
    reset_registry()


@pytest.fixture
def fake_plugins(monkeypatch: pytest.MonkeyPatch):
    """Put committed fake distributions (name: folder under tests/plugins/data) on sys.path."""

    def install(*names: str) -> None:
        for name in names:
            monkeypatch.syspath_prepend(str(FAKE_PLUGINS / name))
        monkeypatch.delenv(ENV_DISABLE_AUTOLOAD)

    yield install
    for module in [m for m in sys.modules if m.startswith("txsim_fake_")]:
        del sys.modules[module]


@pytest.fixture
def test_models():
    """The process-wide registry with the models of tests/crossbar_models.py added."""
    from tests.crossbar_models import registry_with_test_models

    return reset_registry(registry_with_test_models())
