"""Training of one mode (native, Cross-Ideal or Cross-NI): epochs, evaluation and checkpoints."""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import torch

from txsim_core.data import DataSplits, Split
from txsim_core.errors import TxsimError
from txsim_core.experiment.checkpoint import (
    Position,
    checkpoint_path,
    restore_random_state,
    save_checkpoint,
)
from txsim_core.experiment.config import Experiment
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
def evaluate(net: torch.nn.Module, split: Split, batch_size: int, device: torch.device) -> float:
    """Classification accuracy of ``net`` on ``split`` (a fraction in [0, 1])."""
    was_training = net.training
    net.eval()
    correct = 0
    for index in torch.arange(len(split)).split(batch_size):
        x, y = split.batch(index)
        correct += int((net(x.to(device)).argmax(1) == y.to(device)).sum())
    net.train(was_training)
    return correct / len(split)


@contextmanager
def stop_requests() -> Iterator[Callable[[], bool]]:
    """Turn the first Ctrl-C into a request to stop after the current batch (a second one stops
    at once); yields a function that says whether a stop was requested."""
    requested = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal requested
        requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        click.echo("\nStopping after this batch to save a checkpoint (Ctrl-C again to abort).")

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: no handler, Ctrl-C is not ours to catch
        yield lambda: False
        return
    try:
        yield lambda: requested
    finally:
        signal.signal(signal.SIGINT, previous)


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
    ) -> None:
        self.experiment, self.mode, self.splits = experiment, mode, splits
        self.run_dir, self.device, self.progress, self.on_epoch = (
            run_dir,
            device,
            progress,
            on_epoch,
        )
        self.net, self.optimizer = build_system(experiment, mode, splits, device)
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
        while self.position.epoch < self.experiment.train.epochs:
            self._train_epoch(stop_requested)
        return self.history

    def _batches(self) -> list[torch.Tensor]:
        order = epoch_order(self.experiment.train.seed, self.position.epoch, len(self.splits.train))
        return list(order.split(self.experiment.train.batch_size))

    def _train_epoch(self, stop_requested: Callable[[], bool]) -> None:
        settings, position = self.experiment.train, self.position
        batches = self._batches()
        label = f"{self.mode:>8} epoch {position.epoch + 1}/{settings.epochs}"
        loss_fn = torch.nn.CrossEntropyLoss()
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
                x, y = self.splits.train.batch(index)
                x, y = x.to(self.device), y.to(self.device)
                output = self.net(x)
                loss = loss_fn(output, y)
                if not math.isfinite(loss.item()):
                    raise TrainingDiverged(
                        f"Training of mode {self.mode!r} diverged in epoch {position.epoch + 1}: "
                        f"the loss is {loss.item()}. Try a smaller `train.lr`."
                    )
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                position.batch += 1
                position.loss_sum += loss.item() * len(y)
                position.correct += int((output.argmax(1) == y).sum())
                position.count += len(y)
                position.seconds += time.perf_counter() - start
                bar.update(1)
                if stop_requested():
                    path = self._save()
                    raise RunInterrupted(
                        f"Interrupted in mode {self.mode!r}, epoch {position.epoch + 1}, after batch "
                        f"{position.batch}; checkpoint saved to {path}. Continue with "
                        f"`txsim train --resume {self.run_dir}`."
                    )
        start = time.perf_counter()
        test_accuracy = evaluate(self.net, self.splits.test, settings.eval_batch_size, self.device)
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
        for stale in saved.parent.glob(f"e{position.epoch:05d}-b*.pt"):
            if not stale.name.endswith("-b0000000.pt"):  # a Ctrl-C checkpoint of this epoch
                stale.unlink()
        self.on_epoch(row)


def _running_text(position: Position) -> str:
    if not position.count:
        return ""
    return (
        f"loss {position.loss_sum / position.count:.4f}  "
        f"acc {100 * position.correct / position.count:.1f}%"
    )
