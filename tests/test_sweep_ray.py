"""Sweeps on Ray: a local Ray head on loopback runs the trials of small sweeps on the bundled
digits; the results match the local executor, a killed worker's trial is retried from its last
checkpoint, and a cluster without shared storage ships run directories both ways."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import torch
from click.testing import CliRunner

from txsim_core.cli import cli
from txsim_core.errors import ConfigError
from txsim_core.experiment import make_trials, parse_param, run_sweep, train_run
from txsim_core.experiment.config import load_raw, set_key
from txsim_core.experiment.metrics import read_metrics
from txsim_core.experiment.ray_executor import (
    WORKER_RECORD,
    RayExecutor,
    TrialResources,
    parse_resources,
)
from txsim_core.manager import ENV_DISABLE_AUTOLOAD

CONFIG = """
[model]
name = "mlp"
hidden = [16]

[data]
name = "digits"
limit_train = {limit_train}
limit_test = 200

[train]
epochs = {epochs}
batch_size = 16
lr = 0.1
seed = 5
modes = ["{mode}"]
"""

RUN_FILES = {"config.toml", "metrics.csv", "metrics.jsonl", "accuracy.png", "summary.json"}


def write_config(folder: Path, epochs: int, limit_train: int = 300, mode: str = "native") -> Path:
    path = folder / "experiment.toml"
    path.write_text(CONFIG.format(epochs=epochs, limit_train=limit_train, mode=mode))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def ray_dir() -> Iterator[Path]:
    """The folder of the Ray head: its log, its session (``ray/``) and its workers' temporary
    folder (``tmp/``, where trials without shared storage train)."""
    folder = Path(tempfile.mkdtemp(prefix="ray-"))
    (folder / "tmp").mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_head(ray_dir: Path) -> Iterator[str]:
    """A Ray head with 2 CPUs on this machine for the module's tests; yields its address."""
    pytest.importorskip("ray", reason='Ray is not installed (pip install "txsim[ray]")')
    port, log = free_port(), ray_dir / "head.log"
    command = [
        *(str(Path(sys.executable).parent / "ray"), "start", "--head", "--block"),
        *("--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2", "--num-gpus=0"),
        *("--include-dashboard=false", "--object-store-memory=100000000"),
        *("--disable-usage-stats", f"--temp-dir={ray_dir / 'ray'}"),
    ]
    # The trials use the built-in models only, as every core test does. Whether Ray turns on
    # token authentication depends on files in the home folder: off, for the head and drivers.
    env = {
        **os.environ,
        ENV_DISABLE_AUTOLOAD: "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "disabled",
        "TMPDIR": str(ray_dir / "tmp"),
    }
    with log.open("w") as output:
        head = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while "Ray runtime started" not in log.read_text():
            assert head.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("RAY_AUTH_MODE", "disabled")
            yield f"127.0.0.1:{port}"
    finally:
        head.terminate()  # `ray start --block` stops the processes it started
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


def run_files(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


def worker_record(run_dir: Path) -> dict:
    return json.loads((run_dir / WORKER_RECORD).read_text())


def test_a_ray_sweep_gives_the_summary_of_the_local_executor(tmp_path: Path, ray_head: str) -> None:
    config = write_config(tmp_path, epochs=2)
    grid = ["--param", "train.lr=0.05,0.2", "--param", "model.hidden=[8],[16]"]
    base = ["sweep", str(config), *grid, "--mode", "native"]
    args = ["--executor", "ray", "--address", ray_head, "--resources-per-trial", "cpu=1"]
    result = CliRunner().invoke(cli, [*base, *args, "--out", str(tmp_path / "ray")])
    assert result.exit_code == 0, result.output
    assert f"on Ray at {ray_head}, cpu=1,gpu=0 per trial, retries=2" in result.output
    assert "[4/4]" in result.output

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as on Ray, where cpu=1 trains with one thread
    try:
        local = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "local")])
    finally:
        torch.set_num_threads(threads)
    assert local.exit_code == 0, local.output

    ray_out, local_out = tmp_path / "ray", tmp_path / "local"
    summary = (ray_out / "summary.csv").read_text()
    assert summary == (local_out / "summary.csv").read_text()
    assert summary.count(",complete,") == 4
    assert (ray_out / "sweep.json").read_text() == (local_out / "sweep.json").read_text()
    assert (ray_out / "sweep.png").is_file()
    assert sorted(p.name for p in ray_out.iterdir()) == sorted(p.name for p in local_out.iterdir())
    for local_run in (local_out / "trials").iterdir():
        ray_run = ray_out / "trials" / local_run.name
        assert run_files(ray_run) == run_files(local_run) | {WORKER_RECORD}
        for row, expected in zip(read_metrics(ray_run), read_metrics(local_run), strict=True):
            assert {**row, "seconds": 0} == {**expected, "seconds": 0}
        record = worker_record(ray_run)
        assert record["storage"] == "shared"  # found out from the marker: same machine
        assert record["pid"] != os.getpid()


def test_without_shared_storage_run_directories_travel_both_ways(
    tmp_path: Path, ray_head: str, ray_dir: Path
) -> None:
    raw = load_raw(write_config(tmp_path, epochs=2))
    swept = [parse_param("train.lr=0.05,0.2")]
    out = tmp_path / "sweep"
    trials = make_trials(raw, swept, out, base_dir=tmp_path)
    # The first trial stopped after its first epoch: the worker must continue it, not restart.
    set_key(raw, "train.epochs", 1)
    started = make_trials(raw, swept, out, base_dir=tmp_path)[0]
    train_run(started.experiment, started.run_dir, progress=False, echo=lambda text: None)
    (started.run_dir / "summary.json").unlink()
    first_epoch = read_metrics(started.run_dir)

    executor = RayExecutor(address=ray_head, shared_storage=False)
    rows = run_sweep(trials, ["train.lr"], out, executor=executor, echo=lambda text: None)

    assert [r["status"] for r in rows] == ["complete", "complete"]
    resumed = read_metrics(trials[0].run_dir)
    assert [r["epoch"] for r in resumed] == [1, 2]
    assert resumed[0] == first_epoch[0]  # its wall time too: epoch 1 was not trained again
    checkpoints = {"checkpoints/native/e00001-b0000000.pt", "checkpoints/native/e00002-b0000000.pt"}
    for trial in trials:
        assert run_files(trial.run_dir) == RUN_FILES | checkpoints | {WORKER_RECORD}
        assert worker_record(trial.run_dir)["storage"] == "shipped"
    assert not list((ray_dir / "tmp" / "txsim-sweeps").iterdir())  # scratch folders removed
    assert sorted(p.name for p in (out / "trials").iterdir()) == sorted(
        t.run_dir.name for t in trials
    )  # no marker file or half-unpacked folder left behind


@attrs.frozen
class Killed:
    """A sweep whose second trial's worker was killed: its output, exit code, the killed pid,
    the trial's run directory and the time stamp of its first checkpoint before the kill."""

    output: str
    code: int
    pid: int
    run_dir: Path
    first_checkpoint_stamp: int

    def assert_resumed(self) -> None:
        """The trial finished every epoch in another worker without training again the epochs
        that the killed one had checkpointed."""
        assert [r["epoch"] for r in read_metrics(self.run_dir)] == list(range(1, 9))
        assert worker_record(self.run_dir)["pid"] != self.pid
        first = self.run_dir / "checkpoints" / "nonideal" / "e00001-b0000000.pt"
        assert first.stat().st_mtime_ns == self.first_checkpoint_stamp


def sweep_and_kill(tmp_path: Path, address: str, retries: int) -> Killed:
    """Run a 2-trial sweep on Ray in a child process, SIGKILL the worker of its second trial
    after that trial's second epoch, and wait for the sweep to end."""
    config = write_config(tmp_path, epochs=8, limit_train=1000, mode="nonideal")
    out = tmp_path / "sweep"
    args = ["sweep", str(config), "--param", "train.lr=0.05,0.1", "--out", str(out)]
    args += ["--executor", "ray", "--address", address, "--retries", str(retries)]
    code = "import sys; from txsim_core.cli import main; main(sys.argv[1:])"
    sweep = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, ENV_DISABLE_AUTOLOAD: "1"},
    )
    run_dir = out / "trials" / "train.lr=0.1"
    checkpoints = run_dir / "checkpoints" / "nonideal"
    deadline = time.monotonic() + 90
    while not (checkpoints / "e00002-b0000000.pt").exists():
        assert sweep.poll() is None, sweep.communicate()[0]
        assert time.monotonic() < deadline, "the trial did not reach its second epoch"
        time.sleep(0.01)
    pid = worker_record(run_dir)["pid"]
    stamp = (checkpoints / "e00001-b0000000.pt").stat().st_mtime_ns
    assert not (run_dir / "summary.json").exists()  # still training when killed
    os.kill(pid, signal.SIGKILL)
    output = sweep.communicate(timeout=120)[0]
    return Killed(output, sweep.returncode, pid, run_dir, stamp)


@pytest.mark.slow
def test_a_trial_whose_worker_is_killed_is_retried_from_its_checkpoint(
    tmp_path: Path, ray_head: str
) -> None:
    killed = sweep_and_kill(tmp_path, ray_head, retries=1)
    assert killed.code == 0, killed.output
    summary = (tmp_path / "sweep" / "summary.csv").read_text().splitlines()
    assert [line.split(",")[2] for line in summary[1:]] == ["complete", "complete"]
    killed.assert_resumed()


@pytest.mark.slow
def test_a_trial_out_of_retries_fails_alone_and_a_rerun_finishes_it(
    tmp_path: Path, ray_head: str
) -> None:
    killed = sweep_and_kill(tmp_path, ray_head, retries=0)
    assert killed.code == 1 and "1 trial row(s) failed" in killed.output, killed.output
    out = tmp_path / "sweep"
    summary = (out / "summary.csv").read_text().splitlines()
    assert summary[1].split(",")[:3] == ["0.05", "nonideal", "complete"]
    assert summary[2].split(",")[:3] == ["0.1", "nonideal", "failed"]
    assert "WorkerCrashedError after 1 attempt(s)" in summary[2]

    finished = out / "trials" / "train.lr=0.05" / "metrics.csv"
    finished_stamp = finished.stat().st_mtime_ns
    args = ["sweep", str(tmp_path / "experiment.toml"), "--param", "train.lr=0.05,0.1"]
    rerun = CliRunner().invoke(
        cli, [*args, "--out", str(out), "--executor", "ray", "--address", ray_head]
    )
    assert rerun.exit_code == 0, rerun.output
    assert (out / "summary.csv").read_text().count(",complete,") == 2
    assert finished.stat().st_mtime_ns == finished_stamp  # the finished trial was skipped
    killed.assert_resumed()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cpu=2", TrialResources(2, 0.0)),
        ("gpu=0.5", TrialResources(1, 0.5)),
        (" cpu = 1 , gpu = 2 ", TrialResources(1, 2.0)),
    ],
)
def test_resources_per_trial_are_parsed(text: str, expected: TrialResources) -> None:
    assert parse_resources(text) == expected


@pytest.mark.parametrize(
    "text", ["cpu=0", "cpu=1.5", "gpu=-1", "gpu=1.5", "tpu=1", "cpu=1,cpu=2", "cpu", "gpu=nan", ""]
)
def test_bad_resources_per_trial_are_refused_by_the_command(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"Expected cpu=N,gpu=M .*, but got"):
        parse_resources(text)
    config = write_config(tmp_path, epochs=1)
    args = ["sweep", str(config), "--param", "train.lr=0.1", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, [*args, "--executor", "ray", "--resources-per-trial", text])
    assert result.exit_code == 2
    assert "Invalid value for '--resources-per-trial'" in result.output
    assert f"but got {text!r}" in result.output
    assert not (tmp_path / "out").exists()


def test_executor_options_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path, epochs=1)
    args = ["sweep", str(config), "--param", "train.lr=0.1", "--out", str(tmp_path / "out")]
    local = CliRunner().invoke(cli, [*args, "--address", "auto", "--retries", "1"])
    assert local.exit_code == 2 and "--address, --retries: option(s) of --executor ray" in (
        local.output
    )
    jobs = CliRunner().invoke(cli, [*args, "--executor", "ray", "--jobs", "2"])
    assert jobs.exit_code == 2 and "--jobs is an option of --executor local" in jobs.output
    retries = CliRunner().invoke(cli, [*args, "--executor", "ray", "--retries", "-1"])
    assert retries.exit_code == 2 and "--retries" in retries.output

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    missing = CliRunner().invoke(cli, [*args, "--executor", "ray"])
    assert missing.exit_code == 1 and 'pip install "txsim[ray]"' in missing.output
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="Ray library"):
        RayExecutor()
    with pytest.raises(ConfigError, match=r"Expected cpu=N,gpu=M .*, but got cpu=2,gpu=1\.5\."):
        TrialResources(cpu=2, gpu=1.5)
