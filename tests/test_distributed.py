"""Data-parallel training: replicas keep one crossbar state and match a single-process run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from tests.test_experiment_run import assert_same_metrics
from txsim_core.calibration import FullScale, FullScaleParams, synchronized_calibration
from txsim_core.crossbar.array import CrossbarArray
from txsim_core.crossbar.config import parse_crossbar
from txsim_core.distributed import (
    ReplicasDiverged,
    check_replicas_agree,
    fork_random_streams,
    synchronize_random_streams,
)
from txsim_core.errors import ConfigError
from txsim_core.experiment import load_experiment, train_run
from txsim_core.experiment.metrics import read_metrics
from txsim_core.experiment.parallel import joined_replicas, launch
from txsim_core.experiment.runner import load_run_experiment, train_replica
from txsim_core.testing.replicas import differing_entries, train_mode, train_replicas

CONFIG = """
[model]
name = "mlp"
hidden = [24]

[data]
name = "digits"
limit_train = {limit_train}
limit_test = 201

[train]
epochs = 2
batch_size = 17
lr = 0.1
seed = 5
modes = {modes}

[crossbar]
rows = 16
cols = 16
weight_bits = 6
input_bits = 6
error_bits = 6
w_max_headroom = 1.5
{slots}
"""

QUANTIZING = """
adc = {name = "uniform", bits = 7}
update = {name = "ideal"}
"""


@pytest.fixture(autouse=True)
def replicas_import_this_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replicas are fresh processes: let them import the functions of this module."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))


def write_config(
    folder: Path, modes: str = '["nonideal"]', limit_train: int = 340, slots: str = QUANTIZING
) -> Path:
    path = folder / "experiment.toml"
    path.write_text(CONFIG.format(modes=modes, limit_train=limit_train, slots=slots))
    return path


def test_two_replicas_train_like_one_process_with_the_same_global_batch(tmp_path: Path) -> None:
    """Quantized inputs, errors and weights, a calibrated ADC and stochastically rounded updates:
    two replicas on half a minibatch each give the single process's losses and conductances."""
    experiment = load_experiment(write_config(tmp_path))
    single = train_mode(experiment, "nonideal", tmp_path / "single")
    replicas = train_replicas(experiment, "nonideal", tmp_path / "replicas", nproc=2)

    assert differing_entries(replicas) == []
    torch.testing.assert_close(replicas[0]["history"], single["history"], rtol=1e-6, atol=1e-9)
    for name, tensor in single.items():
        if name.endswith(".conductance"):
            torch.testing.assert_close(replicas[0][name], tensor, rtol=1e-6, atol=1e-12)


def _unsynchronized_noisy_update(synchronize: bool) -> None:
    with joined_replicas("cpu") as replicas:
        assert replicas is not None
        # the update request is rounded stochastically to 3 bits: a draw from the layer's stream
        config, _ = parse_crossbar({"crossbar": {"update_bits": 3}})
        array = CrossbarArray(torch.full((4, 6), 0.1), config, seed=1, name="fc")
        net = torch.nn.ModuleDict({"fc": array})
        fork_random_streams(net, replicas.rank)
        if synchronize:
            synchronize_random_streams(net)
        array.apply_update(torch.full((4, 6), 0.0123))
        check_replicas_agree(net)


def test_an_update_without_synchronized_streams_is_caught() -> None:
    launch(2, _unsynchronized_noisy_update, True)
    with pytest.raises(ReplicasDiverged, match=r"layers \['fc'\] differ"):
        launch(2, _unsynchronized_noisy_update, False)


def _calibrate(calibration: str) -> list[float]:
    with joined_replicas("cpu") as replicas:
        assert replicas is not None
        scale = FullScale(FullScaleParams(calibration=calibration, percentile=50.0))
        # replica 0 sees 1 sample of |I| = 1..4, replica 1 three samples of |I| = 5..16
        first = 4 * replicas.rank
        samples = 1 + 2 * replicas.rank
        current = -torch.arange(first + 1, first + 1 + 4 * samples, dtype=torch.float64)
        with synchronized_calibration(replicas.calibration_group):
            value = scale(current.reshape(samples, 1, 4))
        return value.reshape(-1).tolist()


def test_calibration_combines_the_currents_of_every_replica() -> None:
    assert launch(2, _calibrate, "max") == [[16.0], [16.0]]
    medians = (2.5 * 1 + 10.5 * 3) / 4  # the replicas' medians weighted by their samples
    assert launch(2, _calibrate, "percentile") == [[medians], [medians]]


def _fail_on_rank_one() -> None:
    if int(os.environ["RANK"]) == 1:
        raise ConfigError("Expected something, but got nothing.")
    with joined_replicas("cpu"):
        dist.barrier()


def test_a_failing_replica_fails_the_launch_with_its_error() -> None:
    with pytest.raises(ConfigError, match="but got nothing"):
        launch(2, _fail_on_rank_one)
    with pytest.raises(ConfigError, match="at least 2 replicas"):
        launch(1, _fail_on_rank_one)


def _start_cli_run(arguments: list[str]) -> subprocess.Popen:
    code = "import sys; from txsim_core.cli import main; main(sys.argv[1:])"
    return subprocess.Popen(
        [sys.executable, "-c", code, *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["kill", "ctrl-c"])
def test_an_interrupted_data_parallel_run_resumes_to_the_uninterrupted_metrics(
    tmp_path: Path, stop: str
) -> None:
    config = write_config(tmp_path, modes='["ideal", "nonideal"]', limit_train=680)
    launch(2, train_replica, load_experiment(config), tmp_path / "reference", False, False)
    reference = read_metrics(tmp_path / "reference")
    run_dir = tmp_path / "run"
    process = _start_cli_run(
        ["train", str(config), "--out", str(run_dir), "--quiet", "--nproc", "2"]
    )
    checkpoint = run_dir / "checkpoints" / "ideal" / "e00001-b0000000.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists():
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    if stop == "kill":  # the launcher dies: its replicas notice and end
        process.kill()
    else:
        process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=120)[0]
    if stop == "ctrl-c":
        assert process.returncode == 1, output
        assert "checkpoint saved to" in output and "--resume" in output
    assert not (run_dir / "summary.json").exists()

    resumed = _start_cli_run(["train", "--resume", str(run_dir), "--quiet", "--nproc", "2"])
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output
    assert_same_metrics(read_metrics(run_dir), reference)
    assert load_run_experiment(run_dir) == load_experiment(config)


@pytest.mark.slow
def test_torchrun_runs_the_train_command_as_replicas(tmp_path: Path) -> None:
    config = write_config(tmp_path, modes='["native", "nonideal"]')
    reference = train_run(
        load_experiment(config), tmp_path / "reference", progress=False, echo=lambda t: None
    )
    script = Path(sys.executable).with_name("txsim")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            str(script),
            "train",
            str(config),
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "GLOO_SOCKET_IFNAME": "lo"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert_same_metrics(read_metrics(tmp_path / "run"), reference)
    assert result.stdout.count("Run directory:") == 1  # rank 0 prints
