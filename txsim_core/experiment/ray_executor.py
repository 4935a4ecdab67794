"""Run the trials of a sweep as tasks on a Ray cluster (``txsim sweep --executor ray``).

Ray is an optional dependency (``pip install "txsim[ray]"``), imported only when a sweep runs on
it. Every node of the cluster needs txsim (and the plugins and data the experiment uses)
installed in the same environment as the driver.

Each trial is one Ray task that reserves :class:`TrialResources` (its CPUs are also its torch
threads). A task whose worker dies (killed, out of memory, node lost) is run again by Ray up to
``retries`` times; after that the trial is recorded as failed with the reason and the sweep goes
on. Running the sweep again finishes what is missing.

Storage: the driver writes a marker file with a random name into the sweep's ``trials/`` folder,
and each task looks for it.

- A worker that sees it shares the driver's file system: the trial trains in its run directory,
  so a retried task resumes from the last checkpoint the killed one wrote.
- A worker that does not see it trains in a scratch folder on its node: the driver sends it the
  trial's unfinished run directory (if any) and unpacks the finished one it sends back into
  ``trials/<name>/``. A retry on the same node resumes from the scratch folder; on another node,
  from what the driver had sent.

Either way, each trial's run directory ends up in the sweep directory, as with the local
executor, plus a ``worker.json`` saying which node and process ran its last attempt (``node_id``,
``node_ip``, ``hostname``, ``pid``, ``storage``: ``shared`` or ``shipped``, ``started``).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import secrets
import shutil
import socket
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

from txsim_core.errors import ConfigError
from txsim_core.experiment.metrics import atomic_write_text
from txsim_core.experiment.runner import run_is_complete
from txsim_core.experiment.sweep import Trial, run_trial, trial_result

INSTALL_HINT = 'install it with `pip install "txsim[ray]"`'
WORKER_RECORD = "worker.json"
"""The file, in each trial's run directory, that says where its last attempt ran."""


def import_ray() -> ModuleType:
    """The ``ray`` module; raises :class:`ConfigError` with the install command if it is missing."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            f"Expected the Ray library for the Ray executor, but it is not installed; {INSTALL_HINT}."
        ) from exc
    return ray


RESOURCES_FORMAT = (
    "cpu=N,gpu=M (either or both; cpu a whole number ≥ 1, gpu a number ≥ 0, fractional only "
    "below 1)"
)


def _allowed(cpu: float, gpu: float) -> bool:
    return cpu >= 1 and float(cpu).is_integer() and gpu >= 0 and (gpu <= 1 or gpu.is_integer())


@attrs.frozen
class TrialResources:
    """What each trial reserves on the Ray cluster.

    Args:
        cpu: CPU cores, a whole number ≥ 1; the trial trains with this many torch threads.
        gpu: GPUs, a number ≥ 0, fractional only below 1 (trials then share a GPU); Ray makes
            them visible to the trial, whose ``train.device`` should be ``auto`` or ``cuda``.

    Raises:
        ConfigError: a value out of range.
    """

    cpu: int = 1
    gpu: float = 0.0

    def __attrs_post_init__(self) -> None:
        if not _allowed(self.cpu, float(self.gpu)):
            raise ConfigError(f"Expected {RESOURCES_FORMAT}, but got {self}.")

    def __str__(self) -> str:
        return f"cpu={self.cpu},gpu={self.gpu:g}"


def parse_resources(text: str) -> TrialResources:
    """``cpu=N,gpu=M`` (either may be left out: cpu 1, gpu 0) -> :class:`TrialResources`.

    Raises:
        ConfigError: an unknown or repeated name, or a value out of range.
    """
    values: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = (part.strip() for part in item.partition("="))
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not sep or name not in ("cpu", "gpu") or name in values:
            raise ConfigError(f"Expected {RESOURCES_FORMAT}, but got {text!r}.")
        values[name] = number
    cpu, gpu = values.get("cpu", 1.0), values.get("gpu", 0.0)
    if not _allowed(cpu, gpu):
        raise ConfigError(f"Expected {RESOURCES_FORMAT}, but got {text!r}.")
    return TrialResources(cpu=int(cpu), gpu=gpu)


def pack_dir(folder: Path) -> bytes:
    """The files of ``folder`` as an uncompressed tar archive."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(folder, arcname=".")
    return buffer.getvalue()


def unpack_dir(data: bytes, folder: Path) -> None:
    """Replace ``folder`` by the contents of the tar archive ``data`` (from :func:`pack_dir`)."""
    incoming = folder.with_name(folder.name + ".incoming")
    shutil.rmtree(incoming, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as archive:
        archive.extractall(incoming, filter="data")
    shutil.rmtree(folder, ignore_errors=True)
    incoming.rename(folder)


def _write_worker_record(run_dir: Path, storage: str) -> None:
    import ray

    run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "node_id": ray.get_runtime_context().get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "storage": storage,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_text(run_dir / WORKER_RECORD, json.dumps(record, indent=2) + "\n")


def run_on_worker(
    trial: Trial, threads: int, marker: Path, payload: bytes | None, shared: bool | None
) -> tuple[dict[str, Any], bytes | None]:
    """The Ray task of one trial: run it where the worker can, see the module's docstring.

    Args:
        trial: the trial, its run directory an absolute path of the driver's file system.
        threads: torch threads.
        marker: the driver's marker file; a worker that sees it shares the driver's storage.
        payload: the driver's unfinished run directory (:func:`pack_dir`), or None.
        shared: whether the storage is shared (None: look for ``marker``).

    Returns:
        The trial's result and, when it ran in a scratch folder, its run directory packed.
    """
    if shared is None:
        shared = marker.is_file()
    if shared:
        _write_worker_record(trial.run_dir, "shared")
        return run_trial(trial, threads), None
    scratch = Path(tempfile.gettempdir()) / "txsim-sweeps" / marker.name / trial.run_dir.name
    if not (scratch / "config.toml").is_file():  # no earlier attempt of this sweep on this node
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        if payload is not None:
            unpack_dir(payload, scratch)
    _write_worker_record(scratch, "shipped")
    result = run_trial(attrs.evolve(trial, run_dir=scratch), threads)
    files = pack_dir(scratch)
    shutil.rmtree(scratch)
    with contextlib.suppress(OSError):  # other trials of the sweep may still be in it
        scratch.parent.rmdir()
    return result, files


@attrs.frozen
class RayExecutor:
    """Runs each trial as a task on a Ray cluster; see the module's docstring.

    Args:
        address: the cluster: ``auto`` (the one running on this machine) or ``HOST:PORT`` of its
            head; None: the cluster that ``RAY_ADDRESS`` names if it is set, else a new Ray
            instance on this machine that lives as long as the sweep. A Ray connection this
            process already has is used as is.
        resources: what each trial reserves.
        retries: times a trial whose worker died is run again before it is recorded as failed.
        shared_storage: whether the workers see the sweep directory; None finds out on each
            worker (a marker file), False makes every trial train in a scratch folder and ship
            its run directory back.

    Raises:
        ConfigError: Ray is not installed, or ``retries`` is negative.
    """

    address: str | None = None
    resources: TrialResources = TrialResources()
    retries: int = 2
    shared_storage: bool | None = None

    def __attrs_post_init__(self) -> None:
        import_ray()
        if self.retries < 0:
            raise ConfigError(f"Expected retries ≥ 0, but got {self.retries}.")

    def cluster(self) -> str | None:
        """The address of the cluster to join (None: start a Ray instance on this machine)."""
        return self.address or os.environ.get("RAY_ADDRESS") or None

    def describe(self) -> str:
        """``on Ray at ADDRESS, cpu=N,gpu=M per trial, retries=R``."""
        cluster = self.cluster()
        where = f"at {cluster}" if cluster else "(a new instance on this machine)"
        return f"on Ray {where}, {self.resources} per trial, retries={self.retries}"

    def run(self, trials: Sequence[Trial]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Run every trial; see :meth:`txsim_core.experiment.sweep.TrialExecutor.run`."""
        ray = import_ray()
        trials = [attrs.evolve(t, run_dir=t.run_dir.resolve()) for t in trials]
        pending = {i: t for i, t in enumerate(trials) if not run_is_complete(t.run_dir)}
        for index, trial in enumerate(trials):
            if index not in pending:
                yield index, run_trial(trial)
        if not pending:
            return
        owner = not ray.is_initialized()
        if owner:
            cluster = self.cluster()
            try:
                ray.init(address=cluster or "local", logging_level=logging.WARNING)
            except ConnectionError as exc:
                raise ConfigError(
                    f"Expected a Ray cluster at {cluster or 'this machine'}, but could not "
                    f"connect to it: {exc}"
                ) from exc
        marker_name = f".txsim-shared-{secrets.token_hex(8)}"
        markers = {t.run_dir.parent / marker_name for t in pending.values()}
        try:
            for marker in markers:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
            task = ray.remote(run_on_worker).options(
                num_cpus=self.resources.cpu,
                num_gpus=self.resources.gpu,
                max_retries=self.retries,
            )
            refs = {}
            for index, trial in pending.items():
                payload = None
                if self.shared_storage is not True and (trial.run_dir / "config.toml").is_file():
                    payload = pack_dir(trial.run_dir)
                marker = trial.run_dir.parent / marker_name
                ref = task.remote(trial, self.resources.cpu, marker, payload, self.shared_storage)
                refs[ref] = index
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                index = refs.pop(done[0])
                yield index, self._collect(ray, done[0], trials[index])
        finally:
            for marker in markers:
                marker.unlink(missing_ok=True)
            if owner:
                ray.shutdown()

    def _collect(self, ray: ModuleType, ref: Any, trial: Trial) -> dict[str, Any]:
        try:
            result, files = ray.get(ref)
        except ray.exceptions.RayError as exc:
            reason = (str(exc).strip().splitlines() or [""])[0]
            error = f"{type(exc).__name__} after {self.retries + 1} attempt(s): {reason}"
            return trial_result(trial, "failed", error)
        if files is not None:
            unpack_dir(files, trial.run_dir)
        return result
