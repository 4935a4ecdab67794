"""Shared fixtures: the example generator script and writing data files."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_example.py"


@pytest.fixture(scope="session")
def make_example() -> ModuleType:
    """The module ``scripts/make_example.py`` (the synthetic device process)."""
    spec = importlib.util.spec_from_file_location("txsim_lut_make_example", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def write_data(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write text to a file in a fresh folder and return its path."""

    def write(text: str, name: str = "device.csv") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
