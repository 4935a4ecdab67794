"""Data-parallel training runs: the replicas of one run, and a launcher for one machine.

A run is data-parallel when it runs in several processes (*replicas*) joined in one
``torch.distributed`` process group: launched by ``txsim train --nproc N`` (:func:`launch`, on
this machine), or by ``torchrun`` (any number of machines; txsim reads the environment that
torchrun sets: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).
CPU runs use the ``gloo`` backend, CUDA runs ``nccl`` with one GPU per replica (``cuda:LOCAL_RANK``).

Every minibatch of the single-process run is split into one contiguous share per replica, so a
run of N replicas sees the same minibatches as the single-process run with the same
``train.batch_size``; the loss of each share is weighted so that the averaged gradient is the
gradient of the whole minibatch's mean loss. When the last minibatch of an epoch has fewer
samples than there are replicas, the replicas skip it (a single-process run trains on it).

Rank 0 prints, and writes the run directory (metrics, plots, checkpoints); a resumed run reads
the checkpoint on rank 0 and sends it to the other replicas, so only rank 0 needs the files.
See txsim_core.distributed for how the crossbar state stays identical on every replica.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pickle
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from typing import Any

import attrs
import click
import torch
import torch.distributed as dist

from txsim_core.errors import ConfigError, TxsimError

ENVIRONMENT = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""The variables that ``torchrun`` sets and a replica reads."""

STOP_SIGNAL = signal.SIGUSR1
"""The signal a launched replica takes as "stop after this batch and save a checkpoint"."""

FAILURE_GRACE_SECONDS = 5.0
"""How long the launcher waits for the other replicas after one has failed before ending them."""


@attrs.frozen
class Replicas:
    """This process's place among the replicas of a data-parallel run.

    Args:
        rank: this replica's rank, 0 to ``world_size - 1``; rank 0 writes the run's files.
        world_size: the number of replicas.
        device: this replica's torch device.
        calibration_group: the process group of the ADC calibration collectives (its own group,
            so they never interleave with those of DistributedDataParallel).
    """

    rank: int
    world_size: int
    device: torch.device
    calibration_group: Any

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, which prints, and writes metrics and checkpoints."""
        return self.rank == 0

    def share(self, index: torch.Tensor) -> torch.Tensor:
        """This replica's contiguous share of a minibatch's sample indices."""
        return index.tensor_split(self.world_size)[self.rank]

    def sum(self, values: Sequence[float]) -> list[float]:
        """The sums over all replicas of ``values`` (one all-reduce, in float64)."""
        device = self.device if dist.get_backend() == dist.Backend.NCCL else torch.device("cpu")
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` (any picklable object) on every replica."""
        box = [value]
        device = self.device if dist.get_backend() == dist.Backend.NCCL else None
        dist.broadcast_object_list(box, src=0, device=device)
        return box[0]

    def agree(self, action: Callable[[], Any]) -> Any:
        """Run ``action`` on rank 0 only and return its result everywhere; if it raises, every
        replica raises the same error (so that no replica waits for one that stopped)."""
        outcome: tuple[bool, Any] = (True, None)
        if self.is_main:
            try:
                outcome = (True, action())
            except TxsimError as exc:
                outcome = (False, exc)
        ok, value = self.broadcast(outcome)
        if not ok:
            raise value
        return value


def launched_world_size() -> int:
    """The number of replicas that the environment (torchrun, or :func:`launch`) declares; 1 if
    this process was not launched as a replica."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def replica_device(name: str, local_rank: int) -> torch.device:
    """The device of the replica of local rank ``local_rank`` for ``train.device`` = ``name``."""
    from txsim_core.experiment.runner import resolve_device

    device = resolve_device(name)
    if device.type != "cuda":
        return device
    if local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"Expected one GPU per replica on each machine, but replica {local_rank} has none: "
            f"torch sees {torch.cuda.device_count()} GPU(s). Use fewer replicas or "
            "`train.device = 'cpu'`."
        )
    return torch.device("cuda", local_rank)


@contextlib.contextmanager
def joined_replicas(device_name: str) -> Iterator[Replicas | None]:
    """Join the process group that the environment declares, for the duration of the block.

    Yields None when this process is not a replica (a single-process run). Uses a process group
    that the caller has already initialised, if any, and leaves it alone at the end.

    Args:
        device_name: ``train.device`` of the experiment.
    """
    if launched_world_size() <= 1 and not dist.is_initialized():
        yield None
        return
    missing = [name for name in ENVIRONMENT if name not in os.environ]
    if not dist.is_initialized() and missing:
        raise ConfigError(
            f"Expected the torchrun environment variables {', '.join(ENVIRONMENT)} in a "
            f"data-parallel run, but {', '.join(missing)} are missing."
        )
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = replica_device(device_name, local_rank)
    owned = not dist.is_initialized()
    if owned:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            timeout=datetime.timedelta(minutes=30),
        )
    try:
        yield Replicas(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            device=device,
            calibration_group=dist.new_group(),
        )
    finally:
        if owned:
            dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _watch_parent(parent: int) -> None:
    """End this replica when the launcher is gone (instead of waiting in a collective)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _replica_main(
    rank: int,
    world_size: int,
    port: int,
    parent: int,
    connection: Connection,
    target: Callable[..., Any],
    args: tuple[Any, ...],
) -> None:
    """The body of one launched replica: set the torchrun environment, run ``target``, report."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launcher turns Ctrl-C into STOP_SIGNAL
    signal.signal(STOP_SIGNAL, signal.SIG_IGN)  # until training takes it (its default ends us)
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    # results go by value (plain pickle): torch's multiprocessing pickler would share tensors
    # through this process, which ends right after sending them
    try:
        result = target(*args)
    except BaseException as exc:  # reported to the launcher, which raises it
        try:
            report = pickle.dumps((False, exc))
            pickle.loads(report)
        except Exception:  # an exception that does not survive pickling
            report = pickle.dumps((False, TxsimError(f"{type(exc).__name__}: {exc}")))
        connection.send_bytes(report)
        connection.close()
        sys.exit(1)
    connection.send_bytes(pickle.dumps((True, result)))
    connection.close()


def launch(nproc: int, target: Callable[..., Any], *args: Any) -> list[Any]:
    """Run ``target(*args)`` in ``nproc`` replica processes on this machine and return their
    results, in rank order.

    The replicas find each other on the loopback interface (the environment of torchrun is set
    for them) and share the CPU cores (``cpu_count // nproc`` torch threads each). The first
    Ctrl-C asks every replica to stop after the current batch (:data:`STOP_SIGNAL`), a second
    one ends them at once. When a replica fails, the others get
    :data:`FAILURE_GRACE_SECONDS` to fail too (they usually do, with the same error) and are
    then ended.

    Args:
        nproc: the number of replicas, at least 2.
        target: a picklable function (defined at module level).
        args: its picklable arguments.

    Returns:
        What ``target`` returned on each replica (picklable), in rank order.

    Raises:
        The error of the lowest rank that reported one, or :class:`TxsimError` if a replica
        ended without a report.
    """
    if nproc < 2:
        raise ConfigError(f"Expected at least 2 replicas to launch, but got nproc={nproc}.")
    context = get_context("spawn")
    port, parent = _free_port(), os.getpid()
    pipes = [context.Pipe(duplex=False) for _ in range(nproc)]
    processes = [
        context.Process(
            target=_replica_main,
            args=(rank, nproc, port, parent, pipes[rank][1], target, args),
            name=f"txsim-replica-{rank}",
        )
        for rank in range(nproc)
    ]
    for process in processes:
        process.start()
    for _, sender in pipes:
        sender.close()
    interrupts = 0

    def interrupt(signum: int, frame: Any) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            click.echo("\nStopping after this batch to save a checkpoint (Ctrl-C again to abort).")
            for process in processes:
                if process.pid is not None and process.is_alive():
                    os.kill(process.pid, STOP_SIGNAL)
        else:
            for process in processes:
                process.kill()

    previous = signal.signal(signal.SIGINT, interrupt)
    outcomes: dict[int, tuple[bool, Any]] = {}
    try:
        _wait_for_replicas([receiver for receiver, _ in pipes], outcomes)
    finally:
        signal.signal(signal.SIGINT, previous)
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join()
    if interrupts > 1:
        raise TxsimError("Aborted by a second Ctrl-C.")
    reports = [outcomes.get(rank, (False, None)) for rank in range(nproc)]
    errors = [value for ok, value in reports if not ok and value is not None]
    if errors:
        raise errors[0]
    for rank, process in enumerate(processes):
        if not reports[rank][0]:
            raise TxsimError(
                f"Replica {rank} of {nproc} ended with exit code {process.exitcode} and no error "
                "report (killed, or out of memory?)."
            )
    return [outcomes[rank][1] for rank in range(nproc)]


def _wait_for_replicas(receivers: list[Connection], outcomes: dict[int, tuple[bool, Any]]) -> None:
    """Collect each replica's outcome, ``(ok, value)``; a replica that ends without one counts as
    ``(False, None)``. Returns when all have reported, or when the grace after a failure ends."""
    deadline: float | None = None
    pending = dict(enumerate(receivers))
    while pending:
        if deadline is not None and time.monotonic() > deadline:
            return
        ready = wait(list(pending.values()), timeout=1.0)
        for rank, receiver in list(pending.items()):
            if receiver in ready:
                try:
                    outcomes[rank] = pickle.loads(receiver.recv_bytes())
                except EOFError:  # the replica ended without a report
                    outcomes[rank] = (False, None)
                del pending[rank]
        if deadline is None and any(not ok for ok, _ in outcomes.values()):
            deadline = time.monotonic() + FAILURE_GRACE_SECONDS
