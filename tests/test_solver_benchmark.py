"""The solver benchmark script (``benchmarks/solvers.py``) runs and reports every method.

What it measures is speed, which no test asserts; this checks that the script runs end to end
on tiny arrays and that its report holds what ``benchmarks/README.md`` describes.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

from txsim_core.compiled import COMPILE_SWITCH
from txsim_core.manager import ENV_DISABLE_AUTOLOAD
from txsim_core.registry import list_models, reset_registry

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "solvers.py"


@pytest.fixture
def solver_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The script measures the fcm and aam solvers of this repository, installed."""
    monkeypatch.delenv(ENV_DISABLE_AUTOLOAD)
    reset_registry()
    missing = {"fcm", "aam"} - {spec.name for spec in list_models("solver")}
    if missing:
        pytest.skip(f"solver plugins not installed: {sorted(missing)}")


@pytest.fixture(scope="module")
def solvers():
    spec = importlib.util.spec_from_file_location("benchmark_solvers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.usefixtures("solver_plugins")
def test_the_script_reports_every_method_against_splu(solvers, capsys, monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    monkeypatch.delenv(COMPILE_SWITCH, raising=False)
    args = ["--json", "--arrays", "2", "--size", "8", "--splu-arrays", "1", "--repeat", "1"]
    plot = tmp_path / "plots" / "solvers.png"
    threads = torch.get_num_threads()
    try:
        solvers.main([*args, "--sizes", "4", "8", "--threads", "1", "--plot", str(plot)])
    finally:
        torch.set_num_threads(threads)
    result = json.loads(capsys.readouterr().out)
    batch = result["batch"]
    methods = {
        "fcm forward",
        "fcm both directions",
        "fcm forward, PyTorch operations",
        "aam order 2 forward",
        "aam order 1 forward",
    }
    assert set(batch["speedup_vs_splu"]) == methods
    assert all(ratio > 0 for ratio in batch["speedup_vs_splu"].values())
    assert set(batch["seconds_per_array"]) == methods | {
        "splu forward (baseline)",
        "splu both directions (baseline)",
    }
    assert [row["size"] for row in result["scaling"]] == [4, 8]
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert result["environment"]["torch_threads"] == 1
    assert COMPILE_SWITCH not in os.environ  # the PyTorch-operations run restores the switch


def test_a_plot_needs_the_scaling_table(solvers, capsys):
    with pytest.raises(SystemExit):
        solvers.main(["--sizes", "--plot", "x.png"])
    assert "--plot draws the scaling table" in capsys.readouterr().err


def test_the_kernels_can_be_switched_off_for_one_block(solvers, monkeypatch):
    monkeypatch.setenv(COMPILE_SWITCH, "1")
    with solvers.compiled_kernels_off():
        assert os.environ[COMPILE_SWITCH] == "0"
    assert os.environ[COMPILE_SWITCH] == "1"
