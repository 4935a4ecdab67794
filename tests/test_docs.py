"""The documentation: generated reference pages are current, and the site builds without a broken
reference."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from txsim_core.cli import cli
from txsim_core.manager import ENV_DISABLE_AUTOLOAD
from txsim_core.reference import cli_reference, config_reference, main, models_reference
from txsim_core.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference"
REGENERATE = "regenerate with `python -m txsim_core.reference docs/reference`"


def test_cli_and_config_references_are_current() -> None:
    assert (REFERENCE / "cli.md").read_text() == cli_reference(cli), REGENERATE
    assert (REFERENCE / "config.md").read_text() == config_reference(), REGENERATE


def test_models_reference_is_current(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_DISABLE_AUTOLOAD)
    registry = Registry()
    distributions = {spec.distribution for spec in registry.specs()}
    if "txsim-fcm" not in distributions:
        pytest.skip("the plugins of this repository are not installed")
    assert (REFERENCE / "models.md").read_text() == models_reference(registry), REGENERATE


@pytest.mark.parametrize(("argv", "code"), [(["--help"], 0), (["-x"], 2), (["a", "b"], 2)])
def test_the_generator_takes_options_for_no_folder(
    argv: list[str], code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as ended:
        main(argv)
    assert ended.value.code == code
    assert not list(tmp_path.iterdir())  # no folder named after an option


@pytest.mark.slow
def test_the_site_builds_in_strict_mode(tmp_path: Path) -> None:
    if shutil.which("mkdocs") is None and not (Path(sys.executable).parent / "mkdocs").exists():
        pytest.skip("mkdocs is not installed (pip install mkdocs)")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
