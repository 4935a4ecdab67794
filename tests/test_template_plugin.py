"""The plugin template, copied and renamed as docs/plugins/writing-a-plugin.md says, installs and
registers its device: a new user's first plugin works."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[1] / "plugins" / "_template"


def _rename(folder: Path) -> None:
    """The renames of the guide: package folder, distribution, entry point, model name."""
    shutil.rmtree(folder / "txsim_template.egg-info", ignore_errors=True)
    (folder / "txsim_template").rename(folder / "txsim_mydevice")
    for path in [folder / "pyproject.toml", *folder.rglob("*.py")]:
        text = path.read_text()
        text = text.replace("txsim-template", "txsim-mydevice").replace(
            "txsim_template", "txsim_mydevice"
        )
        text = text.replace(
            'template = "txsim_mydevice.plugin"', 'mydevice = "txsim_mydevice.plugin"'
        )
        text = text.replace('name="template"', 'name="mydevice"')
        path.write_text(text)


@pytest.mark.slow
def test_a_copied_template_installs_and_is_listed(tmp_path: Path) -> None:
    folder = tmp_path / "txsim-mydevice"
    shutil.copytree(TEMPLATE, folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    _rename(folder)
    target = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(folder),
        ],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), *sys.path])}
    env.pop("TXSIM_DISABLE_PLUGIN_AUTOLOAD", None)
    listing = subprocess.run(
        [
            sys.executable,
            "-c",
            "from txsim_core.cli import main; main()",
            "list-models",
            "--json",
            "--kind",
            "mapping",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert listing.returncode == 0, listing.stderr
    models = {m["name"]: m for m in json.loads(listing.stdout)}
    assert models["mydevice"]["distribution"] == "txsim-mydevice"
    use = subprocess.run(
        [
            sys.executable,
            "-c",
            "import txsim_core; print(txsim_core.build_model('mapping', 'mydevice').g_max)",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert use.returncode == 0 and float(use.stdout) > 0, use.stderr
