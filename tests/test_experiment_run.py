"""Training runs, resume after a kill or Ctrl-C, sweeps and reports, on the bundled digits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from txsim_core.cli import cli
from txsim_core.errors import ConfigError, UnknownModelError
from txsim_core.experiment import load_experiment, make_trials, parse_param, run_sweep, train_run
from txsim_core.experiment.config import load_raw, set_key
from txsim_core.experiment.metrics import COLUMNS, read_metrics
from txsim_core.experiment.runner import load_run_experiment

CONFIG = """
[model]
name = "mlp"
hidden = [24]

[data]
name = "digits"
limit_train = {limit_train}
limit_test = 200

[train]
epochs = {epochs}
batch_size = 16
lr = 0.1
seed = 3
modes = {modes}

[crossbar]
rows = 16
cols = 16
weight_bits = 6
input_bits = 8
error_bits = 8
w_max_headroom = 1.5
"""


def write_config(
    folder: Path, epochs: int = 2, limit_train: int = 400, modes: str = '["native", "ideal"]'
) -> Path:
    path = folder / "experiment.toml"
    path.write_text(CONFIG.format(epochs=epochs, limit_train=limit_train, modes=modes))
    return path


def assert_same_metrics(rows: list[dict], reference: list[dict]) -> None:
    """Equal rows but for wall time; float32 kernels may differ in the last bits across
    processes, so losses agree to 1e-6."""
    assert [(r["mode"], r["epoch"]) for r in rows] == [(r["mode"], r["epoch"]) for r in reference]
    for row, expected in zip(rows, reference, strict=True):
        for column in ("train_loss", "train_accuracy", "test_accuracy"):
            assert row[column] == pytest.approx(expected[column], rel=1e-6, abs=1e-9), row


def test_a_short_run_writes_every_artefact(tmp_path: Path) -> None:
    modes = '["native", "ideal", "nonideal"]'
    experiment = load_experiment(write_config(tmp_path, modes=modes))
    run_dir = tmp_path / "run"
    rows = train_run(experiment, run_dir, progress=False, echo=lambda text: None)

    assert [(r["mode"], r["epoch"]) for r in rows] == [
        (m, e) for m in ("native", "ideal", "nonideal") for e in (1, 2)
    ]
    assert (run_dir / "metrics.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    jsonl = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert jsonl == read_metrics(run_dir) == rows
    assert load_run_experiment(run_dir) == experiment  # the resolved config reproduces the run
    for mode in ("native", "ideal", "nonideal"):
        names = sorted(p.name for p in (run_dir / "checkpoints" / mode).iterdir())
        assert names == ["e00001-b0000000.pt", "e00002-b0000000.pt"]
    assert (run_dir / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete"
    # Cross-Ideal is the crossbar limit of native training; every mode learns the digits.
    native, ideal = rows[1], rows[3]
    assert ideal["train_loss"] == pytest.approx(native["train_loss"], rel=1e-4)
    assert all(r["test_accuracy"] > 0.5 for r in rows if r["epoch"] == 2)


def test_a_new_run_refuses_a_directory_that_holds_one(tmp_path: Path) -> None:
    experiment = load_experiment(write_config(tmp_path, epochs=1, limit_train=50))
    train_run(experiment, tmp_path / "run", progress=False, echo=lambda text: None)
    with pytest.raises(ConfigError, match="already holds a run"):
        train_run(experiment, tmp_path / "run", progress=False)


@pytest.mark.parametrize(
    ("override", "error", "message"),
    [
        ("model.name=lenet6", ConfigError, "lenet5"),
        ("data.name=mnist", ConfigError, "path"),
        ("crossbar.adc.name=sarr", UnknownModelError, "sarr"),
        ("train.device=cuda:7", ConfigError, "train.device"),
    ],
)
def test_invalid_experiments_fail_before_training(
    tmp_path: Path, override: str, error: type, message: str
) -> None:
    if override.startswith("train.device") and __import__("torch").cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    experiment = load_experiment(write_config(tmp_path, modes='["native", "nonideal"]'), [override])
    with pytest.raises(error, match=message):
        train_run(experiment, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def _start_cli_run(config: Path, run_dir: Path) -> subprocess.Popen:
    code = "import sys; from txsim_core.cli import main; main(sys.argv[1:])"
    return subprocess.Popen(
        [sys.executable, "-c", code, "train", str(config), "--out", str(run_dir), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TXSIM_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["kill", "ctrl-c"])
def test_an_interrupted_run_resumes_to_the_uninterrupted_metrics(tmp_path: Path, stop: str) -> None:
    config = write_config(tmp_path, epochs=2, limit_train=480, modes='["ideal", "nonideal"]')
    reference = train_run(
        load_experiment(config), tmp_path / "reference", progress=False, echo=lambda text: None
    )

    run_dir = tmp_path / "run"
    process = _start_cli_run(config, run_dir)
    _wait_for(run_dir / "checkpoints" / "ideal" / "e00001-b0000000.pt", process)
    if stop == "kill":
        process.kill()
        process.wait()
    else:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0]
        assert process.returncode == 1, output
        assert "checkpoint saved to" in output and "--resume" in output
    assert not (run_dir / "summary.json").exists()

    resumed = train_run(
        load_run_experiment(run_dir), run_dir, resume=True, progress=False, echo=lambda t: None
    )
    assert_same_metrics(resumed, reference)
    assert_same_metrics(read_metrics(run_dir), reference)


def test_resume_can_extend_a_finished_run(tmp_path: Path) -> None:
    config = write_config(tmp_path, epochs=1, limit_train=100, modes='["native"]')
    train_run(load_experiment(config), tmp_path / "run", progress=False, echo=lambda t: None)
    rows = train_run(
        load_run_experiment(tmp_path / "run", epochs=2),
        tmp_path / "run",
        resume=True,
        progress=False,
        echo=lambda t: None,
    )
    reference = train_run(
        load_experiment(config, epochs=2), tmp_path / "ref", progress=False, echo=lambda t: None
    )
    assert_same_metrics(rows, reference)


def test_a_sweep_survives_a_failing_trial_and_skips_finished_ones(tmp_path: Path) -> None:
    raw = load_raw(write_config(tmp_path, epochs=1, limit_train=400))
    set_key(raw, "train.modes", ["native"])
    swept = [parse_param("train.lr=0.05,0.1"), parse_param("model.hidden=[8],[-4]")]
    keys = [k for k, _ in swept]
    trials = make_trials(raw, swept, tmp_path / "sweep", base_dir=tmp_path)
    assert len(trials) == 4

    rows = run_sweep(trials, keys, tmp_path / "sweep", echo=lambda text: None)
    assert [r["status"] for r in rows] == ["complete", "failed", "complete", "failed"]
    assert all("hidden" in r["error"] for r in rows[1::2])
    assert all(r["final_test_accuracy"] > 0.3 for r in rows[::2])
    summary = (tmp_path / "sweep" / "summary.csv").read_text().splitlines()
    assert (
        summary[0]
        == "train.lr,model.hidden,mode,status,final_test_accuracy,best_test_accuracy,error"
    )
    assert len(summary) == 5
    assert (tmp_path / "sweep" / "sweep.png").is_file()

    finished = trials[0].run_dir / "metrics.csv"
    stamp = finished.stat().st_mtime_ns
    again = run_sweep(trials, keys, tmp_path / "sweep", echo=lambda text: None)
    assert finished.stat().st_mtime_ns == stamp  # not trained again
    assert [r["final_test_accuracy"] for r in again] == [r["final_test_accuracy"] for r in rows]


def test_sweep_parameters_are_checked_before_any_trial(tmp_path: Path) -> None:
    raw = load_raw(write_config(tmp_path))
    with pytest.raises(ConfigError, match=r"In the trial train\.epochs=0"):
        make_trials(raw, [parse_param("train.epochs=1,0")], tmp_path / "sweep", tmp_path)
    with pytest.raises(ConfigError, match=r"Expected a swept parameter as KEY=V1,V2"):
        parse_param("train.lr")
    with pytest.raises(ConfigError, match="distinct values"):
        parse_param("train.lr=0.1,0.1")
    assert parse_param("crossbar.adc={name='sar', bits=6},'ideal'")[1] == [
        {"name": "sar", "bits": 6},
        "ideal",
    ]


@pytest.mark.slow
def test_the_sweep_command_runs_trials_in_worker_processes(tmp_path: Path) -> None:
    config = write_config(tmp_path, epochs=1, limit_train=100)
    config.write_text(config.read_text() + '\n[sweep.params]\n"train.lr" = [0.05, 0.1]\n')
    out = tmp_path / "sweep"
    args = ["sweep", str(config), "--jobs", "2", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "[2/2]" in result.output and "final test" in result.output
    assert (out / "trials" / "train.lr=0.1" / "summary.json").is_file()
    report = CliRunner().invoke(cli, ["report", str(out)])
    assert report.exit_code == 0 and "complete" in report.output


def test_train_and_report_commands(tmp_path: Path) -> None:
    config = write_config(tmp_path, epochs=1, limit_train=100)
    out = tmp_path / "run"
    args = ["train", str(config), "--mode", "native", "--set", "train.lr=0.2", "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    assert "Native" in result.output and "Final test" in result.output
    assert "lr = 0.2" in (out / "config.toml").read_text()
    report = CliRunner().invoke(cli, ["report", str(out)])
    assert report.exit_code == 0 and "complete" in report.output and "accuracy.png" in report.output

    bad = CliRunner().invoke(cli, ["train", str(config), "--mode", "native,analog"])
    assert bad.exit_code == 2 and "Expected modes among" in bad.output
    missing = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert missing.exit_code == 1 and "neither" in missing.output
