"""Training of one mode (native, Cross-Ideal or Cross-NI): epochs, evaluation and checkpoints."""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import torch
from torch.nn.parallel import DistributedDataParallel

from txsim_core.calibration import synchronized_calibration
from txsim_core.data import DataSplits, Split
from txsim_core.distributed import (
    average_batchnorm_statistics,
    check_replicas_agree,
    fork_random_streams,
    synchronize_random_streams,
)
from txsim_core.errors import TxsimError
from txsim_core.experiment.checkpoint import (
    Position,
    checkpoint_path,
    restore_random_state,
    save_checkpoint,
)
from txsim_core.experiment.config import Experiment
from txsim_core.experiment.parallel import Replicas
from txsim_core.nn import convert
from txsim_core.optim import CrossbarSGD
from txsim_core.zoo import build_network


class RunInterrupted(TxsimError):
    """Training was stopped by the user (Ctrl-C) after a checkpoint was saved."""


class TrainingDiverged(TxsimError):
    """The training loss became NaN or infinite."""


def build_system(
    experiment: Experiment, mode: str, splits: DataSplits, device: torch.device
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The network and optimizer of one mode; every mode starts from the same initial weights."""
    torch.manual_seed(experiment.train.seed)
    net = build_network(
        experiment.model.name,
        input_shape=splits.input_shape,
        num_classes=splits.num_classes,
        **experiment.model.options,
    )
    config = experiment.crossbar_config(mode)
    if config is not None:
        net = convert(net, config, seed=experiment.train.seed)
    net = net.to(device)
    settings = experiment.train
    optimizer_class = torch.optim.SGD if config is None else CrossbarSGD
    optimizer = optimizer_class(
        net.parameters(),
        lr=settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
    )
    return net, optimizer


def epoch_order(seed: int, epoch: int, size: int) -> torch.Tensor:
    """The order of the training samples in ``epoch`` (0-based): the same for every mode."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + 7_919 * (epoch + 1))
    return torch.randperm(size, generator=generator)


@torch.no_grad()
def evaluate(
    net: torch.nn.Module,
    split: Split,
    batch_size: int,
    device: torch.device,
    replicas: Replicas | None = None,
) -> float:
    """Classification accuracy of ``net`` on ``split`` (a fraction in [0, 1]); replicas each
    evaluate one contiguous share of ``split`` and add up their counts."""
    was_training = net.training
    net.eval()
    correct = 0
    indices = torch.arange(len(split))
    if replicas is not None:
        indices = replicas.share(indices)
    for index in indices.split(batch_size):
        x, y = split.batch(index)
        correct += int((net(x.to(device)).argmax(1) == y.to(device)).sum())
    net.train(was_training)
    if replicas is not None:
        correct = round(replicas.sum([correct])[0])
    return correct / len(split)


@contextlib.contextmanager
def stop_requests(signum: int = signal.SIGINT) -> Iterator[Callable[[], bool]]:
    """Turn signal ``signum`` into a request to stop after the current batch; yields a function
    that says whether a stop was requested.

    For Ctrl-C (SIGINT) a message says so and a second Ctrl-C stops at once; another signal (the
    launcher's request to a replica, see txsim_core.experiment.parallel) is taken silently.
    """
    requested = False

    def handler(number: int, frame: Any) -> None:
        nonlocal requested
        requested = True
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            click.echo("\nStopping after this batch to save a checkpoint (Ctrl-C again to abort).")

    try:
        previous = signal.signal(signum, handler)
    except ValueError:  # not the main thread: no handler, the signal is not ours to catch
        yield lambda: False
        return
    try:
        yield lambda: requested
    finally:
        signal.signal(signum, previous)


class ModeTrainer:
    """Trains one mode of a run, writing a checkpoint after every epoch.

    Args:
        experiment: the validated experiment.
        mode: ``"native"``, ``"ideal"`` or ``"nonideal"``.
        splits: the data.
        run_dir: the run directory (checkpoints go to ``checkpoints/<mode>/``).
        device: the torch device.
        progress: show a progress bar with the running loss and accuracy.
        on_epoch: called with the new metrics row after each epoch.
        replicas: this process's place in a data-parallel run (None: a single process). Each
            replica trains on its share of every minibatch; only rank 0 writes checkpoints.
    """

    def __init__(
        self,
        experiment: Experiment,
        mode: str,
        splits: DataSplits,
        run_dir: Path,
        device: torch.device,
        *,
        progress: bool = True,
        on_epoch: Callable[[dict[str, Any]], None] = lambda row: None,
        replicas: Replicas | None = None,
    ) -> None:
        self.experiment, self.mode, self.splits = experiment, mode, splits
        self.run_dir, self.device, self.progress, self.on_epoch = (
            run_dir,
            device,
            progress,
            on_epoch,
        )
        self.replicas = replicas
        self.net, self.optimizer = build_system(experiment, mode, splits, device)
        self.model: torch.nn.Module = self.net  # what the training steps call
        if replicas is not None:
            self.model = DistributedDataParallel(
                self.net,
                device_ids=[device.index] if device.type == "cuda" else None,
                forward_sync_buffers=False,
            )
        self.position = Position()
        self.history: list[dict[str, Any]] = []

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint of this mode."""
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_random_state(state)
        self.position, self.history = state["position"], list(state["history"])

    def _save(self) -> Path:
        path = checkpoint_path(self.run_dir, self.mode, self.position)
        if self.replicas is not None:  # one checkpoint of the (identical) replicas
            average_batchnorm_statistics(self.net)
            check_replicas_agree(self.net)
            if not self.replicas.is_main:
                return path
        save_checkpoint(
            path,
            mode=self.mode,
            position=self.position,
            model=self.net,
            optimizer=self.optimizer,
            history=self.history,
        )
        return path

    def run(self, stop_requested: Callable[[], bool] = lambda: False) -> list[dict[str, Any]]:
        """Train the remaining epochs; returns this mode's metrics rows, one per epoch.

        Args:
            stop_requested: says whether the user asked to stop (see :func:`stop_requests`).

        Raises:
            RunInterrupted: after a stop request, once a checkpoint of the position is written.
            TrainingDiverged: when the loss is no longer finite.
        """
        with contextlib.ExitStack() as stack:
            if self.replicas is not None:
                stack.enter_context(synchronized_calibration(self.replicas.calibration_group))
            while self.position.epoch < self.experiment.train.epochs:
                self._train_epoch(stop_requested)
        return self.history

    def _batches(self) -> list[torch.Tensor]:
        order = epoch_order(self.experiment.train.seed, self.position.epoch, len(self.splits.train))
        batches = list(order.split(self.experiment.train.batch_size))
        if self.replicas is not None and len(batches[-1]) < self.replicas.world_size:
            batches.pop()  # a share for every replica, or none (see the module docstring)
        return batches

    def _train_epoch(self, stop_requested: Callable[[], bool]) -> None:
        settings, position = self.experiment.train, self.position
        batches = self._batches()
        label = f"{self.mode:>8} epoch {position.epoch + 1}/{settings.epochs}"
        self.net.train()
        progress_bar: Any = click.progressbar(
            length=len(batches),
            label=label,
            file=sys.stderr,
            show_pos=True,
            item_show_func=lambda _: _running_text(position),
            hidden=not self.progress,
        )
        with progress_bar as bar:
            bar.update(position.batch)
            for index in batches[position.batch :]:
                start = time.perf_counter()
                stop = self._train_step(index, stop_requested)
                position.seconds += time.perf_counter() - start
                bar.update(1)
                if stop:
                    path = self._save()
                    raise RunInterrupted(
                        f"Interrupted in mode {self.mode!r}, epoch {position.epoch + 1}, after batch "
                        f"{position.batch}; checkpoint saved to {path}. Continue with "
                        f"`txsim train --resume {self.run_dir}`."
                    )
        start = time.perf_counter()
        if self.replicas is not None:  # converter noise of the evaluation: one stream each
            average_batchnorm_statistics(self.net)
            fork_random_streams(self.net, self.replicas.rank)
        test_accuracy = evaluate(
            self.net, self.splits.test, settings.eval_batch_size, self.device, self.replicas
        )
        if self.replicas is not None:
            synchronize_random_streams(self.net)
        row = {
            "mode": self.mode,
            "epoch": position.epoch + 1,
            "train_loss": position.loss_sum / position.count,
            "train_accuracy": position.correct / position.count,
            "test_accuracy": test_accuracy,
            "seconds": round(position.seconds + time.perf_counter() - start, 3),
        }
        self.history.append(row)
        self.position = Position(epoch=position.epoch + 1)
        saved = self._save()
        if self.replicas is None or self.replicas.is_main:
            for stale in saved.parent.glob(f"e{position.epoch:05d}-b*.pt"):
                if not stale.name.endswith("-b0000000.pt"):  # a Ctrl-C checkpoint of this epoch
                    stale.unlink()
        self.on_epoch(row)

    def _train_step(self, index: torch.Tensor, stop_requested: Callable[[], bool]) -> bool:
        """Train on the minibatch of sample indices ``index`` (this replica's share of it);
        returns whether a stop was requested (on any replica)."""
        replicas, position = self.replicas, self.position
        share = index if replicas is None else replicas.share(index)
        x, y = self.splits.train.batch(share)
        x, y = x.to(self.device), y.to(self.device)
        if replicas is not None:
            fork_random_streams(self.net, replicas.rank)
            torch.manual_seed(_replica_seed(self.experiment.train.seed, position, replicas.rank))
        output = self.model(x)
        loss = torch.nn.functional.cross_entropy(output, y)
        totals = [loss.item() * len(y), float((output.argmax(1) == y).sum()), len(y)]
        totals.append(float(stop_requested()))
        if replicas is not None:
            totals = replicas.sum(totals)
            # the replicas' gradients are averaged: weigh each share's mean loss by its size
            loss = loss * (len(y) * replicas.world_size / len(index))
        if not math.isfinite(totals[0]):
            raise TrainingDiverged(
                f"Training of mode {self.mode!r} diverged in epoch {position.epoch + 1}: the "
                f"loss is {totals[0] / totals[2]}. Try a smaller `train.lr`."
            )
        self.optimizer.zero_grad()
        loss.backward()
        if replicas is not None:
            synchronize_random_streams(self.net)
        self.optimizer.step()
        position.batch += 1
        position.loss_sum += totals[0]
        position.correct += round(totals[1])
        position.count += round(totals[2])
        return bool(totals[3]) or (replicas is None and stop_requested())


def _replica_seed(seed: int, position: Position, rank: int) -> int:
    """The global torch seed of one replica's training step (dropout and other global draws):
    different for every replica and step, and the same when a run is resumed."""
    return (seed * 1_000_003 + position.epoch * 7_919 + position.batch) * 4_099 + rank


def _running_text(position: Position) -> str:
    if not position.count:
        return ""
    return (
        f"loss {position.loss_sum / position.count:.4f}  "
        f"acc {100 * position.correct / position.count:.1f}%"
    )
